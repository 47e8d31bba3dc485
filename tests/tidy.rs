//! The house rules of ARCHITECTURE.md ("Architecture invariants" and the
//! code map), checked on the source tree so a change that breaks one fails
//! the suite instead of waiting for a reviewer:
//! - `domain` does no I/O: it names no I/O crate or module;
//! - only `store` speaks SQL (rusqlite), only `api` and `server` know HTTP
//!   serving (axum, hyper), only the device adapters touch USB (nusb) and
//!   GPIO (rppal);
//! - every Rust file opens with a module comment (`//!`) saying its job.
//!
//! "Every route is documented" is `api::tests::every_route_in_the_router_
//! is_in_the_openapi_document`, on the router itself.

use std::path::{Path, PathBuf};

fn rust_files(dir: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join(dir), &mut out);
    out.sort();
    out
}

fn relative(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap().display().to_string()
}

/// Code lines only: comments (module docs name crates in prose) left out.
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Files under `src` whose code names `needle`, outside `allowed` (path
/// prefixes).
fn offenders(needle: &str, allowed: &[&str]) -> Vec<String> {
    rust_files("src")
        .iter()
        .filter(|p| code(p).contains(needle))
        .map(|p| relative(p))
        .filter(|p| !allowed.iter().any(|a| p.starts_with(a)))
        .collect()
}

#[test]
fn domain_does_no_io() {
    let io = [
        "tokio",
        "std::fs",
        "std::net",
        "std::io",
        "std::process",
        "std::thread",
        "std::env",
        "rusqlite",
        "reqwest",
        "hyper",
        "axum",
        "nusb",
        "rppal",
        "SystemTime",
        "Instant::now",
        "File::",
    ];
    for path in rust_files("src/domain") {
        let text = code(&path);
        for needle in io {
            assert!(
                !text.contains(needle),
                "{} uses {needle}: domain takes what it needs as arguments (ARCHITECTURE.md)",
                relative(&path)
            );
        }
    }
}

#[test]
fn only_store_speaks_sql() {
    assert_eq!(offenders("rusqlite", &["src/store/"]), Vec::<String>::new());
}

#[test]
fn only_api_and_server_serve_http() {
    for needle in ["axum", "hyper::"] {
        assert_eq!(
            offenders(needle, &["src/api/", "src/server.rs"]),
            Vec::<String>::new(),
            "{needle}"
        );
    }
}

#[test]
fn only_device_adapters_touch_usb_and_gpio() {
    assert_eq!(offenders("nusb", &["src/devices/usb.rs"]), Vec::<String>::new());
    assert_eq!(offenders("rppal", &["src/devices/signals.rs"]), Vec::<String>::new());
}

#[test]
fn every_file_opens_with_a_module_comment() {
    let mut missing = Vec::new();
    for dir in ["src", "tests", "benches"] {
        for path in rust_files(dir) {
            let text = std::fs::read_to_string(&path).unwrap();
            if !text.starts_with("//!") {
                missing.push(relative(&path));
            }
        }
    }
    assert!(missing.is_empty(), "say what each file is for in a //! comment: {missing:?}");
}

#[test]
fn the_checks_find_what_they_look_for() {
    // A check that can never fail proves nothing: each needle is found
    // where it is allowed.
    assert!(!offenders("rusqlite", &[]).is_empty());
    assert!(!offenders("nusb", &[]).is_empty());
    assert!(!offenders("rppal", &[]).is_empty());
    assert!(!offenders("axum", &[]).is_empty());
}
