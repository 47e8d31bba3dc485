//! Ticket sales: walk-up tickets minted on the box, scholarship claims,
//! voids and refunds (of any order), receipts, and the scholarship report.
//! What every order shares is `orders.rs`; holds and stock live in
//! `drops.rs`.

use super::{audit, escrow, outbox, Store, StoreError, WriteCtx};
use crate::domain::code::{encode_signed, EventTag, TicketClaim};
use crate::domain::error_code::ErrorCode;
use crate::domain::events::{Event, OrderClosed, ScholarshipClaimed, TicketIssued};
use crate::domain::ids::{OrderId, TicketId, TierId};
use crate::domain::keys::{public_key_to_base64, KeyId, TrustedKeys};
use crate::domain::manifest::{EventSnapshot, FunderKind};
use crate::domain::money::{Line, Tender};
use crate::domain::receipt::{self, IssuedTicket, Receipt};
use crate::domain::role::Actor;
use crate::domain::scholarship::{self, ClaimRefusal};
use crate::domain::time::Millis;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::collections::BTreeMap;

use super::orders::{event, next_id, record_order, replay, request_digest, NewOrder};
pub use super::orders::{OrderKind, OrderView};

pub struct WalkupRequest {
    pub tier: TierId,
    pub tender: Option<Tender>,
    pub referral: Option<String>,
    pub holder: Option<String>,
    pub nonce: String,
    pub staff: Actor,
    pub now: Millis,
    /// At a satellite cut off from the primary: a seat of its escrow.
    pub apart: bool,
    /// The satellite that forwarded the sale: its receipt prints there.
    pub satellite: Option<String>,
}

pub struct ClaimRequest {
    pub code: String,
    pub tier: Option<TierId>,
    pub tender: Option<Tender>,
    pub holder: Option<String>,
    pub nonce: String,
    pub staff: Actor,
    pub now: Millis,
    /// The satellite that forwarded the claim: its receipt prints there.
    pub satellite: Option<String>,
    /// At a satellite cut off from the primary: a seat of its escrow.
    pub apart: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseKind {
    Void,
    Refund,
}

/// Seats used per scholarship program.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ProgramReport {
    pub program: String,
    pub name: String,
    pub tier: String,
    pub funder: String,
    pub funder_kind: FunderKind,
    pub seats: u32,
    pub used: u32,
    pub remaining: u32,
    pub by_creator: BTreeMap<String, u32>,
}

pub(super) fn tier_sold(conn: &Connection, tier: &TierId) -> Result<u32, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*) FROM tickets WHERE tier_id = ?1 AND status != 'cancelled'",
        )?
        .query_row([tier.as_str()], |r| r.get(0))?)
}

fn check_capacity(
    ctx: &WriteCtx<'_>,
    ev: &EventSnapshot,
    tier: &TierId,
    now: Millis,
    apart: bool,
) -> Result<i64, StoreError> {
    let t = ev.tier(tier).ok_or_else(|| {
        let known: Vec<&str> = ev.manifest.tiers.iter().map(|t| t.id.as_str()).collect();
        StoreError::invalid(
            ErrorCode::UnknownTier,
            format!("unknown tier '{tier}': this event's tiers are {}", known.join(", ")),
        )
    })?;
    let seat = escrow::Item::tier(tier.as_str());
    if apart {
        let node = escrow::apart_node(ctx, now)?;
        escrow::take(ctx.conn, &node, &seat, 1, |_| {
            StoreError::refused(
                ErrorCode::TierSoldOut,
                format!("no {} seats left at this entrance while it cannot reach the main box (its escrow is used up): sell at the main entrance", t.name),
            )
        })?;
        return Ok(t.price_minor);
    }
    // Seats lent to satellites (walk-up and scholarship seats) are theirs.
    let lent = escrow::lent_on_tier(ctx.conn, tier.as_str())?;
    if tier_sold(ctx.conn, tier)? as i64 + lent >= t.capacity as i64 {
        let lent =
            if lent > 0 { format!(", {lent} of them at other entrances") } else { String::new() };
        return Err(StoreError::refused(
            ErrorCode::TierSoldOut,
            format!("{} is sold out ({} of {} seats{lent})", t.name, t.capacity, t.capacity),
        ));
    }
    Ok(t.price_minor)
}

/// Mints a ticket signed with the box's key and records it.
fn mint_ticket(
    ctx: &WriteCtx<'_>,
    ev: &EventSnapshot,
    tier: &TierId,
    prefix: &str,
    order: &str,
    holder: Option<&str>,
    now: Millis,
) -> Result<IssuedTicket, StoreError> {
    let id = TicketId(next_id(ctx, prefix)?);
    let key = &ctx.identity.key;
    let claim = TicketClaim {
        event: EventTag::of(ev.event_id()),
        key: KeyId::of(&key.verifying_key()),
        ticket: id.clone(),
        tier: tier.clone(),
        valid_from: None,
        valid_until: None,
    };
    let code = encode_signed(&claim, key)
        .map_err(|e| StoreError::Internal(format!("cannot mint ticket: {e}")))?;
    ctx.conn
        .prepare_cached(
            "INSERT INTO tickets (id, tier_id, holder, status, source, order_id, code) VALUES (?1, ?2, ?3, 'paid', ?4, ?5, ?6)",
        )?
        .execute(params![id.as_str(), tier.as_str(), holder, if prefix == "W" { "walkup" } else { "scholarship" }, order, code])?;
    let issued = TicketIssued {
        ticket: id.clone(),
        tier: tier.clone(),
        order: OrderId(order.into()),
        code: code.clone(),
        holder: holder.map(str::to_string),
    };
    outbox::append(ctx, &Event::TicketIssued(issued), now)?;
    Ok(IssuedTicket { id: id.0, tier: tier.to_string(), code })
}

fn ticket_line(ev: &EventSnapshot, tier: &TierId, unit: i64, list: Option<i64>) -> Line {
    let t = ev.tier(tier).expect("tier checked");
    Line {
        item: format!("ticket:{tier}"),
        name: format!("Ticket: {}", t.name),
        variant: None,
        qty: 1,
        unit_minor: unit,
        list_unit_minor: list,
        tax_rate_bp: ev.manifest.event.tax_rate_bp,
    }
}

fn read_order(conn: &Connection, id: &str) -> Result<Option<OrderView>, StoreError> {
    let row: Option<(String, String, String)> = conn
        .prepare_cached("SELECT kind, status, receipt FROM orders WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    row.map(|(kind, status, receipt)| {
        let receipt: Receipt =
            serde_json::from_str(&receipt).map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok(OrderView {
            id: OrderId(id.to_string()),
            kind,
            status,
            receipt,
            tickets_scan_elsewhere: true,
            replayed: false,
        })
    })
    .transpose()
}

/// Where a closed order's units and seats go.
pub(crate) enum Returns {
    /// Back to the drop's stock (or the pool), the seat to the tier.
    Stock,
    /// At a satellite apart: into its own loan (it may sell them again).
    LoanApart(String),
    /// On the primary, merging a satellite's close made apart: back to the
    /// stock by the ledger, then lent to the satellite (it may have sold
    /// them again apart).
    LoanMerged(String),
}

/// Voids or refunds a paid order in the caller's transaction.
#[expect(clippy::too_many_arguments)]
pub(crate) fn close_in(
    ctx: &WriteCtx<'_>,
    id: &OrderId,
    kind: CloseKind,
    reason: &str,
    admitted_confirmed: bool,
    actor: &Actor,
    now: Millis,
    returns: &Returns,
) -> Result<OrderView, StoreError> {
    let status: Option<(String, String, Option<String>)> = ctx
        .conn
        .prepare_cached("SELECT status, kind, drop_id FROM orders WHERE id = ?1")?
        .query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let (status, order_kind, drop) =
        status.ok_or_else(|| StoreError::NotFound(format!("order {id}")))?;
    if status != "paid" {
        return Err(StoreError::Conflict(format!("order {id} is already {status}")));
    }
    if reason.trim().is_empty() {
        return Err(StoreError::invalid(
            ErrorCode::ReasonRequired,
            "say why (reason), for the record",
        ));
    }
    let admitted: Option<(String, Millis)> = ctx
        .conn
        .prepare_cached(
            "SELECT s.ticket_id, s.recorded_at FROM scans s JOIN tickets t ON t.id = s.ticket_id
             WHERE t.order_id = ?1 AND s.verdict = 'admit' AND s.direction = 'entry' AND s.undone_at IS NULL
             ORDER BY s.id LIMIT 1",
        )?
        .query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let (Some((ticket, at)), false) = (&admitted, admitted_confirmed) {
        return Err(StoreError::refused(
            ErrorCode::TicketAdmitted,
            format!(
                "ticket {ticket} of this order was admitted at the door at {}: its holder is (or was) inside. If that is known and it should still be closed, send it again with \"admitted_confirmed\": true",
                crate::domain::time::format_rfc3339(*at)
            ),
        ));
    }
    let (new_status, ledger_reason) = match kind {
        CloseKind::Void => ("voided", "void"),
        CloseKind::Refund => ("refunded", "refund"),
    };
    ctx.conn
        .prepare_cached("UPDATE orders SET status = ?1, closed_at = ?2, closed_by = ?3, close_reason = ?4 WHERE id = ?5")?
        .execute(params![new_status, now, actor.name, reason, id.as_str()])?;
    // The seats of its live tickets, for a loan (a cancelled one was
    // counted off before).
    let seats: Vec<escrow::Item> = ctx
        .conn
        .prepare_cached(
            "SELECT t.tier_id, c.program_id FROM tickets t
             LEFT JOIN scholarship_claims c ON c.ticket_id = t.id AND c.status = 'active'
             WHERE t.order_id = ?1 AND t.status != 'cancelled'",
        )?
        .query_map([id.as_str()], |r| {
            let (tier, program): (String, Option<String>) = (r.get(0)?, r.get(1)?);
            Ok(match program {
                Some(p) => escrow::Item::program(&tier, &p),
                None => escrow::Item::tier(&tier),
            })
        })?
        .collect::<Result<_, _>>()?;
    ctx.conn
        .prepare_cached("UPDATE tickets SET status = 'cancelled' WHERE order_id = ?1")?
        .execute([id.as_str()])?;
    ctx.conn
        .prepare_cached("UPDATE scholarship_claims SET status = 'released' WHERE order_id = ?1")?
        .execute([id.as_str()])?;
    let drop = drop.filter(|_| order_kind == "drop");
    let loan = match returns {
        Returns::Stock => None,
        Returns::LoanApart(node) => Some((node.as_str(), false)),
        Returns::LoanMerged(node) => Some((node.as_str(), true)),
    };
    if let Some(drop) = &drop {
        super::drops::return_order_stock(ctx, drop, id.as_str(), ledger_reason, actor, now, loan)?;
    }
    if let Some((node, _)) = loan {
        for seat in &seats {
            escrow::give(ctx.conn, node, seat, 1)?;
        }
    }
    audit::record(
        ctx,
        actor,
        &format!("order.{ledger_reason}"),
        &serde_json::json!({"order": id, "reason": reason, "admitted": admitted.as_ref().map(|(t, _)| t)}),
        now,
    )?;
    let closed = OrderClosed {
        order: id.clone(),
        reason: reason.to_string(),
        by: actor.name.clone(),
        at: now,
    };
    let event = match kind {
        CloseKind::Void => Event::OrderVoided(closed),
        CloseKind::Refund => Event::OrderRefunded(closed),
    };
    outbox::append(ctx, &event, now)?;
    read_order(ctx.conn, id.as_str())?.ok_or_else(|| StoreError::Internal("order vanished".into()))
}

impl Store {
    /// Sells one ticket of a tier and mints its signed code on the box.
    pub async fn sell_walkup(&self, req: WalkupRequest) -> Result<OrderView, StoreError> {
        let apart = req.apart;
        let job = move |ctx: &mut WriteCtx<'_>| {
            let request = request_digest((&req.tier, &req.referral, &req.holder, &req.tender));
            if let Some(v) = replay(ctx, &req.nonce, OrderKind::Walkup, &request)? {
                return Ok(v);
            }
            let ev = event(ctx)?;
            let price = check_capacity(ctx, &ev, &req.tier, req.now, req.apart)?;
            let creator = match req.referral.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
                None => None,
                Some(code) => Some(
                    ev.referral(code)
                        .ok_or_else(|| StoreError::invalid(ErrorCode::UnknownReferral, format!("referral code '{code}' is not known: check it, or sell without one")))?
                        .id
                        .clone(),
                ),
            };
            let id = next_id(ctx, "O")?;
            let ticket =
                mint_ticket(ctx, &ev, &req.tier, "W", &id, req.holder.as_deref(), req.now)?;
            let lines = vec![ticket_line(&ev, &req.tier, price, None)];
            let order = NewOrder {
                id,
                nonce: &req.nonce,
                request: &request,
                kind: OrderKind::Walkup,
                staff: &req.staff,
                creator: creator.as_ref(),
                drop: None,
                attendee: None,
                reserve_eligible: false,
                lines,
                tender: req.tender,
                sponsored_by: None,
                now: req.now,
                station: super::printing::receipt_station(
                    ctx,
                    req.apart,
                    req.satellite.as_deref(),
                )?,
            };
            record_order(ctx, &ev, order, vec![ticket])
        };
        if apart {
            return self.write_apart(job).await;
        }
        self.write(job).await
    }

    /// Claims a scholarship seat with a code and issues its ticket.
    pub async fn claim_scholarship(&self, req: ClaimRequest) -> Result<OrderView, StoreError> {
        let apart = req.apart;
        let job = move |ctx: &mut WriteCtx<'_>| {
            let request = request_digest((&req.code, &req.tier, &req.holder, &req.tender));
            if let Some(v) = replay(ctx, &req.nonce, OrderKind::Scholarship, &request)? {
                return Ok(v);
            }
            let ev = event(ctx)?;
            let code_text = req.code.trim();
            let refuse = |r: ClaimRefusal| StoreError::refused(r.code(), r.to_string());
            let (program, code) =
                ev.claim_code(code_text).ok_or_else(|| refuse(ClaimRefusal::UnknownCode))?;
            let count = |sql: &str, arg: &str| -> Result<u32, StoreError> {
                Ok(ctx.conn.prepare_cached(sql)?.query_row([arg], |r| r.get(0))?)
            };
            let program_used = count("SELECT COUNT(*) FROM scholarship_claims WHERE program_id = ?1 AND status = 'active'", program.id.as_str())?;
            let code_used = count(
                "SELECT COUNT(*) FROM scholarship_claims WHERE code = ?1 AND status = 'active'",
                &code.code,
            )?;
            let seats = escrow::Item::program(program.tier.as_str(), program.id.as_str());
            // Seats lent to satellites are theirs to give out; apart, a
            // satellite gives out only its own (its code caps count what
            // its copy and it know).
            let (lent, _) = escrow::lent(ctx.conn, &seats)?;
            let used = if req.apart { 0 } else { program_used + lent as u32 };
            scholarship::check_claim(program, code, req.tier.as_ref(), req.now, used, code_used)
                .map_err(refuse)?;
            let list_price = if req.apart {
                let node = escrow::apart_node(ctx, req.now)?;
                escrow::take(ctx.conn, &node, &seats, 1, |_| refuse(ClaimRefusal::ProgramFull))?;
                ev.tier(&program.tier).map_or(0, |t| t.price_minor)
            } else {
                check_capacity(ctx, &ev, &program.tier, req.now, false).map_err(|e| match e {
                    StoreError::Refused { .. } => refuse(ClaimRefusal::TierSoldOut),
                    other => other,
                })?
            };
            let price = scholarship::discounted(list_price, program.discount);
            let id = next_id(ctx, "O")?;
            let ticket =
                mint_ticket(ctx, &ev, &program.tier, "Z", &id, req.holder.as_deref(), req.now)?;
            let funder = program.funder.name.clone();
            ctx.conn
                .prepare_cached(
                    "INSERT INTO scholarship_claims (program_id, code, creator_id, funder, order_id, ticket_id, claimed_at, status)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'active')",
                )?
                .execute(params![program.id.as_str(), code.code, code.creator.as_str(), funder, id, ticket.id, req.now])?;
            let claimed = ScholarshipClaimed {
                program: program.id.clone(),
                code: code.code.clone(),
                creator: code.creator.clone(),
                funder: program.funder.clone(),
                order: OrderId(id.clone()),
                ticket: TicketId(ticket.id.clone()),
                list_minor: list_price,
                paid_minor: price,
            };
            outbox::append(ctx, &Event::ScholarshipClaimed(claimed), req.now)?;
            let lines = vec![ticket_line(
                &ev,
                &program.tier,
                price,
                (price != list_price).then_some(list_price),
            )];
            let order = NewOrder {
                id,
                nonce: &req.nonce,
                request: &request,
                kind: OrderKind::Scholarship,
                staff: &req.staff,
                creator: Some(&code.creator),
                drop: None,
                attendee: None,
                reserve_eligible: false,
                lines,
                tender: req.tender,
                sponsored_by: Some(format!("{} ({})", funder, program.name)),
                now: req.now,
                station: super::printing::receipt_station(
                    ctx,
                    req.apart,
                    req.satellite.as_deref(),
                )?,
            };
            record_order(ctx, &ev, order, vec![ticket])
        };
        if apart {
            return self.write_apart(job).await;
        }
        self.write(job).await
    }

    /// Voids or refunds a paid order: its tickets are cancelled (the seat
    /// and any scholarship seat return), its drop units go back to stock.
    /// Voids or refunds an order. One whose ticket was admitted at the door
    /// (and not undone) closes only with `admitted_confirmed`: the person
    /// is, or was, inside.
    #[expect(clippy::too_many_arguments)]
    pub async fn close_order(
        &self,
        id: OrderId,
        kind: CloseKind,
        reason: String,
        admitted_confirmed: bool,
        actor: Actor,
        now: Millis,
        apart: bool,
    ) -> Result<OrderView, StoreError> {
        let job = move |ctx: &mut WriteCtx<'_>| {
            let returns = if apart {
                Returns::LoanApart(escrow::apart_node(ctx, now)?)
            } else {
                Returns::Stock
            };
            close_in(ctx, &id, kind, &reason, admitted_confirmed, &actor, now, &returns)
        };
        if apart {
            return self.write_apart(job).await;
        }
        self.write(job).await
    }

    pub async fn order(&self, id: OrderId) -> Result<OrderView, StoreError> {
        self.read(move |conn| {
            read_order(conn, id.as_str())?
                .ok_or_else(|| StoreError::NotFound(format!("order {id}")))
        })
        .await
    }

    /// The code of a ticket minted on this box, for its QR image.
    /// A ticket minted on this box: its code and who sold it.
    pub async fn minted_code(&self, ticket: TicketId) -> Result<(String, String), StoreError> {
        self.read(move |conn| {
            conn.prepare_cached("SELECT t.code, COALESCE(o.staff, '') FROM tickets t LEFT JOIN orders o ON o.id = t.order_id WHERE t.id = ?1 AND t.code IS NOT NULL")?
                .query_row([ticket.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("ticket {ticket} minted on this box")))
        })
        .await
    }

    /// Seats used and left per scholarship program, by recruiting creator.
    pub async fn scholarship_report(&self) -> Result<Vec<ProgramReport>, StoreError> {
        let ev = self.event().ok_or(StoreError::NoEvent)?;
        self.read(move |conn| {
            let mut out = Vec::new();
            for p in &ev.manifest.scholarships {
                let mut by_creator = BTreeMap::new();
                let mut stmt = conn.prepare_cached(
                    "SELECT creator_id, COUNT(*) FROM scholarship_claims WHERE program_id = ?1 AND status = 'active' GROUP BY creator_id",
                )?;
                let mut rows = stmt.query([p.id.as_str()])?;
                while let Some(r) = rows.next()? {
                    by_creator.insert(r.get::<_, String>(0)?, r.get::<_, u32>(1)?);
                }
                let used: u32 = by_creator.values().sum();
                out.push(ProgramReport {
                    program: p.id.to_string(),
                    name: p.name.clone(),
                    tier: p.tier.to_string(),
                    funder: p.funder.name.clone(),
                    funder_kind: p.funder.kind,
                    seats: p.seats,
                    used,
                    remaining: p.seats.saturating_sub(used),
                    by_creator,
                });
            }
            Ok(out)
        })
        .await
    }

    /// This box's public key, for the organiser's `box_keys`.
    pub fn box_public_key(&self) -> String {
        public_key_to_base64(&self.identity.key.verifying_key())
    }

    /// Verifies a receipt proof code against this box and trusted box keys.
    pub fn verify_receipt_proof(&self, code: &str) -> Option<receipt::ProofClaim> {
        let mut keys = TrustedKeys::new([self.identity.key.verifying_key()]);
        if let Some(ev) = self.event() {
            for k in &ev.manifest.box_keys {
                if let Ok(k) = crate::domain::keys::public_key_from_base64(&k.public_key) {
                    keys.add(k);
                }
            }
        }
        receipt::verify_proof(code, &keys)
    }
}
