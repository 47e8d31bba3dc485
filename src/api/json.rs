//! Body and query extractors whose rejections are `ApiError`s: malformed
//! JSON, a wrong field type or a missing field (in the body or the query
//! string) is a JSON 400 that names the problem; a body over the limit is
//! a 413.

use super::error::ApiError;
use crate::domain::error_code::ErrorCode;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, MatchedPath, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
        let method = req.method().clone();
        // Parsed once, as a document: its lengths are checked against the
        // OpenAPI schema, then it becomes the handler's type.
        let value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(v)) => v,
            Err(JsonRejection::MissingJsonContentType(_)) => {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    ErrorCode::UnsupportedMediaType,
                    "send the body as JSON with Content-Type: application/json",
                ))
            }
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::BodyTooLarge,
                    format!("the request body is too large: {}", e.body_text()),
                ))
            }
            Err(e) if super::conn::is_too_slow(&e) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    ErrorCode::BodyTooSlow,
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
            super::policy::check_lengths(&method, &route, &value)?;
        }
        serde_json::from_value(value)
            .map(Json)
            .map_err(|e| ApiError::bad_request(format!("request body is not valid: {e}")))
    }
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
