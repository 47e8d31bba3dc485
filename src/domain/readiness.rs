//! The readiness report of a rehearsal (`venuebox rehearse`, `POST
//! /api/v1/rehearsal`): one line per check, ready when every line is.
//! The rehearsal itself (`crate::rehearsal`) fills it.

use serde::Serialize;

/// One line of the report.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Check {
    pub check: &'static str,
    pub ready: bool,
    /// What was seen, or what to fix.
    pub said: String,
}

/// The readiness report: ready when every check is.
#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
#[schemars(rename = "RehearsalReport")]
pub struct Report {
    pub ready: bool,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn add(&mut self, check: &'static str, outcome: Result<String, String>) {
        let (ready, said) = match outcome {
            Ok(s) => (true, s),
            Err(s) => (false, s),
        };
        self.checks.push(Check { check, ready, said });
    }

    /// The report as the terminal shows it.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let mark = if c.ready { "OK " } else { "FIX" };
            out += &format!("{mark} {:<12} {}\n", c.check, c.said);
        }
        out + if self.ready { "READY for doors\n" } else { "NOT READY: fix the lines marked FIX\n" }
    }
}
