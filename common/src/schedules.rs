//! Schedules: a task on a cron expression in an IANA timezone, and firing them.
//!
//! Each schedule row keeps `next_fire_at`, the next scheduled time not yet fired. A
//! scheduler takes due rows with `FOR UPDATE SKIP LOCKED`, creates their runs and moves
//! `next_fire_at` on in one transaction, so replicas share the work and never fire a row
//! together; the unique `(schedule_id, scheduled_for)` on runs is the last guard. Every
//! change through the API sends `NOTIFY runfleet_schedules`, which wakes the schedulers.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_postgres::Row;
use tracing::Instrument;
use uuid::Uuid;

use crate::amqp::Publisher;
use crate::cron::CronSchedule;
use crate::db::DbPool;
use crate::error::Error;
use crate::runs::{self, Run, RunSpec, Trigger};
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
    tasks::get_for_field(client, &input.task, "task").await?;
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
    let sql = format!(
        "INSERT INTO schedules (id, task_name, cron, timezone, catchup, catchup_limit,
                                overlap, start_at, end_at, paused, parameters, next_fire_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         RETURNING {COLUMNS}"
    );
    let row = save(pool, Uuid::now_v7(), input, max_parameters_bytes, &sql).await?;
    Ok(row.expect("an insert returns its row"))
}

/// Replaces every setting of a schedule; its next fire is computed afresh from now (an
/// edit never back-fills).
pub async fn replace(
    pool: &DbPool,
    id: Uuid,
    input: ScheduleInput,
    max_parameters_bytes: usize,
) -> Result<Schedule, Error> {
    let sql = format!(
        "UPDATE schedules SET task_name = $2, cron = $3, timezone = $4, catchup = $5,
                catchup_limit = $6, overlap = $7, start_at = $8, end_at = $9,
                paused = $10, parameters = $11, next_fire_at = $12, updated_at = now()
          WHERE id = $1
      RETURNING {COLUMNS}"
    );
    save(pool, id, input, max_parameters_bytes, &sql)
        .await?
        .ok_or_else(|| not_found(id))
}

/// Checks `input`, runs `sql` (an insert or update taking the id and the settings as
/// $1..$12) and tells the schedulers; None when it touched no row.
async fn save(
    pool: &DbPool,
    id: Uuid,
    input: ScheduleInput,
    max_parameters_bytes: usize,
    sql: &str,
) -> Result<Option<Schedule>, Error> {
    let client = pool.get().await?;
    let checked = check(&client, &input, max_parameters_bytes).await?;
    let row = client
        .query_opt(
            sql,
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
    Ok(row.map(|r| from_row(&r)))
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
    fetch(&pool.get().await?, id).await
}

async fn fetch(
    client: &impl deadpool_postgres::GenericClient,
    id: Uuid,
) -> Result<Schedule, Error> {
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
    let client = pool.get().await?;
    let schedule = fetch(&client, id).await?;
    let cron = parse_cron(&schedule.cron, &schedule.timezone)?;
    let next = first_fire(&cron, Utc::now(), schedule.start_at, schedule.end_at);
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
    row.map(|r| from_row(&r)).ok_or_else(|| not_found(id))
}

/// Creates one run of the schedule's task now (trigger `api`), whatever its cron says.
pub async fn trigger(pool: &DbPool, publisher: &Publisher, id: Uuid) -> Result<Run, Error> {
    let client = pool.get().await?;
    let schedule = fetch(&client, id).await?;
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

/// What one [`fire_due`] pass did.
#[derive(Debug, Default)]
pub struct FireReport {
    /// Schedules that were due and taken by this pass.
    pub schedules: usize,
    /// Runs created (commit done; publish them next). Each has its `scheduled_for`.
    pub fired: Vec<Run>,
    /// Fires skipped because the previous run was still queued or running.
    pub skipped_overlap: usize,
    /// Schedules whose missed fires were not all run (catch-up off, or its limit cut).
    pub missed: usize,
    /// Fires that could not make a run (their task's script is gone).
    pub failed: usize,
}

/// Fires up to `batch` due schedules at `now`: for each, the runs its missed or due fires
/// call for (see [`CronSchedule::due_between`]), then its next fire time, in one
/// transaction. Rows another scheduler holds are skipped, not waited for.
///
/// The cost is kept per batch, not per fire: each task and its script version are read
/// once, the inserts are sent back to back on the connection (tokio-postgres pipelines
/// concurrent queries), and every schedule's next fire time moves in one UPDATE.
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
    // Task name → the task and its resolved script version (None: it cannot make runs).
    let mut tasks: HashMap<String, Option<(tasks::Task, i32)>> = HashMap::new();
    let mut fires: Vec<(RunSpec, i32)> = Vec::new();
    let mut moved = Vec::with_capacity(rows.len());
    let mut next_fires = Vec::with_capacity(rows.len());
    let mut last_fires = Vec::with_capacity(rows.len());
    for row in &rows {
        let schedule = from_row(row);
        let from: DateTime<Utc> = row.get(11);
        moved.push(schedule.id);
        let cron = match parse_cron(&schedule.cron, &schedule.timezone) {
            Ok(c) => c,
            Err(e) => {
                // Stored expressions were checked on save; a parser change could still
                // refuse one. Park the schedule rather than retry it forever.
                tracing::error!(schedule_id = %schedule.id, error = %e, "schedule's cron no longer parses; it will not fire until edited");
                next_fires.push(None);
                last_fires.push(None);
                continue;
            }
        };
        let until = schedule.end_at.map_or(now, |end| end.min(now));
        let (mut due, cut) = cron.due_between(
            from,
            until,
            schedule.catchup,
            schedule.catchup_limit as usize,
        );
        let latest_only = !schedule.catchup && due.first().is_some_and(|t| *t > from);
        if cut {
            tracing::warn!(schedule_id = %schedule.id, limit = schedule.catchup_limit,
                missed_from = %from, kept_from = %due[0],
                "catch-up limit reached: older missed fires are not run");
        } else if latest_only {
            tracing::info!(schedule_id = %schedule.id, missed_from = %from, firing = %due[0],
                "fires were missed while no scheduler ran; catch-up is off, so only the latest runs");
        }
        report.missed += usize::from(cut || latest_only);
        next_fires.push(
            cron.next_after(now)
                .filter(|t| schedule.end_at.is_none_or(|end| *t <= end)),
        );
        last_fires.push(due.last().copied());
        if due.is_empty() {
            continue;
        }
        if schedule.overlap == Overlap::Skip {
            // One run at a time: the first due fire runs unless an earlier run is still
            // active; the later ones would find that run queued.
            let active = has_active_run(&tx, schedule.id).await?;
            let keep = usize::from(!active);
            report.skipped_overlap += due.len() - keep;
            tracing::info!(schedule_id = %schedule.id, skipped = due.len() - keep,
                "previous run still queued or running; fires skipped (overlap: skip)");
            due.truncate(keep);
        }
        let task = match tasks.get(&schedule.task) {
            Some(known) => known,
            None => {
                let loaded = load_task(&tx, &schedule.task).await?;
                tasks.entry(schedule.task.clone()).or_insert(loaded)
            }
        };
        let Some((task, version)) = task else {
            report.failed += due.len();
            continue;
        };
        let params = schedule.parameters.as_object().cloned().unwrap_or_default();
        for at in due {
            fires.push((
                task.fire_spec(&params, schedule.id, at, Trigger::Schedule),
                *version,
            ));
        }
    }
    // Each fire starts a trace of its own; its run carries it to the consumer.
    let inserted = futures_util::future::join_all(fires.iter().map(|(spec, version)| {
        let span = match spec.fire {
            Some((schedule_id, at)) => tracing::info_span!(parent: None, "schedule_fire",
                schedule_id = %schedule_id, scheduled_for = %at.to_rfc3339()),
            None => tracing::Span::none(),
        };
        runs::insert_resolved(&tx, spec, *version).instrument(span)
    }))
    .await;
    for submitted in inserted {
        let submitted = submitted?;
        if submitted.created {
            report.fired.push(submitted.run);
        }
    }
    if !moved.is_empty() {
        tx.execute(
            "UPDATE schedules s SET next_fire_at = m.next,
                    last_fired_at = COALESCE(m.last, s.last_fired_at)
               FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS m(id, next, last)
              WHERE s.id = m.id",
            &[&moved, &next_fires, &last_fires],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(report)
}

/// A task and its resolved script version for firing; None (logged) when the task can no
/// longer make runs.
async fn load_task(
    client: &impl deadpool_postgres::GenericClient,
    name: &str,
) -> Result<Option<(tasks::Task, i32)>, Error> {
    let task = tasks::get(client, name).await?;
    match crate::scripts::resolve(client, &task.script, task.version, "script").await {
        Ok(version) => Ok(Some((task, version))),
        Err(e @ (Error::Invalid { .. } | Error::NotFound { .. })) => {
            tracing::error!(task = %name, error = %e, "schedule fires could not make a run; fix the task");
            Ok(None)
        }
        Err(e) => Err(e),
    }
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

/// Active schedules whose next fire is more than `late` overdue.
pub async fn count_overdue(pool: &DbPool, late: std::time::Duration) -> Result<i64, Error> {
    let client = pool.get().await?;
    Ok(client
        .query_one(
            "SELECT count(*) FROM schedules
              WHERE NOT paused AND next_fire_at < now() - make_interval(secs => $1)",
            &[&late.as_secs_f64()],
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
