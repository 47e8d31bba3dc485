//! Operations endpoints: health (with the clock check), the box's time set
//! from a phone, Prometheus metrics, the OpenAPI document, and the 404 for
//! everything else.

use super::auth::Principal;
use super::error::ApiError;
use super::AppState;
use crate::clock::ClockReport;
use crate::domain::error_code::ErrorCode;
use crate::domain::role::Role;
use crate::domain::time::parse_rfc3339;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;

/// The OpenAPI 3.1 description of every route in `router()`; a test
/// checks the two agree.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What `/healthz` answers: the box, its key, its event, its version.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Health {
    status: &'static str,
    box_id: String,
    box_public_key: String,
    event: Option<String>,
    manifest_version: Option<u64>,
    version: &'static str,
    /// Whether the box's clock can be right (a Pi has no battery clock).
    clock: Option<ClockReport>,
    /// This box in its pair: the primary takes writes, a standby refuses
    /// them; the higher epoch is the newer primary.
    role: crate::store::replica::Role,
    epoch: i64,
    /// `EPOCH.SIGNATURE` (the box key): phones keep the newest they have
    /// seen and send it as `X-Venuebox-Epoch`; an old primary that meets a
    /// newer one fences itself.
    epoch_proof: String,
    /// The other box of the pair (`https://host:port`), where phones go
    /// when it is the primary and this box is not.
    peer: Option<String>,
    /// A satellite cut off from the primary: it decides check-ins itself
    /// under the gates' offline rules, to be merged when the link returns.
    apart: bool,
}

/// Any page may read it (`Access-Control-Allow-Origin: *`): it holds
/// nothing a guest on the LAN could not ask for directly, and the app at
/// the other box of a pair (whatever name the phone used for it) asks
/// this box whether it is the primary now.
pub async fn healthz(
    State(st): State<AppState>,
) -> ([(axum::http::HeaderName, &'static str); 1], Json<Health>) {
    let ev = st.store.event();
    let open = [(axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")];
    (
        open,
        Json(Health {
            status: "ok",
            box_id: st.store.box_id().to_string(),
            box_public_key: st.store.box_public_key(),
            event: ev.as_ref().map(|e| e.event_id().to_string()),
            manifest_version: ev.as_ref().map(|e| e.manifest.version),
            version: env!("CARGO_PKG_VERSION"),
            clock: st.store.clock_floor().await.ok().map(|f| ClockReport::judge(&st.clock, f)),
            role: st.store.replica().role(),
            epoch: st.store.replica().epoch(),
            epoch_proof: st.store.epoch_proof(),
            apart: st.store.replica().role() == crate::store::replica::Role::Satellite
                && !st.replication.connected(),
            // Phones at a satellite stay there: it names no box to move to.
            peer: match st.store.replica().role() {
                crate::store::replica::Role::Satellite => None,
                _ => st.replication.peer_web(),
            },
        }),
    )
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetClock {
    /// The time on the admin's phone, RFC 3339; not before 2020.
    #[schemars(extend("format" = "date-time"))]
    now: String,
    /// The admin's second "yes": needed when the time moves by more than
    /// 3 hours (409 `confirm_clock_jump` otherwise).
    #[serde(default)]
    confirm: bool,
}

/// A change of the box's time larger than this needs `confirm`.
const CONFIRM_JUMP_MS: i64 = 3 * 3_600_000;

/// No real event happens before this (2020-01-01): a phone saying so is wrong.
const EARLIEST_PLAUSIBLE: i64 = 1_577_836_800_000;

/// An admin gives the box the time from their phone: the box keeps the
/// difference to its system clock (stored, applied again after restarts)
/// and records it as a `clock.set` event.
pub async fn set_clock(
    State(st): State<AppState>,
    p: Principal,
    super::json::Json(b): super::json::Json<SetClock>,
) -> Result<Json<ClockReport>, ApiError> {
    p.require(Role::Admin)?;
    let given = parse_rfc3339(&b.now).map_err(|e| {
        ApiError::bad_request(format!(
            "now must be an RFC 3339 time such as 2026-11-30T20:14:00Z ({e})"
        ))
    })?;
    if given < EARLIEST_PLAUSIBLE {
        return Err(ApiError::bad_request(
            "that time is before 2020: check the phone's own clock and send it again",
        ));
    }
    if let Some(floor) = st.store.clock_floor().await? {
        if given < floor {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                ErrorCode::ClockBeforeRecords,
                format!(
                    "the box already recorded things at {}: a time before that cannot be right; check the phone's own clock",
                    crate::domain::time::format_rfc3339(floor)
                ),
            ));
        }
    }
    let jump = (given - st.clock.now()).abs();
    if jump > CONFIRM_JUMP_MS && !b.confirm {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            ErrorCode::ConfirmClockJump,
            format!(
                "that moves the box's time by {} h {} min: if the phone is right, send it again with \"confirm\": true",
                jump / 3_600_000,
                jump % 3_600_000 / 60_000
            ),
        ));
    }
    let system = st.clock.system_now();
    let (offset, previous) = (given - system, st.clock.offset());
    st.store.set_clock_offset(offset, previous, system, p.actor.clone(), given).await?;
    st.clock.set_offset(offset);
    tracing::warn!(offset_ms = offset, previous_offset_ms = previous, by = %p.actor.name, "the box's time was set from a phone");
    Ok(Json(ClockReport::judge(&st.clock, st.store.clock_floor().await?)))
}

/// One rehearsal at a time: each copies the database.
static REHEARSING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(serde::Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RehearseBody {
    /// Captures expected tonight, in GiB: free disk must hold them
    /// (default 20).
    #[serde(default)]
    #[schemars(range(max = 1_048_576))]
    expected_capture_gb: Option<u64>,
}

/// `POST /api/v1/rehearsal` (admin): the readiness report of
/// `venuebox rehearse`, from the running box: the flows on a scratch copy,
/// the bucket it syncs to, disk, clock, and its devices as it holds them.
pub async fn rehearse(
    State(st): State<AppState>,
    p: Principal,
    super::json::Json(b): super::json::Json<RehearseBody>,
) -> Result<Json<crate::domain::readiness::Report>, ApiError> {
    p.require(Role::Admin)?;
    let expected_capture_gb = b.expected_capture_gb.unwrap_or(20);
    if expected_capture_gb > 1 << 20 {
        return Err(ApiError::bad_request(
            "expected_capture_gb is in GiB: give tonight's expected captures, at most 1048576",
        ));
    }
    let Some(rehearsal) = st.rehearse.get().cloned() else {
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::RehearsalUnavailable,
            "this process cannot rehearse: run `venuebox rehearse` on the box",
        ));
    };
    let Ok(_one) = REHEARSING.try_lock() else {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            ErrorCode::RehearsalRunning,
            "a rehearsal is already running: wait for its report",
        ));
    };
    let report = rehearsal.rehearse(st.parts.clone(), expected_capture_gb).await;
    tracing::info!(by = %p.actor.name, ready = report.ready, "rehearsal from the admin screen");
    Ok(Json(report))
}

pub async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    let mut text = st.metrics.render();
    if let Ok(s) = crate::sync::scraped_status(&st.store, &st.sync, st.clock.now()).await {
        text += &crate::sync::render_metrics(&s);
    }
    let replica = st.store.replica();
    text += &st
        .replication
        .status()
        .render_metrics(replica.role() == crate::store::replica::Role::Primary, replica.epoch());
    if st.store.event().is_some_and(|e| e.manifest.pretix.is_some()) {
        if let Ok(counts) = st.store.pretix_counts(0).await {
            text += &crate::pretix::render_metrics(&st.pretix.status(), &counts);
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint: see /api/v1/openapi.json")
}
