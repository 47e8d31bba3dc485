//! The report a fenced old primary sends before it follows the new one:
//! collected by the store from its rows and the new primary's snapshot,
//! merged by the store on the new primary.

use super::LinkError;
use crate::clock::Clock;
use crate::store::takeover::TakeoverReport;
use crate::store::Store;
use std::path::Path;

/// On the old primary: what it took alone, against the snapshot at `snapshot`.
pub async fn collect(
    store: &Store,
    snapshot: &Path,
    old_epoch: i64,
) -> Result<TakeoverReport, LinkError> {
    Ok(store.lone_writes(snapshot.to_path_buf(), old_epoch).await?)
}

/// On the new primary: merges a report the old one sent.
pub async fn merge(store: &Store, clock: &Clock, body: &[u8]) -> Result<(), LinkError> {
    let report: TakeoverReport = serde_json::from_slice(body)
        .map_err(|e| LinkError::Refused(format!("a malformed takeover report: {e}")))?;
    let (checkins, orders) = (report.checkins.len(), report.orders.len());
    let listed = store.merge_takeover(report, clock.now()).await?;
    tracing::warn!(
        checkins,
        orders,
        listed,
        "merged what the old primary took alone: see the takeover report"
    );
    Ok(())
}
