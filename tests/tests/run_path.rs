//! The run path end to end: HTTP submit → RabbitMQ → consumer → Postgres, against the real
//! services, one isolated fleet per test: how a run ends (success, failure, timeout, bad
//! result), its output, and how slots and lookahead share a consumer.

use std::time::Duration;

use runfleet_tests::{Fleet, FleetOptions, process_running};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

const ECHO_PY: &str = r#"
import json, os, sys
print("hello from", os.environ["RUNFLEET_RUN_ID"])
sys.stderr.write("a warning\n")
result = {
    "argv": sys.argv[1:],
    "params": json.loads(os.environ["RUNFLEET_PARAMS"]),
    "params_file": json.load(open(os.environ["RUNFLEET_PARAMS_PATH"])),
    "cwd_is_work_dir": os.getcwd() == os.environ["RUNFLEET_WORK_DIR"],
    "leaked": sorted(k for k in os.environ if "DATABASE" in k or "AMQP" in k),
}
json.dump(result, open(os.environ["RUNFLEET_RESULT_PATH"], "w"))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_run_succeeds_with_result_logs_and_exact_arguments() {
    let fleet = Fleet::start().await;
    fleet.register("echo.py", ECHO_PY).await;
    let params = json!({
        "url": "http://x/feed", "limit": 5, "verbose": true, "dry_run": false, "skip": null,
        "tag": ["a", "b"], "opts": {"k": 1},
        "evil": "\"; rm -rf / #", "subst": "$(id)", "unicode": "żółw ✓"
    });
    let id = fleet
        .submit(json!({"script": "echo.py", "parameters": params}))
        .await;
    let run = fleet.wait_final(&id, WAIT).await;

    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["exit_code"], 0);
    assert_eq!(run["attempt"], 1);
    assert!(run["error"].is_null());
    assert!(
        run["worker"]
            .as_str()
            .unwrap()
            .starts_with("test-consumer-")
    );
    assert!(run["started_at"].is_string() && run["finished_at"].is_string());
    let result = &run["result"];
    assert_eq!(result["params"], params);
    assert_eq!(result["params_file"], params);
    assert_eq!(result["cwd_is_work_dir"], true);
    assert_eq!(
        result["leaked"],
        json!([]),
        "consumer secrets leaked into the script env"
    );
    let argv: Vec<&str> = result["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    // Keys arrive sorted; true → bare flag; false/null omitted; arrays repeat; objects JSON.
    assert_eq!(
        argv,
        vec![
            "--evil",
            "\"; rm -rf / #",
            "--limit",
            "5",
            "--opts",
            r#"{"k":1}"#,
            "--subst",
            "$(id)",
            "--tag",
            "a",
            "--tag",
            "b",
            "--unicode",
            "żółw ✓",
            "--url",
            "http://x/feed",
            "--verbose"
        ]
    );

    let (status, logs) = fleet.get(&format!("/runs/{id}/logs")).await;
    assert_eq!(status, 200);
    assert_eq!(logs["stdout"], format!("hello from {id}\n"));
    assert_eq!(logs["stderr"], "a warning\n");
    assert_eq!(logs["stdout_truncated"], false);

    // The work directory is removed after the run (alongside the result commit, before
    // the ack, so it may lag the final status by a moment).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let leftovers: Vec<_> = std::fs::read_dir(fleet.work_dir.join("runs"))
            .unwrap()
            .collect();
        if leftovers.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "work dirs left: {leftovers:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_missing_from_the_consumer_fails_shell_runs_saying_which() {
    let mut fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        ..FleetOptions::default()
    })
    .await;
    fleet.consumer_config.consumer.shell = "no-such-shell-rf".into();
    fleet.start_consumer().await;
    fleet.register("hello.sh", "echo hi\n").await;
    let id = fleet.submit(json!({"script": "hello.sh"})).await;
    let run = fleet.wait_final(&id, WAIT).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error"]["code"], "spawn_failed", "{run}");
    let message = run["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("no-such-shell-rf not found on PATH")
            && message.contains("consumer.shell"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_script_is_failed_with_exit_code_and_stderr() {
    let fleet = Fleet::start().await;
    fleet
        .register(
            "boom.py",
            "import sys\nprint('partial work')\nsys.stderr.write('database exploded\\n')\nsys.exit(3)\n",
        )
        .await;
    fleet
        .register("fail.sh", "echo shell says no >&2\nexit 7\n")
        .await;
    let py = fleet.submit(json!({"script": "boom.py"})).await;
    let sh = fleet.submit(json!({"script": "fail.sh"})).await;

    let run = fleet.wait_final(&py, WAIT).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["exit_code"], 3);
    assert_eq!(run["error"]["code"], "exit_nonzero");
    assert!(run["error"]["message"].as_str().unwrap().contains("code 3"));
    let (_, logs) = fleet.get(&format!("/runs/{py}/logs")).await;
    assert_eq!(logs["stderr"], "database exploded\n");
    assert_eq!(logs["stdout"], "partial work\n");

    let run = fleet.wait_final(&sh, WAIT).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["exit_code"], 7);
    let (_, logs) = fleet.get(&format!("/runs/{sh}/logs")).await;
    assert_eq!(logs["stderr"], "shell says no\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_result_json_fails_the_run_with_a_clear_error() {
    let fleet = Fleet::start().await;
    fleet
        .register(
            "badresult.py",
            "import os\nopen(os.environ['RUNFLEET_RESULT_PATH'], 'w').write('{not json')\n",
        )
        .await;
    let id = fleet.submit(json!({"script": "badresult.py"})).await;
    let run = fleet.wait_final(&id, WAIT).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["exit_code"], 0);
    assert_eq!(run["error"]["code"], "invalid_result");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_the_whole_process_group() {
    let fleet = Fleet::start().await;
    // The script starts a grandchild, ignores SIGTERM, and records both pids.
    let script = r#"
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen(["sleep", "300"])
with open(sys.argv[2], "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
time.sleep(300)
"#;
    fleet.register("hang.py", script).await;
    let pid_file = fleet.work_dir.join("hang.pids");
    let id = fleet
        .submit(json!({
            "script": "hang.py", "timeout_seconds": 1,
            "parameters": {"pidfile": pid_file.to_str().unwrap()}
        }))
        .await;
    let run = fleet.wait_final(&id, WAIT).await;
    assert_eq!(run["status"], "timed_out", "{run}");
    assert_eq!(run["error"]["code"], "timed_out");
    assert!(run["exit_code"].is_null());

    let pids: Vec<i32> = std::fs::read_to_string(&pid_file)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    for pid in pids {
        assert!(
            !process_running(pid),
            "process {pid} of the timed-out run survived"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_capped_keeping_the_tail() {
    let fleet = Fleet::start_with(FleetOptions {
        output_limit_bytes: 4096,
        ..FleetOptions::default()
    })
    .await;
    fleet
        .register(
            "chatty.py",
            "for i in range(20000):\n    print('line', i)\nprint('THE END')\n",
        )
        .await;
    let id = fleet.submit(json!({"script": "chatty.py"})).await;
    let run = fleet.wait_final(&id, WAIT).await;
    assert_eq!(run["status"], "succeeded");
    let (_, logs) = fleet.get(&format!("/runs/{id}/logs")).await;
    let out = logs["stdout"].as_str().unwrap();
    assert!(out.len() <= 4096, "{} bytes kept", out.len());
    assert!(out.ends_with("line 19999\nTHE END\n"));
    assert_eq!(logs["stdout_truncated"], true);
    assert_eq!(logs["stderr_truncated"], false);
}

#[tokio::test]
async fn a_silent_run_stores_no_logs_row_and_reads_as_empty() {
    let fleet = Fleet::start().await;
    fleet.register("quiet.sh", "exit 0\n").await;
    fleet.register("loud.sh", "echo out; echo err >&2\n").await;
    let quiet = fleet.submit(json!({"script": "quiet.sh"})).await;
    let loud = fleet.submit(json!({"script": "loud.sh"})).await;
    for id in [&quiet, &loud] {
        assert_eq!(fleet.wait_final(id, WAIT).await["status"], "succeeded");
    }
    let db = fleet.db().await;
    let rows = |id: &str| {
        let id: uuid::Uuid = id.parse().unwrap();
        let db = &db;
        async move {
            db.query_one("SELECT count(*) FROM run_logs WHERE run_id = $1", &[&id])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    assert_eq!(rows(&quiet).await, 0);
    assert_eq!(rows(&loud).await, 1);
    let (status, logs) = fleet.get(&format!("/runs/{quiet}/logs")).await;
    assert_eq!(status, 200);
    assert_eq!(
        (logs["stdout"].as_str(), logs["stderr"].as_str()),
        (Some(""), Some(""))
    );
    let (_, logs) = fleet.get(&format!("/runs/{loud}/logs")).await;
    assert_eq!(
        (logs["stdout"].as_str(), logs["stderr"].as_str()),
        (Some("out\n"), Some("err\n"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_run_scripts_in_parallel() {
    let fleet = Fleet::start_with(FleetOptions {
        slots: 4,
        ..FleetOptions::default()
    })
    .await;
    fleet
        .register("nap.py", "import time\ntime.sleep(1)\n")
        .await;
    let started = std::time::Instant::now();
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(fleet.submit(json!({"script": "nap.py"})).await);
    }
    let mut starts = Vec::new();
    for id in &ids {
        let run = fleet.wait_final(id, WAIT).await;
        assert_eq!(run["status"], "succeeded");
        starts.push(chrono_secs(run["started_at"].as_str().unwrap()));
    }
    // All four started before any could have finished: they ran at once.
    let spread = starts.iter().cloned().fold(f64::MIN, f64::max)
        - starts.iter().cloned().fold(f64::MAX, f64::min);
    assert!(
        spread < 0.9,
        "starts spread over {spread:.2}s: slots did not run in parallel"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// The script of [`held_and_overlaps`]: it naps and reports when it ran.
const NAP_PY: &str = r#"
import json, os, time
start = time.time()
time.sleep(1.5)
json.dump({"start": start, "end": time.time()}, open(os.environ["RUNFLEET_RESULT_PATH"], "w"))
"#;

/// With `slots` 1: how many of 3 queued 1.5 s runs stay in the queue while the first
/// runs, and how many pairs of their scripts ran at the same time (from the scripts' own
/// clocks: Postgres may show two runs `running` for a moment, the one committing its
/// result and the next one started in the slot it gave back).
async fn held_and_overlaps(lookahead: usize) -> (u32, usize) {
    let mut fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        ..FleetOptions::default()
    })
    .await;
    fleet.consumer_config.consumer.slots = 1;
    fleet.consumer_config.consumer.lookahead = lookahead;
    fleet.register("nap.py", NAP_PY).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(fleet.submit(json!({"script": "nap.py"})).await);
    }
    fleet.start_consumer().await;
    let queue = runfleet_common::amqp::queue_name(&fleet.amqp, "default");
    let db = fleet.db().await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let running: i64 = db
            .query_one("SELECT count(*) FROM runs WHERE status = 'running'", &[])
            .await
            .unwrap()
            .get(0);
        if running > 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no run started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // RabbitMQ has handed out what the prefetch allows by the time the first run started.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held_back = fleet.queue_depth(&queue).await;
    let mut spans = Vec::new();
    for id in &ids {
        let run = fleet.wait_final(id, WAIT).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let at = |k: &str| {
            run["result"][k]
                .as_f64()
                .expect("the script reports its times")
        };
        spans.push((at("start"), at("end")));
    }
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let overlaps = spans.windows(2).filter(|w| w[1].0 < w[0].1).count();
    (held_back, overlaps)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookahead_holds_one_more_message_but_runs_no_more_than_the_slots() {
    let ((held_plain, overlaps_plain), (held_ahead, overlaps_ahead)) =
        tokio::join!(held_and_overlaps(0), held_and_overlaps(1));
    assert_eq!(
        held_plain, 2,
        "without lookahead: only the running run's message is out"
    );
    assert_eq!(
        held_ahead, 1,
        "lookahead 1: the next run's message waits on the consumer"
    );
    assert_eq!(overlaps_plain, 0, "two scripts ran at once in one slot");
    assert_eq!(
        overlaps_ahead, 0,
        "lookahead must not run more scripts than consumer.slots"
    );
}

fn chrono_secs(rfc3339: &str) -> f64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_micros() as f64
        / 1e6
}
