//! Operations endpoints: health, Prometheus metrics, the OpenAPI document,
//! and the 404 for everything else.

use super::error::ApiError;
use super::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;

/// The OpenAPI 3.1 description of every route in `router()`; a test
/// checks the two agree.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What `/healthz` answers: the box, its key, its event, its version.
#[derive(serde::Serialize)]
pub struct Health {
    status: &'static str,
    box_id: String,
    box_public_key: String,
    event: Option<String>,
    manifest_version: Option<u64>,
    version: &'static str,
}

pub async fn healthz(State(st): State<AppState>) -> Json<Health> {
    let ev = st.store.event();
    Json(Health {
        status: "ok",
        box_id: st.store.box_id().to_string(),
        box_public_key: st.store.box_public_key(),
        event: ev.as_ref().map(|e| e.event_id().to_string()),
        manifest_version: ev.as_ref().map(|e| e.manifest.version),
        version: env!("CARGO_PKG_VERSION"),
    })
}

pub async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    let mut text = st.metrics.render();
    if let Ok(s) = crate::sync::status(&st.store, &st.sync, st.clock.now()).await {
        text += &crate::sync::render_metrics(&s);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint: see /api/v1/openapi.json")
}
