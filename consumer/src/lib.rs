//! runfleet consumer: takes run messages from RabbitMQ and runs each script as a child
//! process, recording the outcome in Postgres before acknowledging the message.
//!
//! - [`config`] — `ConsumerConfig` (`RUNFLEET_CONSUMER__SLOTS`, `__QUEUES`, ...).
//! - [`worker`] — the consume loop, slots, claim → execute → commit → ack.
//! - [`executor`] — working directory, environment, script file, result file.
//! - [`child`] — process group, timeout, SIGTERM/SIGKILL, no orphans; [`spawn`] — the
//!   vfork-style start with the run's rlimits, and the pidfd it is waited on by.
//! - [`metrics`] — runs finished, run and queue-wait times, slots.
//! - [`output`] — capped stdout/stderr capture; [`live`] — output held for live flushes.
//! - [`argv`] — parameters → `--key value` arguments.
//! - [`venv`] — the hash-isolated venv cache on the consumer's volume.

pub mod argv;
pub mod child;
pub mod config;
pub mod environment;
pub mod executor;
pub mod live;
pub mod metrics;
pub mod outcome;
pub mod output;
pub mod spawn;
pub mod venv;
pub mod worker;

use std::net::SocketAddr;
use std::sync::Arc;

pub use config::ConsumerConfig;
use runfleet_common::ops_http;
use runfleet_common::retry;
use runfleet_common::shutdown::Shutdown;
use runfleet_common::{db, fleet};
use tokio::net::TcpListener;

/// Why the consumer could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The HTTP listener could not bind.
    #[error(transparent)]
    Bind(#[from] ops_http::BindError),
    /// The venv cache could not be opened.
    #[error(transparent)]
    Venv(#[from] venv::OpenError),
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
    venvs: Arc<venv::VenvCache>,
    eviction_interval: std::time::Duration,
    announcement: fleet::ConsumerInfo,
    announce_every: std::time::Duration,
}

impl Consumer {
    /// Binds the health/metrics listener and prepares the working directory.
    pub async fn bind(config: ConsumerConfig) -> Result<Self, StartError> {
        metrics::init(&config.consumer.queues);
        let listener = ops_http::bind(&config.http).await?;
        let venvs = Arc::new(venv::VenvCache::open(&config).await?);
        let eviction_interval =
            std::time::Duration::from_secs(config.venv.eviction_interval_seconds);
        let executor =
            executor::Executor::new(config.consumer.clone(), venvs.clone()).map_err(|source| {
                StartError::WorkDir {
                    path: config.consumer.work_dir.display().to_string(),
                    source,
                }
            })?;
        let pool = db::pool(&config.database);
        let announcement = fleet::ConsumerInfo {
            worker_id: config.consumer.worker_id.clone(),
            queues: config.consumer.queues.clone(),
            slots: config.consumer.slots as i32,
            busy: 0,
            venv_entries: 0,
            venv_bytes: 0,
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: chrono::Utc::now(),
            every_seconds: config.consumer.heartbeat_seconds as i32,
        };
        let announce_every = std::time::Duration::from_secs(config.consumer.heartbeat_seconds);
        let worker = Arc::new(worker::Worker::new(config, pool.clone(), executor));
        Ok(Consumer {
            listener,
            worker,
            pool,
            venvs,
            eviction_interval,
            announcement,
            announce_every,
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
        let venvs = self.venvs.clone();
        let app = ops_http::router(ready).route(
            "/venvs",
            axum::routing::get(move || {
                let venvs = venvs.clone();
                async move { axum::Json(venvs.list()) }
            }),
        );
        let evictor = tokio::spawn(evict_forever(
            self.venvs.clone(),
            self.eviction_interval,
            shutdown.clone(),
        ));
        let announcer = tokio::spawn(announce_forever(
            self.worker.clone(),
            self.pool.clone(),
            self.announcement.clone(),
            self.announce_every,
            shutdown.clone(),
        ));
        let server_shutdown = shutdown.clone();
        let server = tokio::spawn(async move {
            let _ = axum::serve(self.listener, app)
                .with_graceful_shutdown(server_shutdown.cancelled_owned())
                .await;
        });
        self.worker.run(shutdown).await;
        let _ = server.await;
        let _ = evictor.await;
        let _ = announcer.await;
        // Drained: leave the fleet's registry (a consumer killed instead goes stale).
        if let Ok(client) = self.pool.get().await
            && let Err(e) = fleet::withdraw(&client, &self.announcement.worker_id).await
        {
            tracing::debug!(error = %e, "cannot withdraw from the consumer registry");
        }
    }
}

/// Every `every` until `shutdown`: tells the registry this consumer's slots, busy slots
/// and venv cache, for the API's fleet view. Postgres being down only delays it.
async fn announce_forever(
    worker: Arc<worker::Worker>,
    pool: db::DbPool,
    info: fleet::ConsumerInfo,
    every: std::time::Duration,
    shutdown: Shutdown,
) {
    use venv::metrics::{VENV_BYTES, VENV_ENTRIES};
    retry::every(every, &shutdown, || {
        let now = fleet::ConsumerInfo {
            busy: worker.busy_slots() as i32,
            venv_entries: VENV_ENTRIES.get() as i32,
            venv_bytes: VENV_BYTES.get(),
            ..info.clone()
        };
        let pool = &pool;
        async move {
            let announced = async {
                let client = pool.get().await.map_err(db::DbError::from)?;
                fleet::announce(&client, &now).await
            };
            if let Err(e) = announced.await {
                tracing::debug!(error = %e, "cannot announce this consumer; will retry");
            }
        }
    })
    .await;
}

/// Applies the venv cache's age and size limits every `interval`.
async fn evict_forever(
    venvs: Arc<venv::VenvCache>,
    interval: std::time::Duration,
    shutdown: Shutdown,
) {
    retry::every(interval, &shutdown, || async {
        let removed = venvs.evict().await;
        if removed > 0 {
            tracing::info!(removed, "venv eviction");
        }
    })
    .await;
}

/// Binds and runs a consumer until `shutdown`.
pub async fn run(config: ConsumerConfig, shutdown: Shutdown) -> Result<(), StartError> {
    Consumer::bind(config).await?.run(shutdown).await;
    Ok(())
}
