//! Finding a ticket without its code (the guest's phone is dead): by the
//! holder's name, the order code or the buyer's email, a handful of
//! matches with what the door needs to decide and nothing more (the email
//! is searched, never returned; no code or secret leaves).

use super::scans::last_admitted;
use super::{Store, StoreError};
use crate::domain::checkin::PriorScan;
use crate::domain::ids::{TicketId, TierId};
use crate::domain::manifest::TicketStatus;
use rusqlite::params;

/// What a door is looking for: an email (with `@`, matched whole) or a
/// piece of a name, or a whole order code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TicketQuery {
    Email(String),
    NameOrOrder(String),
}

/// One ticket found.
#[derive(Clone, Debug)]
pub struct TicketMatch {
    pub id: TicketId,
    pub tier: TierId,
    pub holder: Option<String>,
    pub order: Option<String>,
    pub status: TicketStatus,
    /// Its latest admission that stands (any gate).
    pub admitted: Option<PriorScan>,
}

/// `%`, `_` and the escape itself taken literally in a LIKE pattern.
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Store {
    /// At most `limit` tickets matching `query`, by holder name.
    pub async fn find_tickets(
        &self,
        query: TicketQuery,
        limit: usize,
    ) -> Result<Vec<TicketMatch>, StoreError> {
        self.read(move |conn| {
            let (email, text) = match &query {
                TicketQuery::Email(e) => (Some(e.to_lowercase()), None),
                TicketQuery::NameOrOrder(t) => (None, Some(t.as_str())),
            };
            let pattern = text.map(|t| format!("%{}%", like_literal(t)));
            let mut stmt = conn.prepare_cached(
                "SELECT id, tier_id, holder, order_id, status FROM tickets
                 WHERE (?1 IS NOT NULL AND lower(email) = ?1)
                    OR (?2 IS NOT NULL AND (upper(order_id) = upper(?2) OR holder LIKE ?3 ESCAPE '\\'))
                 ORDER BY holder COLLATE NOCASE, id LIMIT ?4",
            )?;
            let rows = stmt.query_map(params![email, text, pattern, limit as i64], |r| {
                let status: String = r.get(4)?;
                Ok(TicketMatch {
                    id: TicketId(r.get(0)?),
                    tier: TierId(r.get(1)?),
                    holder: r.get(2)?,
                    order: r.get(3)?,
                    status: TicketStatus::parse(&status).unwrap_or(TicketStatus::Cancelled),
                    admitted: None,
                })
            })?;
            let mut found = rows.collect::<Result<Vec<_>, _>>()?;
            for m in &mut found {
                m.admitted = last_admitted(conn, &m.id, None)?.map(|(_, p)| p);
            }
            Ok(found)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_taken_literally() {
        assert_eq!(like_literal("50%_a\\b"), "50\\%\\_a\\\\b");
    }
}
