//! What every handler shares.

use std::sync::Arc;

use runfleet_common::amqp::Publisher;
use runfleet_common::db::DbPool;
use runfleet_common::runs::SubmitPolicy;

use crate::config::ProducerConfig;

/// Shared handler state (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    /// Postgres.
    pub pool: DbPool,
    /// RabbitMQ publisher with confirms.
    pub publisher: Publisher,
    /// The producer's config.
    pub config: Arc<ProducerConfig>,
    /// Limits and defaults for new runs.
    pub policy: Arc<SubmitPolicy>,
    /// SHA-256 of the bootstrap token, computed once at start.
    pub bootstrap_hash: Option<Arc<str>>,
    /// Keys for script secrets (None: none configured).
    pub keyring: Option<Arc<runfleet_common::secrets::Keyring>>,
    /// Cancelled when the producer stops: long-lived answers (event streams) end.
    pub closing: runfleet_common::shutdown::Shutdown,
    /// One permit per open run event stream (`producer.max_event_streams`).
    pub event_streams: Arc<tokio::sync::Semaphore>,
}
