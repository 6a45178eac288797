//! runfleet scheduler. For now it only serves `/health`, `/ready` (Postgres reachable) and
//! `/metrics`; cron firing lands with the scheduler issue and will create runs through
//! `runfleet_common::runs::submit`, the same path the API uses.

use std::net::SocketAddr;
use std::sync::Arc;

use runfleet_common::config::{
    AmqpConfig, ConfigError, DatabaseConfig, HttpConfig, LogConfig, Validate,
};
use runfleet_common::db;
use runfleet_common::ops_http;
use runfleet_common::shutdown::Shutdown;
use serde::Deserialize;
use tokio::net::TcpListener;

/// Everything the scheduler reads at start.
#[derive(Debug, Clone, Deserialize)]
pub struct SchedulerConfig {
    /// Postgres.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// RabbitMQ.
    #[serde(default)]
    pub amqp: AmqpConfig,
    /// `/health`, `/ready`, `/metrics` listener (default `0.0.0.0:9092`).
    #[serde(default = "default_http")]
    pub http: HttpConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
}

fn default_http() -> HttpConfig {
    HttpConfig::on("0.0.0.0:9092")
}

impl Validate for SchedulerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.database.validate()?;
        self.amqp.validate()?;
        self.http.validate()
    }
}

/// Why the scheduler could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} (http.listen / RUNFLEET_HTTP__LISTEN): {source}")]
pub struct StartError {
    addr: String,
    source: std::io::Error,
}

/// A scheduler whose listener is bound.
pub struct Scheduler {
    listener: TcpListener,
    pool: db::DbPool,
}

impl Scheduler {
    /// Binds the health/metrics listener.
    pub async fn bind(config: SchedulerConfig) -> Result<Self, StartError> {
        let listener = TcpListener::bind(config.http.addr())
            .await
            .map_err(|source| StartError {
                addr: config.http.listen.clone(),
                source,
            })?;
        Ok(Scheduler {
            listener,
            pool: db::pool(&config.database),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) {
        let pool = self.pool.clone();
        let ready: ops_http::ReadyCheck = Arc::new(move || {
            let pool = pool.clone();
            Box::pin(async move {
                if db::ping(&pool).await {
                    Ok(())
                } else {
                    Err("Postgres is unreachable".to_string())
                }
            })
        });
        tracing::info!("scheduler started (no schedules yet: cron firing is not implemented)");
        let _ = axum::serve(self.listener, ops_http::router(ready))
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
    }
}

/// Binds and runs the scheduler until `shutdown`.
pub async fn run(config: SchedulerConfig, shutdown: Shutdown) -> Result<(), StartError> {
    Scheduler::bind(config).await?.run(shutdown).await;
    Ok(())
}
