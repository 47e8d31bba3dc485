//! Debian packages a test runs on, installed with apt on first use.

/// Installs Debian packages with apt (the test machines run as root and
/// reach Debian's mirrors), waiting up to five minutes for another apt or
/// dpkg to let go of its lock (a fresh-clone run once failed on it), and
/// refreshing the package lists once if they are stale. Panics with apt's
/// words when it cannot.
pub fn install(packages: &[&str]) {
    let apt = |args: &[&str]| {
        std::process::Command::new("apt-get")
            .args(["-o", "DPkg::Lock::Timeout=300", "-q"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .expect("apt-get is needed to install what this test runs on")
    };
    let install = || apt(&[&["install", "-y"], packages].concat());
    let mut out = install();
    if !out.status.success() {
        let _ = apt(&["update"]);
        out = install();
    }
    assert!(
        out.status.success(),
        "cannot install {packages:?} (as root: apt-get install {}): {}",
        packages.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
