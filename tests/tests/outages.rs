//! The services a fleet depends on misbehaving: RabbitMQ down while runs are accepted,
//! Postgres down under the API, duplicate and malformed messages, frame sizes, and
//! migrations applied twice.

use std::time::Duration;

use runfleet_tests::{Fleet, FleetOptions};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

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
