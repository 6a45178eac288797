//! The firing loop: sleep until the earliest `next_fire_at` (or a schedule change), fire
//! what is due, publish the runs, repeat.
//!
//! Several schedulers may run this loop against one database: each pass locks the due
//! rows it takes (`SKIP LOCKED`), so a fire is made by exactly one of them, and a fire is
//! never skipped while one of them runs. Changes made through the API arrive as
//! `NOTIFY runfleet_schedules` on a dedicated `LISTEN` connection; without it (Postgres
//! restarting), the loop still re-reads the earliest fire time every `max_idle`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use runfleet_common::amqp::Publisher;
use runfleet_common::db::DbPool;
use runfleet_common::retry::{self, Backoff};
use runfleet_common::schedules::{self, CHANGES_CHANNEL};
use runfleet_common::shutdown::Shutdown;
use tokio::sync::Notify;

use crate::metrics::{SCHEDULER_FIRE_LAG, SCHEDULER_FIRES, SCHEDULER_OVERDUE, SCHEDULER_SCHEDULES};

/// Due schedules taken per transaction.
const BATCH: i64 = 200;
/// When due rows are held by another scheduler, look again this soon.
const BUSY_RETRY: Duration = Duration::from_millis(20);
/// How often the `runfleet_scheduler_schedules` gauge is refreshed.
const GAUGE_EVERY: Duration = Duration::from_secs(15);
/// A schedule this late is reported as overdue (`runfleet_scheduler_overdue_schedules`).
const OVERDUE_AFTER: Duration = Duration::from_secs(60);

/// Runs the firing loop until `shutdown`.
pub async fn fire_forever(
    pool: DbPool,
    publisher: Publisher,
    database_url: String,
    max_idle: Duration,
    shutdown: Shutdown,
) {
    let changed = Arc::new(Notify::new());
    let listener = tokio::spawn(listen_forever(
        database_url,
        changed.clone(),
        shutdown.clone(),
    ));
    // The schedules gauge is recounted after every announced change and every GAUGE_EVERY.
    let mut gauge_at = tokio::time::Instant::now();
    // Capped at 5 s, not 10: a schedule fires late by up to this once Postgres is back.
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    while !shutdown.is_cancelled() {
        if tokio::time::Instant::now() >= gauge_at {
            refresh_gauge(&pool).await;
            gauge_at = tokio::time::Instant::now() + GAUGE_EVERY;
        }
        let wait = match fire_all_due(&pool, &publisher).await {
            Ok(()) => {
                backoff.reset();
                match schedules::next_due(&pool).await {
                    Ok(Some(at)) => (at - Utc::now())
                        .to_std()
                        // In the past: another scheduler holds those rows right now.
                        .unwrap_or(BUSY_RETRY)
                        .min(max_idle),
                    Ok(None) => max_idle,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the next fire time; retrying");
                        backoff.peek()
                    }
                }
            }
            Err(e) => {
                let wait = backoff.next_wait();
                tracing::warn!(error = %e, retry_in = ?wait, "cannot fire schedules; retrying");
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = changed.notified() => gauge_at = tokio::time::Instant::now(),
            _ = shutdown.cancelled() => break,
        }
    }
    listener.abort();
}

/// Fires every due schedule, a batch per transaction, and publishes each batch's runs
/// after its commit (the producer's outbox sweeper publishes any the broker missed).
async fn fire_all_due(pool: &DbPool, publisher: &Publisher) -> Result<(), runfleet_common::Error> {
    loop {
        let report = schedules::fire_due(pool, Utc::now(), BATCH).await?;
        if !report.fired.is_empty() {
            let client = pool.get().await?;
            runfleet_common::runs::publish(&client, publisher, &report.fired).await;
            let now = Utc::now();
            for run in &report.fired {
                let scheduled_for = run.scheduled_for.unwrap_or(now);
                let lag = (now - scheduled_for).num_microseconds().unwrap_or(0) as f64 / 1e6;
                SCHEDULER_FIRE_LAG.observe(lag.max(0.0));
                runfleet_common::runs::RUNS_SUBMITTED
                    .with_label_values(&[run.queue.as_str(), "schedule"])
                    .inc();
                tracing::debug!(run_id = %run.id, schedule_id = ?run.schedule_id,
                    %scheduled_for, lag_seconds = lag, "schedule fired");
            }
        }
        SCHEDULER_FIRES
            .with_label_values(&["fired"])
            .inc_by(report.fired.len() as u64);
        SCHEDULER_FIRES
            .with_label_values(&["skipped_overlap"])
            .inc_by(report.skipped_overlap as u64);
        SCHEDULER_FIRES
            .with_label_values(&["missed"])
            .inc_by(report.missed as u64);
        SCHEDULER_FIRES
            .with_label_values(&["failed"])
            .inc_by(report.failed as u64);
        if report.schedules < BATCH as usize {
            return Ok(());
        }
    }
}

async fn refresh_gauge(pool: &DbPool) {
    match schedules::count_by_state(pool).await {
        Ok(counts) => {
            for state in ["active", "paused", "ended"] {
                let n = counts
                    .iter()
                    .find(|(s, _)| s == state)
                    .map_or(0, |(_, n)| *n);
                SCHEDULER_SCHEDULES.with_label_values(&[state]).set(n);
            }
        }
        Err(e) => tracing::debug!(error = %e, "cannot count schedules"),
    }
    match schedules::count_overdue(pool, OVERDUE_AFTER).await {
        Ok(n) => SCHEDULER_OVERDUE.set(n),
        Err(e) => tracing::debug!(error = %e, "cannot count overdue schedules"),
    }
}

/// Keeps a `LISTEN runfleet_schedules` connection open (reconnecting with backoff) and
/// wakes the loop on every notification and after every reconnect.
async fn listen_forever(database_url: String, changed: Arc<Notify>, shutdown: Shutdown) {
    let mut backoff = Backoff::reconnect();
    while !shutdown.is_cancelled() {
        match tokio_postgres::connect(&database_url, tokio_postgres::NoTls).await {
            Ok((client, mut connection)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(tokio_postgres::AsyncMessage::Notification(_)) => {
                                if tx.send(()).is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "schedule change listener lost Postgres");
                                return;
                            }
                        }
                    }
                });
                if let Err(e) = client
                    .batch_execute(&format!("LISTEN {CHANGES_CHANNEL}"))
                    .await
                {
                    tracing::warn!(error = %e, "cannot LISTEN for schedule changes");
                    driver.abort();
                } else {
                    backoff.reset();
                    // Changes made while no listener was up are picked up now.
                    changed.notify_one();
                    loop {
                        tokio::select! {
                            got = rx.recv() => match got {
                                Some(()) => changed.notify_one(),
                                None => break,
                            },
                            _ = shutdown.cancelled() => return,
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff.peek(), "cannot connect to listen for schedule changes")
            }
        }
        retry::pause(backoff.next_wait(), &shutdown).await;
    }
}
