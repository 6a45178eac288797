//! The one way a runfleet service starts, and the config sections every service has.
//!
//! Producer, consumer and scheduler each call [`Service::start`] (config loaded and checked,
//! logs and traces set up) and then [`Service::serve`] (SIGTERM/SIGINT wired to one
//! shutdown token, the service's work, telemetry flushed) or, for a one-off command such as
//! `migrate`, [`Service::once`].

use std::future::Future;
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::config::{
    self, AmqpConfig, ConfigError, DatabaseConfig, HttpConfig, LogConfig, Validate,
};
use crate::shutdown::{self, Shutdown};
use crate::telemetry::{self, Telemetry};

/// The sections every service's config has, under the same keys (`database`, `amqp`,
/// `http`, `log`, so `RUNFLEET_DATABASE__URL` means the same to all three).
pub trait ServiceConfig: DeserializeOwned + Validate {
    /// Postgres (`RUNFLEET_DATABASE__*`).
    fn database(&self) -> &DatabaseConfig;
    /// RabbitMQ (`RUNFLEET_AMQP__*`).
    fn amqp(&self) -> &AmqpConfig;
    /// The service's listener (`RUNFLEET_HTTP__LISTEN`; each service has its own default).
    fn http(&self) -> &HttpConfig;
    /// Logging (`RUNFLEET_LOG__*`).
    fn log(&self) -> &LogConfig;

    /// Checks the shared sections; each service's [`Validate::validate`] calls it first.
    fn validate_shared(&self) -> Result<(), ConfigError> {
        self.database().validate()?;
        self.amqp().validate()?;
        self.http().validate()
    }
}

/// Implements [`ServiceConfig`] for a config struct whose shared sections are its fields
/// `database`, `amqp`, `http` and `log`: `runfleet_common::service_config!(ConsumerConfig);`.
#[macro_export]
macro_rules! service_config {
    ($config:ty) => {
        impl $crate::service::ServiceConfig for $config {
            fn database(&self) -> &$crate::config::DatabaseConfig {
                &self.database
            }
            fn amqp(&self) -> &$crate::config::AmqpConfig {
                &self.amqp
            }
            fn http(&self) -> &$crate::config::HttpConfig {
                &self.http
            }
            fn log(&self) -> &$crate::config::LogConfig {
                &self.log
            }
        }
    };
}

/// A service whose config is loaded and whose telemetry is set up.
pub struct Service<C> {
    /// The service's config, checked.
    pub config: C,
    telemetry: Telemetry,
}

impl<C: ServiceConfig> Service<C> {
    /// Loads `C` (defaults < `file` < `RUNFLEET_*` environment) and sets up logs and traces
    /// under `name`. A config that cannot be read or is not valid ends the process here
    /// with exit code 2 and one line naming the setting: nothing has started yet.
    pub fn start(name: &str, file: Option<&Path>) -> Self {
        let config: C = match config::load(file) {
            Ok(config) => config,
            Err(e) => {
                eprintln!("{name}: {e}");
                std::process::exit(2);
            }
        };
        let telemetry = telemetry::init(config.log(), name);
        Service { config, telemetry }
    }

    /// Runs the service's `work` with a token that SIGTERM or SIGINT cancels, until it
    /// returns; then flushes telemetry.
    pub async fn serve<F, Fut, T, E>(self, work: F) -> Result<T, E>
    where
        F: FnOnce(C, Shutdown) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let shutdown = shutdown::on_signals();
        let result = work(self.config, shutdown).await;
        self.telemetry.shutdown();
        result
    }

    /// Runs a one-off command (no signal handling: it ends by itself); then flushes
    /// telemetry.
    pub async fn once<F, Fut, T, E>(self, work: F) -> Result<T, E>
    where
        F: FnOnce(C) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let result = work(self.config).await;
        self.telemetry.shutdown();
        result
    }
}
