//! Payout statements per creator, from the rows the box holds: tickets
//! sold with the creator's referral or recruited with their scholarship
//! codes, scholarships they fund, drop sales, captures; the share from
//! `domain::payout`, which also renders them; `sync::payouts` writes and
//! uploads them.

use super::{Store, StoreError};
use crate::domain::payout::{Sales, Statement, Totals};
use crate::domain::time::{format_rfc3339, Millis};
use rusqlite::Connection;

fn sales(conn: &Connection, creator: &str, kinds: &str) -> Result<Sales, StoreError> {
    let sql = format!(
        "SELECT COUNT(*), COALESCE(SUM(total_minor), 0), COALESCE(SUM(tax_minor), 0),
                COALESCE(SUM(CASE WHEN status != 'paid' THEN total_minor ELSE 0 END), 0),
                COALESCE(SUM(CASE WHEN status != 'paid' THEN tax_minor ELSE 0 END), 0)
         FROM orders WHERE creator_id = ?1 AND kind IN ({kinds})"
    );
    Ok(conn.prepare(&sql)?.query_row([creator], |r| {
        Ok(Sales {
            orders: r.get::<_, i64>(0)? as u64,
            gross_minor: r.get(1)?,
            tax_minor: r.get(2)?,
            refunded_minor: r.get(3)?,
            refunded_tax_minor: r.get(4)?,
        })
    })?)
}

impl Store {
    /// One statement per creator of the loaded event.
    pub async fn payout_statements(&self, now: Millis) -> Result<Vec<Statement>, StoreError> {
        let ev = self.event().ok_or(StoreError::NoEvent)?;
        let box_id = self.box_id().to_string();
        self.read(move |conn| {
            let mut out = Vec::new();
            for c in &ev.manifest.creators {
                let id = c.id.as_str();
                let funded_programs: Vec<&str> = ev
                    .manifest
                    .scholarships
                    .iter()
                    .filter(|p| p.funder.creator.as_ref().is_some_and(|f| f == &c.id))
                    .map(|p| p.id.as_str())
                    .collect();
                let mut seats = 0u64;
                for p in funded_programs {
                    seats += conn
                        .prepare_cached("SELECT COUNT(*) FROM scholarship_claims WHERE program_id = ?1 AND status = 'active'")?
                        .query_row([p], |r| r.get::<_, i64>(0))? as u64;
                }
                let (captures, capture_bytes): (i64, i64) = conn
                    .prepare_cached("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM captures WHERE creator_id = ?1 AND hidden_at IS NULL")?
                    .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
                let totals = Totals {
                    referral_tickets: sales(conn, id, "'walkup'")?,
                    scholarship_tickets: sales(conn, id, "'scholarship'")?,
                    scholarship_seats_funded: seats,
                    drops: sales(conn, id, "'drop'")?,
                    captures: captures as u64,
                    capture_bytes: capture_bytes as u64,
                    payout_minor: 0,
                }
                .priced(&c.payout);
                out.push(Statement {
                    event: ev.event_id().to_string(),
                    box_id: box_id.clone(),
                    creator: id.to_string(),
                    name: c.name.clone(),
                    currency: ev.manifest.event.currency.clone(),
                    generated_at: format_rfc3339(now),
                    totals,
                    ticket_share_bp: c.payout.ticket_share_bp,
                    drop_share_bp: c.payout.drop_share_bp,
                });
            }
            Ok(out)
        })
        .await
    }
}
