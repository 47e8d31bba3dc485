//! Two boxes on loopback, as an operator pairs them: the first box prints a
//! standby code (`venuebox pair --standby`), the second joins with it
//! (`venuebox join`, pinned to the printed CA fingerprint) and follows.
//! Under check-in load from this process the primary is killed with
//! SIGKILL, the standby promoted with `venuebox promote`, and the door
//! goes on there: every acknowledged check-in is on the new primary, no
//! ticket admitted twice. The old primary, restarted, fences itself.
//! A frozen standby (SIGSTOP) holds no answer longer than the bound.

use crate::common;
use common::binary::{self, Running};
use common::standby::{buyers, check, free_port, join, promote, standby_code, tickets, Load};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

async fn get(base: &str, path: &str, token: &str) -> Value {
    binary::call(reqwest::Method::GET, base, path, token, None).await.1
}

/// Waits until `f` holds of the primary's pair view.
async fn wait_for(base: &str, token: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = get(base, "/api/v1/standby", token).await;
        if f(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Pair {
    _dirs: tempfile::TempDir,
    a_dir: std::path::PathBuf,
    b_dir: std::path::PathBuf,
    a: Running,
    a_base: String,
    b: Running,
    b_base: String,
    b_link: u16,
    admin: String,
}

/// A primary with the demo event and a standby joined to it, in sync.
async fn pair() -> Pair {
    pair_with(&[], &[]).await
}

/// `pair` with both boxes started with `args` and `env` added (the same
/// package configuration on both, as an operator installs it).
async fn pair_with(args: &[&str], env: &[(&str, &str)]) -> Pair {
    let dirs = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dirs.path().join("a"), dirs.path().join("b"));
    let (a, a_addrs) =
        binary::serve_lan_with(&a_dir, "127.0.0.1:0", &[&["--demo"], args].concat(), env);
    let (code, fingerprint) = standby_code(&a_dir);
    // A wrong fingerprint: the new box talks to nothing.
    let wrong = join(&b_dir, &a_addrs.https, &code, &"ab".repeat(32), 1);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("fingerprint"), "{wrong:?}");
    // The primary's pretix token (a 0600 file in its data directory)
    // travels with the identity.
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(a_dir.join("pretix-token"))
            .unwrap();
        std::io::Write::write_all(&mut f, b"pretix-token-of-the-primary\n").unwrap();
    }
    let b_link = free_port();
    let out = join(&b_dir, &a_addrs.https, &code, &fingerprint, b_link);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = b_dir.join("pretix-token");
    assert_eq!(std::fs::read_to_string(&token).unwrap(), "pretix-token-of-the-primary\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&token).unwrap().permissions().mode() & 0o777, 0o600);
    // The code worked once.
    let again = join(&dirs.path().join("c"), &a_addrs.https, &code, &fingerprint, 1);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("unknown, used or expired"),
        "{again:?}"
    );
    let link = format!("127.0.0.1:{b_link}");
    let (b, b_addrs) = binary::serve_lan_with(
        &b_dir,
        "127.0.0.1:0",
        &[&["--link-listen", &link], args].concat(),
        env,
    );
    let admin = binary::token(&a_dir, "admin");
    let a_base = format!("http://{}", a_addrs.plain);
    wait_for(&a_base, &admin, "the standby never came in sync", |v| v["link"]["in_sync"] == true)
        .await;
    Pair {
        _dirs: dirs,
        a_dir,
        b_dir,
        a: Running(a),
        a_base,
        b: Running(b),
        b_base: format!("http://{}", b_addrs.plain),
        b_link,
        admin,
    }
}

/// A door token made on the primary's console (`venuebox token`), once
/// the standby has it too (a command's write reaches the link within
/// the shipper's 100 ms look at the log).
async fn door_token(p: &Pair) -> String {
    let door = binary::token(&p.a_dir, "door");
    let deadline = Instant::now() + Duration::from_secs(10);
    while binary::call(reqwest::Method::GET, &p.b_base, "/api/v1/session", &door, None).await.0
        != 200
    {
        assert!(Instant::now() < deadline, "the standby never had the token");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    door
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_the_primary_under_load_promote_the_standby_and_nothing_acknowledged_is_lost() {
    let mut p = pair().await;
    let door = door_token(&p).await;
    let all = tickets(&p.a_dir);
    // The standby has the event and the token: it answers reads for it.
    let health: Value =
        reqwest::get(format!("{}/healthz", p.b_base)).await.unwrap().json().await.unwrap();
    assert_eq!((health["role"].as_str(), health["epoch"].as_i64()), (Some("standby"), Some(1)));
    assert!(health["event"].is_string(), "{health}");
    let (status, refused) = binary::call(
        reqwest::Method::POST,
        &p.b_base,
        "/api/v1/checkins",
        &door,
        Some(json!({"code": all[0].1, "gate": "main", "nonce": "on-standby"})),
    )
    .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (503, Some("not_primary")),
        "{refused}"
    );

    // Load on the primary: 8 door clients, each ticket scanned twice, and
    // 4 merch clients selling and holding until the drop is sold out.
    let merch = binary::token(&p.a_dir, "merch");
    let first: Vec<_> = all[..600].to_vec();
    let mut load = Load::new(&p.a_base);
    load.door(&door, &first, 8);
    load.merch(&merch, &buyers(&p.a_dir), 4);
    // Kill the primary mid-load.
    while load.answered() < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    p.a.0.kill().unwrap();
    let _ = p.a.0.wait();
    let before_kill = load.answered();
    let killed = Instant::now();
    promote(&p.b_dir);
    load.point_at(&p.b_base);
    let acked = load.finish().await;
    eprintln!(
        "killed after {before_kill} answers; promoted and all answered {:?} later",
        killed.elapsed()
    );
    assert!(acked.iter().any(|a| a.kind == "sale") && acked.iter().any(|a| a.kind == "hold"));

    // The checker: every acknowledged answer is on the new primary, no
    // ticket admitted twice, no unit oversold, no hold lost.
    check(&p.b_base, &door, &merch, &acked).await;
    let admitted: HashSet<_> = acked
        .iter()
        .filter(|a| a.kind == "checkin" && a.answer == "admit")
        .map(|a| &a.key)
        .collect();
    assert_eq!(admitted.len(), first.len(), "every ticket admitted once");
    let stats = get(&p.b_base, "/api/v1/stats", &door).await;
    assert_eq!(stats["admitted"].as_u64(), Some(first.len() as u64), "{stats}");

    // The old primary comes back on its address: it meets the newer epoch
    // and fences itself, then follows the new primary.
    let a_link_port = {
        let st = Command::new(binary::BIN)
            .args(["standby", "status", "--data-dir"])
            .arg(&p.a_dir)
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&st.stdout).unwrap();
        assert_eq!(v["role"], "primary", "{v}");
        v["peer"].as_str().unwrap().to_string()
    };
    assert_eq!(a_link_port, format!("127.0.0.1:{}", p.b_link));
    let (a, a_addrs) = binary::serve_lan(&p.a_dir, &[]);
    let _a = Running(a);
    let a_base = format!("http://{}", a_addrs.plain);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h: Value =
            reqwest::get(format!("{a_base}/healthz")).await.unwrap().json().await.unwrap();
        if h["role"] == "standby" && h["epoch"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the old primary was not fenced: {h}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, v) = binary::call(
        reqwest::Method::POST,
        &a_base,
        "/api/v1/checkins",
        &door,
        Some(json!({"code": all[900].1, "gate": "main", "nonce": "old-primary"})),
    )
    .await;
    assert_eq!((status, v["error"]["code"].as_str()), (503, Some("not_primary")), "{v}");
    let admin_b = p.admin.clone();
    wait_for(&p.b_base, &admin_b, "the old primary never followed", |v| {
        v["link"]["in_sync"] == true
    })
    .await;
    let stats_a = get(&a_base, "/api/v1/stats", &door).await;
    assert_eq!(
        stats_a["admitted"], stats["admitted"],
        "the old primary holds the new primary's rows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_standby_holds_no_answer_past_the_bound_and_catches_up_when_it_thaws() {
    let p = pair().await;
    let door = door_token(&p).await;
    let all = tickets(&p.a_dir);
    let pid = p.b.0.id().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    // Answers still come (after at most the bound), and the box says it is alone.
    for (i, (_, code)) in all[..20].iter().enumerate() {
        let body = json!({"code": code, "gate": "main", "nonce": format!("frozen-{i}")});
        let (status, v) =
            binary::call(reqwest::Method::POST, &p.a_base, "/api/v1/checkins", &door, Some(body))
                .await;
        assert_eq!((status, v["verdict"].as_str()), (200, Some("admit")), "{v}");
    }
    let v = wait_for(&p.a_base, &p.admin, "not alone", |v| v["link"]["in_sync"] == false).await;
    assert!(v["link"]["alone_since_ms"].is_i64(), "{v}");
    let metrics =
        reqwest::get(format!("{}/metrics", p.a_base)).await.unwrap().text().await.unwrap();
    for line in ["venuebox_pair_primary 1", "venuebox_pair_epoch 1", "venuebox_pair_in_sync 0"] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
    assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    wait_for(&p.a_base, &p.admin, "the standby never caught up", |v| v["link"]["in_sync"] == true)
        .await;
    let stats = get(&p.b_base, "/api/v1/stats", &door).await;
    assert_eq!(stats["admitted"].as_u64(), Some(20), "{stats}");
}

/// A tus upload to the primary, as a creator's phone makes it.
async fn upload_photo(base: &str, token: &str, photo: &[u8]) {
    let http = reqwest::Client::new();
    let status = common::tus_upload(&http, base, token, "IMG_0001.jpg", "image/jpeg", photo).await;
    assert_eq!(status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_uploaded_to_the_primary_are_copied_to_the_standby_and_checked() {
    let p = pair().await;
    let capture = binary::token(&p.a_dir, "capture");
    let photos: Vec<Vec<u8>> = (1..=3).map(|s| common::jpeg(1600, 1200, s)).collect();
    // A partial copy left by an earlier, interrupted attempt is resumed
    // only if it is right: here it is garbage, and the SHA-256 check
    // throws it away and copies again. A stale part of a file nobody
    // wants is swept away.
    let first = common::sha256_hex(&photos[0]);
    let parts = p.b_dir.join("replication/files");
    std::fs::create_dir_all(&parts).unwrap();
    std::fs::write(parts.join(format!("{first}.Capture.part")), b"not the photo").unwrap();
    std::fs::write(parts.join(format!("{}.Capture.part", "0".repeat(64))), b"stale").unwrap();
    for photo in &photos {
        upload_photo(&p.a_base, &capture, photo).await;
    }

    let v = wait_for(&p.b_base, &p.admin, "the captures were not copied", |v| {
        v["link"]["files_copied"].as_u64() >= Some(3) && v["link"]["files_left"] == 0
    })
    .await;
    assert!(v["link"]["file_bytes_copied"].as_u64().unwrap() >= 3 * 100_000, "{v}");
    for photo in &photos {
        let sha = common::sha256_hex(photo);
        let copied = std::fs::read(p.b_dir.join("captures").join(&sha[..2]).join(&sha[2..]))
            .unwrap_or_else(|e| panic!("capture {sha} not on the standby: {e}"));
        assert_eq!(&copied, photo, "capture {sha} differs");
        // The primary makes a thumbnail (after the upload, in the
        // background); the standby gets it too, at a later round.
        let thumb = p.b_dir.join("thumbs").join(&sha[..2]).join(format!("{}.jpg", &sha[2..]));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !thumb.exists() {
            assert!(Instant::now() < deadline, "thumbnail of {sha} not copied");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(std::fs::read_dir(&parts).unwrap().count(), 0, "part files left behind");
}

fn signal(r: &Running, sig: &str) {
    let pid = r.0.id().to_string();
    assert!(Command::new("kill").args([sig, &pid]).status().unwrap().success());
}

async fn health(base: &str, epoch_header: Option<&str>) -> Value {
    let mut req = reqwest::Client::new().get(format!("{base}/healthz"));
    if let Some(h) = epoch_header {
        req = req.header("x-venuebox-epoch", h);
    }
    req.send().await.unwrap().json().await.unwrap()
}

async fn check_in(base: &str, door: &str, code: &str, nonce: &str) -> (u16, Value) {
    let body = json!({"code": code, "gate": "main", "nonce": nonce});
    binary::call(reqwest::Method::POST, base, "/api/v1/checkins", door, Some(body)).await
}

/// Two primaries: the standby is promoted while the primary is cut off
/// (frozen), the primary then comes back while the new one is out of its
/// reach and admits alone. The first phone that has seen the new primary
/// (its signed epoch in `X-Venuebox-Epoch`) fences it; a number without
/// the pair's signature does not. When the boxes meet, the old primary
/// reports what it took alone: a ticket nobody else admitted is merged, a
/// ticket admitted on both sides is listed with both records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promoted_during_a_cut_the_old_primary_is_fenced_by_the_first_phone_and_reports() {
    let p = pair().await;
    let door = door_token(&p).await;
    let all = tickets(&p.a_dir);
    assert_eq!(check_in(&p.a_base, &door, &all[0].1, "joined-0").await.1["verdict"], "admit");

    signal(&p.a, "-STOP");
    promote(&p.b_dir);
    assert_eq!(check_in(&p.b_base, &door, &all[1].1, "b-1").await.1["verdict"], "admit");
    assert_eq!(check_in(&p.b_base, &door, &all[2].1, "b-2").await.1["verdict"], "admit");
    let b_health = health(&p.b_base, None).await;
    assert_eq!((b_health["role"].as_str(), b_health["epoch"].as_i64()), (Some("primary"), Some(2)));
    let proof = b_health["epoch_proof"].as_str().unwrap().to_string();

    // The cut: the new primary is out of reach, the old one wakes up.
    signal(&p.b, "-STOP");
    signal(&p.a, "-CONT");
    let (status, v) = check_in(&p.a_base, &door, &all[2].1, "a-2").await;
    assert_eq!((status, v["verdict"].as_str()), (200, Some("admit")), "alone, it admits: {v}");
    assert_eq!(check_in(&p.a_base, &door, &all[3].1, "a-3").await.1["verdict"], "admit");

    // A guest's numbers fence nothing.
    let sig = proof.split_once('.').unwrap().1;
    for forged in [format!("3.{sig}"), "9.AAAA".to_string(), "nonsense".into()] {
        let h = health(&p.a_base, Some(&forged)).await;
        assert_eq!(
            (h["role"].as_str(), h["epoch"].as_i64()),
            (Some("primary"), Some(1)),
            "{forged}"
        );
    }
    // A phone that has seen the new primary: the old one stops at once.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/checkins", p.a_base))
        .bearer_auth(&door)
        .header("x-venuebox-epoch", &proof)
        .json(&json!({"code": all[4].1, "gate": "main", "nonce": "a-4"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_primary", "{v}");
    let h = health(&p.a_base, None).await;
    assert_eq!((h["role"].as_str(), h["epoch"].as_i64()), (Some("standby"), Some(2)), "{h}");
    assert_eq!(check_in(&p.a_base, &door, &all[5].1, "a-5").await.0, 503, "fenced stays fenced");

    // Healed: the old primary reports and follows.
    signal(&p.b, "-CONT");
    let v = wait_for(&p.b_base, &p.admin, "the old primary never reported", |v| {
        v["takeover_report"].as_array().is_some_and(|r| r.len() >= 2)
    })
    .await;
    let report = v["takeover_report"].as_array().unwrap();
    let outcome = |nonce: &str| {
        report
            .iter()
            .find(|e| e["reference"] == nonce)
            .map(|e| {
                assert_eq!(e["old_epoch"], 1, "taken under the old epoch: {e}");
                e["outcome"].as_str().unwrap().to_string()
            })
            .unwrap_or_else(|| panic!("{nonce} not in the report: {v}"))
    };
    assert_eq!(outcome("a-3"), "merged");
    assert_eq!(outcome("a-2"), "double_admission");
    assert!(report.iter().all(|e| e["reference"] != "a-4" && e["reference"] != "a-5"), "{v}");
    let stats = get(&p.b_base, "/api/v1/stats", &door).await;
    assert_eq!(stats["admitted"].as_u64(), Some(4), "tickets 0 to 3, once each: {stats}");
    wait_for(&p.b_base, &p.admin, "the old primary never followed", |v| {
        v["link"]["in_sync"] == true
    })
    .await;
    let stats_a = get(&p.a_base, "/api/v1/stats", &door).await;
    assert_eq!(stats_a["admitted"], stats["admitted"], "{stats_a}");
}

/// Only the primary syncs, and the new one goes on where the old one
/// stopped: killed mid-sync under door load, the standby promoted, the
/// bucket holds every outbox seq exactly once, gap-free, in one `box=`
/// partition, with every acknowledged admission in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_takeover_every_seq_lands_in_the_bucket_exactly_once() {
    use common::s3::{landed_events, Moto, PREFIX};
    let moto = Moto::shared();
    let bucket = moto.new_bucket().await;
    let target = format!("s3://{bucket}/{PREFIX}");
    let endpoint = moto.endpoint();
    let args = ["--sync-segment-secs", "1", "--sync", &target, "--sync-endpoint", &endpoint];
    let env = [("AWS_ACCESS_KEY_ID", "AKIDTEST"), ("AWS_SECRET_ACCESS_KEY", "takeover-secret")];
    let mut p = pair_with(&args, &env).await;
    let door = door_token(&p).await;
    let all = tickets(&p.a_dir);
    let mut load = Load::new(&p.a_base);
    load.door(&door, &all[..500], 4);
    // Kill the primary once it has synced some segments and is mid-load.
    let deadline = Instant::now() + Duration::from_secs(60);
    while load.answered() < 300 || moto.list(&bucket, &format!("{PREFIX}/events/")).await.len() < 2
    {
        assert!(Instant::now() < deadline, "the primary never synced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.a.0.kill().unwrap();
    let _ = p.a.0.wait();
    promote(&p.b_dir);
    load.point_at(&p.b_base);
    let acked = load.finish().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let s = get(&p.b_base, "/api/v1/sync", &p.admin).await;
        if s["events_pending"] == 0 && s["last_seq"].as_i64() > Some(0) {
            break s;
        }
        assert!(Instant::now() < deadline, "the new primary never caught up: {s:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let events = landed_events(moto, &bucket).await;
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    let last = status["last_seq"].as_i64().unwrap();
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>(), "every seq once, gap-free, in order");
    let box_id = events[0]["box_id"].clone();
    assert!(events.iter().all(|e| e["box_id"] == box_id), "one box= partition");
    let landed: String = events.iter().map(|e| e["payload"].to_string()).collect();
    for a in acked.iter().filter(|a| a.answer == "admit") {
        assert!(
            landed.contains(&format!("\"{}\"", a.nonce)),
            "admission {} not in the bucket",
            a.nonce
        );
    }
}
