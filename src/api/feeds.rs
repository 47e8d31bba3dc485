//! Held-open server-sent feeds (the scans feed, the drop feed): how many
//! one sign-in, and the whole box, may keep open. A feed holds a
//! connection for hours and costs the box work every second, so a staff
//! token (or a stolen one) must not be able to open hundreds.
//!
//! It does not produce the events; the feed handlers do.

use super::error::ApiError;
use crate::domain::error_code::ErrorCode;
use axum::http::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Feeds one sign-in may hold open at once (a phone's screens, a reload).
pub const PER_SESSION: usize = 4;
/// Feeds the box holds open at once.
pub const TOTAL: usize = 128;

/// Open feeds per session (by token digest) and in total.
#[derive(Default)]
pub struct FeedSlots {
    open: Mutex<(usize, HashMap<String, usize>)>,
}

/// One open feed; its slot comes back when the feed's stream is dropped
/// (the client went away or the box stops).
pub struct FeedSlot {
    slots: Arc<FeedSlots>,
    session: String,
}

impl FeedSlots {
    /// A slot for one more feed of `session`, or 429 saying what to close.
    pub fn open(self: &Arc<Self>, session: &str) -> Result<FeedSlot, ApiError> {
        let mut g = self.open.lock().expect("feed slots");
        let mine = g.1.get(session).copied().unwrap_or(0);
        if mine >= PER_SESSION {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyFeeds,
                format!("this sign-in already has {PER_SESSION} live feeds open: close another screen (or reload the app) and try again"),
            ));
        }
        if g.0 >= TOTAL {
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::TooManyFeeds,
                "the box is serving as many live feeds as it will: try again in a minute",
            );
            e.retry_after_secs = Some(30);
            return Err(e);
        }
        g.0 += 1;
        g.1.insert(session.to_string(), mine + 1);
        Ok(FeedSlot { slots: self.clone(), session: session.to_string() })
    }

    pub fn open_now(&self) -> usize {
        self.open.lock().expect("feed slots").0
    }
}

impl Drop for FeedSlot {
    fn drop(&mut self) {
        let mut g = self.slots.open.lock().expect("feed slots");
        g.0 -= 1;
        if let Some(n) = g.1.get_mut(&self.session) {
            *n -= 1;
            if *n == 0 {
                g.1.remove(&self.session);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_holds_a_few_feeds_and_the_box_a_bounded_number() {
        let slots = Arc::new(FeedSlots::default());
        let mine: Vec<_> = (0..PER_SESSION).map(|_| slots.open("a").unwrap()).collect();
        assert_eq!(slots.open("a").err().unwrap().status, StatusCode::TOO_MANY_REQUESTS);
        drop(mine);
        assert_eq!(slots.open_now(), 0, "closed feeds give their slots back");
        let mut all = Vec::new();
        for i in 0..TOTAL {
            all.push(slots.open(&format!("s{}", i / PER_SESSION)).unwrap());
        }
        assert_eq!(slots.open("fresh").err().unwrap().status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
