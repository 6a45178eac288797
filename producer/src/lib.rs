//! runfleet producer: the HTTP API that records runs in Postgres and publishes them to
//! RabbitMQ, plus the outbox sweeper that publishes what the broker missed and the
//! dead-letter watcher.
//!
//! - [`config`] — `ProducerConfig`.
//! - [`routes`] — one module per resource (`scripts`, `runs`, `tasks`, `schedules`, hub
//!   `compat`, `health`), and `routes::table`: every route with its role, declared once.
//! - [`api_error`], [`json`] — the error format and the body extractor that names fields.
//! - [`auth`] — bearer tokens, the role each route needs, the audit record of changes.
//! - [`http_telemetry`] — request spans and HTTP metrics; [`queue_stats`] — queue depth
//!   gauges read from RabbitMQ and Postgres.
//! - [`sweeper`] — takes back runs of dead consumers, queues due retries, publishes the
//!   outbox.
//! - [`openapi`] — `/openapi.json` and the Swagger UI at `/docs`.
//! - [`ui`] — the web console at `/ui` (runs, scripts, tasks, schedules, fleet).
#![forbid(unsafe_code)]

pub mod api_error;
pub mod auth;
pub mod config;
pub mod http_telemetry;
pub mod json;
pub mod openapi;
pub mod queue_stats;
pub mod routes;
pub mod state;
pub mod sweeper;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
pub use config::ProducerConfig;
use runfleet_common::amqp::Publisher;
use runfleet_common::db;
use runfleet_common::shutdown::Shutdown;
use tokio::net::TcpListener;
use utoipa_swagger_ui::SwaggerUi;

use crate::api_error::ApiError;
use crate::state::AppState;

/// Why the producer could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The API listener could not bind.
    #[error(transparent)]
    Bind(#[from] runfleet_common::ops_http::BindError),
}

/// The API's routes over `state`.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.producer.max_body_bytes;
    let mut router = Router::new();
    for route in routes::table::all() {
        router = router.route(route.path, route.handler);
    }
    router
        .merge(
            SwaggerUi::new("/docs")
                .external_url_unchecked("/openapi.json", openapi::document(&state.policy)),
        )
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such route; see /docs",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method; see /docs",
            )
        })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ))
        .layer(axum::middleware::from_fn(http_telemetry::track))
        .with_state(state)
}

/// A producer whose listener is bound, ready to [`Producer::run`].
pub struct Producer {
    listener: TcpListener,
    state: AppState,
}

impl Producer {
    /// Binds the API listener; Postgres and RabbitMQ are connected lazily.
    pub async fn bind(config: ProducerConfig) -> Result<Self, StartError> {
        runfleet_common::runs::init_metrics(&config.producer.queues);
        runfleet_common::dead_letters::init_metrics();
        queue_stats::init_metrics(&config.producer.queues);
        let listener = runfleet_common::ops_http::bind(&config.http).await?;
        let pool = db::pool(&config.database);
        let publisher = Publisher::new(
            config.amqp.clone(),
            config.producer.queues.clone(),
            "runfleet-producer",
        );
        let policy = Arc::new(config.producer.submit_policy());
        let bootstrap_hash = config
            .auth
            .bootstrap_token
            .as_ref()
            .map(|t| Arc::from(runfleet_common::access::token_hash(t.expose())));
        // Checked by the config's validation already.
        let keyring = runfleet_common::secrets::Keyring::from_config(&config.secrets)
            .ok()
            .flatten()
            .map(Arc::new);
        let max_event_streams = config.producer.max_event_streams;
        Ok(Producer {
            listener,
            state: AppState {
                pool,
                publisher,
                config: Arc::new(config),
                policy,
                bootstrap_hash,
                keyring,
                closing: Shutdown::new(),
                event_streams: Arc::new(tokio::sync::Semaphore::new(max_event_streams)),
            },
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves the API and sweeps the outbox until `shutdown`; in-flight requests finish.
    pub async fn run(self, shutdown: Shutdown) {
        let auth = &self.state.config.auth;
        if auth.disabled {
            tracing::warn!(
                "API auth is DISABLED (auth.disabled): every caller is an admin. For local development only"
            );
        } else if auth.bootstrap_token.is_none() {
            tracing::info!(
                "no bootstrap token (auth.bootstrap_token): only tokens stored in Postgres are accepted"
            );
        }
        let sweeper = tokio::spawn(sweeper::sweep_forever(self.state.clone(), shutdown.clone()));
        let queue_stats = tokio::spawn(queue_stats::report_forever(
            self.state.clone(),
            shutdown.clone(),
        ));
        let dead_letters = tokio::spawn(runfleet_common::dead_letters::watch(
            self.state.config.amqp.clone(),
            self.state.pool.clone(),
            shutdown.clone(),
        ));
        let publisher = self.state.publisher.clone();
        // Open event streams end at shutdown, or the graceful stop would wait for them.
        let closing = self.state.closing.clone();
        let outer = shutdown.clone();
        tokio::spawn(async move {
            outer.cancelled().await;
            closing.cancel();
        });
        let app = router(self.state);
        if let Err(e) = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "API server stopped");
        }
        shutdown.cancel();
        let _ = sweeper.await;
        let _ = queue_stats.await;
        let _ = dead_letters.await;
        publisher.close().await;
    }
}

/// Binds and runs a producer until `shutdown`.
pub async fn run(config: ProducerConfig, shutdown: Shutdown) -> Result<(), StartError> {
    Producer::bind(config).await?.run(shutdown).await;
    Ok(())
}
