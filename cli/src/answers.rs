//! The API's answers as the CLI reads them: one struct per answer, holding the fields the
//! CLI shows (unknown fields are ignored, so a newer server with more fields is fine). A
//! field the server renames or drops fails here with an error naming it, not as a blank
//! column; the end-to-end CLI tests read every one of these from a real server.
//!
//! They mirror `runfleet_common`'s schema types (`Run`, `ScriptDetail`, `Task`, `Schedule`,
//! `ApiToken`, `RunLogs`), which this crate cannot import without compiling the server.
//! Times stay the RFC 3339 text the API sends; the CLI shows them as they are.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::CliError;

/// Reads `v` as `T`, or says which field of the answer did not match.
pub fn parse<T: DeserializeOwned>(v: &Value) -> Result<T, CliError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        CliError(format!(
            "the API's answer is not what this CLI expects at '{}': {} (is the CLI older or newer than the server? `--output json` shows the answer)",
            e.path(),
            e.inner()
        ))
    })
}

/// A run (`GET /runs/{id}`, and what submit, cancel, retry and trigger answer).
#[derive(Debug, Deserialize)]
pub struct Run {
    /// Its id.
    pub id: String,
    /// Where it is in its life, e.g. `running`.
    pub status: String,
    /// Its script's name.
    pub script: String,
    /// Its current attempt, from 1.
    pub attempt: i64,
    /// When it was submitted.
    pub submitted_at: String,
    /// The script's exit code, when it exited.
    pub exit_code: Option<i64>,
    /// Why it failed.
    pub error: Option<RunError>,
    /// The JSON the script wrote as its result.
    pub result: Option<Value>,
}

impl Run {
    /// True when the run will not change again (unless retried).
    pub fn is_final(&self) -> bool {
        matches!(
            self.status.as_str(),
            "succeeded" | "failed" | "timed_out" | "cancelled" | "dead"
        )
    }
}

/// Why a run failed.
#[derive(Debug, Deserialize)]
pub struct RunError {
    /// Machine-readable code, e.g. `exit_nonzero`.
    pub code: String,
    /// What happened.
    pub message: String,
}

/// A page of `GET /runs`. The runs stay JSON so `--output json` prints them whole.
#[derive(Debug, Deserialize)]
pub struct RunPage {
    /// Newest first.
    pub runs: Vec<Value>,
    /// The cursor of the next (older) page, if there is one.
    pub next_cursor: Option<String>,
}

/// `GET /runs/{id}/logs`.
#[derive(Debug, Deserialize)]
pub struct Logs {
    /// What the script wrote to stdout.
    pub stdout: String,
    /// What it wrote to stderr.
    pub stderr: String,
}

/// One `log` event of `GET /runs/{id}/events`.
#[derive(Debug, Deserialize)]
pub struct LogEvent {
    /// The attempt that wrote it.
    pub attempt: i64,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The text.
    pub text: String,
}

/// A line of `GET /scripts`.
#[derive(Debug, Deserialize)]
pub struct ScriptSummary {
    /// Its name.
    pub name: String,
    /// Its newest version.
    pub latest_version: i64,
    /// `python` or `shell`.
    pub language: String,
    /// When its newest version was pushed.
    pub updated_at: String,
}

/// A script version (`POST /scripts`, and `latest` of `GET /scripts/{name}`).
#[derive(Debug, Deserialize)]
pub struct ScriptVersion {
    /// The script's name.
    pub name: String,
    /// This version's number.
    pub version: i64,
    /// `python` or `shell`.
    pub language: String,
    /// Its source.
    pub content: String,
    /// Its pip requirements.
    pub requirements: Vec<String>,
    /// Its content's SHA-256.
    pub sha256: String,
}

/// One of `versions` of `GET /scripts/{name}`.
#[derive(Debug, Deserialize)]
pub struct VersionSummary {
    /// Its number.
    pub version: i64,
    /// Its content's SHA-256.
    pub sha256: String,
    /// When it was pushed.
    pub created_at: String,
}

/// `GET /scripts/{name}`.
#[derive(Debug, Deserialize)]
pub struct ScriptDetail {
    /// The newest version, whole.
    pub latest: ScriptVersion,
    /// Every version, newest first.
    pub versions: Vec<VersionSummary>,
}

/// A task (`GET /tasks`).
#[derive(Debug, Deserialize)]
pub struct Task {
    /// Its name.
    pub name: String,
    /// The script it runs.
    pub script: String,
    /// Its queue.
    pub queue: String,
    /// Its timeout.
    pub timeout_seconds: i64,
    /// How many attempts a run of it gets.
    pub max_attempts: i64,
}

/// A schedule.
#[derive(Debug, Deserialize)]
pub struct Schedule {
    /// Its id.
    pub id: String,
    /// The task it fires.
    pub task: String,
    /// Its cron expression.
    pub cron: String,
    /// The IANA timezone the expression is read in.
    pub timezone: String,
    /// True when it does not fire.
    pub paused: bool,
    /// When it fires next.
    pub next_fire_at: Option<String>,
    /// When it last fired.
    pub last_fired_at: Option<String>,
}

/// An API token's listing.
#[derive(Debug, Deserialize)]
pub struct Token {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: String,
    /// When it was last used.
    pub last_used_at: Option<String>,
    /// When it was revoked.
    pub revoked_at: Option<String>,
}

/// `POST /tokens`: the listing and, this once, the token.
#[derive(Debug, Deserialize)]
pub struct CreatedToken {
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: String,
    /// The bearer token.
    pub token: String,
}

/// An optional field as display text: `-` when absent.
pub fn or_dash(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_renamed_field_is_named_in_the_error() {
        let err = parse::<Schedule>(&json!({
            "id": "s1", "task": "t", "cron_expr": "* * * * *", "timezone": "UTC",
            "paused": false, "next_fire_at": null, "last_fired_at": null,
        }))
        .unwrap_err();
        assert!(err.0.contains("cron"), "{}", err.0);
        let ok: Schedule = parse(&json!({
            "id": "s1", "task": "t", "cron": "* * * * *", "timezone": "UTC",
            "paused": true, "next_fire_at": null, "last_fired_at": null, "extra": 1,
        }))
        .unwrap();
        assert!(ok.paused);
    }
}
