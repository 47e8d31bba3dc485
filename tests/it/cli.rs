//! The organiser's and operator's command line, end to end with the real
//! binary: make a key, sign a manifest, import it, mint tickets whose QR
//! images decode to their codes, get a token, scan at the running box, and
//! load a newer manifest from a second process while the box runs.

use crate::common;

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};

use common::binary::BIN;

fn vb(args: &[&str], dir: &Path) -> Output {
    Command::new(BIN).args(args).current_dir(dir).env("RUST_LOG", "warn").output().unwrap()
}

fn ok(args: &[&str], dir: &Path) -> String {
    let out = vb(args, dir);
    assert!(
        out.status.success(),
        "venuebox {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn write_manifest(dir: &Path, public_key: &str, pin_hash: &str, version: u64, revoked: &[&str]) {
    let m = json!({
        "schema": 1, "version": version,
        "event": {"id": "evt-cli", "name": "CLI night", "timezone": "UTC", "currency": "GBP",
                  "doors_at": "2026-11-27T18:00:00Z", "starts_at": "2026-11-27T19:00:00Z", "ends_at": "2026-11-28T01:00:00Z"},
        "organiser_keys": [{"public_key": public_key}],
        "tiers": [{"id": "ga", "name": "General", "price_minor": 1500, "capacity": 100}],
        "gates": [{"id": "front", "name": "Front"}],
        "revoked_codes": revoked,
        "staff": [{"name": "Jo", "role": "door", "pin_hash": pin_hash}],
    });
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

fn decode_qr(path: &Path) -> String {
    common::decode_qr_png(&std::fs::read(path).unwrap())
}

#[tokio::test]
async fn organiser_workflow_from_keygen_to_a_scan_at_the_running_box() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let data = d.join("data");
    let data_s = data.to_str().unwrap();

    ok(&["keygen", "--out", "org.key"], d);
    let refused = vb(&["keygen", "--out", "org.key"], d);
    assert!(!refused.status.success(), "keygen never overwrites a key");
    let key: Value = serde_json::from_slice(&std::fs::read(d.join("org.key")).unwrap()).unwrap();
    let public_key = key["public_key"].as_str().unwrap();
    let pin_hash = ok(&["staff", "hash-pin", "1234"], d).trim().to_string();
    assert!(pin_hash.starts_with("$argon2id$"));

    write_manifest(d, public_key, &pin_hash, 1, &[]);
    let unsigned = vb(&["manifest", "import", "manifest.json", "--data-dir", data_s], d);
    assert!(!unsigned.status.success());
    assert!(String::from_utf8_lossy(&unsigned.stderr).contains("venuebox manifest sign"));
    ok(&["manifest", "sign", "manifest.json", "--key", "org.key"], d);
    assert!(ok(&["manifest", "import", "manifest.json", "--data-dir", data_s], d)
        .contains("imported evt-cli version 1"));

    ok(
        &[
            "tickets", "issue", "--key", "org.key", "--event", "evt-cli", "--tier", "ga",
            "--count", "3", "--out", "tix",
        ],
        d,
    );
    let csv = std::fs::read_to_string(d.join("tix/tickets.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(csv.lines().next(), Some("ticket_id,tier,code"));
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert_eq!(
            decode_qr(&d.join(format!("tix/qr/{}.png", r[0]))),
            r[2],
            "QR image carries the code"
        );
    }

    let (mut child, addr) = common::binary::serve(Path::new(data_s), &[], &[]);
    let http = reqwest::Client::new();
    let token = ok(&["token", "--role", "door", "--data-dir", data_s], d).trim().to_string();
    let scan = |code: &str, nonce: &str| {
        http.post(format!("http://{addr}/api/v1/checkins"))
            .bearer_auth(&token)
            .json(&json!({"code": code, "gate": "front", "nonce": nonce}))
            .send()
    };
    let v: Value = scan(rows[0][2], "cli-1").await.unwrap().json().await.unwrap();
    assert_eq!(v["verdict"], "admit", "{v}");

    // A newer manifest, imported by a second process while the box runs, revokes T-2.
    write_manifest(d, public_key, &pin_hash, 2, &[rows[1][2]]);
    ok(&["manifest", "sign", "manifest.json", "--key", "org.key"], d);
    ok(&["manifest", "import", "manifest.json", "--data-dir", data_s], d);
    let v: Value = scan(rows[1][2], "cli-2").await.unwrap().json().await.unwrap();
    assert_eq!(v["reason"], "revoked", "{v}");
    let v: Value = scan(rows[2][2], "cli-3").await.unwrap().json().await.unwrap();
    assert_eq!(v["verdict"], "admit", "{v}");

    // A staff phone is paired with a code from `venuebox pair`, then Jo
    // signs in on it with the PIN from the manifest.
    let unpaired = http
        .post(format!("http://{addr}/api/v1/session"))
        .json(&json!({"pin": "1234", "name": "Jo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unpaired.status(), 401, "no PIN signs in from an unpaired device");
    let code = ok(&["pair", "--code-only", "--data-dir", data_s], d);
    let post = |path: &str, body: Value| {
        let r = http.post(format!("http://{addr}{path}")).json(&body).send();
        async move { r.await.unwrap().json::<Value>().await.unwrap() }
    };
    let paired =
        post("/api/v1/paired-devices", json!({"code": code.trim(), "name": "Jo's phone"})).await;
    let device = paired["credential"].as_str().unwrap();
    let s = post("/api/v1/session", json!({"pin": "1234", "name": "Jo", "device": device})).await;
    assert_eq!(s["role"], "door", "{s}");

    // A tampered manifest is refused and the loaded one stays.
    let text = std::fs::read_to_string(d.join("manifest.json"))
        .unwrap()
        .replace("\"version\": 2", "\"version\": 3");
    std::fs::write(d.join("manifest.json"), text).unwrap();
    let out = vb(&["manifest", "import", "manifest.json", "--data-dir", data_s], d);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signature"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let h: Value =
        http.get(format!("http://{addr}/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(h["manifest_version"], 2);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn demo_writes_tickets_qr_images_and_a_readme() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, _) = common::binary::serve(tmp.path(), &["--demo"], &[]);
    child.kill().unwrap();
    child.wait().unwrap();
    let demo = tmp.path().join("demo");
    let csv = std::fs::read_to_string(demo.join("tickets.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 1000 + 100);
    assert_eq!(csv.lines().filter(|l| l.contains(",VB1:")).count(), 1000);
    assert_eq!(std::fs::read_dir(demo.join("qr")).unwrap().count(), 1100);
    let first = csv.lines().nth(1).unwrap().split(',').collect::<Vec<_>>();
    assert_eq!(decode_qr(&demo.join(format!("qr/{}.png", first[0]))), first[2]);
    let readme = std::fs::read_to_string(demo.join("README.txt")).unwrap();
    assert!(readme.contains("1111") && readme.contains("curl"));
}

/// Two boxes on one data directory would be two writers with one box id
/// and two sync loops: the second `serve` is refused and says why.
#[test]
fn a_second_serve_on_the_same_data_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut first, _addr) = common::binary::serve(tmp.path(), &[], &[]);
    let out = std::process::Command::new(common::binary::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--https-listen", "off", "--data-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let _ = first.kill();
    let _ = first.wait();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already serving") && err.contains("--data-dir"), "{err}");
}

/// A lock another process lets go of within moments (a killed box's
/// decoder between fork and exec) does not stop a restart: `serve` waits
/// for it, briefly.
#[test]
fn serve_waits_a_moment_for_a_lock_about_to_be_released() {
    use std::os::fd::AsRawFd;
    let tmp = tempfile::tempdir().unwrap();
    let held = std::fs::File::create(tmp.path().join("serve.lock")).unwrap();
    // SAFETY: flock on a file this test owns.
    assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(700));
        drop(held);
    });
    let (mut child, _addr) = common::binary::serve(tmp.path(), &[], &[]);
    release.join().unwrap();
    let _ = child.kill();
    let _ = child.wait();
}

/// A port in use is said before anything is opened, naming the flag and
/// the likely cause.
#[test]
fn a_port_in_use_names_its_flag_before_opening_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = std::process::Command::new(common::binary::BIN)
        .args(["serve", "--listen", &addr, "--https-listen", "off", "--data-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--listen") && err.contains("another venuebox"), "{err}");
    assert!(!tmp.path().join("venuebox.db").exists(), "the database was not opened");
}

/// A box whose clock an admin set two days ahead of its system clock:
/// `venuebox token` and `venuebox pair` time what they make on the box's
/// clock, as the running box would (before: on the system clock, so the
/// token expired two days early and the pairing code was dead at once).
#[tokio::test]
async fn token_and_pair_follow_the_boxs_clock_offset() {
    use venuebox::domain::role::{Actor, Role};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let offset = 2 * 86_400_000;
    {
        let config = venuebox::server::Config::new(&dir);
        let st = venuebox::server::open(&config, venuebox::clock::Clock::system()).unwrap();
        let admin = Actor { name: "Alex".into(), role: Role::Admin };
        let system = st.clock.system_now();
        st.store.set_clock_offset(offset, 0, system, admin, system + offset).await.unwrap();
    }
    let d = dir.to_str().unwrap();
    let token = ok(&["token", "--role", "door", "--hours", "1", "--data-dir", d], tmp.path());
    let code = ok(&["pair", "--code-only", "--data-dir", d], tmp.path());
    let config = venuebox::server::Config::new(&dir);
    let st = venuebox::server::open(&config, venuebox::clock::Clock::system()).unwrap();
    let box_now = st.clock.system_now() + offset;
    let session = st.store.session(token.trim(), box_now).await.unwrap().expect("a session");
    let left = session.expires_at - box_now;
    assert!((3_500_000..=3_600_000).contains(&left), "an hour on the box's clock, {left} ms left");
    // The code pairs on the box's clock (it would have expired two days ago).
    let paired = st.store.pair_device(code.trim(), "phone".into(), None, box_now).await.unwrap();
    assert!(paired.is_some(), "the code is valid at the box's time");
}

/// Started from a shell whose umask lets everyone read new files (022),
/// the box still keeps its data directory and every file in it to its own
/// user (before: venuebox.db, captures and the demo were world-readable).
#[test]
fn the_data_directory_is_private_however_the_box_is_started() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--demo", "--listen", "127.0.0.1:0", "--https-listen", "off", "--data-dir"])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped());
    // SAFETY: umask is async-signal-safe; nothing else runs in the child yet.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    let mut child = common::binary::Running(cmd.spawn().unwrap());
    common::binary::listening(&mut child.0);
    let mut open = Vec::new();
    let mut seen = 0;
    let mut stack = vec![dir.clone()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        seen += 1;
        if meta.permissions().mode() & 0o077 != 0 {
            open.push(format!("{} {:o}", p.display(), meta.permissions().mode() & 0o777));
        }
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    assert!(seen > 10, "the demo, the database, the CA: {seen} entries");
    assert!(open.is_empty(), "readable by others: {open:?}");
}
