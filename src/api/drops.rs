//! Drops at the merch stand: their live state (and a server-sent feed of
//! it), cart holds, checkout, one-step sales, and the admin's drop editing
//! and restocks.

use super::auth::Principal;
use super::error::ApiError;
use super::json::Json;
use super::sales::{check_nonce, order_response, tender, TenderInput};
use super::AppState;
use crate::domain::ids::{DropId, HoldId, Sku};
use crate::domain::manifest::DropSpec;
use crate::domain::money::{MAX_LINE_QTY, MAX_STOCK};
use crate::domain::role::Role;
use crate::store::drops::{DropView, HoldRequest, LedgerRow, POOL};
use axum::extract::{Path, State};
use axum::http::{Extensions, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use futures_util::stream::{self, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

/// Every drop with its live stock (also each event of the drop feed).
#[derive(Serialize, schemars::JsonSchema)]
pub struct Drops {
    drops: Vec<DropView>,
}

/// Stock on hand per product and the ledger rows that explain it.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Ledger {
    on_hand: BTreeMap<String, i64>,
    ledger: Vec<LedgerRow>,
}

pub async fn list(State(st): State<AppState>, p: Principal) -> Result<Json<Drops>, ApiError> {
    p.require(Role::Merch)?;
    Ok(Json(Drops { drops: st.store.drops(st.clock.now()).await? }))
}

pub async fn show(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<impl Serialize>, ApiError> {
    p.require(Role::Merch)?;
    Ok(Json(st.store.drop_detail(DropId(id), st.clock.now()).await?))
}

/// Server-sent events: the drops' state now, then again whenever it
/// changes (checked every second), for dashboards and merch screens.
pub async fn feed(
    State(st): State<AppState>,
    p: Principal,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    p.require(Role::Merch)?;
    let slot = st.feeds.open(&crate::store::sessions::token_digest(&p.token))?;
    let events = stream::unfold((st, None::<String>), |(st, last)| async move {
        // The first state goes out at once; after that, only changes.
        let mut wait = last.is_some();
        loop {
            if wait {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            wait = true;
            match st.store.drops(st.clock.now()).await {
                Ok(d) => {
                    let now_json = serde_json::to_string(&Drops { drops: d }).unwrap_or_default();
                    if last.as_deref() != Some(now_json.as_str()) {
                        let ev = Event::default().event("drops").data(now_json.clone());
                        return Some((Ok(ev), (st, Some(now_json))));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "drop feed could not read drops"),
            }
        }
    });
    // The slot lives as long as the stream.
    let events = events.map(move |e| {
        let _held = &slot;
        e
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "HoldItem")]
pub struct Item {
    #[schemars(length(max = 64))]
    sku: String,
    #[schemars(range(min = 1))]
    qty: u32,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldBody {
    items: Vec<Item>,
    #[schemars(length(max = 128))]
    nonce: String,
    /// The buyer's scanned ticket code (needed by drops with a
    /// per-attendee limit; gives access to a reserve).
    #[serde(default)]
    #[schemars(length(max = 1024))]
    attendee_code: Option<String>,
    /// How the buyer pays: only for one-step sales.
    #[serde(default)]
    tender: Option<TenderInput>,
}

fn hold_request(
    st: &AppState,
    p: &Principal,
    ext: &Extensions,
    drop: String,
    b: HoldBody,
) -> Result<(HoldRequest, Option<TenderInput>), ApiError> {
    check_nonce(&b.nonce)?;
    if b.items.len() > 50 {
        return Err(ApiError::bad_request("at most 50 different products in one hold"));
    }
    if let Some(i) = b.items.iter().find(|i| !(1..=MAX_LINE_QTY).contains(&i.qty)) {
        return Err(ApiError::bad_request(format!(
            "qty of '{}' must be 1 to {MAX_LINE_QTY}",
            i.sku
        )));
    }
    Ok((
        HoldRequest {
            drop: DropId(drop),
            items: b.items.into_iter().map(|i| (Sku(i.sku), i.qty)).collect(),
            attendee_code: b.attendee_code,
            nonce: b.nonce,
            staff: p.actor.clone(),
            now: st.clock.now(),
            ttl_ms: st.config.hold_ttl_ms,
            apart: super::forward::is_apart(ext),
            satellite: super::forward::counter(ext).satellite,
        },
        b.tender,
    ))
}

pub async fn hold(
    State(st): State<AppState>,
    p: Principal,
    ext: Extensions,
    Path(drop): Path<String>,
    Json(b): Json<HoldBody>,
) -> Result<(StatusCode, Json<impl Serialize>), ApiError> {
    p.require(Role::Merch)?;
    let (req, tender) = hold_request(&st, &p, &ext, drop, b)?;
    if tender.is_some() {
        return Err(ApiError::bad_request(
            "a hold takes no tender: pay at POST /api/v1/holds/{id}/checkout",
        ));
    }
    let hold = st.store.create_hold(req).await?;
    Ok((StatusCode::CREATED, Json(hold)))
}

pub async fn sell(
    State(st): State<AppState>,
    p: Principal,
    ext: Extensions,
    Path(drop): Path<String>,
    Json(b): Json<HoldBody>,
) -> Result<Response, ApiError> {
    p.require(Role::Merch)?;
    let (req, t) = hold_request(&st, &p, &ext, drop, b)?;
    let t = tender(&st, &p, &ext, t).await?;
    Ok(order_response(st.store.sell_drop(req, t).await?))
}

pub async fn release(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    p.require(Role::Merch)?;
    st.store.release_hold(HoldId(id), p.actor, st.clock.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutBody {
    #[schemars(length(max = 128))]
    nonce: String,
    /// How the buyer pays.
    #[serde(default)]
    tender: Option<TenderInput>,
}

pub async fn checkout(
    State(st): State<AppState>,
    p: Principal,
    ext: Extensions,
    Path(id): Path<String>,
    Json(b): Json<CheckoutBody>,
) -> Result<Response, ApiError> {
    p.require(Role::Merch)?;
    check_nonce(&b.nonce)?;
    let t = tender(&st, &p, &ext, b.tender).await?;
    Ok(order_response(
        st.store
            .checkout_hold(
                HoldId(id),
                t,
                b.nonce,
                p.actor,
                st.clock.now(),
                super::forward::counter(&ext),
            )
            .await?,
    ))
}

pub async fn create(
    State(st): State<AppState>,
    p: Principal,
    Json(spec): Json<DropSpec>,
) -> Result<(StatusCode, Json<impl Serialize>), ApiError> {
    p.require(Role::Admin)?;
    let d = st.store.create_drop(spec, p.actor, st.clock.now()).await?;
    Ok((StatusCode::CREATED, Json(d)))
}

pub async fn update(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Json(spec): Json<DropSpec>,
) -> Result<Json<impl Serialize>, ApiError> {
    p.require(Role::Admin)?;
    if spec.id.as_str() != id {
        return Err(ApiError::bad_request(format!(
            "the body's id '{}' does not match the path's '{id}'",
            spec.id
        )));
    }
    Ok(Json(st.store.update_drop(spec, p.actor, st.clock.now()).await?))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestockBody {
    #[schemars(length(max = 64))]
    sku: String,
    #[schemars(range(min = 1))]
    quantity: u32,
    #[schemars(length(max = 500))]
    reason: String,
    /// Take the units from the event's pool of unassigned stock.
    #[serde(default)]
    from_pool: bool,
}

pub async fn restock(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Json(b): Json<RestockBody>,
) -> Result<Json<impl Serialize>, ApiError> {
    p.require(Role::Supervisor)?;
    if !(1..=MAX_STOCK).contains(&b.quantity) {
        return Err(ApiError::bad_request(format!("quantity must be 1 to {MAX_STOCK}")));
    }
    let d = st
        .store
        .restock(DropId(id), Sku(b.sku), b.quantity, b.reason, b.from_pool, p.actor, st.clock.now())
        .await?;
    Ok(Json(d))
}

pub async fn ledger(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Ledger>, ApiError> {
    p.require(Role::Merch)?;
    let (on_hand, ledger) = st.store.ledger(id).await?;
    Ok(Json(Ledger { on_hand, ledger }))
}

pub async fn pool(State(st): State<AppState>, p: Principal) -> Result<Json<Ledger>, ApiError> {
    p.require(Role::Merch)?;
    let (on_hand, ledger) = st.store.ledger(POOL.to_string()).await?;
    Ok(Json(Ledger { on_hand, ledger }))
}
