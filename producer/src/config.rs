//! The producer's configuration (`RUNFLEET_PRODUCER__*` and the shared sections).

use runfleet_common::config::{
    AmqpConfig, ConfigError, DatabaseConfig, HttpConfig, LogConfig, SecretsConfig, Validate,
    string_list, validate_queues,
};
use runfleet_common::runs::SubmitPolicy;
use runfleet_common::service::ServiceConfig;
use serde::Deserialize;

/// Everything the producer reads at start.
#[derive(Debug, Clone, Deserialize)]
pub struct ProducerConfig {
    /// Postgres.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// RabbitMQ.
    #[serde(default)]
    pub amqp: AmqpConfig,
    /// API listener (default `0.0.0.0:8080`).
    #[serde(default = "default_http")]
    pub http: HttpConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// API limits and the outbox.
    #[serde(default)]
    pub producer: ApiConfig,
    /// Who may call the API.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Keys that encrypt script secrets.
    #[serde(default)]
    pub secrets: SecretsConfig,
}

/// API authentication (`RUNFLEET_AUTH__*`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// No tokens needed, every caller is an admin: for local development only (a warning is
    /// logged at start).
    pub disabled: bool,
    /// An admin token accepted besides the tokens in Postgres, to create the first ones
    /// (`RUNFLEET_AUTH__BOOTSTRAP_TOKEN`, from a secret; at least 32 characters).
    pub bootstrap_token: Option<Secret>,
}

pub use runfleet_common::config::Secret;

fn default_http() -> HttpConfig {
    HttpConfig::on("0.0.0.0:8080")
}

/// API limits, defaults and the outbox sweeper.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ApiConfig {
    /// Worker queues runs may go to; the first is the default. Declared on the broker.
    #[serde(deserialize_with = "string_list")]
    pub queues: Vec<String>,
    /// Timeout of a run that gives none (seconds).
    pub default_timeout_seconds: i32,
    /// Largest timeout a run may ask for (seconds).
    pub max_timeout_seconds: i32,
    /// Largest request body (bytes).
    pub max_body_bytes: usize,
    /// Largest script content (bytes).
    pub max_script_bytes: usize,
    /// Largest parameter object, as JSON (bytes).
    pub max_parameters_bytes: usize,
    /// How often the outbox sweeper looks for unpublished runs (milliseconds).
    pub outbox_interval_ms: u64,
    /// A run's message is re-published by the sweeper once it is this old and unconfirmed
    /// (seconds); the submitting request normally publishes it long before.
    pub outbox_min_age_seconds: u64,
    /// A running run whose consumer has not refreshed its heartbeat for this long (it was
    /// killed or lost its node) is queued again as its next attempt (seconds). Keep it
    /// several times the consumers' `heartbeat_seconds`.
    pub reclaim_after_seconds: u64,
    /// After its consumer died this many times while running it, a run is `dead` instead of
    /// queued again (protects the fleet from a poison run).
    pub max_reclaims: i32,
    /// How often queue depths are read from RabbitMQ and Postgres for the
    /// `runfleet_queue_*` gauges (milliseconds).
    pub queue_stats_interval_ms: u64,
    /// Run event streams (`GET /runs/{id}/events`) open at once; each reads Postgres
    /// every 250 ms, so this bounds what watchers can take from the API's pool. One more
    /// is a 503.
    pub max_event_streams: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            queues: vec!["default".into()],
            default_timeout_seconds: 3600,
            max_timeout_seconds: 86_400,
            max_body_bytes: 2 * 1024 * 1024,
            max_script_bytes: 1024 * 1024,
            max_parameters_bytes: 64 * 1024,
            outbox_interval_ms: 1000,
            outbox_min_age_seconds: 5,
            reclaim_after_seconds: 30,
            max_reclaims: 3,
            queue_stats_interval_ms: 5000,
            max_event_streams: 200,
        }
    }
}

impl ApiConfig {
    /// The submission policy these settings describe.
    pub fn submit_policy(&self) -> SubmitPolicy {
        SubmitPolicy {
            queues: self.queues.clone(),
            default_queue: self.queues[0].clone(),
            default_timeout_seconds: self.default_timeout_seconds,
            max_timeout_seconds: self.max_timeout_seconds,
            max_parameters_bytes: self.max_parameters_bytes,
            default_retry: runfleet_common::runs::RetryPolicy::default(),
        }
    }
}

runfleet_common::service_config!(ProducerConfig);

impl Validate for ProducerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.validate_shared()?;
        let p = &self.producer;
        validate_queues("producer.queues", &p.queues)?;
        if p.max_timeout_seconds < 1 {
            return Err(ConfigError::invalid(
                "producer.max_timeout_seconds",
                "must be at least 1",
            ));
        }
        if !(1..=p.max_timeout_seconds).contains(&p.default_timeout_seconds) {
            return Err(ConfigError::invalid(
                "producer.default_timeout_seconds",
                "must be between 1 and producer.max_timeout_seconds",
            ));
        }
        if p.max_body_bytes < 1024 {
            return Err(ConfigError::invalid(
                "producer.max_body_bytes",
                "must be at least 1024",
            ));
        }
        if p.reclaim_after_seconds < 2 {
            return Err(ConfigError::invalid(
                "producer.reclaim_after_seconds",
                "must be at least 2 (and several times the consumers' heartbeat_seconds)",
            ));
        }
        if p.max_reclaims < 0 {
            return Err(ConfigError::invalid(
                "producer.max_reclaims",
                "must be 0 or more",
            ));
        }
        runfleet_common::secrets::Keyring::from_config(&self.secrets)?;
        if let Some(token) = &self.auth.bootstrap_token
            && token.expose().trim().len() < 32
        {
            return Err(ConfigError::invalid(
                "auth.bootstrap_token",
                "must be at least 32 characters (e.g. `openssl rand -hex 32`)",
            ));
        }
        if p.queue_stats_interval_ms < 100 {
            return Err(ConfigError::invalid(
                "producer.queue_stats_interval_ms",
                "must be at least 100",
            ));
        }
        if p.max_event_streams == 0 {
            return Err(ConfigError::invalid(
                "producer.max_event_streams",
                "must be at least 1",
            ));
        }
        if p.outbox_interval_ms == 0 {
            return Err(ConfigError::invalid(
                "producer.outbox_interval_ms",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
