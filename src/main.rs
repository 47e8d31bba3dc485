//! The `venuebox` binary: parses the command line, sets up logging and
//! calls into the library. Nothing here decides anything about an event.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use venuebox::api::ApiConfig;
use venuebox::clock::Clock;
use venuebox::domain::ids::{EventId, TicketId, TierId};
use venuebox::domain::keys::{public_key_from_base64, TrustedKeys};
use venuebox::domain::role::{Actor, Role};
use venuebox::domain::time::parse_rfc3339;
use venuebox::organiser::{self, keyfile::KeyFile, tickets};
use venuebox::server::{self, Config};
use venuebox::store::ImportOutcome;

#[derive(Parser)]
#[command(
    name = "venuebox",
    version,
    about = "The box at the venue: offline ticket check-in for creator-led micro-events."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct DataDir {
    /// Directory holding the database, the box identity and demo files.
    #[arg(long, env = "VENUEBOX_DATA_DIR", default_value = "venuebox-data")]
    data_dir: PathBuf,
}

/// Limits for live proof uploads.
#[derive(Args, Clone)]
struct CaptureArgs {
    /// Largest single upload, in MiB.
    #[arg(long, default_value_t = 4096)]
    max_upload_mb: u64,
    /// Total space captures (and uploads in progress) may use, in GiB.
    #[arg(long, default_value_t = 200)]
    capture_quota_gb: u64,
    /// Refuse and pause uploads when less than this much disk is free, in MiB.
    #[arg(long, default_value_t = 512)]
    disk_floor_mb: u64,
    /// Abandoned uploads expire (and their partial files go) after this many minutes.
    #[arg(long, default_value_t = 24 * 60)]
    upload_expiry_minutes: i64,
}

impl CaptureArgs {
    fn config(&self) -> venuebox::api::tus::CaptureConfig {
        venuebox::api::tus::CaptureConfig {
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
struct SyncCli {
    /// Turn sync on: s3://BUCKET/PREFIX. Keys come from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY, or DATA_DIR/sync-credentials (mode 0600), never flags.
    #[arg(
        long = "sync",
        env = "VENUEBOX_SYNC",
        value_name = "s3://BUCKET/PREFIX"
    )]
    url: Option<String>,
    /// S3 endpoint (MinIO, R2, Garage...); default AWS_ENDPOINT_URL, else AWS for the region.
    #[arg(long = "sync-endpoint")]
    endpoint: Option<String>,
    /// Region; default AWS_REGION, else us-east-1.
    #[arg(long = "sync-region")]
    region: Option<String>,
    /// path or virtual; default path with a custom endpoint, virtual for AWS.
    #[arg(long = "sync-addressing")]
    addressing: Option<String>,
    /// Bandwidth cap for capture uploads, in kbit/s (0: none). Events are never capped.
    #[arg(long = "sync-capture-kbps")]
    capture_kbps: Option<u64>,
    /// An event segment closes when its first event is this many seconds old [default: 5].
    #[arg(long = "sync-segment-secs")]
    segment_secs: Option<u64>,
    /// ...or when it holds this many events [default: 10000].
    #[arg(long = "sync-segment-events")]
    segment_events: Option<usize>,
    /// ...or this many KiB of uncompressed NDJSON [default: 8192].
    #[arg(long = "sync-segment-kib")]
    segment_kib: Option<usize>,
    /// Seconds between looks for a newer signed manifest (0: never) [default: 30].
    #[arg(long = "manifest-poll-secs")]
    manifest_poll_secs: Option<u64>,
    /// Fetch manifests from this HTTPS URL (and URL.sig) instead of the bucket.
    #[arg(long = "manifest-url")]
    manifest_url: Option<String>,
    /// Local time (event time zone) of the nightly payout statements [default: 03:00].
    #[arg(long = "payouts-at", value_name = "HH:MM")]
    payouts_at: Option<String>,
}

impl SyncCli {
    fn config(&self, data_dir: &Path) -> Result<Option<venuebox::sync::config::SyncConfig>> {
        let Some(url) = self.url.clone() else {
            return Ok(None);
        };
        let args = venuebox::sync::config::SyncArgs {
            url,
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            addressing: self.addressing.clone(),
            capture_kbps: self.capture_kbps,
            segment_secs: self.segment_secs,
            segment_events: self.segment_events,
            segment_kib: self.segment_kib,
            manifest_poll_secs: self.manifest_poll_secs,
            manifest_url: self.manifest_url.clone(),
            payouts_at: self.payouts_at.clone(),
        };
        let c = venuebox::sync::config::SyncConfig::resolve(&args, data_dir, &|k| {
            std::env::var(k).ok()
        })
        .map_err(anyhow::Error::msg)?;
        Ok(Some(c))
    }
}

/// What one client, or all of them, may hold open on the listener, and how
/// fast a refused sign-in is answered.
#[derive(Args, Clone)]
struct ConnArgs {
    /// Seconds a request's headers may take to arrive; also how long an idle keep-alive connection stays open.
    #[arg(long, default_value_t = 10)]
    header_timeout_secs: u64,
    /// Seconds a connection may go without a byte either way (a stalled upload, a client that stopped reading).
    #[arg(long, default_value_t = 60)]
    idle_timeout_secs: u64,
    /// Connections open at once, in total.
    #[arg(long, default_value_t = 512)]
    max_connections: usize,
    /// Connections open at once from one address.
    #[arg(long, default_value_t = 64)]
    max_connections_per_address: usize,
    /// Milliseconds a refused sign-in or pairing waits before its answer (a right PIN never waits).
    #[arg(long, default_value_t = 1000)]
    sign_in_refusal_delay_ms: u64,
}

impl ConnArgs {
    fn limits(&self) -> venuebox::api::conn::ConnLimits {
        use std::time::Duration;
        venuebox::api::conn::ConnLimits {
            header_timeout: Duration::from_secs(self.header_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(1)),
            max_connections: self.max_connections.max(1),
            max_per_address: self.max_connections_per_address.max(1),
            ..Default::default()
        }
    }
}

/// The venue LAN: HTTPS with the box's own certificate authority, the
/// pairing page, mDNS.
#[derive(Args, Clone)]
struct LanArgs {
    /// HTTPS with the full API for staff devices on the LAN ("off": none).
    #[arg(long, env = "VENUEBOX_HTTPS_LISTEN", default_value = "0.0.0.0:8443")]
    https_listen: String,
    /// Plain HTTP on the LAN serving only the pairing page and the CA certificate; everything else redirects to HTTPS ("off": none).
    #[arg(long, env = "VENUEBOX_PAIR_LISTEN", default_value = "0.0.0.0:8081")]
    pair_listen: String,
    /// Serve this PEM certificate chain instead of the box's own (reloaded when it changes).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The box's mDNS name: staff open https://NAME.local:8443/ [default: venuebox- and the box id's start].
    #[arg(long)]
    mdns_name: Option<String>,
    /// Do not announce the box on mDNS.
    #[arg(long)]
    no_mdns: bool,
    /// Seconds between looks at the box's addresses (and --tls-cert files); a change re-issues the certificate.
    #[arg(long, default_value_t = 30)]
    lan_check_secs: u64,
}

impl LanArgs {
    fn config(&self) -> venuebox::net::LanConfig {
        venuebox::net::LanConfig {
            mdns_name: self.mdns_name.clone(),
            mdns: !self.no_mdns,
            cert: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => venuebox::net::CertSource::Files {
                    cert: cert.clone(),
                    key: key.clone(),
                },
                _ => venuebox::net::CertSource::BoxCa,
            },
            check_every: std::time::Duration::from_secs(self.lan_check_secs.max(1)),
            addresses: venuebox::net::system_addresses(),
        }
    }
}

async fn bind(what: &str, addr: &str) -> Result<Option<tokio::net::TcpListener>> {
    if addr == "off" {
        return Ok(None);
    }
    Ok(Some(tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} ({what}): is another venuebox (or another program) using it? Stop it, or pick another address with {what} (\"off\" for none)"))?))
}

/// The staff URLs, the CA fingerprint and a QR code of the pairing URL,
/// for the terminal.
fn pairing_text(
    urls: &[String],
    pair_url: Option<&str>,
    fingerprint: Option<&str>,
    code: Option<&str>,
) -> String {
    let mut out = String::new();
    if !urls.is_empty() {
        out += "staff devices open:\n";
        for u in urls {
            out += &format!("  {u}\n");
        }
    }
    if let Some(fp) = fingerprint {
        out += &format!(
            "box CA fingerprint (SHA-256): {}\n",
            venuebox::net::tls::fingerprint_colons(fp)
        );
    }
    if let Some(code) = code {
        out += &format!("pairing code: {code} (one device, 10 minutes)\n");
    }
    if let Some(url) = pair_url {
        out += &format!(
            "scan to pair (installs the box's certificate, then continues over HTTPS): {url}\n"
        );
        if let Ok(qr) = venuebox::domain::qr::terminal(url) {
            out += &qr;
        }
    }
    out
}

#[derive(Subcommand)]
enum Command {
    /// Run the box: the HTTP API for staff devices.
    Serve {
        #[command(flatten)]
        dir: DataDir,
        /// Address to listen on (TLS arrives with the venue LAN work; keep this on loopback until then).
        #[arg(long, env = "VENUEBOX_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// On first start, create and load a demo event (files in DATA_DIR/demo/).
        #[arg(long)]
        demo: bool,
        /// No hardware: simulated lights, receipts written to DATA_DIR/printed/,
        /// scans injected with POST /api/v1/devices/scan.
        #[arg(long)]
        simulate: bool,
        /// Device configuration (JSON): scanners to gates, printers to stations, GPIO pins.
        #[arg(long, env = "VENUEBOX_DEVICES")]
        devices: Option<PathBuf>,
        /// Seconds after a check-in during which a supervisor may undo it.
        #[arg(long, default_value_t = 120)]
        undo_window_secs: i64,
        /// Hours a staff sign-in lasts.
        #[arg(long, default_value_t = 12)]
        session_hours: i64,
        /// Seconds a cart hold keeps drop stock for a buyer before it returns.
        #[arg(long, default_value_t = 120)]
        hold_secs: i64,
        #[command(flatten)]
        captures: CaptureArgs,
        /// Organiser public key (base64) to trust for manifests; repeat for several.
        /// Without one, the first manifest's own keys are trusted.
        #[arg(long = "organiser-key")]
        organiser_keys: Vec<String>,
        #[command(flatten)]
        sync: SyncCli,
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        lan: LanArgs,
    },
    /// Cloud sync: what is pending, or sync now.
    #[command(subcommand)]
    Sync(SyncCommand),
    /// Print a bearer token for scripts on the box itself.
    Token {
        #[command(flatten)]
        dir: DataDir,
        /// door, merch, capture, supervisor or admin.
        #[arg(long)]
        role: String,
        /// Name recorded in the audit log.
        #[arg(long, default_value = "box-cli")]
        name: String,
        /// Hours the token is valid.
        #[arg(long, default_value_t = 12)]
        hours: i64,
    },
    /// Make a one-time code (valid 10 minutes) that pairs one staff device.
    /// Only a paired device can sign in with a PIN.
    Pair {
        #[command(flatten)]
        dir: DataDir,
        /// The box's mDNS name, as given to serve.
        #[arg(long)]
        mdns_name: Option<String>,
        /// The HTTPS port serve listens on.
        #[arg(long, default_value_t = 8443)]
        https_port: u16,
        /// The pairing page's port serve listens on.
        #[arg(long, default_value_t = 8081)]
        pair_port: u16,
        /// Print only the code (for scripts).
        #[arg(long)]
        code_only: bool,
        /// Also print the QR code, URLs and fingerprint on the receipt printer
        /// (the running box's print queue), for staff to scan from paper.
        #[arg(long)]
        print: bool,
        /// The printer station for --print.
        #[arg(long, default_value = "default")]
        station: String,
    },
    /// Boxes announcing themselves on the LAN (mDNS), with their TXT records.
    Discover {
        /// Seconds to listen.
        #[arg(long, default_value_t = 3)]
        wait_secs: u64,
    },
    /// Event manifests: import one into the box, or sign one as organiser.
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Mint signed tickets (organiser).
    #[command(subcommand)]
    Tickets(TicketsCommand),
    /// Make an organiser signing key file.
    Keygen {
        /// Where to write the key (mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// Staff helpers.
    #[command(subcommand)]
    Staff(StaffCommand),
    /// Creator payout statements.
    #[command(subcommand)]
    Payouts(PayoutsCommand),
    /// USB scanners and printers attached to this machine, and what they would do.
    Devices {
        #[command(subcommand)]
        action: Option<DevicesCommand>,
        /// Device configuration (JSON), as for serve.
        #[arg(long, env = "VENUEBOX_DEVICES")]
        devices: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PayoutsCommand {
    /// Write one statement per creator (JSON and CSV) under DATA_DIR/payouts/.
    Run {
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Subcommand)]
enum SyncCommand {
    /// Events and bytes pending, lag, last success, last error.
    Status {
        #[command(flatten)]
        dir: DataDir,
        /// The same status as JSON (as GET /api/v1/sync gives it).
        #[arg(long)]
        json: bool,
    },
    /// Send everything pending now, with a progress bar. With a running
    /// `serve` on this data directory, asks it to sync and follows along.
    Now {
        #[command(flatten)]
        dir: DataDir,
        #[command(flatten)]
        sync: SyncCli,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
}

#[derive(Subcommand)]
enum DevicesCommand {
    /// Blink the LEDs, beep, pulse the relay and print a test page on every printer.
    Test,
}

#[derive(Subcommand)]
enum ManifestCommand {
    /// Verify and load a signed manifest (FILE plus FILE.sig).
    Import {
        file: PathBuf,
        /// Signature file; defaults to FILE.sig.
        #[arg(long)]
        signature: Option<PathBuf>,
        #[command(flatten)]
        dir: DataDir,
        /// Organiser public key (base64) to trust; repeat for several.
        #[arg(long = "organiser-key")]
        organiser_keys: Vec<String>,
    },
    /// Sign FILE with an organiser key, writing FILE.sig.
    Sign {
        /// The manifest (JSON) to sign, as it will be imported, byte for byte.
        file: PathBuf,
        /// The organiser key file (from `venuebox keygen`).
        #[arg(long)]
        key: PathBuf,
    },
}

#[derive(Subcommand)]
enum TicketsCommand {
    /// Mint signed ticket codes, a tickets.csv and one QR PNG per ticket.
    Issue {
        /// The organiser key file that signs the tickets (from `venuebox keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The event id, as in the manifest.
        #[arg(long)]
        event: String,
        /// The tier id, as in the manifest.
        #[arg(long)]
        tier: String,
        /// How many tickets to mint.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Number of the first ticket; ids are PREFIX + number.
        #[arg(long, default_value_t = 1)]
        first: u32,
        /// Ticket id prefix.
        #[arg(long, default_value = "T-")]
        prefix: String,
        /// RFC 3339 time before which the tickets do not scan.
        #[arg(long)]
        valid_from: Option<String>,
        /// RFC 3339 time after which the tickets do not scan.
        #[arg(long)]
        valid_until: Option<String>,
        /// Output directory (tickets.csv is appended to, qr/ filled).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum StaffCommand {
    /// Print the argon2id hash of a PIN for the manifest's staff list.
    HashPin {
        /// The staff member's PIN.
        pin: String,
    },
}

fn init_tracing() {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let filter: Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .init();
}

fn pinned(keys: &[String]) -> Result<TrustedKeys> {
    let keys = keys
        .iter()
        .map(|k| public_key_from_base64(k).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    Ok(TrustedKeys::new(keys))
}

fn unix_secs(s: &Option<String>) -> Result<Option<u32>> {
    s.as_deref()
        .map(|t| {
            parse_rfc3339(t)
                .map(|ms| (ms / 1000) as u32)
                .map_err(anyhow::Error::msg)
        })
        .transpose()
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(cli.command))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve {
            dir,
            listen,
            demo,
            simulate,
            devices,
            undo_window_secs,
            session_hours,
            hold_secs,
            captures,
            organiser_keys,
            sync,
            conn,
            lan,
        } => {
            let config = Config {
                data_dir: dir.data_dir.clone(),
                api: ApiConfig {
                    undo_window_ms: undo_window_secs * 1000,
                    session_ttl_ms: session_hours * 3_600_000,
                    hold_ttl_ms: hold_secs * 1000,
                    captures: captures.config(),
                    pinned_keys: pinned(&organiser_keys)?,
                    refusal_delay_ms: conn.sign_in_refusal_delay_ms,
                },
                read_connections: 4,
                devices: if simulate {
                    venuebox::devices::Mode::Simulate
                } else {
                    venuebox::devices::Mode::Hardware
                },
                device_config: load_devices(devices.as_deref())?,
                sync: sync.config(&dir.data_dir)?,
                conn: conn.limits(),
                lan: (lan.https_listen != "off").then(|| lan.config()),
            };
            let _serving = server::lock_data_dir(&dir.data_dir)?;
            // Ports first: a port in use is said before anything is opened.
            let plain = bind("--listen", &listen).await?;
            let (https, pair) = if config.lan.is_some() {
                (
                    bind("--https-listen", &lan.https_listen).await?,
                    bind("--pair-listen", &lan.pair_listen).await?,
                )
            } else {
                (None, None)
            };
            let state = server::open(&config, Clock::system())
                .with_context(|| format!("cannot open {}", dir.data_dir.display()))?;
            let mut code = None;
            if demo {
                load_demo(&state, &dir.data_dir).await?;
                let actor = Actor {
                    name: "demo".into(),
                    role: Role::Supervisor,
                };
                code = Some(
                    state
                        .store
                        .create_pairing_code(
                            actor,
                            state.clock.now(),
                            venuebox::api::PAIRING_CODE_TTL_MS,
                        )
                        .await?
                        .0,
                );
            }
            match state.store.event() {
                Some(ev) => tracing::info!(event = %ev.event_id(), version = ev.manifest.version, "event loaded"),
                None => tracing::warn!("no event loaded: import a manifest (venuebox manifest import FILE) or start with --demo"),
            }
            if let Some(l) = &plain {
                let addr = l.local_addr()?;
                println!(
                    "venuebox listening on http://{addr} (box {})",
                    state.store.box_id()
                );
                tracing::info!(%addr, box_id = state.store.box_id(), "listening");
            }
            if let Some(l) = &https {
                println!(
                    "venuebox listening on https://{} (CA certificate: {})",
                    l.local_addr()?,
                    venuebox::net::tls::tls_dir(&dir.data_dir)
                        .join("ca.pem")
                        .display()
                );
            }
            if let (Some(l), Some(lan_state), Some(h)) = (&pair, &state.lan, &https) {
                let (pair_port, https_port) = (l.local_addr()?.port(), h.local_addr()?.port());
                println!("pairing page on http://{}", l.local_addr()?);
                let urls = venuebox::api::lan::staff_urls(&state, https_port);
                let url = lan_state.pair_url(pair_port, code.as_deref());
                print!(
                    "{}",
                    pairing_text(
                        &urls,
                        Some(&url),
                        lan_state.fingerprint().as_deref(),
                        code.as_deref()
                    )
                );
            } else if let Some(code) = &code {
                println!("pair a staff device with code {code} (one device, 10 minutes; `venuebox pair` makes more)");
            }
            server::serve_on(
                state,
                server::Listeners { plain, https, pair },
                shutdown_signal(),
            )
            .await?;
            Ok(())
        }
        Command::Discover { wait_secs } => {
            let found = tokio::task::spawn_blocking(move || {
                venuebox::net::mdns::discover(std::time::Duration::from_secs(wait_secs))
            })
            .await??;
            if found.is_empty() {
                println!("no venuebox found on this network in {wait_secs} s (is multicast allowed on this Wi-Fi?)");
            }
            for f in found {
                let txt: Vec<String> = f.txt.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!(
                    "{}  https://{}:{}/  [{}]  {}",
                    f.instance,
                    f.host.trim_end_matches('.'),
                    f.port,
                    f.addresses.join(", "),
                    txt.join(" ")
                );
            }
            Ok(())
        }
        Command::Token {
            dir,
            role,
            name,
            hours,
        } => {
            let role: Role = role.parse().map_err(anyhow::Error::msg)?;
            let state = server::open(&Config::new(&dir.data_dir), Clock::system())?;
            let now = state.clock.now();
            let (token, _) = state
                .store
                .create_session(Actor { name, role }, now, hours * 3_600_000)
                .await?;
            println!("{token}");
            Ok(())
        }
        Command::Pair {
            dir,
            mdns_name,
            https_port,
            pair_port,
            code_only,
            print,
            station,
        } => {
            let state = server::open(&Config::new(&dir.data_dir), Clock::system())?;
            let actor = Actor {
                name: "box-cli".into(),
                role: Role::Admin,
            };
            let ttl = venuebox::api::PAIRING_CODE_TTL_MS;
            let now = state.clock.now();
            let (code, expires_at) = state.store.create_pairing_code(actor, now, ttl).await?;
            if code_only {
                println!("{code}");
                return Ok(());
            }
            let name =
                mdns_name.unwrap_or_else(|| venuebox::net::default_mdns_name(state.store.box_id()));
            let names =
                venuebox::net::tls::Names::for_box(&name, venuebox::net::tls::local_addresses());
            let ca = venuebox::net::tls::load_or_create_ca(&dir.data_dir, state.store.box_id())?;
            let urls = venuebox::net::staff_urls(&names, https_port);
            let url = venuebox::net::pair_url(&names, pair_port, Some(&code));
            print!(
                "{}",
                pairing_text(&urls, Some(&url), Some(&ca.fingerprint()), Some(&code))
            );
            if print {
                let slip = venuebox::store::printing::PairingSlip {
                    url,
                    urls,
                    fingerprint: Some(ca.fingerprint()),
                    code,
                    expires_at: venuebox::domain::time::format_rfc3339(expires_at),
                };
                let job = state
                    .store
                    .queue_pairing_slip(slip, station.clone(), now)
                    .await?;
                println!("queued for the printer at station {station} (job {job}); the running box prints it");
            }
            Ok(())
        }
        Command::Manifest(ManifestCommand::Import {
            file,
            signature,
            dir,
            organiser_keys,
        }) => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let sig_path = signature.unwrap_or_else(|| organiser::signature_path(&file));
            let sig = std::fs::read_to_string(&sig_path).ok();
            if sig.is_none() {
                bail!("no signature at {}: sign the manifest (venuebox manifest sign) or pass --signature", sig_path.display());
            }
            let state = server::open(&Config::new(&dir.data_dir), Clock::system())?;
            let actor = Actor {
                name: "box-cli".into(),
                role: Role::Admin,
            };
            let outcome = state
                .store
                .import_manifest(
                    bytes,
                    sig,
                    pinned(&organiser_keys)?,
                    actor,
                    state.clock.now(),
                )
                .await?;
            match outcome {
                ImportOutcome::Imported {
                    event_id,
                    version,
                    tickets,
                    ..
                } => println!("imported {event_id} version {version} ({tickets} listed tickets)"),
                ImportOutcome::Unchanged { event_id, version } => {
                    println!("{event_id} version {version} is already loaded")
                }
            }
            Ok(())
        }
        Command::Manifest(ManifestCommand::Sign { file, key }) => {
            let key = KeyFile::load(&key)?;
            let out = organiser::sign_manifest(&file, &key)?;
            println!("wrote {}", out.display());
            Ok(())
        }
        Command::Tickets(TicketsCommand::Issue {
            key,
            event,
            tier,
            count,
            first,
            prefix,
            valid_from,
            valid_until,
            out,
        }) => {
            let key = KeyFile::load(&key)?;
            let ids =
                (first..first.saturating_add(count)).map(|n| TicketId(format!("{prefix}{n}")));
            let window = (unix_secs(&valid_from)?, unix_secs(&valid_until)?);
            let minted = tickets::mint(
                &key.signing_key(),
                &EventId(event),
                &TierId(tier),
                ids,
                window,
            )?;
            let rows: Vec<_> = minted.into_iter().map(|m| (m.id, m.tier, m.code)).collect();
            tickets::write_out(&out, &rows, true)?;
            println!("minted {} tickets into {}", rows.len(), out.display());
            Ok(())
        }
        Command::Keygen { out } => {
            if out.exists() {
                bail!("{} exists: refusing to overwrite a key", out.display());
            }
            let key = KeyFile::generate();
            key.save(&out)?;
            println!(
                "key {} written to {}\npublic key for the manifest's organiser_keys: {}",
                key.key_id,
                out.display(),
                key.public_key
            );
            Ok(())
        }
        Command::Sync(cmd) => sync_command(cmd).await,
        Command::Payouts(PayoutsCommand::Run { dir }) => {
            let state = server::open(&Config::new(&dir.data_dir), Clock::system())?;
            let (statements, files) = venuebox::sync::payouts::run_statements(
                &state.store,
                &dir.data_dir,
                state.clock.now(),
            )
            .await?;
            for s in &statements {
                println!(
                    "{:<16} {:<24} payout {}",
                    s.creator,
                    s.name,
                    venuebox::domain::money::format_money(s.totals.payout_minor, &s.currency)
                );
            }
            println!(
                "wrote {} files under {} (queued for the bucket when sync is on)",
                files.len(),
                dir.data_dir.join("payouts").display()
            );
            Ok(())
        }
        Command::Devices { action, devices } => {
            let config = load_devices(devices.as_deref())?;
            match venuebox::devices::usb::list(&config).await {
                Ok(list) if list.is_empty() => println!("no USB scanners or printers found"),
                Ok(list) => {
                    for (port, name, role) in list {
                        println!("{port:<10} {name:<50} {role}");
                    }
                }
                Err(e) => println!("USB unavailable: {e}"),
            }
            match venuebox::devices::signals::RppalGpio::open(&config.gpio) {
                Ok(g) => {
                    println!("{}", venuebox::devices::signals::Gpio::describe(&g));
                    if matches!(action, Some(DevicesCommand::Test)) {
                        let s = venuebox::devices::signals::Signaller::new(
                            std::sync::Arc::new(g),
                            config.gpio.clone(),
                        );
                        s.self_test();
                        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
                        println!("GPIO: green, red, buzzer and relay switched; watch the door");
                    }
                }
                Err(e) => println!("GPIO unavailable: {e}"),
            }
            if matches!(action, Some(DevicesCommand::Test)) {
                let n = venuebox::devices::usb::print_test_pages().await?;
                println!("test page sent to {n} printer(s)");
            }
            Ok(())
        }
        Command::Staff(StaffCommand::HashPin { pin }) => {
            println!("{}", organiser::demo::hash_pin(&pin));
            Ok(())
        }
    }
}

fn ago(now: i64, at: &Option<String>) -> String {
    match at.as_deref().map(parse_rfc3339) {
        Some(Ok(t)) => format!(
            "{} ({}s ago)",
            at.as_deref().unwrap_or_default(),
            (now - t) / 1000
        ),
        _ => "never".into(),
    }
}

fn mib(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

fn print_status(s: &venuebox::sync::SyncStatus, now: i64) {
    println!("sync            {}", s.state);
    println!(
        "events pending  {} ({}), seq {} of {}",
        s.events_pending,
        mib(s.event_bytes_pending),
        s.cursor,
        s.last_seq
    );
    println!(
        "captures        {} pending ({})",
        s.captures_pending,
        mib(s.capture_bytes_pending)
    );
    println!("files pending   {}", s.files_pending);
    println!("lag             {:.1} s", s.lag_seconds);
    println!("last success    {}", ago(now, &s.last_success_at));
    match &s.last_error {
        Some(e) => println!(
            "last error      [{}] {} at {}",
            s.last_error_kind.as_deref().unwrap_or("?"),
            e,
            s.last_error_at.as_deref().unwrap_or("?")
        ),
        None => println!("last error      none"),
    }
    println!(
        "manifest        updates {}",
        if s.manifest_updates_frozen {
            "FROZEN by an admin"
        } else {
            "applied when newer"
        }
    );
}

fn progress(total: i64, left: i64, what: &str) -> String {
    let done = (total - left).max(0);
    let width = 30;
    let filled = if total > 0 {
        (done * width / total) as usize
    } else {
        width as usize
    };
    format!(
        "[{}{}] {done}/{total} {what}",
        "#".repeat(filled),
        " ".repeat(width as usize - filled)
    )
}

async fn sync_command(cmd: SyncCommand) -> Result<()> {
    use std::io::Write;
    match cmd {
        SyncCommand::Status { dir, json } => {
            let state = server::open(&Config::new(&dir.data_dir), Clock::system())?;
            let now = state.clock.now();
            let mut s = venuebox::sync::status(&state.store, &state.sync, now).await?;
            // This process does not sync; say whether a running box does.
            s.state = match venuebox::sync::try_lock(&dir.data_dir)? {
                None => "syncing in a running venuebox serve".into(),
                Some(_) => "not running (no venuebox serve --sync on this data directory)".into(),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print_status(&s, now);
            }
            if s.permanent_error() {
                std::process::exit(2);
            }
            Ok(())
        }
        SyncCommand::Now {
            dir,
            sync,
            timeout_secs,
        } => {
            let config = sync.config(&dir.data_dir)?;
            let mut server_config = Config::new(&dir.data_dir);
            server_config.sync = config.clone();
            let state = server::open(&server_config, Clock::system())?;
            let start =
                venuebox::sync::status(&state.store, &state.sync, state.clock.now()).await?;
            let (events_total, captures_total) = (start.events_pending, start.captures_pending);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout_secs);
            let lock = venuebox::sync::try_lock(&dir.data_dir)?;
            let syncer = match (lock.is_some(), config) {
                (true, Some(c)) => Some(
                    venuebox::sync::Syncer::new(
                        state.store.clone(),
                        state.media.clone(),
                        state.clock.clone(),
                        c,
                        state.sync.clone(),
                        Default::default(),
                        dir.data_dir.clone(),
                    )
                    .map_err(anyhow::Error::msg)?,
                ),
                (true, None) => {
                    bail!("no bucket given: pass --sync s3://BUCKET/PREFIX (or set VENUEBOX_SYNC)")
                }
                (false, _) => {
                    state.store.sync_request(state.clock.now()).await?;
                    eprintln!("a running venuebox serve syncs this box; asked it to sync now");
                    None
                }
            };
            let mut failures = 0;
            loop {
                if let Some(s) = &syncer {
                    match s.round(true).await {
                        Ok(_) => failures = 0,
                        Err((stream, e)) if e.is_permanent() => {
                            eprintln!();
                            bail!("sync of {stream} stopped by a permanent error: {e}");
                        }
                        Err((_, e)) => {
                            failures += 1;
                            eprintln!("\nretrying: {e}");
                            tokio::time::sleep(venuebox::sync::backoff(
                                failures,
                                std::time::Duration::from_secs(1),
                                std::time::Duration::from_secs(30),
                            ))
                            .await;
                        }
                    }
                } else {
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                let s =
                    venuebox::sync::status(&state.store, &state.sync, state.clock.now()).await?;
                eprint!(
                    "\r{}  {}   ",
                    progress(events_total, s.events_pending, "events"),
                    progress(captures_total, s.captures_pending, "captures")
                );
                let _ = std::io::stderr().flush();
                if s.events_pending == 0 && s.captures_pending == 0 && s.files_pending == 0 {
                    eprintln!("\nall synced");
                    return Ok(());
                }
                if syncer.is_none() && s.permanent_error() {
                    eprintln!();
                    bail!("sync is stopped: {}", s.last_error.unwrap_or_default());
                }
                if std::time::Instant::now() > deadline {
                    eprintln!();
                    bail!("not caught up after {timeout_secs} s: {} events and {} captures pending; see venuebox sync status", s.events_pending, s.captures_pending);
                }
            }
        }
    }
}

fn load_devices(path: Option<&Path>) -> Result<venuebox::devices::config::DevicesConfig> {
    match path {
        Some(p) => venuebox::devices::config::DevicesConfig::load(p).map_err(anyhow::Error::msg),
        None => Ok(Default::default()),
    }
}

/// Creates and loads the demo event unless the box already holds an event.
async fn load_demo(state: &venuebox::api::AppState, data_dir: &Path) -> Result<()> {
    if let Some(ev) = state.store.event() {
        tracing::info!(event = %ev.event_id(), "--demo: an event is already loaded, keeping it");
        return Ok(());
    }
    let demo = organiser::demo::create(
        data_dir,
        state.clock.now(),
        Some(&state.store.box_public_key()),
    )?;
    let bytes = std::fs::read(&demo.manifest)?;
    let sig = std::fs::read_to_string(&demo.signature)?;
    let actor = Actor {
        name: "demo".into(),
        role: Role::Admin,
    };
    state
        .store
        .import_manifest(
            bytes,
            Some(sig),
            TrustedKeys::default(),
            actor,
            state.clock.now(),
        )
        .await?;
    println!(
        "demo event loaded: see {}",
        demo.dir.join("README.txt").display()
    );
    Ok(())
}
