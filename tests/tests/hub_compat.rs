//! Coming from the automation hub: its client works unchanged but for the token header,
//! its routes answer in its shape (`run_id`, `script_name`, its four statuses, every
//! runfleet status mapped), and `/meta` is open as the hub's was.

use std::time::Duration;

use runfleet_tests::Fleet;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// Runs `examples/hub_client.py` against the fleet with `token` and returns (exit code,
/// stdout as JSON, stderr).
async fn hub_client(fleet: &Fleet, token: &str, script: &str) -> (i32, Value, String) {
    let client = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hub_client.py");
    let out = tokio::process::Command::new("python3")
        .arg(client)
        .args(["--url", &fleet.base, "--script", script, "--timeout", "30"])
        .args(["--param", "who=hub"])
        .env("RUNFLEET_TOKEN", token)
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(stdout.trim()).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_client_submits_polls_until_completed_and_finds_its_run_listed() {
    let fleet = Fleet::start().await;
    fleet
        .register(
            "hello.py",
            "import json, os, sys\n\
             json.dump({'args': sys.argv[1:]}, open(os.environ['RUNFLEET_RESULT_PATH'], 'w'))\n",
        )
        .await;
    fleet.register("broken.py", "raise SystemExit(3)\n").await;

    let (code, run, stderr) = hub_client(&fleet, &fleet.admin_token, "hello.py").await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["runfleet_status"], "succeeded");
    assert_eq!(run["script_name"], "hello.py");
    assert_eq!(run["run_id"], run["id"]);
    assert_eq!(run["result"]["args"], json!(["--who", "hub"]));

    let (code, run, stderr) = hub_client(&fleet, &fleet.admin_token, "broken.py").await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error"]["code"], "exit_nonzero");

    // Without the token the hub client gets the API's 401, named.
    let (code, _, stderr) = hub_client(&fleet, "", "hello.py").await;
    assert_eq!(code, 2);
    assert!(stderr.contains("answered 401"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_runfleet_status_has_a_hub_status_and_the_list_filters_by_it() {
    let fleet = Fleet::start().await;
    fleet.register("ok.py", "pass\n").await;
    fleet
        .register("slow.py", "import time; time.sleep(30)\n")
        .await;
    let ok = fleet.submit(json!({"script": "ok.py"})).await;
    fleet.wait_final(&ok, WAIT).await;
    let timed_out = fleet
        .submit(json!({"script": "slow.py", "timeout_seconds": 1}))
        .await;
    fleet.wait_final(&timed_out, WAIT).await;

    let (s, run) = fleet.get(&format!("/runs/runs/{timed_out}")).await;
    assert_eq!(s, 200);
    assert_eq!(
        (&run["status"], &run["runfleet_status"]),
        (&json!("failed"), &json!("timed_out"))
    );

    let ids = |page: &Value| -> Vec<String> {
        page["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["run_id"].as_str().unwrap().to_string())
            .collect()
    };
    let (s, page) = fleet.get("/runs/runs?status=completed").await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(ids(&page), vec![ok.clone()]);
    let (_, page) = fleet.get("/runs/runs?status=failed").await;
    assert_eq!(ids(&page), vec![timed_out.clone()]);
    let (_, page) = fleet.get("/runs/runs?script_name=ok.py").await;
    assert_eq!(ids(&page), vec![ok.clone()]);
    let (_, page) = fleet.get("/runs/runs?limit=1").await;
    assert_eq!(ids(&page), vec![timed_out.clone()], "newest first");
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page) = fleet
        .get(&format!("/runs/runs?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(ids(&page), vec![ok]);

    // runfleet's own names are not the hub's: refused, naming the field and the choices.
    let (s, body) = fleet.get("/runs/runs?status=succeeded").await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(body["error"]["field"], "status");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("queued, running, completed, failed"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_is_open_like_the_hubs_and_says_where_scripts_come_from() {
    let fleet = Fleet::start().await;
    let r = reqwest::get(format!("{}/meta", fleet.base)).await.unwrap();
    assert_eq!(r.status(), 200);
    let meta: Value = r.json().await.unwrap();
    assert_eq!(meta["name"], "runfleet");
    assert!(meta["version"].is_string());
    assert!(
        meta["scripts"].as_str().unwrap().contains("POST /scripts"),
        "{meta}"
    );
    // Everything else still needs a token.
    let r = reqwest::get(format!("{}/runs/runs", fleet.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
