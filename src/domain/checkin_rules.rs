//! pretix's custom check-in rules, decided offline as pretix (and its
//! offline scanners, through libpretixsync) decide them. A rule is JSON
//! logic over the scan's facts: the product and variation, the time, and
//! the ticket's entries *on this check-in list* (how many, today, on how
//! many days, minutes since the first and last). datalogic-rs evaluates
//! the standard operators; pretix's own are added here:
//!
//! - `objectList` (its arguments as a list) and `lookup` (`["product",
//!   "12", "name"]` → 12): how the rule editor writes "one of these";
//!   `inList` (whether the first is in the second).
//! - `buildTime`: `["custom", "2026-12-05T19:00:00Z"]`, `["customtime",
//!   "14:30"]` (today in the event's time zone), `["date_from"]`,
//!   `["date_to"]`, `["date_admission"]`. Times are Unix milliseconds, so
//!   `{"var": "now"}` compares with them.
//! - `isBefore`/`isAfter` (`[a, b]` or `[a, b, minutes of tolerance]`).
//! - `entries_since`/`entries_before` (entries at or after / before a time)
//!   and `entries_days_since`/`entries_days_before` (days with an entry).
//!
//! Variables: `product`, `variation`, `gate` (always null: the box has no
//! pretix gates), `now`, `now_isoweekday`, `entries_number`,
//! `entries_today`, `entries_days`, `minutes_since_last_entry` and
//! `minutes_since_first_entry` (−1 without an entry, as pretix),
//! `entry_status` (`present`/`absent`). Days and "today" are in the event's
//! time zone. A rule that fails to evaluate refuses, as pretix does.

use super::time::Millis;
use datalogic_rs::{ArenaExt, CustomOperator, DataValue, Engine, Error, Logic};
use serde_json::{json, Value};
use std::sync::{Arc, OnceLock};

/// What a rule may ask about one entry scan.
#[derive(Clone, Debug)]
pub struct RuleFacts {
    /// pretix's item id (the tier `px<item>`).
    pub product: i64,
    pub variation: Option<i64>,
    pub now: Millis,
    /// Earlier admitted entries of this ticket on this list, oldest first.
    pub entries: Vec<Millis>,
    /// Whether the ticket's last admitted scan on this list was an entry.
    pub present: bool,
    pub date_from: Millis,
    pub date_to: Millis,
    pub date_admission: Millis,
    /// The event's IANA time zone.
    pub timezone: String,
}

/// A list's rules, compiled once (when the manifest is loaded).
#[derive(Clone)]
pub struct CompiledRules(Arc<Logic>);

impl std::fmt::Debug for CompiledRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompiledRules")
    }
}

/// The engine with pretix's operators; built once.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Engine::builder()
            .add_operator("objectList", Op(object_list))
            .add_operator("lookup", Op(lookup))
            .add_operator("inList", Op(in_list))
            .add_operator("buildTime", Op(build_time))
            .add_operator("isBefore", Op(is_before))
            .add_operator("isAfter", Op(is_after))
            .add_operator("entries_since", Op(entries_since))
            .add_operator("entries_before", Op(entries_before))
            .add_operator("entries_days_since", Op(entries_days_since))
            .add_operator("entries_days_before", Op(entries_days_before))
            .build()
    })
}

/// Compiles a list's rules; an operator nobody knows is refused here,
/// when the event is imported, not at the door.
pub fn compile(rules: &Value) -> Result<CompiledRules, String> {
    check_operators(rules)?;
    engine().compile(rules).map(|l| CompiledRules(Arc::new(l))).map_err(|e| e.to_string())
}

/// pretix's rule editor writes these; anything else is a rule the box
/// would decide differently from pretix.
const KNOWN: &[&str] = &[
    "and",
    "or",
    "!",
    "!!",
    "==",
    "!=",
    "===",
    "!==",
    "<",
    "<=",
    ">",
    ">=",
    "if",
    "var",
    "objectList",
    "lookup",
    "inList",
    "buildTime",
    "isBefore",
    "isAfter",
    "entries_since",
    "entries_before",
    "entries_days_since",
    "entries_days_before",
    "+",
    "-",
    "*",
    "/",
    "%",
    "min",
    "max",
    "in",
];

const VARIABLES: &[&str] = &[
    "product",
    "variation",
    "gate",
    "now",
    "now_isoweekday",
    "entries_number",
    "entries_today",
    "entries_days",
    "minutes_since_last_entry",
    "minutes_since_first_entry",
    "entry_status",
];

fn check_operators(v: &Value) -> Result<(), String> {
    match v {
        Value::Object(m) => {
            for (k, arg) in m {
                if !KNOWN.contains(&k.as_str()) {
                    return Err(format!(
                        "the rules use '{k}', which the box cannot decide offline"
                    ));
                }
                if k == "var" {
                    let name = match arg {
                        Value::String(s) => Some(s.as_str()),
                        Value::Array(a) => a.first().and_then(Value::as_str),
                        _ => None,
                    };
                    if !name.is_some_and(|n| VARIABLES.contains(&n)) {
                        return Err(format!(
                            "the rules ask for {arg}, which the box does not know"
                        ));
                    }
                }
                check_operators(arg)?;
            }
            Ok(())
        }
        Value::Array(a) => a.iter().try_for_each(check_operators),
        _ => Ok(()),
    }
}

/// Whether the rules let this entry in. An error (a value of the wrong
/// kind, say) refuses, as pretix does.
pub fn allows(rules: &CompiledRules, facts: &RuleFacts) -> Result<bool, String> {
    let data = data(facts);
    let arena = datalogic_rs::bumpalo::Bump::new();
    let out = engine().evaluate(&rules.0, &data, &arena).map_err(|e| e.to_string())?;
    Ok(truthy(out))
}

/// JSON logic's truth: not false, null, 0, "" or [].
fn truthy(v: &DataValue<'_>) -> bool {
    match v {
        DataValue::Null => false,
        DataValue::Bool(b) => *b,
        DataValue::String(s) => !s.is_empty(),
        DataValue::Array(a) => !a.is_empty(),
        DataValue::Object(_) => true,
        other => other.as_f64().is_some_and(|f| f != 0.0),
    }
}

fn zone(tz: &str) -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get(tz).unwrap_or(jiff::tz::TimeZone::UTC)
}

/// The day (in `tz`) of a time, as a number that orders and compares.
fn day_of(ms: Millis, tz: &jiff::tz::TimeZone) -> i64 {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            let d = t.to_zoned(tz.clone()).date();
            i64::from(d.year()) * 10_000 + i64::from(d.month()) * 100 + i64::from(d.day())
        })
        .unwrap_or(0)
}

/// The facts as the rule reads them; `__` values feed pretix's operators.
fn data(f: &RuleFacts) -> Value {
    let tz = zone(&f.timezone);
    let today = day_of(f.now, &tz);
    let days: Vec<i64> = f.entries.iter().map(|e| day_of(*e, &tz)).collect();
    let mut distinct = days.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let minutes = |t: Option<&Millis>| t.map_or(-1, |t| (f.now - t).div_euclid(60_000));
    let now_z = jiff::Timestamp::from_millisecond(f.now).map(|t| t.to_zoned(tz.clone())).ok();
    json!({
        "product": f.product,
        "variation": f.variation,
        "gate": null,
        "now": f.now,
        "now_isoweekday": now_z.as_ref().map_or(1, |z| z.weekday().to_monday_one_offset()),
        "entries_number": f.entries.len(),
        "entries_today": days.iter().filter(|d| **d == today).count(),
        "entries_days": distinct.len(),
        "minutes_since_last_entry": minutes(f.entries.last()),
        "minutes_since_first_entry": minutes(f.entries.first()),
        "entry_status": if f.present { "present" } else { "absent" },
        "__entries": f.entries,
        "__entry_days": days,
        "__today": now_z.as_ref().map(|z| z.date().to_string()),
        "__tz": f.timezone,
        "__date_from": f.date_from,
        "__date_to": f.date_to,
        "__date_admission": f.date_admission,
    })
}

fn bad(msg: impl Into<String>) -> Error {
    Error::custom_message(msg.into())
}

fn number(v: &DataValue<'_>) -> Option<f64> {
    v.as_f64().or_else(|| match v {
        DataValue::String(s) => s.parse().ok(),
        _ => None,
    })
}

/// A value of the rule's input (the `__` ones).
fn input<'a>(root: &'a DataValue<'a>, key: &str) -> &'a DataValue<'a> {
    match root {
        DataValue::Object(pairs) => {
            pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| v).unwrap_or(&DataValue::Null)
        }
        _ => &DataValue::Null,
    }
}

type Bump = datalogic_rs::bumpalo::Bump;
type Out<'a> = datalogic_rs::Result<&'a DataValue<'a>>;
/// One of pretix's operators: its evaluated arguments, the rule's input.
type OpFn = for<'a> fn(&[&'a DataValue<'a>], &'a DataValue<'a>, &'a Bump) -> Out<'a>;

/// A plain function as a datalogic operator.
struct Op(OpFn);

impl CustomOperator for Op {
    fn evaluate<'a>(
        &self,
        args: &[&'a DataValue<'a>],
        ctx: &mut datalogic_rs::operator::EvalContext<'_, 'a>,
        arena: &'a Bump,
    ) -> Out<'a> {
        (self.0)(args, ctx.root_input(), arena)
    }
}

fn arg(args: &[&DataValue<'_>], i: usize) -> Option<f64> {
    args.get(i).and_then(|v| number(v))
}

fn object_list<'a>(args: &[&'a DataValue<'a>], _: &'a DataValue<'a>, arena: &'a Bump) -> Out<'a> {
    let items: Vec<DataValue<'a>> = args.iter().map(|a| **a).collect();
    Ok(arena.array(&items))
}

fn lookup<'a>(args: &[&'a DataValue<'a>], _: &'a DataValue<'a>, arena: &'a Bump) -> Out<'a> {
    let pk = arg(args, 1).ok_or_else(|| bad("lookup needs an id"))?;
    Ok(arena.i64(pk as i64))
}

fn in_list<'a>(args: &[&'a DataValue<'a>], _: &'a DataValue<'a>, arena: &'a Bump) -> Out<'a> {
    let (Some(a), Some(DataValue::Array(list))) = (args.first(), args.get(1)) else {
        return Ok(arena.bool(false));
    };
    let found = list.iter().any(|b| match (number(a), number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => **a == *b,
    });
    Ok(arena.bool(found))
}

fn build_time<'a>(args: &[&'a DataValue<'a>], root: &'a DataValue<'a>, arena: &'a Bump) -> Out<'a> {
    let kind = args.first().and_then(|v| v.as_str()).unwrap_or_default();
    let value = args.get(1).and_then(|v| v.as_str()).unwrap_or_default();
    let ms = match kind {
        "custom" => super::time::parse_rfc3339(value).map_err(bad)?,
        "customtime" => {
            let today = input(root, "__today").as_str().ok_or_else(|| bad("no date"))?;
            let tz = zone(input(root, "__tz").as_str().unwrap_or("UTC"));
            let time: jiff::civil::Time =
                value.parse().map_err(|e| bad(format!("customtime '{value}': {e}")))?;
            let date: jiff::civil::Date = today.parse().map_err(|e| bad(format!("{e}")))?;
            date.to_datetime(time)
                .to_zoned(tz)
                .map_err(|e| bad(e.to_string()))?
                .timestamp()
                .as_millisecond()
        }
        "date_from" | "date_to" | "date_admission" => {
            number(input(root, &format!("__{kind}"))).ok_or_else(|| bad("no event time"))? as Millis
        }
        other => return Err(bad(format!("buildTime '{other}'"))),
    };
    Ok(arena.i64(ms))
}

/// Whether `t1` is before `t2`, with a tolerance in minutes.
fn before<'a>(t1: f64, t2: f64, args: &[&'a DataValue<'a>], arena: &'a Bump) -> Out<'a> {
    let tolerance = arg(args, 2).unwrap_or(0.0) * 60_000.0;
    Ok(arena.bool(t1 < t2 + tolerance))
}

fn two_times(args: &[&DataValue<'_>]) -> datalogic_rs::Result<(f64, f64)> {
    match (arg(args, 0), arg(args, 1)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(bad("isBefore/isAfter compare two times")),
    }
}

fn is_before<'a>(args: &[&'a DataValue<'a>], _: &'a DataValue<'a>, arena: &'a Bump) -> Out<'a> {
    let (a, b) = two_times(args)?;
    before(a, b, args, arena)
}

fn is_after<'a>(args: &[&'a DataValue<'a>], _: &'a DataValue<'a>, arena: &'a Bump) -> Out<'a> {
    let (a, b) = two_times(args)?;
    before(b, a, args, arena)
}

/// Entries at or after (`since`) or before the time given, or the days
/// with one (`days`).
fn entries<'a>(
    args: &[&'a DataValue<'a>],
    root: &'a DataValue<'a>,
    arena: &'a Bump,
    since: bool,
    days: bool,
) -> Out<'a> {
    let cutoff = arg(args, 0).ok_or_else(|| bad("a time"))?;
    let (DataValue::Array(times), DataValue::Array(day)) =
        (input(root, "__entries"), input(root, "__entry_days"))
    else {
        return Err(bad("no entries"));
    };
    let mut picked: Vec<i64> = times
        .iter()
        .zip(day.iter())
        .filter(|(t, _)| (number(t).unwrap_or(0.0) >= cutoff) == since)
        .map(|(_, d)| number(d).unwrap_or(0.0) as i64)
        .collect();
    if days {
        picked.sort_unstable();
        picked.dedup();
    }
    Ok(arena.i64(picked.len() as i64))
}

fn entries_since<'a>(
    args: &[&'a DataValue<'a>],
    root: &'a DataValue<'a>,
    arena: &'a Bump,
) -> Out<'a> {
    entries(args, root, arena, true, false)
}

fn entries_before<'a>(
    args: &[&'a DataValue<'a>],
    root: &'a DataValue<'a>,
    arena: &'a Bump,
) -> Out<'a> {
    entries(args, root, arena, false, false)
}

fn entries_days_since<'a>(
    args: &[&'a DataValue<'a>],
    root: &'a DataValue<'a>,
    arena: &'a Bump,
) -> Out<'a> {
    entries(args, root, arena, true, true)
}

fn entries_days_before<'a>(
    args: &[&'a DataValue<'a>],
    root: &'a DataValue<'a>,
    arena: &'a Bump,
) -> Out<'a> {
    entries(args, root, arena, false, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::parse_rfc3339;

    const MIN: Millis = 60_000;

    fn t(s: &str) -> Millis {
        parse_rfc3339(s).unwrap()
    }

    fn facts(now: &str, entries: &[&str]) -> RuleFacts {
        RuleFacts {
            product: 12,
            variation: None,
            now: t(now),
            entries: entries.iter().map(|e| t(e)).collect(),
            present: !entries.is_empty(),
            date_from: t("2026-12-05T19:00:00Z"),
            date_to: t("2026-12-05T23:00:00Z"),
            date_admission: t("2026-12-05T18:00:00Z"),
            timezone: "Europe/Berlin".into(),
        }
    }

    fn check(rule: Value, f: &RuleFacts) -> bool {
        allows(&compile(&rule).unwrap_or_else(|e| panic!("{rule}: {e}")), f)
            .unwrap_or_else(|e| panic!("{rule}: {e}"))
    }

    #[test]
    fn products_and_variations_as_the_rule_editor_writes_them() {
        // pretix docs: "only allow product 12 or 13".
        let rule = json!({"inList": [{"var": "product"}, {"objectList": [
            {"lookup": ["product", "12", "Day pass"]}, {"lookup": ["product", "13", "VIP"]}]}]});
        let mut f = facts("2026-12-05T19:00:00Z", &[]);
        assert!(check(rule.clone(), &f));
        f.product = 14;
        assert!(!check(rule, &f));
        let rule = json!({"inList": [{"var": "variation"}, {"objectList": [{"lookup": ["variation", "3", "Balcony"]}]}]});
        f.variation = Some(3);
        assert!(check(rule.clone(), &f));
        f.variation = None;
        assert!(!check(rule, &f), "no variation is in no list");
    }

    #[test]
    fn entry_counts_are_per_list_today_and_per_day_in_the_event_zone() {
        // pretix docs: "at most one entry per day" and "at most 3 entries".
        let per_day = json!({"<": [{"var": "entries_today"}, 1]});
        let total = json!({"<": [{"var": "entries_number"}, 3]});
        let days = json!({"<": [{"var": "entries_days"}, 2]});
        // 23:30 UTC is already the next day in Berlin.
        let f = facts("2026-12-06T10:00:00Z", &["2026-12-05T20:00:00Z", "2026-12-05T23:30:00Z"]);
        assert!(!check(per_day.clone(), &f), "an entry at 00:30 Berlin time is today's");
        assert!(check(total.clone(), &f));
        assert!(!check(days.clone(), &f), "two Berlin days already");
        let f = facts("2026-12-06T10:00:00Z", &["2026-12-05T20:00:00Z"]);
        assert!(check(per_day, &f) && check(days, &f));
        let f = facts("2026-12-06T10:00:00Z", &["2026-12-05T20:00:00Z"; 3]);
        assert!(!check(total, &f));
    }

    #[test]
    fn minutes_since_the_first_and_last_entry_are_minus_one_without_one() {
        // pretix docs: "re-entry only after 60 minutes".
        let rule = json!({"or": [{">": [{"var": "minutes_since_last_entry"}, 59]},
                                 {"==": [{"var": "minutes_since_last_entry"}, -1]}]});
        assert!(check(rule.clone(), &facts("2026-12-05T20:00:00Z", &[])));
        assert!(!check(rule.clone(), &facts("2026-12-05T20:30:00Z", &["2026-12-05T20:00:00Z"])));
        assert!(check(rule, &facts("2026-12-05T21:00:00Z", &["2026-12-05T20:00:00Z"])));
        let first = json!({"<": [{"var": "minutes_since_first_entry"}, 120]});
        let f = facts("2026-12-05T22:30:00Z", &["2026-12-05T20:00:00Z", "2026-12-05T22:00:00Z"]);
        assert!(!check(first, &f), "150 minutes since the first");
        let d = data(&f);
        assert_eq!(
            (&d["minutes_since_first_entry"], &d["minutes_since_last_entry"]),
            (&json!(150), &json!(30))
        );
    }

    #[test]
    fn times_are_built_from_the_event_a_fixed_time_or_todays_time() {
        // pretix docs: "not before admission, with 10 minutes of tolerance".
        let rule = json!({"isAfter": [{"var": "now"}, {"buildTime": ["date_admission"]}, 10]});
        assert!(check(rule.clone(), &facts("2026-12-05T17:55:00Z", &[])), "within the tolerance");
        assert!(!check(rule, &facts("2026-12-05T17:45:00Z", &[])));
        let rule = json!({"isBefore": [{"var": "now"}, {"buildTime": ["custom", "2026-12-05T21:00:00.000Z"]}]});
        assert!(check(rule.clone(), &facts("2026-12-05T20:59:00Z", &[])));
        assert!(!check(rule, &facts("2026-12-05T21:00:00Z", &[])));
        // 14:00 in Berlin is 13:00 UTC in December.
        let rule = json!({"isAfter": [{"var": "now"}, {"buildTime": ["customtime", "14:00:00"]}]});
        assert!(!check(rule.clone(), &facts("2026-12-05T12:59:00Z", &[])));
        assert!(check(rule, &facts("2026-12-05T13:01:00Z", &[])));
        let end = json!({"isBefore": [{"var": "now"}, {"buildTime": ["date_to"]}]});
        assert!(!check(end, &facts("2026-12-05T23:01:00Z", &[])));
        let start = json!({"isAfter": [{"var": "now"}, {"buildTime": ["date_from"]}]});
        assert!(check(start, &facts("2026-12-05T19:01:00Z", &[])));
    }

    #[test]
    fn entries_and_days_since_and_before_a_time() {
        let f = facts(
            "2026-12-07T12:00:00Z",
            &["2026-12-05T20:00:00Z", "2026-12-06T20:00:00Z", "2026-12-06T21:00:00Z"],
        );
        let cut = json!({"buildTime": ["custom", "2026-12-06T00:00:00Z"]});
        let n = |op: &str, want: i64| {
            let rule = json!({"==": [{op: [cut.clone()]}, want]});
            assert!(check(rule, &f), "{op} should be {want}");
        };
        n("entries_since", 2);
        n("entries_before", 1);
        n("entries_days_since", 1);
        n("entries_days_before", 1);
        let d = data(&f);
        assert_eq!(d["entries_days"], 2);
        assert_eq!(d["entry_status"], "present");
        let weekday = json!({"==": [{"var": "now_isoweekday"}, 1]});
        assert!(check(weekday, &f), "7 December 2026 is a Monday");
        assert_eq!((f.now - f.entries[2]) / MIN, 900);
    }

    #[test]
    fn a_rule_the_box_cannot_decide_is_refused_at_import() {
        assert!(compile(&json!({"some_plugin_op": [1]})).unwrap_err().contains("some_plugin_op"));
        assert!(compile(&json!({"==": [{"var": "order_email"}, "x"]}))
            .unwrap_err()
            .contains("order_email"));
        assert!(compile(&json!({"and": [true, {"<": [{"var": "entries_number"}, 1]}]})).is_ok());
    }
}
