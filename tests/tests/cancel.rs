//! `POST /runs/{id}/cancel`: a queued run never starts, a running run's process group is
//! terminated within a second or two, a finished run is a 409.

use std::time::{Duration, Instant};

use runfleet_tests::{Fleet, FleetOptions, process_running};
use serde_json::json;

const MARK_AND_SLEEP: &str =
    "import os, sys, time\nopen(sys.argv[2], 'w').write(str(os.getpid()))\ntime.sleep(120)\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_run_is_cancelled_and_never_starts() {
    let mut fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        ..FleetOptions::default()
    })
    .await;
    fleet.register("mark.py", MARK_AND_SLEEP).await;
    std::fs::create_dir_all(&fleet.work_dir).unwrap();
    let marker = fleet.work_dir.join("never.pid");
    let id = fleet
        .submit(json!({"script": "mark.py", "parameters": {"pidfile": marker.to_str().unwrap()}}))
        .await;
    let (s, run) = fleet.post(&format!("/runs/{id}/cancel"), &json!({})).await;
    assert_eq!(s, 200, "{run}");
    assert_eq!(run["status"], "cancelled");
    assert_eq!(run["error"]["code"], "cancelled");
    assert!(run["cancel_requested_at"].is_string());

    // A consumer now gets the message, and must skip it.
    fleet.start_consumer().await;
    let queue = runfleet_common::amqp::queue_name(&fleet.amqp, "default");
    let deadline = Instant::now() + Duration::from_secs(20);
    while fleet.queue_depth(&queue).await > 0 {
        assert!(Instant::now() < deadline, "the message was not consumed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!marker.exists(), "a cancelled run started");
    let (_, run) = fleet.get(&format!("/runs/{id}")).await;
    assert_eq!(run["status"], "cancelled");
    assert!(run["started_at"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_run_is_terminated_promptly_and_finished_ones_are_a_conflict() {
    let fleet = Fleet::start().await;
    fleet.register("mark.py", MARK_AND_SLEEP).await;
    let marker = fleet.work_dir.join("running.pid");
    let id = fleet
        .submit(json!({"script": "mark.py", "parameters": {"pidfile": marker.to_str().unwrap()}}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !marker.exists() || std::fs::read_to_string(&marker).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "run never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid: i32 = std::fs::read_to_string(&marker).unwrap().parse().unwrap();

    let asked = Instant::now();
    let (s, run) = fleet.post(&format!("/runs/{id}/cancel"), &json!({})).await;
    assert_eq!(s, 202, "{run}");
    assert_eq!(run["status"], "running");
    let run = fleet.wait_final(&id, Duration::from_secs(10)).await;
    let took = asked.elapsed();
    assert_eq!(run["status"], "cancelled", "{run}");
    assert_eq!(run["error"]["code"], "cancelled");
    assert!(took < Duration::from_millis(2500), "cancel took {took:?}");
    assert!(!process_running(pid), "the script survived its cancel");

    let (s, body) = fleet.post(&format!("/runs/{id}/cancel"), &json!({})).await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(body["error"]["code"], "run_finished");
    let (s, _) = fleet
        .post(
            &format!("/runs/{}/cancel", uuid::Uuid::now_v7()),
            &json!({}),
        )
        .await;
    assert_eq!(s, 404);
    let (s, body) = fleet.post("/runs/nope/cancel", &json!({})).await;
    assert_eq!((s, body["error"]["field"].as_str()), (400, Some("id")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_is_refused_until_a_run_has_finished() {
    let fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        ..FleetOptions::default()
    })
    .await;
    fleet.register("ok.py", "pass\n").await;
    let id = fleet.submit(json!({"script": "ok.py"})).await;
    let (s, body) = fleet.post(&format!("/runs/{id}/retry"), &json!({})).await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(body["error"]["code"], "run_not_finished");
}
