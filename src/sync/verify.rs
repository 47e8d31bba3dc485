//! Is everything this box recorded in the bucket? The check `venuebox
//! event close` makes before it erases anything: the bucket is listed,
//! the event segments' keys (`events/box=<id>/…/<first>-<last>.ndjson.zst`)
//! must cover every outbox seq from 1 to the last, and every capture the
//! box syncs must be at `captures/<sha256>` (content-addressed: the key is
//! its hash) with its size and with the bytes on the box: its ETag, the
//! MD5 S3 computed of what it received, is compared with the MD5 of the
//! file here (per part for a multipart upload).

use super::s3::{Listed, S3Error, S3};
use crate::store::closing::CaptureIndexEntry;
use crate::store::{Store, StoreError};
use std::path::Path;

#[derive(Debug, Default, serde::Serialize)]
pub struct Verification {
    pub last_seq: u64,
    /// Seq ranges no segment in the bucket holds.
    pub missing_events: Vec<(u64, u64)>,
    pub captures_checked: usize,
    /// Captures absent from the bucket, or there with another size.
    pub missing_captures: Vec<String>,
    /// Captures whose bytes in the bucket differ from the file here.
    pub differing_captures: Vec<String>,
    /// Captures compared byte for byte (by MD5); the rest of those present
    /// had an ETag that is not an MD5 (a KMS-encrypted bucket) or a file
    /// no longer on the box.
    pub captures_hashed: usize,
}

impl Verification {
    pub fn complete(&self) -> bool {
        self.missing_events.is_empty()
            && self.missing_captures.is_empty()
            && self.differing_captures.is_empty()
    }
}

/// What the bucket's ETag says of the file at `path`: `Some(true)` the
/// same bytes, `Some(false)` other bytes, `None` not an MD5 ETag, no part
/// size known for a multipart one, or no file to compare.
fn same_bytes(path: &Path, etag: &str, part_size: Option<u64>) -> Option<bool> {
    use md5::{Digest, Md5};
    use std::io::Read;
    let (sum, parts) = match etag.split_once('-') {
        Some((sum, n)) => (sum, Some(n.parse::<usize>().ok()?)),
        None => (etag, None),
    };
    if sum.len() != 32 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut file = std::fs::File::open(path).ok()?;
    // A single PUT is one part as long as the file.
    let part = match parts {
        None => u64::MAX,
        Some(_) => part_size?,
    };
    let mut digests = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let (mut in_part, mut this) = (0u64, Md5::new());
        while in_part < part {
            let want = (buf.len() as u64).min(part - in_part) as usize;
            let n = file.read(&mut buf[..want]).ok()?;
            if n == 0 {
                break;
            }
            this.update(&buf[..n]);
            in_part += n as u64;
        }
        if in_part == 0 && !digests.is_empty() {
            break;
        }
        digests.push(this.finalize());
        if in_part < part {
            break;
        }
    }
    let hex = crate::secrets::hex;
    Some(match parts {
        None => hex(&digests[0]) == sum,
        Some(n) => n == digests.len() && hex(&Md5::digest(digests.concat())) == sum,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    S3(#[from] S3Error),
}

/// The seq ranges `1..=last` that none of `have` covers.
pub fn gaps(last: u64, mut have: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    have.sort_unstable();
    let mut next = 1;
    let mut out = Vec::new();
    for (first, end) in have {
        if first > next {
            out.push((next, (first - 1).min(last)));
        }
        next = next.max(end + 1);
        if next > last {
            break;
        }
    }
    if next <= last {
        out.push((next, last));
    }
    out.retain(|(a, b)| a <= b && *a <= last);
    out
}

/// `first-last` from a segment key's file name.
fn segment_range(key: &str) -> Option<(u64, u64)> {
    let name = key.rsplit('/').next()?.strip_suffix(".ndjson.zst")?;
    let (first, last) = name.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

/// Lists the bucket and checks it against the store; capture files are
/// read from `media` (a capture's bytes at `media.capture(sha256)`).
pub async fn verify(
    store: &Store,
    s3: &S3,
    media: &crate::media::files::MediaFiles,
) -> Result<Verification, VerifyError> {
    let last_seq = store.sync_backlog().await?.last_seq.max(0) as u64;
    let segments = s3.list(&format!("events/box={}/", store.box_id())).await?;
    let have = segments.iter().filter_map(|l| segment_range(&l.key)).collect();
    let in_bucket: std::collections::HashMap<String, Listed> =
        s3.list("captures/").await?.into_iter().map(|l| (l.key.clone(), l)).collect();
    let mut v =
        Verification { last_seq, missing_events: gaps(last_seq, have), ..Default::default() };
    let mut to_hash: Vec<(CaptureIndexEntry, String)> = Vec::new();
    for c in store.capture_index().await? {
        // Withdrawn consent: never sent, so not expected.
        if c.hidden && !c.consent {
            continue;
        }
        v.captures_checked += 1;
        match in_bucket.get(&format!("captures/{}", c.sha256)) {
            Some(l) if l.size == c.bytes => {
                if let Some(etag) = &l.etag {
                    to_hash.push((c, etag.clone()));
                }
            }
            _ => v.missing_captures.push(c.sha256),
        }
    }
    // Reading every capture takes a while on a Pi's card: off the async
    // threads, one file at a time.
    let files: Vec<_> = to_hash
        .into_iter()
        .map(|(c, etag)| (media.capture(&c.sha256), etag, c.part_size, c.sha256))
        .collect();
    let compared = tokio::task::spawn_blocking(move || {
        files
            .into_iter()
            .map(|(path, etag, part, sha)| (sha, same_bytes(&path, &etag, part)))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| StoreError::Internal(format!("hash task: {e}")))?;
    for (sha, same) in compared {
        match same {
            Some(true) => v.captures_hashed += 1,
            Some(false) => v.differing_captures.push(sha),
            None => {}
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_compared_with_the_file_whole_or_per_part() {
        use md5::{Digest, Md5};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("capture");
        let bytes: Vec<u8> = (0..(5u32 << 20) + 123).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let hex = crate::secrets::hex;
        let whole = hex(&Md5::digest(&bytes));
        assert_eq!(same_bytes(&path, &whole, None), Some(true));
        assert_eq!(same_bytes(&path, &hex(&Md5::digest(b"other")), None), Some(false));
        // Two parts of 4 MiB and the rest, as S3 computes a multipart ETag.
        let part = 4u64 << 20;
        let mut of_parts = Md5::new();
        for chunk in bytes.chunks(part as usize) {
            of_parts.update(Md5::digest(chunk));
        }
        let multipart = format!("{}-2", hex(&of_parts.finalize()));
        assert_eq!(same_bytes(&path, &multipart, Some(part)), Some(true));
        assert_eq!(same_bytes(&path, &multipart, Some(part * 2)), Some(false), "other parts");
        assert_eq!(same_bytes(&path, &multipart, None), None, "part size unknown");
        assert_eq!(same_bytes(&path, "not-an-md5", None), None, "a KMS ETag");
        assert_eq!(same_bytes(&dir.path().join("gone"), &whole, None), None);
    }

    #[test]
    fn gaps_are_the_seqs_no_segment_holds() {
        assert_eq!(gaps(10, vec![(1, 4), (5, 10)]), vec![]);
        assert_eq!(gaps(10, vec![(1, 4), (7, 10)]), vec![(5, 6)]);
        assert_eq!(gaps(10, vec![(3, 4)]), vec![(1, 2), (5, 10)]);
        assert_eq!(gaps(0, vec![]), vec![]);
        assert_eq!(gaps(5, vec![(1, 3), (2, 5)]), vec![], "overlaps count once");
        assert_eq!(
            segment_range("p/events/box=b/date=2026-11-27/000000000009-000000000010.ndjson.zst"),
            Some((9, 10))
        );
    }
}
