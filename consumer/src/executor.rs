//! Executes one claimed run: a fresh working directory, the script file (cached by
//! SHA-256), an environment built from an allow-list, the child process, and the result
//! file read back into an [`Outcome`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use runfleet_common::failure_code::FailureCode;
use runfleet_common::run_state::{ClaimedRun, Outcome};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::argv::parameters_to_args;
use crate::child::{self, Limits};
use crate::config::WorkerConfig;
use crate::environment::{self, RunFiles};
use crate::live::LiveOutput;
use crate::outcome::{self, ResultFile, Stops, failure};
use crate::spawn::Command;
use crate::venv::{Lease, VenvCache, VenvError};

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
                    FailureCode::UnsupportedLanguage,
                    format!("this consumer cannot run language '{other}'"),
                ),
                elapsed: Duration::ZERO,
            }),
        }
    }

    /// A run that failed before its script could start.
    pub fn not_started(code: FailureCode, message: String) -> Executed {
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
        let files = RunFiles::in_dir(work);
        let ext = if run.language == "python" { "py" } else { "sh" };
        let script = self
            .config
            .work_dir
            .join("scripts")
            .join(format!("{}.{ext}", run.sha256));
        let setup = WorkFiles {
            work: work.to_path_buf(),
            script: script.clone(),
            content: run.content.clone(),
            params_path: files.params.clone(),
            params_json: params_json.clone(),
        };
        // One hop to the blocking pool for all of the run's file set-up.
        match tokio::task::spawn_blocking(move || setup.create()).await {
            Ok(Ok(())) => {}
            Ok(Err(message)) => return Executor::not_started(FailureCode::WorkdirFailed, message),
            Err(e) => {
                return Executor::not_started(
                    FailureCode::WorkdirFailed,
                    format!("file set-up failed: {e}"),
                );
            }
        }

        let mut command = Command::new(&interpreter);
        command
            .arg(&script)
            .args(parameters_to_args(&run.parameters))
            .current_dir(work);
        let script_span = tracing::info_span!("script", script = %run.script_name);
        let traceparent = script_span.in_scope(runfleet_common::telemetry::current_traceparent);
        environment::set_for_run(&mut command, run, queue, &files, &params_json, traceparent);
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
                return Executor::not_started(
                    FailureCode::SpawnFailed,
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
        let result_path = files.result;
        let result = tokio::task::spawn_blocking(move || outcome::read_result(&result_path, limit))
            .await
            .unwrap_or_else(|e| ResultFile::Refused(format!("cannot read result file: {e}")));
        let elapsed = finished.elapsed;
        let stops = Stops {
            timeout_seconds: run.timeout_seconds,
            kill_grace_seconds: self.config.kill_grace_seconds,
            cpu_seconds: rlimits.cpu_seconds,
        };
        let mut outcome = outcome::of_finished(finished, result, stops);
        outcome.venv_signature = venv_signature;
        redact_outcome(&mut outcome, &run.secret_env);
        Executed { outcome, elapsed }
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
