//! `/health`, `/ready`, `/meta`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use crate::state::AppState;

/// Liveness: 200 while the process serves HTTP.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, description = "alive")))]
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: 200 when Postgres and RabbitMQ are reachable, else 503 naming what is down.
#[utoipa::path(get, path = "/ready", tag = "ops", responses(
    (status = 200, description = "Postgres and RabbitMQ reachable"),
    (status = 503, description = "a dependency is down")))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (db, broker) = tokio::join!(
        runfleet_common::db::ping(&state.pool),
        state.publisher.is_ready()
    );
    let status = if db && broker {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |up: bool| if up { "up" } else { "down" };
    (
        status,
        Json(json!({
            "status": if status == StatusCode::OK { "ready" } else { "not_ready" },
            "postgres": word(db),
            "rabbitmq": word(broker),
        })),
    )
}

/// Build and configuration facts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Meta {
    /// Always `runfleet`.
    pub name: &'static str,
    /// Package version.
    pub version: &'static str,
    /// Git commit of the build (`unknown` when built outside git).
    pub commit: &'static str,
    /// Worker queues runs may be sent to.
    pub queues: Vec<String>,
    /// Where scripts come from: the automation hub's scripts directory is, here, the
    /// versioned script registry in Postgres (`POST /scripts`).
    pub scripts: &'static str,
}

/// Name, version, build commit, configured queues and where scripts come from. Open, as the
/// automation hub's was: nothing in it is secret.
#[utoipa::path(get, path = "/meta", tag = "ops", responses((status = 200, body = Meta)))]
pub async fn meta(State(state): State<AppState>) -> Json<Meta> {
    Json(Meta {
        name: "runfleet",
        version: env!("CARGO_PKG_VERSION"),
        commit: runfleet_common::BUILD_COMMIT,
        queues: state.config.producer.queues.clone(),
        scripts: "registered with POST /scripts and kept, versioned, in Postgres (no scripts directory)",
    })
}
