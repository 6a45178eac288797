//! A consumer killed mid-run (kill -9, node loss): the run is taken back when its heartbeat
//! goes stale and runs again as its next attempt on another consumer. A consumer that is
//! alive keeps its long runs.

use std::time::Duration;

use runfleet_tests::{Fleet, FleetOptions, count_lines, kill_tree, wait_for_lines};
use serde_json::json;

const SCRIPT: &str = "import sys, time\nlog = sys.argv[sys.argv.index('--log') + 1]\nopen(log, 'a').write('start\\n')\ntime.sleep(float(sys.argv[sys.argv.index('--seconds') + 1]))\nopen(log, 'a').write('end\\n')\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_consumer_was_killed_runs_again_on_another() {
    let fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        reclaim_after_seconds: 3,
        ..FleetOptions::default()
    })
    .await;
    fleet.register("slow.py", SCRIPT).await;
    std::fs::create_dir_all(&fleet.work_dir).unwrap();
    let log = fleet.work_dir.join("slow.log");
    let mut first = fleet.spawn_consumer_process();
    let id = fleet
        .submit(json!({"script": "slow.py", "parameters": {"log": log.to_str().unwrap(), "seconds": 2}}))
        .await;
    wait_for_lines(&log, "start", 1).await;
    kill_tree(first.id());
    let _ = first.wait();

    let mut second = fleet.spawn_consumer_process();
    let run = fleet.wait_final(&id, Duration::from_secs(60)).await;
    kill_tree(second.id());
    let _ = second.wait();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["attempt"], 2);
    assert_eq!(run["reclaims"], 1);
    assert!(run["worker"].as_str().unwrap().ends_with("-proc"));
    // Started twice (the crash forced it, and the run says so), finished once.
    assert_eq!(
        count_lines(&log, "start"),
        1 + run["reclaims"].as_u64().unwrap() as usize
    );
    assert_eq!(count_lines(&log, "end"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_consumer_keeps_a_run_longer_than_the_reclaim_time() {
    let fleet = Fleet::start_with(FleetOptions {
        reclaim_after_seconds: 2,
        ..FleetOptions::default()
    })
    .await;
    fleet.register("slow.py", SCRIPT).await;
    let log = fleet.work_dir.join("live.log");
    let id = fleet
        .submit(json!({"script": "slow.py", "parameters": {"log": log.to_str().unwrap(), "seconds": 5}}))
        .await;
    let run = fleet.wait_final(&id, Duration::from_secs(60)).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["attempt"], 1, "a healthy run was reclaimed");
    assert_eq!(run["reclaims"], 0);
    assert_eq!(count_lines(&log, "start"), 1);
}

/// Sleeps on attempts 1 and 2 (so a kill always lands mid-run), returns at once later.
const POISON: &str = "import os, sys, time\nopen(sys.argv[2], 'a').write('start\\n')\nif int(os.environ['RUNFLEET_ATTEMPT']) < 3:\n    time.sleep(60)\n";

async fn kill_when_started(fleet: &Fleet, log: &std::path::Path, starts: usize) {
    let mut consumer = fleet.spawn_consumer_process();
    wait_for_lines(log, "start", starts).await;
    kill_tree(consumer.id());
    let _ = consumer.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_keeps_killing_its_consumer_goes_dead_and_can_be_retried() {
    let fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        reclaim_after_seconds: 2,
        max_reclaims: 1,
        ..FleetOptions::default()
    })
    .await;
    fleet.register("poison.py", POISON).await;
    std::fs::create_dir_all(&fleet.work_dir).unwrap();
    let log = fleet.work_dir.join("poison.log");
    let id = fleet
        .submit(json!({"script": "poison.py", "parameters": {"log": log.to_str().unwrap()}}))
        .await;
    kill_when_started(&fleet, &log, 1).await;
    kill_when_started(&fleet, &log, 2).await;
    let run = fleet.wait_final(&id, Duration::from_secs(30)).await;
    assert_eq!(run["status"], "dead", "{run}");
    assert_eq!(run["error"]["code"], "consumer_lost");
    assert_eq!(run["reclaims"], 2);
    assert_eq!(run["attempt"], 2);

    let (s, body) = fleet.post(&format!("/runs/{id}/retry"), &json!({})).await;
    assert_eq!(s, 202, "{body}");
    assert_eq!(body["status"], "queued");
    assert_eq!(body["attempt"], 3);
    let mut consumer = fleet.spawn_consumer_process();
    let run = fleet.wait_final(&id, Duration::from_secs(30)).await;
    kill_tree(consumer.id());
    let _ = consumer.wait();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["attempt"], 3);
    assert_eq!(count_lines(&log, "start"), 3);

    let (s, _) = fleet
        .post(&format!("/runs/{}/retry", uuid::Uuid::now_v7()), &json!({}))
        .await;
    assert_eq!(s, 404);
}
