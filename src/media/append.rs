//! One request body appended to an upload's part file: streamed through a
//! bounded buffer, hashed (the whole file's SHA-256 and the request's own
//! checksum) and written on the upload lane below the door's priority,
//! made durable at checkpoints, cut back when the request must leave no
//! trace, and finished into a capture when its last byte arrives.
//!
//! What a stop means for the protocol (a status, a header) is the caller's
//! (`api::tus`): this module says what happened ([`AppendError`]) and what
//! is kept.

use super::uploads::{rehash, CaptureConfig, FinishError, Lifecycle, Slot};
use super::MediaError;
use crate::secrets::hex;
use crate::store::captures::UploadRow;
use crate::store::StoreError;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::io::Write;

/// Bytes gathered before one write to the part file.
const WRITE_BUFFER: usize = 1 << 20;

/// A checksum the request carries for its own body (tus checksum
/// extension): the running digest and the one it must end as.
pub enum Checksum {
    Sha1(Sha1, Vec<u8>),
    Sha256(Sha256, Vec<u8>),
}

impl Checksum {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Checksum::Sha1(c, _) => c.update(bytes),
            Checksum::Sha256(c, _) => c.update(bytes),
        }
    }

    fn matches(self) -> bool {
        match self {
            Checksum::Sha1(c, want) => c.finalize().as_slice() == want.as_slice(),
            Checksum::Sha256(c, want) => c.finalize().as_slice() == want.as_slice(),
        }
    }
}

/// Why an append did not take the whole body.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The body went past the upload's length: nothing of it is kept.
    #[error("the body goes past the upload's length ({limit} bytes)")]
    TooLarge { limit: u64 },
    /// The body was cut off, and it carried a checksum over all of it:
    /// nothing of it is kept.
    #[error("the body was cut off before its checksum could be checked")]
    CutBeforeChecksum,
    /// The body's checksum does not match: nothing of it is kept.
    #[error("the body's checksum does not match")]
    ChecksumMismatch,
    /// The disk reached its floor: what arrived is kept (up to the last
    /// durable offset, which HEAD reports).
    #[error("the disk is nearly full")]
    DiskFull,
    /// The connection dropped: what arrived is kept.
    #[error("the connection dropped")]
    Interrupted,
    /// The last byte arrived, but the file could not become a capture.
    #[error(transparent)]
    Finish(#[from] FinishError),
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether the data directory's disk has `needed` bytes above the floor.
pub fn disk_has_room(
    media: &super::MediaFiles,
    config: &CaptureConfig,
    needed: u64,
) -> Result<bool, MediaError> {
    Ok(media.free_bytes()? >= config.disk_floor_bytes.saturating_add(needed))
}

/// What an append runs on: the upload life cycle, the limits, and whether
/// the door decided a scan lately (uploads then keep to a shared pace).
pub struct Appender<'a> {
    pub life: Lifecycle<'a>,
    pub config: &'a CaptureConfig,
    pub door_busy: &'a (dyn Fn() -> bool + Sync),
}

/// Where a body goes: the part file, and the digests that must see every
/// byte (the whole file's SHA-256, the request's checksum).
struct Sink {
    file: std::fs::File,
    hasher: Sha256,
    check: Option<Checksum>,
}

/// How a body's stream ended, when it ended early.
enum Stop {
    TooLarge,
    DiskFull,
    Interrupted,
}

/// Whether nothing of the body may be kept: it went past the length, or
/// it stopped early while a checksum had to see all of it.
fn discards(stop: &Option<Stop>, has_check: bool) -> bool {
    matches!(stop, Some(Stop::TooLarge)) || (has_check && stop.is_some())
}

impl Appender<'_> {
    /// Appends `body` at the upload's offset, its length now `length`
    /// (checked by the caller against the row and the limits); returns the
    /// new durable offset. Finishes the capture when the last byte arrives.
    pub async fn append<E>(
        &self,
        row: &UploadRow,
        slot: &mut Slot,
        length: Option<u64>,
        check: Option<Checksum>,
        body: impl Stream<Item = Result<Bytes, E>> + Unpin,
    ) -> Result<u64, AppendError> {
        let start = row.offset;
        let has_check = check.is_some();
        if !disk_has_room(self.life.media, self.config, 0)? {
            return Err(AppendError::DiskFull);
        }
        let hasher = match slot.hasher.take() {
            Some((hasher, at)) if at == start => hasher,
            _ => rehash(self.life.media, &row.id, start).await?,
        };
        // The hash state before this request, to go back to if it is discarded.
        let before = hasher.clone();
        let media = self.life.media.clone();
        let id = row.id.clone();
        let file = tokio::task::spawn_blocking(move || media.open_part_at(&id, start))
            .await
            .map_err(|_| MediaError::Io("the part file's opener panicked".into()))??;
        let mut sink = Some(Sink { file, hasher, check });
        let limit = length.unwrap_or(self.config.max_upload_bytes);
        let (written, durable, stop) =
            self.stream_in(row, length, limit, has_check, &mut sink, body).await?;
        if discards(&stop, has_check) {
            drop(sink.take());
            self.cut_back(&row.id, start).await?;
            slot.hasher = Some((before, start));
            return Err(match stop {
                Some(Stop::TooLarge) => AppendError::TooLarge { limit },
                _ => AppendError::CutBeforeChecksum,
            });
        }
        let end = start + written;
        let Sink { file, hasher, check } =
            sink.take().expect("the sink is put back after every write");
        drop(file);
        if check.is_some_and(|c| !c.matches()) {
            self.cut_back(&row.id, start).await?;
            slot.hasher = Some((before, start));
            return Err(AppendError::ChecksumMismatch);
        }
        let now = self.life.clock.now();
        if end != durable || length != row.length {
            let expires = now + self.config.upload_expiry_ms;
            self.life.store.upload_progress(row.id.clone(), end, length, now, expires).await?;
        }
        match stop {
            Some(Stop::DiskFull) => {
                slot.hasher = Some((hasher, end));
                return Err(AppendError::DiskFull);
            }
            Some(Stop::Interrupted) => {
                slot.hasher = Some((hasher, end));
                return Err(AppendError::Interrupted);
            }
            _ => {}
        }
        if Some(end) == length {
            let sha = hex(&hasher.finalize());
            self.life.finish(&row.id, sha, end).await?;
            self.life.slots.forget(&row.id);
        } else {
            slot.hasher = Some((hasher, end));
        }
        Ok(end)
    }

    /// Reads the body into the sink, a checkpoint (fsync, offset stored)
    /// every `checkpoint_bytes` unless a checksum must see the whole body
    /// first; the last buffer is written and fsynced unless the body is to
    /// be discarded. Returns the bytes taken, the durable offset, and why
    /// the stream stopped early, if it did.
    async fn stream_in<E>(
        &self,
        row: &UploadRow,
        length: Option<u64>,
        limit: u64,
        has_check: bool,
        sink: &mut Option<Sink>,
        mut body: impl Stream<Item = Result<Bytes, E>> + Unpin,
    ) -> Result<(u64, u64, Option<Stop>), AppendError> {
        let start = row.offset;
        let mut buf: Vec<u8> = Vec::with_capacity(WRITE_BUFFER);
        let mut written = 0u64; // taken from this body, buffered or not
        let mut durable = start;
        let mut stop = None;
        while let Some(frame) = body.next().await {
            let Ok(bytes) = frame else {
                stop = Some(Stop::Interrupted);
                break;
            };
            if start + written + bytes.len() as u64 > limit {
                stop = Some(Stop::TooLarge);
                break;
            }
            buf.extend_from_slice(&bytes);
            written += bytes.len() as u64;
            if buf.len() < WRITE_BUFFER {
                continue;
            }
            let sync = !has_check && start + written - durable >= self.config.checkpoint_bytes;
            buf = self.write_out(sink, buf, sync).await?;
            if sync {
                durable = start + written;
                let now = self.life.clock.now();
                let expires = now + self.config.upload_expiry_ms;
                self.life
                    .store
                    .upload_progress(row.id.clone(), durable, length, now, expires)
                    .await?;
                if !disk_has_room(self.life.media, self.config, 0)? {
                    stop = Some(Stop::DiskFull);
                    break;
                }
            }
        }
        if !discards(&stop, has_check) {
            self.write_out(sink, buf, true).await?;
        }
        Ok((written, durable, stop))
    }

    /// Keeps nothing of a discarded body: the part file is cut back to
    /// where it started, durably.
    async fn cut_back(&self, id: &str, start: u64) -> Result<(), MediaError> {
        let media = self.life.media.clone();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || {
            media
                .open_part_at(&id, start)
                .and_then(|f| f.sync_all().map_err(|e| MediaError::Io(e.to_string())))
        })
        .await
        .map_err(|_| MediaError::Io("cutting back a part file panicked".into()))?
    }

    /// Hashes and writes the buffer (and fsyncs when asked) on the upload
    /// lane below the door's priority, handing back an empty buffer of the
    /// same capacity. Without an fsync, writeback of what was written
    /// starts at once: dirty upload data never piles up for a check-in's
    /// commit to wait behind.
    async fn write_out(
        &self,
        sink: &mut Option<Sink>,
        mut buf: Vec<u8>,
        sync: bool,
    ) -> Result<Vec<u8>, MediaError> {
        if (self.door_busy)() {
            self.life.slots.door_busy_pace.take(buf.len() as u64).await;
        }
        let mut s = sink.take().expect("the sink is put back after every write");
        let (s, buf) = super::below_the_door(move || -> std::io::Result<(Sink, Vec<u8>)> {
            s.hasher.update(&buf);
            if let Some(c) = &mut s.check {
                c.update(&buf);
            }
            s.file.write_all(&buf)?;
            if sync {
                s.file.sync_data()?;
            } else {
                super::start_writeback(&s.file);
            }
            buf.clear();
            Ok((s, buf))
        })
        .await?
        .map_err(|e| MediaError::Io(e.to_string()))?;
        *sink = Some(s);
        Ok(buf)
    }
}
