//! Selling end to end: walk-up tickets, scholarship claims, drops with
//! holds, limits, reserves, cycling, refunds and receipts — through the
//! real server with real concurrent HTTP clients, on a controlled clock.

use crate::common;

use common::{decode_qr_png, nonce, TestBox, SUPERVISOR_PIN};
use serde_json::{json, Value};
use venuebox::api::ApiConfig;
use venuebox::clock::Clock;
use venuebox::domain::ids::Seq;
use venuebox::domain::role::Role;
use venuebox::domain::time::{format_rfc3339, parse_rfc3339};

const MIN: i64 = 60_000;
const HOLD_TTL: i64 = 2 * MIN;

fn t0() -> i64 {
    parse_rfc3339("2026-11-27T20:00:00Z").unwrap()
}

/// The selling sections of the test manifest, timed around `t0`.
fn selling(m: &mut Value) {
    let at = |offset: i64| format_rfc3339(t0() + offset);
    m["event"]["tax_rate_bp"] = json!(1900);
    m["tiers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "mini", "name": "Mini", "price_minor": 1000, "capacity": 3}));
    m["creators"] = json!([
        {"id": "cr-a", "name": "Alice", "referral_codes": ["ALICE"], "payout": {"ticket_share_bp": 1000, "drop_share_bp": 2000}},
        {"id": "cr-b", "name": "Bo"}
    ]);
    let mut codes: Vec<Value> =
        (1..=10).map(|n| json!({"code": format!("C{n}"), "creator": "cr-a"})).collect();
    codes.push(json!({"code": "MULTI", "creator": "cr-b", "cap": 3}));
    m["scholarships"] = json!([
        {"id": "p-half", "name": "Half price", "funder": {"kind": "sponsor", "name": "Acme"}, "tier": "ga", "seats": 5,
         "discount": {"kind": "percent", "percent": 50}, "valid_from": at(-60 * MIN), "valid_until": at(60 * MIN), "codes": codes},
        {"id": "p-free", "name": "Free", "funder": {"kind": "creator", "creator": "cr-a", "name": "Alice"}, "tier": "ga", "seats": 2,
         "discount": {"kind": "full"}, "codes": [{"code": "F1", "creator": "cr-a", "cap": 5}]},
        {"id": "p-later", "name": "Later", "funder": {"kind": "sponsor", "name": "Acme"}, "tier": "ga", "seats": 2,
         "discount": {"kind": "full"}, "valid_from": at(60 * MIN), "codes": [{"code": "LATER", "creator": "cr-b"}]}
    ]);
    m["drops"] = json!([
        {"id": "d-now", "name": "Now", "creator": "cr-a", "opens_at": at(-MIN), "closes_at": at(60 * MIN),
         "per_attendee_limit": 3, "on_close": "next_drop",
         "reserve": {"quantity": 2, "tiers": ["vip"], "release_at": at(30 * MIN)},
         "products": [{"sku": "TEE", "name": "Tee", "variant": "M", "price_minor": 2000, "quantity": 5},
                      {"sku": "CAP", "name": "Cap", "price_minor": 1500, "quantity": 20, "tax_rate_bp": 700}]},
        {"id": "d-next", "name": "Next", "creator": "cr-a", "opens_at": at(60 * MIN), "closes_at": at(120 * MIN),
         "products": [{"sku": "TEE", "name": "Tee", "variant": "M", "price_minor": 2200, "quantity": 1},
                      {"sku": "MUG", "name": "Mug", "price_minor": 900, "quantity": 3}]},
        {"id": "d-open", "name": "Open", "creator": "cr-b", "opens_at": at(-MIN), "closes_at": at(60 * MIN),
         "products": [{"sku": "LAST", "name": "Last units", "price_minor": 500, "quantity": 5}]}
    ]);
}

async fn start() -> (TestBox, Clock) {
    let clock = Clock::fixed(t0());
    let b = TestBox::start_full(
        clock.clone(),
        ApiConfig { hold_ttl_ms: HOLD_TTL, ..ApiConfig::default() },
        selling,
    )
    .await;
    (b, clock)
}

fn cash(given: i64) -> Value {
    json!({"kind": "cash", "given_minor": given})
}

fn card() -> Value {
    json!({"kind": "card", "reference": "T-1"})
}

async fn drop_product(b: &TestBox, t: &str, drop: &str, sku: &str) -> Value {
    let (_, d) = b.get(t, &format!("/api/v1/drops/{drop}")).await;
    d["products"]
        .as_array()
        .unwrap_or_else(|| panic!("{drop}: {d}"))
        .iter()
        .find(|p| p["sku"] == sku)
        .unwrap()
        .clone()
}

/// Runs `n` requests at once and returns their statuses and bodies.
async fn race(b: &TestBox, token: &str, path: &str, bodies: Vec<Value>) -> Vec<(u16, Value)> {
    let mut tasks = Vec::new();
    for body in bodies {
        let (http, url, token) = (b.http.clone(), b.url(path), token.to_string());
        tasks.push(tokio::spawn(async move {
            let r = http.post(url).bearer_auth(token).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_walkup_sale_mints_a_ticket_that_scans_prints_and_credits_the_referrer() {
    let (b, _) = start().await;
    let merch = b.token(Role::Merch).await;
    let door = b.token(Role::Door).await;
    let body = json!({"tier": "ga", "nonce": "w-1", "referral_code": "ALICE", "tender": cash(3000), "holder": "Walk In"});
    let (st, o) = b.post(&merch, "/api/v1/walkups", body.clone()).await;
    assert_eq!(st, 200, "{o}");
    assert_eq!((o["total_minor"].as_i64(), o["change_minor"].as_i64()), (Some(2500), Some(500)));
    assert_eq!(o["receipt"]["attribution"]["creator_id"], "cr-a");
    assert_eq!(o["receipt"]["tax_minor"], 399, "19 % included in 25.00");
    let code = o["tickets"][0]["code"].as_str().unwrap().to_string();
    // The same nonce is the same sale.
    let (_, again) = b.post(&merch, "/api/v1/walkups", body).await;
    assert_eq!(again["order_id"], o["order_id"]);
    // It scans at the door, once.
    let (_, scan) = b.scan(&door, json!({"code": code, "gate": "main", "nonce": nonce()})).await;
    assert_eq!(scan["verdict"], "admit", "{scan}");
    assert_eq!(scan["ticket"]["holder"], "Walk In");
    // Its QR image carries the code.
    let png = b
        .http
        .get(b.url(o["tickets"][0]["qr"].as_str().unwrap()))
        .bearer_auth(&merch)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(decode_qr_png(&png), code);
    // The receipt prints with total, tax, change, creator and proof.
    let text = b
        .http
        .get(b.url(&format!("/api/v1/orders/{}/receipt?width=32", o["order_id"].as_str().unwrap())))
        .bearer_auth(&merch)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for want in ["TOTAL", "25.00 EUR", "Change", "5.00 EUR", "Alice", "VBP1:"] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    // Its proof verifies; an altered one does not.
    let proof = o["receipt"]["proof"].as_str().unwrap();
    let (_, v) =
        b.get(&merch, &format!("/api/v1/receipts/verify?proof={}", urlencode(proof))).await;
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["claim"]["total_minor"], 2500);
    let last = if proof.ends_with('0') { "1" } else { "0" };
    let altered = format!("{}{last}", &proof[..proof.len() - 1]);
    let (_, v) =
        b.get(&merch, &format!("/api/v1/receipts/verify?proof={}", urlencode(&altered))).await;
    assert_eq!(v["valid"], false);

    for (body, status, code) in [
        (
            json!({"tier": "ga", "nonce": nonce(), "referral_code": "NOBODY", "tender": cash(3000)}),
            400,
            "unknown_referral",
        ),
        (json!({"tier": "ga", "nonce": nonce()}), 400, "tender_required"),
        (json!({"tier": "ga", "nonce": nonce(), "tender": cash(100)}), 400, "bad_tender"),
        (json!({"tier": "balcony", "nonce": nonce(), "tender": cash(3000)}), 400, "unknown_tier"),
        (
            json!({"tier": "ga", "nonce": nonce(), "tender": {"kind": "card", "reference": ""}}),
            400,
            "bad_tender",
        ),
    ] {
        let (st, v) = b.post(&merch, "/api/v1/walkups", body.clone()).await;
        assert_eq!((st, v["error"]["code"].as_str()), (status, Some(code)), "{body}: {v}");
    }
    assert_eq!(
        b.post(
            &door,
            "/api/v1/walkups",
            json!({"tier": "ga", "nonce": nonce(), "tender": cash(3000)})
        )
        .await
        .0,
        403
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == b'-' || c == b'.' {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn walkups_racing_for_a_tier_never_exceed_its_capacity() {
    let (b, _) = start().await;
    let merch = b.token(Role::Merch).await;
    let bodies =
        (0..12).map(|_| json!({"tier": "mini", "nonce": nonce(), "tender": card()})).collect();
    let results = race(&b, &merch, "/api/v1/walkups", bodies).await;
    let sold = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(sold, 3, "capacity 3");
    for (s, v) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!((*s, v["error"]["code"].as_str()), (409, Some("tier_sold_out")));
    }
}

#[tokio::test]
async fn scholarship_seats_and_code_caps_hold_under_concurrent_claims() {
    let (b, clock) = start().await;
    let merch = b.token(Role::Merch).await;
    let door = b.token(Role::Door).await;
    // 10 single-use codes and 5 claims of a 3-use code race for 5 seats.
    let mut bodies: Vec<Value> = (1..=10)
        .map(|n| json!({"code": format!("C{n}"), "nonce": nonce(), "tender": cash(1250)}))
        .collect();
    bodies.extend((0..5).map(|_| json!({"code": "MULTI", "nonce": nonce(), "tender": cash(1250)})));
    let results = race(&b, &door, "/api/v1/scholarships/claims", bodies).await;
    let ok: Vec<&Value> = results.iter().filter(|(s, _)| *s == 200).map(|(_, v)| v).collect();
    assert_eq!(ok.len(), 5, "5 seats");
    let multi = ok.iter().filter(|v| v["receipt"]["attribution"]["creator_id"] == "cr-b").count();
    assert!(multi <= 3, "MULTI is capped at 3, got {multi}");
    for v in &ok {
        assert_eq!(v["total_minor"], 1250, "half of 25.00");
        assert_eq!(v["receipt"]["lines"][0]["list_unit_minor"], 2500);
    }
    for (s, v) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*s, 409);
        assert!(
            ["program_full", "code_used_up"].contains(&v["error"]["code"].as_str().unwrap()),
            "{v}"
        );
    }
    let (_, report) = b.get(&merch, "/api/v1/scholarships").await;
    let half = &report["programs"][0];
    assert_eq!((half["used"].as_u64(), half["remaining"].as_u64()), (Some(5), Some(0)));
    let by_creator: u64 =
        half["by_creator"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(by_creator, 5);

    // A full scholarship needs no tender; its ticket scans.
    let (st, free) =
        b.post(&door, "/api/v1/scholarships/claims", json!({"code": "F1", "nonce": nonce()})).await;
    assert_eq!(st, 200, "{free}");
    assert_eq!(
        (free["total_minor"].as_i64(), free["receipt"]["tender"]["kind"].as_str()),
        (Some(0), Some("no_charge"))
    );
    assert!(free["receipt"]["sponsored_by"].as_str().unwrap().contains("Alice"));
    let (_, scan) = b
        .scan(&door, json!({"code": free["tickets"][0]["code"], "gate": "main", "nonce": nonce()}))
        .await;
    assert_eq!(scan["verdict"], "admit");

    // A single-use code that lost the race finds the program full.
    let unused = (0..10).find(|i| results[*i].0 != 200).map(|i| format!("C{}", i + 1)).unwrap();
    for (body, code) in [
        (json!({"code": "NOPE", "nonce": nonce()}), "unknown_code"),
        (json!({"code": "F1", "tier": "vip", "nonce": nonce()}), "wrong_tier"),
        (json!({"code": "LATER", "nonce": nonce()}), "not_valid_yet"),
        (json!({"code": unused, "nonce": nonce(), "tender": cash(1250)}), "program_full"),
    ] {
        let (st, v) = b.post(&door, "/api/v1/scholarships/claims", body.clone()).await;
        assert_eq!((st, v["error"]["code"].as_str()), (409, Some(code)), "{body}: {v}");
    }
    // F1 has 5 uses but its program only 2 seats.
    b.post(&door, "/api/v1/scholarships/claims", json!({"code": "F1", "nonce": nonce()})).await;
    let (_, v) =
        b.post(&door, "/api/v1/scholarships/claims", json!({"code": "F1", "nonce": nonce()})).await;
    assert_eq!(v["error"]["code"], "program_full");
    clock.advance(2 * 60 * MIN);
    let (_, v) = b
        .post(
            &door,
            "/api/v1/scholarships/claims",
            json!({"code": "C2", "nonce": nonce(), "tender": cash(1250)}),
        )
        .await;
    assert_eq!(v["error"]["code"], "expired");
}

#[tokio::test]
async fn the_last_units_of_a_drop_sell_exactly_once_under_concurrent_sales() {
    let (b, _) = start().await;
    let merch = b.token(Role::Merch).await;
    let bodies = (0..25)
        .map(|_| json!({"items": [{"sku": "LAST", "qty": 1}], "nonce": nonce(), "tender": card()}))
        .collect();
    let results = race(&b, &merch, "/api/v1/drops/d-open/sales", bodies).await;
    assert_eq!(results.iter().filter(|(s, _)| *s == 200).count(), 5);
    for (s, v) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!((*s, v["error"]["code"].as_str()), (409, Some("sold_out")), "{v}");
    }
    let (_, ledger) = b.get(&merch, "/api/v1/drops/d-open/ledger").await;
    assert_eq!(ledger["on_hand"]["LAST"], 0);
    let reasons: Vec<&str> = ledger["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["initial", "sale", "sale", "sale", "sale", "sale"]);
    let (_, d) = b.get(&merch, "/api/v1/drops/d-open").await;
    assert_eq!(d["phase"], "sold_out");
}

#[tokio::test]
async fn a_per_attendee_limit_holds_under_concurrent_holds() {
    let (b, _) = start().await;
    let merch = b.token(Role::Merch).await;
    let bodies = (0..8).map(|_| json!({"items": [{"sku": "CAP", "qty": 1}], "attendee_code": "SECRET-0001", "nonce": nonce()})).collect();
    let results = race(&b, &merch, "/api/v1/drops/d-now/holds", bodies).await;
    assert_eq!(results.iter().filter(|(s, _)| *s == 201).count(), 3, "limit 3 per attendee");
    for (s, v) in results.iter().filter(|(s, _)| *s != 201) {
        assert_eq!((*s, v["error"]["code"].as_str()), (409, Some("attendee_limit")), "{v}");
    }
    // Another attendee is not affected; no attendee at all is refused here.
    let (st, _) = b.post(&merch, "/api/v1/drops/d-now/holds", json!({"items": [{"sku": "CAP", "qty": 1}], "attendee_code": "SECRET-0004", "nonce": nonce()})).await;
    assert_eq!(st, 201);
    let (st, v) = b
        .post(
            &merch,
            "/api/v1/drops/d-now/holds",
            json!({"items": [{"sku": "CAP", "qty": 1}], "nonce": nonce()}),
        )
        .await;
    assert_eq!((st, v["error"]["code"].as_str()), (400, Some("attendee_required")));
    let (st, v) = b.post(&merch, "/api/v1/drops/d-now/holds", json!({"items": [{"sku": "CAP", "qty": 1}], "attendee_code": "SECRET-0003", "nonce": nonce()})).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("attendee_ticket_invalid")),
        "a cancelled ticket is no attendee"
    );
}

#[tokio::test]
async fn holds_keep_stock_until_they_expire_and_the_reserve_until_its_release() {
    let (b, clock) = start().await;
    let merch = b.token(Role::Merch).await;
    let ga = b.signed("GA-1", "ga");
    let ga2 = b.signed("GA-2", "ga");
    let hold = |code: &str, qty: u32| json!({"items": [{"sku": "TEE", "qty": qty}], "attendee_code": code, "nonce": nonce()});
    // 5 tees, 2 reserved for VIP: a GA buyer can hold 3, no more.
    let (st, h1) = b.post(&merch, "/api/v1/drops/d-now/holds", hold(&ga, 3)).await;
    assert_eq!(st, 201, "{h1}");
    assert_eq!(h1["totals"]["total_minor"], 6000);
    let (st, v) = b.post(&merch, "/api/v1/drops/d-now/holds", hold(&ga2, 1)).await;
    assert_eq!((st, v["error"]["code"].as_str()), (409, Some("sold_out")), "{v}");
    // The VIP can take the reserved two.
    let (st, h2) = b.post(&merch, "/api/v1/drops/d-now/holds", hold("SECRET-0005", 2)).await;
    assert_eq!(st, 201, "{h2}");
    assert_eq!(h2["reserve_eligible"], true);
    let p = drop_product(&b, &merch, "d-now", "TEE").await;
    assert_eq!(
        (p["on_hand"].as_i64(), p["held"].as_i64(), p["available"].as_i64()),
        (Some(5), Some(5), Some(0))
    );

    // The VIP's hold is released by staff: its two go back, still reserved.
    let r = b
        .http
        .delete(b.url(&format!("/api/v1/holds/{}", h2["id"].as_str().unwrap())))
        .bearer_auth(&merch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (_, v) = b.post(&merch, "/api/v1/drops/d-now/holds", hold(&ga2, 1)).await;
    assert_eq!(v["error"]["code"], "sold_out", "reserved until release time");

    // Time passes: the GA hold expires by itself and its stock returns.
    clock.advance(HOLD_TTL + 1);
    let h1_id = h1["id"].as_str().unwrap();
    let (st, v) = b
        .post(
            &merch,
            &format!("/api/v1/holds/{h1_id}/checkout"),
            json!({"nonce": nonce(), "tender": card()}),
        )
        .await;
    assert_eq!((st, v["error"]["code"].as_str()), (409, Some("hold_not_active")), "{v}");
    let (st, _) = b.post(&merch, "/api/v1/drops/d-now/holds", hold(&ga2, 3)).await;
    assert_eq!(st, 201, "expired hold returned its stock");

    // After the reserve's release time, anyone may buy what is left.
    clock.advance(30 * MIN);
    let (st, h) = b.post(&merch, "/api/v1/drops/d-now/holds", hold(&ga, 2)).await;
    assert_eq!(st, 201, "{h}");
    let (st, o) = b
        .post(
            &merch,
            &format!("/api/v1/holds/{}/checkout", h["id"].as_str().unwrap()),
            json!({"nonce": nonce(), "tender": cash(5000)}),
        )
        .await;
    assert_eq!(st, 200, "{o}");
    assert_eq!(o["change_minor"], 1000);
}

#[tokio::test]
async fn a_closed_drop_cycles_its_unsold_stock_to_the_next_drop_or_the_pool() {
    let (b, clock) = start().await;
    let merch = b.token(Role::Merch).await;
    let sup = b.token(Role::Supervisor).await;
    let (st, _) = b.post(&merch, "/api/v1/drops/d-now/sales", json!({"items": [{"sku": "TEE", "qty": 1}, {"sku": "CAP", "qty": 2}], "attendee_code": "SECRET-0001", "nonce": nonce(), "tender": card()})).await;
    assert_eq!(st, 200);
    let (_, drops) = b.get(&merch, "/api/v1/drops").await;
    let phases: Vec<(&str, &str)> = drops["drops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["id"].as_str().unwrap(), d["phase"].as_str().unwrap()))
        .collect();
    assert_eq!(phases, [("d-now", "live"), ("d-open", "live"), ("d-next", "upcoming")]);

    clock.advance(61 * MIN);
    let done = b.state.store.housekeeping(clock.now()).await.unwrap();
    assert_eq!(done.drops_cycled, ["d-now", "d-open"]);
    // TEE goes on to d-next (it sells TEE); CAP is not in d-next, so to the pool.
    let tee = drop_product(&b, &merch, "d-next", "TEE").await;
    assert_eq!(tee["on_hand"], 1 + 4);
    let (_, pool) = b.get(&merch, "/api/v1/pool").await;
    assert_eq!(pool["on_hand"]["CAP"], 18);
    assert_eq!(pool["on_hand"]["LAST"], 5, "d-open's on_close is pool");
    let (_, ledger) = b.get(&merch, "/api/v1/drops/d-now/ledger").await;
    assert_eq!(ledger["on_hand"], json!({"CAP": 0, "TEE": 0}));
    let moves: Vec<(String, i64)> = ledger["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["reason"].as_str().unwrap().to_string(), r["delta"].as_i64().unwrap()))
        .collect();
    assert!(
        moves.contains(&("cycle_out".into(), -4)) && moves.contains(&("cycle_out".into(), -18)),
        "{moves:?}"
    );
    let (_, d) = b.get(&merch, "/api/v1/drops/d-now").await;
    assert_eq!((d["phase"].as_str(), d["cycled"].as_bool()), (Some("closed"), Some(true)));
    // Nothing cycles twice.
    assert!(b.state.store.housekeeping(clock.now()).await.unwrap().drops_cycled.is_empty());

    // A supervisor moves pool stock into the live drop, with a reason; merch may not.
    let body = json!({"sku": "TEE", "quantity": 2, "reason": "found a box", "from_pool": false});
    assert_eq!(b.post(&merch, "/api/v1/drops/d-next/restock", body.clone()).await.0, 403);
    let (st, d) = b.post(&sup, "/api/v1/drops/d-next/restock", body).await;
    assert_eq!(st, 200, "{d}");
    let (st, v) = b
        .post(
            &sup,
            "/api/v1/drops/d-next/restock",
            json!({"sku": "MUG", "quantity": 1, "reason": "move", "from_pool": true}),
        )
        .await;
    assert_eq!((st, v["error"]["code"].as_str()), (409, Some("pool_short")), "no mugs in the pool");
    // A sale in a closed drop is refused.
    let (st, v) = b.post(&merch, "/api/v1/drops/d-now/holds", json!({"items": [{"sku": "TEE", "qty": 1}], "attendee_code": "SECRET-0001", "nonce": nonce()})).await;
    assert_eq!((st, v["error"]["code"].as_str()), (409, Some("closed")));
}

#[tokio::test]
async fn refunds_and_voids_return_stock_tickets_and_seats() {
    let (b, _) = start().await;
    let merch = b.token(Role::Merch).await;
    let sup = b.token(Role::Supervisor).await;
    let door = b.token(Role::Door).await;
    let (_, sale) = b
        .post(
            &merch,
            "/api/v1/drops/d-open/sales",
            json!({"items": [{"sku": "LAST", "qty": 2}], "nonce": nonce(), "tender": card()}),
        )
        .await;
    let (_, walkup) = b
        .post(
            &merch,
            "/api/v1/walkups",
            json!({"tier": "mini", "nonce": nonce(), "tender": card()}),
        )
        .await;
    let (_, claim) =
        b.post(&door, "/api/v1/scholarships/claims", json!({"code": "F1", "nonce": nonce()})).await;
    let close = |id: &Value, what: &str, reason: &str| {
        let path = format!("/api/v1/orders/{}/{what}", id.as_str().unwrap());
        let body = json!({"reason": reason});
        async move { (path, body) }
    };
    let (path, body) = close(&sale["order_id"], "refund", "wrong size").await;
    assert_eq!(b.post(&merch, &path, body.clone()).await.0, 403, "merch cannot refund");
    let (st, v) = b.post(&sup, &path, body.clone()).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("refunded")), "{v}");
    assert_eq!(b.post(&sup, &path, body).await.0, 409, "refunded once");
    assert_eq!(drop_product(&b, &merch, "d-open", "LAST").await["on_hand"], 5);
    let (_, ledger) = b.get(&merch, "/api/v1/drops/d-open/ledger").await;
    assert_eq!(ledger["ledger"].as_array().unwrap().last().unwrap()["reason"], "refund");

    let (path, _) = close(&walkup["order_id"], "void", "").await;
    assert_eq!(b.post(&sup, &path, json!({"reason": " "})).await.0, 400, "a reason is required");
    let (st, _) = b.post(&sup, &path, json!({"reason": "rang up twice"})).await;
    assert_eq!(st, 200);
    let (_, scan) = b
        .scan(
            &door,
            json!({"code": walkup["tickets"][0]["code"], "gate": "main", "nonce": nonce()}),
        )
        .await;
    assert_eq!(scan["reason"], "cancelled", "a voided ticket does not scan");
    // The seat is free again: 3 more mini tickets can be sold.
    for _ in 0..3 {
        assert_eq!(
            b.post(
                &merch,
                "/api/v1/walkups",
                json!({"tier": "mini", "nonce": nonce(), "tender": card()})
            )
            .await
            .0,
            200
        );
    }

    // The claimed seat's holder walked in: refunding it needs the
    // supervisor's explicit yes (before: refunded like any other).
    let (_, scan) = b
        .scan(&door, json!({"code": claim["tickets"][0]["code"], "gate": "main", "nonce": nonce()}))
        .await;
    assert_eq!(scan["verdict"], "admit", "{scan}");
    let (path, body) = close(&claim["order_id"], "refund", "left early").await;
    let (st, v) = b.post(&sup, &path, body).await;
    assert_eq!((st, v["error"]["code"].as_str()), (409, Some("ticket_admitted")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("admitted_confirmed"), "{v}");
    let (st, v) =
        b.post(&sup, &path, json!({"reason": "left early", "admitted_confirmed": true})).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("refunded")), "{v}");
    let (_, report) = b.get(&merch, "/api/v1/scholarships").await;
    assert_eq!(report["programs"][1]["used"], 0, "the scholarship seat returned");
    let receipt = b
        .http
        .get(b.url(&format!("/api/v1/orders/{}/receipt", claim["order_id"].as_str().unwrap())))
        .bearer_auth(&merch)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(receipt.contains("REFUNDED"));
}

#[tokio::test]
async fn a_comp_needs_a_supervisors_approval() {
    let (b, _) = start().await;
    let merch = b.token(Role::Merch).await;
    let sale = |tender: Value| json!({"items": [{"sku": "LAST", "qty": 1}], "nonce": nonce(), "tender": tender});
    let (st, v) = b.post(&merch, "/api/v1/drops/d-open/sales", sale(json!({"kind": "comp"}))).await;
    assert_eq!(st, 403, "{v}");
    // An empty PIN box says what is missing (before: "pin must be 1 to 64 characters").
    let (st, v) = b
        .post(
            &merch,
            "/api/v1/drops/d-open/sales",
            sale(json!({"kind": "comp", "approver_pin": ""})),
        )
        .await;
    assert_eq!(st, 403, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("supervisor's approval"), "{v}");
    let (st, _) = b
        .post(
            &merch,
            "/api/v1/drops/d-open/sales",
            sale(json!({"kind": "comp", "approver_pin": "0000"})),
        )
        .await;
    assert_eq!(st, 403);
    let (st, v) = b
        .post(
            &merch,
            "/api/v1/drops/d-open/sales",
            sale(json!({"kind": "comp", "approver_pin": SUPERVISOR_PIN})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["receipt"]["tender"], json!({"kind": "comp", "approved_by": "Sam"}));
}

#[tokio::test]
async fn orders_claims_and_stock_movements_write_their_outbox_rows_in_the_same_transaction() {
    let (b, _) = start().await;
    let merch = b.token(Role::Merch).await;
    let before = b.state.store.outbox_after(Seq(0), 10_000).await.unwrap().len() as i64;
    b.post(
        &merch,
        "/api/v1/drops/d-open/sales",
        json!({"items": [{"sku": "LAST", "qty": 2}], "nonce": nonce(), "tender": card()}),
    )
    .await;
    b.post(&merch, "/api/v1/scholarships/claims", json!({"code": "F1", "nonce": nonce()})).await;
    // A refused sale writes nothing.
    b.post(
        &merch,
        "/api/v1/drops/d-open/sales",
        json!({"items": [{"sku": "LAST", "qty": 99}], "nonce": nonce(), "tender": card()}),
    )
    .await;
    let rows = b.state.store.outbox_after(Seq(before), 100).await.unwrap();
    let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "order.created",
            "inventory.moved",
            "ticket.issued",
            "scholarship.claimed",
            "order.created"
        ]
    );
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.seq, Seq(before + 1 + i as i64));
    }
    assert_eq!(rows[1].payload["delta"], -2);
    assert_eq!(rows[3].payload["creator"], "cr-a");
}

#[tokio::test]
async fn admins_create_and_edit_drops_on_the_box() {
    let (b, _) = start().await;
    let admin = b.token(Role::Admin).await;
    let merch = b.token(Role::Merch).await;
    let spec = json!({"id": "d-pop", "name": "Pop-up", "creator": "cr-b", "opens_at": format_rfc3339(t0() - MIN), "closes_at": format_rfc3339(t0() + 10 * MIN),
                      "products": [{"sku": "PIN", "name": "Enamel pin", "price_minor": 800, "quantity": 10}]});
    assert_eq!(b.post(&merch, "/api/v1/drops", spec.clone()).await.0, 403);
    let (st, d) = b.post(&admin, "/api/v1/drops", spec.clone()).await;
    assert_eq!(st, 201, "{d}");
    assert_eq!(
        (d["phase"].as_str(), d["products"][0]["on_hand"].as_i64()),
        (Some("live"), Some(10))
    );
    assert_eq!(b.post(&admin, "/api/v1/drops", spec.clone()).await.0, 409, "exists");
    let mut bad = spec.clone();
    bad["id"] = json!("d-bad");
    bad["closes_at"] = bad["opens_at"].clone();
    let (st, v) = b.post(&admin, "/api/v1/drops", bad).await;
    assert_eq!(st, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("closes_at must be after opens_at"));
    // Edit: a new product gets its stock; the existing one keeps its count.
    let mut edited = spec;
    edited["products"]
        .as_array_mut()
        .unwrap()
        .push(json!({"sku": "PATCH", "name": "Patch", "price_minor": 600, "quantity": 4}));
    edited["products"][0]["quantity"] = json!(999);
    let r = b
        .http
        .put(b.url("/api/v1/drops/d-pop"))
        .bearer_auth(&admin)
        .json(&edited)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let d: Value = r.json().await.unwrap();
    let on_hand: Vec<i64> =
        d["products"].as_array().unwrap().iter().map(|p| p["on_hand"].as_i64().unwrap()).collect();
    assert_eq!(on_hand, [10, 4]);
}

#[tokio::test]
async fn the_drop_feed_streams_drop_state_as_server_sent_events() {
    let (b, _) = start().await;
    let merch = b.token(Role::Merch).await;
    let mut resp =
        b.http.get(b.url("/api/v1/drops/feed")).bearer_auth(&merch).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), resp.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&chunk);
    assert!(text.starts_with("event: drops"), "{text}");
    assert!(text.contains("\"d-now\""));
}

#[tokio::test]
async fn payout_statements_sum_each_creators_sales_claims_and_refunds() {
    let (b, _) = start().await;
    let merch = b.token(Role::Merch).await;
    let sup = b.token(Role::Supervisor).await;
    // Alice: two referral walk-ups (one refunded), a free seat she funds and
    // recruited, a drop sale of 2 tees.
    b.post(
        &merch,
        "/api/v1/walkups",
        json!({"tier": "ga", "nonce": nonce(), "referral_code": "ALICE", "tender": card()}),
    )
    .await;
    let (_, refunded) = b
        .post(
            &merch,
            "/api/v1/walkups",
            json!({"tier": "ga", "nonce": nonce(), "referral_code": "ALICE", "tender": card()}),
        )
        .await;
    b.post(
        &sup,
        &format!("/api/v1/orders/{}/refund", refunded["order_id"].as_str().unwrap()),
        json!({"reason": "changed plans"}),
    )
    .await;
    b.post(&merch, "/api/v1/scholarships/claims", json!({"code": "F1", "nonce": nonce()})).await;
    b.post(&merch, "/api/v1/drops/d-now/sales", json!({"items": [{"sku": "TEE", "qty": 2}], "attendee_code": "SECRET-0001", "nonce": nonce(), "tender": card()})).await;
    let mut statements = b.state.store.payout_statements(t0()).await.unwrap();
    statements.sort_by(|a, b| a.creator.cmp(&b.creator));
    assert_eq!(statements[0].creator, "cr-a");
    let a = &statements[0].totals;
    assert_eq!(
        (
            a.referral_tickets.orders,
            a.referral_tickets.gross_minor,
            a.referral_tickets.refunded_minor
        ),
        (2, 5000, 2500)
    );
    assert_eq!(a.referral_tickets.net_minor(), 2500 - 399, "one ticket, tax excluded");
    assert_eq!((a.scholarship_tickets.orders, a.scholarship_tickets.gross_minor), (1, 0));
    assert_eq!(a.scholarship_seats_funded, 1, "Alice funds p-free");
    assert_eq!((a.drops.orders, a.drops.gross_minor, a.drops.tax_minor), (1, 4000, 639));
    // 10 % of ticket net (2,101) + 20 % of drop net (3,361), each rounded down.
    assert_eq!(a.payout_minor, 210 + 672);
    assert_eq!(statements[1].totals.payout_minor, 0, "Bo has no payout rules");
    let files =
        venuebox::sync::payouts::write_statements(b.dir.path(), &statements, "2026-11-27").unwrap();
    assert_eq!(files.len(), 4, "JSON and CSV for each of two creators");
    let csv = std::fs::read_to_string(
        b.dir.path().join("payouts/event=evt-test/date=2026-11-27/creator=cr-a.csv"),
    )
    .unwrap();
    assert!(
        csv.contains("drops_gross_minor,4000")
            && csv.contains("referral_tickets_refunded_minor,2500"),
        "{csv}"
    );
}

/// A hold replayed with its nonce is the same hold; the same nonce for
/// other items or another drop is a different request: 409, nothing held.
#[tokio::test]
async fn a_hold_nonce_reused_for_other_items_is_refused() {
    let (b, _clock) = start().await;
    let merch = b.token(Role::Merch).await;
    let body = |qty: u32| json!({"items": [{"sku": "LAST", "qty": qty}], "nonce": "hold-same"});
    let (st, first) = b.post(&merch, "/api/v1/drops/d-open/holds", body(1)).await;
    assert_eq!(st, 201, "{first}");
    let (st, again) = b.post(&merch, "/api/v1/drops/d-open/holds", body(1)).await;
    assert_eq!((st, &again["id"]), (201, &first["id"]), "a replay is the first hold");
    let (st, v) = b.post(&merch, "/api/v1/drops/d-open/holds", body(2)).await;
    assert_eq!((st, v["error"]["code"].as_str()), (409, Some("nonce_reused")), "{v}");
    let (st, v) = b.post(&merch, "/api/v1/drops/d-now/holds", json!({"items": [{"sku": "CAP", "qty": 1}], "attendee_code": "SECRET-0001", "nonce": "hold-same"})).await;
    assert_eq!(st, 409, "another drop: {v}");
    let (_, ledger) = b.get(&merch, "/api/v1/drops/d-open").await;
    let last =
        ledger["products"].as_array().unwrap().iter().find(|p| p["sku"] == "LAST").unwrap().clone();
    assert_eq!(last["available"], 4, "only the first hold holds stock: {last}");
}

/// An order replayed with its nonce gets the first answer; the same nonce
/// with another tier, tender or items is a different request: 409, and
/// nothing more is sold.
#[tokio::test]
async fn an_order_nonce_reused_for_another_sale_is_refused() {
    let (b, _clock) = start().await;
    let merch = b.token(Role::Merch).await;
    let walkup = |tier: &str, reference: &str| json!({"tier": tier, "nonce": "order-same", "tender": {"kind": "card", "reference": reference}});
    let (st, first) = b.post(&merch, "/api/v1/walkups", walkup("ga", "T-1")).await;
    assert_eq!(st, 200, "{first}");
    let (st, again) = b.post(&merch, "/api/v1/walkups", walkup("ga", "T-1")).await;
    assert_eq!((st, &again["order_id"]), (200, &first["order_id"]), "a replay: {again}");
    for other in [walkup("vip", "T-1"), walkup("ga", "T-2")] {
        let (st, v) = b.post(&merch, "/api/v1/walkups", other).await;
        assert_eq!((st, v["error"]["code"].as_str()), (409, Some("nonce_reused")), "{v}");
    }
    let sale = |qty: u32| json!({"items": [{"sku": "LAST", "qty": qty}], "nonce": "sale-same", "tender": card()});
    let (st, sold) = b.post(&merch, "/api/v1/drops/d-open/sales", sale(1)).await;
    assert_eq!(st, 200, "{sold}");
    let (st, v) = b.post(&merch, "/api/v1/drops/d-open/sales", sale(2)).await;
    assert_eq!((st, v["error"]["code"].as_str()), (409, Some("nonce_reused")), "{v}");
    let (_, d) = b.get(&merch, "/api/v1/drops/d-open").await;
    let last =
        d["products"].as_array().unwrap().iter().find(|p| p["sku"] == "LAST").unwrap().clone();
    assert_eq!(last["available"], 4, "one unit sold, not three: {last}");
}
