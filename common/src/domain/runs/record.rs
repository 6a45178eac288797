//! A run as the API shows it (`Run`, `Trigger`, `RunError`) and how it is read from a
//! `runs` row (`COLUMNS`, `from_row`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::run_state::RunStatus;

/// Who or what started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// An HTTP client.
    Api,
    /// A cron schedule.
    Schedule,
    /// A retry of a failed run.
    Retry,
    /// The `runfleet` CLI.
    Cli,
}

impl Trigger {
    /// Every trigger.
    pub const ALL: [Trigger; 4] = [
        Trigger::Api,
        Trigger::Cli,
        Trigger::Retry,
        Trigger::Schedule,
    ];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Api => "api",
            Trigger::Schedule => "schedule",
            Trigger::Retry => "retry",
            Trigger::Cli => "cli",
        }
    }

    fn parse(s: &str) -> Trigger {
        match s {
            "schedule" => Trigger::Schedule,
            "retry" => Trigger::Retry,
            "cli" => Trigger::Cli,
            _ => Trigger::Api,
        }
    }
}

/// Why a run failed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunError {
    /// Machine-readable code, e.g. `exit_nonzero`, `timed_out`, `spawn_failed` (every code
    /// is declared in `runfleet_common::failure_code`).
    pub code: String,
    /// What happened.
    pub message: String,
}

impl RunError {
    /// The error from the stored `error_code` / `error` columns (None when both are empty).
    pub(crate) fn from_columns(code: Option<String>, message: Option<String>) -> Option<RunError> {
        (code.is_some() || message.is_some()).then(|| RunError {
            code: code.unwrap_or_else(|| "error".into()),
            message: message.unwrap_or_default(),
        })
    }
}

/// A run as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Run {
    /// Run id (UUIDv7, time-ordered).
    pub id: Uuid,
    /// Script name.
    pub script: String,
    /// Script version the run uses.
    pub script_version: i32,
    /// Parameters (a JSON object).
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// Worker queue.
    pub queue: String,
    /// Current status.
    pub status: RunStatus,
    /// Attempt number, from 1.
    pub attempt: i32,
    /// What started it.
    pub trigger: Trigger,
    /// The client's idempotency key, if given.
    pub idempotency_key: Option<String>,
    /// Seconds before the script is killed.
    pub timeout_seconds: i32,
    /// When it was accepted.
    pub submitted_at: DateTime<Utc>,
    /// When a consumer started it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a final status.
    pub finished_at: Option<DateTime<Utc>>,
    /// Consumer (pod) that ran it.
    pub worker: Option<String>,
    /// Script exit code.
    pub exit_code: Option<i32>,
    /// Set when the run did not succeed.
    pub error: Option<RunError>,
    /// JSON the script wrote to `RUNFLEET_RESULT_PATH`.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// Signature of the venv (requirement set) a Python run used; null when none.
    pub venv_signature: Option<String>,
    /// Times the run was taken back from a consumer that died while running it.
    pub reclaims: i32,
    /// When a cancel was requested (the run ends as `cancelled` shortly after).
    pub cancel_requested_at: Option<DateTime<Utc>>,
    /// Attempts allowed before a failure is final.
    pub max_attempts: i32,
    /// When a `retrying` run's next attempt is due.
    pub retry_at: Option<DateTime<Utc>>,
    /// The task it was made from, if any.
    pub task: Option<String>,
    /// The schedule that fired it, if any.
    pub schedule_id: Option<Uuid>,
    /// The fire time it stands for (with `schedule_id`).
    pub scheduled_for: Option<DateTime<Utc>>,
    /// OpenTelemetry trace id of the run (submit, publish, consume, script, result).
    pub trace_id: Option<String>,
    /// The full W3C trace context (carried by the run's messages).
    #[serde(skip)]
    pub traceparent: Option<String>,
}

pub(crate) const COLUMNS: &str = "id, script_name, script_version, parameters, queue, status, attempt, \
    triggered_by, idempotency_key, timeout_seconds, submitted_at, started_at, finished_at, \
    worker, exit_code, error_code, error, result, venv_signature, reclaims, cancel_requested_at, \
    max_attempts, retry_at, task_name, schedule_id, scheduled_for, traceparent";

pub(crate) fn from_row(row: &Row) -> Run {
    let status: String = row.get(5);
    let traceparent: Option<String> = row.get(26);
    Run {
        id: row.get(0),
        script: row.get(1),
        script_version: row.get(2),
        parameters: row.get(3),
        queue: row.get(4),
        status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
        attempt: row.get(6),
        trigger: Trigger::parse(row.get(7)),
        idempotency_key: row.get(8),
        timeout_seconds: row.get(9),
        submitted_at: row.get(10),
        started_at: row.get(11),
        finished_at: row.get(12),
        worker: row.get(13),
        exit_code: row.get(14),
        error: RunError::from_columns(row.get(15), row.get(16)),
        result: row.get(17),
        venv_signature: row.get(18),
        reclaims: row.get(19),
        cancel_requested_at: row.get(20),
        max_attempts: row.get(21),
        retry_at: row.get(22),
        task: row.get(23),
        schedule_id: row.get(24),
        scheduled_for: row.get(25),
        trace_id: traceparent
            .as_deref()
            .and_then(crate::telemetry::trace_id_of)
            .map(str::to_string),
        traceparent,
    }
}
