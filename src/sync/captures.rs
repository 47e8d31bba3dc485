//! The capture step: one capture's bytes to `captures/<sha256>`, a small
//! one in a single PUT, a large one one multipart part per step. The
//! multipart upload id and each finished part are recorded before the next
//! step, so a restart resumes with the parts already sent. An object
//! already in the bucket (same hash, same size) is not sent again; a
//! finished object is checked (HEAD: size) before the capture counts as
//! synced.

use super::s3::{crc32_base64, S3Error};
use super::{SyncError, Syncer};
use crate::store::sync::FinishedPart;
use bytes::Bytes;
use std::path::PathBuf;

/// Reads `len` bytes at `offset` of `path`, off the async threads.
async fn read_range(path: PathBuf, offset: u64, len: u64) -> Result<Bytes, SyncError> {
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(&path).map_err(|e| {
            SyncError::Local(format!("capture file {} cannot be read ({e}): restore it from a backup; other captures wait", path.display()))
        })?;
        let mut buf = vec![0u8; len as usize];
        f.read_exact_at(&mut buf, offset).map_err(|e| {
            SyncError::Local(format!("capture file {} is shorter than recorded ({e}): restore it from a backup; other captures wait", path.display()))
        })?;
        Ok(Bytes::from(buf))
    })
    .await
    .map_err(|e| SyncError::Local(format!("read task: {e}")))?
}

impl Syncer {
    /// True if something moved (an object, a part, or a skip).
    pub async fn capture_step(&self) -> Result<bool, SyncError> {
        let Some(c) = self.store.next_capture_to_sync().await? else {
            return Ok(false);
        };
        let key = self.s3.key(&format!("captures/{}", c.sha256));
        let path = self.media.capture(&c.sha256);
        let now = || self.clock.now();
        let present = |size: Option<u64>| size == Some(c.bytes);

        if c.bytes < self.config.multipart_threshold {
            if present(self.s3.head(&key).await?.map(|i| i.size)) {
                self.store.capture_sync_done(c.sha256, now()).await?;
                return Ok(true);
            }
            let body = read_range(path, 0, c.bytes).await?;
            match self.s3.put(&key, body, true, self.throttle.as_ref()).await {
                Ok(_) => self.handle.update(|l| l.capture_bytes_sent += c.bytes),
                Err(S3Error::Exists) => {}
                Err(e) => return Err(e.into()),
            }
            return self.verify_and_finish(&key, c.sha256, c.bytes).await;
        }

        let part_size = c.part_size.unwrap_or(self.config.part_size).max(5 << 20);
        let upload_id = match c.upload_id {
            Some(id) => id,
            None => {
                if present(self.s3.head(&key).await?.map(|i| i.size)) {
                    self.store.capture_sync_done(c.sha256, now()).await?;
                    return Ok(true);
                }
                let id = self.s3.create_multipart(&key).await?;
                self.store.capture_sync_begin(c.sha256.clone(), id.clone(), part_size).await?;
                id
            }
        };
        let parts = c.bytes.div_ceil(part_size);
        let missing: Vec<u64> = (1..=parts)
            .filter(|n| !c.parts.iter().any(|p| p.number as u64 == *n))
            .take(self.config.part_concurrency.max(1))
            .collect();
        match missing.first() {
            Some(_) => {
                // Up to `part_concurrency` parts in flight; each finished part
                // is recorded as it finishes, whatever happens to the others.
                let mut flight = tokio::task::JoinSet::new();
                for n in missing {
                    let offset = (n - 1) * part_size;
                    let len = part_size.min(c.bytes - offset);
                    let body = read_range(path.clone(), offset, len).await?;
                    let (s3, key, id, throttle) =
                        (self.s3.clone(), key.clone(), upload_id.clone(), self.throttle.clone());
                    flight.spawn(async move {
                        let crc = tokio::task::spawn_blocking({
                            let body = body.clone();
                            move || crc32_base64(&body)
                        })
                        .await
                        .unwrap_or_default();
                        let sent = s3
                            .upload_part(&key, &id, n as u16, body, &crc, throttle.as_ref())
                            .await;
                        (n, len, crc, sent)
                    });
                }
                let mut first_error = None;
                while let Some(done) = flight.join_next().await {
                    let (n, len, crc32, result) =
                        done.map_err(|e| SyncError::Local(format!("part task: {e}")))?;
                    match result {
                        Ok(etag) => {
                            let part = FinishedPart { number: n as u16, etag, crc32, bytes: len };
                            self.store.capture_sync_part(c.sha256.clone(), part).await?;
                            self.handle.update(|l| l.capture_bytes_sent += len);
                        }
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                match first_error {
                    None => Ok(true),
                    Some(S3Error::NotFound) => {
                        tracing::warn!(sha256 = %c.sha256, "the multipart upload is gone on the server; starting this capture over");
                        self.store.capture_sync_reset(c.sha256).await?;
                        Ok(true)
                    }
                    Some(e) => Err(e.into()),
                }
            }
            None => {
                let parts: Vec<(u16, String, String)> =
                    c.parts.iter().map(|p| (p.number, p.etag.clone(), p.crc32.clone())).collect();
                match self.s3.complete_multipart(&key, &upload_id, &parts).await {
                    Ok(()) => {}
                    // Completed by an attempt whose answer was lost, or expired.
                    Err(S3Error::NotFound) => {
                        if !present(self.s3.head(&key).await?.map(|i| i.size)) {
                            self.store.capture_sync_reset(c.sha256).await?;
                            return Ok(true);
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
                self.verify_and_finish(&key, c.sha256, c.bytes).await
            }
        }
    }

    async fn verify_and_finish(
        &self,
        key: &str,
        sha256: String,
        bytes: u64,
    ) -> Result<bool, SyncError> {
        match self.s3.head(key).await? {
            Some(info) if info.size == bytes => {
                self.store.capture_sync_done(sha256, self.clock.now()).await?;
                Ok(true)
            }
            other => {
                let found = other.map(|i| i.size.to_string()).unwrap_or_else(|| "nothing".into());
                tracing::warn!(%key, expected = bytes, %found, "the object in the bucket does not match the capture; sending it again");
                self.store.capture_sync_reset(sha256).await?;
                Err(S3Error::Retryable(format!(
                    "{key}: expected {bytes} bytes in the bucket, found {found}"
                ))
                .into())
            }
        }
    }
}
