//! Newtype identifiers for the domain nouns, so a gate id is never passed
//! where a ticket id is expected. They are strings chosen by the organiser
//! (or by the box for walk-ups), kept opaque here.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

string_id!(
    /// The organiser's id for an event, e.g. `evt-2026-rooftop`.
    EventId
);
string_id!(
    /// A ticket's id, unique within its event.
    TicketId
);
string_id!(
    /// A ticket tier, e.g. `ga` or `vip`.
    TierId
);
string_id!(
    /// A door or check-in point, e.g. `main` or `side`.
    GateId
);

string_id!(
    /// A creator, e.g. `cr-mara`.
    CreatorId
);
string_id!(
    /// A scholarship program.
    ProgramId
);
string_id!(
    /// A merchandise drop.
    DropId
);
string_id!(
    /// A product's stock-keeping unit, e.g. `TEE-BLK-M`.
    Sku
);
string_id!(
    /// An order (walk-up ticket, scholarship claim or drop sale).
    OrderId
);
string_id!(
    /// A cart hold on drop stock.
    HoldId
);

/// The row id of one scan (admitted or rejected) in the box's log.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct ScanId(pub i64);

/// A position in the box's gap-free outbox sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub i64);
