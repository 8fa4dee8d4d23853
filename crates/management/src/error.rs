//! The API's errors, as RabbitMQ's management API returns them (`{"error": ..., "reason": ...}`
//! with the matching HTTP status), so tools written against RabbitMQ show them unchanged. Core
//! errors are mapped to a status here and nowhere else.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use porter_core::error::ErrorKind;
use porter_core::CoreError;
use serde_json::json;

/// An API error: its HTTP status and a human-readable reason.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {reason}")]
pub struct ApiError {
    pub status: StatusCode,
    pub reason: String,
}

impl ApiError {
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        ApiError {
            status,
            reason: reason.into(),
        }
    }

    /// 400: the request can never succeed as sent.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, reason)
    }

    /// 404, RabbitMQ's `Object Not Found`.
    pub fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "Not Found")
    }
}

/// RabbitMQ's `error` field for a status.
fn error_name(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "Object Not Found",
        StatusCode::UNAUTHORIZED => "not_authorized",
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        _ => "error",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": error_name(self.status), "reason": self.reason});
        (self.status, Json(body)).into_response()
    }
}

impl From<CoreError> for ApiError {
    fn from(error: CoreError) -> Self {
        let status = match error.kind() {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Invalid | ErrorKind::OutOfRange | ErrorKind::Corrupt => {
                StatusCode::BAD_REQUEST
            }
            ErrorKind::AlreadyExists | ErrorKind::Conflict => StatusCode::CONFLICT,
            // RabbitMQ answers an inequivalent re-declare or a refused delete with 400 and
            // the channel error's text.
            ErrorKind::Precondition => StatusCode::BAD_REQUEST,
            ErrorKind::Locked | ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Unsupported => StatusCode::NOT_IMPLEMENTED,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::warn!(%error, "management API request failed");
        }
        ApiError::new(status, error.to_string())
    }
}

/// The handlers' result.
pub type ApiResult<T> = Result<T, ApiError>;
