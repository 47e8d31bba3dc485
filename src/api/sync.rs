//! Cloud sync as staff see it: the status (what is pending, the lag, the
//! last success and error), "sync now", and freezing manifest updates.

use super::auth::Principal;
use super::error::ApiError;
use super::json::Json;
use super::AppState;
use crate::domain::error_code::ErrorCode;
use crate::domain::role::Role;
use crate::sync::{self, SyncStatus, FREEZE_SETTING};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// The sync status and the disk it drains: captures wait on the box's
/// disk until they are in the bucket.
#[derive(Serialize, schemars::JsonSchema)]
#[schemars(rename = "SyncStatus")]
pub struct StatusAnswer {
    #[serde(flatten)]
    status: SyncStatus,
    /// Free bytes on the data directory's file system (null if unknown).
    disk_free_bytes: Option<u64>,
    /// The check-ins going back to pretix (null: the event is not pretix's).
    pretix: Option<PretixAnswer>,
}

/// What waits to go back to pretix, and how the last tries went.
#[derive(Serialize, schemars::JsonSchema)]
pub struct PretixAnswer {
    url: String,
    organizer: String,
    event: String,
    /// Whether the box has a token, so it sends and re-imports at all.
    sending: bool,
    /// Why check-ins are not going back (the link, not one scan: the
    /// token, its permission, pretix out of reach) and what to do; null
    /// while they go. The scans wait on the box; none is skipped.
    paused: Option<String>,
    paused_since: Option<String>,
    /// Whether someone must mend the token or a setting (else: wait).
    needs_fixing: bool,
    /// The last scan handled (sent, refused, or not for pretix).
    sent_through: i64,
    /// Scans after it, not yet handled.
    waiting_scans: i64,
    /// Scans pretix declined (kept on the box).
    refused_scans: i64,
    /// Check-ins undone at the door that pretix would not annul (it still
    /// counts those guests in).
    refused_annulments: i64,
    /// The latest of both, newest first: what pretix said.
    refusals: Vec<RefusalAnswer>,
    last_import_at: Option<String>,
    last_import: Option<String>,
    last_sent_at: Option<String>,
    last_error: Option<String>,
    last_error_at: Option<String>,
}

/// One scan pretix declined, or one annulment it refused.
#[derive(Serialize, schemars::JsonSchema)]
pub struct RefusalAnswer {
    scan_id: i64,
    /// "check-in" or "annulment".
    kind: String,
    detail: String,
    at: String,
}

async fn pretix(st: &AppState) -> Result<Option<PretixAnswer>, ApiError> {
    let Some(link) = st.store.event().and_then(|e| e.manifest.pretix.clone()) else {
        return Ok(None);
    };
    let counts = st.store.pretix_counts(20).await?;
    let s = st.pretix.status();
    let time = |t: Option<i64>| t.map(crate::domain::time::format_rfc3339);
    Ok(Some(PretixAnswer {
        url: link.url,
        organizer: link.organizer,
        event: link.event,
        sending: st.pretix.setup.is_some(),
        paused: s.paused,
        paused_since: time(s.paused_since),
        needs_fixing: s.needs_fixing,
        sent_through: counts.sent_through,
        waiting_scans: counts.waiting,
        refused_scans: counts.refused,
        refused_annulments: counts.annul_refused,
        refusals: counts
            .latest
            .into_iter()
            .map(|r| RefusalAnswer {
                scan_id: r.scan_id,
                kind: r.kind,
                detail: r.detail,
                at: crate::domain::time::format_rfc3339(r.at),
            })
            .collect(),
        last_import_at: time(s.last_import_at),
        last_import: s.last_import,
        last_sent_at: time(s.last_sent_at),
        last_error: s.last_error,
        last_error_at: time(s.last_error_at),
    }))
}

async fn answer(st: &AppState) -> Result<Json<StatusAnswer>, ApiError> {
    let status = sync::status(&st.store, &st.sync, st.clock.now()).await?;
    let pretix = pretix(st).await?;
    Ok(Json(StatusAnswer { status, disk_free_bytes: st.media.free_bytes().ok(), pretix }))
}

pub async fn status(
    State(st): State<AppState>,
    p: Principal,
) -> Result<Json<StatusAnswer>, ApiError> {
    p.require(Role::Supervisor)?;
    answer(&st).await
}

/// Wakes the loop now, and lifts a permanent-error pause so a fixed
/// configuration is tried at once.
pub async fn now(
    State(st): State<AppState>,
    p: Principal,
) -> Result<(StatusCode, Json<StatusAnswer>), ApiError> {
    p.require(Role::Supervisor)?;
    if st.sync.target.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::SyncOff,
            "cloud sync is off on this box: start it with venuebox serve --sync s3://BUCKET/PREFIX",
        ));
    }
    st.store.sync_request(st.clock.now()).await?;
    st.sync.wake.notify_waiters();
    Ok((StatusCode::ACCEPTED, answer(&st).await?))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FreezeRequest {
    pub frozen: bool,
}

pub async fn freeze(
    State(st): State<AppState>,
    p: Principal,
    Json(req): Json<FreezeRequest>,
) -> Result<Json<StatusAnswer>, ApiError> {
    p.require(Role::Admin)?;
    st.store
        .set_setting(FREEZE_SETTING, req.frozen.to_string(), p.actor.clone(), st.clock.now())
        .await?;
    answer(&st).await
}
