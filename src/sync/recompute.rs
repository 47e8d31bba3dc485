//! Payout totals from the event log alone: what a cloud job computes from
//! `events/` (and the manifest it published) to check or replace the
//! box's statements. It reads the same facts the box's rows hold:
//! `order.created` (kind, creator, total, tax), `order.voided` /
//! `order.refunded`, `scholarship.claimed`, `capture.completed` (the first
//! upload of a hash) and `capture.hidden`.

use crate::domain::events::{Event, EventError};
use crate::domain::manifest::Manifest;
use crate::domain::payout::{Sales, Totals};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

struct Order {
    kind: &'static str,
    creator: Option<String>,
    total: i64,
    tax: i64,
    closed: bool,
}

/// Reads NDJSON lines of `events/` segments (`{"kind", "payload", ...}`)
/// as typed events; kinds this version does not know are skipped, a known
/// kind that does not fit its type is an error (never read as zero).
pub fn parse<'a>(lines: impl IntoIterator<Item = &'a Value>) -> Result<Vec<Event>, EventError> {
    let mut out = Vec::new();
    for line in lines {
        let kind = line.get("kind").and_then(Value::as_str).unwrap_or_default();
        if let Some(e) = Event::from_parts(kind, line.get("payload").unwrap_or(&Value::Null))? {
            out.push(e);
        }
    }
    Ok(out)
}

/// Totals per creator from `events` in seq order.
pub fn totals<'a>(
    manifest: &Manifest,
    events: impl IntoIterator<Item = &'a Event>,
) -> BTreeMap<String, Totals> {
    let mut orders: HashMap<&str, Order> = HashMap::new();
    let mut order_seq: Vec<&str> = Vec::new();
    let mut claims: Vec<(&str, &str)> = Vec::new(); // (program, order)
    let mut captures: HashMap<&str, (&str, u64)> = HashMap::new();
    let mut hidden: HashSet<&str> = HashSet::new();
    for event in events {
        match event {
            Event::OrderCreated(o) => {
                orders.insert(
                    o.order.as_str(),
                    Order {
                        kind: o.kind.as_str(),
                        creator: o.creator.as_ref().map(|c| c.to_string()),
                        total: o.receipt.total_minor,
                        tax: o.receipt.tax_minor,
                        closed: false,
                    },
                );
                order_seq.push(o.order.as_str());
            }
            Event::OrderVoided(c) | Event::OrderRefunded(c) => {
                if let Some(o) = orders.get_mut(c.order.as_str()) {
                    o.closed = true;
                }
            }
            Event::ScholarshipClaimed(c) => claims.push((c.program.as_str(), c.order.as_str())),
            Event::CaptureCompleted(c) => {
                captures.entry(c.sha256.as_str()).or_insert((c.creator.as_str(), c.bytes));
            }
            Event::CaptureHidden(c) => {
                hidden.insert(c.sha256.as_str());
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    for c in &manifest.creators {
        let id = c.id.as_str();
        let sum = |kind: &str| {
            order_seq
                .iter()
                .filter_map(|o| orders.get(o))
                .filter(|o| o.kind == kind && o.creator.as_deref() == Some(id))
                .fold(Sales::default(), |acc, o| {
                    acc + Sales {
                        orders: 1,
                        gross_minor: o.total,
                        tax_minor: o.tax,
                        refunded_minor: if o.closed { o.total } else { 0 },
                        refunded_tax_minor: if o.closed { o.tax } else { 0 },
                    }
                })
        };
        let funded: HashSet<&str> = manifest
            .scholarships
            .iter()
            .filter(|p| p.funder.creator.as_ref().is_some_and(|f| f == &c.id))
            .map(|p| p.id.as_str())
            .collect();
        let seats = claims
            .iter()
            .filter(|(program, order)| {
                funded.contains(program) && !orders.get(order).is_some_and(|o| o.closed)
            })
            .count() as u64;
        let (mut n, mut bytes) = (0, 0);
        for (sha, (creator, b)) in &captures {
            if *creator == id && !hidden.contains(sha) {
                n += 1;
                bytes += b;
            }
        }
        let totals = Totals {
            referral_tickets: sum("walkup"),
            scholarship_tickets: sum("scholarship"),
            scholarship_seats_funded: seats,
            drops: sum("drop"),
            captures: n,
            capture_bytes: bytes,
            payout_minor: 0,
        };
        out.insert(id.to_string(), totals.priced(&c.payout));
    }
    out
}
