//! What an old primary took alone after a newer one was promoted, or a
//! satellite decided apart (ARCHITECTURE.md, "Two boxes" and "Satellites"):
//! found by comparing its rows with the primary's snapshot, sent over the
//! link, and merged on the primary. A check-in by its nonce through the
//! normal decision (a ticket admitted on both sides listed with both
//! records); a satellite's sale made apart taken in with its rows, off its
//! escrow and through the ledger, and its voids and refunds into its
//! escrow; an old primary's sale the new one never saw listed in
//! `takeover_report` for a supervisor.

use super::scans::{ScanOutcome, ScanRequest};
use super::{Store, StoreError, WriteCtx};
use crate::domain::checkin::{Direction, Verdict};
use crate::domain::ids::GateId;
use crate::domain::time::Millis;
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::PathBuf;

/// An admission the old primary recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoneCheckin {
    pub nonce: String,
    pub code: String,
    pub gate: String,
    pub direction: String,
    pub ticket: Option<String>,
    pub recorded_at: Millis,
    pub staff: String,
    pub device: Option<String>,
}

/// A sale the old primary recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoneOrder {
    pub id: String,
    pub nonce: String,
    pub kind: String,
    pub status: String,
    pub created_at: Millis,
    pub staff: String,
    pub currency: String,
    pub total_minor: i64,
    /// (drop, sku, qty)
    pub items: Vec<(String, String, i64)>,
    /// A satellite's sale made apart, out of its escrow: its rows
    /// (`orders`, `order_items`, `tickets`), which the primary takes in
    /// as they are (its receipt and tickets are already in hands).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<CopiedRow>,
}

/// One row of a table, by column name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopiedRow {
    pub table: String,
    pub row: serde_json::Map<String, serde_json::Value>,
}

/// The tables an apart sale's rows may go into, and the column that
/// names its order in each.
const ORDER_TABLES: [(&str, &str); 4] = [
    ("orders", "id"),
    ("order_items", "order_id"),
    ("tickets", "order_id"),
    ("scholarship_claims", "order_id"),
];

fn copy_rows(conn: &Connection, order: &str) -> rusqlite::Result<Vec<CopiedRow>> {
    use rusqlite::types::ValueRef;
    let mut out = Vec::new();
    for (table, key) in ORDER_TABLES {
        let mut stmt = conn.prepare_cached(&format!("SELECT * FROM {table} WHERE {key} = ?1"))?;
        let names: Vec<String> = stmt.column_names().iter().map(|n| n.to_string()).collect();
        let mut rows = stmt.query([order])?;
        while let Some(r) = rows.next()? {
            let mut row = serde_json::Map::new();
            for (i, name) in names.iter().enumerate() {
                // A claim's rowid is this box's own: the primary numbers it.
                if table == "scholarship_claims" && name == "id" {
                    continue;
                }
                let v = match r.get_ref(i)? {
                    ValueRef::Null => serde_json::Value::Null,
                    ValueRef::Integer(n) => n.into(),
                    ValueRef::Real(f) => f.into(),
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
                    ValueRef::Blob(_) => continue,
                };
                row.insert(name.clone(), v);
            }
            out.push(CopiedRow { table: table.into(), row });
        }
    }
    Ok(out)
}

fn insert_row(conn: &Connection, r: &CopiedRow) -> Result<(), StoreError> {
    use rusqlite::types::Value;
    if !ORDER_TABLES.iter().any(|(t, _)| *t == r.table)
        || r.row
            .keys()
            .any(|k| !k.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()))
    {
        return Err(StoreError::Internal(format!(
            "a reported row of table '{}' is not one a sale has",
            r.table
        )));
    }
    let cols: Vec<&str> = r.row.keys().map(String::as_str).collect();
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let values: Vec<Value> = r
        .row
        .values()
        .map(|v| match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Number(n) => {
                n.as_i64().map_or_else(|| Value::Real(n.as_f64().unwrap_or(0.0)), Value::Integer)
            }
            serde_json::Value::String(s) => Value::Text(s.clone()),
            other => Value::Text(other.to_string()),
        })
        .collect();
    conn.prepare_cached(&format!(
        "INSERT INTO {} ({}) VALUES ({})",
        r.table,
        cols.join(", "),
        marks.join(", ")
    ))?
    .execute(rusqlite::params_from_iter(values))?;
    Ok(())
}

/// A void or refund a satellite made apart of an order the primary has
/// (sold before the cut): its units and seats went into its loan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoneClose {
    pub order: String,
    /// `voided` or `refunded`.
    pub status: String,
    pub reason: String,
    pub by: String,
    pub at: Millis,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeoverReport {
    /// The epoch the old primary took them under.
    pub old_epoch: i64,
    /// The node name of the satellite that sent it (its sales came out of
    /// its escrow); `None` from a fenced old primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub satellite: Option<String>,
    pub checkins: Vec<LoneCheckin>,
    pub orders: Vec<LoneOrder>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub closes: Vec<LoneClose>,
}

impl TakeoverReport {
    /// Adds what `older` holds that this one does not (by nonce).
    pub fn absorb(&mut self, older: TakeoverReport) {
        let have: HashSet<String> = self.checkins.iter().map(|c| c.nonce.clone()).collect();
        self.checkins.extend(older.checkins.into_iter().filter(|c| !have.contains(&c.nonce)));
        let have: HashSet<String> = self.orders.iter().map(|o| o.nonce.clone()).collect();
        self.orders.extend(older.orders.into_iter().filter(|o| !have.contains(&o.nonce)));
        let have: HashSet<String> = self.closes.iter().map(|c| c.order.clone()).collect();
        self.closes.extend(older.closes.into_iter().filter(|c| !have.contains(&c.order)));
        self.old_epoch = self.old_epoch.min(older.old_epoch);
        if self.satellite.is_none() {
            self.satellite = older.satellite;
        }
    }
}

/// One row of the report, as the dashboard lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TakeoverEntry {
    pub id: i64,
    pub found_at: Millis,
    pub old_epoch: i64,
    /// `checkin` or `order`.
    pub kind: String,
    pub reference: String,
    /// `merged`, `double_admission` or `conflict`.
    pub outcome: String,
    /// The old primary's record and, where there is one, the new one's.
    pub detail: serde_json::Value,
}

fn column_set(conn: &Connection, sql: &str) -> rusqlite::Result<HashSet<String>> {
    let mut stmt = conn.prepare(sql)?;
    let out = stmt.query_map([], |r| r.get::<_, String>(0))?.collect();
    out
}

/// Report items merged per transaction.
const MERGE_CHUNK: usize = 256;

fn listed_already(conn: &Connection, reference: &str) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM takeover_report WHERE ref = ?1")?
        .query_row([reference], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The nonce and record of a ticket's admission here, if it is inside.
fn admitted_scan_of(
    conn: &Connection,
    ticket: &str,
) -> rusqlite::Result<Option<(String, serde_json::Value)>> {
    conn.prepare_cached(
        "SELECT nonce, gate_id, recorded_at, staff FROM scans
         WHERE ticket_id = ?1 AND verdict = 'admit' AND undone_at IS NULL
         ORDER BY id DESC LIMIT 1",
    )?
    .query_row([ticket], |r| {
        Ok((
            r.get::<_, String>(0)?,
            serde_json::json!({
                "nonce": r.get::<_, String>(0)?,
                "gate": r.get::<_, String>(1)?,
                "recorded_at": r.get::<_, i64>(2)?,
                "staff": r.get::<_, String>(3)?,
            }),
        ))
    })
    .optional()
}

fn list(
    conn: &Connection,
    old_epoch: i64,
    kind: &str,
    reference: &str,
    outcome: &str,
    detail: &serde_json::Value,
    now: Millis,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO takeover_report (found_at, old_epoch, kind, ref, outcome, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(rusqlite::params![
        now,
        old_epoch,
        kind,
        reference,
        outcome,
        detail.to_string()
    ])?;
    Ok(())
}

/// One reported check-in, in the merge's transaction: decided again here
/// (in a savepoint of its own) unless its ticket is already inside; listed.
/// False when it was merged before.
fn merge_checkin(
    ctx: &mut WriteCtx<'_>,
    c: LoneCheckin,
    old_epoch: i64,
    now: Millis,
) -> Result<bool, StoreError> {
    if listed_already(ctx.conn, &c.nonce)? {
        return Ok(false);
    }
    let here = match &c.ticket {
        Some(t) => admitted_scan_of(ctx.conn, t)?,
        None => None,
    };
    let (outcome, new) = match here {
        Some(new) if new.0 != c.nonce => ("double_admission", Some(new.1)),
        Some(_) => return Ok(false),
        None => {
            let req = ScanRequest {
                code: c.code.clone(),
                gate: GateId::from(c.gate.as_str()),
                direction: Direction::parse(&c.direction).unwrap_or(Direction::Entry),
                nonce: c.nonce.clone(),
                scanned_at: None,
                staff: c.staff.clone(),
                device: c.device.clone(),
                now: c.recorded_at,
                confirm_unpaid: true,
                answers: Default::default(),
                ticket: None,
            };
            match super::writer::in_savepoint(ctx, |ctx| {
                super::scans::scan_job(ctx, req, None, false)
            }) {
                Ok(ScanOutcome::New(r) | ScanOutcome::Replayed(r))
                    if r.verdict == Verdict::Admit =>
                {
                    ("merged", None)
                }
                Ok(o) => (
                    "conflict",
                    Some(serde_json::json!({ "decided_here": format!("{:?}", o.record().reason) })),
                ),
                Err(e) => ("conflict", Some(serde_json::json!({ "error": e.to_string() }))),
            }
        }
    };
    let detail = serde_json::json!({ "old_primary": c, "new_primary": new });
    list(ctx.conn, old_epoch, "checkin", &c.nonce, outcome, &detail, now)?;
    Ok(true)
}

/// A satellite's sale made apart, in the merge's transaction: its rows
/// taken in as they are, its units off the satellite's escrow (and through
/// the ledger: back in, then sold), its outbox rows written here; listed.
/// A nonce the primary already has is listed as a conflict, not sold twice.
fn merge_apart_order(
    ctx: &mut WriteCtx<'_>,
    node: &str,
    o: LoneOrder,
    old_epoch: i64,
    now: Millis,
) -> Result<bool, StoreError> {
    if listed_already(ctx.conn, &o.nonce)? {
        return Ok(false);
    }
    let here: Option<String> = ctx
        .conn
        .prepare_cached("SELECT id FROM orders WHERE nonce = ?1")?
        .query_row([&o.nonce], |r| r.get(0))
        .optional()?;
    let merged = match here {
        Some(id) if id == o.id => return Ok(false),
        Some(id) => Err(format!("the primary sold this request too, as order {id}")),
        None => super::writer::in_savepoint(ctx, |ctx| take_in_apart_order(ctx, node, &o))
            .map_err(|e| e.to_string()),
    };
    let (outcome, extra) = match merged {
        Ok(()) => ("merged", serde_json::Value::Null),
        Err(why) => ("conflict", serde_json::json!({ "error": why })),
    };
    let mut summary = o.clone();
    summary.rows.clear();
    let detail =
        serde_json::json!({ "satellite": node, "old_primary": summary, "new_primary": extra });
    list(ctx.conn, old_epoch, "order", &o.nonce, outcome, &detail, now)?;
    Ok(true)
}

/// A close a satellite made apart, in the merge's transaction: the order
/// closed here too, its units and seats into the satellite's loan; listed
/// (as `close:ORDER`).
fn merge_apart_close(
    ctx: &mut WriteCtx<'_>,
    node: &str,
    c: LoneClose,
    old_epoch: i64,
    now: Millis,
) -> Result<bool, StoreError> {
    use super::sales::{close_in, CloseKind, Returns};
    let reference = format!("close:{}", c.order);
    if listed_already(ctx.conn, &reference)? {
        return Ok(false);
    }
    let kind = if c.status == "voided" { CloseKind::Void } else { CloseKind::Refund };
    let actor = crate::domain::role::Actor {
        name: c.by.clone(),
        role: crate::domain::role::Role::Supervisor,
    };
    let id = crate::domain::ids::OrderId(c.order.clone());
    let returns = Returns::LoanMerged(node.to_string());
    let merged = super::writer::in_savepoint(ctx, |ctx| {
        close_in(ctx, &id, kind, &c.reason, true, &actor, c.at, &returns)
    });
    let (outcome, extra) = match merged {
        Ok(_) => ("merged", serde_json::Value::Null),
        Err(e) => ("conflict", serde_json::json!({ "error": e.to_string() })),
    };
    let detail = serde_json::json!({ "satellite": node, "old_primary": c, "new_primary": extra });
    list(ctx.conn, old_epoch, "close", &reference, outcome, &detail, now)?;
    Ok(true)
}

/// The outbox row of a scholarship claim made apart.
fn claimed_event(
    ctx: &WriteCtx<'_>,
    c: &CopiedRow,
    o: &LoneOrder,
    tier: &str,
) -> Result<(), StoreError> {
    use crate::domain::events::{Event, ScholarshipClaimed};
    use crate::domain::ids::{CreatorId, OrderId, ProgramId, TicketId};
    let text = |k: &str| c.row.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let ev = super::orders::event(ctx)?;
    let program = ProgramId::from(text("program_id").as_str());
    let p = ev.program(&program).ok_or_else(|| {
        StoreError::Internal(format!("scholarship program {program} is not in the event"))
    })?;
    let list_minor = ev.tier(&crate::domain::ids::TierId::from(tier)).map_or(0, |t| t.price_minor);
    let claimed = ScholarshipClaimed {
        program,
        code: text("code"),
        creator: CreatorId::from(text("creator_id").as_str()),
        funder: p.funder.clone(),
        order: OrderId(o.id.clone()),
        ticket: TicketId(text("ticket_id")),
        list_minor,
        paid_minor: o.total_minor,
    };
    super::outbox::append(ctx, &Event::ScholarshipClaimed(claimed), o.created_at)?;
    Ok(())
}

fn take_in_apart_order(
    ctx: &mut WriteCtx<'_>,
    node: &str,
    o: &LoneOrder,
) -> Result<(), StoreError> {
    use super::escrow::{take_merged, Item};
    use crate::domain::events::{Event, OrderCreated, TicketIssued};
    use crate::domain::ids::{CreatorId, DropId, OrderId, TicketId, TierId};
    let text = |r: &CopiedRow, k: &str| r.row.get(k).and_then(|v| v.as_str()).map(str::to_string);
    for r in &o.rows {
        insert_row(ctx.conn, r)?;
    }
    // Sold and closed again apart: out of the loan and back in, nothing
    // to take off it.
    let paid = o.status == "paid";
    for r in o.rows.iter().filter(|r| r.table == "tickets") {
        let tier = text(r, "tier_id").unwrap_or_default();
        let ticket = text(r, "id").unwrap_or_default();
        // A scholarship seat came out of the program's loan.
        let claim = o.rows.iter().find(|c| {
            c.table == "scholarship_claims" && text(c, "ticket_id") == Some(ticket.clone())
        });
        let seat = match claim.and_then(|c| text(c, "program_id")) {
            Some(p) => Item::program(&tier, &p),
            None => Item::tier(&tier),
        };
        if paid {
            take_merged(ctx.conn, node, &seat, 1)?;
        }
        if let Some(c) = claim {
            claimed_event(ctx, c, o, &tier)?;
        }
        let issued = TicketIssued {
            ticket: TicketId(text(r, "id").unwrap_or_default()),
            tier: TierId(tier),
            order: OrderId(o.id.clone()),
            code: text(r, "code").unwrap_or_default(),
            holder: text(r, "holder"),
        };
        super::outbox::append(ctx, &Event::TicketIssued(issued), o.created_at)?;
    }
    for r in o.rows.iter().filter(|r| r.table == "order_items") {
        let (drop, sku) =
            (text(r, "drop_id").unwrap_or_default(), text(r, "sku").unwrap_or_default());
        let qty = r.row.get("qty").and_then(|v| v.as_i64()).unwrap_or(0);
        if !paid {
            continue;
        }
        take_merged(ctx.conn, node, &Item::sku(&drop, &sku), qty)?;
        let mv = |delta: i64, reason: &str, reference: &str| {
            super::drops::move_stock(
                ctx,
                &drop,
                &sku,
                delta,
                reason,
                Some(reference),
                &o.staff,
                None,
                o.created_at,
            )
        };
        mv(qty, "transfer_in", node)?;
        mv(-qty, "sale", &o.id)?;
    }
    let order = o.rows.iter().find(|r| r.table == "orders").ok_or_else(|| {
        StoreError::Internal(format!("the report of order {} has no order row", o.id))
    })?;
    let receipt = text(order, "receipt")
        .and_then(|j| serde_json::from_str(&j).ok())
        .ok_or_else(|| StoreError::Internal(format!("order {} has no receipt", o.id)))?;
    let created = OrderCreated {
        order: OrderId(o.id.clone()),
        kind: serde_json::from_value(serde_json::Value::String(o.kind.clone()))
            .map_err(|e| StoreError::Internal(format!("order {}: {e}", o.id)))?,
        creator: text(order, "creator_id").map(CreatorId),
        drop: text(order, "drop_id").map(DropId),
        attendee: text(order, "attendee_ticket_id").map(TicketId),
        receipt,
    };
    super::outbox::append(ctx, &Event::OrderCreated(created), o.created_at)?;
    if !paid {
        let closed = crate::domain::events::OrderClosed {
            order: OrderId(o.id.clone()),
            reason: text(order, "close_reason").unwrap_or_default(),
            by: text(order, "closed_by").unwrap_or_default(),
            at: order.row.get("closed_at").and_then(|v| v.as_i64()).unwrap_or(o.created_at),
        };
        let event = if o.status == "voided" {
            Event::OrderVoided(closed)
        } else {
            Event::OrderRefunded(closed)
        };
        super::outbox::append(ctx, &event, o.created_at)?;
    }
    Ok(())
}

impl Store {
    /// On a fenced old primary, before it installs the new primary's
    /// snapshot: the admissions and sales it holds that the snapshot does
    /// not (by nonce).
    pub async fn lone_writes(
        &self,
        snapshot: PathBuf,
        old_epoch: i64,
    ) -> Result<TakeoverReport, StoreError> {
        let satellite = self.replica().role() == super::replica::Role::Satellite;
        self.read(move |c| {
            let snap =
                Connection::open_with_flags(&snapshot, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            let scans = column_set(&snap, "SELECT nonce FROM scans")?;
            let orders = column_set(&snap, "SELECT nonce FROM orders")?;
            let satellite = if satellite { super::replica::state_of(c, "node")? } else { None };
            let mut report = TakeoverReport { old_epoch, satellite, ..Default::default() };
            let mut stmt = c.prepare(
                "SELECT nonce, code, gate_id, direction, ticket_id, recorded_at, staff, device
                 FROM scans WHERE verdict = 'admit' AND undone_at IS NULL ORDER BY id",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let nonce: String = r.get(0)?;
                if !scans.contains(&nonce) {
                    report.checkins.push(LoneCheckin {
                        nonce,
                        code: r.get(1)?,
                        gate: r.get(2)?,
                        direction: r.get(3)?,
                        ticket: r.get(4)?,
                        recorded_at: r.get(5)?,
                        staff: r.get(6)?,
                        device: r.get(7)?,
                    });
                }
            }
            let mut stmt = c.prepare(
                "SELECT id, nonce, kind, status, created_at, staff, currency, total_minor
                 FROM orders ORDER BY created_at, id",
            )?;
            let mut items = c.prepare(
                "SELECT drop_id, sku, qty FROM order_items WHERE order_id = ?1 ORDER BY sku",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let nonce: String = r.get(1)?;
                if orders.contains(&nonce) {
                    continue;
                }
                let id: String = r.get(0)?;
                let lines = items
                    .query_map([&id], |i| Ok((i.get(0)?, i.get(1)?, i.get(2)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                let rows = if report.satellite.is_some() { copy_rows(c, &id)? } else { Vec::new() };
                report.orders.push(LoneOrder {
                    rows,
                    id,
                    nonce,
                    kind: r.get(2)?,
                    status: r.get(3)?,
                    created_at: r.get(4)?,
                    staff: r.get(5)?,
                    currency: r.get(6)?,
                    total_minor: r.get(7)?,
                    items: lines,
                });
            }
            if report.satellite.is_some() {
                let mut closed = c.prepare(
                    "SELECT id, status, close_reason, closed_by, closed_at FROM orders
                     WHERE status IN ('voided', 'refunded') ORDER BY closed_at, id",
                )?;
                let mut was = snap.prepare("SELECT status FROM orders WHERE id = ?1")?;
                let mut rows = closed.query([])?;
                while let Some(r) = rows.next()? {
                    let order: String = r.get(0)?;
                    let before: Option<String> =
                        was.query_row([&order], |r| r.get(0)).optional()?;
                    if before.as_deref() == Some("paid") {
                        report.closes.push(LoneClose {
                            order,
                            status: r.get(1)?,
                            reason: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                            by: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                            at: r.get::<_, Option<i64>>(4)?.unwrap_or_default(),
                        });
                    }
                }
            }
            Ok(report)
        })
        .await
    }

    /// On the new primary: merges an old primary's report. A check-in
    /// whose ticket is not inside here is decided again with its own
    /// nonce and time (and admitted, counted and synced like any other);
    /// one whose ticket was admitted here too is a double admission; a
    /// sale is listed for a supervisor (its stock was not reserved here).
    /// Merging the same report twice changes nothing.
    pub async fn merge_takeover(
        &self,
        report: TakeoverReport,
        now: Millis,
    ) -> Result<usize, StoreError> {
        let old_epoch = report.old_epoch;
        let mut listed = 0;
        // In chunks, each one transaction (one fsync), so a report of
        // thousands merges in seconds and the door's scans go in between.
        let mut checkins = report.checkins.into_iter().peekable();
        while checkins.peek().is_some() {
            let chunk: Vec<LoneCheckin> = checkins.by_ref().take(MERGE_CHUNK).collect();
            listed += self
                .write(move |ctx| {
                    let mut n = 0;
                    for c in chunk {
                        n += usize::from(merge_checkin(ctx, c, old_epoch, now)?);
                    }
                    Ok(n)
                })
                .await?;
        }
        let (orders, satellite, closes) = (report.orders, report.satellite, report.closes);
        if let Some(node) = satellite {
            // Closes first: they only add to the loan the apart sales take
            // from (a refunded unit may have been sold again apart).
            let n2 = node.clone();
            listed += self
                .write(move |ctx| {
                    let mut n = 0;
                    for c in closes {
                        n += usize::from(merge_apart_close(ctx, &n2, c, old_epoch, now)?);
                    }
                    Ok(n)
                })
                .await?;
            let mut orders = orders.into_iter().peekable();
            while orders.peek().is_some() {
                let chunk: Vec<LoneOrder> = orders.by_ref().take(MERGE_CHUNK).collect();
                let node = node.clone();
                listed += self
                    .write(move |ctx| {
                        let mut n = 0;
                        for o in chunk {
                            n += usize::from(merge_apart_order(ctx, &node, o, old_epoch, now)?);
                        }
                        Ok(n)
                    })
                    .await?;
            }
            // What it did not sell goes back (home once it has seen that).
            self.write(move |ctx| Ok(super::escrow::recall(ctx.conn, &node)?)).await?;
            return Ok(listed);
        }
        listed += self
            .write(move |ctx| {
                let mut n = 0;
                for o in orders {
                    if listed_already(ctx.conn, &o.nonce)? {
                        continue;
                    }
                    let detail = serde_json::json!({ "old_primary": o });
                    list(ctx.conn, old_epoch, "order", &o.nonce, "conflict", &detail, now)?;
                    n += 1;
                }
                Ok(n)
            })
            .await?;
        Ok(listed)
    }

    /// The report, newest first, for the dashboard.
    pub async fn takeover_report(&self) -> Result<Vec<TakeoverEntry>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT id, found_at, old_epoch, kind, ref, outcome, detail FROM takeover_report ORDER BY id DESC LIMIT 500",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(TakeoverEntry {
                        id: r.get(0)?,
                        found_at: r.get(1)?,
                        old_epoch: r.get(2)?,
                        kind: r.get(3)?,
                        reference: r.get(4)?,
                        outcome: r.get(5)?,
                        detail: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }
}
