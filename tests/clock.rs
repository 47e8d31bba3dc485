//! The box's clock when a Pi boots without internet (no battery clock):
//! the box sees that its time is earlier than what it already recorded and
//! says so in `/healthz`; an admin gives it the time from a phone; the box
//! keeps that offset (a `clock.set` event, applied again after a restart).
//! The real HTTP server; the system clock is a fixed one the test moves.

mod common;

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
    let r = b
        .http
        .put(b.url("/api/v1/clock"))
        .bearer_auth(token)
        .json(&json!({ "now": now }))
        .send()
        .await
        .unwrap();
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
    let (s, r) = set_clock(&b, &admin, "2026-11-28T09:00:00Z").await;
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
