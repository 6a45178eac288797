//! The queue gauges: ready messages and consumers per worker queue (from RabbitMQ: what
//! an autoscaler scales consumers on) and the age of each queue's oldest waiting run (from
//! Postgres: RabbitMQ does not say how long a message has waited).
//!
//! Every producer replica reports the same numbers; dashboards take `max by (queue)`.

use std::collections::HashMap;
use std::time::Duration;

use runfleet_common::db::DbError;
use runfleet_common::metrics::{QUEUE_CONSUMERS, QUEUE_MESSAGES_READY, QUEUE_OLDEST_AGE};
use runfleet_common::retry;
use runfleet_common::shutdown::Shutdown;

use crate::state::AppState;

/// Refreshes the queue gauges every `producer.queue_stats_interval_ms` until `shutdown`.
/// A source that is down leaves its gauges at their last values (and logs at debug level:
/// `/ready` already reports it).
pub async fn report_forever(state: AppState, shutdown: Shutdown) {
    let interval = Duration::from_millis(state.config.producer.queue_stats_interval_ms);
    retry::every(interval, &shutdown, || async {
        match state.publisher.queue_stats().await {
            Ok(stats) => {
                for s in stats {
                    QUEUE_MESSAGES_READY
                        .with_label_values(&[&s.queue])
                        .set(i64::from(s.messages_ready));
                    QUEUE_CONSUMERS
                        .with_label_values(&[&s.queue])
                        .set(i64::from(s.consumers));
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot read queue depths from RabbitMQ"),
        }
        match oldest_waiting(&state).await {
            Ok(ages) => {
                for queue in state.publisher.queues() {
                    let age = ages.get(queue).copied().unwrap_or(0.0);
                    QUEUE_OLDEST_AGE.with_label_values(&[queue]).set(age);
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot read queued run ages from Postgres"),
        }
    })
    .await;
}

/// Seconds the oldest queued run of each queue has waited (queues with none are absent).
async fn oldest_waiting(state: &AppState) -> Result<HashMap<String, f64>, DbError> {
    let client = state.pool.get().await?;
    let rows = client
        .query(
            "SELECT queue, extract(epoch FROM now() - min(queued_at))::float8
               FROM runs WHERE status = 'queued' GROUP BY queue",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
