//! The outbox: an append-only, gap-free, per-box sequence of what the
//! cloud must learn. Rows are appended by write jobs inside their own
//! transaction; the sync loop (a later issue) reads them in order.

use super::{Store, StoreError, WriteCtx};
use crate::domain::events::Event;
use crate::domain::ids::Seq;
use crate::domain::time::Millis;
use rusqlite::params;
use serde::Serialize;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct OutboxRow {
    pub seq: Seq,
    pub box_id: String,
    pub kind: String,
    pub payload: serde_json::Value,
    pub created_at: Millis,
}

/// Appends one event in the caller's transaction and returns its seq.
pub fn append(ctx: &WriteCtx<'_>, event: &Event, now: Millis) -> Result<Seq, StoreError> {
    let (kind, payload) = event.to_parts();
    let payload = payload.to_string();
    let seq: i64 = ctx
        .conn
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM outbox")?
        .query_row([], |r| r.get(0))?;
    ctx.conn
        .prepare_cached("INSERT INTO outbox (seq, box_id, kind, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![seq, ctx.box_id, kind, payload, now])?;
    Ok(Seq(seq))
}

impl Store {
    /// Outbox rows after `after`, oldest first.
    pub async fn outbox_after(
        &self,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, box_id, kind, payload, created_at FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after.0, limit as i64], |r| {
                let payload: String = r.get(3)?;
                Ok(OutboxRow {
                    seq: Seq(r.get(0)?),
                    box_id: r.get(1)?,
                    kind: r.get(2)?,
                    payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
                    created_at: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
