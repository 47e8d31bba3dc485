//! Check-in at the door: scan, list, undo, live counts.

use super::auth::Principal;
use super::error::ApiError;
use super::json::{Json, Query};
use super::AppState;
use crate::domain::checkin::{Direction, Reason};
use crate::domain::ids::{GateId, ScanId, TicketId, TierId};
use crate::domain::role::Role;
use crate::domain::time::{format_rfc3339, parse_rfc3339};
use crate::store::scans::{Counts, ScanFilter, ScanOutcome, ScanRecord, ScanRequest, Verdict};
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

const MAX_CODE: usize = 1024;
const MAX_NONCE: usize = 128;
/// Questions answered with one scan at most.
const MAX_ANSWERS: usize = 50;

/// Exactly one of `code` (what was scanned or typed) and `ticket` (a
/// ticket found with `GET /api/v1/tickets`).
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckinRequest {
    /// The scanned or typed text; or `ticket` instead.
    #[serde(default)]
    #[schemars(length(max = MAX_CODE))]
    code: Option<String>,
    /// A ticket found with `GET /api/v1/tickets` (a guest whose phone is
    /// dead): decided as a scan of its code.
    #[serde(default)]
    #[schemars(length(max = MAX_CODE))]
    ticket: Option<String>,
    #[schemars(length(max = 64))]
    gate: String,
    #[schemars(length(max = MAX_NONCE))]
    nonce: String,
    /// `entry` (the default) or `exit`.
    #[serde(default)]
    #[schemars(with = "Option<crate::domain::checkin::Direction>")]
    direction: Option<String>,
    /// When the device scanned it, if it queued the scan while the box was
    /// out of reach.
    #[serde(default)]
    #[schemars(extend("format" = "date-time"))]
    scanned_at: Option<String>,
    #[serde(default)]
    #[schemars(length(max = 128))]
    device: Option<String>,
    /// Staff answered "let in anyway" to an unpaid ticket the gate admits
    /// after asking (the answer's `ask` was `unpaid`).
    #[serde(default)]
    confirm_unpaid: bool,
    /// Answers to the questions asked at check-in (the answer's
    /// `questions`): question id → answer. Choices by option id (several
    /// comma-separated), yes/no as true/false, dates as YYYY-MM-DD, times
    /// as HH:MM.
    #[serde(default)]
    #[schemars(extend(
        "maxProperties" = MAX_ANSWERS,
        "additionalProperties" = {"type": "string", "maxLength": crate::domain::checkin_questions::MAX_ANSWER},
    ))]
    answers: std::collections::BTreeMap<String, String>,
}

/// The answer the door shows (`CheckinAnswer` in the OpenAPI document).
#[derive(Serialize, schemars::JsonSchema)]
pub struct CheckinAnswer {
    scan_id: ScanId,
    verdict: Verdict,
    reason: Option<Reason>,
    /// What staff say to the guest.
    message: String,
    ticket: Option<TicketSummary>,
    gate: GateId,
    direction: Direction,
    recorded_at: String,
    /// For `already_checked_in`: the admission that came first.
    previous: Option<PreviousAdmission>,
    undone_at: Option<String>,
    /// A question staff may answer by scanning again with a confirmation:
    /// `unpaid` ("Unpaid: let in anyway?" → `confirm_unpaid`).
    ask: Option<&'static str>,
    /// Staff must notice something (the product's or order's check-in
    /// attention flag): the verdict stands out.
    attention: bool,
    /// What to do or say for this ticket (the product's, then the order's).
    checkin_texts: Vec<String>,
    /// For `incomplete`: the questions to ask before the ticket enters.
    questions: Vec<crate::domain::checkin_questions::CheckinQuestion>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct TicketSummary {
    id: TicketId,
    tier: Option<TierId>,
    tier_name: Option<String>,
    holder: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct PreviousAdmission {
    at: String,
    gate: GateId,
    gate_name: Option<String>,
}

/// One row of the scan list: the answer and who scanned what, when.
#[derive(Serialize, schemars::JsonSchema)]
struct ScanListItem {
    #[serde(flatten)]
    answer: CheckinAnswer,
    /// Whole for supervisors, masked for everyone else.
    code: String,
    nonce: String,
    staff: String,
    device: Option<String>,
    scanned_at: Option<String>,
    undone_by: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct ScanPage {
    items: Vec<ScanListItem>,
    next_before: Option<ScanId>,
}

/// The answer the door shows. Built only from the stored record, so a
/// replayed nonce gets the same answer as the first time.
fn answer(st: &AppState, r: &ScanRecord) -> CheckinAnswer {
    let event = st.store.event();
    let tier_name = r
        .tier
        .as_ref()
        .and_then(|t| event.as_ref().and_then(|e| e.tier(t).map(|t| t.name.clone())));
    let gate_name = |g: &GateId| event.as_ref().and_then(|e| e.gate(g).map(|g| g.name.clone()));
    let message = r.message(gate_name);
    let (attention, checkin_texts) = match (&event, &r.ticket) {
        (Some(e), Some(t)) => e.checkin_note(Some(t), r.tier.as_ref()),
        _ => (false, Vec::new()),
    };
    let ask = (r.reason == Some(Reason::Unpaid)
        && event.as_ref().is_some_and(|e| {
            e.manifest.pretix.is_some() && e.gate(&r.gate).is_some_and(|g| g.admit_unpaid)
        }))
    .then_some("unpaid");
    let questions = match (&event, &r.ticket, &r.tier) {
        (Some(e), Some(t), Some(tier)) if r.reason == Some(Reason::Incomplete) => {
            let (all, answered) = e.checkin_questions(t);
            crate::domain::checkin_questions::unanswered(all, tier, &answered, &Default::default())
                .into_iter()
                .cloned()
                .collect()
        }
        _ => Vec::new(),
    };
    CheckinAnswer {
        scan_id: r.id,
        verdict: r.verdict,
        reason: r.reason,
        message,
        ticket: r.ticket.as_ref().map(|id| TicketSummary {
            id: id.clone(),
            tier: r.tier.clone(),
            tier_name,
            holder: r.holder.clone(),
        }),
        gate: r.gate.clone(),
        direction: r.direction,
        recorded_at: format_rfc3339(r.recorded_at),
        previous: r.prior.as_ref().map(|p| PreviousAdmission {
            at: format_rfc3339(p.at),
            gate: p.gate.clone(),
            gate_name: gate_name(&p.gate),
        }),
        undone_at: r.undone_at.map(format_rfc3339),
        ask,
        attention,
        checkin_texts,
        questions,
    }
}

fn validate(req: &CheckinRequest) -> Result<Direction, ApiError> {
    match (&req.code, &req.ticket) {
        (Some(code), None) if !code.trim().is_empty() && code.len() <= MAX_CODE => {}
        (None, Some(t)) if !t.is_empty() && t.len() <= MAX_CODE => {}
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "send either code (what was scanned) or ticket (a ticket found by lookup), not both",
            ))
        }
        _ => {
            return Err(ApiError::bad_request(format!(
                "code must be the scanned text, 1 to {MAX_CODE} characters (or ticket: the id of a ticket found with GET /api/v1/tickets)"
            )))
        }
    }
    if req.nonce.is_empty()
        || req.nonce.len() > MAX_NONCE
        || req.nonce.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(format!(
            "nonce must be 1 to {MAX_NONCE} printable characters, fresh for each scan (a UUID is ideal)"
        )));
    }
    if req.gate.is_empty() {
        return Err(ApiError::bad_request("gate is required: the id of the gate this device scans at (GET /api/v1/event lists them)"));
    }
    if req.answers.len() > MAX_ANSWERS
        || req
            .answers
            .keys()
            .any(|k| k.is_empty() || k.len() > 20 || !k.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(ApiError::bad_request(format!(
            "answers must map question ids (digits, from the answer's questions) to answers, at most {MAX_ANSWERS}"
        )));
    }
    if let Some(t) = &req.scanned_at {
        parse_rfc3339(t).map_err(|e| ApiError::bad_request(format!("scanned_at: {e}")))?;
    }
    match req.direction.as_deref() {
        None => Ok(Direction::Entry),
        Some(d) => Direction::parse(d)
            .ok_or_else(|| ApiError::bad_request(format!("direction '{d}' must be entry or exit"))),
    }
}

pub async fn create(
    State(st): State<AppState>,
    p: Principal,
    apart: Option<axum::Extension<super::forward::Apart>>,
    Json(req): Json<CheckinRequest>,
) -> Result<Response, ApiError> {
    p.require(Role::Door)?;
    let direction = validate(&req)?;
    let scan = ScanRequest {
        code: req.code.unwrap_or_default(),
        ticket: req.ticket.map(TicketId),
        gate: GateId(req.gate),
        direction,
        nonce: req.nonce,
        scanned_at: req.scanned_at,
        staff: p.actor.name,
        device: req.device,
        now: st.clock.now(),
        confirm_unpaid: req.confirm_unpaid,
        answers: req.answers,
    };
    // At a satellite cut off from the primary (`forward`): decided here.
    let outcome = match apart {
        Some(_) => st.store.record_scan_apart(scan).await?,
        None => st.store.record_scan(scan).await?,
    };
    let mut resp = axum::Json(answer(&st, outcome.record())).into_response();
    if let ScanOutcome::New(r) = &outcome {
        st.devices.pipeline.publish(&format!("staff {}", r.staff), r);
    }
    if let ScanOutcome::Replayed(_) = outcome {
        resp.headers_mut().insert(
            HeaderName::from_static("idempotent-replayed"),
            HeaderValue::from_static("true"),
        );
    }
    Ok(resp)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    verdict: Option<String>,
    #[serde(default)]
    gate: Option<String>,
    #[serde(default)]
    ticket: Option<String>,
    #[serde(default)]
    before: Option<i64>,
    #[serde(default)]
    limit: Option<usize>,
}

pub async fn list(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> Result<Json<ScanPage>, ApiError> {
    p.require(Role::Door)?;
    let verdict = match q.verdict.as_deref() {
        None => None,
        Some("admit") => Some(Verdict::Admit),
        Some("reject") => Some(Verdict::Reject),
        Some(v) => {
            return Err(ApiError::bad_request(format!("verdict '{v}' must be admit or reject")))
        }
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1 to 1000"));
    }
    let rows = st
        .store
        .list_scans(ScanFilter {
            verdict,
            gate: q.gate.map(GateId),
            ticket: q.ticket.map(TicketId),
            before: q.before.map(ScanId),
            limit,
        })
        .await?;
    let next = if rows.len() == limit { rows.last().map(|r| r.id) } else { None };
    let whole = p.actor.role.allows(Role::Supervisor);
    let items = rows
        .iter()
        .map(|r| ScanListItem {
            answer: answer(&st, r),
            // The code admits at the door: only supervisors see it whole.
            code: if whole { r.code.clone() } else { mask_code(&r.code) },
            nonce: r.nonce.clone(),
            staff: r.staff.clone(),
            device: r.device.clone(),
            scanned_at: r.scanned_at.clone(),
            undone_by: r.undone_by.clone(),
        })
        .collect();
    Ok(Json(ScanPage { items, next_before: next }))
}

/// `VB1:…XYZW`: enough for staff to tell two scans apart, not enough to
/// admit anyone.
pub(super) fn mask_code(code: &str) -> String {
    let tail: String = code.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("…{tail}")
}

pub async fn undo(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<CheckinAnswer>, ApiError> {
    p.require(Role::Supervisor)?;
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request(format!("'{id}' is not a scan id (a number from scan_id)"))
    })?;
    let rec =
        st.store.undo_scan(ScanId(id), p.actor, st.clock.now(), st.config.undo_window_ms).await?;
    tracing::info!(scan = id, by = ?rec.undone_by, "check-in undone");
    Ok(Json(answer(&st, &rec)))
}

pub async fn stats(State(st): State<AppState>, p: Principal) -> Result<Json<Counts>, ApiError> {
    p.require(Role::Door)?;
    let mut counts = st.store.counts().await?;
    // Every reason appears, zero or not, so dashboards have a stable shape.
    for r in Reason::ALL {
        counts.rejected_by_reason.entry(r.as_str().to_string()).or_insert(0);
    }
    Ok(Json(counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_in_answer_is_the_documented_one() {
        let answer = CheckinAnswer {
            scan_id: ScanId(7),
            verdict: Verdict::Reject,
            reason: Some(Reason::AlreadyCheckedIn),
            message: "Already checked in at Main door (20:14:00 UTC)".into(),
            ticket: Some(TicketSummary {
                id: TicketId("R-1".into()),
                tier: Some(TierId("ga".into())),
                tier_name: Some("General".into()),
                holder: Some("Ada".into()),
            }),
            gate: GateId("main".into()),
            direction: Direction::Entry,
            recorded_at: "2026-11-27T20:20:00Z".into(),
            previous: Some(PreviousAdmission {
                at: "2026-11-27T20:14:00Z".into(),
                gate: GateId("main".into()),
                gate_name: Some("Main door".into()),
            }),
            undone_at: Some("2026-11-27T20:21:00Z".into()),
            ask: Some("unpaid"),
            attention: true,
            checkin_texts: vec!["Hand over the VIP wristband".into()],
            questions: vec![crate::domain::checkin_questions::CheckinQuestion {
                id: 5,
                question: "Wristband number".into(),
                kind: "C".into(),
                required: true,
                tiers: vec![TierId("ga".into())],
                options: vec![crate::domain::checkin_questions::QuestionOption {
                    id: 7,
                    answer: "Red".into(),
                }],
            }],
        };
        super::super::contract::assert_documented("CheckinAnswer", &answer);
    }
}
