//! From a finished child to the [`Outcome`] recorded for its attempt: a pure function of
//! how the process ended and what its result file held, so every way a run can end is
//! unit-tested here without starting one.

use std::path::Path;

use runfleet_common::failure_code::FailureCode;
use runfleet_common::run_state::{CapturedOutput, Outcome, RunStatus};
use runfleet_common::runs::{MAX_JSON_NUMBER, contains_nul, oversized_number};
use serde_json::Value;

use crate::child::Finished;

/// What the script left in `RUNFLEET_RESULT_PATH`.
#[derive(Debug, Clone, PartialEq)]
pub enum ResultFile {
    /// No file: the run has no result (not an error).
    Absent,
    /// A JSON value the run can keep.
    Valid(Value),
    /// A file that cannot be kept, and why (the run fails with `invalid_result`).
    Refused(String),
}

/// The limits a run was stopped by, for the messages that name them.
#[derive(Debug, Clone, Copy)]
pub struct Stops {
    /// The run's timeout.
    pub timeout_seconds: i32,
    /// `consumer.kill_grace_seconds`: SIGTERM to SIGKILL.
    pub kill_grace_seconds: u64,
    /// The CPU limit applied to the script, if any.
    pub cpu_seconds: Option<u64>,
}

/// A run that failed before its script could start.
pub fn failure(code: FailureCode, message: String) -> Outcome {
    Outcome {
        status: RunStatus::Failed,
        exit_code: None,
        error_code: Some(code),
        error: Some(message),
        result: None,
        stdout: CapturedOutput::default(),
        stderr: CapturedOutput::default(),
        venv_signature: None,
    }
}

/// The outcome of a script that ran. Order matters: a cancel or timeout explains a
/// non-zero exit, and a failed exit is reported before a bad result file.
pub fn of_finished(finished: Finished, result: ResultFile, stops: Stops) -> Outcome {
    let failed = if finished.cancelled {
        Some((
            RunStatus::Cancelled,
            FailureCode::Cancelled,
            "cancelled by request; its process group was terminated (SIGTERM, then SIGKILL)"
                .to_string(),
        ))
    } else if finished.timed_out {
        Some((
            RunStatus::TimedOut,
            FailureCode::TimedOut,
            format!(
                "killed after its timeout of {} s (SIGTERM to its process group, SIGKILL after {} s)",
                stops.timeout_seconds, stops.kill_grace_seconds
            ),
        ))
    } else if let Some(status) = finished.status.filter(|s| !s.success()) {
        Some((
            RunStatus::Failed,
            FailureCode::ExitNonzero,
            abnormal_exit(status, &finished, stops),
        ))
    } else if let ResultFile::Refused(why) = &result {
        Some((RunStatus::Failed, FailureCode::InvalidResult, why.clone()))
    } else {
        None
    };
    let (status, error_code, error) = match failed {
        Some((status, code, error)) => (status, Some(code), Some(error)),
        None => (RunStatus::Succeeded, None, None),
    };
    Outcome {
        status,
        exit_code: finished.status.and_then(|s| s.code()),
        error_code,
        error,
        // A failed run still keeps a valid result it wrote (partial progress, say).
        result: match result {
            ResultFile::Valid(v) => Some(v),
            _ => None,
        },
        stdout: finished.stdout,
        stderr: finished.stderr,
        venv_signature: None,
    }
}

/// Why a script that exited unsuccessfully did, naming the limit that killed it if one did.
fn abnormal_exit(status: std::process::ExitStatus, finished: &Finished, stops: Stops) -> String {
    use std::os::unix::process::ExitStatusExt;
    let cpu = stops.cpu_seconds.unwrap_or_default();
    match (status.code(), status.signal()) {
        (Some(code), _) => {
            format!("script exited with code {code}; see its stderr in the run's logs")
        }
        (None, Some(libc::SIGXCPU)) => {
            format!("script used up its CPU limit of {cpu} s (limits.cpu_seconds) and was killed")
        }
        // The hard limit is one second past the soft one: a script that ignored SIGXCPU.
        (None, Some(libc::SIGKILL))
            if stops
                .cpu_seconds
                .is_some_and(|c| finished.elapsed.as_secs() >= c) =>
        {
            format!(
                "script was killed (SIGKILL), probably at its CPU limit of {cpu} s (limits.cpu_seconds)"
            )
        }
        (None, Some(sig)) => format!("script was killed by signal {sig}"),
        (None, None) => "script ended abnormally".into(),
    }
}

/// Reads the result file at `path`, refusing one over `limit` bytes.
pub fn read_result(path: &Path, limit: u64) -> ResultFile {
    match std::fs::metadata(path) {
        Err(_) => return ResultFile::Absent,
        Ok(m) if m.len() > limit => {
            return ResultFile::Refused(format!(
                "result file is {} bytes; the limit is {limit} (consumer.result_limit_bytes)",
                m.len()
            ));
        }
        Ok(_) => {}
    }
    match std::fs::read(path) {
        Ok(bytes) => parse_result(&bytes),
        Err(e) => ResultFile::Refused(format!("cannot read result file: {e}")),
    }
}

/// A result file's bytes as a value a run can keep (Postgres `jsonb` holds no NUL and no
/// number beyond [`MAX_JSON_NUMBER`]).
pub fn parse_result(bytes: &[u8]) -> ResultFile {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) if contains_nul(&v) => ResultFile::Refused(
            "result JSON contains a NUL character, which cannot be stored".into(),
        ),
        Ok(v) => match oversized_number(&v) {
            Some(n) => ResultFile::Refused(format!(
                "result JSON holds the number {n:e}, beyond the {MAX_JSON_NUMBER:e} a run can keep; write it as a string"
            )),
            None => ResultFile::Valid(v),
        },
        Err(e) => ResultFile::Refused(format!(
            "the script wrote a result file that is not valid JSON ({e}); write JSON to RUNFLEET_RESULT_PATH"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;
    use std::time::Duration;

    const STOPS: Stops = Stops {
        timeout_seconds: 30,
        kill_grace_seconds: 5,
        cpu_seconds: Some(2),
    };

    /// A child that ended with `status` (None: killed by the consumer) after `secs`.
    fn ended(status: Option<ExitStatus>, secs: u64) -> Finished {
        Finished {
            pid: 4242,
            status,
            timed_out: false,
            cancelled: false,
            elapsed: Duration::from_secs(secs),
            stdout: CapturedOutput {
                text: "out".into(),
                truncated: false,
            },
            stderr: CapturedOutput::default(),
        }
    }

    fn exited(code: i32) -> Option<ExitStatus> {
        Some(ExitStatus::from_raw(code << 8))
    }

    fn signalled(sig: i32) -> Option<ExitStatus> {
        Some(ExitStatus::from_raw(sig))
    }

    #[test]
    fn exit_zero_succeeds_with_its_result_and_output() {
        let o = of_finished(
            ended(exited(0), 1),
            ResultFile::Valid(json!({"rows": 3})),
            STOPS,
        );
        assert_eq!(o.status, RunStatus::Succeeded);
        assert_eq!((o.exit_code, o.error_code, o.error), (Some(0), None, None));
        assert_eq!(o.result, Some(json!({"rows": 3})));
        assert_eq!(o.stdout.text, "out");
    }

    #[test]
    fn every_way_of_failing_gets_its_status_code_and_message() {
        let mut cancelled = ended(None, 1);
        cancelled.cancelled = true;
        let mut timed_out = ended(None, 30);
        timed_out.timed_out = true;
        let cases = [
            (
                cancelled,
                ResultFile::Absent,
                RunStatus::Cancelled,
                FailureCode::Cancelled,
                "cancelled by request",
            ),
            (
                timed_out,
                ResultFile::Absent,
                RunStatus::TimedOut,
                FailureCode::TimedOut,
                "timeout of 30 s (SIGTERM to its process group, SIGKILL after 5 s)",
            ),
            (
                ended(exited(3), 1),
                ResultFile::Absent,
                RunStatus::Failed,
                FailureCode::ExitNonzero,
                "exited with code 3",
            ),
            (
                ended(signalled(libc::SIGXCPU), 2),
                ResultFile::Absent,
                RunStatus::Failed,
                FailureCode::ExitNonzero,
                "used up its CPU limit of 2 s",
            ),
            (
                ended(signalled(libc::SIGKILL), 3),
                ResultFile::Absent,
                RunStatus::Failed,
                FailureCode::ExitNonzero,
                "probably at its CPU limit of 2 s",
            ),
            (
                ended(signalled(libc::SIGKILL), 0),
                ResultFile::Absent,
                RunStatus::Failed,
                FailureCode::ExitNonzero,
                "killed by signal 9",
            ),
            (
                ended(exited(0), 1),
                ResultFile::Refused("not JSON".into()),
                RunStatus::Failed,
                FailureCode::InvalidResult,
                "not JSON",
            ),
            // The exit explains more than the file does.
            (
                ended(exited(1), 1),
                ResultFile::Refused("not JSON".into()),
                RunStatus::Failed,
                FailureCode::ExitNonzero,
                "exited with code 1",
            ),
        ];
        for (finished, result, status, code, message) in cases {
            let o = of_finished(finished, result, STOPS);
            assert_eq!(o.status, status, "{code}: {:?}", o.error);
            assert_eq!(o.error_code, Some(code));
            let error = o.error.unwrap_or_default();
            assert!(error.contains(message), "{code}: {error}");
        }
    }

    #[test]
    fn a_failed_run_keeps_the_valid_result_it_wrote() {
        let o = of_finished(ended(exited(2), 1), ResultFile::Valid(json!([1])), STOPS);
        assert_eq!((o.status, o.exit_code), (RunStatus::Failed, Some(2)));
        assert_eq!(o.result, Some(json!([1])));
    }

    #[test]
    fn result_files_that_cannot_be_kept_are_refused_saying_why() {
        assert_eq!(
            parse_result(br#"{"ok": true}"#),
            ResultFile::Valid(json!({"ok": true}))
        );
        let refused = |bytes: &[u8]| match parse_result(bytes) {
            ResultFile::Refused(why) => why,
            other => panic!("accepted {other:?}"),
        };
        assert!(refused(b"{nope").contains("not valid JSON"));
        assert!(refused(br#"{"a": "x\u0000y"}"#).contains("NUL"));
        assert!(refused(b"[1.5e308]").contains("write it as a string"));
    }

    #[test]
    fn a_missing_or_oversized_result_file_is_told_apart() {
        let dir = std::env::temp_dir().join(format!("runfleet-outcome-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("result.json");
        assert_eq!(read_result(&path, 10), ResultFile::Absent);
        std::fs::write(&path, b"[1, 2, 3, 4, 5, 6]").unwrap();
        match read_result(&path, 10) {
            ResultFile::Refused(why) => assert!(why.contains("the limit is 10"), "{why}"),
            other => panic!("accepted {other:?}"),
        }
        assert_eq!(
            read_result(&path, 100),
            ResultFile::Valid(json!([1, 2, 3, 4, 5, 6]))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
