//! The queue gauges: ready messages and consumers per worker queue (from RabbitMQ: what
//! an autoscaler scales consumers on) and the age of each queue's oldest waiting run (from
//! Postgres: RabbitMQ does not say how long a message has waited).
//!
//! Every producer replica reports the same numbers; dashboards take `max by (queue)`.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{GaugeVec, IntGaugeVec};
use runfleet_common::db::DbError;
use runfleet_common::metrics::{float_gauge, gauge};
use runfleet_common::retry;
use runfleet_common::shutdown::Shutdown;

use crate::state::AppState;

/// Messages ready in each worker queue, as RabbitMQ reports them (what an autoscaler
/// scales consumers on).
pub static QUEUE_MESSAGES_READY: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "runfleet_queue_messages_ready",
        "Messages ready for delivery in a worker queue (RabbitMQ's count).",
        &["queue"],
    )
});

/// Consumers subscribed to each worker queue, as RabbitMQ reports them.
pub static QUEUE_CONSUMERS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "runfleet_queue_consumers",
        "Consumers subscribed to a worker queue (RabbitMQ's count).",
        &["queue"],
    )
});

/// Age of the oldest queued run per queue (0 when none waits), from Postgres.
pub static QUEUE_OLDEST_AGE: LazyLock<GaugeVec> = LazyLock::new(|| {
    float_gauge(
        "runfleet_queue_oldest_run_age_seconds",
        "How long the oldest queued run of a queue has waited (0 when none waits).",
        &["queue"],
    )
});

/// Creates the queue gauges of every queue at zero.
pub fn init_metrics(queues: &[String]) {
    for queue in queues {
        QUEUE_MESSAGES_READY.with_label_values(&[queue]);
        QUEUE_CONSUMERS.with_label_values(&[queue]);
        QUEUE_OLDEST_AGE.with_label_values(&[queue]);
    }
}

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
