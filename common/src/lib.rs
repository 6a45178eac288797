//! runfleet's shared library: what the producer, consumer and scheduler agree on. Its
//! modules come in two layers; the run domain builds on the infrastructure, never the
//! other way round.
//!
//! ```text
//! producer API ─▶ runs::submit ─▶ runs + outbox rows ─▶ (sweeper) amqp::Publisher ─▶ RabbitMQ
//! scheduler ──▶ schedules::fire_due ─▶ runs::submit          │
//! consumer ◀── message::RunMessage ◀─────────────────────────┘
//!    └─▶ run_state::claim ─▶ (script runs, live_logs) ─▶ run_state::finish ─▶ ack
//! ```
//!
//! **Infrastructure** (knows nothing of runs):
//! - [`config`] — typed, layered configuration (defaults < file < `RUNFLEET_*` env).
//! - [`db`] — the Postgres pool and the migrations; [`hash`] — content fingerprints.
//! - [`amqp`] — RabbitMQ topology and the confirming [`amqp::Publisher`].
//! - [`retry`] — the one backoff and periodic-loop helper every reconnecting loop uses.
//! - [`shutdown`] — the process's one cancellation token.
//! - [`telemetry`], [`metrics`], [`ops_http`] — logs, traces, `/metrics`, `/health`.
//! - [`cron`] — cron expressions in IANA timezones (DST-correct fire times).
//! - [`names`] — the rules for names users choose; [`requirements`] — Python
//!   requirement sets and PEP 723 metadata; [`limits`] — a run's rlimits.
//!
//! **Run domain**:
//! - [`message`] — the run message on the wire.
//! - [`scripts`] — immutable script versions; [`tasks`] — named run templates;
//!   [`schedules`] — tasks on cron schedules, and firing them exactly once.
//! - [`runs`] — the one code path that creates a run, run reads, the outbox.
//! - [`run_state`] — the run state machine, every transition a guarded SQL UPDATE;
//!   [`failure_code`] — every `error.code` a run can end with.
//! - [`live_logs`] — output of running attempts, flushed while they run.
//! - [`secrets`] — encrypted named secrets for scripts.
//! - [`dead_letters`] — the watcher that marks runs behind dead-lettered messages `dead`.
//! - [`fleet`] — the registry consumers announce themselves in.
//! - [`access`], [`audit`] — API tokens with roles, and the audit log of changes.
//! - [`error`] — the errors of run and script operations, shaped for the API.
#![forbid(unsafe_code)]

pub mod access;
pub mod amqp;
pub mod audit;
pub mod config;
pub mod cron;
pub mod db;
pub mod dead_letters;
pub mod error;
pub mod failure_code;
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
