//! Uploads and captures in SQLite: tus upload rows (offset = bytes on
//! disk), finished captures by SHA-256 with attribution, the creator
//! dashboard queries, hiding, thumbnails' state, and upload links.

use super::{audit, outbox, Store, StoreError};
use crate::domain::capture::Probe;
use crate::domain::capture::{CaptureMeta, MediaType};
use crate::domain::error_code::ErrorCode;
use crate::domain::events::{CaptureCompleted, CaptureHidden, Event};
use crate::domain::ids::CreatorId;
use crate::domain::role::{Actor, Role};
use crate::domain::time::{format_rfc3339, Millis};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use std::collections::HashSet;

/// Where an upload is in its life (the `uploads.status` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadStatus {
    /// Receiving bytes.
    Active,
    /// Every byte arrived and it became a capture.
    Complete,
    /// Not a photo or video the box accepts.
    Refused,
    /// Untouched past its expiry.
    Expired,
    /// Ended by the client (tus termination) or an admin.
    Terminated,
}

impl UploadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadStatus::Active => "active",
            UploadStatus::Complete => "complete",
            UploadStatus::Refused => "refused",
            UploadStatus::Expired => "expired",
            UploadStatus::Terminated => "terminated",
        }
    }
}

impl rusqlite::types::FromSql for UploadStatus {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        use UploadStatus::*;
        match v.as_str()? {
            "active" => Ok(Active),
            "complete" => Ok(Complete),
            "refused" => Ok(Refused),
            "expired" => Ok(Expired),
            "terminated" => Ok(Terminated),
            _ => Err(rusqlite::types::FromSqlError::InvalidType),
        }
    }
}

/// Whether a capture's thumbnail was made (the `captures.thumbnail` column
/// holds it, or `failed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThumbnailState {
    Ready,
    Failed,
    /// No decoder on this box for its type.
    None,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UploadRow {
    pub id: String,
    pub length: Option<u64>,
    pub offset: u64,
    pub metadata: String,
    pub creator: CreatorId,
    pub uploader: Option<String>,
    pub consent: bool,
    pub client_captured_at: Option<Millis>,
    pub filename: Option<String>,
    pub created_by: String,
    pub expires_at: Millis,
    pub status: UploadStatus,
    pub sha256: Option<String>,
    /// Digest of the sign-in (or link) that made it; `None` for uploads
    /// from before that was recorded.
    pub session_sha256: Option<String>,
}

const UPLOAD_COLUMNS: &str = "id, length, offset, metadata, creator_id, uploader, consent, client_captured_at, filename, created_by, expires_at, status, sha256, session_sha256";

fn upload_row(r: &Row<'_>) -> rusqlite::Result<UploadRow> {
    Ok(UploadRow {
        id: r.get(0)?,
        length: r.get::<_, Option<i64>>(1)?.map(|l| l as u64),
        offset: r.get::<_, i64>(2)? as u64,
        metadata: r.get(3)?,
        creator: CreatorId(r.get(4)?),
        uploader: r.get(5)?,
        consent: r.get(6)?,
        client_captured_at: r.get(7)?,
        filename: r.get(8)?,
        created_by: r.get(9)?,
        expires_at: r.get(10)?,
        status: r.get(11)?,
        sha256: r.get(12)?,
        session_sha256: r.get(13)?,
    })
}

fn get_upload(conn: &Connection, id: &str) -> Result<Option<UploadRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = ?1"))?
        .query_row([id], upload_row)
        .optional()?)
}

/// A new upload as the creation request describes it.
pub struct NewUpload {
    pub id: String,
    pub length: Option<u64>,
    pub metadata: String,
    pub meta: CaptureMeta,
    pub created_by: String,
    /// Digest of the session (token) that created it: only that sign-in
    /// (or a supervisor) may continue or delete it.
    pub session_sha256: String,
    /// Whose promise it is (a staff member across sign-ins, or one upload
    /// link): open uploads and the bytes they reserve are bounded per owner.
    pub owner: String,
    pub now: Millis,
    pub expires_at: Millis,
}

/// How much of the capture quota is taken, for a new upload's admission.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuotaUse {
    /// Bytes on disk: captures plus what active uploads received.
    pub received: u64,
    /// Bytes promised but not yet received by uploads that moved lately,
    /// each owner counting at most the per-owner cap (so one person cannot
    /// reserve the whole quota).
    pub reserved: u64,
    /// Active uploads of the asking owner.
    pub owner_open: u64,
    /// Bytes the asking owner's uploads that moved lately still promise.
    pub owner_reserved: u64,
}

/// An upload in progress, as an admin sees it.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct OpenUpload {
    pub id: String,
    pub creator: String,
    pub created_by: String,
    pub length: Option<u64>,
    pub offset: u64,
    pub created_at: Millis,
    pub expires_at: Millis,
    /// Whose promise it is: `staff:<name>` or `link:<id>`.
    pub owner: String,
}

/// One capture as the dashboard shows it.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct CaptureView {
    pub id: i64,
    pub sha256: String,
    pub bytes: u64,
    pub media_type: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub captured_at: String,
    pub captured_at_source: String,
    pub creator: String,
    pub uploader: Option<String>,
    pub consent: bool,
    pub hidden: bool,
    pub thumbnail: Option<String>,
    /// Where its preview stands: `pending`, `ready`, `none` (no decoder
    /// for its type on this box) or `failed` (the file could not be read).
    pub preview: String,
    /// A video's length, read with its poster frame.
    pub duration_ms: Option<i64>,
}

#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
pub struct CaptureTotals {
    pub count: u64,
    pub bytes: u64,
    pub latest: Option<String>,
}

/// What the box knows a creator brought in.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct CreatorSummary {
    pub creator: String,
    pub name: String,
    /// Tickets sold with the creator's referral code or claimed with their
    /// scholarship codes, and how many of those have checked in.
    pub tickets_attributed: u64,
    pub checkins_attributed: u64,
    pub scholarship_claims: u64,
    pub drop_orders: u64,
    pub drop_sales_minor: i64,
    pub ticket_sales_minor: i64,
    pub currency: String,
    pub captures: CaptureTotals,
}

fn capture_view(r: &Row<'_>) -> rusqlite::Result<CaptureView> {
    let sha: String = r.get(1)?;
    let thumb: String = r.get(12)?;
    Ok(CaptureView {
        id: r.get(0)?,
        bytes: r.get::<_, i64>(2)? as u64,
        media_type: r.get(3)?,
        width: r.get(4)?,
        height: r.get(5)?,
        captured_at: format_rfc3339(r.get(6)?),
        captured_at_source: r.get(7)?,
        creator: r.get(8)?,
        uploader: r.get(9)?,
        consent: r.get(10)?,
        hidden: r.get::<_, Option<i64>>(11)?.is_some(),
        thumbnail: (thumb == "ready").then(|| format!("/api/v1/captures/{sha}/thumbnail")),
        preview: thumb,
        duration_ms: r.get(13)?,
        sha256: sha,
    })
}

const CAPTURE_COLUMNS: &str =
    "id, sha256, bytes, media_type, width, height, captured_at, captured_at_source, creator_id, uploader, consent, hidden_at, thumbnail, duration_ms";

impl Store {
    pub async fn create_upload(&self, u: NewUpload) -> Result<UploadRow, StoreError> {
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached(
                    "INSERT INTO uploads (id, length, offset, metadata, filename, claimed_type, creator_id, uploader, consent,
                                          client_captured_at, created_by, created_at, updated_at, expires_at, status, session_sha256, owner)
                     VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, 'active', ?13, ?14)",
                )?
                .execute(params![
                    u.id,
                    u.length.map(|l| l as i64),
                    u.metadata,
                    u.meta.filename,
                    u.meta.claimed_type,
                    u.meta.creator.as_str(),
                    u.meta.uploader,
                    u.meta.consent,
                    u.meta.captured_at,
                    u.created_by,
                    u.now,
                    u.expires_at,
                    u.session_sha256,
                    u.owner,
                ])?;
            get_upload(ctx.conn, &u.id)?.ok_or_else(|| StoreError::Internal("upload vanished".into()))
        })
        .await
    }

    pub async fn upload(&self, id: String) -> Result<Option<UploadRow>, StoreError> {
        self.read(move |conn| get_upload(conn, &id)).await
    }

    /// Records bytes that have reached the disk (and a deferred length once
    /// known), pushing the expiry out: an active upload does not expire.
    pub async fn upload_progress(
        &self,
        id: String,
        offset: u64,
        length: Option<u64>,
        now: Millis,
        expires_at: Millis,
    ) -> Result<(), StoreError> {
        self.write(move |ctx| {
            let n = ctx
                .conn
                .prepare_cached(
                    "UPDATE uploads SET offset = ?1, length = COALESCE(length, ?2), updated_at = ?3, expires_at = ?4
                     WHERE id = ?5 AND status = 'active'",
                )?
                .execute(params![offset as i64, length.map(|l| l as i64), now, expires_at, id])?;
            if n == 0 {
                return Err(StoreError::Conflict(format!("upload {id} is no longer active")));
            }
            Ok(())
        })
        .await
    }

    /// Records the finished upload's hash before its bytes move into the
    /// content-addressed store, so a restart in between can finish it.
    pub async fn upload_hashed(&self, id: String, sha256: String) -> Result<(), StoreError> {
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached("UPDATE uploads SET sha256 = ?1 WHERE id = ?2")?
                .execute([&sha256, &id])?;
            Ok(())
        })
        .await
    }

    /// Ends an upload without a capture: refused (bad type), terminated by
    /// the client, or expired.
    pub async fn end_upload(
        &self,
        id: String,
        status: UploadStatus,
        error: Option<String>,
        now: Millis,
    ) -> Result<(), StoreError> {
        let status = status.as_str();
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached("UPDATE uploads SET status = ?1, error = ?2, updated_at = ?3 WHERE id = ?4 AND status IN ('active', 'complete')")?
                .execute(params![status, error, now, id])?;
            Ok(())
        })
        .await
    }

    /// Turns a finished upload into a capture (or a second upload of one
    /// already stored), with its outbox row, in one transaction.
    pub async fn complete_upload(
        &self,
        id: String,
        sha256: String,
        bytes: u64,
        probe: Probe,
        now: Millis,
    ) -> Result<(CaptureView, bool), StoreError> {
        self.write(move |ctx| {
            let u = get_upload(ctx.conn, &id)?.ok_or_else(|| StoreError::NotFound(format!("upload {id}")))?;
            if u.status != UploadStatus::Active {
                let status = u.status.as_str();
                return Err(StoreError::Conflict(format!("upload {id} is {status}")));
            }
            let exists: bool = ctx.conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM captures WHERE sha256 = ?1)")?.query_row([&sha256], |r| r.get(0))?;
            if !exists {
                let (captured_at, source) = match (probe.captured_at, u.client_captured_at) {
                    (Some(t), _) => (t, "file"),
                    (None, Some(t)) => (t, "client"),
                    (None, None) => (now, "upload"),
                };
                // Every type gets a try: the worker knows which decoders
                // this box has.
                let thumb = "pending";
                ctx.conn
                    .prepare_cached(
                        "INSERT INTO captures (sha256, bytes, media_type, width, height, captured_at, captured_at_source, creator_id,
                                               uploader, consent, first_upload, created_at, thumbnail)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                    )?
                    .execute(params![
                        sha256, bytes as i64, probe.media.mime(), probe.width, probe.height, captured_at, source,
                        u.creator.as_str(), u.uploader, u.consent, id, now, thumb
                    ])?;
            }
            ctx.conn
                .prepare_cached("INSERT INTO capture_uploads (upload_id, sha256, creator_id, uploader, consent, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
                .execute(params![id, sha256, u.creator.as_str(), u.uploader, u.consent, now])?;
            ctx.conn
                .prepare_cached("UPDATE uploads SET status = 'complete', sha256 = ?1, offset = ?2, updated_at = ?3 WHERE id = ?4")?
                .execute(params![sha256, bytes as i64, now, id])?;
            let view = ctx
                .conn
                .prepare_cached(&format!("SELECT {CAPTURE_COLUMNS} FROM captures WHERE sha256 = ?1"))?
                .query_row([&sha256], capture_view)?;
            let completed = CaptureCompleted {
                sha256: sha256.clone(),
                bytes,
                media_type: view.media_type.clone(),
                creator: u.creator.clone(),
                uploader: u.uploader.clone(),
                consent: u.consent,
                captured_at: view.captured_at.clone(),
                captured_at_source: view.captured_at_source.clone(),
                upload: id.clone(),
                duplicate: exists,
                filename: u.filename.clone(),
            };
            outbox::append(ctx, &Event::CaptureCompleted(completed), now)?;
            Ok((view, exists))
        })
        .await
    }

    /// Active uploads past their expiry, marked expired; their part files
    /// are the caller's to remove.
    pub async fn expire_uploads(&self, now: Millis) -> Result<Vec<String>, StoreError> {
        self.write(move |ctx| {
            let ids: Vec<String> = ctx
                .conn
                .prepare_cached("UPDATE uploads SET status = 'expired', updated_at = ?1 WHERE status = 'active' AND expires_at <= ?1 RETURNING id")?
                .query_map([now], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(ids)
        })
        .await
    }

    /// Active uploads whose bytes are all on disk but which were not turned
    /// into captures (a crash in between): finished at start-up.
    pub async fn uploads_awaiting_completion(&self) -> Result<Vec<UploadRow>, StoreError> {
        self.read(|conn| {
            Ok(conn
                .prepare(&format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE status = 'active' AND length IS NOT NULL AND offset = length"))?
                .query_map([], upload_row)?
                .collect::<Result<_, _>>()?)
        })
        .await
    }

    /// The quota taken now, and by `owner`. Promised bytes count only for
    /// uploads that moved since `moved_since` (a promise that sees no bytes
    /// for a while gives its room back; the upload itself may still
    /// resume), and each owner's count at most `per_owner_cap`.
    pub async fn capture_quota(
        &self,
        owner: String,
        per_owner_cap: u64,
        moved_since: Millis,
    ) -> Result<QuotaUse, StoreError> {
        self.read(move |conn| {
            let cap = per_owner_cap.min(i64::MAX as u64) as i64;
            let (received, reserved): (i64, i64) = conn.prepare_cached(
                "SELECT (SELECT COALESCE(SUM(bytes), 0) FROM captures) + (SELECT COALESCE(SUM(offset), 0) FROM uploads WHERE status = 'active'),
                        (SELECT COALESCE(SUM(MIN(promised, ?1)), 0) FROM
                           (SELECT SUM(COALESCE(length, offset) - offset) AS promised FROM uploads
                            WHERE status = 'active' AND updated_at > ?2 GROUP BY COALESCE(owner, session_sha256)))",
            )?
            .query_row(params![cap, moved_since], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let (open, promised): (i64, i64) = conn
                .prepare_cached("SELECT COUNT(*), COALESCE(SUM(CASE WHEN updated_at > ?2 THEN COALESCE(length, offset) - offset ELSE 0 END), 0) FROM uploads WHERE status = 'active' AND owner = ?1")?
                .query_row(params![owner, moved_since], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(QuotaUse { received: received as u64, reserved: reserved as u64, owner_open: open as u64, owner_reserved: promised as u64 })
        })
        .await
    }

    /// The ids of `owner`'s open uploads (an admin clears them at once).
    pub async fn open_uploads_of(&self, owner: String) -> Result<Vec<String>, StoreError> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT id FROM uploads WHERE status = 'active' AND owner = ?1")?
                .query_map([owner], |r| r.get(0))?
                .collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Uploads in progress, oldest first (at most `limit`).
    pub async fn open_uploads(&self, limit: usize) -> Result<Vec<OpenUpload>, StoreError> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT id, creator_id, created_by, length, offset, created_at, expires_at, COALESCE(owner, '') FROM uploads WHERE status = 'active' ORDER BY created_at LIMIT ?1",
                )?
                .query_map([limit as i64], |r| {
                    Ok(OpenUpload {
                        id: r.get(0)?,
                        creator: r.get(1)?,
                        created_by: r.get(2)?,
                        length: r.get::<_, Option<i64>>(3)?.map(|l| l as u64),
                        offset: r.get::<_, i64>(4)? as u64,
                        created_at: r.get(5)?,
                        expires_at: r.get(6)?,
                        owner: r.get(7)?,
                    })
                })?
                .collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Which of these hashes the box already has.
    pub async fn captures_present(
        &self,
        hashes: Vec<String>,
    ) -> Result<HashSet<String>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT 1 FROM captures WHERE sha256 = ?1")?;
            let mut present = HashSet::new();
            for h in hashes {
                if stmt.exists([&h])? {
                    present.insert(h);
                }
            }
            Ok(present)
        })
        .await
    }

    pub async fn capture(&self, sha256: String) -> Result<Option<CaptureView>, StoreError> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {CAPTURE_COLUMNS} FROM captures WHERE sha256 = ?1"
                ))?
                .query_row([sha256], capture_view)
                .optional()?)
        })
        .await
    }

    /// A creator's visible captures, newest first, `limit` at a time.
    pub async fn creator_captures(
        &self,
        creator: CreatorId,
        before: Option<i64>,
        limit: usize,
    ) -> Result<(Vec<CaptureView>, CaptureTotals), StoreError> {
        self.read(move |conn| {
            let items = conn
                .prepare_cached(&format!(
                    "SELECT {CAPTURE_COLUMNS} FROM captures WHERE creator_id = ?1 AND hidden_at IS NULL AND id < ?2 ORDER BY id DESC LIMIT ?3"
                ))?
                .query_map(params![creator.as_str(), before.unwrap_or(i64::MAX), limit as i64], capture_view)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok((items, capture_totals(conn, &creator)?))
        })
        .await
    }

    pub async fn creator_summary(&self, creator: CreatorId) -> Result<CreatorSummary, StoreError> {
        let ev = self.event().ok_or(StoreError::NoEvent)?;
        let c = ev
            .creator(&creator)
            .ok_or_else(|| StoreError::NotFound(format!("creator '{creator}'")))?
            .clone();
        let currency = ev.manifest.event.currency.clone();
        self.read(move |conn| {
            let one = |sql: &str| -> Result<i64, StoreError> { Ok(conn.prepare_cached(sql)?.query_row([creator.as_str()], |r| r.get(0))?) };
            Ok(CreatorSummary {
                tickets_attributed: one(
                    "SELECT COUNT(*) FROM tickets t JOIN orders o ON o.id = t.order_id WHERE o.creator_id = ?1 AND o.status = 'paid' AND o.kind IN ('walkup', 'scholarship')",
                )? as u64,
                checkins_attributed: one(
                    "SELECT COUNT(DISTINCT s.ticket_id) FROM scans s JOIN tickets t ON t.id = s.ticket_id JOIN orders o ON o.id = t.order_id
                     WHERE o.creator_id = ?1 AND o.status = 'paid' AND s.verdict = 'admit' AND s.undone_at IS NULL",
                )? as u64,
                scholarship_claims: one("SELECT COUNT(*) FROM scholarship_claims WHERE creator_id = ?1 AND status = 'active'")? as u64,
                drop_orders: one("SELECT COUNT(*) FROM orders WHERE creator_id = ?1 AND kind = 'drop' AND status = 'paid'")? as u64,
                drop_sales_minor: one("SELECT COALESCE(SUM(total_minor), 0) FROM orders WHERE creator_id = ?1 AND kind = 'drop' AND status = 'paid'")?,
                ticket_sales_minor: one(
                    "SELECT COALESCE(SUM(total_minor), 0) FROM orders WHERE creator_id = ?1 AND kind IN ('walkup', 'scholarship') AND status = 'paid'",
                )?,
                currency,
                captures: capture_totals(conn, &creator)?,
                name: c.name,
                creator: creator.to_string(),
            })
        })
        .await
    }

    /// Takes a capture off the dashboard (wrong event, blurry...) and tells
    /// the cloud. With `consent_withdrawn`, the capture also loses its
    /// consent, and its bytes are not sent to the cloud if they are not
    /// there yet.
    pub async fn hide_capture(
        &self,
        sha256: String,
        reason: String,
        consent_withdrawn: bool,
        actor: Actor,
        now: Millis,
    ) -> Result<CaptureView, StoreError> {
        self.write(move |ctx| {
            if reason.trim().is_empty() {
                return Err(StoreError::invalid(ErrorCode::ReasonRequired, "say why the capture is hidden (reason), for the record"));
            }
            let n = ctx
                .conn
                .prepare_cached(
                    "UPDATE captures SET hidden_at = ?1, hidden_by = ?2, hidden_reason = ?3, consent = consent AND NOT ?5
                     WHERE sha256 = ?4 AND hidden_at IS NULL",
                )?
                .execute(params![now, actor.name, reason, sha256, consent_withdrawn])?;
            let view = ctx
                .conn
                .prepare_cached(&format!("SELECT {CAPTURE_COLUMNS} FROM captures WHERE sha256 = ?1"))?
                .query_row([&sha256], capture_view)
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("capture {sha256}")))?;
            if n == 0 {
                return Err(StoreError::Conflict(format!("capture {sha256} is already hidden")));
            }
            let hidden = CaptureHidden { sha256: sha256.clone(), reason: reason.clone(), consent_withdrawn, by: actor.name.clone(), at: now };
            audit::record(ctx, &actor, "capture.hide", &hidden, now)?;
            outbox::append(ctx, &Event::CaptureHidden(hidden), now)?;
            Ok(view)
        })
        .await
    }

    /// Captures waiting for a thumbnail, oldest first.
    pub async fn thumbnails_pending(
        &self,
        limit: usize,
    ) -> Result<Vec<(String, MediaType)>, StoreError> {
        self.read(move |conn| {
            let rows = conn
                .prepare_cached("SELECT sha256, media_type FROM captures WHERE thumbnail = 'pending' ORDER BY id LIMIT ?1")?
                .query_map([limit as i64], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows.into_iter().filter_map(|(s, m)| MediaType::parse_mime(&m).map(|m| (s, m))).collect())
        })
        .await
    }

    pub async fn set_thumbnail(
        &self,
        sha256: String,
        state: ThumbnailState,
        duration_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        let state = match state {
            ThumbnailState::Ready => "ready",
            ThumbnailState::Failed => "failed",
            ThumbnailState::None => "none",
        };
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached(
                    "UPDATE captures SET thumbnail = ?1, duration_ms = ?2 WHERE sha256 = ?3",
                )?
                .execute(params![state, duration_ms, sha256])?;
            Ok(())
        })
        .await
    }

    /// A token that lets a creator's crew upload captures for that creator
    /// only, without a staff account.
    pub async fn create_upload_link(
        &self,
        creator: CreatorId,
        ttl_ms: Millis,
        by: Actor,
        now: Millis,
    ) -> Result<String, StoreError> {
        let ev = self.event().ok_or(StoreError::NoEvent)?;
        if ev.creator(&creator).is_none() {
            return Err(StoreError::invalid(
                ErrorCode::UnknownCreator,
                format!("creator '{creator}' is not in the manifest"),
            ));
        }
        let actor = Actor { name: format!("link:{creator} (by {})", by.name), role: Role::Capture };
        Ok(self.create_scoped_session(actor, Some(creator), now, ttl_ms).await?.0)
    }
}

fn capture_totals(conn: &Connection, creator: &CreatorId) -> Result<CaptureTotals, StoreError> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*), COALESCE(SUM(bytes), 0), MAX(created_at) FROM captures WHERE creator_id = ?1 AND hidden_at IS NULL")?
        .query_row([creator.as_str()], |r| {
            Ok(CaptureTotals {
                count: r.get::<_, i64>(0)? as u64,
                bytes: r.get::<_, i64>(1)? as u64,
                latest: r.get::<_, Option<Millis>>(2)?.map(format_rfc3339),
            })
        })?)
}
