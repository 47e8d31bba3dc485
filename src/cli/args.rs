//! Flag groups shared by several subcommands. Defaults come from the
//! library's own `Default`s, so each lives in one place.

use anyhow::Result;
use clap::Args;
use std::path::{Path, PathBuf};
use venuebox::api::conn::ConnLimits;
use venuebox::api::ApiConfig;
use venuebox::media::uploads::CaptureConfig;
use venuebox::net;
use venuebox::sync::config::{SyncArgs, SyncConfig};

#[derive(Args, Clone)]
pub struct DataDir {
    /// Directory holding the database, the box identity and demo files.
    #[arg(long, env = "VENUEBOX_DATA_DIR", default_value = "venuebox-data")]
    pub data_dir: PathBuf,
}

/// How staff phones reach a running box (as given to serve), for the
/// pairing QR codes `pair` and `rehearse` print.
#[derive(Args, Clone)]
pub struct StaffUrlArgs {
    /// The box's mDNS name, as given to serve.
    #[arg(long)]
    pub mdns_name: Option<String>,
    /// The HTTPS port serve listens on.
    #[arg(long, default_value_t = venuebox::net::HTTPS_PORT)]
    pub https_port: u16,
    /// The pairing page's port serve listens on.
    #[arg(long, default_value_t = venuebox::net::PAIR_PORT)]
    pub pair_port: u16,
}

impl StaffUrlArgs {
    /// The staff URLs over HTTPS and the pairing page (with `code`, if any).
    pub fn urls(&self, box_id: &str, code: Option<&str>) -> (Vec<String>, String) {
        let name =
            self.mdns_name.clone().unwrap_or_else(|| venuebox::net::default_mdns_name(box_id));
        let names =
            venuebox::net::tls::Names::for_box(&name, venuebox::net::tls::local_addresses());
        (
            venuebox::net::staff_urls(&names, self.https_port),
            venuebox::net::pair_url(&names, self.pair_port, code),
        )
    }
}

/// Limits for live proof uploads.
#[derive(Args, Clone)]
pub struct CaptureArgs {
    /// Largest single upload, in MiB.
    #[arg(long, default_value_t = CaptureConfig::default().max_upload_bytes >> 20)]
    pub max_upload_mb: u64,
    /// Total space captures (and uploads in progress) may use, in GiB.
    #[arg(long, default_value_t = CaptureConfig::default().quota_bytes >> 30)]
    pub capture_quota_gb: u64,
    /// Refuse and pause uploads when less than this much disk is free, in MiB.
    #[arg(long, default_value_t = CaptureConfig::default().disk_floor_bytes >> 20)]
    pub disk_floor_mb: u64,
    /// Abandoned uploads expire (and their partial files go) after this many minutes.
    #[arg(long, default_value_t = CaptureConfig::default().upload_expiry_ms / 60_000)]
    pub upload_expiry_minutes: i64,
}

impl CaptureArgs {
    pub fn config(&self) -> venuebox::media::uploads::CaptureConfig {
        venuebox::media::uploads::CaptureConfig {
            max_upload_bytes: self.max_upload_mb << 20,
            quota_bytes: self.capture_quota_gb << 30,
            disk_floor_bytes: self.disk_floor_mb << 20,
            upload_expiry_ms: self.upload_expiry_minutes * 60_000,
            ..Default::default()
        }
    }
}

/// Cloud sync to an S3-compatible bucket. Keys come from AWS_ACCESS_KEY_ID /
/// AWS_SECRET_ACCESS_KEY or DATA_DIR/sync-credentials (mode 0600), never flags.
#[derive(Args, Clone)]
pub struct SyncCli {
    /// Turn sync on: s3://BUCKET/PREFIX. Keys come from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY, or DATA_DIR/sync-credentials (mode 0600), never flags.
    #[arg(long = "sync", env = "VENUEBOX_SYNC", value_name = "s3://BUCKET/PREFIX")]
    pub url: Option<String>,
    #[command(flatten)]
    pub settings: SyncArgs,
}

impl SyncCli {
    pub fn config(&self, data_dir: &Path) -> Result<Option<SyncConfig>> {
        let Some(url) = self.url.clone() else {
            return Ok(None);
        };
        let args = SyncArgs { url, ..self.settings.clone() };
        let env = |k: &str| std::env::var(k).ok();
        Ok(Some(SyncConfig::resolve(&args, data_dir, &env).map_err(anyhow::Error::msg)?))
    }
}

/// pretix: where the token is and how often to import again (the event's
/// address and lists come from the last `venuebox pretix import`).
#[derive(Args, Clone)]
pub struct PretixCli {
    /// The pretix API token's file (mode 0600); default DATA_DIR/pretix-token
    /// when it exists, or VENUEBOX_PRETIX_TOKEN. With a token and an event
    /// imported from pretix, scans are sent back and the event re-imported.
    #[arg(long, env = "VENUEBOX_PRETIX_TOKEN_FILE", value_name = "FILE")]
    pub pretix_token_file: Option<PathBuf>,
    /// Seconds between imports from pretix while the box runs.
    #[arg(long, default_value_t = 300)]
    pub pretix_import_every: u64,
    /// Milliseconds between looks for scans to send back to pretix.
    #[arg(long, default_value_t = 2000, hide = true)]
    pub pretix_send_every_ms: u64,
}

impl PretixCli {
    pub fn config(&self, data_dir: &Path) -> Result<Option<venuebox::pretix::PretixConfig>> {
        let env = |k: &str| std::env::var(k).ok();
        let token = venuebox::pretix::token(self.pretix_token_file.as_deref(), data_dir, &env)
            .map_err(anyhow::Error::msg)?;
        Ok(token.map(|token| venuebox::pretix::PretixConfig {
            token,
            token_file: self.pretix_token_file.clone(),
            data_dir: data_dir.to_path_buf(),
            import_every: std::time::Duration::from_secs(self.pretix_import_every.max(10)),
            send_every: std::time::Duration::from_millis(self.pretix_send_every_ms.max(100)),
        }))
    }
}

/// What one client, or all of them, may hold open on the listener, and how
/// fast a refused sign-in is answered.
#[derive(Args, Clone)]
pub struct ConnArgs {
    /// Seconds a request's headers may take to arrive; also how long an idle keep-alive connection stays open.
    #[arg(long, default_value_t = ConnLimits::default().header_timeout.as_secs())]
    pub header_timeout_secs: u64,
    /// Seconds a connection may go without a byte either way (a stalled upload, a client that stopped reading).
    #[arg(long, default_value_t = ConnLimits::default().idle_timeout.as_secs())]
    pub idle_timeout_secs: u64,
    /// Connections open at once on the LAN listeners (strangers, with no staff sign-in from their address, get a quarter), and again on the loopback listener.
    #[arg(long, default_value_t = ConnLimits::default().max_connections)]
    pub max_connections: usize,
    /// Connections open at once from one address (a stranger gets a quarter).
    #[arg(long, default_value_t = ConnLimits::default().max_per_address)]
    pub max_connections_per_address: usize,
    /// Seconds a request body may take before it must keep up --body-min-bytes-per-sec.
    #[arg(long, default_value_t = ConnLimits::default().body_grace.as_secs())]
    pub body_grace_secs: u64,
    /// Bytes a second a request body must average after the grace; slower ones are answered 408 and closed.
    #[arg(long, default_value_t = ConnLimits::default().body_min_rate)]
    pub body_min_bytes_per_sec: u64,
    /// Milliseconds a refused sign-in or pairing waits before its answer (a right PIN never waits).
    #[arg(long, default_value_t = ApiConfig::default().refusal_delay_ms)]
    pub sign_in_refusal_delay_ms: u64,
}

impl ConnArgs {
    pub fn limits(&self) -> venuebox::api::conn::ConnLimits {
        use std::time::Duration;
        venuebox::api::conn::ConnLimits {
            header_timeout: Duration::from_secs(self.header_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(1)),
            max_connections: self.max_connections.max(1),
            max_per_address: self.max_connections_per_address.max(1),
            body_grace: Duration::from_secs(self.body_grace_secs.max(1)),
            body_min_rate: self.body_min_bytes_per_sec.max(1),
            ..Default::default()
        }
    }
}

/// The venue LAN: HTTPS with the box's own certificate authority, the
/// pairing page, mDNS.
#[derive(Args, Clone)]
pub struct LanArgs {
    /// HTTPS with the full API for staff devices on the LAN ("off": none).
    #[arg(long, env = "VENUEBOX_HTTPS_LISTEN", default_value_t = format!("0.0.0.0:{}", net::HTTPS_PORT))]
    pub https_listen: String,
    /// Plain HTTP on the LAN serving only the pairing page and the CA certificate; everything else redirects to HTTPS ("off": none).
    #[arg(long, env = "VENUEBOX_PAIR_LISTEN", default_value_t = format!("0.0.0.0:{}", net::PAIR_PORT))]
    pub pair_listen: String,
    /// The standby link: where this box listens for the other box of its pair (mutual TLS with
    /// the pair's CA; "off": none). See `venuebox join`.
    #[arg(long, env = "VENUEBOX_LINK_LISTEN", default_value_t = format!("0.0.0.0:{}", net::LINK_PORT))]
    pub link_listen: String,
    /// Serve this PEM certificate chain instead of the box's own (reloaded when it changes).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The box's mDNS name: staff open https://NAME.local:8443/ [default: venuebox- and the box id's start].
    #[arg(long)]
    pub mdns_name: Option<String>,
    /// Do not announce the box on mDNS.
    #[arg(long)]
    pub no_mdns: bool,
    /// Seconds between looks at the box's addresses (and --tls-cert files); a change re-issues the certificate.
    #[arg(long, default_value_t = net::LAN_CHECK_EVERY.as_secs())]
    pub lan_check_secs: u64,
}

impl LanArgs {
    pub fn config(&self) -> venuebox::net::LanConfig {
        venuebox::net::LanConfig {
            mdns_name: self.mdns_name.clone(),
            mdns: !self.no_mdns,
            cert: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => {
                    venuebox::net::CertSource::Files { cert: cert.clone(), key: key.clone() }
                }
                _ => venuebox::net::CertSource::BoxCa,
            },
            check_every: std::time::Duration::from_secs(self.lan_check_secs.max(1)),
            addresses: venuebox::net::system_addresses(),
        }
    }
}
