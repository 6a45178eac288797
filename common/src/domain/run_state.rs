//! The run state machine: every status change of a run is here, as a guarded SQL UPDATE.
//!
//! ```text
//! queued ──claim──▶ running ──finish──▶ succeeded | failed | timed_out | cancelled
//!                      └─finish: failed | timed_out with attempts left──▶ retrying
//! retrying ──promote_due_retries (due)──▶ queued, attempt + 1
//! running ──reclaim_stale (heartbeat stale: its consumer died)──▶ queued, attempt + 1
//!                                                  (──▶ dead once max_reclaims is reached)
//! running ──release (drain grace over at consumer shutdown)──▶ queued, attempt + 1
//! queued ──dead_letter (RabbitMQ dead-lettered its message)──▶ dead
//! queued | retrying ──cancel──▶ cancelled
//! running ──cancel──▶ running, cancel requested (its consumer stops the script, and
//!                     finish records cancelled)
//! succeeded | failed | timed_out | cancelled | dead ──retry (POST /runs/{id}/retry)──▶
//!                     queued, attempt + 1
//! ```
//!
//! Each UPDATE names the status (and attempt) it moves from, so a stale or duplicate
//! message can never move a run that has already moved on. tests/tests/run_state.rs tries
//! every transition from every status.

use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::db::DbError;
use crate::failure_code::FailureCode;

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Accepted, waiting for a consumer.
    Queued,
    /// A consumer is running it.
    Running,
    /// Exited 0.
    Succeeded,
    /// Exited non-zero, or could not be started.
    Failed,
    /// Killed after its timeout.
    TimedOut,
    /// Cancelled by a user.
    Cancelled,
    /// Waiting for its next attempt.
    Retrying,
    /// Given up on (poison message, delivery limit).
    Dead,
}

impl RunStatus {
    /// All statuses, for validation and docs.
    pub const ALL: [RunStatus; 8] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::TimedOut,
        RunStatus::Cancelled,
        RunStatus::Retrying,
        RunStatus::Dead,
    ];

    /// The name stored in Postgres and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Retrying => "retrying",
            RunStatus::Dead => "dead",
        }
    }

    /// Parses a stored or user-given name.
    pub fn parse(s: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// True when the run will not change again by itself.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded
                | RunStatus::Failed
                | RunStatus::TimedOut
                | RunStatus::Cancelled
                | RunStatus::Dead
        )
    }
}

/// What a consumer needs to execute a claimed run.
#[derive(Debug, Clone)]
pub struct ClaimedRun {
    /// Run id.
    pub run_id: Uuid,
    /// Attempt being executed.
    pub attempt: i32,
    /// Script name.
    pub script_name: String,
    /// `python` or `shell`.
    pub language: String,
    /// Script source.
    pub content: String,
    /// pip requirement lines registered with the script version.
    pub requirements: Vec<String>,
    /// SHA-256 of the content (file cache key on the consumer).
    pub sha256: String,
    /// The parameter object.
    pub parameters: Value,
    /// Seconds before the run is killed.
    pub timeout_seconds: i32,
    /// When it was submitted.
    pub submitted_at: chrono::DateTime<chrono::Utc>,
    /// Extra environment variables from the run's task (a JSON object of strings).
    pub env: Value,
    /// Seconds this attempt waited in the queue (Postgres clock, so no skew).
    pub queue_wait_seconds: f64,
    /// The W3C trace context the run was created under, if any.
    pub traceparent: Option<String>,
    /// Resource limits asked for (the consumer applies its defaults and ceiling).
    pub limits: crate::limits::RunLimits,
    /// Secrets the script gets: env name → secret name.
    pub secrets: Value,
    /// Those secrets' values, filled in by the consumer just before the run starts.
    pub secret_env: Vec<crate::secrets::SecretEnv>,
}

/// The answer to "may I run this message?".
#[derive(Debug)]
pub enum Claim {
    /// `queued → running` happened: run it.
    Claimed(Box<ClaimedRun>),
    /// The run exists but is not waiting for this attempt (a duplicate or stale message).
    NotQueued {
        /// Its current status.
        status: String,
        /// Its current attempt.
        attempt: i32,
    },
    /// No run has this id (malformed or foreign message).
    Unknown,
}

/// `queued → running` for (`run_id`, `attempt`), recording the worker and start time.
pub async fn claim(
    client: &impl GenericClient,
    run_id: Uuid,
    attempt: i32,
    worker: &str,
) -> Result<Claim, DbError> {
    // Prepared once per connection: this is on every run's path.
    let statement = client
        .prepare_cached(
            "UPDATE runs r SET status = 'running', started_at = now(), worker = $3,
                    heartbeat_at = now()
               FROM scripts s
              WHERE r.id = $1 AND r.attempt = $2 AND r.status = 'queued'
                AND s.name = r.script_name AND s.version = r.script_version
          RETURNING r.script_name, s.language, s.content, s.sha256, r.parameters,
                    r.timeout_seconds, r.submitted_at, s.requirements, r.env,
                    greatest(extract(epoch FROM clock_timestamp() - r.queued_at), 0)::float8,
                    r.traceparent, r.limits, r.secrets",
        )
        .await?;
    let row = client
        .query_opt(&statement, &[&run_id, &attempt, &worker])
        .await?;
    if let Some(row) = row {
        return Ok(Claim::Claimed(Box::new(ClaimedRun {
            run_id,
            attempt,
            script_name: row.get(0),
            language: row.get(1),
            content: row.get(2),
            sha256: row.get(3),
            parameters: row.get(4),
            timeout_seconds: row.get(5),
            submitted_at: row.get(6),
            requirements: row.get(7),
            env: row.get(8),
            queue_wait_seconds: row.get(9),
            traceparent: row.get(10),
            limits: crate::limits::RunLimits::from_json(&row.get(11)),
            secrets: row.get(12),
            secret_env: Vec::new(),
        })));
    }
    let current = client
        .query_opt("SELECT status, attempt FROM runs WHERE id = $1", &[&run_id])
        .await?;
    Ok(match current {
        Some(row) => Claim::NotQueued {
            status: row.get(0),
            attempt: row.get(1),
        },
        None => Claim::Unknown,
    })
}

/// A captured output stream.
#[derive(Debug, Clone, Default)]
pub struct CapturedOutput {
    /// The kept text (the tail, when truncated).
    pub text: String,
    /// True when the beginning was dropped to respect the cap.
    pub truncated: bool,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `succeeded`, `failed` or `timed_out`.
    pub status: RunStatus,
    /// Process exit code, when it exited (not when killed by a signal or never started).
    pub exit_code: Option<i32>,
    /// Machine-readable error code on failure, e.g. [`FailureCode::ExitNonzero`].
    pub error_code: Option<FailureCode>,
    /// Human-readable error on failure.
    pub error: Option<String>,
    /// The JSON the script wrote to its result file.
    pub result: Option<Value>,
    /// Captured stdout.
    pub stdout: CapturedOutput,
    /// Captured stderr.
    pub stderr: CapturedOutput,
    /// Signature of the venv the run used (None: no venv).
    pub venv_signature: Option<String>,
}

/// `running → <final>` for (`run_id`, `attempt`), or `running → retrying` when the attempt
/// failed or timed out and the run has attempts left (due after an exponential backoff
/// with jitter: `min(max, backoff × 2^(attempt−1)) × [0.5, 1)`). Records the attempt and
/// its logs (replacing its live chunks; no logs row when it printed nothing), in one
/// statement. Returns the status the run moved to, or None when it
/// was no longer running that attempt (then nothing is written).
pub async fn finish(
    client: &impl GenericClient,
    run_id: Uuid,
    attempt: i32,
    outcome: &Outcome,
) -> Result<Option<RunStatus>, DbError> {
    debug_assert!(outcome.status.is_final());
    let retryable = matches!(outcome.status, RunStatus::Failed | RunStatus::TimedOut);
    // Most runs print nothing: no row for them saves an insert and its index entry.
    let has_logs = !outcome.stdout.text.is_empty()
        || !outcome.stderr.text.is_empty()
        || outcome.stdout.truncated
        || outcome.stderr.truncated;
    // One statement (atomic on its own, one round trip, prepared once per connection):
    // the run's move, its attempt row and its logs. The inserts read the UPDATE's
    // RETURNING, so they write nothing when the run was no longer running this attempt.
    let statement = client
        .prepare_cached(
            "WITH moved AS (
                UPDATE runs SET
                    status = CASE WHEN $9 AND attempt < max_attempts THEN 'retrying' ELSE $3 END,
                    finished_at = CASE WHEN $9 AND attempt < max_attempts THEN NULL ELSE now() END,
                    retry_at = CASE WHEN $9 AND attempt < max_attempts
                        THEN now() + make_interval(secs => LEAST(retry_backoff_max_seconds,
                                 retry_backoff_seconds * power(2, attempt - 1)) * (0.5 + random() / 2))
                        ELSE NULL END,
                    exit_code = $4, error_code = $5, error = $6, result = $7, venv_signature = $8
                 WHERE id = $1 AND attempt = $2 AND status = 'running'
             RETURNING status, worker, started_at
             ), attempt_row AS (
                INSERT INTO run_attempts (run_id, attempt, status, worker, started_at, exit_code,
                                          error_code, error)
                SELECT $1, $2, $3, worker, started_at, $4, $5, $6 FROM moved
                ON CONFLICT (run_id, attempt) DO NOTHING
             ), logs_row AS (
                INSERT INTO run_logs (run_id, attempt, stdout, stderr, stdout_truncated,
                                      stderr_truncated)
                SELECT $1, $2, $10, $11, $12, $13 FROM moved WHERE $14
                ON CONFLICT (run_id, attempt) DO UPDATE SET stdout = EXCLUDED.stdout,
                    stderr = EXCLUDED.stderr, stdout_truncated = EXCLUDED.stdout_truncated,
                    stderr_truncated = EXCLUDED.stderr_truncated
             ), no_logs AS (
                -- A silent attempt stores no logs row (reads show it as empty); one left
                -- from an earlier finish of this attempt must not show instead.
                DELETE FROM run_logs g USING moved
                 WHERE NOT $14 AND g.run_id = $1 AND g.attempt = $2
             ), live_gone AS (
                -- The live chunks were a preview: the stored logs replace them.
                DELETE FROM run_log_chunks c USING moved
                 WHERE c.run_id = $1 AND c.attempt = $2
             )
             SELECT status FROM moved",
        )
        .await?;
    let row = client
        .query_opt(
            &statement,
            &[
                &run_id,
                &attempt,
                &outcome.status.as_str(),
                &outcome.exit_code,
                &outcome.error_code.map(FailureCode::as_str),
                &outcome.error,
                &outcome.result,
                &outcome.venv_signature,
                &retryable,
                &outcome.stdout.text,
                &outcome.stderr.text,
                &outcome.stdout.truncated,
                &outcome.stderr.truncated,
                &has_logs,
            ],
        )
        .await?;
    Ok(row.and_then(|r| RunStatus::parse(r.get::<_, &str>(0))))
}

/// `retrying → queued` with `attempt + 1` for retries that are due; they go back to the
/// outbox to be published. Returns their ids.
pub async fn promote_due_retries(client: &impl GenericClient) -> Result<Vec<Uuid>, DbError> {
    let rows = client
        .query(
            "UPDATE runs SET status = 'queued', attempt = attempt + 1, retry_at = NULL,
                    queued_at = now(), published_at = NULL, started_at = NULL, worker = NULL, heartbeat_at = NULL,
                    exit_code = NULL, error_code = NULL, error = NULL, result = NULL
              WHERE status = 'retrying' AND retry_at <= now()
          RETURNING id",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Refreshes the heartbeat of the runs this consumer is executing (attempts given), so
/// they are not reclaimed. Returns how many rows were still running those attempts.
pub async fn heartbeat(client: &impl GenericClient, runs: &[(Uuid, i32)]) -> Result<u64, DbError> {
    let ids: Vec<Uuid> = runs.iter().map(|r| r.0).collect();
    let attempts: Vec<i32> = runs.iter().map(|r| r.1).collect();
    Ok(client
        .execute(
            "UPDATE runs r SET heartbeat_at = now()
               FROM unnest($1::uuid[], $2::int[]) AS mine(id, attempt)
              WHERE r.id = mine.id AND r.attempt = mine.attempt AND r.status = 'running'",
            &[&ids, &attempts],
        )
        .await?)
}

/// Runs taken back from consumers that stopped heartbeating.
#[derive(Debug, Default)]
pub struct Reclaimed {
    /// Queued again as their next attempt.
    pub requeued: Vec<Uuid>,
    /// Given up on (`dead`): their consumers died `max_reclaims` times (a poison run, e.g.
    /// one that exhausts the node's memory).
    pub dead: Vec<Uuid>,
}

/// For runs whose consumer stopped heartbeating for longer than `stale_after` (killed, or
/// lost its node): `running → queued` with `attempt + 1`, back to the outbox to be
/// published again (the old attempt can no longer commit); or `running → dead` once that
/// has happened `max_reclaims` times.
pub async fn reclaim_stale(
    client: &impl GenericClient,
    stale_after: std::time::Duration,
    max_reclaims: i32,
) -> Result<Reclaimed, DbError> {
    let rows = client
        .query(
            "UPDATE runs SET
                    status = CASE WHEN reclaims >= $2 THEN 'dead' ELSE 'queued' END,
                    finished_at = CASE WHEN reclaims >= $2 THEN now() ELSE NULL END,
                    error_code = CASE WHEN reclaims >= $2 THEN $3 ELSE NULL END,
                    error = CASE WHEN reclaims >= $2
                        THEN 'its consumer died while running it ' || (reclaims + 1) ||
                             ' times (a poison run?); retry it with POST /runs/{id}/retry'
                        ELSE NULL END,
                    attempt = CASE WHEN reclaims >= $2 THEN attempt ELSE attempt + 1 END,
                    reclaims = reclaims + 1,
                    published_at = CASE WHEN reclaims >= $2 THEN published_at ELSE NULL END,
                    queued_at = CASE WHEN reclaims >= $2 THEN queued_at ELSE now() END,
                    started_at = CASE WHEN reclaims >= $2 THEN started_at ELSE NULL END,
                    worker = CASE WHEN reclaims >= $2 THEN worker ELSE NULL END,
                    heartbeat_at = NULL
              WHERE status = 'running'
                AND heartbeat_at < now() - make_interval(secs => $1)
          RETURNING id, status",
            &[
                &stale_after.as_secs_f64(),
                &max_reclaims,
                &FailureCode::ConsumerLost.as_str(),
            ],
        )
        .await?;
    let mut out = Reclaimed::default();
    for row in rows {
        let status: String = row.get(1);
        if status == "dead" {
            out.dead.push(row.get(0));
        } else {
            out.requeued.push(row.get(0));
        }
    }
    Ok(out)
}

/// `queued → dead` for the attempt whose message RabbitMQ dead-lettered (delivered more
/// than `amqp.delivery_limit` times without an ack): nothing would ever run it otherwise.
/// Returns false when the run is not waiting for that attempt (already claimed, moved on,
/// or unknown), which leaves it alone.
pub async fn dead_letter(
    client: &impl GenericClient,
    run_id: Uuid,
    attempt: i32,
    reason: &str,
) -> Result<bool, DbError> {
    let moved = client
        .execute(
            "UPDATE runs SET status = 'dead', finished_at = now(), error_code = $4,
                    error = 'RabbitMQ dead-lettered its message (' || $3 ||
                            '); retry it with POST /runs/{id}/retry',
                    heartbeat_at = NULL
              WHERE id = $1 AND attempt = $2 AND status = 'queued'",
            &[
                &run_id,
                &attempt,
                &reason,
                &FailureCode::DeadLettered.as_str(),
            ],
        )
        .await?;
    Ok(moved == 1)
}

/// What a retry request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// A fresh attempt is queued.
    Queued,
    /// The run has not finished; it cannot be retried now.
    NotFinished(RunStatus),
    /// No such run.
    Unknown,
}

/// `<final> → queued` with `attempt + 1` (and room for exactly that attempt): a manual
/// retry of a finished, failed, timed-out, cancelled or dead run.
pub async fn retry(client: &impl GenericClient, run_id: Uuid) -> Result<RetryOutcome, DbError> {
    let moved = client
        .execute(
            "UPDATE runs SET status = 'queued', attempt = attempt + 1,
                    max_attempts = GREATEST(max_attempts, attempt + 1),
                    queued_at = now(), published_at = NULL, started_at = NULL, finished_at = NULL, worker = NULL,
                    heartbeat_at = NULL, retry_at = NULL, cancel_requested_at = NULL,
                    exit_code = NULL, error_code = NULL, error = NULL, result = NULL
              WHERE id = $1
                AND status IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'dead')",
            &[&run_id],
        )
        .await?;
    if moved == 1 {
        return Ok(RetryOutcome::Queued);
    }
    let row = client
        .query_opt("SELECT status FROM runs WHERE id = $1", &[&run_id])
        .await?;
    Ok(match row {
        None => RetryOutcome::Unknown,
        Some(r) => RetryOutcome::NotFinished(
            RunStatus::parse(&r.get::<_, String>(0)).unwrap_or(RunStatus::Running),
        ),
    })
}

/// `running → queued` with `attempt + 1` for runs this consumer stopped itself (drain
/// grace over at shutdown), so they run again elsewhere without waiting for the reaper.
/// Returns how many moved.
pub async fn release(client: &impl GenericClient, runs: &[(Uuid, i32)]) -> Result<u64, DbError> {
    let ids: Vec<Uuid> = runs.iter().map(|r| r.0).collect();
    let attempts: Vec<i32> = runs.iter().map(|r| r.1).collect();
    Ok(client
        .execute(
            "UPDATE runs r SET status = 'queued', attempt = r.attempt + 1, published_at = NULL,
                    queued_at = now(), started_at = NULL, worker = NULL, heartbeat_at = NULL
               FROM unnest($1::uuid[], $2::int[]) AS mine(id, attempt)
              WHERE r.id = mine.id AND r.attempt = mine.attempt AND r.status = 'running'",
            &[&ids, &attempts],
        )
        .await?)
}

/// What a cancel request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// It had not started: it is `cancelled` now and never will start.
    Cancelled,
    /// It is running: its consumer was asked to terminate it.
    Requested,
    /// It had already finished with this status.
    AlreadyFinal(RunStatus),
    /// No such run.
    Unknown,
}

/// Cancels a run: `queued → cancelled` at once; a running run gets `cancel_requested_at`
/// and its consumer terminates it and records `cancelled`.
pub async fn cancel(client: &impl GenericClient, run_id: Uuid) -> Result<CancelOutcome, DbError> {
    let now_cancelled = client
        .execute(
            "UPDATE runs SET status = 'cancelled', finished_at = now(), cancel_requested_at = now(),
                    error_code = $2, error = 'cancelled before it started'
              WHERE id = $1 AND status IN ('queued', 'retrying')",
            &[&run_id, &FailureCode::Cancelled.as_str()],
        )
        .await?;
    if now_cancelled == 1 {
        return Ok(CancelOutcome::Cancelled);
    }
    let requested = client
        .execute(
            "UPDATE runs SET cancel_requested_at = COALESCE(cancel_requested_at, now())
              WHERE id = $1 AND status = 'running'",
            &[&run_id],
        )
        .await?;
    if requested == 1 {
        return Ok(CancelOutcome::Requested);
    }
    let row = client
        .query_opt("SELECT status FROM runs WHERE id = $1", &[&run_id])
        .await?;
    Ok(match row {
        None => CancelOutcome::Unknown,
        Some(row) => {
            let status: String = row.get(0);
            match RunStatus::parse(&status) {
                Some(s) if s.is_final() => CancelOutcome::AlreadyFinal(s),
                // It moved between the statements (e.g. reclaimed to queued): try again.
                _ => Box::pin(cancel(client, run_id)).await?,
            }
        }
    })
}

/// Of the given runs, those a cancel was requested for while they run.
pub async fn cancel_requested(
    client: &impl GenericClient,
    run_ids: &[Uuid],
) -> Result<Vec<Uuid>, DbError> {
    let rows = client
        .query(
            "SELECT id FROM runs
              WHERE id = ANY($1) AND status = 'running' AND cancel_requested_at IS NOT NULL",
            &[&run_ids],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Marks runs as published (their message is confirmed by the broker): out of the outbox.
pub async fn mark_published(client: &impl GenericClient, run_ids: &[Uuid]) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE runs SET published_at = now() WHERE id = ANY($1) AND published_at IS NULL",
            &[&run_ids],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_finality() {
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                Value::String(s.as_str().into())
            );
        }
        assert_eq!(RunStatus::parse("nope"), None);
        assert!(!RunStatus::Queued.is_final());
        assert!(!RunStatus::Running.is_final());
        assert!(!RunStatus::Retrying.is_final());
        assert!(RunStatus::TimedOut.is_final());
    }
}
