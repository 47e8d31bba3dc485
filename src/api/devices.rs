//! The box's hardware as staff see it: devices and their state, the live
//! verdict feed, reprints and the print queue, a device self-test, and —
//! in `--simulate` — injecting a scan as if a USB scanner had read it.

use super::auth::Principal;
use super::error::ApiError;
use super::json::{Json, Query};
use super::AppState;
use crate::devices::pipeline::Binding;
use crate::devices::registry::DeviceState;
use crate::devices::Mode;
use crate::domain::checkin::{Direction, Reason};
use crate::domain::error_code::ErrorCode;
use crate::domain::ids::{GateId, OrderId, ScanId, TicketId};
use crate::domain::role::Role;
use crate::store::printing::{PrintJobView, DEFAULT_STATION};
use crate::store::scans::Verdict;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::time::Instant;

/// The box's devices and the receipts waiting for a printer.
#[derive(Serialize, schemars::JsonSchema)]
pub struct DeviceList {
    /// `hardware` or `simulate`.
    mode: String,
    devices: Vec<DeviceState>,
    print_jobs_pending: usize,
    /// Capture types this box cannot preview, and the package for each.
    previews_missing: Vec<crate::media::preview::MissingPreview>,
}

/// What an injected scan did: its verdict, or nothing (a double read).
#[derive(Serialize, schemars::JsonSchema)]
pub struct Injected {
    double_read: bool,
    #[serde(flatten)]
    scan: Option<InjectedScan>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct InjectedScan {
    scan_id: ScanId,
    verdict: Verdict,
    reason: Option<Reason>,
    gate: GateId,
    ticket: Option<TicketId>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Job {
    job: i64,
}

pub async fn list(State(st): State<AppState>, p: Principal) -> Result<Json<DeviceList>, ApiError> {
    p.require_any(&[Role::Door, Role::Merch])?;
    let print_jobs_pending = st.store.print_jobs(true, 1000).await?.len();
    Ok(Json(DeviceList {
        mode: format!("{:?}", st.devices.mode).to_lowercase(),
        devices: st.devices.registry.list(),
        print_jobs_pending,
        previews_missing: crate::media::preview::Tools::find().missing(),
    }))
}

/// Every verdict as it happens (scanners and staff phones alike), as
/// server-sent events (`event: scan`), for the dashboard.
pub async fn feed(
    State(st): State<AppState>,
    p: Principal,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    p.require(Role::Door)?;
    let slot = st.feeds.open(&crate::store::sessions::token_digest(&p.token))?;
    let rx = st.devices.pipeline.subscribe();
    let events = stream::unfold(rx, |mut rx| async move {
        let ev = match rx.recv().await {
            Ok(v) => Event::default()
                .event("scan")
                .data(serde_json::to_string(&v).expect("a feed item serialises")),
            // A slow listener is told how much it missed, then carries on.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                Event::default().event("lagged").data(format!("{{\"missed\":{n}}}"))
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(ev), rx))
    });
    // The slot lives as long as the stream.
    let events = events.map(move |e| {
        let _held = &slot;
        e
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InjectBody {
    /// The text a scanner would have typed.
    #[schemars(length(max = 1024))]
    code: String,
    #[serde(default)]
    #[schemars(length(max = 128))]
    scanner: Option<String>,
    #[serde(default)]
    #[schemars(length(max = 64))]
    gate: Option<String>,
    #[serde(default)]
    direction: Option<Direction>,
}

/// `--simulate` only: a scan as if a USB scanner read `code`.
pub async fn inject(
    State(st): State<AppState>,
    p: Principal,
    Json(b): Json<InjectBody>,
) -> Result<Json<impl Serialize>, ApiError> {
    p.require(Role::Door)?;
    if st.devices.mode != Mode::Simulate {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::NotSimulating,
            "scan injection exists only when the box runs with --simulate",
        ));
    }
    let binding = Binding {
        scanner: b.scanner.unwrap_or_else(|| "simulated-scanner".into()),
        gate: b.gate.map(GateId),
        direction: b.direction.unwrap_or(Direction::Entry),
    };
    let rec = st.devices.pipeline.scan(&binding, b.code.trim(), Instant::now()).await?;
    Ok(Json(Injected {
        double_read: rec.is_none(),
        scan: rec.map(|r| InjectedScan {
            scan_id: r.id,
            verdict: r.verdict,
            reason: r.reason,
            gate: r.gate,
            ticket: r.ticket,
        }),
    }))
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct SelfTest {
    signals: &'static str,
    test_page_job: i64,
}

/// Blinks, beeps and pulses every output once and queues a test page.
pub async fn self_test(
    State(st): State<AppState>,
    p: Principal,
) -> Result<Json<SelfTest>, ApiError> {
    p.require(Role::Supervisor)?;
    st.devices.pipeline.signaller().self_test();
    let job = st.store.queue_print(None, DEFAULT_STATION.into(), st.clock.now()).await?;
    Ok(Json(SelfTest { signals: "green, red, buzzer and relay switched once", test_page_job: job }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReprintQuery {
    #[serde(default)]
    station: Option<String>,
}

pub async fn reprint(
    State(st): State<AppState>,
    p: Principal,
    ext: axum::http::Extensions,
    Path(id): Path<String>,
    Query(q): Query<ReprintQuery>,
) -> Result<(StatusCode, Json<impl Serialize>), ApiError> {
    p.require(Role::Merch)?;
    let order = OrderId(id);
    super::sales::check_seller(&st, &p, &order).await?;
    let station = q.station.unwrap_or_else(|| DEFAULT_STATION.into());
    // Asked at a satellite: its own printer at that station.
    let station = match super::forward::counter(&ext).satellite {
        Some(node) => crate::store::printing::satellite_station(&node, &station),
        None => station,
    };
    let job = st.store.queue_print(Some(order), station, st.clock.now()).await?;
    Ok((StatusCode::ACCEPTED, Json(Job { job })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    #[serde(default)]
    pending: bool,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Jobs {
    jobs: Vec<PrintJobView>,
}

pub async fn print_jobs(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<JobsQuery>,
) -> Result<Json<Jobs>, ApiError> {
    p.require(Role::Merch)?;
    let mut jobs = st.store.print_jobs(q.pending, 200).await?;
    // Order ids lead to the orders' tickets: only for those who may see them.
    for j in &mut jobs {
        if !super::sales::sees_codes(&p, j.seller.as_deref().unwrap_or("")) {
            j.order_id = None;
        }
    }
    Ok(Json(Jobs { jobs }))
}
