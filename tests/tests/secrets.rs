//! Script secrets: write-only through the API, encrypted at rest, mapped by a task into
//! its runs' environment, and redacted from output, results, the API and the logs. Also:
//! the consumer's own credentials never reach a script, and hostile parameters arrive
//! byte for byte.

use std::time::Duration;

use runfleet_tests::{Fleet, FleetOptions, kill_tree};
use serde_json::json;

const VALUE: &str = "s3cr3t-Value-42!";

const SCRIPT: &str = r#"import json, os, sys
pw = os.environ.get("WAREHOUSE_PASSWORD")
print("connecting with", pw)
print("stderr has it too:", pw, file=sys.stderr)
leaks = [k for k, v in os.environ.items() if "postgres://" in v or "amqp://" in v or k.startswith("RUNFLEET_DATABASE") or k.startswith("RUNFLEET_AMQP") or k.startswith("RUNFLEET_SECRETS")]
json.dump({"pw": pw, "argv": sys.argv[1:], "params": json.loads(os.environ["RUNFLEET_PARAMS"]), "leaks": leaks},
          open(os.environ["RUNFLEET_RESULT_PATH"], "w"))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_reaches_its_script_and_nothing_else() {
    let fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        ..FleetOptions::default()
    })
    .await;
    std::fs::create_dir_all(&fleet.work_dir).unwrap();
    let log_path = fleet.work_dir.join("consumer.log");
    let mut consumer = fleet
        .consumer_command()
        .env("RUNFLEET_LOG__FORMAT", "json")
        .env("RUNFLEET_LOG__LEVEL", "debug")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();

    let (status, stored) = fleet
        .post(
            "/secrets",
            &json!({"name": "warehouse-password", "value": VALUE}),
        )
        .await;
    assert_eq!(status, 200, "{stored}");
    let (_, listed) = fleet.get("/secrets").await;
    assert_eq!(listed[0]["name"], "warehouse-password");

    fleet.register("report.py", SCRIPT).await;
    let (status, body) = fleet
        .post(
            "/tasks",
            &json!({"name": "bad", "script": "report.py", "secrets": {"PW": "no-such-secret"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "secrets.PW");
    let (status, task) = fleet
        .post(
            "/tasks",
            &json!({"name": "report", "script": "report.py",
                    "secrets": {"WAREHOUSE_PASSWORD": "warehouse-password"}}),
        )
        .await;
    assert_eq!(status, 201, "{task}");

    let hostile = json!({"a": "; rm -rf / #", "b": "$(id)", "c": "`uname`\n'\"\\"});
    let id = fleet
        .submit(json!({"task": "report", "parameters": hostile}))
        .await;
    let run = fleet.wait_final(&id, Duration::from_secs(60)).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let result = &run["result"];
    assert_eq!(
        result["pw"], "[redacted:warehouse-password]",
        "the script saw it; the record hides it"
    );
    assert_eq!(
        result["leaks"],
        json!([]),
        "the consumer's credentials reached the script: {result}"
    );
    assert_eq!(result["params"], hostile, "parameters arrive byte for byte");
    assert_eq!(
        result["argv"],
        json!([
            "--a",
            "; rm -rf / #",
            "--b",
            "$(id)",
            "--c",
            "`uname`\n'\"\\"
        ])
    );
    let (_, logs) = fleet.get(&format!("/runs/{id}/logs")).await;
    assert!(
        logs["stdout"]
            .as_str()
            .unwrap()
            .contains("connecting with [redacted:warehouse-password]"),
        "{logs}"
    );

    // Nowhere else: API answers, Postgres rows, the consumer's log.
    let mut seen = Vec::new();
    for path in [
        format!("/runs/{id}"),
        format!("/runs/{id}/logs"),
        format!("/runs/{id}/attempts"),
        "/secrets".into(),
        "/tasks/report".into(),
        "/audit".into(),
    ] {
        let (_, body) = fleet.get(&path).await;
        if body.to_string().contains(VALUE) {
            seen.push(path);
        }
    }
    let db = fleet.db().await;
    for table in ["runs", "run_attempts", "secrets", "tasks", "audit_log"] {
        let exists = db
            .query_opt("SELECT 1 FROM pg_tables WHERE tablename = $1", &[&table])
            .await
            .unwrap()
            .is_some();
        if !exists {
            continue;
        }
        let rows = db
            .query(&format!("SELECT row_to_json(t)::text FROM {table} t"), &[])
            .await
            .unwrap();
        if rows.iter().any(|r| r.get::<_, String>(0).contains(VALUE)) {
            seen.push(format!("table {table}"));
        }
    }
    let raw: Vec<Vec<u8>> = db
        .query("SELECT ciphertext FROM secrets", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        raw.iter()
            .all(|c| !c.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()))
    );
    kill_tree(consumer.id());
    let _ = consumer.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("run finished"), "the consumer logged the run");
    if log.contains(VALUE) {
        seen.push("consumer log".into());
    }
    assert!(
        !log.contains(&fleet.db_url),
        "the consumer logged its database URL"
    );
    let amqp_url = &fleet.consumer_config.amqp.url;
    assert!(
        !log.contains(amqp_url.as_str()),
        "the consumer logged its broker URL"
    );
    assert!(seen.is_empty(), "the secret value shows in: {seen:?}");

    // A deleted secret fails the next run clearly instead of running without it.
    let (status, _) = fleet.delete("/secrets/warehouse-password").await;
    assert_eq!(status, 204);
    let mut fleet = fleet;
    fleet.start_consumer().await;
    let id = fleet.submit(json!({"task": "report"})).await;
    let run = fleet.wait_final(&id, Duration::from_secs(30)).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error"]["code"], "secret_unavailable");
    assert!(
        run["error"]["message"]
            .as_str()
            .unwrap()
            .contains("warehouse-password"),
        "{run}"
    );
}
