//! Staff sessions: bearer tokens stored by their SHA-256, with role and
//! expiry, so a restart of the box does not sign the door out.

use super::identity::{hex, random_bytes};
use super::{audit, Store, StoreError};
use crate::domain::ids::CreatorId;
use crate::domain::role::{Actor, Role};
use crate::domain::time::Millis;
use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub actor: Actor,
    pub expires_at: Millis,
    /// Set for upload links: the only creator this session may upload for.
    pub creator_scope: Option<CreatorId>,
}

pub fn token_digest(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

impl Store {
    /// Makes a new session and returns its token (shown once, never stored).
    pub async fn create_session(&self, actor: Actor, now: Millis, ttl_ms: Millis) -> Result<(String, Session), StoreError> {
        self.create_scoped_session(actor, None, now, ttl_ms).await
    }

    /// A session that may only upload captures for `scope` (an upload link).
    pub async fn create_scoped_session(&self, actor: Actor, scope: Option<CreatorId>, now: Millis, ttl_ms: Millis) -> Result<(String, Session), StoreError> {
        let token = format!("vbx_{}", hex(&random_bytes::<24>()));
        let digest = token_digest(&token);
        let session = Session { actor: actor.clone(), expires_at: now + ttl_ms, creator_scope: scope.clone() };
        let expires_at = session.expires_at;
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached("INSERT INTO sessions (token_sha256, staff, role, created_at, expires_at, creator_scope) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
                .execute(params![digest, actor.name, actor.role.as_str(), now, expires_at, scope.as_ref().map(|c| c.as_str())])?;
            ctx.conn.prepare_cached("DELETE FROM sessions WHERE expires_at < ?1")?.execute([now])?;
            audit::record(ctx, &actor, "session.create", &serde_json::json!({"expires_at": expires_at, "creator_scope": scope}), now)?;
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
                .prepare_cached("SELECT staff, role, expires_at, creator_scope FROM sessions WHERE token_sha256 = ?1")?
                .query_row([digest], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Millis>(2)?, r.get::<_, Option<String>>(3)?)))
                .optional()?;
            Ok(row.and_then(|(name, role, expires_at, scope)| {
                let role: Role = role.parse().ok()?;
                (expires_at > now).then_some(Session { actor: Actor { name, role }, expires_at, creator_scope: scope.map(CreatorId) })
            }))
        })
        .await
    }

    pub async fn end_session(&self, token: &str, actor: Actor, now: Millis) -> Result<(), StoreError> {
        let digest = token_digest(token);
        self.write(move |ctx| {
            ctx.conn.prepare_cached("DELETE FROM sessions WHERE token_sha256 = ?1")?.execute([digest])?;
            audit::record(ctx, &actor, "session.end", &serde_json::json!({}), now)?;
            Ok(())
        })
        .await
    }
}
