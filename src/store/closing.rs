//! Closing an event on the box: the mark that it is closed (the box then
//! refuses to serve it again), the index of its captures for the archive,
//! and erasing the personal data a travelling box must not keep — holder
//! names, attendee codes (scanned and issued), uploader ids, staff sessions
//! and pairing codes — while every figure (counts, money, stock) stays.
//! Freed pages are zeroed (`secure_delete`) and the file is rewritten
//! (`VACUUM`), so no old copy of a name survives in the database file.

use super::{audit, Store, StoreError};
use crate::domain::role::Actor;
use crate::domain::time::Millis;
use rusqlite::{params, Connection};
use serde_json::Value;

/// The setting that holds the id of the event closed on this box.
pub const CLOSED_SETTING: &str = "event_closed";

/// Keys whose values are personal wherever they appear in a stored JSON
/// document (outbox payloads, audit details, the manifest's ticket list).
const PERSONAL_KEYS: [&str; 4] = ["holder", "uploader", "attendee_code", "secret"];

/// One capture as the archive lists it.
#[derive(Debug, serde::Serialize)]
pub struct CaptureIndexEntry {
    pub sha256: String,
    pub creator: String,
    pub bytes: u64,
    pub media_type: String,
    pub captured_at: Millis,
    pub hidden: bool,
    pub consent: bool,
    /// The part size of its multipart upload, when it went up in parts.
    #[serde(skip)]
    pub part_size: Option<u64>,
}

/// What the wipe changed.
#[derive(Debug, Default, serde::Serialize)]
pub struct WipeReport {
    pub tickets: u64,
    pub scans: u64,
    pub captures: u64,
    pub outbox_events: u64,
    pub sessions: u64,
}

impl Store {
    /// The event closed on this box, if any.
    pub async fn closed_event(&self) -> Result<Option<String>, StoreError> {
        self.setting(CLOSED_SETTING).await
    }

    /// Marks the loaded event closed (audited).
    pub async fn close_event(&self, actor: Actor, now: Millis) -> Result<String, StoreError> {
        let ev = self.event().ok_or(StoreError::NoEvent)?;
        let id = ev.event_id().to_string();
        self.set_setting(CLOSED_SETTING, id.clone(), actor, now).await?;
        Ok(id)
    }

    /// Every capture of the box, for the archive's index.
    pub async fn capture_index(&self) -> Result<Vec<CaptureIndexEntry>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT c.sha256, c.creator_id, c.bytes, c.media_type, c.captured_at, c.hidden_at IS NOT NULL, c.consent, s.part_size
                 FROM captures c LEFT JOIN capture_sync s ON s.sha256 = c.sha256 ORDER BY c.id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(CaptureIndexEntry {
                    sha256: r.get(0)?,
                    creator: r.get(1)?,
                    bytes: r.get::<_, i64>(2)? as u64,
                    media_type: r.get(3)?,
                    captured_at: r.get(4)?,
                    hidden: r.get(5)?,
                    consent: r.get(6)?,
                    part_size: r.get::<_, Option<i64>>(7)?.map(|n| n as u64),
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Erases personal data and rewrites the file so none is left in it.
    /// Only for a closed event whose records are safe elsewhere (the
    /// caller checks the bucket, or was told to go ahead).
    pub async fn wipe_personal_data(
        &self,
        actor: Actor,
        now: Millis,
    ) -> Result<WipeReport, StoreError> {
        let report = self
            .write(move |ctx| {
                let c = ctx.conn;
                c.pragma_update(None, "secure_delete", "ON")?;
                let mut r = WipeReport {
                    tickets: c.execute("UPDATE tickets SET holder = NULL, code = NULL WHERE holder IS NOT NULL OR code IS NOT NULL", [])? as u64,
                    scans: c.execute("UPDATE scans SET holder = NULL, code = '' WHERE holder IS NOT NULL OR code <> ''", [])? as u64,
                    captures: c.execute("UPDATE captures SET uploader = NULL WHERE uploader IS NOT NULL", [])? as u64,
                    sessions: c.execute("DELETE FROM sessions", [])? as u64,
                    ..WipeReport::default()
                };
                c.execute("UPDATE uploads SET uploader = NULL, metadata = ''", [])?;
                c.execute("UPDATE capture_uploads SET uploader = NULL", [])?;
                c.execute("DELETE FROM pairing_codes", [])?;
                // pretix's orders (attendee names, secrets): pretix keeps them.
                c.execute("DELETE FROM pretix_orders", [])?;
                // Ticket codes sit in scan rows and in receipts' ticket lists.
                r.outbox_events = redact_column(c, "outbox", "seq", "payload", true)?;
                redact_column(c, "orders", "id", "receipt", true)?;
                redact_column(c, "audit", "id", "detail", true)?;
                redact_column(c, "manifests", "id", "body", false)?;
                audit::record(ctx, &actor, "event.wiped", &serde_json::to_value(&r).unwrap_or_default(), now)?;
                Ok(r)
            })
            .await?;
        // Outside any transaction: fold the WAL in, then rewrite the file.
        let path = self.db_path().to_path_buf();
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let conn = Connection::open(&path)?;
            conn.pragma_update(None, "secure_delete", "ON")?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            conn.execute_batch("VACUUM")?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(())
        })
        .await
        .map_err(|_| StoreError::Closed)??;
        Ok(report)
    }
}

/// Removes personal keys from the JSON documents in `table.column`
/// (with `codes`, every `code` too: ticket codes in scans and receipts);
/// returns how many rows changed. Text that is not JSON is left as it is.
fn redact_column(
    c: &Connection,
    table: &str,
    id: &str,
    column: &str,
    codes: bool,
) -> Result<u64, StoreError> {
    let rows: Vec<(rusqlite::types::Value, Vec<u8>)> = {
        let mut stmt = c.prepare(&format!("SELECT {id}, CAST({column} AS BLOB) FROM {table}"))?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get::<_, Option<Vec<u8>>>(1)?.unwrap_or_default()))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    let mut changed = 0;
    for (row, bytes) in rows {
        let Ok(mut doc) = serde_json::from_slice::<Value>(&bytes) else { continue };
        if strip(&mut doc, codes) {
            let text = doc.to_string();
            let sql = format!("UPDATE {table} SET {column} = ?1 WHERE {id} = ?2");
            // The manifest body is a BLOB (its exact bytes); the others text.
            if table == "manifests" {
                c.execute(&sql, params![text.into_bytes(), row])?;
            } else {
                c.execute(&sql, params![text, row])?;
            }
            changed += 1;
        }
    }
    Ok(changed)
}

/// Drops personal keys anywhere in `v`; `codes`: also every `code`.
fn strip(v: &mut Value, codes: bool) -> bool {
    match v {
        Value::Object(m) => {
            let before = m.len();
            let personal = |k: &str| PERSONAL_KEYS.contains(&k) || (codes && k == "code");
            m.retain(|k, _| !personal(k));
            let mut changed = m.len() != before;
            for child in m.values_mut() {
                changed |= strip(child, codes);
            }
            changed
        }
        Value::Array(items) => items.iter_mut().fold(false, |acc, i| strip(i, codes) | acc),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_keys_go_at_any_depth_and_codes_only_where_asked() {
        let mut v = serde_json::json!({"holder": "Ada", "code": "VB1:x", "tickets": [{"id": "t1", "holder": "Bo", "secret": "S"}], "n": 3});
        assert!(strip(&mut v, false));
        assert_eq!(v, serde_json::json!({"code": "VB1:x", "tickets": [{"id": "t1"}], "n": 3}));
        assert!(strip(&mut v, true));
        assert_eq!(v, serde_json::json!({"tickets": [{"id": "t1"}], "n": 3}));
        assert!(!strip(&mut v, true), "nothing left to take");
    }
}
