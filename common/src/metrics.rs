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

fn histogram(name: &str, help: &str, buckets: &[f64], labels: &[&str]) -> HistogramVec {
    registered(
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        )
        .expect("valid metric"),
    )
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

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    registered(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
}

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
pub static QUEUE_OLDEST_AGE: LazyLock<prometheus::GaugeVec> = LazyLock::new(|| {
    registered(
        prometheus::GaugeVec::new(
            Opts::new(
                "runfleet_queue_oldest_run_age_seconds",
                "How long the oldest queued run of a queue has waited (0 when none waits).",
            ),
            &["queue"],
        )
        .expect("valid metric"),
    )
});

/// API requests by route template (never the raw path), method and status code.
pub static HTTP_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "runfleet_http_requests_total",
        "HTTP requests answered, by route template, method and status.",
        &["route", "method", "status"],
    )
});

/// API request latency by route template and method.
pub static HTTP_REQUEST_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "runfleet_http_request_duration_seconds",
        "Time to answer an HTTP request, by route template and method.",
        &[
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ],
        &["route", "method"],
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

/// Schedules that should have fired over a minute ago and have not (all schedulers down,
/// stuck or far behind).
pub static SCHEDULER_OVERDUE: LazyLock<prometheus::IntGauge> = LazyLock::new(|| {
    plain_gauge(
        "runfleet_scheduler_overdue_schedules",
        "Active schedules whose next fire is more than a minute late.",
    )
});

/// Triggers a run may have.
const TRIGGERS: [&str; 4] = ["api", "cli", "retry", "schedule"];
/// Final statuses a consumer reports.
const FINISHED: [&str; 4] = ["succeeded", "failed", "timed_out", "cancelled"];

/// Creates the producer's series at zero, so dashboards and alerts see them (and `rate()`
/// works) before the first event.
pub fn init_producer(queues: &[String]) {
    for queue in queues {
        for trigger in TRIGGERS {
            RUNS_SUBMITTED.with_label_values(&[queue, trigger]);
        }
        QUEUE_MESSAGES_READY.with_label_values(&[queue]);
        QUEUE_CONSUMERS.with_label_values(&[queue]);
        QUEUE_OLDEST_AGE.with_label_values(&[queue]);
    }
    for outcome in ["run_dead", "stale", "malformed"] {
        DEAD_LETTERS.with_label_values(&[outcome]);
    }
}

/// Creates the consumer's series at zero (see [`init_producer`]).
pub fn init_consumer(queues: &[String]) {
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
    LazyLock::force(&VENV_HITS);
    LazyLock::force(&VENV_MISSES);
    LazyLock::force(&VENV_INSTALL_FAILURES);
    LazyLock::force(&VENV_EVICTIONS);
    LazyLock::force(&VENV_ENTRIES);
    LazyLock::force(&VENV_BYTES);
    LazyLock::force(&VENV_INSTALL_SECONDS);
}

/// Creates the scheduler's series at zero (see [`init_producer`]).
pub fn init_scheduler() {
    for outcome in ["fired", "skipped_overlap", "missed", "failed"] {
        SCHEDULER_FIRES.with_label_values(&[outcome]);
    }
    for state in ["active", "paused", "ended"] {
        SCHEDULER_SCHEDULES.with_label_values(&[state]);
    }
    LazyLock::force(&SCHEDULER_FIRE_LAG);
    LazyLock::force(&SCHEDULER_OVERDUE);
}

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
