//! The environment a script starts with, built from an allow-list: a child sees the
//! variables named here and nothing else of the consumer's own (its database and broker
//! URLs must never reach a script).
//!
//! Layers, each overriding the one before: the few variables [`PASSED_THROUGH`] from the
//! consumer, the task's `env`, the run's secrets, and last the `RUNFLEET_*`, `HOME` and
//! `TMPDIR` variables that tie the script to its work dir (so no task can move a run out
//! of it).

use std::path::{Path, PathBuf};

use runfleet_common::run_state::ClaimedRun;

use crate::spawn::Command;

/// Variables passed through from the consumer's own environment.
pub const PASSED_THROUGH: &[&str] = &["PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ"];

/// The files of one run, all inside its work dir.
#[derive(Debug, Clone)]
pub struct RunFiles {
    /// The run's working directory (also its `HOME` and `TMPDIR`).
    pub work: PathBuf,
    /// `params.json`: the parameters, as a file.
    pub params: PathBuf,
    /// Where the script may write its JSON result.
    pub result: PathBuf,
}

impl RunFiles {
    /// The files of a run working in `work`.
    pub fn in_dir(work: &Path) -> Self {
        RunFiles {
            work: work.to_path_buf(),
            params: work.join("params.json"),
            result: work.join("result.json"),
        }
    }
}

/// Sets the whole environment of `run`'s script on `command`. `params_json` is the
/// parameter object as text; `traceparent` continues the run's trace in the script
/// (OpenTelemetry SDKs read `TRACEPARENT`).
pub fn set_for_run(
    command: &mut Command,
    run: &ClaimedRun,
    queue: &str,
    files: &RunFiles,
    params_json: &str,
    traceparent: Option<String>,
) {
    command.env_from_consumer(PASSED_THROUGH);
    // The task's env (names checked by the API: never RUNFLEET_*).
    if let Some(env) = run.env.as_object() {
        for (name, value) in env {
            if let Some(value) = value.as_str() {
                command.env(name, value);
            }
        }
    }
    // Secrets after the task's env (a task cannot map a RUNFLEET_* name either).
    for secret in &run.secret_env {
        command.env(&secret.env, &secret.value);
    }
    let work = &files.work;
    command
        .env("HOME", work)
        .env("TMPDIR", work)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("RUNFLEET_RUN_ID", run.run_id.to_string())
        .env("RUNFLEET_ATTEMPT", run.attempt.to_string())
        .env("RUNFLEET_SCRIPT", &run.script_name)
        .env("RUNFLEET_QUEUE", queue)
        .env("RUNFLEET_PARAMS", params_json)
        .env("RUNFLEET_PARAMS_PATH", &files.params)
        .env("RUNFLEET_RESULT_PATH", &files.result)
        .env("RUNFLEET_WORK_DIR", work);
    if let Some(traceparent) = traceparent {
        command.env("TRACEPARENT", traceparent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runfleet_common::secrets::SecretEnv;
    use serde_json::json;
    use std::ffi::OsStr;

    fn run(env: serde_json::Value, secrets: Vec<SecretEnv>) -> ClaimedRun {
        ClaimedRun {
            run_id: uuid::Uuid::nil(),
            attempt: 2,
            script_name: "nightly".into(),
            language: "python".into(),
            content: String::new(),
            requirements: Vec::new(),
            sha256: String::new(),
            parameters: json!({}),
            timeout_seconds: 60,
            submitted_at: chrono::Utc::now(),
            env,
            queue_wait_seconds: 0.0,
            traceparent: None,
            limits: Default::default(),
            secrets: json!({}),
            secret_env: secrets,
        }
    }

    fn built(run: &ClaimedRun) -> Command {
        let mut command = Command::new("python3");
        let files = RunFiles::in_dir(Path::new("/w/run-1"));
        set_for_run(&mut command, run, "default", &files, "{}", None);
        command
    }

    fn var<'a>(command: &'a Command, name: &str) -> Option<&'a str> {
        command.get_env(name).and_then(OsStr::to_str)
    }

    #[test]
    fn nothing_of_the_consumer_reaches_the_script_but_the_allow_list() {
        // Variables every consumer has in its environment (RUNFLEET_DATABASE__URL, say)
        // would be set on a CI runner too; none may be copied.
        let command = built(&run(json!({}), Vec::new()));
        for (name, _) in command.env_vars() {
            let name = name.to_string_lossy();
            assert!(
                PASSED_THROUGH.contains(&name.as_ref())
                    || name.starts_with("RUNFLEET_")
                    || [
                        "HOME",
                        "TMPDIR",
                        "PYTHONUNBUFFERED",
                        "PYTHONDONTWRITEBYTECODE"
                    ]
                    .contains(&name.as_ref()),
                "{name} reached the script"
            );
        }
        assert_eq!(var(&command, "RUNFLEET_ATTEMPT"), Some("2"));
        assert_eq!(
            var(&command, "RUNFLEET_RESULT_PATH"),
            Some("/w/run-1/result.json")
        );
    }

    #[test]
    fn task_env_and_secrets_cannot_move_the_run_out_of_its_work_dir() {
        let secret = SecretEnv {
            env: "TMPDIR".into(),
            name: "tmp".into(),
            value: "/elsewhere".into(),
        };
        let command = built(&run(
            json!({"HOME": "/root", "REGION": "eu", "NOT_TEXT": 5}),
            vec![secret],
        ));
        assert_eq!(var(&command, "HOME"), Some("/w/run-1"));
        assert_eq!(var(&command, "TMPDIR"), Some("/w/run-1"));
        assert_eq!(var(&command, "REGION"), Some("eu"));
        // Only strings are variables; the API refuses other values, and so does this.
        assert_eq!(var(&command, "NOT_TEXT"), None);
    }

    #[test]
    fn a_secret_wins_over_the_task_env_of_the_same_name() {
        let secret = SecretEnv {
            env: "API_TOKEN".into(),
            name: "api".into(),
            value: "s3cret".into(),
        };
        let command = built(&run(json!({"API_TOKEN": "from-task"}), vec![secret]));
        assert_eq!(var(&command, "API_TOKEN"), Some("s3cret"));
    }
}
