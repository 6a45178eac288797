//! Firing due schedules, exactly once per fire time across scheduler replicas, and the
//! counts the scheduler's gauges show.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tracing::Instrument;
use uuid::Uuid;

use super::{COLUMNS, Overlap, from_row, parse_cron};
use crate::db::DbPool;
use crate::error::Error;
use crate::runs::{self, Run, RunSpec, Trigger};
use crate::tasks;

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
/// call for (see [`crate::cron::CronSchedule::due_between`]), then its next fire time, in one
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
