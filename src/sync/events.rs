//! The event-log step: plan the next segment after the cursor, record it
//! as pending, PUT it with `If-None-Match: *`, and only then move the
//! cursor. A retry (after a failure or a crash) finds the pending segment
//! and sends the same key with the same bytes; "already there with the
//! same bytes" counts as sent.

use super::plan::{self, LogEvent, SegmentRules};
use super::s3::S3Error;
use super::{SyncError, Syncer};
use crate::domain::ids::Seq;
use crate::domain::time::format_rfc3339;
use crate::store::outbox::OutboxRow;
use crate::store::sync::PendingSegment;

impl From<OutboxRow> for LogEvent {
    fn from(r: OutboxRow) -> LogEvent {
        LogEvent {
            box_id: r.box_id,
            seq: r.seq.0,
            kind: r.kind,
            at: format_rfc3339(r.created_at),
            payload: r.payload,
            at_ms: r.created_at,
        }
    }
}

impl Syncer {
    /// Sends at most one segment. True if one was sent (look again).
    /// With `flush`, a segment closes whatever its age (`sync now`).
    pub async fn events_step(&self, flush: bool) -> Result<bool, SyncError> {
        let row = self.store.sync_stream("events").await?;
        // The segment to send and, when just planned, its events (already read).
        let (seg, mut events) = match row.pending {
            Some(p) => (p, Vec::new()),
            None => {
                let rows = self
                    .store
                    .outbox_after(Seq(row.cursor), self.config.segment.max_events)
                    .await?;
                let events: Vec<LogEvent> = rows.into_iter().map(LogEvent::from).collect();
                let rules = if flush {
                    SegmentRules { max_age_ms: 0, ..self.config.segment.clone() }
                } else {
                    self.config.segment.clone()
                };
                let Some(seg) = plan::next_segment(&events, &rules, self.clock.now()) else {
                    return Ok(false);
                };
                let key = seg.key(self.s3.prefix(), self.store.box_id());
                let planned = PendingSegment { first: seg.first, last: seg.last, key };
                match self.store.sync_plan_segment(row.cursor, planned.clone()).await? {
                    Some(p) if p == planned => (p, events),
                    // Another syncer planned first: send its segment.
                    Some(p) => (p, Vec::new()),
                    // Another syncer moved the cursor meanwhile: look again.
                    None => return Ok(true),
                }
            }
        };
        events.retain(|e| e.seq <= seg.last);
        if events.is_empty() {
            let rows = self.store.outbox_range(Seq(seg.first), Seq(seg.last)).await?;
            events = rows.into_iter().map(LogEvent::from).collect();
        }
        if events.len() as i64 != seg.last - seg.first + 1 {
            return Err(SyncError::Local(format!(
                "outbox rows {}..{} are incomplete ({} found): the database is damaged; restore it from a backup",
                seg.first,
                seg.last,
                events.len()
            )));
        }
        let bytes = bytes::Bytes::from(plan::encode(&events));
        match self.s3.put(&seg.key, bytes.clone(), true, None).await {
            Ok(_) => {}
            Err(S3Error::Exists) => {
                let there = self.s3.get(&seg.key).await?;
                if there != bytes {
                    return Err(S3Error::Permanent(format!(
                        "{} already holds different bytes: is another box using this box's identity and prefix? Nothing was overwritten",
                        seg.key
                    ))
                    .into());
                }
            }
            Err(e) => return Err(e.into()),
        }
        let n = (seg.last - seg.first + 1) as u64;
        self.store.sync_ack_segment(seg, self.clock.now()).await?;
        self.handle.update(|l| {
            l.segments_sent += 1;
            l.events_sent += n;
        });
        Ok(true)
    }
}
