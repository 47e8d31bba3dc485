//! Three boxes on a venue LAN of network namespaces (`common::netns`): the
//! primary, its standby and a satellite at a second entrance, plus the
//! clients' namespace, all on one bridge. Paired as an operator does
//! (`venuebox pair --standby`, `venuebox join`, `venuebox join
//! --satellite`). Joined, the satellite's door is the primary's (one
//! authority). Then the path between the satellite and the primary is cut
//! for a while: the same tickets are scanned at both entrances (a race
//! across the cut), others at one side only; the satellite is killed with
//! SIGKILL during the cut and restarted. When the path heals, everything
//! the satellite admitted apart reaches the primary once (and its standby):
//! merged by nonce, and each ticket admitted on both sides during the cut
//! listed as a double admission with both records, no other. A sale race
//! across the same cut (buyers at both entrances, more than the stock):
//! the satellite sells exactly its escrow, the main door the rest, and
//! after the merge the ledger equals its movements and nothing is sold
//! past the stock. Then the
//! primary dies and the standby is promoted: the satellite finds the new
//! primary by itself and forwards there. mDNS says what each box is.
//! Needs root, as CI has. `VENUEBOX_CUT_SECS=N` holds the cut for N seconds
//! (CI: as long as the steps take, about ten).

mod common;

use common::binary::{call, Running};
use common::netns::Venue;
use common::standby::{buyers, standby_code, tickets};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_venuebox");

async fn view(base: &str, admin: &str) -> Value {
    call(reqwest::Method::GET, base, "/api/v1/standby", admin, None).await.1
}

async fn wait_for(base: &str, admin: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = view(base, admin).await;
        if f(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Scans each ticket at `base` with nonce `TAG-TICKET`; returns the
/// answers (and whether the satellite decided them apart).
async fn scan(base: &str, door: &str, codes: &[(String, String)], tag: &str) -> Vec<(Value, bool)> {
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    for (ticket, code) in codes {
        let body = json!({"code": code, "gate": "main", "nonce": format!("{tag}-{ticket}")});
        let r = http
            .post(format!("{base}/api/v1/checkins"))
            .bearer_auth(door)
            .json(&body)
            .send()
            .await
            .unwrap();
        let apart = r.headers().contains_key("x-venuebox-apart");
        out.push((r.json().await.unwrap(), apart));
    }
    out
}

fn all_admitted(answers: &[(Value, bool)], apart: bool, what: &str) {
    for (v, flagged) in answers {
        assert_eq!((v["verdict"].as_str(), *flagged), (Some("admit"), apart), "{what}: {v}");
    }
}

async fn admitted(base: &str, door: &str) -> Value {
    call(reqwest::Method::GET, base, "/api/v1/stats", door, None).await.1["admitted"].clone()
}

/// One-step sales of one poster each to `buyers` at `base` until the box
/// says sold out; returns (sold, every answer flagged apart).
async fn sell_until_out(base: &str, merch: &str, buyers: &[String], tag: &str) -> (i64, bool) {
    let http = reqwest::Client::new();
    let (mut sold, mut apart) = (0, true);
    for (i, buyer) in buyers.iter().enumerate() {
        let body = json!({"items": [{"sku": "POSTER", "qty": 1}], "attendee_code": buyer,
                          "nonce": format!("{tag}-sale-{i}"), "tender": {"kind": "cash", "given_minor": 2000}});
        let r = http
            .post(format!("{base}/api/v1/drops/drop-live/sales"))
            .bearer_auth(merch)
            .json(&body)
            .send()
            .await
            .unwrap();
        apart &= r.headers().contains_key("x-venuebox-apart");
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        if status != 200 {
            assert_eq!(
                (status, v["error"]["code"].as_str()),
                (409, Some("sold_out")),
                "{tag}: {v}"
            );
            return (sold, apart);
        }
        sold += 1;
    }
    panic!("{tag}: more buyers than the stock, and never sold out");
}

/// Posters sold by the ledger, the ledger's sum and stock on hand.
async fn posters(base: &str, admin: &str) -> (i64, i64, i64) {
    let l = call(reqwest::Method::GET, base, "/api/v1/drops/drop-live/ledger", admin, None).await.1;
    let rows: Vec<&Value> =
        l["ledger"].as_array().unwrap().iter().filter(|r| r["sku"] == "POSTER").collect();
    let sold =
        rows.iter().filter(|r| r["reason"] == "sale").map(|r| -r["delta"].as_i64().unwrap()).sum();
    let sum = rows.iter().map(|r| r["delta"].as_i64().unwrap()).sum();
    (sold, sum, l["on_hand"]["POSTER"].as_i64().unwrap())
}

fn lent(view: &Value, sku: &str) -> i64 {
    view["escrow"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["item"] == sku)
        .map(|e| e["units"].as_i64().unwrap() + e["recalled"].as_i64().unwrap())
        .sum()
}

async fn discover(venue: &Venue) -> Vec<String> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &venue.ns("c"), BIN, "discover", "--wait-secs", "3"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn a_satellite_admits_through_a_cut_and_everything_merges_once() {
    Venue::tools();
    let venue = Venue::new(&["a", "b", "s", "c"]);
    let dirs = tempfile::tempdir().unwrap();
    let (a_dir, b_dir, s_dir) =
        (dirs.path().join("a"), dirs.path().join("b"), dirs.path().join("s"));
    let a = Running(venue.serve("a", &a_dir, &["--demo"], "warn"));
    let (code, fingerprint) = standby_code(&a_dir);
    venue.join("b", &b_dir, "a", &code, &fingerprint);
    let _b = Running(venue.serve("b", &b_dir, &[], "warn"));
    let (code, fingerprint) = standby_code(&a_dir);
    venue.join_as("s", &s_dir, "a", &code, &fingerprint, &["--satellite"]);
    let s = Running(venue.serve("s", &s_dir, &[], "warn"));
    let (admin, door) =
        (common::binary::token(&a_dir, "admin"), common::binary::token(&a_dir, "door"));
    let merch = common::binary::token(&a_dir, "merch");
    let all = tickets(&a_dir);
    let buyers = buyers(&a_dir);
    let base = |n: &str| format!("http://{}:8080", venue.addr(n));
    let (a_base, b_base, s_base) = (base("a"), base("b"), base("s"));
    let venue = std::sync::Arc::new(venue);
    let v2 = venue.clone();
    let (s_dir2, b_dir2) = (s_dir.clone(), b_dir.clone());
    venue.clone().run_in("c", move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let venue = v2;
            let mut s = s;
            wait_for(&a_base, &admin, "never in sync with the standby and the satellite", |v| {
                v["link"]["in_sync"] == true && v["link"]["satellites"][0]["connected"] == true
            })
            .await;
            let seen = discover(&venue).await;
            for (node, role) in [("a", "primary"), ("b", "standby"), ("s", "satellite")] {
                assert!(
                    seen.iter().any(|l| l.starts_with(&format!("door-{node} "))
                        && l.contains(&format!("role={role}"))),
                    "{node} as {role}: {seen:?}"
                );
            }

            // Joined: the satellite's door is the primary's.
            all_admitted(&scan(&s_base, &door, &all[..20], "joined").await, false, "joined");
            assert_eq!(admitted(&a_base, &door).await, json!(20));

            // The path between the satellite and the primary fails.
            venue.cut_between("s", "a", true);
            let cut_at = Instant::now();
            wait_for(&s_base, &admin, "the satellite never saw the cut", |v| {
                v["link"]["connected"] == false
            })
            .await;
            let health: Value =
                reqwest::get(format!("{s_base}/healthz")).await.unwrap().json().await.unwrap();
            assert_eq!(health["apart"], true, "{health}");
            // A race: the same 20 tickets at both entrances.
            all_admitted(&scan(&a_base, &door, &all[20..40], "main").await, false, "race, main");
            all_admitted(&scan(&s_base, &door, &all[20..40], "apart").await, true, "race, apart");
            // One side only.
            all_admitted(&scan(&s_base, &door, &all[40..50], "apart").await, true, "apart only");
            all_admitted(&scan(&a_base, &door, &all[50..60], "main").await, false, "main only");
            // Admitted before the cut: the satellite's copy knows them.
            for (v, _) in scan(&s_base, &door, &all[..5], "again").await {
                assert_eq!(v["reason"], "already_checked_in", "{v}");
            }
            // A sale race: buyers at both entrances at once, more than the
            // stock. The satellite sells exactly its loan of posters.
            let loan = lent(&view(&a_base, &admin).await, "POSTER");
            assert!(loan > 0, "the satellite holds posters to sell apart");
            let ((main_sold, main_apart), (apart_sold, all_apart)) = tokio::join!(
                sell_until_out(&a_base, &merch, &buyers[100..160], "main"),
                sell_until_out(&s_base, &merch, &buyers[200..260], "apart"),
            );
            assert!(!main_apart && all_apart);
            assert_eq!(apart_sold, loan, "apart, exactly its escrow");

            // kill -9 of the satellite during the cut; restarted, it is
            // still apart and remembers what it admitted.
            let _ = s.0.kill();
            let _ = s.0.wait();
            let dir = s_dir2.clone();
            let v3 = venue.clone();
            s = tokio::task::spawn_blocking(move || Running(v3.serve("s", &dir, &[], "warn")))
                .await
                .unwrap();
            for (v, apart) in scan(&s_base, &door, &all[40..45], "again").await {
                assert_eq!((v["reason"].as_str(), apart), (Some("already_checked_in"), true));
            }
            all_admitted(&scan(&s_base, &door, &all[60..65], "apart").await, true, "restarted");
            // A cut as long as `VENUEBOX_CUT_SECS` asks (CI keeps it short:
            // nothing here changes with time apart but the waiting).
            let cut_for = std::env::var("VENUEBOX_CUT_SECS").ok().and_then(|s| s.parse().ok());
            if let Some(left) =
                cut_for.map(Duration::from_secs).and_then(|d| d.checked_sub(cut_at.elapsed()))
            {
                tokio::time::sleep(left).await;
            }
            eprintln!("the cut lasted {:.1} s", cut_at.elapsed().as_secs_f64());

            // The path heals: the satellite reports, the primary merges.
            venue.cut_between("s", "a", false);
            wait_for(&s_base, &admin, "the satellite never merged and followed", |v| {
                v["link"]["connected"] == true && v["apart_since"].is_null()
            })
            .await;
            let v = wait_for(&a_base, &admin, "the merge never showed", |v| {
                v["takeover_report"].as_array().is_some_and(|r| r.len() as i64 >= 35 + apart_sold)
            })
            .await;
            let (orders, report): (Vec<Value>, Vec<Value>) = v["takeover_report"]
                .as_array()
                .unwrap()
                .iter()
                .cloned()
                .partition(|e| e["kind"] == "order");
            assert_eq!(report.len(), 35, "{v}");
            assert_eq!(orders.len() as i64, apart_sold, "{v}");
            assert!(orders.iter().all(|e| e["outcome"] == "merged"), "{v}");
            // The stock: every sale once, the ledger its movements, nothing
            // sold past what there was (50, the reserve's 5 kept back).
            let (sold, sum, on_hand) = posters(&a_base, &admin).await;
            assert_eq!(sold, main_sold + apart_sold);
            assert_eq!(on_hand, sum, "stock is the ledger's sum");
            assert_eq!(on_hand + sold + lent(&v, "POSTER"), 50, "{v}");
            assert!(on_hand >= 5, "the reserve was not sold: {on_hand}");
            let with = |outcome: &str| -> HashSet<String> {
                report
                    .iter()
                    .filter(|e| e["outcome"] == outcome)
                    .map(|e| e["reference"].as_str().unwrap().to_string())
                    .collect()
            };
            let nonces = |r: &[(String, String)]| -> HashSet<String> {
                r.iter().map(|(t, _)| format!("apart-{t}")).collect()
            };
            // Double admissions: exactly the race's tickets, each with
            // both records.
            assert_eq!(with("double_admission"), nonces(&all[20..40]));
            for e in report.iter().filter(|e| e["outcome"] == "double_admission") {
                let main = e["detail"]["new_primary"]["nonce"].as_str().unwrap();
                let ticket = e["detail"]["old_primary"]["ticket"].as_str().unwrap();
                assert_eq!(main, format!("main-{ticket}"), "{e}");
            }
            let merged: HashSet<String> =
                nonces(&all[40..50]).union(&nonces(&all[60..65])).cloned().collect();
            assert_eq!(with("merged"), merged);
            // Each action once: 20 joined + 20 race (main's) + 10 main
            // only + 15 merged; the standby has the same.
            assert_eq!(admitted(&a_base, &door).await, json!(65));
            wait_for(&a_base, &admin, "the standby never caught up", |v| {
                v["link"]["in_sync"] == true && v["link"]["lag_writes"] == 0
            })
            .await;
            assert_eq!(admitted(&b_base, &door).await, json!(65));
            // The satellite forwards again.
            all_admitted(&scan(&s_base, &door, &all[70..75], "rejoined").await, false, "rejoined");
            assert_eq!(admitted(&a_base, &door).await, json!(70));

            // A takeover: the primary dies, the standby is promoted; the
            // satellite finds the new primary by itself (the standby its
            // primary named) and forwards there.
            drop(a);
            let dir = b_dir2.clone();
            tokio::task::spawn_blocking(move || common::standby::promote(&dir)).await.unwrap();
            wait_for(&s_base, &admin, "the satellite never followed the new primary", |v| {
                v["link"]["connected"] == true && v["epoch"] == 2
            })
            .await;
            all_admitted(&scan(&s_base, &door, &all[75..80], "after").await, false, "new primary");
            assert_eq!(admitted(&b_base, &door).await, json!(75));
            drop(s);
        });
    });
}
