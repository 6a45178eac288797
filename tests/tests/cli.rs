//! The `runfleet` CLI against a running fleet: every subcommand, `--output json` parsed,
//! exit codes, and one-line errors.

use std::path::Path;
use std::process::Output;

use runfleet_tests::{Fleet, workspace_bin};
use serde_json::Value;

/// Runs `runfleet args…` against `fleet` with `token` (None: no token).
async fn cli_as(fleet: &Fleet, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(workspace_bin("runfleet"));
    cmd.args(args)
        .env("RUNFLEET_URL", &fleet.base)
        .env_remove("RUNFLEET_TOKEN");
    if let Some(token) = token {
        cmd.env("RUNFLEET_TOKEN", token);
    }
    cmd.output().await.expect("start the runfleet CLI")
}

async fn cli(fleet: &Fleet, args: &[&str]) -> Output {
    cli_as(fleet, Some(&fleet.admin_token), args).await
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and parses stdout as JSON.
fn json_of(o: &Output) -> Value {
    assert!(o.status.success(), "exit {:?}: {}", o.status, stderr(o));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(o)))
}

/// Asserts exit code 2 and a single-line error on stderr naming `needle`.
fn one_line_error(o: &Output, needle: &str) {
    assert_eq!(o.status.code(), Some(2), "stdout: {}", stdout(o));
    let err = stderr(o);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("runfleet: "), "{err}");
    assert!(err.contains(needle), "'{needle}' not in: {err}");
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

const HELLO: &str = r#"import json, os, sys
params = json.loads(os.environ["RUNFLEET_PARAMS"])
print("hello", params.get("who", "world"))
print("to stderr", file=sys.stderr)
with open(os.environ["RUNFLEET_RESULT_PATH"], "w") as f:
    json.dump({"who": params.get("who")}, f)
sys.exit(int(params.get("code", 0)))
"#;

#[tokio::test]
async fn scripts_and_runs_through_the_cli() {
    let fleet = Fleet::start().await;
    let dir = fleet.work_dir.join("cli-scripts");
    let hello = write(&dir, "hello.py", HELLO);
    let sleepy = write(&dir, "sleepy.sh", "sleep 30\n");
    let reqs = write(&dir, "reqs.txt", "# none needed\n\n");

    let pushed = cli(
        &fleet,
        &["scripts", "push", &hello, &sleepy, "--requirements", &reqs],
    )
    .await;
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    assert!(
        stdout(&pushed).contains("hello.py version 1"),
        "{}",
        stdout(&pushed)
    );
    assert!(stdout(&pushed).contains("sleepy.sh version 1"));
    // The same content again is the same version; new content under --name is the next.
    let same = json_of(&cli(&fleet, &["scripts", "push", &hello, "--output", "json"]).await);
    assert_eq!(same[0]["version"], 1);
    let changed = write(&dir, "hello-v2.py", &format!("{HELLO}# v2\n"));
    let again = json_of(
        &cli(
            &fleet,
            &[
                "scripts", "push", &changed, "--name", "hello.py", "--output", "json",
            ],
        )
        .await,
    );
    assert_eq!(again[0]["version"], 2);
    one_line_error(
        &cli(&fleet, &["scripts", "push", &hello, &sleepy, "--name", "x"]).await,
        "--name",
    );

    let list = json_of(&cli(&fleet, &["scripts", "list", "--output", "json"]).await);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(
        names.contains(&"hello.py") && names.contains(&"sleepy.sh"),
        "{list}"
    );
    let text = stdout(&cli(&fleet, &["scripts", "list"]).await);
    assert!(text.starts_with("NAME"), "{text}");
    let shown = json_of(&cli(&fleet, &["scripts", "show", "hello.py", "--output", "json"]).await);
    assert_eq!(shown["latest"]["version"], 2);
    assert_eq!(shown["versions"].as_array().unwrap().len(), 2);
    let shown_text = stdout(&cli(&fleet, &["scripts", "show", "hello.py"]).await);
    assert!(
        shown_text.contains("RUNFLEET_PARAMS"),
        "content shown: {shown_text}"
    );

    // --wait: logs, result, and the script's exit code as ours.
    let ok = cli(&fleet, &["run", "hello.py", "--param", "who=cli", "--wait"]).await;
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("hello cli"), "{}", stdout(&ok));
    assert!(
        stdout(&ok).contains("\"who\": \"cli\""),
        "result printed: {}",
        stdout(&ok)
    );
    assert!(stderr(&ok).contains("to stderr"));
    assert!(
        stderr(&ok).contains("succeeded"),
        "status line: {}",
        stderr(&ok)
    );
    let failed = cli(&fleet, &["run", "hello.py", "--param", "code=3", "--wait"]).await;
    assert_eq!(failed.status.code(), Some(3), "{}", stderr(&failed));
    assert!(
        stderr(&failed).contains("exited with code 3"),
        "{}",
        stderr(&failed)
    );
    let params = write(&dir, "params.json", r#"{"who": "file", "code": 0}"#);
    let waited = json_of(
        &cli(
            &fleet,
            &[
                "run",
                "hello.py",
                "--params-json",
                &params,
                "--wait",
                "--output",
                "json",
            ],
        )
        .await,
    );
    assert_eq!(waited["run"]["status"], "succeeded");
    assert!(
        waited["logs"]["stdout"]
            .as_str()
            .unwrap()
            .contains("hello file")
    );

    // Without --wait: the id.
    let submitted = cli(&fleet, &["run", "hello.py", "--param", "who=later"]).await;
    let id = stdout(&submitted).trim().to_string();
    uuid::Uuid::parse_str(&id).unwrap_or_else(|_| panic!("not a run id: {id}"));
    let logs = cli(&fleet, &["runs", "logs", &id, "--follow"]).await;
    assert!(stdout(&logs).contains("hello later"), "{}", stdout(&logs));
    let run = json_of(&cli(&fleet, &["runs", "show", &id, "--output", "json"]).await);
    assert_eq!(run["id"], id.as_str());
    assert_eq!(run["status"], "succeeded");
    let run_text = stdout(&cli(&fleet, &["runs", "show", &id]).await);
    assert!(run_text.contains("status: succeeded"), "{run_text}");

    let recent = json_of(
        &cli(
            &fleet,
            &[
                "runs", "list", "--script", "hello.py", "--since", "1h", "--output", "json",
            ],
        )
        .await,
    );
    assert_eq!(recent.as_array().unwrap().len(), 4, "{recent}");
    let failed_only = json_of(
        &cli(
            &fleet,
            &["runs", "list", "--status", "failed", "--output", "json"],
        )
        .await,
    );
    assert_eq!(failed_only.as_array().unwrap().len(), 1);
    let future = json_of(
        &cli(
            &fleet,
            &[
                "runs",
                "list",
                "--since",
                "2099-01-01T00:00:00Z",
                "--output",
                "json",
            ],
        )
        .await,
    );
    assert_eq!(future, Value::Array(vec![]));
    let limited = json_of(
        &cli(
            &fleet,
            &["runs", "list", "--limit", "2", "--output", "json"],
        )
        .await,
    );
    assert_eq!(limited.as_array().unwrap().len(), 2);
    let table = stdout(&cli(&fleet, &["runs", "list"]).await);
    assert!(
        table.starts_with("ID") && table.contains("hello.py"),
        "{table}"
    );

    let retried = json_of(&cli(&fleet, &["runs", "retry", &id, "--output", "json"]).await);
    assert_eq!(retried["attempt"], 2);

    let long = stdout(&cli(&fleet, &["run", "sleepy.sh"]).await)
        .trim()
        .to_string();
    let cancelled = cli(&fleet, &["runs", "cancel", &long]).await;
    assert!(cancelled.status.success(), "{}", stderr(&cancelled));
    assert!(
        stdout(&cancelled).starts_with(&long),
        "{}",
        stdout(&cancelled)
    );
    let end = cli(
        &fleet,
        &["runs", "logs", &long, "--follow", "--output", "json"],
    )
    .await;
    assert_eq!(json_of(&end)["status"], "cancelled");

    // Errors: one line, exit 2.
    one_line_error(&cli(&fleet, &["runs", "show", "not-a-uuid"]).await, "id");
    one_line_error(&cli(&fleet, &["run", "missing.py"]).await, "script");
    one_line_error(
        &cli(&fleet, &["runs", "list", "--since", "yesterday"]).await,
        "--since",
    );
    one_line_error(
        &cli(&fleet, &["run", "hello.py", "--param", "novalue"]).await,
        "KEY=VALUE",
    );
    one_line_error(
        &cli(&fleet, &["run", "hello.py", "--params-json", &reqs]).await,
        "JSON object",
    );
    one_line_error(
        &cli_as(&fleet, None, &["scripts", "list"]).await,
        "RUNFLEET_TOKEN",
    );
    one_line_error(
        &cli(&fleet, &["--url", "http://127.0.0.1:9", "scripts", "list"]).await,
        "cannot reach",
    );
}

#[tokio::test]
async fn tasks_schedules_tokens_and_completions_through_the_cli() {
    let fleet = Fleet::start().await;
    let dir = fleet.work_dir.join("cli-tasks");
    let hello = write(&dir, "hello.py", HELLO);
    assert!(
        cli(&fleet, &["scripts", "push", &hello])
            .await
            .status
            .success()
    );

    let created = json_of(
        &cli(
            &fleet,
            &[
                "tasks",
                "create",
                "greet",
                "--script",
                "hello.py",
                "--param",
                "who=task",
                "--timeout",
                "60",
                "--max-attempts",
                "2",
                "--output",
                "json",
            ],
        )
        .await,
    );
    assert_eq!(created["name"], "greet");
    assert_eq!(created["max_attempts"], 2);
    let tasks = json_of(&cli(&fleet, &["tasks", "list", "--output", "json"]).await);
    assert_eq!(tasks.as_array().unwrap().len(), 1);
    let table = stdout(&cli(&fleet, &["tasks", "list"]).await);
    assert!(
        table.contains("TIMEOUT")
            && table
                .lines()
                .any(|l| l.starts_with("greet") && l.contains("hello.py") && l.contains(" 60 ")),
        "{table}"
    );
    let shown = json_of(&cli(&fleet, &["tasks", "show", "greet", "--output", "json"]).await);
    assert_eq!(shown["parameters"]["who"], "task");
    let by_task = cli(&fleet, &["run", "--task", "greet", "--wait"]).await;
    assert_eq!(by_task.status.code(), Some(0), "{}", stderr(&by_task));
    assert!(
        stdout(&by_task).contains("hello task"),
        "{}",
        stdout(&by_task)
    );

    let schedule = json_of(
        &cli(
            &fleet,
            &[
                "schedules",
                "create",
                "greet",
                "--cron",
                "0 3 * * *",
                "--timezone",
                "Europe/Paris",
                "--output",
                "json",
            ],
        )
        .await,
    );
    let sid = schedule["id"].as_str().unwrap().to_string();
    assert!(schedule["next_fire_at"].is_string(), "{schedule}");
    let listed = json_of(&cli(&fleet, &["schedules", "list", "--output", "json"]).await);
    assert_eq!(listed[0]["id"], sid.as_str());
    let table = stdout(&cli(&fleet, &["schedules", "list", "--task", "greet"]).await);
    assert!(
        table.contains("NEXT FIRE") && table.contains(&sid) && table.contains("active"),
        "{table}"
    );
    let paused = json_of(&cli(&fleet, &["schedules", "pause", &sid, "--output", "json"]).await);
    assert_eq!(paused["paused"], true);
    let table = stdout(&cli(&fleet, &["schedules", "list"]).await);
    assert!(table.contains("paused"), "{table}");
    let resumed = json_of(&cli(&fleet, &["schedules", "resume", &sid, "--output", "json"]).await);
    assert_eq!(resumed["paused"], false);
    let fired = json_of(&cli(&fleet, &["schedules", "trigger", &sid, "--output", "json"]).await);
    let run_id = fired["id"].as_str().unwrap().to_string();
    let logs = cli(&fleet, &["runs", "logs", &run_id, "--follow"]).await;
    assert!(stdout(&logs).contains("hello task"), "{}", stdout(&logs));
    one_line_error(
        &cli(
            &fleet,
            &["schedules", "create", "greet", "--cron", "61 * * * *"],
        )
        .await,
        "cron",
    );
    one_line_error(
        &cli(&fleet, &["tasks", "delete", "greet"]).await,
        "schedule",
    );
    assert!(
        cli(&fleet, &["schedules", "delete", &sid])
            .await
            .status
            .success()
    );
    assert!(
        cli(&fleet, &["tasks", "delete", "greet"])
            .await
            .status
            .success()
    );
    one_line_error(&cli(&fleet, &["tasks", "show", "greet"]).await, "greet");

    // Tokens: a viewer can read but not submit; a revoked token is refused.
    let viewer = cli(
        &fleet,
        &["tokens", "create", "--name", "looker", "--role", "viewer"],
    )
    .await;
    assert!(viewer.status.success(), "{}", stderr(&viewer));
    let viewer_token = stdout(&viewer).trim().to_string();
    assert!(viewer_token.starts_with("rft_"));
    assert!(
        cli_as(&fleet, Some(&viewer_token), &["runs", "list"])
            .await
            .status
            .success()
    );
    one_line_error(
        &cli_as(&fleet, Some(&viewer_token), &["run", "hello.py"]).await,
        "operator",
    );
    let tokens = json_of(&cli(&fleet, &["tokens", "list", "--output", "json"]).await);
    let looker = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "looker")
        .expect("looker listed")
        .clone();
    assert!(
        looker.get("token").is_none(),
        "the token itself is never listed"
    );
    let revoked = cli(
        &fleet,
        &["tokens", "revoke", looker["id"].as_str().unwrap()],
    )
    .await;
    assert!(
        stdout(&revoked).contains("revoked looker"),
        "{}",
        stdout(&revoked)
    );
    let table = stdout(&cli(&fleet, &["tokens", "list"]).await);
    assert!(
        table
            .lines()
            .any(|l| l.contains("looker") && l.contains("viewer") && l.ends_with("revoked")),
        "{table}"
    );
    one_line_error(
        &cli_as(&fleet, Some(&viewer_token), &["runs", "list"]).await,
        "401",
    );

    let completions = cli(&fleet, &["completions", "bash"]).await;
    assert!(completions.status.success());
    assert!(
        stdout(&completions).contains("schedules"),
        "bash completion lists subcommands"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_logs_follow_prints_lines_as_the_script_prints_them() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let fleet = Fleet::start().await;
    fleet
        .register(
            "slow.py",
            "import sys, time\nprint('first')\ntime.sleep(2)\nprint('oops', file=sys.stderr)\nprint('second')\n",
        )
        .await;
    let id = fleet.submit(serde_json::json!({"script": "slow.py"})).await;
    let mut follow = tokio::process::Command::new(workspace_bin("runfleet"))
        .args(["runs", "logs", &id, "--follow"])
        .env("RUNFLEET_URL", &fleet.base)
        .env("RUNFLEET_TOKEN", &fleet.admin_token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
        .await
        .expect("a first line")
        .unwrap();
    assert_eq!(first.as_deref(), Some("first"));
    let (_, run) = fleet.get(&format!("/runs/{id}")).await;
    assert_eq!(run["status"], "running", "printed while the script runs");
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("second"));
    assert_eq!(lines.next_line().await.unwrap(), None);
    let done = follow.wait_with_output().await.unwrap();
    assert!(done.status.success(), "{done:?}");
    assert_eq!(String::from_utf8_lossy(&done.stderr), "oops\n");
}
