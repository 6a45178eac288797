//! The OpenAPI document (`/openapi.json`): generated from the handlers' annotations, then
//! made exact where a derive cannot say what the handlers enforce (name patterns, ranges,
//! the configured queues, "script or task"), given one id per operation and linked from
//! each created resource to the operations that take its id, so a generated client or a
//! stateful fuzzer can follow them.

use axum::http::Method;
use runfleet_common::runs::SubmitPolicy;
use serde_json::Value;
use utoipa::OpenApi;

use crate::auth::Access;
use crate::routes::{self, table};

mod links;
mod rules;

use links::link_created_resources;
pub use rules::{ENV_NAME_PATTERN, NAME_PATTERN, PARAMETER_KEY_PATTERN};
use rules::{constrain, split_task_body};

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
        routes::compat::list,
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
            let operations = [
                (Method::GET, item.get.as_mut()),
                (Method::POST, item.post.as_mut()),
                (Method::PUT, item.put.as_mut()),
                (Method::DELETE, item.delete.as_mut()),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                let open = table::access(&method, path) == Some(Access::Open);
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

/// The document `/openapi.json` serves under `policy` (its queues and timeout ceiling).
pub fn document(policy: &SubmitPolicy) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document is JSON");
    name_operations(&mut doc);
    constrain(&mut doc, policy);
    split_task_body(&mut doc);
    link_created_resources(&mut doc);
    doc
}

/// Gives every operation the id `<method>_<path>` (`post_runs_by_id_cancel`): utoipa takes
/// the handler's function name, and six handlers are called `create`.
fn name_operations(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            operation["operationId"] = Value::String(operation_id(method, path));
        }
    }
}

fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_string();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(param) => {
                id.push_str("by_");
                id.push_str(param);
            }
            None => id.push_str(&segment.replace('-', "_")),
        }
    }
    id
}

#[cfg(test)]
mod tests;
