//! The audit log: who changed what on the box, written in the same
//! transaction as the change. Scans are their own record and do not
//! appear here.

use super::{StoreError, WriteCtx};
use crate::domain::role::Actor;
use crate::domain::time::Millis;
use rusqlite::params;
use serde::Serialize;

pub fn record(
    ctx: &WriteCtx<'_>,
    actor: &Actor,
    action: &str,
    detail: &impl Serialize,
    now: Millis,
) -> Result<(), StoreError> {
    let detail = serde_json::to_string(detail).map_err(|e| StoreError::Internal(e.to_string()))?;
    ctx.conn
        .prepare_cached(
            "INSERT INTO audit (at, actor, role, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![now, actor.name, actor.role.as_str(), action, detail])?;
    Ok(())
}

impl super::Store {
    /// An audited action that changes no table of its own (clearing the
    /// PIN locks, a device unpaired by the box).
    pub async fn audit_note(
        &self,
        actor: Actor,
        action: &'static str,
        detail: serde_json::Value,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.write(move |ctx| record(ctx, &actor, action, &detail, now)).await
    }
}
