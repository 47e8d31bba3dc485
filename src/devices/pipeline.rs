//! From a scanned code to a verdict at the door: the same check-in path
//! and rules as the HTTP API (a nonce per scan), then the lights, buzzer
//! and relay, then the verdict on the staff feed. A second read of the
//! same code by the same scanner within a second is a double read of one
//! scan, not a second check-in.

use super::signals::Signaller;
use crate::clock::Clock;
use crate::domain::checkin::Direction;
use crate::domain::checkin::Reason;
use crate::domain::ids::{GateId, ScanId, TicketId, TierId};
use crate::store::scans::{ScanRecord, ScanRequest, Verdict};
use crate::store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// One verdict on the staff feed (`GET /api/v1/scans/feed`, `event: scan`):
/// every scan, from a USB scanner or a phone, as the door sees it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FeedItem {
    /// What staff say to the guest.
    pub message: String,
    /// `usb-scanner-1`, or `staff NAME` for a phone.
    pub source: String,
    pub scan_id: ScanId,
    pub verdict: Verdict,
    pub reason: Option<Reason>,
    pub gate: GateId,
    pub direction: Direction,
    pub ticket: Option<TicketId>,
    pub tier: Option<TierId>,
    pub holder: Option<String>,
    pub at: String,
    pub attention: bool,
    pub checkin_texts: Vec<String>,
}

/// Repeats of one code by one scanner within this time are one scan.
pub const DOUBLE_READ: Duration = Duration::from_secs(1);

/// Where a scanner stands.
#[derive(Clone, Debug)]
pub struct Binding {
    pub scanner: String,
    /// `None`: the event's first gate.
    pub gate: Option<GateId>,
    pub direction: Direction,
}

/// Where a scanner's scan is decided when this box does not decide it: at
/// a satellite, the primary (ARCHITECTURE.md, "Satellites").
pub trait Upstream: Send + Sync {
    /// The primary's decision; `None` when it cannot be reached (the
    /// satellite then decides apart).
    fn check_in<'a>(
        &'a self,
        req: &'a ScanRequest,
    ) -> futures_util::future::BoxFuture<'a, Option<Result<ScanRecord, StoreError>>>;
}

pub struct ScanPipeline {
    store: Store,
    /// Set on a satellite.
    upstream: std::sync::OnceLock<std::sync::Arc<dyn Upstream>>,
    clock: Clock,
    signaller: Signaller,
    /// Verdicts for dashboards (`GET /api/v1/scans/feed`), from scanners
    /// and from the HTTP API alike; slow listeners miss old ones.
    feed: broadcast::Sender<FeedItem>,
    /// Last code and time per scanner, for double-read suppression.
    recent: Mutex<HashMap<String, (String, Instant)>>,
    /// Makes scanner nonces unique across restarts of the box.
    run_id: String,
    counter: AtomicU64,
}

impl ScanPipeline {
    pub fn new(store: Store, clock: Clock, signaller: Signaller) -> ScanPipeline {
        let run_id = crate::secrets::hex(&crate::secrets::random_bytes::<6>());
        ScanPipeline {
            store,
            upstream: std::sync::OnceLock::new(),
            clock,
            signaller,
            feed: broadcast::channel(256).0,
            recent: Mutex::default(),
            run_id,
            counter: AtomicU64::new(0),
        }
    }

    pub fn signaller(&self) -> &Signaller {
        &self.signaller
    }

    pub fn subscribe(&self) -> broadcast::Receiver<FeedItem> {
        self.feed.subscribe()
    }

    /// Puts a verdict on the staff feed.
    pub fn publish(&self, source: &str, r: &ScanRecord) {
        let event = self.store.event();
        let gate_name = |g: &GateId| event.as_ref().and_then(|e| e.gate(g).map(|g| g.name.clone()));
        let (attention, texts) = match (&event, &r.ticket) {
            (Some(e), Some(t)) => e.checkin_note(Some(t), r.tier.as_ref()),
            _ => (false, Vec::new()),
        };
        let _ = self.feed.send(FeedItem {
            message: r.message(gate_name),
            source: source.to_string(),
            scan_id: r.id,
            verdict: r.verdict,
            reason: r.reason,
            gate: r.gate.clone(),
            direction: r.direction,
            ticket: r.ticket.clone(),
            tier: r.tier.clone(),
            holder: r.holder.clone(),
            at: crate::domain::time::format_rfc3339(r.recorded_at),
            attention,
            checkin_texts: texts,
        });
    }

    /// On a satellite: scans go to the primary through `upstream`.
    pub fn set_upstream(&self, upstream: std::sync::Arc<dyn Upstream>) {
        let _ = self.upstream.set(upstream);
    }

    /// The decision: here, at the primary (a satellite's, joined), or here
    /// apart (a satellite that cannot reach it).
    async fn decide(&self, req: ScanRequest) -> Result<ScanRecord, StoreError> {
        if self.store.replica().role() != crate::store::replica::Role::Satellite {
            return Ok(self.store.record_scan(req).await?.record().clone());
        }
        if let Some(up) = self.upstream.get() {
            if let Some(answer) = up.check_in(&req).await {
                return answer;
            }
        }
        Ok(self.store.record_scan_apart(req).await?.record().clone())
    }

    /// Checks a scanned code in at the scanner's gate and signals the
    /// verdict. `Ok(None)`: a double read, ignored.
    pub async fn scan(
        &self,
        b: &Binding,
        code: &str,
        at: Instant,
    ) -> Result<Option<ScanRecord>, StoreError> {
        {
            let mut recent = self.recent.lock().expect("recent scans");
            if let Some((last, when)) = recent.get(&b.scanner) {
                if last == code && at.duration_since(*when) < DOUBLE_READ {
                    tracing::debug!(scanner = %b.scanner, "double read ignored");
                    return Ok(None);
                }
            }
            recent.insert(b.scanner.clone(), (code.to_string(), at));
        }
        let gate = match &b.gate {
            Some(g) => g.clone(),
            None => self
                .store
                .event()
                .and_then(|e| e.manifest.gates.first().map(|g| g.id.clone()))
                .ok_or(StoreError::NoEvent)?,
        };
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let outcome = self
            .decide(ScanRequest {
                code: code.to_string(),
                gate,
                direction: b.direction,
                nonce: format!("dev:{}:{}:{n}", self.run_id, b.scanner),
                scanned_at: None,
                staff: format!("scanner {}", b.scanner),
                device: Some(b.scanner.clone()),
                now: self.clock.now(),
                // Nobody at a USB scanner can answer "let in anyway?".
                confirm_unpaid: false,
                // A scanner cannot answer questions: such tickets go to a phone.
                answers: Default::default(),
                ticket: None,
            })
            .await;
        let rec = match outcome {
            Ok(r) => r,
            Err(e) => {
                // Unknown gate, no event, a full disk: the door must not see green.
                self.signaller.verdict(false);
                return Err(e);
            }
        };
        self.signaller.verdict(rec.verdict == Verdict::Admit);
        self.publish(&b.scanner, &rec);
        Ok(Some(rec))
    }
}
