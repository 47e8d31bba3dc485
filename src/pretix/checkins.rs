//! Sending the door's scans back to pretix. The lane walks the scan log in
//! order behind a cursor (`pretix_state.sent_through`): an admitted scan of
//! a pretix ticket is redeemed on its gate's check-in list with the box's
//! decision time and a nonce made of the box id and the scan id, `force`d
//! (the door already decided); a refused scan of anything that is not a
//! venuebox code goes to the list's failed check-ins, as pretix's own
//! scanners report them. pretix ignores a nonce it has already seen, so a
//! retry after a lost answer — in this process or after a crash, since the
//! cursor moves only after pretix answered — never counts twice. A
//! check-in undone at the door after it was sent is annulled by its nonce
//! (pretix refuses that after 15 minutes: the box keeps the refusal).
//!
//! pretix's answers are of two kinds. One about a scan (`{"status":
//! "error", "reason": "already_redeemed"}`) files that scan as refused and
//! the lane goes on. One about the link (401, 403, a check-in list the
//! token may not use, a request pretix cannot read, 5xx, no answer) stops
//! the lane *before* the scan: nothing is filed, the cursor stays, and the
//! scan goes again once the token or setting is mended.

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
    /// pretix cannot take what the lane sends: the token, its permission,
    /// the request, pretix itself. The lane waits with its cursor where it
    /// was; nothing is filed as refused.
    #[error("{0}")]
    Link(String, #[source] PretixError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl SendError {
    /// Whether the link will come back by itself (network, pretix busy),
    /// or someone must fix something (token, permission, setting).
    pub fn needs_fixing(&self) -> bool {
        match self {
            SendError::Link(_, e) => !e.is_retryable(),
            SendError::Store(_) => false,
        }
    }
}

/// What to do about an answer that is not about one scan.
pub fn link_problem(e: PretixError) -> SendError {
    let text = match &e {
        PretixError::Refused { body, .. } if body.contains("\"lists\"") => format!(
            "pretix will not take check-ins from this API token on the event's check-in lists ({body}): \
             in pretix, give the token's team the permission to check in (or change) orders of this event, \
             then `venuebox pretix token --token-file FILE` on the box; nothing is lost meanwhile"
        ),
        PretixError::Refused { status, body } => format!(
            "pretix refused the box's request ({status}: {body}); the check-ins wait on the box: \
             see the log, fix the setting in pretix, or import the event again"
        ),
        PretixError::Unauthorized | PretixError::Forbidden { .. } => format!(
            "{e}; then `venuebox pretix token --token-file FILE` on the box; the check-ins wait until then"
        ),
        e => format!("{e}; the check-ins wait on the box"),
    };
    SendError::Link(text, e)
}

/// Whether the token may check in on `lists`, asked without leaving a
/// trace in pretix: an annulment of a nonce nobody used is answered "no
/// check-in found" (404) for a token that may check in on the lists, and
/// "invalid pk" for the lists (400) for one that may not.
pub async fn check_permission(client: &Client, lists: &[i64]) -> Result<(), SendError> {
    if lists.is_empty() {
        return Ok(());
    }
    let mut probe = [0u8; 8];
    getrandom::getrandom(&mut probe).expect("the OS has randomness");
    let nonce = format!("venuebox-permission-check-{}", hex(&probe));
    let body = json!({"lists": lists, "nonce": nonce});
    match client.post("checkinrpc/annul/", &body, "check tickets in").await {
        Err(PretixError::NotFound { detail, .. }) if detail.contains("nonce") => Ok(()),
        // Nothing was annulled (the nonce is new); pretix's answer only
        // shows the token got through.
        Ok(_) => Ok(()),
        Err(e) => Err(link_problem(e)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// pretix's name for why a scan was refused.
fn pretix_reason(r: Reason) -> &'static str {
    match r {
        Reason::UnknownTicket | Reason::BadSignature | Reason::WrongEvent => "invalid",
        Reason::Revoked => "revoked",
        Reason::Blocked => "blocked",
        Reason::Unpaid => "unpaid",
        Reason::Unapproved => "unapproved",
        Reason::Cancelled => "canceled",
        Reason::NotValidYet | Reason::Expired => "invalid_time",
        Reason::NotAllowedAtGate => "product",
        Reason::Rules => "rules",
        Reason::Incomplete => "incomplete",
        Reason::AlreadyCheckedIn => "already_redeemed",
        Reason::NotCheckedIn => "error",
    }
}

/// What a scan means for pretix: a request (path, body, what it does) or
/// nothing. `answers`: those given at the door with an admission.
fn request(
    s: &ScanRecord,
    event: &EventSnapshot,
    nonce: &str,
    answers: &std::collections::BTreeMap<String, String>,
) -> Option<(String, Value)> {
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
                       "force": true, "ignore_unpaid": true, "questions_supported": false, "source_type": "barcode",
                       "answers": answers}),
            ))
        }
        Verdict::Reject => {
            if code.is_empty() || code.starts_with(SIGNED_PREFIX) {
                return None;
            }
            // "Unpaid: let in anyway?" and the check-in questions were
            // questions to staff, not refusals; their answer is its own scan.
            if s.reason == Some(Reason::Incomplete)
                || (s.reason == Some(Reason::Unpaid)
                    && event.gate(&s.gate).is_some_and(|g| g.admit_unpaid))
            {
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
    /// handled (0: nothing waits). pretix's answer about one scan (a
    /// `{"status": "error", "reason": …}`) files that scan as refused and
    /// goes on; any other failure stops the step with the cursor before
    /// the scan, to be sent again once the link is mended.
    pub async fn step(&self, now: Millis) -> Result<usize, SendError> {
        let Some(event) = self.store.event() else { return Ok(0) };
        if event.manifest.pretix.is_none() {
            return Ok(0);
        }
        let cursor = self.cursor().await?;
        let mut handled = 0;
        for s in self.store.pretix_scans_after(cursor, BATCH).await? {
            let answers = if s.verdict == Verdict::Admit {
                self.store.scan_answers(s.id).await?
            } else {
                Default::default()
            };
            let done = match request(&s, &event, &self.nonce(s.id.0), &answers) {
                None => ScanDone::Sent,
                Some((path, body)) => {
                    match self.client.post(&path, &body, "check tickets in").await {
                        Ok(_) => ScanDone::Sent,
                        Err(PretixError::Declined { reason, body }) => {
                            tracing::warn!(scan = s.id.0, reason, answer = %body, "pretix declined a check-in; it is kept on the box");
                            ScanDone::Refused(body)
                        }
                        Err(e) => return Err(link_problem(e)),
                    }
                }
            };
            self.store.pretix_scan_done(s.id.0, done, now).await?;
            handled += 1;
        }
        let cursor = self.cursor().await?;
        for s in self.store.pretix_undone_unannulled(cursor, BATCH).await? {
            let mut done = ScanDone::Annulled;
            if let (Some(list), Some(undone)) = (event.pretix_list(&s.gate), s.undone_at) {
                let body = json!({"lists": [list], "nonce": self.nonce(s.id.0), "datetime": format_rfc3339(undone),
                                  "error_explanation": format!("undone at the door by {}", s.undone_by.as_deref().unwrap_or("staff"))});
                match self.client.post("checkinrpc/annul/", &body, "annul check-ins").await {
                    Ok(_) => {}
                    // Nothing to annul: never sent, or pretix never took it.
                    Err(PretixError::NotFound { detail, .. }) if detail.contains("nonce") => {}
                    // pretix keeps the check-in (it annuls only within a
                    // while of it, and only those it took): the box says so.
                    Err(PretixError::Refused { status: 400, body })
                        if body.contains("non_field_errors") =>
                    {
                        tracing::warn!(scan = s.id.0, answer = %body, "pretix refused to annul a check-in undone at the door");
                        done = ScanDone::AnnulRefused(body);
                    }
                    Err(e) => return Err(link_problem(e)),
                }
            }
            self.store.pretix_scan_done(s.id.0, done, now).await?;
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
    fn a_link_problem_says_what_to_mend_and_whether_it_mends_itself() {
        let lists = link_problem(PretixError::Refused {
            status: 400,
            body: r#"{"lists":["Invalid pk \"3\" - object does not exist."]}"#.into(),
        });
        assert!(lists.needs_fixing());
        let text = lists.to_string();
        assert!(
            text.contains("permission to check in") && text.contains("venuebox pretix token"),
            "{text}"
        );
        let down = link_problem(PretixError::Retryable("cannot reach pretix".into()));
        assert!(!down.needs_fixing(), "the network comes back by itself");
        assert!(link_problem(PretixError::Unauthorized).to_string().contains("pretix token"));
    }

    #[test]
    fn every_reason_has_a_pretix_name() {
        let allowed = [
            "invalid",
            "revoked",
            "blocked",
            "unpaid",
            "unapproved",
            "canceled",
            "invalid_time",
            "product",
            "rules",
            "incomplete",
            "already_redeemed",
            "error",
        ];
        for r in Reason::ALL {
            assert!(allowed.contains(&pretix_reason(r)), "{r:?}");
        }
    }
}
