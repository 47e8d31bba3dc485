//! Making a pair of boxes as an operator does: the first prints a standby
//! code and its CA fingerprint (`venuebox pair --standby`), the second
//! joins with them (`venuebox join`).

use super::binary::BIN;
use std::path::Path;
use std::process::Command;

/// A free loopback port for a standby's link (the primary must know it
/// before the standby runs).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The primary's printed standby code and CA fingerprint.
pub fn standby_code(dir: &Path) -> (String, String) {
    let out =
        Command::new(BIN).args(["pair", "--standby", "--data-dir"]).arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {text}"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    (field("standby code: "), field("box CA fingerprint (SHA-256): "))
}

/// `venuebox join https://PRIMARY CODE --fingerprint FP --link-port PORT`.
pub fn join(
    dir: &Path,
    https: &str,
    code: &str,
    fingerprint: &str,
    link_port: u16,
) -> std::process::Output {
    Command::new(BIN)
        .args(["join", &format!("https://{https}"), code, "--fingerprint", fingerprint])
        .args(["--link-port", &link_port.to_string(), "--data-dir"])
        .arg(dir)
        .output()
        .unwrap()
}

/// `venuebox promote` on a standby's console.
pub fn promote(dir: &Path) {
    let out = Command::new(BIN).args(["promote", "--data-dir"]).arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
