//! Errors of the run and script operations, shaped for the API: each says which input
//! field is wrong (or what is missing) and what to do.

use crate::db::DbError;

/// An operation on runs or scripts that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is well-formed JSON but a value is not acceptable (HTTP 422).
    #[error("{message}")]
    Invalid {
        /// Stable machine-readable code, e.g. `unknown_script`.
        code: &'static str,
        /// The input field at fault, e.g. `parameters.url`.
        field: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// The thing asked for does not exist (HTTP 404).
    #[error("{message}")]
    NotFound {
        /// Stable code, e.g. `run_not_found`.
        code: &'static str,
        /// What was not found.
        message: String,
    },
    /// The request contradicts earlier state (HTTP 409).
    #[error("{message}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// The input field at fault.
        field: String,
        /// What conflicts.
        message: String,
    },
    /// Postgres failed or is unreachable.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Error {
    /// A 422-style error for `field`.
    pub fn invalid(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            code,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl Error {
    /// The same error with its field inside `prefix`, e.g. `script` → `runs[3].script`
    /// (for one item of a batch).
    pub fn within(self, prefix: &str) -> Self {
        match self {
            Error::Invalid {
                code,
                field,
                message,
            } => Error::Invalid {
                code,
                field: format!("{prefix}.{field}"),
                message: format!("{prefix}: {message}"),
            },
            Error::Conflict {
                code,
                field,
                message,
            } => Error::Conflict {
                code,
                field: format!("{prefix}.{field}"),
                message: format!("{prefix}: {message}"),
            },
            Error::NotFound { code, message } => Error::NotFound {
                code,
                message: format!("{prefix}: {message}"),
            },
            other => other,
        }
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Error::Db(DbError::Query(e))
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Error::Db(DbError::Pool(e))
    }
}
