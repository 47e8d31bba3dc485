//! Cloud sync as staff see it: the status (what is pending, the lag, the
//! last success and error), "sync now", and freezing manifest updates.

use super::auth::Principal;
use super::error::ApiError;
use super::json::Json;
use super::AppState;
use crate::domain::role::Role;
use crate::sync::{self, SyncStatus, FREEZE_SETTING};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// The sync status and the disk it drains: captures wait on the box's
/// disk until they are in the bucket.
#[derive(Serialize)]
pub struct StatusAnswer {
    #[serde(flatten)]
    status: SyncStatus,
    /// Free bytes on the data directory's file system (null if unknown).
    disk_free_bytes: Option<u64>,
}

async fn answer(st: &AppState) -> Result<Json<StatusAnswer>, ApiError> {
    let status = sync::status(&st.store, &st.sync, st.clock.now()).await?;
    Ok(Json(StatusAnswer { status, disk_free_bytes: st.media.free_bytes().ok() }))
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
            "sync_off",
            "cloud sync is off on this box: start it with venuebox serve --sync s3://BUCKET/PREFIX",
        ));
    }
    st.store.sync_request(st.clock.now()).await?;
    st.sync.wake.notify_waiters();
    Ok((StatusCode::ACCEPTED, answer(&st).await?))
}

#[derive(Deserialize)]
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
