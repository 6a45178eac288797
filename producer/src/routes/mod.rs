//! HTTP routes, one module per resource.

pub mod compat;
pub mod health;
pub mod runs;
pub mod scripts;

use axum::http::StatusCode;

use crate::api_error::ApiError;

/// Parses a run id from the path, naming the field on error.
pub fn parse_run_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            format!("'{raw}' is not a run id (a UUID)"),
        )
        .with_field("id")
    })
}
