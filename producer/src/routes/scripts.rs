//! `/scripts`: register immutable versions, list, read.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use runfleet_common::scripts::{self, NewScript, ScriptDetail, ScriptSummary, ScriptVersion};
use serde::Deserialize;

use crate::api_error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::state::AppState;

/// Body of `POST /scripts`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateScript {
    /// Name, e.g. `fetch_rss.py`: `[A-Za-z0-9][A-Za-z0-9_.-]*`, no `..`, at most 128.
    pub name: String,
    /// Source text.
    pub content: String,
    /// `python` or `shell`; from the extension (`.py`, `.sh`) when absent.
    pub language: Option<String>,
    /// pip requirement lines, e.g. `["requests>=2"]`.
    pub requirements: Option<Vec<String>>,
}

/// Registers a script version; the same content and requirements return the existing one.
#[utoipa::path(post, path = "/scripts", tag = "scripts", request_body = CreateScript, responses(
    (status = 201, description = "new version", body = ScriptVersion),
    (status = 200, description = "same content already registered", body = ScriptVersion),
    (status = 422, description = "invalid field", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateScript>,
) -> ApiResult<(StatusCode, Json<ScriptVersion>)> {
    let (version, created) = scripts::register(
        &state.pool,
        NewScript {
            name: body.name,
            content: body.content,
            language: body.language,
            requirements: body.requirements.unwrap_or_default(),
        },
        state.config.producer.max_script_bytes,
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(version)))
}

/// Every script with its latest version.
#[utoipa::path(get, path = "/scripts", tag = "scripts", responses((status = 200, body = [ScriptSummary])))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<ScriptSummary>>> {
    Ok(Json(scripts::list(&state.pool).await?))
}

/// A script's latest version in full and its version history.
#[utoipa::path(get, path = "/scripts/{name}", tag = "scripts",
    params(("name" = String, Path, description = "script name")),
    responses((status = 200, body = ScriptDetail), (status = 404, body = ErrorBody)))]
pub async fn detail(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<ScriptDetail>> {
    Ok(Json(scripts::detail(&state.pool, &name).await?))
}

/// One version of a script.
#[utoipa::path(get, path = "/scripts/{name}/versions/{version}", tag = "scripts",
    params(("name" = String, Path, description = "script name"),
           ("version" = i32, Path, description = "version number")),
    responses((status = 200, body = ScriptVersion), (status = 404, body = ErrorBody)))]
pub async fn version(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<ScriptVersion>> {
    let version: i32 = version.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_version",
            format!("'{version}' is not a version number"),
        )
        .with_field("version")
    })?;
    Ok(Json(scripts::version(&state.pool, &name, version).await?))
}
