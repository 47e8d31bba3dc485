//! The upload life cycle, below the protocol: the limits captures live
//! under, which request holds which upload (and its running SHA-256), the
//! pace uploads keep while the door is busy, the hash of a part file read
//! back after a restart, and finishing a complete upload into a capture —
//! also at start-up, for uploads whose last byte arrived before a crash.
//!
//! The tus protocol (HTTP, headers, checksums of a request) is
//! `api::tus`; rows go through `Store`, never SQL.

use super::{probe, MediaError, MediaFiles};
use crate::clock::Clock;
use crate::domain::time::Millis;
use crate::secrets::hex;
use crate::store::{Store, StoreError};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Limits and timings for captures.
#[derive(Clone, Debug)]
pub struct CaptureConfig {
    pub max_upload_bytes: u64,
    /// Captures plus uploads in progress may not exceed this.
    pub quota_bytes: u64,
    /// New uploads are refused, and running ones stop, below this much free disk.
    pub disk_floor_bytes: u64,
    /// An upload untouched this long expires and its partial file is removed.
    pub upload_expiry_ms: Millis,
    /// A long PATCH makes its bytes durable (and visible to HEAD) this often.
    pub checkpoint_bytes: u64,
    /// Uploads one staff member (across sign-ins) or upload link may have
    /// open at once.
    pub max_open_per_session: u64,
    /// An open upload that received nothing for this long stops holding
    /// its promised bytes against the quota (it may still resume).
    pub promise_idle_ms: Millis,
}

impl CaptureConfig {
    /// Bytes one staff member's (or upload link's) open uploads may
    /// promise: two of the largest uploads, so a video and its retry fit,
    /// and nobody can reserve the whole quota with empty uploads, however
    /// often they sign in.
    pub fn per_session_reserve_bytes(&self) -> u64 {
        self.max_upload_bytes.saturating_mul(2)
    }
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            max_upload_bytes: 4 << 30,
            quota_bytes: 200 << 30,
            disk_floor_bytes: 512 << 20,
            upload_expiry_ms: 24 * 3_600_000,
            checkpoint_bytes: 8 << 20,
            max_open_per_session: 16,
            promise_idle_ms: 5 * 60_000,
        }
    }
}

/// The running state of uploads: which request holds which upload, and
/// the SHA-256 of each upload's bytes so far.
pub struct UploadSlots {
    /// One async mutex per upload in progress: a PATCH holds it while
    /// writing, so two requests never write one file.
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
    /// Captures being finished (probed, moved into the store) at once: the
    /// rest wait their turn, so a burst of last PATCHes never fans out into
    /// as many probes on the blocking pool.
    pub(crate) finishing: tokio::sync::Semaphore,
    /// While the door is busy, every upload write takes from this one
    /// bucket: all uploads together get [`DOOR_BUSY_UPLOAD_BYTES_PER_SEC`].
    pub(crate) door_busy_pace: crate::throttle::Throttle,
    /// Woken when a capture is stored, so its thumbnail is made at once
    /// rather than at the thumbnailer's next look.
    pub stored: tokio::sync::Notify,
}

impl Default for UploadSlots {
    fn default() -> Self {
        UploadSlots {
            slots: Mutex::default(),
            finishing: tokio::sync::Semaphore::new(2),
            door_busy_pace: crate::throttle::Throttle::new(DOOR_BUSY_UPLOAD_BYTES_PER_SEC),
            stored: tokio::sync::Notify::new(),
        }
    }
}

/// While a scan was decided in the last [`DOOR_BUSY_WINDOW`], uploads
/// together write at most this fast (about what a venue's Wi-Fi carries
/// anyway); the door's commits then never queue behind upload bytes.
pub const DOOR_BUSY_UPLOAD_BYTES_PER_SEC: u64 = 16 << 20;
pub const DOOR_BUSY_WINDOW: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Default)]
pub struct Slot {
    /// Hash of the first `.1` bytes of the upload.
    pub hasher: Option<(Sha256, u64)>,
}

impl UploadSlots {
    pub fn slot(&self, id: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        self.slots.lock().expect("upload slots").entry(id.to_string()).or_default().clone()
    }
    pub fn forget(&self, id: &str) {
        self.slots.lock().expect("upload slots").remove(id);
    }
    /// Uploads with a slot now (bounded by the uploads in progress).
    pub fn len(&self) -> usize {
        self.slots.lock().expect("upload slots").len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The hash of an upload's first `upto` bytes, read back from its part
/// file — only needed when the box restarted in the middle of an upload.
pub async fn rehash(media: &MediaFiles, id: &str, upto: u64) -> Result<Sha256, MediaError> {
    let path = media.part(id);
    tokio::task::spawn_blocking(move || -> std::io::Result<Sha256> {
        use std::io::Read;
        let mut h = Sha256::new();
        let mut f = std::fs::File::open(&path)?.take(upto);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match f.read(&mut buf)? {
                0 => break,
                n => h.update(&buf[..n]),
            }
        }
        Ok(h)
    })
    .await
    .map_err(|e| MediaError::Io(format!("rehash task: {e}")))?
    .map_err(|e| MediaError::Io(e.to_string()))
}

/// What finishing an upload can run into: its bytes (not a photo or
/// video, a disk error) or the database.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What finishing needs: the rows, the files and the running uploads.
#[derive(Clone, Copy)]
pub struct Lifecycle<'a> {
    pub store: &'a Store,
    pub media: &'a MediaFiles,
    pub slots: &'a UploadSlots,
    pub clock: &'a Clock,
}

impl Lifecycle<'_> {
    /// Turns a complete part file into a capture: refuse what is not a
    /// photo or video (the upload is marked refused and its part removed),
    /// store the bytes by hash (once), write the capture row.
    pub async fn finish(&self, id: &str, sha256: String, bytes: u64) -> Result<(), FinishError> {
        let _turn = self
            .slots
            .finishing
            .acquire()
            .await
            .map_err(|e| MediaError::Io(format!("finishing closed: {e}")))?;
        let media = self.media.clone();
        let (part_id, hash) = (id.to_string(), sha256.clone());
        self.store.upload_hashed(id.to_string(), sha256.clone()).await?;
        let probed = tokio::task::spawn_blocking(move || -> Result<probe::Probe, MediaError> {
            let part = media.part(&part_id);
            let path = if part.exists() { part } else { media.capture(&hash) };
            let p = probe::probe(&path)?;
            media.store_capture(&part_id, &hash).or_else(|e| {
                if media.capture(&hash).exists() {
                    Ok(false)
                } else {
                    Err(e)
                }
            })?;
            Ok(p)
        })
        .await
        .map_err(|e| MediaError::Io(format!("probe task: {e}")))?;
        let probe = match probed {
            Ok(p) => p,
            Err(MediaError::Unsupported) => {
                let why = Some("unsupported media type".into());
                let refused = crate::store::captures::UploadStatus::Refused;
                self.store.end_upload(id.to_string(), refused, why, self.clock.now()).await?;
                self.media.remove_part(id);
                return Err(MediaError::Unsupported.into());
            }
            Err(e) => return Err(e.into()),
        };
        let now = self.clock.now();
        let (view, duplicate) =
            self.store.complete_upload(id.to_string(), sha256, bytes, probe, now).await?;
        tracing::info!(upload = id, sha256 = %view.sha256, creator = %view.creator, bytes, duplicate, "capture stored");
        self.slots.stored.notify_one();
        Ok(())
    }

    /// Completes uploads whose bytes were all on disk when the box stopped
    /// (run at start-up).
    pub async fn recover(&self) {
        let pending = match self.store.uploads_awaiting_completion().await {
            Ok(p) => p,
            Err(e) => return tracing::error!(error = %e, "cannot list uploads to recover"),
        };
        for row in pending {
            let sha = match &row.sha256 {
                Some(s) => s.clone(),
                None => match rehash(self.media, &row.id, row.offset).await {
                    Ok(h) => hex(&h.finalize()),
                    Err(e) => {
                        tracing::error!(upload = %row.id, error = %e, "cannot recover upload");
                        continue;
                    }
                },
            };
            match self.finish(&row.id, sha, row.offset).await {
                Ok(()) => {
                    tracing::info!(upload = %row.id, "finished an upload interrupted by a restart")
                }
                Err(e) => {
                    tracing::warn!(upload = %row.id, error = %e, "could not finish an upload after restart")
                }
            }
        }
    }
}
