//! The consumer's metrics: runs finished, how long they ran and waited, and its slots.
//! (The venv cache's are in [`crate::venv::metrics`].)

use std::sync::LazyLock;

use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec};
use runfleet_common::metrics::{counter, gauge, histogram};

/// Final statuses a consumer reports.
const FINISHED: [&str; 4] = ["succeeded", "failed", "timed_out", "cancelled"];

/// Runs that reached a final status on a consumer, by queue and status.
pub static RUNS_FINISHED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "runfleet_runs_finished_total",
        "Runs that reached a final status.",
        &["queue", "status"],
    )
});

/// Script execution time, by queue and final status.
pub static RUN_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "runfleet_run_duration_seconds",
        "Script execution time, from process start to exit.",
        &[
            0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
        ],
        &["queue", "status"],
    )
});

/// Time an attempt waited in its queue: from queued (submit, retry or requeue) to a
/// consumer starting it.
pub static RUN_QUEUE_WAIT: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "runfleet_run_queue_wait_seconds",
        "Time from a run attempt being queued to a consumer starting it.",
        &[
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            900.0, 3600.0,
        ],
        &["queue"],
    )
});

/// Consumer slots by state (`busy`, `idle`).
pub static CONSUMER_SLOTS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "runfleet_consumer_slots",
        "Consumer run slots by state.",
        &["state"],
    )
});

/// Creates the consumer's series (the venv cache's included) at zero.
pub fn init(queues: &[String]) {
    for queue in queues {
        RUN_QUEUE_WAIT.with_label_values(&[queue]);
        for status in FINISHED {
            RUNS_FINISHED.with_label_values(&[queue, status]);
            RUN_DURATION.with_label_values(&[queue, status]);
        }
    }
    for state in ["busy", "idle"] {
        CONSUMER_SLOTS.with_label_values(&[state]);
    }
    crate::venv::metrics::init();
}
