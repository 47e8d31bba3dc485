//! The README's walk-through, run top to bottom as written: every indented
//! code block from "The two commands" up to "Commands", in order, in one
//! bash session in a fresh directory (as a newcomer's second terminal in
//! the checkout). Three stand-ins, nothing else changed:
//! - `cargo run --release [-q] -- ARGS` runs this test build's binary; a
//!   `serve` goes to the background (the newcomer's first terminal), and
//!   starting one stops the one before (the README says Ctrl-C);
//! - `pip install` is skipped: moto comes from the test's own install;
//! - `curl` fails on an HTTP error and waits for a server that is starting
//!   (`--fail-with-body --retry-connrefused`), so a wrong example fails.
//!
//! `bash scripts/test` (the suite itself) is the one block left out. The
//! examples use the README's fixed ports (8080, 8443, 8081, 9000) on
//! loopback, as a newcomer would.

use crate::common;

use std::process::Command;

const START: &str = "## The two commands";
const END: &str = "## Commands";

/// The indented code blocks of the walk-through, in order.
fn blocks(readme: &str) -> Vec<String> {
    let start = readme.find(START).expect("the walk-through's first heading");
    let end = readme.find(END).expect("the heading after the walk-through");
    let mut out: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    let mut previous_blank = true;
    for line in readme[start..end].lines() {
        match line.strip_prefix("    ") {
            Some(code) if current.is_some() || previous_blank => {
                let block = current.get_or_insert_with(String::new);
                block.push_str(code);
                block.push('\n');
            }
            _ => out.extend(current.take()),
        }
        previous_blank = line.trim().is_empty();
    }
    out.extend(current);
    out.retain(|b| b.trim() != "bash scripts/test");
    out
}

const SHIMS: &str = r#"
set -euo pipefail
stop_box() {
    if [ -n "${BOX:-}" ]; then kill "$BOX" 2>/dev/null || true; wait "$BOX" 2>/dev/null || true; BOX=; fi
}
cargo() {
    [ "$1" = run ] || { echo "the walk-through runs only 'cargo run', not: cargo $*" >&2; return 1; }
    while [ "$1" != "--" ]; do shift; done
    shift
    if [ "$1" = serve ]; then
        stop_box
        "$VENUEBOX_BIN" "$@" >>box.log 2>&1 &
        BOX=$!
        for _ in $(seq 1 200); do
            command curl -s -o /dev/null localhost:8080/healthz && return 0
            kill -0 "$BOX" 2>/dev/null || { cat box.log >&2; return 1; }
            sleep 0.05
        done
        echo "the box did not start" >&2; cat box.log >&2; return 1
    fi
    "$VENUEBOX_BIN" "$@"
}
pip() { echo "(pip install skipped: the test installed moto)"; }
curl() { command curl --fail-with-body --retry 40 --retry-connrefused --retry-delay 0 --retry-max-time 20 "$@"; }
trap 'stop_box; kill $(jobs -p) 2>/dev/null || true' EXIT
"#;

#[test]
fn the_readme_walk_through_runs_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let blocks = blocks(&readme);
    assert!(blocks.len() >= 10, "found only {} blocks: {blocks:?}", blocks.len());
    assert!(blocks[0].contains("serve --demo"), "the walk-through starts the box: {}", blocks[0]);
    let moto = common::s3::moto_path();
    let dir = tempfile::tempdir().unwrap();
    let mut script = String::from(SHIMS);
    for (i, b) in blocks.iter().enumerate() {
        script += &format!("echo '=== block {i}'\n{b}\necho\n");
    }
    script += "echo '=== done'\n";
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("VENUEBOX_BIN", env!("CARGO_BIN_EXE_venuebox"))
        .env("PYTHONPATH", &moto)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = std::fs::read_to_string(dir.path().join("box.log")).unwrap_or_default();
    assert!(
        out.status.success() && stdout.contains("=== done"),
        "the walk-through stopped:\n{stdout}\n--- stderr\n{stderr}\n--- box.log\n{log}"
    );
    // What the README says the reader will see.
    for (what, seen) in [
        ("a check-in admitted", "\"verdict\":\"admit\""),
        ("the walk-up's total", "\"total_minor\":2500"),
        ("a scholarship seat", "\"kind\":\"scholarship\""),
        ("the capture listed", "\"media_type\":\"image/png\""),
        ("the box healthy over HTTPS", "\"status\":\"ok\""),
        ("simulated devices", "\"mode\":\"simulate\""),
        ("sync status", "events pending"),
        ("sync enabled", "\"enabled\":true"),
    ] {
        assert!(stdout.contains(seen), "{what}: no {seen} in\n{stdout}\n--- stderr\n{stderr}");
    }
    let injected = stdout.lines().find(|l| l.contains("\"ticket\":\"S-0002\""));
    assert!(
        injected.is_some_and(|l| l.contains("\"verdict\":\"admit\"")),
        "the injected scan of S-0002 was admitted: {injected:?}"
    );
}
