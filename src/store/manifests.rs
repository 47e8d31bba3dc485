//! Storing manifests: the bytes are hashed, parsed and verified off the
//! writer; the import itself is one write job, so the manifest row, the
//! replaced ticket list, the audit row and the outbox row commit together
//! or not at all; a refused or failing import leaves the previous manifest
//! in force.

use super::{audit, outbox, BoxIdentity, Store, StoreError};
use crate::domain::events::{Event, ManifestImported};
use crate::domain::keys::TrustedKeys;
use crate::domain::manifest::{self, EventSnapshot};
use crate::domain::role::Actor;
use crate::domain::time::{parse_rfc3339, Millis};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;

#[derive(Clone, Debug, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ImportOutcome {
    Imported { event_id: String, version: u64, tickets: usize, first_use_trust: bool },
    Unchanged { event_id: String, version: u64 },
}

/// The newest manifest in the database, parsed. Its signature was checked
/// at import; it is not checked again here.
pub fn load_current(
    conn: &Connection,
    identity: &BoxIdentity,
) -> Result<Option<Arc<EventSnapshot>>, StoreError> {
    let body: Option<Vec<u8>> = conn
        .query_row("SELECT body FROM manifests ORDER BY id DESC LIMIT 1", [], |r| r.get(0))
        .optional()?;
    match body {
        None => Ok(None),
        Some(b) => {
            let mut snap = manifest::parse(&b)?;
            snap.trust_own_box_key(identity.key.verifying_key());
            Ok(Some(Arc::new(snap)))
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    crate::secrets::hex(&Sha256::digest(bytes))
}

impl Store {
    /// Verifies and imports a signed manifest, atomically.
    pub async fn import_manifest(
        &self,
        bytes: Vec<u8>,
        signature: Option<String>,
        pinned: TrustedKeys,
        actor: Actor,
        now: Millis,
    ) -> Result<ImportOutcome, StoreError> {
        // Hashing, parsing and the signature check (a large manifest takes
        // a while) run here, off the writer, so check-ins never wait behind
        // them; the write job redoes them only if another import landed
        // meanwhile.
        let base = self.event();
        let (bytes, signature, digest, checked) = {
            let (base, pinned) = (base.clone(), pinned.clone());
            tokio::task::spawn_blocking(move || {
                let digest = sha256_hex(&bytes);
                let checked =
                    manifest::accept(&bytes, signature.as_deref(), base.as_deref(), &pinned);
                (bytes, signature, digest, checked)
            })
            .await
            .map_err(|e| StoreError::Internal(format!("manifest check task: {e}")))?
        };
        self.write(move |ctx| {
            if let Some(cur) = ctx.event.as_ref() {
                let cur_sha: String = ctx.conn.query_row("SELECT sha256 FROM manifests ORDER BY id DESC LIMIT 1", [], |r| r.get(0))?;
                if cur_sha == digest {
                    return Ok(ImportOutcome::Unchanged { event_id: cur.event_id().to_string(), version: cur.manifest.version });
                }
            }
            let first_use_trust = pinned.is_empty() && ctx.event.is_none();
            let same_base = match (&base, ctx.event.as_ref()) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            };
            let mut snap = if same_base {
                checked?
            } else {
                manifest::accept(&bytes, signature.as_deref(), ctx.event.as_deref(), &pinned)?
            };
            let m = &snap.manifest;
            ctx.conn.execute(
                "INSERT INTO manifests (event_id, version, sha256, body, signature, imported_at, imported_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![m.event.id.as_str(), m.version as i64, digest, bytes, signature.unwrap_or_default(), now, actor.name],
            )?;
            ctx.conn.execute("DELETE FROM tickets WHERE source = 'manifest'", [])?;
            {
                let mut ins = ctx.conn.prepare_cached(
                    "INSERT INTO tickets (id, tier_id, secret, holder, status, valid_from, valid_until, source, order_id, email)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'manifest', ?8, ?9)",
                )?;
                for t in &m.tickets {
                    let from = t.valid_from.as_deref().map(parse_rfc3339).transpose().map_err(StoreError::Internal)?;
                    let until = t.valid_until.as_deref().map(parse_rfc3339).transpose().map_err(StoreError::Internal)?;
                    ins.execute(params![t.id.as_str(), t.tier.as_str(), t.secret, t.holder, t.status.as_str(), from, until, t.order, t.email])?;
                }
            }
            let outcome = ImportOutcome::Imported {
                event_id: m.event.id.to_string(),
                version: m.version,
                tickets: m.tickets.len(),
                first_use_trust,
            };
            audit::record(ctx, &actor, "manifest.import", &outcome, now)?;
            let imported = ManifestImported { event_id: m.event.id.clone(), version: m.version, sha256: digest.clone() };
            outbox::append(ctx, &Event::ManifestImported(imported), now)?;
            if first_use_trust {
                tracing::warn!(event = %m.event.id, "first manifest on this box: trusting the organiser keys it lists (pin keys with --organiser-key to avoid this)");
            }
            snap.trust_own_box_key(ctx.identity.key.verifying_key());
            super::drops::import_manifest_drops(ctx, &snap, &actor.name, now)?;
            *ctx.event = Some(Arc::new(snap));
            Ok(outcome)
        })
        .await
    }
}
