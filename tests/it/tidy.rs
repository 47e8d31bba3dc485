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

/// Which top-level modules each module may import (`crate::…`), inside
/// out: a module names only those below it. The table is acyclic (checked
/// below), so an import that closes a cycle is an import the table lacks.
/// Tests inside a file (after its `#[cfg(test)]`) are not counted; `cli`
/// is the binary's, above everything, and imports through `venuebox::`.
const LAYERS: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("secrets", &[]),
    ("systemd", &[]),
    ("throttle", &[]),
    ("clock", &["domain"]),
    ("metrics", &["domain"]),
    ("net", &["domain", "secrets"]),
    ("organiser", &["domain", "secrets"]),
    ("store", &["domain", "metrics", "secrets"]),
    ("media", &["clock", "domain", "secrets", "store", "throttle"]),
    ("sync", &["clock", "domain", "media", "secrets", "store", "throttle"]),
    ("pretix", &["clock", "domain", "organiser", "secrets", "store"]),
    ("devices", &["clock", "domain", "secrets", "store"]),
    (
        "replication",
        &["clock", "domain", "media", "metrics", "net", "secrets", "store", "throttle"],
    ),
    (
        "parts",
        &["clock", "devices", "media", "metrics", "net", "pretix", "replication", "store", "sync"],
    ),
    (
        "api",
        &[
            "clock",
            "devices",
            "domain",
            "media",
            "metrics",
            "net",
            "organiser",
            "parts",
            "pretix",
            "replication",
            "secrets",
            "store",
            "sync",
        ],
    ),
    (
        "server",
        &[
            "api",
            "clock",
            "devices",
            "domain",
            "media",
            "metrics",
            "net",
            "parts",
            "pretix",
            "replication",
            "store",
            "sync",
            "systemd",
        ],
    ),
    (
        "rehearsal",
        &[
            "api", "clock", "devices", "domain", "media", "net", "parts", "secrets", "server",
            "store", "sync",
        ],
    ),
];

/// The top-level module of a file under `src/` (`store/scans.rs` → `store`).
fn top_module(rel: &str) -> String {
    let rest = rel.trim_start_matches("src/");
    rest.split('/').next().unwrap().trim_end_matches(".rs").to_string()
}

/// Every `crate::x` a module's code names, by module, tests left out.
fn imports() -> std::collections::BTreeMap<String, std::collections::BTreeSet<(String, String)>> {
    let mut out: std::collections::BTreeMap<_, std::collections::BTreeSet<_>> = Default::default();
    for path in rust_files("src") {
        let rel = relative(&path);
        let from = top_module(&rel);
        let text = code(&path);
        let text = text.split("#[cfg(test)]").next().unwrap();
        let mut rest = text;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let to: String =
                rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if to != from && !to.is_empty() {
                out.entry(from.clone()).or_default().insert((to, rel.clone()));
            }
        }
    }
    out
}

#[test]
fn modules_import_only_what_lies_below_them() {
    let allowed: std::collections::BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut wrong = Vec::new();
    for (from, tos) in imports() {
        if from == "cli" || from == "main" || from == "lib" {
            continue;
        }
        let Some(may) = allowed.get(from.as_str()) else {
            wrong.push(format!("{from}: a new top-level module; add it to LAYERS"));
            continue;
        };
        for (to, file) in tos {
            if !may.contains(&to.as_str()) {
                wrong.push(format!("{file} imports crate::{to}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports outside the layers (tests/it/tidy.rs LAYERS): {wrong:#?}");
}

#[test]
fn the_layers_have_no_cycle() {
    // Kahn's algorithm: repeatedly take a module whose imports are all taken.
    let mut left: Vec<(&str, &[&str])> = LAYERS.to_vec();
    let mut taken: Vec<&str> = Vec::new();
    while !left.is_empty() {
        let before = left.len();
        left.retain(|(m, deps)| {
            let ready = deps.iter().all(|d| taken.contains(d));
            if ready {
                taken.push(m);
            }
            !ready
        });
        assert!(left.len() < before, "LAYERS has a cycle among {left:?}");
    }
    // And the scan sees imports: the server's of the API, the store's of
    // the domain.
    let found = imports();
    assert!(found["server"].iter().any(|(to, _)| to == "api"), "{found:?}");
    assert!(found["store"].iter().any(|(to, _)| to == "domain"), "{found:?}");
}

/// Every file the project runs apt from (its scripts, the VM image builder,
/// the tests' helpers) waits for another apt or dpkg to let go of its lock
/// instead of failing: a fresh-clone run of the suite once failed in
/// `arm64_build` because another apt-get held it.
#[test]
fn every_apt_get_waits_for_the_dpkg_lock() {
    let mut files: Vec<PathBuf> = rust_files("tests");
    for dir in ["deploy", "scripts", "tests/vm"] {
        for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() && !path.extension().is_some_and(|e| e == "md" || e == "toml") {
                files.push(path);
            }
        }
    }
    let mut calls = 0;
    let mut wrong = Vec::new();
    for path in &files {
        let Ok(text) = std::fs::read_to_string(path) else { continue };
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            let l = line.trim_start();
            if l.starts_with('#') || l.starts_with("//") {
                continue;
            }
            // A call: `apt-get -o …`/`apt-get install …` in a script, or
            // `Command::new("apt-get")` in Rust (messages naming the
            // command for a person are neither).
            let shell = l.split(['|', '{', '(', ';']).any(|part| {
                let part = part.trim_start();
                part.starts_with("apt-get ") || part.starts_with("apt ")
            });
            if shell
                || l.contains("Command::new(\"apt-get\")")
                || l.contains("Command::new(\"apt\")")
            {
                calls += 1;
                // The call with its next line (rustfmt puts `.args` there).
                let call = lines[n..lines.len().min(n + 2)].concat();
                if !call.contains("DPkg::Lock::Timeout") {
                    wrong.push(format!("{}:{}: {l}", relative(path), n + 1));
                }
            }
        }
    }
    assert!(calls >= 5, "the scan finds the project's apt calls (found {calls})");
    assert!(wrong.is_empty(), "apt-get without -o DPkg::Lock::Timeout=300: {wrong:#?}");
}
