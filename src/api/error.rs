//! The API's one error type: a status, a stable machine code and a message
//! that tells the person at the door (or the script) what to do next.
//! 5xx answers stay generic; their details go to the log.

use crate::domain::error_code::ErrorCode;
use crate::domain::manifest::ManifestError;
use crate::store::StoreError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after_secs: None }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "the box could not complete this and recorded nothing: try again, and if it keeps failing call a supervisor",
        )
    }
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        use StatusCode as S;
        match e {
            StoreError::NoEvent => ApiError::new(S::CONFLICT, ErrorCode::NoEvent, e.to_string()),
            StoreError::UnknownGate { .. } => {
                ApiError::new(S::BAD_REQUEST, ErrorCode::UnknownGate, e.to_string())
            }
            StoreError::NonceConflict(_) => {
                ApiError::new(S::CONFLICT, ErrorCode::NonceReused, e.to_string())
            }
            StoreError::NotFound(_) => {
                ApiError::new(S::NOT_FOUND, ErrorCode::NotFound, e.to_string())
            }
            StoreError::Conflict(_) => {
                ApiError::new(S::CONFLICT, ErrorCode::Conflict, e.to_string())
            }
            StoreError::Manifest(ref m) => {
                let (status, code) = match m {
                    ManifestError::NotNewer { .. } => (S::CONFLICT, ErrorCode::ManifestNotNewer),
                    ManifestError::OtherEvent { .. } => {
                        (S::CONFLICT, ErrorCode::ManifestOtherEvent)
                    }
                    ManifestError::Unsigned | ManifestError::BadSignature => {
                        (S::BAD_REQUEST, ErrorCode::ManifestSignature)
                    }
                    _ => (S::BAD_REQUEST, ErrorCode::ManifestInvalid),
                };
                ApiError::new(status, code, e.to_string())
            }
            StoreError::Refused { code, message } => ApiError::new(S::CONFLICT, code, message),
            StoreError::Invalid { code, message } => ApiError::new(S::BAD_REQUEST, code, message),
            StoreError::NotPrimary => {
                ApiError::new(S::SERVICE_UNAVAILABLE, ErrorCode::NotPrimary, e.to_string())
            }
            StoreError::Closed => ApiError::new(
                S::SERVICE_UNAVAILABLE,
                ErrorCode::ShuttingDown,
                "the box is restarting: retry in a few seconds",
            ),
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        /// Every error answer: `{"error": {"code", "message"}}`.
        #[derive(serde::Serialize)]
        struct Body<'a> {
            error: Detail<'a>,
        }
        #[derive(serde::Serialize)]
        struct Detail<'a> {
            code: &'a str,
            message: &'a str,
        }
        let body =
            Json(Body { error: Detail { code: self.code.as_str(), message: &self.message } });
        let mut resp = (self.status, body).into_response();
        if let Some(secs) = self.retry_after_secs {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
