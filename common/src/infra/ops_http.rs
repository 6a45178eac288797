//! The small HTTP endpoint of the consumer and the scheduler: `/health`, `/ready`,
//! `/metrics`. (The producer serves the same three on its API listener.)

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::config::HttpConfig;

/// A service's listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} (http.listen / RUNFLEET_HTTP__LISTEN): {source}")]
pub struct BindError {
    /// The address, as configured.
    pub addr: String,
    /// The OS error (address in use, permission denied, …).
    pub source: std::io::Error,
}

/// Binds the service's listener (`http.listen`), naming the setting when it cannot.
pub async fn bind(http: &HttpConfig) -> Result<TcpListener, BindError> {
    TcpListener::bind(http.addr())
        .await
        .map_err(|source| BindError {
            addr: http.listen.clone(),
            source,
        })
}

/// Answers "can this process do its work now?" for `/ready`.
pub type ReadyCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// `/health` (always 200 while serving), `/ready` (200, or 503 naming what is down),
/// `/metrics` (Prometheus text).
pub fn router(ready: ReadyCheck) -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/ready",
            get(move || {
                let ready = ready.clone();
                async move {
                    match ready().await {
                        Ok(()) => (
                            StatusCode::OK,
                            axum::Json(serde_json::json!({"status": "ready"})),
                        ),
                        Err(why) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            axum::Json(serde_json::json!({"status": "not_ready", "reason": why})),
                        ),
                    }
                }
            }),
        )
        .route("/metrics", get(metrics))
}

/// `/metrics` handler.
pub async fn metrics() -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        crate::metrics::render(),
    )
}
