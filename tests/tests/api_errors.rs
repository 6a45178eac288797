//! Bad input gets a clear 4xx naming the field, and nothing is accepted: run and script
//! bodies, malformed requests, unknown routes and bad ids and filters. Each case is a row.

use runfleet_tests::{Fleet, FleetOptions};
use serde_json::{Value, json};

/// A fleet with no consumer (nothing here should ever run) and one script, `ok.py`.
async fn api_only() -> Fleet {
    let fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        ..FleetOptions::default()
    })
    .await;
    fleet.register("ok.py", "print('ok')\n").await;
    fleet
}

/// POSTs `body` to `path` and checks the answer: its status, `error.code`, a non-empty
/// message, and the `error.field` it names (or none).
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
    assert_eq!(resp["error"]["code"], code, "{path} {body} → {resp}");
    assert!(
        resp["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{resp}"
    );
    match field {
        Some(f) => assert_eq!(resp["error"]["field"], f, "{path} {body} → {resp}"),
        None => assert!(resp["error"]["field"].is_null(), "{resp}"),
    }
}

/// Nothing was accepted by what the test sent.
async fn assert_no_runs(fleet: &Fleet) {
    let (_, page) = fleet.get("/runs").await;
    assert_eq!(page["runs"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_run_bodies_get_422_naming_the_field() {
    let fleet = api_only().await;
    let cases = [
        (
            "/runs",
            json!({"script": "missing.py"}),
            "unknown_script",
            "script",
        ),
        (
            "/runs/runs",
            json!({"script_name": "missing.py"}),
            "unknown_script",
            "script_name",
        ),
        (
            "/runs",
            json!({"script": "../../etc/passwd"}),
            "invalid_script_name",
            "script",
        ),
        (
            "/runs",
            json!({"script": "ok.py", "version": 9}),
            "unknown_script_version",
            "version",
        ),
        (
            "/runs",
            json!({"script": "ok.py", "version": "one"}),
            "invalid_body",
            "version",
        ),
        ("/runs", json!({"script": 42}), "invalid_body", "script"),
        (
            "/runs",
            json!({"script": "ok.py", "parameters": [1, 2]}),
            "invalid_body",
            "parameters",
        ),
        (
            "/runs",
            json!({"script": "ok.py", "parameters": {"-x": 1}}),
            "invalid_parameter_key",
            "parameters.-x",
        ),
        (
            "/runs",
            json!({"script": "ok.py", "queue": "gpu"}),
            "unknown_queue",
            "queue",
        ),
        (
            "/runs",
            json!({"script": "ok.py", "timeout_seconds": 0}),
            "invalid_timeout",
            "timeout_seconds",
        ),
        (
            "/runs",
            json!({"script": "ok.py", "priority": 1}),
            "invalid_body",
            "priority",
        ),
        ("/runs", json!({}), "invalid_body", "script"),
    ];
    for (path, body, code, field) in cases {
        expect_error(&fleet, path, body, 422, code, Some(field)).await;
    }
    assert_no_runs(&fleet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_script_bodies_get_4xx_naming_the_field() {
    let fleet = api_only().await;
    let cases = [
        (
            json!({"name": "a b.py", "content": "x"}),
            "invalid_script_name",
            "name",
        ),
        (
            json!({"name": "notes.txt", "content": "x"}),
            "invalid_language",
            "language",
        ),
        (
            json!({"name": "e.py", "content": "  "}),
            "invalid_content",
            "content",
        ),
        (
            json!({"name": "r.py", "content": "x", "requirements": ["ok", ""]}),
            "invalid_requirements",
            "requirements[1]",
        ),
        (
            json!({"name": "r.py", "content": "x", "requirements": ["requests>>2"]}),
            "invalid_requirements",
            "requirements[0]",
        ),
        (
            json!({"name": "r.py", "content": "# /// script\n# dependencies = 3\n# ///\n"}),
            "invalid_requirements",
            "content",
        ),
        // Under the body limit (256 KiB in tests) but over the script limit (128 KiB).
        (
            json!({"name": "large.py", "content": "#".repeat(200 * 1024)}),
            "script_too_large",
            "content",
        ),
    ];
    for (body, code, field) in cases {
        expect_error(&fleet, "/scripts", body, 422, code, Some(field)).await;
    }
    let big = "x".repeat(300 * 1024);
    let body = json!({"name": "big.py", "content": big});
    expect_error(&fleet, "/scripts", body, 413, "payload_too_large", None).await;
    let (status, _) = fleet.get("/scripts/large.py").await;
    assert_eq!(status, 404, "a refused script was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_unknown_routes_and_bad_ids_get_clear_4xx() {
    let fleet = api_only().await;
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
    let r = fleet
        .http
        .delete(format!("{}/runs", fleet.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);

    let unknown_run = format!("/runs/{}", uuid::Uuid::now_v7());
    let gets: [(&str, u16, &str, Option<&str>); 6] = [
        ("/runs/not-a-uuid", 400, "field", Some("id")),
        (&unknown_run, 404, "code", Some("run_not_found")),
        ("/nowhere", 404, "code", Some("not_found")),
        ("/runs?limit=100000", 400, "field", Some("limit")),
        ("/runs?status=sleeping", 400, "field", Some("status")),
        ("/scripts/ok.py/versions/x", 400, "field", Some("version")),
    ];
    for (path, status, key, want) in gets {
        let (s, b) = fleet.get(path).await;
        assert_eq!((s, b["error"][key].as_str()), (status, want), "{path}: {b}");
    }
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
    assert_no_runs(&fleet).await;
}
