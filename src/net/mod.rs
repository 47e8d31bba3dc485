//! The venue LAN: TLS certificates (`tls`), mDNS announcements and
//! discovery (`mdns`), and the watcher that keeps both true when the box's
//! addresses change. No HTTP here: `api` serves, this module says with
//! which certificate and under which names.

pub mod mdns;
pub mod tls;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// The HTTPS port staff devices use, unless `--https-listen` says another.
pub const HTTPS_PORT: u16 = 8443;
/// The plain-HTTP pairing page's port, unless `--pair-listen` says another.
pub const PAIR_PORT: u16 = 8081;
/// The standby link between the two boxes of a pair.
pub const LINK_PORT: u16 = 8445;
/// How often the box looks at its addresses (and an operator's
/// certificate files) for a change.
pub const LAN_CHECK_EVERY: Duration = Duration::from_secs(30);

/// Where the box's addresses come from; tests inject their own.
pub type AddressSource = Arc<dyn Fn() -> Vec<IpAddr> + Send + Sync>;

pub fn system_addresses() -> AddressSource {
    Arc::new(tls::local_addresses)
}

/// Which certificate HTTPS serves.
#[derive(Clone, Debug)]
pub enum CertSource {
    /// The box's own authority, re-issuing for its names and addresses.
    BoxCa,
    /// An operator's PEM files, reloaded when they change.
    Files { cert: PathBuf, key: PathBuf },
}

/// Settings for the LAN side of the box.
#[derive(Clone)]
pub struct LanConfig {
    /// The `<name>.local` of the box; `None`: derived from the box id.
    pub mdns_name: Option<String>,
    /// Announce on mDNS (`--no-mdns` turns it off).
    pub mdns: bool,
    pub cert: CertSource,
    /// How often addresses (and operator files) are looked at again.
    pub check_every: Duration,
    pub addresses: AddressSource,
}

impl std::fmt::Debug for LanConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LanConfig")
            .field("mdns_name", &self.mdns_name)
            .field("mdns", &self.mdns)
            .field("cert", &self.cert)
            .field("check_every", &self.check_every)
            .finish()
    }
}

/// What the LAN side shows the rest of the box: the certificate switch,
/// the CA's fingerprint, and the names and addresses now covered.
pub struct Lan {
    pub config: LanConfig,
    /// The name in effect (`<name>.local`).
    pub mdns_name: String,
    pub certs: Arc<tls::CertSwitch>,
    /// The box CA (None when an operator's certificate is served).
    pub ca: Option<tls::BoxCa>,
    /// Names and addresses the current certificate covers.
    pub names: RwLock<tls::Names>,
    data_dir: PathBuf,
    files_seen: RwLock<Option<(SystemTime, SystemTime)>>,
    /// The HTTPS and pairing ports once bound (for URLs on slips and pages).
    ports: RwLock<(Option<u16>, Option<u16>)>,
}

fn mtimes(cert: &PathBuf, key: &PathBuf) -> Option<(SystemTime, SystemTime)> {
    let m = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((m(cert)?, m(key)?))
}

impl Lan {
    /// Loads or makes the certificates for the box as it is now.
    pub fn open(
        data_dir: PathBuf,
        box_id: &str,
        config: LanConfig,
    ) -> Result<Arc<Lan>, tls::TlsError> {
        let mdns_name = config.mdns_name.clone().unwrap_or_else(|| default_mdns_name(box_id));
        let names = tls::Names::for_box(&mdns_name, (config.addresses)());
        let (ca, first, seen) = match &config.cert {
            CertSource::BoxCa => {
                let ca = tls::load_or_create_ca(&data_dir, box_id)?;
                let ck = tls::issue_server(&data_dir, &ca, &names)?;
                (Some(ca), ck, None)
            }
            CertSource::Files { cert, key } => {
                (None, tls::load_operator(cert, key)?, mtimes(cert, key))
            }
        };
        Ok(Arc::new(Lan {
            certs: tls::CertSwitch::new(first),
            ca,
            names: RwLock::new(names),
            data_dir,
            files_seen: RwLock::new(seen),
            ports: RwLock::new((None, None)),
            mdns_name,
            config,
        }))
    }

    pub fn set_ports(&self, https: Option<u16>, pair: Option<u16>) {
        *self.ports.write().expect("lan ports") = (https, pair);
    }

    /// (HTTPS port, pairing port), once the listeners are bound.
    pub fn ports(&self) -> (Option<u16>, Option<u16>) {
        *self.ports.read().expect("lan ports")
    }

    /// The staff URLs: by mDNS name first, then by address.
    pub fn staff_urls(&self, https_port: u16) -> Vec<String> {
        staff_urls(&self.names(), https_port)
    }

    /// Whether `host` (a name or an address, as in an Origin) is one the
    /// certificate covers; looked at under the lock, nothing copied.
    pub fn covers(&self, host: &str) -> bool {
        let names = self.names.read().expect("lan names");
        match host.parse::<IpAddr>() {
            Ok(ip) => names.ips.contains(&ip),
            Err(_) => names.dns.iter().any(|d| d.eq_ignore_ascii_case(host)),
        }
    }

    /// `http://<first IPv4 address, else the .local name>:<pair port>/pair#pair=…`:
    /// what a phone scans to pair (the pairing page works before the CA is installed).
    pub fn pair_url(&self, pair_port: u16, code: Option<&str>) -> String {
        pair_url(&self.names(), pair_port, code)
    }

    pub fn fingerprint(&self) -> Option<String> {
        self.ca.as_ref().map(|c| c.fingerprint())
    }

    pub fn names(&self) -> tls::Names {
        self.names.read().expect("lan names").clone()
    }

    /// Looks at the addresses (or the operator's files) again; re-issues or
    /// reloads the certificate when they changed. True when something did.
    pub fn refresh(&self) -> bool {
        match &self.config.cert {
            CertSource::BoxCa => {
                let names = tls::Names::for_box(&self.mdns_name, (self.config.addresses)());
                if names == self.names() {
                    return false;
                }
                let Some(ca) = &self.ca else { return false };
                match tls::issue_server(&self.data_dir, ca, &names) {
                    Ok(ck) => {
                        self.certs.set(ck);
                        tracing::info!(addresses = ?names.ips, "the box's addresses changed: server certificate re-issued");
                        *self.names.write().expect("lan names") = names;
                        true
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot re-issue the server certificate; the old one stays");
                        false
                    }
                }
            }
            CertSource::Files { cert, key } => {
                let now = mtimes(cert, key);
                if now.is_none() || now == *self.files_seen.read().expect("files seen") {
                    return false;
                }
                match tls::load_operator(cert, key) {
                    Ok(ck) => {
                        self.certs.set(ck);
                        *self.files_seen.write().expect("files seen") = now;
                        tracing::info!(cert = %cert.display(), "certificate files changed: reloaded");
                        true
                    }
                    // Half-written files: try again at the next look.
                    Err(e) => {
                        tracing::warn!(error = %e, "certificate files changed but do not load yet; keeping the old certificate");
                        false
                    }
                }
            }
        }
    }

    /// Every `check_every`: refresh, and tell `on_change` (the mDNS
    /// announcer) when the addresses changed.
    pub async fn watch(
        self: Arc<Self>,
        on_change: impl Fn(&tls::Names) + Send + 'static,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(self.config.check_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let lan = self.clone();
            let changed = tokio::task::spawn_blocking(move || lan.refresh()).await.unwrap_or(false);
            if changed {
                on_change(&self.names());
            }
        }
    }
}

/// The staff URLs for `names`: the `.local` name first, then every
/// address but loopback.
pub fn staff_urls(names: &tls::Names, https_port: u16) -> Vec<String> {
    let mut urls: Vec<String> = names
        .dns
        .iter()
        .filter(|d| d.ends_with(".local"))
        .map(|d| format!("https://{d}:{https_port}/"))
        .collect();
    for ip in names.ips.iter().filter(|ip| !ip.is_loopback()) {
        match ip {
            IpAddr::V4(v4) => urls.push(format!("https://{v4}:{https_port}/")),
            IpAddr::V6(v6) => urls.push(format!("https://[{v6}]:{https_port}/")),
        }
    }
    urls
}

pub fn pair_url(names: &tls::Names, pair_port: u16, code: Option<&str>) -> String {
    let host = names
        .ips
        .iter()
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
        .map(|ip| ip.to_string())
        .or_else(|| names.dns.iter().find(|d| d.ends_with(".local")).cloned())
        .unwrap_or_else(|| "localhost".into());
    match code {
        // In the fragment: a browser never sends it, so the code does not
        // cross the Wi-Fi in clear; the page hands it on to HTTPS.
        Some(c) => format!("http://{host}:{pair_port}/pair#{PAIR_FRAGMENT}={c}"),
        None => format!("http://{host}:{pair_port}/pair"),
    }
}

/// The URL fragment key that carries a pairing code, in the printed link,
/// on the pairing page and in the staff app (`web/app.js` reads it).
pub const PAIR_FRAGMENT: &str = "pair";

/// The default mDNS name for a box: `venuebox-` and the start of its id.
pub fn default_mdns_name(box_id: &str) -> String {
    let id = box_id.strip_prefix("box-").unwrap_or(box_id);
    format!("venuebox-{}", &id[..id.len().min(6)])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One name for the fragment: the link the box prints, the pairing
    /// page's hand-over and the staff app all use `PAIR_FRAGMENT`.
    #[test]
    fn the_printed_link_and_the_app_carry_the_code_in_one_fragment() {
        let names = tls::Names { dns: ["door.local".to_string()].into(), ips: Default::default() };
        let url = pair_url(&names, 8081, Some("ABCD-EFGH-JKMN"));
        assert_eq!(url, format!("http://door.local:8081/pair#{PAIR_FRAGMENT}=ABCD-EFGH-JKMN"));
        assert!(!url.contains('?'), "nothing of the code in what is sent over plain HTTP");
        let app = include_str!("../../web/app.js");
        assert!(app.contains(&format!("get(\"{PAIR_FRAGMENT}\")")), "the app reads the same key");
    }
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};
    use std::sync::Mutex;

    /// Whether the certificate `lan` serves now verifies, against the box
    /// CA only, for `name`.
    fn valid_for(lan: &Lan, name: &str) -> bool {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(lan.ca.as_ref().unwrap().cert_der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        let ck = lan.certs.current();
        let name = ServerName::try_from(name.to_string()).unwrap();
        verifier.verify_server_cert(&ck.cert[0], &ck.cert[1..], &name, &[], UnixTime::now()).is_ok()
    }

    #[test]
    fn the_certificate_follows_the_boxs_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let addrs = Arc::new(Mutex::new(vec![IpAddr::from([10, 0, 0, 5])]));
        let source = addrs.clone();
        let config = LanConfig {
            mdns_name: Some("door-box".into()),
            mdns: false,
            cert: CertSource::BoxCa,
            check_every: Duration::from_secs(1),
            addresses: Arc::new(move || source.lock().unwrap().clone()),
        };
        let lan = Lan::open(dir.path().to_path_buf(), "box-1", config.clone()).unwrap();
        for name in ["door-box.local", "localhost", "127.0.0.1", "::1", "10.0.0.5"] {
            assert!(valid_for(&lan, name), "{name}");
        }
        assert!(!valid_for(&lan, "10.0.0.6"));
        assert!(!lan.refresh(), "nothing changed, nothing re-issued");
        *addrs.lock().unwrap() = vec![IpAddr::from([10, 0, 0, 6]), "fd00::6".parse().unwrap()];
        assert!(lan.refresh());
        assert!(valid_for(&lan, "10.0.0.6") && valid_for(&lan, "fd00::6"));
        assert!(!valid_for(&lan, "10.0.0.5"), "an address the box no longer has is dropped");
        // A restart keeps the authority (phones installed it) and the new names.
        let again = Lan::open(dir.path().to_path_buf(), "box-1", config).unwrap();
        assert_eq!(again.fingerprint(), lan.fingerprint());
        assert!(valid_for(&again, "10.0.0.6"));
    }

    #[test]
    fn the_default_name_comes_from_the_box_id() {
        assert_eq!(default_mdns_name("box-5ac691e2"), "venuebox-5ac691");
    }
}
