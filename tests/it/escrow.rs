//! Escrow, as a merch table at a second entrance lives it: the primary
//! (the demo event: its drop and its general-admission tier carry escrow
//! rules) lends the joined satellite units and seats; the main door sells,
//! and the loan shrinks with what is left (taken back only once the
//! satellite has seen it). Then a cut: the main door sells out what it
//! may, the primary dies, and the satellite, apart, sells exactly its loan
//! (a cart held and paid, a one-step sale, a walk-up ticket) and refuses
//! the next unit; a kill -9 of the satellite loses nothing it answered.
//! The primary back, the satellite's sales are merged once: the ledger
//! equals its movements, nothing is sold past the stock, the walk-up
//! ticket sold apart admits at the main door, and the loan is lent again.
//! Receipts of the satellite's sales, forwarded or apart, print at the
//! satellite's own (simulated) printer, and the primary's queue shows them
//! done.

use crate::common;
use common::binary::{self, client_trusting, until, Running};
use common::standby::{buyers, primary_back, two_entrances};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const DROP: &str = "drop-live";
const SKU: &str = "TEE-BLK-M";
const INITIAL: i64 = 30;

/// (units, recalled) the primary's pair view lists for an item.
fn loan(view: &Value, kind: &str, item: &str) -> (i64, i64) {
    view["escrow"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["kind"] == kind && e["item"] == item))
        .map_or((0, 0), |e| (e["units"].as_i64().unwrap(), e["recalled"].as_i64().unwrap()))
}

/// A phone's answer: status, `x-venuebox-apart`, `idempotent-replayed`, body.
struct Answer {
    status: u16,
    apart: bool,
    replayed: bool,
    body: Value,
}

async fn post(phone: &reqwest::Client, base: &str, token: &str, path: &str, body: Value) -> Answer {
    let r =
        phone.post(format!("{base}{path}")).bearer_auth(token).json(&body).send().await.unwrap();
    let apart = r.headers().contains_key("x-venuebox-apart");
    let replayed = r.headers().contains_key("idempotent-replayed");
    Answer { status: r.status().as_u16(), apart, replayed, body: r.json().await.unwrap() }
}

/// Waits until the satellite's simulated printer has printed a receipt
/// naming `order`.
async fn printed_at(dir: &std::path::Path, order: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found =
            std::fs::read_dir(dir.join("printed")).into_iter().flatten().flatten().any(|e| {
                e.path().extension().is_some_and(|x| x == "txt")
                    && std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(order))
            });
        if found {
            return;
        }
        assert!(Instant::now() < deadline, "order {order} never printed at the satellite");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether a sale was refused as sold out (anything else but a sale
/// fails the test).
fn sold_out(s: &Answer) -> bool {
    if s.status == 200 {
        return false;
    }
    let code = s.body["error"]["code"].as_str();
    assert_eq!((s.status, code), (409, Some("sold_out")), "{}", s.body);
    true
}

fn cash() -> Value {
    json!({"kind": "cash", "given_minor": 10000})
}

/// One tee to the holder of `buyer`, in one step.
async fn sell_tee(
    phone: &reqwest::Client,
    base: &str,
    token: &str,
    buyer: &str,
    nonce: &str,
) -> Answer {
    let body = json!({"items": [{"sku": SKU, "qty": 1}], "attendee_code": buyer, "nonce": nonce, "tender": cash()});
    post(phone, base, token, &format!("/api/v1/drops/{DROP}/sales"), body).await
}

/// Units of the tee sold (less those refunded), by the ledger, and what
/// the ledger sums to.
async fn ledger(base: &str, admin: &str) -> (i64, i64, i64) {
    let (_, l) = binary::call(
        reqwest::Method::GET,
        base,
        &format!("/api/v1/drops/{DROP}/ledger"),
        admin,
        None,
    )
    .await;
    let rows: Vec<&Value> =
        l["ledger"].as_array().unwrap().iter().filter(|r| r["sku"] == SKU).collect();
    // Refunds count back.
    let sold: i64 = rows
        .iter()
        .filter(|r| r["reason"] == "sale" || r["reason"] == "refund")
        .map(|r| -r["delta"].as_i64().unwrap())
        .sum();
    let sum: i64 = rows.iter().map(|r| r["delta"].as_i64().unwrap()).sum();
    (sold, sum, l["on_hand"][SKU].as_i64().unwrap_or_else(|| panic!("{l}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_satellite_sells_apart_only_what_it_was_lent_and_the_merge_takes_it_in_once() {
    let dirs = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dirs.path().join("a"), dirs.path().join("b"));
    let t = two_entrances(&a_dir, &b_dir);
    let (mut a, a_addrs, b, b_addrs) = (t.a, t.a_addrs, t.b, t.b_addrs);
    let a_link = t.a_link.clone();
    let (admin, merch) = (binary::token(&a_dir, "admin"), binary::token(&a_dir, "merch"));
    let supervisor = binary::token(&a_dir, "supervisor");
    let a_base = format!("http://{}", a_addrs.plain);
    let phone = client_trusting(&std::fs::read(a_dir.join("tls/ca.pem")).unwrap());
    let https = |addrs: &binary::LanAddrs| {
        format!("https://localhost:{}", addrs.https.rsplit(':').next().unwrap())
    };
    let mut buyers = buyers(&a_dir).into_iter();
    let mut buyer = move || buyers.next().expect("enough demo tickets");

    // Joined, the primary lends the satellite tees and walk-up seats by
    // the demo's rules, and the satellite's copy shows them.
    let view = until(&a_base, "/api/v1/standby", &admin, "nothing was lent", |v| {
        loan(v, "sku", SKU).0 > 0 && loan(v, "tier", "ga").0 > 0
    })
    .await;
    let (lent0, _) = loan(&view, "sku", SKU);
    let (_, sum, on_hand) = ledger(&a_base, &admin).await;
    assert_eq!(
        (sum, on_hand),
        (INITIAL - lent0, INITIAL - lent0),
        "a loan leaves the stock by the ledger"
    );

    // A sale at the satellite while joined is the primary's, from its stock.
    let sat = https(&b_addrs);
    let joined = sell_tee(&phone, &sat, &merch, &buyer(), "sat-joined-1").await;
    assert_eq!((joined.status, joined.apart), (200, false), "{}", joined.body);
    let id = joined.body["order_id"].as_str().unwrap().to_string();
    let (st, _) =
        binary::call(reqwest::Method::GET, &a_base, &format!("/api/v1/orders/{id}"), &admin, None)
            .await;
    assert_eq!(st, 200, "the primary sold it");

    // The main door sells; the loan shrinks with what is left, and what
    // it gives back reaches the stock once the satellite has seen it.
    for i in 0..12 {
        let s = sell_tee(&phone, &https(&a_addrs), &merch, &buyer(), &format!("main-{i}")).await;
        assert_eq!(s.status, 200, "{}", s.body);
    }
    let settled = until(&a_base, "/api/v1/standby", &admin, "the loan never settled", |v| {
        let (units, recalled) = loan(v, "sku", SKU);
        recalled == 0 && units < lent0
    })
    .await;
    let (lent1, _) = loan(&settled, "sku", SKU);
    let (sold, sum, on_hand) = ledger(&a_base, &admin).await;
    assert_eq!(sold, 13);
    assert_eq!(on_hand, sum, "stock is the ledger's sum");
    assert_eq!(on_hand + sold + lent1, INITIAL);
    let seats = loan(&settled, "tier", "ga").0;

    // The cut: the satellite is gone; the main door sells all it may.
    drop(b);
    let mut main_sold = 0;
    for i in 0..INITIAL {
        let s = sell_tee(&phone, &https(&a_addrs), &merch, &buyer(), &format!("cut-{i}")).await;
        if sold_out(&s) {
            break;
        }
        main_sold += 1;
    }
    assert!(main_sold > 0);
    a.0.kill().unwrap();
    a.0.wait().unwrap();

    // Apart, the satellite sells its loan and not one unit more: a cart
    // held and paid, then one-step sales until it refuses.
    let (b, b_addrs) = binary::serve_lan_with(&b_dir, "127.0.0.1:0", &["--simulate"], &[]);
    let _b = Running(b);
    let b_base = format!("http://{}", b_addrs.plain);
    let sat = https(&b_addrs);
    until(&b_base, "/healthz", "", "the satellite never went apart", |v| v["apart"] == true).await;
    let (_, list) =
        binary::call(reqwest::Method::GET, &b_base, "/api/v1/drops", &merch, None).await;
    let tee = &list["drops"].as_array().unwrap().iter().find(|d| d["id"] == DROP).unwrap()
        ["products"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["sku"] == SKU)
        .cloned()
        .unwrap();
    assert_eq!(tee["available"], lent1, "apart, it offers its loan: {tee}");
    let hold = post(
        &phone,
        &sat,
        &merch,
        &format!("/api/v1/drops/{DROP}/holds"),
        json!({"items": [{"sku": SKU, "qty": 1}], "attendee_code": buyer(), "nonce": "apart-hold"}),
    )
    .await;
    assert_eq!((hold.status, hold.apart), (201, true), "{}", hold.body);
    let paid = post(
        &phone,
        &sat,
        &merch,
        &format!("/api/v1/holds/{}/checkout", hold.body["id"].as_str().unwrap()),
        json!({"nonce": "apart-checkout", "tender": cash()}),
    )
    .await;
    assert_eq!((paid.status, paid.apart), (200, true), "{}", paid.body);
    // A refund apart of the tee sold through the primary before the cut:
    // the unit goes back into the satellite's loan, to sell again.
    let refund = post(
        &phone,
        &sat,
        &supervisor,
        &format!("/api/v1/orders/{id}/refund"),
        json!({"reason": "wrong size"}),
    )
    .await;
    assert_eq!(
        (refund.status, refund.apart, refund.body["status"].as_str()),
        (200, true, Some("refunded")),
        "{}",
        refund.body
    );
    let mut apart_sold = 1;
    loop {
        let s = sell_tee(&phone, &sat, &merch, &buyer(), &format!("apart-{apart_sold}")).await;
        assert!(s.apart, "{}", s.body);
        if sold_out(&s) {
            break;
        }
        apart_sold += 1;
        assert!(apart_sold <= lent1 + 1, "sold past its loan of {lent1} and the refunded unit");
    }
    assert_eq!(apart_sold, lent1 + 1, "it sells exactly what it was lent, and the refunded unit");
    // A walk-up ticket out of its seats, signed with the event's box key.
    let walkup =
        json!({"tier": "ga", "nonce": "apart-walkup", "tender": cash(), "holder": "Apart Guest"});
    let w = post(&phone, &sat, &merch, "/api/v1/walkups", walkup.clone()).await;
    assert_eq!((w.status, w.apart), (200, true), "{}", w.body);
    let ticket_code = w.body["tickets"][0]["code"].as_str().unwrap().to_string();
    printed_at(&b_dir, w.body["order_id"].as_str().unwrap()).await;
    // A scholarship seat out of the program's loan.
    let code = json!({"code": "MARA-FRIEND-03", "nonce": "apart-claim", "holder": "Apart Friend"});
    let claim = post(&phone, &sat, &supervisor, "/api/v1/scholarships/claims", code).await;
    assert_eq!((claim.status, claim.apart), (200, true), "{}", claim.body);
    // A write with no apart mode is refused, saying why.
    let r = phone
        .post(format!("{sat}/api/v1/pairing-codes"))
        .bearer_auth(&admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "pairing needs the primary");

    // kill -9 during the cut: what it answered stays.
    drop(_b);
    let (b, b_addrs) = binary::serve_lan_with(&b_dir, "127.0.0.1:0", &["--simulate"], &[]);
    let _b = Running(b);
    let sat = https(&b_addrs);
    let again = post(&phone, &sat, &merch, "/api/v1/walkups", walkup).await;
    assert_eq!((again.replayed, again.apart), (true, true), "{}", again.body);
    assert_eq!(again.body["order_id"], w.body["order_id"]);
    let (_, st) = binary::call(
        reqwest::Method::GET,
        &format!("http://{}", b_addrs.plain),
        "/api/v1/standby",
        &admin,
        None,
    )
    .await;
    assert_eq!(
        st["apart_decisions"],
        apart_sold + 4,
        "its sales, its cart, its claim and its refund wait to merge: {st}"
    );

    // The primary back: the satellite's sales are merged once.
    let (_a, a_base) = primary_back(&a_dir, &a_link, &b_addrs, &admin).await;
    let b_base = format!("http://{}", b_addrs.plain);
    let (_, view) =
        binary::call(reqwest::Method::GET, &a_base, "/api/v1/standby", &admin, None).await;
    let merged: Vec<&Value> = view["takeover_report"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "order")
        .collect();
    assert_eq!(merged.len() as i64, apart_sold + 2, "{view}");
    assert!(merged.iter().all(|e| e["outcome"] == "merged"), "{view}");
    let close =
        view["takeover_report"].as_array().unwrap().iter().find(|e| e["kind"] == "close").cloned();
    assert_eq!(close.as_ref().map(|c| c["outcome"].clone()), Some(json!("merged")), "{view}");
    let (_, o) =
        binary::call(reqwest::Method::GET, &a_base, &format!("/api/v1/orders/{id}"), &admin, None)
            .await;
    assert_eq!(o["status"], "refunded", "{o}");
    let (sold, sum, on_hand) = ledger(&a_base, &admin).await;
    assert_eq!(sold, 13 + main_sold + apart_sold - 1, "every sale once, the refund once");
    assert_eq!(on_hand, sum, "stock is the ledger's sum");
    assert!(on_hand >= 0);
    let lent_now = {
        let (units, recalled) = loan(&view, "sku", SKU);
        units + recalled
    };
    assert_eq!(on_hand + sold + lent_now, INITIAL, "nothing sold past the stock");
    // The scholarship seat given apart counts on the primary.
    let (_, programs) =
        binary::call(reqwest::Method::GET, &a_base, "/api/v1/scholarships", &admin, None).await;
    let mara = programs["programs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["program"] == "sch-mara")
        .cloned()
        .unwrap();
    assert_eq!(mara["used"], 1, "{mara}");
    // The walk-up ticket sold apart admits at the main door, once.
    let door = binary::token(&a_dir, "door");
    let body = json!({"code": ticket_code, "gate": "main", "nonce": "main-walkup"});
    let (_, v) =
        binary::call(reqwest::Method::POST, &a_base, "/api/v1/checkins", &door, Some(body)).await;
    assert_eq!(v["verdict"], "admit", "{v}");
    // The seats it sold came off its loan; the rest is lent again.
    let relent = until(&a_base, "/api/v1/standby", &admin, "nothing was lent again", |v| {
        loan(v, "tier", "ga").0 > 0 && loan(v, "tier", "ga").1 == 0
    })
    .await;
    assert!(loan(&relent, "tier", "ga").0 <= seats);
    // Joined again, a sale at the satellite is the primary's.
    let joined = sell_tee(&phone, &https(&b_addrs), &merch, &buyer(), "sat-joined-2").await;
    assert!(!joined.apart, "{}", joined.body);

    // The main box is lost for good and the satellite takes over: what it
    // was lent is its own stock again, by the ledger.
    until(&b_base, "/api/v1/standby", &admin, "the satellite never had the loans", |v| {
        loan(v, "sku", SKU).0 > 0 || loan(v, "tier", "ga").0 > 0
    })
    .await;
    drop(_a);
    let dir = b_dir.clone();
    tokio::task::spawn_blocking(move || common::standby::promote(&dir)).await.unwrap();
    let view =
        until(&b_base, "/api/v1/standby", &admin, "never promoted", |v| v["role"] == "primary")
            .await;
    assert_eq!(view["escrow"], json!([]), "nothing is lent by the new primary to itself: {view}");
    let (sold, sum, on_hand) = ledger(&b_base, &admin).await;
    assert_eq!(on_hand, sum, "stock is the ledger's sum");
    assert_eq!(on_hand + sold, INITIAL, "every unit is on hand or sold");
}
