//! The Debian package as `deploy/build-deb` makes it (cargo-deb, the
//! version that script pins, installed into the tools cache on first use),
//! here around this test build's binary.

use std::path::{Path, PathBuf};
use std::process::Command;

/// cargo-deb at the version `deploy/build-deb` pins, installed on first use.
pub fn cargo_deb() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let script = std::fs::read_to_string(root.join("deploy/build-deb")).unwrap();
    let version = script
        .lines()
        .find_map(|l| l.strip_prefix("CARGO_DEB_VERSION="))
        .expect("deploy/build-deb pins cargo-deb");
    let tools = super::cache::dir("cargo-deb", &[version]);
    let bin = tools.join("bin/cargo-deb");
    let have = Command::new(&bin).arg("--version").output().ok();
    if !have.is_some_and(|o| String::from_utf8_lossy(&o.stdout).contains(version)) {
        let out = Command::new("cargo")
            .args(["install", "cargo-deb", "--locked", "--quiet", "--version", version, "--root"])
            .arg(&tools)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cargo install cargo-deb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    bin
}

/// Builds the package around the dev profile's binary (no cargo build) into
/// `deb`; `strip` drops the debug information (a smaller package to copy).
pub fn build(deb: &Path, strip: bool) {
    let mut cmd = Command::new(cargo_deb());
    cmd.args(["deb", "--no-build", "--profile", "dev", "--fast", "-o"]).arg(deb);
    if !strip {
        cmd.arg("--no-strip");
    }
    let out = cmd.current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    assert!(out.status.success(), "cargo deb: {}", String::from_utf8_lossy(&out.stderr));
}
