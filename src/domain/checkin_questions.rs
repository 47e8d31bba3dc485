//! Questions asked at check-in (pretix's questions flagged "ask during
//! check-in"): which ones a ticket still needs answered before it enters,
//! and each answer checked as pretix checks it, so what the door sends
//! back is what pretix would have taken at its own scanner.

use super::ids::TierId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One question, as the event lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckinQuestion {
    /// pretix's question id (answers go back under it).
    pub id: i64,
    /// The question as staff read it out.
    pub question: String,
    /// pretix's type: `S` text (one line), `T` text, `N` number, `B` yes/no,
    /// `C` one choice, `M` several choices, `D` date, `H` time, `W` date
    /// and time, `CC` country code, `TEL` phone number.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub required: bool,
    /// The tiers (pretix products) it is asked for.
    pub tiers: Vec<TierId>,
    /// For `C` and `M`: the choices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<QuestionOption>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuestionOption {
    pub id: i64,
    pub answer: String,
}

/// The types the door can ask (a file upload it cannot).
pub const KINDS: &[&str] = &["S", "T", "N", "B", "C", "M", "D", "H", "W", "CC", "TEL"];

/// The longest answer kept.
pub const MAX_ANSWER: usize = 1000;

/// The questions a ticket of `tier` must have answered before it enters:
/// those not answered already (at the order, or at an earlier scan) and
/// without a valid answer among `given`.
pub fn unanswered<'q>(
    questions: &'q [CheckinQuestion],
    tier: &TierId,
    answered: &BTreeSet<i64>,
    given: &BTreeMap<String, String>,
) -> Vec<&'q CheckinQuestion> {
    questions
        .iter()
        .filter(|q| q.tiers.contains(tier) && KINDS.contains(&q.kind.as_str()))
        .filter(|q| !answered.contains(&q.id))
        .filter(|q| given.get(&q.id.to_string()).is_none_or(|a| clean(q, a).is_err()))
        .collect()
}

/// An answer as pretix takes it (`clean_answer`): required ones not empty,
/// yes/no as `true`/`false`, choices by option id (several: comma-separated),
/// numbers, dates (`YYYY-MM-DD`) and times (`HH:MM`) that parse.
pub fn clean(q: &CheckinQuestion, answer: &str) -> Result<String, String> {
    let a = answer.trim();
    let bad = |what: &str| Err(format!("the answer to \"{}\" {what}", q.question));
    if a.len() > MAX_ANSWER {
        return bad(&format!("is longer than {MAX_ANSWER} characters"));
    }
    let yes = matches!(a, "true" | "True");
    if q.required && (a.is_empty() || (q.kind == "B" && !yes)) {
        return bad("is required");
    }
    if a.is_empty() {
        return Ok(if q.kind == "B" { "False".into() } else { String::new() });
    }
    let option = |s: &str| q.options.iter().any(|o| s.trim().parse() == Ok(o.id));
    match q.kind.as_str() {
        "B" => Ok(if yes { "True" } else { "False" }.into()),
        "C" if option(a) => Ok(a.into()),
        "C" => bad("must be one of its choices"),
        "M" if a.split(',').all(option) => Ok(a.into()),
        "M" => bad("must be among its choices"),
        "N" if a.replace(',', ".").parse::<f64>().is_ok_and(f64::is_finite) => {
            Ok(a.replace(',', "."))
        }
        "N" => bad("must be a number"),
        "D" if a.parse::<jiff::civil::Date>().is_ok() => Ok(a.into()),
        "D" => bad("must be a date such as 2026-12-05"),
        "H" if a.parse::<jiff::civil::Time>().is_ok() => Ok(a.into()),
        "H" => bad("must be a time such as 21:30"),
        "W" if super::time::parse_rfc3339(a).is_ok() => Ok(a.into()),
        "W" => bad("must be a date and time such as 2026-12-05T21:30:00Z"),
        _ => Ok(a.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(kind: &str, required: bool) -> CheckinQuestion {
        CheckinQuestion {
            id: 5,
            question: "Wristband".into(),
            kind: kind.into(),
            required,
            tiers: vec![TierId::from("px1")],
            options: vec![
                QuestionOption { id: 7, answer: "Red".into() },
                QuestionOption { id: 8, answer: "Blue".into() },
            ],
        }
    }

    #[test]
    fn answers_are_checked_as_pretix_checks_them() {
        assert!(clean(&q("S", true), " ").unwrap_err().contains("is required"));
        assert_eq!(clean(&q("S", false), "").unwrap(), "");
        assert!(clean(&q("B", true), "false").is_err(), "a required yes/no must be yes");
        assert_eq!(clean(&q("B", false), "").unwrap(), "False");
        assert_eq!(clean(&q("B", false), "true").unwrap(), "True");
        assert_eq!(clean(&q("C", true), "8").unwrap(), "8");
        assert!(clean(&q("C", true), "9").unwrap_err().contains("choices"));
        assert_eq!(clean(&q("M", true), "7,8").unwrap(), "7,8");
        assert!(clean(&q("M", true), "7,9").is_err());
        assert_eq!(clean(&q("N", true), "12,5").unwrap(), "12.5");
        assert!(clean(&q("N", true), "twelve").unwrap_err().contains("number"));
        assert!(
            clean(&q("D", true), "2026-12-05").is_ok() && clean(&q("D", true), "5.12.").is_err()
        );
        assert!(clean(&q("H", true), "21:30").is_ok() && clean(&q("H", true), "late").is_err());
        assert!(clean(&q("S", true), &"x".repeat(MAX_ANSWER + 1)).is_err());
    }

    #[test]
    fn a_ticket_is_asked_what_it_has_not_answered_for_its_tier() {
        let qs = vec![q("S", true), CheckinQuestion { id: 6, kind: "F".into(), ..q("S", true) }];
        let tier = TierId::from("px1");
        let none = BTreeMap::new();
        let ids = |v: Vec<&CheckinQuestion>| v.iter().map(|q| q.id).collect::<Vec<_>>();
        assert_eq!(
            ids(unanswered(&qs, &tier, &BTreeSet::new(), &none)),
            [5],
            "a file upload is never asked"
        );
        assert!(unanswered(&qs, &TierId::from("px2"), &BTreeSet::new(), &none).is_empty());
        assert!(
            unanswered(&qs, &tier, &BTreeSet::from([5]), &none).is_empty(),
            "answered with the order"
        );
        let given = BTreeMap::from([("5".to_string(), "W-17".to_string())]);
        assert!(unanswered(&qs, &tier, &BTreeSet::new(), &given).is_empty());
        let empty = BTreeMap::from([("5".to_string(), " ".to_string())]);
        assert_eq!(ids(unanswered(&qs, &tier, &BTreeSet::new(), &empty)), [5], "asked again");
    }
}
