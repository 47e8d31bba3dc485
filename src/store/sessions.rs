//! Staff sessions: bearer tokens stored by their SHA-256, with role and
//! expiry, so a restart of the box does not sign the door out.

use super::{audit, Store, StoreError};
use crate::domain::ids::CreatorId;
use crate::domain::role::{Actor, Role};
use crate::domain::time::Millis;
use crate::secrets::{hex, random_bytes};
use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub actor: Actor,
    pub expires_at: Millis,
    /// Set for upload links: the only creator this session may upload for.
    pub creator_scope: Option<CreatorId>,
    /// The paired device it was signed in on (`None`: `venuebox token`, upload links).
    pub device_id: Option<String>,
}

/// A session as a supervisor sees it: no token, an id that names it.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct SessionView {
    /// The first 16 hex characters of the token's SHA-256.
    pub id: String,
    pub staff: String,
    pub role: String,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub device: Option<String>,
    pub creator_scope: Option<String>,
}

pub fn token_digest(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

impl Store {
    /// Makes a new session and returns its token (shown once, never stored).
    pub async fn create_session(
        &self,
        actor: Actor,
        now: Millis,
        ttl_ms: Millis,
    ) -> Result<(String, Session), StoreError> {
        self.create_scoped_session(actor, None, now, ttl_ms).await
    }

    /// A session that may only upload captures for `scope` (an upload link).
    pub async fn create_scoped_session(
        &self,
        actor: Actor,
        scope: Option<CreatorId>,
        now: Millis,
        ttl_ms: Millis,
    ) -> Result<(String, Session), StoreError> {
        self.insert_session(
            Session { actor, expires_at: now + ttl_ms, creator_scope: scope, device_id: None },
            now,
        )
        .await
    }

    /// A staff sign-in with a PIN on a paired device.
    pub async fn create_device_session(
        &self,
        actor: Actor,
        device_id: String,
        now: Millis,
        ttl_ms: Millis,
    ) -> Result<(String, Session), StoreError> {
        self.insert_session(
            Session {
                actor,
                expires_at: now + ttl_ms,
                creator_scope: None,
                device_id: Some(device_id),
            },
            now,
        )
        .await
    }

    async fn insert_session(
        &self,
        session: Session,
        now: Millis,
    ) -> Result<(String, Session), StoreError> {
        let token = format!("vbx_{}", hex(&random_bytes::<24>()));
        let digest = token_digest(&token);
        let s = session.clone();
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached(
                    "INSERT INTO sessions (token_sha256, staff, role, created_at, expires_at, creator_scope, device_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![digest, s.actor.name, s.actor.role.as_str(), now, s.expires_at, s.creator_scope.as_ref().map(|c| c.as_str()), s.device_id])?;
            ctx.conn.prepare_cached("DELETE FROM sessions WHERE expires_at < ?1")?.execute([now])?;
            if let Some(device) = &s.device_id {
                Store::touch_device(ctx, device, now)?;
            }
            let detail = serde_json::json!({"expires_at": s.expires_at, "creator_scope": s.creator_scope, "device": s.device_id});
            audit::record(ctx, &s.actor, "session.create", &detail, now)?;
            Ok(())
        })
        .await?;
        Ok((token, session))
    }

    /// The live session a token belongs to, if any.
    pub async fn session(&self, token: &str, now: Millis) -> Result<Option<Session>, StoreError> {
        let digest = token_digest(token);
        self.read(move |conn| {
            let row = conn
                .prepare_cached("SELECT staff, role, expires_at, creator_scope, device_id FROM sessions WHERE token_sha256 = ?1")?
                .query_row([digest], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Millis>(2)?, r.get::<_, Option<String>>(3)?, r.get::<_, Option<String>>(4)?))
                })
                .optional()?;
            Ok(row.and_then(|(name, role, expires_at, scope, device_id)| {
                let role: Role = role.parse().ok()?;
                (expires_at > now).then_some(Session { actor: Actor { name, role }, expires_at, creator_scope: scope.map(CreatorId), device_id })
            }))
        })
        .await
    }

    /// Live sessions, newest first: what a supervisor sees to revoke one.
    pub async fn sessions(&self, now: Millis) -> Result<Vec<SessionView>, StoreError> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT substr(token_sha256, 1, 16), staff, role, created_at, expires_at, device_id, creator_scope
                     FROM sessions WHERE expires_at > ?1 ORDER BY created_at DESC LIMIT 1000",
                )?
                .query_map([now], |r| {
                    Ok(SessionView {
                        id: r.get(0)?,
                        staff: r.get(1)?,
                        role: r.get(2)?,
                        created_at: r.get(3)?,
                        expires_at: r.get(4)?,
                        device: r.get(5)?,
                        creator_scope: r.get(6)?,
                    })
                })?
                .collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Ends the session whose id (see [`SessionView`]) is `id`; returns
    /// its token digest, for the caller's caches.
    pub async fn revoke_session(
        &self,
        id: String,
        actor: Actor,
        now: Millis,
    ) -> Result<String, StoreError> {
        self.write(move |ctx| {
            if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(StoreError::NotFound(format!("no session '{id}': GET /api/v1/sessions lists them")));
            }
            let digest: Option<String> = ctx
                .conn
                .prepare_cached("DELETE FROM sessions WHERE substr(token_sha256, 1, 16) = ?1 RETURNING token_sha256")?
                .query_row([&id], |r| r.get(0))
                .optional()?;
            let digest = digest.ok_or_else(|| StoreError::NotFound(format!("no session '{id}': it ended or never was")))?;
            audit::record(ctx, &actor, "session.revoke", &serde_json::json!({"session": id}), now)?;
            Ok(digest)
        })
        .await
    }

    pub async fn end_session(
        &self,
        token: &str,
        actor: Actor,
        now: Millis,
    ) -> Result<(), StoreError> {
        let digest = token_digest(token);
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached("DELETE FROM sessions WHERE token_sha256 = ?1")?
                .execute([digest])?;
            audit::record(ctx, &actor, "session.end", &serde_json::json!({}), now)?;
            Ok(())
        })
        .await
    }
}
