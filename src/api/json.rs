//! Body and query extractors whose rejections are `ApiError`s: malformed
//! JSON, a wrong field type or a missing field (in the body or the query
//! string) is a JSON 400 that names the problem; a body over the limit is
//! a 413.

use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, MatchedPath, Request};
use axum::http::StatusCode;
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;

pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
        let method = req.method().clone();
        let bytes = match Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the request body is too large: {}", e.body_text()),
                ))
            }
            Err(e) if super::conn::is_too_slow(&e) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_too_slow",
                    super::conn::BodyTooSlow.to_string(),
                ))
            }
            Err(e) => {
                return Err(ApiError::bad_request(format!(
                    "request body is not valid: {}",
                    e.body_text()
                )))
            }
        };
        // Every documented maximum length is enforced, whatever the handler checks.
        if let Some(route) = route {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                super::policy::check_lengths(&method, &route, &v)?;
            }
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(e) => {
                Err(ApiError::bad_request(format!("request body is not valid: {}", e.body_text())))
            }
        }
    }
}

/// Whether the request says its body is JSON (`application/json` or a
/// `+json` type), as axum's own extractor decides.
fn is_json(h: &HeaderMap) -> bool {
    let Some(ct) = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The query string, parsed; a bad one is a JSON 400 like any other.
pub struct Query<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        if let (Some(route), Some(q)) = (parts.extensions.get::<MatchedPath>(), parts.uri.query()) {
            super::policy::check_query_lengths(&parts.method, route.as_str(), q)?;
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e| ApiError::bad_request(format!("query string: {}", e.body_text())))
    }
}

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}
