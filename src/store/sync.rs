//! What cloud sync keeps on the box: each stream's cursor and pending
//! segment, the state of capture uploads (multipart ids and finished
//! parts), files queued for the bucket, and box settings. The sync loop
//! (`crate::sync`) decides; this module only records, with compare-and-set
//! updates so two syncers on one data directory can never plan two
//! different segments for the same seqs.

use super::{audit, outbox, outbox::OutboxRow, Store, StoreError, WriteCtx};
use crate::domain::events::{ClockSet, Event};
use crate::domain::ids::Seq;
use crate::domain::role::Actor;
use crate::domain::time::Millis;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// A stream's row: `events`, `captures`, `manifest` or `payouts`.
#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
pub struct StreamRow {
    pub stream: String,
    pub cursor: i64,
    pub pending: Option<PendingSegment>,
    pub last_success_at: Option<Millis>,
    pub last_error: Option<String>,
    /// `retryable` or `permanent`.
    pub last_error_kind: Option<String>,
    pub last_error_at: Option<Millis>,
    pub requested_at: Option<Millis>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PendingSegment {
    pub first: i64,
    pub last: i64,
    pub key: String,
}

/// How far behind the bucket is, from the box's rows alone.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Backlog {
    pub cursor: i64,
    pub last_seq: i64,
    pub events_pending: i64,
    /// Payload bytes of the pending events (uncompressed).
    pub event_bytes_pending: i64,
    /// When the oldest event the bucket has not acknowledged was written.
    pub oldest_pending_at: Option<Millis>,
    pub captures_pending: i64,
    pub capture_bytes_pending: i64,
    pub files_pending: i64,
}

/// A capture whose bytes are not yet in the bucket.
#[derive(Clone, Debug)]
pub struct CaptureToSync {
    pub sha256: String,
    pub bytes: u64,
    pub upload_id: Option<String>,
    pub part_size: Option<u64>,
    /// Finished parts, in order.
    pub parts: Vec<FinishedPart>,
}

#[derive(Clone, Debug)]
pub struct FinishedPart {
    pub number: u16,
    pub etag: String,
    /// base64 CRC32, as the server checked it.
    pub crc32: String,
    pub bytes: u64,
}

#[derive(Clone, Debug)]
pub struct FileToSync {
    pub key: String,
    pub path: String,
}

/// The outcome of a sync attempt, for the stream's row.
pub enum Outcome<'a> {
    Success,
    Failure { kind: &'a str, message: &'a str },
}

/// A capture whose bytes the bucket still needs: not sent, and not
/// withheld because consent was withdrawn (hidden and consent off).
const CAPTURE_PENDING: &str =
    "(s.state IS NULL OR s.state != 'done') AND NOT (c.hidden_at IS NOT NULL AND c.consent = 0)";

fn stream_row(conn: &rusqlite::Connection, stream: &str) -> Result<StreamRow, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT stream, cursor, pending_first, pending_last, pending_key, last_success_at, last_error,
                    last_error_kind, last_error_at, requested_at FROM sync_streams WHERE stream = ?1",
        )?
        .query_row([stream], |r| {
            let pending = match (r.get::<_, Option<i64>>(2)?, r.get::<_, Option<i64>>(3)?, r.get::<_, Option<String>>(4)?) {
                (Some(first), Some(last), Some(key)) => Some(PendingSegment { first, last, key }),
                _ => None,
            };
            Ok(StreamRow {
                stream: r.get(0)?,
                cursor: r.get(1)?,
                pending,
                last_success_at: r.get(5)?,
                last_error: r.get(6)?,
                last_error_kind: r.get(7)?,
                last_error_at: r.get(8)?,
                requested_at: r.get(9)?,
            })
        })
        .optional()?;
    row.ok_or_else(|| StoreError::Internal(format!("no sync stream '{stream}'")))
}

impl Store {
    pub async fn sync_stream(&self, stream: &'static str) -> Result<StreamRow, StoreError> {
        self.read(move |conn| stream_row(conn, stream)).await
    }

    pub async fn sync_streams(&self) -> Result<Vec<StreamRow>, StoreError> {
        self.read(|conn| {
            ["events", "captures", "manifest", "payouts"]
                .iter()
                .map(|s| stream_row(conn, s))
                .collect()
        })
        .await
    }

    /// Records the segment about to be sent, unless another syncer already
    /// planned one or moved the cursor. Returns the pending segment now on
    /// record (ours or the other's), or `None` if the cursor moved.
    pub async fn sync_plan_segment(
        &self,
        expected_cursor: i64,
        seg: PendingSegment,
    ) -> Result<Option<PendingSegment>, StoreError> {
        self.write(move |ctx| {
            ctx.conn.execute(
                "UPDATE sync_streams SET pending_first = ?1, pending_last = ?2, pending_key = ?3
                 WHERE stream = 'events' AND cursor = ?4 AND pending_first IS NULL",
                params![seg.first, seg.last, seg.key, expected_cursor],
            )?;
            let row = stream_row(ctx.conn, "events")?;
            Ok(if row.cursor == expected_cursor { row.pending } else { None })
        })
        .await
    }

    /// The bucket acknowledged `seg`: the cursor moves to its last seq.
    /// Returns false if the segment was no longer the pending one.
    pub async fn sync_ack_segment(
        &self,
        seg: PendingSegment,
        now: Millis,
    ) -> Result<bool, StoreError> {
        self.write(move |ctx| {
            let n = ctx.conn.execute(
                "UPDATE sync_streams SET cursor = ?2, pending_first = NULL, pending_last = NULL, pending_key = NULL,
                        last_success_at = ?3, last_error = NULL, last_error_kind = NULL, last_error_at = NULL
                 WHERE stream = 'events' AND pending_first = ?1 AND pending_last = ?2",
                params![seg.first, seg.last, now],
            )?;
            Ok(n == 1)
        })
        .await
    }

    /// Records how the last attempt on `stream` went.
    pub async fn sync_outcome(
        &self,
        stream: &'static str,
        outcome: Outcome<'_>,
        now: Millis,
    ) -> Result<(), StoreError> {
        let (kind, message) = match outcome {
            Outcome::Success => (None, None),
            Outcome::Failure { kind, message } => {
                (Some(kind.to_string()), Some(message.to_string()))
            }
        };
        self.write(move |ctx| {
            if kind.is_none() {
                stream_succeeded(ctx.conn, stream, now)?;
            } else {
                ctx.conn.execute(
                    "UPDATE sync_streams SET last_error = ?2, last_error_kind = ?3, last_error_at = ?4 WHERE stream = ?1",
                    params![stream, message, kind, now],
                )?;
            }
            Ok(())
        })
        .await
    }

    /// Asks the syncer (possibly another process) to try now.
    pub async fn sync_request(&self, now: Millis) -> Result<(), StoreError> {
        self.write(move |ctx| {
            ctx.conn.execute(
                "UPDATE sync_streams SET requested_at = ?1 WHERE stream = 'events'",
                [now],
            )?;
            Ok(())
        })
        .await
    }

    /// Outbox rows `first..=last`, in order.
    pub async fn outbox_range(&self, first: Seq, last: Seq) -> Result<Vec<OutboxRow>, StoreError> {
        let rows =
            self.outbox_after(Seq(first.0 - 1), (last.0 - first.0 + 1).max(0) as usize).await?;
        Ok(rows.into_iter().filter(|r| r.seq.0 <= last.0).collect())
    }

    pub async fn sync_backlog(&self) -> Result<Backlog, StoreError> {
        self.read(|conn| {
            let cursor: i64 = conn.query_row("SELECT cursor FROM sync_streams WHERE stream = 'events'", [], |r| r.get(0))?;
            // Seqs are gap-free, so the count and the oldest row are
            // primary-key look-ups; only the byte figure reads the rows.
            let (last_seq, oldest): (i64, Option<Millis>) = conn.query_row(
                "SELECT (SELECT COALESCE(MAX(seq), 0) FROM outbox), (SELECT created_at FROM outbox WHERE seq = ?1 + 1)",
                [cursor],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let pending = (last_seq - cursor).max(0);
            let bytes: i64 = conn.query_row(
                "SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM outbox WHERE seq > ?1",
                [cursor],
                |r| r.get(0),
            )?;
            let (captures, capture_bytes): (i64, i64) = conn.query_row(
                &format!("SELECT COUNT(*), COALESCE(SUM(c.bytes), 0) FROM captures c
                 LEFT JOIN capture_sync s ON s.sha256 = c.sha256 WHERE {CAPTURE_PENDING}"),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let files: i64 = conn.query_row("SELECT COUNT(*) FROM sync_files WHERE uploaded_at IS NULL", [], |r| r.get(0))?;
            Ok(Backlog {
                cursor,
                last_seq,
                events_pending: pending,
                event_bytes_pending: bytes,
                oldest_pending_at: oldest,
                captures_pending: captures,
                capture_bytes_pending: capture_bytes,
                files_pending: files,
            })
        })
        .await
    }

    /// The oldest capture not yet in the bucket, with its multipart state.
    pub async fn next_capture_to_sync(&self) -> Result<Option<CaptureToSync>, StoreError> {
        self.read(|conn| {
            let head = conn
                .prepare_cached(
                    &format!("SELECT c.sha256, c.bytes, s.upload_id, s.part_size FROM captures c
                     LEFT JOIN capture_sync s ON s.sha256 = c.sha256
                     WHERE {CAPTURE_PENDING} ORDER BY c.id LIMIT 1"),
                )?
                .query_row([], |r| {
                    Ok(CaptureToSync {
                        sha256: r.get(0)?,
                        bytes: r.get::<_, i64>(1)? as u64,
                        upload_id: r.get(2)?,
                        part_size: r.get::<_, Option<i64>>(3)?.map(|n| n as u64),
                        parts: Vec::new(),
                    })
                })
                .optional()?;
            let Some(mut c) = head else { return Ok(None) };
            let mut stmt = conn.prepare_cached("SELECT part_number, etag, crc32, bytes FROM capture_sync_parts WHERE sha256 = ?1 ORDER BY part_number")?;
            c.parts = stmt
                .query_map([&c.sha256], |r| {
                    Ok(FinishedPart { number: r.get::<_, i64>(0)? as u16, etag: r.get(1)?, crc32: r.get(2)?, bytes: r.get::<_, i64>(3)? as u64 })
                })?
                .collect::<Result<_, _>>()?;
            Ok(Some(c))
        })
        .await
    }

    /// A multipart upload was created for `sha256`; forget older parts.
    pub async fn capture_sync_begin(
        &self,
        sha256: String,
        upload_id: String,
        part_size: u64,
    ) -> Result<(), StoreError> {
        self.write(move |ctx| {
            ctx.conn.execute("DELETE FROM capture_sync_parts WHERE sha256 = ?1", [&sha256])?;
            ctx.conn.execute(
                "INSERT INTO capture_sync (sha256, state, upload_id, part_size) VALUES (?1, 'uploading', ?2, ?3)
                 ON CONFLICT (sha256) DO UPDATE SET state = 'uploading', upload_id = ?2, part_size = ?3",
                params![sha256, upload_id, part_size as i64],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn capture_sync_part(
        &self,
        sha256: String,
        part: FinishedPart,
    ) -> Result<(), StoreError> {
        self.write(move |ctx| {
            ctx.conn.execute(
                "INSERT OR REPLACE INTO capture_sync_parts (sha256, part_number, etag, crc32, bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![sha256, part.number, part.etag, part.crc32, part.bytes as i64],
            )?;
            Ok(())
        })
        .await
    }

    /// The multipart upload is gone on the server: start that capture over.
    pub async fn capture_sync_reset(&self, sha256: String) -> Result<(), StoreError> {
        self.write(move |ctx| {
            ctx.conn.execute("DELETE FROM capture_sync_parts WHERE sha256 = ?1", [&sha256])?;
            ctx.conn.execute("DELETE FROM capture_sync WHERE sha256 = ?1", [&sha256])?;
            Ok(())
        })
        .await
    }

    pub async fn capture_sync_done(&self, sha256: String, now: Millis) -> Result<(), StoreError> {
        self.write(move |ctx| {
            ctx.conn.execute("DELETE FROM capture_sync_parts WHERE sha256 = ?1", [&sha256])?;
            ctx.conn.execute(
                "INSERT INTO capture_sync (sha256, state, done_at) VALUES (?1, 'done', ?2)
                 ON CONFLICT (sha256) DO UPDATE SET state = 'done', upload_id = NULL, done_at = ?2",
                params![sha256, now],
            )?;
            stream_succeeded(ctx.conn, "captures", now)?;
            Ok(())
        })
        .await
    }

    /// Queues (or re-queues) a local file for the bucket.
    pub async fn sync_file_queue(
        &self,
        files: Vec<(String, String)>,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.write(move |ctx| {
            for (key, path) in files {
                ctx.conn.execute(
                    "INSERT INTO sync_files (key, path, queued_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key) DO UPDATE SET path = ?2, queued_at = ?3, uploaded_at = NULL",
                    params![key, path, now],
                )?;
            }
            Ok(())
        })
        .await
    }

    pub async fn sync_files_pending(&self) -> Result<Vec<FileToSync>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT key, path FROM sync_files WHERE uploaded_at IS NULL ORDER BY queued_at, key")?;
            let rows = stmt.query_map([], |r| Ok(FileToSync { key: r.get(0)?, path: r.get(1)? }))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn sync_file_done(&self, key: String, now: Millis) -> Result<(), StoreError> {
        self.write(move |ctx| {
            ctx.conn.execute(
                "UPDATE sync_files SET uploaded_at = ?2 WHERE key = ?1",
                params![key, now],
            )?;
            stream_succeeded(ctx.conn, "payouts", now)?;
            Ok(())
        })
        .await
    }

    pub async fn setting(&self, key: &'static str) -> Result<Option<String>, StoreError> {
        self.read(move |conn| {
            Ok(conn
                .query_row("SELECT value FROM box_settings WHERE key = ?1", [key], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    pub async fn set_setting(
        &self,
        key: &'static str,
        value: String,
        actor: Actor,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.write(move |ctx| {
            upsert_setting(ctx, key, &value, &actor, now)?;
            audit::record(
                ctx,
                &actor,
                &format!("setting.{key}"),
                &serde_json::json!({"value": value}),
                now,
            )?;
            Ok(())
        })
        .await
    }
}

fn upsert_setting(
    ctx: &WriteCtx<'_>,
    key: &str,
    value: &str,
    actor: &Actor,
    now: Millis,
) -> Result<(), StoreError> {
    ctx.conn.execute(
        "INSERT INTO box_settings (key, value, updated_at, updated_by) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (key) DO UPDATE SET value = ?2, updated_at = ?3, updated_by = ?4",
        params![key, value, now, actor.name],
    )?;
    Ok(())
}

/// `stream` just moved something: its last success is now and any error
/// it showed is over.
fn stream_succeeded(
    conn: &rusqlite::Connection,
    stream: &str,
    now: Millis,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE sync_streams SET last_success_at = ?2, last_error = NULL, last_error_kind = NULL, last_error_at = NULL
         WHERE stream = ?1",
    )?
    .execute(params![stream, now])?;
    Ok(())
}

/// Where the admin-given clock offset is kept.
pub const CLOCK_OFFSET_SETTING: &str = "clock_offset_ms";
/// The last scan decided before the clock was last set back: its undo
/// window (and every earlier one) stays closed, however far back the clock
/// went.
pub const UNDO_CLOSED_THROUGH_SETTING: &str = "undo_closed_through_scan";

impl Store {
    /// The newest time the box recorded (an outbox event, a manifest
    /// import) or the current manifest was signed: its clock cannot be
    /// right before it.
    pub async fn clock_floor(&self) -> Result<Option<Millis>, StoreError> {
        let recorded: Option<Millis> = self
            .read(|conn| {
                Ok(conn.query_row(
                    "SELECT MAX(t) FROM (SELECT MAX(created_at) AS t FROM outbox UNION ALL SELECT MAX(imported_at) FROM manifests)",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await?;
        let signed = self.event().and_then(|e| e.signed_at);
        Ok(recorded.max(signed))
    }

    /// Keeps an admin's clock offset (applied again at every start) and
    /// records it as a `clock.set` event: records after its seq used it.
    pub async fn set_clock_offset(
        &self,
        offset_ms: i64,
        previous_offset_ms: i64,
        system_at: Millis,
        actor: Actor,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.write(move |ctx| {
            upsert_setting(ctx, CLOCK_OFFSET_SETTING, &offset_ms.to_string(), &actor, now)?;
            let back = previous_offset_ms - offset_ms;
            if back > 0 {
                // Set back: a window measured on the box's time must not
                // open again. Undo windows of scans so far close; holds keep
                // the real time they had left.
                let last: i64 =
                    ctx.conn
                        .query_row("SELECT COALESCE(MAX(id), 0) FROM scans", [], |r| r.get(0))?;
                upsert_setting(ctx, UNDO_CLOSED_THROUGH_SETTING, &last.to_string(), &actor, now)?;
                ctx.conn
                    .prepare_cached(
                        "UPDATE holds SET expires_at = expires_at - ?1 WHERE status = 'active'",
                    )?
                    .execute([back])?;
            }
            let set = ClockSet { offset_ms, previous_offset_ms, system_at, by: actor.name.clone() };
            audit::record(
                ctx,
                &actor,
                "clock.set",
                &serde_json::to_value(&set).unwrap_or_default(),
                now,
            )?;
            outbox::append(ctx, &Event::ClockSet(set), now)?;
            Ok(())
        })
        .await
    }
}
