//! Escrow (ARCHITECTURE.md, "Satellites: escrow"): how many units of a
//! product or seats of a tier the primary lends a satellite, to sell
//! while it is cut off. The rule is set before doors; this file is the
//! arithmetic, the store keeps the units.

use serde::{Deserialize, Serialize};

/// How much a satellite holds: `share_percent` of what is left, at least
/// `min`, at most `max`; never more than what is left divided among the
/// primary and its satellites (so the main door is never sold out while a
/// satellite sits on the last units).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscrowRule {
    /// Percent (0 to 100) of what is left that each satellite holds.
    #[schemars(range(max = 100))]
    pub share_percent: u32,
    #[serde(default)]
    pub min: u32,
    pub max: u32,
}

impl EscrowRule {
    /// What is wrong with the rule, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.share_percent > 100 {
            return Some(format!("escrow share_percent {} is over 100", self.share_percent));
        }
        if self.min > self.max {
            return Some(format!("escrow min {} is over its max {}", self.min, self.max));
        }
        None
    }

    /// The units one satellite should hold when `left` units are unsold
    /// everywhere (its own escrow included) and `satellites` boxes hold
    /// escrow of it (this one included).
    pub fn target(&self, left: i64, satellites: usize) -> i64 {
        let left = left.max(0);
        let share = left * self.share_percent as i64 / 100;
        let ruled = share.clamp(self.min as i64, self.max as i64);
        ruled.min(left / (satellites as i64 + 1))
    }
}

/// What the keeper does about one satellite's escrow of one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adjust {
    /// Lend this many more units (from stock the primary sells no more).
    Grant(i64),
    /// Take this many back: they leave the satellite's units at once and
    /// come back to the primary's stock only once the satellite has
    /// acknowledged that (until then it might sell them, cut off).
    Reclaim(i64),
}

/// The step from `units` to `target`. A reclaim waits until the escrow
/// is over its target by a fifth (at least one unit), so each sale at
/// the main door does not move a unit back and forth.
pub fn adjust(units: i64, target: i64) -> Option<Adjust> {
    if units < target {
        return Some(Adjust::Grant(target - units));
    }
    let slack = (target / 5).max(1);
    (units >= target + slack || (target == 0 && units > 0)).then(|| Adjust::Reclaim(units - target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_is_a_share_kept_between_min_and_max_and_never_past_an_even_split() {
        let r = EscrowRule { share_percent: 20, min: 5, max: 40 };
        assert_eq!(r.target(100, 1), 20);
        assert_eq!(r.target(1000, 1), 40, "at most max");
        assert_eq!(r.target(20, 1), 5, "at least min");
        assert_eq!(r.target(6, 1), 3, "never more than an even split with the primary");
        assert_eq!(r.target(6, 2), 2);
        assert_eq!(r.target(1, 1), 0, "the last unit stays at the main door");
        assert_eq!(r.target(-3, 1), 0);
        let none = EscrowRule { share_percent: 0, min: 0, max: 0 };
        assert_eq!(none.target(100, 1), 0);
    }

    #[test]
    fn grants_fill_to_the_target_and_reclaims_wait_for_a_fifth_over_it() {
        assert_eq!(adjust(3, 10), Some(Adjust::Grant(7)));
        assert_eq!(adjust(10, 10), None);
        assert_eq!(adjust(11, 10), None, "one over a target of 10 stays");
        assert_eq!(adjust(12, 10), Some(Adjust::Reclaim(2)));
        assert_eq!(adjust(2, 1), Some(Adjust::Reclaim(1)));
        assert_eq!(adjust(1, 0), Some(Adjust::Reclaim(1)), "nothing left to lend: all back");
        assert_eq!(adjust(0, 0), None);
    }

    #[test]
    fn a_rule_with_min_over_max_or_a_share_over_all_is_refused() {
        assert!(EscrowRule { share_percent: 101, min: 0, max: 1 }.problem().is_some());
        assert!(EscrowRule { share_percent: 10, min: 5, max: 1 }.problem().is_some());
        assert!(EscrowRule { share_percent: 10, min: 1, max: 5 }.problem().is_none());
    }
}
