//! `venv-bench`: the venv cache side by side with the way workflow tools install today.
//!
//! For `requests` alone and for `requests pyyaml jinja2 python-dateutil`, served from a
//! local PEP 503 index on 127.0.0.1 (wheels fetched once into `bench/.wheels` with
//! `pip download`, the only network use, before any timing):
//!   (a) `python -m venv` + `pip install --no-cache-dir` (the workflow tools' way);
//!   (b) runfleet cold: empty venv cache and empty download cache;
//!   (c) runfleet with the download cache warm but the venv missing (a new signature);
//!   (d) runfleet hit: from "message received" (executor called) to the script's first
//!       statement, against starting the same interpreter directly.
//! Prints a Markdown table of medians.
//!
//!   cargo run --release -p runfleet-tests --bin venv-bench -- [--repeat 3] [--starts 40]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use runfleet_common::requirements::RequirementSet;
use runfleet_common::run_state::ClaimedRun;
use runfleet_consumer::config::{ConsumerConfig, InstallerChoice};
use runfleet_consumer::executor::Executor;
use runfleet_consumer::venv::VenvCache;
use runfleet_tests::flag_value;
use runfleet_tests::pyindex::PyIndex;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn fresh_dir(root: &Path, name: &str) -> PathBuf {
    let d = root.join(format!(
        "{name}-{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn uv_path() -> String {
    std::env::var("RUNFLEET_TEST_UV").unwrap_or_else(|_| {
        let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-tools/bin/uv");
        if local.is_file() {
            local.display().to_string()
        } else {
            "uv".into()
        }
    })
}

fn config(cache: &Path, downloads: &Path, work: &Path, index: &str) -> ConsumerConfig {
    let mut c: ConsumerConfig = runfleet_common::config::load_from(None, Some(Default::default()))
        .expect("default consumer config");
    c.venv.cache_dir = cache.to_path_buf();
    c.venv.download_cache_dir = Some(downloads.to_path_buf());
    c.venv.installer = InstallerChoice::Uv;
    c.venv.uv = uv_path();
    c.pip.index_url = Some(index.to_string());
    c.consumer.work_dir = work.to_path_buf();
    c
}

fn set(packages: &[&str]) -> RequirementSet {
    let mut s = RequirementSet::new();
    s.extend(packages.iter().copied()).unwrap();
    s
}

async fn pip_baseline(python: &Path, root: &Path, index: &str, packages: &[&str]) -> f64 {
    let dir = fresh_dir(root, "pip-venv");
    let started = Instant::now();
    let ok = tokio::process::Command::new(python)
        .args(["-m", "venv"])
        .arg(&dir)
        .status()
        .await
        .unwrap()
        .success();
    assert!(ok, "python -m venv failed");
    let ok = tokio::process::Command::new(dir.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--index-url",
            index,
        ])
        .args(packages)
        .env("PIP_CONFIG_FILE", "/dev/null")
        .status()
        .await
        .unwrap()
        .success();
    assert!(ok, "pip install failed");
    let secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    secs
}

async fn runfleet_install(cfg: &ConsumerConfig, packages: &[&str]) -> f64 {
    let cache = VenvCache::open(cfg).await.expect("open cache");
    let started = Instant::now();
    let lease = cache
        .prepare(&set(packages))
        .await
        .expect("install")
        .expect("a venv");
    assert!(!lease.hit);
    started.elapsed().as_secs_f64()
}

const FIRST_STATEMENT: &str = "import time, json, os\nt = time.time_ns()\njson.dump(t, open(os.environ['RUNFLEET_RESULT_PATH'], 'w'))\n";

/// Milliseconds from calling the executor (message received, run claimed) to the script's
/// first statement, on a cache hit.
async fn hit_start_ms(executor: &Executor, requirements: &[String]) -> f64 {
    let run = ClaimedRun {
        run_id: uuid::Uuid::now_v7(),
        attempt: 1,
        script_name: "bench.py".into(),
        language: "python".into(),
        content: FIRST_STATEMENT.into(),
        sha256: runfleet_common::hash::sha256_hex(FIRST_STATEMENT.as_bytes()),
        requirements: requirements.to_vec(),
        parameters: serde_json::json!({}),
        timeout_seconds: 60,
        submitted_at: chrono::Utc::now(),
        env: serde_json::json!({}),
        queue_wait_seconds: 0.0,
        traceparent: None,
        limits: Default::default(),
        secrets: serde_json::json!({}),
        secret_env: Vec::new(),
    };
    let t0 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as f64;
    let never = tokio_util::sync::CancellationToken::new();
    let live = std::sync::Arc::new(runfleet_consumer::live::LiveOutput::disabled());
    let (executed, removal) = executor.execute(&run, "default", &never, &live).await;
    removal.done().await;
    let started = executed
        .outcome
        .result
        .and_then(|v| v.as_f64())
        .expect("script wrote its start time");
    (started - t0) / 1e6
}

/// Milliseconds from spawning `python script` directly to its first statement.
async fn direct_start_ms(python: &Path, script: &Path, result: &Path) -> f64 {
    let t0 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as f64;
    let ok = tokio::process::Command::new(python)
        .arg(script)
        .env("RUNFLEET_RESULT_PATH", result)
        .status()
        .await
        .unwrap()
        .success();
    assert!(ok);
    let started: f64 = std::fs::read_to_string(result)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (started - t0) / 1e6
}

#[tokio::main]
async fn main() {
    let repeat = flag_value("--repeat", 3);
    let starts = flag_value("--starts", 40);
    let wheels = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/.wheels");
    let sets: [(&str, Vec<&str>); 2] = [
        ("requests", vec!["requests"]),
        (
            "requests pyyaml jinja2 python-dateutil",
            vec!["requests", "pyyaml", "jinja2", "python-dateutil"],
        ),
    ];
    if !wheels.join(".complete").is_file() {
        eprintln!(
            "fetching wheels once into {} (pip download; not timed)",
            wheels.display()
        );
        std::fs::create_dir_all(&wheels).unwrap();
        let ok = std::process::Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--only-binary=:all:",
                "-d",
            ])
            .arg(&wheels)
            .args(&sets[1].1)
            .status()
            .unwrap()
            .success();
        assert!(ok, "pip download failed");
        std::fs::write(wheels.join(".complete"), "").unwrap();
    }
    let index = PyIndex::serve(wheels.clone(), false).await;
    let root = std::env::temp_dir().join(format!("runfleet-venv-bench-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();

    // The real interpreter (not a pyenv shim), as the consumer resolves it.
    let probe = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    let python = PathBuf::from(String::from_utf8_lossy(&probe.stdout).trim());

    println!(
        "| requirement set | (a) venv + pip --no-cache-dir s | (b) runfleet cold s | (c) warm downloads, new venv s | a/b | (d) hit: received→script start ms | direct interpreter start ms | (d) overhead ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (label, packages) in &sets {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..repeat {
            // Interleaved so machine noise hits all three alike.
            a.push(pip_baseline(&python, &root, &index.url, packages).await);
            let downloads = fresh_dir(&root, "downloads");
            let cold = config(
                &fresh_dir(&root, "cache"),
                &downloads,
                &fresh_dir(&root, "work"),
                &index.url,
            );
            b.push(runfleet_install(&cold, packages).await);
            let warm = config(
                &fresh_dir(&root, "cache"),
                &downloads,
                &fresh_dir(&root, "work"),
                &index.url,
            );
            c.push(runfleet_install(&warm, packages).await);
        }
        // (d): one cache with the set installed, then alternate hit runs and direct starts.
        let cfg = config(
            &fresh_dir(&root, "cache"),
            &fresh_dir(&root, "downloads"),
            &fresh_dir(&root, "work"),
            &index.url,
        );
        let cache = Arc::new(VenvCache::open(&cfg).await.unwrap());
        let requirements: Vec<String> = packages.iter().map(|p| p.to_string()).collect();
        let venv_python = cache
            .prepare(&set(packages))
            .await
            .unwrap()
            .unwrap()
            .python
            .clone();
        let executor = Executor::new(cfg.consumer.clone(), cache.clone()).unwrap();
        let script = root.join("first_statement.py");
        std::fs::write(&script, FIRST_STATEMENT).unwrap();
        let result = root.join("direct-result.json");
        let (mut hit, mut direct) = (Vec::new(), Vec::new());
        for _ in 0..starts {
            hit.push(hit_start_ms(&executor, &requirements).await);
            direct.push(direct_start_ms(&venv_python, &script, &result).await);
        }
        let (a, b, c, hit, direct) = (median(a), median(b), median(c), median(hit), median(direct));
        println!(
            "| {label} | {a:.2} | {b:.2} | {c:.2} | {:.1}× | {hit:.1} | {direct:.1} | {:.1} |",
            a / b,
            hit - direct
        );
    }
    let _ = std::fs::remove_dir_all(&root);
    tokio::time::sleep(Duration::from_millis(10)).await;
}
