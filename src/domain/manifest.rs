//! The event manifest: everything the organiser prepared in the cloud that
//! the box needs at the door — event, organiser keys, tiers, gates, tickets,
//! revocations, blocks and staff — as one JSON document with a detached
//! Ed25519 signature over its exact bytes.
//!
//! This module parses, validates and checks signatures and succession (a
//! manifest replaces an older one of the same event only). Storing it is
//! the store's job.

use super::code::{EventTag, MAX_TICKET_ID, MAX_TIER, SIGNED_PREFIX};
use super::escrow::EscrowRule;
use super::ids::{CreatorId, DropId, EventId, GateId, ProgramId, Sku, TicketId, TierId};
use super::keys::{self, KeyId, TrustedKeys};
use super::money::{MAX_STOCK, MAX_TAX_RATE_BP, MAX_UNIT_MINOR};
use super::role::Role;
use super::time::{parse_rfc3339, Millis};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// The manifest schema this box understands.
pub const SCHEMA: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: u32,
    /// Revision number; every publish by the organiser increases it.
    pub version: u64,
    /// When the organiser signed it (RFC 3339, their clock;
    /// `venuebox manifest sign` stamps it): a box whose clock is earlier
    /// cannot be right.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_at: Option<String>,
    pub event: Event,
    /// Keys that sign this manifest and the tickets. A list, so a key can be
    /// rotated: list old and new together until the old one is retired.
    pub organiser_keys: Vec<KeyEntry>,
    pub tiers: Vec<Tier>,
    pub gates: Vec<Gate>,
    #[serde(default)]
    pub tickets: Vec<TicketEntry>,
    /// Exact code texts that must no longer scan (e.g. a reissued ticket's old code).
    #[serde(default)]
    pub revoked_codes: Vec<String>,
    /// Tickets that must not enter, whatever code they show.
    #[serde(default)]
    pub blocked_tickets: Vec<TicketId>,
    #[serde(default)]
    pub staff: Vec<StaffEntry>,
    /// Fewest characters a PIN of a role has (e.g. `{"supervisor": 6,
    /// "admin": 6}`): a shorter PIN is never checked against staff of that
    /// role, so walking a supervisor's PIN means walking six digits.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub pin_length: std::collections::BTreeMap<Role, u8>,
    /// Box keys the organiser trusts to mint walk-up tickets, so a ticket
    /// sold at one box scans at every box and in the cloud.
    #[serde(default)]
    pub box_keys: Vec<KeyEntry>,
    #[serde(default)]
    pub creators: Vec<Creator>,
    #[serde(default)]
    pub scholarships: Vec<ScholarshipProgram>,
    #[serde(default)]
    pub drops: Vec<DropSpec>,
    /// Set when the tickets come from pretix (`venuebox pretix import`):
    /// where they were sold, the event's signing keys, and which pretix
    /// check-in list each gate reports to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretix: Option<PretixLink>,
    // Later schema sections arrive as new optional fields; unknown fields
    // are ignored so an older box can still read the parts it knows.
}

/// The pretix event a manifest's tickets came from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PretixLink {
    /// pretix's base address, e.g. `https://pretix.eu`.
    pub url: String,
    pub organizer: String,
    pub event: String,
    /// The event's `valid_keys.pretix_sig1`, as pretix lists them: tickets
    /// signed with one of these scan even when they are not listed.
    #[serde(default)]
    pub sig1_keys: Vec<String>,
    /// The check-in list each gate's scans are sent to.
    pub lists: Vec<PretixList>,
    /// For one date of an event series: pretix's subevent id. Its tickets
    /// only; a signed ticket of another date is refused (`wrong_event`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subevent: Option<i64>,
    /// pretix's variation of each listed ticket that has one (check-in
    /// rules may ask for it).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub variations: std::collections::BTreeMap<TicketId, i64>,
    /// Questions asked at check-in (pretix's "ask during check-in").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub questions: Vec<super::checkin_questions::CheckinQuestion>,
    /// The check-in questions each ticket already has answers to.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub answered: std::collections::BTreeMap<TicketId, Vec<i64>>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PretixList {
    pub id: i64,
    pub gate: GateId,
}

/// A creator whose work sales, claims and captures are attributed to.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Creator {
    pub id: CreatorId,
    pub name: String,
    /// Codes a buyer can give at a walk-up sale to credit this creator.
    #[serde(default)]
    pub referral_codes: Vec<String>,
    #[serde(default)]
    pub payout: PayoutRules,
}

/// The creator's share of what they brought in, in basis points (1/100 %).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PayoutRules {
    #[serde(default)]
    pub ticket_share_bp: u32,
    #[serde(default)]
    pub drop_share_bp: u32,
}

/// A pool of sponsored seats in one tier, claimed with codes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScholarshipProgram {
    pub id: ProgramId,
    pub name: String,
    pub funder: Funder,
    pub tier: TierId,
    pub seats: u32,
    pub discount: Discount,
    #[serde(default)]
    pub valid_from: Option<String>,
    #[serde(default)]
    pub valid_until: Option<String>,
    pub codes: Vec<ClaimCode>,
    /// Seats of this program a satellite holds to give out while cut off
    /// from the primary (none without a rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escrow: Option<EscrowRule>,
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Funder {
    pub kind: FunderKind,
    /// The creator's id when `kind` is `creator`.
    #[serde(default)]
    pub creator: Option<CreatorId>,
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FunderKind {
    Creator,
    Sponsor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Discount {
    /// The seat is free.
    Full,
    /// This many minor units off the tier price.
    Amount { minor: i64 },
    /// This percentage (0–100) off the tier price, rounded to the buyer's favour.
    Percent { percent: u32 },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClaimCode {
    pub code: String,
    /// The creator who recruited whoever holds this code.
    pub creator: CreatorId,
    /// How many seats this one code may claim.
    #[serde(default = "one")]
    pub cap: u32,
}

fn one() -> u32 {
    1
}

/// A timed release of limited products by a creator.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct DropSpec {
    // Ids as plain strings here: schemars drops a length given beside a
    // `$ref`, and the request must state (and so enforce) its limits.
    #[schemars(with = "String", length(max = 64))]
    pub id: DropId,
    #[schemars(length(max = 128))]
    pub name: String,
    #[schemars(with = "String", length(max = 64))]
    pub creator: CreatorId,
    #[schemars(extend("format" = "date-time"))]
    pub opens_at: String,
    #[schemars(extend("format" = "date-time"))]
    pub closes_at: String,
    pub products: Vec<Product>,
    /// Most units of this drop one attendee (ticket) may buy.
    #[serde(default)]
    pub per_attendee_limit: Option<u32>,
    #[serde(default)]
    pub reserve: Option<Reserve>,
    /// Where unsold stock goes when the drop closes.
    #[serde(default)]
    pub on_close: OnClose,
    /// Units of each product a satellite holds to sell while cut off
    /// from the primary (none without a rule: apart, it sells nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escrow: Option<EscrowRule>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Product {
    #[schemars(with = "String", length(max = 64))]
    pub sku: Sku,
    #[schemars(length(max = 128))]
    pub name: String,
    #[serde(default)]
    #[schemars(length(max = 128))]
    pub variant: Option<String>,
    pub price_minor: i64,
    /// Initial stock, applied once when the drop first reaches the box.
    pub quantity: u32,
    /// Overrides the event's tax rate, in basis points.
    #[serde(default)]
    pub tax_rate_bp: Option<u32>,
}

/// Units of each product held back for given tiers or members until a time.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Reserve {
    /// Units per product.
    pub quantity: u32,
    #[serde(default)]
    #[schemars(with = "Vec<String>", inner(length(max = 64)))]
    pub tiers: Vec<TierId>,
    /// Ticket ids of members.
    #[serde(default)]
    #[schemars(with = "Vec<String>", inner(length(max = 128)))]
    pub members: Vec<TicketId>,
    #[schemars(extend("format" = "date-time"))]
    pub release_at: String,
}

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OnClose {
    /// To the next drop (by opening time) that sells the same SKU, else the pool.
    NextDrop,
    /// Back to the event's pool of unassigned stock.
    #[default]
    Pool,
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Event {
    pub id: EventId,
    pub name: String,
    /// IANA zone name, e.g. `Europe/Berlin`; shown to staff, times are absolute.
    pub timezone: String,
    /// ISO 4217 code, e.g. `EUR`; prices are integer minor units of it.
    pub currency: String,
    pub starts_at: String,
    pub ends_at: String,
    pub doors_at: String,
    /// Default tax rate in basis points (1900 = 19 %); products may override.
    #[serde(default)]
    pub tax_rate_bp: u32,
    /// Whether prices already include tax (the receipt then shows the tax part).
    #[serde(default = "yes")]
    pub prices_include_tax: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyEntry {
    /// Standard base64 of the 32-byte Ed25519 public key.
    pub public_key: String,
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Tier {
    pub id: TierId,
    pub name: String,
    pub price_minor: i64,
    pub capacity: u32,
    /// Shown on every verdict of this tier's tickets (pretix: the
    /// product's check-in attention flag and text).
    #[serde(default, skip_serializing_if = "CheckinNote::is_empty")]
    pub checkin_note: CheckinNote,
    /// Seats of this tier a satellite holds to sell walk-up while cut off
    /// from the primary (none without a rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escrow: Option<EscrowRule>,
}

/// What door staff must notice when a ticket is scanned: a flag that
/// makes the verdict stand out (a wristband to hand over, an ID to check)
/// and a text saying what to do.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckinNote {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub attention: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl CheckinNote {
    pub fn is_empty(&self) -> bool {
        !self.attention && self.text.as_deref().is_none_or(str::is_empty)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Gate {
    pub id: GateId,
    pub name: String,
    /// Tiers that may pass here; empty means every tier.
    #[serde(default)]
    pub tiers: Vec<TierId>,
    /// Whether people may enter here.
    #[serde(default = "yes")]
    pub entry: bool,
    /// Whether exits are scanned here.
    #[serde(default)]
    pub exit: bool,
    /// Whether someone who scanned out may come back in here.
    #[serde(default)]
    pub reentry: bool,
    /// Whether a ticket already inside may enter again without an exit
    /// scan (pretix's "allow multiple entries").
    #[serde(default, skip_serializing_if = "is_false")]
    pub multiple_entries: bool,
    /// Whether tickets not paid yet may pass (pretix's "include pending").
    #[serde(default, skip_serializing_if = "is_false")]
    pub admit_unpaid: bool,
    /// pretix's custom check-in rules (JSON logic) for entries here,
    /// decided offline (`domain::checkin_rules`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<serde_json::Value>,
    /// At a satellite cut off from the primary: refuse every scan here
    /// (a strict event) instead of deciding against the satellite's copy,
    /// which is exact up to the cut (ARCHITECTURE.md, "Satellites").
    #[serde(default, skip_serializing_if = "is_false")]
    pub refuse_offline: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn yes() -> bool {
    true
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TicketStatus {
    Paid,
    Unpaid,
    /// Ordered, waiting for the organiser's approval (pretix's
    /// "require approval"): refused at every gate until approved.
    Unapproved,
    Cancelled,
}

impl TicketStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Paid => "paid",
            TicketStatus::Unpaid => "unpaid",
            TicketStatus::Unapproved => "unapproved",
            TicketStatus::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<TicketStatus> {
        [
            TicketStatus::Paid,
            TicketStatus::Unpaid,
            TicketStatus::Unapproved,
            TicketStatus::Cancelled,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TicketEntry {
    pub id: TicketId,
    pub tier: TierId,
    /// For tickets whose QR code is a random secret instead of a signed code.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub holder: Option<String>,
    /// The order it was sold in (pretix's order code): the door finds a
    /// guest by it when their phone is dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    /// The buyer's email: searched at the door, never shown there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default = "paid")]
    pub status: TicketStatus,
    #[serde(default)]
    pub valid_from: Option<String>,
    #[serde(default)]
    pub valid_until: Option<String>,
    /// Shown on every verdict of this ticket (pretix: the order's check-in
    /// attention flag and text).
    #[serde(default, skip_serializing_if = "CheckinNote::is_empty")]
    pub checkin_note: CheckinNote,
}

fn paid() -> TicketStatus {
    TicketStatus::Paid
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StaffEntry {
    pub name: String,
    pub role: Role,
    /// argon2id PHC string of the PIN (`venuebox staff hash-pin`).
    pub pin_hash: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("manifest is not valid JSON for schema {SCHEMA}: {0}")]
    Parse(String),
    #[error("manifest schema {0} is not supported by this box (it reads schema {SCHEMA}): update venuebox")]
    Schema(u32),
    #[error("manifest is invalid: {0}")]
    Invalid(String),
    #[error("manifest signature is missing: export it again with its .sig file")]
    Unsigned,
    #[error("manifest signature does not verify with any trusted organiser key: it was changed after signing, or signed with a key this box does not trust")]
    BadSignature,
    #[error("manifest is for event '{got}' but this box holds event '{have}': close that event before loading another")]
    OtherEvent { have: EventId, got: EventId },
    #[error("manifest version {got} is not newer than the loaded version {have}: export the latest manifest")]
    NotNewer { have: u64, got: u64 },
}

/// A manifest parsed, validated and with its derived lookups ready.
#[derive(Clone, Debug)]
pub struct EventSnapshot {
    pub manifest: Manifest,
    pub tag: EventTag,
    pub keys: TrustedKeys,
    pub key_ids: Vec<KeyId>,
    pub starts_at: Millis,
    pub ends_at: Millis,
    pub doors_at: Millis,
    /// `signed_at`, parsed.
    pub signed_at: Option<Millis>,
    pub revoked_codes: HashSet<String>,
    pub blocked: HashSet<TicketId>,
    /// Keys that may sign tickets: organiser keys plus trusted box keys.
    pub ticket_keys: TrustedKeys,
    /// pretix's keys for its signed tickets (`pretix.sig1_keys`).
    pub pretix_keys: Vec<ed25519_dalek::VerifyingKey>,
    tier_index: HashMap<TierId, usize>,
    gate_index: HashMap<GateId, usize>,
    /// Each gate's compiled check-in rules (pretix's lists that have them).
    gate_rules: HashMap<GateId, super::checkin_rules::CompiledRules>,
    /// The tickets that carry a check-in note (few).
    ticket_notes: HashMap<TicketId, CheckinNote>,
    creator_index: HashMap<CreatorId, usize>,
    referral_index: HashMap<String, usize>,
}

impl EventSnapshot {
    pub fn gate(&self, id: &GateId) -> Option<&Gate> {
        self.gate_index.get(id).map(|&i| &self.manifest.gates[i])
    }
    pub fn tier(&self, id: &TierId) -> Option<&Tier> {
        self.tier_index.get(id).map(|&i| &self.manifest.tiers[i])
    }
    /// What staff must notice when this ticket is scanned: attention if
    /// its tier or the ticket asks for it, and their texts (tier first).
    pub fn checkin_note(
        &self,
        ticket: Option<&TicketId>,
        tier: Option<&TierId>,
    ) -> (bool, Vec<String>) {
        let notes = [
            tier.and_then(|t| self.tier(t)).map(|t| &t.checkin_note),
            ticket.and_then(|t| self.ticket_notes.get(t)),
        ];
        let notes = notes.into_iter().flatten();
        let attention = notes.clone().any(|n| n.attention);
        let texts = notes.filter_map(|n| n.text.clone()).filter(|t| !t.trim().is_empty()).collect();
        (attention, texts)
    }

    /// The gate's check-in rules, compiled.
    pub fn gate_rules(&self, gate: &GateId) -> Option<&super::checkin_rules::CompiledRules> {
        self.gate_rules.get(gate)
    }

    /// pretix's variation of a listed ticket, for check-in rules.
    pub fn pretix_variation(&self, ticket: &TicketId) -> Option<i64> {
        self.manifest.pretix.as_ref()?.variations.get(ticket).copied()
    }

    /// The questions asked at check-in, and those `ticket` has answered.
    pub fn checkin_questions(
        &self,
        ticket: &TicketId,
    ) -> (&[super::checkin_questions::CheckinQuestion], std::collections::BTreeSet<i64>) {
        match &self.manifest.pretix {
            Some(p) => (
                &p.questions,
                p.answered.get(ticket).map(|a| a.iter().copied().collect()).unwrap_or_default(),
            ),
            None => (&[], Default::default()),
        }
    }

    /// Whether each gate keeps its own history of a ticket. pretix counts
    /// entries per check-in list (a pass admitted on one list may still
    /// enter on another), so an event imported from pretix does; the
    /// box's own events keep one history across the doors.
    pub fn history_per_gate(&self) -> bool {
        self.manifest.pretix.is_some()
    }

    /// The pretix check-in list a gate's scans are sent to.
    pub fn pretix_list(&self, gate: &GateId) -> Option<i64> {
        self.manifest.pretix.as_ref()?.lists.iter().find(|l| &l.gate == gate).map(|l| l.id)
    }
    pub fn event_id(&self) -> &EventId {
        &self.manifest.event.id
    }
    pub fn creator(&self, id: &CreatorId) -> Option<&Creator> {
        self.creator_index.get(id).map(|&i| &self.manifest.creators[i])
    }
    /// The creator a walk-up referral code credits.
    pub fn referral(&self, code: &str) -> Option<&Creator> {
        self.referral_index.get(code).map(|&i| &self.manifest.creators[i])
    }
    pub fn program(&self, id: &ProgramId) -> Option<&ScholarshipProgram> {
        self.manifest.scholarships.iter().find(|p| &p.id == id)
    }
    /// The program and code entry a claim code belongs to.
    pub fn claim_code(&self, code: &str) -> Option<(&ScholarshipProgram, &ClaimCode)> {
        self.manifest
            .scholarships
            .iter()
            .find_map(|p| p.codes.iter().find(|c| c.code == code).map(|c| (p, c)))
    }
    /// Whether the manifest lists this public key among its trusted box keys
    /// (so tickets it signs scan at other boxes and in the cloud too).
    pub fn lists_box_key(&self, key: &ed25519_dalek::VerifyingKey) -> bool {
        let text = keys::public_key_to_base64(key);
        self.manifest.box_keys.iter().any(|k| k.public_key.trim() == text)
    }

    /// Adds this box's own key to the keys tickets may be signed with: a
    /// walk-up ticket always scans at the box that sold it.
    pub fn trust_own_box_key(&mut self, key: ed25519_dalek::VerifyingKey) {
        self.ticket_keys.add(key);
    }
}

fn invalid(msg: impl Into<String>) -> ManifestError {
    ManifestError::Invalid(msg.into())
}

/// Parses and validates a manifest without looking at any signature.
pub fn parse(bytes: &[u8]) -> Result<EventSnapshot, ManifestError> {
    #[derive(Deserialize)]
    struct SchemaOnly {
        schema: u32,
    }
    let probe: SchemaOnly =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Parse(e.to_string()))?;
    if probe.schema != SCHEMA {
        return Err(ManifestError::Schema(probe.schema));
    }
    let m: Manifest =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Parse(e.to_string()))?;
    validate(m)
}

fn time(field: &str, s: &str) -> Result<Millis, ManifestError> {
    parse_rfc3339(s).map_err(|e| invalid(format!("{field}: {e}")))
}

fn unique<'a, T: Eq + std::hash::Hash + std::fmt::Display + 'a>(
    what: &str,
    items: impl Iterator<Item = &'a T>,
) -> Result<HashMap<&'a T, usize>, ManifestError> {
    let mut seen = HashMap::new();
    for (i, id) in items.enumerate() {
        if seen.insert(id, i).is_some() {
            return Err(invalid(format!("{what} id '{id}' appears twice")));
        }
    }
    Ok(seen)
}

fn validate(m: Manifest) -> Result<EventSnapshot, ManifestError> {
    let times = check_event(&m)?;
    if m.organiser_keys.is_empty() {
        return Err(invalid(
            "organiser_keys is empty: list at least the key that signs this manifest",
        ));
    }
    let verifying = public_keys("organiser_keys", m.organiser_keys.iter().map(|k| &k.public_key))?;
    let tier_index = check_tiers(&m)?;
    let (gate_index, gate_rules) = check_gates(&m, &tier_index)?;
    check_tickets(&m, &tier_index)?;
    let box_keys = public_keys("box_keys", m.box_keys.iter().map(|k| &k.public_key))?;
    let (creator_index, referral_index) = check_creators(&m)?;
    check_scholarships(&m, &tier_index, &creator_index)?;
    unique("drop", m.drops.iter().map(|d| &d.id))?;
    for d in &m.drops {
        validate_drop(d, |t| tier_index.contains_key(t))?;
        known_creator(&creator_index, &d.creator, &format!("drop '{}'", d.id))?;
    }
    check_staff(&m)?;
    let pretix_keys = check_pretix(&m, &gate_index)?;
    let tag = EventTag::of(&m.event.id);
    let key_ids = verifying.iter().map(KeyId::of).collect();
    Ok(EventSnapshot {
        tag,
        ticket_keys: TrustedKeys::new(verifying.iter().copied().chain(box_keys)),
        pretix_keys,
        keys: TrustedKeys::new(verifying),
        creator_index,
        referral_index,
        key_ids,
        starts_at: times.starts_at,
        ends_at: times.ends_at,
        doors_at: times.doors_at,
        signed_at: times.signed_at,
        revoked_codes: m.revoked_codes.iter().cloned().collect(),
        blocked: m.blocked_tickets.iter().cloned().collect(),
        tier_index,
        gate_index,
        gate_rules,
        ticket_notes: m
            .tickets
            .iter()
            .filter(|t| !t.checkin_note.is_empty())
            .map(|t| (t.id.clone(), t.checkin_note.clone()))
            .collect(),
        manifest: m,
    })
}

/// The event's times, parsed.
struct EventTimes {
    starts_at: Millis,
    ends_at: Millis,
    doors_at: Millis,
    signed_at: Option<Millis>,
}

/// The event section: its id, currency, tax rate and times.
fn check_event(m: &Manifest) -> Result<EventTimes, ManifestError> {
    if m.event.id.as_str().is_empty() {
        return Err(invalid("event.id is empty"));
    }
    if m.event.currency.len() != 3 || !m.event.currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(invalid(format!(
            "event.currency '{}' is not an ISO 4217 code such as EUR",
            m.event.currency
        )));
    }
    if m.event.tax_rate_bp > MAX_TAX_RATE_BP {
        return Err(invalid(format!("event.tax_rate_bp must be 0 to {MAX_TAX_RATE_BP} (100 %)")));
    }
    let times = EventTimes {
        starts_at: time("event.starts_at", &m.event.starts_at)?,
        ends_at: time("event.ends_at", &m.event.ends_at)?,
        doors_at: time("event.doors_at", &m.event.doors_at)?,
        signed_at: m.signed_at.as_deref().map(|t| time("signed_at", t)).transpose()?,
    };
    if times.ends_at <= times.starts_at {
        return Err(invalid("event.ends_at must be after event.starts_at"));
    }
    Ok(times)
}

/// Ed25519 public keys (base64) of a key list, named by `field[i]` when one is wrong.
fn public_keys<'a>(
    field: &str,
    keys: impl Iterator<Item = &'a String>,
) -> Result<Vec<ed25519_dalek::VerifyingKey>, ManifestError> {
    keys.enumerate()
        .map(|(i, k)| {
            keys::public_key_from_base64(k).map_err(|e| invalid(format!("{field}[{i}]: {e}")))
        })
        .collect()
}

/// Tiers: ids and prices in range, each id once.
fn check_tiers(m: &Manifest) -> Result<HashMap<TierId, usize>, ManifestError> {
    for t in &m.tiers {
        if t.id.as_str().is_empty() || t.id.as_str().len() > MAX_TIER {
            return Err(invalid(format!("tier id '{}' must be 1 to {MAX_TIER} bytes", t.id)));
        }
        if !(0..=MAX_UNIT_MINOR).contains(&t.price_minor) {
            return Err(invalid(format!(
                "tier '{}' must have a price of 0 to {MAX_UNIT_MINOR} minor units",
                t.id
            )));
        }
    }
    Ok(unique("tier", m.tiers.iter().map(|t| &t.id))?
        .into_iter()
        .map(|(k, v)| (k.clone(), v))
        .collect())
}

type GateRules = HashMap<GateId, super::checkin_rules::CompiledRules>;

/// Gates: at least one, each id once, known tiers, a direction, their
/// check-in rules compiled.
fn check_gates(
    m: &Manifest,
    tier_index: &HashMap<TierId, usize>,
) -> Result<(HashMap<GateId, usize>, GateRules), ManifestError> {
    if m.gates.is_empty() {
        return Err(invalid("gates is empty: the door needs at least one gate"));
    }
    let gate_index: HashMap<GateId, usize> = unique("gate", m.gates.iter().map(|g| &g.id))?
        .into_iter()
        .map(|(k, v)| (k.clone(), v))
        .collect();
    let mut gate_rules = HashMap::new();
    for g in &m.gates {
        if let Some(t) = g.tiers.iter().find(|t| !tier_index.contains_key(*t)) {
            return Err(invalid(format!(
                "gate '{}' admits tier '{t}', which is not in tiers",
                g.id
            )));
        }
        if !g.entry && !g.exit {
            return Err(invalid(format!("gate '{}' allows neither entry nor exit", g.id)));
        }
        if let Some(r) = &g.rules {
            let compiled = super::checkin_rules::compile(r)
                .map_err(|e| invalid(format!("gate '{}': {e}", g.id)))?;
            gate_rules.insert(g.id.clone(), compiled);
        }
    }
    Ok((gate_index, gate_rules))
}

/// Tickets: each id once and in range, a known tier, secrets well formed
/// and never shared, times that parse, no tier over its capacity.
fn check_tickets(m: &Manifest, tier_index: &HashMap<TierId, usize>) -> Result<(), ManifestError> {
    unique("ticket", m.tickets.iter().map(|t| &t.id))?;
    let mut per_tier: HashMap<&TierId, u32> = HashMap::new();
    let mut secrets = HashSet::new();
    for t in &m.tickets {
        if t.id.as_str().is_empty() || t.id.as_str().len() > MAX_TICKET_ID {
            return Err(invalid(format!(
                "ticket id '{}' must be 1 to {MAX_TICKET_ID} bytes",
                t.id
            )));
        }
        if !tier_index.contains_key(&t.tier) {
            return Err(invalid(format!(
                "ticket '{}' has tier '{}', which is not in tiers",
                t.id, t.tier
            )));
        }
        if let Some(s) = &t.secret {
            if s.len() < 8 || s.starts_with(SIGNED_PREFIX) || s.trim() != s {
                return Err(invalid(format!(
                    "ticket '{}': a secret must be at least 8 characters, without surrounding spaces, and must not start with {SIGNED_PREFIX}",
                    t.id
                )));
            }
            if !secrets.insert(s.as_str()) {
                return Err(invalid(format!("ticket '{}' reuses another ticket's secret", t.id)));
            }
        }
        for (f, v) in [("valid_from", &t.valid_from), ("valid_until", &t.valid_until)] {
            if let Some(v) = v {
                time(&format!("ticket '{}' {f}", t.id), v)?;
            }
        }
        if t.status != TicketStatus::Cancelled {
            *per_tier.entry(&t.tier).or_default() += 1;
        }
    }
    for tier in &m.tiers {
        if let Some(problem) = tier.escrow.as_ref().and_then(EscrowRule::problem) {
            return Err(invalid(format!("tier '{}': {problem}", tier.id)));
        }
        let n = per_tier.get(&tier.id).copied().unwrap_or(0);
        if n > tier.capacity {
            return Err(invalid(format!(
                "tier '{}' has capacity {} but {n} tickets",
                tier.id, tier.capacity
            )));
        }
    }
    Ok(())
}

/// Creators by id, and referral codes to their creator's position.
type CreatorIndexes = (HashMap<CreatorId, usize>, HashMap<String, usize>);

/// Creators: each id once, referral codes unique, payout shares in range.
fn check_creators(m: &Manifest) -> Result<CreatorIndexes, ManifestError> {
    let creator_index: HashMap<CreatorId, usize> =
        unique("creator", m.creators.iter().map(|c| &c.id))?
            .into_iter()
            .map(|(k, v)| (k.clone(), v))
            .collect();
    let mut referral_index = HashMap::new();
    for (i, c) in m.creators.iter().enumerate() {
        for code in &c.referral_codes {
            if code.trim().is_empty() || referral_index.insert(code.clone(), i).is_some() {
                return Err(invalid(format!("referral code '{code}' is empty or used twice")));
            }
        }
        if c.payout.ticket_share_bp > 10_000 || c.payout.drop_share_bp > 10_000 {
            return Err(invalid(format!(
                "creator '{}': a payout share cannot exceed 10000 basis points",
                c.id
            )));
        }
    }
    Ok((creator_index, referral_index))
}

fn known_creator(
    index: &HashMap<CreatorId, usize>,
    id: &CreatorId,
    what: &str,
) -> Result<(), ManifestError> {
    if index.contains_key(id) {
        Ok(())
    } else {
        Err(invalid(format!("{what} names creator '{id}', who is not in creators")))
    }
}

/// Scholarship programs: each id once, a known tier and funder, discounts
/// and times in range, claim codes unique.
fn check_scholarships(
    m: &Manifest,
    tier_index: &HashMap<TierId, usize>,
    creator_index: &HashMap<CreatorId, usize>,
) -> Result<(), ManifestError> {
    unique("scholarship program", m.scholarships.iter().map(|p| &p.id))?;
    let mut claim_codes = HashSet::new();
    for p in &m.scholarships {
        let what = format!("scholarship '{}'", p.id);
        if let Some(problem) = p.escrow.as_ref().and_then(EscrowRule::problem) {
            return Err(invalid(format!("{what}: {problem}")));
        }
        if !tier_index.contains_key(&p.tier) {
            return Err(invalid(format!("{what} is for tier '{}', which is not in tiers", p.tier)));
        }
        match (&p.funder.kind, &p.funder.creator) {
            (FunderKind::Creator, Some(c)) => known_creator(creator_index, c, &what)?,
            (FunderKind::Creator, None) => {
                return Err(invalid(format!("{what}: a creator funder needs funder.creator")))
            }
            (FunderKind::Sponsor, _) => {}
        }
        match p.discount {
            Discount::Percent { percent } if percent > 100 => {
                return Err(invalid(format!("{what}: percent must be 0 to 100")))
            }
            Discount::Amount { minor } if !(0..=MAX_UNIT_MINOR).contains(&minor) => {
                return Err(invalid(format!(
                    "{what}: a discount amount must be 0 to {MAX_UNIT_MINOR} minor units"
                )))
            }
            _ => {}
        }
        for (f, v) in [("valid_from", &p.valid_from), ("valid_until", &p.valid_until)] {
            if let Some(v) = v {
                time(&format!("{what} {f}"), v)?;
            }
        }
        for c in &p.codes {
            known_creator(creator_index, &c.creator, &format!("{what} code '{}'", c.code))?;
            if c.code.trim().is_empty() || c.cap == 0 || !claim_codes.insert(c.code.as_str()) {
                return Err(invalid(format!(
                    "{what}: claim code '{}' is empty, has cap 0, or is used twice",
                    c.code
                )));
            }
        }
    }
    Ok(())
}

/// Staff: PIN lengths in range, each name once, PIN hashes in PHC form.
fn check_staff(m: &Manifest) -> Result<(), ManifestError> {
    if let Some((role, n)) = m.pin_length.iter().find(|(_, n)| !(4..=12).contains(*n)) {
        return Err(invalid(format!("pin_length for {role} is {n}: a PIN has 4 to 12 digits")));
    }
    let mut staff_names = HashSet::new();
    for s in &m.staff {
        if !staff_names.insert(s.name.as_str()) {
            return Err(invalid(format!("staff name '{}' appears twice", s.name)));
        }
        argon2::PasswordHash::new(&s.pin_hash)
            .map_err(|e| invalid(format!("staff '{}' pin_hash is not a PHC string ({e}): make it with `venuebox staff hash-pin`", s.name)))?;
    }
    Ok(())
}

/// The pretix section: its signing keys, lists for known gates.
fn check_pretix(
    m: &Manifest,
    gate_index: &HashMap<GateId, usize>,
) -> Result<Vec<ed25519_dalek::VerifyingKey>, ManifestError> {
    let Some(px) = &m.pretix else { return Ok(Vec::new()) };
    for l in &px.lists {
        if !gate_index.contains_key(&l.gate) {
            return Err(invalid(format!(
                "pretix list {} is for gate '{}', which is not in gates",
                l.id, l.gate
            )));
        }
    }
    px.sig1_keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            super::pretix::sig1_key(k).map_err(|e| invalid(format!("pretix.sig1_keys[{i}]: {e}")))
        })
        .collect()
}

/// Checks one drop on its own: times, products, reserve. Used for
/// manifest drops and for drops an admin creates on the box.
pub fn validate_drop(
    d: &DropSpec,
    tier_known: impl Fn(&TierId) -> bool,
) -> Result<(), ManifestError> {
    let what = format!("drop '{}'", d.id);
    if d.id.as_str().is_empty() {
        return Err(invalid("a drop id is empty"));
    }
    let opens = time(&format!("{what} opens_at"), &d.opens_at)?;
    let closes = time(&format!("{what} closes_at"), &d.closes_at)?;
    if closes <= opens {
        return Err(invalid(format!("{what}: closes_at must be after opens_at")));
    }
    if d.products.is_empty() {
        return Err(invalid(format!("{what} has no products")));
    }
    unique(&format!("{what} product"), d.products.iter().map(|p| &p.sku))?;
    for p in &d.products {
        if p.sku.as_str().is_empty() || !(0..=MAX_UNIT_MINOR).contains(&p.price_minor) {
            return Err(invalid(format!(
                "{what}: product '{}' needs a SKU and a price of 0 to {MAX_UNIT_MINOR} minor units",
                p.sku
            )));
        }
        if p.quantity > MAX_STOCK {
            return Err(invalid(format!(
                "{what}: product '{}' quantity must be at most {MAX_STOCK}",
                p.sku
            )));
        }
        if p.tax_rate_bp.is_some_and(|r| r > MAX_TAX_RATE_BP) {
            return Err(invalid(format!(
                "{what}: product '{}' tax_rate_bp must be 0 to {MAX_TAX_RATE_BP} (100 %)",
                p.sku
            )));
        }
    }
    if let Some(problem) = d.escrow.as_ref().and_then(EscrowRule::problem) {
        return Err(invalid(format!("{what}: {problem}")));
    }
    if d.per_attendee_limit == Some(0) {
        return Err(invalid(format!(
            "{what}: per_attendee_limit 0 would sell nothing; leave it out for no limit"
        )));
    }
    if let Some(r) = &d.reserve {
        time(&format!("{what} reserve.release_at"), &r.release_at)?;
        if let Some(t) = r.tiers.iter().find(|t| !tier_known(t)) {
            return Err(invalid(format!(
                "{what} reserves stock for tier '{t}', which is not in tiers"
            )));
        }
        if r.tiers.is_empty() && r.members.is_empty() {
            return Err(invalid(format!(
                "{what}: a reserve needs tiers or members to hold stock for"
            )));
        }
    }
    Ok(())
}

/// Checks a candidate manifest's signature and that it may replace
/// `current`. Trusted keys are the pinned ones plus those of the current
/// manifest; on a box that has neither, the manifest's own keys are
/// trusted (first use), which the caller should log.
pub fn accept(
    bytes: &[u8],
    signature: Option<&str>,
    current: Option<&EventSnapshot>,
    pinned: &TrustedKeys,
) -> Result<EventSnapshot, ManifestError> {
    let candidate = parse(bytes)?;
    let sig_text = signature.filter(|s| !s.trim().is_empty()).ok_or(ManifestError::Unsigned)?;
    let sig = keys::signature_from_base64(sig_text).map_err(|_| ManifestError::BadSignature)?;
    let signed_by_pinned = pinned.verify_any(bytes, &sig).is_some();
    let signed_by_current = current.is_some_and(|c| c.keys.verify_any(bytes, &sig).is_some());
    let first_use = pinned.is_empty() && current.is_none();
    let signed_by_itself = candidate.keys.verify_any(bytes, &sig).is_some();
    if !(signed_by_pinned || signed_by_current || (first_use && signed_by_itself)) {
        return Err(ManifestError::BadSignature);
    }
    if let Some(c) = current {
        if c.event_id() != candidate.event_id() {
            return Err(ManifestError::OtherEvent {
                have: c.event_id().clone(),
                got: candidate.event_id().clone(),
            });
        }
        if candidate.manifest.version <= c.manifest.version {
            return Err(ManifestError::NotNewer {
                have: c.manifest.version,
                got: candidate.manifest.version,
            });
        }
    }
    Ok(candidate)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::keys::{public_key_to_base64, sign_detached, signing_key_from_bytes};
    use ed25519_dalek::SigningKey;
    use serde_json::json;

    pub(crate) const TEST_PIN_HASH: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$ZxR0n3PFdLSwMYXH3VY0j/dKAWyWJ93X0tH3cU3hvG4";

    pub(crate) fn sample(keys: &[&SigningKey], version: u64) -> serde_json::Value {
        json!({
            "schema": 1,
            "version": version,
            "event": {"id": "evt-test", "name": "Test night", "timezone": "Europe/Berlin", "currency": "EUR",
                      "starts_at": "2026-11-27T19:00:00Z", "ends_at": "2026-11-27T23:00:00Z", "doors_at": "2026-11-27T18:30:00Z"},
            "organiser_keys": keys.iter().map(|k| json!({"public_key": public_key_to_base64(&k.verifying_key())})).collect::<Vec<_>>(),
            "tiers": [{"id": "ga", "name": "General", "price_minor": 2500, "capacity": 10},
                      {"id": "vip", "name": "VIP", "price_minor": 9000, "capacity": 2}],
            "gates": [{"id": "main", "name": "Main door"},
                      {"id": "vip", "name": "VIP door", "tiers": ["vip"], "exit": true, "reentry": true}],
            "tickets": [{"id": "t1", "tier": "ga", "secret": "SECRET-ONE", "holder": "Ada"}],
            "staff": [{"name": "Door 1", "role": "door", "pin_hash": TEST_PIN_HASH}]
        })
    }

    fn bytes(v: &serde_json::Value) -> Vec<u8> {
        serde_json::to_vec_pretty(v).unwrap()
    }

    #[test]
    fn first_manifest_is_accepted_when_signed_by_its_own_key() {
        let k = signing_key_from_bytes([1; 32]);
        let b = bytes(&sample(&[&k], 1));
        let snap = accept(&b, Some(&sign_detached(&k, &b)), None, &TrustedKeys::default()).unwrap();
        assert_eq!(snap.manifest.tickets.len(), 1);
        assert!(snap.gate(&GateId::from("vip")).unwrap().reentry);
    }

    #[test]
    fn unsigned_tampered_and_foreign_manifests_are_refused() {
        let k = signing_key_from_bytes([1; 32]);
        let stranger = signing_key_from_bytes([2; 32]);
        let b = bytes(&sample(&[&k], 1));
        let sig = sign_detached(&k, &b);
        let none = TrustedKeys::default();
        assert_eq!(accept(&b, None, None, &none).unwrap_err(), ManifestError::Unsigned);
        let mut tampered = b.clone();
        let pos = tampered.windows(4).position(|w| w == b"2500").unwrap();
        tampered[pos] = b'1';
        assert_eq!(
            accept(&tampered, Some(&sig), None, &none).unwrap_err(),
            ManifestError::BadSignature
        );
        let pinned = TrustedKeys::new([stranger.verifying_key()]);
        assert_eq!(
            accept(&b, Some(&sig), None, &pinned).unwrap_err(),
            ManifestError::BadSignature,
            "pinned key overrides first use"
        );
    }

    #[test]
    fn successor_must_be_newer_same_event_and_signed_by_a_current_key() {
        let old = signing_key_from_bytes([1; 32]);
        let new = signing_key_from_bytes([2; 32]);
        let none = TrustedKeys::default();
        let b1 = bytes(&sample(&[&old, &new], 1));
        let current = accept(&b1, Some(&sign_detached(&old, &b1)), None, &none).unwrap();
        // Rotation: v2 lists only the new key and is signed by it; the box trusts it through v1.
        let b2 = bytes(&sample(&[&new], 2));
        let v2 = accept(&b2, Some(&sign_detached(&new, &b2)), Some(&current), &none).unwrap();
        // The old key is now retired: a v3 signed by it is refused.
        let b3 = bytes(&sample(&[&old], 3));
        assert_eq!(
            accept(&b3, Some(&sign_detached(&old, &b3)), Some(&v2), &none).unwrap_err(),
            ManifestError::BadSignature
        );
        // Older or equal versions are refused.
        assert_eq!(
            accept(&b1, Some(&sign_detached(&new, &b1)), Some(&v2), &none).unwrap_err(),
            ManifestError::NotNewer { have: 2, got: 1 }
        );
        // A self-signed manifest cannot replace one from another organiser.
        let evil = signing_key_from_bytes([6; 32]);
        let b4 = bytes(&sample(&[&evil], 9));
        assert_eq!(
            accept(&b4, Some(&sign_detached(&evil, &b4)), Some(&v2), &none).unwrap_err(),
            ManifestError::BadSignature
        );
        // Another event is refused.
        let mut other = sample(&[&new], 5);
        other["event"]["id"] = json!("evt-other");
        let b5 = bytes(&other);
        assert!(matches!(
            accept(&b5, Some(&sign_detached(&new, &b5)), Some(&v2), &none),
            Err(ManifestError::OtherEvent { .. })
        ));
    }

    #[test]
    fn invalid_manifests_say_what_is_wrong() {
        let k = signing_key_from_bytes([1; 32]);
        type Change = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(&str, Change)> = vec![
            ("schema", Box::new(|m| m["schema"] = json!(2))),
            ("not in tiers", Box::new(|m| m["tickets"][0]["tier"] = json!("nope"))),
            ("appears twice", Box::new(|m| m["gates"][1]["id"] = json!("main"))),
            (
                "capacity 2 but 3",
                Box::new(|m| {
                    for i in 0..3 {
                        m["tickets"]
                            .as_array_mut()
                            .unwrap()
                            .push(json!({"id": format!("v{i}"), "tier": "vip"}));
                    }
                }),
            ),
            ("RFC 3339", Box::new(|m| m["event"]["doors_at"] = json!("7pm"))),
            ("PHC", Box::new(|m| m["staff"][0]["pin_hash"] = json!("1234"))),
            ("expected one of `door`", Box::new(|m| m["staff"][0]["role"] = json!("boss"))),
            ("4 to 12 digits", Box::new(|m| m["pin_length"] = json!({"admin": 3}))),
            ("secret", Box::new(|m| m["tickets"][0]["secret"] = json!("VB1:ABCDEFGH"))),
            ("ISO 4217", Box::new(|m| m["event"]["currency"] = json!("euro"))),
        ];
        for (expect, change) in cases {
            let mut m = sample(&[&k], 1);
            change(&mut m);
            let err = parse(&bytes(&m)).unwrap_err().to_string();
            assert!(err.contains(expect), "expected '{expect}' in: {err}");
        }
    }

    fn with_selling(m: &mut serde_json::Value) {
        m["creators"] = json!([{"id": "cr", "name": "Cr", "referral_codes": ["REF"]}]);
        m["scholarships"] = json!([{"id": "p", "name": "P", "funder": {"kind": "sponsor", "name": "S"}, "tier": "ga", "seats": 2,
            "discount": {"kind": "percent", "percent": 50}, "codes": [{"code": "C1", "creator": "cr"}]}]);
        m["drops"] = json!([{"id": "d", "name": "D", "creator": "cr", "opens_at": "2026-11-27T19:00:00Z", "closes_at": "2026-11-27T21:00:00Z",
            "reserve": {"quantity": 1, "tiers": ["vip"], "release_at": "2026-11-27T20:00:00Z"},
            "products": [{"sku": "TEE", "name": "Tee", "price_minor": 2000, "quantity": 5}]}]);
    }

    #[test]
    fn selling_sections_are_validated_too() {
        let k = signing_key_from_bytes([1; 32]);
        let mut ok = sample(&[&k], 1);
        with_selling(&mut ok);
        let snap = parse(&bytes(&ok)).unwrap();
        assert_eq!(snap.referral("REF").unwrap().id, CreatorId::from("cr"));
        assert_eq!(snap.claim_code("C1").unwrap().0.id, ProgramId::from("p"));
        type Change = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(&str, Change)> = vec![
            ("tier 'balcony'", Box::new(|m| m["scholarships"][0]["tier"] = json!("balcony"))),
            (
                "creator 'ghost'",
                Box::new(|m| m["scholarships"][0]["codes"][0]["creator"] = json!("ghost")),
            ),
            (
                "used twice",
                Box::new(|m| {
                    m["scholarships"][0]["codes"]
                        .as_array_mut()
                        .unwrap()
                        .push(json!({"code": "C1", "creator": "cr"}))
                }),
            ),
            (
                "percent must be 0 to 100",
                Box::new(|m| m["scholarships"][0]["discount"]["percent"] = json!(150)),
            ),
            (
                "a creator funder needs",
                Box::new(|m| m["scholarships"][0]["funder"]["kind"] = json!("creator")),
            ),
            (
                "closes_at must be after",
                Box::new(|m| m["drops"][0]["closes_at"] = json!("2026-11-27T18:00:00Z")),
            ),
            ("drop 'd' names creator 'x'", Box::new(|m| m["drops"][0]["creator"] = json!("x"))),
            (
                "reserves stock for tier 'gold'",
                Box::new(|m| m["drops"][0]["reserve"]["tiers"] = json!(["gold"])),
            ),
            (
                "'TEE' appears twice",
                Box::new(|m| {
                    m["drops"][0]["products"]
                        .as_array_mut()
                        .unwrap()
                        .push(json!({"sku": "TEE", "name": "x", "price_minor": 1, "quantity": 1}))
                }),
            ),
            (
                "referral code 'REF'",
                Box::new(|m| {
                    m["creators"]
                        .as_array_mut()
                        .unwrap()
                        .push(json!({"id": "cr2", "name": "x", "referral_codes": ["REF"]}))
                }),
            ),
            ("per_attendee_limit 0", Box::new(|m| m["drops"][0]["per_attendee_limit"] = json!(0))),
            ("box_keys[0]", Box::new(|m| m["box_keys"] = json!([{"public_key": "nope"}]))),
        ];
        for (expect, change) in cases {
            let mut m = ok.clone();
            change(&mut m);
            let err = parse(&bytes(&m)).unwrap_err().to_string();
            assert!(err.contains(expect), "expected '{expect}' in: {err}");
        }
    }

    #[test]
    fn unknown_later_sections_are_ignored() {
        let k = signing_key_from_bytes([1; 32]);
        let mut m = sample(&[&k], 1);
        m["future_section"] = json!([{"id": "x1"}]);
        assert!(parse(&bytes(&m)).is_ok());
    }
}
