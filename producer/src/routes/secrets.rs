//! `/secrets`: named values for scripts (admin). Values go in and never come out: the API
//! lists names and dates only; a task maps secrets into its runs' environment.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use runfleet_common::access::Caller;
use runfleet_common::secrets::{self, SecretInfo};
use serde::Deserialize;

use crate::api_error::{ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::state::AppState;

/// Body of `POST /secrets`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSecret {
    /// Name (`[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 128).
    pub name: String,
    /// The value (write-only; at most 64 KiB).
    pub value: String,
}

/// Stores a secret, or replaces its value.
#[utoipa::path(post, path = "/secrets", tag = "secrets", request_body = PutSecret, responses(
    (status = 200, body = SecretInfo),
    (status = 409, description = "no encryption key configured", body = ErrorBody),
    (status = 422, description = "invalid field", body = ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<PutSecret>,
) -> ApiResult<(StatusCode, Json<SecretInfo>)> {
    let info = secrets::put(
        &state.pool,
        state.keyring.as_deref(),
        &body.name,
        &body.value,
        &caller.name,
    )
    .await?;
    Ok((StatusCode::OK, Json(info)))
}

/// Every secret's name and dates (never a value).
#[utoipa::path(get, path = "/secrets", tag = "secrets", responses((status = 200, body = [SecretInfo])))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<SecretInfo>>> {
    Ok(Json(secrets::list(&state.pool).await?))
}

/// Deletes a secret (runs that need it then fail with a clear error).
#[utoipa::path(delete, path = "/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "Secret name")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    secrets::delete(&state.pool, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
