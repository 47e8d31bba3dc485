//! The box's clock when a Pi boots without internet (no battery clock):
//! the box sees that its time is earlier than what it already recorded and
//! says so in `/healthz`; an admin gives it the time from a phone; the box
//! keeps that offset (a `clock.set` event, applied again after a restart).
//! The real HTTP server; the system clock is a fixed one the test moves.

use crate::common;

use common::TestBox;
use serde_json::{json, Value};
use venuebox::api::ApiConfig;
use venuebox::clock::Clock;
use venuebox::domain::ids::Seq;
use venuebox::domain::role::Role;
use venuebox::domain::time::parse_rfc3339;

const EVENING: &str = "2026-11-27T20:00:00Z";

async fn health(b: &TestBox) -> Value {
    b.http.get(b.url("/healthz")).send().await.unwrap().json().await.unwrap()
}

async fn set_clock(b: &TestBox, token: &str, now: &str) -> (u16, Value) {
    put_clock(b, token, json!({ "now": now })).await
}

async fn put_clock(b: &TestBox, token: &str, body: Value) -> (u16, Value) {
    let r = b.http.put(b.url("/api/v1/clock")).bearer_auth(token).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn a_clock_behind_its_records_is_reported_and_set_from_a_phone() {
    let evening = parse_rfc3339(EVENING).unwrap();
    let clock = Clock::fixed(evening);
    let b = TestBox::start_with(clock.clone(), ApiConfig::default()).await;
    let door = b.token(Role::Door).await;
    let (s, _) =
        b.scan(&door, json!({"code": b.signed("T-1", "ga"), "gate": "main", "nonce": "c1"})).await;
    assert_eq!(s, 200);
    let h = health(&b).await;
    assert_eq!(
        (h["clock"]["plausible"].as_bool(), h["clock"]["source"].as_str()),
        (Some(true), Some("system")),
        "{h}"
    );

    // The Pi restarts the next morning without internet: its clock says 1970.
    clock.set(86_400_000);
    let h = health(&b).await;
    assert_eq!(h["clock"]["plausible"], false, "{h}");
    assert_eq!(h["clock"]["not_before"], EVENING, "the check-in's time: {h}");
    assert!(h["clock"]["advice"].as_str().unwrap().contains("give it the time"), "{h}");

    // Only an admin gives it the time; nonsense is refused.
    let admin = b.token(Role::Admin).await;
    assert_eq!(set_clock(&b, &door, "2026-11-28T09:00:00Z").await.0, 403);
    assert_eq!(set_clock(&b, &admin, "yesterday").await.0, 400);
    assert_eq!(set_clock(&b, &admin, "1970-01-02T00:00:00Z").await.0, 400);
    // Before what the box already recorded: cannot be right.
    let (s, r) =
        put_clock(&b, &admin, json!({"now": "2026-11-27T19:00:00Z", "confirm": true})).await;
    assert_eq!((s, r["error"]["code"].as_str()), (409, Some("clock_before_records")), "{r}");
    // A jump of decades needs the admin's second "yes".
    let (s, r) = set_clock(&b, &admin, "2026-11-28T09:00:00Z").await;
    assert_eq!((s, r["error"]["code"].as_str()), (409, Some("confirm_clock_jump")), "{r}");
    let (s, r) =
        put_clock(&b, &admin, json!({"now": "2026-11-28T09:00:00Z", "confirm": true})).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["plausible"].as_bool(), r["source"].as_str()),
        (Some(true), Some("set by an admin")),
        "{r}"
    );
    let morning = parse_rfc3339("2026-11-28T09:00:00Z").unwrap();
    assert_eq!(r["offset_ms"].as_i64(), Some(morning - 86_400_000));
    assert_eq!(b.state.clock.now(), morning, "the box runs at the phone's time");
    assert_eq!(clock.system_now(), 86_400_000, "the system clock itself is not touched");
    let events = b.state.store.outbox_after(Seq(0), 100).await.unwrap();
    let set = events.iter().find(|e| e.kind == "clock.set").expect("a clock.set event");
    assert_eq!(set.payload["offset_ms"].as_i64(), Some(morning - 86_400_000));
    assert_eq!(set.payload["previous_offset_ms"].as_i64(), Some(0));

    // After a restart (same data, same wrong system clock) the offset holds.
    let config = venuebox::server::Config::new(b.dir.path());
    let again = venuebox::server::open(&config, Clock::fixed(86_400_000 + 60_000)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(venuebox::server::serve(again.clone(), listener, std::future::pending()));
    let h: Value = loop {
        if let Ok(r) = reqwest::get(format!("http://{addr}/healthz")).await {
            break r.json().await.unwrap();
        }
    };
    assert_eq!(again.clock.now(), morning + 60_000, "{h}");
    assert_eq!(
        (h["clock"]["plausible"].as_bool(), h["clock"]["source"].as_str()),
        (Some(true), Some("set by an admin")),
        "{h}"
    );
}

/// The clock set back (before: moving it earlier reopened an undo window
/// that had closed, and stretched cart holds): the undo windows of the
/// scans before stay closed, and the clock still cannot go before them.
#[tokio::test]
async fn setting_the_clock_back_never_reopens_an_undo_window() {
    let evening = parse_rfc3339(EVENING).unwrap();
    let clock = Clock::fixed(evening);
    let b = TestBox::start_with(clock.clone(), ApiConfig::default()).await;
    let door = b.token(Role::Door).await;
    let (s, v) =
        b.scan(&door, json!({"code": b.signed("T-9", "ga"), "gate": "main", "nonce": "u1"})).await;
    assert_eq!(s, 200, "{v}");
    let scan = v["scan_id"].as_i64().unwrap();
    // Ten minutes on, the undo window (two minutes) has closed.
    clock.advance(10 * 60_000);
    let sup = b.token(Role::Supervisor).await;
    let undo_path = format!("/api/v1/checkins/{scan}/undo");
    assert_eq!(b.post(&sup, &undo_path, json!({})).await.0, 409);
    // The admin sets the box's time one minute after the check-in.
    let admin = b.token(Role::Admin).await;
    let (s, r) = set_clock(&b, &admin, "2026-11-27T20:01:00Z").await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(b.state.clock.now(), evening + 60_000);
    let (s, r) = b.post(&sup, &undo_path, json!({})).await;
    assert_eq!(s, 409, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("set back"), "{r}");
    // A check-in after the change has its window as usual.
    let (_, v) =
        b.scan(&door, json!({"code": b.signed("T-10", "ga"), "gate": "main", "nonce": "u2"})).await;
    let later = v["scan_id"].as_i64().unwrap();
    assert_eq!(b.post(&sup, &format!("/api/v1/checkins/{later}/undo"), json!({})).await.0, 200);
}

/// A box that was off for a week boots believing it is last week: the
/// organiser's manifest, signed yesterday, says its clock cannot be right
/// even before it records anything.
#[tokio::test]
async fn a_clock_before_the_manifest_was_signed_is_reported() {
    let evening = parse_rfc3339(EVENING).unwrap();
    let clock = Clock::fixed(evening);
    let b = TestBox::start_with(clock.clone(), ApiConfig::default()).await;
    assert_eq!(health(&b).await["clock"]["plausible"], true);
    let signed = "2026-11-29T10:00:00Z";
    let bytes = common::manifest(&b.key, 2, |m| m["signed_at"] = json!(signed));
    let sig = venuebox::domain::keys::sign_detached(&b.key.signing_key(), &bytes);
    let admin = b.token(Role::Admin).await;
    let import = json!({"manifest": String::from_utf8(bytes).unwrap(), "signature": sig});
    let (status, r) = b.post(&admin, "/api/v1/manifest", import).await;
    assert_eq!(status, 200, "{r}");
    let h = health(&b).await;
    assert_eq!(h["clock"]["plausible"], false, "{h}");
    assert_eq!(h["clock"]["not_before"], signed, "the manifest's signing time: {h}");
}

/// `venuebox manifest sign` stamps the signing time into a manifest that
/// has none, as its first field, and signs the stamped bytes.
#[test]
fn signing_a_manifest_stamps_when_it_was_signed() {
    let dir = tempfile::tempdir().unwrap();
    let key = venuebox::organiser::keyfile::KeyFile::generate();
    let path = dir.path().join("manifest.json");
    std::fs::write(&path, common::manifest(&key, 1, |_| {})).unwrap();
    let now = parse_rfc3339("2026-11-29T10:00:00Z").unwrap();
    let sig = venuebox::organiser::sign_manifest(&path, &key, now).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.starts_with("{\n  \"signed_at\": \"2026-11-29T10:00:00Z\","), "{text}");
    let snapshot = venuebox::domain::manifest::parse(&bytes).unwrap();
    assert_eq!(snapshot.signed_at, Some(now));
    let signature = std::fs::read_to_string(sig).unwrap();
    let signature = venuebox::domain::keys::signature_from_base64(signature.trim()).unwrap();
    let trusted = venuebox::domain::keys::TrustedKeys::new([key.signing_key().verifying_key()]);
    assert!(trusted.verify_any(&bytes, &signature).is_some(), "the stamped bytes are signed");
    // Signed again: the stamp is kept, not added twice.
    venuebox::organiser::sign_manifest(&path, &key, now + 1000).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}
