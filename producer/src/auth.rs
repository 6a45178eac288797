//! Bearer-token auth on every route, checking the role the route table
//! ([`crate::routes::table`]) gives it, and the audit record of every accepted change.
//!
//! `/health`, `/ready`, `/metrics`, `/docs`, `/openapi.json` and the console's files under
//! `/ui` stay open; reads need `viewer` (tokens, audit and secrets: `admin`); submitting,
//! cancelling and retrying runs and triggering schedules need `operator`; everything else
//! that changes something needs `admin`.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use runfleet_common::access::{self, Caller, Role};

use crate::api_error::ApiError;
use crate::routes::table;
use crate::state::AppState;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token.
    Open,
    /// A token with at least this role.
    Needs(Role),
}

/// The access `method` on the route template `route` needs (None: no route matched), as
/// [`table`] declares it.
pub fn required(method: &Method, route: Option<&str>) -> Access {
    let Some(route) = route else {
        return Access::Open; // answered 404 whatever the token
    };
    // The Swagger UI and the document it reads, merged in beside the table.
    if route == "/openapi.json" || route.starts_with("/docs") {
        return Access::Open;
    }
    // axum answers HEAD with the GET handler.
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    if let Some(access) = table::access(method, route) {
        return access;
    }
    // A method the route does not take (405): open where the path is, otherwise as the
    // least a read or a change of it needs, so the 405 tells no one what exists.
    if table::path_is_open(route) {
        Access::Open
    } else if method == Method::GET {
        Access::Needs(Role::Viewer)
    } else {
        Access::Needs(Role::Admin)
    }
}

fn unauthorized(message: &str) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// Who is calling: the bootstrap token, a token from Postgres, or (auth disabled) an
/// anonymous admin. `Err` is the answer to send instead.
async fn caller(state: &AppState, authorization: Option<&str>) -> Result<Caller, Response> {
    if state.config.auth.disabled {
        return Ok(Caller {
            name: "anonymous".into(),
            role: Role::Admin,
        });
    }
    let Some(value) = authorization else {
        return Err(unauthorized(
            "this route needs a token: send `Authorization: Bearer <token>` (runfleet tokens create makes one)",
        ));
    };
    let token = value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(unauthorized(
            "the Authorization header must be `Bearer <token>`",
        ));
    };
    // Hashed once: compared with the bootstrap token's hash, then looked up.
    let hash = access::token_hash(token);
    if state.bootstrap_hash.as_deref() == Some(hash.as_str()) {
        return Ok(Caller {
            name: "bootstrap".into(),
            role: Role::Admin,
        });
    }
    match access::authenticate(&state.pool, &hash).await {
        Ok(Some(caller)) => Ok(caller),
        Ok(None) => Err(unauthorized(
            "this token is unknown or revoked; ask an admin for a new one",
        )),
        Err(e) => Err(ApiError::from(e).into_response()),
    }
}

/// Axum middleware: authenticates, checks the role, runs the handler, audits a change.
pub async fn authorize(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let method = request.method().clone();
    let Access::Needs(role) = required(&method, route.as_deref()) else {
        return next.run(request).await;
    };
    // Owned before any await: the request itself is not `Sync`.
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("").to_string());
    let caller = match caller(&state, authorization.as_deref()).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    if caller.role < role {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{method} {} needs the {} role; token '{}' has {}",
                route.as_deref().unwrap_or(""),
                role.as_str(),
                caller.name,
                caller.role.as_str()
            ),
        )
        .into_response();
    }
    let path = request.uri().path().to_string();
    request.extensions_mut().insert(caller.clone());
    let mut response = next.run(request).await;
    let changed = method != Method::GET && method != Method::HEAD;
    if changed && response.status().is_success() {
        let (target, rebuilt) = if method == Method::POST {
            audit_target(path, response).await
        } else {
            (path, response)
        };
        response = rebuilt;
        let action = format!("{method} {}", route.as_deref().unwrap_or(""));
        let trace = runfleet_common::telemetry::current_traceparent();
        let trace_id = trace
            .as_deref()
            .and_then(runfleet_common::telemetry::trace_id_of);
        // The change is made: a record Postgres cannot take now is retried, never turned
        // into an error answer.
        let change = runfleet_common::audit::Change {
            caller,
            action,
            target,
            status: response.status().as_u16(),
            trace_id: trace_id.map(str::to_string),
            at: chrono::Utc::now(),
        };
        runfleet_common::audit::record_or_retry(&state.pool, change).await;
    }
    response
}

/// What a POST acted on: the resource's `id` or `name` (and `version`) from the answer
/// when the path does not name it already.
async fn audit_target(path: String, response: Response) -> (String, Response) {
    let (parts, body) = response.into_parts();
    // The answer is already in memory (a JSON body): no limit, so it is never cut.
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return (path, (parts, axum::body::Body::empty()).into_response());
    };
    let created: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let target = match (&created["id"], &created["name"], &created["version"]) {
        (serde_json::Value::String(id), _, _) if !path.contains(id.as_str()) => {
            format!("{path}/{id}")
        }
        (_, serde_json::Value::String(name), serde_json::Value::Number(v)) => {
            format!("{path}/{name}/versions/{v}")
        }
        (_, serde_json::Value::String(name), _) => format!("{path}/{name}"),
        _ => path,
    };
    (
        target,
        Response::from_parts(parts, axum::body::Body::from(bytes)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_needs_the_role_its_effect_calls_for() {
        let cases = [
            (Method::GET, "/health", Access::Open),
            (Method::GET, "/metrics", Access::Open),
            (Method::GET, "/docs/index.html", Access::Open),
            (Method::GET, "/ui/", Access::Open),
            (Method::GET, "/ui/{file}", Access::Open),
            (Method::GET, "/whoami", Access::Needs(Role::Viewer)),
            (Method::GET, "/fleet", Access::Needs(Role::Viewer)),
            (
                Method::GET,
                "/runs/{id}/events",
                Access::Needs(Role::Viewer),
            ),
            (Method::GET, "/runs", Access::Needs(Role::Viewer)),
            (Method::GET, "/runs/{id}/logs", Access::Needs(Role::Viewer)),
            (Method::POST, "/runs", Access::Needs(Role::Operator)),
            (
                Method::POST,
                "/runs/{id}/cancel",
                Access::Needs(Role::Operator),
            ),
            (
                Method::POST,
                "/schedules/{id}/trigger",
                Access::Needs(Role::Operator),
            ),
            (
                Method::POST,
                "/schedules/{id}/pause",
                Access::Needs(Role::Admin),
            ),
            (Method::POST, "/scripts", Access::Needs(Role::Admin)),
            (Method::PUT, "/tasks/{name}", Access::Needs(Role::Admin)),
            (
                Method::DELETE,
                "/schedules/{id}",
                Access::Needs(Role::Admin),
            ),
            (Method::GET, "/tokens", Access::Needs(Role::Admin)),
            (Method::GET, "/audit", Access::Needs(Role::Admin)),
        ];
        for (method, route, expected) in cases {
            assert_eq!(required(&method, Some(route)), expected, "{method} {route}");
        }
        assert_eq!(required(&Method::GET, None), Access::Open);
    }
}
