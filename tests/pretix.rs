//! Tickets sold by a real pretix (installed from PyPI by the test set-up,
//! tests/common/pretix.rs), read by the box offline: an event switched to
//! pretix's signed secrets (pretix_sig1), items with and without
//! variations, orders placed through pretix's REST API; every ticket's
//! secret verifies with the key pretix publishes for its event and says
//! which item and variation it admits; another event's key refuses it; a
//! classic (random) pretix secret is not taken for a signed one.

mod common;

use common::pretix::Pretix;
use reqwest::Method;
use serde_json::{json, Value};
use venuebox::domain::pretix::{parse_sig1, sig1_key, Sig1Error};

/// An event with general admission and a VIP item in two variations, a
/// quota for all, a check-in list; its item ids.
async fn event(p: &Pretix, slug: &str, signed: bool) -> (i64, i64, Vec<i64>) {
    let ev = json!({"name": {"en": format!("Creator night {slug}")}, "slug": slug,
        "date_from": "2026-12-05T19:00:00Z", "currency": "EUR", "live": false});
    p.ok(Method::POST, "/events/", Some(ev)).await;
    if signed {
        p.use_signed_secrets(slug);
    }
    let ga = json!({"name": {"en": "General admission"}, "default_price": "25.00", "admission": true, "active": true});
    let ga = p.ok(Method::POST, &format!("/events/{slug}/items/"), Some(ga)).await["id"]
        .as_i64()
        .unwrap();
    let vip = json!({"name": {"en": "VIP"}, "default_price": "90.00", "admission": true, "active": true,
        "has_variations": true,
        "variations": [{"value": {"en": "Front row"}, "active": true, "default_price": "120.00"},
                       {"value": {"en": "Balcony"}, "active": true}]});
    let vip = p.ok(Method::POST, &format!("/events/{slug}/items/"), Some(vip)).await;
    let variations: Vec<i64> =
        vip["variations"].as_array().unwrap().iter().map(|v| v["id"].as_i64().unwrap()).collect();
    let vip = vip["id"].as_i64().unwrap();
    let quota = json!({"name": "all", "size": 100, "items": [ga, vip], "variations": variations});
    p.ok(Method::POST, &format!("/events/{slug}/quotas/"), Some(quota)).await;
    let list = json!({"name": "Main door", "all_products": true});
    p.ok(Method::POST, &format!("/events/{slug}/checkinlists/"), Some(list)).await;
    (ga, vip, variations)
}

/// Places an order (paid or pending) for `positions` (item, variation).
async fn order(
    p: &Pretix,
    slug: &str,
    paid: bool,
    positions: &[(i64, Option<i64>, &str)],
) -> Value {
    let positions: Vec<Value> = positions
        .iter()
        .map(|(item, variation, name)| json!({"item": item, "variation": variation, "attendee_name": name}))
        .collect();
    let body = json!({"email": "guest@example.org", "locale": "en", "sales_channel": "web",
        "payment_provider": "manual", "status": if paid { "p" } else { "n" }, "send_email": false,
        "positions": positions});
    p.ok(Method::POST, &format!("/events/{slug}/orders/"), Some(body)).await
}

async fn keys(p: &Pretix, slug: &str) -> Vec<ed25519_dalek::VerifyingKey> {
    let ev = p.ok(Method::GET, &format!("/events/{slug}/"), None).await;
    ev["valid_keys"]["pretix_sig1"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| sig1_key(k.as_str().unwrap()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pretix_signed_tickets_verify_offline_with_their_events_key() {
    let p = tokio::task::spawn_blocking(Pretix::start).await.unwrap();
    let (ga, vip, variations) = event(&p, "night", true).await;
    let paid = order(
        &p,
        "night",
        true,
        &[(ga, None, "Ada Lovelace"), (vip, Some(variations[0]), "Grace Hopper")],
    )
    .await;
    let pending = order(&p, "night", false, &[(vip, Some(variations[1]), "Alan Turing")]).await;
    let night = keys(&p, "night").await;
    assert_eq!(night.len(), 1, "one signing key for the event");

    for o in [&paid, &pending] {
        for pos in o["positions"].as_array().unwrap() {
            let secret = pos["secret"].as_str().unwrap();
            let t = parse_sig1(secret, &night).unwrap_or_else(|e| panic!("{secret}: {e}"));
            assert_eq!(t.item, pos["item"].as_i64().unwrap(), "{pos}");
            assert_eq!(t.variation, pos["variation"].as_i64().unwrap_or(0), "{pos}");
            assert_eq!((t.subevent, t.valid_from, t.valid_until), (0, None, None));
            assert!(!t.seed.is_empty());
        }
    }

    // Another signed event has its own key: this event's tickets do not
    // verify with it.
    let (mga, _, _) = event(&p, "matinee", true).await;
    order(&p, "matinee", true, &[(mga, None, "Someone")]).await;
    let matinee = keys(&p, "matinee").await;
    let ada = paid["positions"][0]["secret"].as_str().unwrap();
    assert_eq!(parse_sig1(ada, &matinee), Err(Sig1Error::BadSignature));

    // A classic event: pretix's random secrets are not signed tickets.
    let (cga, _, _) = event(&p, "classic", false).await;
    let classic = order(&p, "classic", true, &[(cga, None, "Linus")]).await;
    let secret = classic["positions"][0]["secret"].as_str().unwrap();
    assert_eq!(parse_sig1(secret, &night), Err(Sig1Error::NotSig1), "{secret}");
}
