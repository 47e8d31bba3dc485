//! The arm64 build (Raspberry Pi OS 64-bit): cross-built by
//! `deploy/cross-arm64` with Debian's toolchain (the lean `arm64-test`
//! profile here, into a target directory cached beside the toolchain root
//! so a fresh clone does not start cold; the package uses --release), linked for Debian 12's C library, packaged by
//! cargo-deb as arm64, and run under qemu-user against Debian 12's arm64
//! libraries: it starts, opens (creates and migrates) its store, serves
//! /healthz, stops cleanly on SIGTERM, and the database it wrote opens on
//! x86-64 too.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const TRIPLE: &str = "aarch64-unknown-linux-gnu";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const PROFILE: &str = "arm64-test";

fn cross(args: &[&str]) -> String {
    let out = Command::new(root().join("deploy/cross-arm64"))
        .args(args)
        .env("VENUEBOX_CROSS_TARGET", "cache")
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "deploy/cross-arm64 {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

fn qemu_aarch64() -> &'static str {
    if Command::new("qemu-aarch64").arg("--version").output().is_err() {
        common::apt::install(&["qemu-user"]);
    }
    "qemu-aarch64"
}

/// `venuebox ARGS` for arm64 under qemu-user, with Debian 12's libraries.
fn arm64(bin: &Path, sysroot: &str) -> Command {
    let mut c = Command::new(qemu_aarch64());
    c.args(["-L", sysroot]).arg(bin);
    c
}

#[tokio::test]
async fn the_arm64_binary_starts_and_opens_its_store_under_qemu_user() {
    cross(&["build", "--locked", "--profile", PROFILE]);
    let sysroot = cross(&["--sysroot"]).trim().to_string();
    let target = PathBuf::from(cross(&["--target-dir"]).trim());
    let bin = target.join(format!("{TRIPLE}/{PROFILE}/venuebox"));
    let elf = std::fs::read(&bin).unwrap();
    assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 183, "an AArch64 ELF (e_machine 183)");

    let version = arm64(&bin, &sysroot).arg("--version").output().unwrap();
    assert!(version.status.success(), "{}", String::from_utf8_lossy(&version.stderr));
    let host = Command::new(common::binary::BIN).arg("--version").output().unwrap();
    assert_eq!(version.stdout, host.stdout, "the same version as this build");

    // The store: created, migrated, served, closed on SIGTERM.
    let data = tempfile::tempdir().unwrap();
    let mut serve = arm64(&bin, &sysroot)
        .args(["serve", "--listen", "127.0.0.1:0", "--https-listen", "off", "--data-dir"])
        .arg(data.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = common::binary::listening(&mut serve);
    let health: serde_json::Value =
        reqwest::get(format!("http://{addr}/healthz")).await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    // SIGTERM, as systemd stops it: a clean exit.
    let pid = serve.id() as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = serve.wait().unwrap();
    assert!(status.success(), "the arm64 box stops cleanly: {status:?}");

    // What it wrote is an ordinary venuebox database: the x86-64 build
    // opens it, and so does arm64 again.
    let token = common::binary::token(data.path(), "door");
    assert!(!token.is_empty());
    let again = arm64(&bin, &sysroot)
        .args(["token", "--role", "supervisor", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));

    // Packaged as arm64 by the same cargo-deb as the amd64 package.
    let deb = data.path().join("venuebox-arm64.deb");
    let out = Command::new(common::deb::cargo_deb())
        .args([
            "deb",
            "--no-build",
            "--no-strip",
            "--profile",
            PROFILE,
            "--fast",
            "--variant",
            "arm64",
        ])
        .args(["--target", TRIPLE])
        .arg("-o")
        .arg(&deb)
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo deb: {}", String::from_utf8_lossy(&out.stderr));
    let field = |name: &str| {
        let out = Command::new("dpkg-deb").arg("--field").arg(&deb).arg(name).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(field("Package"), "venuebox");
    assert_eq!(field("Architecture"), "arm64");
    assert!(field("Depends").contains("libc6 (>= 2.36)"), "{}", field("Depends"));
}
