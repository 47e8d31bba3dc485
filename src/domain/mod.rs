//! The venue's rules as pure types and decisions: tickets and their signed
//! codes, the event manifest, staff roles and the check-in decision.
//!
//! Nothing in here does I/O, spawns tasks or speaks SQL (ARCHITECTURE.md):
//! every function takes what it needs as arguments and returns a value, so
//! the rules are tested with tables of cases.

pub mod base44;
pub mod capture;
pub mod checkin;
pub mod checkin_questions;
pub mod checkin_rules;
pub mod code;
pub mod drops;
pub mod error_code;
pub mod escrow;
pub mod events;
pub mod ids;
pub mod keys;
pub mod manifest;
pub mod money;
pub mod payout;
pub mod pretix;
pub mod qr;
pub mod readiness;
pub mod receipt;
pub mod role;
pub mod scholarship;
pub mod time;
