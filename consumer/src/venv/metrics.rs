//! The venv cache's metrics: hits, misses, failed installs, evictions, its size, and how
//! long a build takes.

use std::sync::LazyLock;

use prometheus::{Histogram, IntCounter, IntGauge};
use runfleet_common::metrics::{plain_counter, plain_gauge, plain_histogram};

/// Runs whose venv was already cached.
pub static VENV_HITS: LazyLock<IntCounter> = LazyLock::new(|| {
    plain_counter(
        "runfleet_venv_cache_hits_total",
        "Python runs whose venv was already cached.",
    )
});

/// Venv builds started because a set was not cached.
pub static VENV_MISSES: LazyLock<IntCounter> = LazyLock::new(|| {
    plain_counter(
        "runfleet_venv_cache_misses_total",
        "Venv builds started because the set was not cached.",
    )
});

/// Failed venv installs.
pub static VENV_INSTALL_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    plain_counter(
        "runfleet_venv_install_failures_total",
        "Venv installs that failed (nothing cached).",
    )
});

/// Venvs evicted by age or size.
pub static VENV_EVICTIONS: LazyLock<IntCounter> = LazyLock::new(|| {
    plain_counter(
        "runfleet_venv_evictions_total",
        "Venvs removed by age or size limits.",
    )
});

/// Venvs in the cache.
pub static VENV_ENTRIES: LazyLock<IntGauge> = LazyLock::new(|| {
    plain_gauge(
        "runfleet_venv_cache_entries",
        "Venvs in this consumer's cache.",
    )
});

/// Bytes used by cached venvs.
pub static VENV_BYTES: LazyLock<IntGauge> =
    LazyLock::new(|| plain_gauge("runfleet_venv_cache_bytes", "Disk used by cached venvs."));

/// Time to build one venv.
pub static VENV_INSTALL_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    plain_histogram(
        "runfleet_venv_install_seconds",
        "Time to build one venv.",
        &[0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0],
    )
});

/// Creates the venv cache's series at zero.
pub fn init() {
    LazyLock::force(&VENV_HITS);
    LazyLock::force(&VENV_MISSES);
    LazyLock::force(&VENV_INSTALL_FAILURES);
    LazyLock::force(&VENV_EVICTIONS);
    LazyLock::force(&VENV_ENTRIES);
    LazyLock::force(&VENV_BYTES);
    LazyLock::force(&VENV_INSTALL_SECONDS);
}
