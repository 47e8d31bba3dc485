//! The Debian package as `deploy/build-deb` makes it (cargo-deb, the
//! version that script pins, installed into target/tools on first use),
//! here around this test build's binary: the files where Debian expects
//! them, the configuration a conffile, the unit enabled and started by the
//! maintainer scripts, the service user and groups created on configure.
//! Installing it under systemd is tests/debian_vm.rs's job.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn dpkg_deb(args: &[&str], deb: &std::path::Path) -> String {
    let out = Command::new("dpkg-deb").args(args).arg(deb).output().expect("dpkg-deb");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_package_installs_the_service_its_user_and_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let deb = dir.path().join("venuebox.deb");
    common::deb::build(&deb, false);

    let files = dpkg_deb(&["--contents"], &deb);
    for path in [
        "./usr/bin/venuebox",
        "./usr/lib/systemd/system/venuebox.service",
        "./lib/udev/rules.d/99-venuebox.rules",
        "./etc/venuebox/venuebox.toml",
        "./usr/share/doc/venuebox/copyright",
    ] {
        assert!(files.lines().any(|l| l.ends_with(path)), "{path} in the package:\n{files}");
    }
    let control = dpkg_deb(&["--field"], &deb);
    assert!(control.contains("Package: venuebox") && control.contains("adduser"), "{control}");

    let ctl = dir.path().join("control");
    let out = Command::new("dpkg-deb").arg("--control").arg(&deb).arg(&ctl).output().unwrap();
    assert!(out.status.success());
    let read = |f: &str| std::fs::read_to_string(ctl.join(f)).unwrap_or_default();
    assert_eq!(
        read("conffiles").trim(),
        "/etc/venuebox/venuebox.toml",
        "settings survive upgrades"
    );
    let postinst = read("postinst");
    for needed in [
        "adduser --system --ingroup venuebox",
        "addgroup --system gpio",
        "adduser venuebox gpio",
        "deb-systemd-helper",
        "venuebox.service",
    ] {
        assert!(postinst.contains(needed), "postinst does `{needed}`:\n{postinst}");
    }
    assert!(!postinst.contains("#DEBHELPER#"), "cargo-deb filled in the unit's lines");
    assert!(read("prerm").contains("venuebox.service"), "the service stops before removal");
    // The shipped configuration is what `config check` accepts.
    let check = Command::new(env!("CARGO_BIN_EXE_venuebox"))
        .args(["config", "check", "--config"])
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/venuebox.toml"))
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
}
