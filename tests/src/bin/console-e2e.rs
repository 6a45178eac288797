//! `console-e2e`: the web console's end-to-end tests in a real browser.
//!
//! Starts an isolated fleet (own database, queue prefix and work dir; producer and
//! consumer), seeds it with scripts (two versions of one), a task, a schedule, finished
//! runs and viewer/operator tokens, then runs `node --test tests/ui/console.test.mjs`
//! (playwright-core driving Debian's Chromium) against it and exits with its status.
//! Screenshots go to `target/ui-screenshots/` (or `--screenshots DIR`).
//!   cargo run -p runfleet-tests --bin console-e2e [-- --serve]
//! `--serve` keeps the fleet up instead (prints its URL and tokens) to look at by hand.

use std::path::PathBuf;
use std::time::Duration;

use runfleet_tests::{Fleet, FleetOptions};
use serde_json::{Value, json};

const REPORT_V1: &str = r#"import json, os
print("report for", json.loads(os.environ["RUNFLEET_PARAMS"]).get("day"))
"#;

/// Prints rows a second apart (long enough to be seen live), then writes a result.
const REPORT_V2: &str = r#"import json, os, sys, time
params = json.loads(os.environ["RUNFLEET_PARAMS"])
print("report for", params.get("day"))
for i in range(1, 4):
    print(f"row {i}")
    time.sleep(1)
print("rows done", file=sys.stderr)
json.dump({"rows": 3, "day": params.get("day")}, open(os.environ["RUNFLEET_RESULT_PATH"], "w"))
"#;

async fn token(fleet: &Fleet, name: &str, role: &str) -> String {
    let (status, body) = fleet
        .post("/tokens", &json!({"name": name, "role": role}))
        .await;
    assert_eq!(status, 201, "token {name}: {body}");
    body["token"].as_str().unwrap().to_string()
}

async fn created(fleet: &Fleet, path: &str, body: Value) -> Value {
    let (status, answer) = fleet.post(path, &body).await;
    assert!(
        status == 201 || status == 200,
        "POST {path}: {status} {answer}"
    );
    answer
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let serve = args.iter().any(|a| a == "--serve");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace")
        .to_path_buf();
    let shots = args
        .iter()
        .position(|a| a == "--screenshots")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/ui-screenshots"));

    let fleet = Fleet::start_with(FleetOptions {
        slots: 2,
        ..FleetOptions::default()
    })
    .await;
    fleet.register("report.py", REPORT_V1).await;
    fleet.register("report.py", REPORT_V2).await;
    fleet
        .register(
            "broken.sh",
            "echo about to fail\necho 'no such table: sales' >&2\nexit 3\n",
        )
        .await;
    created(
        &fleet,
        "/tasks",
        json!({"name": "nightly-report", "script": "report.py", "parameters": {"day": "today"}, "max_attempts": 2}),
    )
    .await;
    let schedule = created(
        &fleet,
        "/schedules",
        json!({"task": "nightly-report", "cron": "0 3 * * *", "timezone": "Europe/Paris"}),
    )
    .await;
    let ok = fleet
        .submit(json!({"script": "report.py", "version": 1, "parameters": {"day": "yesterday"}}))
        .await;
    let failed = fleet.submit(json!({"script": "broken.sh"})).await;
    let to_retry = fleet.submit(json!({"script": "broken.sh"})).await;
    for id in [&ok, &failed, &to_retry] {
        fleet.wait_final(id, Duration::from_secs(60)).await;
    }
    let viewer = token(&fleet, "ui-viewer", "viewer").await;
    let operator = token(&fleet, "ui-operator", "operator").await;

    if serve {
        println!("console: {}/ui/", fleet.base);
        println!("admin token:    {}", fleet.admin_token);
        println!("operator token: {operator}");
        println!("viewer token:   {viewer}");
        println!("Ctrl-C stops the fleet.");
        let _ = tokio::signal::ctrl_c().await;
        return std::process::ExitCode::SUCCESS;
    }

    std::fs::create_dir_all(&shots).expect("create the screenshot directory");
    let status = tokio::process::Command::new("node")
        .args(["--test", "--test-concurrency=1", "console.test.mjs"])
        .current_dir(root.join("tests/ui"))
        .env("RUNFLEET_URL", &fleet.base)
        .env("RUNFLEET_ADMIN_TOKEN", &fleet.admin_token)
        .env("RUNFLEET_OPERATOR_TOKEN", &operator)
        .env("RUNFLEET_VIEWER_TOKEN", &viewer)
        .env("RUNFLEET_SCHEDULE_ID", schedule["id"].as_str().unwrap())
        .env("RUNFLEET_FAILED_RUN", &failed)
        .env("RUNFLEET_RETRY_RUN", &to_retry)
        .env("RUNFLEET_SCREENSHOTS", &shots)
        .status()
        .await
        .expect("start node (the console tests need Node.js)");
    // Removes the fleet's database, queues and work dir (Drop waits for it).
    drop(fleet);
    if status.success() {
        eprintln!("console-e2e: screenshots in {}", shots.display());
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
