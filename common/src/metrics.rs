//! Prometheus metrics shared by the components, and the `/metrics` text encoder.
//!
//! Names start with `runfleet_`, use base units and end counters in `_total`; labels are
//! bounded (queue, status, trigger), never run ids or parameters.

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The registry every runfleet metric is in (process metrics included on Linux).
pub static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let registry = Registry::new();
    #[cfg(target_os = "linux")]
    registry
        .register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("process collector registers once");
    registry
});

/// Registers `metric` in [`REGISTRY`] and returns it (each metric is registered once, by
/// its `LazyLock`).
fn registered<M: prometheus::core::Collector + Clone + 'static>(metric: M) -> M {
    REGISTRY
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    registered(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
}

/// Runs accepted, by queue and trigger.
pub static RUNS_SUBMITTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "runfleet_runs_submitted_total",
        "Runs accepted by the API or the scheduler.",
        &["queue", "trigger"],
    )
});

/// Runs that reached a final status on a consumer, by queue and status.
pub static RUNS_FINISHED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "runfleet_runs_finished_total",
        "Runs that reached a final status.",
        &["queue", "status"],
    )
});

/// Dead-lettered messages the watcher handled, by what it did (`run_dead`, `stale`,
/// `malformed`).
pub static DEAD_LETTERS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "runfleet_dead_letters_total",
        "Dead-lettered run messages handled by the dead-letter watcher.",
        &["outcome"],
    )
});

/// Script execution time, by queue and final status.
pub static RUN_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    registered(
        HistogramVec::new(
            HistogramOpts::new(
                "runfleet_run_duration_seconds",
                "Script execution time, from process start to exit.",
            )
            .buckets(vec![
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
            ]),
            &["queue", "status"],
        )
        .expect("valid metric"),
    )
});

/// Consumer slots by state (`busy`, `idle`).
pub static CONSUMER_SLOTS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    registered(
        IntGaugeVec::new(
            Opts::new("runfleet_consumer_slots", "Consumer run slots by state."),
            &["state"],
        )
        .expect("valid metric"),
    )
});

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
pub static SCHEDULER_FIRE_LAG: LazyLock<prometheus::Histogram> = LazyLock::new(|| {
    registered(
        prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "runfleet_scheduler_fire_lag_seconds",
                "Time from a fire's scheduled time to its run being enqueued.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0,
            ]),
        )
        .expect("valid metric"),
    )
});

/// Schedules by state (`active`, `paused`, `ended`).
pub static SCHEDULER_SCHEDULES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    registered(
        IntGaugeVec::new(
            Opts::new("runfleet_scheduler_schedules", "Schedules by state."),
            &["state"],
        )
        .expect("valid metric"),
    )
});

/// Renders every registered metric in the Prometheus text format.
pub fn render() -> String {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&REGISTRY.gather(), &mut buf)
        .expect("text encoding does not fail");
    String::from_utf8(buf).expect("text format is UTF-8")
}

fn plain_counter(name: &str, help: &str) -> prometheus::IntCounter {
    registered(prometheus::IntCounter::new(name, help).expect("valid metric"))
}

fn plain_gauge(name: &str, help: &str) -> prometheus::IntGauge {
    registered(prometheus::IntGauge::new(name, help).expect("valid metric"))
}

/// Runs whose venv was already cached.
pub static VENV_HITS: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    plain_counter(
        "runfleet_venv_cache_hits_total",
        "Python runs whose venv was already cached.",
    )
});

/// Venv builds started because a set was not cached.
pub static VENV_MISSES: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    plain_counter(
        "runfleet_venv_cache_misses_total",
        "Venv builds started because the set was not cached.",
    )
});

/// Failed venv installs.
pub static VENV_INSTALL_FAILURES: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    plain_counter(
        "runfleet_venv_install_failures_total",
        "Venv installs that failed (nothing cached).",
    )
});

/// Venvs evicted by age or size.
pub static VENV_EVICTIONS: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    plain_counter(
        "runfleet_venv_evictions_total",
        "Venvs removed by age or size limits.",
    )
});

/// Venvs in the cache.
pub static VENV_ENTRIES: LazyLock<prometheus::IntGauge> = LazyLock::new(|| {
    plain_gauge(
        "runfleet_venv_cache_entries",
        "Venvs in this consumer's cache.",
    )
});

/// Bytes used by cached venvs.
pub static VENV_BYTES: LazyLock<prometheus::IntGauge> =
    LazyLock::new(|| plain_gauge("runfleet_venv_cache_bytes", "Disk used by cached venvs."));

/// Time to build one venv.
pub static VENV_INSTALL_SECONDS: LazyLock<prometheus::Histogram> = LazyLock::new(|| {
    registered(
        prometheus::Histogram::with_opts(
            HistogramOpts::new("runfleet_venv_install_seconds", "Time to build one venv.").buckets(
                vec![0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0],
            ),
        )
        .expect("valid metric"),
    )
});
