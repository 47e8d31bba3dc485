//! 13. Two boxes (`-- standby`): the release binary as primary and as
//!     standby, each in a network namespace of its own, the door's client
//!     in a third, all on one bridge (veth pairs; `tests/common/netns.rs`).
//!     Door p50/p99 at concurrency 1 and 8 with the primary alone and
//!     with its standby connected (semi-synchronous), the replication lag
//!     sampled every 50 ms under that load, the standby catching up after
//!     its cable was out while the door admitted, capture files copied,
//!     and the time from a SIGKILL of the primary to the first admission
//!     on the standby after `venuebox promote`.

use super::netns::Venue;
use super::{
    binary, checkin_run, mint_tickets, phone_photo, report, tus_create_for, tus_patch, with_exif,
};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

const GATES: &[&str] = &["main"];

struct Boxes {
    a: std::process::Child,
    b: Option<std::process::Child>,
}

impl Drop for Boxes {
    fn drop(&mut self) {
        for c in std::iter::once(&mut self.a).chain(self.b.as_mut()) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn pair_view(http: &reqwest::Client, base: &str, admin: &str) -> Value {
    let r = http.get(format!("{base}/api/v1/standby")).bearer_auth(admin).send().await.unwrap();
    r.json().await.unwrap()
}

async fn until(http: &reqwest::Client, base: &str, admin: &str, f: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let v = pair_view(http, base, admin).await;
        if f(&v) {
            return;
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The primary's write transactions so far (`/metrics`, as the admin).
async fn batches(http: &reqwest::Client, base: &str, admin: &str) -> f64 {
    let text = http
        .get(format!("{base}/metrics"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("venuebox_store_write_batch_size_count "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// Runs `f` with a runtime of its own on a thread in the clients' namespace.
fn in_c<T: Send + 'static>(
    venue: &Venue,
    f: impl FnOnce(tokio::runtime::Runtime) -> T + Send + 'static,
) -> T {
    venue.run_in("c", move || {
        f(tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap())
    })
}

pub fn standby_phase() {
    Venue::tools();
    let venue = Arc::new(Venue::new(&["a", "b", "c"]));
    let dirs = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dirs.path().join("a"), dirs.path().join("b"));
    let a = venue.serve("a", &a_dir, &["--demo"], "error");
    let mut boxes = Boxes { a, b: None };
    let codes = mint_tickets(&a_dir, 40_000);
    let (door, admin, capture) = (
        binary::token(&a_dir, "door"),
        binary::token(&a_dir, "admin"),
        binary::token(&a_dir, "capture"),
    );
    let (a_base, b_base) =
        (format!("http://{}:8080", venue.addr("a")), format!("http://{}:8080", venue.addr("b")));
    let slices: Vec<Vec<String>> = codes.chunks(5_000).map(|c| c.to_vec()).collect();

    // The primary alone (no standby joined yet).
    {
        let (a_base, door, admin, s) =
            (a_base.clone(), door.clone(), admin.clone(), slices.clone());
        let a_pid = boxes.a.id();
        in_c(&venue, move |rt| {
            rt.block_on(async {
                let (lat, wall) = checkin_run(
                    &a_base,
                    &door,
                    &s[0][..1_000],
                    GATES,
                    1,
                    Duration::from_secs(20),
                    Duration::ZERO,
                )
                .await;
                report("over veth, alone, concurrency 1", lat, wall);
                let cpu0 = super::cpu_secs(a_pid);
                let http = reqwest::Client::new();
                let b0 = batches(&http, &a_base, &admin).await;
                let (lat, wall) = checkin_run(
                    &a_base,
                    &door,
                    &s[1],
                    GATES,
                    8,
                    Duration::from_secs(20),
                    Duration::ZERO,
                )
                .await;
                report("over veth, alone, concurrency 8", lat, wall);
                println!(
                    "  CPU in that run: primary {:.2} s over {:.2} s of wall time; {} transactions",
                    super::cpu_secs(a_pid) - cpu0,
                    wall.as_secs_f64(),
                    batches(&http, &a_base, &admin).await - b0
                );
            })
        });
    }

    // The standby joins over the LAN.
    let (code, fingerprint) = super::standby_code(&a_dir);
    venue.join("b", &b_dir, "a", &code, &fingerprint);
    boxes.b = Some(venue.serve("b", &b_dir, &[], "error"));
    let pids = (boxes.a.id(), boxes.b.as_ref().map_or(0, |b| b.id()));
    {
        let (a_base, door, admin, s) =
            (a_base.clone(), door.clone(), admin.clone(), slices.clone());
        in_c(&venue, move |rt| {
            rt.block_on(async {
                let http = reqwest::Client::new();
                until(&http, &a_base, &admin, |v| v["link"]["in_sync"] == true).await;
                let (lat, wall) =
                    checkin_run(&a_base, &door, &s[2][..1_000], GATES, 1, Duration::from_secs(20), Duration::ZERO).await;
                report("over veth, with standby, concurrency 1", lat, wall);
                // The lag, sampled while the door runs at concurrency 8.
                let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let sampler = {
                    let (http, a_base, admin, stop) = (http.clone(), a_base.clone(), admin.clone(), stop.clone());
                    tokio::spawn(async move {
                        let (mut writes, mut ms, mut out_of_sync) = (Vec::new(), Vec::new(), 0);
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            let v = pair_view(&http, &a_base, &admin).await;
                            writes.push(v["link"]["lag_writes"].as_i64().unwrap_or(0));
                            ms.push(v["link"]["lag_ms"].as_i64().unwrap_or(0));
                            out_of_sync += usize::from(v["link"]["in_sync"] != true);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        (writes, ms, out_of_sync)
                    })
                };
                let cpu0 = (super::cpu_secs(pids.0), super::cpu_secs(pids.1));
                let b0 = batches(&http, &a_base, &admin).await;
                let (lat, wall) =
                    checkin_run(&a_base, &door, &s[3], GATES, 8, Duration::from_secs(20), Duration::ZERO).await;
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                report("over veth, with standby, concurrency 8", lat, wall);
                println!(
                    "  CPU in that run: primary {:.2} s, standby {:.2} s, over {:.2} s of wall time (2 cores, shared with this client); {} transactions at the primary",
                    super::cpu_secs(pids.0) - cpu0.0,
                    super::cpu_secs(pids.1) - cpu0.1,
                    wall.as_secs_f64(),
                    batches(&http, &a_base, &admin).await - b0
                );
                let (mut writes, mut ms, out) = sampler.await.unwrap();
                writes.sort();
                ms.sort();
                let pick = |v: &Vec<i64>, p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
                println!(
                    "replication lag under that load ({} samples): writes p50 {} p99 {} max {}; oldest held answer p50 {} ms p99 {} ms max {} ms; out of sync in {out} samples",
                    writes.len(), pick(&writes, 0.5), pick(&writes, 0.99), writes.last().unwrap(),
                    pick(&ms, 0.5), pick(&ms, 0.99), ms.last().unwrap()
                );
            })
        });
    }

    // Apart: the standby's cable out while the door admits 10 minutes'
    // worth of a busy door (6,000 scans, 10/s, sent here at full speed),
    // then back: how fast the standby catches up.
    venue.cable("b", false);
    {
        let (a_base, door, admin, s, venue2) =
            (a_base.clone(), door.clone(), admin.clone(), slices.clone(), venue.clone());
        in_c(&venue, move |rt| {
            rt.block_on(async {
                let http = reqwest::Client::new();
                // The first answers after the cut wait out the bound (1 s);
                // then the primary is alone and the door runs without it.
                let t = Instant::now();
                let (lat, _) = checkin_run(&a_base, &door, &s[5][1_000..1_008], GATES, 8, Duration::from_secs(20), Duration::ZERO).await;
                println!(
                    "standby cut off: the first 8 answers took up to {:.0} ms (the bound is 1 s); alone after {:.2} s",
                    lat.iter().max().unwrap().as_secs_f64() * 1000.0,
                    t.elapsed().as_secs_f64()
                );
                until(&http, &a_base, &admin, |v| v["link"]["in_sync"] == false).await;
                let apart: Vec<String> = s[4].iter().chain(&s[5][..1_000]).cloned().collect();
                let (lat, wall) = checkin_run(&a_base, &door, &apart, GATES, 8, Duration::from_secs(120), Duration::ZERO).await;
                report("standby cut off, the primary alone (log still recorded), c8", lat, wall);
                let behind = pair_view(&http, &a_base, &admin).await;
                venue2.cable("b", true);
                let t = Instant::now();
                until(&http, &a_base, &admin, |v| v["link"]["in_sync"] == true && v["link"]["lag_writes"] == 0).await;
                let took = t.elapsed();
                let seq = behind["seq"].as_i64().unwrap_or(0);
                println!(
                    "catch-up after 6,008 check-ins apart: in sync {:.2} s after the cable went back ({:.0} check-ins/s; primary log at seq {seq}, snapshots so far {})",
                    took.as_secs_f64(), 6_000.0 / took.as_secs_f64(), behind["link"]["snapshots"]
                );
            })
        });
    }

    // Capture files: 20 phone photos (12 MP JPEG with EXIF, ~3 MB each,
    // distinct) uploaded to the primary; the standby copies them under its
    // cap (4 MiB/s by default), each checked by its SHA-256.
    {
        let (a_base, capture) = (a_base.clone(), capture.clone());
        let (bytes, took) = in_c(&venue, move |rt| {
            rt.block_on(async {
                let http = reqwest::Client::new();
                let photos: Vec<Vec<u8>> = (0..20u32)
                    .map(|i| {
                        let (jpeg, thumb) = phone_photo(9_000 + i);
                        with_exif(&jpeg, Some(&thumb), 9_000 + i as usize)
                    })
                    .collect();
                let bytes: usize = photos.iter().map(Vec::len).sum();
                let t = Instant::now();
                for p in &photos {
                    let loc = tus_create_for(&http, &a_base, &capture, p.len(), "cr-mara").await;
                    tus_patch(&http, &a_base, &capture, &loc, 0, p.clone()).await;
                }
                let uploaded = t.elapsed();
                (bytes, uploaded)
            })
        });
        println!(
            "20 phone photos ({:.1} MiB) uploaded to the primary in {:.1} s",
            bytes as f64 / 1048576.0,
            took.as_secs_f64()
        );
    }
    {
        let (b_base, admin) = (b_base.clone(), admin.clone());
        in_c(&venue, move |rt| {
            rt.block_on(async {
                let http = reqwest::Client::new();
                let t = Instant::now();
                until(&http, &b_base, &admin, |v| v["link"]["files_copied"].as_u64() >= Some(20) && v["link"]["files_left"] == 0).await;
                let v = pair_view(&http, &b_base, &admin).await;
                let mib = v["link"]["file_bytes_copied"].as_f64().unwrap_or(0.0) / 1048576.0;
                println!(
                    "capture copy to the standby: {} files, {mib:.1} MiB (with thumbnails) in {:.1} s after the uploads: {:.2} MiB/s (cap 4 MiB/s)",
                    v["link"]["files_copied"], t.elapsed().as_secs_f64(), mib / t.elapsed().as_secs_f64()
                );
            })
        });
    }

    // The primary dies; the standby is promoted on its console; the door
    // retries on the standby until its first admission.
    let fresh = slices[6][..1].to_vec();
    let _ = boxes.a.kill();
    let _ = boxes.a.wait();
    let killed = Instant::now();
    let t = Instant::now();
    super::promote(&b_dir);
    let promote_took = t.elapsed();
    {
        let (b_base, door) = (b_base.clone(), door.clone());
        in_c(&venue, move |rt| {
            rt.block_on(async {
                let http =
                    reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
                let body =
                    serde_json::json!({"code": fresh[0], "gate": "main", "nonce": "after-kill"});
                loop {
                    let r = http
                        .post(format!("{b_base}/api/v1/checkins"))
                        .bearer_auth(&door)
                        .json(&body)
                        .send()
                        .await;
                    if let Ok(r) = r {
                        if r.status() == 200 {
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        });
    }
    println!(
        "takeover: SIGKILL of the primary to the first admission on the standby {:.0} ms (`venuebox promote` took {:.0} ms of it; a person's reaction time not included)",
        killed.elapsed().as_secs_f64() * 1000.0,
        promote_took.as_secs_f64() * 1000.0
    );
}
