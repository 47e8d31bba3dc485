//! The log as journald and log collectors see it: no colour codes when
//! stderr is not a terminal, the syslog priority in front of each line
//! when stderr is the journal's stream (`JOURNAL_STREAM`), and one JSON
//! object a line with `--log-format json`. The real binary, its stderr a
//! file.

use crate::common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

/// What `venuebox serve --demo` writes to stderr until it listens, with
/// `args`, and `JOURNAL_STREAM` made by `journal` from stderr's metadata.
fn serve_log(args: &[&str], journal: Option<fn(&std::fs::Metadata) -> String>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let file = std::fs::File::create(&log).unwrap();
    let meta = file.metadata().unwrap();
    let mut cmd = Command::new(common::binary::BIN);
    cmd.args(args)
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--https-listen", "off"])
        .args(["--pair-listen", "off", "--no-mdns", "--data-dir"])
        .arg(dir.path().join("data"))
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(file));
    if let Some(stream) = journal {
        cmd.env("JOURNAL_STREAM", stream(&meta));
    }
    let mut child = cmd.spawn().unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines {
        if line.unwrap().starts_with("venuebox listening on http://") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    std::fs::read_to_string(log).unwrap()
}

#[test]
fn text_logs_carry_no_colour_codes_off_a_terminal() {
    let log = serve_log(&[], None);
    assert!(log.contains("WARN") && log.contains("first manifest"), "{log}");
    assert!(!log.contains('\u{1b}'), "no escape codes in a file: {log:?}");
}

#[test]
fn under_journald_each_line_starts_with_its_priority() {
    let log = serve_log(&[], Some(|m| format!("{}:{}", m.dev(), m.ino())));
    let warn = log.lines().find(|l| l.contains("first manifest")).unwrap();
    assert!(warn.starts_with("<4>"), "a warning is priority 4: {warn}");
    let info = log.lines().find(|l| l.contains(" INFO ")).unwrap();
    assert!(info.starts_with("<6>"), "{info}");
    assert!(log.lines().all(|l| l.starts_with('<')), "{log}");
    assert!(!log.contains('\u{1b}'), "{log:?}");
    // Another stream in the variable (a shell started by systemd): no prefix.
    assert!(!serve_log(&[], Some(|_| "1:2".into())).starts_with('<'));
}

#[test]
fn json_logs_are_one_object_a_line() {
    let log = serve_log(&["--log-format", "json"], None);
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let warn = lines
        .iter()
        .find(|v| v["fields"]["message"].as_str().is_some_and(|m| m.contains("first manifest")))
        .unwrap();
    assert_eq!(warn["level"], "WARN", "{warn}");
    assert!(warn["timestamp"].is_string() && warn["target"].is_string(), "{warn}");
}
