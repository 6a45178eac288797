//! `/tokens`: API tokens (admin only), and `/audit`, the log of changes.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use runfleet_common::access::{self, ApiToken, Caller, CreatedToken, Role};
use runfleet_common::audit::{self, AuditEntry};
use serde::Deserialize;

use crate::api_error::{ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::routes::{bad_query, parse_id, text_filter};
use crate::state::AppState;

/// Body of `POST /tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Unique name, e.g. `ci-deploy` (`[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 128).
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    pub role: Role,
}

/// Creates a token; the answer holds the token itself, shown only this once.
#[utoipa::path(post, path = "/tokens", tag = "tokens", request_body = CreateToken, responses(
    (status = 201, body = CreatedToken),
    (status = 409, description = "name in use", body = ErrorBody),
    (status = 422, description = "invalid field", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let created = access::create(&state.pool, &body.name, body.role, &caller.name).await?;
    tracing::info!(
        name = created.info.name,
        role = body.role.as_str(),
        by = caller.name,
        "token created"
    );
    Ok((StatusCode::CREATED, Json(created)))
}

/// Every token (never the tokens themselves).
#[utoipa::path(get, path = "/tokens", tag = "tokens", responses((status = 200, body = [ApiToken])))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<ApiToken>>> {
    Ok(Json(access::list(&state.pool).await?))
}

/// Revokes a token at once.
#[utoipa::path(delete, path = "/tokens/{id}", tag = "tokens",
    params(("id" = uuid::Uuid, Path, description = "Token id")),
    responses((status = 200, body = ApiToken), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiToken>> {
    let id = parse_id(&id, "token")?;
    Ok(Json(access::revoke(&state.pool, id).await?))
}

/// Query of `GET /audit`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// At most this many entries (1-1000, default 100).
    pub limit: Option<i64>,
    /// Only entries older than this id (paging).
    pub before: Option<i64>,
    /// Only this caller's entries (token name).
    pub actor: Option<String>,
}

/// The audit log, newest first: who changed, triggered or cancelled what.
#[utoipa::path(get, path = "/audit", tag = "tokens", params(AuditQuery),
    responses((status = 200, body = [AuditEntry]), (status = 400, body = ErrorBody)))]
pub async fn audit_log(
    State(state): State<AppState>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    let Query(q) = query.map_err(|e| bad_query("query", e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(bad_query(
            "limit",
            format!("limit is {limit}; give 1 to 1000"),
        ));
    }
    Ok(Json(
        audit::list(
            &state.pool,
            limit,
            q.before,
            text_filter("actor", q.actor)?.as_deref(),
        )
        .await?,
    ))
}
