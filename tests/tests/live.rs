//! Following runs live (`GET /runs/{id}/events`, output flushed while the script runs),
//! the fleet view (`GET /fleet`), `GET /whoami`, and the console's files under `/ui`.

use std::time::{Duration, Instant};

use runfleet_tests::{Fleet, FleetOptions};
use serde_json::{Value, json};

/// Prints a line on each stream, then more lines with pauses longer than a live flush.
const TALKER: &str = r#"import json, os, sys, time
print("line 1")
print("warn 1", file=sys.stderr)
time.sleep(1.5)
print("line 2")
time.sleep(1.5)
print("line 3")
json.dump({"ok": True}, open(os.environ["RUNFLEET_RESULT_PATH"], "w"))
"#;

/// Every event until the stream ends.
async fn collect(stream: &mut runfleet_tests::EventStream) -> Vec<(String, Value)> {
    let mut events = Vec::new();
    while let Some(event) = stream.next(Duration::from_secs(30)).await {
        events.push(event);
    }
    events
}

fn joined(events: &[(String, Value)], stream: &str) -> String {
    events
        .iter()
        .filter(|(name, data)| name == "log" && data["stream"] == stream)
        .map(|(_, data)| data["text"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_followed_live_from_its_first_line_to_its_end() {
    let fleet = Fleet::start().await;
    fleet.register("talker.py", TALKER).await;
    let id = fleet.submit(json!({"script": "talker.py"})).await;
    let mut stream = fleet.events(&id, None).await;

    let (name, first) = stream.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(name, "run", "{first}");
    assert_eq!(first["id"], id.as_str());

    // Wait for the first line while the script still runs: it was streamed, not stored.
    let mut events = vec![(name, first)];
    loop {
        let event = stream
            .next(Duration::from_secs(20))
            .await
            .expect("stream open");
        let is_first_line =
            event.0 == "log" && event.1["text"].as_str().unwrap().contains("line 1");
        events.push(event);
        if is_first_line {
            break;
        }
    }
    let (_, run) = fleet.get(&format!("/runs/{id}")).await;
    assert_eq!(
        run["status"], "running",
        "line 1 arrived before the run ended"
    );
    let (_, so_far) = fleet.get(&format!("/runs/{id}/logs")).await;
    let stdout = so_far["stdout"].as_str().unwrap();
    assert!(stdout.contains("line 1"), "{so_far}");
    assert!(!stdout.contains("line 3"), "{so_far}");

    events.extend(collect(&mut stream).await);
    let (last, end) = events.last().unwrap();
    assert_eq!(last, "end", "{events:?}");
    assert_eq!(end["status"], "succeeded", "{end}");
    assert_eq!(end["result"], json!({"ok": true}));
    assert!(
        events
            .iter()
            .any(|(n, d)| n == "run" && d["status"] == "running"),
        "{events:?}"
    );

    // What came live, plus the tail sent at the end, is exactly what was stored.
    let (_, stored) = fleet.get(&format!("/runs/{id}/logs")).await;
    assert_eq!(
        joined(&events, "stdout"),
        stored["stdout"].as_str().unwrap()
    );
    assert_eq!(
        joined(&events, "stderr"),
        stored["stderr"].as_str().unwrap()
    );
    assert_eq!(stored["stdout"], "line 1\nline 2\nline 3\n");
    let lines_live = events
        .iter()
        .filter(|(n, d)| n == "log" && d["text"].as_str().unwrap().contains("line"))
        .count();
    assert!(
        lines_live >= 2,
        "output came in pieces as printed: {events:?}"
    );

    // The stored logs replaced the live chunks.
    let db = fleet.db().await;
    let chunks: i64 = db
        .query_one(
            "SELECT count(*) FROM run_log_chunks WHERE run_id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(chunks, 0);

    // A finished run's stream replays its output and ends at once.
    let mut again = fleet.events(&id, None).await;
    let replay = collect(&mut again).await;
    assert_eq!(replay[0].0, "run", "{replay:?}");
    assert_eq!(replay[0].1["status"], "succeeded");
    assert_eq!(replay.last().unwrap().0, "end");
    assert_eq!(joined(&replay, "stdout"), "line 1\nline 2\nline 3\n");
    assert_eq!(joined(&replay, "stderr"), "warn 1\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_output_never_shows_a_secret() {
    let fleet = Fleet::start().await;
    let value = "s3cr3t-value-for-live";
    let (status, body) = fleet
        .post("/secrets", &json!({"name": "pw", "value": value}))
        .await;
    assert_eq!(status, 200, "{body}");
    fleet
        .register(
            "leaky.py",
            "import os, time\nprint('pw is', os.environ['PW'])\ntime.sleep(2)\nprint('done')\n",
        )
        .await;
    let (status, body) = fleet
        .post(
            "/tasks",
            &json!({"name": "leaky", "script": "leaky.py", "secrets": {"PW": "pw"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = fleet.submit(json!({"task": "leaky"})).await;
    let mut stream = fleet.events(&id, None).await;
    let mut live_line = None;
    while let Some((name, data)) = stream.next(Duration::from_secs(30)).await {
        if name == "log" && live_line.is_none() {
            let (_, run) = fleet.get(&format!("/runs/{id}")).await;
            live_line = Some((
                data["text"].as_str().unwrap().to_string(),
                run["status"].clone(),
            ));
        }
        assert!(!data.to_string().contains(value), "leaked: {data}");
    }
    let (line, status) = live_line.expect("some output");
    assert_eq!(status, "running", "the line came live");
    assert_eq!(line, "pw is [redacted:pw]\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_view_shows_consumers_busy_slots_and_queues() {
    let mut fleet = Fleet::start_with(FleetOptions {
        slots: 2,
        ..FleetOptions::default()
    })
    .await;
    let (status, view) = fleet.get("/fleet").await;
    assert_eq!(status, 200, "{view}");
    let consumers = view["consumers"].as_array().unwrap();
    assert_eq!(consumers.len(), 1, "{view}");
    let me = &consumers[0];
    assert!(
        me["worker_id"]
            .as_str()
            .unwrap()
            .starts_with("test-consumer-")
    );
    assert_eq!(me["alive"], true);
    assert_eq!(me["slots"], 2);
    assert_eq!(me["queues"], json!(["default", "other"]));
    let queues: Vec<&str> = view["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue"].as_str().unwrap())
        .collect();
    assert_eq!(queues, ["default", "other"]);

    fleet
        .register("nap.py", "import time\ntime.sleep(4)\n")
        .await;
    let id = fleet
        .submit(json!({"script": "nap.py", "queue": "other"}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let busy = loop {
        let (_, view) = fleet.get("/fleet").await;
        if view["busy"] == 1 && view["queues"][1]["running"] == 1 {
            break view;
        }
        assert!(Instant::now() < deadline, "never busy: {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(busy["slots"], 2, "{busy}");
    assert_eq!(busy["consumers"][0]["busy"], 1, "{busy}");
    assert_eq!(busy["queues"][0]["running"], 0, "{busy}");
    fleet.wait_final(&id, Duration::from_secs(30)).await;

    // A consumer that stops cleanly leaves the registry.
    fleet.stop_consumer().await;
    let (_, view) = fleet.get("/fleet").await;
    assert_eq!(view["consumers"], json!([]), "{view}");
    assert_eq!(view["slots"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_events_errors_and_the_console_files() {
    let fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        ..FleetOptions::default()
    })
    .await;
    let (_, me) = fleet.get("/whoami").await;
    assert_eq!(me, json!({"name": "bootstrap", "role": "admin"}));
    let (status, created) = fleet
        .post("/tokens", &json!({"name": "watcher", "role": "viewer"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let viewer = created["token"].as_str().unwrap();
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = |p: &str| format!("{}{p}", fleet.base);
    let me: Value = plain
        .get(url("/whoami"))
        .bearer_auth(viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me, json!({"name": "watcher", "role": "viewer"}));
    let anonymous = plain.get(url("/whoami")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    // Events: a viewer may follow; bad and unknown ids are clear errors.
    fleet.register("hi.sh", "echo hi\n").await;
    let id = fleet.submit(json!({"script": "hi.sh"})).await;
    let r = plain
        .get(url(&format!("/runs/{id}/events")))
        .bearer_auth(viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["x-accel-buffering"],
        "no",
        "proxies must not buffer it"
    );
    drop(r);
    let mut stream = fleet.events(&id, Some(viewer)).await;
    let (name, run) = stream.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!((name.as_str(), &run["status"]), ("run", &json!("queued")));
    for (path, status, code) in [
        ("/runs/not-a-uuid/events", 400, "invalid_id"),
        (
            "/runs/00000000-0000-0000-0000-000000000000/events",
            404,
            "run_not_found",
        ),
    ] {
        let r = plain
            .get(url(path))
            .bearer_auth(viewer)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
    }
    let r = plain
        .get(url(&format!("/runs/{id}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The console: open files, a strict CSP, JSON 404 for anything else.
    let r = plain.get(url("/ui")).send().await.unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "/ui/");
    let page = plain.get(url("/ui/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("app.js") && html.contains("app.css"),
        "{html}"
    );
    for (file, kind) in [("app.js", "text/javascript"), ("app.css", "text/css")] {
        let r = plain.get(url(&format!("/ui/{file}"))).send().await.unwrap();
        assert_eq!(r.status(), 200, "{file}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        assert!(
            r.text().await.unwrap().len() > 1000,
            "{file} is the real file"
        );
    }
    let r = plain.get(url("/ui/nope.js")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_event_streams_are_bounded_and_freed_when_a_client_leaves() {
    let fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        max_event_streams: 1,
        ..FleetOptions::default()
    })
    .await;
    fleet.register("wait.sh", "exit 0\n").await;
    // No consumer: the run stays queued and its stream stays open.
    let id = fleet.submit(json!({"script": "wait.sh"})).await;
    let mut first = fleet.events(&id, None).await;
    assert_eq!(first.next(Duration::from_secs(5)).await.unwrap().0, "run");
    let (status, body) = fleet.get(&format!("/runs/{id}/events")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "too_many_streams");
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = fleet
            .http
            .get(format!("{}/runs/{id}/events", fleet.base))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stream's slot was never freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_that_will_be_retried_sends_its_whole_output_when_it_ends() {
    let fleet = Fleet::start().await;
    fleet
        .register(
            "flaky.py",
            "import sys, time\nprint('start')\ntime.sleep(0.8)\nprint('bye')\nsys.exit(1)\n",
        )
        .await;
    // The retry is 30-60 s away: the stream must not wait for it.
    let id = fleet
        .submit(json!({"script": "flaky.py", "max_attempts": 2, "retry_backoff_seconds": 60}))
        .await;
    let mut stream = fleet.events(&id, None).await;
    let mut events = Vec::new();
    let retrying = loop {
        let event = stream
            .next(Duration::from_secs(20))
            .await
            .expect("stream open");
        let is_retrying = event.0 == "run" && event.1["status"] == "retrying";
        events.push(event);
        if is_retrying {
            break Instant::now();
        }
    };
    // The tail follows the status at once.
    while joined(&events, "stdout") != "start\nbye\n" {
        let event = stream.next(Duration::from_secs(5)).await.expect("the tail");
        assert!(event.0 == "log", "{event:?}");
        events.push(event);
    }
    assert!(retrying.elapsed() < Duration::from_secs(5));
    assert!(
        events.iter().all(|(n, d)| n != "log" || d["attempt"] == 1),
        "{events:?}"
    );
    let (_, stored) = fleet.get(&format!("/runs/{id}/logs?attempt=1")).await;
    assert_eq!(stored["stdout"], "start\nbye\n");
}
