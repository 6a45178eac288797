//! runfleet scheduler: fires cron schedules (see [`firing`]) into runs, through the same
//! insert and publish steps the API uses, and serves `/health`, `/ready` (Postgres
//! reachable) and `/metrics`. Run several for availability: they share the work and a
//! fire is never made twice.
//!
//! - [`firing`] — the loop that fires due schedules exactly once across schedulers.
//! - [`metrics`] — fires by outcome, fire lag, schedules by state, overdue schedules.
#![forbid(unsafe_code)]

pub mod firing;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use runfleet_common::amqp::Publisher;
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
    /// Firing.
    #[serde(default)]
    pub scheduler: FiringConfig,
}

/// Firing settings (`RUNFLEET_SCHEDULER__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct FiringConfig {
    /// Longest sleep between looks at the schedules when nothing is due and no change was
    /// announced (milliseconds); a safety net for missed notifications.
    pub max_idle_ms: u64,
}

impl Default for FiringConfig {
    fn default() -> Self {
        FiringConfig { max_idle_ms: 5000 }
    }
}

fn default_http() -> HttpConfig {
    HttpConfig::on("0.0.0.0:9092")
}

impl Validate for SchedulerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.database.validate()?;
        self.amqp.validate()?;
        self.http.validate()?;
        if !(10..=60_000).contains(&self.scheduler.max_idle_ms) {
            return Err(ConfigError::invalid(
                "scheduler.max_idle_ms",
                "must be between 10 and 60000",
            ));
        }
        Ok(())
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
    config: SchedulerConfig,
}

impl Scheduler {
    /// Binds the health/metrics listener.
    pub async fn bind(config: SchedulerConfig) -> Result<Self, StartError> {
        metrics::init();
        let listener = TcpListener::bind(config.http.addr())
            .await
            .map_err(|source| StartError {
                addr: config.http.listen.clone(),
                source,
            })?;
        Ok(Scheduler {
            listener,
            pool: db::pool(&config.database),
            config,
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
        let publisher = Publisher::new(self.config.amqp.clone(), Vec::new(), "runfleet-scheduler");
        let firing = tokio::spawn(firing::fire_forever(
            self.pool.clone(),
            publisher.clone(),
            self.config.database.url.clone(),
            Duration::from_millis(self.config.scheduler.max_idle_ms),
            shutdown.clone(),
        ));
        tracing::info!("scheduler started");
        let _ = axum::serve(self.listener, ops_http::router(ready))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await;
        shutdown.cancel();
        let _ = firing.await;
        publisher.close().await;
    }
}

/// Binds and runs the scheduler until `shutdown`.
pub async fn run(config: SchedulerConfig, shutdown: Shutdown) -> Result<(), StartError> {
    Scheduler::bind(config).await?.run(shutdown).await;
    Ok(())
}
