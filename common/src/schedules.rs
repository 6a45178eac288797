//! Schedules: a task on a cron expression in an IANA timezone, and firing them.
//!
//! Each schedule row keeps `next_fire_at`, the next scheduled time not yet fired. A
//! scheduler takes due rows with `FOR UPDATE SKIP LOCKED`, creates their runs and moves
//! `next_fire_at` on in one transaction, so replicas share the work and never fire a row
//! together; the unique `(schedule_id, scheduled_for)` on runs is the last guard. Every
//! change through the API sends `NOTIFY runfleet_schedules`, which wakes the schedulers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::amqp::Publisher;
use crate::cron::CronSchedule;
use crate::db::DbPool;
use crate::error::Error;
use crate::runs::{self, Run, Trigger};
use crate::tasks;

/// The Postgres channel schedule changes are announced on.
pub const CHANGES_CHANNEL: &str = "runfleet_schedules";

/// Largest `catchup_limit`.
pub const MAX_CATCHUP_LIMIT: i32 = 10_000;

/// Largest `count` of a preview.
pub const MAX_PREVIEW: usize = 1000;

/// What a fire does while the schedule's previous run is still queued or running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Start another run anyway.
    #[default]
    Allow,
    /// Skip this fire.
    Skip,
}

impl Overlap {
    fn as_str(self) -> &'static str {
        match self {
            Overlap::Allow => "allow",
            Overlap::Skip => "skip",
        }
    }
}

/// A schedule as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Schedule {
    /// Schedule id.
    pub id: Uuid,
    /// The task it runs.
    pub task: String,
    /// Cron expression (5 fields, or 6 with seconds first).
    pub cron: String,
    /// IANA timezone the expression is read in.
    pub timezone: String,
    /// After downtime: one run per missed fire (true) or only the latest (false).
    pub catchup: bool,
    /// Most runs one catch-up creates.
    pub catchup_limit: i32,
    /// `allow` or `skip` while the previous run is still queued/running.
    pub overlap: Overlap,
    /// No fires before this time.
    pub start_at: Option<DateTime<Utc>>,
    /// No fires after this time.
    pub end_at: Option<DateTime<Utc>>,
    /// Paused schedules do not fire.
    pub paused: bool,
    /// Parameters laid over the task's.
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// The next scheduled time (null: paused or none left).
    pub next_fire_at: Option<DateTime<Utc>>,
    /// The scheduled time of the latest fire.
    pub last_fired_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

/// What a client gives to create or replace a schedule.
#[derive(Debug, Clone, Default)]
pub struct ScheduleInput {
    /// Task name.
    pub task: String,
    /// Cron expression.
    pub cron: String,
    /// IANA timezone (UTC when absent).
    pub timezone: Option<String>,
    /// Catch up every missed fire.
    pub catchup: bool,
    /// Cap of one catch-up (100 when absent).
    pub catchup_limit: Option<i64>,
    /// Overlap policy.
    pub overlap: Overlap,
    /// First allowed fire time.
    pub start_at: Option<DateTime<Utc>>,
    /// Last allowed fire time.
    pub end_at: Option<DateTime<Utc>>,
    /// Start paused.
    pub paused: bool,
    /// Parameters over the task's.
    pub parameters: Map<String, Value>,
}

const COLUMNS: &str = "id, task_name, cron, timezone, catchup, catchup_limit, overlap, start_at, \
    end_at, paused, parameters, next_fire_at, last_fired_at, created_at, updated_at";

fn from_row(row: &Row) -> Schedule {
    let overlap: String = row.get(6);
    Schedule {
        id: row.get(0),
        task: row.get(1),
        cron: row.get(2),
        timezone: row.get(3),
        catchup: row.get(4),
        catchup_limit: row.get(5),
        overlap: if overlap == "skip" {
            Overlap::Skip
        } else {
            Overlap::Allow
        },
        start_at: row.get(7),
        end_at: row.get(8),
        paused: row.get(9),
        parameters: row.get(10),
        next_fire_at: if row.get::<_, bool>(9) {
            None
        } else {
            row.get(11)
        },
        last_fired_at: row.get(12),
        created_at: row.get(13),
        updated_at: row.get(14),
    }
}

/// Parses a schedule's expression and timezone, naming the field at fault.
pub fn parse_cron(expr: &str, timezone: &str) -> Result<CronSchedule, Error> {
    CronSchedule::parse(expr, timezone).map_err(|e| {
        Error::invalid(
            if e.field() == "cron" {
                "invalid_cron"
            } else {
                "invalid_timezone"
            },
            e.field(),
            e.to_string(),
        )
    })
}

/// The first fire time after `now` (or from `start_at` when that is later), within
/// `end_at`; None when there is none.
pub fn first_fire(
    cron: &CronSchedule,
    now: DateTime<Utc>,
    start_at: Option<DateTime<Utc>>,
    end_at: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let next = match start_at {
        Some(start) if start > now => cron.next_from(start),
        _ => cron.next_after(now),
    }?;
    match end_at {
        Some(end) if next > end => None,
        _ => Some(next),
    }
}

struct Checked {
    timezone: String,
    catchup_limit: i32,
    next_fire_at: Option<DateTime<Utc>>,
}

async fn check(
    client: &impl deadpool_postgres::GenericClient,
    input: &ScheduleInput,
    max_parameters_bytes: usize,
) -> Result<Checked, Error> {
    let timezone = input.timezone.clone().unwrap_or_else(|| "UTC".into());
    let cron = parse_cron(&input.cron, &timezone)?;
    let catchup_limit = match input.catchup_limit {
        None => 100,
        Some(n) if (1..=i64::from(MAX_CATCHUP_LIMIT)).contains(&n) => n as i32,
        Some(n) => {
            return Err(Error::invalid(
                "invalid_catchup_limit",
                "catchup_limit",
                format!("catchup_limit is {n}; give 1 to {MAX_CATCHUP_LIMIT}"),
            ));
        }
    };
    if let (Some(start), Some(end)) = (input.start_at, input.end_at)
        && end <= start
    {
        return Err(Error::invalid(
            "invalid_window",
            "end_at",
            "end_at must be after start_at",
        ));
    }
    runs::check_parameters(&input.parameters, max_parameters_bytes)?;
    tasks::get(client, &input.task).await.map_err(|e| match e {
        Error::NotFound { message, .. } => Error::invalid("unknown_task", "task", message),
        other => other,
    })?;
    Ok(Checked {
        timezone,
        catchup_limit,
        next_fire_at: first_fire(&cron, Utc::now(), input.start_at, input.end_at),
    })
}

fn not_found(id: Uuid) -> Error {
    Error::NotFound {
        code: "schedule_not_found",
        message: format!("no schedule with id {id}"),
    }
}

async fn announce(client: &impl deadpool_postgres::GenericClient) {
    // Best effort: schedulers also re-read on their own within a few seconds.
    if let Err(e) = client
        .batch_execute(&format!("NOTIFY {CHANGES_CHANNEL}"))
        .await
    {
        tracing::warn!(error = %e, "could not notify schedulers of a schedule change");
    }
}

/// Creates a schedule.
pub async fn create(
    pool: &DbPool,
    input: ScheduleInput,
    max_parameters_bytes: usize,
) -> Result<Schedule, Error> {
    let client = pool.get().await?;
    let checked = check(&client, &input, max_parameters_bytes).await?;
    let row = client
        .query_one(
            &format!(
                "INSERT INTO schedules (id, task_name, cron, timezone, catchup, catchup_limit,
                                        overlap, start_at, end_at, paused, parameters,
                                        next_fire_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 RETURNING {COLUMNS}"
            ),
            &[
                &Uuid::now_v7(),
                &input.task,
                &input.cron.trim(),
                &checked.timezone,
                &input.catchup,
                &checked.catchup_limit,
                &input.overlap.as_str(),
                &input.start_at,
                &input.end_at,
                &input.paused,
                &Value::Object(input.parameters),
                &checked.next_fire_at,
            ],
        )
        .await?;
    announce(&client).await;
    Ok(from_row(&row))
}

/// Replaces every setting of a schedule; its next fire is computed afresh from now (an
/// edit never back-fills).
pub async fn replace(
    pool: &DbPool,
    id: Uuid,
    input: ScheduleInput,
    max_parameters_bytes: usize,
) -> Result<Schedule, Error> {
    let client = pool.get().await?;
    let checked = check(&client, &input, max_parameters_bytes).await?;
    let row = client
        .query_opt(
            &format!(
                "UPDATE schedules SET task_name = $2, cron = $3, timezone = $4, catchup = $5,
                        catchup_limit = $6, overlap = $7, start_at = $8, end_at = $9,
                        paused = $10, parameters = $11, next_fire_at = $12, updated_at = now()
                  WHERE id = $1
              RETURNING {COLUMNS}"
            ),
            &[
                &id,
                &input.task,
                &input.cron.trim(),
                &checked.timezone,
                &input.catchup,
                &checked.catchup_limit,
                &input.overlap.as_str(),
                &input.start_at,
                &input.end_at,
                &input.paused,
                &Value::Object(input.parameters),
                &checked.next_fire_at,
            ],
        )
        .await?;
    announce(&client).await;
    row.map(|r| from_row(&r)).ok_or_else(|| not_found(id))
}

/// Deletes a schedule (its runs stay).
pub async fn delete(pool: &DbPool, id: Uuid) -> Result<(), Error> {
    let client = pool.get().await?;
    let n = client
        .execute("DELETE FROM schedules WHERE id = $1", &[&id])
        .await?;
    announce(&client).await;
    if n == 1 { Ok(()) } else { Err(not_found(id)) }
}

/// One schedule.
pub async fn get(pool: &DbPool, id: Uuid) -> Result<Schedule, Error> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM schedules WHERE id = $1"),
            &[&id],
        )
        .await?;
    row.map(|r| from_row(&r)).ok_or_else(|| not_found(id))
}

/// All schedules, oldest first; only those of `task` when given.
pub async fn list(pool: &DbPool, task: Option<&str>) -> Result<Vec<Schedule>, Error> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM schedules WHERE ($1::text IS NULL OR task_name = $1)
                  ORDER BY id"
            ),
            &[&task],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Pauses (`paused = true`) or resumes a schedule. Resuming starts from the next fire
/// after now: the paused stretch is not back-filled.
pub async fn set_paused(pool: &DbPool, id: Uuid, paused: bool) -> Result<Schedule, Error> {
    let mut schedule = get(pool, id).await?;
    let cron = parse_cron(&schedule.cron, &schedule.timezone)?;
    let next = first_fire(&cron, Utc::now(), schedule.start_at, schedule.end_at);
    let client = pool.get().await?;
    let row = client
        .query_opt(
            &format!(
                "UPDATE schedules SET paused = $2, updated_at = now(),
                        next_fire_at = CASE WHEN $2 THEN next_fire_at ELSE $3 END
                  WHERE id = $1
              RETURNING {COLUMNS}"
            ),
            &[&id, &paused, &next],
        )
        .await?;
    announce(&client).await;
    schedule = row.map(|r| from_row(&r)).ok_or_else(|| not_found(id))?;
    Ok(schedule)
}

/// Creates one run of the schedule's task now (trigger `api`), whatever its cron says.
pub async fn trigger(pool: &DbPool, publisher: &Publisher, id: Uuid) -> Result<Run, Error> {
    let schedule = get(pool, id).await?;
    let client = pool.get().await?;
    let task = tasks::get(&client, &schedule.task).await?;
    let params = schedule.parameters.as_object().cloned().unwrap_or_default();
    let spec = task.fire_spec(&params, id, Utc::now(), Trigger::Api);
    let submitted = runs::insert(&client, &spec).await?;
    runs::publish(&client, publisher, std::slice::from_ref(&submitted.run)).await;
    Ok(submitted.run)
}

/// The next `count` fire times of a schedule, in its timezone.
pub async fn upcoming(
    pool: &DbPool,
    id: Uuid,
    count: usize,
) -> Result<(Schedule, Vec<DateTime<chrono_tz::Tz>>), Error> {
    let schedule = get(pool, id).await?;
    let cron = parse_cron(&schedule.cron, &schedule.timezone)?;
    let mut times = Vec::new();
    if let Some(first) = first_fire(&cron, Utc::now(), schedule.start_at, schedule.end_at) {
        let tz = cron.timezone();
        times.push(first.with_timezone(&tz));
        times.extend(
            cron.upcoming(first, count.saturating_sub(1))
                .into_iter()
                .filter(|t| schedule.end_at.is_none_or(|end| *t <= end)),
        );
    }
    times.truncate(count);
    Ok((schedule, times))
}

/// One run a fire created, for publishing and the lag metric.
#[derive(Debug, Clone)]
pub struct Fired {
    /// The run.
    pub run: Run,
    /// The scheduled time it stands for.
    pub scheduled_for: DateTime<Utc>,
}

/// What one [`fire_due`] pass did.
#[derive(Debug, Default)]
pub struct FireReport {
    /// Schedules that were due and taken by this pass.
    pub schedules: usize,
    /// Runs created (commit done; publish them next).
    pub fired: Vec<Fired>,
    /// Fires skipped because the previous run was still queued or running.
    pub skipped_overlap: usize,
    /// Missed fires not run because catch-up is off or its limit cut them.
    pub missed: usize,
    /// Fires that could not make a run (their task's script is gone).
    pub failed: usize,
}

/// Fires up to `batch` due schedules at `now`: for each, the runs its missed or due fires
/// call for (see [`CronSchedule::due_between`]), then its next fire time, in one
/// transaction. Rows another scheduler holds are skipped, not waited for.
pub async fn fire_due(pool: &DbPool, now: DateTime<Utc>, batch: i64) -> Result<FireReport, Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            &format!(
                "SELECT {COLUMNS} FROM schedules
                  WHERE NOT paused AND next_fire_at <= $1
                  ORDER BY next_fire_at
                  LIMIT $2
                  FOR UPDATE SKIP LOCKED"
            ),
            &[&now, &batch],
        )
        .await?;
    let mut report = FireReport {
        schedules: rows.len(),
        ..FireReport::default()
    };
    for row in &rows {
        let schedule = from_row(row);
        let from: DateTime<Utc> = row.get(11);
        let cron = match parse_cron(&schedule.cron, &schedule.timezone) {
            Ok(c) => c,
            Err(e) => {
                // Stored expressions were checked on save; a parser change could still
                // refuse one. Park the schedule rather than retry it forever.
                tracing::error!(schedule_id = %schedule.id, error = %e, "schedule's cron no longer parses; it will not fire until edited");
                tx.execute(
                    "UPDATE schedules SET next_fire_at = NULL WHERE id = $1",
                    &[&schedule.id],
                )
                .await?;
                continue;
            }
        };
        let until = schedule.end_at.map_or(now, |end| end.min(now));
        let (due, cut) = cron.due_between(
            from,
            until,
            schedule.catchup,
            schedule.catchup_limit as usize,
        );
        if cut {
            tracing::warn!(schedule_id = %schedule.id, limit = schedule.catchup_limit,
                missed_from = %from, kept_from = %due[0],
                "catch-up limit reached: older missed fires are not run");
        } else if !schedule.catchup && due.first().is_some_and(|t| *t > from) {
            tracing::info!(schedule_id = %schedule.id, missed_from = %from, firing = %due[0],
                "fires were missed while no scheduler ran; catch-up is off, so only the latest runs");
        }
        if cut || (!schedule.catchup && due.first().is_some_and(|t| *t > from)) {
            report.missed += 1;
        }
        let task = tasks::get(&tx, &schedule.task).await?;
        let params = schedule.parameters.as_object().cloned().unwrap_or_default();
        for at in &due {
            if schedule.overlap == Overlap::Skip && has_active_run(&tx, schedule.id).await? {
                tracing::info!(schedule_id = %schedule.id, scheduled_for = %at,
                    "previous run still queued or running; fire skipped (overlap: skip)");
                report.skipped_overlap += 1;
                continue;
            }
            let spec = task.fire_spec(&params, schedule.id, *at, Trigger::Schedule);
            match runs::insert(&tx, &spec).await {
                Ok(submitted) if submitted.created => report.fired.push(Fired {
                    run: submitted.run,
                    scheduled_for: *at,
                }),
                Ok(_) => {}
                Err(e @ (Error::Invalid { .. } | Error::NotFound { .. })) => {
                    tracing::error!(schedule_id = %schedule.id, task = %task.name, error = %e,
                        "schedule fire could not make a run; fix the task");
                    report.failed += 1;
                }
                Err(e) => return Err(e),
            }
        }
        let next = cron
            .next_after(now)
            .filter(|t| schedule.end_at.is_none_or(|end| *t <= end));
        tx.execute(
            "UPDATE schedules SET next_fire_at = $2,
                    last_fired_at = COALESCE($3, last_fired_at)
              WHERE id = $1",
            &[&schedule.id, &next, &due.last()],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(report)
}

async fn has_active_run(
    client: &impl deadpool_postgres::GenericClient,
    schedule_id: Uuid,
) -> Result<bool, Error> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM runs WHERE schedule_id = $1
                              AND status IN ('queued', 'running', 'retrying'))",
            &[&schedule_id],
        )
        .await?
        .get(0))
}

/// The earliest `next_fire_at` of an active schedule.
pub async fn next_due(pool: &DbPool) -> Result<Option<DateTime<Utc>>, Error> {
    let client = pool.get().await?;
    Ok(client
        .query_one(
            "SELECT min(next_fire_at) FROM schedules WHERE NOT paused AND next_fire_at IS NOT NULL",
            &[],
        )
        .await?
        .get(0))
}

/// Schedules by state: `active`, `paused`, `ended` (no fire left).
pub async fn count_by_state(pool: &DbPool) -> Result<Vec<(String, i64)>, Error> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT CASE WHEN paused THEN 'paused'
                         WHEN next_fire_at IS NULL THEN 'ended'
                         ELSE 'active' END AS state, count(*)
               FROM schedules GROUP BY 1",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
