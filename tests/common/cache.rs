//! Where the tests keep the tools they install on first use (Python
//! packages, npm packages, cargo-deb): outside the clone, so a fresh clone
//! (as CI makes) finds them, and named by what was installed, so a change
//! of version installs anew. `$VENUEBOX_TOOLS_CACHE`, default
//! /var/tmp/venuebox-tools; delete it to start cold.

use std::path::PathBuf;

/// `$VENUEBOX_TOOLS_CACHE/NAME-HASH`, HASH from `key` (what is installed
/// there, versions included).
pub fn dir(name: &str, key: &[&str]) -> PathBuf {
    use sha2::Digest;
    let root = std::env::var_os("VENUEBOX_TOOLS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/venuebox-tools"));
    let hash = sha2::Sha256::digest(key.join("\n").as_bytes());
    let short: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
    root.join(format!("{name}-{short}"))
}
