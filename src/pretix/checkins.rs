//! Sending the door's scans back to pretix. The lane walks the scan log in
//! order behind a cursor (`pretix_state.sent_through`): an admitted scan of
//! a pretix ticket is redeemed on its gate's check-in list with the box's
//! decision time and a nonce made of the box id and the scan id, `force`d
//! (the door already decided); a refused scan of anything that is not a
//! venuebox code goes to the list's failed check-ins, as pretix's own
//! scanners report them. pretix ignores a nonce it has already seen, so a
//! retry after a lost answer — in this process or after a crash, since the
//! cursor moves only after pretix answered — never counts twice. A
//! check-in undone at the door after it was sent is annulled by its nonce.

use super::client::{Client, PretixError};
use crate::domain::checkin::{Direction, Reason, ScanRecord, Verdict};
use crate::domain::code::SIGNED_PREFIX;
use crate::domain::manifest::EventSnapshot;
use crate::domain::pretix::is_pretix_ticket;
use crate::domain::time::{format_rfc3339, Millis};
use crate::store::pretix::ScanDone;
use crate::store::{Store, StoreError};
use serde_json::{json, Value};

/// Scans handled per step.
const BATCH: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("{0}")]
    Pretix(#[from] PretixError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// pretix's name for why a scan was refused.
fn pretix_reason(r: Reason) -> &'static str {
    match r {
        Reason::UnknownTicket | Reason::BadSignature | Reason::WrongEvent => "invalid",
        Reason::Revoked => "revoked",
        Reason::Blocked => "blocked",
        Reason::Unpaid => "unpaid",
        Reason::Cancelled => "canceled",
        Reason::NotValidYet | Reason::Expired => "invalid_time",
        Reason::NotAllowedAtGate => "product",
        Reason::AlreadyCheckedIn => "already_redeemed",
        Reason::NotCheckedIn => "error",
    }
}

/// What a scan means for pretix: a request (path, body, what it does) or nothing.
fn request(s: &ScanRecord, event: &EventSnapshot, nonce: &str) -> Option<(String, Value)> {
    let list = event.pretix_list(&s.gate)?;
    let code = s.code.trim_matches(|c| c == '\r' || c == '\n' || c == '\t');
    let kind = match s.direction {
        Direction::Entry => "entry",
        Direction::Exit => "exit",
    };
    let at = format_rfc3339(s.recorded_at);
    match s.verdict {
        Verdict::Admit => {
            let ticket = s.ticket.as_ref()?;
            // Undone before it was sent: pretix never needs to hear of it.
            if !is_pretix_ticket(ticket) || s.undone_at.is_some() {
                return None;
            }
            Some((
                "checkinrpc/redeem/".into(),
                json!({"secret": code, "lists": [list], "type": kind, "datetime": at, "nonce": nonce,
                       "force": true, "ignore_unpaid": true, "questions_supported": false, "source_type": "barcode"}),
            ))
        }
        Verdict::Reject => {
            if code.is_empty() || code.starts_with(SIGNED_PREFIX) {
                return None;
            }
            let reason = pretix_reason(s.reason.unwrap_or(Reason::UnknownTicket));
            Some((
                format!("event:checkinlists/{list}/failed_checkins/"),
                json!({"raw_barcode": code, "error_reason": reason, "type": kind, "datetime": at, "nonce": nonce,
                       "raw_source_type": "barcode"}),
            ))
        }
    }
}

/// The lane's state between steps.
pub struct Sender {
    store: Store,
    client: Client,
    box_id: String,
}

impl Sender {
    pub fn new(store: Store, client: Client) -> Sender {
        let box_id = store.box_id().to_string();
        Sender { store, client, box_id }
    }

    fn nonce(&self, scan: i64) -> String {
        format!("venuebox-{}-{scan}", self.box_id)
    }

    /// Sends what is waiting, a batch at a time; returns how many scans it
    /// handled (0: nothing waits). Stops at the first error that is not
    /// pretix refusing one scan for good.
    pub async fn step(&self, now: Millis) -> Result<usize, SendError> {
        let Some(event) = self.store.event() else { return Ok(0) };
        if event.manifest.pretix.is_none() {
            return Ok(0);
        }
        let cursor = self.cursor().await?;
        let mut handled = 0;
        for s in self.store.pretix_scans_after(cursor, BATCH).await? {
            let done = match request(&s, &event, &self.nonce(s.id.0)) {
                None => ScanDone::Sent,
                Some((path, body)) => {
                    match self.client.post(&path, &body, "check tickets in").await {
                        Ok(_) => ScanDone::Sent,
                        Err(PretixError::Refused { body, .. }) => {
                            tracing::warn!(scan = s.id.0, answer = %body, "pretix refused a check-in for good; it is kept on the box");
                            ScanDone::Refused(body)
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            };
            self.store.pretix_scan_done(s.id.0, done, now).await?;
            handled += 1;
        }
        let cursor = self.cursor().await?;
        for s in self.store.pretix_undone_unannulled(cursor, BATCH).await? {
            if let (Some(list), Some(undone)) = (event.pretix_list(&s.gate), s.undone_at) {
                let body = json!({"lists": [list], "nonce": self.nonce(s.id.0), "datetime": format_rfc3339(undone),
                                  "error_explanation": format!("undone at the door by {}", s.undone_by.as_deref().unwrap_or("staff"))});
                match self.client.post("checkinrpc/annul/", &body, "annul check-ins").await {
                    // Annulled; or nothing to annul (never sent, or already annulled).
                    Ok(_)
                    | Err(PretixError::NotFound { .. })
                    | Err(PretixError::Refused { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            self.store.pretix_scan_done(s.id.0, ScanDone::Annulled, now).await?;
            handled += 1;
        }
        Ok(handled)
    }

    async fn cursor(&self) -> Result<i64, StoreError> {
        Ok(self.store.pretix_value("sent_through").await?.and_then(|v| v.parse().ok()).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_pretix_name() {
        let allowed = [
            "invalid",
            "revoked",
            "blocked",
            "unpaid",
            "canceled",
            "invalid_time",
            "product",
            "already_redeemed",
            "error",
        ];
        for r in Reason::ALL {
            assert!(allowed.contains(&pretix_reason(r)), "{r:?}");
        }
    }
}
