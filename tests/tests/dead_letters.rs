//! A valid run message that RabbitMQ dead-letters (delivered `amqp.delivery_limit` times
//! without an ack) does not leave its run `queued` forever: the dead-letter watcher marks
//! it `dead` with the broker's reason and parks the message.

use std::time::{Duration, Instant};

use lapin::options::{BasicGetOptions, BasicRejectOptions};
use runfleet_tests::{Fleet, FleetOptions};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_message_hit_the_delivery_limit_is_dead_with_the_reason() {
    let fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        ..FleetOptions::default()
    })
    .await;
    fleet.register("ok.py", "pass\n").await;
    let id = fleet.submit(json!({"script": "ok.py"})).await;

    // Play a consumer that keeps failing before it can ack: take the message and hand it
    // back, until the queue's delivery limit dead-letters it.
    let conn = lapin::Connection::connect(
        &format!("amqp://guest:guest@{}/%2f", runfleet_tests::amqp_addr()),
        Default::default(),
    )
    .await
    .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let queue = runfleet_common::amqp::queue_name(&fleet.amqp, "default");
    let deadline = Instant::now() + WAIT;
    let mut returned = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "the message never left the queue"
        );
        match ch
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap()
        {
            Some(message) => {
                message
                    .delivery
                    .reject(BasicRejectOptions { requeue: true })
                    .await
                    .unwrap();
                returned += 1;
            }
            None if returned > 0 => break,
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(
        returned as u32 >= fleet.amqp.delivery_limit,
        "dead-lettered after {returned} deliveries"
    );

    let run = fleet.wait_final(&id, WAIT).await;
    assert_eq!(run["status"], "dead", "{run}");
    assert_eq!(run["error"]["code"], "dead_lettered", "{run}");
    let message = run["error"]["message"].as_str().unwrap();
    assert!(message.contains("delivery_limit"), "{message}");
    assert!(message.contains(&queue), "{message}");

    let parked = runfleet_common::amqp::parked_queue(&fleet.amqp);
    assert_eq!(fleet.queue_depth(&parked).await, 1);
    let parked_message = ch
        .basic_get(parked.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the message is parked");
    let body: serde_json::Value = serde_json::from_slice(&parked_message.delivery.data).unwrap();
    assert_eq!(body["run_id"], id);
    let headers = parked_message
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap();
    assert!(
        headers.inner().contains_key("x-runfleet-parked-reason"),
        "{headers:?}"
    );

    // A dead run can be retried like any other finished one.
    let (s, body) = fleet.post(&format!("/runs/{id}/retry"), &json!({})).await;
    assert_eq!(s, 202, "{body}");
    let _ = conn.close(200, "".into()).await;
}
