//! runfleet's shared library: what the producer, consumer and scheduler agree on.
//!
//! - [`config`] — typed, layered configuration (defaults < file < `RUNFLEET_*` env).
//! - [`cron`] — cron expressions in IANA timezones (DST-correct fire times).
//! - [`db`] — the Postgres pool and the migrations.
//! - [`amqp`] — RabbitMQ topology and the confirming [`amqp::Publisher`].
//! - [`dead_letters`] — the watcher that marks runs behind dead-lettered messages `dead`.
//! - [`message`] — the run message on the wire.
//! - [`scripts`] — immutable script versions.
//! - [`tasks`] — named run templates.
//! - [`schedules`] — tasks on cron schedules, and firing them exactly once.
//! - [`runs`] — the one code path that creates a run, and run reads; the outbox sweeper.
//! - [`run_state`] — the run state machine, every transition a guarded SQL UPDATE.
//! - [`live_logs`] — output of running attempts, flushed while they run.
//! - [`fleet`] — the registry consumers announce themselves in.
//! - [`access`], [`audit`] — API tokens with roles, and the audit log of changes.
//! - [`metrics`], [`telemetry`], [`ops_http`], [`shutdown`] — running in production.
#![forbid(unsafe_code)]

pub mod access;
pub mod amqp;
pub mod audit;
pub mod config;
pub mod cron;
pub mod db;
pub mod dead_letters;
pub mod error;
pub mod fleet;
pub mod hash;
pub mod limits;
pub mod live_logs;
pub mod message;
pub mod metrics;
pub mod names;
pub mod ops_http;
pub mod requirements;
pub mod retry;
pub mod run_state;
pub mod runs;
pub mod schedules;
pub mod scripts;
pub mod secrets;
pub mod shutdown;
pub mod tasks;
pub mod telemetry;

pub use error::Error;

/// The build's git commit, from `RUNFLEET_BUILD_COMMIT` at compile time ("unknown" if unset).
pub const BUILD_COMMIT: &str = match option_env!("RUNFLEET_BUILD_COMMIT") {
    Some(c) => c,
    None => "unknown",
};
