//! Creator payout statements: what a creator brought in and the share
//! their payout rules give. The figures come from the store's rows; the
//! share is computed here, in one place, on net amounts (tax excluded,
//! refunds and voids taken off), rounded down to the minor unit.

use super::manifest::PayoutRules;
use serde::Serialize;

/// Sums for one side of the business (tickets or drops).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Sales {
    pub orders: u64,
    pub gross_minor: i64,
    pub tax_minor: i64,
    /// Gross of orders later refunded or voided.
    pub refunded_minor: i64,
    /// Tax of those orders.
    pub refunded_tax_minor: i64,
}

impl std::ops::Add for Sales {
    type Output = Sales;
    fn add(self, o: Sales) -> Sales {
        Sales {
            orders: self.orders + o.orders,
            gross_minor: self.gross_minor + o.gross_minor,
            tax_minor: self.tax_minor + o.tax_minor,
            refunded_minor: self.refunded_minor + o.refunded_minor,
            refunded_tax_minor: self.refunded_tax_minor + o.refunded_tax_minor,
        }
    }
}

impl Sales {
    /// Gross less tax, less what was refunded (net of its tax).
    pub fn net_minor(&self) -> i64 {
        (self.gross_minor - self.tax_minor) - (self.refunded_minor - self.refunded_tax_minor)
    }
}

/// One creator's figures and the share their rules give: what a statement
/// states, and what a recomputation from the event log must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Totals {
    /// Walk-up tickets sold with the creator's referral code.
    pub referral_tickets: Sales,
    /// Scholarship seats recruited with the creator's codes (what buyers paid).
    pub scholarship_tickets: Sales,
    /// Seats claimed in programs this creator funds.
    pub scholarship_seats_funded: u64,
    pub drops: Sales,
    /// Captures credited to the creator, hidden ones excluded.
    pub captures: u64,
    pub capture_bytes: u64,
    pub payout_minor: i64,
}

impl Totals {
    /// These figures with `payout_minor` set by `rules`.
    pub fn priced(self, rules: &PayoutRules) -> Totals {
        let tickets = self.referral_tickets.clone() + self.scholarship_tickets.clone();
        Totals { payout_minor: payout(rules, &tickets, &self.drops), ..self }
    }
}

/// `amount × bp / 10 000`, rounded down (a payout never exceeds its rule).
pub fn share(amount_minor: i64, bp: u32) -> i64 {
    (amount_minor.max(0) as i128 * bp as i128 / 10_000) as i64
}

/// The creator's share: ticket rule on ticket net, drop rule on drop net.
pub fn payout(rules: &PayoutRules, tickets: &Sales, drops: &Sales) -> i64 {
    share(tickets.net_minor(), rules.ticket_share_bp)
        + share(drops.net_minor(), rules.drop_share_bp)
}

/// One creator's statement from one box, as JSON (this) and CSV.
#[derive(Clone, Debug, Serialize)]
pub struct Statement {
    pub event: String,
    /// The box whose rows these are (each box states its own sales).
    pub box_id: String,
    pub creator: String,
    pub name: String,
    pub currency: String,
    pub generated_at: String,
    #[serde(flatten)]
    pub totals: Totals,
    pub ticket_share_bp: u32,
    pub drop_share_bp: u32,
}

impl Statement {
    /// The statement as a two-column CSV (`field,value`), for spreadsheets.
    pub fn csv(&self) -> String {
        let row = |k: &str, v: String| format!("{k},{v}\n");
        let mut out = String::from("field,value\n");
        out += &row("event", self.event.clone());
        out += &row("box_id", self.box_id.clone());
        out += &row("creator", self.creator.clone());
        out += &row("name", format!("\"{}\"", self.name.replace('"', "\"\"")));
        out += &row("currency", self.currency.clone());
        out += &row("generated_at", self.generated_at.clone());
        let t = &self.totals;
        for (prefix, v) in [
            ("referral_tickets", &t.referral_tickets),
            ("scholarship_tickets", &t.scholarship_tickets),
            ("drops", &t.drops),
        ] {
            out += &row(&format!("{prefix}_orders"), v.orders.to_string());
            out += &row(&format!("{prefix}_gross_minor"), v.gross_minor.to_string());
            out += &row(&format!("{prefix}_tax_minor"), v.tax_minor.to_string());
            out += &row(&format!("{prefix}_refunded_minor"), v.refunded_minor.to_string());
            out += &row(&format!("{prefix}_net_minor"), v.net_minor().to_string());
        }
        out += &row("scholarship_seats_funded", t.scholarship_seats_funded.to_string());
        out += &row("captures", t.captures.to_string());
        out += &row("capture_bytes", t.capture_bytes.to_string());
        out += &row("payout_minor", t.payout_minor.to_string());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_and_share_table() {
        let s = Sales {
            orders: 3,
            gross_minor: 11_900,
            tax_minor: 1_900,
            refunded_minor: 1_190,
            refunded_tax_minor: 190,
        };
        assert_eq!(s.net_minor(), 10_000 - 1_000);
        assert_eq!(share(9_000, 1_000), 900);
        assert_eq!(share(999, 1_500), 149, "rounded down");
        assert_eq!(share(-50, 1_000), 0, "no negative payouts");
        let rules = PayoutRules { ticket_share_bp: 1_000, drop_share_bp: 2_000 };
        let drops = Sales { orders: 1, gross_minor: 5_950, tax_minor: 950, ..Default::default() };
        assert_eq!(payout(&rules, &s, &drops), 900 + 1_000);
    }
}
