//! Start-up and the one entry point that serves: open the store, build the
//! API state, and run the HTTP server on a given listener until `shutdown`
//! resolves. Tests call [`serve`] with a listener on `127.0.0.1:0`.

use crate::api::{self, ApiConfig, AppState};
use crate::clock::Clock;
use crate::devices::config::DevicesConfig;
use crate::devices::printing::{FakePrinter, Printer};
use crate::devices::registry::{DeviceState, Registry};
use crate::devices::pipeline::ScanPipeline;
use crate::devices::signals::{FakeGpio, Gpio, RppalGpio, Signaller};
use crate::devices::usb::UsbManager;
use crate::devices::{self, Devices};
use crate::media::MediaFiles;
use crate::metrics::Metrics;
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
    /// Connection caps and timeouts on the listener.
    pub conn: api::conn::ConnLimits,
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config { data_dir: data_dir.into(), api: ApiConfig::default(), read_connections: 4, devices: devices::Mode::Off, device_config: DevicesConfig::default(), sync: None, conn: Default::default() }
    }
}

/// The lights, the scan pipeline and (when simulating) the fake printer.
fn open_devices(config: &Config, store: &Store, clock: &Clock) -> Result<Devices, StoreError> {
    let mut fake_gpio = None;
    let mut gpio_missing = None;
    let gpio: Arc<dyn Gpio> = match config.devices {
        devices::Mode::Hardware => match RppalGpio::open(&config.device_config.gpio) {
            Ok(g) => Arc::new(g),
            Err(e) => {
                tracing::warn!(reason = %e, "GPIO unavailable: the door lights, buzzer and relay are off");
                gpio_missing = Some(format!("{e}: the door lights, buzzer and relay are off; check-in works without them"));
                let f = Arc::new(FakeGpio::default());
                fake_gpio = Some(f.clone());
                f
            }
        },
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
        let p = Arc::new(FakePrinter::new(config.data_dir.join("printed")).map_err(|e| StoreError::Io(e.to_string()))?);
        registry.set(DeviceState {
            id: p.id(),
            kind: "printer".into(),
            name: format!("simulated printer writing to {}", config.data_dir.join("printed").display()),
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
pub fn open(config: &Config, clock: Clock) -> Result<AppState, StoreError> {
    let metrics = Arc::new(Metrics::default());
    let store = Store::open(
        &config.data_dir,
        metrics.clone(),
        StoreOptions { read_connections: config.read_connections, ..StoreOptions::default() },
    )?;
    let media = MediaFiles::open(&config.data_dir).map_err(|e| StoreError::Io(e.to_string()))?;
    let devices = Arc::new(open_devices(config, &store, &clock)?);
    let sync = Arc::new(match &config.sync {
        Some(c) => SyncHandle::enabled(c.clone(), config.data_dir.clone()),
        None => SyncHandle::default(),
    });
    Ok(AppState { store, metrics, clock, config: Arc::new(config.api.clone()), auth: Default::default(), media, uploads: Default::default(), devices, sync, conn: Arc::new(config.conn.clone()) })
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes
/// the requests in flight. Every acknowledged write is already on disk.
pub async fn serve(state: AppState, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    api::tus::recover(&state).await;
    if let Err(e) = state.auth.load_devices(&state.store).await {
        tracing::warn!(error = %e, "cannot load the paired devices yet; the first sign-in will try again");
    }
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    tasks.spawn(housekeeping(state.clone(), stop.clone()));
    tasks.spawn(thumbnails(state.clone(), stop.clone()));
    let d = state.devices.clone();
    match d.mode {
        devices::Mode::Hardware => {
            let usb = Arc::new(UsbManager { config: d.config.clone(), pipeline: d.pipeline.clone(), registry: d.registry.clone(), store: state.store.clone(), clock: state.clock.clone() });
            tasks.spawn(usb.run(stop.clone()));
        }
        devices::Mode::Simulate => {
            if let Some(p) = d.fake_printer.clone() {
                let station = crate::store::printing::DEFAULT_STATION.to_string();
                tasks.spawn(devices::printing::run(p, station, 42, state.store.clone(), state.clock.clone(), d.registry.clone(), stop.clone()));
            }
        }
        devices::Mode::Off => {}
    }
    let _sync_lock = start_sync(&state, &tasks, &stop);
    tasks.close();
    let limits = state.conn.clone();
    let metrics = state.metrics.clone();
    let result = api::conn::serve(listener, api::router(state), (*limits).clone(), metrics, shutdown).await;
    stop.cancel();
    tasks.wait().await;
    result
}

/// Starts the sync loop when configured and no other process syncs this
/// data directory; returns the lock, held while serving.
fn start_sync(state: &AppState, tasks: &TaskTracker, stop: &CancellationToken) -> Option<std::fs::File> {
    let (config, data_dir) = state.sync.setup.clone()?;
    let lock = match crate::sync::try_lock(&data_dir) {
        Ok(Some(f)) => f,
        Ok(None) => {
            tracing::error!("another venuebox process is syncing {}; this one will not", data_dir.display());
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
        state.config.pinned_keys.clone(),
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
async fn housekeeping(state: AppState, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match state.store.housekeeping(state.clock.now()).await {
            Ok(done) if done.holds_expired > 0 || !done.drops_cycled.is_empty() => tracing::debug!(?done, "housekeeping"),
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

/// Makes dashboard thumbnails for new photo captures, one at a time (a
/// decoded 12-megapixel photo is ~36 MB; the Pi does one at once), off the
/// upload path, and picks up where it left off after a restart.
async fn thumbnails(state: AppState, stop: CancellationToken) {
    loop {
        let pending = state.store.thumbnails_pending(16).await.unwrap_or_default();
        if pending.is_empty() {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
            }
        }
        for (sha, media) in pending {
            if stop.is_cancelled() {
                return;
            }
            let files = state.media.clone();
            let hash = sha.clone();
            let made = tokio::task::spawn_blocking(move || -> Result<(), crate::media::MediaError> {
                if !crate::media::thumbnail::can_thumbnail(media) {
                    return Err(crate::media::MediaError::Unsupported);
                }
                let jpeg = crate::media::thumbnail::make(&files.capture(&hash))?;
                files.write_thumbnail(&hash, &jpeg)
            })
            .await;
            let status = match made {
                Ok(Ok(())) => "ready",
                Ok(Err(e)) => {
                    tracing::warn!(sha256 = %sha, error = %e, "no thumbnail for this capture");
                    "failed"
                }
                Err(_) => "failed",
            };
            if let Err(e) = state.store.set_thumbnail(sha, status).await {
                tracing::warn!(error = %e, "cannot record thumbnail state");
            }
        }
    }
}

/// Open and serve: the whole box, as `venuebox serve` runs it.
pub async fn run(config: Config, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), RunError> {
    let state = open(&config, Clock::system())?;
    serve(state, listener, shutdown).await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}
