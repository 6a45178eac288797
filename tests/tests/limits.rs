//! Per-run resource limits: a task's rlimits reach its script, the consumer's ceiling caps
//! them, and bad limits are refused naming the field.

use std::time::{Duration, Instant};

use runfleet_tests::{Fleet, FleetOptions};
use serde_json::json;

const BUSY: &str = "while True:\n    pass\n";
const GREEDY: &str = "block = bytearray(1024 * 1024 * 1024)\nprint('allocated', len(block))\n";
const FILES: &str =
    "import os\nfds = [os.open(os.devnull, os.O_RDONLY) for _ in range(200)]\nprint(len(fds))\n";

async fn run_task(
    fleet: &Fleet,
    name: &str,
    script: &str,
    limits: serde_json::Value,
) -> serde_json::Value {
    fleet.register(&format!("{name}.py"), script).await;
    let (status, task) = fleet
        .post(
            "/tasks",
            &json!({"name": name, "script": format!("{name}.py"), "limits": limits, "timeout_seconds": 60}),
        )
        .await;
    assert_eq!(status, 201, "{task}");
    assert_eq!(task["limits"], limits, "the task shows its limits");
    let id = fleet.submit(json!({"task": name})).await;
    fleet.wait_final(&id, Duration::from_secs(60)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_limits_reach_the_script_and_the_ceiling_caps_them() {
    let mut fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        ..FleetOptions::default()
    })
    .await;
    // The consumer allows at most 2 CPU seconds per run, whatever a task asks.
    fleet.consumer_config.consumer.limits.max_cpu_seconds = Some(2);
    fleet.start_consumer().await;

    let started = Instant::now();
    let run = run_task(&fleet, "busy", BUSY, json!({"cpu_seconds": 1000})).await;
    assert_eq!(run["status"], "failed", "{run}");
    let message = run["error"]["message"].as_str().unwrap();
    assert!(message.contains("CPU limit of 2 s"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "stopped by the CPU limit, not the timeout"
    );

    let run = run_task(&fleet, "greedy", GREEDY, json!({"memory_bytes": 268435456})).await;
    assert_eq!(run["status"], "failed", "{run}");
    let id = run["id"].as_str().unwrap();
    let (_, logs) = fleet.get(&format!("/runs/{id}/logs")).await;
    assert!(
        logs["stderr"].as_str().unwrap().contains("MemoryError"),
        "{logs}"
    );

    let run = run_task(&fleet, "files", FILES, json!({"open_files": 64})).await;
    assert_eq!(run["status"], "failed", "{run}");
    let id = run["id"].as_str().unwrap();
    let (_, logs) = fleet.get(&format!("/runs/{id}/logs")).await;
    assert!(
        logs["stderr"]
            .as_str()
            .unwrap()
            .contains("Too many open files"),
        "{logs}"
    );

    // Without limits the same script opens its 200 files (the default is 4096).
    let (status, _) = fleet
        .post(
            "/tasks",
            &json!({"name": "files-free", "script": "files.py"}),
        )
        .await;
    assert_eq!(status, 201);
    let id = fleet.submit(json!({"task": "files-free"})).await;
    let run = fleet.wait_final(&id, Duration::from_secs(30)).await;
    assert_eq!(run["status"], "succeeded", "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_limits_are_refused_naming_the_field() {
    let fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        ..FleetOptions::default()
    })
    .await;
    fleet.register("x.py", "print(1)\n").await;
    let (status, body) = fleet
        .post(
            "/tasks",
            &json!({"name": "t", "script": "x.py", "limits": {"open_files": 2}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "limits.open_files");
    let (status, body) = fleet
        .post(
            "/tasks",
            &json!({"name": "t", "script": "x.py", "limits": {"cpu": 5}}),
        )
        .await;
    assert!((400..500).contains(&status), "{status} {body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("cpu"),
        "{body}"
    );
    let (status, body) = fleet
        .post(
            "/tasks",
            &json!({"name": "t", "script": "x.py", "limits": {"memory_bytes": -1}}),
        )
        .await;
    assert!((400..500).contains(&status), "{status} {body}");
}
