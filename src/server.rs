//! Start-up and the one entry point that serves: open the store, build the
//! API state, and run the HTTP server on a given listener until `shutdown`
//! resolves. Tests call [`serve`] with a listener on `127.0.0.1:0`.

use crate::api::{self, ApiConfig, AppState};
use crate::clock::Clock;
use crate::devices::config::DevicesConfig;
use crate::devices::pipeline::ScanPipeline;
use crate::devices::printing::{FakePrinter, Printer};
use crate::devices::registry::{DeviceState, Registry};
use crate::devices::signals::{FakeGpio, Gpio, RppalGpio, Signaller};
use crate::devices::usb::UsbManager;
use crate::devices::{self, Devices};
use crate::media::MediaFiles;
use crate::metrics::Metrics;
use crate::parts::Venuebox;
use crate::store::{Store, StoreError, StoreOptions};
use crate::sync::{SyncHandle, Syncer};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub api: ApiConfig,
    pub read_connections: usize,
    pub devices: devices::Mode,
    pub device_config: DevicesConfig,
    /// Cloud sync; `None`: the box keeps everything to itself.
    pub sync: Option<crate::sync::config::SyncConfig>,
    /// Connection caps and timeouts on the listeners.
    pub conn: api::conn::ConnLimits,
    /// HTTPS certificates and mDNS; `None`: plain HTTP only (tests, scripts).
    pub lan: Option<crate::net::LanConfig>,
    /// Sending scans back to pretix and importing again; `None`: no token.
    pub pretix: Option<crate::pretix::PretixConfig>,
    /// Tests only: judge free disk space on a pretend disk of this many
    /// bytes holding just the capture files (the real disk is shared with
    /// other tests).
    pub pretend_disk_bytes: Option<u64>,
    /// The standby link (`--standby-ack-ms` and friends).
    pub replication: crate::replication::ReplicationConfig,
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        let data_dir: PathBuf = data_dir.into();
        Config {
            api: ApiConfig::default(),
            read_connections: 4,
            devices: devices::Mode::Off,
            device_config: DevicesConfig::default(),
            sync: None,
            conn: Default::default(),
            lan: None,
            pretix: None,
            pretend_disk_bytes: None,
            replication: crate::replication::ReplicationConfig::new(data_dir.clone()),
            data_dir,
        }
    }
}

/// The lights, the scan pipeline and (when simulating) the fake printer.
fn open_devices(config: &Config, store: &Store, clock: &Clock) -> Result<Devices, OpenError> {
    let mut fake_gpio = None;
    let mut gpio_missing = None;
    let gpio: Arc<dyn Gpio> = match config.devices {
        devices::Mode::Hardware => {
            match RppalGpio::open(&config.device_config.gpio) {
                Ok(g) => Arc::new(g),
                Err(e) => {
                    tracing::warn!(reason = %e, "GPIO unavailable: the door lights, buzzer and relay are off");
                    gpio_missing = Some(format!("{e}: the door lights, buzzer and relay are off; check-in works without them"));
                    let f = Arc::new(FakeGpio::default());
                    fake_gpio = Some(f.clone());
                    f
                }
            }
        }
        _ => {
            let f = Arc::new(FakeGpio::default());
            fake_gpio = Some(f.clone());
            f
        }
    };
    let registry = Arc::new(Registry::default());
    registry.set(DeviceState {
        id: "gpio".into(),
        kind: "gpio".into(),
        name: gpio.describe(),
        role: "door lights, buzzer, relay".into(),
        status: if gpio_missing.is_some() { "unavailable".into() } else { "ready".into() },
        detail: gpio_missing,
    });
    let signaller = Signaller::new(gpio, config.device_config.gpio.clone());
    let fake_printer = if config.devices == devices::Mode::Simulate {
        let p = Arc::new(FakePrinter::new(config.data_dir.join("printed"))?);
        registry.set(DeviceState {
            id: p.id(),
            kind: "printer".into(),
            name: format!(
                "simulated printer writing to {}",
                config.data_dir.join("printed").display()
            ),
            role: "station default".into(),
            status: "ready".into(),
            detail: None,
        });
        Some(p)
    } else {
        None
    };
    Ok(Devices {
        mode: config.devices.clone(),
        config: Arc::new(config.device_config.clone()),
        pipeline: Arc::new(ScanPipeline::new(store.clone(), clock.clone(), signaller)),
        registry,
        fake_gpio,
        fake_printer,
    })
}

/// Opens the data directory and builds the state every request shares.
pub fn open(config: &Config, clock: Clock) -> Result<AppState, OpenError> {
    let metrics = Arc::new(Metrics::default());
    let store = Store::open(
        &config.data_dir,
        metrics.clone(),
        StoreOptions { read_connections: config.read_connections, ..StoreOptions::default() },
    )?;
    let media = MediaFiles::open_on(&config.data_dir, config.pretend_disk_bytes)?;
    let devices = Arc::new(open_devices(config, &store, &clock)?);
    let lan = match &config.lan {
        Some(c) => Some(crate::net::Lan::open(config.data_dir.clone(), store.box_id(), c.clone())?),
        None => None,
    };
    let sync = Arc::new(match &config.sync {
        Some(c) => SyncHandle::enabled(c.clone(), config.data_dir.clone()),
        None => SyncHandle::default(),
    });
    let (media_for_link, metrics_for_link) = (media.clone(), metrics.clone());
    let parts = Venuebox {
        store,
        metrics,
        clock: clock.clone(),
        media,
        uploads: Default::default(),
        devices,
        sync,
        pretix: Arc::new(crate::pretix::PretixHandle {
            setup: config.pretix.clone(),
            ..Default::default()
        }),
        lan,
        replication: crate::replication::Replication::new(
            config.replication.clone(),
            clock,
            media_for_link,
            metrics_for_link,
        ),
    };
    Ok(AppState::new(parts, config.api.clone(), config.conn.clone()))
}

/// Raises this process's open-file limit to its hard limit: the
/// connection budgets (LAN and loopback, each up to `max_connections`)
/// plus the database and capture files need more than the common soft
/// limit of 1,024. Returns the limit now in force.
pub fn raise_file_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit { rlim_cur: lim.rlim_max.min(65_536), rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = want.rlim_cur;
            }
        }
    }
    lim.rlim_cur
}

/// Applies the offset an admin gave the box's clock, if any.
async fn load_clock_offset(state: &Venuebox) -> Result<Option<i64>, crate::store::StoreError> {
    use crate::store::sync::CLOCK_OFFSET_SETTING;
    let offset = state.store.setting(CLOCK_OFFSET_SETTING).await?.and_then(|o| o.parse().ok());
    if let Some(ms) = offset {
        state.clock.set_offset(ms);
    }
    Ok(offset)
}

/// Opens the box's data for a command run beside (or instead of) the
/// box, on the box's clock: the admin's offset applied, so a token, a
/// pairing code or an import is timed as the running box times things.
pub async fn open_on_box_clock(config: &Config) -> Result<AppState, OpenError> {
    let state = open(config, Clock::system())?;
    load_clock_offset(&state).await?;
    Ok(state)
}

/// Takes the data directory for this process: a second `serve` on the
/// same directory (same box id, a second writer, a second sync loop) is
/// refused. Hold the returned file while serving.
pub fn lock_data_dir(data_dir: &std::path::Path) -> Result<std::fs::File, LockError> {
    let io = |source| LockError::Io { dir: data_dir.to_path_buf(), source };
    std::fs::create_dir_all(data_dir).map_err(io)?;
    crate::store::identity::try_lock_file(&data_dir.join("serve.lock"))
        .map_err(io)?
        .ok_or_else(|| LockError::Busy(data_dir.to_path_buf()))
}

/// How long `serve` waits for a data directory another process holds.
/// A box killed a moment ago can leave a child (a decoder between `fork`
/// and `exec`, at the lowest priority) holding the lock for a few
/// milliseconds more; a supervisor's restart must not fail on that.
pub const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

/// [`lock_data_dir`], trying again for up to `patience` while the
/// directory is busy.
pub fn lock_data_dir_within(
    data_dir: &std::path::Path,
    patience: std::time::Duration,
) -> Result<std::fs::File, LockError> {
    let until = std::time::Instant::now() + patience;
    loop {
        match lock_data_dir(data_dir) {
            Err(LockError::Busy(_)) if std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            done => return done,
        }
    }
}

/// Where the box listens.
#[derive(Default)]
pub struct Listeners {
    /// Plain HTTP with the full API: scripts and tests, on loopback.
    pub plain: Option<TcpListener>,
    /// HTTPS with the full API: staff devices on the LAN.
    pub https: Option<TcpListener>,
    /// Plain HTTP on the LAN: only the pairing page and the CA
    /// certificate; everything else is redirected to HTTPS.
    pub pair: Option<TcpListener>,
    /// The standby link (mutual TLS between the two boxes of a pair).
    pub link: Option<TcpListener>,
}

/// Serves the API on `listener` (plain HTTP) until `shutdown` resolves,
/// then finishes the requests in flight. Every acknowledged write is
/// already on disk.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_on(state, Listeners { plain: Some(listener), ..Default::default() }, shutdown).await
}

/// Serves on every listener given until `shutdown` resolves. HTTPS and
/// the pairing listener need the LAN side (`state.lan`); mDNS announces
/// the HTTPS port when it is on.
pub async fn serve_on(
    state: AppState,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Err(e) = apply_clock(&state).await {
        tracing::warn!(error = %e, "cannot check the box's clock");
    }
    state.uploads_lifecycle().recover().await;
    if let Err(e) = state.auth.load_devices(&state.store).await {
        tracing::warn!(error = %e, "cannot load the paired devices yet; the first sign-in will try again");
    }
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    tasks.spawn(housekeeping(state.parts.clone(), stop.clone()));
    tasks.spawn(thumbnails(state.parts.clone(), stop.clone()));
    crate::api::forward::attach_scanners(&state);
    start_devices(&state, &tasks, &stop);
    let _sync_lock = start_sync(&state, state.config.pinned_keys.clone(), &tasks, &stop);
    if state.pretix.setup.is_some() {
        tasks.spawn(crate::pretix::run(
            state.pretix.clone(),
            state.store.clone(),
            state.clock.clone(),
            stop.clone(),
        ));
    }
    let mut listeners = listeners;
    let https_port = listeners.https.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.port());
    start_replication(&state, listeners.link.take(), https_port, &tasks, &stop).await;
    if let Some(lan) = &state.lan {
        lan.set_ports(
            https_port,
            listeners.pair.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.port()),
        );
    }
    let announcer = match (&state.lan, https_port) {
        (Some(lan), Some(port)) => start_lan(&state, lan, port, &tasks, &stop),
        _ => None,
    };
    // One token ends every listener; the caller's future cancels it.
    let quit = CancellationToken::new();
    tasks.spawn(tell_systemd(state.parts.clone(), quit.clone()));
    tasks.close();
    let q = quit.clone();
    tokio::spawn(async move {
        shutdown.await;
        q.cancel();
    });
    let result = serve_listeners(&state, listeners, https_port, &quit).await;
    if let Some(a) = announcer {
        let _ = tokio::task::spawn_blocking(move || a.goodbye()).await;
    }
    stop.cancel();
    tasks.wait().await;
    result
}

/// The standby link, when this box listens for one or is in a pair.
async fn start_replication(
    state: &Venuebox,
    listener: Option<TcpListener>,
    web_port: Option<u16>,
    tasks: &TaskTracker,
    stop: &CancellationToken,
) {
    let paired = state.store.peer_address().await.ok().flatten().is_some();
    if listener.is_none() && !paired {
        return;
    }
    let port = listener.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.port());
    state.replication.update_listen(port, web_port);
    let node = match state.store.node_name().await {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "the standby link is off: cannot name this box");
            return;
        }
    };
    let tls = crate::net::tls::load_or_create_ca(
        &state.replication.config.data_dir,
        state.store.box_id(),
    )
    .and_then(|ca| crate::replication::link::LinkTls::new(&ca, &node));
    match tls {
        Ok(tls) => {
            tasks.spawn(crate::replication::run(
                state.store.clone(),
                tls,
                state.replication.clone(),
                listener,
                stop.clone(),
            ));
        }
        Err(e) => tracing::error!(error = %e, "the standby link is off: no link certificate"),
    }
}

/// The device tasks the mode asks for: USB scanners and printers in
/// hardware mode, the file printer when simulating.
fn start_devices(state: &Venuebox, tasks: &TaskTracker, stop: &CancellationToken) {
    let d = state.devices.clone();
    match d.mode {
        devices::Mode::Hardware => {
            let usb = Arc::new(UsbManager {
                config: d.config.clone(),
                pipeline: d.pipeline.clone(),
                registry: d.registry.clone(),
                store: state.store.clone(),
                clock: state.clock.clone(),
            });
            tasks.spawn(usb.run(stop.clone()));
        }
        devices::Mode::Simulate => {
            if let Some(p) = d.fake_printer.clone() {
                let station = crate::store::printing::DEFAULT_STATION.to_string();
                tasks.spawn(devices::printing::run(
                    p,
                    station,
                    42,
                    state.store.clone(),
                    state.clock.clone(),
                    d.registry.clone(),
                    stop.clone(),
                ));
            }
        }
        devices::Mode::Off => {}
    }
}

/// Serves the API on each listener given (HTTPS and the pairing listener
/// need the LAN side) until `quit`; the first listener's error, if any.
async fn serve_listeners(
    state: &AppState,
    listeners: Listeners,
    https_port: Option<u16>,
    quit: &CancellationToken,
) -> std::io::Result<()> {
    let limits = (*state.conn).clone();
    let app = api::router(state.clone());
    let mut servers = tokio::task::JoinSet::new();
    let mut run = |listener: TcpListener,
                   kind: api::conn::Listener,
                   app: axum::Router,
                   tls: Option<Arc<rustls::ServerConfig>>| {
        let (limits, budget, metrics, quit) =
            (limits.clone(), state.conns.clone(), state.metrics.clone(), quit.clone());
        servers.spawn(async move {
            let stop = quit.cancelled_owned();
            api::conn::serve(listener, kind, app, limits, tls, budget, metrics, stop).await
        });
    };
    use api::conn::Listener::{Lan, Local};
    if let Some(l) = listeners.plain {
        run(l, Local, app.clone(), None);
    }
    if let (Some(l), Some(lan)) = (listeners.https, &state.lan) {
        let secure = app.clone().layer(axum::middleware::map_response(api::hsts));
        run(l, Lan, secure, Some(crate::net::tls::server_config(lan.certs.clone())));
    }
    if let (Some(l), Some(port)) = (listeners.pair, https_port) {
        run(l, Lan, api::lan::pair_router(state.clone(), port), None);
    }
    let mut result = Ok(());
    while let Some(done) = servers.join_next().await {
        if let Ok(Err(e)) = done {
            result = Err(e);
        }
    }
    result
}

/// Applies the time an admin gave the box before (its offset) and judges
/// the clock against the newest record, saying so loudly when it cannot
/// be right. `serve` does this at start, `rehearse` to report it.
pub async fn apply_clock(
    state: &Venuebox,
) -> Result<crate::clock::ClockReport, crate::store::StoreError> {
    if let Some(ms) = load_clock_offset(state).await? {
        tracing::info!(offset_ms = ms, "the box's clock runs at the time an admin gave it");
    }
    let report = crate::clock::ClockReport::judge(&state.clock, state.store.clock_floor().await?);
    if let Some(advice) = &report.advice {
        tracing::error!("{advice}");
    }
    Ok(report)
}

/// Under systemd (`Type=notify`): READY=1 now (the listeners are bound
/// and the store is open), then every half watchdog period (at most 10 s)
/// a WATCHDOG=1 — only if the store's writer thread answered in that time,
/// so a stuck writer gets the box restarted — and a STATUS= line; on
/// shutdown STOPPING=1.
async fn tell_systemd(state: Venuebox, quit: CancellationToken) {
    let systemd = crate::systemd::Notifier::from_env();
    if !systemd.enabled() {
        return;
    }
    systemd.ready(&status_line(&state).await);
    let every = systemd.watchdog().map_or(Duration::from_secs(10), |w| w / 2);
    let every = every.min(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = quit.cancelled() => {
                systemd.stopping();
                return;
            }
            _ = tokio::time::sleep(every) => {}
        }
        match tokio::time::timeout(every, state.store.writer_alive()).await {
            Ok(Ok(())) => systemd.watchdog_ping(),
            Ok(Err(e)) => tracing::error!(error = %e, "the store's writer failed: no watchdog ping"),
            Err(_) => tracing::error!(
                "the store's writer did not answer in {every:?}: no watchdog ping (systemd restarts the box)"
            ),
        }
        systemd.status(&status_line(&state).await);
    }
}

/// What `systemctl status venuebox` shows: the event, people inside, sync.
async fn status_line(state: &Venuebox) -> String {
    let event = state
        .store
        .event()
        .map(|e| format!("{} v{}", e.event_id(), e.manifest.version))
        .unwrap_or_else(|| "no event loaded".into());
    let inside = match state.store.counts().await {
        Ok(c) => format!("{} inside", c.inside),
        Err(_) => "inside: unknown".into(),
    };
    let sync = match crate::sync::status(&state.store, &state.sync, state.clock.now()).await {
        Ok(s) if s.enabled => format!("sync {}, {} events pending", s.state, s.events_pending),
        Ok(_) => "sync off".into(),
        Err(_) => "sync: unknown".into(),
    };
    let clock = match state.store.clock_floor().await {
        Ok(f) if !crate::clock::ClockReport::judge(&state.clock, f).plausible => "; CLOCK WRONG",
        _ => "",
    };
    format!("{event}; {inside}; {sync}{clock}")
}

/// Keeps the certificate true to the box's addresses and, unless turned
/// off, announces the HTTPS port on mDNS (re-announcing on changes).
fn start_lan(
    state: &Venuebox,
    lan: &Arc<crate::net::Lan>,
    https_port: u16,
    tasks: &TaskTracker,
    stop: &CancellationToken,
) -> Option<Arc<crate::net::mdns::Announcer>> {
    use crate::net::mdns::{Announcement, Announcer};
    let announcer = if lan.config.mdns {
        let what = Announcement {
            name: lan.mdns_name.clone(),
            port: https_port,
            box_id: state.store.box_id().to_string(),
            event_id: state.store.event().map(|e| e.event_id().to_string()).unwrap_or_default(),
            fingerprint: lan.fingerprint().unwrap_or_default(),
            role: state.store.replica().role().as_str().to_string(),
            epoch: state.store.replica().epoch(),
        };
        let addrs: Vec<_> = lan.names().ips.into_iter().filter(|ip| !ip.is_loopback()).collect();
        match Announcer::start(what, &addrs) {
            Ok(a) => Some(Arc::new(a)),
            Err(e) => {
                tracing::error!(error = %e, "mDNS is off");
                None
            }
        }
    } else {
        None
    };
    if let Some(a) = announcer.clone() {
        // A promotion or a fence is announced within half a second.
        let (store, stop) = (state.store.clone(), stop.clone());
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                }
                let r = store.replica();
                // Only a change re-registers (a message to mdns-sd's thread).
                a.set_role(r.role().as_str(), r.epoch());
            }
        });
    }
    let a = announcer.clone();
    tasks.spawn(lan.clone().watch(
        move |names| {
            if let Some(a) = &a {
                let addrs: Vec<_> =
                    names.ips.iter().copied().filter(|ip| !ip.is_loopback()).collect();
                a.reannounce(&addrs);
            }
        },
        stop.clone(),
    ));
    announcer
}

/// Starts the sync loop when configured and no other process syncs this
/// data directory; returns the lock, held while serving.
fn start_sync(
    state: &Venuebox,
    pinned_keys: crate::domain::keys::TrustedKeys,
    tasks: &TaskTracker,
    stop: &CancellationToken,
) -> Option<std::fs::File> {
    let (config, data_dir) = state.sync.setup.clone()?;
    let lock = match crate::sync::try_lock(&data_dir) {
        Ok(Some(f)) => f,
        Ok(None) => {
            tracing::error!(
                "another venuebox process is syncing {}; this one will not",
                data_dir.display()
            );
            return None;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot take the sync lock; cloud sync is off");
            return None;
        }
    };
    let syncer = Syncer::new(
        state.store.clone(),
        state.media.clone(),
        state.clock.clone(),
        config,
        state.sync.clone(),
        pinned_keys,
        data_dir,
    );
    match syncer {
        Ok(s) => {
            tasks.spawn(Arc::new(s).run(stop.clone()));
            Some(lock)
        }
        Err(e) => {
            tracing::error!(error = %e, "cloud sync cannot start");
            None
        }
    }
}

/// Every second: expire cart holds, cycle the stock of closed drops, and
/// expire abandoned uploads (removing their partial files), so nothing
/// waits for the next request to happen.
async fn housekeeping(state: Venuebox, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        // A standby's rows are the primary's: it expires nothing itself.
        if state.store.replica().role() != crate::store::replica::Role::Primary {
            continue;
        }
        match state.store.housekeeping(state.clock.now()).await {
            Ok(done) if done.holds_expired > 0 || !done.drops_cycled.is_empty() => {
                tracing::debug!(?done, "housekeeping")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "housekeeping failed; will retry in a second"),
        }
        match state.store.expire_uploads(state.clock.now()).await {
            Ok(ids) => {
                for id in ids {
                    state.media.remove_part(&id);
                    state.uploads.forget(&id);
                    tracing::info!(upload = %id, "abandoned upload expired; partial file removed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "upload expiry failed; will retry in a second"),
        }
    }
}

/// Previews made at once: one per core, at most two (each on a
/// lowest-priority thread, its decoder a lowest-priority child).
fn preview_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
}

/// Makes previews of new captures on lowest-priority threads (see
/// `media::thumbnail`), off the upload path, and picks up where it left
/// off after a restart.
async fn thumbnails(state: Venuebox, stop: CancellationToken) {
    let tools = crate::media::preview::Tools::find();
    for m in tools.missing() {
        tracing::warn!(what = %m.what, package = %m.package, "this box cannot make previews of these: install the package");
    }
    let threads = preview_threads();
    let worker = Arc::new(crate::media::thumbnail::Worker::new(tools, threads));
    loop {
        let pending = if state.store.replica().role() == crate::store::replica::Role::Primary {
            state.store.thumbnails_pending(16).await.unwrap_or_default()
        } else {
            Vec::new()
        };
        if pending.is_empty() {
            // A stored capture wakes this at once; the timer only catches
            // what another process (a restart's recovery) left.
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = state.uploads.stored.notified() => continue,
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
            }
        }
        let mut running = tokio::task::JoinSet::new();
        for (sha, _media) in pending {
            if stop.is_cancelled() {
                return;
            }
            if running.len() >= threads {
                running.join_next().await;
            }
            running.spawn(preview_one(state.clone(), worker.clone(), sha));
        }
        while running.join_next().await.is_some() {}
    }
}

/// One capture's preview, made, stored and recorded.
async fn preview_one(state: Venuebox, worker: Arc<crate::media::thumbnail::Worker>, sha: String) {
    let made = match worker.make(state.media.capture(&sha)).await {
        Ok(preview) => {
            let files = state.media.clone();
            let hash = sha.clone();
            let duration = preview.duration_ms;
            tokio::task::spawn_blocking(move || files.write_thumbnail(&hash, &preview.jpeg))
                .await
                .unwrap_or_else(|_| {
                    Err(crate::media::MediaError::Io("thumbnail writer stopped".into()))
                })
                .map(|()| duration)
        }
        Err(e) => Err(e),
    };
    use crate::store::captures::ThumbnailState;
    let (status, duration) = match made {
        Ok(duration) => (ThumbnailState::Ready, duration),
        // A type this box has no decoder for: no thumbnail, and
        // `rehearse` and the dashboard say which package would help.
        Err(crate::media::MediaError::Unsupported) => (ThumbnailState::None, None),
        Err(e) => {
            tracing::warn!(sha256 = %sha, error = %e, "no thumbnail for this capture");
            (ThumbnailState::Failed, None)
        }
    };
    if let Err(e) = state.store.set_thumbnail(sha, status, duration).await {
        tracing::warn!(error = %e, "cannot record thumbnail state");
    }
    state.metrics.thumbnail(status == ThumbnailState::Ready);
}

/// Why the box could not open: each part with its cause.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("capture files: {0}")]
    Media(#[from] crate::media::MediaError),
    #[error("devices: {0}")]
    Devices(#[from] crate::devices::DeviceError),
    #[error("LAN certificates: {0}")]
    Tls(#[from] crate::net::tls::TlsError),
}

/// Why `serve` could not take its data directory.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot lock {dir}: {source}")]
    Io { dir: PathBuf, source: std::io::Error },
    #[error("another venuebox is already serving {0}: stop it first, or give this one its own --data-dir")]
    Busy(PathBuf),
}
