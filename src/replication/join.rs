//! Enrolling a standby or a satellite: the primary makes a one-time code (admin screen
//! or `venuebox pair --standby`); the new box presents it over HTTPS,
//! pinned to the CA fingerprint the primary printed, and receives what it
//! needs to be the same box: the box identity, the CA (so phones trust it
//! unchanged), the primary's replication address and epoch. Everything
//! else (the event, staff, devices, sessions, settings, state) arrives as
//! a snapshot on the link right after.

use serde::{Deserialize, Serialize};

/// How long a standby join code is valid.
pub const JOIN_CODE_TTL_MS: i64 = 10 * 60_000;

/// What the new box sends with the code.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The one-time code the primary made.
    #[schemars(length(min = 1, max = 64))]
    pub code: String,
    /// The new box's node name.
    #[schemars(length(min = 1, max = 64))]
    pub node: String,
    /// The port the new box listens on for the link, so the primary can
    /// reach it (at the address the request came from) after a takeover.
    #[schemars(range(min = 1))]
    pub link_port: u16,
    /// The new box joins as a satellite (an entrance of its own that
    /// forwards to the primary), not as the standby.
    #[serde(default)]
    pub satellite: bool,
}

/// What the primary answers: secrets, sent only over the pinned HTTPS.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct JoinBundle {
    /// The box identity file (`identity.json`): the box id and its key.
    pub identity: String,
    pub ca_pem: String,
    pub ca_key_pem: String,
    /// The port of the primary's link (at the host the new box asked),
    /// its node name and epoch.
    pub link_port: u16,
    pub primary_node: String,
    pub epoch: i64,
    /// The primary's secret files in its data directory that the standby
    /// needs to serve alike (the pretix token, the bucket's keys), by
    /// name: only names in [`CARRIED_FILES`] are sent or taken.
    #[serde(default)]
    pub files: std::collections::BTreeMap<String, String>,
    /// For a satellite: the door credential its USB scanners check in at
    /// the primary with (a session of role door, named after the box,
    /// revocable like any other).
    #[serde(default)]
    pub scanner_token: Option<String>,
}

/// How long a satellite's scanner credential lasts.
pub const SCANNER_TOKEN_TTL_MS: i64 = 14 * 24 * 3_600_000;

/// The data-directory files a standby receives when present on the
/// primary (each 0600 on both boxes): `pretix-token`, `sync-credentials`.
pub const CARRIED_FILES: [&str; 2] = ["pretix-token", "sync-credentials"];

/// What an admin gets to enrol a standby: the code, and the command to
/// run on the new box (with the CA fingerprint it pins).
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct JoinCode {
    pub code: String,
    pub expires_at: String,
    pub fingerprint: String,
    /// `venuebox join https://HOST:PORT CODE --fingerprint FP`, when the
    /// box knows an address staff reach it at.
    pub command: Option<String>,
}

/// The command line a new box runs to join.
pub fn command(url: &str, code: &str, fingerprint: &str) -> String {
    format!("venuebox join {url} {code} --fingerprint {fingerprint}")
}
