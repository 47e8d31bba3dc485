//! 14. A second entrance (`-- satellite`): the release binary as primary
//!     and as a satellite joined to it (`venuebox join --satellite`), each
//!     in a network namespace of its own, the door's client in a third
//!     (veth pairs through one bridge). Door p50/p99 at concurrency 1 and
//!     8 at the primary and at the satellite (which forwards every call to
//!     the primary over HTTPS); then the path between the boxes cut while
//!     both entrances admit (the satellite apart, from its copy), healed:
//!     the time until everything the satellite took apart is merged on the
//!     primary and the satellite follows again. Escrow: how long a restock
//!     at the primary takes to show as a larger loan in the satellite's
//!     copy (the refill latency); apart, the satellite also sells its whole
//!     loan (walk-up seats, tees, posters), merged with the check-ins; and
//!     how long after the merge its loans stand again.

use super::netns::Venue;
use super::{binary, checkin_run, mint_tickets, report};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

const GATES: &[&str] = &["main"];
/// Check-ins each side takes while apart.
const APART: usize = 5_000;

struct Boxes(Vec<std::process::Child>);

impl Drop for Boxes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn view(http: &reqwest::Client, base: &str, admin: &str) -> Value {
    let r = http.get(format!("{base}/api/v1/standby")).bearer_auth(admin).send().await.unwrap();
    r.json().await.unwrap()
}

async fn until(http: &reqwest::Client, base: &str, admin: &str, f: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let v = view(http, base, admin).await;
        if f(&v) {
            return;
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Units of `item` lent to the satellite, as `base`'s copy shows them.
async fn loan(http: &reqwest::Client, base: &str, admin: &str, item: &str) -> (i64, i64) {
    let v = view(http, base, admin).await;
    v["escrow"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["item"] == item)
        .fold((0, 0), |(u, r), e| {
            (u + e["units"].as_i64().unwrap_or(0), r + e["recalled"].as_i64().unwrap_or(0))
        })
}

/// Restocks the tees at the primary, 5 units at a time, and times each
/// until the satellite's copy shows a larger loan. Milliseconds.
async fn refill_latency(
    http: &reqwest::Client,
    a_base: &str,
    s_base: &str,
    admin: &str,
) -> Vec<f64> {
    let mut out = Vec::new();
    for sku in ["TEE-BLK-L", "TEE-BLK-M"] {
        for _ in 0..5 {
            let before = loan(http, s_base, admin, sku).await.0;
            let t = Instant::now();
            let body = serde_json::json!({"sku": sku, "quantity": 5, "reason": "bench: refill"});
            let r = http
                .post(format!("{a_base}/api/v1/drops/drop-live/restock"))
                .bearer_auth(admin)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{:?}", r.text().await);
            let deadline = Instant::now() + Duration::from_secs(10);
            while loan(http, s_base, admin, sku).await.0 <= before {
                assert!(Instant::now() < deadline, "{sku}: the loan never grew past {before}");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            out.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    out
}

/// Posts `body(i)` to `url` for i = 0, 1, … until the box refuses one;
/// returns how many it took.
async fn until_refused(
    http: &reqwest::Client,
    url: &str,
    merch: &str,
    mut body: impl FnMut(usize) -> serde_json::Value,
) -> usize {
    let mut n = 0;
    loop {
        let r = http.post(url).bearer_auth(merch).json(&body(n)).send().await.unwrap();
        if !r.status().is_success() {
            return n;
        }
        n += 1;
    }
}

/// Apart, sells everything the satellite was lent: walk-up seats, then
/// tees and posters one at a time to distinct buyers, each until it is
/// refused. Returns the sales made.
async fn sell_the_loan(
    http: &reqwest::Client,
    s_base: &str,
    merch: &str,
    buyers: &[String],
) -> usize {
    let cash = serde_json::json!({"kind": "cash", "given_minor": 10000});
    let walkups = format!("{s_base}/api/v1/walkups");
    let mut sold = until_refused(
        http,
        &walkups,
        merch,
        |i| serde_json::json!({"tier": "ga", "nonce": format!("bench-walkup-{i}"), "tender": cash}),
    )
    .await;
    let mut buyers = buyers.iter();
    let sales = format!("{s_base}/api/v1/drops/drop-live/sales");
    for sku in ["TEE-BLK-L", "TEE-BLK-M", "POSTER"] {
        sold += until_refused(http, &sales, merch, |i| {
            serde_json::json!({"items": [{"sku": sku, "qty": 1}], "attendee_code": buyers.next().unwrap(),
                               "nonce": format!("bench-sale-{sku}-{i}"), "tender": cash})
        })
        .await;
    }
    sold
}

pub fn satellite_phase() {
    Venue::tools();
    let venue = Arc::new(Venue::new(&["a", "s", "c"]));
    let dirs = tempfile::tempdir().unwrap();
    let (a_dir, s_dir) = (dirs.path().join("a"), dirs.path().join("s"));
    let mut boxes = Boxes(vec![venue.serve("a", &a_dir, &["--demo"], "error")]);
    let codes = mint_tickets(&a_dir, (2 * (1_000 + 5_000) + 2 * APART + 200) as u32);
    let (door, admin) = (binary::token(&a_dir, "door"), binary::token(&a_dir, "admin"));
    let merch = binary::token(&a_dir, "merch");
    let (code, fingerprint) = super::standby_code(&a_dir);
    venue.join_as("s", &s_dir, "a", &code, &fingerprint, &["--satellite"]);
    boxes.0.push(venue.serve("s", &s_dir, &[], "error"));
    let (a_base, s_base) =
        (format!("http://{}:8080", venue.addr("a")), format!("http://{}:8080", venue.addr("s")));
    let venue2 = venue.clone();
    venue.run_in("c", move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let http = reqwest::Client::new();
            until(&http, &a_base, &admin, |v| v["link"]["satellites"][0]["connected"] == true)
                .await;
            // Joined: the same door at both entrances, distinct tickets.
            let mut at = 0;
            let mut take = |n: usize| -> Vec<String> {
                at += n;
                codes[at - n..at].to_vec()
            };
            for (name, base) in [("primary", &a_base), ("satellite (forwarding)", &s_base)] {
                for (c, n) in [(1, 1_000), (8, 5_000)] {
                    let batch = take(n);
                    let (lat, wall) = checkin_run(
                        base,
                        &door,
                        &batch,
                        GATES,
                        c,
                        Duration::from_secs(60),
                        Duration::ZERO,
                    )
                    .await;
                    report(&format!("over veth, at the {name}, concurrency {c}"), lat, wall);
                }
            }
            // Escrow refills: a restock at the primary, seen as a larger
            // loan in the satellite's copy.
            let mut ms = refill_latency(&http, &a_base, &s_base, &admin).await;
            ms.sort_by(f64::total_cmp);
            println!(
                "escrow refill latency (a restock at the primary until the satellite's copy shows the larger loan), {} samples: min {:.0} ms, median {:.0} ms, max {:.0} ms",
                ms.len(),
                ms[0],
                ms[ms.len() / 2],
                ms[ms.len() - 1]
            );
            // Apart: the path between the boxes cut, both entrances admit,
            // and the satellite sells its whole loan.
            venue2.cut_between("s", "a", true);
            until(&http, &s_base, &admin, |v| v["link"]["connected"] == false).await;
            let buyers = take(200);
            let t = Instant::now();
            let sales = sell_the_loan(&http, &s_base, &merch, &buyers).await;
            println!(
                "at the satellite apart: sold its whole loan, {sales} sales, in {:.2} s",
                t.elapsed().as_secs_f64()
            );
            let (main, apart) = (take(APART), take(APART));
            let (lat, wall) = checkin_run(
                &s_base,
                &door,
                &apart,
                GATES,
                8,
                Duration::from_secs(120),
                Duration::ZERO,
            )
            .await;
            report("at the satellite apart (its copy), concurrency 8", lat, wall);
            let (lat, wall) = checkin_run(
                &a_base,
                &door,
                &main,
                GATES,
                8,
                Duration::from_secs(120),
                Duration::ZERO,
            )
            .await;
            report("meanwhile at the primary, concurrency 8", lat, wall);
            // Healed: how long until the primary has merged it all.
            venue2.cut_between("s", "a", false);
            let t = Instant::now();
            until(&http, &s_base, &admin, |v| {
                v["link"]["connected"] == true && v["apart_since"].is_null()
            })
            .await;
            let took = t.elapsed();
            let stats =
                binary::call(reqwest::Method::GET, &a_base, "/api/v1/stats", &door, None).await.1;
            println!(
                "merge after {APART} check-ins and {sales} sales apart at the satellite and {APART} check-ins at the primary: \
                 merged and following again {:.2} s after the path healed ({:.0} actions/s; \
                 the primary now counts {} admitted)",
                took.as_secs_f64(),
                (APART + sales) as f64 / took.as_secs_f64(),
                stats["admitted"]
            );
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let (units, recalled) = loan(&http, &s_base, &admin, "ga").await;
                if units > 0 && recalled == 0 {
                    break;
                }
                assert!(Instant::now() < deadline, "the seats were never lent again");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            println!(
                "escrow lent again after the merge: the satellite's copy shows its seats {:.0} ms after it followed again",
                (t.elapsed() - took).as_secs_f64() * 1000.0
            );
        })
    });
    drop(boxes);
}
