//! Retries: a failed or timed-out attempt with attempts left goes to `retrying` and runs
//! again after its backoff with `attempt` incremented; every attempt's outcome and logs
//! are kept.

use std::time::Duration;

use runfleet_tests::Fleet;
use serde_json::json;

/// Fails (exit 3) until attempt `--succeed-on`, printing its attempt on stderr.
const FLAKY: &str = "import os, sys\na = int(os.environ['RUNFLEET_ATTEMPT'])\nsys.stderr.write(f'attempt {a}\\n')\nsys.exit(0 if a >= int(sys.argv[sys.argv.index('--succeed-on') + 1]) else 3)\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_run_is_retried_with_backoff_until_it_succeeds() {
    let fleet = Fleet::start().await;
    fleet.register("flaky.py", FLAKY).await;
    let id = fleet
        .submit(json!({"script": "flaky.py", "parameters": {"succeed-on": 3},
                       "max_attempts": 4, "retry_backoff_seconds": 0.6, "retry_backoff_max_seconds": 5}))
        .await;
    let run = fleet.wait_final(&id, Duration::from_secs(60)).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["attempt"], 3);
    assert_eq!(run["max_attempts"], 4);
    assert!(run["error"].is_null() && run["retry_at"].is_null());

    let (s, attempts) = fleet.get(&format!("/runs/{id}/attempts")).await;
    assert_eq!(s, 200);
    let attempts = attempts.as_array().unwrap();
    let summary: Vec<(i64, &str, Option<i64>)> = attempts
        .iter()
        .map(|a| {
            (
                a["attempt"].as_i64().unwrap(),
                a["status"].as_str().unwrap(),
                a["exit_code"].as_i64(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, "failed", Some(3)),
            (2, "failed", Some(3)),
            (3, "succeeded", Some(0))
        ]
    );
    // The waits between attempts follow the backoff: ≥ 0.5 × 0.6 s, then ≥ 0.5 × 1.2 s.
    let at = |i: usize, key: &str| {
        chrono::DateTime::parse_from_rfc3339(attempts[i][key].as_str().unwrap()).unwrap()
    };
    let gap1 = (at(1, "started_at") - at(0, "finished_at")).num_milliseconds();
    let gap2 = (at(2, "started_at") - at(1, "finished_at")).num_milliseconds();
    assert!(gap1 >= 300, "first retry after {gap1} ms");
    assert!(gap2 >= 600, "second retry after {gap2} ms");
    for n in 1..=3 {
        let (_, logs) = fleet.get(&format!("/runs/{id}/logs?attempt={n}")).await;
        assert_eq!(logs["stderr"], format!("attempt {n}\n"));
        assert_eq!(logs["attempt"], n);
    }
    let (s, body) = fleet.get(&format!("/runs/{id}/logs?attempt=9")).await;
    assert_eq!((s, body["error"]["field"].as_str()), (422, Some("attempt")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_run_out_and_timeouts_are_retried_too() {
    let fleet = Fleet::start().await;
    fleet.register("flaky.py", FLAKY).await;
    fleet.register("hang.sh", "sleep 30\n").await;
    let never = fleet
        .submit(
            json!({"script": "flaky.py", "parameters": {"succeed-on": 99},
                       "max_attempts": 2, "retry_backoff_seconds": 0.2}),
        )
        .await;
    let hang = fleet
        .submit(
            json!({"script": "hang.sh", "timeout_seconds": 1, "max_attempts": 2,
                       "retry_backoff_seconds": 0.2}),
        )
        .await;
    let run = fleet.wait_final(&never, Duration::from_secs(60)).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["attempt"], 2);
    assert_eq!(run["exit_code"], 3);
    let run = fleet.wait_final(&hang, Duration::from_secs(60)).await;
    assert_eq!(run["status"], "timed_out");
    assert_eq!(run["attempt"], 2);
    let (_, attempts) = fleet.get(&format!("/runs/{hang}/attempts")).await;
    assert_eq!(attempts.as_array().unwrap().len(), 2);

    // Policy validation names the field.
    let (s, body) = fleet
        .post("/runs", &json!({"script": "flaky.py", "max_attempts": 0}))
        .await;
    assert_eq!(
        (s, body["error"]["field"].as_str()),
        (422, Some("max_attempts"))
    );
    let (s, body) = fleet
        .post("/runs", &json!({"script": "flaky.py", "retry_backoff_seconds": 10, "retry_backoff_max_seconds": 1}))
        .await;
    assert_eq!(
        (s, body["error"]["field"].as_str()),
        (422, Some("retry_backoff_max_seconds"))
    );
}
