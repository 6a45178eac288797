//! runfleet consumer: takes run messages from RabbitMQ and runs each script as a child
//! process, recording the outcome in Postgres before acknowledging the message.
//!
//! - [`config`] — `ConsumerConfig` (`RUNFLEET_CONSUMER__SLOTS`, `__QUEUES`, ...).
//! - [`worker`] — the consume loop, slots, claim → execute → commit → ack.
//! - [`executor`] — working directory, environment, script file, result file.
//! - [`child`] — process group, timeout, SIGTERM/SIGKILL, no orphans.
//! - [`output`] — capped stdout/stderr capture.
//! - [`argv`] — parameters → `--key value` arguments.

pub mod argv;
pub mod child;
pub mod config;
pub mod executor;
pub mod output;
pub mod worker;

use std::net::SocketAddr;
use std::sync::Arc;

pub use config::ConsumerConfig;
use runfleet_common::db;
use runfleet_common::ops_http;
use runfleet_common::shutdown::Shutdown;
use tokio::net::TcpListener;

/// Why the consumer could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The HTTP listener could not bind.
    #[error("cannot listen on {addr} (http.listen / RUNFLEET_HTTP__LISTEN): {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The working directory could not be created.
    #[error("cannot create consumer.work_dir {path}: {source}")]
    WorkDir {
        /// The directory.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A consumer whose HTTP listener is bound, ready to [`Consumer::run`].
pub struct Consumer {
    listener: TcpListener,
    worker: Arc<worker::Worker>,
    pool: db::DbPool,
}

impl Consumer {
    /// Binds the health/metrics listener and prepares the working directory.
    pub async fn bind(config: ConsumerConfig) -> Result<Self, StartError> {
        let listener = TcpListener::bind(config.http.addr())
            .await
            .map_err(|source| StartError::Bind {
                addr: config.http.listen.clone(),
                source,
            })?;
        let executor = executor::Executor::new(config.consumer.clone()).map_err(|source| {
            StartError::WorkDir {
                path: config.consumer.work_dir.display().to_string(),
                source,
            }
        })?;
        let pool = db::pool(&config.database);
        let worker = Arc::new(worker::Worker::new(config, pool.clone(), executor));
        Ok(Consumer {
            listener,
            worker,
            pool,
        })
    }

    /// The bound HTTP address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves `/health`, `/ready`, `/metrics` and consumes until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) {
        let worker = self.worker.clone();
        let pool = self.pool.clone();
        let ready: ops_http::ReadyCheck = Arc::new(move || {
            let worker = worker.clone();
            let pool = pool.clone();
            Box::pin(async move {
                if !db::ping(&pool).await {
                    return Err("Postgres is unreachable".to_string());
                }
                if !worker.broker_up() {
                    return Err("RabbitMQ is unreachable".to_string());
                }
                Ok(())
            })
        });
        let server_shutdown = shutdown.clone();
        let server = tokio::spawn(async move {
            let _ = axum::serve(self.listener, ops_http::router(ready))
                .with_graceful_shutdown(server_shutdown.cancelled_owned())
                .await;
        });
        self.worker.run(shutdown).await;
        let _ = server.await;
    }
}

/// Binds and runs a consumer until `shutdown`.
pub async fn run(config: ConsumerConfig, shutdown: Shutdown) -> Result<(), StartError> {
    Consumer::bind(config).await?.run(shutdown).await;
    Ok(())
}
