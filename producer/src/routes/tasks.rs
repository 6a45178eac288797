//! `/tasks`: named run templates.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use runfleet_common::tasks::{self, Task, TaskInput};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::api_error::{ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::state::AppState;

runfleet_common::with_run_settings! {
/// The settings of a task (body of `PUT /tasks/{name}`, and of `POST /tasks` with `name`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskBody {
    /// Name (`POST /tasks`; in `PUT` the URL names the task, and a body `name` other than
    /// the URL's is refused): `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 128.
    pub name: Option<String>,
    /// Script name.
    pub script: String,
    /// Pinned script version; the latest at each run when absent.
    pub version: Option<i32>,
    /// Default parameters; a run's parameters override them key by key.
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Map<String, Value>>,
    /// Extra environment variables for the script (string values; not `RUNFLEET_*`).
    #[schema(value_type = Option<Object>)]
    pub env: Option<Map<String, Value>>,
    /// Resource limits of its runs: `cpu_seconds`, `memory_bytes`, `open_files`,
    /// `processes` (unset: the consumer's defaults; every value capped by the consumer's
    /// ceiling).
    pub limits: Option<runfleet_common::limits::RunLimits>,
    /// Secrets its runs get as environment variables: `{"ENV_NAME": "secret-name"}`.
    #[schema(value_type = Option<Object>)]
    pub secrets: Option<Map<String, Value>>,
}
}

impl TaskBody {
    fn into_input(self) -> TaskInput {
        TaskInput {
            settings: self.settings(),
            script: self.script,
            version: self.version,
            parameters: self.parameters.unwrap_or_default(),
            env: self.env.unwrap_or_default(),
            limits: self.limits.unwrap_or_default(),
            secrets: self.secrets.unwrap_or_default(),
        }
    }
}

/// Creates a task.
#[utoipa::path(post, path = "/tasks", tag = "tasks", request_body = TaskBody, responses(
    (status = 201, body = Task),
    (status = 409, description = "name in use", body = ErrorBody),
    (status = 422, description = "invalid field", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<TaskBody>,
) -> ApiResult<(StatusCode, Json<Task>)> {
    let Some(name) = body.name.clone() else {
        return Err(runfleet_common::Error::invalid(
            "invalid_body",
            "name",
            "give the task a name",
        )
        .into());
    };
    let task = tasks::create(&state.pool, &state.policy, &name, body.into_input()).await?;
    Ok((StatusCode::CREATED, Json(task)))
}

/// Every task, by name.
#[utoipa::path(get, path = "/tasks", tag = "tasks", responses((status = 200, body = [Task])))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<Task>>> {
    Ok(Json(tasks::list(&state.pool).await?))
}

/// One task.
#[utoipa::path(get, path = "/tasks/{name}", tag = "tasks",
    params(("name" = String, Path, description = "task name")),
    responses((status = 200, body = Task), (status = 404, body = ErrorBody)))]
pub async fn get(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Task>> {
    let client = state
        .pool
        .get()
        .await
        .map_err(runfleet_common::Error::from)?;
    Ok(Json(tasks::get(&client, &name).await?))
}

/// Replaces a task's settings (absent fields go back to their defaults). Schedules and
/// later runs use the new settings; runs already made keep theirs.
#[utoipa::path(put, path = "/tasks/{name}", tag = "tasks", request_body = TaskBody,
    params(("name" = String, Path, description = "task name")),
    responses((status = 200, body = Task), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn replace(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<TaskBody>,
) -> ApiResult<Json<Task>> {
    if let Some(other) = body.name.as_deref().filter(|n| *n != name) {
        return Err(runfleet_common::Error::invalid(
            "name_mismatch",
            "name",
            format!("the body names task '{other}' but the URL '{name}'; tasks cannot be renamed"),
        )
        .into());
    }
    Ok(Json(
        tasks::replace(&state.pool, &state.policy, &name, body.into_input()).await?,
    ))
}

/// Deletes a task; 409 while schedules use it.
#[utoipa::path(delete, path = "/tasks/{name}", tag = "tasks",
    params(("name" = String, Path, description = "task name")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    tasks::delete(&state.pool, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
