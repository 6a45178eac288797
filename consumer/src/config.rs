//! The consumer's configuration (`RUNFLEET_CONSUMER__*` and the shared sections).

use std::path::PathBuf;

use runfleet_common::config::{
    AmqpConfig, ConfigError, DatabaseConfig, HttpConfig, LogConfig, Validate, string_list,
    validate_queues,
};
use serde::Deserialize;

/// Everything the consumer reads at start.
#[derive(Debug, Clone, Deserialize)]
pub struct ConsumerConfig {
    /// Postgres.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// RabbitMQ.
    #[serde(default)]
    pub amqp: AmqpConfig,
    /// `/health`, `/ready`, `/metrics` listener (default `0.0.0.0:9091`).
    #[serde(default = "default_http")]
    pub http: HttpConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Worker settings.
    #[serde(default)]
    pub consumer: WorkerConfig,
}

fn default_http() -> HttpConfig {
    HttpConfig::on("0.0.0.0:9091")
}

/// How runs are taken and executed.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WorkerConfig {
    /// Runs executed at once (default: CPU count).
    pub slots: usize,
    /// Worker queues to consume, comma-separated in the environment.
    #[serde(deserialize_with = "string_list")]
    pub queues: Vec<String>,
    /// This worker's name in runs (default: `HOSTNAME`, the pod name).
    pub worker_id: String,
    /// Where run working directories and the script file cache live.
    pub work_dir: PathBuf,
    /// Keep each run's working directory after it ends (for debugging).
    pub keep_work_dirs: bool,
    /// Interpreter for `python` scripts.
    pub python: String,
    /// Interpreter for `shell` scripts.
    pub shell: String,
    /// Cap on captured stdout and on stderr, each (bytes; the tail is kept).
    pub output_limit_bytes: usize,
    /// Largest result file accepted (bytes).
    pub result_limit_bytes: u64,
    /// Seconds between SIGTERM and SIGKILL when a run times out.
    pub kill_grace_seconds: u64,
    /// Seconds to let running scripts finish after SIGTERM before killing them.
    pub drain_seconds: u64,
}

fn hostname() -> String {
    if let Ok(h) = std::env::var("HOSTNAME")
        && !h.is_empty()
    {
        return h;
    }
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "consumer".into())
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            slots: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queues: vec!["default".into()],
            worker_id: hostname(),
            work_dir: std::env::temp_dir().join("runfleet-work"),
            keep_work_dirs: false,
            python: "python3".into(),
            shell: "bash".into(),
            output_limit_bytes: 1024 * 1024,
            result_limit_bytes: 1024 * 1024,
            kill_grace_seconds: 5,
            drain_seconds: 30,
        }
    }
}

impl Validate for ConsumerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.database.validate()?;
        self.amqp.validate()?;
        self.http.validate()?;
        let c = &self.consumer;
        if c.slots == 0 || c.slots > 1024 {
            return Err(ConfigError::invalid("consumer.slots", "give 1 to 1024"));
        }
        validate_queues("consumer.queues", &c.queues)?;
        if c.worker_id.is_empty() {
            return Err(ConfigError::invalid(
                "consumer.worker_id",
                "must not be empty",
            ));
        }
        if c.output_limit_bytes < 1024 {
            return Err(ConfigError::invalid(
                "consumer.output_limit_bytes",
                "must be at least 1024",
            ));
        }
        Ok(())
    }
}
