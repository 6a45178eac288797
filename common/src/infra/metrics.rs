//! The Prometheus registry every runfleet metric is in, the constructors that register a
//! metric there, and the `/metrics` text encoder.
//!
//! Each metric is declared by the module that updates it (the consumer's in
//! `runfleet_consumer::metrics`, the venv cache's in `venv::metrics`, the scheduler's in
//! `runfleet_scheduler::metrics`, the API's beside its HTTP and queue code, submitted runs
//! in the run domain's `runs`, dead letters in its `dead_letters`), as a `LazyLock` built
//! with a constructor here. Each component creates its series at zero on start, so
//! dashboards and alerts see them (and `rate()` works) before the first event.
//!
//! Names start with `runfleet_`, use base units and end counters in `_total`; labels are
//! bounded (queue, status, trigger), never run ids or parameters.

use std::sync::LazyLock;

use prometheus::core::Collector;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
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

/// Registers `metric` in [`REGISTRY`] and returns it. Each metric is registered once, by
/// the `LazyLock` that holds it; a second registration of a name is a programming error.
fn registered<M: Collector + Clone + 'static>(metric: M) -> M {
    REGISTRY
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

/// A counter with labels.
pub fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    registered(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
}

/// A counter without labels.
pub fn plain_counter(name: &str, help: &str) -> IntCounter {
    registered(IntCounter::new(name, help).expect("valid metric"))
}

/// An integer gauge with labels.
pub fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    registered(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
}

/// An integer gauge without labels.
pub fn plain_gauge(name: &str, help: &str) -> IntGauge {
    registered(IntGauge::new(name, help).expect("valid metric"))
}

/// A floating-point gauge with labels (for ages and other fractional values).
pub fn float_gauge(name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    registered(GaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
}

/// A histogram with labels and the given bucket bounds.
pub fn histogram(name: &str, help: &str, buckets: &[f64], labels: &[&str]) -> HistogramVec {
    registered(
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        )
        .expect("valid metric"),
    )
}

/// A histogram without labels.
pub fn plain_histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    registered(
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
            .expect("valid metric"),
    )
}

/// Renders every registered metric in the Prometheus text format.
pub fn render() -> String {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&REGISTRY.gather(), &mut buf)
        .expect("text encoding does not fail");
    String::from_utf8(buf).expect("text format is UTF-8")
}
