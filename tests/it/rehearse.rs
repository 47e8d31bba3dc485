//! `venuebox rehearse` with the real binary: on a demo box with simulated
//! devices and a bucket (moto) holding the published manifest, every check
//! is ready and the real database is unchanged; on a box whose clock is
//! behind its records, with a configured printer that is not plugged in
//! (no USB here) and an unreachable bucket, the report names each and the
//! exit status is 1.

use crate::common;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};

fn command(data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(common::binary::BIN);
    c.arg("rehearse")
        .args(args)
        .args(["--json", "--expected-capture-gb", "1", "--data-dir"])
        .arg(data)
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("AWS_REGION", "us-east-1");
    c
}

fn rehearse(data: &Path, args: &[&str]) -> (i32, Value) {
    report(command(data, args).output().unwrap())
}

/// Rehearses with `--simulate`, where the terminal is a scanner: waits for
/// the prompt with the scanner test code and types it, as a keyboard-mode
/// scanner would; also returns what rehearse told the operator.
fn rehearse_scanning(data: &Path, args: &[&str]) -> (i32, Value, String) {
    use std::io::{BufRead, Write};
    let mut child = command(data, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let told = std::thread::spawn(move || {
        let mut told = String::new();
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(code) = line.split("test slip): ").nth(1) {
                writeln!(stdin, "{}", code.trim()).unwrap();
            }
            told.push_str(&line);
            told.push('\n');
        }
        told
    });
    let out = child.wait_with_output().unwrap();
    let (code, v) = report(out);
    (code, v, told.join().unwrap())
}

fn report(out: std::process::Output) -> (i32, Value) {
    let text = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), v)
}

/// A demo data directory (the box started once, then stopped).
fn demo(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    let (mut child, _) = common::binary::serve(&data, &["--demo"], &[]);
    let _ = child.kill();
    let _ = child.wait();
    data
}

fn counts(data: &Path) -> (i64, i64, i64) {
    let db = rusqlite::Connection::open(data.join("venuebox.db")).unwrap();
    let one = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    (
        one("SELECT COUNT(*) FROM scans"),
        one("SELECT COUNT(*) FROM orders"),
        one("SELECT COUNT(*) FROM captures"),
    )
}

fn failing(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ready"] == false)
        .map(|c| format!("{}: {}", c["check"].as_str().unwrap(), c["said"].as_str().unwrap()))
        .collect()
}

#[tokio::test]
async fn a_ready_box_rehearses_on_a_scratch_copy() {
    let moto = common::s3::Moto::shared();
    let bucket = moto.new_bucket().await;
    let dir = tempfile::tempdir().unwrap();
    let data = demo(dir.path());
    let manifest = std::fs::read(data.join("demo/manifest.json")).unwrap();
    moto.put(&bucket, "venue/manifests/event=evt-demo/manifest.json", manifest).await;
    let before = counts(&data);
    let target = format!("s3://{bucket}/venue");
    let (code, report, told) = rehearse_scanning(
        &data,
        &[
            "--simulate",
            "--scan-wait-secs",
            "30",
            "--sync",
            &target,
            "--sync-endpoint",
            &moto.endpoint(),
        ],
    );
    assert_eq!(failing(&report), Vec::<String>::new(), "{report}\n{told}");
    assert_eq!((code, &report["ready"]), (0, &Value::Bool(true)), "{report}");
    let checks: Vec<&str> =
        report["checks"].as_array().unwrap().iter().map(|c| c["check"].as_str().unwrap()).collect();
    for c in [
        "clock",
        "disk",
        "sale",
        "check-in",
        "scholarship",
        "capture",
        "receipt",
        "printer",
        "scanner",
        "sync",
        "manifest",
        "previews",
    ] {
        assert!(checks.contains(&c), "{c} checked: {checks:?}");
    }
    // The operator was asked to scan, and the read went through the door's
    // path to a verdict; the printer printed the slip with both QR codes.
    assert!(told.contains("Scan the test code now with this terminal"), "{told}");
    let said = |check: &str| -> String {
        let found = report["checks"].as_array().unwrap().iter().filter(|c| c["check"] == check);
        found.map(|c| c["said"].as_str().unwrap().to_string()).collect::<Vec<_>>().join("\n")
    };
    assert!(said("scanner").contains("read the test code, gate main said admit"), "{report}");
    assert!(said("printer").contains("printed the test slip"), "{report}");
    assert_eq!(counts(&data), before, "the real database is not changed");
    assert!(moto.list(&bucket, "venue/rehearsal/").await.is_empty(), "the probe object is removed");
    let left: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("rehearsal-"))
        .collect();
    assert!(left.is_empty(), "the scratch copy is gone");
}

#[tokio::test]
async fn a_wrong_clock_an_unplugged_printer_and_an_unreachable_bucket_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = demo(dir.path());
    // Records from tomorrow: the clock is behind them.
    let db = rusqlite::Connection::open(data.join("venuebox.db")).unwrap();
    db.execute("UPDATE outbox SET created_at = created_at + 86400000", []).unwrap();
    drop(db);
    let devices = dir.path().join("devices.json");
    std::fs::write(
        &devices,
        r#"{"printers": [{"match": {"vid": "04b8"}, "station": "front", "width": 42}],
            "scanners": [{"match": {"vid": "05e0"}, "gate": "main"}]}"#,
    )
    .unwrap();
    let (code, report) = rehearse(
        &data,
        &[
            "--devices",
            devices.to_str().unwrap(),
            "--sync",
            "s3://nowhere/venue",
            "--sync-endpoint",
            "http://127.0.0.1:9",
        ],
    );
    assert_eq!(code, 1, "{report}");
    let fix = failing(&report).join("\n");
    assert!(fix.contains("clock: the box's clock says"), "{fix}");
    assert!(fix.contains("printer: no printer for station front is plugged in"), "{fix}");
    assert!(fix.contains("scanner: no scanner for gate main (entry) is plugged in"), "{fix}");
    assert!(fix.contains("sync: ") && fix.contains("cannot connect"), "{fix}");
    // What works still works on the scratch copy.
    let ok = |c: &str| {
        report["checks"].as_array().unwrap().iter().any(|x| x["check"] == c && x["ready"] == true)
    };
    assert!(ok("sale") && ok("check-in") && ok("capture"), "{report}");
}

/// The admin's rehearsal from the running box (`POST /api/v1/rehearsal`):
/// the same report, its flows on a scratch copy (the running box's figures
/// do not move), its devices as it holds them; admins only.
#[tokio::test]
async fn an_admin_rehearses_from_the_running_box() {
    let moto = common::s3::Moto::shared();
    let bucket = moto.new_bucket().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let target = format!("s3://{bucket}/venue");
    let env = [
        ("AWS_ACCESS_KEY_ID", "AKIDTEST"),
        ("AWS_SECRET_ACCESS_KEY", "test-secret"),
        ("AWS_REGION", "us-east-1"),
    ];
    let (child, addr) = common::binary::serve(
        &data,
        &["--demo", "--simulate", "--sync", &target, "--sync-endpoint", &moto.endpoint()],
        &env,
    );
    let _box = common::binary::Running(child);
    let base = format!("http://{addr}");
    let admin = common::binary::token(&data, "admin");
    let door = common::binary::token(&data, "door");
    let stats = |token: String| {
        let base = base.clone();
        async move {
            let (_, s) =
                common::binary::call(reqwest::Method::GET, &base, "/api/v1/stats", &token, None)
                    .await;
            s["admitted"].clone()
        }
    };
    let before = stats(admin.clone()).await;
    let body = Some(serde_json::json!({"expected_capture_gb": 1}));
    let (status, _) = common::binary::call(
        reqwest::Method::POST,
        &base,
        "/api/v1/rehearsal",
        &door,
        body.clone(),
    )
    .await;
    assert_eq!(status, 403, "door staff cannot rehearse");
    let (status, report) =
        common::binary::call(reqwest::Method::POST, &base, "/api/v1/rehearsal", &admin, body).await;
    assert_eq!(status, 200, "{report}");
    let ok = |c: &str| {
        report["checks"].as_array().unwrap().iter().any(|x| x["check"] == c && x["ready"] == true)
    };
    for c in ["clock", "disk", "sale", "check-in", "capture", "device", "devices", "sync"] {
        assert!(ok(c), "{c} ready: {report}");
    }
    // No manifest published in this bucket: named, so the box is not ready.
    assert_eq!(report["ready"], false, "{report}");
    let fix = failing(&report).join("\n");
    assert!(fix.contains("manifest: no manifest published"), "{fix}");
    assert_eq!(stats(admin.clone()).await, before, "the running box's figures do not move");
    let (status, bad) = common::binary::call(
        reqwest::Method::POST,
        &base,
        "/api/v1/rehearsal",
        &admin,
        Some(serde_json::json!({"expected_capture_gb": "lots"})),
    )
    .await;
    assert_eq!(status, 400, "{bad}");
}
