//! Runs: the one code path that creates a run (API or scheduler), and the reads of runs.
//!
//! Submitting writes the run to Postgres first and only then publishes its message, so an
//! accepted run is never lost: if the broker is down, the run waits in the outbox
//! (`published_at IS NULL`) and [`sweep_outbox`] publishes it when the broker is back.
//!
//! ```text
//! NewRun ──check──▶ RunSpec ──submit/insert──▶ runs row ──publish──▶ RabbitMQ
//!                                                 └── outbox ──sweep_outbox──┘
//! ```
//!
//! - [`record`]: `Run` and its row mapping.
//! - [`settings`]: the settings a client may give a run, declared once.
//! - [`check`]: validation of a request under the `SubmitPolicy`.
//! - [`submit`](mod@submit): recording runs, idempotent replays included.
//! - [`outbox`]: publishing and the outbox sweep.
//! - [`queries`]: get, list, logs, attempts, cancel, retry.
//!
//! Every item is re-exported here: callers write `runs::submit`, `runs::Run`.

pub mod check;
pub mod outbox;
pub mod queries;
pub mod record;
pub mod settings;
pub mod submit;

pub use check::*;
pub use outbox::*;
pub use queries::*;
pub use record::*;
pub use settings::*;
pub use submit::*;
