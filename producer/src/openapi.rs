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
        routes::scripts::create,
        routes::scripts::list,
        routes::scripts::detail,
        routes::scripts::version,
        routes::runs::create,
        routes::runs::list,
        routes::runs::get,
        routes::runs::logs,
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
    ),
    components(schemas(crate::api_error::ErrorBody, crate::api_error::ErrorDetail)),
    modifiers(&BearerAuth),
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
