//! The venv cache end to end: tiny wheels from a local PEP 503 index on 127.0.0.1, real
//! installers (uv when available, and pip), real consumers.

use std::time::{Duration, Instant};

use runfleet_consumer::config::InstallerChoice;
use runfleet_tests::pyindex::PyIndex;
use runfleet_tests::{Fleet, FleetOptions};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(120);

/// Prints the installed versions of the given distributions as the run's result.
fn versions_script(modules: &[&str], header: &str) -> String {
    let imports: Vec<String> = modules
        .iter()
        .map(|m| format!("import {m}\nout[{m:?}] = {m}.VERSION"))
        .collect();
    format!(
        "{header}import json, os, sys\nout = {{}}\n{}\nout['python'] = sys.executable\njson.dump(out, open(os.environ['RUNFLEET_RESULT_PATH'], 'w'))\n",
        imports.join("\n")
    )
}

async fn register(fleet: &Fleet, name: &str, content: &str, requirements: &[&str]) {
    let (s, body) = fleet
        .post(
            "/scripts",
            &json!({"name": name, "content": content, "requirements": requirements}),
        )
        .await;
    assert!(s == 201 || s == 200, "{body}");
}

async fn run(fleet: &Fleet, script: &str) -> Value {
    let id = fleet.submit(json!({"script": script})).await;
    fleet.wait_final(&id, WAIT).await
}

const HITS: &str = "runfleet_venv_cache_hits_total";
const MISSES: &str = "runfleet_venv_cache_misses_total";

async fn counts(fleet: &Fleet) -> (f64, f64) {
    let m = fleet.consumer_metrics(&[HITS, MISSES]).await;
    (
        m.get(HITS).copied().unwrap_or(0.0),
        m.get(MISSES).copied().unwrap_or(0.0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_sets_share_a_venv_and_a_new_pin_makes_another() {
    let index = PyIndex::start(&[
        ("foo-bar", "1.0", &[]),
        ("foo-bar", "2.0", &["tiny-dep>=1"]),
        ("tiny-dep", "1.5", &[]),
    ])
    .await;
    let fleet = Fleet::start_with(FleetOptions {
        index_url: Some(index.url.clone()),
        ..FleetOptions::default()
    })
    .await;
    // The same set three ways: registered requirements, other spelling, PEP 723 block.
    register(
        &fleet,
        "a.py",
        &versions_script(&["foo_bar", "tiny_dep"], ""),
        &["Foo_Bar>=1,<3"],
    )
    .await;
    register(
        &fleet,
        "b.py",
        &versions_script(&["foo_bar"], ""),
        &["foo-bar <3, >=1  # same set"],
    )
    .await;
    let pep723 = "# /// script\n# dependencies = [\"FOO.bar>=1, <3\"]\n# ///\n";
    register(&fleet, "c.py", &versions_script(&["foo_bar"], pep723), &[]).await;
    register(
        &fleet,
        "pinned.py",
        &versions_script(&["foo_bar"], ""),
        &["foo-bar==1.0"],
    )
    .await;

    let a = run(&fleet, "a.py").await;
    let b = run(&fleet, "b.py").await;
    let c = run(&fleet, "c.py").await;
    for r in [&a, &b, &c] {
        assert_eq!(r["status"], "succeeded", "{r}");
        assert_eq!(r["result"]["foo_bar"], "2.0");
    }
    assert_eq!(
        a["result"]["tiny_dep"], "1.5",
        "dependencies of dependencies are installed"
    );
    let sig = a["venv_signature"].as_str().unwrap();
    assert_eq!(b["venv_signature"], sig);
    assert_eq!(c["venv_signature"], sig);
    assert!(
        a["result"]["python"].as_str().unwrap().contains(sig),
        "ran with the venv's python"
    );

    let pinned = run(&fleet, "pinned.py").await;
    assert_eq!(pinned["status"], "succeeded", "{pinned}");
    assert_eq!(pinned["result"]["foo_bar"], "1.0");
    assert_ne!(pinned["venv_signature"], sig);

    assert_eq!(
        counts(&fleet).await,
        (2.0, 2.0),
        "two sets: two installs, two reuses"
    );
    let venvs = fleet.venvs().await;
    assert_eq!(venvs.len(), 2);
    let entry = venvs.iter().find(|v| v["signature"] == sig).unwrap();
    assert_eq!(entry["requirements"], json!(["foo-bar<3,>=1"]));
    let resolved: Vec<&str> = entry["resolved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        resolved
            .iter()
            .any(|l| l.starts_with("foo-bar==2.0") || l.starts_with("foo_bar==2.0")),
        "{resolved:?}"
    );

    // A script without dependencies runs on the plain interpreter, no venv.
    register(&fleet, "plain.py", "print('plain')\n", &[]).await;
    let plain = run(&fleet, "plain.py").await;
    assert_eq!(plain["status"], "succeeded");
    assert!(plain["venv_signature"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_runs_of_a_new_set_install_it_once() {
    let index = PyIndex::start(&[("solo", "3.1", &[])]).await;
    let fleet = Fleet::start_with(FleetOptions {
        index_url: Some(index.url.clone()),
        slots: 8,
        ..FleetOptions::default()
    })
    .await;
    register(
        &fleet,
        "solo.py",
        &versions_script(&["solo"], ""),
        &["solo"],
    )
    .await;
    // Hold downloads so all eight runs are waiting on the same install.
    index.set_gate(false);
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(fleet.submit(json!({"script": "solo.py"})).await);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let running: i64 = fleet
            .db()
            .await
            .query_one("SELECT count(*) FROM runs WHERE status = 'running'", &[])
            .await
            .unwrap()
            .get(0);
        if running == 8 && index.waiting() > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "runs did not all start ({running} running)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    index.set_gate(true);
    let mut sigs = std::collections::BTreeSet::new();
    for id in &ids {
        let r = fleet.wait_final(id, WAIT).await;
        assert_eq!(r["status"], "succeeded", "{r}");
        assert_eq!(r["result"]["solo"], "3.1");
        sigs.insert(r["venv_signature"].as_str().unwrap().to_string());
    }
    assert_eq!(sigs.len(), 1);
    assert_eq!(
        counts(&fleet).await,
        (7.0, 1.0),
        "one install, seven waited and reused it"
    );
    assert_eq!(fleet.venvs().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_survives_a_consumer_restart() {
    let index = PyIndex::start(&[("keepme", "0.9", &[])]).await;
    let mut fleet = Fleet::start_with(FleetOptions {
        index_url: Some(index.url.clone()),
        ..FleetOptions::default()
    })
    .await;
    register(
        &fleet,
        "keep.py",
        &versions_script(&["keepme"], ""),
        &["keepme"],
    )
    .await;
    let first = run(&fleet, "keep.py").await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(counts(&fleet).await, (0.0, 1.0));

    fleet.stop_consumer().await;
    // With the index gone, only the cache can serve the next run.
    index.stop();
    fleet.start_consumer().await;
    let second = run(&fleet, "keep.py").await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(second["venv_signature"], first["venv_signature"]);
    assert_eq!(counts(&fleet).await, (1.0, 1.0), "a hit after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_index_fails_the_run_with_dependency_install_failed() {
    // A closed port, with credentials that must never be shown.
    let fleet = Fleet::start_with(FleetOptions {
        index_url: Some("http://ci-user:s3cret-pw@127.0.0.1:9/simple".into()),
        ..FleetOptions::default()
    })
    .await;
    register(
        &fleet,
        "needs.py",
        &versions_script(&["nothere"], ""),
        &["nothere==1.0"],
    )
    .await;
    let r = run(&fleet, "needs.py").await;
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["code"], "dependency_install_failed");
    let (_, logs) = fleet
        .get(&format!("/runs/{}/logs", r["id"].as_str().unwrap()))
        .await;
    let stderr = logs["stderr"].as_str().unwrap();
    assert!(
        !stderr.trim().is_empty(),
        "the installer's last lines are in the logs"
    );
    let everything = format!(
        "{r}{logs}{}",
        serde_json::to_string(&fleet.venvs().await).unwrap()
    );
    assert!(
        !everything.contains("s3cret-pw"),
        "credentials leaked: {everything}"
    );
    let metrics = reqwest::get(format!("http://{}/metrics", fleet.consumer_addr.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains("s3cret-pw"));
    assert!(
        fleet.venvs().await.is_empty(),
        "nothing cached for a failed install"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&fleet.consumer_config.venv.cache_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let m = fleet
        .consumer_metrics(&["runfleet_venv_install_failures_total"])
        .await;
    assert_eq!(m["runfleet_venv_install_failures_total"], 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auto_install_off_an_uncached_set_fails_clearly() {
    let index = PyIndex::start(&[("foo", "1.0", &[])]).await;
    let fleet = Fleet::start_with(FleetOptions {
        index_url: Some(index.url.clone()),
        auto_install: false,
        ..FleetOptions::default()
    })
    .await;
    register(&fleet, "f.py", &versions_script(&["foo"], ""), &["foo"]).await;
    let r = run(&fleet, "f.py").await;
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["code"], "dependency_not_cached");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("auto_install")
    );
    assert_eq!(index.downloads(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pip_fallback_builds_a_working_venv() {
    let index = PyIndex::start(&[("pipped", "4.2", &[])]).await;
    let fleet = Fleet::start_with(FleetOptions {
        index_url: Some(index.url.clone()),
        installer: Some(InstallerChoice::Pip),
        ..FleetOptions::default()
    })
    .await;
    register(
        &fleet,
        "p.py",
        &versions_script(&["pipped"], ""),
        &["pipped"],
    )
    .await;
    let r = run(&fleet, "p.py").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["result"]["pipped"], "4.2");
    let venvs = fleet.venvs().await;
    assert_eq!(venvs[0]["installer"], "pip");
    // Entry points were rewritten to the final location.
    let sig = r["venv_signature"].as_str().unwrap();
    let pip = fleet
        .consumer_config
        .venv
        .cache_dir
        .join(sig)
        .join("bin/pip");
    let shebang = std::fs::read_to_string(pip).unwrap();
    assert!(
        shebang
            .lines()
            .next()
            .unwrap()
            .contains(&format!("/{sig}/bin/python")),
        "{shebang}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_by_size_keeps_the_most_recent_and_age_spares_venvs_in_use() {
    let index = PyIndex::start(&[("one", "1.0", &[]), ("two", "1.0", &[])]).await;
    let mut fleet = Fleet::start_with(FleetOptions {
        index_url: Some(index.url.clone()),
        ..FleetOptions::default()
    })
    .await;
    register(&fleet, "one.py", &versions_script(&["one"], ""), &["one"]).await;
    register(&fleet, "two.py", &versions_script(&["two"], ""), &["two"]).await;
    let one = run(&fleet, "one.py").await;
    assert_eq!(one["status"], "succeeded", "{one}");
    let size = fleet.venvs().await[0]["size_bytes"].as_u64().unwrap();

    // Room for one venv and a half: building the second evicts the least recently used.
    fleet.stop_consumer().await;
    fleet.consumer_config.venv.max_bytes = Some(size + size / 2);
    fleet.start_consumer().await;
    let two = run(&fleet, "two.py").await;
    assert_eq!(two["status"], "succeeded", "{two}");
    let venvs = fleet.venvs().await;
    assert_eq!(venvs.len(), 1, "{venvs:?}");
    assert_eq!(venvs[0]["signature"], two["venv_signature"]);

    // Age: with a TTL of 0 days every venv is stale, but one in use is kept until its run ends.
    fleet.stop_consumer().await;
    fleet.consumer_config.venv.max_bytes = None;
    fleet.consumer_config.venv.ttl_days = Some(0);
    fleet.start_consumer().await;
    let slow = format!(
        "{}import time\ntime.sleep(3)\n",
        versions_script(&["one"], "")
    );
    register(&fleet, "slow.py", &slow, &["one"]).await;
    let id = fleet.submit(json!({"script": "slow.py"})).await;
    let deadline = Instant::now() + WAIT;
    while fleet.get(&format!("/runs/{id}")).await.1["status"] != "running"
        || fleet
            .venvs()
            .await
            .iter()
            .all(|v| v["requirements"] != json!(["one"]))
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await; // eviction runs every second
    assert!(
        fleet
            .venvs()
            .await
            .iter()
            .any(|v| v["requirements"] == json!(["one"])),
        "a venv in use was evicted"
    );
    let done = fleet.wait_final(&id, WAIT).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // The listing empties when a venv is renamed away; the gauges follow at the end of
    // that eviction pass, once the files are deleted: wait for both.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = [
        "runfleet_venv_evictions_total",
        "runfleet_venv_cache_entries",
    ];
    let m = loop {
        let m = fleet.consumer_metrics(&metrics).await;
        if fleet.venvs().await.is_empty() && m["runfleet_venv_cache_entries"] == 0.0 {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "stale venvs were not evicted: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(m["runfleet_venv_evictions_total"] >= 2.0, "{m:?}");
}
