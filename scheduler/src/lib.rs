//! runfleet scheduler: fires cron schedules (see [`firing`]) into runs, through the same
//! insert and publish steps the API uses, and serves `/health`, `/ready` (Postgres
//! reachable) and `/metrics`. Run several for availability: they share the work and a
//! fire is never made twice.
//!
//! - [`config`] — `SchedulerConfig` (`RUNFLEET_SCHEDULER__MAX_IDLE_MS`, ...).
//! - [`firing`] — the loop that fires due schedules exactly once across schedulers.
//! - [`metrics`] — fires by outcome, fire lag, schedules by state, overdue schedules.
#![forbid(unsafe_code)]

pub mod config;
pub mod firing;
pub mod metrics;

pub use config::{FiringConfig, SchedulerConfig};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use runfleet_common::amqp::Publisher;
use runfleet_common::db;
use runfleet_common::ops_http;
use runfleet_common::shutdown::Shutdown;
use tokio::net::TcpListener;

/// Why the scheduler could not start: its listener could not be bound.
pub type StartError = ops_http::BindError;

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
        let listener = ops_http::bind(&config.http).await?;
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
