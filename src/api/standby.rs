//! The pair of boxes (ARCHITECTURE.md, "Two boxes"): where this box
//! stands (role, epoch, the link, what a fenced primary took alone), the
//! one-time code that enrols a standby, the enrolment itself, and the
//! promotion of a standby when the primary is gone.

use super::auth::Principal;
use super::error::ApiError;
use super::json::Json;
use super::session::client_addr;
use super::signin::Who;
use super::AppState;
use crate::domain::error_code::ErrorCode;
use crate::domain::role::Role;
use crate::domain::time::format_rfc3339;
use crate::metrics::SignInFailure;
use crate::replication::join::{self, JoinBundle, JoinCode, JoinRequest};
use crate::replication::LinkStatus;
use crate::store::escrow::EscrowLine;
use crate::store::replica::ReplicaState;
use crate::store::takeover::TakeoverEntry;
use axum::extract::State;
use axum::http::{Extensions, StatusCode};
use serde::Serialize;

#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct PairView {
    #[serde(flatten)]
    state: ReplicaState,
    link: LinkStatus,
    /// What an old primary took alone, newest first.
    takeover_report: Vec<TakeoverEntry>,
    /// Units and seats lent to satellites, to sell while apart.
    escrow: Vec<EscrowLine>,
}

pub async fn status(
    State(st): State<AppState>,
    p: Principal,
) -> Result<Json<impl Serialize>, ApiError> {
    p.require(Role::Supervisor)?;
    Ok(Json(PairView {
        state: st.store.replica_state().await?,
        link: st.replication.status(),
        takeover_report: st.store.takeover_report().await?,
        escrow: st.store.escrow().await?,
    }))
}

fn tls_failed(e: crate::net::tls::TlsError) -> ApiError {
    tracing::error!(error = %e, "the box's certificate authority is unreadable");
    ApiError::internal()
}

/// The CA fingerprint a joining box pins.
fn fingerprint(st: &AppState) -> Result<String, ApiError> {
    if let Some(fp) = st.lan.as_ref().and_then(|l| l.fingerprint()) {
        return Ok(fp);
    }
    let ca = crate::net::tls::load_or_create_ca(&st.replication.config.data_dir, st.store.box_id())
        .map_err(tls_failed)?;
    Ok(ca.fingerprint())
}

fn link_port(st: &AppState) -> Result<u16, ApiError> {
    st.replication.status().listen_port.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::LinkOff,
            "this box does not listen for a standby: start it with --link-listen (the package's configuration has it on)",
        )
    })
}

pub async fn create_code(
    State(st): State<AppState>,
    p: Principal,
) -> Result<(StatusCode, Json<impl Serialize>), ApiError> {
    p.require(Role::Admin)?;
    link_port(&st)?;
    let (code, expires) = st.store.create_join_code(st.clock.now(), join::JOIN_CODE_TTL_MS).await?;
    let fingerprint = fingerprint(&st)?;
    let url = st
        .lan
        .as_ref()
        .and_then(|l| l.ports().0.and_then(|port| l.staff_urls(port).into_iter().next()));
    tracing::info!(by = %p.actor.name, "standby join code made");
    Ok((
        StatusCode::CREATED,
        Json(JoinCode {
            command: url.map(|u| join::command(u.trim_end_matches('/'), &code, &fingerprint)),
            code,
            expires_at: format_rfc3339(expires),
            fingerprint,
        }),
    ))
}

pub async fn join(
    State(st): State<AppState>,
    ext: Extensions,
    Json(b): Json<JoinRequest>,
) -> Result<Json<impl Serialize>, ApiError> {
    let result = join_checked(&st, &ext, b).await;
    super::session::slow_refusal(&st, result).await
}

async fn join_checked(
    st: &AppState,
    ext: &Extensions,
    b: JoinRequest,
) -> Result<Json<JoinBundle>, ApiError> {
    let link = link_port(st)?;
    let addr = client_addr(ext);
    // Join codes are guessed like PINs, so they are counted like PINs.
    let attempt = st
        .auth
        .guard
        .begin(Who { addr, ..Who::default() }, &[], st.clock.now())
        .inspect_err(|_| st.metrics.signin_failure(SignInFailure::Throttled))?;
    if b.code.len() > 64 || !st.store.take_join_code(&b.code, st.clock.now()).await? {
        let _ = attempt.failed(st.clock.now());
        st.metrics.signin_failure(SignInFailure::BadPairingCode);
        tracing::warn!(from = ?addr, "standby join refused: unknown, used or expired code");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::JoinCodeInvalid,
            "this standby code is unknown, used or expired: make a new one on the primary (admin screen, or venuebox pair --standby)",
        ));
    }
    attempt.succeeded(&b.node);
    let data_dir = &st.replication.config.data_dir;
    let identity = crate::store::identity::read_file(data_dir)?;
    let ca = crate::net::tls::load_or_create_ca(data_dir, st.store.box_id()).map_err(tls_failed)?;
    let ca_key_pem = crate::net::tls::ca_key_pem(data_dir).map_err(tls_failed)?;
    let peer = match addr {
        Some(std::net::IpAddr::V6(a)) => format!("[{a}]:{}", b.link_port),
        Some(a) => format!("{a}:{}", b.link_port),
        None => {
            return Err(ApiError::bad_request(
                "the standby's address is unknown: join over the LAN",
            ))
        }
    };
    let mut scanner_token = None;
    if b.satellite {
        // A satellite dials this box; the pair's peer stays the standby.
        st.store.start_capture().await?;
        let actor = crate::domain::role::Actor {
            name: format!("satellite {} scanners", b.node),
            role: Role::Door,
        };
        let (token, _) =
            st.store.create_session(actor, st.clock.now(), join::SCANNER_TOKEN_TTL_MS).await?;
        scanner_token = Some(token);
        tracing::warn!(node = %b.node, from = %peer, "a satellite joined: every write is logged for it from now on");
    } else {
        st.store.set_peer(peer.clone()).await?;
        st.store.start_capture().await?;
        tracing::warn!(node = %b.node, %peer, "a standby joined: every write is logged for it from now on");
    }
    Ok(Json(JoinBundle {
        identity,
        ca_pem: ca.cert_pem.clone(),
        ca_key_pem,
        link_port: link,
        primary_node: st.store.node_name().await?,
        epoch: st.store.replica().epoch(),
        files: join::CARRIED_FILES
            .iter()
            .filter_map(|name| {
                let text = std::fs::read_to_string(data_dir.join(name)).ok()?;
                Some((name.to_string(), text))
            })
            .collect(),
        scanner_token,
    }))
}

pub async fn promote(
    State(st): State<AppState>,
    p: Principal,
) -> Result<Json<impl Serialize>, ApiError> {
    p.require(Role::Admin)?;
    let state = st.store.promote(st.clock.now()).await?;
    tracing::warn!(by = %p.actor.name, epoch = state.epoch, "promoted from the admin screen");
    Ok(Json(state))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_standby_receives_the_pretix_token_and_the_bucket_keys() {
        let carried = crate::replication::join::CARRIED_FILES;
        assert!(carried.contains(&crate::pretix::TOKEN_FILE));
        assert!(carried.contains(&crate::sync::config::CREDENTIALS_FILE));
    }
}
