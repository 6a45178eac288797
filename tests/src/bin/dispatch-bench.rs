//! `dispatch-bench`: how close a run's dispatch comes to the cost of starting its script,
//! side by side with Celery.
//!
//! Starts an isolated fleet: the producer in this process, one `runfleet-consumer` process
//! with `--slots` slots, production background intervals. For each workload (`shell`: a
//! bash script `exit 0`; `script`: a Python script that exits), and `--repeat` times:
//! - runfleet: submits the runs through `POST /runs/batch` and waits until Postgres holds
//!   every run final;
//! - the bare limit: the same script file started as many times, `--slots` at a time,
//!   without runfleet;
//! - Celery (unless `--no-celery`): `bench/celery_bench.py`, the same program started by a
//!   Celery task (prefork, concurrency = slots, acks_late, prefetch 1, RabbitMQ broker,
//!   Postgres result backend); plus Celery's in-process no-op task.
//!
//! Every figure printed is the median of the repeats. Dispatch CPU per run is the CPU of
//! the consumer, Postgres, RabbitMQ and this process (producer and client) themselves, not
//! the scripts', from /proc. Then `latency`: single `POST /runs` at half the measured
//! finished/s for `--latency-seconds`, submit→started and submit→finished percentiles.
//!
//!   cargo run --release -p runfleet-tests --bin dispatch-bench -- [--runs 2000]
//!       [--script-runs 500] [--slots 2] [--lookahead 0] [--repeat 3] [--latency-seconds 30] [--no-celery]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runfleet_tests::{Fleet, FleetOptions, cpu_seconds, flag_value, kill_tree, status_kib};
use serde_json::{Value, json};

/// CPU seconds of every process whose command name starts with one of `names` (Postgres
/// backends, the RabbitMQ VM).
fn cpu_of(names: &[&str]) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| names.iter().any(|n| c.trim().starts_with(n)))
        })
        .map(cpu_seconds)
        .sum()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    percentile(&values, 0.5)
}

/// One measured pass of one workload through one system. Figures a system does not give
/// are NaN.
#[derive(Clone, Copy)]
struct Figures {
    accepted_per_s: f64,
    finished_per_s: f64,
    bare_per_s: f64,
    /// submit→started p50/p95/p99 ms, then submit→finished p50/p95/p99 ms.
    latency_ms: [f64; 6],
    /// Per run: the system's own processes (consumer, or Celery worker + pool), the
    /// submitting side (producer + client, or the Celery client), Postgres, RabbitMQ (ms).
    cpu_split_ms: [f64; 4],
    /// Peak RSS of the executing side (consumer, or Celery worker + pool), MiB.
    peak_rss_mib: f64,
}

impl Figures {
    fn cpu_ms(&self) -> f64 {
        self.cpu_split_ms.iter().sum()
    }

    /// The median of every figure over the passes.
    fn median(passes: &[Figures]) -> Figures {
        let m = |f: &dyn Fn(&Figures) -> f64| median(passes.iter().map(f).collect());
        Figures {
            accepted_per_s: m(&|p| p.accepted_per_s),
            finished_per_s: m(&|p| p.finished_per_s),
            bare_per_s: m(&|p| p.bare_per_s),
            latency_ms: std::array::from_fn(|i| m(&|p| p.latency_ms[i])),
            cpu_split_ms: std::array::from_fn(|i| m(&|p| p.cpu_split_ms[i])),
            peak_rss_mib: m(&|p| p.peak_rss_mib),
        }
    }
}

fn cpu_now(consumer_pid: u32) -> [f64; 4] {
    [
        cpu_seconds(consumer_pid),
        cpu_seconds(std::process::id()),
        cpu_of(&["postgres"]),
        cpu_of(&["beam.smp", "erl_child_setup", "epmd"]),
    ]
}

/// Percentiles (p50, p95, p99) of submit→started and submit→finished, ms, and the span
/// from the first submit to the last finish, s, of the runs `WHERE <filter>`.
async fn run_latencies(
    db: &tokio_postgres::Client,
    filter: &str,
    args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> ([f64; 6], f64) {
    let rows = db
        .query(
            &format!(
                "SELECT extract(epoch FROM started_at - submitted_at)::float8 * 1000,
                        extract(epoch FROM finished_at - submitted_at)::float8 * 1000,
                        status,
                        extract(epoch FROM max(finished_at) OVER () - min(submitted_at) OVER ())::float8
                   FROM runs WHERE {filter}"
            ),
            args,
        )
        .await
        .unwrap();
    let failed = rows
        .iter()
        .filter(|r| r.get::<_, String>(2) != "succeeded")
        .count();
    assert_eq!(failed, 0, "{failed} runs did not succeed");
    let mut to_start: Vec<f64> = rows.iter().map(|r| r.get(0)).collect();
    let mut to_finish: Vec<f64> = rows.iter().map(|r| r.get(1)).collect();
    to_start.sort_by(f64::total_cmp);
    to_finish.sort_by(f64::total_cmp);
    let p = |v: &[f64], q| percentile(v, q);
    (
        [
            p(&to_start, 0.5),
            p(&to_start, 0.95),
            p(&to_start, 0.99),
            p(&to_finish, 0.5),
            p(&to_finish, 0.95),
            p(&to_finish, 0.99),
        ],
        rows[0].get(3),
    )
}

/// Waits until no run of the fleet is waiting or running. Passes run one after another,
/// so then every run of this pass is final. The count reads the `runs_by_status` index
/// and only touches unfinished runs: a full scan here would be counted as dispatch CPU.
async fn wait_final(db: &tokio_postgres::Client) {
    let started = Instant::now();
    loop {
        let left: i64 = db
            .query_one(
                "SELECT count(*) FROM runs WHERE status IN ('queued', 'running', 'retrying')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "{left} runs still not final after 900 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One pass of `runs` runs of `script` through the fleet (batch submit).
async fn runfleet_pass(fleet: &Fleet, consumer_pid: u32, script: &str, runs: usize) -> Figures {
    let db = fleet.db().await;
    let batch = uuid::Uuid::new_v4().to_string();
    let before = cpu_now(consumer_pid);
    let started = Instant::now();
    for chunk in (0..runs).collect::<Vec<_>>().chunks(1000) {
        let items: Vec<_> = chunk
            .iter()
            .map(|_| json!({"script": script, "parameters": {"batch": batch}}))
            .collect();
        let (status, body) = fleet.post("/runs/batch", &json!({"runs": items})).await;
        assert_eq!(status, 202, "{body}");
    }
    let accepted = started.elapsed();
    let filter = "parameters->>'batch' = $1";
    wait_final(&db).await;
    let after = cpu_now(consumer_pid);
    let (latency_ms, span) = run_latencies(&db, filter, &[&batch]).await;
    Figures {
        accepted_per_s: runs as f64 / accepted.as_secs_f64(),
        finished_per_s: runs as f64 / span,
        bare_per_s: f64::NAN,
        latency_ms,
        cpu_split_ms: std::array::from_fn(|i| (after[i] - before[i]) * 1000.0 / runs as f64),
        peak_rss_mib: status_kib(consumer_pid, "VmHWM:") as f64 / 1024.0,
    }
}

/// Starts `program file` `runs` times, `slots` at a time; runs per second.
async fn bare_limit(program: &str, file: &Path, runs: usize, slots: usize) -> f64 {
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(slots));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..runs {
        let permit = gate.clone().acquire_owned().await.unwrap();
        let (program, file) = (program.to_string(), file.to_path_buf());
        tasks.spawn(async move {
            // The environment a consumer gives a script: cleared, PATH kept.
            let status = tokio::process::Command::new(program)
                .arg(file)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .status()
                .await
                .unwrap();
            assert!(status.success());
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
    runs as f64 / started.elapsed().as_secs_f64()
}

/// The Celery venv (`bench/.venv-celery`), made from PyPI on first use with uv
/// (`.venv-tools/bin/uv`, as `docker/ensure-services.sh` installs it) or venv + pip.
fn celery_python(root: &Path) -> PathBuf {
    let venv = root.join("bench/.venv-celery");
    let python = venv.join("bin/python");
    if python.exists() {
        return python;
    }
    let requirements = ["celery>=5.4,<6", "sqlalchemy>=2", "psycopg2-binary"];
    let uv = root.join(".venv-tools/bin/uv");
    let ok = if uv.exists() {
        std::process::Command::new(&uv)
            .args(["venv", "-q"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && std::process::Command::new(&uv)
                .args(["pip", "install", "-q", "--python"])
                .arg(&python)
                .args(requirements)
                .status()
                .is_ok_and(|s| s.success())
    } else {
        std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && std::process::Command::new(venv.join("bin/pip"))
                .args(["install", "-q"])
                .args(requirements)
                .status()
                .is_ok_and(|s| s.success())
    };
    assert!(
        ok,
        "cannot install Celery into {}; run with --no-celery to skip it",
        venv.display()
    );
    python
}

/// One Celery pass (see `bench/celery_bench.py`).
fn celery_pass(
    python: &Path,
    root: &Path,
    workload: &str,
    runs: usize,
    slots: usize,
    program: &str,
    file: &Path,
) -> Figures {
    let out = std::process::Command::new(python)
        .arg(root.join("bench/celery_bench.py"))
        .args(["--workload", workload, "--runs", &runs.to_string()])
        .args(["--concurrency", &slots.to_string(), "--program", program])
        .arg("--file")
        .arg(file)
        .stderr(std::process::Stdio::null())
        .output()
        .expect("run bench/celery_bench.py");
    let line = String::from_utf8_lossy(&out.stdout);
    let figures: Value = line
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("celery_bench.py printed no figures: {line}"));
    let split = figures["cpu_split_ms"].as_array().expect("cpu_split_ms");
    Figures {
        accepted_per_s: figures["accepted_per_s"].as_f64().unwrap(),
        finished_per_s: figures["finished_per_s"].as_f64().unwrap(),
        bare_per_s: f64::NAN,
        latency_ms: [f64::NAN; 6],
        cpu_split_ms: std::array::from_fn(|i| split[i].as_f64().unwrap()),
        peak_rss_mib: figures["worker_rss_mib"].as_f64().unwrap(),
    }
}

/// Single `POST /runs` of `script` at `rate` per second for `seconds`; latencies from
/// Postgres. Returns (runs submitted, the six percentiles).
async fn latency_pass(fleet: &Fleet, script: &str, rate: f64, seconds: u64) -> (usize, [f64; 6]) {
    let db = fleet.db().await;
    let batch = uuid::Uuid::new_v4().to_string();
    let every = Duration::from_secs_f64(1.0 / rate);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    let mut sent = tokio::task::JoinSet::new();
    let mut runs = 0;
    while started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let (http, base, batch) = (fleet.http.clone(), fleet.base.clone(), batch.clone());
        let script = script.to_string();
        sent.spawn(async move {
            let status = http
                .post(format!("{base}/runs"))
                .json(&json!({"script": script, "parameters": {"batch": batch}}))
                .send()
                .await
                .map(|r| r.status().as_u16());
            assert_eq!(status.ok(), Some(202), "POST /runs failed");
        });
        runs += 1;
    }
    while sent.join_next().await.is_some() {}
    let filter = "parameters->>'batch' = $1";
    wait_final(&db).await;
    (runs, run_latencies(&db, filter, &[&batch]).await.0)
}

fn cell(v: f64, digits: usize) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.digits$}")
    }
}

fn row(workload: &str, system: &str, f: &Figures) {
    let ratio = if f.bare_per_s.is_nan() {
        "–".to_string()
    } else {
        format!("{:.0}%", 100.0 * f.finished_per_s / f.bare_per_s)
    };
    let l = &f.latency_ms;
    let c = &f.cpu_split_ms;
    println!(
        "| {workload} | {system} | {} | {} | {} | {ratio} | {} / {} / {} | {} / {} / {} | {:.2} | {:.2} / {:.2} / {:.2} / {:.2} | {:.1} |",
        cell(f.accepted_per_s, 0),
        cell(f.finished_per_s, 0),
        cell(f.bare_per_s, 0),
        cell(l[0], 1),
        cell(l[1], 1),
        cell(l[2], 1),
        cell(l[3], 1),
        cell(l[4], 1),
        cell(l[5], 1),
        f.cpu_ms(),
        c[0],
        c[1],
        c[2],
        c[3],
        f.peak_rss_mib,
    );
}

#[tokio::main]
async fn main() {
    let runs = flag_value("--runs", 2000);
    let script_runs = flag_value("--script-runs", 500);
    let slots = flag_value("--slots", 2);
    let lookahead = flag_value("--lookahead", 0);
    let repeat = flag_value("--repeat", 3).max(1);
    let latency_seconds = flag_value("--latency-seconds", 30) as u64;
    let with_celery = !std::env::args().any(|a| a == "--no-celery");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace")
        .to_path_buf();
    let celery = with_celery.then(|| celery_python(&root));

    let mut fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        slots,
        production_timings: true,
        ..FleetOptions::default()
    })
    .await;
    fleet.consumer_config.consumer.slots = slots;
    fleet.consumer_config.consumer.lookahead = lookahead;
    std::fs::create_dir_all(&fleet.work_dir).unwrap();
    let mut consumer = fleet
        .consumer_command()
        .env("RUNFLEET_CONSUMER__SLOTS", slots.to_string())
        .spawn()
        .expect("start runfleet-consumer");
    let consumer_pid = consumer.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let consumer_idle_rss = status_kib(consumer_pid, "VmRSS:") as f64 / 1024.0;
    let producer_idle_rss = status_kib(std::process::id(), "VmRSS:") as f64 / 1024.0;
    let shell = "exit 0\n";
    let python = "import sys\nsys.exit(0)\n";
    fleet.register("noop.sh", shell).await;
    fleet.register("noop.py", python).await;
    let shell_file = fleet.work_dir.join("bare.sh");
    let python_file = fleet.work_dir.join("bare.py");
    std::fs::write(&shell_file, shell).unwrap();
    std::fs::write(&python_file, python).unwrap();
    // The interpreter itself, as the consumer resolves it (not a pyenv-style shim script,
    // which would make the bare limit several times slower than the real start).
    let python_exe = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "python3".into());

    let workloads = [
        ("shell", "noop.sh", "bash", &shell_file, runs),
        (
            "script",
            "noop.py",
            python_exe.as_str(),
            &python_file,
            script_runs,
        ),
    ];
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for (name, script, program, file, n) in workloads {
        let mut passes = Vec::new();
        let mut celery_passes = Vec::new();
        for pass in 0..repeat {
            eprintln!("dispatch-bench: {name} pass {}/{repeat}", pass + 1);
            let mut f = runfleet_pass(&fleet, consumer_pid, script, n).await;
            f.bare_per_s = bare_limit(program, file, n, slots).await;
            if let Some(python) = &celery {
                let mut c = celery_pass(python, &root, name, n, slots, program, file);
                c.bare_per_s = f.bare_per_s;
                celery_passes.push(c);
            }
            passes.push(f);
        }
        ours.push((name, Figures::median(&passes)));
        if !celery_passes.is_empty() {
            theirs.push((name, Figures::median(&celery_passes)));
        }
    }
    let noop = celery.as_ref().map(|python| {
        let passes: Vec<_> = (0..repeat)
            .map(|_| celery_pass(python, &root, "noop", runs, slots, "", Path::new("")))
            .collect();
        Figures::median(&passes)
    });

    // Latency at half the measured maximum.
    let mut latency = Vec::new();
    for ((name, f), script) in ours.iter().zip(["noop.sh", "noop.py"]) {
        let rate = f.finished_per_s / 2.0;
        eprintln!("dispatch-bench: {name} latency at {rate:.0}/s for {latency_seconds} s");
        let (n, l) = latency_pass(&fleet, script, rate, latency_seconds).await;
        latency.push((*name, rate, n, l));
    }
    let producer_peak_rss = status_kib(std::process::id(), "VmHWM:") as f64 / 1024.0;

    println!(
        "dispatch-bench: medians of {repeat} passes; {runs} shell and {script_runs} script runs a pass; {slots} consumer slots = Celery concurrency, consumer.lookahead {lookahead}; runfleet submits by POST /runs/batch"
    );
    println!();
    println!(
        "| workload | system | accepted/s | finished/s | bare limit/s | finished / bare | submit→started p50/p95/p99 ms | submit→finished p50/p95/p99 ms | dispatch CPU ms/run | executor / submitter / Postgres / RabbitMQ ms | executor peak RSS MiB |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (name, f) in &ours {
        row(name, "runfleet", f);
        if let Some((_, c)) = theirs.iter().find(|(n, _)| n == name) {
            row(name, "Celery", c);
        }
    }
    if let Some(n) = &noop {
        row("no-op (in process)", "Celery", n);
    }
    println!();
    for (name, f) in &ours {
        if let Some((_, c)) = theirs.iter().find(|(n, _)| n == name) {
            println!(
                "{name}: runfleet finished/s = {:.2}× Celery's; dispatch CPU = {:.2}× Celery's",
                f.finished_per_s / c.finished_per_s,
                f.cpu_ms() / c.cpu_ms()
            );
        }
    }
    if let (Some(n), Some((_, shell))) = (&noop, ours.first()) {
        println!(
            "runfleet dispatch CPU per shell run / Celery's per no-op task: {:.2} ms / {:.2} ms = {:.2}",
            shell.cpu_ms(),
            n.cpu_ms(),
            shell.cpu_ms() / n.cpu_ms()
        );
    }
    println!();
    println!(
        "| latency workload | rate /s | runs | submit→started p50 / p95 / p99 ms | submit→finished p50 / p95 / p99 ms |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for (name, rate, n, l) in &latency {
        println!(
            "| {name} | {rate:.0} | {n} | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} / {:.1} |",
            l[0], l[1], l[2], l[3], l[4], l[5]
        );
    }
    println!();
    println!(
        "RSS MiB: consumer idle {consumer_idle_rss:.1}, peak {:.1}; producer (this process, with the client) idle {producer_idle_rss:.1}, peak {producer_peak_rss:.1}",
        status_kib(consumer_pid, "VmHWM:") as f64 / 1024.0
    );
    kill_tree(consumer_pid);
    let _ = consumer.wait();
    drop(fleet);
}
