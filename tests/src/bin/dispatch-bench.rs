//! `dispatch-bench`: how close a run's dispatch comes to the cost of starting its script.
//!
//! Starts an isolated fleet: the producer in this process, one `runfleet-consumer` process
//! with `--slots` slots. For each workload (`shell`: a bash script `exit 0`; `script`: a
//! Python script that exits), it submits `--runs` runs through `POST /runs/batch` and
//! waits until Postgres holds every run final. It also runs the bare limit in the same
//! session: the same script file started the same number of times, `--slots` at a time,
//! without runfleet.
//!
//! Dispatch CPU per run is the CPU that the consumer, Postgres and RabbitMQ used themselves
//! (from /proc; the scripts' own CPU is excluded), plus this process (the producer and the
//! bench client), divided by the runs.
//!
//!   cargo run --release -p runfleet-tests --bin dispatch-bench -- [--runs 2000] [--slots 2]
//!
//! Not yet here (issue 9): the Celery side, the latency-at-half-load run, medians of 3.

use std::time::{Duration, Instant};

use runfleet_tests::{Fleet, FleetOptions, cpu_seconds, flag_value, kill_tree, status_kib};
use serde_json::json;

/// CPU seconds of every process whose command name is one of `names` (Postgres backends,
/// the RabbitMQ VM).
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

struct Figures {
    accepted_per_s: f64,
    finished_per_s: f64,
    started_ms: [f64; 3],
    finished_ms: [f64; 3],
    cpu_ms_per_run: f64,
    consumer_rss_mib: f64,
}

async fn workload(fleet: &Fleet, consumer_pid: u32, script: &str, runs: usize) -> Figures {
    let me = std::process::id();
    let before = (
        cpu_seconds(consumer_pid),
        cpu_seconds(me),
        cpu_of(&["postgres"]),
        cpu_of(&["beam.smp", "erl_child_setup", "epmd"]),
    );
    let db = fleet.db().await;
    let first: i64 = db
        .query_one("SELECT count(*) FROM runs", &[])
        .await
        .unwrap()
        .get(0);
    let started = Instant::now();
    for chunk in (0..runs).collect::<Vec<_>>().chunks(1000) {
        let items: Vec<_> = chunk.iter().map(|_| json!({"script": script})).collect();
        let (status, body) = fleet.post("/runs/batch", &json!({"runs": items})).await;
        assert_eq!(status, 202, "{body}");
    }
    let accepted = started.elapsed();
    let target = first + runs as i64;
    loop {
        let done: i64 = db
            .query_one(
                "SELECT count(*) FROM runs WHERE finished_at IS NOT NULL AND script_name = $1",
                &[&script],
            )
            .await
            .unwrap()
            .get(0);
        if done >= runs as i64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "only {done} of {target} runs finished in 600 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = (
        cpu_seconds(consumer_pid),
        cpu_seconds(me),
        cpu_of(&["postgres"]),
        cpu_of(&["beam.smp", "erl_child_setup", "epmd"]),
    );
    let rows = db
        .query(
            "SELECT extract(epoch FROM started_at - submitted_at)::float8 * 1000,
                    extract(epoch FROM finished_at - submitted_at)::float8 * 1000,
                    status,
                    extract(epoch FROM max(finished_at) OVER () - min(submitted_at) OVER ())::float8
               FROM runs WHERE script_name = $1",
            &[&script],
        )
        .await
        .unwrap();
    let failed = rows
        .iter()
        .filter(|r| r.get::<_, String>(2) != "succeeded")
        .count();
    assert_eq!(failed, 0, "{failed} runs did not succeed");
    let span: f64 = rows[0].get(3);
    let mut to_start: Vec<f64> = rows.iter().map(|r| r.get(0)).collect();
    let mut to_finish: Vec<f64> = rows.iter().map(|r| r.get(1)).collect();
    to_start.sort_by(f64::total_cmp);
    to_finish.sort_by(f64::total_cmp);
    let ps = |v: &[f64]| [percentile(v, 0.5), percentile(v, 0.95), percentile(v, 0.99)];
    let cpu =
        (after.0 - before.0) + (after.1 - before.1) + (after.2 - before.2) + (after.3 - before.3);
    Figures {
        accepted_per_s: runs as f64 / accepted.as_secs_f64(),
        finished_per_s: runs as f64 / span,
        started_ms: ps(&to_start),
        finished_ms: ps(&to_finish),
        cpu_ms_per_run: cpu * 1000.0 / runs as f64,
        consumer_rss_mib: status_kib(consumer_pid, "VmHWM:") as f64 / 1024.0,
    }
}

/// Starts `program file` `runs` times, `slots` at a time; runs per second.
async fn bare_limit(program: &str, file: &std::path::Path, runs: usize, slots: usize) -> f64 {
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

#[tokio::main]
async fn main() {
    let runs = flag_value("--runs", 2000);
    let slots = flag_value("--slots", 2);
    let mut fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        slots,
        ..FleetOptions::default()
    })
    .await;
    fleet.consumer_config.consumer.slots = slots;
    std::fs::create_dir_all(&fleet.work_dir).unwrap();
    let mut consumer = fleet
        .consumer_command()
        .env("RUNFLEET_CONSUMER__SLOTS", slots.to_string())
        .spawn()
        .expect("start runfleet-consumer");
    let consumer_pid = consumer.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = status_kib(consumer_pid, "VmRSS:") as f64 / 1024.0;
    let shell = "exit 0\n";
    let python = "import sys\nsys.exit(0)\n";
    fleet.register("noop.sh", shell).await;
    fleet.register("noop.py", python).await;
    let shell_file = fleet.work_dir.join("bare.sh");
    let python_file = fleet.work_dir.join("bare.py");
    std::fs::write(&shell_file, shell).unwrap();
    std::fs::write(&python_file, python).unwrap();

    println!(
        "dispatch-bench: {runs} runs per workload, {slots} consumer slots, submitted by POST /runs/batch"
    );
    println!(
        "| workload | accepted/s | finished/s | bare limit/s | finished / bare | submit→started p50/p95/p99 ms | submit→finished p50/p95/p99 ms | dispatch CPU ms/run | consumer peak RSS MiB |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    // The interpreter itself, as the consumer resolves it (not a pyenv-style shim script,
    // which would make the bare limit several times slower than the real start).
    let python_exe = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "python3".into());
    for (name, script, program, file) in [
        ("shell", "noop.sh", "bash", &shell_file),
        ("script", "noop.py", python_exe.as_str(), &python_file),
    ] {
        let f = workload(&fleet, consumer_pid, script, runs).await;
        let bare = bare_limit(program, file, runs, slots).await;
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.0}% | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | {:.2} | {:.1} |",
            f.accepted_per_s,
            f.finished_per_s,
            bare,
            100.0 * f.finished_per_s / bare,
            f.started_ms[0],
            f.started_ms[1],
            f.started_ms[2],
            f.finished_ms[0],
            f.finished_ms[1],
            f.finished_ms[2],
            f.cpu_ms_per_run,
            f.consumer_rss_mib,
        );
    }
    println!("consumer idle RSS: {idle_rss:.1} MiB");
    kill_tree(consumer_pid);
    let _ = consumer.wait();
    drop(fleet);
}
