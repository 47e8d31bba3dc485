//! Two boxes and the door's clients on a venue LAN made of network
//! namespaces and a bridge (`common::netns`): the primary, its standby
//! and the clients each in a namespace of their own, the link between
//! the boxes a veth pair through the bridge. The test pairs them as an
//! operator does, then cuts the standby's cable, puts a lossy slow line
//! on it (`tc netem`, or nftables and `tc tbf` on a kernel without netem),
//! cuts only the path between the boxes and promotes the standby (two
//! primaries, each admitting; the old one fenced and reporting when the
//! path heals), and finally kills the new primary with SIGKILL under door
//! and merch load from the clients' namespace and promotes the old one.
//! The checker reads the clients' own log of acknowledged answers. mDNS
//! says which box is primary, at which epoch. Needs root, as CI has.

mod common;

use common::binary::{call, Running};
use common::netns::Venue;
use common::standby::{buyers, check, standby_code, tickets, Load};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_venuebox");

/// `venuebox discover` from the clients' namespace: one line a box.
async fn discover(venue: &Venue) -> Vec<String> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &venue.ns("c"), BIN, "discover", "--wait-secs", "3"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

fn announced(lines: &[String], name: &str, role: &str, epoch: i64) -> bool {
    lines.iter().any(|l| {
        l.starts_with(&format!("door-{name} "))
            && l.contains(&format!("role={role}"))
            && l.contains(&format!("epoch={epoch}"))
    })
}

async fn pair_view(base: &str, admin: &str) -> Value {
    call(reqwest::Method::GET, base, "/api/v1/standby", admin, None).await.1
}

async fn wait_for(base: &str, admin: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = pair_view(base, admin).await;
        if f(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Scans `codes` one after another at `base`; all must be admitted.
/// Returns the slowest answer.
async fn scan_all(base: &str, door: &str, codes: &[(String, String)], tag: &str) -> Duration {
    let mut slowest = Duration::ZERO;
    for (ticket, code) in codes {
        let t = Instant::now();
        let body = json!({"code": code, "gate": "main", "nonce": format!("{tag}-{ticket}")});
        let (status, v) =
            call(reqwest::Method::POST, base, "/api/v1/checkins", door, Some(body)).await;
        slowest = slowest.max(t.elapsed());
        assert_eq!((status, v["verdict"].as_str()), (200, Some("admit")), "{tag}: {v}");
    }
    slowest
}

async fn admitted(base: &str, door: &str) -> Value {
    call(reqwest::Method::GET, base, "/api/v1/stats", door, None).await.1["admitted"].clone()
}

#[test]
fn on_a_venue_lan_the_door_goes_on_through_cuts_loss_and_a_killed_primary() {
    Venue::tools();
    let venue = Venue::new(&["a", "b", "c"]);
    let dirs = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dirs.path().join("a"), dirs.path().join("b"));
    let _a = Running(venue.serve("a", &a_dir, &["--demo"], "warn"));
    let (code, fingerprint) = standby_code(&a_dir);
    venue.join("b", &b_dir, "a", &code, &fingerprint);
    let mut b = Running(venue.serve("b", &b_dir, &[], "warn"));
    let (admin, door, merch) = (
        common::binary::token(&a_dir, "admin"),
        common::binary::token(&a_dir, "door"),
        common::binary::token(&a_dir, "merch"),
    );
    let all = tickets(&a_dir);
    let shoppers = buyers(&a_dir);
    let (a_base, b_base) =
        (format!("http://{}:8080", venue.addr("a")), format!("http://{}:8080", venue.addr("b")));

    // Everything from here on runs in the clients' namespace.
    let (venue, a_base2, b_base2) = (std::sync::Arc::new(venue), a_base.clone(), b_base.clone());
    let v2 = venue.clone();
    let (a_dir2, b_dir2) = (a_dir.clone(), b_dir.clone());
    let report = venue.run_in("c", move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let (venue, a_base, b_base) = (v2, a_base2, b_base2);
            wait_for(&a_base, &admin, "never in sync", |v| v["link"]["in_sync"] == true).await;
            let seen = discover(&venue).await;
            assert!(announced(&seen, "a", "primary", 1), "{seen:?}");
            assert!(announced(&seen, "b", "standby", 1), "{seen:?}");

            // The standby's cable out: the primary goes on alone within
            // the bound, and says so.
            venue.cable("b", false);
            let cut = scan_all(&a_base, &door, &all[..20], "cut").await;
            let v = wait_for(&a_base, &admin, "not alone", |v| v["link"]["in_sync"] == false).await;
            assert!(v["link"]["alone_since_ms"].is_i64(), "{v}");
            scan_all(&a_base, &door, &all[20..40], "alone").await;
            venue.cable("b", true);
            wait_for(&a_base, &admin, "never caught up", |v| v["link"]["in_sync"] == true).await;
            assert_eq!(admitted(&b_base, &door).await, json!(40));

            // A bad line on the standby's side: 20 % loss, 30 ms delay.
            let line = {
                let venue = venue.clone();
                tokio::task::spawn_blocking(move || venue.bad_line("b", 20, 30)).await.unwrap()
            };
            let lossy = scan_all(&a_base, &door, &all[40..80], "lossy").await;
            venue.clean_line("b");
            wait_for(&a_base, &admin, "never caught up after the loss", |v| {
                v["link"]["in_sync"] == true && v["link"]["lag_writes"] == 0
            })
            .await;
            assert_eq!(admitted(&b_base, &door).await, json!(80));

            // The path between the boxes fails while each keeps its phones,
            // and the standby is promoted: two primaries. Each admits alone,
            // one ticket on both sides. At their first contact after the
            // cut, the old primary is fenced and reports what it took alone.
            venue.cut_between("b", "a", true);
            wait_for(&a_base, &admin, "not alone in the cut", |v| v["link"]["in_sync"] == false)
                .await;
            let dir = b_dir2.clone();
            tokio::task::spawn_blocking(move || common::standby::promote(&dir)).await.unwrap();
            scan_all(&a_base, &door, &all[80..82], "cut-a").await;
            scan_all(&b_base, &door, &[all[80].clone(), all[82].clone()], "cut-b").await;
            let seen = discover(&venue).await;
            assert!(
                announced(&seen, "a", "primary", 1) && announced(&seen, "b", "primary", 2),
                "{seen:?}"
            );
            venue.cut_between("b", "a", false);
            let v = wait_for(&b_base, &admin, "the old primary never reported", |v| {
                v["takeover_report"].as_array().is_some_and(|r| r.len() >= 2)
            })
            .await;
            let outcome = |nonce: String| {
                v["takeover_report"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["reference"] == nonce.as_str())
                    .map(|e| e["outcome"].as_str().unwrap().to_string())
                    .unwrap_or_else(|| panic!("{nonce} not reported: {v}"))
            };
            assert_eq!(outcome(format!("cut-a-{}", all[80].0)), "double_admission");
            assert_eq!(outcome(format!("cut-a-{}", all[81].0)), "merged");
            let h: Value =
                reqwest::get(format!("{a_base}/healthz")).await.unwrap().json().await.unwrap();
            assert_eq!(
                (h["role"].as_str(), h["epoch"].as_i64()),
                (Some("standby"), Some(2)),
                "{h}"
            );
            assert_eq!(admitted(&b_base, &door).await, json!(83));
            wait_for(&b_base, &admin, "the old primary never followed", |v| {
                v["link"]["in_sync"] == true
            })
            .await;

            // Load from this namespace at the new primary, which is killed
            // mid-load; the old one, its standby now, is promoted.
            let mut load = Load::new(&b_base);
            load.door(&door, &all[100..700], 8);
            load.merch(&merch, &shoppers, 4);
            while load.answered() < 300 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let _ = b.0.kill();
            let _ = b.0.wait();
            let killed = Instant::now();
            let dir = a_dir2.clone();
            tokio::task::spawn_blocking(move || common::standby::promote(&dir)).await.unwrap();
            load.point_at(&a_base);
            let acked = load.finish().await;
            let all_answered = killed.elapsed();
            check(&a_base, &door, &merch, &acked).await;
            assert_eq!(admitted(&a_base, &door).await, json!(83 + 600));
            let seen = discover(&venue).await;
            assert!(announced(&seen, "a", "primary", 3), "{seen:?}");
            format!(
                "slowest answer with the cable out {cut:?}, on the lossy line ({line}) {lossy:?}; \
                 {} answers acknowledged; all answered {all_answered:?} after the kill",
                acked.len()
            )
        })
    });
    eprintln!("{report}");
}
