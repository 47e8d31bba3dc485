//! Drop rules: a drop's phase at a given time, how much of a product a
//! buyer may take (stock on hand, minus what others hold, minus what the
//! reserve keeps back for someone else), and the per-attendee limit.

use super::error_code::ErrorCode;
use super::time::Millis;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Upcoming,
    Live,
    SoldOut,
    Closed,
}

/// The phase of a drop that opens at `opens`, closes at `closes`, and has
/// `available` units left across its products.
pub fn phase(opens: Millis, closes: Millis, now: Millis, available: i64) -> Phase {
    if now < opens {
        Phase::Upcoming
    } else if now >= closes {
        Phase::Closed
    } else if available <= 0 {
        Phase::SoldOut
    } else {
        Phase::Live
    }
}

/// Stock of one product of one drop, as the store counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Stock {
    /// Sum of the inventory ledger.
    pub on_hand: i64,
    /// Units in unexpired cart holds.
    pub held: i64,
    /// Units the reserve still keeps back (0 after its release time).
    pub reserved_left: i64,
}

impl Stock {
    /// Units a buyer may still take: reserve holders may take everything
    /// not held; everyone else only what the reserve does not keep back.
    pub fn available(&self, eligible_for_reserve: bool) -> i64 {
        let free = self.on_hand - self.held;
        if eligible_for_reserve { free } else { free - self.reserved_left }.max(0)
    }
}

/// Units of the reserve still held back: its size minus what eligible
/// buyers already took (held or bought), until `release_at`.
pub fn reserved_left(
    reserve_qty: u32,
    release_at: Millis,
    now: Millis,
    taken_by_eligible: i64,
) -> i64 {
    if now >= release_at {
        0
    } else {
        (reserve_qty as i64 - taken_by_eligible).max(0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum HoldRefusal {
    #[error("the drop has not opened yet")]
    NotOpenYet,
    #[error("the drop has closed")]
    Closed,
    #[error("product {sku} is not in this drop")]
    UnknownProduct { sku: String },
    #[error("only {available} of {sku} left")]
    NotEnoughStock { sku: String, available: i64 },
    #[error("this drop allows {limit} per attendee, and this ticket already has {already}")]
    AttendeeLimit { limit: u32, already: i64 },
    #[error("this drop has a per-attendee limit or a reserve: scan the buyer's ticket first")]
    AttendeeRequired,
    #[error("a hold needs at least one product with a quantity of 1 or more")]
    Empty,
}

impl HoldRefusal {
    pub fn code(&self) -> ErrorCode {
        match self {
            HoldRefusal::NotOpenYet => ErrorCode::NotOpenYet,
            HoldRefusal::Closed => ErrorCode::Closed,
            HoldRefusal::UnknownProduct { .. } => ErrorCode::UnknownProduct,
            HoldRefusal::NotEnoughStock { .. } => ErrorCode::SoldOut,
            HoldRefusal::AttendeeLimit { .. } => ErrorCode::AttendeeLimit,
            HoldRefusal::AttendeeRequired => ErrorCode::AttendeeRequired,
            HoldRefusal::Empty => ErrorCode::Empty,
        }
    }
}

/// Whether the drop's time window allows selling now.
pub fn check_open(opens: Millis, closes: Millis, now: Millis) -> Result<(), HoldRefusal> {
    match phase(opens, closes, now, 1) {
        Phase::Upcoming => Err(HoldRefusal::NotOpenYet),
        Phase::Closed => Err(HoldRefusal::Closed),
        _ => Ok(()),
    }
}

/// Whether an attendee who already has `already` units may take `more`.
pub fn check_attendee_limit(
    limit: Option<u32>,
    already: i64,
    more: i64,
) -> Result<(), HoldRefusal> {
    match limit {
        Some(l) if already + more > l as i64 => {
            Err(HoldRefusal::AttendeeLimit { limit: l, already })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_table() {
        let cases = [
            (5, 1, Phase::Upcoming),
            (10, 1, Phase::Live),
            (15, 0, Phase::SoldOut),
            (20, 0, Phase::Closed),
            (25, 3, Phase::Closed),
        ];
        for (now, available, want) in cases {
            assert_eq!(phase(10, 20, now, available), want, "now={now} available={available}");
        }
    }

    #[test]
    fn availability_table() {
        // (on_hand, held, reserved_left, eligible, available)
        let cases = [
            (10, 0, 0, false, 10),
            (10, 3, 0, false, 7),
            (10, 3, 4, false, 3),
            (10, 3, 4, true, 7),
            (5, 3, 4, false, 0),
            (2, 3, 0, true, 0),
        ];
        for (on_hand, held, reserved, eligible, want) in cases {
            let s = Stock { on_hand, held, reserved_left: reserved };
            assert_eq!(s.available(eligible), want, "{s:?} eligible={eligible}");
        }
    }

    #[test]
    fn reserve_shrinks_as_eligible_buyers_take_it_and_ends_at_release() {
        assert_eq!(reserved_left(5, 100, 50, 0), 5);
        assert_eq!(reserved_left(5, 100, 50, 2), 3);
        assert_eq!(reserved_left(5, 100, 50, 9), 0);
        assert_eq!(reserved_left(5, 100, 100, 0), 0);
    }

    #[test]
    fn attendee_limit_table() {
        assert!(check_attendee_limit(None, 99, 1).is_ok());
        assert!(check_attendee_limit(Some(2), 0, 2).is_ok());
        assert!(check_attendee_limit(Some(2), 1, 1).is_ok());
        assert_eq!(
            check_attendee_limit(Some(2), 1, 2),
            Err(HoldRefusal::AttendeeLimit { limit: 2, already: 1 })
        );
        assert_eq!(check_open(10, 20, 9), Err(HoldRefusal::NotOpenYet));
        assert_eq!(check_open(10, 20, 20), Err(HoldRefusal::Closed));
        assert!(check_open(10, 20, 19).is_ok());
    }
}
