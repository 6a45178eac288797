//! The API's resources as a client sees them: idempotent submits, immutable script
//! versions, paging runs, the hub-compatible routes, and the ops, meta and OpenAPI routes.

use std::time::Duration;

use runfleet_tests::Fleet;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

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
    assert_eq!(run["run_id"], run["id"]);
    let id = run["id"].as_str().unwrap();
    fleet.wait_final(id, WAIT).await;
    let (status, run) = fleet.get(&format!("/runs/runs/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["runfleet_status"], "succeeded", "{run}");
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
