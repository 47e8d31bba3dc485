//! What the cloud reads: every outbox event, one typed variant per kind.
//!
//! The store appends them inside the transaction of the change they
//! describe (`store::outbox::append`), sync sends them as NDJSON segments
//! under `events/`, and `sync::recompute` reads them back to compute
//! payouts. The kind is the serde tag and the payload its content, so a
//! row is `{"kind": "...", "payload": {...}}` split over two columns. A
//! field renamed here changes `tests/golden/outbox_events.ndjson`: a change
//! to what the cloud reads is always a visible diff.

use super::checkin::ScanRecord;
use super::ids::{CreatorId, DropId, EventId, OrderId, ProgramId, ScanId, TicketId, TierId};
use super::manifest::{DropSpec, Funder};
use super::receipt::{OrderKind, Receipt};
use super::time::Millis;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum Event {
    /// A scan let someone in (the scan log's row).
    #[serde(rename = "checkin.admitted")]
    CheckinAdmitted(ScanRecord),
    /// A scan was refused, with its reason.
    #[serde(rename = "checkin.rejected")]
    CheckinRejected(ScanRecord),
    /// A supervisor took an admission back.
    #[serde(rename = "checkin.undone")]
    CheckinUndone(CheckinUndone),
    /// The box minted a ticket (walk-up or scholarship seat).
    #[serde(rename = "ticket.issued")]
    TicketIssued(TicketIssued),
    #[serde(rename = "order.created")]
    OrderCreated(OrderCreated),
    #[serde(rename = "order.voided")]
    OrderVoided(OrderClosed),
    #[serde(rename = "order.refunded")]
    OrderRefunded(OrderClosed),
    #[serde(rename = "scholarship.claimed")]
    ScholarshipClaimed(ScholarshipClaimed),
    /// One row of the inventory ledger.
    #[serde(rename = "inventory.moved")]
    InventoryMoved(InventoryMoved),
    /// A drop created or edited (from the manifest or by an admin).
    #[serde(rename = "drop.saved")]
    DropSaved(DropSaved),
    /// A closed drop's unsold stock moved on.
    #[serde(rename = "drop.cycled")]
    DropCycled(DropCycled),
    /// An upload became a capture (or a duplicate of one).
    #[serde(rename = "capture.completed")]
    CaptureCompleted(CaptureCompleted),
    #[serde(rename = "capture.hidden")]
    CaptureHidden(CaptureHidden),
    #[serde(rename = "manifest.imported")]
    ManifestImported(ManifestImported),
    /// An admin gave the box the time: every later record (by seq) used
    /// the system clock plus `offset_ms`.
    #[serde(rename = "clock.set")]
    ClockSet(ClockSet),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckinUndone {
    pub scan: ScanId,
    pub ticket: TicketId,
    pub by: String,
    pub at: Millis,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TicketIssued {
    pub ticket: TicketId,
    pub tier: TierId,
    pub order: OrderId,
    /// The signed code printed as the ticket's QR.
    pub code: String,
    pub holder: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OrderCreated {
    pub order: OrderId,
    pub kind: OrderKind,
    /// The creator the sale is attributed to (referral, scholarship funder
    /// or drop owner).
    pub creator: Option<CreatorId>,
    pub drop: Option<DropId>,
    /// The buyer's ticket, for drops limited per attendee.
    pub attendee: Option<TicketId>,
    pub receipt: Receipt,
}

/// A void or a refund.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OrderClosed {
    pub order: OrderId,
    pub reason: String,
    pub by: String,
    pub at: Millis,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScholarshipClaimed {
    pub program: ProgramId,
    pub code: String,
    pub creator: CreatorId,
    pub funder: Funder,
    pub order: OrderId,
    pub ticket: TicketId,
    pub list_minor: i64,
    pub paid_minor: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InventoryMoved {
    pub drop: DropId,
    pub sku: String,
    /// Units in (positive) or out (negative).
    pub delta: i64,
    /// `initial`, `restock`, `sale`, `void`, `refund`, `cycle_out`, ...
    pub reason: String,
    /// The order, drop or pool the units came from or went to.
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    pub actor: String,
    pub note: Option<String>,
    /// Stock after this move.
    pub on_hand: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DropSaved {
    pub drop: DropSpec,
    /// `manifest` or `admin`.
    pub source: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DropCycled {
    pub drop: DropId,
    pub moved: Vec<CycledStock>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CycledStock {
    pub sku: String,
    pub quantity: i64,
    /// The next drop's id, or `pool`.
    pub to: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaptureCompleted {
    pub sha256: String,
    pub bytes: u64,
    pub media_type: String,
    pub creator: CreatorId,
    pub uploader: Option<String>,
    pub consent: bool,
    /// RFC 3339.
    pub captured_at: String,
    /// `exif`, `device` or `received`.
    pub captured_at_source: String,
    pub upload: String,
    /// The same bytes were uploaded before (not counted again).
    pub duplicate: bool,
    pub filename: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaptureHidden {
    pub sha256: String,
    pub reason: String,
    pub consent_withdrawn: bool,
    pub by: String,
    pub at: Millis,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ManifestImported {
    pub event_id: EventId,
    pub version: u64,
    /// Of the manifest's bytes as imported.
    pub sha256: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClockSet {
    pub offset_ms: i64,
    pub previous_offset_ms: i64,
    /// The system clock's reading when the time was given.
    pub system_at: Millis,
    pub by: String,
}

/// A stored row whose payload does not fit its kind.
#[derive(Debug, thiserror::Error)]
#[error("outbox event '{kind}' does not match its type: {source}")]
pub struct EventError {
    pub kind: String,
    #[source]
    pub source: serde_json::Error,
}

impl Event {
    /// Every kind this version writes, in the order of the enum.
    pub const KINDS: [&'static str; 15] = [
        "checkin.admitted",
        "checkin.rejected",
        "checkin.undone",
        "ticket.issued",
        "order.created",
        "order.voided",
        "order.refunded",
        "scholarship.claimed",
        "inventory.moved",
        "drop.saved",
        "drop.cycled",
        "capture.completed",
        "capture.hidden",
        "manifest.imported",
        "clock.set",
    ];

    /// The kind and the payload as the outbox stores them.
    pub fn to_parts(&self) -> (String, serde_json::Value) {
        let v = serde_json::to_value(self)
            .expect("events serialise: string keys, no maps of non-strings");
        let serde_json::Value::Object(mut m) = v else {
            unreachable!("an adjacently tagged enum is an object")
        };
        let kind = match m.remove("kind") {
            Some(serde_json::Value::String(k)) => k,
            _ => unreachable!("the tag is a string"),
        };
        (kind, m.remove("payload").unwrap_or(serde_json::Value::Null))
    }

    /// A stored row back as its type: `Ok(None)` for a kind this version
    /// does not know (a newer box wrote it), an error when a known kind's
    /// payload does not fit (never read as zeros).
    pub fn from_parts(
        kind: &str,
        payload: &serde_json::Value,
    ) -> Result<Option<Event>, EventError> {
        if !Self::KINDS.contains(&kind) {
            return Ok(None);
        }
        let tagged = serde_json::json!({"kind": kind, "payload": payload});
        serde_json::from_value(tagged)
            .map(Some)
            .map_err(|source| EventError { kind: kind.to_string(), source })
    }
}
