//! Compatibility with the FastAPI "automation hub": `POST /runs/runs` with
//! `{"script_name", "parameters"}` and `GET /runs/runs/{id}`, so teams moving over keep
//! their curl lines and scripts.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use runfleet_common::runs::{NewRun, Run, Trigger};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::api_error::{ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::state::AppState;

/// Body of `POST /runs/runs` (the automation hub's shape).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HubRun {
    /// Script name, e.g. `fetch_rss.py`.
    pub script_name: String,
    /// Parameters, each passed as `--key value`.
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Map<String, Value>>,
    /// Worker queue.
    pub queue: Option<String>,
    /// Seconds before the script is killed.
    pub timeout_seconds: Option<i64>,
    /// Attempts in all (1-20, default 1): a failed or timed-out attempt with attempts
    /// left is retried after an exponential backoff with jitter.
    pub max_attempts: Option<i64>,
    /// Delay before the first retry in seconds (default 10; doubles each attempt).
    pub retry_backoff_seconds: Option<f64>,
    /// Longest delay between attempts in seconds (default 600), at least
    /// `retry_backoff_seconds`.
    pub retry_backoff_max_seconds: Option<f64>,
    /// Same key → the same run.
    pub idempotency_key: Option<String>,
}

/// Submits a run the automation hub's way.
#[utoipa::path(post, path = "/runs/runs", tag = "automation hub compatibility", request_body = HubRun,
    responses((status = 202, description = "accepted, status queued", body = Run),
        (status = 200, description = "idempotency_key seen before: that run", body = Run),
        (status = 409, description = "idempotency_key reused with other inputs", body = ErrorBody),
        (status = 422, description = "invalid field", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<HubRun>,
) -> ApiResult<(StatusCode, Json<Run>)> {
    super::runs::submit(
        &state,
        NewRun {
            script: body.script_name,
            version: None,
            parameters: body.parameters.unwrap_or_default(),
            queue: body.queue,
            timeout_seconds: body.timeout_seconds,
            idempotency_key: body.idempotency_key,
            trigger: Trigger::Api,
            max_attempts: body.max_attempts,
            retry_backoff_seconds: body.retry_backoff_seconds,
            retry_backoff_max_seconds: body.retry_backoff_max_seconds,
            script_field: "script_name",
            ..NewRun::default()
        },
    )
    .await
}

/// Reads a run the automation hub's way (same body as `GET /runs/{id}`).
#[utoipa::path(get, path = "/runs/runs/{id}", tag = "automation hub compatibility",
    params(("id" = uuid::Uuid, Path, description = "run id")),
    responses((status = 200, body = Run), (status = 404, body = ErrorBody)))]
pub async fn get(state: State<AppState>, id: Path<String>) -> ApiResult<Json<Run>> {
    super::runs::get(state, id).await
}
