//! The fleet's own numbers: queue gauges read from RabbitMQ and Postgres, the queue wait
//! histogram, and HTTP metrics labelled by route template (never by a run id).

use std::time::{Duration, Instant};

use runfleet_tests::pyindex::metric_values;
use runfleet_tests::{Fleet, FleetOptions};
use serde_json::json;

/// Polls the producer's `/metrics` until `check` holds for the named samples.
async fn wait_for_metrics(
    fleet: &Fleet,
    names: &[&str],
    what: &str,
    check: impl Fn(&std::collections::BTreeMap<String, f64>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let values = metric_values(&fleet.metrics_text(&fleet.base).await, names);
        if check(&values) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: got {values:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const READY: &str = r#"runfleet_queue_messages_ready{queue="default"}"#;
const CONSUMERS: &str = r#"runfleet_queue_consumers{queue="default"}"#;
const OLDEST: &str = r#"runfleet_queue_oldest_run_age_seconds{queue="default"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_gauges_queue_wait_and_http_metrics_by_route_template() {
    let mut fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        ..FleetOptions::default()
    })
    .await;
    fleet.register("quick.py", "print('hi')\n").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, run) = fleet.post("/runs", &json!({"script": "quick.py"})).await;
        assert_eq!(status, 202, "{run}");
        let trace_id = run["trace_id"].as_str().unwrap_or_default();
        assert!(
            trace_id.len() == 32 && trace_id.bytes().all(|b| b.is_ascii_hexdigit()),
            "every run has a trace id, exporting or not: {run}"
        );
        ids.push(run["id"].as_str().unwrap().to_string());
    }

    // No consumer yet: RabbitMQ holds 3 ready messages, and the oldest run is waiting.
    wait_for_metrics(
        &fleet,
        &[READY, CONSUMERS, OLDEST],
        "3 ready, 0 consumers, an oldest age",
        |v| v.get(READY) == Some(&3.0) && v.get(CONSUMERS) == Some(&0.0) && v[OLDEST] > 0.0,
    )
    .await;

    fleet.start_consumer().await;
    for id in &ids {
        let run = fleet.wait_final(id, Duration::from_secs(30)).await;
        assert_eq!(run["status"], "succeeded", "{run}");
    }
    wait_for_metrics(
        &fleet,
        &[READY, CONSUMERS, OLDEST],
        "queue drained, one consumer",
        |v| v.get(READY) == Some(&0.0) && v.get(CONSUMERS) == Some(&1.0) && v[OLDEST] == 0.0,
    )
    .await;

    // Each attempt's wait was observed, and it covers the time without a consumer.
    let wait_count = r#"runfleet_run_queue_wait_seconds_count{queue="default"}"#;
    let wait_sum = r#"runfleet_run_queue_wait_seconds_sum{queue="default"}"#;
    let finished = r#"runfleet_runs_finished_total{queue="default",status="succeeded"}"#;
    let v = fleet
        .consumer_metrics(&[wait_count, wait_sum, finished])
        .await;
    assert_eq!(v.get(wait_count), Some(&3.0), "{v:?}");
    assert_eq!(v.get(finished), Some(&3.0), "{v:?}");
    assert!(v[wait_sum] > 0.0, "{v:?}");

    // HTTP metrics name the route template, never the path with its id.
    let (status, _) = fleet.get(&format!("/runs/{}", ids[0])).await;
    assert_eq!(status, 200);
    let (status, _) = fleet.get("/no/such/route").await;
    assert_eq!(status, 404);
    let get_run = r#"runfleet_http_requests_total{method="GET",route="/runs/{id}",status="200"}"#;
    let posted = r#"runfleet_http_requests_total{method="POST",route="/runs",status="202"}"#;
    let unmatched = r#"runfleet_http_requests_total{method="GET",route="unmatched",status="404"}"#;
    let timed = r#"runfleet_http_request_duration_seconds_count{method="POST",route="/runs"}"#;
    let text = fleet.metrics_text(&fleet.base).await;
    let v = metric_values(&text, &[get_run, posted, unmatched, timed]);
    assert!(v.get(get_run).is_some_and(|n| *n >= 1.0), "{v:?}");
    assert_eq!(v.get(posted), Some(&3.0), "{v:?}");
    assert_eq!(v.get(unmatched), Some(&1.0), "{v:?}");
    assert_eq!(v.get(timed), Some(&3.0), "{v:?}");
    for id in &ids {
        assert!(!text.contains(id.as_str()), "run id {id} in a metric label");
    }
}
