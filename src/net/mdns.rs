//! mDNS: the box announces `_venuebox._tcp.local.` on its HTTPS port and
//! answers for `<name>.local`, so staff devices find it without typing an
//! address; `venuebox discover` browses for boxes. Uses mdns-sd (pure Rust,
//! its own thread; nothing here blocks the async threads).

use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const SERVICE: &str = "_venuebox._tcp.local.";

#[derive(Debug, thiserror::Error)]
pub enum MdnsError {
    #[error(
        "mDNS: {0} (start with --no-mdns to run without it; staff then type the box's address)"
    )]
    Daemon(String),
}

fn err(e: impl std::fmt::Display) -> MdnsError {
    MdnsError::Daemon(e.to_string())
}

/// What the box announces.
#[derive(Clone, Debug)]
pub struct Announcement {
    /// Instance and host name (`<name>.local`).
    pub name: String,
    pub port: u16,
    pub box_id: String,
    pub event_id: String,
    /// Hex SHA-256 of the CA certificate (DER); empty with an operator's certificate.
    pub fingerprint: String,
    /// `primary` or `standby`, and the epoch: both boxes of a pair
    /// announce the same `box`; the primary at the highest epoch serves.
    pub role: String,
    pub epoch: i64,
}

impl Announcement {
    fn txt(&self) -> [(&'static str, String); 7] {
        [
            ("role", self.role.clone()),
            ("epoch", self.epoch.to_string()),
            ("box", self.box_id.clone()),
            ("event", self.event_id.clone()),
            ("v", env!("CARGO_PKG_VERSION").to_string()),
            ("fp", self.fingerprint.clone()),
            ("path", "/".to_string()),
        ]
    }
}

/// The running announcement. Dropping it without [`Announcer::goodbye`]
/// still stops the daemon, but only `goodbye` tells the LAN at once.
pub struct Announcer {
    daemon: ServiceDaemon,
    /// The current announcement, re-registered when addresses change.
    what: Mutex<Announcement>,
    fullname: Mutex<String>,
    /// The addresses last announced.
    addrs: Mutex<Vec<IpAddr>>,
}

impl Announcer {
    pub fn start(what: Announcement, addrs: &[IpAddr]) -> Result<Announcer, MdnsError> {
        let daemon = ServiceDaemon::new().map_err(err)?;
        let a = Announcer {
            daemon,
            what: Mutex::new(what),
            fullname: Mutex::new(String::new()),
            addrs: Mutex::new(addrs.to_vec()),
        };
        a.register(addrs)?;
        Ok(a)
    }

    fn register(&self, addrs: &[IpAddr]) -> Result<(), MdnsError> {
        let what = self.what.lock().expect("announcement").clone();
        let host = format!("{}.local.", what.name);
        // Addresses follow the interfaces by themselves (addr_auto); the
        // ones known now are announced at once.
        let info = ServiceInfo::new(SERVICE, &what.name, &host, addrs, what.port, &what.txt()[..])
            .map_err(err)?
            .enable_addr_auto();
        *self.fullname.lock().expect("fullname") = info.get_fullname().to_string();
        self.daemon.register(info).map_err(err)?;
        tracing::info!(name = %host, port = what.port, "announced on mDNS");
        Ok(())
    }

    /// Announces again, e.g. after the box's addresses changed.
    pub fn reannounce(&self, addrs: &[IpAddr]) {
        *self.addrs.lock().expect("addresses") = addrs.to_vec();
        if let Err(e) = self.register(addrs) {
            tracing::warn!(error = %e, "mDNS re-announcement failed");
        }
    }

    /// Announces a new role or epoch (a promotion, a fence), at once.
    pub fn set_role(&self, role: &str, epoch: i64) {
        {
            let mut what = self.what.lock().expect("announcement");
            if what.role == role && what.epoch == epoch {
                return;
            }
            what.role = role.to_string();
            what.epoch = epoch;
        }
        let addrs = self.addrs.lock().expect("addresses").clone();
        self.reannounce(&addrs);
    }

    /// Sends goodbye packets (TTL 0) and stops the daemon.
    pub fn goodbye(&self) {
        let fullname = self.fullname.lock().expect("fullname").clone();
        if let Ok(rx) = self.daemon.unregister(&fullname) {
            let _ = rx.recv_timeout(Duration::from_secs(2));
        }
        if let Ok(rx) = self.daemon.shutdown() {
            let _ = rx.recv_timeout(Duration::from_secs(2));
        }
        tracing::info!("mDNS goodbye sent");
    }
}

/// A box found on the LAN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub instance: String,
    pub host: String,
    pub port: u16,
    pub addresses: Vec<String>,
    pub txt: BTreeMap<String, String>,
}

/// Browses for boxes for `wait`; each once, by instance name.
pub fn discover(wait: Duration) -> Result<Vec<Found>, MdnsError> {
    let daemon = ServiceDaemon::new().map_err(err)?;
    let rx = daemon.browse(SERVICE).map_err(err)?;
    let deadline = Instant::now() + wait;
    let mut found: BTreeMap<String, Found> = BTreeMap::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(ServiceEvent::ServiceResolved(s)) => {
                let mut addresses: Vec<String> =
                    s.addresses.iter().map(|a| a.to_string()).collect();
                addresses.sort();
                let txt = s
                    .txt_properties
                    .iter()
                    .map(|p| (p.key().to_string(), p.val_str().to_string()))
                    .collect();
                let instance =
                    s.fullname.trim_end_matches(SERVICE).trim_end_matches('.').to_string();
                found.insert(
                    s.fullname.clone(),
                    Found { instance, host: s.host.clone(), port: s.port, addresses, txt },
                );
            }
            Ok(ServiceEvent::ServiceRemoved(_, fullname)) => {
                found.remove(&fullname);
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = daemon.stop_browse(SERVICE);
    let _ = daemon.shutdown();
    Ok(found.into_values().collect())
}
