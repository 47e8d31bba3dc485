//! Is everything this box recorded in the bucket? The check `venuebox
//! event close` makes before it erases anything: the bucket is listed,
//! the event segments' keys (`events/box=<id>/…/<first>-<last>.ndjson.zst`)
//! must cover every outbox seq from 1 to the last, and every capture the
//! box syncs must be at `captures/<sha256>` (content-addressed: the key is
//! its hash) with its size.

use super::s3::{S3Error, S3};
use crate::store::{Store, StoreError};

#[derive(Debug, Default, serde::Serialize)]
pub struct Verification {
    pub last_seq: u64,
    /// Seq ranges no segment in the bucket holds.
    pub missing_events: Vec<(u64, u64)>,
    pub captures_checked: usize,
    /// Captures absent from the bucket, or there with another size.
    pub missing_captures: Vec<String>,
}

impl Verification {
    pub fn complete(&self) -> bool {
        self.missing_events.is_empty() && self.missing_captures.is_empty()
    }
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

pub async fn verify(store: &Store, s3: &S3) -> Result<Verification, VerifyError> {
    let last_seq = store.sync_backlog().await?.last_seq.max(0) as u64;
    let segments = s3.list(&format!("events/box={}/", store.box_id())).await?;
    let have = segments.iter().filter_map(|(k, _)| segment_range(k)).collect();
    let in_bucket: std::collections::HashMap<String, u64> =
        s3.list("captures/").await?.into_iter().collect();
    let mut v =
        Verification { last_seq, missing_events: gaps(last_seq, have), ..Default::default() };
    for c in store.capture_index().await? {
        // Withdrawn consent: never sent, so not expected.
        if c.hidden && !c.consent {
            continue;
        }
        v.captures_checked += 1;
        if in_bucket.get(&format!("captures/{}", c.sha256)) != Some(&c.bytes) {
            v.missing_captures.push(c.sha256);
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

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
