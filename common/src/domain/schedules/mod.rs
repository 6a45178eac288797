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

mod firing;

pub use firing::{FireReport, count_by_state, count_overdue, fire_due, next_due};

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
