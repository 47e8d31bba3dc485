//! What every sale shares, walk-up, scholarship or drop: new ids, the
//! order row with its receipt and outbox row, and the replay of a nonce
//! seen before. `sales.rs` (tickets) and `drops.rs` (merch) build on it.

use super::{outbox, StoreError, WriteCtx};
use crate::domain::error_code::ErrorCode;
use crate::domain::events::{Event, OrderCreated};
use crate::domain::ids::{CreatorId, DropId, OrderId, TicketId};
use crate::domain::manifest::EventSnapshot;
use crate::domain::money::{self, Line, Tender, Totals};
use crate::domain::receipt::{self, Attribution, IssuedTicket, Receipt};
use crate::domain::role::Actor;
use crate::domain::time::{format_rfc3339, Millis};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use std::sync::Arc;

pub use crate::domain::receipt::OrderKind;

/// An order as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct OrderView {
    pub id: OrderId,
    pub kind: String,
    pub status: String,
    pub receipt: Receipt,
    /// False when this box's key is not in the manifest's `box_keys`: its
    /// tickets then scan only at this box until the organiser lists it.
    pub tickets_scan_elsewhere: bool,
    /// True when this answer repeats an earlier request with the same nonce.
    #[serde(skip)]
    pub replayed: bool,
}

/// `box-5ac691eafff7a5be` → `5ac691`: short enough for ticket ids.
fn box_short(box_id: &str) -> &str {
    let s = box_id.strip_prefix("box-").unwrap_or(box_id);
    &s[..s.len().min(6)]
}

/// A new id for an order, hold or minted ticket, e.g.
/// `O-5ac691-k3v9q0x7m1b2d`: the box it came from, then 65 random bits
/// (13 base-32 characters, short enough for a ticket code's id), so
/// knowing one id (or the box id) tells nothing of the next.
pub(crate) fn next_id(ctx: &WriteCtx<'_>, prefix: &str) -> Result<String, StoreError> {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let tail: String = crate::secrets::random_bytes::<13>()
        .iter()
        .map(|b| ALPHABET[(b & 31) as usize] as char)
        .collect();
    Ok(format!("{prefix}-{}-{tail}", box_short(ctx.box_id)))
}

pub(crate) fn event(ctx: &WriteCtx<'_>) -> Result<Arc<EventSnapshot>, StoreError> {
    ctx.event.clone().ok_or(StoreError::NoEvent)
}

/// What an order request asked for, as `replay` compares it: SHA-256 of
/// the parameters' JSON (field names and values as serde writes them, an
/// encoding that changes only when the wire format does), stored as
/// `j1:HEX`. Rows written before it hold SHA-256 of Rust's `Debug` text
/// (no prefix), which a compiler upgrade may change: a replay of such an
/// order is compared with that too, so a retry across the upgrade is
/// still recognised.
pub(crate) struct RequestDigest {
    stable: String,
    legacy: String,
}

const DIGEST_PREFIX: &str = "j1:";

pub(crate) fn request_digest<P: serde::Serialize + std::fmt::Debug>(
    parameters: P,
) -> RequestDigest {
    use sha2::Digest;
    let json = serde_json::to_vec(&parameters).expect("order parameters serialise");
    RequestDigest {
        stable: format!("{DIGEST_PREFIX}{}", crate::secrets::hex(&sha2::Sha256::digest(&json))),
        legacy: crate::secrets::hex(&sha2::Sha256::digest(format!("{parameters:?}").as_bytes())),
    }
}

impl RequestDigest {
    /// What a new order row stores.
    pub fn as_str(&self) -> &str {
        &self.stable
    }

    /// Whether a stored digest is of this same request.
    pub fn matches(&self, stored: &str) -> bool {
        match stored.strip_prefix(DIGEST_PREFIX) {
            Some(_) => stored == self.stable,
            None => stored == self.legacy,
        }
    }
}

pub(crate) struct NewOrder<'a> {
    pub id: String,
    pub nonce: &'a str,
    /// [`request_digest`] of the request, for replays.
    pub request: &'a RequestDigest,
    pub kind: OrderKind,
    pub staff: &'a Actor,
    pub creator: Option<&'a CreatorId>,
    pub drop: Option<&'a str>,
    pub attendee: Option<&'a str>,
    pub reserve_eligible: bool,
    pub lines: Vec<Line>,
    pub tender: Option<Tender>,
    pub sponsored_by: Option<String>,
    pub now: Millis,
    /// Where its receipt prints (`printing::receipt_station`).
    pub station: String,
}

/// Totals, tender, receipt and the order row, with its outbox row. The
/// caller adds what is specific (tickets, stock movements) before or after.
pub(crate) fn record_order(
    ctx: &WriteCtx<'_>,
    ev: &EventSnapshot,
    o: NewOrder<'_>,
    tickets: Vec<IssuedTicket>,
) -> Result<OrderView, StoreError> {
    let e = &ev.manifest.event;
    let totals: Totals = money::totals(&o.lines, e.prices_include_tax)
        .map_err(|err| StoreError::invalid(ErrorCode::AmountOutOfRange, err.to_string()))?;
    let tender = match o.tender {
        Some(t) => t,
        None if totals.total_minor == 0 => Tender::NoCharge,
        None => {
            return Err(StoreError::invalid(
                ErrorCode::TenderRequired,
                format!(
                    "this order costs {}: add a tender (cash, card or comp)",
                    money::format_money(totals.total_minor, &e.currency)
                ),
            ))
        }
    };
    let change = money::settle(totals.total_minor, &tender, &e.currency)
        .map_err(|err| StoreError::invalid(ErrorCode::BadTender, err.to_string()))?;
    let attribution = o
        .creator
        .and_then(|c| ev.creator(c))
        .map(|c| Attribution { creator_id: c.id.to_string(), creator_name: c.name.clone() });
    let receipt = Receipt {
        order_id: o.id.clone(),
        event_name: e.name.clone(),
        box_id: ctx.box_id.to_string(),
        created_at: format_rfc3339(o.now),
        staff: o.staff.name.clone(),
        currency: e.currency.clone(),
        lines: totals.lines,
        taxes: totals.taxes,
        net_minor: totals.net_minor,
        tax_minor: totals.tax_minor,
        total_minor: totals.total_minor,
        prices_include_tax: e.prices_include_tax,
        tender,
        change_minor: change,
        attribution,
        sponsored_by: o.sponsored_by,
        tickets,
        proof: receipt::proof_code(
            &o.id,
            totals.total_minor,
            &e.currency,
            o.now,
            &ctx.identity.key,
        ),
    };
    let receipt_json =
        serde_json::to_string(&receipt).map_err(|err| StoreError::Internal(err.to_string()))?;
    ctx.conn
        .prepare_cached(
            "INSERT INTO orders (id, nonce, kind, status, created_at, staff, creator_id, drop_id, attendee_ticket_id,
                                 reserve_eligible, currency, total_minor, tax_minor, tender_kind, change_minor, receipt,
                                 request_sha256)
             VALUES (?1, ?2, ?3, 'paid', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        )?
        .execute(params![
            o.id,
            o.nonce,
            o.kind.as_str(),
            o.now,
            o.staff.name,
            o.creator.map(|c| c.as_str()),
            o.drop,
            o.attendee,
            o.reserve_eligible,
            receipt.currency,
            receipt.total_minor,
            receipt.tax_minor,
            receipt.tender.kind(),
            change,
            receipt_json,
            o.request.as_str(),
        ])?;
    let created = OrderCreated {
        order: OrderId(o.id.clone()),
        kind: o.kind,
        creator: o.creator.cloned(),
        drop: o.drop.map(|d| DropId(d.into())),
        attendee: o.attendee.map(|t| TicketId(t.into())),
        receipt: receipt.clone(),
    };
    outbox::append(ctx, &Event::OrderCreated(created), o.now)?;
    super::printing::enqueue(ctx, Some(&o.id), "receipt", &o.station, o.now)?;
    Ok(OrderView {
        id: OrderId(o.id),
        kind: o.kind.as_str().into(),
        status: "paid".into(),
        tickets_scan_elsewhere: ev.lists_box_key(&ctx.identity.key.verifying_key()),
        receipt,
        replayed: false,
    })
}

/// The stored answer for a nonce, if this order request was seen before.
/// `request` is [`request_digest`] of what this call asks for: the same
/// nonce with another kind or other parameters is a different request,
/// refused with a conflict.
pub(crate) fn replay(
    ctx: &WriteCtx<'_>,
    nonce: &str,
    kind: OrderKind,
    request: &RequestDigest,
) -> Result<Option<OrderView>, StoreError> {
    type Row = (String, String, String, String, Option<String>);
    let row: Option<Row> = ctx
        .conn
        .prepare_cached(
            "SELECT id, kind, status, receipt, request_sha256 FROM orders WHERE nonce = ?1",
        )?
        .query_row([nonce], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .optional()?;
    let Some((id, k, status, receipt, asked)) = row else {
        return Ok(None);
    };
    if k != kind.as_str() || asked.is_some_and(|a| !request.matches(&a)) {
        return Err(StoreError::NonceConflict(nonce.to_string()));
    }
    ctx.metrics.replayed();
    let receipt: Receipt =
        serde_json::from_str(&receipt).map_err(|e| StoreError::Internal(e.to_string()))?;
    let scan_elsewhere =
        ctx.event.as_ref().is_some_and(|ev| ev.lists_box_key(&ctx.identity.key.verifying_key()));
    Ok(Some(OrderView {
        id: OrderId(id),
        kind: k,
        status,
        receipt,
        tickets_scan_elsewhere: scan_elsewhere,
        replayed: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Tender;
    use sha2::Digest;

    fn sha(bytes: &[u8]) -> String {
        crate::secrets::hex(&sha2::Sha256::digest(bytes))
    }

    #[test]
    fn the_digest_is_of_the_parameters_json_and_rows_from_before_still_match() {
        let params =
            ("sale", "drop-1", vec![("TEE-M", 2u32)], Some(Tender::Cash { given_minor: 2000 }));
        let d = request_digest(params.clone());
        // The encoding, pinned: a change to it would make every retry of an
        // order sold before the change a conflict.
        let json = r#"["sale","drop-1",[["TEE-M",2]],{"kind":"cash","given_minor":2000}]"#;
        assert_eq!(d.as_str(), format!("j1:{}", sha(json.as_bytes())));
        assert!(d.matches(d.as_str()));
        // A row an earlier version wrote: the Debug text's hash, no prefix.
        let before = sha(format!("{params:?}").as_bytes());
        assert!(d.matches(&before), "a retry across the upgrade is the same request");
        assert!(!d.matches(&format!("j1:{before}")));
        // Another request, either way: a conflict.
        let other = request_digest(("sale", "drop-1", vec![("TEE-M", 3u32)], None::<Tender>));
        assert!(!other.matches(d.as_str()));
        assert!(!other.matches(&before));
    }
}
