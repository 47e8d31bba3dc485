//! Captures for the creator dashboard: per-creator listings and summary,
//! thumbnails, the duplicate check phones make before uploading, hiding a
//! capture, and upload links for a creator's crew.

use super::auth::Principal;
use super::error::ApiError;
use super::json::{Json, Query};
use super::AppState;
use crate::domain::ids::CreatorId;
use crate::domain::role::Role;
use crate::store::captures::CaptureView;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

fn check_hash(sha: &str) -> Result<(), ApiError> {
    if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "'{sha}' is not a SHA-256 in lower-case hex (64 characters)"
        )))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    #[serde(default)]
    before: Option<i64>,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct CapturePage {
    count: u64,
    bytes: u64,
    latest: Option<String>,
    items: Vec<CaptureView>,
    next_before: Option<i64>,
}

pub async fn by_creator(
    State(st): State<AppState>,
    p: Principal,
    Path(creator): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<CapturePage>, ApiError> {
    p.require(Role::Capture)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1 to 500"));
    }
    let (items, totals) = st.store.creator_captures(CreatorId(creator), q.before, limit).await?;
    let next = if items.len() == limit { items.last().map(|c| c.id) } else { None };
    let (count, bytes, latest) = (totals.count, totals.bytes, totals.latest);
    Ok(Json(CapturePage { count, bytes, latest, items, next_before: next }))
}

pub async fn summary(
    State(st): State<AppState>,
    p: Principal,
    Path(creator): Path<String>,
) -> Result<Json<impl Serialize>, ApiError> {
    p.require_any(&[Role::Capture, Role::Merch])?;
    Ok(Json(st.store.creator_summary(CreatorId(creator)).await?))
}

pub async fn thumbnail(
    State(st): State<AppState>,
    p: Principal,
    Path(sha): Path<String>,
) -> Result<Response, ApiError> {
    p.require(Role::Capture)?;
    check_hash(&sha)?;
    let c = st
        .store
        .capture(sha.clone())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("capture {sha}")))?;
    if p.creator_scope.as_ref().is_some_and(|scope| scope.as_str() != c.creator) {
        return Err(ApiError::not_found(format!("capture {sha}")));
    }
    if c.hidden || c.thumbnail.is_none() {
        return Err(ApiError::not_found(
            "this capture has no thumbnail (hidden, a video or HEIC, or not made yet)",
        ));
    }
    let bytes = tokio::fs::read(st.media.thumbnail(&sha))
        .await
        .map_err(|_| ApiError::not_found("thumbnail file missing"))?;
    Ok((
        [(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "max-age=86400, immutable")],
        bytes,
    )
        .into_response())
}

/// `HEAD /api/v1/captures/{sha256}`: 200 when the box has those bytes.
pub async fn exists(
    State(st): State<AppState>,
    _p: Principal,
    Path(sha): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_hash(&sha)?;
    Ok(if st.store.capture(sha).await?.is_some() { StatusCode::OK } else { StatusCode::NOT_FOUND })
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    /// The hex SHA-256 of each file the uploader may send.
    #[schemars(inner(length(max = 64)))]
    sha256: Vec<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Present {
    present: Vec<String>,
    missing: Vec<String>,
}

/// Which of a phone's files the box already has, so it skips them.
pub async fn check(
    State(st): State<AppState>,
    p: Principal,
    Json(b): Json<CheckBody>,
) -> Result<Json<Present>, ApiError> {
    p.require(Role::Capture)?;
    if b.sha256.len() > 5000 {
        return Err(ApiError::bad_request("at most 5000 hashes per check"));
    }
    let hashes: Vec<String> = b.sha256.into_iter().map(|h| h.to_ascii_lowercase()).collect();
    for h in &hashes {
        check_hash(h)?;
    }
    let present = st.store.captures_present(hashes.clone()).await?;
    let (have, missing): (Vec<String>, Vec<String>) =
        hashes.into_iter().partition(|h| present.contains(h));
    Ok(Json(Present { present: have, missing }))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HideBody {
    #[schemars(length(max = 500))]
    reason: String,
    /// The person in it withdrew consent: the capture also loses its
    /// consent flag and its bytes stay off the cloud if not sent yet.
    #[serde(default)]
    consent_withdrawn: bool,
}

pub async fn hide(
    State(st): State<AppState>,
    p: Principal,
    Path(sha): Path<String>,
    Json(b): Json<HideBody>,
) -> Result<Json<impl Serialize>, ApiError> {
    p.require(Role::Supervisor)?;
    check_hash(&sha)?;
    let c =
        st.store.hide_capture(sha, b.reason, b.consent_withdrawn, p.actor, st.clock.now()).await?;
    Ok(Json(c))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkBody {
    #[schemars(length(max = 64))]
    creator: String,
    /// How long the link works, in hours: 1 to 336 (default 24).
    #[serde(default)]
    #[schemars(range(min = 1, max = 336))]
    hours: Option<i64>,
}

/// An upload link for a creator's crew: a token that can only upload
/// captures for that creator.
/// A creator's upload link: a token for the crew, bound to that creator.
#[derive(Serialize, schemars::JsonSchema)]
pub struct UploadLink {
    creator: CreatorId,
    token: String,
    upload_url: &'static str,
    expires_at: String,
    how: &'static str,
}

pub async fn create_link(
    State(st): State<AppState>,
    p: Principal,
    Json(b): Json<LinkBody>,
) -> Result<(StatusCode, Json<impl Serialize>), ApiError> {
    p.require(Role::Admin)?;
    let hours = b.hours.unwrap_or(24);
    if !(1..=24 * 14).contains(&hours) {
        return Err(ApiError::bad_request("hours must be 1 to 336"));
    }
    let now = st.clock.now();
    let creator = CreatorId(b.creator);
    let token =
        st.store.create_upload_link(creator.clone(), hours * 3_600_000, p.actor, now).await?;
    Ok((
        StatusCode::CREATED,
        Json(UploadLink {
            creator,
            token,
            upload_url: "/api/v1/uploads/",
            expires_at: crate::domain::time::format_rfc3339(now + hours * 3_600_000),
            how: "tus 1.0.0: send Authorization: Bearer <token>; the creator is filled in for you",
        }),
    ))
}
