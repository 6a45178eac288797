//! Executes one claimed run: a fresh working directory, the script file (cached by
//! SHA-256), an environment built from an allow-list, the child process, and the result
//! file read back into an [`Outcome`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use runfleet_common::run_state::{CapturedOutput, ClaimedRun, Outcome, RunStatus};
use runfleet_common::runs::{MAX_JSON_NUMBER, contains_nul, oversized_number};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::argv::parameters_to_args;
use crate::child::{self, Limits};
use crate::config::WorkerConfig;
use crate::live::LiveOutput;
use crate::spawn::Command;
use crate::venv::{Lease, VenvCache, VenvError};

/// Variables passed through from the consumer's own environment; nothing else is (the
/// consumer's database and broker URLs must never reach a script).
const PASSED_THROUGH: &[&str] = &["PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ"];

/// Runs scripts for one consumer.
#[derive(Debug, Clone)]
pub struct Executor {
    config: WorkerConfig,
    venvs: Arc<VenvCache>,
    /// `config.shell` found on PATH once, not per run; the name itself when it is not
    /// there, so each shell run fails saying so.
    shell: PathBuf,
}

/// The outcome and how long the script itself ran.
#[derive(Debug)]
pub struct Executed {
    /// What to record.
    pub outcome: Outcome,
    /// Script wall time (zero when it never started).
    pub elapsed: Duration,
}

/// The removal of a finished run's work directory, already under way on the blocking
/// pool. It is not on the run's path: the caller awaits it after the result commit it
/// overlaps, and before the ack, so no more work dirs exist than unacked messages.
#[must_use = "await the removal before the ack"]
#[derive(Default)]
pub struct WorkDirRemoval(Option<tokio::task::JoinHandle<()>>);

impl WorkDirRemoval {
    /// Waits until the directory is gone (or its removal failed; a leftover is replaced
    /// when the same attempt runs here again). The default has nothing to remove.
    pub async fn done(self) {
        if let Some(task) = self.0 {
            let _ = task.await;
        }
    }
}

fn failure(code: &str, message: String) -> Outcome {
    Outcome {
        status: RunStatus::Failed,
        exit_code: None,
        error_code: Some(code.into()),
        error: Some(message),
        result: None,
        stdout: CapturedOutput::default(),
        stderr: CapturedOutput::default(),
        venv_signature: None,
    }
}

impl Executor {
    /// An executor; creates the working and script-cache directories.
    pub fn new(config: WorkerConfig, venvs: Arc<VenvCache>) -> std::io::Result<Self> {
        std::fs::create_dir_all(config.work_dir.join("runs"))?;
        std::fs::create_dir_all(config.work_dir.join("scripts"))?;
        let shell =
            crate::spawn::which(&config.shell).unwrap_or_else(|| config.shell.clone().into());
        Ok(Executor {
            config,
            venvs,
            shell,
        })
    }

    /// The interpreter for a run, and the venv lease that must outlive the script (Python
    /// runs with dependencies). Errors are the run's failure.
    async fn interpreter(&self, run: &ClaimedRun) -> Result<(PathBuf, Option<Lease>), Executed> {
        match run.language.as_str() {
            "shell" => Ok((self.shell.clone(), None)),
            "python" => {
                let prepared = match self.venvs.requirement_set(&run.requirements, &run.content) {
                    Ok(set) => self.venvs.prepare(&set).await,
                    Err(e) => Err(e),
                };
                match prepared {
                    Ok(Some(lease)) => Ok((lease.python.clone(), Some(lease))),
                    Ok(None) => Ok((self.venvs.interpreter().to_path_buf(), None)),
                    Err(e) => {
                        let mut outcome = failure(e.code(), e.to_string());
                        if let VenvError::InstallFailed { tail, .. } = &e {
                            outcome.stderr.text = tail.clone();
                        }
                        Err(Executed {
                            outcome,
                            elapsed: Duration::ZERO,
                        })
                    }
                }
            }
            other => Err(Executed {
                outcome: failure(
                    "unsupported_language",
                    format!("this consumer cannot run language '{other}'"),
                ),
                elapsed: Duration::ZERO,
            }),
        }
    }

    /// A run that failed before its script could start.
    pub fn not_started(code: &str, message: String) -> Executed {
        Executed {
            outcome: failure(code, message),
            elapsed: Duration::ZERO,
        }
    }

    /// Runs `run` to completion (or timeout) and reports how it ended. Never panics on
    /// script problems: they become a `failed` outcome with a clear error.
    pub async fn execute(
        &self,
        run: &ClaimedRun,
        queue: &str,
        cancel: &CancellationToken,
        live: &Arc<LiveOutput>,
    ) -> (Executed, WorkDirRemoval) {
        let work = self
            .config
            .work_dir
            .join("runs")
            .join(format!("{}-{}", run.run_id, run.attempt));
        let executed = self.execute_in(run, queue, &work, cancel, live).await;
        let removal = if self.config.keep_work_dirs {
            WorkDirRemoval::default()
        } else {
            WorkDirRemoval(Some(tokio::task::spawn_blocking(move || {
                let _ = std::fs::remove_dir_all(&work);
            })))
        };
        (executed, removal)
    }

    async fn execute_in(
        &self,
        run: &ClaimedRun,
        queue: &str,
        work: &Path,
        cancel: &CancellationToken,
        live: &Arc<LiveOutput>,
    ) -> Executed {
        let not_started = |code: &str, message: String| Executed {
            outcome: failure(code, message),
            elapsed: Duration::ZERO,
        };
        let (interpreter, lease) = match self
            .interpreter(run)
            .instrument(tracing::info_span!("venv", language = %run.language))
            .await
        {
            Ok(found) => found,
            Err(failed) => return failed,
        };
        let venv_signature = lease.as_ref().map(|l| l.signature.clone());
        let params_json = run.parameters.to_string();
        let params_path = work.join("params.json");
        let result_path = work.join("result.json");
        let ext = if run.language == "python" { "py" } else { "sh" };
        let script = self
            .config
            .work_dir
            .join("scripts")
            .join(format!("{}.{ext}", run.sha256));
        let files = WorkFiles {
            work: work.to_path_buf(),
            script: script.clone(),
            content: run.content.clone(),
            params_path: params_path.clone(),
            params_json: params_json.clone(),
        };
        // One hop to the blocking pool for all of the run's file set-up.
        match tokio::task::spawn_blocking(move || files.create()).await {
            Ok(Ok(())) => {}
            Ok(Err(message)) => return not_started("workdir_failed", message),
            Err(e) => return not_started("workdir_failed", format!("file set-up failed: {e}")),
        }

        let mut command = Command::new(&interpreter);
        command
            .arg(&script)
            .args(parameters_to_args(&run.parameters))
            .current_dir(work)
            .env_from_consumer(PASSED_THROUGH);
        // The task's env (names checked by the API: never RUNFLEET_*); the variables below
        // still win, so a task cannot move the run out of its work dir.
        if let Some(env) = run.env.as_object() {
            for (name, value) in env {
                if let Some(value) = value.as_str() {
                    command.env(name, value);
                }
            }
        }
        // Secrets after the task's env (a task cannot map a RUNFLEET_* name).
        for secret in &run.secret_env {
            command.env(&secret.env, &secret.value);
        }
        command
            .env("HOME", work)
            .env("TMPDIR", work)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("RUNFLEET_RUN_ID", run.run_id.to_string())
            .env("RUNFLEET_ATTEMPT", run.attempt.to_string())
            .env("RUNFLEET_SCRIPT", &run.script_name)
            .env("RUNFLEET_QUEUE", queue)
            .env("RUNFLEET_PARAMS", &params_json)
            .env("RUNFLEET_PARAMS_PATH", &params_path)
            .env("RUNFLEET_RESULT_PATH", &result_path)
            .env("RUNFLEET_WORK_DIR", work);
        let script_span = tracing::info_span!("script", script = %run.script_name);
        // The script may continue the trace (OpenTelemetry SDKs read TRACEPARENT).
        if let Some(traceparent) =
            script_span.in_scope(runfleet_common::telemetry::current_traceparent)
        {
            command.env("TRACEPARENT", traceparent);
        }
        let rlimits = run.limits.effective(
            &self.config.limits.defaults(),
            &self.config.limits.ceiling(),
        );
        let limits = Limits {
            timeout: Duration::from_secs(run.timeout_seconds.max(1) as u64),
            kill_grace: Duration::from_secs(self.config.kill_grace_seconds),
            output_limit: self.config.output_limit_bytes,
            rlimits,
        };
        let finished = match child::run(command, &limits, cancel, live)
            .instrument(script_span)
            .await
        {
            Ok(f) => f,
            Err(e) => {
                return not_started(
                    "spawn_failed",
                    format!(
                        "could not start '{}' for {}: {e} (check consumer.python / consumer.shell)",
                        interpreter.display(),
                        run.script_name
                    ),
                );
            }
        };
        // The venv may be evicted again once the script is done with it.
        drop(lease);
        let limit = self.config.result_limit_bytes;
        let (result, result_error) =
            tokio::task::spawn_blocking(move || read_result(&result_path, limit))
                .await
                .unwrap_or_else(|e| (None, Some(format!("cannot read result file: {e}"))));
        let mut outcome = Outcome {
            status: RunStatus::Succeeded,
            exit_code: finished.status.and_then(|s| s.code()),
            error_code: None,
            error: None,
            result,
            stdout: finished.stdout,
            stderr: finished.stderr,
            venv_signature,
        };
        if finished.cancelled {
            outcome.status = RunStatus::Cancelled;
            outcome.error_code = Some("cancelled".into());
            outcome.error = Some(
                "cancelled by request; its process group was terminated (SIGTERM, then SIGKILL)"
                    .into(),
            );
        } else if finished.timed_out {
            outcome.status = RunStatus::TimedOut;
            outcome.error_code = Some("timed_out".into());
            outcome.error = Some(format!(
                "killed after its timeout of {} s (SIGTERM to its process group, SIGKILL after {} s)",
                run.timeout_seconds, self.config.kill_grace_seconds
            ));
        } else if let Some(status) = finished.status.filter(|s| !s.success()) {
            outcome.status = RunStatus::Failed;
            outcome.error_code = Some("exit_nonzero".into());
            outcome.error = Some(
                match (
                    status.code(),
                    std::os::unix::process::ExitStatusExt::signal(&status),
                ) {
                    (Some(code), _) => {
                        format!("script exited with code {code}; see its stderr in the run's logs")
                    }
                    (None, Some(libc::SIGXCPU)) => format!(
                        "script used up its CPU limit of {} s (limits.cpu_seconds) and was killed",
                        rlimits.cpu_seconds.unwrap_or_default()
                    ),
                    (None, Some(libc::SIGKILL))
                        if rlimits
                            .cpu_seconds
                            .is_some_and(|c| finished.elapsed.as_secs() >= c) =>
                    {
                        format!(
                            "script was killed (SIGKILL), probably at its CPU limit of {} s (limits.cpu_seconds)",
                            rlimits.cpu_seconds.unwrap_or_default()
                        )
                    }
                    (None, Some(sig)) => format!("script was killed by signal {sig}"),
                    (None, None) => "script ended abnormally".into(),
                },
            );
        } else if let Some(message) = result_error {
            outcome.status = RunStatus::Failed;
            outcome.error_code = Some("invalid_result".into());
            outcome.error = Some(message);
        }
        redact_outcome(&mut outcome, &run.secret_env);
        Executed {
            outcome,
            elapsed: finished.elapsed,
        }
    }
}

/// The files a run starts with, created in one blocking call.
struct WorkFiles {
    work: PathBuf,
    script: PathBuf,
    content: String,
    params_path: PathBuf,
    params_json: String,
}

impl WorkFiles {
    /// A fresh working directory (a leftover from a crashed earlier try of this attempt is
    /// replaced), the script file (written once per content hash, atomically, so a
    /// concurrent run of the same script never sees half a file) and `params.json`.
    fn create(self) -> Result<(), String> {
        let _ = std::fs::remove_dir_all(&self.work);
        std::fs::create_dir_all(&self.work).map_err(|e| {
            format!(
                "cannot create working directory {}: {e}",
                self.work.display()
            )
        })?;
        if !self.script.exists() {
            let tmp = self.work.join("script.tmp");
            std::fs::write(&tmp, self.content.as_bytes())
                .and_then(|()| std::fs::rename(&tmp, &self.script))
                .map_err(|e| format!("cannot write the script file: {e}"))?;
        }
        std::fs::write(&self.params_path, &self.params_json)
            .map_err(|e| format!("cannot write params.json: {e}"))
    }
}

/// Reads the optional result file: (the JSON, or an error explaining why it was refused).
fn read_result(path: &Path, limit: u64) -> (Option<Value>, Option<String>) {
    match std::fs::metadata(path) {
        Err(_) => return (None, None),
        Ok(m) if m.len() > limit => {
            return (
                None,
                Some(format!(
                    "result file is {} bytes; the limit is {limit} (consumer.result_limit_bytes)",
                    m.len()
                )),
            );
        }
        Ok(_) => {}
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return (None, Some(format!("cannot read result file: {e}"))),
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) if contains_nul(&v) => (
            None,
            Some("result JSON contains a NUL character, which cannot be stored".into()),
        ),
        Ok(v) => match oversized_number(&v) {
            Some(n) => (
                None,
                Some(format!(
                    "result JSON holds the number {n:e}, beyond the {MAX_JSON_NUMBER:e} a run can keep; write it as a string"
                )),
            ),
            None => (Some(v), None),
        },
        Err(e) => (
            None,
            Some(format!(
                "the script wrote a result file that is not valid JSON ({e}); write JSON to RUNFLEET_RESULT_PATH"
            )),
        ),
    }
}

/// Replaces the run's secret values wherever the run's record would keep them: captured
/// output, result, error message.
fn redact_outcome(outcome: &mut Outcome, secrets: &[runfleet_common::secrets::SecretEnv]) {
    use runfleet_common::secrets::{redact, redact_json};
    if secrets.is_empty() {
        return;
    }
    outcome.stdout.text = redact(&outcome.stdout.text, secrets);
    outcome.stderr.text = redact(&outcome.stderr.text, secrets);
    outcome.result = outcome.result.as_ref().map(|r| redact_json(r, secrets));
    outcome.error = outcome.error.as_ref().map(|e| redact(e, secrets));
}
