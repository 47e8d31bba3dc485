//! A satellite's staff calls go to the primary (ARCHITECTURE.md,
//! "Satellites"): every `/api/v1/` request except this box's own pair
//! status is sent on, streamed both ways, to the primary's staff API over
//! HTTPS pinned to the pair's CA, with the caller's own credential (devices
//! and sessions are replicated, so the primary knows them). The primary's
//! answer goes back unchanged: one authority for verdicts, nonces and
//! receipts. While the link to the primary is down, reads are answered
//! from the satellite's copy and check-ins decided by it (`Apart`); other
//! writes get `503 primary_unreachable`.

use super::error::ApiError;
use super::AppState;
use crate::domain::error_code::ErrorCode;
use crate::store::replica::Role;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use std::sync::OnceLock;
use std::time::Duration;

/// How long the primary has to accept the connection, and to start its
/// answer (the door's calls take milliseconds; a live feed's body then
/// streams for as long as it lasts).
const CONNECT: Duration = Duration::from_secs(1);
const ANSWER: Duration = Duration::from_secs(10);
/// A guest at the door (a phone's check-in, a USB scanner's) waits at
/// most this for the primary; then the satellite decides (the same nonce,
/// if the primary did too, is merged once).
const DOOR_ANSWER: Duration = Duration::from_secs(3);

/// The client to the primary, made at the first forwarded call.
#[derive(Default)]
pub struct Forwarder {
    client: OnceLock<Result<reqwest::Client, String>>,
    /// This satellite's node name, told with each forwarded call.
    node: tokio::sync::OnceCell<String>,
}

impl Forwarder {
    fn client(&self, st: &AppState) -> Result<&reqwest::Client, String> {
        self.client
            .get_or_init(|| {
                let ca = crate::net::tls::load_or_create_ca(
                    &st.replication.config.data_dir,
                    st.store.box_id(),
                )
                .map_err(|e| format!("no certificate authority: {e}"))?;
                reqwest::Client::builder()
                    .use_preconfigured_tls(crate::net::tls::pinned_client(&ca.fingerprint()))
                    .connect_timeout(CONNECT)
                    .tcp_nodelay(true)
                    .pool_idle_timeout(Duration::from_secs(60))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// Calls this box answers itself even as a satellite: its own pair status
/// and promotion (`/api/v1/standby…`), its own USB devices
/// (`/api/v1/devices…`: a scan there goes to the primary by the scanner's
/// path).
fn local(path: &str) -> bool {
    let own = |p: &str| path == p || path.starts_with(&format!("{p}/"));
    !path.starts_with("/api/v1/") || own("/api/v1/standby") || own("/api/v1/devices")
}

/// Connection-level headers, which each hop sets for itself.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
    )
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !hop_by_hop(name) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// Marks a request the satellite decides itself: the primary cannot be
/// reached, and the call has an apart mode (a check-in, or a sale out of
/// the satellite's escrow).
#[derive(Clone, Copy, Debug)]
pub struct Apart;

/// Whether this request is decided here, apart from the primary.
pub fn is_apart(ext: &axum::http::Extensions) -> bool {
    ext.get::<Apart>().is_some()
}

/// On the primary: the satellite that forwarded this request (its node
/// name, signed with the box key with the caller's address).
#[derive(Clone, Debug)]
pub struct ForwardedBy(pub String);

/// Where a sale is made, for the store: apart here, or forwarded by a
/// satellite (whose printer prints its receipt).
pub fn counter(ext: &axum::http::Extensions) -> crate::store::drops::Counter {
    crate::store::drops::Counter {
        apart: is_apart(ext),
        satellite: ext.get::<ForwardedBy>().map(|f| f.0.clone()),
    }
}

/// What a satellite decides itself when the primary cannot be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ApartMode {
    /// Forwarded to the primary and, when it does not answer in time,
    /// decided here (a guest at the door does not wait).
    Checkin,
    /// Decided here only while the link is down: a sale the primary may
    /// have made could not be undone, so one that got no answer is not
    /// sold a second time here.
    Sale,
}

fn apart_mode(method: &Method, path: &str) -> Option<ApartMode> {
    if method != Method::POST {
        return None;
    }
    let seg: Vec<&str> = path.trim_start_matches("/api/v1/").split('/').collect();
    match seg.as_slice() {
        ["checkins"] => Some(ApartMode::Checkin),
        ["walkups"]
        | ["scholarships", "claims"]
        | ["drops", _, "holds"]
        | ["drops", _, "sales"]
        | ["holds", _, "checkout"]
        | ["orders", _, "void" | "refund"] => Some(ApartMode::Sale),
        _ => None,
    }
}

/// The middleware: on a satellite, `/api/v1/` goes to the primary.
pub async fn satellite(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if st.store.replica().role() != Role::Satellite || local(req.uri().path()) {
        return next.run(req).await;
    }
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    // Apart, reads come from the copy (the app loads its event, its
    // session, the lists): exact up to the cut.
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    if read && !st.replication.connected() {
        return next.run(req).await;
    }
    let mode = apart_mode(req.method(), req.uri().path());
    if mode.is_none() || (mode == Some(ApartMode::Sale) && st.replication.connected()) {
        let (parts, body) = req.into_parts();
        let stream = body.into_data_stream().map_err(std::io::Error::other);
        let body = reqwest::Body::wrap_stream(stream);
        let client = peer_ip(&parts.extensions);
        return match send(&st, parts.method, &path, &parts.headers, client, body, ANSWER).await {
            Ok(r) => r,
            Err(why) => unreachable_answer(why),
        };
    }
    // Small JSON, kept until the primary has answered: if it cannot, the
    // satellite decides the same call itself.
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, super::policy::JSON_BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::BadRequest,
                "the request body is too large for a check-in or a sale",
            )
            .into_response()
        }
    };
    // While the link is down the primary is not asked at all: the door
    // does not wait a connect timeout per scan.
    if st.replication.connected() {
        let body = reqwest::Body::from(bytes.clone());
        let client = peer_ip(&parts.extensions);
        match send(&st, parts.method.clone(), &path, &parts.headers, client, body, DOOR_ANSWER)
            .await
        {
            Ok(r) => return r,
            Err(why) => {
                tracing::warn!(error = %why, "the primary did not answer: deciding here, apart")
            }
        }
    }
    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut().insert(Apart);
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(
        HeaderName::from_static("x-venuebox-apart"),
        axum::http::HeaderValue::from_static("true"),
    );
    resp
}

fn unreachable_answer(why: String) -> Response {
    tracing::warn!(error = %why, "a call could not be forwarded to the primary");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::PrimaryUnreachable,
        format!("this box is a satellite and cannot reach the primary ({why}): check the link between the boxes, or use the main entrance"),
    )
    .into_response()
}

async fn send(
    st: &AppState,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    caller: Option<std::net::IpAddr>,
    body: reqwest::Body,
    within: Duration,
) -> Result<Response, String> {
    let base = st
        .replication
        .peer_web()
        .ok_or("the primary's address is not known yet (the link has not come up)")?;
    let client = st.forward.client(st)?;
    let mut out_headers = HeaderMap::new();
    copy_headers(headers, &mut out_headers);
    // Who called, signed with the box key, so the primary's budgets count
    // each phone (a guest's bad PINs lock that guest, not the satellite).
    if let Some(ip) = caller {
        let node = st
            .forward
            .node
            .get_or_try_init(|| st.store.node_name())
            .await
            .map_err(|e| e.to_string())?;
        let claim = client_claim(&st.store.identity().key, ip, node, st.clock.now());
        if let Ok(v) = axum::http::HeaderValue::from_str(&claim) {
            out_headers.insert(CLIENT_HEADER, v);
        }
    }
    let forwarded = client.request(method, format!("{base}{path}")).headers(out_headers).body(body);
    let answer = tokio::time::timeout(within, forwarded.send())
        .await
        .map_err(|_| format!("no answer from {base} within {within:?}"))?
        .map_err(|e| format!("{base}: {e}"))?;
    let mut out = Response::builder().status(answer.status());
    if let Some(h) = out.headers_mut() {
        copy_headers(answer.headers(), h);
    }
    out.body(Body::from_stream(answer.bytes_stream())).map_err(|e| e.to_string())
}

/// The caller's address as a satellite tells the primary: `IP UNIX_MS
/// NODE SIGNATURE` (the box key over the three; every box of the event
/// holds it), NODE the satellite's own name.
const CLIENT_HEADER: &str = "x-venuebox-client";
/// How old a signed caller address may be.
const CLIENT_CLAIM_MS: i64 = 60_000;

fn peer_ip(ext: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    ext.get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip())
}

fn client_message(ip: std::net::IpAddr, at: i64, node: &str) -> Vec<u8> {
    format!("venuebox forwarded caller\n{ip}\n{at}\n{node}").into_bytes()
}

fn client_claim(
    key: &ed25519_dalek::SigningKey,
    ip: std::net::IpAddr,
    node: &str,
    at: i64,
) -> String {
    use base64::Engine;
    use ed25519_dalek::Signer;
    let sig = key.sign(&client_message(ip, at, node));
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.to_bytes());
    format!("{ip} {at} {node} {sig}")
}

/// The caller's address a satellite vouched for, if the claim is fresh
/// and signed with this box's key.
fn verify_claim(
    key: &ed25519_dalek::VerifyingKey,
    claim: &str,
    now: i64,
) -> Option<(std::net::IpAddr, String)> {
    use base64::Engine;
    let mut parts = claim.split(' ');
    let (ip, at, node, sig) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let (ip, at): (std::net::IpAddr, i64) = (ip.parse().ok()?, at.parse().ok()?);
    if parts.next().is_some() || (now - at).abs() > CLIENT_CLAIM_MS {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig).ok()?;
    let sig = ed25519_dalek::Signature::from_slice(&bytes).ok()?;
    key.verify_strict(&client_message(ip, at, node), &sig).ok().map(|_| (ip, node.to_string()))
}

/// On every box: a request a satellite forwarded counts as its caller's
/// (the signed `x-venuebox-client`), and the satellite's own address as
/// staff's; the header is taken off either way, so nobody else can claim
/// an address.
pub async fn trust_satellite(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    if let Some(v) = req.headers_mut().remove(CLIENT_HEADER) {
        let key = st.store.identity().key.verifying_key();
        let claimed = v.to_str().ok().and_then(|c| verify_claim(&key, c, st.clock.now()));
        if let Some((ip, node)) = claimed {
            if let Some(tcp) = peer_ip(req.extensions()) {
                st.conns.mark_known(tcp);
            }
            req.extensions_mut().insert(ConnectInfo(std::net::SocketAddr::new(ip, 0)));
            req.extensions_mut().insert(ForwardedBy(node));
        }
    }
    next.run(req).await
}

/// The file a satellite keeps its scanners' door credential in (made by
/// the primary at `join --satellite`, 0600).
pub const SCANNER_TOKEN_FILE: &str = "satellite-scanner-token";

/// A satellite's USB scanners, joined: each scan is a check-in at the
/// primary (`POST /api/v1/checkins`) as the satellite's own door
/// credential, with the scanner as the device. Not reachable (the link
/// down, no answer): `None`, and the pipeline decides apart.
struct ScannerUpstream {
    client: reqwest::Client,
    replication: std::sync::Arc<crate::replication::Replication>,
    token: String,
}

/// On a satellite, sends its scanners' scans to the primary while joined.
pub fn attach_scanners(st: &AppState) {
    if st.store.replica().role() != Role::Satellite {
        return;
    }
    let path = st.replication.config.data_dir.join(SCANNER_TOKEN_FILE);
    let token = match std::fs::read_to_string(&path) {
        Ok(t) => t.trim().to_string(),
        Err(e) => {
            return tracing::warn!(file = %path.display(), error = %e, "no scanner credential: this satellite's scanners decide on their own (join it again to get one)");
        }
    };
    match st.forward.client(st) {
        Ok(client) => st.devices.pipeline.set_upstream(std::sync::Arc::new(ScannerUpstream {
            client: client.clone(),
            replication: st.replication.clone(),
            token,
        })),
        Err(e) => tracing::warn!(error = %e, "this satellite's scanners cannot reach the primary"),
    }
}

impl crate::devices::pipeline::Upstream for ScannerUpstream {
    fn check_in<'a>(
        &'a self,
        req: &'a crate::store::scans::ScanRequest,
    ) -> futures_util::future::BoxFuture<
        'a,
        Option<Result<crate::store::scans::ScanRecord, crate::store::StoreError>>,
    > {
        Box::pin(async move {
            if !self.replication.connected() {
                return None;
            }
            let base = self.replication.peer_web()?;
            let body = serde_json::json!({
                "code": req.code,
                "gate": req.gate,
                "direction": req.direction.as_str(),
                "nonce": req.nonce,
                "device": req.device,
            });
            let sent = self
                .client
                .post(format!("{base}/api/v1/checkins"))
                .bearer_auth(&self.token)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send();
            let answer = match tokio::time::timeout(DOOR_ANSWER, sent).await {
                Ok(Ok(a)) => a,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the primary did not take a scanner's scan: deciding here, apart");
                    return None;
                }
                Err(_) => return None,
            };
            let status = answer.status();
            let bytes = answer.bytes().await.unwrap_or_default();
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            if !status.is_success() {
                let why = json["error"]["message"].as_str().unwrap_or("no reason given");
                return Some(Err(crate::store::StoreError::Internal(format!(
                    "the primary refused the scan ({status}): {why}"
                ))));
            }
            Some(record_of(req, &json))
        })
    }
}

/// The primary's check-in answer as the scan record the pipeline signals
/// and publishes.
fn record_of(
    req: &crate::store::scans::ScanRequest,
    a: &serde_json::Value,
) -> Result<crate::store::scans::ScanRecord, crate::store::StoreError> {
    use crate::domain::checkin::Reason;
    use crate::domain::ids::{ScanId, TicketId, TierId};
    use crate::store::scans::{ScanRecord, Verdict};
    let bad = || {
        crate::store::StoreError::Internal(format!("the primary's answer is not a check-in: {a}"))
    };
    let verdict = match a["verdict"].as_str() {
        Some("admit") => Verdict::Admit,
        Some("reject") => Verdict::Reject,
        _ => return Err(bad()),
    };
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    Ok(ScanRecord {
        id: ScanId(a["scan_id"].as_i64().ok_or_else(bad)?),
        nonce: req.nonce.clone(),
        code: req.code.clone(),
        gate: req.gate.clone(),
        direction: req.direction,
        verdict,
        reason: a["reason"].as_str().and_then(Reason::parse),
        ticket: text(&a["ticket"]["id"]).map(TicketId),
        tier: text(&a["ticket"]["tier"]).map(TierId),
        holder: text(&a["ticket"]["holder"]),
        prior: None,
        scanned_at: None,
        recorded_at: a["recorded_at"]
            .as_str()
            .and_then(|t| crate::domain::time::parse_rfc3339(t).ok())
            .unwrap_or(req.now),
        staff: req.staff.clone(),
        device: req.device.clone(),
        undone_at: None,
        undone_by: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pair_status_stays_on_the_satellite_and_everything_else_goes() {
        assert!(local("/api/v1/standby"));
        assert!(local("/api/v1/standby/promote"));
        assert!(local("/healthz"));
        assert!(local("/metrics"));
        assert!(local("/"));
        assert!(!local("/api/v1/checkins"));
        assert!(!local("/api/v1/sessions"));
        assert!(!local("/api/v1/standbyx"));
        assert!(!local("/api/v1/uploads/abc"));
        assert!(local("/api/v1/devices"));
        assert!(local("/api/v1/devices/scan"));
    }

    #[test]
    fn only_a_fresh_caller_address_signed_with_the_box_key_is_taken() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
        let ip: std::net::IpAddr = "10.0.0.23".parse().unwrap();
        let claim = client_claim(&key, ip, "node-s1", 1_000_000);
        let mine = key.verifying_key();
        assert_eq!(verify_claim(&mine, &claim, 1_000_000 + 30_000), Some((ip, "node-s1".into())));
        assert_eq!(verify_claim(&mine, &claim, 1_000_000 + CLIENT_CLAIM_MS + 1), None, "stale");
        assert_eq!(verify_claim(&other.verifying_key(), &claim, 1_000_000), None, "another key");
        let forged = claim.replacen("10.0.0.23", "10.0.0.24", 1);
        assert_eq!(verify_claim(&mine, &forged, 1_000_000), None, "another address");
        let elsewhere = claim.replacen("node-s1", "node-s2", 1);
        assert_eq!(verify_claim(&mine, &elsewhere, 1_000_000), None, "another satellite's printer");
        assert_eq!(verify_claim(&mine, "10.0.0.23 1000000", 1_000_000), None);
        assert_eq!(verify_claim(&mine, &format!("{claim} x"), 1_000_000), None);
    }
}
