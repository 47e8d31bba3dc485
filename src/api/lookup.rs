//! Finding a guest whose phone is dead (`GET /api/v1/tickets?q=`): door
//! staff search by name, order code or email and check the ticket in from
//! the result (`POST /api/v1/checkins` with `ticket`). Few fields come back
//! and each staff member may search only so often: a list of guests is
//! not what a door token is for.

use super::auth::Principal;
use super::error::ApiError;
use super::json::{Json, Query};
use super::AppState;
use crate::domain::error_code::ErrorCode;
use crate::domain::ids::{GateId, TicketId, TierId};
use crate::domain::manifest::TicketStatus;
use crate::domain::role::Role;
use crate::domain::time::{format_rfc3339, Millis};
use crate::store::tickets::TicketQuery;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;

/// Searches one staff member may make per window.
pub const PER_WINDOW: u32 = 20;
const WINDOW_MS: Millis = 60_000;
/// Tickets one search returns at most.
const MATCHES: usize = 10;

/// Searches per staff member in the current minute. Bounded: entries
/// whose minute has passed are dropped before the map grows past a few
/// hundred (staff are a fixed list; names come from sign-ins).
#[derive(Default)]
pub struct LookupBudget {
    used: Mutex<HashMap<String, (Millis, u32)>>,
}

impl LookupBudget {
    fn spend(&self, who: &str, now: Millis) -> Result<(), ApiError> {
        let mut used = self.used.lock().expect("lookup budget");
        if used.len() > 256 {
            used.retain(|_, (start, _)| now - *start < WINDOW_MS);
        }
        let entry = used.entry(who.to_string()).or_insert((now, 0));
        if now - entry.0 >= WINDOW_MS || now < entry.0 {
            *entry = (now, 0);
        }
        if entry.1 >= PER_WINDOW {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyLookups,
                format!("{PER_WINDOW} searches a minute at most: wait a moment, or scan the guest's code"),
            );
            e.retry_after_secs = Some(((entry.0 + WINDOW_MS - now) / 1000).max(1) as u64);
            return Err(e);
        }
        entry.1 += 1;
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupQuery {
    q: String,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Found {
    items: Vec<FoundTicket>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct FoundTicket {
    id: TicketId,
    holder: Option<String>,
    tier: TierId,
    tier_name: Option<String>,
    order: Option<String>,
    status: TicketStatus,
    /// Its latest admission that stands, if any.
    admitted: Option<Admitted>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct Admitted {
    at: String,
    gate: GateId,
    gate_name: Option<String>,
}

/// What a search text means: an email (has `@`), else part of a name or
/// a whole order code.
pub fn parse_query(q: &str) -> Result<TicketQuery, ApiError> {
    let q = q.trim();
    let chars = q.chars().count();
    if !(2..=100).contains(&chars) || q.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "q must be 2 to 100 characters: part of the guest's name, their order code or their email",
        ));
    }
    Ok(if q.contains('@') {
        TicketQuery::Email(q.to_string())
    } else {
        TicketQuery::NameOrOrder(q.to_string())
    })
}

pub async fn find(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<LookupQuery>,
) -> Result<Json<Found>, ApiError> {
    p.require(Role::Door)?;
    let query = parse_query(&q.q)?;
    st.lookups.spend(&p.actor.name, st.clock.now())?;
    let found = st.store.find_tickets(query, MATCHES).await?;
    let event = st.store.event();
    let tier_name = |t: &TierId| event.as_ref().and_then(|e| e.tier(t).map(|t| t.name.clone()));
    let gate_name = |g: &GateId| event.as_ref().and_then(|e| e.gate(g).map(|g| g.name.clone()));
    let items = found
        .into_iter()
        .map(|m| FoundTicket {
            tier_name: tier_name(&m.tier),
            admitted: m.admitted.map(|a| Admitted {
                at: format_rfc3339(a.at),
                gate_name: gate_name(&a.gate),
                gate: a.gate,
            }),
            id: m.id,
            holder: m.holder,
            tier: m.tier,
            order: m.order,
            status: m.status,
        })
        .collect();
    Ok(Json(Found { items }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_staff_member_searches_a_bounded_number_of_times_a_minute() {
        let b = LookupBudget::default();
        for _ in 0..PER_WINDOW {
            b.spend("Dana", 1_000).unwrap();
        }
        let e = b.spend("Dana", 30_000).unwrap_err();
        assert_eq!(
            (e.status, e.code, e.retry_after_secs),
            (StatusCode::TOO_MANY_REQUESTS, ErrorCode::TooManyLookups, Some(31))
        );
        b.spend("Sam", 30_000).expect("another staff member has their own");
        b.spend("Dana", 61_000).expect("a new minute");
    }

    #[test]
    fn a_search_is_an_email_or_a_name_or_order() {
        assert_eq!(
            parse_query(" ana@example.org ").unwrap(),
            TicketQuery::Email("ana@example.org".into())
        );
        assert_eq!(parse_query("Ana").unwrap(), TicketQuery::NameOrOrder("Ana".into()));
        assert_eq!(parse_query("A").unwrap_err().status, StatusCode::BAD_REQUEST);
    }
}
