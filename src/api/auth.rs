//! Who is calling: the bearer-token extractor, a token cache in front of
//! the sessions table, and the PIN-guessing throttle for sign-in.

use super::error::ApiError;
use super::signin::{PinVerifier, SignInGuard};
use super::AppState;
use crate::domain::ids::CreatorId;
use crate::domain::role::{Actor, Role};
use crate::store::pairing::PairedDevice;
use crate::store::sessions::{token_digest, Session};
use crate::store::{Store, StoreError};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

#[derive(Default)]
pub struct AuthState {
    /// Sessions already looked up, by token digest, so a check-in does not
    /// pay a database read for its token.
    cache: Mutex<HashMap<String, Session>>,
    /// Paired devices that are not revoked, by credential digest; `None`
    /// until loaded. In memory so that a flood of sign-ins with made-up
    /// credentials never reaches the database (and the door's reads).
    devices: Mutex<Option<HashMap<String, PairedDevice>>>,
    /// Counts and backs off sign-in attempts.
    pub guard: SignInGuard,
    /// The argon2 threads.
    pub verifier: PinVerifier,
}

impl AuthState {
    pub fn forget(&self, token: &str) {
        self.forget_digest(&token_digest(token));
    }

    pub fn forget_digest(&self, digest: &str) {
        self.cache.lock().expect("auth cache").remove(digest);
    }

    /// Loads the paired devices (at start, or on first use).
    pub async fn load_devices(&self, store: &Store) -> Result<(), StoreError> {
        let all = store.paired_devices().await?;
        let map = all
            .into_iter()
            .filter(|d| d.revoked_at.is_none())
            .map(|d| (d.credential_sha256.clone(), d))
            .collect();
        self.devices.lock().expect("device cache").get_or_insert(map);
        Ok(())
    }

    /// The live paired device holding `credential`, if any.
    pub async fn device(
        &self,
        store: &Store,
        credential: &str,
    ) -> Result<Option<PairedDevice>, StoreError> {
        let digest = token_digest(credential);
        if self.devices.lock().expect("device cache").is_none() {
            self.load_devices(store).await?;
        }
        Ok(self
            .devices
            .lock()
            .expect("device cache")
            .as_ref()
            .and_then(|m| m.get(&digest).cloned()))
    }

    pub fn device_by_id(&self, id: &str) -> Option<PairedDevice> {
        self.devices
            .lock()
            .expect("device cache")
            .as_ref()
            .and_then(|m| m.values().find(|d| d.id == id).cloned())
    }

    pub fn device_paired(&self, d: PairedDevice) {
        if let Some(m) = self.devices.lock().expect("device cache").as_mut() {
            m.insert(d.credential_sha256.clone(), d);
        }
    }

    /// Forgets a revoked device and every cached session signed in on it.
    pub fn device_revoked(&self, id: &str) {
        self.guard.forget_device(id);
        if let Some(m) = self.devices.lock().expect("device cache").as_mut() {
            m.retain(|_, d| d.id != id);
        }
        self.cache.lock().expect("auth cache").retain(|_, s| s.device_id.as_deref() != Some(id));
    }
}

/// A signed-in caller. Extracting it answers 401 without a valid token.
#[derive(Clone, Debug)]
pub struct Principal {
    pub actor: Actor,
    pub token: String,
    /// For upload links: the one creator this caller may upload for.
    pub creator_scope: Option<CreatorId>,
    /// The paired device this caller signed in on, if any.
    pub device_id: Option<String>,
}

/// The only paths an upload link may use: uploading, the duplicate check,
/// and its own creator's captures (with thumbnails; the handler checks
/// whose they are) and figures.
fn link_may_use(path: &str, creator: &CreatorId) -> bool {
    const UPLOADS: [&str; 2] = ["/api/v1/uploads", "/api/v1/captures/check"];
    if UPLOADS.iter().any(|p| path.starts_with(p)) {
        return true;
    }
    if let Some(sha) = path.strip_prefix("/api/v1/captures/") {
        return sha.strip_suffix("/thumbnail").is_some_and(|s| !s.contains('/'));
    }
    path.strip_prefix("/api/v1/creators/").and_then(|rest| rest.split_once('/')).is_some_and(
        |(id, what)| id == creator.as_str() && (what == "captures" || what == "summary"),
    )
}

impl Principal {
    /// 403 unless the caller's role may do what needs `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.actor.role.allows(role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "signed in as {} ({}); this needs the {role} role: ask a supervisor",
                self.actor.name, self.actor.role
            )))
        }
    }
}

impl Principal {
    /// 403 unless the caller's role may do what needs one of `roles`.
    pub fn require_any(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.iter().any(|r| self.actor.role.allows(*r)) {
            return Ok(());
        }
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(ApiError::forbidden(format!(
            "signed in as {} ({}); this needs the {} role: ask a supervisor",
            self.actor.name,
            self.actor.role,
            names.join(" or ")
        )))
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // `policy::authorize` already looked the caller up.
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(p.clone());
        }
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("sign in first: send Authorization: Bearer <token> (POST /api/v1/session with your PIN)"))?;
        let token =
            value.to_str().ok().and_then(bearer_token).filter(|t| !t.is_empty()).ok_or_else(
                || ApiError::unauthorized("the Authorization header must be 'Bearer <token>'"),
            )?;
        let now = state.clock.now();
        let digest = token_digest(token);
        let cached = state.auth.cache.lock().expect("auth cache").get(&digest).cloned();
        let session = match cached {
            Some(s) => Some(s),
            None => {
                let found = state.store.session(token, now).await?;
                if let Some(s) = &found {
                    state.auth.cache.lock().expect("auth cache").insert(digest.clone(), s.clone());
                }
                found
            }
        };
        match session {
            Some(s)
                if s.creator_scope.as_ref().is_some_and(|c| !link_may_use(parts.uri.path(), c)) =>
            {
                Err(ApiError::forbidden(
                    "an upload link can only upload captures and see its own creator's",
                ))
            }
            Some(s) if s.expires_at > now => {
                if let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
                    state.conns.mark_known(peer.ip());
                }
                Ok(Principal {
                    actor: s.actor,
                    token: token.to_owned(),
                    creator_scope: s.creator_scope,
                    device_id: s.device_id,
                })
            }
            Some(_) => {
                state.auth.cache.lock().expect("auth cache").remove(&digest);
                Err(ApiError::unauthorized("your session has expired: sign in again with your PIN"))
            }
            None => Err(ApiError::unauthorized(
                "this token is not valid on this box: sign in again with your PIN",
            )),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is
/// case-insensitive (RFC 9110), as some clients send `bearer`.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_matched_in_any_case() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }
}
