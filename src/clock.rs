//! The box's clock, as a handle: the system clock in production, a
//! settable one in tests (undo windows, validity windows) so no test sleeps.
//! A Raspberry Pi has no battery clock: an admin can give the box the time
//! from a phone, and the box then keeps an offset to its system clock
//! (stored, and applied again after a restart). Records are ordered by
//! their sequence numbers, never by their times, so a corrected clock
//! cannot reorder them.

use crate::domain::time::Millis;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct Clock {
    /// Set only in tests: a fixed time that `advance` moves.
    fixed: Option<Arc<AtomicI64>>,
    /// Added to the system clock: 0 unless an admin set the time.
    offset: Arc<AtomicI64>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock::default()
    }

    pub fn fixed(at: Millis) -> Clock {
        Clock { fixed: Some(Arc::new(AtomicI64::new(at))), ..Clock::default() }
    }

    /// The box's time: the system clock plus the offset.
    pub fn now(&self) -> Millis {
        self.system_now() + self.offset()
    }

    /// The system clock alone (the fixed time in tests).
    pub fn system_now(&self) -> Millis {
        match &self.fixed {
            Some(t) => t.load(Ordering::SeqCst),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as Millis)
                .unwrap_or(0),
        }
    }

    pub fn offset(&self) -> Millis {
        self.offset.load(Ordering::SeqCst)
    }

    /// From now on, the box's time is the system clock plus `ms`.
    pub fn set_offset(&self, ms: Millis) {
        self.offset.store(ms, Ordering::SeqCst);
    }

    /// Puts a fixed clock at `at` (a box rebooted without a battery clock,
    /// in tests); does nothing to the system clock.
    pub fn set(&self, at: Millis) {
        if let Some(t) = &self.fixed {
            t.store(at, Ordering::SeqCst);
        }
    }

    /// Moves a fixed clock forward; does nothing to the system clock.
    pub fn advance(&self, ms: Millis) {
        if let Some(t) = &self.fixed {
            t.fetch_add(ms, Ordering::SeqCst);
        }
    }
}

/// How far behind its newest record the clock may be before it is called
/// wrong (two boxes' clocks, a phone's time, a few seconds of drift).
pub const CLOCK_SLACK_MS: Millis = 60_000;

/// What the box says about its own clock (`/healthz`, the dashboard, the
/// log at start).
#[derive(Clone, Debug, serde::Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct ClockReport {
    /// The box's time now.
    pub now: String,
    /// False when the clock cannot be right: it is earlier than the newest
    /// thing the box recorded (a Pi that booted without internet).
    pub plausible: bool,
    /// The newest recorded time the clock must not be before.
    pub not_before: Option<String>,
    /// "system", or "set by an admin" (the system clock plus `offset_ms`).
    pub source: &'static str,
    pub offset_ms: i64,
    /// What to do, when the clock cannot be right.
    pub advice: Option<String>,
}

impl ClockReport {
    /// Judges `clock` against `floor`, the newest time the box recorded.
    pub fn judge(clock: &Clock, floor: Option<Millis>) -> ClockReport {
        use crate::domain::time::format_rfc3339;
        let now = clock.now();
        let plausible = floor.is_none_or(|f| now + CLOCK_SLACK_MS >= f);
        ClockReport {
            now: format_rfc3339(now),
            plausible,
            not_before: floor.map(format_rfc3339),
            source: if clock.offset() == 0 { "system" } else { "set by an admin" },
            offset_ms: clock.offset(),
            advice: (!plausible).then(|| {
                format!(
                    "the box's clock says {} but it recorded things at {}: give it the time from a phone (Admin screen, or PUT /api/v1/clock), or connect it to the internet; validity windows, drops and payouts use this clock",
                    format_rfc3339(now),
                    floor.map(format_rfc3339).unwrap_or_default()
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_behind_the_newest_record_is_called_wrong_until_it_is_set() {
        let clock = Clock::fixed(1_000_000);
        let r = ClockReport::judge(&clock, Some(1_000_000 + CLOCK_SLACK_MS + 1));
        assert!(!r.plausible && r.advice.unwrap().contains("give it the time"));
        assert!(ClockReport::judge(&clock, Some(1_000_000 + CLOCK_SLACK_MS)).plausible);
        assert!(ClockReport::judge(&clock, None).plausible, "nothing recorded yet");
        clock.set_offset(10 * CLOCK_SLACK_MS);
        let r = ClockReport::judge(&clock, Some(1_000_000 + 2 * CLOCK_SLACK_MS));
        assert_eq!((r.plausible, r.source, r.offset_ms), (true, "set by an admin", 600_000));
        assert_eq!(clock.system_now(), 1_000_000, "the system clock is left alone");
    }
}
