//! The API's one error type: a status, a stable machine code and a message
//! that tells the person at the door (or the script) what to do next.
//! 5xx answers stay generic; their details go to the log.

use crate::domain::manifest::ManifestError;
use crate::store::StoreError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after_secs: None }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
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
            StoreError::NoEvent => ApiError::new(S::CONFLICT, "no_event", e.to_string()),
            StoreError::UnknownGate { .. } => {
                ApiError::new(S::BAD_REQUEST, "unknown_gate", e.to_string())
            }
            StoreError::NonceConflict(_) => {
                ApiError::new(S::CONFLICT, "nonce_reused", e.to_string())
            }
            StoreError::NotFound(_) => ApiError::new(S::NOT_FOUND, "not_found", e.to_string()),
            StoreError::Conflict(_) => ApiError::new(S::CONFLICT, "conflict", e.to_string()),
            StoreError::Manifest(ref m) => {
                let (status, code) = match m {
                    ManifestError::NotNewer { .. } => (S::CONFLICT, "manifest_not_newer"),
                    ManifestError::OtherEvent { .. } => (S::CONFLICT, "manifest_other_event"),
                    ManifestError::Unsigned | ManifestError::BadSignature => {
                        (S::BAD_REQUEST, "manifest_signature")
                    }
                    _ => (S::BAD_REQUEST, "manifest_invalid"),
                };
                ApiError::new(status, code, e.to_string())
            }
            StoreError::Refused { code, message } => ApiError::new(S::CONFLICT, code, message),
            StoreError::Invalid { code, message } => ApiError::new(S::BAD_REQUEST, code, message),
            StoreError::Closed => ApiError::new(
                S::SERVICE_UNAVAILABLE,
                "shutting_down",
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
        let body = Json(Body { error: Detail { code: self.code, message: &self.message } });
        let mut resp = (self.status, body).into_response();
        if let Some(secs) = self.retry_after_secs {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
