//! The run path end to end: HTTP submit → RabbitMQ → consumer → Postgres, against the real
//! services, one isolated fleet per test.

use std::time::Duration;

use runfleet_tests::{Fleet, FleetOptions, process_running};
use serde_json::{Value, json};

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

async fn expect_error(
    fleet: &Fleet,
    path: &str,
    body: Value,
    status: u16,
    code: &str,
    field: Option<&str>,
) {
    let (got, resp) = fleet.post(path, &body).await;
    assert_eq!(got, status, "{path} {body} → {resp}");
    assert_eq!(resp["error"]["code"], code, "{resp}");
    assert!(
        resp["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    match field {
        Some(f) => assert_eq!(resp["error"]["field"], f, "{resp}"),
        None => assert!(resp["error"]["field"].is_null(), "{resp}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_clear_4xx_errors_naming_the_field() {
    let fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        ..FleetOptions::default()
    })
    .await;
    fleet.register("ok.py", "print('ok')\n").await;
    let f = &fleet;
    expect_error(
        f,
        "/runs",
        json!({"script": "missing.py"}),
        422,
        "unknown_script",
        Some("script"),
    )
    .await;
    expect_error(
        f,
        "/runs/runs",
        json!({"script_name": "missing.py"}),
        422,
        "unknown_script",
        Some("script_name"),
    )
    .await;
    expect_error(
        f,
        "/runs",
        json!({"script": "../../etc/passwd"}),
        422,
        "invalid_script_name",
        Some("script"),
    )
    .await;
    expect_error(
        f,
        "/runs",
        json!({"script": "ok.py", "version": 9}),
        422,
        "unknown_script_version",
        Some("version"),
    )
    .await;
    expect_error(
        f,
        "/runs",
        json!({"script": "ok.py", "version": "one"}),
        422,
        "invalid_body",
        Some("version"),
    )
    .await;
    expect_error(
        f,
        "/runs",
        json!({"script": 42}),
        422,
        "invalid_body",
        Some("script"),
    )
    .await;
    expect_error(
        f,
        "/runs",
        json!({"script": "ok.py", "parameters": [1, 2]}),
        422,
        "invalid_body",
        Some("parameters"),
    )
    .await;
    expect_error(
        f,
        "/runs",
        json!({"script": "ok.py", "parameters": {"-x": 1}}),
        422,
        "invalid_parameter_key",
        Some("parameters.-x"),
    )
    .await;
    expect_error(
        f,
        "/runs",
        json!({"script": "ok.py", "queue": "gpu"}),
        422,
        "unknown_queue",
        Some("queue"),
    )
    .await;
    expect_error(
        f,
        "/runs",
        json!({"script": "ok.py", "timeout_seconds": 0}),
        422,
        "invalid_timeout",
        Some("timeout_seconds"),
    )
    .await;
    expect_error(
        f,
        "/runs",
        json!({"script": "ok.py", "priority": 1}),
        422,
        "invalid_body",
        Some("priority"),
    )
    .await;
    expect_error(f, "/runs", json!({}), 422, "invalid_body", Some("script")).await;
    expect_error(
        f,
        "/scripts",
        json!({"name": "a b.py", "content": "x"}),
        422,
        "invalid_script_name",
        Some("name"),
    )
    .await;
    expect_error(
        f,
        "/scripts",
        json!({"name": "notes.txt", "content": "x"}),
        422,
        "invalid_language",
        Some("language"),
    )
    .await;
    expect_error(
        f,
        "/scripts",
        json!({"name": "e.py", "content": "  "}),
        422,
        "invalid_content",
        Some("content"),
    )
    .await;
    expect_error(
        f,
        "/scripts",
        json!({"name": "r.py", "content": "x", "requirements": ["ok", ""]}),
        422,
        "invalid_requirements",
        Some("requirements[1]"),
    )
    .await;
    expect_error(
        f,
        "/scripts",
        json!({"name": "r.py", "content": "x", "requirements": ["requests>>2"]}),
        422,
        "invalid_requirements",
        Some("requirements[0]"),
    )
    .await;
    expect_error(
        f,
        "/scripts",
        json!({"name": "r.py", "content": "# /// script\n# dependencies = 3\n# ///\n"}),
        422,
        "invalid_requirements",
        Some("content"),
    )
    .await;

    // Oversized body (limit 256 KiB in tests) and oversized script (128 KiB).
    let big = "x".repeat(300 * 1024);
    expect_error(
        f,
        "/scripts",
        json!({"name": "big.py", "content": big}),
        413,
        "payload_too_large",
        None,
    )
    .await;
    let large = "#".repeat(200 * 1024);
    expect_error(
        f,
        "/scripts",
        json!({"name": "large.py", "content": large}),
        422,
        "script_too_large",
        Some("content"),
    )
    .await;

    // Not JSON, wrong content type, unknown routes and methods, bad ids.
    let r = fleet
        .http
        .post(format!("{}/runs", fleet.base))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_json"
    );
    let r = fleet
        .http
        .post(format!("{}/runs", fleet.base))
        .body("script=ok.py")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let (s, b) = fleet.get("/runs/not-a-uuid").await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("id")));
    let (s, b) = fleet.get(&format!("/runs/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (404, Some("run_not_found"))
    );
    let (s, b) = fleet.get("/nowhere").await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("not_found")));
    let r = fleet
        .http
        .delete(format!("{}/runs", fleet.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let (s, b) = fleet.get("/runs?limit=100000").await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("limit")));
    let (s, b) = fleet.get("/runs?status=sleeping").await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("status")));
    // Postgres cannot compare a NUL: a 400 naming the filter, not a 503 (found by the fuzzer).
    for (path, field) in [
        ("/runs?script=a%00b", "script"),
        ("/schedules?task=%00", "task"),
        ("/audit?actor=x%00", "actor"),
    ] {
        let (s, b) = fleet.get(path).await;
        assert_eq!(
            (s, b["error"]["field"].as_str()),
            (400, Some(field)),
            "{path}: {b}"
        );
    }
    let (s, _) = fleet.get("/scripts/nope.py").await;
    assert_eq!(s, 404);
    let (s, b) = fleet.get("/scripts/ok.py/versions/x").await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("version")));

    // Nothing was accepted by any of the above.
    let (_, page) = fleet.get("/runs").await;
    assert_eq!(page["runs"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_returns_the_same_run() {
    let fleet = Fleet::start().await;
    fleet.register("ok.py", "print('ok')\n").await;
    let body = json!({"script": "ok.py", "parameters": {"n": 1}, "idempotency_key": "deploy-42"});
    let (s1, r1) = fleet.post("/runs", &body).await;
    let (s2, r2) = fleet.post("/runs", &body).await;
    assert_eq!((s1, s2), (202, 200));
    assert_eq!(r1["id"], r2["id"]);
    let (s3, r3) = fleet
        .post(
            "/runs",
            &json!({"script": "ok.py", "parameters": {"n": 2}, "idempotency_key": "deploy-42"}),
        )
        .await;
    assert_eq!(s3, 409, "{r3}");
    assert_eq!(r3["error"]["field"], "idempotency_key");
    fleet.wait_final(r1["id"].as_str().unwrap(), WAIT).await;
    let count: i64 = fleet
        .db()
        .await
        .query_one("SELECT count(*) FROM runs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_versions_are_immutable_and_deduplicated() {
    let fleet = Fleet::start().await;
    let v1 = fleet.register("job.py", "print('v1')\n").await;
    let again = fleet.register("job.py", "print('v1')\n").await;
    assert_eq!(v1["version"], 1);
    assert_eq!(
        again["version"], 1,
        "same content must not make a new version"
    );
    let (s, v2) = fleet
        .post(
            "/scripts",
            &json!({"name": "job.py", "content": "print('v2')\n", "requirements": ["requests>=2"]}),
        )
        .await;
    assert_eq!((s, v2["version"].as_i64()), (201, Some(2)));
    assert_eq!(v2["requirements"], json!(["requests>=2"]));
    assert_eq!(v2["language"], "python");

    let (_, list) = fleet.get("/scripts").await;
    assert_eq!(list[0]["name"], "job.py");
    assert_eq!(list[0]["latest_version"], 2);
    let (_, detail) = fleet.get("/scripts/job.py").await;
    assert_eq!(detail["latest"]["content"], "print('v2')\n");
    assert_eq!(detail["versions"].as_array().unwrap().len(), 2);
    let (_, old) = fleet.get("/scripts/job.py/versions/1").await;
    assert_eq!(old["content"], "print('v1')\n");

    // A pinned version runs that version; no version runs the latest.
    let pinned = fleet
        .submit(json!({"script": "job.py", "version": 1}))
        .await;
    let latest = fleet.submit(json!({"script": "job.py"})).await;
    assert_eq!(fleet.wait_final(&pinned, WAIT).await["script_version"], 1);
    assert_eq!(fleet.wait_final(&latest, WAIT).await["script_version"], 2);
    let (_, logs) = fleet.get(&format!("/runs/{pinned}/logs")).await;
    assert_eq!(logs["stdout"], "v1\n");
    let (_, logs) = fleet.get(&format!("/runs/{latest}/logs")).await;
    assert_eq!(logs["stdout"], "v2\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_list_pages_with_a_keyset_cursor_and_filters() {
    let fleet = Fleet::start().await;
    fleet.register("a.py", "pass\n").await;
    fleet.register("b.sh", "exit 1\n").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let script = if i % 2 == 0 { "a.py" } else { "b.sh" };
        ids.push(fleet.submit(json!({"script": script})).await);
    }
    for id in &ids {
        fleet.wait_final(id, WAIT).await;
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (s, page) = fleet.get(&format!("/runs?limit=2&cursor={cursor}")).await;
        assert_eq!(s, 200);
        for r in page["runs"].as_array().unwrap() {
            seen.push(r["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);

    let (_, failed) = fleet.get("/runs?status=failed").await;
    assert_eq!(failed["runs"].as_array().unwrap().len(), 2);
    let (_, of_a) = fleet.get("/runs?script=a.py&status=succeeded").await;
    assert_eq!(of_a["runs"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_accepted_while_the_broker_is_down_completes_when_it_is_back() {
    let fleet = Fleet::start_with(FleetOptions {
        producer_via_proxy: true,
        ..FleetOptions::default()
    })
    .await;
    fleet.register("ok.py", "print('made it')\n").await;
    let proxy = fleet.proxy.as_ref().unwrap();
    proxy.down();

    let started = std::time::Instant::now();
    let (status, run) = fleet.post("/runs", &json!({"script": "ok.py"})).await;
    assert_eq!(status, 202, "{run}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "submit hung while broker was down"
    );
    let id = run["id"].as_str().unwrap().to_string();
    let (s, ready) = fleet.get("/ready").await;
    assert_eq!((s, ready["rabbitmq"].as_str()), (503, Some("down")));

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, run) = fleet.get(&format!("/runs/{id}")).await;
    assert_eq!(run["status"], "queued", "nothing could have published it");
    let unpublished: i64 = fleet
        .db()
        .await
        .query_one("SELECT count(*) FROM runs WHERE published_at IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(unpublished, 1, "the run waits in the outbox");

    proxy.up();
    let run = fleet.wait_final(&id, WAIT).await;
    assert_eq!(run["status"], "succeeded");
    let (s, _) = fleet.get("/ready").await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_503_with_a_clear_error_while_postgres_is_down() {
    let fleet = Fleet::start_with(FleetOptions {
        producer_db_via_proxy: true,
        ..FleetOptions::default()
    })
    .await;
    fleet.register("ok.py", "pass\n").await;
    let before = fleet.submit(json!({"script": "ok.py"})).await;
    fleet.db_proxy.as_ref().unwrap().down();

    for (method, path) in [
        ("POST", "/runs".to_string()),
        ("GET", format!("/runs/{before}")),
        ("GET", "/runs".to_string()),
        ("GET", "/scripts".to_string()),
    ] {
        let started = std::time::Instant::now();
        let (status, body) = if method == "POST" {
            fleet.post(&path, &json!({"script": "ok.py"})).await
        } else {
            fleet.get(&path).await
        };
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{method} {path} hung for {:?} while Postgres was down",
            started.elapsed()
        );
        assert_eq!(status, 503, "{method} {path}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.to_lowercase().contains("postgres"),
            "{method} {path}: the error should name Postgres: {body}"
        );
    }
    let (s, ready) = fleet.get("/ready").await;
    assert_eq!(
        (s, ready["postgres"].as_str()),
        (503, Some("down")),
        "{ready}"
    );

    fleet.db_proxy.as_ref().unwrap().up();
    let deadline = std::time::Instant::now() + WAIT;
    while fleet.get("/ready").await.0 != 200 {
        assert!(std::time::Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = fleet.submit(json!({"script": "ok.py"})).await;
    for id in [before, after] {
        assert_eq!(fleet.wait_final(&id, WAIT).await["status"], "succeeded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_messages_are_skipped_and_malformed_ones_dead_lettered() {
    let fleet = Fleet::start().await;
    fleet
        .register(
            "count.py",
            "import sys\nopen(sys.argv[2], 'a').write('run\\n')\n",
        )
        .await;
    let marker = fleet.work_dir.join("count.txt");
    let id = fleet
        .submit(json!({"script": "count.py", "parameters": {"file": marker.to_str().unwrap()}}))
        .await;
    let first = fleet.wait_final(&id, WAIT).await;
    assert_eq!(first["status"], "succeeded");

    // Publish the same message again, plus garbage and a message for an unknown run.
    let conn = lapin::Connection::connect(
        &format!("amqp://guest:guest@{}/%2f", runfleet_tests::amqp_addr()),
        Default::default(),
    )
    .await
    .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let queue = runfleet_common::amqp::queue_name(&fleet.amqp, "default");
    let unknown = json!({"run_id": uuid::Uuid::now_v7(), "attempt": 1}).to_string();
    let dup = json!({"run_id": id, "attempt": 1}).to_string();
    for body in [
        dup.as_bytes(),
        b"not json at all".as_slice(),
        unknown.as_bytes(),
    ] {
        ch.basic_publish(
            "".into(),
            queue.as_str().into(),
            Default::default(),
            body,
            Default::default(),
        )
        .await
        .unwrap();
    }
    // The dead-letter watcher moves both to the parked queue and leaves the run alone.
    let parked = runfleet_common::amqp::parked_queue(&fleet.amqp);
    let deadline = std::time::Instant::now() + WAIT;
    while fleet.queue_depth(&parked).await < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "bad messages were not dead-lettered and parked"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fleet.queue_depth(&queue).await,
        0,
        "duplicate was not acked"
    );
    assert_eq!(fleet.queue_depth(&parked).await, 2);
    let dlq = runfleet_common::amqp::dead_letter_queue(&fleet.amqp);
    assert_eq!(
        fleet.queue_depth(&dlq).await,
        0,
        "the watcher acks what it parks"
    );
    let metrics = fleet.metrics_text(&fleet.base).await;
    assert!(
        metrics.contains("runfleet_dead_letters_total{outcome=\"malformed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("runfleet_dead_letters_total{outcome=\"stale\"} 1"),
        "{metrics}"
    );
    let again = fleet.get(&format!("/runs/{id}")).await.1;
    assert_eq!(
        again["finished_at"], first["finished_at"],
        "the duplicate moved a finished run"
    );
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "run\n",
        "script ran twice"
    );
    let _ = conn.close(200, "".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_compatible_routes_run_the_fetch_rss_example() {
    let fleet = Fleet::start().await;
    // Serve the sample feed on 127.0.0.1.
    let feed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/feeds/sample.rss"
    ))
    .unwrap();
    let app = axum::Router::new().route(
        "/feed.rss",
        axum::routing::get(move || {
            let feed = feed.clone();
            async move { ([("content-type", "application/rss+xml")], feed) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let feed_url = format!("http://{}/feed.rss", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let content = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/scripts/fetch_rss.py"
    ))
    .unwrap();
    fleet.register("fetch_rss.py", &content).await;
    let out_dir = fleet.work_dir.join("rss-out");
    let (status, run) = fleet
        .post(
            "/runs/runs",
            &json!({"script_name": "fetch_rss.py",
                    "parameters": {"url": feed_url, "limit": 5, "out-dir": out_dir.to_str().unwrap()}}),
        )
        .await;
    assert_eq!(status, 202, "{run}");
    assert_eq!(run["status"], "queued");
    let id = run["id"].as_str().unwrap();
    fleet.wait_final(id, WAIT).await;
    let (status, run) = fleet.get(&format!("/runs/runs/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["result"]["count"], 5);
    assert_eq!(run["result"]["feed"], "runfleet sample feed");
    assert_eq!(run["result"]["titles"][0], "Runbook update 1");
    let items: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("items.json")).unwrap())
            .unwrap();
    assert_eq!(items["items"].as_array().unwrap().len(), 5);
    assert!(
        std::fs::read_to_string(out_dir.join("items.md"))
            .unwrap()
            .contains("Runbook update 5")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_endpoints_meta_openapi_and_docs() {
    let fleet = Fleet::start().await;
    let (s, ready) = fleet.get("/ready").await;
    assert_eq!(
        (s, ready["postgres"].as_str(), ready["rabbitmq"].as_str()),
        (200, Some("up"), Some("up"))
    );
    let (s, _) = fleet.get("/health").await;
    assert_eq!(s, 200);
    let (_, meta) = fleet.get("/meta").await;
    assert_eq!(meta["name"], "runfleet");
    assert_eq!(meta["queues"], json!(["default", "other"]));
    assert!(meta["commit"].is_string());
    let (s, doc) = fleet.get("/openapi.json").await;
    assert_eq!(s, 200);
    for path in [
        "/runs",
        "/runs/{id}",
        "/runs/{id}/logs",
        "/scripts",
        "/runs/runs",
        "/runs/runs/{id}",
    ] {
        assert!(doc["paths"][path].is_object(), "openapi lacks {path}");
    }
    let html = fleet
        .http
        .get(format!("{}/docs/", fleet.base))
        .send()
        .await
        .unwrap();
    assert_eq!(html.status(), 200);
    assert!(html.text().await.unwrap().contains("swagger"));
    let js = fleet
        .http
        .get(format!("{}/docs/swagger-ui-bundle.js", fleet.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        js.status(),
        200,
        "Swagger UI assets must be served by the binary"
    );
    let metrics = fleet.metrics_text(&fleet.base).await;
    assert!(metrics.contains("process_resident_memory_bytes"));
    let consumer_metrics = fleet.metrics_text(&fleet.consumer_base()).await;
    assert!(consumer_metrics.contains("runfleet_consumer_slots"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_idempotent() {
    let fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        ..FleetOptions::default()
    })
    .await;
    let pool = runfleet_common::db::pool(&runfleet_common::config::DatabaseConfig {
        url: fleet.db_url.clone(),
        ..Default::default()
    });
    assert_eq!(runfleet_common::db::migrate(&pool).await.unwrap(), 0);
    assert_eq!(runfleet_common::db::migrate(&pool).await.unwrap(), 0);
    pool.close();
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

fn chrono_secs(rfc3339: &str) -> f64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_micros() as f64
        / 1e6
}

#[tokio::test]
async fn connections_ask_for_small_frames_unless_the_url_names_a_size() {
    use runfleet_common::amqp::{FRAME_MAX, connect};
    let fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        ..FleetOptions::default()
    })
    .await;
    let small = connect(&fleet.amqp, "frame-test").await.unwrap();
    // Negotiated down from RabbitMQ's 128 KiB: lapin's buffers are 32 frames each.
    assert_eq!(small.configuration().frame_max(), FRAME_MAX);
    small.close(200, "done".into()).await.unwrap();
    let mut own = fleet.amqp.clone();
    own.url = format!("{}?frame_max=65536", own.url);
    let named = connect(&own, "frame-test").await.unwrap();
    assert_eq!(named.configuration().frame_max(), 65536);
    named.close(200, "done".into()).await.unwrap();
}
