//! The scheduler's metrics: fires by outcome, how late they were, schedules by state and
//! the overdue ones.

use std::sync::LazyLock;

use prometheus::{Histogram, IntCounterVec, IntGauge, IntGaugeVec};
use runfleet_common::metrics::{counter, gauge, plain_gauge, plain_histogram};

/// Schedule fires by outcome: `fired` (a run was made), `skipped_overlap`, `missed`
/// (catch-up off or capped), `failed` (the task could not make a run).
pub static SCHEDULER_FIRES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "runfleet_scheduler_fires_total",
        "Schedule fires handled by this scheduler, by outcome.",
        &["outcome"],
    )
});

/// Seconds from a fire's scheduled time to its run being committed and published.
pub static SCHEDULER_FIRE_LAG: LazyLock<Histogram> = LazyLock::new(|| {
    plain_histogram(
        "runfleet_scheduler_fire_lag_seconds",
        "Time from a fire's scheduled time to its run being enqueued.",
        &[
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0,
        ],
    )
});

/// Schedules by state (`active`, `paused`, `ended`).
pub static SCHEDULER_SCHEDULES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "runfleet_scheduler_schedules",
        "Schedules by state.",
        &["state"],
    )
});

/// Schedules that should have fired over a minute ago and have not (all schedulers down,
/// stuck or far behind).
pub static SCHEDULER_OVERDUE: LazyLock<IntGauge> = LazyLock::new(|| {
    plain_gauge(
        "runfleet_scheduler_overdue_schedules",
        "Active schedules whose next fire is more than a minute late.",
    )
});

/// Creates the scheduler's series at zero.
pub fn init() {
    for outcome in ["fired", "skipped_overlap", "missed", "failed"] {
        SCHEDULER_FIRES.with_label_values(&[outcome]);
    }
    for state in ["active", "paused", "ended"] {
        SCHEDULER_SCHEDULES.with_label_values(&[state]);
    }
    LazyLock::force(&SCHEDULER_FIRE_LAG);
    LazyLock::force(&SCHEDULER_OVERDUE);
}
