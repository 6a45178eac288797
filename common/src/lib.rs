//! runfleet's shared library: what the producer, consumer and scheduler agree on, in two
//! layers. The run domain builds on the infrastructure, never the other way round (a test
//! in [`infra`] holds that line). Every module is re-exported at the root, so callers write
//! `runfleet_common::db`, `runfleet_common::runs`; the directory a file is in says its
//! layer.
//!
//! ```text
//! producer API ─▶ runs::submit ─▶ runs + outbox rows ─▶ (sweeper) amqp::Publisher ─▶ RabbitMQ
//! scheduler ──▶ schedules::fire_due ─▶ runs::submit          │
//! consumer ◀── message::RunMessage ◀─────────────────────────┘
//!    └─▶ run_state::claim ─▶ (script runs, live_logs) ─▶ run_state::finish ─▶ ack
//! ```
//!
//! **[`infra`]** (`src/infra/`, knows nothing of runs):
//! - [`config`] — typed, layered configuration (defaults < file < `RUNFLEET_*` env).
//! - [`db`] — the Postgres pool and the migrations; [`hash`] — content fingerprints.
//! - [`amqp`] — RabbitMQ topology and the confirming [`amqp::Publisher`]; [`message`] —
//!   the run message on the wire.
//! - [`retry`] — the one backoff and periodic-loop helper every reconnecting loop uses.
//! - [`shutdown`] — the process's one cancellation token; [`service`] — the one start-up
//!   path of the three services and the config sections they share.
//! - [`telemetry`], [`metrics`], [`ops_http`] — logs, traces, `/metrics`, `/health`.
//! - [`cron`] — cron expressions in IANA timezones (DST-correct fire times).
//! - [`names`] — the rules for names users choose; [`requirements`] — Python
//!   requirement sets and PEP 723 metadata.
//!
//! **[`domain`]** (`src/domain/`, the run domain):
//! - [`scripts`] — immutable script versions; [`tasks`] — named run templates;
//!   [`schedules`] — tasks on cron schedules, and firing them exactly once.
//! - [`runs`] — the one code path that creates a run, run reads, the outbox.
//! - [`run_state`] — the run state machine, every transition a guarded SQL UPDATE;
//!   [`failure_code`] — every `error.code` a run can end with.
//! - [`limits`] — a run's rlimits; [`live_logs`] — output of running attempts, flushed
//!   while they run; [`secrets`] — encrypted named secrets for scripts.
//! - [`dead_letters`] — the watcher that marks runs behind dead-lettered messages `dead`.
//! - [`fleet`] — the registry consumers announce themselves in.
//! - [`access`], [`audit`] — API tokens with roles, and the audit log of changes.
//! - [`error`] — the errors of run and script operations, shaped for the API.
#![forbid(unsafe_code)]

pub mod domain;
pub mod infra;

pub use domain::{
    access, audit, dead_letters, error, failure_code, fleet, limits, live_logs, run_state, runs,
    schedules, scripts, secrets, tasks,
};
pub use infra::{
    amqp, config, cron, db, hash, message, metrics, names, ops_http, requirements, retry, service,
    shutdown, telemetry,
};

pub use error::Error;

/// The build's git commit, from `RUNFLEET_BUILD_COMMIT` at compile time ("unknown" if unset).
pub const BUILD_COMMIT: &str = match option_env!("RUNFLEET_BUILD_COMMIT") {
    Some(c) => c,
    None => "unknown",
};
