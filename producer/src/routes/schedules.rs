//! `/schedules`: tasks on cron schedules, pause/resume/trigger, and fire-time previews.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use runfleet_common::runs::Run;
use runfleet_common::schedules::{self, MAX_PREVIEW, Overlap, Schedule, ScheduleInput};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::api_error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::routes::{bad_query, parse_id, text_filter};
use crate::state::AppState;

/// The settings of a schedule (`POST /schedules`, `PUT /schedules/{id}`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    /// The task to run.
    pub task: String,
    /// Cron expression: `min hour dom month dow`, or 6 fields with seconds first.
    pub cron: String,
    /// IANA timezone, e.g. `Asia/Shanghai` (default `UTC`).
    pub timezone: Option<String>,
    /// After downtime: a run per missed fire (true) or only the latest (false, default).
    pub catchup: Option<bool>,
    /// Most runs one catch-up creates (1-10000, default 100).
    pub catchup_limit: Option<i64>,
    /// `allow` (default) or `skip` while the previous run is still queued/running.
    pub overlap: Option<Overlap>,
    /// No fires before this time (RFC 3339).
    pub start_at: Option<DateTime<Utc>>,
    /// No fires after this time (RFC 3339).
    pub end_at: Option<DateTime<Utc>>,
    /// Create it paused.
    pub paused: Option<bool>,
    /// Parameters laid over the task's.
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Map<String, Value>>,
}

impl ScheduleBody {
    fn into_input(self) -> ScheduleInput {
        ScheduleInput {
            task: self.task,
            cron: self.cron,
            timezone: self.timezone,
            catchup: self.catchup.unwrap_or(false),
            catchup_limit: self.catchup_limit,
            overlap: self.overlap.unwrap_or_default(),
            start_at: self.start_at,
            end_at: self.end_at,
            paused: self.paused.unwrap_or(false),
            parameters: self.parameters.unwrap_or_default(),
        }
    }
}

/// Creates a schedule.
#[utoipa::path(post, path = "/schedules", tag = "schedules", request_body = ScheduleBody,
    responses((status = 201, body = Schedule),
        (status = 422, description = "invalid field (cron, timezone, task, …)", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ScheduleBody>,
) -> ApiResult<(StatusCode, Json<Schedule>)> {
    let limit = state.policy.max_parameters_bytes;
    let schedule = schedules::create(&state.pool, body.into_input(), limit).await?;
    Ok((StatusCode::CREATED, Json(schedule)))
}

/// Query of `GET /schedules`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only the schedules of this task.
    pub task: Option<String>,
}

/// Every schedule (oldest first), with its next fire time.
#[utoipa::path(get, path = "/schedules", tag = "schedules", params(ListQuery),
    responses((status = 200, body = [Schedule])))]
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<Schedule>>> {
    let Query(q) = query.map_err(|e| bad_query("query", e.body_text()))?;
    Ok(Json(
        schedules::list(&state.pool, text_filter("task", q.task)?.as_deref()).await?,
    ))
}

/// One schedule.
#[utoipa::path(get, path = "/schedules/{id}", tag = "schedules",
    params(("id" = uuid::Uuid, Path, description = "schedule id")),
    responses((status = 200, body = Schedule), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Schedule>> {
    Ok(Json(
        schedules::get(&state.pool, parse_id(&id, "schedule")?).await?,
    ))
}

/// Replaces a schedule's settings; the next fire is computed afresh from now.
#[utoipa::path(put, path = "/schedules/{id}", tag = "schedules", request_body = ScheduleBody,
    params(("id" = uuid::Uuid, Path, description = "schedule id")),
    responses((status = 200, body = Schedule), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn replace(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ScheduleBody>,
) -> ApiResult<Json<Schedule>> {
    let id = parse_id(&id, "schedule")?;
    let limit = state.policy.max_parameters_bytes;
    Ok(Json(
        schedules::replace(&state.pool, id, body.into_input(), limit).await?,
    ))
}

/// Deletes a schedule (its runs stay).
#[utoipa::path(delete, path = "/schedules/{id}", tag = "schedules",
    params(("id" = uuid::Uuid, Path, description = "schedule id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    schedules::delete(&state.pool, parse_id(&id, "schedule")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pauses a schedule: no fires until resumed.
#[utoipa::path(post, path = "/schedules/{id}/pause", tag = "schedules",
    params(("id" = uuid::Uuid, Path, description = "schedule id")),
    responses((status = 200, body = Schedule), (status = 404, body = ErrorBody)))]
pub async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Schedule>> {
    let id = parse_id(&id, "schedule")?;
    Ok(Json(schedules::set_paused(&state.pool, id, true).await?))
}

/// Resumes a schedule from its next fire after now (the paused stretch is not back-filled).
#[utoipa::path(post, path = "/schedules/{id}/resume", tag = "schedules",
    params(("id" = uuid::Uuid, Path, description = "schedule id")),
    responses((status = 200, body = Schedule), (status = 404, body = ErrorBody)))]
pub async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Schedule>> {
    let id = parse_id(&id, "schedule")?;
    Ok(Json(schedules::set_paused(&state.pool, id, false).await?))
}

/// Runs the schedule's task once now, whatever the cron says (paused or not).
#[utoipa::path(post, path = "/schedules/{id}/trigger", tag = "schedules",
    params(("id" = uuid::Uuid, Path, description = "schedule id")),
    responses((status = 202, body = Run), (status = 404, body = ErrorBody)))]
pub async fn trigger(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Run>)> {
    let id = parse_id(&id, "schedule")?;
    let run = schedules::trigger(&state.pool, &state.publisher, id).await?;
    runfleet_common::runs::RUNS_SUBMITTED
        .with_label_values(&[run.queue.as_str(), run.trigger.as_str()])
        .inc();
    Ok((StatusCode::ACCEPTED, Json(run)))
}

/// Upcoming fire times.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FireTimes {
    /// The timezone the times are given in.
    pub timezone: String,
    /// RFC 3339 times with that zone's offset, earliest first.
    pub next: Vec<String>,
}

/// Query of `GET /schedules/{id}/next`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NextQuery {
    /// How many (1-1000, default 10).
    pub count: Option<String>,
}

fn parse_count(raw: Option<&str>) -> Result<usize, ApiError> {
    match raw {
        None | Some("") => Ok(10),
        Some(c) => match c.parse::<usize>() {
            Ok(n) if (1..=MAX_PREVIEW).contains(&n) => Ok(n),
            _ => Err(bad_query(
                "count",
                format!("count '{c}' must be a number from 1 to {MAX_PREVIEW}"),
            )),
        },
    }
}

/// The schedule's next fire times (within its start/end window).
#[utoipa::path(get, path = "/schedules/{id}/next", tag = "schedules",
    params(("id" = uuid::Uuid, Path, description = "schedule id"), NextQuery),
    responses((status = 200, body = FireTimes), (status = 404, body = ErrorBody)))]
pub async fn next(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<NextQuery>, QueryRejection>,
) -> ApiResult<Json<FireTimes>> {
    let Query(q) = query.map_err(|e| bad_query("query", e.body_text()))?;
    let count = parse_count(q.count.as_deref())?;
    let (schedule, times) =
        schedules::upcoming(&state.pool, parse_id(&id, "schedule")?, count).await?;
    Ok(Json(FireTimes {
        timezone: schedule.timezone,
        next: times.iter().map(|t| t.to_rfc3339()).collect(),
    }))
}

/// Query of `GET /schedules/preview`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    /// Cron expression.
    pub cron: Option<String>,
    /// IANA timezone (default UTC).
    pub timezone: Option<String>,
    /// How many (1-1000, default 10).
    pub count: Option<String>,
    /// Start after this time (RFC 3339; default now).
    pub after: Option<String>,
}

/// Fire times of a cron expression in a timezone, without creating a schedule.
#[utoipa::path(get, path = "/schedules/preview", tag = "schedules", params(PreviewQuery),
    responses((status = 200, body = FireTimes), (status = 400, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn preview(
    query: Result<Query<PreviewQuery>, QueryRejection>,
) -> ApiResult<Json<FireTimes>> {
    let Query(q) = query.map_err(|e| bad_query("query", e.body_text()))?;
    let Some(cron) = q.cron.as_deref().filter(|c| !c.trim().is_empty()) else {
        return Err(bad_query("cron", "give a cron expression in ?cron=".into()));
    };
    let timezone = q.timezone.as_deref().unwrap_or("UTC");
    let count = parse_count(q.count.as_deref())?;
    let after = match q.after.as_deref() {
        None | Some("") => Utc::now(),
        Some(a) => DateTime::parse_from_rfc3339(a)
            .map_err(|e| {
                bad_query(
                    "after",
                    format!(
                        "after '{a}' is not an RFC 3339 time ({e}), e.g. 2026-03-08T00:00:00-05:00"
                    ),
                )
            })?
            .with_timezone(&Utc),
    };
    let parsed = schedules::parse_cron(cron, timezone)?;
    Ok(Json(FireTimes {
        timezone: timezone.to_string(),
        next: parsed
            .upcoming(after, count)
            .iter()
            .map(|t| t.to_rfc3339())
            .collect(),
    }))
}
