//! The producer's sweeper: what makes "nothing accepted is lost" hold when a consumer or
//! the broker fails. Every `producer.outbox_interval_ms` it takes back runs whose consumer
//! died (stale heartbeat), queues retries that are due, and publishes runs whose publish
//! was not confirmed (broker down at submit, a crash between commit and publish, or just
//! reclaimed).

use std::time::Duration;

use runfleet_common::db::DbError;
use runfleet_common::retry;
use runfleet_common::run_state;
use runfleet_common::shutdown::Shutdown;

use crate::state::AppState;

/// Runs published per outbox query; a full batch is followed by another at once.
const OUTBOX_BATCH: i64 = 500;

/// Sweeps now and every `producer.outbox_interval_ms` until `shutdown`.
pub async fn sweep_forever(state: AppState, shutdown: Shutdown) {
    let interval = Duration::from_millis(state.config.producer.outbox_interval_ms);
    retry::every(interval, &shutdown, || sweep_once(&state)).await;
}

/// One sweep. Failures are logged at debug level and left to the next sweep (`/ready`
/// reports an unreachable Postgres or RabbitMQ already).
async fn sweep_once(state: &AppState) {
    let cfg = &state.config.producer;
    let reclaim_after = Duration::from_secs(cfg.reclaim_after_seconds);
    let requeued = async {
        let client = state.pool.get().await.map_err(DbError::from)?;
        let reclaimed = run_state::reclaim_stale(&client, reclaim_after, cfg.max_reclaims).await?;
        let retried = run_state::promote_due_retries(&client).await?;
        Ok::<_, DbError>((reclaimed, retried))
    };
    match requeued.await {
        Ok((reclaimed, retried)) => {
            if !reclaimed.requeued.is_empty() {
                tracing::warn!(runs = ?reclaimed.requeued, "runs whose consumer stopped heartbeating were queued again");
            }
            if !reclaimed.dead.is_empty() {
                tracing::error!(runs = ?reclaimed.dead, "runs whose consumers kept dying are dead");
            }
            if !retried.is_empty() {
                tracing::info!(runs = ?retried, "retries due: queued again");
            }
        }
        Err(e) => tracing::debug!(error = %e, "requeue sweep failed; will retry"),
    }
    let min_age = Duration::from_secs(cfg.outbox_min_age_seconds);
    loop {
        match runfleet_common::runs::sweep_outbox(
            &state.pool,
            &state.publisher,
            min_age,
            OUTBOX_BATCH,
        )
        .await
        {
            Ok(0) => break,
            Ok(n) => {
                tracing::info!(published = n, "outbox sweep published runs");
                if (n as i64) < OUTBOX_BATCH {
                    break;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "outbox sweep failed; will retry");
                break;
            }
        }
    }
}
