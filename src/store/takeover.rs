//! What an old primary took alone after a newer one was promoted
//! (ARCHITECTURE.md, "Two boxes"): found by comparing its rows with the
//! new primary's snapshot, sent over the link, and merged on the new
//! primary — a check-in by its nonce through the normal decision, a
//! ticket admitted on both boxes or a sale the new primary never saw
//! listed in `takeover_report` for a supervisor, with both records.

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
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeoverReport {
    /// The epoch the old primary took them under.
    pub old_epoch: i64,
    pub checkins: Vec<LoneCheckin>,
    pub orders: Vec<LoneOrder>,
}

impl TakeoverReport {
    /// Adds what `older` holds that this one does not (by nonce).
    pub fn absorb(&mut self, older: TakeoverReport) {
        let have: HashSet<String> = self.checkins.iter().map(|c| c.nonce.clone()).collect();
        self.checkins.extend(older.checkins.into_iter().filter(|c| !have.contains(&c.nonce)));
        let have: HashSet<String> = self.orders.iter().map(|o| o.nonce.clone()).collect();
        self.orders.extend(older.orders.into_iter().filter(|o| !have.contains(&o.nonce)));
        self.old_epoch = self.old_epoch.min(older.old_epoch);
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

impl Store {
    /// On a fenced old primary, before it installs the new primary's
    /// snapshot: the admissions and sales it holds that the snapshot does
    /// not (by nonce).
    pub async fn lone_writes(
        &self,
        snapshot: PathBuf,
        old_epoch: i64,
    ) -> Result<TakeoverReport, StoreError> {
        self.read(move |c| {
            let snap =
                Connection::open_with_flags(&snapshot, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            let scans = column_set(&snap, "SELECT nonce FROM scans")?;
            let orders = column_set(&snap, "SELECT nonce FROM orders")?;
            let mut report = TakeoverReport { old_epoch, ..Default::default() };
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
                report.orders.push(LoneOrder {
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
        let orders = report.orders;
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
