//! The pure half of sync: which outbox events form the next segment of
//! the event log, what the segment's object key is, and its exact bytes.
//! Nothing here does I/O; the executor (a later step) persists each
//! planned segment before sending it, so a retry after a crash sends the
//! same key with the same bytes.

use crate::domain::time::{format_rfc3339, Millis};
use serde::Serialize;

/// When a segment closes.
#[derive(Clone, Debug)]
pub struct SegmentRules {
    pub max_events: usize,
    /// Uncompressed NDJSON bytes.
    pub max_bytes: usize,
    /// A segment whose first event is this old closes with what it has.
    pub max_age_ms: Millis,
}

impl Default for SegmentRules {
    fn default() -> Self {
        SegmentRules { max_events: 10_000, max_bytes: 8 << 20, max_age_ms: 5_000 }
    }
}

/// One outbox row as the event log carries it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LogEvent {
    pub box_id: String,
    pub seq: i64,
    pub kind: String,
    /// RFC 3339, UTC.
    pub at: String,
    pub payload: serde_json::Value,
    #[serde(skip)]
    pub at_ms: Millis,
}

/// A planned segment: seqs `first..=last`, all of one UTC date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub first: i64,
    pub last: i64,
    pub date: String,
}

impl Segment {
    /// `events/box=<id>/date=YYYY-MM-DD/<first>-<last>.ndjson.zst`, seqs
    /// zero-padded to 12 digits so keys list in order.
    pub fn key(&self, prefix: &str, box_id: &str) -> String {
        let prefix = prefix.trim_matches('/');
        let head = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        format!(
            "{head}events/box={box_id}/date={}/{:012}-{:012}.ndjson.zst",
            self.date, self.first, self.last
        )
    }
}

pub fn utc_date(ms: Millis) -> String {
    format_rfc3339(ms)[..10].to_string()
}

fn line(e: &LogEvent) -> Vec<u8> {
    let mut l = serde_json::to_vec(e).expect("events serialise");
    l.push(b'\n');
    l
}

/// The next segment to send from `events` (consecutive, in seq order,
/// starting right after the cursor), or `None` while the open one should
/// keep filling. A segment never spans two UTC dates.
pub fn next_segment(events: &[LogEvent], rules: &SegmentRules, now: Millis) -> Option<Segment> {
    let first = events.first()?;
    let date = utc_date(first.at_ms);
    let mut bytes = 0;
    let mut last = first.seq;
    for (i, e) in events.iter().enumerate() {
        if i > 0 && utc_date(e.at_ms) != date {
            return Some(Segment { first: first.seq, last, date });
        }
        bytes += line(e).len();
        if i > 0 && bytes > rules.max_bytes {
            return Some(Segment { first: first.seq, last, date });
        }
        last = e.seq;
        if i + 1 == rules.max_events {
            return Some(Segment { first: first.seq, last, date });
        }
    }
    (now - first.at_ms >= rules.max_age_ms).then_some(Segment { first: first.seq, last, date })
}

/// The segment's exact bytes: NDJSON, zstd level 3. Same events, same bytes.
pub fn encode(events: &[LogEvent]) -> Vec<u8> {
    let mut ndjson = Vec::with_capacity(events.len() * 256);
    for e in events {
        ndjson.extend_from_slice(&line(e));
    }
    zstd::bulk::compress(&ndjson, 3).expect("zstd compresses any input")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DAY: Millis = 86_400_000;

    fn ev(seq: i64, at_ms: Millis) -> LogEvent {
        LogEvent {
            box_id: "box-1".into(),
            seq,
            kind: "checkin.admitted".into(),
            at: format_rfc3339(at_ms),
            payload: json!({"n": seq}),
            at_ms,
        }
    }

    #[test]
    fn segment_table() {
        let t = 1_800_000_000_000 - (1_800_000_000_000 % DAY) + 3_600_000; // 01:00 UTC
        let rules = SegmentRules { max_events: 3, max_bytes: 1 << 20, max_age_ms: 5_000 };
        let run =
            |evs: Vec<LogEvent>, now| next_segment(&evs, &rules, now).map(|s| (s.first, s.last));
        assert_eq!(run(vec![], t), None, "nothing to send");
        assert_eq!(
            run(vec![ev(1, t), ev(2, t + 1)], t + 10),
            None,
            "young and small: keep filling"
        );
        assert_eq!(run(vec![ev(1, t), ev(2, t + 1)], t + 5_000), Some((1, 2)), "old enough: close");
        assert_eq!(
            run(vec![ev(1, t), ev(2, t), ev(3, t), ev(4, t)], t),
            Some((1, 3)),
            "count reached"
        );
        assert_eq!(
            run(vec![ev(7, t - 2 * 3_600_000), ev(8, t)], t),
            Some((7, 7)),
            "midnight splits"
        );
        let small = SegmentRules { max_bytes: 150, ..rules.clone() };
        let one = line(&ev(1, t)).len();
        assert!(one < 150 && 2 * one > 150);
        assert_eq!(
            next_segment(&[ev(1, t), ev(2, t)], &small, t).map(|s| (s.first, s.last)),
            Some((1, 1)),
            "size reached"
        );
        let tiny = SegmentRules { max_bytes: 10, ..rules };
        assert_eq!(
            next_segment(&[ev(1, t), ev(2, t)], &tiny, t).map(|s| (s.first, s.last)),
            Some((1, 1)),
            "one event always fits"
        );
    }

    #[test]
    fn keys_sort_in_seq_order_and_bytes_are_deterministic() {
        let s = Segment { first: 9, last: 10, date: "2026-11-27".into() };
        assert_eq!(
            s.key("acme/rooftop/", "box-1"),
            "acme/rooftop/events/box=box-1/date=2026-11-27/000000000009-000000000010.ndjson.zst"
        );
        assert_eq!(
            s.key("", "box-1"),
            "events/box=box-1/date=2026-11-27/000000000009-000000000010.ndjson.zst"
        );
        let a = Segment { first: 99, last: 120, date: s.date.clone() }.key("", "b");
        let b = Segment { first: 121, last: 1000, date: s.date.clone() }.key("", "b");
        assert!(a < b);
        let evs = vec![ev(1, 1_800_000_000_000), ev(2, 1_800_000_000_001)];
        assert_eq!(encode(&evs), encode(&evs));
        let text =
            String::from_utf8(zstd::bulk::decompress(&encode(&evs), 1 << 20).unwrap()).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(
            first,
            json!({"box_id": "box-1", "seq": 1, "kind": "checkin.admitted", "at": "2027-01-15T08:00:00Z", "payload": {"n": 1}})
        );
    }
}
