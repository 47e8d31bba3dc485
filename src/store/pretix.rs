//! What the box keeps of pretix (`crate::pretix` decides): every order it
//! has imported (an import asks only for what changed), small named values
//! (the import and send-back cursors, last outcomes), and which sent
//! check-ins were annulled or refused.

use super::scans::{from_row, COLUMNS};
use super::{Store, StoreError};
use crate::domain::checkin::ScanRecord;
use crate::domain::time::Millis;
use rusqlite::{params, OptionalExtension};

/// The import cursor's key: the `modified_since` of the next import
/// (pretix's clock when the last one began, less an overlap).
pub const ORDERS_CURSOR: &str = "orders_modified_since";

/// An order as the box keeps it: its positions already in the manifest's
/// shape (JSON), and pretix's `modified` time.
#[derive(Clone, Debug)]
pub struct StoredOrder {
    pub code: String,
    pub positions: String,
    pub modified: String,
}

impl Store {
    /// Replaces the given orders and sets named values, in one
    /// transaction; `fresh` first forgets every order and the import cursor.
    pub async fn pretix_save(
        &self,
        fresh: bool,
        orders: Vec<StoredOrder>,
        values: Vec<(&'static str, String)>,
    ) -> Result<(), StoreError> {
        self.write(move |ctx| {
            if fresh {
                ctx.conn.execute("DELETE FROM pretix_orders", [])?;
                ctx.conn.execute("DELETE FROM pretix_state WHERE key = ?1", [ORDERS_CURSOR])?;
            }
            let mut up = ctx.conn.prepare_cached(
                "INSERT INTO pretix_orders (code, positions, modified) VALUES (?1, ?2, ?3)
                 ON CONFLICT (code) DO UPDATE SET positions = excluded.positions, modified = excluded.modified",
            )?;
            for o in &orders {
                up.execute(params![o.code, o.positions, o.modified])?;
            }
            let mut set = ctx.conn.prepare_cached(
                "INSERT INTO pretix_state (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?;
            for (k, v) in &values {
                set.execute(params![k, v])?;
            }
            Ok(())
        })
        .await
    }

    /// Every order imported so far, by code.
    pub async fn pretix_orders(&self) -> Result<Vec<StoredOrder>, StoreError> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare("SELECT code, positions, modified FROM pretix_orders ORDER BY code")?;
            let rows = stmt.query_map([], |r| {
                Ok(StoredOrder { code: r.get(0)?, positions: r.get(1)?, modified: r.get(2)? })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn pretix_value(&self, key: &'static str) -> Result<Option<String>, StoreError> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT value FROM pretix_state WHERE key = ?1")?
                .query_row([key], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    /// Sets (or, with `None`, removes) a named value.
    pub async fn pretix_set_value(
        &self,
        key: &'static str,
        value: Option<String>,
    ) -> Result<(), StoreError> {
        self.write(move |ctx| {
            match &value {
                Some(v) => ctx.conn.execute(
                    "INSERT INTO pretix_state (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![key, v],
                )?,
                None => ctx.conn.execute("DELETE FROM pretix_state WHERE key = ?1", [key])?,
            };
            Ok(())
        })
        .await
    }

    /// Scans after `cursor`, oldest first.
    pub async fn pretix_scans_after(
        &self,
        cursor: i64,
        limit: usize,
    ) -> Result<Vec<ScanRecord>, StoreError> {
        self.scans_where("id > ?1", cursor, limit).await
    }

    /// Admitted scans up to `cursor` (so already sent, or skipped) that
    /// were undone and not yet annulled in pretix.
    pub async fn pretix_undone_unannulled(
        &self,
        cursor: i64,
        limit: usize,
    ) -> Result<Vec<ScanRecord>, StoreError> {
        let filter = "id <= ?1 AND undone_at IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM pretix_annulled a WHERE a.scan_id = s.id)";
        self.scans_where(filter, cursor, limit).await
    }

    /// Scans matching `filter` (on `?1` = `cursor`), oldest first.
    async fn scans_where(
        &self,
        filter: &'static str,
        cursor: i64,
        limit: usize,
    ) -> Result<Vec<ScanRecord>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM scans s WHERE {filter} ORDER BY id LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![cursor, limit as i64], from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Records what happened to one scan: the send-back cursor moves past
    /// it, with a refusal or an annulment noted in the same transaction.
    pub async fn pretix_scan_done(
        &self,
        scan: i64,
        outcome: ScanDone,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.write(move |ctx| {
            match &outcome {
                ScanDone::Sent => {}
                ScanDone::Refused(detail) => {
                    ctx.conn.execute(
                        "INSERT OR REPLACE INTO pretix_refused (scan_id, detail, at) VALUES (?1, ?2, ?3)",
                        params![scan, detail, now],
                    )?;
                }
                ScanDone::Annulled | ScanDone::AnnulRefused(_) => {
                    let refused = match &outcome {
                        ScanDone::AnnulRefused(d) => Some(d.as_str()),
                        _ => None,
                    };
                    ctx.conn.execute(
                        "INSERT OR IGNORE INTO pretix_annulled (scan_id, at, refused) VALUES (?1, ?2, ?3)",
                        params![scan, now, refused],
                    )?;
                    return Ok(());
                }
            }
            // Never backwards: a slow duplicate cannot undo progress.
            ctx.conn.execute(
                "INSERT INTO pretix_state (key, value) VALUES ('sent_through', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value
                 WHERE CAST(value AS INTEGER) < CAST(excluded.value AS INTEGER)",
                [scan.to_string()],
            )?;
            Ok(())
        })
        .await
    }

    /// Where the send-back lane is: its cursor, what waits after it, and
    /// what pretix would not take (the latest `recent` of them listed).
    pub async fn pretix_counts(&self, recent: usize) -> Result<PretixCounts, StoreError> {
        self.read(move |conn| {
            let cursor: i64 = conn
                .query_row(
                    "SELECT CAST(value AS INTEGER) FROM pretix_state WHERE key = 'sent_through'",
                    [],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0);
            let after: i64 =
                conn.query_row("SELECT COUNT(*) FROM scans WHERE id > ?1", [cursor], |r| r.get(0))?;
            let refused: i64 =
                conn.query_row("SELECT COUNT(*) FROM pretix_refused", [], |r| r.get(0))?;
            let annul_refused: i64 = conn.query_row(
                "SELECT COUNT(*) FROM pretix_annulled WHERE refused IS NOT NULL",
                [],
                |r| r.get(0),
            )?;
            let mut stmt = conn.prepare_cached(
                "SELECT scan_id, 'check-in', detail, at FROM pretix_refused
                 UNION ALL
                 SELECT scan_id, 'annulment', refused, at FROM pretix_annulled WHERE refused IS NOT NULL
                 ORDER BY at DESC, scan_id DESC LIMIT ?1",
            )?;
            let latest = stmt
                .query_map([recent as i64], |r| {
                    Ok(PretixRefusal {
                        scan_id: r.get(0)?,
                        kind: r.get(1)?,
                        detail: r.get(2)?,
                        at: r.get(3)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(PretixCounts { sent_through: cursor, waiting: after, refused, annul_refused, latest })
        })
        .await
    }
}

/// The send-back lane's position and what pretix would not take.
#[derive(Clone, Debug)]
pub struct PretixCounts {
    /// The last scan handled (sent, refused, or not for pretix).
    pub sent_through: i64,
    /// Scans after it.
    pub waiting: i64,
    /// Scans pretix declined.
    pub refused: i64,
    /// Check-ins undone at the door that pretix would not annul.
    pub annul_refused: i64,
    /// The latest of both, newest first.
    pub latest: Vec<PretixRefusal>,
}

/// One scan pretix would not take, or one annulment it refused.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PretixRefusal {
    pub scan_id: i64,
    /// "check-in" or "annulment".
    pub kind: String,
    /// What pretix said.
    pub detail: String,
    pub at: Millis,
}

/// What became of a scan the send-back lane handled.
#[derive(Clone, Debug)]
pub enum ScanDone {
    /// pretix has it (or it was not for pretix).
    Sent,
    /// pretix refused it for good.
    Refused(String),
    /// An undone check-in: pretix annulled it, or had nothing to annul.
    Annulled,
    /// An undone check-in pretix would not annul (what it said): pretix
    /// still counts the guest in.
    AnnulRefused(String),
}
