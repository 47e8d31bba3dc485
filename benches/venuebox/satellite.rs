//! 14. A second entrance (`-- satellite`): the release binary as primary
//!     and as a satellite joined to it (`venuebox join --satellite`), each
//!     in a network namespace of its own, the door's client in a third
//!     (veth pairs through one bridge). Door p50/p99 at concurrency 1 and
//!     8 at the primary and at the satellite (which forwards every call to
//!     the primary over HTTPS); then the path between the boxes cut while
//!     both entrances admit (the satellite apart, from its copy), healed:
//!     the time until everything the satellite took apart is merged on the
//!     primary and the satellite follows again.

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

pub fn satellite_phase() {
    Venue::tools();
    let venue = Arc::new(Venue::new(&["a", "s", "c"]));
    let dirs = tempfile::tempdir().unwrap();
    let (a_dir, s_dir) = (dirs.path().join("a"), dirs.path().join("s"));
    let mut boxes = Boxes(vec![venue.serve("a", &a_dir, &["--demo"], "error")]);
    let codes = mint_tickets(&a_dir, (2 * (1_000 + 5_000) + 2 * APART) as u32);
    let (door, admin) = (binary::token(&a_dir, "door"), binary::token(&a_dir, "admin"));
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
            // Apart: the path between the boxes cut, both entrances admit.
            venue2.cut_between("s", "a", true);
            until(&http, &s_base, &admin, |v| v["link"]["connected"] == false).await;
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
                "merge after {APART} check-ins apart at the satellite and {APART} at the primary: \
                 merged and following again {:.2} s after the path healed ({:.0} check-ins/s; \
                 the primary now counts {} admitted)",
                took.as_secs_f64(),
                APART as f64 / took.as_secs_f64(),
                stats["admitted"]
            );
        })
    });
    drop(boxes);
}
