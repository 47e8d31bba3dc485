//! Cloud sync: the outbox as immutable event-log segments, capture bytes,
//! payout statements, and signed manifest updates, between the box and an
//! S3-compatible bucket, whenever the venue's internet allows.
//!
//! - `plan`: pure: which events form the next segment, its key, its bytes.
//! - `s3`: the adapter (rusty-s3 presigning, reqwest, error classes).
//! - `events`, `captures`, `manifest`, `payouts`: one step each.
//! - `recompute`: payout totals from the event log alone (what a cloud
//!   job does with `events/`).
//! - this file: the loop (timer, wake-ups, probe, backoff with jitter,
//!   permanent errors), the lock that keeps one syncer per data directory,
//!   and the status every surface shows.
//!
//! Invariants: a segment is recorded as pending before it is sent, and the
//! cursor moves only after the bucket acknowledged it, so every seq lands
//! exactly once and in order; nothing is ever dropped from the box.

pub mod captures;
pub mod config;
pub mod events;
pub mod manifest;
pub mod payouts;
pub mod plan;
pub mod recompute;
pub mod s3;
pub mod verify;

use crate::clock::Clock;
use crate::domain::keys::TrustedKeys;
use crate::domain::time::{format_rfc3339, Millis};
use crate::media::MediaFiles;
use crate::store::{Store, StoreError};
use crate::throttle::Throttle;
use config::SyncConfig;
use s3::{S3Error, S3};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub const LOCK_FILE: &str = "sync.lock";

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Something on the box itself (a capture file missing or short).
    #[error("{0}")]
    Local(String),
}

impl SyncError {
    pub fn kind(&self) -> &'static str {
        match self {
            SyncError::S3(e) => e.kind(),
            SyncError::Store(_) => "retryable",
            SyncError::Local(_) => "permanent",
        }
    }
    pub fn is_permanent(&self) -> bool {
        self.kind() == "permanent"
    }
}

/// What the running loop knows beyond the database: shared with the API.
#[derive(Default)]
pub struct SyncHandle {
    /// `s3://bucket/prefix (endpoint)`, or `None` when sync is off.
    pub target: Option<String>,
    /// What `serve` needs to start the loop.
    pub setup: Option<(SyncConfig, PathBuf)>,
    pub wake: Notify,
    live: Mutex<Live>,
    /// The last status `/metrics` computed, and when: a scrape flood
    /// reads the backlog at most once per [`METRICS_STATUS_MAX_AGE`].
    scraped: Mutex<Option<(std::time::Instant, SyncStatus)>>,
}

/// How old the sync figures in `/metrics` may be.
pub const METRICS_STATUS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
pub struct Live {
    pub events: LaneState,
    pub captures: LaneState,
    pub segments_sent: u64,
    pub events_sent: u64,
    pub capture_bytes_sent: u64,
    /// Looks for a newer manifest (each poll, also one skipped while
    /// updates are frozen): tests watch it instead of sleeping.
    pub manifest_checks: u64,
}

/// Where one lane of the loop is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LaneStatus {
    /// Not run yet (the box just started).
    #[default]
    Starting,
    Idle,
    Syncing,
    /// Waiting out a retryable failure.
    Backoff,
    /// Stopped by a permanent error until it is fixed or retried.
    Error,
}

impl LaneStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LaneStatus::Starting => "starting",
            LaneStatus::Idle => "idle",
            LaneStatus::Syncing => "syncing",
            LaneStatus::Backoff => "backoff",
            LaneStatus::Error => "error",
        }
    }
}

/// One lane of the loop.
#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
pub struct LaneState {
    pub state: LaneStatus,
    pub consecutive_failures: u32,
    pub next_attempt_at: Option<Millis>,
}

impl SyncHandle {
    pub fn enabled(config: SyncConfig, data_dir: PathBuf) -> SyncHandle {
        SyncHandle {
            target: Some(config.describe()),
            setup: Some((config, data_dir)),
            ..Default::default()
        }
    }
    pub fn live(&self) -> Live {
        self.live.lock().expect("sync live lock").clone()
    }
    fn update(&self, f: impl FnOnce(&mut Live)) {
        f(&mut self.live.lock().expect("sync live lock"));
    }
}

/// One status for `venuebox sync status`, the API and the dashboard.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct SyncStatus {
    pub enabled: bool,
    pub target: Option<String>,
    /// `off`, `idle`, `syncing`, `backoff`, `error` (a permanent error), or
    /// `not running` (configured, but no `serve` is syncing).
    pub state: String,
    pub events_pending: i64,
    pub event_bytes_pending: i64,
    pub captures_pending: i64,
    pub capture_bytes_pending: i64,
    pub files_pending: i64,
    /// Age of the oldest event the bucket has not acknowledged.
    pub lag_seconds: f64,
    pub cursor: i64,
    pub last_seq: i64,
    pub last_success_at: Option<String>,
    pub last_error: Option<String>,
    pub last_error_kind: Option<String>,
    pub last_error_at: Option<String>,
    pub live: Option<Live>,
    pub streams: Vec<crate::store::sync::StreamRow>,
    pub manifest_updates_frozen: bool,
}

impl SyncStatus {
    pub fn permanent_error(&self) -> bool {
        self.last_error_kind.as_deref() == Some("permanent")
    }
}

pub const FREEZE_SETTING: &str = "manifest_updates_frozen";

/// The status from the database (any process) plus the loop's live view.
pub async fn status(
    store: &Store,
    handle: &SyncHandle,
    now: Millis,
) -> Result<SyncStatus, StoreError> {
    let backlog = store.sync_backlog().await?;
    let streams = store.sync_streams().await?;
    let frozen = store.setting(FREEZE_SETTING).await?.as_deref() == Some("true");
    let (mut err, mut kind, mut err_at) = (None, None, None);
    for s in &streams {
        if s.last_error.is_some() && (kind.as_deref() != Some("permanent")) {
            err = s.last_error.clone().map(|e| format!("{}: {e}", s.stream));
            kind = s.last_error_kind.clone();
            err_at = s.last_error_at;
        }
    }
    let last_success = streams
        .iter()
        .filter(|s| s.stream == "events" || s.stream == "captures")
        .filter_map(|s| s.last_success_at)
        .max();
    let live = handle.target.as_ref().map(|_| handle.live());
    let state = match (&handle.target, &live) {
        (None, _) => "off".to_string(),
        (Some(_), Some(l)) if l.events.state != LaneStatus::Starting => {
            match (l.events.state, l.captures.state) {
                (LaneStatus::Idle, c @ (LaneStatus::Error | LaneStatus::Backoff)) => {
                    format!("captures {}", c.as_str())
                }
                (e, _) => e.as_str().to_string(),
            }
        }
        _ => "starting".to_string(),
    };
    Ok(SyncStatus {
        enabled: handle.target.is_some(),
        target: handle.target.clone(),
        state,
        events_pending: backlog.events_pending,
        event_bytes_pending: backlog.event_bytes_pending,
        captures_pending: backlog.captures_pending,
        capture_bytes_pending: backlog.capture_bytes_pending,
        files_pending: backlog.files_pending,
        lag_seconds: backlog
            .oldest_pending_at
            .map(|t| ((now - t).max(0)) as f64 / 1000.0)
            .unwrap_or(0.0),
        cursor: backlog.cursor,
        last_seq: backlog.last_seq,
        last_success_at: last_success.map(format_rfc3339),
        last_error: err,
        last_error_kind: kind,
        last_error_at: err_at.map(format_rfc3339),
        live,
        streams,
        manifest_updates_frozen: frozen,
    })
}

/// The status for `/metrics`: computed at most once every
/// [`METRICS_STATUS_MAX_AGE`], whatever the scrape rate.
pub async fn scraped_status(
    store: &Store,
    handle: &SyncHandle,
    now: Millis,
) -> Result<SyncStatus, StoreError> {
    if let Some((at, s)) = handle.scraped.lock().expect("scraped status").as_ref() {
        if at.elapsed() < METRICS_STATUS_MAX_AGE {
            return Ok(s.clone());
        }
    }
    let s = status(store, handle, now).await?;
    *handle.scraped.lock().expect("scraped status") = Some((std::time::Instant::now(), s.clone()));
    Ok(s)
}

/// Sync series for `/metrics`.
pub fn render_metrics(s: &SyncStatus) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, v: f64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    };
    gauge("venuebox_sync_enabled", "1 when cloud sync is configured.", s.enabled as u8 as f64);
    gauge(
        "venuebox_sync_lag_seconds",
        "Age of the oldest event the bucket has not acknowledged.",
        s.lag_seconds,
    );
    gauge(
        "venuebox_sync_events_pending",
        "Outbox events not yet in the bucket.",
        s.events_pending as f64,
    );
    gauge(
        "venuebox_sync_captures_pending",
        "Captures whose bytes are not yet in the bucket.",
        s.captures_pending as f64,
    );
    gauge(
        "venuebox_sync_capture_bytes_pending",
        "Bytes of those captures.",
        s.capture_bytes_pending as f64,
    );
    let last_ok = s
        .last_success_at
        .as_deref()
        .and_then(|t| crate::domain::time::parse_rfc3339(t).ok())
        .map(|ms| ms as f64 / 1000.0)
        .unwrap_or(0.0);
    gauge(
        "venuebox_sync_last_success_timestamp_seconds",
        "When the bucket last acknowledged events or a capture (0: never).",
        last_ok,
    );
    gauge(
        "venuebox_sync_permanent_error",
        "1 while a permanent error (credentials, bucket) stops sync.",
        s.permanent_error() as u8 as f64,
    );
    out
}

/// An exclusive lock on `DATA_DIR/sync.lock`: one syncer per data
/// directory. `Ok(None)` when another process holds it.
pub fn try_lock(data_dir: &Path) -> std::io::Result<Option<std::fs::File>> {
    crate::store::identity::try_lock_file(&data_dir.join(LOCK_FILE))
}

/// Exponential backoff, capped, with "equal jitter": half fixed, half random.
pub fn backoff(failures: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << failures.saturating_sub(1).min(16)).min(cap);
    let half = exp / 2;
    let r = u64::from_le_bytes(crate::secrets::random_bytes::<8>());
    half + Duration::from_nanos(r % (half.as_nanos() as u64 + 1))
}

pub struct Syncer {
    pub store: Store,
    pub media: MediaFiles,
    pub clock: Clock,
    pub config: Arc<SyncConfig>,
    pub s3: S3,
    pub throttle: Option<Throttle>,
    pub handle: Arc<SyncHandle>,
    pub pinned: TrustedKeys,
    pub data_dir: PathBuf,
    /// The events lane is sending; capture steps wait for it.
    events_busy: AtomicBool,
    manifest_seen: Mutex<manifest::Seen>,
}

impl Syncer {
    pub fn new(
        store: Store,
        media: MediaFiles,
        clock: Clock,
        config: SyncConfig,
        handle: Arc<SyncHandle>,
        pinned: TrustedKeys,
        data_dir: PathBuf,
    ) -> Result<Syncer, S3Error> {
        let s3 = S3::new(&config.target)?;
        Ok(Syncer {
            store,
            media,
            clock,
            throttle: config.capture_rate.map(Throttle::new),
            config: Arc::new(config),
            s3,
            handle,
            pinned,
            data_dir,
            events_busy: AtomicBool::new(false),
            manifest_seen: Mutex::new(Default::default()),
        })
    }

    /// One pass, in order (what `venuebox sync now` runs): every closed
    /// event segment, then queued files, then one capture step. True if
    /// anything moved; an error names its stream.
    pub async fn round(&self, flush: bool) -> Result<bool, (&'static str, SyncError)> {
        let moved = self.events_and_files(flush).await?;
        Ok(self.capture_step().await.map_err(|e| ("captures", e))? || moved)
    }

    /// Every closed event segment, then the queued files.
    async fn events_and_files(&self, flush: bool) -> Result<bool, (&'static str, SyncError)> {
        let mut moved = false;
        while self.events_step(flush).await.map_err(|e| ("events", e))? {
            moved = true;
        }
        Ok(self.files_step().await.map_err(|e| ("payouts", e))? || moved)
    }

    async fn record(&self, stream: &'static str, r: Result<(), &SyncError>) {
        use crate::store::sync::Outcome;
        let message = r.err().map(|e| (e.kind(), e.to_string()));
        let outcome = match &message {
            None => Outcome::Success,
            Some((kind, message)) => Outcome::Failure { kind, message },
        };
        if let Err(e) = self.store.sync_outcome(stream, outcome, self.clock.now()).await {
            tracing::warn!(error = %e, "cannot record the sync outcome");
        }
    }

    /// Reads the keys again (environment, then `sync-credentials`), so a
    /// fixed credentials file takes effect without a restart.
    fn reload_credentials(&self) {
        match config::credentials(&self.data_dir, &|k| std::env::var(k).ok()) {
            Ok(c) => self.s3.set_credentials(c),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the sync credentials; keeping the ones in use")
            }
        }
    }

    /// Puts every queued file (payout statements) as it is.
    async fn files_step(&self) -> Result<bool, SyncError> {
        let files = self.store.sync_files_pending().await?;
        let mut moved = false;
        for f in files {
            let body = match tokio::fs::read(&f.path).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(path = %f.path, error = %e, "a queued file is gone; it will be written again by the next run");
                    self.store.sync_file_done(f.key, self.clock.now()).await?;
                    continue;
                }
            };
            self.s3.put(&self.s3.key(&f.key), body.into(), false, None).await?;
            self.store.sync_file_done(f.key, self.clock.now()).await?;
            moved = true;
        }
        Ok(moved)
    }

    /// Sleeps up to `d`, returning early when woken or stopped.
    async fn nap(&self, d: Duration, stop: &CancellationToken) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.handle.wake.notified() => {}
            _ = stop.cancelled() => {}
        }
    }

    /// Waits out a backoff, probing the bucket now and then: when the link
    /// is back, the wait ends early.
    async fn backoff_wait(&self, d: Duration, stop: &CancellationToken) {
        let until = Instant::now() + d;
        while Instant::now() < until && !stop.is_cancelled() {
            let slice = self.config.probe_every.min(until - Instant::now());
            let woken = tokio::select! {
                _ = tokio::time::sleep(slice) => false,
                _ = self.handle.wake.notified() => true,
                _ = stop.cancelled() => true,
            };
            if woken || self.s3.probe().await.is_ok() {
                return;
            }
        }
    }

    /// The loop `serve` runs: two lanes, events (with queued files, the
    /// manifest poll and the nightly payouts) and captures, so a large
    /// video under the bandwidth cap never holds check-ins back. A capture
    /// step starts only while the events lane is idle.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        tracing::info!(target = %self.config.describe(), "cloud sync on");
        let captures = tokio::spawn(self.clone().lane(Lane::Captures, stop.clone()));
        self.clone().lane(Lane::Events, stop.clone()).await;
        let _ = captures.await;
    }

    async fn step(&self, lane: Lane) -> Result<bool, (&'static str, SyncError)> {
        match lane {
            Lane::Events => {
                self.events_busy.store(true, Ordering::SeqCst);
                let r = self.events_and_files(false).await;
                self.events_busy.store(r.is_err(), Ordering::SeqCst);
                r
            }
            Lane::Captures => self.capture_step().await.map_err(|e| ("captures", e)),
        }
    }

    async fn lane(self: Arc<Self>, lane: Lane, stop: CancellationToken) {
        let mut failures = 0u32;
        let mut errors_on_record: Vec<&'static str> = Vec::new();
        let mut permanent_until: Option<Instant> = None;
        let mut next_manifest = Instant::now();
        let mut seen_request =
            self.store.sync_stream("events").await.ok().and_then(|r| r.requested_at);
        let first_payout_due = self.first_payout_due();
        let set = |f: &dyn Fn(&mut LaneState)| {
            self.handle
                .update(|l| f(if lane == Lane::Events { &mut l.events } else { &mut l.captures }))
        };
        while !stop.is_cancelled() {
            // Only the primary of a pair sends to the bucket: the outbox and
            // cursors are replicated, so a new primary goes on where the
            // old one stopped.
            if self.store.replica().role() != crate::store::replica::Role::Primary {
                set(&|l| l.state = LaneStatus::Idle);
                self.nap(self.config.interval, &stop).await;
                continue;
            }
            let requested =
                self.store.sync_stream("events").await.ok().and_then(|r| r.requested_at);
            if requested != seen_request {
                seen_request = requested;
                if permanent_until.take().is_some() {
                    self.reload_credentials();
                }
            }
            if lane == Lane::Events {
                if let Some(every) = self.config.manifest_poll {
                    if Instant::now() >= next_manifest {
                        self.manifest_step().await;
                        next_manifest = Instant::now() + every;
                    }
                }
                self.payouts_step(first_payout_due).await;
            }
            if let Some(until) = permanent_until {
                // Stopped by a permanent error: `sync now` (a request) or
                // the retry time lets it try again with what is configured.
                if Instant::now() < until {
                    self.nap(self.config.interval, &stop).await;
                    continue;
                }
                self.reload_credentials();
            }
            if lane == Lane::Captures && self.events_busy.load(Ordering::SeqCst) {
                // Events first: wait while that lane sends (or fails).
                self.nap(self.config.interval, &stop).await;
                continue;
            }
            set(&|l| l.state = LaneStatus::Syncing);
            match self.step(lane).await {
                Ok(moved) => {
                    failures = 0;
                    permanent_until = None;
                    for stream in std::mem::take(&mut errors_on_record) {
                        self.record(stream, Ok(())).await;
                        tracing::info!(stream, "cloud sync recovered");
                    }
                    set(&|l| *l = LaneState { state: LaneStatus::Idle, ..Default::default() });
                    if !moved {
                        self.nap(self.config.interval, &stop).await;
                    }
                }
                Err((stream, e)) if e.is_permanent() => {
                    tracing::error!(error = %e, stream, "cloud sync stopped by a permanent error; fix the configuration (retrying every {:?})", self.config.permanent_retry);
                    self.record(stream, Err(&e)).await;
                    if !errors_on_record.contains(&stream) {
                        errors_on_record.push(stream);
                    }
                    permanent_until = Some(Instant::now() + self.config.permanent_retry);
                    let at = self.clock.now() + self.config.permanent_retry.as_millis() as Millis;
                    set(&|l| {
                        l.state = LaneStatus::Error;
                        l.next_attempt_at = Some(at);
                    });
                }
                Err((stream, e)) => {
                    failures += 1;
                    let wait = backoff(failures, self.config.backoff_base, self.config.backoff_cap);
                    tracing::warn!(error = %e, stream, failures, retry_in = ?wait, "cloud sync failed; will retry");
                    self.record(stream, Err(&e)).await;
                    if !errors_on_record.contains(&stream) {
                        errors_on_record.push(stream);
                    }
                    let at = self.clock.now() + wait.as_millis() as Millis;
                    set(&|l| {
                        l.state = LaneStatus::Backoff;
                        l.consecutive_failures = failures;
                        l.next_attempt_at = Some(at);
                    });
                    self.backoff_wait(wait, &stop).await;
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lane {
    Events,
    Captures,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(60));
        for f in 1..40 {
            let d = backoff(f, base, cap);
            let exp = base.saturating_mul(1 << (f - 1).min(16)).min(cap);
            assert!(
                d >= exp / 2 && d <= exp,
                "failure {f}: {d:?} outside [{:?}, {exp:?}]",
                exp / 2
            );
        }
        let spread: std::collections::HashSet<_> = (0..20).map(|_| backoff(6, base, cap)).collect();
        assert!(spread.len() > 10, "jitter spreads retries");
    }
}
