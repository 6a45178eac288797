//! HTTP routes, one module per resource, and [`table`]: every route, its role and its
//! handler, declared once.

pub mod compat;
pub mod events;
pub mod fleet;
pub mod health;
pub mod runs;
pub mod schedules;
pub mod scripts;
pub mod secrets;
pub mod table;
pub mod tasks;
pub mod tokens;

use axum::http::StatusCode;

use crate::api_error::ApiError;

/// Parses a run id from the path, naming the field on error.
pub fn parse_run_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    parse_id(raw, "run")
}

/// Parses the id of a `what` (run, schedule) from the path, naming the field on error.
pub fn parse_id(raw: &str, what: &str) -> Result<uuid::Uuid, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            format!("'{raw}' is not a {what} id (a UUID)"),
        )
        .with_field("id")
    })
}

/// A text filter from the query string (`?script=`, `?task=`, `?actor=`): None when absent
/// or empty. A NUL, which Postgres cannot compare, is a 400 naming `field`.
pub fn text_filter(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.contains('\0') => Err(bad_query(
            field,
            format!("{field} must not contain a NUL character"),
        )),
        Some(v) if v.is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// A 400 for a bad query-string parameter `field`.
pub fn bad_query(field: &str, message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message).with_field(field)
}
