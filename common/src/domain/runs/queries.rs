//! Reads and user actions on existing runs: get, list, logs, attempts, cancel, retry.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::amqp::Publisher;
use crate::db::DbPool;
use crate::error::Error;
use crate::run_state::RunStatus;

use super::*;

/// Cancels a run (see [`crate::run_state::cancel`]).
pub async fn cancel(pool: &DbPool, id: Uuid) -> Result<crate::run_state::CancelOutcome, Error> {
    let client = pool.get().await?;
    Ok(crate::run_state::cancel(&client, id).await?)
}

/// Queues a fresh attempt of a finished run (see [`crate::run_state::retry`]) and
/// publishes it. A run that has not finished is a conflict.
pub async fn retry(pool: &DbPool, publisher: &Publisher, id: Uuid) -> Result<Run, Error> {
    use crate::run_state::RetryOutcome;
    let client = pool.get().await?;
    match crate::run_state::retry(&client, id).await? {
        RetryOutcome::Queued => {}
        RetryOutcome::NotFinished(status) => {
            return Err(Error::Conflict {
                code: "run_not_finished",
                field: "id".into(),
                message: format!(
                    "run {id} is {}; retry it once it has finished",
                    status.as_str()
                ),
            });
        }
        RetryOutcome::Unknown => return Err(run_not_found(id)),
    }
    let row = client
        .query_one(&format!("SELECT {COLUMNS} FROM runs WHERE id = $1"), &[&id])
        .await?;
    let run = from_row(&row);
    publish(&client, publisher, std::slice::from_ref(&run)).await;
    Ok(run)
}

fn run_not_found(id: Uuid) -> Error {
    Error::NotFound {
        code: "run_not_found",
        message: format!("no run with id {id}"),
    }
}

/// One run.
pub async fn get(pool: &DbPool, id: Uuid) -> Result<Run, Error> {
    let client = pool.get().await?;
    let row = client
        .query_opt(&format!("SELECT {COLUMNS} FROM runs WHERE id = $1"), &[&id])
        .await?;
    row.map(|r| from_row(&r)).ok_or_else(|| run_not_found(id))
}

/// Filters for listing runs, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only runs in one of these statuses (empty: any).
    pub statuses: Vec<RunStatus>,
    /// Only runs of this script.
    pub script: Option<String>,
    /// At most this many.
    pub limit: i64,
    /// Only runs older than this run id (the previous page's `next_cursor`).
    pub cursor: Option<Uuid>,
}

/// A page of runs and the cursor of the next page (None: no more).
pub async fn list(pool: &DbPool, filter: &RunFilter) -> Result<(Vec<Run>, Option<Uuid>), Error> {
    let client = pool.get().await?;
    let statuses: Option<Vec<&str>> =
        (!filter.statuses.is_empty()).then(|| filter.statuses.iter().map(|s| s.as_str()).collect());
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM runs
                  WHERE ($1::text[] IS NULL OR status = ANY($1))
                    AND ($2::text IS NULL OR script_name = $2)
                    AND ($3::uuid IS NULL OR id < $3)
                  ORDER BY id DESC LIMIT $4"
            ),
            &[
                &statuses,
                &filter.script,
                &filter.cursor,
                &(filter.limit + 1),
            ],
        )
        .await?;
    let mut runs: Vec<Run> = rows.iter().map(from_row).collect();
    let next = if runs.len() as i64 > filter.limit {
        runs.truncate(filter.limit as usize);
        runs.last().map(|r| r.id)
    } else {
        None
    };
    Ok((runs, next))
}

/// Captured output of a run's latest attempt.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunLogs {
    /// Run id.
    pub run_id: Uuid,
    /// Attempt the output belongs to.
    pub attempt: i32,
    /// Run status (output is empty until the attempt finishes).
    pub status: RunStatus,
    /// Standard output (its tail when truncated).
    pub stdout: String,
    /// Standard error (its tail when truncated).
    pub stderr: String,
    /// True when the start of stdout was dropped to respect the cap.
    pub stdout_truncated: bool,
    /// True when the start of stderr was dropped to respect the cap.
    pub stderr_truncated: bool,
}

/// An attempt's output (the latest attempt's when `attempt` is None). While the attempt
/// runs, and for an attempt whose consumer died, it is the output flushed live so far.
pub async fn logs(pool: &DbPool, id: Uuid, attempt: Option<i32>) -> Result<RunLogs, Error> {
    let run = get(pool, id).await?;
    let attempt = match attempt {
        None => run.attempt,
        Some(a) if (1..=run.attempt).contains(&a) => a,
        Some(a) => {
            return Err(Error::invalid(
                "unknown_attempt",
                "attempt",
                format!("run {id} has attempts 1 to {}, not {a}", run.attempt),
            ));
        }
    };
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT stdout, stderr, stdout_truncated, stderr_truncated
               FROM run_logs WHERE run_id = $1 AND attempt = $2",
            &[&id, &attempt],
        )
        .await?;
    let mut logs = RunLogs {
        run_id: id,
        attempt,
        status: run.status,
        stdout: String::new(),
        stderr: String::new(),
        stdout_truncated: false,
        stderr_truncated: false,
    };
    if let Some(row) = row {
        logs.stdout = row.get(0);
        logs.stderr = row.get(1);
        logs.stdout_truncated = row.get(2);
        logs.stderr_truncated = row.get(3);
    } else if let Some((stdout, stderr)) = crate::live_logs::joined(&client, id, attempt).await? {
        // Running, or an attempt whose consumer died: what it printed so far.
        logs.stdout = stdout;
        logs.stderr = stderr;
    }
    Ok(logs)
}

/// One finished attempt of a run.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    /// Attempt number.
    pub attempt: i32,
    /// How it ended (`succeeded`, `failed`, `timed_out`, `cancelled`).
    pub status: String,
    /// Consumer that ran it.
    pub worker: Option<String>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// Why it did not succeed.
    pub error: Option<RunError>,
}

/// Every finished attempt of a run, oldest first.
pub async fn attempts(pool: &DbPool, id: Uuid) -> Result<Vec<Attempt>, Error> {
    get(pool, id).await?;
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT attempt, status, worker, started_at, finished_at, exit_code, error_code, error
               FROM run_attempts WHERE run_id = $1 ORDER BY attempt",
            &[&id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Attempt {
            attempt: r.get(0),
            status: r.get(1),
            worker: r.get(2),
            started_at: r.get(3),
            finished_at: r.get(4),
            exit_code: r.get(5),
            error: RunError::from_columns(r.get(6), r.get(7)),
        })
        .collect())
}
