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
    responses((status = 202, description = "accepted, status queued", body = Run),
        (status = 200, description = "idempotency_key seen before: that run", body = Run),
        (status = 409, description = "idempotency_key reused with other inputs", body = ErrorBody),
        (status = 422, description = "invalid field", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<HubRun>,
) -> ApiResult<(StatusCode, Json<Run>)> {
    let settings = body.settings();
    super::runs::submit(
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
    .await
}

/// Reads a run the automation hub's way (same body as `GET /runs/{id}`).
#[utoipa::path(get, path = "/runs/runs/{id}", tag = "automation hub compatibility",
    params(("id" = uuid::Uuid, Path, description = "run id")),
    responses((status = 200, body = Run), (status = 404, body = ErrorBody)))]
pub async fn get(state: State<AppState>, id: Path<String>) -> ApiResult<Json<Run>> {
    super::runs::get(state, id).await
}
