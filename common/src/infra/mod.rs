//! The infrastructure layer: what any service needs and nothing of runs. No module here
//! names a module of [`crate::domain`] (a test below fails if one does).
//!
//! - [`config`] — typed, layered configuration (defaults < file < `RUNFLEET_*` env), and
//!   [`names`], the rules for names users choose.
//! - [`db`] — the Postgres pool and the migrations; [`hash`] — content fingerprints.
//! - [`amqp`] — RabbitMQ topology and the confirming [`amqp::Publisher`]; [`message`] —
//!   the run message on the wire.
//! - [`retry`] — the one backoff and periodic-loop helper every reconnecting loop uses;
//!   [`shutdown`] — the process's one cancellation token.
//! - [`service`] — the one start-up path of the three services, and the config sections
//!   they all have.
//! - [`telemetry`] — logs and traces; [`metrics`] — the registry and its constructors;
//!   [`ops_http`] — `/health`, `/ready`, `/metrics`.
//! - [`cron`] — cron expressions in IANA timezones (DST-correct fire times).
//! - [`requirements`] — Python requirement sets and PEP 723 metadata.

pub mod amqp;
pub mod config;
pub mod cron;
pub mod db;
pub mod hash;
pub mod message;
pub mod metrics;
pub mod names;
pub mod ops_http;
pub mod requirements;
pub mod retry;
pub mod service;
pub mod shutdown;
pub mod telemetry;

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The modules of the run domain, as the crate root re-exports them.
    const DOMAIN: &[&str] = &[
        "domain",
        "access",
        "audit",
        "dead_letters",
        "error",
        "failure_code",
        "fleet",
        "limits",
        "live_logs",
        "run_state",
        "runs",
        "schedules",
        "scripts",
        "secrets",
        "tasks",
    ];

    /// The module names a source file reaches through `crate::`: `crate::db::X` gives `db`,
    /// `crate::{db, runs}` gives both.
    fn crate_paths(source: &str) -> Vec<String> {
        let mut names = Vec::new();
        for (i, _) in source.match_indices("crate::") {
            let rest = &source[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                names.extend(
                    group
                        .split(',')
                        .map(|item| item.trim().split("::").next().unwrap_or("").to_string()),
                );
            } else {
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                names.push(rest[..end].to_string());
            }
        }
        names
    }

    #[test]
    fn crate_paths_reads_plain_and_grouped_imports() {
        assert_eq!(
            crate_paths("use crate::db::Pool;\nuse crate::{metrics, runs::Run};"),
            ["db", "metrics", "runs"]
        );
    }

    #[test]
    fn no_infrastructure_module_uses_the_run_domain() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/infra");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("src/infra is readable") {
            let path = entry.expect("directory entry").path();
            // This file only declares the modules (and names the domain in this test).
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("mod.rs") {
                continue;
            }
            let source = std::fs::read_to_string(&path).expect("source is UTF-8");
            for name in crate_paths(&source) {
                assert!(
                    !DOMAIN.contains(&name.as_str()),
                    "{} uses crate::{name}, a run-domain module: infrastructure must not \
                     depend on the run domain (move the code, or invert the dependency)",
                    path.display()
                );
            }
            checked += 1;
        }
        assert!(
            checked >= 13,
            "only {checked} files found in {}",
            dir.display()
        );
    }
}
