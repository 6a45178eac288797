//! Typed configuration shared by every component.
//!
//! Each binary has one struct (`ProducerConfig`, `ConsumerConfig`, `SchedulerConfig`) built
//! from the sections here, layered as: defaults (serde `default`s) < an optional file given
//! with `--config FILE` < environment variables `RUNFLEET_<SECTION>__<KEY>`.
//! Every value is checked at start-up by [`Validate`], so a wrong setting stops the
//! process with one line naming the setting and its environment variable.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// A setting that could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file or an environment variable could not be parsed into the typed struct.
    #[error("invalid configuration: {message}")]
    Load {
        /// The parser's message, with the environment variable of the key added.
        message: String,
    },
    /// A value parsed but is not acceptable.
    #[error("invalid setting {key} ({env}): {message}")]
    Invalid {
        /// Dotted key, e.g. `consumer.slots`.
        key: String,
        /// The environment variable that sets it, e.g. `RUNFLEET_CONSUMER__SLOTS`.
        env: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

impl ConfigError {
    /// An invalid-value error for the dotted `key`.
    pub fn invalid(key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_string(),
            env: env_name(key),
            message: message.into(),
        }
    }
}

impl From<config::ConfigError> for ConfigError {
    fn from(e: config::ConfigError) -> Self {
        let mut message = e.to_string();
        // The parser names the dotted key (`for key `consumer.slots``); users set env vars.
        if let Some(key) = message
            .split("key `")
            .nth(1)
            .and_then(|rest| rest.split('`').next())
        {
            message.push_str(&format!(" (set {})", env_name(key)));
        }
        ConfigError::Load { message }
    }
}

/// The environment variable for a dotted key: `http.listen` → `RUNFLEET_HTTP__LISTEN`.
pub fn env_name(key: &str) -> String {
    format!("RUNFLEET_{}", key.replace('.', "__").to_uppercase())
}

/// Implemented by every component config: checks values the types cannot express.
pub trait Validate {
    /// Returns the first invalid setting.
    fn validate(&self) -> Result<(), ConfigError>;
}

/// Loads a component config: serde defaults < `file` < `RUNFLEET_*` environment.
pub fn load<T: DeserializeOwned + Validate>(file: Option<&Path>) -> Result<T, ConfigError> {
    load_from(file, None)
}

/// Like [`load`], with the environment given as a map (for tests) instead of the process's.
pub fn load_from<T: DeserializeOwned + Validate>(
    file: Option<&Path>,
    env: Option<std::collections::HashMap<String, String>>,
) -> Result<T, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::invalid(
                "config",
                format!("config file {} does not exist", path.display()),
            ));
        }
        builder = builder.add_source(config::File::from(path));
    }
    builder = builder.add_source(
        config::Environment::with_prefix("RUNFLEET")
            .prefix_separator("_")
            .separator("__")
            .source(env),
    );
    let parsed: T = builder.build()?.try_deserialize()?;
    parsed.validate()?;
    Ok(parsed)
}

/// Postgres connection settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// `postgres://user:pass@host:port/db` (`RUNFLEET_DATABASE__URL`).
    pub url: String,
    /// Maximum pooled connections.
    pub pool_size: usize,
    /// How long a request waits for a connection before failing (seconds).
    pub connect_timeout_seconds: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "postgres://postgres@127.0.0.1:5432/runfleet".into(),
            pool_size: 16,
            connect_timeout_seconds: 5,
        }
    }
}

impl Validate for DatabaseConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.url.parse::<tokio_postgres::Config>().map_err(|e| {
            ConfigError::invalid("database.url", format!("not a Postgres URL: {e}"))
        })?;
        if self.pool_size == 0 {
            return Err(ConfigError::invalid(
                "database.pool_size",
                "must be at least 1",
            ));
        }
        if self.connect_timeout_seconds == 0 {
            return Err(ConfigError::invalid(
                "database.connect_timeout_seconds",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// RabbitMQ settings. The vhost in the URL isolates one fleet from another.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AmqpConfig {
    /// `amqp://user:pass@host:port/vhost` (`RUNFLEET_AMQP__URL`).
    pub url: String,
    /// Prefix of every queue and exchange name, so fleets can also share a vhost.
    pub prefix: String,
    /// Quorum-queue `x-delivery-limit`: deliveries of one message before it is dead-lettered.
    pub delivery_limit: u32,
    /// Seconds to wait for a connection or a publisher confirm before giving up.
    pub timeout_seconds: u64,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        AmqpConfig {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            prefix: "runfleet".into(),
            delivery_limit: 5,
            timeout_seconds: 5,
        }
    }
}

impl AmqpConfig {
    /// Time limit for one connect or one confirm.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds)
    }
}

impl Validate for AmqpConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(self.url.starts_with("amqp://") || self.url.starts_with("amqps://")) {
            return Err(ConfigError::invalid(
                "amqp.url",
                "must start with amqp:// or amqps://",
            ));
        }
        if let Err(why) = self.url.parse::<lapin::uri::AMQPUri>() {
            return Err(ConfigError::invalid(
                "amqp.url",
                format!("is not a valid AMQP URL ({why})"),
            ));
        }
        if !crate::names::is_valid_queue_name(&self.prefix) {
            return Err(ConfigError::invalid(
                "amqp.prefix",
                "use 1-64 characters from A-Z a-z 0-9 _ . -",
            ));
        }
        if self.delivery_limit == 0 {
            return Err(ConfigError::invalid(
                "amqp.delivery_limit",
                "must be at least 1",
            ));
        }
        if self.timeout_seconds == 0 {
            return Err(ConfigError::invalid(
                "amqp.timeout_seconds",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// The HTTP listener of a component (API, or health and metrics).
#[derive(Debug, Clone, Deserialize)]
pub struct HttpConfig {
    /// `host:port` to listen on (`RUNFLEET_HTTP__LISTEN`).
    pub listen: String,
}

impl HttpConfig {
    /// A listener on `listen`.
    pub fn on(listen: &str) -> Self {
        HttpConfig {
            listen: listen.to_string(),
        }
    }

    /// The parsed listen address (checked by `validate`).
    pub fn addr(&self) -> SocketAddr {
        self.listen.parse().expect("http.listen was validated")
    }
}

impl Validate for HttpConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.listen.parse::<SocketAddr>().map(|_| ()).map_err(|_| {
            ConfigError::invalid(
                "http.listen",
                format!("'{}' is not host:port, e.g. 0.0.0.0:8080", self.listen),
            )
        })
    }
}

/// A setting that is never printed: `Debug` shows `[redacted]`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Keys that encrypt script secrets at rest (`RUNFLEET_SECRETS__KEYS`): `id:64-hex-digit
/// key` items, comma-separated; the first encrypts, all decrypt (rotation: put a new key
/// first, run `runfleet-producer reencrypt-secrets`, then drop the old one).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SecretsConfig {
    /// The keys, current first.
    #[serde(deserialize_with = "secret_list")]
    pub keys: Vec<Secret>,
}

fn secret_list<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<Secret>, D::Error> {
    Ok(string_list(de)?.into_iter().map(Secret).collect())
}

/// Log output settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `json` (one object a line, for containers) or `pretty` (for a terminal).
    pub format: LogFormat,
    /// `tracing` filter, e.g. `info,runfleet_consumer=debug`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Json,
            level: "info,tokio_postgres=warn".into(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON lines.
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Deserializes a list given either as a sequence (config file) or as one string with
/// comma- or space-separated items (environment variable).
pub fn string_list<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items = match OneOrMany::deserialize(de)? {
        OneOrMany::One(s) => s
            .split(|c: char| c == ',' || c.is_whitespace())
            .map(str::to_string)
            .collect(),
        OneOrMany::Many(v) => v,
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

/// Checks a list of worker queue names for the setting `key`.
pub fn validate_queues(key: &str, queues: &[String]) -> Result<(), ConfigError> {
    if queues.is_empty() {
        return Err(ConfigError::invalid(
            key,
            "name at least one queue, e.g. default",
        ));
    }
    for q in queues {
        if !crate::names::is_valid_queue_name(q) {
            return Err(ConfigError::invalid(
                key,
                format!("'{q}' is not a queue name: use 1-64 characters from A-Z a-z 0-9 _ . -"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Debug, Deserialize)]
    struct Sample {
        #[serde(default = "sample_http")]
        http: HttpConfig,
        #[serde(default)]
        amqp: AmqpConfig,
        #[serde(default, deserialize_with = "string_list")]
        queues: Vec<String>,
    }
    fn sample_http() -> HttpConfig {
        HttpConfig::on("127.0.0.1:1")
    }
    impl Validate for Sample {
        fn validate(&self) -> Result<(), ConfigError> {
            self.http.validate()?;
            self.amqp.validate()
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn environment_overrides_defaults_with_double_underscore_levels() {
        let s: Sample = load_from(
            None,
            env(&[
                ("RUNFLEET_HTTP__LISTEN", "127.0.0.1:9999"),
                ("RUNFLEET_AMQP__PREFIX", "fleet-a"),
                ("RUNFLEET_QUEUES", "default, gpu ,etl"),
            ]),
        )
        .unwrap();
        assert_eq!(s.http.listen, "127.0.0.1:9999");
        assert_eq!(s.amqp.prefix, "fleet-a");
        assert_eq!(s.amqp.delivery_limit, 5, "untouched keys keep defaults");
        assert_eq!(s.queues, vec!["default", "gpu", "etl"]);
    }

    #[test]
    fn bad_listen_address_names_the_setting() {
        let err = load_from::<Sample>(None, env(&[("RUNFLEET_HTTP__LISTEN", "nope")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("http.listen"), "{err}");
        assert!(err.contains("RUNFLEET_HTTP__LISTEN"), "{err}");
    }

    #[test]
    fn a_broken_amqp_url_names_the_setting_and_not_its_password() {
        let err = load_from::<Sample>(
            None,
            env(&[(
                "RUNFLEET_AMQP__URL",
                "amqp://fleet:hunter2@rabbit:notaport/%2f",
            )]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("RUNFLEET_AMQP__URL"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = load_from::<Sample>(None, env(&[("RUNFLEET_AMQP__DELIVERY_LIMIT", "lots")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("amqp.delivery_limit"), "{err}");
    }

    #[test]
    fn file_layer_sits_between_defaults_and_environment() {
        let dir = std::env::temp_dir().join(format!("runfleet-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "queues = [\"a\", \"b\"]\n[amqp]\nprefix = \"from-file\"\ndelivery_limit = 9\n",
        )
        .unwrap();
        let s: Sample =
            load_from(Some(&file), env(&[("RUNFLEET_AMQP__DELIVERY_LIMIT", "3")])).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(s.amqp.prefix, "from-file");
        assert_eq!(s.amqp.delivery_limit, 3);
        assert_eq!(s.queues, vec!["a", "b"]);
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let err = load_from::<Sample>(Some(Path::new("/nonexistent/x.toml")), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}
