//! The consumer's configuration (`RUNFLEET_CONSUMER__*` and the shared sections).

use std::path::PathBuf;

use runfleet_common::config::{
    AmqpConfig, ConfigError, DatabaseConfig, HttpConfig, LogConfig, Validate, string_list,
    validate_queues,
};
use runfleet_common::limits::RunLimits;
use runfleet_common::service::ServiceConfig;
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
    /// Requirements every Python run gets (`RUNFLEET_PYTHON__*`).
    #[serde(default)]
    pub python: PythonConfig,
    /// The venv cache (`RUNFLEET_VENV__*`).
    #[serde(default)]
    pub venv: VenvConfig,
    /// Package index settings (`RUNFLEET_PIP__*`).
    #[serde(default)]
    pub pip: PipConfig,
    /// Keys that decrypt script secrets (`RUNFLEET_SECRETS__KEYS`, same as the producer's).
    #[serde(default)]
    pub secrets: runfleet_common::config::SecretsConfig,
}

/// The base requirement set and whether missing venvs may be installed.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PythonConfig {
    /// A requirements.txt merged into every Python run's set.
    pub requirements_file: Option<PathBuf>,
    /// Packages merged into every Python run's set (comma- or space-separated).
    #[serde(deserialize_with = "string_list")]
    pub packages: Vec<String>,
    /// When false, a run whose set is not cached fails instead of installing it.
    pub auto_install: bool,
}

impl Default for PythonConfig {
    fn default() -> Self {
        PythonConfig {
            requirements_file: None,
            packages: Vec::new(),
            auto_install: true,
        }
    }
}

/// Which tool builds venvs.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InstallerChoice {
    /// uv when it is found, else `python -m venv` + pip.
    Auto,
    /// Always uv.
    Uv,
    /// Always `python -m venv` + pip.
    Pip,
}

/// Where venvs live and how long they are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct VenvConfig {
    /// One directory per requirement-set signature (the pod's own volume).
    pub cache_dir: PathBuf,
    /// The installer's download cache (default `<cache_dir>/.downloads`).
    pub download_cache_dir: Option<PathBuf>,
    /// Evict venvs not used for this many days.
    pub ttl_days: Option<u64>,
    /// Evict least recently used venvs while the cache is larger than this.
    pub max_bytes: Option<u64>,
    /// `auto`, `uv` or `pip`.
    pub installer: InstallerChoice,
    /// The uv executable.
    pub uv: String,
    /// Longest an install may take (seconds).
    pub install_timeout_seconds: u64,
    /// How often eviction runs (seconds).
    pub eviction_interval_seconds: u64,
}

impl Default for VenvConfig {
    fn default() -> Self {
        VenvConfig {
            cache_dir: PathBuf::from("/var/lib/runfleet/venvs"),
            download_cache_dir: None,
            ttl_days: None,
            max_bytes: None,
            installer: InstallerChoice::Auto,
            uv: "uv".into(),
            install_timeout_seconds: 900,
            eviction_interval_seconds: 300,
        }
    }
}

/// Package index settings. `PIP_*` variables already in the environment win over these;
/// these win over a mounted `pip.conf`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PipConfig {
    /// Main index, e.g. `https://pypi.example.com/simple`.
    pub index_url: Option<String>,
    /// Further indexes (comma- or space-separated).
    #[serde(deserialize_with = "string_list")]
    pub extra_index_url: Vec<String>,
    /// Hosts trusted without valid TLS (comma- or space-separated).
    #[serde(deserialize_with = "string_list")]
    pub trusted_host: Vec<String>,
    /// Network timeout (seconds).
    pub timeout: Option<u64>,
    /// Further installer arguments, space-separated.
    #[serde(deserialize_with = "string_list")]
    pub extra_args: Vec<String>,
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
    /// Messages a queue's channel may hold beyond `slots` (default 0). With 1, the next
    /// run is already here when a script ends, so it starts while the previous result is
    /// committed and acked: more runs/s for short scripts when the CPU is not the limit.
    /// The cost: while all slots are busy, that message waits here even if another
    /// consumer is idle, so keep 0 for queues of long runs.
    pub lookahead: usize,
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
    /// How often the heartbeat of running runs is refreshed (seconds). Keep it well below
    /// the producer's `reclaim_after_seconds`.
    pub heartbeat_seconds: u64,
    /// Resource limits of every run (`RUNFLEET_CONSUMER__LIMITS__*`).
    pub limits: LimitsConfig,
}

/// Per-run rlimits: defaults for runs whose task sets none, and ceilings no task can pass.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// Default CPU seconds (none: unlimited).
    pub cpu_seconds: Option<u64>,
    /// Default address space in bytes (none: unlimited).
    pub memory_bytes: Option<u64>,
    /// Default open files.
    pub open_files: Option<u64>,
    /// Default processes of the consumer's user (RLIMIT_NPROC counts all of that user's
    /// processes; not enforced for root).
    pub processes: Option<u64>,
    /// Ceiling of CPU seconds.
    pub max_cpu_seconds: Option<u64>,
    /// Ceiling of the address space (bytes).
    pub max_memory_bytes: Option<u64>,
    /// Ceiling of open files.
    pub max_open_files: Option<u64>,
    /// Ceiling of processes.
    pub max_processes: Option<u64>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            cpu_seconds: None,
            memory_bytes: None,
            open_files: Some(4096),
            processes: None,
            max_cpu_seconds: None,
            max_memory_bytes: None,
            max_open_files: Some(65_536),
            max_processes: None,
        }
    }
}

impl LimitsConfig {
    /// The defaults as run limits.
    pub fn defaults(&self) -> RunLimits {
        RunLimits {
            cpu_seconds: self.cpu_seconds,
            memory_bytes: self.memory_bytes,
            open_files: self.open_files,
            processes: self.processes,
        }
    }

    /// The ceilings as run limits.
    pub fn ceiling(&self) -> RunLimits {
        RunLimits {
            cpu_seconds: self.max_cpu_seconds,
            memory_bytes: self.max_memory_bytes,
            open_files: self.max_open_files,
            processes: self.max_processes,
        }
    }
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
            lookahead: 0,
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
            heartbeat_seconds: 5,
            limits: LimitsConfig::default(),
        }
    }
}

runfleet_common::service_config!(ConsumerConfig);

impl Validate for ConsumerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.validate_shared()?;
        let c = &self.consumer;
        if c.slots == 0 || c.slots > 1024 {
            return Err(ConfigError::invalid("consumer.slots", "give 1 to 1024"));
        }
        if c.lookahead > c.slots {
            return Err(ConfigError::invalid(
                "consumer.lookahead",
                format!("give 0 to consumer.slots ({})", c.slots),
            ));
        }
        validate_queues("consumer.queues", &c.queues)?;
        runfleet_common::secrets::Keyring::from_config(&self.secrets)?;
        if c.heartbeat_seconds == 0 {
            return Err(ConfigError::invalid(
                "consumer.heartbeat_seconds",
                "must be at least 1",
            ));
        }
        for (key, limits) in [
            ("consumer.limits", c.limits.defaults()),
            ("consumer.limits.max", c.limits.ceiling()),
        ] {
            limits
                .check(key)
                .map_err(|e| ConfigError::invalid(key, e.to_string()))?;
        }
        if c.worker_id.is_empty() {
            return Err(ConfigError::invalid(
                "consumer.worker_id",
                "must not be empty",
            ));
        }
        if self.venv.install_timeout_seconds == 0 {
            return Err(ConfigError::invalid(
                "venv.install_timeout_seconds",
                "must be at least 1",
            ));
        }
        if self.venv.eviction_interval_seconds == 0 {
            return Err(ConfigError::invalid(
                "venv.eviction_interval_seconds",
                "must be at least 1",
            ));
        }
        for (key, url) in self
            .pip
            .index_url
            .iter()
            .map(|u| ("pip.index_url", u))
            .chain(
                self.pip
                    .extra_index_url
                    .iter()
                    .map(|u| ("pip.extra_index_url", u)),
            )
        {
            if !(url.starts_with("http://")
                || url.starts_with("https://")
                || url.starts_with("file://"))
            {
                return Err(ConfigError::invalid(
                    key,
                    "must be an http(s):// or file:// URL",
                ));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn from_env(vars: &[(&str, &str)]) -> Result<ConsumerConfig, ConfigError> {
        let env = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        runfleet_common::config::load_from(None, Some(env))
    }

    #[test]
    fn lookahead_beyond_the_slots_is_refused_naming_the_setting() {
        let slots = ("RUNFLEET_CONSUMER__SLOTS", "2");
        let config = from_env(&[slots, ("RUNFLEET_CONSUMER__LOOKAHEAD", "2")]).unwrap();
        assert_eq!(config.consumer.lookahead, 2);
        assert_eq!(from_env(&[slots]).unwrap().consumer.lookahead, 0);
        let message = from_env(&[slots, ("RUNFLEET_CONSUMER__LOOKAHEAD", "3")])
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("RUNFLEET_CONSUMER__LOOKAHEAD")
                && message.contains("give 0 to consumer.slots (2)"),
            "{message}"
        );
    }
}
