//! The event as staff devices see it, and loading a signed manifest.

use super::auth::Principal;
use super::error::ApiError;
use super::json::Json;
use super::AppState;
use crate::domain::error_code::ErrorCode;
use crate::domain::manifest::{Event, Gate, Tier};
use crate::domain::role::Role;
use crate::store::ImportOutcome;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

#[derive(Serialize, schemars::JsonSchema)]
pub struct CreatorRef<'a> {
    id: &'a str,
    name: &'a str,
}

/// The loaded event as staff devices need it.
#[derive(Serialize, schemars::JsonSchema)]
pub struct EventSummary<'a> {
    event: &'a Event,
    manifest_version: u64,
    gates: &'a [Gate],
    tiers: &'a [Tier],
    /// Who captures are credited to (id and name only).
    creators: Vec<CreatorRef<'a>>,
    tickets_listed: usize,
    box_id: &'a str,
}

/// The event, its gates and tiers: what a staff device needs to set up.
pub async fn show(
    State(st): State<AppState>,
    _p: Principal,
) -> Result<axum::response::Response, ApiError> {
    let ev = st.store.event().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::NoEvent,
            "no event is loaded on this box: an admin must import the manifest",
        )
    })?;
    let m = &ev.manifest;
    Ok(Json(EventSummary {
        event: &m.event,
        manifest_version: m.version,
        gates: &m.gates,
        tiers: &m.tiers,
        creators: m
            .creators
            .iter()
            .map(|c| CreatorRef { id: c.id.as_str(), name: &c.name })
            .collect(),
        tickets_listed: m.tickets.len(),
        box_id: st.store.box_id(),
    })
    .into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// The manifest's exact JSON text, as signed.
    #[schemars(length(max = 33_554_432))]
    manifest: String,
    /// Base64 Ed25519 signature over that text (the `.sig` file).
    #[schemars(length(max = 512))]
    signature: String,
}

pub async fn import(
    State(st): State<AppState>,
    p: Principal,
    Json(req): Json<ImportRequest>,
) -> Result<Json<ImportOutcome>, ApiError> {
    p.require(Role::Admin)?;
    let outcome = st
        .store
        .import_manifest(
            req.manifest.into_bytes(),
            Some(req.signature),
            st.config.pinned_keys.clone(),
            p.actor,
            st.clock.now(),
        )
        .await?;
    tracing::info!(?outcome, "manifest import");
    Ok(Json(outcome))
}
