//! SIGTERM on a consumer: it stops taking messages, lets running scripts finish within the
//! drain grace, exits 0; runs still going when the grace ends are queued again at once.

use std::time::{Duration, Instant};

use runfleet_tests::{Fleet, FleetOptions, count_lines, kill_tree, wait_for_lines};
use serde_json::json;

/// Sleeps `--seconds` on its first attempt only, logging start and end.
const SCRIPT: &str = "import os, sys, time\nlog = sys.argv[sys.argv.index('--log') + 1]\nopen(log, 'a').write('start\\n')\nif os.environ['RUNFLEET_ATTEMPT'] == '1':\n    time.sleep(float(sys.argv[sys.argv.index('--seconds') + 1]))\nopen(log, 'a').write('end\\n')\n";

fn sigterm(child: &std::process::Child) {
    runfleet_tests::send_signal(child.id() as i32, libc::SIGTERM);
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            kill_tree(child.id());
            panic!("consumer did not exit within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_running_scripts_finish_and_takes_nothing_new() {
    let mut fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        slots: 1,
        ..FleetOptions::default()
    })
    .await;
    fleet.consumer_config.consumer.drain_seconds = 30;
    fleet.register("slow.py", SCRIPT).await;
    std::fs::create_dir_all(&fleet.work_dir).unwrap();
    let log = fleet.work_dir.join("drain.log");
    let params = json!({"log": log.to_str().unwrap(), "seconds": 2});
    let mut consumer = fleet.spawn_consumer_process();
    let first = fleet
        .submit(json!({"script": "slow.py", "parameters": params}))
        .await;
    wait_for_lines(&log, "start", 1).await;
    sigterm(&consumer);
    // Submitted during the drain: must not be taken by the draining consumer.
    let second = fleet.submit(json!({"script": "slow.py", "parameters": {"log": log.to_str().unwrap(), "seconds": 0}})).await;
    let code =
        tokio::task::spawn_blocking(move || wait_exit(&mut consumer, Duration::from_secs(20)))
            .await
            .unwrap();
    assert_eq!(code, Some(0), "consumer exit status after SIGTERM");
    let (_, run) = fleet.get(&format!("/runs/{first}")).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["attempt"], 1);
    let (_, run) = fleet.get(&format!("/runs/{second}")).await;
    assert_eq!(
        run["status"], "queued",
        "a draining consumer took a new run: {run}"
    );

    let mut next = fleet.spawn_consumer_process();
    let run = fleet.wait_final(&second, Duration::from_secs(30)).await;
    kill_tree(next.id());
    let _ = next.wait();
    assert_eq!(run["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_still_going_after_the_grace_are_queued_again_at_once() {
    let mut fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        // Longer than the test: only the consumer's own release can requeue the run.
        reclaim_after_seconds: 600,
        ..FleetOptions::default()
    })
    .await;
    fleet.consumer_config.consumer.drain_seconds = 1;
    fleet.register("slow.py", SCRIPT).await;
    std::fs::create_dir_all(&fleet.work_dir).unwrap();
    let log = fleet.work_dir.join("grace.log");
    let mut consumer = fleet.spawn_consumer_process();
    let id = fleet
        .submit(json!({"script": "slow.py", "parameters": {"log": log.to_str().unwrap(), "seconds": 60}}))
        .await;
    wait_for_lines(&log, "start", 1).await;
    sigterm(&consumer);
    let code =
        tokio::task::spawn_blocking(move || wait_exit(&mut consumer, Duration::from_secs(15)))
            .await
            .unwrap();
    assert_eq!(code, Some(0));
    let (_, run) = fleet.get(&format!("/runs/{id}")).await;
    assert_eq!(run["status"], "queued", "{run}");
    assert_eq!(run["attempt"], 2);

    let mut next = fleet.spawn_consumer_process();
    let run = fleet.wait_final(&id, Duration::from_secs(30)).await;
    kill_tree(next.id());
    let _ = next.wait();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["attempt"], 2);
    assert_eq!(count_lines(&log, "start"), 2);
    assert_eq!(
        count_lines(&log, "end"),
        1,
        "the stopped first attempt must not have finished"
    );
}
