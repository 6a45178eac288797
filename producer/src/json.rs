//! `ApiJson<T>`: a JSON body extractor whose errors name the offending field
//! (`parameters.limit`, `version`) in the API's error format.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::api_error::ApiError;

/// A JSON request body deserialized into `T`.
pub struct ApiJson<T>(pub T);

/// The field a serde error is about: the error's path, or the name quoted in an
/// "unknown field" / "missing field" message at the top level.
fn field_of(path: &str, message: &str) -> Option<String> {
    let at_top = path.is_empty() || path == "." || path == "?";
    for prefix in ["unknown field `", "missing field `"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let name = rest.split('`').next().unwrap_or_default();
            return Some(if at_top {
                name.to_string()
            } else if path == name || path.ends_with(&format!(".{name}")) {
                path.to_string()
            } else {
                format!("{path}.{name}")
            });
        }
    }
    (!at_top).then(|| path.to_string())
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let mime = v.split(';').next().unwrap_or("").trim();
                mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "request body is larger than the limit (producer.max_body_bytes)",
                )
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "unreadable_body", e.body_text())
            }
        })?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize(de) {
            Ok(value) => Ok(ApiJson(value)),
            Err(err) => {
                let path = err.path().to_string();
                let inner = err.into_inner();
                let message = inner.to_string();
                let (status, code) = if inner.is_syntax() || inner.is_eof() {
                    (StatusCode::BAD_REQUEST, "invalid_json")
                } else {
                    (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
                };
                let mut error = ApiError::new(status, code, message.clone());
                let field = if code == "invalid_json" {
                    None
                } else {
                    field_of(&path, &message)
                };
                if let Some(field) = field {
                    error.message = format!("{field}: {message}");
                    error = error.with_field(field);
                }
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::field_of;

    #[test]
    fn finds_the_field() {
        assert_eq!(
            field_of("version", "invalid type: string"),
            Some("version".into())
        );
        assert_eq!(
            field_of(".", "unknown field `scrpt`, expected one of ..."),
            Some("scrpt".into())
        );
        assert_eq!(
            field_of(".", "missing field `script`"),
            Some("script".into())
        );
        assert_eq!(
            field_of("scrpt", "unknown field `scrpt`, expected one of ..."),
            Some("scrpt".into())
        );
        assert_eq!(
            field_of("parameters", "unknown field `x`"),
            Some("parameters.x".into())
        );
        assert_eq!(field_of(".", "invalid type: map"), None);
        assert_eq!(field_of("?", "key must be a string"), None);
    }
}
