//! Staff sign-in with a PIN, sign-out, and "who am I".

use super::auth::Principal;
use super::error::ApiError;
use super::json::Json;
use super::AppState;
use crate::domain::manifest::StaffEntry;
use crate::domain::role::Actor;
use crate::domain::time::format_rfc3339;
use argon2::{Argon2, PasswordHash, PasswordVerifier};
use axum::extract::{ConnectInfo, State};
use axum::http::{Extensions, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pin: String,
    /// Optional: narrows the check to one staff member (faster, and needed
    /// when two staff happen to share a PIN).
    #[serde(default)]
    name: Option<String>,
}

/// Checks a PIN against the staff who pass `filter`, off the async
/// threads (argon2 is slow on purpose), with the PIN-guessing throttle.
pub(super) async fn staff_with_pin(
    st: &AppState,
    addr: Option<std::net::IpAddr>,
    pin: String,
    filter: impl Fn(&StaffEntry) -> bool,
) -> Result<StaffEntry, ApiError> {
    if pin.is_empty() || pin.len() > 64 {
        return Err(ApiError::bad_request("pin must be 1 to 64 characters"));
    }
    st.auth.check_allowed(addr, st.clock.now())?;
    let event = st.store.event().ok_or_else(|| {
        ApiError::new(StatusCode::CONFLICT, "no_event", "no event is loaded, so there are no staff yet: import the manifest, or use `venuebox token` on the box")
    })?;
    let candidates: Vec<StaffEntry> = event.manifest.staff.iter().filter(|s| filter(s)).cloned().collect();
    let found = tokio::task::spawn_blocking(move || verify(&pin, &candidates)).await.map_err(|_| ApiError::internal())?;
    match found {
        Some(s) => {
            st.auth.record_success(addr);
            Ok(s)
        }
        None => {
            st.auth.record_failure(addr, st.clock.now());
            Err(ApiError::unauthorized("wrong PIN: try again, or ask a supervisor"))
        }
    }
}

fn verify(pin: &str, staff: &[StaffEntry]) -> Option<StaffEntry> {
    let argon = Argon2::default();
    staff
        .iter()
        .find(|s| PasswordHash::new(&s.pin_hash).is_ok_and(|h| argon.verify_password(pin.as_bytes(), &h).is_ok()))
        .cloned()
}

pub async fn sign_in(State(st): State<AppState>, ext: Extensions, Json(req): Json<SignIn>) -> Result<Json<Value>, ApiError> {
    let addr = client_addr(&ext);
    let name = req.name;
    let staff = staff_with_pin(&st, addr, req.pin, |s| name.as_deref().is_none_or(|n| n == s.name)).await?;
    let now = st.clock.now();
    let actor = Actor { name: staff.name, role: staff.role };
    let (token, session) = st.store.create_session(actor, now, st.config.session_ttl_ms).await?;
    tracing::info!(staff = %session.actor.name, role = %session.actor.role, "staff signed in");
    Ok(Json(json!({
        "token": token,
        "name": session.actor.name,
        "role": session.actor.role,
        "expires_at": format_rfc3339(session.expires_at),
    })))
}

pub(super) fn client_addr(ext: &Extensions) -> Option<std::net::IpAddr> {
    ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

pub async fn whoami(p: Principal) -> Json<Value> {
    Json(json!({"name": p.actor.name, "role": p.actor.role}))
}

pub async fn sign_out(State(st): State<AppState>, p: Principal) -> Result<StatusCode, ApiError> {
    st.store.end_session(&p.token, p.actor.clone(), st.clock.now()).await?;
    st.auth.forget(&p.token);
    Ok(StatusCode::NO_CONTENT)
}
