//! Compatibility with the FastAPI "automation hub": `POST /runs/runs` with
//! `{"script_name", "parameters"}`, `GET /runs/runs/{id}` and `GET /runs/runs`, answered
//! in the hub's shape (`run_id`, `script_name`, its four statuses), so teams moving over
//! keep their curl lines and client scripts. The whole runfleet record stays at
//! `GET /runs/{id}`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use runfleet_common::run_state::RunStatus;
use runfleet_common::runs::{self, NewRun, Run, RunError, RunFilter, Trigger};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::api_error::{ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::routes::{bad_query, text_filter};
use crate::state::AppState;

/// The automation hub's four statuses. Every runfleet status is one of them: waiting
/// (`queued`, `retrying`) is `queued`, `succeeded` is `completed`, and every way of ending
/// without success (`failed`, `timed_out`, `cancelled`, `dead`) is `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HubStatus {
    /// Waiting for a consumer, or for its next attempt.
    Queued,
    /// A consumer is running it.
    Running,
    /// It succeeded.
    Completed,
    /// It ended without success (failed, timed out, cancelled or dead).
    Failed,
}

impl HubStatus {
    /// The hub's name for `status`.
    pub fn of(status: RunStatus) -> HubStatus {
        match status {
            RunStatus::Queued | RunStatus::Retrying => HubStatus::Queued,
            RunStatus::Running => HubStatus::Running,
            RunStatus::Succeeded => HubStatus::Completed,
            RunStatus::Failed | RunStatus::TimedOut | RunStatus::Cancelled | RunStatus::Dead => {
                HubStatus::Failed
            }
        }
    }

    /// The runfleet statuses this hub status stands for.
    pub fn statuses(self) -> Vec<RunStatus> {
        RunStatus::ALL
            .into_iter()
            .filter(|s| HubStatus::of(*s) == self)
            .collect()
    }

    const ALL: [HubStatus; 4] = [
        HubStatus::Queued,
        HubStatus::Running,
        HubStatus::Completed,
        HubStatus::Failed,
    ];

    fn as_str(self) -> &'static str {
        match self {
            HubStatus::Queued => "queued",
            HubStatus::Running => "running",
            HubStatus::Completed => "completed",
            HubStatus::Failed => "failed",
        }
    }
}

/// A run as the automation hub answered it: `run_id`, `script_name` and the hub's status,
/// with runfleet's own status and the run's times and result beside them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HubRunView {
    /// The run's id (the hub's name for it).
    pub run_id: Uuid,
    /// The same id, under runfleet's name.
    pub id: Uuid,
    /// The script's name.
    pub script_name: String,
    /// The hub's status: `queued`, `running`, `completed` or `failed`.
    pub status: HubStatus,
    /// runfleet's own status, which says more (`timed_out`, `cancelled`, `retrying`, …).
    pub runfleet_status: RunStatus,
    /// Parameters (a JSON object).
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// Worker queue.
    pub queue: String,
    /// Attempt number, from 1.
    pub attempt: i32,
    /// When it was accepted.
    pub submitted_at: DateTime<Utc>,
    /// When a consumer started it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a final status.
    pub finished_at: Option<DateTime<Utc>>,
    /// Script exit code.
    pub exit_code: Option<i32>,
    /// JSON the script wrote to `RUNFLEET_RESULT_PATH`.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// Set when the run did not succeed.
    pub error: Option<RunError>,
}

impl From<Run> for HubRunView {
    fn from(run: Run) -> Self {
        HubRunView {
            run_id: run.id,
            id: run.id,
            script_name: run.script,
            status: HubStatus::of(run.status),
            runfleet_status: run.status,
            parameters: run.parameters,
            queue: run.queue,
            attempt: run.attempt,
            submitted_at: run.submitted_at,
            started_at: run.started_at,
            finished_at: run.finished_at,
            exit_code: run.exit_code,
            result: run.result,
            error: run.error,
        }
    }
}

runfleet_common::with_run_settings! {
/// Body of `POST /runs/runs` (the automation hub's shape).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HubRun {
    /// Script name, e.g. `fetch_rss.py`.
    pub script_name: String,
    /// Parameters, each passed as `--key value`.
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Map<String, Value>>,
    /// Same key → the same run.
    pub idempotency_key: Option<String>,
}
}

/// Submits a run the automation hub's way.
#[utoipa::path(post, path = "/runs/runs", tag = "automation hub compatibility", request_body = HubRun,
    responses((status = 202, description = "accepted, status queued", body = HubRunView),
        (status = 200, description = "idempotency_key seen before: that run", body = HubRunView),
        (status = 409, description = "idempotency_key reused with other inputs", body = ErrorBody),
        (status = 422, description = "invalid field", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<HubRun>,
) -> ApiResult<(StatusCode, Json<HubRunView>)> {
    let settings = body.settings();
    let (status, Json(run)) = super::runs::submit(
        &state,
        NewRun {
            script: body.script_name,
            version: None,
            parameters: body.parameters.unwrap_or_default(),
            settings,
            idempotency_key: body.idempotency_key,
            trigger: Trigger::Api,
            script_field: "script_name",
            ..NewRun::default()
        },
    )
    .await?;
    Ok((status, Json(run.into())))
}

/// Reads a run the automation hub's way.
#[utoipa::path(get, path = "/runs/runs/{id}", tag = "automation hub compatibility",
    params(("id" = uuid::Uuid, Path, description = "run id")),
    responses((status = 200, body = HubRunView), (status = 404, body = ErrorBody)))]
pub async fn get(state: State<AppState>, id: Path<String>) -> ApiResult<Json<HubRunView>> {
    let Json(run) = super::runs::get(state, id).await?;
    Ok(Json(run.into()))
}

/// Query of `GET /runs/runs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HubListQuery {
    /// Only runs in this hub status: `queued`, `running`, `completed` or `failed`.
    pub status: Option<String>,
    /// Only runs of this script.
    pub script_name: Option<String>,
    /// Page size, 1-500 (default 50).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of runs in the hub's shape, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HubRunPage {
    /// The runs.
    pub runs: Vec<HubRunView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Lists runs the automation hub's way, newest first.
#[utoipa::path(get, path = "/runs/runs", tag = "automation hub compatibility", params(HubListQuery),
    responses((status = 200, body = HubRunPage), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<HubListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<HubRunPage>> {
    let Query(q) = query.map_err(|e| bad_query("query", e.body_text()))?;
    let statuses = match q.status.as_deref() {
        None | Some("") => Vec::new(),
        Some(s) => HubStatus::ALL
            .into_iter()
            .find(|h| h.as_str() == s)
            .ok_or_else(|| {
                bad_query(
                    "status",
                    format!("unknown status '{s}'; use one of queued, running, completed, failed"),
                )
            })?
            .statuses(),
    };
    let (limit, cursor) = super::runs::page(q.limit.as_deref(), q.cursor.as_deref())?;
    let filter = RunFilter {
        statuses,
        script: text_filter("script_name", q.script_name)?,
        limit,
        cursor,
    };
    let (found, next) = runs::list(&state.pool, &filter).await?;
    Ok(Json(HubRunPage {
        runs: found.into_iter().map(HubRunView::from).collect(),
        next_cursor: next.map(|id| id.to_string()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_statuses_split_every_runfleet_status_once() {
        let mut covered: Vec<RunStatus> = HubStatus::ALL
            .into_iter()
            .flat_map(HubStatus::statuses)
            .collect();
        assert_eq!(covered.len(), RunStatus::ALL.len());
        covered.sort_by_key(|s| s.as_str());
        covered.dedup();
        assert_eq!(covered.len(), RunStatus::ALL.len());
        assert_eq!(HubStatus::of(RunStatus::Succeeded), HubStatus::Completed);
        assert_eq!(HubStatus::of(RunStatus::Retrying), HubStatus::Queued);
        assert_eq!(HubStatus::of(RunStatus::Dead), HubStatus::Failed);
    }
}
