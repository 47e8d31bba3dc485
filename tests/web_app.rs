//! The staff web app in a real browser: Debian's headless Chromium, driven
//! by playwright-core (both installed by this test on first use: chromium
//! with apt, playwright-core from npm into target/), at phone size against
//! the real binary over HTTPS, trusting only the box's CA. The browser side
//! is `tests/browser/door.mjs`; screenshots land in target/web-shots/.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const PLAYWRIGHT: &str = "playwright-core@1.64.1";

/// Debian's chromium, installed with apt when missing (the test machines
/// run as root and reach Debian's mirrors).
fn chromium() {
    if Path::new("/usr/bin/chromium").exists() {
        return;
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "chromium"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .expect("apt-get is needed to install chromium for the browser tests")
    };
    let mut out = install();
    if !out.status.success() {
        // Package lists may be stale on a fresh machine.
        let _ = Command::new("apt-get").args(["update", "-q"]).output();
        out = install();
    }
    assert!(
        out.status.success() && Path::new("/usr/bin/chromium").exists(),
        "cannot install chromium (run `apt-get install chromium` as root): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A directory with playwright-core in node_modules (installed once).
fn playwright() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("node-web");
    if !dir.join("node_modules/playwright-core/package.json").exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&dir)
            .arg(PLAYWRIGHT)
            .output()
            .expect("node and npm are needed for the browser tests");
        assert!(
            out.status.success(),
            "npm install {PLAYWRIGHT}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dir
}

fn demo_ticket(data: &Path, row: usize) -> String {
    let csv = std::fs::read_to_string(data.join("demo/tickets.csv")).unwrap();
    let line = csv.lines().nth(row).unwrap();
    line.split(',').nth(2).unwrap().to_string()
}

#[test]
fn door_staff_pair_sign_in_and_check_a_ticket_in_twice_in_the_browser() {
    chromium();
    let node = playwright();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addrs) = common::binary::serve_lan(dir.path(), &["--demo"]);
    let code = common::binary::pairing_code(dir.path());
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../web-shots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = node.join("door.mjs");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/door.mjs"), &script).unwrap();
    let out = Command::new("node")
        .arg(&script)
        .current_dir(&node)
        .env("BOX", format!("https://{}", addrs.https))
        .env("CA_PEM", dir.path().join("tls/ca.pem"))
        .env("PAIR_CODE", &code)
        .env("TICKET_CODE", demo_ticket(dir.path(), 1))
        .env("SHOTS", &shots)
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(r["errors"], serde_json::json!([]), "no script errors on the page: {r}");
    assert_eq!(r["who"], "Dana at the door (door)", "{r}");
    assert_eq!(r["first"]["class"], "verdict admit", "{r}");
    assert_eq!(r["first"]["big"], "ADMIT", "{r}");
    assert_eq!(r["second"]["class"], "verdict reject", "{r}");
    assert_eq!(r["second"]["big"], "STOP", "{r}");
    let message = r["second"]["message"].as_str().unwrap();
    assert!(message.starts_with("Already checked in at Main"), "said in words staff can say: {r}");
    assert_eq!(r["second"]["status"], message, "the verdict is announced (role=status): {r}");
    for shot in ["1-pair", "2-sign-in", "3-door", "4-admit", "5-already-in"] {
        assert!(shots.join(format!("{shot}.png")).exists(), "screenshot {shot}");
    }
}
