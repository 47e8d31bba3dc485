//! What the cloud reads, pinned: `tests/golden/outbox_events.ndjson` holds
//! one real event of every kind (taken from the box's own tests) as a
//! segment line under `events/`. Each is read into its typed variant and
//! written back through the segment encoder; the bytes must not change.
//! A field renamed, added or dropped in `domain::events` fails here until
//! the golden file is updated (`VENUEBOX_BLESS=1 cargo test --test
//! events_golden`), so the change shows in review as a diff of the file.

use serde_json::Value;
use venuebox::domain::events::Event;
use venuebox::sync::plan::{encode, LogEvent};

const GOLDEN: &str = "tests/golden/outbox_events.ndjson";

fn golden() -> String {
    std::fs::read_to_string(GOLDEN).expect("golden file")
}

/// Every line parsed as its typed event and encoded again as the syncer
/// would.
fn round_trip(text: &str) -> String {
    let mut events = Vec::new();
    for line in text.lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {e}: {line}"));
        let kind = v["kind"].as_str().expect("kind");
        let typed = Event::from_parts(kind, &v["payload"])
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("'{kind}' is not a kind this version writes"));
        let (kind, payload) = typed.to_parts();
        events.push(LogEvent {
            box_id: v["box_id"].as_str().unwrap().to_string(),
            seq: v["seq"].as_i64().unwrap(),
            kind,
            at: v["at"].as_str().unwrap().to_string(),
            payload,
            at_ms: 0,
        });
    }
    let compressed = encode(&events);
    String::from_utf8(zstd::decode_all(&compressed[..]).unwrap()).unwrap()
}

#[test]
fn every_kind_encodes_exactly_as_the_golden_file() {
    let text = golden();
    let again = round_trip(&text);
    if std::env::var_os("VENUEBOX_BLESS").is_some() {
        std::fs::write(GOLDEN, &again).unwrap();
        return;
    }
    for (want, got) in text.lines().zip(again.lines()) {
        assert_eq!(got, want, "an event's shape changed; if that is meant, bless the golden file and say so in the change");
    }
    assert_eq!(again, text);
}

#[test]
fn the_golden_file_covers_every_kind_once() {
    let kinds: Vec<String> = golden()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        Event::KINDS.map(str::to_string).to_vec(),
        "one line per kind, in the enum's order"
    );
}

#[test]
fn a_known_kind_that_does_not_fit_is_an_error_not_zero() {
    let wrong =
        serde_json::json!({"order": "O-1", "kind": "walkup", "receipt": {"totalMinor": 100}});
    let err = Event::from_parts("order.created", &wrong).unwrap_err();
    assert!(err.to_string().contains("order.created"), "{err}");
    // A kind from a newer box is skipped, not an error.
    assert!(Event::from_parts("badge.printed", &serde_json::json!({})).unwrap().is_none());
}
