//! The OpenAPI document (`/openapi.json`), generated from the handlers' annotations.

use utoipa::OpenApi;

use crate::routes;

/// runfleet's HTTP API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "runfleet API",
        description = "Submit and inspect script runs on a runfleet worker fleet."
    ),
    paths(
        routes::health::health,
        routes::health::ready,
        routes::health::meta,
        routes::fleet::view,
        routes::fleet::whoami,
        routes::scripts::create,
        routes::scripts::list,
        routes::scripts::detail,
        routes::scripts::version,
        routes::runs::create,
        routes::runs::create_batch,
        routes::runs::list,
        routes::runs::get,
        routes::runs::logs,
        routes::events::follow,
        routes::runs::cancel,
        routes::runs::attempts,
        routes::runs::retry,
        routes::tasks::create,
        routes::tasks::list,
        routes::tasks::get,
        routes::tasks::replace,
        routes::tasks::delete,
        routes::schedules::create,
        routes::schedules::list,
        routes::schedules::get,
        routes::schedules::replace,
        routes::schedules::delete,
        routes::schedules::pause,
        routes::schedules::resume,
        routes::schedules::trigger,
        routes::schedules::next,
        routes::schedules::preview,
        routes::compat::create,
        routes::compat::get,
        routes::tokens::create,
        routes::tokens::list,
        routes::tokens::revoke,
        routes::tokens::audit_log,
        routes::secrets::put,
        routes::secrets::list,
        routes::secrets::delete,
    ),
    components(schemas(crate::api_error::ErrorBody, crate::api_error::ErrorDetail)),
    modifiers(&BearerAuth, &CommonErrors),
    security(("bearer" = []))
)]
pub struct ApiDoc;

/// Declares the bearer-token scheme every route but the probes uses.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Routes that need no token (they answer probes and scrapers).
const OPEN_PATHS: &[&str] = &["/health", "/ready"];

/// Documents the answers every operation can give besides its own: 400 (malformed query,
/// path or JSON), 401 and 403 (token), 413 and 415 (body too large, not JSON) on
/// operations with a body, and 503 (Postgres unreachable).
struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::content::ContentBuilder;
        use utoipa::openapi::response::ResponseBuilder;
        use utoipa::openapi::security::SecurityRequirement;
        use utoipa::openapi::{Ref, RefOr};

        let error = |description: &str| -> RefOr<utoipa::openapi::Response> {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let open = OPEN_PATHS.contains(&path.as_str());
            let operations = [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.delete.as_mut(),
            ];
            for operation in operations.into_iter().flatten() {
                let mut common = vec![
                    ("400", "malformed request: query, path id or JSON body"),
                    ("503", "Postgres or RabbitMQ unreachable; try again"),
                ];
                if open {
                    operation.security = Some(vec![SecurityRequirement::default()]);
                } else {
                    common.push(("401", "no token, or an unknown or revoked one"));
                    common.push(("403", "the token's role is too low"));
                }
                if operation.request_body.is_some() {
                    common.push(("413", "body larger than producer.max_body_bytes"));
                    common.push(("415", "body is not application/json"));
                }
                let responses = &mut operation.responses.responses;
                for (status, description) in common {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(description));
                }
            }
        }
    }
}
