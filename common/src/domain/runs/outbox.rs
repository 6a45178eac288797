//! Publishing recorded runs: `publish` right after the commit, and `sweep_outbox` for
//! the ones the broker missed (`published_at IS NULL`).

use std::time::Duration;

use tracing::Instrument;
use uuid::Uuid;

use crate::amqp::Publisher;
use crate::db::DbPool;
use crate::error::Error;
use crate::message::RunMessage;
use crate::run_state::mark_published;

use super::*;

/// Publishes runs that are in the outbox (concurrently, each confirmed) and marks the
/// confirmed ones published. A failure only delays a run: the outbox sweeper publishes it
/// later (and a consumer skips a duplicate copy). Returns how many were confirmed.
pub async fn publish(
    client: &impl deadpool_postgres::GenericClient,
    publisher: &Publisher,
    runs: &[Run],
) -> usize {
    let results = futures_util::future::join_all(runs.iter().map(|run| {
        let message = RunMessage {
            run_id: run.id,
            attempt: run.attempt,
        };
        // A child of the span the run was created in, even when published later.
        let span = tracing::info_span!("publish", run_id = %run.id, queue = %run.queue);
        if let Some(tp) = &run.traceparent {
            crate::telemetry::set_parent(&span, tp);
        }
        async move {
            publisher
                .publish(&run.queue, &message, run.traceparent.as_deref())
                .await
        }
        .instrument(span)
    }))
    .await;
    let mut confirmed = Vec::with_capacity(runs.len());
    for (run, result) in runs.iter().zip(results) {
        match result {
            Ok(()) => confirmed.push(run.id),
            Err(e) => {
                tracing::warn!(run_id = %run.id, error = %e, "run queued but not yet published; the outbox sweeper will publish it");
            }
        }
    }
    if !confirmed.is_empty()
        && let Err(e) = mark_published(client, &confirmed).await
    {
        tracing::warn!(runs = confirmed.len(), error = %e, "published but could not mark as published");
    }
    confirmed.len()
}

/// Publishes runs still in the outbox that were submitted more than `min_age` ago.
/// Several sweepers may run at once: rows are locked with `SKIP LOCKED`.
/// Returns how many were published.
pub async fn sweep_outbox(
    pool: &DbPool,
    publisher: &Publisher,
    min_age: Duration,
    batch: i64,
) -> Result<usize, Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let age = min_age.as_secs_f64();
    let rows = tx
        .query(
            "SELECT id, queue, attempt, traceparent FROM runs
              WHERE published_at IS NULL AND status = 'queued'
                AND submitted_at < now() - make_interval(secs => $1)
              ORDER BY submitted_at
              LIMIT $2
              FOR UPDATE SKIP LOCKED",
            &[&age, &batch],
        )
        .await?;
    let mut published = Vec::with_capacity(rows.len());
    for row in &rows {
        let run_id: Uuid = row.get(0);
        let queue: String = row.get(1);
        let attempt: i32 = row.get(2);
        let traceparent: Option<String> = row.get(3);
        match publisher
            .publish(
                &queue,
                &RunMessage { run_id, attempt },
                traceparent.as_deref(),
            )
            .await
        {
            Ok(()) => published.push(run_id),
            Err(e) => {
                tracing::warn!(error = %e, "outbox sweep: broker unavailable, will retry");
                break;
            }
        }
    }
    if !published.is_empty() {
        mark_published(&tx, &published).await?;
    }
    tx.commit().await?;
    Ok(published.len())
}
