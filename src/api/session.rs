//! Staff sign-in with a PIN, sign-out, and "who am I".

use super::auth::Principal;
use super::error::ApiError;
use super::json::Json;
use super::signin::{AfterWrong, Who, REVOKE_AFTER};
use super::AppState;
use crate::domain::error_code::ErrorCode;
use crate::domain::manifest::StaffEntry;
use crate::domain::role::Actor;
use crate::domain::time::format_rfc3339;
use crate::metrics::SignInFailure;
use crate::store::pairing::PairedDevice;
use axum::extract::{ConnectInfo, State};
use axum::http::{Extensions, StatusCode};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    #[schemars(length(max = 64))]
    pin: String,
    /// Optional: narrows the check to one staff member (faster, and needed
    /// when two staff happen to share a PIN).
    #[serde(default)]
    #[schemars(length(max = 128))]
    name: Option<String>,
    /// The credential from `POST /api/v1/paired-devices`; without a paired
    /// device a PIN cannot sign in (401 `device_not_paired`).
    #[serde(default)]
    #[schemars(length(max = 128))]
    device: Option<String>,
}

/// Where a PIN attempt comes from, for the guard.
pub(super) struct Origin {
    pub device: Option<PairedDevice>,
    pub addr: Option<IpAddr>,
    /// What the log and the metrics call the caller.
    pub label: String,
}

/// Checks a PIN against the staff who pass `filter`: counted by the guard
/// before it is checked, checked on the PIN threads, answered 429 or 503
/// at once when the device or the box must wait.
pub(super) async fn staff_with_pin(
    st: &AppState,
    origin: &Origin,
    name: Option<&str>,
    pin: String,
    filter: impl Fn(&StaffEntry) -> bool,
) -> Result<StaffEntry, ApiError> {
    if pin.is_empty() || pin.len() > 64 {
        return Err(ApiError::bad_request("pin must be 1 to 64 characters"));
    }
    let event = st.store.event().ok_or_else(|| {
        ApiError::new(StatusCode::CONFLICT, ErrorCode::NoEvent, "no event is loaded, so there are no staff yet: import the manifest, or use `venuebox token` on the box")
    })?;
    // A PIN shorter than its role asks for is never checked against it.
    let typed = pin.chars().count();
    let long_enough = |s: &StaffEntry| {
        typed >= event.manifest.pin_length.get(&s.role).copied().unwrap_or(0) as usize
    };
    let candidates: Vec<StaffEntry> =
        event.manifest.staff.iter().filter(|s| filter(s) && long_enough(s)).cloned().collect();
    let names: Vec<String> = candidates.iter().map(|s| s.name.clone()).collect();
    let who = Who {
        device: origin.device.as_ref().map(|d| d.id.clone()),
        addr: origin.addr,
        // Only real names are tracked: made-up ones cannot fill the table.
        named: name.filter(|n| names.iter().any(|x| x == n)).map(str::to_string),
    };
    let attempt = st.auth.guard.begin(who, &names, st.clock.now()).inspect_err(|_| {
        st.metrics.signin_failure(SignInFailure::Throttled);
        tracing::warn!(from = %origin.label, "sign-in refused: too many attempts, waiting");
    })?;
    let candidates: Vec<StaffEntry> =
        candidates.into_iter().filter(|s| attempt.allowed.contains(&s.name)).collect();
    let found = st.auth.verifier.verify(pin, candidates).await.map_err(|_| {
        st.metrics.signin_failure(SignInFailure::Busy);
        tracing::warn!(from = %origin.label, "sign-in refused: PIN checks are busy");
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Busy,
            "the box is checking other PINs: try again in a second",
        );
        e.retry_after_secs = Some(1);
        e
    })?;
    match found {
        Some(s) => {
            attempt.succeeded(&s.name);
            Ok(s)
        }
        None => {
            let after = attempt.failed(st.clock.now());
            st.metrics.signin_failure(SignInFailure::WrongPin);
            tracing::warn!(from = %origin.label, staff = name.unwrap_or(""), "wrong PIN");
            if let (AfterWrong::Revoke, Some(d)) = (after, &origin.device) {
                unpair_guessing_device(st, d).await;
            }
            Err(ApiError::unauthorized("wrong PIN: try again, or ask a supervisor"))
        }
    }
}

/// A paired device past [`REVOKE_AFTER`] wrong PINs loses its pairing, as
/// if a supervisor had revoked it (audited, its sessions ended); the
/// supervisors' device list shows why.
async fn unpair_guessing_device(st: &AppState, d: &PairedDevice) {
    let by = Actor {
        name: format!("venuebox ({REVOKE_AFTER} wrong PINs)"),
        role: crate::domain::role::Role::Admin,
    };
    match st.store.revoke_device(d.id.clone(), by, st.clock.now()).await {
        Ok(_) => {
            st.auth.device_revoked(&d.id);
            tracing::warn!(device = %d.id, name = %d.name, "device unpaired after {REVOKE_AFTER} wrong PINs: a supervisor can pair it again");
        }
        Err(e) => tracing::error!(device = %d.id, error = %e, "cannot unpair a guessing device"),
    }
}

fn not_paired() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::DeviceNotPaired,
        "this device is not paired with the box: ask a supervisor for a pairing code, pair with it (POST /api/v1/paired-devices), then sign in sending the credential as \"device\"",
    )
}

/// Holds a refused sign-in (or pairing) before answering it. Refusals
/// cost the box almost nothing, so without this a guest could ask as fast
/// as the network allows and take the CPU the door needs; held, each
/// connection gets at most one refusal per delay. Right PINs are answered
/// at once.
pub(super) async fn slow_refusal<T>(
    st: &AppState,
    result: Result<T, ApiError>,
) -> Result<T, ApiError> {
    if let Err(e) = &result {
        if matches!(e.status.as_u16(), 401 | 429 | 503) && st.config.refusal_delay_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(st.config.refusal_delay_ms)).await;
        }
    }
    result
}

/// A signed-in staff member's token, on this paired device, until when.
#[derive(Serialize, schemars::JsonSchema)]
#[schemars(rename = "Session")]
pub(super) struct SignedIn {
    token: String,
    name: String,
    role: crate::domain::role::Role,
    device: String,
    expires_at: String,
}

pub async fn sign_in(
    State(st): State<AppState>,
    ext: Extensions,
    Json(req): Json<SignIn>,
) -> Result<Json<impl Serialize>, ApiError> {
    let result = sign_in_checked(&st, &ext, req).await;
    slow_refusal(&st, result).await
}

async fn sign_in_checked(
    st: &AppState,
    ext: &Extensions,
    req: SignIn,
) -> Result<Json<impl Serialize>, ApiError> {
    let addr = client_addr(ext);
    let label = addr.map(|a| a.to_string()).unwrap_or_else(|| "unknown address".into());
    let device = match req.device.as_deref().filter(|d| !d.is_empty() && d.len() <= 128) {
        Some(credential) => st.auth.device(&st.store, credential).await?,
        None => None,
    };
    let Some(device) = device else {
        // Counted against the address, so even this cheap refusal backs off.
        st.metrics.signin_failure(SignInFailure::DeviceNotPaired);
        tracing::warn!(from = %label, "sign-in from a device that is not paired");
        if let Some(a) = addr {
            let who = Who { addr: Some(a), ..Who::default() };
            st.auth.guard.begin(who, &[], st.clock.now())?.failed(st.clock.now());
        }
        return Err(not_paired());
    };
    let origin = Origin {
        label: format!("device {} ({}) at {label}", device.id, device.name),
        device: Some(device.clone()),
        addr,
    };
    let name = req.name;
    let staff = staff_with_pin(st, &origin, name.as_deref(), req.pin, |s| {
        name.as_deref().is_none_or(|n| n == s.name)
    })
    .await?;
    let now = st.clock.now();
    let actor = Actor { name: staff.name, role: staff.role };
    let (token, session) = st
        .store
        .create_device_session(actor, device.id.clone(), now, st.config.session_ttl_ms)
        .await?;
    tracing::info!(staff = %session.actor.name, role = %session.actor.role, device = %device.id, "staff signed in");
    if let Some(a) = addr {
        st.conns.mark_known(a);
    }
    Ok(Json(SignedIn {
        token,
        name: session.actor.name,
        role: session.actor.role,
        device: device.id,
        expires_at: format_rfc3339(session.expires_at),
    }))
}

/// The caller's address, as every limit counts it (an IPv4-mapped IPv6
/// address is its IPv4 address).
pub(super) fn client_addr(ext: &Extensions) -> Option<std::net::IpAddr> {
    ext.get::<ConnectInfo<SocketAddr>>().map(|c| super::conn::address_key(c.0.ip()))
}

pub async fn whoami(p: Principal) -> Json<Actor> {
    Json(p.actor)
}

pub async fn sign_out(State(st): State<AppState>, p: Principal) -> Result<StatusCode, ApiError> {
    st.store.end_session(&p.token, p.actor.clone(), st.clock.now()).await?;
    st.auth.forget(&p.token);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Sessions {
    sessions: Vec<crate::store::sessions::SessionView>,
}

/// `GET /api/v1/sessions`: who is signed in, on which device, until when.
pub async fn list(State(st): State<AppState>, p: Principal) -> Result<Json<Sessions>, ApiError> {
    p.require(crate::domain::role::Role::Supervisor)?;
    Ok(Json(Sessions { sessions: st.store.sessions(st.clock.now()).await? }))
}

/// `DELETE /api/v1/sign-in-locks`: a supervisor clears the PIN locks
/// (after a burst of wrong PINs, so staff on new phones can sign in).
pub async fn clear_locks(State(st): State<AppState>, p: Principal) -> Result<StatusCode, ApiError> {
    p.require(crate::domain::role::Role::Supervisor)?;
    st.auth.guard.clear_locks(st.clock.now());
    st.store
        .audit_note(p.actor.clone(), "sign_in_locks.clear", serde_json::Value::Null, st.clock.now())
        .await?;
    tracing::warn!(by = %p.actor.name, "PIN locks cleared");
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/sessions/{id}`: ends one session at once.
pub async fn revoke(
    State(st): State<AppState>,
    p: Principal,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<StatusCode, ApiError> {
    p.require(crate::domain::role::Role::Supervisor)?;
    let digest = st.store.revoke_session(id.clone(), p.actor.clone(), st.clock.now()).await?;
    st.auth.forget_digest(&digest);
    tracing::info!(session = %id, by = %p.actor.name, "session revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_in_answer_and_a_paired_device_are_the_documented_ones() {
        let signed = SignedIn {
            token: "vbx_0123".into(),
            name: "Dana".into(),
            role: crate::domain::role::Role::Door,
            device: "dev-1".into(),
            expires_at: "2026-11-28T08:00:00Z".into(),
        };
        super::super::contract::assert_documented("Session", &signed);
        let device = PairedDevice {
            id: "dev-1".into(),
            name: "door phone".into(),
            paired_by: "Sam".into(),
            paired_at: 1,
            last_sign_in_at: Some(2),
            revoked_at: Some(3),
            revoked_by: Some("Sam".into()),
            credential_sha256: "never shown".into(),
            code_id: Some("0a1b2c3d4e5f".into()),
            paired_from: Some("192.168.1.23".into()),
        };
        let view = super::super::pairing::DeviceView { device, wrong_pins: 3 };
        super::super::contract::assert_documented("PairedDevice", &view);
    }
}
