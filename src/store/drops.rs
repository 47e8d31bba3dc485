//! Drops and their stock: creating and editing drops, the inventory
//! ledger (every movement a row, stock on hand its sum), cart holds that
//! expire by themselves, checkout into orders, returns on void/refund, and
//! cycling unsold stock when a drop closes.
//!
//! Availability is computed inside the writer's transaction from the
//! ledger-backed stock table and the unexpired holds, so concurrent
//! devices can never sell one unit twice.

use super::orders::{
    event, next_id, record_order, replay, request_digest, NewOrder, OrderKind, OrderView,
    RequestDigest,
};
use super::scans::listed_ticket;
use super::{audit, outbox, Store, StoreError, WriteCtx};
use crate::domain::checkin::{self, Resolution};
use crate::domain::drops::{self as rules, HoldRefusal, Phase, Stock};
use crate::domain::error_code::ErrorCode;
use crate::domain::events::{CycledStock, DropCycled, DropSaved, Event, InventoryMoved};
use crate::domain::ids::{DropId, HoldId, Sku, TicketId, TierId};
use crate::domain::manifest::{validate_drop, DropSpec, EventSnapshot, OnClose, TicketStatus};
use crate::domain::money::{self, Line, Tender, Totals};
use crate::domain::role::Actor;
use crate::domain::time::{format_rfc3339, parse_rfc3339, Millis};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::collections::BTreeMap;

/// The pool: stock that belongs to no drop.
pub const POOL: &str = "";

struct StoredDrop {
    spec: DropSpec,
    opens: Millis,
    closes: Millis,
    source: String,
    cycled_at: Option<Millis>,
}

fn load_drop(conn: &Connection, id: &str) -> Result<Option<StoredDrop>, StoreError> {
    let row: Option<(String, Millis, Millis, String, Option<Millis>)> = conn
        .prepare_cached(
            "SELECT spec, opens_at, closes_at, source, cycled_at FROM drops WHERE id = ?1",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .optional()?;
    row.map(|(spec, opens, closes, source, cycled_at)| {
        let spec = serde_json::from_str(&spec)
            .map_err(|e| StoreError::Internal(format!("drop {id}: {e}")))?;
        Ok(StoredDrop { spec, opens, closes, source, cycled_at })
    })
    .transpose()
}

fn drop_or_404(conn: &Connection, id: &str) -> Result<StoredDrop, StoreError> {
    load_drop(conn, id)?.ok_or_else(|| StoreError::NotFound(format!("drop '{id}'")))
}

fn millis(s: &str) -> Result<Millis, StoreError> {
    parse_rfc3339(s).map_err(|e| StoreError::invalid(ErrorCode::BadTime, e))
}

fn refuse(r: HoldRefusal) -> StoreError {
    match r {
        HoldRefusal::UnknownProduct { .. } | HoldRefusal::AttendeeRequired | HoldRefusal::Empty => {
            StoreError::invalid(r.code(), r.to_string())
        }
        _ => StoreError::refused(r.code(), r.to_string()),
    }
}

/// Appends one ledger row, keeps the stock table equal to the ledger, and
/// tells the cloud, all in the caller's transaction.
#[expect(clippy::too_many_arguments)]
pub(super) fn move_stock(
    ctx: &WriteCtx<'_>,
    drop: &str,
    sku: &str,
    delta: i64,
    reason: &str,
    reference: Option<&str>,
    actor: &str,
    note: Option<&str>,
    now: Millis,
) -> Result<(), StoreError> {
    ctx.conn
        .prepare_cached("INSERT INTO inventory_ledger (at, drop_id, sku, delta, reason, ref, actor, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?
        .execute(params![now, drop, sku, delta, reason, reference, actor, note])?;
    let on_hand: i64 = ctx
        .conn
        .prepare_cached(
            "INSERT INTO stock (drop_id, sku, on_hand) VALUES (?1, ?2, ?3)
             ON CONFLICT (drop_id, sku) DO UPDATE SET on_hand = on_hand + excluded.on_hand RETURNING on_hand",
        )?
        .query_row(params![drop, sku, delta], |r| r.get(0))?;
    if on_hand < 0 {
        return Err(StoreError::Internal(format!("stock of {sku} in '{drop}' would go negative")));
    }
    let moved = InventoryMoved {
        drop: DropId(drop.into()),
        sku: sku.into(),
        delta,
        reason: reason.into(),
        reference: reference.map(str::to_string),
        actor: actor.into(),
        note: note.map(str::to_string),
        on_hand,
    };
    outbox::append(ctx, &Event::InventoryMoved(moved), now)?;
    Ok(())
}

fn on_hand(conn: &Connection, drop: &str, sku: &str) -> Result<(i64, i64), StoreError> {
    Ok(conn
        .prepare_cached("SELECT on_hand, eligible_sold FROM stock WHERE drop_id = ?1 AND sku = ?2")?
        .query_row([drop, sku], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, 0)))
}

/// Units of a product in unexpired holds (optionally only reserve holders').
fn held(
    conn: &Connection,
    drop: &str,
    sku: &str,
    now: Millis,
    eligible_only: bool,
) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT COALESCE(SUM(hi.qty), 0) FROM holds h JOIN hold_items hi ON hi.hold_id = h.id
             WHERE h.drop_id = ?1 AND h.status = 'active' AND h.expires_at > ?2 AND hi.sku = ?3
               AND (?4 = 0 OR h.reserve_eligible = 1) AND h.escrow_of IS NULL",
        )?
        .query_row(params![drop, now, sku, eligible_only], |r| r.get(0))?)
}

fn stock_of(
    conn: &Connection,
    d: &StoredDrop,
    sku: &str,
    now: Millis,
) -> Result<Stock, StoreError> {
    let (on_hand, eligible_sold) = on_hand(conn, d.spec.id.as_str(), sku)?;
    let held_all = held(conn, d.spec.id.as_str(), sku, now, false)?;
    let reserved_left = match &d.spec.reserve {
        None => 0,
        Some(r) => {
            let taken = eligible_sold + held(conn, d.spec.id.as_str(), sku, now, true)?;
            rules::reserved_left(r.quantity, millis(&r.release_at)?, now, taken)
        }
    };
    Ok(Stock { on_hand, held: held_all, reserved_left })
}

/// Units of a product nobody holds and no reserve keeps back: what the
/// primary may lend a satellite.
pub(super) fn pool_free(
    conn: &Connection,
    drop: &str,
    sku: &str,
    now: Millis,
) -> Result<i64, StoreError> {
    let d = drop_or_404(conn, drop)?;
    Ok(stock_of(conn, &d, sku, now)?.available(false))
}

/// On a satellite: the name its escrow is under.
fn own_escrow(conn: &Connection, satellite: bool) -> Result<Option<String>, StoreError> {
    Ok(if satellite { super::replica::state_of(conn, "node")? } else { None })
}

/// Units an attendee holds or bought in a drop.
fn attendee_units(
    conn: &Connection,
    drop: &str,
    attendee: &str,
    now: Millis,
) -> Result<i64, StoreError> {
    let held: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(hi.qty), 0) FROM holds h JOIN hold_items hi ON hi.hold_id = h.id
             WHERE h.drop_id = ?1 AND h.attendee_ticket_id = ?2 AND h.status = 'active' AND h.expires_at > ?3",
        )?
        .query_row(params![drop, attendee, now], |r| r.get(0))?;
    let bought: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(oi.qty), 0) FROM orders o JOIN order_items oi ON oi.order_id = o.id
             WHERE o.drop_id = ?1 AND o.attendee_ticket_id = ?2 AND o.status = 'paid'",
        )?
        .query_row(params![drop, attendee], |r| r.get(0))?;
    Ok(held + bought)
}

/// The buyer's ticket, from its scanned code: it must be a valid ticket.
fn attendee(
    ctx: &WriteCtx<'_>,
    ev: &EventSnapshot,
    code: &str,
) -> Result<(TicketId, TierId), StoreError> {
    let bad = |why: &str| {
        StoreError::invalid(
            ErrorCode::AttendeeTicketInvalid,
            format!("the buyer's ticket does not count: {why}"),
        )
    };
    let facts = match checkin::resolve(code, ev) {
        Resolution::Rejected(r) => return Err(bad(r.advice())),
        Resolution::Lookup { key, claim, unlisted } => {
            let listed = listed_ticket(ctx.conn, &key)?;
            checkin::facts(code, claim, listed, unlisted, ev).map_err(|r| bad(r.advice()))?
        }
    };
    if facts.revoked || facts.blocked || facts.ticket.status != TicketStatus::Paid {
        return Err(bad("it is revoked, blocked, unpaid or cancelled"));
    }
    Ok((facts.ticket.id, facts.ticket.tier))
}

fn line_for(ev: &EventSnapshot, spec: &DropSpec, sku: &str, qty: u32) -> Result<Line, StoreError> {
    let p = spec
        .products
        .iter()
        .find(|p| p.sku.as_str() == sku)
        .ok_or_else(|| refuse(HoldRefusal::UnknownProduct { sku: sku.into() }))?;
    Ok(Line {
        item: format!("{}/{}", spec.id, p.sku),
        name: p.name.clone(),
        variant: p.variant.clone(),
        qty,
        unit_minor: p.price_minor,
        list_unit_minor: None,
        tax_rate_bp: p.tax_rate_bp.unwrap_or(ev.manifest.event.tax_rate_bp),
    })
}

pub struct HoldRequest {
    pub drop: DropId,
    pub items: Vec<(Sku, u32)>,
    /// The buyer's scanned ticket code, for per-attendee limits and reserves.
    pub attendee_code: Option<String>,
    pub nonce: String,
    pub staff: Actor,
    pub now: Millis,
    pub ttl_ms: Millis,
    /// At a satellite cut off from the primary: out of its escrow.
    pub apart: bool,
    /// The satellite that forwarded the sale: its receipt prints there.
    pub satellite: Option<String>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct HoldView {
    pub id: HoldId,
    pub drop: DropId,
    pub status: String,
    pub expires_at: String,
    pub attendee: Option<String>,
    pub reserve_eligible: bool,
    pub totals: Totals,
    pub currency: String,
}

/// (SKU, quantity) pairs of a hold.
type HoldItems = Vec<(String, u32)>;

fn read_hold(
    ctx: &WriteCtx<'_>,
    ev: &EventSnapshot,
    id: &str,
) -> Result<Option<(HoldView, HoldItems)>, StoreError> {
    let row: Option<(String, Option<String>, bool, Millis, String)> = ctx
        .conn
        .prepare_cached("SELECT drop_id, attendee_ticket_id, reserve_eligible, expires_at, status FROM holds WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .optional()?;
    let Some((drop, attendee, eligible, expires_at, status)) = row else {
        return Ok(None);
    };
    let items: HoldItems = ctx
        .conn
        .prepare_cached("SELECT sku, qty FROM hold_items WHERE hold_id = ?1 ORDER BY sku")?
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let d = drop_or_404(ctx.conn, &drop)?;
    let lines = items
        .iter()
        .map(|(sku, qty)| line_for(ev, &d.spec, sku, *qty))
        .collect::<Result<Vec<_>, _>>()?;
    let view = HoldView {
        id: HoldId(id.to_string()),
        drop: DropId(drop),
        status,
        expires_at: format_rfc3339(expires_at),
        attendee,
        reserve_eligible: eligible,
        totals: money::totals(&lines, ev.manifest.event.prices_include_tax)
            .map_err(|err| StoreError::invalid(ErrorCode::AmountOutOfRange, err.to_string()))?,
        currency: ev.manifest.event.currency.clone(),
    };
    Ok(Some((view, items)))
}

fn create_hold_in(ctx: &WriteCtx<'_>, req: &HoldRequest) -> Result<HoldView, StoreError> {
    let ev = event(ctx)?;
    let existing: Option<String> = ctx
        .conn
        .prepare_cached("SELECT id FROM holds WHERE nonce = ?1")?
        .query_row([&req.nonce], |r| r.get(0))
        .optional()?;
    if let Some(id) = existing {
        // A replay gets the first answer; the same nonce for another drop
        // or other items is a different request, refused like an order's.
        let (view, held) = read_hold(ctx, &ev, &id)?.expect("hold exists");
        let mut asked: BTreeMap<String, u32> = BTreeMap::new();
        for (sku, qty) in &req.items {
            *asked.entry(sku.as_str().to_string()).or_default() += qty;
        }
        asked.retain(|_, q| *q > 0);
        let held: BTreeMap<String, u32> = held.into_iter().collect();
        if view.drop != req.drop || held != asked {
            return Err(StoreError::NonceConflict(req.nonce.clone()));
        }
        return Ok(view);
    }
    let d = drop_or_404(ctx.conn, req.drop.as_str())?;
    rules::check_open(d.opens, d.closes, req.now).map_err(refuse)?;
    let mut items: BTreeMap<&str, u32> = BTreeMap::new();
    for (sku, qty) in &req.items {
        *items.entry(sku.as_str()).or_default() += qty;
    }
    items.retain(|_, q| *q > 0);
    if items.is_empty() {
        return Err(refuse(HoldRefusal::Empty));
    }
    let buyer = req.attendee_code.as_deref().map(|c| attendee(ctx, &ev, c)).transpose()?;
    if d.spec.per_attendee_limit.is_some() && buyer.is_none() {
        return Err(refuse(HoldRefusal::AttendeeRequired));
    }
    let eligible = match (&d.spec.reserve, &buyer) {
        (Some(r), Some((id, tier))) => r.tiers.contains(tier) || r.members.contains(id),
        _ => false,
    };
    let escrow_of = if req.apart { Some(super::escrow::apart_node(ctx, req.now)?) } else { None };
    for (&sku, &qty) in &items {
        line_for(&ev, &d.spec, sku, qty)?;
        let available = match &escrow_of {
            None => stock_of(ctx.conn, &d, sku, req.now)?.available(eligible),
            Some(node) => {
                let it = super::escrow::Item::sku(req.drop.as_str(), sku);
                let (units, _) = super::escrow::loan(ctx.conn, node, &it)?;
                units - super::escrow::held_apart(ctx.conn, node, req.drop.as_str(), sku, req.now)?
            }
        };
        if (qty as i64) > available {
            return Err(refuse(HoldRefusal::NotEnoughStock { sku: sku.into(), available }));
        }
    }
    if let Some((id, _)) = &buyer {
        let already = attendee_units(ctx.conn, req.drop.as_str(), id.as_str(), req.now)?;
        rules::check_attendee_limit(
            d.spec.per_attendee_limit,
            already,
            items.values().map(|q| *q as i64).sum(),
        )
        .map_err(refuse)?;
    }
    let id = next_id(ctx, "H")?;
    ctx.conn
        .prepare_cached(
            "INSERT INTO holds (id, nonce, drop_id, attendee_ticket_id, reserve_eligible, created_at, expires_at, staff, status, escrow_of)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'active', ?9)",
        )?
        .execute(params![id, req.nonce, req.drop.as_str(), buyer.as_ref().map(|b| b.0.as_str()), eligible, req.now, req.now + req.ttl_ms, req.staff.name, escrow_of])?;
    for (sku, qty) in &items {
        ctx.conn
            .prepare_cached("INSERT INTO hold_items (hold_id, sku, qty) VALUES (?1, ?2, ?3)")?
            .execute(params![id, sku, qty])?;
    }
    Ok(read_hold(ctx, &ev, &id)?.expect("just inserted").0)
}

/// Where a sale is made: at a satellite apart (out of its escrow), or
/// forwarded by a satellite (`satellite`: its receipt prints there).
#[derive(Clone, Debug, Default)]
pub struct Counter {
    pub apart: bool,
    pub satellite: Option<String>,
}

/// Where a checkout is decided: joined (the primary's stock), or at a
/// satellite apart (its escrow), where a one-step sale has already marked
/// the decision when it made its hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Joined,
    Apart,
    ApartMarked,
}

impl Side {
    fn of(apart: bool) -> Side {
        if apart {
            Side::Apart
        } else {
            Side::Joined
        }
    }
}

/// `request`: the digest of what the caller asked (a checkout of this
/// hold, or a one-step sale), compared on a replay.
#[expect(clippy::too_many_arguments)]
fn checkout_in(
    ctx: &WriteCtx<'_>,
    hold: &str,
    tender: Option<Tender>,
    nonce: &str,
    request: &RequestDigest,
    staff: &Actor,
    now: Millis,
    side: Side,
    satellite: Option<&str>,
) -> Result<OrderView, StoreError> {
    let apart = side != Side::Joined;
    if let Some(v) = replay(ctx, nonce, OrderKind::Drop, request)? {
        return Ok(v);
    }
    let ev = event(ctx)?;
    let row: Option<Option<String>> = ctx
        .conn
        .prepare_cached("SELECT escrow_of FROM holds WHERE id = ?1")?
        .query_row([hold], |r| r.get(0))
        .optional()?;
    let escrow_of = row.clone().flatten();
    if row.is_some() && apart != escrow_of.is_some() {
        return Err(StoreError::refused(
            ErrorCode::HoldNotActive,
            if apart {
                format!("hold {hold} was made at the main box, which this entrance cannot reach now: make a new hold here")
            } else {
                format!("hold {hold} was made while this entrance was cut off from the main box: make a new hold")
            },
        ));
    }
    if side == Side::Apart {
        super::escrow::apart_node(ctx, now)?;
    }
    let (view, items) =
        read_hold(ctx, &ev, hold)?.ok_or_else(|| StoreError::NotFound(format!("hold {hold}")))?;
    let expires = millis(&view.expires_at)?;
    if view.status != "active" || expires <= now {
        let why = if view.status == "active" || view.status == "expired" {
            "expired".to_string()
        } else {
            view.status.replace('_', " ")
        };
        return Err(StoreError::refused(
            ErrorCode::HoldNotActive,
            format!("hold {hold} is {why}: its items went back on sale; make a new hold"),
        ));
    }
    let d = drop_or_404(ctx.conn, view.drop.as_str())?;
    let lines = items
        .iter()
        .map(|(sku, qty)| line_for(&ev, &d.spec, sku, *qty))
        .collect::<Result<Vec<_>, _>>()?;
    let id = next_id(ctx, "O")?;
    let order = record_order(
        ctx,
        &ev,
        NewOrder {
            id: id.clone(),
            nonce,
            request,
            kind: OrderKind::Drop,
            staff,
            creator: Some(&d.spec.creator),
            drop: Some(view.drop.as_str()),
            attendee: view.attendee.as_deref(),
            reserve_eligible: view.reserve_eligible,
            lines,
            tender,
            sponsored_by: None,
            now,
            station: super::printing::receipt_station(ctx, apart, satellite)?,
        },
        vec![],
    )?;
    for (sku, qty) in &items {
        ctx.conn
            .prepare_cached(
                "INSERT INTO order_items (order_id, drop_id, sku, qty) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![id, view.drop.as_str(), sku, qty])?;
        if let Some(node) = &escrow_of {
            // Apart, out of this satellite's escrow: the merge on the
            // primary writes the ledger's rows.
            let it = super::escrow::Item::sku(view.drop.as_str(), sku);
            super::escrow::take(ctx.conn, node, &it, *qty as i64, |left| {
                refuse(HoldRefusal::NotEnoughStock { sku: sku.clone(), available: left })
            })?;
            continue;
        }
        move_stock(
            ctx,
            view.drop.as_str(),
            sku,
            -(*qty as i64),
            "sale",
            Some(&id),
            &staff.name,
            None,
            now,
        )?;
        if view.reserve_eligible {
            ctx.conn
                .prepare_cached("UPDATE stock SET eligible_sold = eligible_sold + ?1 WHERE drop_id = ?2 AND sku = ?3")?
                .execute(params![qty, view.drop.as_str(), sku])?;
        }
    }
    ctx.conn
        .prepare_cached("UPDATE holds SET status = 'checked_out', order_id = ?1 WHERE id = ?2")?
        .execute([&id, hold])?;
    Ok(order)
}

fn order_items(conn: &Connection, order: &str) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT sku, qty FROM order_items WHERE order_id = ?1")?
        .query_map([order], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?)
}

/// Puts a voided or refunded drop order's units back: into its drop while
/// that drop has not been cycled, else into the pool. With `loan` (a
/// satellite's node, and whether this is the primary merging its close),
/// into the satellite's loan instead: at the satellite apart only the loan
/// (its copy's stock is the primary's); on the primary, back into the
/// stock by the ledger and out again to the loan.
pub(crate) fn return_order_stock(
    ctx: &WriteCtx<'_>,
    drop: &str,
    order: &str,
    reason: &str,
    actor: &Actor,
    now: Millis,
    loan: Option<(&str, bool)>,
) -> Result<(), StoreError> {
    let items = order_items(ctx.conn, order)?;
    if let Some((node, merged)) = loan {
        for (sku, qty) in items {
            if merged {
                move_stock(ctx, drop, &sku, qty, reason, Some(order), &actor.name, None, now)?;
                move_stock(
                    ctx,
                    drop,
                    &sku,
                    -qty,
                    "transfer_out",
                    Some(node),
                    &actor.name,
                    None,
                    now,
                )?;
            }
            super::escrow::give(ctx.conn, node, &super::escrow::Item::sku(drop, &sku), qty)?;
        }
        return Ok(());
    }
    let d = drop_or_404(ctx.conn, drop)?;
    let eligible: bool = ctx
        .conn
        .prepare_cached("SELECT reserve_eligible FROM orders WHERE id = ?1")?
        .query_row([order], |r| r.get(0))?;
    let target = if d.cycled_at.is_some() { POOL } else { drop };
    for (sku, qty) in items {
        move_stock(ctx, target, &sku, qty, reason, Some(order), &actor.name, None, now)?;
        if eligible && target == drop {
            ctx.conn
                .prepare_cached("UPDATE stock SET eligible_sold = MAX(0, eligible_sold - ?1) WHERE drop_id = ?2 AND sku = ?3")?
                .execute(params![qty, drop, sku])?;
        }
    }
    Ok(())
}

/// Inserts or updates a drop; new products get their initial stock once.
fn save_drop(
    ctx: &WriteCtx<'_>,
    spec: &DropSpec,
    source: &str,
    actor: &str,
    now: Millis,
) -> Result<(), StoreError> {
    let opens = millis(&spec.opens_at)?;
    let closes = millis(&spec.closes_at)?;
    let json = serde_json::to_string(spec).map_err(|e| StoreError::Internal(e.to_string()))?;
    ctx.conn
        .prepare_cached(
            "INSERT INTO drops (id, spec, opens_at, closes_at, source, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, opens_at = excluded.opens_at,
                 closes_at = excluded.closes_at, updated_at = excluded.updated_at",
        )?
        .execute(params![spec.id.as_str(), json, opens, closes, source, now])?;
    for p in &spec.products {
        let seen: bool = ctx
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM inventory_ledger WHERE drop_id = ?1 AND sku = ?2)",
            )?
            .query_row([spec.id.as_str(), p.sku.as_str()], |r| r.get(0))?;
        if !seen {
            move_stock(
                ctx,
                spec.id.as_str(),
                p.sku.as_str(),
                p.quantity as i64,
                "initial",
                None,
                actor,
                None,
                now,
            )?;
        }
    }
    outbox::append(
        ctx,
        &Event::DropSaved(DropSaved { drop: spec.clone(), source: source.into() }),
        now,
    )?;
    Ok(())
}

/// Called by manifest import: manifest drops are added, or updated while
/// they have not closed and cycled. Drops made on the box are left alone.
pub(crate) fn import_manifest_drops(
    ctx: &WriteCtx<'_>,
    ev: &EventSnapshot,
    actor: &str,
    now: Millis,
) -> Result<(), StoreError> {
    for spec in &ev.manifest.drops {
        match load_drop(ctx.conn, spec.id.as_str())? {
            Some(d) if d.source != "manifest" || d.cycled_at.is_some() || d.spec == *spec => {}
            _ => save_drop(ctx, spec, "manifest", actor, now)?,
        }
    }
    Ok(())
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ProductView {
    pub sku: Sku,
    pub name: String,
    pub variant: Option<String>,
    pub price_minor: i64,
    #[serde(flatten)]
    pub stock: Stock,
    /// What anyone may buy now (reserve holders may buy `reserved_left` more).
    pub available: i64,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct DropView {
    pub id: DropId,
    pub name: String,
    pub creator: String,
    pub opens_at: String,
    pub closes_at: String,
    pub phase: Phase,
    pub per_attendee_limit: Option<u32>,
    pub on_close: OnClose,
    pub reserve: Option<crate::domain::manifest::Reserve>,
    pub source: String,
    pub cycled: bool,
    pub currency: String,
    pub products: Vec<ProductView>,
}

/// Saves an admin's drop, audits it, and answers with the drop as it now is.
fn saved(
    ctx: &WriteCtx<'_>,
    ev: &EventSnapshot,
    spec: &DropSpec,
    source: &str,
    (action, actor): (&str, &Actor),
    now: Millis,
) -> Result<DropView, StoreError> {
    save_drop(ctx, spec, source, &actor.name, now)?;
    audit::record(ctx, actor, action, spec, now)?;
    drop_view(
        ctx.conn,
        &drop_or_404(ctx.conn, spec.id.as_str())?,
        now,
        &ev.manifest.event.currency,
        None,
    )
}

fn drop_view(
    conn: &Connection,
    d: &StoredDrop,
    now: Millis,
    currency: &str,
    escrow_of: Option<&str>,
) -> Result<DropView, StoreError> {
    let mut products = Vec::new();
    let mut left_for_anyone = 0;
    for p in &d.spec.products {
        let stock = stock_of(conn, d, p.sku.as_str(), now)?;
        // A satellite (its reads are its own only while apart) sells out
        // of its escrow.
        let (anyone, available) = match escrow_of {
            None => (stock.available(true), stock.available(false)),
            Some(node) => {
                let it = super::escrow::Item::sku(d.spec.id.as_str(), p.sku.as_str());
                let (units, _) = super::escrow::loan(conn, node, &it)?;
                let held =
                    super::escrow::held_apart(conn, node, d.spec.id.as_str(), p.sku.as_str(), now)?;
                let left = (units - held).max(0);
                (left, left)
            }
        };
        left_for_anyone += anyone;
        products.push(ProductView {
            sku: p.sku.clone(),
            name: p.name.clone(),
            variant: p.variant.clone(),
            price_minor: p.price_minor,
            available,
            stock,
        });
    }
    Ok(DropView {
        id: d.spec.id.clone(),
        name: d.spec.name.clone(),
        creator: d.spec.creator.to_string(),
        opens_at: d.spec.opens_at.clone(),
        closes_at: d.spec.closes_at.clone(),
        phase: rules::phase(d.opens, d.closes, now, left_for_anyone),
        per_attendee_limit: d.spec.per_attendee_limit,
        on_close: d.spec.on_close,
        reserve: d.spec.reserve.clone(),
        source: d.source.clone(),
        cycled: d.cycled_at.is_some(),
        currency: currency.to_string(),
        products,
    })
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct LedgerRow {
    pub id: i64,
    pub at: String,
    pub drop: String,
    pub sku: String,
    pub delta: i64,
    pub reason: String,
    pub reference: Option<String>,
    pub actor: String,
    pub note: Option<String>,
}

/// What housekeeping did.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Housekeeping {
    pub holds_expired: usize,
    pub drops_cycled: Vec<String>,
}

fn check_drop_spec(ev: &EventSnapshot, spec: &DropSpec) -> Result<(), StoreError> {
    validate_drop(spec, |t| ev.tier(t).is_some())
        .map_err(|e| StoreError::invalid(ErrorCode::InvalidDrop, e.to_string()))?;
    if ev.creator(&spec.creator).is_none() {
        return Err(StoreError::invalid(
            ErrorCode::InvalidDrop,
            format!(
                "drop '{}' names creator '{}', who is not in the manifest",
                spec.id, spec.creator
            ),
        ));
    }
    Ok(())
}

impl Store {
    pub async fn create_hold(&self, req: HoldRequest) -> Result<HoldView, StoreError> {
        if req.apart {
            return self.write_apart(move |ctx| create_hold_in(ctx, &req)).await;
        }
        self.write(move |ctx| create_hold_in(ctx, &req)).await
    }

    pub async fn release_hold(
        &self,
        id: HoldId,
        actor: Actor,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.write(move |ctx| {
            let n = ctx
                .conn
                .prepare_cached(
                    "UPDATE holds SET status = 'released' WHERE id = ?1 AND status = 'active'",
                )?
                .execute([id.as_str()])?;
            if n == 0 {
                let exists: bool = ctx.conn.query_row(
                    "SELECT EXISTS (SELECT 1 FROM holds WHERE id = ?1)",
                    [id.as_str()],
                    |r| r.get(0),
                )?;
                return Err(if exists {
                    StoreError::Conflict(format!("hold {id} is no longer active"))
                } else {
                    StoreError::NotFound(format!("hold {id}"))
                });
            }
            audit::record(ctx, &actor, "hold.release", &serde_json::json!({"hold": id}), now)
        })
        .await
    }

    /// Turns an active hold into a paid order.
    pub async fn checkout_hold(
        &self,
        hold: HoldId,
        tender: Option<Tender>,
        nonce: String,
        staff: Actor,
        now: Millis,
        at: Counter,
    ) -> Result<OrderView, StoreError> {
        let apart = at.apart;
        let job = move |ctx: &mut WriteCtx<'_>| {
            let request = request_digest(("checkout", &hold, &tender));
            let side = Side::of(at.apart);
            checkout_in(
                ctx,
                hold.as_str(),
                tender,
                &nonce,
                &request,
                &staff,
                now,
                side,
                at.satellite.as_deref(),
            )
        };
        if apart {
            return self.write_apart(job).await;
        }
        self.write(job).await
    }

    /// Hold and checkout in one step, for a sale that needs no cart.
    pub async fn sell_drop(
        &self,
        req: HoldRequest,
        tender: Option<Tender>,
    ) -> Result<OrderView, StoreError> {
        let apart = req.apart;
        let job = move |ctx: &mut WriteCtx<'_>| {
            let request =
                request_digest(("sale", &req.drop, &req.items, &req.attendee_code, &tender));
            if let Some(v) = replay(ctx, &req.nonce, OrderKind::Drop, &request)? {
                return Ok(v);
            }
            let order_nonce = req.nonce.clone();
            let hold_req = HoldRequest { nonce: format!("sale:{order_nonce}"), ..req };
            let hold = create_hold_in(ctx, &hold_req)?;
            let (staff, now) = (&hold_req.staff, hold_req.now);
            let side = if apart { Side::ApartMarked } else { Side::Joined };
            let satellite = hold_req.satellite.as_deref();
            checkout_in(
                ctx,
                hold.id.as_str(),
                tender,
                &order_nonce,
                &request,
                staff,
                now,
                side,
                satellite,
            )
        };
        if apart {
            return self.write_apart(job).await;
        }
        self.write(job).await
    }

    pub async fn create_drop(
        &self,
        spec: DropSpec,
        actor: Actor,
        now: Millis,
    ) -> Result<DropView, StoreError> {
        self.write(move |ctx| {
            let ev = event(ctx)?;
            check_drop_spec(&ev, &spec)?;
            if load_drop(ctx.conn, spec.id.as_str())?.is_some() {
                return Err(StoreError::Conflict(format!(
                    "drop '{}' exists: edit it instead",
                    spec.id
                )));
            }
            saved(ctx, &ev, &spec, "box", ("drop.create", &actor), now)
        })
        .await
    }

    /// Replaces a drop's description. Quantities of existing products are
    /// not changed here (restock does that); new products get theirs.
    pub async fn update_drop(
        &self,
        spec: DropSpec,
        actor: Actor,
        now: Millis,
    ) -> Result<DropView, StoreError> {
        self.write(move |ctx| {
            let ev = event(ctx)?;
            check_drop_spec(&ev, &spec)?;
            let old = drop_or_404(ctx.conn, spec.id.as_str())?;
            if old.cycled_at.is_some() {
                return Err(StoreError::Conflict(format!(
                    "drop '{}' has closed and its stock has moved on",
                    spec.id
                )));
            }
            for p in &old.spec.products {
                if !spec.products.iter().any(|n| n.sku == p.sku)
                    && on_hand(ctx.conn, spec.id.as_str(), p.sku.as_str())?.0 > 0
                {
                    return Err(StoreError::Conflict(format!(
                        "product {} still has stock in this drop: move it to the pool first",
                        p.sku
                    )));
                }
            }
            saved(ctx, &ev, &spec, &old.source, ("drop.update", &actor), now)
        })
        .await
    }

    /// Adds stock to a drop's product (new stock, or from the pool).
    #[expect(clippy::too_many_arguments)]
    pub async fn restock(
        &self,
        drop: DropId,
        sku: Sku,
        quantity: u32,
        reason: String,
        from_pool: bool,
        actor: Actor,
        now: Millis,
    ) -> Result<DropView, StoreError> {
        self.write(move |ctx| {
            let ev = event(ctx)?;
            let d = drop_or_404(ctx.conn, drop.as_str())?;
            if !d.spec.products.iter().any(|p| p.sku == sku) {
                return Err(refuse(HoldRefusal::UnknownProduct { sku: sku.to_string() }));
            }
            if quantity == 0 || reason.trim().is_empty() {
                return Err(StoreError::invalid(ErrorCode::BadRestock, "a restock needs a quantity of 1 or more and a reason"));
            }
            if d.cycled_at.is_some() {
                return Err(StoreError::Conflict(format!("drop '{drop}' has closed: restock the next drop instead")));
            }
            if from_pool {
                let in_pool = on_hand(ctx.conn, POOL, sku.as_str())?.0;
                if in_pool < quantity as i64 {
                    return Err(StoreError::refused(ErrorCode::PoolShort, format!("the pool has only {in_pool} of {sku}")));
                }
                move_stock(ctx, POOL, sku.as_str(), -(quantity as i64), "transfer_out", Some(drop.as_str()), &actor.name, Some(&reason), now)?;
                move_stock(ctx, drop.as_str(), sku.as_str(), quantity as i64, "transfer_in", Some(POOL), &actor.name, Some(&reason), now)?;
            } else {
                move_stock(ctx, drop.as_str(), sku.as_str(), quantity as i64, "restock", None, &actor.name, Some(&reason), now)?;
            }
            audit::record(ctx, &actor, "drop.restock", &serde_json::json!({"drop": drop, "sku": sku, "quantity": quantity, "from_pool": from_pool}), now)?;
            drop_view(ctx.conn, &d, now, &ev.manifest.event.currency, None)
        })
        .await
    }

    /// Marks expired holds and cycles the stock of drops that have closed
    /// (once no unexpired hold remains in them).
    pub async fn housekeeping(&self, now: Millis) -> Result<Housekeeping, StoreError> {
        self.write(move |ctx| {
            let mut done = Housekeeping {
                holds_expired: ctx
                    .conn
                    .prepare_cached("UPDATE holds SET status = 'expired' WHERE status = 'active' AND expires_at <= ?1")?
                    .execute([now])?,
                ..Default::default()
            };
            // Receipts no printer took in time are not printed on their own
            // any more (a box without a printer must not pile them up).
            ctx.conn
                .prepare_cached("UPDATE print_jobs SET status = 'skipped' WHERE status = 'pending' AND created_at < ?1")?
                .execute([now - super::printing::STALE_AFTER_MS])?;
            let due: Vec<String> = ctx
                .conn
                .prepare_cached(
                    "SELECT id FROM drops d WHERE cycled_at IS NULL AND closes_at <= ?1
                     AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.drop_id = d.id AND h.status = 'active')
                     ORDER BY closes_at",
                )?
                .query_map([now], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for id in due {
                cycle(ctx, &id, now)?;
                done.drops_cycled.push(id);
            }
            Ok(done)
        })
        .await
    }

    pub async fn drops(&self, now: Millis) -> Result<Vec<DropView>, StoreError> {
        let currency = self.event().map(|e| e.manifest.event.currency.clone()).unwrap_or_default();
        let satellite = self.replica().role() == super::replica::Role::Satellite;
        self.read(move |conn| {
            let node = own_escrow(conn, satellite)?;
            let ids: Vec<String> = conn
                .prepare_cached("SELECT id FROM drops ORDER BY opens_at, id")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            ids.iter()
                .map(|id| drop_view(conn, &drop_or_404(conn, id)?, now, &currency, node.as_deref()))
                .collect()
        })
        .await
    }

    pub async fn drop_detail(&self, id: DropId, now: Millis) -> Result<DropView, StoreError> {
        let currency = self.event().map(|e| e.manifest.event.currency.clone()).unwrap_or_default();
        let satellite = self.replica().role() == super::replica::Role::Satellite;
        self.read(move |conn| {
            let node = own_escrow(conn, satellite)?;
            drop_view(conn, &drop_or_404(conn, id.as_str())?, now, &currency, node.as_deref())
        })
        .await
    }

    /// The ledger of one drop, or of the pool with `""`, oldest first,
    /// with stock on hand per product.
    pub async fn ledger(
        &self,
        drop: String,
    ) -> Result<(BTreeMap<String, i64>, Vec<LedgerRow>), StoreError> {
        self.read(move |conn| {
            if drop != POOL {
                drop_or_404(conn, &drop)?;
            }
            let rows = conn
                .prepare_cached("SELECT id, at, drop_id, sku, delta, reason, ref, actor, note FROM inventory_ledger WHERE drop_id = ?1 ORDER BY id")?
                .query_map([&drop], |r| {
                    Ok(LedgerRow {
                        id: r.get(0)?,
                        at: format_rfc3339(r.get(1)?),
                        drop: r.get(2)?,
                        sku: r.get(3)?,
                        delta: r.get(4)?,
                        reason: r.get(5)?,
                        reference: r.get(6)?,
                        actor: r.get(7)?,
                        note: r.get(8)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let stock = conn
                .prepare_cached("SELECT sku, on_hand FROM stock WHERE drop_id = ?1 ORDER BY sku")?
                .query_map([&drop], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            Ok((stock, rows))
        })
        .await
    }
}

/// Moves a closed drop's unsold stock to the next drop selling the same
/// product (when the drop says so) or to the pool.
fn cycle(ctx: &WriteCtx<'_>, id: &str, now: Millis) -> Result<(), StoreError> {
    let d = drop_or_404(ctx.conn, id)?;
    let stock: Vec<(String, i64)> = ctx
        .conn
        .prepare_cached(
            "SELECT sku, on_hand FROM stock WHERE drop_id = ?1 AND on_hand > 0 ORDER BY sku",
        )?
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let later: Vec<(String, String)> = ctx
        .conn
        .prepare_cached("SELECT id, spec FROM drops WHERE id != ?1 AND cycled_at IS NULL AND closes_at > ?2 ORDER BY opens_at, id")?
        .query_map(params![id, now], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut moved = Vec::new();
    for (sku, n) in stock {
        let next = match d.spec.on_close {
            OnClose::Pool => None,
            OnClose::NextDrop => later.iter().find(|(_, spec)| {
                serde_json::from_str::<DropSpec>(spec)
                    .is_ok_and(|s| s.products.iter().any(|p| p.sku.as_str() == sku))
            }),
        };
        let target = next.map(|(t, _)| t.as_str()).unwrap_or(POOL);
        move_stock(ctx, id, &sku, -n, "cycle_out", Some(target), "venuebox", None, now)?;
        move_stock(ctx, target, &sku, n, "cycle_in", Some(id), "venuebox", None, now)?;
        moved.push(CycledStock {
            sku,
            quantity: n,
            to: if target == POOL { "pool" } else { target }.into(),
        });
    }
    ctx.conn
        .prepare_cached("UPDATE drops SET cycled_at = ?1 WHERE id = ?2")?
        .execute(params![now, id])?;
    let n = moved.len();
    outbox::append(ctx, &Event::DropCycled(DropCycled { drop: DropId(id.into()), moved }), now)?;
    tracing::info!(drop = id, moved = n, "drop closed: unsold stock cycled");
    Ok(())
}
