//! The API's error response: `{"error": {"code", "message", "field"}}` with a 4xx status
//! (503 when a dependency is down), never a bare 500 page.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use runfleet_common::db::DbError;
use serde::Serialize;

/// An error as the API returns it.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: String,
    /// What went wrong and what to do.
    pub message: String,
    /// The request field at fault, if one is.
    pub field: Option<String>,
}

/// The JSON body of an error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Details of an error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable code, e.g. `unknown_script`, `invalid_body`, `payload_too_large`.
    pub code: String,
    /// Human-readable explanation with what to do.
    pub message: String,
    /// The request field at fault (dotted path), when there is one.
    pub field: Option<String>,
}

impl ApiError {
    /// An error with no field.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            field: None,
        }
    }

    /// Names the request field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<runfleet_common::Error> for ApiError {
    fn from(e: runfleet_common::Error) -> Self {
        use runfleet_common::Error;
        match e {
            Error::Invalid {
                code,
                field,
                message,
            } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).with_field(field),
            Error::NotFound { code, message } => {
                ApiError::new(StatusCode::NOT_FOUND, code, message)
            }
            Error::Conflict {
                code,
                field,
                message,
            } => ApiError::new(StatusCode::CONFLICT, code, message).with_field(field),
            Error::Db(DbError::Pool(e)) => {
                tracing::warn!(error = %e, "Postgres unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "Postgres is unreachable; nothing was changed. Retry shortly.",
                )
            }
            Error::Db(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, "Postgres connection lost");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the connection to Postgres dropped mid-request, so it may or may not have been applied; retry shortly (a GET shows whether it was).",
                )
            }
            Error::Db(e) => {
                tracing::error!(error = %e, "database error");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_error",
                    "a database operation failed; nothing was changed. Retry, and see the producer's logs if it persists.",
                )
            }
        }
    }
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
