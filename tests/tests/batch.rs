//! `POST /runs/batch`: up to 1000 runs in one request, all or none.

use std::time::Duration;

use runfleet_tests::{Fleet, FleetOptions};
use serde_json::{Value, json};

async fn run_count(fleet: &Fleet) -> i64 {
    fleet
        .db()
        .await
        .query_one("SELECT count(*) FROM runs", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_recorded_whole_or_not_at_all() {
    let fleet = Fleet::start_with(FleetOptions::default()).await;
    fleet
        .register("echo.py", "import sys\nprint(sys.argv[1:])\n")
        .await;
    let (status, _) = fleet
        .post("/tasks", &json!({"name": "t", "script": "echo.py"}))
        .await;
    assert_eq!(status, 201);

    let mut items: Vec<Value> = (0..40)
        .map(|i| json!({"script": "echo.py", "parameters": {"n": i}, "idempotency_key": format!("k{i}")}))
        .collect();
    items.extend((0..10).map(|i| json!({"task": "t", "parameters": {"m": i}, "queue": "other"})));
    let (status, accepted) = fleet.post("/runs/batch", &json!({"runs": items})).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["created"], 50);
    let ids: Vec<String> = accepted["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 50);
    for (i, id) in ids.iter().enumerate() {
        let run = fleet.wait_final(id, Duration::from_secs(60)).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        if i < 40 {
            assert_eq!(
                run["parameters"]["n"], i,
                "ids come back in the order given"
            );
        } else {
            assert_eq!(run["task"], "t");
            assert_eq!(run["queue"], "other");
        }
    }

    // Replaying the keyed part gives the same runs and makes none.
    let replay: Vec<Value> = (0..40)
        .map(|i| json!({"script": "echo.py", "parameters": {"n": i}, "idempotency_key": format!("k{i}")}))
        .collect();
    let (status, again) = fleet.post("/runs/batch", &json!({"runs": replay})).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["created"], 0);
    assert_eq!(
        again["ids"].as_array().unwrap()[..],
        accepted["ids"].as_array().unwrap()[..40]
    );

    // One bad item: nothing is recorded, and the error names it.
    let before = run_count(&fleet).await;
    let mut bad: Vec<Value> = (0..20).map(|_| json!({"script": "echo.py"})).collect();
    bad[7] = json!({"script": "missing.py"});
    let (status, body) = fleet.post("/runs/batch", &json!({"runs": bad})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "runs[7].script");
    let mut bad: Vec<Value> = (0..20).map(|_| json!({"script": "echo.py"})).collect();
    bad[12] = json!({"script": "echo.py", "timeout_seconds": 0});
    let (status, body) = fleet.post("/runs/batch", &json!({"runs": bad})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "runs[12].timeout_seconds");
    let reused = vec![
        json!({"script": "echo.py"}),
        json!({"script": "echo.py", "parameters": {"n": 99}, "idempotency_key": "k1"}),
    ];
    let (status, body) = fleet.post("/runs/batch", &json!({"runs": reused})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["field"], "runs[1].idempotency_key");
    assert_eq!(
        run_count(&fleet).await,
        before,
        "a refused batch records nothing"
    );

    // Size bounds.
    let (status, body) = fleet.post("/runs/batch", &json!({"runs": []})).await;
    assert_eq!(status, 422, "{body}");
    let many: Vec<Value> = (0..1001).map(|_| json!({"script": "echo.py"})).collect();
    let (status, body) = fleet.post("/runs/batch", &json!({"runs": many})).await;
    assert!(status == 422 || status == 413, "{status} {body}");
}
