//! `chaos`: nothing lost, nothing done twice, under real faults.
//!
//! Two consumer processes and an in-process producer on 127.0.0.1; a stream of runs (a mix
//! of instant and 0.2 s scripts) submitted over HTTP, each with an idempotency key and
//! retried until the API accepts it, so "accepted" is exact. While the load runs: kill -9
//! a consumer and start it again; restart RabbitMQ; restart Postgres; SIGTERM a consumer
//! (rolling restart). Every script appends "<run id> <attempt>" to a side file when it
//! starts. At the end, from Postgres and the side file: accepted, final statuses, lost,
//! executed more than once, and whether every extra execution was recorded as an attempt.
//!
//! It restarts the machine's RabbitMQ and PostgreSQL: run it alone, never beside tests.
//!   cargo run --release -p runfleet-tests --bin chaos -- [--runs 2000]

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use runfleet_tests::{Fleet, FleetOptions, flag_value, kill_tree};
use serde_json::json;

fn sh(cmd: &str) {
    let ok = Command::new("bash")
        .args(["-c", cmd])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("warning: `{cmd}` failed");
    }
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !port_open(port) {
        assert!(Instant::now() < deadline, "port {port} did not come back");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn restart_rabbitmq() {
    sh("rabbitmqctl -q stop_app && rabbitmqctl -q start_app");
    wait_port(5672);
}

fn restart_postgres() {
    sh(
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | sort -V | tail -n1) main restart",
    );
    wait_port(5432);
}

/// Runs submitted at or before `at` that are not final yet (None: Postgres unreachable).
async fn unfinished_before(fleet: &Fleet, at: chrono::DateTime<chrono::Utc>) -> Option<i64> {
    let db = tokio::time::timeout(Duration::from_secs(3), fleet.db())
        .await
        .ok()?;
    let row = db
        .query_one(
            "SELECT count(*) FROM runs WHERE submitted_at <= $1
                AND status NOT IN ('succeeded','failed','timed_out','cancelled','dead')",
            &[&at],
        )
        .await
        .ok()?;
    Some(row.get(0))
}

/// Seconds from the fault until every run submitted before it is final (NaN after `limit`).
async fn drain_time(
    fleet: &Fleet,
    fault_at: chrono::DateTime<chrono::Utc>,
    since: Instant,
    limit: Duration,
) -> f64 {
    loop {
        if unfinished_before(fleet, fault_at).await == Some(0) {
            return since.elapsed().as_secs_f64();
        }
        if since.elapsed() > limit {
            return f64::NAN;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::main]
async fn main() {
    let runs = flag_value("--runs", 2000);
    let mut fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        slots: 4,
        reclaim_after_seconds: 10,
        ..FleetOptions::default()
    })
    .await;
    fleet.consumer_config.consumer.drain_seconds = 10;
    std::fs::create_dir_all(&fleet.work_dir).unwrap();
    let side = fleet.work_dir.join("starts.log");
    let script = "import os, sys, time\nwith open(sys.argv[sys.argv.index('--side') + 1], 'a') as f:\n    f.write(os.environ['RUNFLEET_RUN_ID'] + ' ' + os.environ['RUNFLEET_ATTEMPT'] + '\\n')\ntime.sleep(float(sys.argv[sys.argv.index('--seconds') + 1]))\n";
    fleet.register("chaos.py", script).await;

    let mut consumers = vec![
        fleet.spawn_consumer_process(),
        fleet.spawn_consumer_process(),
    ];
    let accepted = Arc::new(AtomicUsize::new(0));
    let fleet = Arc::new(fleet);

    // The load: 4 submitters, each run retried with its key until accepted.
    let mut submitters = Vec::new();
    for w in 0..4 {
        let (fleet, accepted, side) = (fleet.clone(), accepted.clone(), side.clone());
        submitters.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in (w..runs).step_by(4) {
                let body = json!({
                    "script": "chaos.py", "idempotency_key": format!("chaos-{i}"),
                    "parameters": {"side": side.to_str().unwrap(), "seconds": if i % 2 == 0 { 0.0 } else { 0.2 }},
                });
                loop {
                    let sent = fleet.http.post(format!("{}/runs", fleet.base)).json(&body).send().await;
                    if let Ok(r) = sent {
                        let status = r.status().as_u16();
                        if status == 202 || status == 200 {
                            // 200: a retry whose earlier 202 was lost; the key makes it the
                            // same run, so each key is accepted exactly once.
                            let run: serde_json::Value = r.json().await.unwrap();
                            accepted.fetch_add(1, Ordering::SeqCst);
                            ids.push(run["id"].as_str().unwrap().to_string());
                            break;
                        }
                        assert!(status >= 500, "submit refused with {status}");
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                // ~25 runs/s in all: below what two consumers sustain here, so drain times
                // measure recovery, not a backlog.
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            ids
        }));
    }

    let mut drains = Vec::new();
    let wait_for = |n: usize| {
        let accepted = accepted.clone();
        async move {
            while accepted.load(Ordering::SeqCst) < n {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let limit = Duration::from_secs(120);

    wait_for(runs / 5).await;
    let (t, at) = (Instant::now(), chrono::Utc::now());
    kill_tree(consumers[0].id());
    let _ = consumers[0].wait();
    consumers[0] = fleet.spawn_consumer_process();
    drains.push((
        "kill -9 consumer, start it again",
        drain_time(&fleet, at, t, limit).await,
    ));

    wait_for(runs * 2 / 5).await;
    let (t, at) = (Instant::now(), chrono::Utc::now());
    tokio::task::spawn_blocking(restart_rabbitmq).await.unwrap();
    drains.push(("restart RabbitMQ", drain_time(&fleet, at, t, limit).await));

    wait_for(runs * 3 / 5).await;
    let (t, at) = (Instant::now(), chrono::Utc::now());
    tokio::task::spawn_blocking(restart_postgres).await.unwrap();
    drains.push(("restart Postgres", drain_time(&fleet, at, t, limit).await));

    wait_for(runs * 4 / 5).await;
    let (t, at) = (Instant::now(), chrono::Utc::now());
    runfleet_tests::send_signal(consumers[1].id() as i32, libc::SIGTERM);
    let mut old = std::mem::replace(&mut consumers[1], fleet.spawn_consumer_process());
    let code = tokio::task::spawn_blocking(move || old.wait().ok().and_then(|s| s.code()))
        .await
        .unwrap();
    drains.push((
        "SIGTERM consumer (rolling restart)",
        drain_time(&fleet, at, t, limit).await,
    ));

    let mut ids = Vec::new();
    for s in submitters {
        ids.extend(s.await.unwrap());
    }
    let (t, at) = (Instant::now(), chrono::Utc::now());
    drains.push((
        "end of load",
        drain_time(&fleet, at, t, Duration::from_secs(300)).await,
    ));
    for c in &mut consumers {
        kill_tree(c.id());
        let _ = c.wait();
    }

    // Count, from Postgres and the side file.
    let db = fleet.db().await;
    let rows = db
        .query("SELECT id::text, status, attempt, reclaims FROM runs", &[])
        .await
        .unwrap();
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    let mut attempts: HashMap<String, i32> = HashMap::new();
    for r in &rows {
        *by_status.entry(r.get::<_, String>(1)).or_default() += 1;
        attempts.insert(r.get(0), r.get(2));
    }
    let mut starts: HashMap<String, i32> = HashMap::new();
    for line in std::fs::read_to_string(&side).unwrap_or_default().lines() {
        if let Some(id) = line.split_whitespace().next() {
            *starts.entry(id.to_string()).or_default() += 1;
        }
    }
    let accepted_n = accepted.load(Ordering::SeqCst);
    let unique_ids: std::collections::HashSet<&String> = ids.iter().collect();
    let lost = ids
        .iter()
        .filter(|id| {
            !rows.iter().any(|r| {
                r.get::<_, String>(0) == **id
                    && ["succeeded", "failed", "timed_out", "cancelled", "dead"]
                        .contains(&r.get::<_, String>(1).as_str())
            })
        })
        .count();
    let twice = starts.values().filter(|n| **n > 1).count();
    let extra_starts: i32 = starts.values().map(|n| n - 1).sum();
    let recorded: i32 = attempts.values().map(|a| a - 1).sum();
    let unrecorded = starts
        .iter()
        .filter(|(id, n)| **n > attempts.get(*id).copied().unwrap_or(0))
        .count();
    let never_started = ids.iter().filter(|id| !starts.contains_key(*id)).count();

    println!(
        "| runs accepted | distinct runs | succeeded | failed | dead | lost | executed more than once | extra starts | extra attempts recorded | double runs not recorded | never started |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {accepted_n} | {} | {} | {} | {} | {lost} | {twice} | {extra_starts} | {recorded} | {unrecorded} | {never_started} |",
        unique_ids.len(),
        by_status.get("succeeded").unwrap_or(&0),
        by_status.get("failed").unwrap_or(&0),
        by_status.get("dead").unwrap_or(&0),
    );
    println!();
    println!("| fault | time until every run submitted before it is final, s |");
    println!("|---|---|");
    for (fault, secs) in &drains {
        println!("| {fault} | {secs:.1} |");
    }
    println!();
    println!("SIGTERMed consumer exit code: {code:?}");
    let pass = lost == 0
        && unrecorded == 0
        && never_started == 0
        && accepted_n == runs
        && unique_ids.len() == runs
        && by_status.get("succeeded").copied().unwrap_or(0) == runs
        && code == Some(0);
    println!("{}", if pass { "chaos: PASS" } else { "chaos: FAIL" });
    drop(db);
    drop(fleet);
    std::process::exit(if pass { 0 } else { 1 });
}
