//! Selling tickets at the venue: walk-ups, scholarship claims, orders and
//! their receipts, voids and refunds, ticket QR images, proof checks.

use super::auth::Principal;
use super::error::ApiError;
use super::json::{Json, Query};
use super::session::{client_addr, staff_with_pin, Origin};
use super::AppState;
use crate::domain::error_code::ErrorCode;
use crate::domain::ids::{OrderId, TicketId, TierId};
use crate::domain::money::Tender;
use crate::domain::receipt::{render_text, ProofClaim, Receipt};
use crate::domain::role::Role;
use crate::store::sales::{ClaimRequest, CloseKind, OrderView, ProgramReport, WalkupRequest};
use axum::extract::{Path, State};
use axum::http::{header, Extensions, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// How the buyer pays, as a staff device sends it.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TenderInput {
    Cash {
        given_minor: i64,
    },
    Card {
        /// The external card terminal's slip reference.
        #[schemars(length(max = 128))]
        reference: String,
    },
    /// Comp needs a supervisor: either the caller is one, or a supervisor
    /// types their PIN on the seller's device.
    Comp {
        /// A supervisor's PIN, unless the caller is a supervisor.
        #[serde(default)]
        #[schemars(length(max = 64))]
        approver_pin: Option<String>,
        #[serde(default)]
        #[schemars(length(max = 128))]
        approver_name: Option<String>,
    },
}

/// Turns the device's tender into the domain's, checking comp approval.
pub(super) async fn tender(
    st: &AppState,
    p: &Principal,
    ext: &Extensions,
    t: Option<TenderInput>,
) -> Result<Option<Tender>, ApiError> {
    Ok(match t {
        None => None,
        Some(TenderInput::Cash { given_minor }) => Some(Tender::Cash { given_minor }),
        Some(TenderInput::Card { reference }) => Some(Tender::Card { reference }),
        Some(TenderInput::Comp { approver_pin, approver_name }) => {
            if p.actor.role.allows(Role::Supervisor) {
                Some(Tender::Comp { approved_by: p.actor.name.clone() })
            } else {
                let pin = approver_pin.filter(|p| !p.trim().is_empty()).ok_or_else(|| ApiError::new(axum::http::StatusCode::FORBIDDEN, ErrorCode::ApprovalRequired, "a comp needs a supervisor's approval: ask one to enter their PIN (approver_pin)"))?;
                let addr = client_addr(ext);
                let origin = Origin {
                    device: p.device_id.as_deref().and_then(|id| st.auth.device_by_id(id)),
                    addr,
                    label: format!(
                        "{} approving a comp at {}",
                        p.actor.name,
                        addr.map(|a| a.to_string()).unwrap_or_default()
                    ),
                };
                let approver = staff_with_pin(st, &origin, approver_name.as_deref(), pin, |s| {
                    s.role.allows(Role::Supervisor)
                        && approver_name.as_deref().is_none_or(|n| n == s.name)
                })
                .await
                .map_err(|e| {
                    if e.status.as_u16() == 401 {
                        ApiError::new(
                            axum::http::StatusCode::FORBIDDEN,
                            ErrorCode::ApprovalRefused,
                            "that PIN is not a supervisor's: the comp was not approved",
                        )
                    } else {
                        e
                    }
                })?;
                Some(Tender::Comp { approved_by: approver.name })
            }
        }
    })
}

/// What a sale answers (`OrderAnswer` in the OpenAPI document).
#[derive(Serialize, schemars::JsonSchema)]
#[schemars(rename = "Order")]
pub struct OrderAnswer {
    order_id: OrderId,
    kind: String,
    status: String,
    total_minor: i64,
    currency: String,
    change_minor: i64,
    tickets: Vec<NewTicket>,
    /// The order's tickets also scan at other boxes of the event.
    tickets_scan_elsewhere: bool,
    receipt: Receipt,
    receipt_text: String,
}

/// A ticket the sale minted, with where its QR image is.
#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct NewTicket {
    id: String,
    tier: String,
    code: String,
    qr: String,
}

pub(super) async fn check_seller(
    st: &AppState,
    p: &Principal,
    order: &OrderId,
) -> Result<(), ApiError> {
    let o = st.store.order(order.clone()).await?;
    if sees_codes(p, &o.receipt.staff) {
        Ok(())
    } else {
        Err(not_the_seller())
    }
}

pub(super) fn order_response(o: OrderView) -> Response {
    let replayed = o.replayed;
    let tickets = o
        .receipt
        .tickets
        .iter()
        .map(|t| NewTicket {
            id: t.id.clone(),
            tier: t.tier.clone(),
            code: t.code.clone(),
            qr: format!("/api/v1/tickets/{}/qr", t.id),
        })
        .collect();
    let body = OrderAnswer {
        receipt_text: format!("/api/v1/orders/{}/receipt", o.id),
        order_id: o.id,
        kind: o.kind,
        status: o.status,
        total_minor: o.receipt.total_minor,
        currency: o.receipt.currency.clone(),
        change_minor: o.receipt.change_minor,
        tickets,
        tickets_scan_elsewhere: o.tickets_scan_elsewhere,
        receipt: o.receipt,
    };
    let mut resp = axum::Json(body).into_response();
    if replayed {
        resp.headers_mut().insert(
            HeaderName::from_static("idempotent-replayed"),
            HeaderValue::from_static("true"),
        );
    }
    resp
}

pub(super) fn check_nonce(nonce: &str) -> Result<(), ApiError> {
    if nonce.is_empty() || nonce.len() > 128 || nonce.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "nonce must be 1 to 128 printable characters, fresh for each sale (a UUID is ideal)",
        ));
    }
    Ok(())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WalkupBody {
    #[schemars(length(max = 64))]
    tier: String,
    #[schemars(length(max = 128))]
    nonce: String,
    /// How the buyer pays; leave out when nothing is due (a free
    /// scholarship seat).
    #[serde(default)]
    tender: Option<TenderInput>,
    #[serde(default)]
    #[schemars(length(max = 64))]
    referral_code: Option<String>,
    /// The name printed on the ticket.
    #[serde(default)]
    #[schemars(length(max = 128))]
    holder: Option<String>,
}

pub async fn walkup(
    State(st): State<AppState>,
    p: Principal,
    ext: Extensions,
    Json(b): Json<WalkupBody>,
) -> Result<Response, ApiError> {
    p.require(Role::Merch)?;
    check_nonce(&b.nonce)?;
    let tender = tender(&st, &p, &ext, b.tender).await?;
    let order = st
        .store
        .sell_walkup(WalkupRequest {
            tier: TierId(b.tier),
            tender,
            referral: b.referral_code,
            holder: b.holder,
            nonce: b.nonce,
            staff: p.actor,
            now: st.clock.now(),
            apart: super::forward::is_apart(&ext),
            satellite: super::forward::counter(&ext).satellite,
        })
        .await?;
    Ok(order_response(order))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    /// The scholarship code, scanned or typed.
    #[schemars(length(max = 1024))]
    code: String,
    #[schemars(length(max = 128))]
    nonce: String,
    #[serde(default)]
    #[schemars(length(max = 64))]
    tier: Option<String>,
    /// How the buyer pays; leave out when nothing is due (a free
    /// scholarship seat).
    #[serde(default)]
    tender: Option<TenderInput>,
    #[serde(default)]
    #[schemars(length(max = 128))]
    holder: Option<String>,
}

pub async fn claim(
    State(st): State<AppState>,
    p: Principal,
    ext: Extensions,
    Json(b): Json<ClaimBody>,
) -> Result<Response, ApiError> {
    p.require_any(&[Role::Door, Role::Merch])?;
    check_nonce(&b.nonce)?;
    if b.code.trim().is_empty() {
        return Err(ApiError::bad_request(
            "code is required: the scholarship code the guest was given",
        ));
    }
    let tender = tender(&st, &p, &ext, b.tender).await?;
    let order = st
        .store
        .claim_scholarship(ClaimRequest {
            code: b.code,
            tier: b.tier.map(TierId),
            tender,
            holder: b.holder,
            nonce: b.nonce,
            staff: p.actor,
            now: st.clock.now(),
            satellite: super::forward::counter(&ext).satellite,
            apart: super::forward::is_apart(&ext),
        })
        .await?;
    Ok(order_response(order))
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Programs {
    programs: Vec<ProgramReport>,
}

pub async fn scholarships(
    State(st): State<AppState>,
    p: Principal,
) -> Result<Json<Programs>, ApiError> {
    p.require_any(&[Role::Door, Role::Merch])?;
    Ok(Json(Programs { programs: st.store.scholarship_report().await? }))
}

/// Orders, receipts and minted ticket codes admit people and show what
/// they paid: merch (and supervisors, admins) only.
/// Whether `p` may see the admitting codes of the tickets `seller` sold:
/// the seller (to hand them over, or reprint them) and supervisors. Other
/// merch staff see an order with its codes masked.
pub(super) fn sees_codes(p: &Principal, seller: &str) -> bool {
    p.actor.role.allows(Role::Supervisor) || p.actor.name == seller
}

/// The order as `p` may see it.
fn for_caller(p: &Principal, mut o: OrderView) -> OrderView {
    if !sees_codes(p, &o.receipt.staff) {
        for t in &mut o.receipt.tickets {
            t.code = super::checkins::mask_code(&t.code);
        }
    }
    o
}

fn not_the_seller() -> ApiError {
    ApiError::forbidden(
        "only the staff member who sold this order (or a supervisor) may see or print its tickets",
    )
}

pub async fn order(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    p.require(Role::Merch)?;
    Ok(order_response(for_caller(&p, st.store.order(OrderId(id)).await?)))
}

#[derive(Deserialize)]
pub struct ReceiptQuery {
    #[serde(default)]
    width: Option<usize>,
}

/// The receipt as plain text, as it will print.
pub async fn receipt_text(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Query(q): Query<ReceiptQuery>,
) -> Result<Response, ApiError> {
    p.require(Role::Merch)?;
    let width = q.width.unwrap_or(42);
    if !(24..=64).contains(&width) {
        return Err(ApiError::bad_request(
            "width must be 24 to 64 characters (32 for 58 mm paper, 42 or 48 for 80 mm)",
        ));
    }
    let o = for_caller(&p, st.store.order(OrderId(id)).await?);
    let zone = st.store.event().map(|e| e.manifest.event.timezone.clone());
    let mut text = render_text(&o.receipt, width, zone.as_deref().unwrap_or("UTC"));
    if o.status != "paid" {
        text.push_str(&format!("*** {} ***\n", o.status.to_uppercase()));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseBody {
    #[schemars(length(max = 500))]
    reason: String,
    /// The supervisor's explicit yes when a ticket of the order was
    /// already admitted at the door (409 `ticket_admitted` otherwise).
    #[serde(default)]
    admitted_confirmed: bool,
}

async fn close(
    st: AppState,
    p: Principal,
    ext: Extensions,
    id: String,
    kind: CloseKind,
    b: CloseBody,
) -> Result<Response, ApiError> {
    p.require(Role::Supervisor)?;
    let now = st.clock.now();
    let order = OrderId(id);
    // At a satellite apart: its units and seats go back to its escrow.
    let apart = super::forward::is_apart(&ext);
    Ok(order_response(
        st.store
            .close_order(order, kind, b.reason, b.admitted_confirmed, p.actor, now, apart)
            .await?,
    ))
}

pub async fn void(
    State(st): State<AppState>,
    p: Principal,
    ext: Extensions,
    Path(id): Path<String>,
    Json(b): Json<CloseBody>,
) -> Result<Response, ApiError> {
    close(st, p, ext, id, CloseKind::Void, b).await
}

pub async fn refund(
    State(st): State<AppState>,
    p: Principal,
    ext: Extensions,
    Path(id): Path<String>,
    Json(b): Json<CloseBody>,
) -> Result<Response, ApiError> {
    close(st, p, ext, id, CloseKind::Refund, b).await
}

/// A ticket minted on this box, as a QR code PNG to show or print.
pub async fn ticket_qr(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    p.require(Role::Merch)?;
    let (code, seller) = st.store.minted_code(TicketId(id)).await?;
    if !sees_codes(&p, &seller) {
        return Err(not_the_seller());
    }
    let png = crate::domain::qr::png(&code).map_err(|e| {
        tracing::error!(error = %e, "QR rendering failed");
        ApiError::internal()
    })?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}

#[derive(Deserialize)]
pub struct VerifyQuery {
    proof: String,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Verified {
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    claim: Option<ProofClaim>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
}

/// Checks a receipt's proof code (from its QR) against this box's keys.
pub async fn verify_receipt(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<VerifyQuery>,
) -> Result<Json<Verified>, ApiError> {
    p.require(Role::Merch)?;
    let claim = st.store.verify_receipt_proof(&q.proof);
    let message = claim
        .is_none()
        .then_some("not a receipt from this box or a box the organiser trusts, or it was altered");
    Ok(Json(Verified { valid: claim.is_some(), claim, message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_answer_is_the_documented_one() {
        let receipt = crate::domain::receipt::tests::sample();
        let answer = OrderAnswer {
            order_id: OrderId(receipt.order_id.clone()),
            kind: "walkup".into(),
            status: "paid".into(),
            total_minor: receipt.total_minor,
            currency: receipt.currency.clone(),
            change_minor: receipt.change_minor,
            tickets: vec![NewTicket {
                id: "W-1".into(),
                tier: "ga".into(),
                code: "VB1:...".into(),
                qr: "/api/v1/tickets/W-1/qr".into(),
            }],
            tickets_scan_elsewhere: true,
            receipt_text: "/api/v1/orders/O-1/receipt".into(),
            receipt,
        };
        super::super::contract::assert_documented("Order", &answer);
    }
}
