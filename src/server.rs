//! Start-up and the one entry point that serves: open the store, build the
//! API state, and run the HTTP server on a given listener until `shutdown`
//! resolves. Tests call [`serve`] with a listener on `127.0.0.1:0`.

use crate::api::{self, ApiConfig, AppState};
use crate::clock::Clock;
use crate::media::MediaFiles;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError, StoreOptions};
use std::future::Future;
use std::net::SocketAddr;
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
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config { data_dir: data_dir.into(), api: ApiConfig::default(), read_connections: 4 }
    }
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
    Ok(AppState { store, metrics, clock, config: Arc::new(config.api.clone()), auth: Default::default(), media, uploads: Default::default() })
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes
/// the requests in flight. Every acknowledged write is already on disk.
pub async fn serve(state: AppState, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    api::tus::recover(&state).await;
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    tasks.spawn(housekeeping(state.clone(), stop.clone()));
    tasks.spawn(thumbnails(state.clone(), stop.clone()));
    tasks.close();
    let app = api::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    stop.cancel();
    tasks.wait().await;
    result
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
