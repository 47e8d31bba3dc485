//! `venuebox serve`: bind the ports, open the data directory, load the
//! demo event when asked, print how staff reach and pair with the box, and
//! serve until SIGTERM or Ctrl-C.

use super::args::{CaptureArgs, ConnArgs, DataDir, LanArgs, PretixCli, SyncCli};
use super::{load_devices, pinned};
use anyhow::{Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use venuebox::api::ApiConfig;
use venuebox::clock::Clock;
use venuebox::domain::keys::TrustedKeys;
use venuebox::domain::role::{Actor, Role};
use venuebox::organiser;
use venuebox::server::{self, Config};

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// Plain HTTP with the full API, for scripts and tools on the box itself: keep it on loopback
    /// (staff devices use --https-listen).
    #[arg(long, env = "VENUEBOX_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// On first start, create and load a demo event (files in DATA_DIR/demo/).
    #[arg(long)]
    pub demo: bool,
    /// No hardware: simulated lights, receipts written to DATA_DIR/printed/,
    /// scans injected with POST /api/v1/devices/scan.
    #[arg(long)]
    pub simulate: bool,
    /// Device configuration (JSON): scanners to gates, printers to stations, GPIO pins.
    #[arg(long, env = "VENUEBOX_DEVICES")]
    pub devices: Option<PathBuf>,
    /// Fault injection for the watchdog test: after SECS, block the store's
    /// writer thread for good (systemd's watchdog should restart the box).
    #[arg(long, value_name = "SECS", hide = true)]
    pub fault_stall_writer_after: Option<u64>,
    /// Seconds after a check-in during which a supervisor may undo it.
    #[arg(long, default_value_t = ApiConfig::default().undo_window_ms / 1000)]
    pub undo_window_secs: i64,
    /// Hours a staff sign-in lasts.
    #[arg(long, default_value_t = ApiConfig::default().session_ttl_ms / 3_600_000)]
    pub session_hours: i64,
    /// Seconds a cart hold keeps drop stock for a buyer before it returns.
    #[arg(long, default_value_t = ApiConfig::default().hold_ttl_ms / 1000)]
    pub hold_secs: i64,
    #[command(flatten)]
    pub captures: CaptureArgs,
    /// Organiser public key (base64) to trust for manifests; repeat for several.
    /// Without one, the first manifest's own keys are trusted.
    #[arg(long = "organiser-key")]
    pub organiser_keys: Vec<String>,
    #[command(flatten)]
    pub sync: SyncCli,
    #[command(flatten)]
    pub pretix: PretixCli,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub lan: LanArgs,
    /// With a standby connected, the longest an answer waits for it to
    /// have the write; past it the box goes on alone (and says so).
    #[arg(long, default_value_t = 1000)]
    pub standby_ack_ms: u64,
}

/// The server's configuration from the flags (and the configuration file
/// behind them); files it names (devices, sync credentials) are read and
/// checked, nothing is bound or opened.
pub fn server_config(args: &ServeArgs) -> Result<Config> {
    let data_dir = args.dir.data_dir.clone();
    Ok(Config {
        api: ApiConfig {
            undo_window_ms: args.undo_window_secs * 1000,
            session_ttl_ms: args.session_hours * 3_600_000,
            hold_ttl_ms: args.hold_secs * 1000,
            captures: args.captures.config(),
            pinned_keys: pinned(&args.organiser_keys)?,
            refusal_delay_ms: args.conn.sign_in_refusal_delay_ms,
        },
        read_connections: 4,
        devices: if args.simulate {
            venuebox::devices::Mode::Simulate
        } else {
            venuebox::devices::Mode::Hardware
        },
        device_config: load_devices(args.devices.as_deref())?,
        sync: args.sync.config(&data_dir)?,
        conn: args.conn.limits(),
        lan: (args.lan.https_listen != "off").then(|| args.lan.config()),
        pretix: args.pretix.config(&data_dir)?,
        pretend_disk_bytes: None,
        replication: venuebox::replication::ReplicationConfig {
            ack_bound: std::time::Duration::from_millis(args.standby_ack_ms.max(1)),
            ..venuebox::replication::ReplicationConfig::new(data_dir.clone())
        },
        data_dir,
    })
}

/// Serves until a shutdown signal.
pub async fn run(args: ServeArgs) -> Result<()> {
    let config = server_config(&args)?;
    let ServeArgs { dir, listen, demo, fault_stall_writer_after, lan, .. } = args;
    let _serving = server::lock_data_dir_within(&dir.data_dir, server::LOCK_PATIENCE)?;
    let files = server::raise_file_limit();
    if files < 2048 {
        tracing::warn!(
            limit = files,
            "the open-file limit is low for the connection budgets: raise LimitNOFILE"
        );
    }
    // Ports first: a port in use is said before anything is opened.
    let plain = bind("--listen", &listen).await?;
    let (https, pair, link) = if config.lan.is_some() {
        (
            bind("--https-listen", &lan.https_listen).await?,
            bind("--pair-listen", &lan.pair_listen).await?,
            bind("--link-listen", &lan.link_listen).await?,
        )
    } else {
        (None, None, None)
    };
    let state = server::open(&config, Clock::system())
        .with_context(|| format!("cannot open {}", dir.data_dir.display()))?;
    // The admin screen's rehearsal: above the server, so handed in here.
    let _ = state.rehearse.set(std::sync::Arc::new(venuebox::rehearsal::FromRunningBox));
    if let (Some(ev), Some(closed)) = (state.store.event(), state.store.closed_event().await?) {
        if ev.event_id().to_string() == closed {
            anyhow::bail!("event {closed} was closed on this box (venuebox event close): import the next event's manifest (venuebox manifest import FILE) to serve again");
        }
    }
    let mut code = None;
    if demo {
        load_demo(&state, &dir.data_dir).await?;
        let actor = Actor { name: "demo".into(), role: Role::Supervisor };
        code = Some(
            state
                .store
                .create_pairing_code(actor, state.clock.now(), venuebox::api::PAIRING_CODE_TTL_MS)
                .await?
                .0,
        );
    }
    if let Some(secs) = fault_stall_writer_after {
        let store = state.store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
            tracing::warn!("fault injection: stalling the store's writer thread");
            let _ = store.stall_writer().await;
        });
    }
    match state.store.event() {
        Some(ev) => tracing::info!(event = %ev.event_id(), version = ev.manifest.version, "event loaded"),
        None => tracing::warn!("no event loaded: import a manifest (venuebox manifest import FILE) or start with --demo"),
    }
    if let Some(l) = &plain {
        let addr = l.local_addr()?;
        println!("venuebox listening on http://{addr} (box {})", state.store.box_id());
        tracing::info!(%addr, box_id = state.store.box_id(), "listening");
    }
    if let Some(l) = &link {
        let st = state.store.replica_state().await?;
        println!(
            "standby link on {} ({} at epoch {}; venuebox pair --standby enrols a standby)",
            l.local_addr()?,
            if st.role == venuebox::store::replica::Role::Primary { "primary" } else { "standby" },
            st.epoch
        );
    }
    if let Some(l) = &https {
        println!(
            "venuebox listening on https://{} (CA certificate: {})",
            l.local_addr()?,
            venuebox::net::tls::tls_dir(&dir.data_dir).join("ca.pem").display()
        );
    }
    if let (Some(l), Some(lan_state), Some(h)) = (&pair, &state.lan, &https) {
        let (pair_port, https_port) = (l.local_addr()?.port(), h.local_addr()?.port());
        println!("pairing page on http://{}", l.local_addr()?);
        let urls = venuebox::api::lan::staff_urls(&state, https_port);
        let url = lan_state.pair_url(pair_port, code.as_deref());
        print!(
            "{}",
            pairing_text(&urls, Some(&url), lan_state.fingerprint().as_deref(), code.as_deref())
        );
    } else if let Some(code) = &code {
        println!("pair a staff device with code {code} (one device, 10 minutes; `venuebox pair` makes more)");
    }
    server::serve_on(state, server::Listeners { plain, https, pair, link }, shutdown_signal())
        .await?;
    Ok(())
}

async fn bind(what: &str, addr: &str) -> Result<Option<tokio::net::TcpListener>> {
    if addr == "off" {
        return Ok(None);
    }
    Ok(Some(tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} ({what}): is another venuebox (or another program) using it? Stop it, or pick another address with {what} (\"off\" for none)"))?))
}

/// The staff URLs, the CA fingerprint and a QR code of the pairing URL,
/// for the terminal.
pub(super) fn pairing_text(
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

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// Creates and loads the demo event unless the box already holds an event.
async fn load_demo(state: &venuebox::api::AppState, data_dir: &Path) -> Result<()> {
    if let Some(ev) = state.store.event() {
        tracing::info!(event = %ev.event_id(), "--demo: an event is already loaded, keeping it");
        return Ok(());
    }
    let demo =
        organiser::demo::create(data_dir, state.clock.now(), Some(&state.store.box_public_key()))?;
    let bytes = std::fs::read(&demo.manifest)?;
    let sig = std::fs::read_to_string(&demo.signature)?;
    let actor = Actor { name: "demo".into(), role: Role::Admin };
    state
        .store
        .import_manifest(bytes, Some(sig), TrustedKeys::default(), actor, state.clock.now())
        .await?;
    println!("demo event loaded: see {}", demo.dir.join("README.txt").display());
    Ok(())
}
