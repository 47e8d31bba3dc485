//! Who is calling: the bearer-token extractor, a token cache in front of
//! the sessions table, and the PIN-guessing throttle for sign-in.

use super::error::ApiError;
use super::AppState;
use crate::domain::ids::CreatorId;
use crate::domain::role::{Actor, Role};
use crate::domain::time::Millis;
use crate::store::sessions::{token_digest, Session};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Failed sign-ins an address may make before it must wait.
const FREE_ATTEMPTS: u32 = 5;
/// Longest wait imposed on one address, in seconds.
const MAX_LOCK_SECS: i64 = 300;
/// Failed sign-ins across all addresses per minute before everyone waits,
/// against guessing from many phones at once.
const GLOBAL_FAILURES_PER_MINUTE: u32 = 30;

#[derive(Default)]
pub struct AuthState {
    /// Sessions already looked up, by token digest, so a check-in does not
    /// pay a database read for its token.
    cache: Mutex<HashMap<String, Session>>,
    /// Sign-in failures per client address.
    failures: Mutex<Throttle>,
}

#[derive(Default)]
struct Throttle {
    by_addr: HashMap<Option<IpAddr>, (u32, Millis)>,
    window_start: Millis,
    window_failures: u32,
}

impl AuthState {
    pub fn forget(&self, token: &str) {
        self.cache.lock().expect("auth cache").remove(&token_digest(token));
    }

    /// Refuses a sign-in attempt while its address (or the box) is locked.
    pub fn check_allowed(&self, addr: Option<IpAddr>, now: Millis) -> Result<(), ApiError> {
        let t = self.failures.lock().expect("throttle");
        let wait_addr = t.by_addr.get(&addr).map(|(_, until)| until - now).unwrap_or(0);
        let wait_global = if now - t.window_start < 60_000 && t.window_failures >= GLOBAL_FAILURES_PER_MINUTE {
            t.window_start + 60_000 - now
        } else {
            0
        };
        let wait = wait_addr.max(wait_global);
        if wait > 0 {
            let secs = (wait + 999) / 1000;
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!("too many wrong PINs: wait {secs} s, or ask a supervisor for your PIN"),
            );
            e.retry_after_secs = Some(secs as u64);
            return Err(e);
        }
        Ok(())
    }

    pub fn record_failure(&self, addr: Option<IpAddr>, now: Millis) {
        let mut t = self.failures.lock().expect("throttle");
        if now - t.window_start >= 60_000 {
            t.window_start = now;
            t.window_failures = 0;
        }
        t.window_failures += 1;
        let entry = t.by_addr.entry(addr).or_insert((0, 0));
        entry.0 += 1;
        if entry.0 >= FREE_ATTEMPTS {
            let secs = (1i64 << (entry.0 - FREE_ATTEMPTS).min(16)).min(MAX_LOCK_SECS);
            entry.1 = now + secs * 1000;
        }
    }

    pub fn record_success(&self, addr: Option<IpAddr>) {
        self.failures.lock().expect("throttle").by_addr.remove(&addr);
    }
}

/// A signed-in caller. Extracting it answers 401 without a valid token.
#[derive(Clone, Debug)]
pub struct Principal {
    pub actor: Actor,
    pub token: String,
    /// For upload links: the one creator this caller may upload for.
    pub creator_scope: Option<CreatorId>,
}

/// The only paths an upload link may use.
const LINK_PATHS: [&str; 2] = ["/api/v1/uploads", "/api/v1/captures/check"];

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

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // `policy::authorize` already looked the caller up.
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(p.clone());
        }
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("sign in first: send Authorization: Bearer <token> (POST /api/v1/session with your PIN)"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(bearer_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be 'Bearer <token>'"))?;
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
            Some(s) if s.creator_scope.is_some() && !LINK_PATHS.iter().any(|p| parts.uri.path().starts_with(p)) => {
                Err(ApiError::forbidden("an upload link can only upload captures"))
            }
            Some(s) if s.expires_at > now => Ok(Principal { actor: s.actor, token: token.to_owned(), creator_scope: s.creator_scope }),
            Some(_) => {
                state.auth.cache.lock().expect("auth cache").remove(&digest);
                Err(ApiError::unauthorized("your session has expired: sign in again with your PIN"))
            }
            None => Err(ApiError::unauthorized("this token is not valid on this box: sign in again with your PIN")),
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

    #[test]
    fn an_address_is_locked_after_repeated_failures_and_freed_by_success() {
        let a = AuthState::default();
        let ip = Some(IpAddr::from([10, 0, 0, 7]));
        for i in 0..FREE_ATTEMPTS - 1 {
            a.record_failure(ip, 1000 + i as i64);
            assert!(a.check_allowed(ip, 1000 + i as i64).is_ok());
        }
        a.record_failure(ip, 2000);
        let e = a.check_allowed(ip, 2000).unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.retry_after_secs, Some(1));
        assert!(a.check_allowed(None, 2000).is_ok(), "another address is not locked");
        assert!(a.check_allowed(ip, 3000).is_ok(), "lock expires");
        a.record_failure(ip, 3000);
        assert_eq!(a.check_allowed(ip, 3000).unwrap_err().retry_after_secs, Some(2), "lock doubles");
        a.record_success(ip);
        assert!(a.check_allowed(ip, 3000).is_ok());
    }

    #[test]
    fn many_addresses_guessing_at_once_lock_everyone_for_the_minute() {
        let a = AuthState::default();
        for i in 0..GLOBAL_FAILURES_PER_MINUTE {
            a.record_failure(Some(IpAddr::from([10, 0, 1, i as u8])), 1000);
        }
        assert!(a.check_allowed(Some(IpAddr::from([10, 0, 2, 1])), 1000).is_err());
        assert!(a.check_allowed(Some(IpAddr::from([10, 0, 2, 1])), 61_000).is_ok());
    }
}
