//! The Kubeflow error envelope and the mapping of every internal error to it.
//!
//! Kubeflow routes answer `{"code": "<HTTP status text>", "message": "…"}`; a 422 keeps the code text
//! `"Bad Request"`, as upstream does. Server errors are logged once here with their full chain and answered
//! with a generic message, so no internals leak.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::filter::FilterError;
use crate::governance::GovernanceError;
use crate::pagination::TokenError;
use crate::registry::RegistryError;

/// An error answered by a registry route.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// A required field missing or empty on create (422, upstream's exact text).
    pub fn required(field: &str) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("required field '{field}' is zero value."))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = match self.status {
            StatusCode::UNPROCESSABLE_ENTITY => "Bad Request",
            status => status.canonical_reason().unwrap_or("Error"),
        };
        let body = serde_json::json!({ "code": code, "message": self.message });
        (self.status, Json(body)).into_response()
    }
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::NotFound(message) => ApiError::new(StatusCode::NOT_FOUND, message),
            RegistryError::Conflict(message) => ApiError::new(StatusCode::CONFLICT, message),
            RegistryError::Invalid(message) => ApiError::bad_request(message),
            RegistryError::PreconditionFailed(message) => ApiError::new(StatusCode::PRECONDITION_FAILED, message),
            internal => {
                tracing::error!(error = %internal, detail = ?internal, "registry request failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
            }
        }
    }
}

impl From<GovernanceError> for ApiError {
    fn from(error: GovernanceError) -> Self {
        match error {
            GovernanceError::NotFound(message) => ApiError::not_found(message),
            GovernanceError::Invalid(message) => ApiError::bad_request(message),
            GovernanceError::Illegal(message) => ApiError::new(StatusCode::CONFLICT, message),
            GovernanceError::Forbidden(message) => ApiError::new(StatusCode::FORBIDDEN, message),
            invalid @ (GovernanceError::InvalidPolicies(_) | GovernanceError::Bundle(_)) => {
                ApiError::bad_request(invalid.to_string())
            }
            refused @ GovernanceError::Refused { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, refused.to_string())
            }
            GovernanceError::Registry(error) => ApiError::from(error),
            GovernanceError::Db(error) => {
                tracing::error!(error = %error, detail = ?error, "governance request failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
            }
        }
    }
}

impl From<FilterError> for ApiError {
    fn from(error: FilterError) -> Self {
        ApiError::bad_request(error.to_string())
    }
}

impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> Self {
        ApiError::bad_request(error.to_string())
    }
}
