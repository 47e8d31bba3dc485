//! Receipts: the document every order produces, its plain-text rendering
//! (the printer issue encodes that as ESC/POS), and the short signed proof
//! code printed on it as a QR code, which the box or the cloud can verify
//! later with the box's public key.
//!
//! Proof layout (v1), followed by a 64-byte Ed25519 signature over `VBR1` +
//! it: `version u8 | len u8 | order id | total i64 | currency [3] |
//! created_at u32 (Unix seconds)`, as `VBP1:` + base44 text.

use super::base44;
use super::keys::TrustedKeys;
use super::money::{format_money, PricedLine, TaxLine, Tender};
use super::time::{format_rfc3339, Millis};
use ed25519_dalek::{Signature, Signer, SigningKey};
use serde::{Deserialize, Serialize};

pub const PROOF_PREFIX: &str = "VBP1:";
const CONTEXT: &[u8] = b"VBR1";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Attribution {
    pub creator_id: String,
    pub creator_name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IssuedTicket {
    pub id: String,
    pub tier: String,
    pub code: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Receipt {
    pub order_id: String,
    pub event_name: String,
    pub box_id: String,
    pub created_at: String,
    pub staff: String,
    pub currency: String,
    pub lines: Vec<PricedLine>,
    pub taxes: Vec<TaxLine>,
    pub net_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub prices_include_tax: bool,
    pub tender: Tender,
    pub change_minor: i64,
    pub attribution: Option<Attribution>,
    /// Scholarship programs and funders, for seats they paid for.
    pub sponsored_by: Option<String>,
    pub tickets: Vec<IssuedTicket>,
    pub proof: String,
}

/// What a proof code asserts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ProofClaim {
    pub order_id: String,
    pub total_minor: i64,
    pub currency: String,
    pub created_at: String,
}

pub fn proof_code(
    order_id: &str,
    total_minor: i64,
    currency: &str,
    created_at: Millis,
    key: &SigningKey,
) -> String {
    let id = order_id.as_bytes();
    let mut b = Vec::with_capacity(20 + id.len());
    b.push(1);
    b.push(id.len().min(255) as u8);
    b.extend_from_slice(&id[..id.len().min(255)]);
    b.extend_from_slice(&total_minor.to_be_bytes());
    let mut cur = [b' '; 3];
    for (d, s) in cur.iter_mut().zip(currency.bytes()) {
        *d = s;
    }
    b.extend_from_slice(&cur);
    b.extend_from_slice(&((created_at / 1000) as u32).to_be_bytes());
    let sig = key.sign(&[CONTEXT, &b].concat());
    b.extend_from_slice(&sig.to_bytes());
    format!("{PROOF_PREFIX}{}", base44::encode(&b))
}

/// Reads and verifies a proof code against trusted box keys.
pub fn verify_proof(code: &str, keys: &TrustedKeys) -> Option<ProofClaim> {
    let bytes = base44::decode(code.trim().strip_prefix(PROOF_PREFIX)?)?;
    if bytes.len() < 2 + 8 + 3 + 4 + 64 || bytes[0] != 1 {
        return None;
    }
    let (body, sig) = bytes.split_at(bytes.len() - 64);
    let sig = Signature::from_bytes(sig.try_into().ok()?);
    keys.verify_any(&[CONTEXT, body].concat(), &sig)?;
    let len = body[1] as usize;
    if body.len() != 2 + len + 8 + 3 + 4 {
        return None;
    }
    let order_id = String::from_utf8(body[2..2 + len].to_vec()).ok()?;
    let rest = &body[2 + len..];
    let total_minor = i64::from_be_bytes(rest[..8].try_into().ok()?);
    let currency = String::from_utf8(rest[8..11].to_vec()).ok()?;
    let secs = u32::from_be_bytes(rest[11..15].try_into().ok()?);
    Some(ProofClaim {
        order_id,
        total_minor,
        currency,
        created_at: format_rfc3339(secs as Millis * 1000),
    })
}

/// When the sale was made, as the buyer reads it: the event's local time
/// (`zone`, IANA) with its abbreviation, e.g. `2026-11-27 21:00 CET`; the
/// stored instant as it is when either cannot be read.
pub fn local_time(created_at: &str, zone: &str) -> String {
    let (Ok(ts), Ok(tz)) = (created_at.parse::<jiff::Timestamp>(), jiff::tz::TimeZone::get(zone))
    else {
        return created_at.to_string();
    };
    ts.to_zoned(tz).strftime("%Y-%m-%d %H:%M %Z").to_string()
}

/// The receipt as monospaced text, `width` characters wide (32 for 58 mm
/// paper, 42 or 48 for 80 mm), times in the event's `zone`.
pub fn render_text(r: &Receipt, width: usize, zone: &str) -> String {
    let money = |m: i64| format_money(m, &r.currency);
    let mut out = String::new();
    let center = |s: &str, out: &mut String| {
        let s: String = s.chars().take(width).collect();
        let pad = (width - s.chars().count()) / 2;
        out.push_str(&" ".repeat(pad));
        out.push_str(&s);
        out.push('\n');
    };
    let row = |left: &str, right: &str, out: &mut String| {
        let room = width.saturating_sub(right.chars().count() + 1);
        let left: String = left.chars().take(room).collect();
        let gap = width - left.chars().count() - right.chars().count();
        out.push_str(&left);
        out.push_str(&" ".repeat(gap.max(1)));
        out.push_str(right);
        out.push('\n');
    };
    let rule = "-".repeat(width);
    center(&r.event_name, &mut out);
    center(&format!("Order {}", r.order_id), &mut out);
    center(&local_time(&r.created_at, zone), &mut out);
    out.push_str(&rule);
    out.push('\n');
    for l in &r.lines {
        let name = match &l.line.variant {
            Some(v) => format!("{} ({v})", l.line.name),
            None => l.line.name.clone(),
        };
        row(&format!("{} x {name}", l.line.qty), &money(l.gross_minor), &mut out);
        if let Some(list) = l.line.list_unit_minor {
            row(&format!("  list price {}", money(list)), "", &mut out);
        }
    }
    out.push_str(&rule);
    out.push('\n');
    for t in &r.taxes {
        if t.rate_bp > 0 {
            let pct = format!("{}.{:02}%", t.rate_bp / 100, t.rate_bp % 100);
            let label = if r.prices_include_tax {
                format!("incl. tax {pct}")
            } else {
                format!("tax {pct}")
            };
            row(&label, &money(t.tax_minor), &mut out);
        }
    }
    row("TOTAL", &money(r.total_minor), &mut out);
    match &r.tender {
        Tender::Cash { given_minor } => {
            row("Cash", &money(*given_minor), &mut out);
            row("Change", &money(r.change_minor), &mut out);
        }
        Tender::Card { reference } => row("Card", reference, &mut out),
        Tender::Comp { approved_by } => row("Comp, approved by", approved_by, &mut out),
        Tender::NoCharge => row("No charge", "", &mut out),
    }
    if let Some(a) = &r.attribution {
        row("Creator", &a.creator_name, &mut out);
    }
    if let Some(s) = &r.sponsored_by {
        row("Sponsored by", s, &mut out);
    }
    for t in &r.tickets {
        row("Ticket", &format!("{} ({})", t.id, t.tier), &mut out);
    }
    row("Served by", &r.staff, &mut out);
    out.push_str(&rule);
    out.push('\n');
    center("Proof of purchase:", &mut out);
    for chunk in r.proof.as_bytes().chunks(width) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// What an order sold: a walk-up ticket, a scholarship seat or a drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderKind {
    Walkup,
    Scholarship,
    Drop,
}

impl OrderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderKind::Walkup => "walkup",
            OrderKind::Scholarship => "scholarship",
            OrderKind::Drop => "drop",
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn the_time_on_a_receipt_is_the_events_local_time() {
        assert_eq!(local_time("2026-11-27T20:00:00Z", "Europe/Berlin"), "2026-11-27 21:00 CET");
        assert_eq!(
            local_time("2026-07-01T20:00:00.250Z", "Europe/Berlin"),
            "2026-07-01 22:00 CEST"
        );
        assert_eq!(local_time("not a time", "Europe/Berlin"), "not a time");
    }
    use crate::domain::keys::signing_key_from_bytes;
    use crate::domain::money::{totals, Line};

    #[test]
    fn proof_round_trips_and_tampering_fails() {
        let key = signing_key_from_bytes([4; 32]);
        let code = proof_code("O-ab12cd-42", 3450, "EUR", 1_800_000_000_000, &key);
        let keys = TrustedKeys::new([key.verifying_key()]);
        let claim = verify_proof(&code, &keys).unwrap();
        assert_eq!(
            (claim.order_id.as_str(), claim.total_minor, claim.currency.as_str()),
            ("O-ab12cd-42", 3450, "EUR")
        );
        assert!(verify_proof(
            &code,
            &TrustedKeys::new([signing_key_from_bytes([5; 32]).verifying_key()])
        )
        .is_none());
        let mut bad = code.into_bytes();
        let i = bad.len() - 70;
        bad[i] = if bad[i] == b'0' { b'1' } else { b'0' };
        assert!(verify_proof(&String::from_utf8(bad).unwrap(), &keys).is_none());
    }

    /// A cash sale of two tees at 11.90 EUR incl. 19 % tax, signed by key [4; 32].
    pub(crate) fn sample() -> Receipt {
        let lines = vec![Line {
            item: "d1/TEE".into(),
            name: "Tour tee".into(),
            variant: Some("M".into()),
            qty: 2,
            unit_minor: 1190,
            list_unit_minor: None,
            tax_rate_bp: 1900,
        }];
        let t = totals(&lines, true).unwrap();
        Receipt {
            order_id: "O-1".into(),
            event_name: "Demo night".into(),
            box_id: "box-1".into(),
            created_at: "2026-11-27T20:00:00Z".into(),
            staff: "Max".into(),
            currency: "EUR".into(),
            lines: t.lines,
            taxes: t.taxes,
            net_minor: t.net_minor,
            tax_minor: t.tax_minor,
            total_minor: t.total_minor,
            prices_include_tax: true,
            tender: Tender::Cash { given_minor: 5000 },
            change_minor: 5000 - 2380,
            attribution: Some(Attribution { creator_id: "cr".into(), creator_name: "Mara".into() }),
            sponsored_by: None,
            tickets: vec![],
            proof: proof_code("O-1", 2380, "EUR", 0, &signing_key_from_bytes([4; 32])),
        }
    }

    #[test]
    fn text_receipt_shows_lines_tax_total_change_and_proof_within_width() {
        let r = sample();
        let text = render_text(&r, 32, "Europe/Berlin");
        for want in [
            "2 x Tour tee (M)",
            "23.80 EUR",
            "incl. tax 19.00%",
            "3.80 EUR",
            "Change",
            "26.20 EUR",
            "Mara",
            "VBP1:",
        ] {
            assert!(text.contains(want), "missing {want}:\n{text}");
        }
        assert!(text.lines().all(|l| l.chars().count() <= 32), "{text}");
    }
}
