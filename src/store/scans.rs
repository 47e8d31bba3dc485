//! The scan log: recording a check-in attempt (decided inside the write
//! transaction, so two gates can never both admit one ticket), replaying a
//! nonce, undoing a check-in, listing scans and counting per gate.

use super::{audit, outbox, Store, StoreError, WriteCtx};
use crate::domain::checkin::{
    self, Direction, ListedTicket, Lookup, PriorScan, Reason, Resolution,
};
use crate::domain::error_code::ErrorCode;
use crate::domain::events::{CheckinUndone, Event};
use crate::domain::ids::{GateId, ScanId, TicketId, TierId};
use crate::domain::manifest::{EventSnapshot, TicketStatus};
use crate::domain::role::Actor;
use crate::domain::time::{format_rfc3339, Millis};
use crate::domain::{checkin_questions, checkin_rules};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One scan as the door asked for it.
#[derive(Clone, Debug)]
pub struct ScanRequest {
    pub code: String,
    pub gate: GateId,
    pub direction: Direction,
    /// Client-made; the same nonce always gets the same answer.
    pub nonce: String,
    /// The device's own clock, kept for the record; the box's clock decides.
    pub scanned_at: Option<String>,
    pub staff: String,
    pub device: Option<String>,
    pub now: Millis,
    /// Staff confirmed letting an unpaid ticket in where the gate allows
    /// it after asking (pretix's lists that include pending orders).
    pub confirm_unpaid: bool,
    /// Answers to the questions asked at check-in: question id → answer.
    pub answers: BTreeMap<String, String>,
    /// A ticket found by name, order or email instead of a scanned code
    /// (`code` is then ignored): decided by the same table, recorded with
    /// the ticket's own code where the box knows it.
    pub ticket: Option<TicketId>,
}

pub use crate::domain::checkin::{ScanRecord, Verdict};

/// A fresh decision, or the stored answer to a nonce seen before.
#[derive(Clone, Debug)]
pub enum ScanOutcome {
    New(ScanRecord),
    Replayed(ScanRecord),
}

impl ScanOutcome {
    pub fn record(&self) -> &ScanRecord {
        match self {
            ScanOutcome::New(r) | ScanOutcome::Replayed(r) => r,
        }
    }
}

pub(super) const COLUMNS: &str =
    "id, nonce, code, gate_id, direction, verdict, reason, ticket_id, tier_id, holder,
     prior_gate_id, prior_at, scanned_at, recorded_at, staff, device, undone_at, undone_by";

pub(super) fn from_row(r: &Row<'_>) -> rusqlite::Result<ScanRecord> {
    let direction: String = r.get(4)?;
    let verdict: String = r.get(5)?;
    let reason: Option<String> = r.get(6)?;
    let prior_gate: Option<String> = r.get(10)?;
    let prior_at: Option<Millis> = r.get(11)?;
    let dir = Direction::parse(&direction).unwrap_or(Direction::Entry);
    Ok(ScanRecord {
        id: ScanId(r.get(0)?),
        nonce: r.get(1)?,
        code: r.get(2)?,
        gate: GateId(r.get(3)?),
        direction: dir,
        verdict: if verdict == "admit" { Verdict::Admit } else { Verdict::Reject },
        reason: reason.as_deref().and_then(Reason::parse),
        ticket: r.get::<_, Option<String>>(7)?.map(TicketId),
        tier: r.get::<_, Option<String>>(8)?.map(TierId),
        holder: r.get(9)?,
        prior: prior_gate.zip(prior_at).map(|(g, at)| PriorScan {
            direction: Direction::Entry,
            gate: GateId(g),
            at,
        }),
        scanned_at: r.get(12)?,
        recorded_at: r.get(13)?,
        staff: r.get(14)?,
        device: r.get(15)?,
        undone_at: r.get(16)?,
        undone_by: r.get(17)?,
    })
}

pub(crate) fn listed_ticket(
    conn: &Connection,
    key: &Lookup,
) -> Result<Option<ListedTicket>, StoreError> {
    let (sql, arg) = match key {
        Lookup::ById(id) => ("SELECT id, tier_id, holder, status, valid_from, valid_until FROM tickets WHERE id = ?1", id.as_str()),
        Lookup::BySecret(s) => ("SELECT id, tier_id, holder, status, valid_from, valid_until FROM tickets WHERE secret = ?1", s.as_str()),
    };
    Ok(conn
        .prepare_cached(sql)?
        .query_row([arg], |r| {
            let status: String = r.get(3)?;
            Ok(ListedTicket {
                id: TicketId(r.get(0)?),
                tier: TierId(r.get(1)?),
                holder: r.get(2)?,
                status: TicketStatus::parse(&status).unwrap_or(TicketStatus::Cancelled),
                valid_from: r.get(4)?,
                valid_until: r.get(5)?,
            })
        })
        .optional()?)
}

/// The code a ticket found by lookup is recorded with: its secret or
/// walk-up code (what pretix and the cloud know it by), else `ticket:ID`.
fn looked_up_code(conn: &Connection, id: &TicketId) -> Result<String, StoreError> {
    let code: Option<Option<String>> = conn
        .prepare_cached("SELECT coalesce(secret, code) FROM tickets WHERE id = ?1")?
        .query_row([id.as_str()], |r| r.get(0))
        .optional()?;
    Ok(code.flatten().unwrap_or_else(|| format!("ticket:{id}")))
}

/// The ticket's latest admitted scan that is not undone: anywhere, or at
/// `gate` only (an event from pretix keeps one history per check-in list).
pub(super) fn last_admitted(
    conn: &Connection,
    ticket: &TicketId,
    gate: Option<&GateId>,
) -> Result<Option<(ScanId, PriorScan)>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, direction, gate_id, recorded_at FROM scans
             WHERE ticket_id = ?1 AND verdict = 'admit' AND undone_at IS NULL
               AND (?2 IS NULL OR gate_id = ?2)
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![ticket.as_str(), gate.map(|g| g.as_str())], |r| {
            let d: String = r.get(1)?;
            Ok((
                ScanId(r.get(0)?),
                PriorScan {
                    direction: Direction::parse(&d).unwrap_or(Direction::Entry),
                    gate: GateId(r.get(2)?),
                    at: r.get(3)?,
                },
            ))
        })
        .optional()?)
}

/// The times of a ticket's admitted entries at a gate, oldest first (what
/// pretix's check-in rules count).
fn entries_at(
    conn: &Connection,
    ticket: &TicketId,
    gate: &GateId,
) -> Result<Vec<Millis>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT recorded_at FROM scans
         WHERE ticket_id = ?1 AND gate_id = ?2 AND verdict = 'admit' AND direction = 'entry'
           AND undone_at IS NULL
         ORDER BY id",
    )?;
    let rows = stmt.query_map(params![ticket.as_str(), gate.as_str()], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn by_nonce(conn: &Connection, nonce: &str) -> Result<Option<ScanRecord>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM scans WHERE nonce = ?1"))?
        .query_row([nonce], from_row)
        .optional()?)
}

/// Decides a scan against the event and the ticket's history.
///
/// `pre` is the code already resolved (its signature checked) against an
/// event before the job reached the writer; it is used if that event is
/// still the current one.
fn decide(
    ctx: &WriteCtx<'_>,
    event: &Arc<EventSnapshot>,
    req: &ScanRequest,
    pre: Option<(Arc<EventSnapshot>, Resolution)>,
) -> Result<(ScanRecord, BTreeMap<String, String>), StoreError> {
    let gate = event.gate(&req.gate).ok_or_else(|| StoreError::UnknownGate {
        gate: req.gate.to_string(),
        known: event.manifest.gates.iter().map(|g| g.id.as_str()).collect::<Vec<_>>().join(", "),
    })?;
    let mut rec = ScanRecord {
        id: ScanId(0),
        nonce: req.nonce.clone(),
        code: req.code.clone(),
        gate: req.gate.clone(),
        direction: req.direction,
        verdict: Verdict::Reject,
        reason: None,
        ticket: None,
        tier: None,
        holder: None,
        prior: None,
        scanned_at: req.scanned_at.clone(),
        recorded_at: req.now,
        staff: req.staff.clone(),
        device: req.device.clone(),
        undone_at: None,
        undone_by: None,
    };
    let resolution = match &req.ticket {
        Some(id) => Resolution::Lookup {
            key: Lookup::ById(id.clone()),
            claim: None,
            unlisted: Reason::UnknownTicket,
        },
        None => match pre {
            Some((at, r)) if Arc::ptr_eq(&at, event) => r,
            _ => checkin::resolve(&req.code, event),
        },
    };
    let facts = match resolution {
        Resolution::Rejected(reason) => Err(reason),
        Resolution::Lookup { key, claim, unlisted } => {
            let listed = listed_ticket(ctx.conn, &key)?;
            checkin::facts(&req.code, claim, listed, unlisted, event)
        }
    };
    let facts = match facts {
        Ok(f) => f,
        Err(reason) => {
            rec.reason = Some(reason);
            return Ok((rec, BTreeMap::new()));
        }
    };
    let history = event.history_per_gate().then_some(&req.gate);
    let last = last_admitted(ctx.conn, &facts.ticket.id, history)?.map(|(_, p)| p);
    let mut verdict = checkin::decide(&facts, gate, req.direction, req.now, last.as_ref());
    if verdict.is_ok()
        && req.direction == Direction::Entry
        && checkin::must_confirm_unpaid(&facts, gate, event.manifest.pretix.is_some())
        && !req.confirm_unpaid
    {
        verdict = Err(Reason::Unpaid);
    }
    // pretix decides its custom rules after payment, before "already".
    if req.direction == Direction::Entry
        && matches!(verdict, Ok(()) | Err(Reason::AlreadyCheckedIn))
    {
        if let Some(rules) = event.gate_rules(&req.gate) {
            let rule_facts = checkin_rules::RuleFacts {
                product: crate::domain::pretix::tier_item(&facts.ticket.tier).unwrap_or(0),
                variation: event.pretix_variation(&facts.ticket.id),
                now: req.now,
                entries: entries_at(ctx.conn, &facts.ticket.id, &req.gate)?,
                present: last.as_ref().is_some_and(|l| l.direction == Direction::Entry),
                date_from: event.starts_at,
                date_to: event.ends_at,
                date_admission: event.doors_at,
                timezone: event.manifest.event.timezone.clone(),
            };
            match checkin_rules::allows(rules, &rule_facts) {
                Ok(true) => {}
                Ok(false) => verdict = Err(Reason::Rules),
                Err(e) => {
                    tracing::warn!(gate = %req.gate, error = %e, "a check-in rule failed to evaluate: refused, as pretix does");
                    verdict = Err(Reason::Rules);
                }
            }
        }
    }
    // Questions asked at check-in come last, as at pretix.
    let mut answers = BTreeMap::new();
    if verdict.is_ok() && req.direction == Direction::Entry {
        let (questions, mut answered) = event.checkin_questions(&facts.ticket.id);
        let asked: Vec<_> =
            questions.iter().filter(|q| q.tiers.contains(&facts.ticket.tier)).collect();
        if !asked.is_empty() {
            answered.extend(answered_at_door(ctx.conn, &facts.ticket.id)?);
            if !checkin_questions::unanswered(
                questions,
                &facts.ticket.tier,
                &answered,
                &req.answers,
            )
            .is_empty()
            {
                verdict = Err(Reason::Incomplete);
            } else {
                for q in asked {
                    if let Some(a) = req.answers.get(&q.id.to_string()) {
                        if let Ok(clean) = checkin_questions::clean(q, a) {
                            answers.insert(q.id.to_string(), clean);
                        }
                    }
                }
            }
        }
    }
    rec.ticket = Some(facts.ticket.id);
    rec.tier = Some(facts.ticket.tier);
    rec.holder = facts.ticket.holder;
    match verdict {
        Ok(()) => rec.verdict = Verdict::Admit,
        Err(reason) => {
            rec.reason = Some(reason);
            if reason == Reason::AlreadyCheckedIn {
                rec.prior = last;
            }
        }
    }
    Ok((rec, answers))
}

/// The check-in itself, in the writer's transaction.
pub(super) fn scan_job(
    ctx: &mut WriteCtx<'_>,
    mut req: ScanRequest,
    pre: Option<(Arc<EventSnapshot>, Resolution)>,
    apart: bool,
) -> Result<ScanOutcome, StoreError> {
    if let Some(id) = &req.ticket {
        req.code = looked_up_code(ctx.conn, id)?;
    }
    if let Some(prev) = by_nonce(ctx.conn, &req.nonce)? {
        if prev.code != req.code || prev.gate != req.gate || prev.direction != req.direction {
            return Err(StoreError::NonceConflict(req.nonce));
        }
        ctx.metrics.replayed();
        return Ok(ScanOutcome::Replayed(prev));
    }
    let event = ctx.event.clone().ok_or(StoreError::NoEvent)?;
    if apart {
        if event.gate(&req.gate).is_some_and(|g| g.refuse_offline) {
            return Err(StoreError::refused(
                ErrorCode::PrimaryUnreachable,
                format!("this entrance cannot reach the primary and gate {} refuses scans offline: send guests to the main entrance, or check the link between the boxes", req.gate),
            ));
        }
        super::replica::mark_apart(ctx.conn, req.now)?;
    }
    let (mut rec, answers) = decide(ctx, &event, &req, pre)?;
    insert(ctx, &mut rec)?;
    if rec.verdict == Verdict::Admit && !answers.is_empty() {
        ctx.conn
            .prepare_cached("INSERT INTO scan_answers (scan_id, answers) VALUES (?1, ?2)")?
            .execute(params![
                rec.id.0,
                serde_json::to_string(&answers).expect("a map serialises")
            ])?;
    }
    let event = if rec.verdict == Verdict::Admit {
        Event::CheckinAdmitted(rec.clone())
    } else {
        Event::CheckinRejected(rec.clone())
    };
    outbox::append(ctx, &event, req.now)?;
    ctx.metrics.checkin(rec.reason);
    tracing::debug!(scan = rec.id.0, gate = %rec.gate, verdict = ?rec.verdict, reason = ?rec.reason.map(Reason::as_str), ticket = ?rec.ticket.as_ref().map(|t| t.as_str()), apart, "scan");
    Ok(ScanOutcome::New(rec))
}

/// The check-in questions a ticket answered at the door (admitted scans
/// not undone).
fn answered_at_door(conn: &Connection, ticket: &TicketId) -> Result<Vec<i64>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.answers FROM scan_answers a JOIN scans s ON s.id = a.scan_id
         WHERE s.ticket_id = ?1 AND s.verdict = 'admit' AND s.undone_at IS NULL",
    )?;
    let rows = stmt.query_map([ticket.as_str()], |r| r.get::<_, String>(0))?;
    let mut ids = Vec::new();
    for json in rows {
        let map: BTreeMap<String, String> = serde_json::from_str(&json?).unwrap_or_default();
        ids.extend(map.keys().filter_map(|k| k.parse::<i64>().ok()));
    }
    Ok(ids)
}

fn insert(ctx: &WriteCtx<'_>, rec: &mut ScanRecord) -> Result<(), StoreError> {
    ctx.conn
        .prepare_cached(
            "INSERT INTO scans (nonce, code, gate_id, direction, verdict, reason, ticket_id, tier_id, holder,
                                prior_gate_id, prior_at, scanned_at, recorded_at, staff, device)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?
        .execute(params![
            rec.nonce,
            rec.code,
            rec.gate.as_str(),
            rec.direction.as_str(),
            if rec.verdict == Verdict::Admit { "admit" } else { "reject" },
            rec.reason.map(Reason::as_str),
            rec.ticket.as_ref().map(|t| t.as_str()),
            rec.tier.as_ref().map(|t| t.as_str()),
            rec.holder,
            rec.prior.as_ref().map(|p| p.gate.as_str()),
            rec.prior.as_ref().map(|p| p.at),
            rec.scanned_at,
            rec.recorded_at,
            rec.staff,
            rec.device,
        ])?;
    rec.id = ScanId(ctx.conn.last_insert_rowid());
    Ok(())
}

/// Filters for listing the scan log, newest first.
#[derive(Clone, Debug, Default)]
pub struct ScanFilter {
    pub verdict: Option<Verdict>,
    pub gate: Option<GateId>,
    pub ticket: Option<TicketId>,
    /// Only scans with an id below this (paging).
    pub before: Option<ScanId>,
    pub limit: usize,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct GateCounts {
    pub entries: u64,
    pub exits: u64,
    pub rejected: u64,
    pub undone: u64,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Counts {
    /// Tickets whose latest admitted scan is an entry.
    pub inside: u64,
    pub admitted: u64,
    pub rejected: u64,
    pub gates: BTreeMap<String, GateCounts>,
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Entries admitted per quarter hour, oldest first: the last
    /// `ARRIVAL_BUCKETS` quarters that had any (the arrivals curve).
    pub arrivals: Vec<Arrivals>,
}

/// Entries admitted in the quarter hour starting at `start`.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Arrivals {
    pub start: String,
    pub entries: u64,
}

/// How many quarter hours the arrivals curve keeps (8 hours).
pub const ARRIVAL_BUCKETS: usize = 32;
const QUARTER_HOUR_MS: Millis = 15 * 60_000;

impl Store {
    /// Decides and records one scan durably; a nonce seen before returns
    /// the stored answer and changes nothing.
    pub async fn record_scan(&self, req: ScanRequest) -> Result<ScanOutcome, StoreError> {
        let pre = self.pre_resolve(&req);
        self.write(move |ctx| scan_job(ctx, req, pre, false)).await
    }

    /// A scan at a satellite cut off from the primary (ARCHITECTURE.md,
    /// "Satellites"): decided the same way against the satellite's copy,
    /// exact up to the cut, unless the gate refuses scans offline; kept
    /// for the merge when the link returns.
    pub async fn record_scan_apart(&self, req: ScanRequest) -> Result<ScanOutcome, StoreError> {
        let pre = self.pre_resolve(&req);
        self.write_apart(move |ctx| scan_job(ctx, req, pre, true)).await
    }

    /// The signature is checked here, on the caller's thread, so the
    /// single writer (every door's queue) does not spend its time on it.
    fn pre_resolve(&self, req: &ScanRequest) -> Option<(Arc<EventSnapshot>, Resolution)> {
        match (&req.ticket, self.event()) {
            (None, Some(event)) => {
                let r = checkin::resolve(&req.code, &event);
                Some((event, r))
            }
            _ => None,
        }
    }

    /// Takes back an admitted check-in within `window_ms` of it, if it is
    /// still the ticket's latest admission.
    pub async fn undo_scan(
        &self,
        id: ScanId,
        actor: Actor,
        now: Millis,
        window_ms: Millis,
    ) -> Result<ScanRecord, StoreError> {
        let per_gate = self.event().is_some_and(|e| e.history_per_gate());
        self.write(move |ctx| {
            let mut rec = ctx
                .conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM scans WHERE id = ?1"))?
                .query_row([id.0], from_row)
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("scan {}", id.0)))?;
            if rec.verdict != Verdict::Admit {
                return Err(StoreError::Conflict(format!("scan {} was rejected; only admitted check-ins can be undone", id.0)));
            }
            if rec.undone_at.is_some() {
                return Err(StoreError::Conflict(format!("scan {} was already undone", id.0)));
            }
            let closed_through: i64 = ctx
                .conn
                .prepare_cached("SELECT value FROM box_settings WHERE key = ?1")?
                .query_row([super::sync::UNDO_CLOSED_THROUGH_SETTING], |r| r.get::<_, String>(0))
                .optional()?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if id.0 <= closed_through || now < rec.recorded_at {
                return Err(StoreError::Conflict(format!(
                    "the box's clock was set back after scan {}: its undo window is closed; correct it with a new scan instead",
                    id.0
                )));
            }
            if now - rec.recorded_at > window_ms {
                return Err(StoreError::Conflict(format!(
                    "scan {} is older than the {} s undo window: correct it with a new scan instead",
                    id.0,
                    window_ms / 1000
                )));
            }
            let ticket = rec.ticket.clone().ok_or_else(|| StoreError::Internal("admitted scan without ticket".into()))?;
            let history = per_gate.then_some(&rec.gate);
            if last_admitted(ctx.conn, &ticket, history)?.map(|(latest, _)| latest) != Some(id) {
                return Err(StoreError::Conflict(format!("ticket {ticket} was scanned again after scan {}: undo the later scan first", id.0)));
            }
            ctx.conn
                .prepare_cached("UPDATE scans SET undone_at = ?1, undone_by = ?2 WHERE id = ?3")?
                .execute(params![now, actor.name, id.0])?;
            rec.undone_at = Some(now);
            rec.undone_by = Some(actor.name.clone());
            audit::record(ctx, &actor, "checkin.undo", &serde_json::json!({"scan": id.0, "ticket": ticket}), now)?;
            outbox::append(ctx, &Event::CheckinUndone(CheckinUndone { scan: id, ticket, by: actor.name.clone(), at: now }), now)?;
            Ok(rec)
        })
        .await
    }

    /// The answers given with an admitted scan (question id → answer).
    pub async fn scan_answers(&self, scan: ScanId) -> Result<BTreeMap<String, String>, StoreError> {
        self.read(move |conn| {
            let json: Option<String> = conn
                .prepare_cached("SELECT answers FROM scan_answers WHERE scan_id = ?1")?
                .query_row([scan.0], |r| r.get(0))
                .optional()?;
            Ok(json.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default())
        })
        .await
    }

    pub async fn list_scans(&self, f: ScanFilter) -> Result<Vec<ScanRecord>, StoreError> {
        self.read(move |conn| {
            let mut sql = format!("SELECT {COLUMNS} FROM scans WHERE 1=1");
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            if let Some(v) = f.verdict {
                sql.push_str(" AND verdict = ?");
                args.push(
                    (if v == Verdict::Admit { "admit" } else { "reject" }).to_string().into(),
                );
            }
            if let Some(g) = f.gate {
                sql.push_str(" AND gate_id = ?");
                args.push(g.0.into());
            }
            if let Some(t) = f.ticket {
                sql.push_str(" AND ticket_id = ?");
                args.push(t.0.into());
            }
            if let Some(b) = f.before {
                sql.push_str(" AND id < ?");
                args.push(b.0.into());
            }
            sql.push_str(" ORDER BY id DESC LIMIT ?");
            args.push((f.limit.clamp(1, 1000) as i64).into());
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Live counts: per gate, per reject reason, and people inside now.
    pub async fn counts(&self) -> Result<Counts, StoreError> {
        self.read(|conn| {
            let mut c = Counts::default();
            let mut stmt = conn.prepare_cached(
                "SELECT gate_id, direction, verdict, reason, undone_at IS NOT NULL, COUNT(*) FROM scans GROUP BY 1, 2, 3, 4, 5",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let (gate, dir, verdict, reason, undone, n): (String, String, String, Option<String>, bool, u64) =
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
                let g = c.gates.entry(gate).or_default();
                match (verdict.as_str(), undone) {
                    ("admit", true) => g.undone += n,
                    ("admit", false) => {
                        c.admitted += n;
                        if dir == "exit" { g.exits += n } else { g.entries += n }
                    }
                    _ => {
                        c.rejected += n;
                        g.rejected += n;
                        *c.rejected_by_reason.entry(reason.unwrap_or_default()).or_default() += n;
                    }
                }
            }
            c.inside = conn.query_row(
                "SELECT COUNT(*) FROM scans s JOIN (
                     SELECT MAX(id) AS id FROM scans WHERE verdict = 'admit' AND undone_at IS NULL GROUP BY ticket_id
                 ) latest ON latest.id = s.id WHERE s.direction = 'entry'",
                [],
                |r| r.get(0),
            )?;
            let mut stmt = conn.prepare_cached(
                "SELECT recorded_at / ?1, COUNT(*) FROM scans WHERE verdict = 'admit' AND direction = 'entry' AND undone_at IS NULL
                 GROUP BY 1 ORDER BY 1 DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![QUARTER_HOUR_MS, ARRIVAL_BUCKETS as i64], |r| {
                Ok(Arrivals { start: format_rfc3339(r.get::<_, Millis>(0)? * QUARTER_HOUR_MS), entries: r.get(1)? })
            })?;
            c.arrivals = rows.collect::<Result<Vec<_>, _>>()?;
            c.arrivals.reverse();
            Ok(c)
        })
        .await
    }
}
