//! Money: integer minor units of the event's ISO currency, tax, totals and
//! tender. Every order's totals are computed by [`totals`] and nowhere else.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest price of one unit (1,000,000.00 in a two-decimal currency):
/// far above any ticket or tee, far below where sums could overflow.
pub const MAX_UNIT_MINOR: i64 = 100_000_000;
/// Largest quantity of one line in one order.
pub const MAX_LINE_QTY: u32 = 10_000;
/// Largest stock of one product, or one restock.
pub const MAX_STOCK: u32 = 1_000_000;
/// Tax rates run from 0 to 100 %.
pub const MAX_TAX_RATE_BP: u32 = 10_000;
/// Largest total of one order, and the most cash one order may be handed.
pub const MAX_ORDER_MINOR: i64 = 1_000_000_000_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("this order's total is over the box's limit of {limit}: split it into smaller orders")]
    TooLarge { limit: String },
    #[error("a line has a price or quantity out of range (price 0 to {max_price}, quantity 1 to {max_qty})")]
    LineOutOfRange { max_price: i64, max_qty: u32 },
}

/// One thing being sold, before totals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Line {
    /// `ticket:<tier>` or `<drop>/<sku>`: what the line is, for the ledger.
    pub item: String,
    pub name: String,
    #[serde(default)]
    pub variant: Option<String>,
    pub qty: u32,
    /// Price per unit actually charged (after any discount).
    pub unit_minor: i64,
    /// The list price per unit when a discount applied.
    #[serde(default)]
    pub list_unit_minor: Option<i64>,
    pub tax_rate_bp: u32,
}

/// A line with its amounts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PricedLine {
    #[serde(flatten)]
    pub line: Line,
    /// What the buyer pays for this line (tax included).
    pub gross_minor: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TaxLine {
    pub rate_bp: u32,
    /// The amount the tax applies to.
    pub net_minor: i64,
    pub tax_minor: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Totals {
    pub lines: Vec<PricedLine>,
    pub net_minor: i64,
    pub taxes: Vec<TaxLine>,
    pub tax_minor: i64,
    pub total_minor: i64,
}

fn div_round_half_up(n: i128, d: i128) -> i128 {
    (n * 2 + d) / (d * 2)
}

/// Totals for `lines`. With `prices_include_tax` the prices are gross and
/// the tax is the part of them; otherwise tax is added on top. Tax is
/// rounded once per rate (half up), not per line, so it never drifts.
/// Computed in 128 bits and refused past [`MAX_ORDER_MINOR`], so no input
/// can wrap a total around.
pub fn totals(lines: &[Line], prices_include_tax: bool) -> Result<Totals, MoneyError> {
    let mut by_rate: BTreeMap<u32, i128> = BTreeMap::new();
    let mut priced = Vec::with_capacity(lines.len());
    for l in lines {
        if !(0..=MAX_UNIT_MINOR).contains(&l.unit_minor)
            || l.qty > MAX_LINE_QTY
            || l.tax_rate_bp > MAX_TAX_RATE_BP
        {
            return Err(MoneyError::LineOutOfRange {
                max_price: MAX_UNIT_MINOR,
                max_qty: MAX_LINE_QTY,
            });
        }
        let amount = l.unit_minor as i128 * l.qty as i128;
        *by_rate.entry(l.tax_rate_bp).or_default() += amount;
        priced.push((l, amount));
    }
    let too_large = || MoneyError::TooLarge { limit: format!("{MAX_ORDER_MINOR} minor units") };
    let mut taxes = Vec::new();
    let (mut tax_minor, mut net_minor) = (0i128, 0i128);
    for (&rate, &amount) in &by_rate {
        let r = rate as i128;
        let (net, tax) = if prices_include_tax {
            let tax = div_round_half_up(amount * r, 10_000 + r);
            (amount - tax, tax)
        } else {
            (amount, div_round_half_up(amount * r, 10_000))
        };
        if net + tax > MAX_ORDER_MINOR as i128 {
            return Err(too_large());
        }
        tax_minor += tax;
        net_minor += net;
        taxes.push(TaxLine { rate_bp: rate, net_minor: net as i64, tax_minor: tax as i64 });
    }
    if net_minor + tax_minor > MAX_ORDER_MINOR as i128 {
        return Err(too_large());
    }
    let lines = priced
        .into_iter()
        .map(|(l, amount)| {
            // Shown per line: tax-inclusive amount (exact when prices include
            // tax; per-line rounding for display only otherwise).
            let gross = if prices_include_tax {
                amount
            } else {
                amount + div_round_half_up(amount * l.tax_rate_bp as i128, 10_000)
            };
            PricedLine { line: l.clone(), gross_minor: gross as i64 }
        })
        .collect();
    Ok(Totals {
        lines,
        net_minor: net_minor as i64,
        taxes,
        tax_minor: tax_minor as i64,
        total_minor: (net_minor + tax_minor) as i64,
    })
}

/// How an order was paid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[schemars(rename = "ReceiptTender")]
pub enum Tender {
    /// Cash handed over; the change is computed.
    Cash { given_minor: i64 },
    /// Paid on an external card terminal; its slip reference.
    Card { reference: String },
    /// Given away, approved by a supervisor.
    Comp { approved_by: String },
    /// Nothing to pay (a fully sponsored seat).
    NoCharge,
}

impl Tender {
    pub fn kind(&self) -> &'static str {
        match self {
            Tender::Cash { .. } => "cash",
            Tender::Card { .. } => "card",
            Tender::Comp { .. } => "comp",
            Tender::NoCharge => "no_charge",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TenderError {
    #[error(
        "cash given ({given}) is less than the total ({total}): take more cash, or pay by card"
    )]
    NotEnoughCash { given: String, total: String },
    #[error("a card payment needs the terminal's slip reference")]
    MissingReference,
    #[error("nothing is due, so no tender is needed; leave it out")]
    NothingDue,
    #[error("this order costs {0}: choose cash, card or comp")]
    SomethingDue(String),
    #[error("cash given must be 0 to {0}: check the amount typed")]
    CashOutOfRange(String),
}

/// Checks a tender against a total; returns the change due.
pub fn settle(total_minor: i64, tender: &Tender, currency: &str) -> Result<i64, TenderError> {
    match tender {
        Tender::NoCharge if total_minor == 0 => Ok(0),
        Tender::NoCharge => Err(TenderError::SomethingDue(format_money(total_minor, currency))),
        _ if total_minor == 0 => Err(TenderError::NothingDue),
        Tender::Cash { given_minor } if !(0..=MAX_ORDER_MINOR).contains(given_minor) => {
            Err(TenderError::CashOutOfRange(format_money(MAX_ORDER_MINOR, currency)))
        }
        Tender::Cash { given_minor } if *given_minor < total_minor => {
            Err(TenderError::NotEnoughCash {
                given: format_money(*given_minor, currency),
                total: format_money(total_minor, currency),
            })
        }
        Tender::Cash { given_minor } => Ok(given_minor - total_minor),
        Tender::Card { reference } if reference.trim().is_empty() => {
            Err(TenderError::MissingReference)
        }
        Tender::Card { .. } | Tender::Comp { .. } => Ok(0),
    }
}

/// Digits after the decimal point for a currency (ISO 4217 exponents).
pub fn minor_digits(currency: &str) -> u32 {
    match currency {
        "JPY" | "KRW" | "ISK" | "CLP" | "VND" | "UGX" | "XAF" | "XOF" | "PYG" | "RWF" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "LYD" | "IQD" => 3,
        _ => 2,
    }
}

/// `2500, "EUR"` → `25.00 EUR`.
pub fn format_money(minor: i64, currency: &str) -> String {
    let digits = minor_digits(currency);
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    if digits == 0 {
        return format!("{sign}{abs} {currency}");
    }
    let unit = 10u64.pow(digits);
    format!("{sign}{}.{:0width$} {currency}", abs / unit, abs % unit, width = digits as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(unit: i64, qty: u32, rate: u32) -> Line {
        Line {
            item: "x".into(),
            name: "x".into(),
            variant: None,
            qty,
            unit_minor: unit,
            list_unit_minor: None,
            tax_rate_bp: rate,
        }
    }

    #[test]
    fn totals_table() {
        // (lines, inclusive, net, tax, total)
        let cases = [
            (vec![line(2500, 1, 0)], true, 2500, 0, 2500),
            (vec![line(1190, 1, 1900)], true, 1000, 190, 1190),
            (vec![line(1000, 1, 1900)], false, 1000, 190, 1190),
            // Three items at 19 % inclusive: tax is rounded once for the rate.
            (vec![line(333, 3, 1900)], true, 839, 160, 999),
            // Two rates, each its own tax line.
            (vec![line(1070, 1, 700), line(1190, 2, 1900)], true, 1000 + 2000, 70 + 380, 3450),
            (vec![], true, 0, 0, 0),
        ];
        for (lines, inclusive, net, tax, total) in cases {
            let t = totals(&lines, inclusive).unwrap();
            assert_eq!(
                (t.net_minor, t.tax_minor, t.total_minor),
                (net, tax, total),
                "{lines:?} inclusive={inclusive}"
            );
            assert_eq!(t.net_minor + t.tax_minor, t.total_minor);
        }
    }

    #[test]
    fn totals_refuse_what_would_overflow_instead_of_wrapping() {
        let huge = line(MAX_UNIT_MINOR, MAX_LINE_QTY, MAX_TAX_RATE_BP);
        assert!(matches!(totals(&vec![huge.clone(); 3], false), Err(MoneyError::TooLarge { .. })));
        assert!(matches!(
            totals(&[line(1 << 62, 2, 0)], true),
            Err(MoneyError::LineOutOfRange { .. })
        ));
        assert!(matches!(totals(&[line(-5, 1, 0)], true), Err(MoneyError::LineOutOfRange { .. })));
        assert!(matches!(
            totals(&[line(100, 1, 1 << 31)], true),
            Err(MoneyError::LineOutOfRange { .. })
        ));
        let t = totals(&[line(MAX_UNIT_MINOR, MAX_LINE_QTY, 0)], true).unwrap();
        assert_eq!(t.total_minor, MAX_ORDER_MINOR, "the largest line is exactly the largest order");
    }

    #[test]
    fn tender_table() {
        use Tender::*;
        let cases: Vec<(i64, Tender, Result<i64, &str>)> = vec![
            (2500, Cash { given_minor: 3000 }, Ok(500)),
            (2500, Cash { given_minor: 2500 }, Ok(0)),
            (2500, Cash { given_minor: 2000 }, Err("less than the total")),
            (2500, Card { reference: "T-8812".into() }, Ok(0)),
            (2500, Card { reference: " ".into() }, Err("slip reference")),
            (2500, Comp { approved_by: "Sam".into() }, Ok(0)),
            (2500, NoCharge, Err("choose cash")),
            (0, NoCharge, Ok(0)),
            (0, Cash { given_minor: 100 }, Err("no tender is needed")),
            (2500, Cash { given_minor: i64::MAX }, Err("cash given must be 0 to")),
            (2500, Cash { given_minor: -1 }, Err("cash given must be 0 to")),
        ];
        for (total, tender, want) in cases {
            match (settle(total, &tender, "EUR"), want) {
                (Ok(change), Ok(w)) => assert_eq!(change, w, "{tender:?}"),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{tender:?}: {e}"),
                (got, want) => panic!("{tender:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn money_formats_with_the_currency_exponent() {
        assert_eq!(format_money(2500, "EUR"), "25.00 EUR");
        assert_eq!(format_money(-5, "GBP"), "-0.05 GBP");
        assert_eq!(format_money(1500, "JPY"), "1500 JPY");
        assert_eq!(format_money(1234, "KWD"), "1.234 KWD");
    }
}
