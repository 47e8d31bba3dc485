//! The check-in decision: given a scanned code resolved to a ticket, the
//! gate, the direction, the time and the ticket's last admitted scan, admit
//! or reject with exactly one reason.
//!
//! Resolution (code text → ticket facts) and the decision are separate so
//! each can be tested with a table; the store feeds both with what it reads
//! inside its write transaction, which is what makes "admitted once" hold.

use super::code::{self, ScannedCode};
use super::ids::{GateId, ScanId, TicketId, TierId};
use super::manifest::{EventSnapshot, Gate, TicketStatus};
use super::pretix;
use super::time::Millis;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Entry,
    Exit,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Entry => "entry",
            Direction::Exit => "exit",
        }
    }
    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "entry" => Some(Direction::Entry),
            "exit" => Some(Direction::Exit),
            _ => None,
        }
    }
}

/// Why a scan was rejected. The set is fixed: dashboards, the cloud and
/// the door lights all key on these names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    UnknownTicket,
    BadSignature,
    WrongEvent,
    Revoked,
    Blocked,
    Unpaid,
    /// The order waits for the organiser's approval (pretix).
    Unapproved,
    Cancelled,
    NotValidYet,
    Expired,
    NotAllowedAtGate,
    /// The check-in list's custom rules do not let this entry in (pretix).
    Rules,
    /// Questions must be answered at check-in first (pretix): a question
    /// to staff, not a refusal.
    Incomplete,
    AlreadyCheckedIn,
    NotCheckedIn,
}

impl Reason {
    pub const ALL: [Reason; 15] = [
        Reason::UnknownTicket,
        Reason::BadSignature,
        Reason::WrongEvent,
        Reason::Revoked,
        Reason::Blocked,
        Reason::Unpaid,
        Reason::Unapproved,
        Reason::Cancelled,
        Reason::NotValidYet,
        Reason::Expired,
        Reason::NotAllowedAtGate,
        Reason::Rules,
        Reason::Incomplete,
        Reason::AlreadyCheckedIn,
        Reason::NotCheckedIn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::UnknownTicket => "unknown_ticket",
            Reason::BadSignature => "bad_signature",
            Reason::WrongEvent => "wrong_event",
            Reason::Revoked => "revoked",
            Reason::Blocked => "blocked",
            Reason::Unpaid => "unpaid",
            Reason::Unapproved => "unapproved",
            Reason::Cancelled => "cancelled",
            Reason::NotValidYet => "not_valid_yet",
            Reason::Expired => "expired",
            Reason::NotAllowedAtGate => "not_allowed_at_gate",
            Reason::Rules => "rules",
            Reason::Incomplete => "incomplete",
            Reason::AlreadyCheckedIn => "already_checked_in",
            Reason::NotCheckedIn => "not_checked_in",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// What door staff should say or do, in a few words.
    pub fn advice(self) -> &'static str {
        match self {
            Reason::UnknownTicket => {
                "Code not recognised: check it is a ticket for this event, or send to the help desk"
            }
            Reason::BadSignature => {
                "Code is forged or damaged: do not admit, send to the help desk"
            }
            Reason::WrongEvent => "Ticket is for another event",
            Reason::Revoked => "This code was replaced or refunded: ask for the current ticket",
            Reason::Blocked => "Ticket is blocked by the organiser: call a supervisor",
            Reason::Unpaid => "Ticket is not paid: send to the box office",
            Reason::Unapproved => {
                "The order waits for the organiser's approval: send to the box office"
            }
            Reason::Cancelled => "Ticket was cancelled: send to the box office",
            Reason::NotValidYet => "Ticket is not valid yet: check the time on the ticket",
            Reason::Expired => "Ticket is no longer valid",
            Reason::NotAllowedAtGate => "Not allowed at this gate: direct to the right entrance",
            Reason::Rules => "Entry not permitted by this list's rules now: call a supervisor",
            Reason::Incomplete => "Ask the check-in questions, then check in with the answers",
            Reason::AlreadyCheckedIn => "Already checked in: see when and where",
            Reason::NotCheckedIn => "Cannot exit: this ticket has not entered",
        }
    }
}

/// The ticket facts a decision needs, whether they came from a signed code,
/// the manifest, or both (the manifest wins on status and tier), plus what
/// the manifest says against it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketFacts {
    pub ticket: ListedTicket,
    pub revoked: bool,
    pub blocked: bool,
}

/// The ticket's latest admitted (and not undone) scan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PriorScan {
    pub direction: Direction,
    pub gate: GateId,
    pub at: Millis,
}

/// A ticket as the manifest lists it, looked up by the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedTicket {
    pub id: TicketId,
    pub tier: TierId,
    pub holder: Option<String>,
    pub status: TicketStatus,
    pub valid_from: Option<Millis>,
    pub valid_until: Option<Millis>,
}

/// How to find a scanned code's ticket in the manifest's ticket list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    ById(TicketId),
    BySecret(String),
}

/// A scanned text after the first step: either rejected outright, or a
/// ticket to look up (with what a verified signature already proved).
#[derive(Clone, Debug)]
pub enum Resolution {
    Rejected(Reason),
    /// `unlisted`: the reason if the manifest does not list the ticket
    /// either (unknown, or a signature that no trusted key made).
    Lookup {
        key: Lookup,
        claim: Option<ListedTicket>,
        unlisted: Reason,
    },
}

/// First step: read the text and check a signed code against the event.
pub fn resolve(text: &str, event: &EventSnapshot) -> Resolution {
    match code::parse(text) {
        Err(_) => Resolution::Rejected(Reason::UnknownTicket),
        Ok(ScannedCode::Secret(s)) if !event.pretix_keys.is_empty() => pretix_secret(s, event),
        Ok(ScannedCode::Secret(s)) => Resolution::Lookup {
            key: Lookup::BySecret(s),
            claim: None,
            unlisted: Reason::UnknownTicket,
        },
        Ok(ScannedCode::Signed(signed)) => {
            if signed.claim.event != event.tag {
                return Resolution::Rejected(Reason::WrongEvent);
            }
            if !signed.verify(&event.ticket_keys) {
                return Resolution::Rejected(Reason::BadSignature);
            }
            let c = signed.claim;
            Resolution::Lookup {
                key: Lookup::ById(c.ticket.clone()),
                claim: Some(ListedTicket {
                    id: c.ticket,
                    tier: c.tier,
                    holder: None,
                    status: TicketStatus::Paid,
                    valid_from: c.valid_from.map(|s| s as Millis * 1000),
                    valid_until: c.valid_until.map(|s| s as Millis * 1000),
                }),
                unlisted: Reason::UnknownTicket,
            }
        }
    }
}

/// A secret at an event whose tickets come from pretix: a signed one
/// (`pretix_sig1`) proves its item and window itself, so a ticket sold
/// after the last import still scans; the listing (by secret) still wins.
fn pretix_secret(secret: String, event: &EventSnapshot) -> Resolution {
    let date = event.manifest.pretix.as_ref().and_then(|p| p.subevent);
    let (claim, unlisted) = match pretix::parse_sig1(&secret, &event.pretix_keys) {
        // A genuine ticket for another date of the series.
        Ok(t) if date.is_some_and(|d| d != t.subevent) => {
            return Resolution::Rejected(Reason::WrongEvent)
        }
        Ok(t) => (
            Some(ListedTicket {
                id: pretix::signed_ticket_id(&t.seed),
                tier: pretix::item_tier(t.item),
                holder: None,
                status: TicketStatus::Paid,
                valid_from: t.valid_from.map(|s| s * 1000),
                valid_until: t.valid_until.map(|s| s * 1000),
            }),
            Reason::UnknownTicket,
        ),
        Err(pretix::Sig1Error::BadSignature) => (None, Reason::BadSignature),
        Err(_) => (None, Reason::UnknownTicket),
    };
    Resolution::Lookup { key: Lookup::BySecret(secret), claim, unlisted }
}

/// Second step: combine what the signature proved with the manifest's
/// listing. A verified signed code needs no listing; a secret does.
pub fn facts(
    text: &str,
    claim: Option<ListedTicket>,
    listed: Option<ListedTicket>,
    unlisted: Reason,
    event: &EventSnapshot,
) -> Result<TicketFacts, Reason> {
    let t = match (listed, claim) {
        (Some(listed), Some(claim)) => ListedTicket {
            // The organiser's later word (status, tier, holder) wins; the
            // code's own window still applies if the listing has none.
            valid_from: listed.valid_from.or(claim.valid_from),
            valid_until: listed.valid_until.or(claim.valid_until),
            ..listed
        },
        (Some(listed), None) => listed,
        (None, Some(claim)) => claim,
        (None, None) => return Err(unlisted),
    };
    let text = text.trim_matches(|c| c == '\r' || c == '\n' || c == '\t');
    Ok(TicketFacts {
        revoked: event.revoked_codes.contains(text),
        blocked: event.blocked.contains(&t.id),
        ticket: t,
    })
}

/// The decision itself. Checks run from "is this a real, sellable ticket"
/// through "may it pass here, now" to "has it already".
pub fn decide(
    facts: &TicketFacts,
    gate: &Gate,
    direction: Direction,
    now: Millis,
    last: Option<&PriorScan>,
) -> Result<(), Reason> {
    if facts.revoked {
        return Err(Reason::Revoked);
    }
    if facts.blocked {
        return Err(Reason::Blocked);
    }
    let ticket = &facts.ticket;
    match ticket.status {
        TicketStatus::Cancelled => return Err(Reason::Cancelled),
        // Refused on every gate, as pretix does, whatever it admits unpaid.
        TicketStatus::Unapproved => return Err(Reason::Unapproved),
        TicketStatus::Unpaid if !gate.admit_unpaid => return Err(Reason::Unpaid),
        TicketStatus::Unpaid => {}
        TicketStatus::Paid => {}
    }
    let direction_allowed = match direction {
        Direction::Entry => gate.entry,
        Direction::Exit => gate.exit,
    };
    if !direction_allowed || !(gate.tiers.is_empty() || gate.tiers.contains(&ticket.tier)) {
        return Err(Reason::NotAllowedAtGate);
    }
    if ticket.valid_from.is_some_and(|from| now < from) {
        return Err(Reason::NotValidYet);
    }
    if ticket.valid_until.is_some_and(|until| now > until) {
        return Err(Reason::Expired);
    }
    let inside = last.is_some_and(|l| l.direction == Direction::Entry);
    match direction {
        Direction::Entry if gate.multiple_entries => Ok(()),
        Direction::Entry if inside => Err(Reason::AlreadyCheckedIn),
        Direction::Entry if last.is_some() && !gate.reentry => Err(Reason::AlreadyCheckedIn),
        Direction::Entry => Ok(()),
        Direction::Exit if inside => Ok(()),
        Direction::Exit => Err(Reason::NotCheckedIn),
    }
}

/// pretix's rule where a check-in list admits pending orders: an unpaid
/// ticket enters only once staff confirmed ("Unpaid: let in anyway?"), as
/// pretixSCAN asks. `asks`: the event follows pretix's rules.
pub fn must_confirm_unpaid(facts: &TicketFacts, gate: &Gate, asks: bool) -> bool {
    asks && gate.admit_unpaid && facts.ticket.status == TicketStatus::Unpaid
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Admit,
    Reject,
}

impl Verdict {
    /// As the API and the feed say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Admit => "admit",
            Verdict::Reject => "reject",
        }
    }
}

/// One row of the scan log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScanRecord {
    pub id: ScanId,
    pub nonce: String,
    pub code: String,
    pub gate: GateId,
    pub direction: Direction,
    pub verdict: Verdict,
    pub reason: Option<Reason>,
    pub ticket: Option<TicketId>,
    pub tier: Option<TierId>,
    pub holder: Option<String>,
    /// For `already_checked_in`: the admission that came first.
    pub prior: Option<PriorScan>,
    pub scanned_at: Option<String>,
    pub recorded_at: Millis,
    pub staff: String,
    pub device: Option<String>,
    pub undone_at: Option<Millis>,
    pub undone_by: Option<String>,
}

impl ScanRecord {
    /// The verdict in words door staff can say to the guest ("Already
    /// checked in at Main (20:14:00 UTC)"); `gate_name` names a gate id.
    pub fn message(&self, gate_name: impl Fn(&GateId) -> Option<String>) -> String {
        match self.reason {
            None => match self.direction {
                Direction::Entry => "Admit".to_string(),
                Direction::Exit => "Exit recorded".to_string(),
            },
            Some(Reason::AlreadyCheckedIn) => match &self.prior {
                Some(p) => format!(
                    "Already checked in at {} ({} UTC)",
                    gate_name(&p.gate).unwrap_or_else(|| p.gate.to_string()),
                    crate::domain::time::format_rfc3339(p.at).get(11..19).unwrap_or_default()
                ),
                None => Reason::AlreadyCheckedIn.advice().to_string(),
            },
            Some(reason) => reason.advice().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::code::{encode_signed, EventTag, TicketClaim};
    use crate::domain::ids::EventId;
    use crate::domain::keys::{sign_detached, signing_key_from_bytes, KeyId, TrustedKeys};
    use crate::domain::manifest::{accept, tests::sample};

    fn gate(tiers: &[&str], entry: bool, exit: bool, reentry: bool) -> Gate {
        Gate {
            id: GateId::from("g"),
            name: "G".into(),
            tiers: tiers.iter().map(|t| TierId::from(*t)).collect(),
            entry,
            exit,
            reentry,
            multiple_entries: false,
            admit_unpaid: false,
            rules: None,
            refuse_offline: false,
        }
    }

    fn ticket() -> TicketFacts {
        TicketFacts {
            ticket: ListedTicket {
                id: TicketId::from("t1"),
                tier: TierId::from("ga"),
                holder: None,
                status: TicketStatus::Paid,
                valid_from: Some(1_000),
                valid_until: Some(2_000),
            },
            revoked: false,
            blocked: false,
        }
    }

    fn prior(direction: Direction) -> Option<PriorScan> {
        Some(PriorScan { direction, gate: GateId::from("g"), at: 1_100 })
    }

    #[test]
    fn decision_table() {
        use Direction::*;
        use Reason::*;
        let plain = gate(&[], true, false, false);
        let both_ways = gate(&[], true, true, true);
        let both_no_reentry = gate(&[], true, true, false);
        let vip_only = gate(&["vip"], true, false, false);
        let exit_only = gate(&[], false, true, false);
        let t = ticket;
        let with = |f: fn(&mut TicketFacts)| {
            let mut x = ticket();
            f(&mut x);
            x
        };
        type Case<'a> = (
            &'a str,
            TicketFacts,
            &'a Gate,
            Direction,
            Millis,
            Option<PriorScan>,
            Result<(), Reason>,
        );
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("first entry admits",                  t(), &plain, Entry, 1_500, None, Ok(())),
            ("second entry is a repeat",            t(), &plain, Entry, 1_500, prior(Entry), Err(AlreadyCheckedIn)),
            ("revoked beats everything",            with(|x| { x.revoked = true; x.blocked = true }), &plain, Entry, 1_500, None, Err(Revoked)),
            ("blocked",                             with(|x| x.blocked = true), &plain, Entry, 1_500, None, Err(Blocked)),
            ("cancelled",                           with(|x| x.ticket.status = TicketStatus::Cancelled), &plain, Entry, 1_500, None, Err(Cancelled)),
            ("unpaid",                              with(|x| x.ticket.status = TicketStatus::Unpaid), &plain, Entry, 1_500, None, Err(Unpaid)),
            ("awaiting approval",                   with(|x| x.ticket.status = TicketStatus::Unapproved), &plain, Entry, 1_500, None, Err(Unapproved)),
            ("tier not allowed at gate",            t(), &vip_only, Entry, 1_500, None, Err(NotAllowedAtGate)),
            ("tier allowed at gate",                with(|x| x.ticket.tier = TierId::from("vip")), &vip_only, Entry, 1_500, None, Ok(())),
            ("entry at an exit-only gate",          t(), &exit_only, Entry, 1_500, None, Err(NotAllowedAtGate)),
            ("exit at an entry-only gate",          t(), &plain, Exit, 1_500, prior(Entry), Err(NotAllowedAtGate)),
            ("before the window",                   t(), &plain, Entry, 999, None, Err(NotValidYet)),
            ("window start is inclusive",           t(), &plain, Entry, 1_000, None, Ok(())),
            ("window end is inclusive",             t(), &plain, Entry, 2_000, None, Ok(())),
            ("after the window",                    t(), &plain, Entry, 2_001, None, Err(Expired)),
            ("no window never expires",             with(|x| { x.ticket.valid_from = None; x.ticket.valid_until = None }), &plain, Entry, 9_999_999, None, Ok(())),
            ("exit without entry",                  t(), &both_ways, Exit, 1_500, None, Err(NotCheckedIn)),
            ("exit after exit",                     t(), &both_ways, Exit, 1_500, prior(Exit), Err(NotCheckedIn)),
            ("exit after entry",                    t(), &both_ways, Exit, 1_500, prior(Entry), Ok(())),
            ("re-entry where allowed",              t(), &both_ways, Entry, 1_500, prior(Exit), Ok(())),
            ("re-entry where not allowed",          t(), &both_no_reentry, Entry, 1_500, prior(Exit), Err(AlreadyCheckedIn)),
            ("inside and scanned in again at a re-entry gate", t(), &both_ways, Entry, 1_500, prior(Entry), Err(AlreadyCheckedIn)),
        ];
        for (name, ticket, gate, direction, now, last, want) in cases {
            assert_eq!(decide(&ticket, gate, direction, now, last.as_ref()), want, "{name}");
        }
    }

    #[test]
    fn resolution_table() {
        let key = signing_key_from_bytes([1; 32]);
        let stranger = signing_key_from_bytes([2; 32]);
        let b = serde_json::to_vec(&sample(&[&key], 1)).unwrap();
        let mut event =
            accept(&b, Some(&sign_detached(&key, &b)), None, &TrustedKeys::default()).unwrap();
        let claim = |k: &ed25519_dalek::SigningKey, ev: &str, id: &str| TicketClaim {
            event: EventTag::of(&EventId::from(ev)),
            key: KeyId::of(&k.verifying_key()),
            ticket: TicketId::from(id),
            tier: TierId::from("ga"),
            valid_from: None,
            valid_until: None,
        };
        let good = encode_signed(&claim(&key, "evt-test", "s1"), &key).unwrap();
        let forged = encode_signed(&claim(&stranger, "evt-test", "s2"), &stranger).unwrap();
        let other_event = encode_signed(&claim(&key, "evt-other", "s3"), &key).unwrap();
        event.revoked_codes.insert(good.clone());

        assert!(matches!(resolve("VB1:###", &event), Resolution::Rejected(Reason::UnknownTicket)));
        assert!(matches!(resolve(&forged, &event), Resolution::Rejected(Reason::BadSignature)));
        assert!(matches!(resolve(&other_event, &event), Resolution::Rejected(Reason::WrongEvent)));
        assert!(
            matches!(resolve("SECRET-ONE", &event), Resolution::Lookup { key: Lookup::BySecret(s), claim: None, .. } if s == "SECRET-ONE")
        );
        let Resolution::Lookup { key: Lookup::ById(id), claim: Some(c), .. } =
            resolve(&good, &event)
        else {
            panic!("signed code must resolve")
        };
        assert_eq!(id, TicketId::from("s1"));

        // A signed code never listed is valid on its own; revocation still applies.
        let f = facts(&good, Some(c.clone()), None, Reason::UnknownTicket, &event).unwrap();
        assert!(f.revoked);
        // The listing overrides status from the code.
        let listed = ListedTicket {
            status: TicketStatus::Cancelled,
            holder: Some("Bo".into()),
            ..c.clone()
        };
        let f = facts(&good, Some(c), Some(listed), Reason::UnknownTicket, &event).unwrap();
        assert_eq!(
            (f.ticket.status, f.ticket.holder.as_deref()),
            (TicketStatus::Cancelled, Some("Bo"))
        );
        // A ticket minted by a box: valid if the manifest lists the box's
        // key, or if it is this box's own key; otherwise forged.
        let listed_box = signing_key_from_bytes([7; 32]);
        let other_box = signing_key_from_bytes([8; 32]);
        let own_box = signing_key_from_bytes([9; 32]);
        let mut m = sample(&[&key], 1);
        m["box_keys"] = serde_json::json!([{"public_key": crate::domain::keys::public_key_to_base64(&listed_box.verifying_key())}]);
        let b = serde_json::to_vec(&m).unwrap();
        let mut event =
            accept(&b, Some(&sign_detached(&key, &b)), None, &TrustedKeys::default()).unwrap();
        event.trust_own_box_key(own_box.verifying_key());
        for (k, ok) in [(&listed_box, true), (&own_box, true), (&other_box, false)] {
            let code = encode_signed(&claim(k, "evt-test", "W-1"), k).unwrap();
            let got = resolve(&code, &event);
            assert_eq!(matches!(got, Resolution::Lookup { .. }), ok, "{got:?}");
        }
        assert!(event.lists_box_key(&listed_box.verifying_key()));
        assert!(
            !event.lists_box_key(&own_box.verifying_key()),
            "trusted here, but other boxes do not know it"
        );
        // A secret that is not listed is unknown.
        assert_eq!(
            facts("NOPE-NOPE", None, None, Reason::UnknownTicket, &event).unwrap_err(),
            Reason::UnknownTicket
        );
    }

    #[test]
    fn pretix_signed_secrets_resolve_by_signature_and_gates_follow_pretix_rules() {
        use crate::domain::pretix::tests::{listed, secret};
        let key = signing_key_from_bytes([1; 32]);
        let px = signing_key_from_bytes([5; 32]);
        let other = signing_key_from_bytes([6; 32]);
        let mut m = sample(&[&key], 1);
        m["tiers"] =
            serde_json::json!([{"id": "px7", "name": "GA", "price_minor": 0, "capacity": 1}]);
        m["gates"] = serde_json::json!([{"id": "pretix-1", "name": "Main"}]);
        m["tickets"] = serde_json::json!([]);
        m["pretix"] = serde_json::json!({"url": "https://pretix.example", "organizer": "o", "event": "e",
            "sig1_keys": [listed(&px.verifying_key())], "lists": [{"id": 1, "gate": "pretix-1"}]});
        let b = serde_json::to_vec(&m).unwrap();
        let event =
            accept(&b, Some(&sign_detached(&key, &b)), None, &TrustedKeys::default()).unwrap();
        assert_eq!(event.pretix_list(&GateId::from("pretix-1")), Some(1));

        // Sold after the import: its signature names item and window.
        let text = secret(&px, "abcDEF123", 7, 0, 1_900_000_000);
        let Resolution::Lookup { key: Lookup::BySecret(s), claim: Some(c), unlisted } =
            resolve(&text, &event)
        else {
            panic!("a pretix signed secret resolves")
        };
        assert_eq!(s, text);
        assert_eq!(
            (c.id.as_str(), c.tier.as_str(), c.valid_until),
            ("pxs-abcDEF123", "px7", Some(1_900_000_000_000))
        );
        assert_eq!(
            facts(&text, Some(c), None, unlisted, &event).unwrap().ticket.id.as_str(),
            "pxs-abcDEF123"
        );
        // Signed by another event's key: refused as forged unless listed.
        let forged = secret(&other, "abcDEF124", 7, 0, 0);
        let Resolution::Lookup { claim: None, unlisted, .. } = resolve(&forged, &event) else {
            panic!()
        };
        assert_eq!(facts(&forged, None, None, unlisted, &event).unwrap_err(), Reason::BadSignature);
        // A random secret still needs its listing.
        let Resolution::Lookup { claim: None, unlisted, .. } = resolve("abcdefghijklmnop", &event)
        else {
            panic!()
        };
        assert_eq!(unlisted, Reason::UnknownTicket);

        // pretix's list flags: "allow multiple entries" and "include pending".
        let f = TicketFacts {
            ticket: ListedTicket {
                id: TicketId::from("pxp-1"),
                tier: TierId::from("px7"),
                holder: None,
                status: TicketStatus::Unpaid,
                valid_from: None,
                valid_until: None,
            },
            revoked: false,
            blocked: false,
        };
        let inside = PriorScan { direction: Direction::Entry, gate: GateId::from("g"), at: 1 };
        let mut g = gate(&[], true, true, false);
        assert_eq!(decide(&f, &g, Direction::Entry, 2, None), Err(Reason::Unpaid));
        g.admit_unpaid = true;
        assert_eq!(decide(&f, &g, Direction::Entry, 2, None), Ok(()));
        let mut waiting = f.clone();
        waiting.ticket.status = TicketStatus::Unapproved;
        assert_eq!(
            decide(&waiting, &g, Direction::Entry, 2, None),
            Err(Reason::Unapproved),
            "a gate that admits unpaid orders still refuses one awaiting approval"
        );
        assert_eq!(
            decide(&f, &g, Direction::Entry, 2, Some(&inside)),
            Err(Reason::AlreadyCheckedIn)
        );
        g.multiple_entries = true;
        assert_eq!(decide(&f, &g, Direction::Entry, 2, Some(&inside)), Ok(()));
    }
}
