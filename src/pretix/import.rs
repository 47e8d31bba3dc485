//! An import from pretix: the event, its items, check-in lists, orders
//! (only those changed since the last import), revoked and blocked secrets
//! and signing keys, turned into a manifest signed by the box's own
//! organiser key and imported like any other, so the door, the scanners
//! and sync see nothing new.
//!
//! Mapping: an item is a tier (`px<item id>`; check-in lists filter by
//! item); a check-in list is a gate (`pretix-<list id>`) with its item
//! filter and entry rules; an order position is a listed ticket — id
//! `pxs-<seed>` for a signed secret (the same id the signature gives a
//! ticket the box has not seen listed), `pxp-<position id>` otherwise.
//! Staff, creators, drops and box keys are the box's own: kept from the
//! loaded manifest, or given (`--staff`) on the first import.

use super::client::{Client, PretixError};
use crate::domain::checkin_questions::{CheckinQuestion, QuestionOption};
use crate::domain::ids::{GateId, TicketId, TierId};
use crate::domain::manifest::{
    self, CheckinNote, Event, Gate, KeyEntry, Manifest, PretixLink, PretixList, StaffEntry,
    TicketEntry, TicketStatus, Tier,
};
use crate::domain::money::minor_digits;
use crate::domain::pretix::{self, item_tier};
use crate::domain::role::Actor;
use crate::domain::time::{format_rfc3339, parse_rfc3339, Millis};
use crate::store::pretix::{StoredOrder, ORDERS_CURSOR as CURSOR};
use crate::store::{ImportOutcome, Store, StoreError};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Pretix(#[from] PretixError),
    /// The event cannot be run by the box as it is set up in pretix, or
    /// the import lacks something only the operator can give.
    #[error("{0}")]
    Setup(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl ImportError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ImportError::Pretix(e) if e.is_retryable())
    }
}

/// What the operator chooses.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Check-in lists to bring in; `None`: the same as the last import, or
    /// every list of the event on the first.
    pub lists: Option<Vec<i64>>,
    /// Staff (names, roles, PIN hashes); `None`: keep the loaded manifest's.
    pub staff: Option<Vec<StaffEntry>>,
    /// For an event series, the date to run; `None`: the one imported
    /// before (a series needs a choice on its first import).
    pub date: Option<DateChoice>,
}

/// One date of an event series: by pretix's subevent id, or by its day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DateChoice {
    Subevent(i64),
    /// `YYYY-MM-DD`, the day the date starts in the event's time zone.
    Day(String),
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ImportReport {
    pub event_id: String,
    pub version: u64,
    /// False when pretix had nothing new: no manifest was written.
    pub changed: bool,
    pub orders_fetched: usize,
    pub tickets: usize,
    pub gates: Vec<(String, String)>,
    pub signed_keys: usize,
    /// What works but will not do all it should (a token that may read
    /// orders but not check in: the door works, check-ins wait on the box).
    pub warnings: Vec<String>,
}

/// Imports (or refreshes) the event from pretix into the store.
pub async fn run(
    store: &Store,
    client: &Client,
    opts: &ImportOptions,
    key: &SigningKey,
    now: Millis,
) -> Result<ImportReport, ImportError> {
    // pretix answers 403, not 404, for an event the token cannot see,
    // whether or not it exists: one message covers both.
    // pretix's clock before the first order is read: every change after
    // this instant is in the next import (see `next_cursor`).
    let (event, pretix_now) = client.get_dated("event:", "").await.map_err(|e| match e {
        PretixError::Forbidden { .. } | PretixError::NotFound { .. } => ImportError::Setup(format!(
            "pretix has no event '{}' under organizer '{}' that this token may see: check --organizer and --event (the short forms in the event's address, /{}/{}/) and that the token's team has access to the event",
            client.event, client.organizer, client.organizer, client.event
        )),
        e => e.into(),
    })?;
    let items = client.get_all("event:items/", &[], "list the event's products").await?;
    let questions = client.get_all("event:questions/", &[], "list the event's questions").await?;
    let lists =
        client.get_all("event:checkinlists/", &[], "list the event's check-in lists").await?;
    let current = store.event();
    let link_of_current = current.as_ref().and_then(|c| c.manifest.pretix.clone());
    let same_event = link_of_current
        .as_ref()
        .is_some_and(|l| l.organizer == client.organizer && l.event == client.event);
    if let Some(cur) = current.as_ref().filter(|_| !same_event) {
        return Err(ImportError::Setup(format!(
            "this box holds event '{}': a box runs one event (give this one its own --data-dir)",
            cur.event_id()
        )));
    }
    let wanted = match (&opts.lists, &link_of_current) {
        (Some(l), _) => Some(l.clone()),
        (None, Some(link)) if same_event => Some(link.lists.iter().map(|l| l.id).collect()),
        _ => None,
    };
    let subevent = choose_date(
        client,
        &event,
        opts.date.as_ref(),
        link_of_current.as_ref().filter(|_| same_event),
    )
    .await?;
    if let (Some(cur), Some(link)) =
        (current.as_ref(), link_of_current.as_ref().filter(|_| same_event))
    {
        let id = subevent.as_ref().and_then(|s| s["id"].as_i64());
        if link.subevent != id {
            return Err(ImportError::Setup(format!(
                "this box holds {} of the series; a box runs one date (give this one its own --data-dir)",
                cur.event_id()
            )));
        }
    }
    let revoked =
        client.get_all("event:revokedsecrets/", &[], "read the event's revoked secrets").await?;
    let blocked =
        client.get_all("event:blockedsecrets/", &[], "read the event's blocked secrets").await?;
    let keys = sig1_keys(&event)?;
    let verifying: Vec<VerifyingKey> =
        keys.iter().map(|k| pretix::sig1_key(k)).collect::<Result<_, _>>().map_err(|e| {
            ImportError::Setup(format!("pretix lists a signing key the box cannot read: {e}"))
        })?;
    let orders_fetched = read_orders(store, client, same_event, &verifying, pretix_now).await?;
    let all_orders = store.pretix_orders().await?;

    let carried = current.as_ref().filter(|_| same_event).map(|c| c.manifest.clone());
    let staff = match (&opts.staff, &carried) {
        (Some(s), _) => s.clone(),
        (None, Some(m)) => m.staff.clone(),
        (None, None) => {
            return Err(ImportError::Setup(
                "nobody could sign in to the box: give --staff FILE (a JSON list of {\"name\", \"role\", \"pin_hash\"}; make each hash with `venuebox staff hash-pin`)".into(),
            ))
        }
    };
    let input = Input {
        subevent,
        base_url: client.base_url(),
        organizer: client.organizer.clone(),
        event_slug: client.event.clone(),
        event,
        items,
        questions,
        lists,
        wanted,
        orders: all_orders,
        revoked,
        blocked,
        keys,
        verifying,
        organiser_key: crate::domain::keys::public_key_to_base64(&key.verifying_key()),
    };
    let mut m = build(&input, staff, carried.as_ref())?;
    let mut warnings = Vec::new();
    let lists: Vec<i64> =
        m.pretix.as_ref().map(|p| p.lists.iter().map(|l| l.id).collect()).unwrap_or_default();
    match super::checkins::check_permission(client, &lists).await {
        Ok(()) => {}
        Err(super::checkins::SendError::Link(_, e)) if e.is_retryable() => return Err(e.into()),
        Err(e) => warnings.push(format!("check-ins cannot go back to pretix with this token: {e}")),
    }
    let gates = m.gates.iter().map(|g| (g.id.to_string(), g.name.clone())).collect();
    let report = |m: &Manifest, changed| ImportReport {
        event_id: m.event.id.to_string(),
        version: m.version,
        changed,
        orders_fetched,
        tickets: m.tickets.len(),
        gates,
        signed_keys: m.pretix.as_ref().map_or(0, |p| p.sig1_keys.len()),
        warnings: warnings.clone(),
    };
    if let Some(cur) = &carried {
        if same_content(cur, &m) {
            return Ok(report(cur, false));
        }
        m.version = cur.version + 1;
    }
    sign_and_import(store, key, &mut m, now).await?;
    Ok(report(&m, true))
}

/// Signs the manifest with the box's key (trusted for it alone) and
/// imports it, as any signed manifest is.
async fn sign_and_import(
    store: &Store,
    key: &SigningKey,
    m: &mut Manifest,
    now: Millis,
) -> Result<(), ImportError> {
    m.signed_at = Some(format_rfc3339(now));
    let bytes = serde_json::to_vec_pretty(&*m).expect("a manifest serialises");
    let signature = crate::domain::keys::sign_detached(key, &bytes);
    let actor = Actor { name: "pretix-import".into(), role: crate::domain::role::Role::Admin };
    let pinned = crate::domain::keys::TrustedKeys::new([key.verifying_key()]);
    match store.import_manifest(bytes, Some(signature), pinned, actor, now).await? {
        ImportOutcome::Imported { .. } | ImportOutcome::Unchanged { .. } => Ok(()),
    }
}

/// Reads the orders changed since the last import (all of them the
/// first time), keeps them in the store, and moves the cursor; how many
/// orders were read.
async fn read_orders(
    store: &Store,
    client: &Client,
    same_event: bool,
    verifying: &[VerifyingKey],
    pretix_now: Option<Millis>,
) -> Result<usize, ImportError> {
    let cursor = if same_event { store.pretix_value(CURSOR).await? } else { None };
    // Pages sorted by order code, which no edit changes: an order changed
    // while the pages are read stays where it was (sorted by last change,
    // it would jump to the end and shift a later order onto a page already
    // read, never to be seen again).
    let mut query = vec![("include_canceled_positions", "true"), ("ordering", "code")];
    if let Some(c) = cursor.as_deref() {
        query.push(("modified_since", c));
    }
    let orders = client.get_all("event:orders/", &query, "read the event's orders").await?;

    // One row per order code: an order read twice (pages shift forward
    // when an order is created meanwhile) keeps its newer reading.
    let mut by_code: BTreeMap<String, StoredOrder> = BTreeMap::new();
    for o in &orders {
        let stored = order_tickets(o, verifying)?;
        match by_code.get(&stored.code) {
            Some(seen) if seen.modified > stored.modified => {}
            _ => {
                by_code.insert(stored.code.clone(), stored);
            }
        }
    }
    let changed_orders: Vec<StoredOrder> = by_code.into_values().collect();
    let values = match next_cursor(pretix_now) {
        Some(c) => vec![(CURSOR, c)],
        None => {
            tracing::warn!(
                "pretix sent no Date header: the next import reads the same orders again"
            );
            Vec::new()
        }
    };
    let orders_fetched = changed_orders.len();
    // A first import starts clean: nothing of an earlier, failed attempt
    // at another event may end up in this one.
    store.pretix_save(!same_event, changed_orders, values).await?;
    Ok(orders_fetched)
}

/// How far before pretix's clock at the start of an import the next one
/// begins reading: an order saved in a transaction that committed after
/// its `last_modified` was set, or a clock that steps, is still read.
pub const CURSOR_OVERLAP_MS: Millis = 120_000;

/// The next import's `modified_since`: pretix's time before this import
/// read its first order, less the overlap. Every change made after that
/// instant has a later `last_modified`, whichever page it was on; what is
/// read twice is stored once (by order code) and changes nothing.
fn next_cursor(pretix_now: Option<Millis>) -> Option<String> {
    pretix_now.map(|t| format_rfc3339(t - CURSOR_OVERLAP_MS))
}

/// Whether two manifests say the same, apart from version and signing time.
fn same_content(a: &Manifest, b: &Manifest) -> bool {
    let strip = |m: &Manifest| {
        let mut v = serde_json::to_value(m).expect("a manifest serialises");
        v["version"] = Value::Null;
        v["signed_at"] = Value::Null;
        v
    };
    strip(a) == strip(b)
}

fn sig1_keys(event: &Value) -> Result<Vec<String>, ImportError> {
    Ok(event
        .pointer("/valid_keys/pretix_sig1")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default())
}

/// The series date to import: the one asked for, else the one imported
/// before; `None` for an event that is not a series. An unclear choice is
/// refused with the dates there are.
async fn choose_date(
    client: &Client,
    event: &Value,
    asked: Option<&DateChoice>,
    current: Option<&PretixLink>,
) -> Result<Option<Value>, ImportError> {
    if event["has_subevents"].as_bool() != Some(true) {
        return match asked {
            Some(_) => Err(ImportError::Setup(format!(
                "event '{}' is not an event series: leave out --date and --subevent",
                client.event
            ))),
            None => Ok(None),
        };
    }
    let dates = client.get_all("event:subevents/", &[], "list the series' dates").await?;
    let listing = |dates: &[&Value]| {
        dates
            .iter()
            .map(|d| {
                format!(
                    "{} ({}, --subevent {})",
                    d["date_from"].as_str().unwrap_or("?"),
                    text(&d["name"]),
                    d["id"].as_i64().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let all: Vec<&Value> = dates.iter().collect();
    let asked = match (asked, current.and_then(|l| l.subevent)) {
        (Some(a), _) => a.clone(),
        (None, Some(id)) => DateChoice::Subevent(id),
        (None, None) => {
            return Err(ImportError::Setup(format!(
                "event '{}' is an event series: a box runs one date; choose it with --date YYYY-MM-DD or --subevent ID. Its dates: {}",
                client.event,
                listing(&all)
            )))
        }
    };
    let found: Vec<&Value> = match &asked {
        DateChoice::Subevent(id) => {
            all.iter().copied().filter(|d| d["id"].as_i64() == Some(*id)).collect()
        }
        DateChoice::Day(day) => all
            .iter()
            .copied()
            .filter(|d| d["date_from"].as_str().is_some_and(|f| f.starts_with(day.as_str())))
            .collect(),
    };
    match found.as_slice() {
        [one] => Ok(Some((*one).clone())),
        [] => Err(ImportError::Setup(format!(
            "event '{}' has no date {}: its dates are: {}",
            client.event,
            match &asked {
                DateChoice::Subevent(id) => format!("with subevent id {id}"),
                DateChoice::Day(d) => format!("on {d}"),
            },
            listing(&all)
        ))),
        many => Err(ImportError::Setup(format!(
            "event '{}' has {} dates then: choose one with --subevent: {}",
            client.event,
            many.len(),
            listing(many)
        ))),
    }
}

/// Everything pretix said, gathered.
struct Input {
    /// The series date imported (pretix's subevent), if a series.
    subevent: Option<Value>,
    base_url: String,
    organizer: String,
    event_slug: String,
    event: Value,
    items: Vec<Value>,
    questions: Vec<Value>,
    lists: Vec<Value>,
    wanted: Option<Vec<i64>>,
    orders: Vec<StoredOrder>,
    revoked: Vec<Value>,
    blocked: Vec<Value>,
    keys: Vec<String>,
    verifying: Vec<VerifyingKey>,
    organiser_key: String,
}

/// A stored position: the ticket as listed (its note: the order's), its
/// variation, and whether pretix blocks it.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredPosition {
    ticket: TicketEntry,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    variation: Option<i64>,
    /// The series date it is for (pretix's subevent), if any.
    #[serde(default)]
    subevent: Option<i64>,
    /// The questions it has answers to.
    #[serde(default)]
    answered: Vec<i64>,
}

/// pretix's questions asked at check-in, for the products imported.
fn checkin_questions(questions: &[Value]) -> Vec<CheckinQuestion> {
    questions
        .iter()
        .filter(|q| q["ask_during_checkin"].as_bool() == Some(true))
        .filter_map(|q| {
            Some(CheckinQuestion {
                id: q["id"].as_i64()?,
                question: text(&q["question"]),
                kind: q["type"].as_str()?.to_string(),
                required: q["required"].as_bool() == Some(true),
                tiers: q["items"]
                    .as_array()?
                    .iter()
                    .filter_map(Value::as_i64)
                    .map(item_tier)
                    .collect(),
                options: q["options"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|o| {
                        Some(QuestionOption { id: o["id"].as_i64()?, answer: text(&o["answer"]) })
                    })
                    .collect(),
            })
        })
        .collect()
}

/// pretix's check-in attention flag and text of an item, variation or order.
fn note(v: &Value) -> CheckinNote {
    CheckinNote {
        attention: v["checkin_attention"].as_bool() == Some(true),
        text: Some(text(&v["checkin_text"])).filter(|t| !t.trim().is_empty()),
    }
}

/// Two notes as one: attention if either asks, both texts.
fn merged(a: &CheckinNote, b: &CheckinNote) -> CheckinNote {
    let texts: Vec<&str> = [&a.text, &b.text].into_iter().flatten().map(String::as_str).collect();
    CheckinNote {
        attention: a.attention || b.attention,
        text: (!texts.is_empty()).then(|| texts.join(" · ")),
    }
}

/// pretix's text in the event's first language (`{"en": "…"}` or a plain string).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(m) => m
            .get("en")
            .or_else(|| m.values().next())
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

fn time(v: &Value, what: &str) -> Result<Option<String>, ImportError> {
    match v.as_str() {
        None => Ok(None),
        Some(s) => parse_rfc3339(s)
            .map(|ms| Some(format_rfc3339(ms)))
            .map_err(|e| ImportError::Setup(format!("pretix's {what}: {e}"))),
    }
}

/// A decimal amount ("25.00") in minor units of the currency; what is
/// not one (missing, negative, more decimals than the currency has, not a
/// number) is refused, never taken for 0.
fn minor(amount: &Value, currency: &str) -> Result<i64, String> {
    let s = amount.as_str().ok_or_else(|| format!("no amount ({amount})"))?;
    let digits = minor_digits(currency) as usize;
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let extra = frac.get(digits..).unwrap_or("");
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || extra.bytes().any(|b| b != b'0')
    {
        return Err(format!("\"{s}\" is not an amount in {currency}"));
    }
    let frac: String = frac.chars().chain(std::iter::repeat('0')).take(digits).collect();
    format!("{whole}{frac}").parse::<i64>().map_err(|e| format!("\"{s}\": {e}"))
}

/// The ticket id of a position: by its signed secret's seed, else by its id.
fn ticket_id(secret: &str, position: i64, keys: &[VerifyingKey]) -> TicketId {
    match pretix::parse_sig1(secret, keys) {
        Ok(t) => pretix::signed_ticket_id(&t.seed),
        Err(_) => pretix::position_ticket_id(position),
    }
}

/// One order's positions in the manifest's shape.
fn order_tickets(o: &Value, keys: &[VerifyingKey]) -> Result<StoredOrder, ImportError> {
    let code = o["code"]
        .as_str()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            ImportError::Setup(format!("pretix sent an order without a code: {}", o["id"]))
        })?
        .to_string();
    let bad = |what: &str| ImportError::Setup(format!("pretix order '{code}' has no {what}"));
    let modified = o["last_modified"].as_str().ok_or_else(|| bad("last_modified"))?.to_string();
    let order_status = match o["status"].as_str() {
        // pretix refuses such an order on every list (`unapproved`).
        Some("n") if o["require_approval"].as_bool() == Some(true) => TicketStatus::Unapproved,
        Some("p") => TicketStatus::Paid,
        Some("n") if o["valid_if_pending"].as_bool() == Some(true) => TicketStatus::Paid,
        Some("n") => TicketStatus::Unpaid,
        _ => TicketStatus::Cancelled,
    };
    let mut positions = Vec::new();
    for p in o["positions"].as_array().into_iter().flatten() {
        let (Some(id), Some(item), Some(secret)) =
            (p["id"].as_i64(), p["item"].as_i64(), p["secret"].as_str())
        else {
            return Err(bad("position id, item or secret"));
        };
        let status = if p["canceled"].as_bool() == Some(true) {
            TicketStatus::Cancelled
        } else {
            order_status
        };
        positions.push(StoredPosition {
            ticket: TicketEntry {
                id: ticket_id(secret, id, keys),
                tier: item_tier(item),
                secret: Some(secret.to_string()),
                holder: p["attendee_name"].as_str().filter(|s| !s.is_empty()).map(str::to_string),
                order: Some(code.clone()),
                email: p["attendee_email"]
                    .as_str()
                    .or(o["email"].as_str())
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
                status,
                valid_from: time(&p["valid_from"], "valid_from")?,
                valid_until: time(&p["valid_until"], "valid_until")?,
                checkin_note: note(o),
            },
            blocked: p["blocked"].as_array().is_some_and(|b| !b.is_empty()),
            variation: p["variation"].as_i64(),
            subevent: p["subevent"].as_i64(),
            answered: p["answers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["question"].as_i64())
                .collect(),
        });
    }
    Ok(StoredOrder {
        code,
        positions: serde_json::to_string(&positions).expect("positions serialise"),
        modified,
    })
}

/// Whether a check-in list is for the date imported: a list of a series is
/// for one date or (no subevent) for all of them.
fn for_date(l: &Value, date: Option<i64>) -> bool {
    l["subevent"].is_null() || l["subevent"].as_i64() == date
}

fn list_gate(
    l: &Value,
    tiers: &HashSet<TierId>,
    date: Option<i64>,
) -> Result<(i64, Gate), ImportError> {
    let id = l["id"].as_i64().unwrap_or_default();
    let name = text(&l["name"]);
    let setup = |why: String| ImportError::Setup(format!("check-in list {id} ({name}) {why}"));
    if !for_date(l, date) {
        return Err(setup(format!(
            "is for another date of the series (subevent {}): leave it out, or import that date on its own box",
            l["subevent"]
        )));
    }
    let rules = l["rules"].as_object().filter(|r| !r.is_empty()).map(|_| l["rules"].clone());
    if let Some(r) = &rules {
        crate::domain::checkin_rules::compile(r).map_err(|e| {
            setup(format!("has custom check-in rules the box cannot decide offline ({e}): change them in pretix, or leave the list out with --list"))
        })?;
    }
    let all = l["all_products"].as_bool() == Some(true);
    let limit: Vec<TierId> = l["limit_products"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .map(item_tier)
        .filter(|t| tiers.contains(t))
        .collect();
    if !all && limit.is_empty() {
        return Err(setup("admits no product: choose its products in pretix".into()));
    }
    let flag = |k: &str, default: bool| l[k].as_bool().unwrap_or(default);
    Ok((
        id,
        Gate {
            id: GateId(format!("pretix-{id}")),
            name: if name.is_empty() { format!("List {id}") } else { name.clone() },
            tiers: if all { Vec::new() } else { limit },
            entry: true,
            exit: true,
            reentry: flag("allow_entry_after_exit", true),
            multiple_entries: flag("allow_multiple_entries", false),
            admit_unpaid: flag("include_pending", false),
            rules,
            refuse_offline: false,
        },
    ))
}

/// The manifest pretix's data makes, with the box's own parts carried over.
fn build(
    input: &Input,
    staff: Vec<StaffEntry>,
    carried: Option<&Manifest>,
) -> Result<Manifest, ImportError> {
    let date_id = input.subevent.as_ref().and_then(|d| d["id"].as_i64());
    let event = event_section(input, date_id, carried)?;
    let questions = checkin_questions(&input.questions);
    let positions = positions(input, date_id, &questions)?;
    let tiers = tiers(input, &positions.tickets, &event.currency)?;
    let tier_ids: HashSet<TierId> = tiers.iter().map(|t| t.id.clone()).collect();
    let gates = gates(input, &tier_ids, date_id)?;
    let links = gates.iter().map(|(id, g)| PretixList { id: *id, gate: g.id.clone() }).collect();
    let (blocked, revoked) = blocked_and_revoked(input, &positions.tickets, positions.blocked);
    let m = Manifest {
        schema: manifest::SCHEMA,
        version: 1,
        signed_at: None,
        event,
        organiser_keys: vec![KeyEntry {
            public_key: input.organiser_key.clone(),
            label: Some("this box (pretix import)".into()),
        }],
        tiers,
        gates: gates.into_iter().map(|(_, g)| g).collect(),
        tickets: positions.tickets,
        revoked_codes: revoked,
        blocked_tickets: blocked,
        staff,
        pin_length: carried.map(|m| m.pin_length.clone()).unwrap_or_default(),
        box_keys: carried.map(|m| m.box_keys.clone()).unwrap_or_default(),
        creators: carried.map(|m| m.creators.clone()).unwrap_or_default(),
        scholarships: carried.map(|m| m.scholarships.clone()).unwrap_or_default(),
        drops: carried.map(|m| m.drops.clone()).unwrap_or_default(),
        pretix: Some(PretixLink {
            url: input.base_url.clone(),
            organizer: input.organizer.clone(),
            event: input.event_slug.clone(),
            sig1_keys: input.keys.clone(),
            lists: links,
            subevent: date_id,
            variations: positions.variations,
            questions,
            answered: positions.answered,
        }),
    };
    // The same checks every manifest passes, before anything is signed.
    let bytes = serde_json::to_vec(&m).expect("a manifest serialises");
    manifest::parse(&bytes)
        .map_err(|e| ImportError::Setup(format!("pretix's data makes no valid event: {e}")))?;
    Ok(m)
}

/// The manifest's event: pretix's event (or series date) with its
/// currency and times; tax settings carried from the box's manifest.
fn event_section(
    input: &Input,
    date_id: Option<i64>,
    carried: Option<&Manifest>,
) -> Result<Event, ImportError> {
    let ev = &input.event;
    // A series date has its own times.
    let when = input.subevent.as_ref().unwrap_or(ev);
    let currency = ev["currency"]
        .as_str()
        .filter(|c| c.len() == 3)
        .ok_or_else(|| {
            ImportError::Setup(format!("the pretix event has no currency ({})", ev["currency"]))
        })?
        .to_string();
    let starts_at = time(&when["date_from"], "event date_from")?
        .ok_or_else(|| ImportError::Setup("the pretix event has no start date".into()))?;
    let start_ms = parse_rfc3339(&starts_at).expect("just formatted");
    let ends_at = time(&when["date_to"], "event date_to")?
        .filter(|e| parse_rfc3339(e).is_ok_and(|e| e > start_ms))
        .unwrap_or_else(|| format_rfc3339(start_ms + 24 * 3_600_000));
    let doors_at =
        time(&when["date_admission"], "event date_admission")?.unwrap_or_else(|| starts_at.clone());

    let (tax_rate_bp, prices_include_tax) =
        carried.map_or((0, true), |m| (m.event.tax_rate_bp, m.event.prices_include_tax));
    Ok(Event {
        id: crate::domain::ids::EventId(match date_id {
            Some(d) => format!("pretix-{}-{}-{d}", input.organizer, input.event_slug),
            None => format!("pretix-{}-{}", input.organizer, input.event_slug),
        }),
        name: match &input.subevent {
            Some(d) => format!("{} ({})", text(&d["name"]), &starts_at[..10]),
            None => text(&ev["name"]),
        },
        timezone: ev["timezone"].as_str().unwrap_or("UTC").to_string(),
        currency,
        starts_at,
        ends_at,
        doors_at,
        tax_rate_bp,
        prices_include_tax,
    })
}

/// The tickets of the stored orders (of this date, for a series), with
/// what the manifest keeps beside them.
struct Positions {
    tickets: Vec<TicketEntry>,
    /// Tickets pretix blocks, by position.
    blocked: Vec<TicketId>,
    variations: BTreeMap<TicketId, i64>,
    /// The check-in questions each ticket has answered.
    answered: BTreeMap<TicketId, Vec<i64>>,
}

fn positions(
    input: &Input,
    date_id: Option<i64>,
    questions: &[CheckinQuestion],
) -> Result<Positions, ImportError> {
    let variation_notes: HashMap<i64, CheckinNote> = input
        .items
        .iter()
        .flat_map(|it| it["variations"].as_array().into_iter().flatten())
        .filter_map(|v| Some((v["id"].as_i64()?, note(v))))
        .filter(|(_, n)| !n.is_empty())
        .collect();
    let mut variations = BTreeMap::new();
    let asked_ids: HashSet<i64> = questions.iter().map(|q| q.id).collect();
    let mut answered = BTreeMap::new();
    // Tickets first: a tier's capacity is what it has listed.
    let mut tickets = Vec::new();
    let mut blocked = Vec::new();
    for o in &input.orders {
        let positions: Vec<StoredPosition> = serde_json::from_str(&o.positions).map_err(|e| {
            ImportError::Setup(format!(
                "stored pretix order {} cannot be read ({e}): import again",
                o.code
            ))
        })?;
        for mut p in positions {
            if date_id.is_some() && p.subevent != date_id {
                continue; // another date of the series
            }
            if p.blocked {
                blocked.push(p.ticket.id.clone());
            }
            if let Some(v) = p.variation.and_then(|v| variation_notes.get(&v)) {
                p.ticket.checkin_note = merged(v, &p.ticket.checkin_note);
            }
            if let Some(v) = p.variation {
                variations.insert(p.ticket.id.clone(), v);
            }
            let mut done: Vec<i64> =
                p.answered.iter().copied().filter(|q| asked_ids.contains(q)).collect();
            if !done.is_empty() {
                done.sort_unstable();
                answered.insert(p.ticket.id.clone(), done);
            }
            tickets.push(p.ticket);
        }
    }
    Ok(Positions { tickets, blocked, variations, answered })
}

/// One tier per pretix product, its capacity what it has listed; every
/// ticket's product among them.
fn tiers(input: &Input, tickets: &[TicketEntry], currency: &str) -> Result<Vec<Tier>, ImportError> {
    let mut per_item: HashMap<TierId, u32> = HashMap::new();
    for t in tickets.iter().filter(|t| t.status != TicketStatus::Cancelled) {
        *per_item.entry(t.tier.clone()).or_default() += 1;
    }
    let mut tiers: BTreeMap<i64, Tier> = BTreeMap::new();
    for it in &input.items {
        let Some(id) = it["id"].as_i64() else { continue };
        let tier = item_tier(id);
        let price = minor(&it["default_price"], currency).map_err(|why| {
            ImportError::Setup(format!(
                "pretix product {id} ({}) has no price the box can read: {why}",
                text(&it["name"])
            ))
        })?;
        tiers.insert(
            id,
            Tier {
                capacity: per_item.get(&tier).copied().unwrap_or(0),
                id: tier,
                name: text(&it["name"]),
                price_minor: price,
                checkin_note: note(it),
                escrow: None,
            },
        );
    }
    let tier_ids: HashSet<TierId> = tiers.values().map(|t| t.id.clone()).collect();
    if let Some(t) = tickets.iter().find(|t| !tier_ids.contains(&t.tier)) {
        return Err(ImportError::Setup(format!(
            "a ticket of product {} is not among the event's products: import again",
            t.tier
        )));
    }
    Ok(tiers.into_values().collect())
}

/// A gate per check-in list: the lists asked for, else every list (of
/// this date); at least one.
fn gates(
    input: &Input,
    tier_ids: &HashSet<TierId>,
    date_id: Option<i64>,
) -> Result<Vec<(i64, Gate)>, ImportError> {
    let mut gates = Vec::new();
    let known: Vec<String> = input
        .lists
        .iter()
        .map(|l| format!("{} ({})", l["id"].as_i64().unwrap_or_default(), text(&l["name"])))
        .collect();
    match &input.wanted {
        Some(wanted) => {
            for id in wanted {
                let l = input.lists.iter().find(|l| l["id"].as_i64() == Some(*id)).ok_or_else(
                    || {
                        ImportError::Setup(format!(
                            "event '{}' has no check-in list {id}; its lists are: {}",
                            input.event_slug,
                            if known.is_empty() { "none".to_string() } else { known.join(", ") }
                        ))
                    },
                )?;
                gates.push(list_gate(l, tier_ids, date_id)?);
            }
        }
        None => {
            for l in input.lists.iter().filter(|l| for_date(l, date_id)) {
                gates.push(list_gate(l, tier_ids, date_id)?);
            }
        }
    }
    if gates.is_empty() {
        return Err(ImportError::Setup(format!(
            "event '{}' has no check-in list: create one in pretix (the event's Check-in section)",
            input.event_slug
        )));
    }
    Ok(gates)
}

/// Blocked tickets (by position, and by secret from pretix's blocklist)
/// and revoked secrets, each sorted and once.
fn blocked_and_revoked(
    input: &Input,
    tickets: &[TicketEntry],
    mut blocked: Vec<TicketId>,
) -> (Vec<TicketId>, Vec<String>) {
    let secret_ids: HashMap<&str, &TicketId> =
        tickets.iter().filter_map(|t| t.secret.as_deref().map(|s| (s, &t.id))).collect();
    for b in &input.blocked {
        if b["blocked"].as_bool() != Some(true) {
            continue;
        }
        let Some(secret) = b["secret"].as_str() else { continue };
        match secret_ids.get(secret) {
            Some(id) => blocked.push((*id).clone()),
            None => {
                if let Ok(t) = pretix::parse_sig1(secret, &input.verifying) {
                    blocked.push(pretix::signed_ticket_id(&t.seed));
                }
            }
        }
    }
    blocked.sort();
    blocked.dedup();
    let mut revoked: Vec<String> =
        input.revoked.iter().filter_map(|r| r["secret"].as_str().map(str::to_string)).collect();
    revoked.sort();
    revoked.dedup();
    (blocked, revoked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(lists: Vec<Value>, orders: Vec<Value>) -> Input {
        let stored = orders.iter().map(|o| order_tickets(o, &[]).unwrap()).collect();
        Input {
            subevent: None,
            base_url: "https://pretix.example".into(),
            organizer: "venue".into(),
            event_slug: "night".into(),
            event: json!({"name": {"en": "Night"}, "currency": "EUR", "date_from": "2026-12-01T19:00:00+01:00",
                          "date_to": null, "date_admission": "2026-12-01T18:00:00Z", "has_subevents": false,
                          "timezone": "Europe/Berlin", "valid_keys": {"pretix_sig1": []}}),
            items: vec![
                json!({"id": 7, "name": {"en": "GA"}, "default_price": "25.00"}),
                json!({"id": 8, "name": {"en": "VIP"}, "default_price": "90.5"}),
            ],
            questions: vec![],
            lists,
            wanted: None,
            orders: stored,
            revoked: vec![json!({"secret": "old-secret-123"})],
            blocked: vec![json!({"secret": "blockedsecret99", "blocked": true})],
            keys: vec![],
            verifying: vec![],
            organiser_key: crate::domain::keys::public_key_to_base64(
                &crate::domain::keys::signing_key_from_bytes([3; 32]).verifying_key(),
            ),
        }
    }

    fn order(code: &str, status: &str, positions: Value) -> Value {
        json!({"code": code, "status": status, "last_modified": "2026-11-30T10:00:00Z", "positions": positions})
    }

    #[test]
    fn items_lists_and_positions_become_tiers_gates_and_tickets() {
        let lists = vec![
            json!({"id": 1, "name": "Main", "all_products": true, "limit_products": [], "subevent": null,
                   "include_pending": false, "allow_multiple_entries": false, "allow_entry_after_exit": true, "rules": {}}),
            json!({"id": 2, "name": "VIP door", "all_products": false, "limit_products": [8], "subevent": null,
                   "include_pending": true, "allow_multiple_entries": true, "allow_entry_after_exit": false, "rules": {}}),
        ];
        let orders = vec![
            order(
                "ABC12",
                "p",
                json!([
                    {"id": 11, "item": 7, "variation": null, "secret": "secretsecret0011", "attendee_name": "Ana", "canceled": false, "blocked": null},
                    {"id": 12, "item": 8, "variation": 3, "secret": "blockedsecret99", "attendee_name": "", "canceled": true, "blocked": null},
                ]),
            ),
            order(
                "DEF34",
                "n",
                json!([{"id": 13, "item": 8, "secret": "secretsecret0013", "attendee_name": "Bo", "blocked": ["admin"],
                                        "valid_until": "2026-12-02T03:00:00Z"}]),
            ),
            order("GHI56", "c", json!([{"id": 14, "item": 7, "secret": "secretsecret0014"}])),
        ];
        let staff = vec![StaffEntry {
            name: "Dana".into(),
            role: crate::domain::role::Role::Door,
            pin_hash: crate::organiser::demo::hash_pin("1111"),
        }];
        let m = build(&input(lists, orders), staff, None).unwrap();
        assert_eq!(m.event.id.as_str(), "pretix-venue-night");
        assert_eq!(m.event.starts_at, "2026-12-01T18:00:00Z");
        assert_eq!(m.event.ends_at, "2026-12-02T18:00:00Z", "no end date: a day after the start");
        let tiers: Vec<_> =
            m.tiers.iter().map(|t| (t.id.as_str(), t.price_minor, t.capacity)).collect();
        assert_eq!(
            tiers,
            [("px7", 2500, 1), ("px8", 9050, 1)],
            "capacity: the tier's tickets not cancelled"
        );
        let gate = &m.gates[1];
        assert_eq!(
            (
                gate.id.as_str(),
                gate.tiers.len(),
                gate.reentry,
                gate.multiple_entries,
                gate.admit_unpaid
            ),
            ("pretix-2", 1, false, true, true)
        );
        assert!(m.gates[0].tiers.is_empty() && m.gates[0].reentry);
        let t: Vec<_> =
            m.tickets.iter().map(|t| (t.id.as_str(), t.status, t.holder.as_deref())).collect();
        assert_eq!(
            t,
            [
                ("pxp-11", TicketStatus::Paid, Some("Ana")),
                ("pxp-12", TicketStatus::Cancelled, None),
                ("pxp-13", TicketStatus::Unpaid, Some("Bo")),
                ("pxp-14", TicketStatus::Cancelled, None)
            ]
        );
        assert_eq!(
            m.blocked_tickets,
            [TicketId::from("pxp-12"), TicketId::from("pxp-13")],
            "blocked by position and by secret"
        );
        assert_eq!(m.revoked_codes, ["old-secret-123"]);
        assert_eq!(
            m.pretix.as_ref().unwrap().lists,
            [
                PretixList { id: 1, gate: "pretix-1".into() },
                PretixList { id: 2, gate: "pretix-2".into() }
            ]
        );
    }

    #[test]
    fn an_order_awaiting_approval_is_unapproved_whatever_it_admits_pending() {
        let o = json!({"code": "APR01", "status": "n", "require_approval": true, "valid_if_pending": true,
                       "last_modified": "2026-11-30T10:00:00Z", "positions": [{"id": 1, "item": 7, "secret": "s3cretsecret0001"}]});
        let stored = order_tickets(&o, &[]).unwrap();
        let p: Vec<StoredPosition> = serde_json::from_str(&stored.positions).unwrap();
        assert_eq!(p[0].ticket.status, TicketStatus::Unapproved);
    }

    #[test]
    fn the_next_import_starts_before_this_one_began_on_pretixs_clock() {
        let began = parse_rfc3339("2026-12-03T20:00:00Z").unwrap();
        assert_eq!(next_cursor(Some(began)).as_deref(), Some("2026-12-03T19:58:00Z"));
        assert_eq!(next_cursor(None), None, "no Date header: the cursor stays where it was");
    }

    #[test]
    fn what_the_box_cannot_run_is_refused_with_what_to_do() {
        let staff = Vec::new();
        let with_rules = json!({"id": 5, "name": "Rules", "all_products": true, "subevent": null,
                                "rules": {"and": [{"plugin_op": [1]}]}});
        let e =
            build(&input(vec![with_rules], vec![]), staff.clone(), None).unwrap_err().to_string();
        assert!(
            e.contains("custom check-in rules") && e.contains("plugin_op") && e.contains("--list"),
            "{e}"
        );
        let empty = json!({"id": 6, "name": "Nobody", "all_products": false, "limit_products": [], "subevent": null, "rules": {}});
        let e = build(&input(vec![empty], vec![]), staff.clone(), None).unwrap_err().to_string();
        assert!(e.contains("admits no product"), "{e}");
        let e = build(&input(vec![], vec![]), staff.clone(), None).unwrap_err().to_string();
        assert!(e.contains("has no check-in list"), "{e}");
        let mut i = input(
            vec![
                json!({"id": 1, "name": "Main", "all_products": true, "subevent": null, "rules": {}}),
            ],
            vec![],
        );
        i.wanted = Some(vec![9]);
        let e = build(&i, staff, None).unwrap_err().to_string();
        assert!(e.contains("no check-in list 9") && e.contains("1 (Main)"), "{e}");
        assert_eq!(minor(&json!("12.3"), "EUR"), Ok(1230));
        assert_eq!(minor(&json!("1200"), "JPY"), Ok(1200));
        assert_eq!(minor(&json!("25.00"), "EUR"), Ok(2500));
        for bad in [json!("twelve"), json!("-5.00"), json!("1.005"), json!(null), json!(".5")] {
            assert!(minor(&bad, "EUR").is_err(), "{bad} is no price");
        }
    }
}
