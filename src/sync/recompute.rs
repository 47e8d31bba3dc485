//! Payout totals from the event log alone: what a cloud job computes from
//! `events/` (and the manifest it published) to check or replace the
//! box's statements. It reads the same facts the box's rows hold:
//! `order.created` (kind, creator, total, tax), `order.voided` /
//! `order.refunded`, `scholarship.claimed`, `capture.completed` (the first
//! upload of a hash) and `capture.hidden`.

use crate::domain::manifest::Manifest;
use crate::domain::payout::{Sales, Totals};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

struct Order {
    kind: String,
    creator: Option<String>,
    total: i64,
    tax: i64,
    closed: bool,
}

/// `events` as `(kind, payload)`, in seq order.
pub fn totals<'a>(manifest: &Manifest, events: impl IntoIterator<Item = (&'a str, &'a Value)>) -> BTreeMap<String, Totals> {
    let mut orders: HashMap<String, Order> = HashMap::new();
    let mut order_seq: Vec<String> = Vec::new();
    let mut claims: Vec<(String, String)> = Vec::new(); // (program, order)
    let mut captures: HashMap<String, (String, u64)> = HashMap::new();
    let mut hidden: HashSet<String> = HashSet::new();
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    for (kind, p) in events {
        match kind {
            "order.created" => {
                let Some(id) = s(p, "order").or_else(|| p.pointer("/receipt/order_id").and_then(Value::as_str).map(str::to_string)) else { continue };
                let receipt = p.get("receipt").cloned().unwrap_or(Value::Null);
                orders.insert(id.clone(), Order {
                    kind: s(p, "kind").unwrap_or_default(),
                    creator: s(p, "creator"),
                    total: receipt.get("total_minor").and_then(Value::as_i64).unwrap_or(0),
                    tax: receipt.get("tax_minor").and_then(Value::as_i64).unwrap_or(0),
                    closed: false,
                });
                order_seq.push(id);
            }
            "order.voided" | "order.refunded" => {
                if let Some(o) = s(p, "order").and_then(|id| orders.get_mut(&id)) {
                    o.closed = true;
                }
            }
            "scholarship.claimed" => {
                if let (Some(program), Some(order)) = (s(p, "program"), s(p, "order")) {
                    claims.push((program, order));
                }
            }
            "capture.completed" => {
                if let (Some(sha), Some(creator)) = (s(p, "sha256"), s(p, "creator")) {
                    let bytes = p.get("bytes").and_then(Value::as_u64).unwrap_or(0);
                    captures.entry(sha).or_insert((creator, bytes));
                }
            }
            "capture.hidden" => {
                if let Some(sha) = s(p, "sha256") {
                    hidden.insert(sha);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    for c in &manifest.creators {
        let id = c.id.as_str();
        let sum = |kind: &str| {
            order_seq.iter().filter_map(|o| orders.get(o)).filter(|o| o.kind == kind && o.creator.as_deref() == Some(id)).fold(Sales::default(), |acc, o| {
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
            .filter(|(program, order)| funded.contains(program.as_str()) && !orders.get(order).is_some_and(|o| o.closed))
            .count() as u64;
        let (mut n, mut bytes) = (0, 0);
        for (sha, (creator, b)) in &captures {
            if creator == id && !hidden.contains(sha) {
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
