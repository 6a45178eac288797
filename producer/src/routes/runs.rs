//! `/runs`: submit, read, list, logs.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use runfleet_common::run_state::RunStatus;
use runfleet_common::runs::RUNS_SUBMITTED;
use runfleet_common::runs::{self, Attempt, NewRun, Run, RunFilter, RunLogs, Trigger};
use runfleet_common::tasks;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::api_error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::routes::{bad_query, parse_run_id, text_filter};
use crate::state::AppState;

runfleet_common::with_run_settings! {
/// Body of `POST /runs`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    /// Script name (or give `task`).
    pub script: Option<String>,
    /// Task name: run the task with its settings; `parameters` override its defaults, and
    /// the other fields given here override the task's.
    pub task: Option<String>,
    /// Script version; the latest when absent.
    pub version: Option<i32>,
    /// Parameters: each key becomes `--key value` for the script.
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Map<String, Value>>,
    /// Same key → the same run, not a second one.
    pub idempotency_key: Option<String>,
}
}

/// Records and publishes a run; 202 for a new run, 200 for an idempotent replay.
pub async fn submit(state: &AppState, new: NewRun) -> ApiResult<(StatusCode, Json<Run>)> {
    let trigger = new.trigger;
    let submitted = runs::submit(&state.pool, &state.publisher, &state.policy, new).await?;
    if submitted.created {
        RUNS_SUBMITTED
            .with_label_values(&[submitted.run.queue.as_str(), trigger.as_str()])
            .inc();
        Ok((StatusCode::ACCEPTED, Json(submitted.run)))
    } else {
        Ok((StatusCode::OK, Json(submitted.run)))
    }
}

/// Submits a run of a script.
#[utoipa::path(post, path = "/runs", tag = "runs", request_body = CreateRun, responses(
    (status = 202, description = "accepted, status queued", body = Run),
    (status = 200, description = "idempotency_key seen before: that run", body = Run),
    (status = 409, description = "idempotency_key reused with other inputs", body = ErrorBody),
    (status = 422, description = "invalid field", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateRun>,
) -> ApiResult<(StatusCode, Json<Run>)> {
    let client = state
        .pool
        .get()
        .await
        .map_err(runfleet_common::Error::from)?;
    let new = new_run(&client, body).await?;
    drop(client);
    submit(&state, new).await
}

/// The run a `CreateRun` asks for (a task's settings under the body's own).
async fn new_run(
    client: &deadpool_postgres::Client,
    mut body: CreateRun,
) -> Result<NewRun, runfleet_common::Error> {
    let parameters = body.parameters.take().unwrap_or_default();
    let settings = body.settings();
    let new = match (body.script, body.task) {
        (Some(script), None) => NewRun {
            script,
            version: body.version,
            parameters,
            ..NewRun::default()
        },
        (None, Some(task)) => {
            let task = tasks::get_for_field(client, &task, "task").await?;
            if body.version.is_some() {
                return Err(runfleet_common::Error::invalid(
                    "version_with_task",
                    "version",
                    "a task pins its own script version; change the task to change it",
                ));
            }
            task.new_run(&parameters, Trigger::Api)
        }
        (Some(_), Some(_)) => {
            return Err(runfleet_common::Error::invalid(
                "script_and_task",
                "task",
                "give either script or task, not both",
            ));
        }
        (None, None) => {
            return Err(runfleet_common::Error::invalid(
                "invalid_body",
                "script",
                "give the script to run (or a task)",
            ));
        }
    };
    Ok(NewRun {
        settings: settings.over(new.settings),
        idempotency_key: body.idempotency_key,
        trigger: Trigger::Api,
        ..new
    })
}

/// Body of `POST /runs/batch`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBatch {
    /// 1 to 1000 runs, each like the body of `POST /runs`.
    pub runs: Vec<CreateRun>,
}

/// Answer of `POST /runs/batch`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchAccepted {
    /// The runs' ids, in the order given (for a replayed idempotency key, that run's id).
    pub ids: Vec<uuid::Uuid>,
    /// How many runs are new (the others replayed an idempotency key).
    pub created: usize,
}

/// Submits up to 1000 runs at once: every run is checked first and all are recorded in
/// one transaction, or none is (the error names the item, e.g. `runs[3].script`).
#[utoipa::path(post, path = "/runs/batch", tag = "runs", request_body = CreateBatch, responses(
    (status = 202, description = "all accepted", body = BatchAccepted),
    (status = 404, description = "an item names an unknown task", body = ErrorBody),
    (status = 409, description = "an item reuses an idempotency_key with other inputs", body = ErrorBody),
    (status = 422, description = "an invalid item (nothing was recorded)", body = ErrorBody)))]
pub async fn create_batch(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateBatch>,
) -> ApiResult<(StatusCode, Json<BatchAccepted>)> {
    if body.runs.is_empty() || body.runs.len() > runs::MAX_BATCH {
        return Err(runfleet_common::Error::invalid(
            "invalid_batch",
            "runs",
            format!(
                "a batch holds 1 to {} runs; this one has {}",
                runs::MAX_BATCH,
                body.runs.len()
            ),
        )
        .into());
    }
    let client = state
        .pool
        .get()
        .await
        .map_err(runfleet_common::Error::from)?;
    let mut batch = Vec::with_capacity(body.runs.len());
    for (i, item) in body.runs.into_iter().enumerate() {
        batch.push(
            new_run(&client, item)
                .await
                .map_err(|e| e.within(&format!("runs[{i}]")))?,
        );
    }
    drop(client);
    let submitted = runs::submit_batch(&state.pool, &state.publisher, &state.policy, batch).await?;
    let mut created = 0;
    for s in submitted.iter().filter(|s| s.created) {
        created += 1;
        RUNS_SUBMITTED
            .with_label_values(&[s.run.queue.as_str(), Trigger::Api.as_str()])
            .inc();
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(BatchAccepted {
            ids: submitted.iter().map(|s| s.run.id).collect(),
            created,
        }),
    ))
}

/// One run.
#[utoipa::path(get, path = "/runs/{id}", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "run id")),
    responses((status = 200, body = Run), (status = 404, body = ErrorBody)))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Run>> {
    Ok(Json(runs::get(&state.pool, parse_run_id(&id)?).await?))
}

/// Query of `GET /runs/{id}/logs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Attempt number (default: the latest).
    pub attempt: Option<String>,
}

/// Captured stdout/stderr of one attempt (the latest by default).
#[utoipa::path(get, path = "/runs/{id}/logs", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "run id"), LogsQuery),
    responses((status = 200, body = RunLogs), (status = 404, body = ErrorBody),
        (status = 422, description = "the run has no such attempt", body = ErrorBody)))]
pub async fn logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<LogsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<RunLogs>> {
    let Query(q) = query.map_err(|e| bad_query("query", e.body_text()))?;
    let attempt = match q.attempt.as_deref() {
        None | Some("") => None,
        Some(a) => Some(
            a.parse::<i32>()
                .map_err(|_| bad_query("attempt", format!("attempt '{a}' must be a number")))?,
        ),
    };
    Ok(Json(
        runs::logs(&state.pool, parse_run_id(&id)?, attempt).await?,
    ))
}

/// Every finished attempt of a run (exit code, error, times), oldest first.
#[utoipa::path(get, path = "/runs/{id}/attempts", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "run id")),
    responses((status = 200, body = [Attempt]), (status = 404, body = ErrorBody)))]
pub async fn attempts(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Attempt>>> {
    Ok(Json(runs::attempts(&state.pool, parse_run_id(&id)?).await?))
}

/// Cancels a run. A queued run is cancelled at once and never starts (200); a running
/// run's consumer terminates its process group within about a second (202, then
/// `cancelled`); a finished run cannot be cancelled (409).
#[utoipa::path(post, path = "/runs/{id}/cancel", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "run id")),
    responses(
        (status = 200, description = "cancelled before it started", body = Run),
        (status = 202, description = "running: its consumer is terminating it", body = Run),
        (status = 404, body = ErrorBody),
        (status = 409, description = "already finished", body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Run>)> {
    use runfleet_common::run_state::CancelOutcome;
    let id = parse_run_id(&id)?;
    let outcome = runs::cancel(&state.pool, id).await?;
    let status = match outcome {
        CancelOutcome::Cancelled => StatusCode::OK,
        CancelOutcome::Requested => StatusCode::ACCEPTED,
        CancelOutcome::AlreadyFinal(s) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "run_finished",
                format!(
                    "run {id} already finished as {}; it cannot be cancelled",
                    s.as_str()
                ),
            )
            .with_field("id"));
        }
        CancelOutcome::Unknown => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "run_not_found",
                format!("no run with id {id}"),
            ));
        }
    };
    Ok((status, Json(runs::get(&state.pool, id).await?)))
}

/// Starts a fresh attempt of a finished run (succeeded, failed, timed out, cancelled or
/// dead): 202 with the run queued again; 409 while it has not finished.
#[utoipa::path(post, path = "/runs/{id}/retry", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "run id")),
    responses(
        (status = 202, description = "queued again as its next attempt", body = Run),
        (status = 404, body = ErrorBody),
        (status = 409, description = "not finished yet", body = ErrorBody)))]
pub async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Run>)> {
    let run = runs::retry(&state.pool, &state.publisher, parse_run_id(&id)?).await?;
    Ok((StatusCode::ACCEPTED, Json(run)))
}

/// Query of `GET /runs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only runs in this status.
    pub status: Option<String>,
    /// Only runs of this script.
    pub script: Option<String>,
    /// Page size, 1-500 (default 50).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of runs, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunPage {
    /// The runs.
    pub runs: Vec<Run>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Lists runs, newest first, with keyset pagination.
#[utoipa::path(get, path = "/runs", tag = "runs", params(ListQuery),
    responses((status = 200, body = RunPage), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<RunPage>> {
    let Query(q) = query.map_err(|e| bad_query("query", e.body_text()))?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            let all: Vec<_> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
            bad_query(
                "status",
                format!("unknown status '{s}'; use one of {}", all.join(", ")),
            )
        })?),
    };
    let (limit, cursor) = page(q.limit.as_deref(), q.cursor.as_deref())?;
    let filter = RunFilter {
        statuses: status.into_iter().collect(),
        script: text_filter("script", q.script)?,
        limit,
        cursor,
    };
    let (runs, next) = runs::list(&state.pool, &filter).await?;
    Ok(Json(RunPage {
        runs,
        next_cursor: next.map(|id| id.to_string()),
    }))
}

/// A list's `limit` (1-500, default 50) and `cursor` (a `next_cursor` value) query
/// parameters.
pub fn page(
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<(i64, Option<uuid::Uuid>), ApiError> {
    let limit = match limit {
        None | Some("") => 50,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| {
                bad_query(
                    "limit",
                    format!("limit '{l}' must be a number from 1 to 500"),
                )
            })?,
    };
    let cursor = match cursor {
        None | Some("") => None,
        Some(c) => Some(c.parse().map_err(|_| {
            bad_query("cursor", format!("cursor '{c}' is not a next_cursor value"))
        })?),
    };
    Ok((limit, cursor))
}
