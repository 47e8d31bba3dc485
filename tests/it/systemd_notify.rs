//! The box under systemd's `Type=notify` contract, with the test standing
//! in for systemd: a datagram socket named by `NOTIFY_SOCKET`, a watchdog
//! period in `WATCHDOG_USEC`. The real binary: READY=1 with a status line
//! once it listens, WATCHDOG=1 while the store's writer answers, none once
//! the writer is stuck (the hidden fault switch), STOPPING=1 on SIGTERM.

use crate::common;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Systemd {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
    child: Child,
    /// The box's log lines, as they come.
    log: mpsc::Receiver<String>,
}

impl Drop for Systemd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `venuebox serve --demo` started as systemd would, with a 1 s watchdog.
fn start(extra: &[&str]) -> Systemd {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    let mut child = Command::new(common::binary::BIN)
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--https-listen", "off"])
        .args(["--pair-listen", "off", "--no-mdns", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(extra)
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("WATCHDOG_PID")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, log) = mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines() {
            let _ = tx.send(line.unwrap_or_default());
        }
    });
    Systemd { socket, _dir: dir, child, log }
}

impl Systemd {
    fn next(&self, within: Duration) -> Option<String> {
        self.socket.set_read_timeout(Some(within)).unwrap();
        let mut buf = [0u8; 4096];
        let len = self.socket.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..len]).into_owned())
    }

    /// Every message already sent, without waiting.
    fn drain(&self) -> Vec<String> {
        self.socket.set_nonblocking(true).unwrap();
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(len) = self.socket.recv(&mut buf) {
            all.push(String::from_utf8_lossy(&buf[..len]).into_owned());
        }
        self.socket.set_nonblocking(false).unwrap();
        all
    }

    fn wait_log(&self, needle: &str) -> String {
        loop {
            let line = self.log.recv_timeout(Duration::from_secs(20)).expect("the box's log ended");
            if line.contains(needle) {
                return line;
            }
        }
    }
}

#[test]
fn ready_status_watchdog_and_stopping() {
    let s = start(&[]);
    let ready = s.next(Duration::from_secs(30)).expect("READY=1");
    assert!(ready.starts_with("READY=1\nSTATUS=evt-demo v1; 0 inside; sync off"), "{ready}");
    let mut pings = 0;
    while pings < 3 {
        let m = s.next(Duration::from_secs(5)).expect("a watchdog ping within the period");
        if m == "WATCHDOG=1" {
            pings += 1;
        } else {
            assert!(m.starts_with("STATUS="), "{m}");
        }
    }
    let pid = s.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    loop {
        let m = s.next(Duration::from_secs(10)).expect("STOPPING=1 on SIGTERM");
        if m.starts_with("STOPPING=1") {
            break;
        }
    }
    let mut s = s;
    assert!(s.child.wait().unwrap().success(), "a clean exit after SIGTERM");
}

#[test]
fn a_stuck_writer_stops_the_watchdog_pings() {
    let s = start(&["--fault-stall-writer-after", "1"]);
    assert!(s.next(Duration::from_secs(30)).expect("READY=1").starts_with("READY=1"));
    s.wait_log("fault injection: stalling");
    s.wait_log("did not answer");
    let before = s.drain();
    assert!(before.iter().any(|m| m == "WATCHDOG=1"), "pings while the writer worked: {before:?}");
    // A whole watchdog period later, and another: not one ping between.
    s.wait_log("did not answer");
    let after = s.drain();
    assert!(!after.iter().any(|m| m == "WATCHDOG=1"), "no ping from a stuck box: {after:?}");
}

/// The shipped unit's exposure as `systemd-analyze security` scores it
/// (offline, from the file): at most 2.0 of 10.
#[test]
fn the_unit_file_is_locked_down() {
    let unit = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/venuebox.service");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager", unit])
        .output()
        .expect("systemd-analyze (Debian's systemd package) is needed for this test");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    let score: f64 =
        line.split(": ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!(score <= 2.0, "exposure {score} > 2.0: {text}");
}
