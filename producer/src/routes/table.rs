//! Every route of the API in one table, grouped by the role it needs: method, path
//! template, role and handler, each written once. [`crate::router`] registers them,
//! [`crate::auth::required`] reads their roles and the OpenAPI document marks the open
//! ones from them; a test checks that the documented operations (`openapi::ApiDoc`) are
//! exactly the table's, so a route added to one and not the other fails the build's tests.
//!
//! To add a route: write its handler (with `#[utoipa::path]`) in its resource's module,
//! add one line here under the role it needs, and its name to `ApiDoc`'s paths.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter};
use runfleet_common::access::Role;

use super::{compat, events, fleet, health, runs, schedules, scripts, secrets, tasks, tokens};
use crate::auth::Access;
use crate::state::AppState;
use crate::ui;

/// One route: who may call `method` on `path`, and what answers it.
pub struct Route {
    /// The HTTP method.
    pub method: Method,
    /// The path template, as axum matches it (`/runs/{id}`).
    pub path: &'static str,
    /// What a caller needs.
    pub access: Access,
    /// The handler, for `method` only.
    pub handler: MethodRouter<AppState>,
}

/// A route answering `method` on `path` with `handler`.
fn at<H, T>(method: Method, path: &'static str, access: Access, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a method axum can route");
    Route {
        method,
        path,
        access,
        handler: axum::routing::on(filter, handler),
    }
}

/// The API's routes. `/docs` and `/openapi.json` (the Swagger UI) are merged in by
/// [`crate::router`] and are open.
pub fn all() -> Vec<Route> {
    const GET: Method = Method::GET;
    const POST: Method = Method::POST;
    const PUT: Method = Method::PUT;
    const DELETE: Method = Method::DELETE;
    let open = Access::Open;
    let viewer = Access::Needs(Role::Viewer);
    let operator = Access::Needs(Role::Operator);
    let admin = Access::Needs(Role::Admin);
    vec![
        // Open: probes, scrapers, and the console's files (what it shows needs a token).
        at(GET, "/health", open, health::health),
        at(GET, "/ready", open, health::ready),
        // What the automation hub's `/meta` said: open like it, and nothing in it is secret.
        at(GET, "/meta", open, health::meta),
        at(GET, "/metrics", open, runfleet_common::ops_http::metrics),
        at(GET, "/ui", open, ui::redirect),
        at(GET, "/ui/", open, ui::index),
        at(GET, "/ui/{file}", open, ui::asset),
        // Viewer: reads.
        at(GET, "/whoami", viewer, fleet::whoami),
        at(GET, "/fleet", viewer, fleet::view),
        at(GET, "/scripts", viewer, scripts::list),
        at(GET, "/scripts/{name}", viewer, scripts::detail),
        at(
            GET,
            "/scripts/{name}/versions/{version}",
            viewer,
            scripts::version,
        ),
        at(GET, "/runs", viewer, runs::list),
        at(GET, "/runs/{id}", viewer, runs::get),
        at(GET, "/runs/{id}/logs", viewer, runs::logs),
        at(GET, "/runs/{id}/events", viewer, events::follow),
        at(GET, "/runs/{id}/attempts", viewer, runs::attempts),
        at(GET, "/runs/runs", viewer, compat::list),
        at(GET, "/runs/runs/{id}", viewer, compat::get),
        at(GET, "/tasks", viewer, tasks::list),
        at(GET, "/tasks/{name}", viewer, tasks::get),
        at(GET, "/schedules", viewer, schedules::list),
        at(GET, "/schedules/preview", viewer, schedules::preview),
        at(GET, "/schedules/{id}", viewer, schedules::get),
        at(GET, "/schedules/{id}/next", viewer, schedules::next),
        // Operator: making runs happen (and stopping them).
        at(POST, "/runs", operator, runs::create),
        at(POST, "/runs/batch", operator, runs::create_batch),
        at(POST, "/runs/runs", operator, compat::create),
        at(POST, "/runs/{id}/cancel", operator, runs::cancel),
        at(POST, "/runs/{id}/retry", operator, runs::retry),
        at(
            POST,
            "/schedules/{id}/trigger",
            operator,
            schedules::trigger,
        ),
        // Admin: what runs, when, and who may do what.
        at(POST, "/scripts", admin, scripts::create),
        at(POST, "/tasks", admin, tasks::create),
        at(PUT, "/tasks/{name}", admin, tasks::replace),
        at(DELETE, "/tasks/{name}", admin, tasks::delete),
        at(POST, "/schedules", admin, schedules::create),
        at(PUT, "/schedules/{id}", admin, schedules::replace),
        at(DELETE, "/schedules/{id}", admin, schedules::delete),
        at(POST, "/schedules/{id}/pause", admin, schedules::pause),
        at(POST, "/schedules/{id}/resume", admin, schedules::resume),
        at(GET, "/tokens", admin, tokens::list),
        at(POST, "/tokens", admin, tokens::create),
        at(DELETE, "/tokens/{id}", admin, tokens::revoke),
        at(GET, "/audit", admin, tokens::audit_log),
        at(GET, "/secrets", admin, secrets::list),
        at(POST, "/secrets", admin, secrets::put),
        at(DELETE, "/secrets/{name}", admin, secrets::delete),
    ]
}

/// The access of each (method, path) in [`all`], read once.
static ACCESS: LazyLock<HashMap<(Method, &'static str), Access>> = LazyLock::new(|| {
    all()
        .into_iter()
        .map(|r| ((r.method, r.path), r.access))
        .collect()
});

/// What `method` on the route template `path` needs, when the table has that route.
pub fn access(method: &Method, path: &str) -> Option<Access> {
    ACCESS.get(&(method.clone(), path)).copied()
}

/// True when every route the table has on `path` is open (a probe or the console's
/// files), so any method on it may be answered (405) without a token.
pub fn path_is_open(path: &str) -> bool {
    let mut routes = ACCESS.iter().filter(|((_, p), _)| *p == path).peekable();
    routes.peek().is_some() && routes.all(|(_, a)| *a == Access::Open)
}
