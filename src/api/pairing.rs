//! Pairing staff devices: a supervisor makes a one-time code, the device
//! trades it for a credential it keeps, and only then may a PIN sign in
//! from it. Supervisors list and revoke devices; revoking ends every
//! session on the device at once.

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
use crate::store::pairing::PairedDevice;
use crate::store::printing::PairingSlip;
use axum::extract::{Path, State};
use axum::http::{Extensions, StatusCode};
use serde::{Deserialize, Serialize};

/// How long a pairing code works.
/// A new pairing code, with where a phone uses it.
#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct NewCode {
    code: String,
    /// Names the code in the device list once a device took it.
    code_id: String,
    expires_at: String,
    pair_url: Option<String>,
    urls: Vec<String>,
    fingerprint: Option<String>,
    how: &'static str,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct SlipQueued {
    job: i64,
    station: String,
    expires_at: String,
}

/// A paired device's credential: shown once, kept by the device.
#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct Paired {
    device: String,
    name: String,
    credential: String,
    paired_by: String,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct Devices {
    devices: Vec<DeviceView>,
}

/// A paired device as supervisors see it: with the wrong PINs sent from
/// it, so a device that keeps guessing stands out.
#[derive(Serialize, schemars::JsonSchema)]
#[schemars(rename = "PairedDevice")]
pub(super) struct DeviceView {
    #[serde(flatten)]
    pub device: PairedDevice,
    pub wrong_pins: u32,
}

impl DeviceView {
    fn of(st: &AppState, device: PairedDevice) -> DeviceView {
        let wrong_pins = st.auth.guard.wrong_pins(&device.id);
        DeviceView { device, wrong_pins }
    }
}

#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct Revoked {
    device: DeviceView,
    sessions_ended: usize,
}

pub const CODE_TTL_MS: i64 = 10 * 60_000;

pub async fn create_code(
    State(st): State<AppState>,
    p: Principal,
) -> Result<(StatusCode, Json<impl Serialize>), ApiError> {
    p.require(Role::Supervisor)?;
    let (code, expires_at) =
        st.store.create_pairing_code(p.actor.clone(), st.clock.now(), CODE_TTL_MS).await?;
    tracing::info!(by = %p.actor.name, "pairing code made");
    let slip = slip(&st, &code, expires_at);
    Ok((
        StatusCode::CREATED,
        Json(NewCode {
            code_id: crate::store::pairing::code_id(&code),
            code,
            expires_at: format_rfc3339(expires_at),
            pair_url: slip.as_ref().map(|s| s.url.clone()),
            urls: slip.as_ref().map(|s| s.urls.clone()).unwrap_or_default(),
            fingerprint: slip.and_then(|s| s.fingerprint),
            how: "on the staff device: POST /api/v1/paired-devices {\"code\": ..., \"name\": ...}, keep the credential, send it as \"device\" when signing in",
        }),
    ))
}

/// What a pairing slip says, when the LAN side is on.
fn slip(st: &AppState, code: &str, expires_at: i64) -> Option<PairingSlip> {
    let lan = st.lan.as_ref()?;
    let (https, pair) = lan.ports();
    Some(PairingSlip {
        url: lan.pair_url(pair?, Some(code)),
        urls: https.map(|p| lan.staff_urls(p)).unwrap_or_default(),
        fingerprint: lan.fingerprint(),
        code: Some(code.to_string()),
        expires_at: Some(format_rfc3339(expires_at)),
        test_code: None,
    })
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrintBody {
    /// The printer station to print the slip on (default: the box's own).
    #[serde(default)]
    #[schemars(length(max = 64))]
    station: Option<String>,
}

/// `POST /api/v1/pairing/print`: a fresh code, printed with its QR code,
/// the staff URLs and the CA fingerprint on the station's receipt printer.
pub async fn print(
    State(st): State<AppState>,
    p: Principal,
    Json(b): Json<PrintBody>,
) -> Result<(StatusCode, Json<impl Serialize>), ApiError> {
    p.require(Role::Supervisor)?;
    if st.lan.as_ref().is_none_or(|l| l.ports().1.is_none()) {
        return Err(ApiError::new(StatusCode::CONFLICT, ErrorCode::NoLan, "the box has no pairing listener (--pair-listen), so there is no page for a slip to point to"));
    }
    let station = b.station.unwrap_or_else(|| crate::store::printing::DEFAULT_STATION.into());
    let (code, expires_at) =
        st.store.create_pairing_code(p.actor.clone(), st.clock.now(), CODE_TTL_MS).await?;
    let slip = slip(&st, &code, expires_at).ok_or_else(ApiError::internal)?;
    let job = st.store.queue_pairing_slip(slip, station.clone(), st.clock.now()).await?;
    tracing::info!(by = %p.actor.name, %station, job, "pairing slip queued");
    Ok((
        StatusCode::ACCEPTED,
        Json(SlipQueued { job, station, expires_at: format_rfc3339(expires_at) }),
    ))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PairBody {
    /// The pairing code from the slip or the supervisor's screen.
    #[schemars(length(max = 32))]
    code: String,
    /// What staff call the device ("door phone 2").
    #[schemars(length(max = 64))]
    name: String,
}

pub async fn pair(
    State(st): State<AppState>,
    ext: Extensions,
    Json(b): Json<PairBody>,
) -> Result<(StatusCode, Json<impl Serialize>), ApiError> {
    let result = pair_checked(&st, &ext, b).await;
    super::session::slow_refusal(&st, result).await
}

async fn pair_checked(
    st: &AppState,
    ext: &Extensions,
    b: PairBody,
) -> Result<(StatusCode, Json<impl Serialize>), ApiError> {
    let name = b.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "name must be 1 to 64 printable characters, e.g. \"door phone 2\"",
        ));
    }
    if b.code.len() > 32 {
        return Err(ApiError::bad_request("a pairing code is 12 characters, like ABCD-EFGH-JKMN"));
    }
    let addr = client_addr(ext);
    // Codes are guessed like PINs, so they are counted like PINs.
    let who = Who { addr, ..Who::default() };
    let attempt = st
        .auth
        .guard
        .begin(who, &[], st.clock.now())
        .inspect_err(|_| st.metrics.signin_failure(SignInFailure::Throttled))?;
    let from = addr.map(|a| a.to_string());
    match st.store.pair_device(&b.code, name, from, st.clock.now()).await? {
        Some(new) => {
            // No device was attempting (this is a pairing), so nothing
            // becomes trusted: the attempt is only taken back.
            attempt.succeeded(&new.device.id);
            tracing::info!(device = %new.device.id, name = %new.device.name, by = %new.device.paired_by, "device paired");
            let body = Paired {
                device: new.device.id.clone(),
                name: new.device.name.clone(),
                credential: new.credential,
                paired_by: new.device.paired_by.clone(),
            };
            st.auth.device_paired(new.device);
            if let Some(a) = addr {
                st.conns.mark_known(a);
            }
            Ok((StatusCode::CREATED, Json(body)))
        }
        None => {
            let _ = attempt.failed(st.clock.now());
            st.metrics.signin_failure(SignInFailure::BadPairingCode);
            tracing::warn!(from = ?addr, "pairing refused: unknown, used or expired code");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::PairingCodeInvalid,
                "this pairing code is unknown, used or expired: ask a supervisor for a new one (they last 10 minutes)",
            ))
        }
    }
}

pub async fn list(
    State(st): State<AppState>,
    p: Principal,
) -> Result<Json<impl Serialize>, ApiError> {
    p.require(Role::Supervisor)?;
    let all = st.store.paired_devices().await?;
    Ok(Json(Devices { devices: all.into_iter().map(|d| DeviceView::of(&st, d)).collect() }))
}

pub async fn revoke(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<impl Serialize>, ApiError> {
    p.require(Role::Supervisor)?;
    let (device, ended) = st.store.revoke_device(id, p.actor.clone(), st.clock.now()).await?;
    st.auth.device_revoked(&device.id);
    tracing::info!(device = %device.id, by = %p.actor.name, sessions_ended = ended, "device revoked");
    Ok(Json(Revoked { device: DeviceView::of(&st, device), sessions_ended: ended }))
}
