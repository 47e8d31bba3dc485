//! Microscholarship rules: the price a claim code gives, and whether a
//! claim may go ahead given how many seats the program and the code have
//! already used.

use super::error_code::ErrorCode;
use super::ids::TierId;
use super::manifest::{ClaimCode, Discount, ScholarshipProgram};
use super::time::{parse_rfc3339, Millis};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum ClaimRefusal {
    #[error("this scholarship code is not known: check the spelling, or sell a regular ticket")]
    UnknownCode,
    #[error("this code has been used as often as it may be")]
    CodeUsedUp,
    #[error("every seat of this scholarship program is taken")]
    ProgramFull,
    #[error("this scholarship cannot be claimed yet")]
    NotValidYet,
    #[error("this scholarship has expired")]
    Expired,
    #[error("this code is for another tier")]
    WrongTier,
    #[error("the tier is sold out")]
    TierSoldOut,
}

impl ClaimRefusal {
    pub fn code(self) -> ErrorCode {
        match self {
            ClaimRefusal::UnknownCode => ErrorCode::UnknownCode,
            ClaimRefusal::CodeUsedUp => ErrorCode::CodeUsedUp,
            ClaimRefusal::ProgramFull => ErrorCode::ProgramFull,
            ClaimRefusal::NotValidYet => ErrorCode::NotValidYet,
            ClaimRefusal::Expired => ErrorCode::Expired,
            ClaimRefusal::WrongTier => ErrorCode::WrongTier,
            ClaimRefusal::TierSoldOut => ErrorCode::TierSoldOut,
        }
    }
}

/// The price of a seat after the program's discount (never below zero;
/// percentages round in the buyer's favour).
pub fn discounted(price_minor: i64, discount: Discount) -> i64 {
    match discount {
        Discount::Full => 0,
        Discount::Amount { minor } => (price_minor - minor).max(0),
        Discount::Percent { percent } => price_minor * (100 - percent.min(100) as i64) / 100,
    }
}

/// Whether a claim may go ahead now.
pub fn check_claim(
    program: &ScholarshipProgram,
    code: &ClaimCode,
    requested_tier: Option<&TierId>,
    now: Millis,
    program_used: u32,
    code_used: u32,
) -> Result<(), ClaimRefusal> {
    if requested_tier.is_some_and(|t| *t != program.tier) {
        return Err(ClaimRefusal::WrongTier);
    }
    let at = |t: &Option<String>| t.as_deref().and_then(|s| parse_rfc3339(s).ok());
    if at(&program.valid_from).is_some_and(|from| now < from) {
        return Err(ClaimRefusal::NotValidYet);
    }
    if at(&program.valid_until).is_some_and(|until| now > until) {
        return Err(ClaimRefusal::Expired);
    }
    if code_used >= code.cap {
        return Err(ClaimRefusal::CodeUsedUp);
    }
    if program_used >= program.seats {
        return Err(ClaimRefusal::ProgramFull);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::manifest::{Funder, FunderKind};

    fn program() -> ScholarshipProgram {
        ScholarshipProgram {
            id: "p".into(),
            name: "P".into(),
            funder: Funder { kind: FunderKind::Sponsor, creator: None, name: "Acme".into() },
            tier: TierId::from("ga"),
            seats: 2,
            discount: Discount::Full,
            valid_from: Some("2026-11-27T10:00:00Z".into()),
            valid_until: Some("2026-11-27T20:00:00Z".into()),
            codes: vec![],
            escrow: None,
        }
    }

    #[test]
    fn discounts_never_go_below_zero_and_favour_the_buyer() {
        assert_eq!(discounted(2500, Discount::Full), 0);
        assert_eq!(discounted(2500, Discount::Amount { minor: 1000 }), 1500);
        assert_eq!(discounted(2500, Discount::Amount { minor: 9000 }), 0);
        assert_eq!(discounted(2500, Discount::Percent { percent: 50 }), 1250);
        assert_eq!(
            discounted(999, Discount::Percent { percent: 50 }),
            499,
            "half a cent goes to the buyer"
        );
        assert_eq!(discounted(999, Discount::Percent { percent: 0 }), 999);
    }

    #[test]
    fn claim_table() {
        use ClaimRefusal::*;
        let p = program();
        let code = ClaimCode { code: "C".into(), creator: "cr".into(), cap: 1 };
        let noon = parse_rfc3339("2026-11-27T12:00:00Z").unwrap();
        let ga = TierId::from("ga");
        let vip = TierId::from("vip");
        type Case<'a> = (&'a str, Option<&'a TierId>, Millis, u32, u32, Result<(), ClaimRefusal>);
        let cases: Vec<Case> = vec![
            ("first claim", None, noon, 0, 0, Ok(())),
            ("right tier named", Some(&ga), noon, 0, 0, Ok(())),
            ("wrong tier", Some(&vip), noon, 0, 0, Err(WrongTier)),
            ("too early", None, noon - 3 * 3_600_000, 0, 0, Err(NotValidYet)),
            ("too late", None, noon + 9 * 3_600_000, 0, 0, Err(Expired)),
            ("code used up", None, noon, 1, 1, Err(CodeUsedUp)),
            ("program full", None, noon, 2, 0, Err(ProgramFull)),
        ];
        for (name, tier, now, program_used, code_used, want) in cases {
            assert_eq!(check_claim(&p, &code, tier, now, program_used, code_used), want, "{name}");
        }
    }
}
