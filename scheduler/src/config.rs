//! The scheduler's config: the shared sections and `scheduler.*` (`RUNFLEET_SCHEDULER__*`).

use runfleet_common::config::{
    AmqpConfig, ConfigError, DatabaseConfig, HttpConfig, LogConfig, Validate,
};
use runfleet_common::service::ServiceConfig;
use serde::Deserialize;

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

runfleet_common::service_config!(SchedulerConfig);

impl Validate for SchedulerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.validate_shared()?;
        if !(10..=60_000).contains(&self.scheduler.max_idle_ms) {
            return Err(ConfigError::invalid(
                "scheduler.max_idle_ms",
                "must be between 10 and 60000",
            ));
        }
        Ok(())
    }
}
