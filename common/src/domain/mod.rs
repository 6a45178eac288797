//! The run domain: scripts, tasks, schedules and the runs made from them, built on
//! [`crate::infra`].
//!
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

pub mod access;
pub mod audit;
pub mod dead_letters;
pub mod error;
pub mod failure_code;
pub mod fleet;
pub mod limits;
pub mod live_logs;
pub mod run_state;
pub mod runs;
pub mod schedules;
pub mod scripts;
pub mod secrets;
pub mod tasks;
