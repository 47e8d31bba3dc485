//! Staff roles and which role may do what.
//!
//! door, merch and capture are peers: each does its own job only. A
//! supervisor may do all of theirs plus corrections (undo); an admin may do
//! everything, including loading a manifest.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

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
#[serde(rename_all = "lowercase")]
pub enum Role {
    Door,
    Merch,
    Capture,
    Supervisor,
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] =
        [Role::Door, Role::Merch, Role::Capture, Role::Supervisor, Role::Admin];

    /// Whether someone signed in with `self` may do what needs `required`.
    pub fn allows(self, required: Role) -> bool {
        match self {
            Role::Admin => true,
            Role::Supervisor => required != Role::Admin,
            own => own == required,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Door => "door",
            Role::Merch => "merch",
            Role::Capture => "capture",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            format!("unknown role '{s}': use one of door, merch, capture, supervisor, admin")
        })
    }
}

/// Who did something: a signed-in staff member, or the box's own tooling.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Actor {
    pub name: String,
    pub role: Role,
}

#[cfg(test)]
mod tests {
    use super::Role::*;
    use super::*;

    #[test]
    fn who_may_do_what() {
        let cases = [
            (Door, Door, true),
            (Door, Merch, false),
            (Door, Supervisor, false),
            (Merch, Door, false),
            (Capture, Capture, true),
            (Supervisor, Door, true),
            (Supervisor, Merch, true),
            (Supervisor, Supervisor, true),
            (Supervisor, Admin, false),
            (Admin, Admin, true),
            (Admin, Door, true),
        ];
        for (have, need, ok) in cases {
            assert_eq!(have.allows(need), ok, "{have} doing {need}");
        }
    }

    #[test]
    fn parses_names_and_explains_bad_ones() {
        assert_eq!("supervisor".parse::<Role>().unwrap(), Supervisor);
        assert!("boss".parse::<Role>().unwrap_err().contains("door, merch"));
    }
}
