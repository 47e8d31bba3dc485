//! The HTTP API: the axum router, its shared state, and one handler module
//! per resource. Only this module knows HTTP and JSON shapes; it turns
//! requests into store calls and store results into answers.
//!
//! Every mutating endpoint takes a [`auth::Principal`] and checks its role
//! before doing anything.

pub mod auth;
mod captures;
mod checkins;
pub mod conn;
#[cfg(test)]
mod contract;
mod devices;
mod drops;
pub mod error;
mod event;
pub mod feeds;
pub mod forward;
mod json;
pub mod lan;
pub mod lookup;
mod ops;
mod pairing;
pub mod policy;
mod sales;
pub mod schemas;
mod session;
pub mod signin;
mod standby;
mod sync;
pub mod tus;
pub mod web;

use crate::domain::keys::TrustedKeys;
use crate::domain::time::Millis;
use crate::parts::Venuebox;
use axum::extract::DefaultBodyLimit;
use axum::Router;
use std::sync::Arc;

pub use error::ApiError;
pub use pairing::CODE_TTL_MS as PAIRING_CODE_TTL_MS;

/// Settings the handlers need.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// How long after a check-in a supervisor may undo it.
    pub undo_window_ms: Millis,
    /// How long a staff sign-in lasts.
    pub session_ttl_ms: Millis,
    /// How long a cart hold keeps drop stock for a buyer.
    pub hold_ttl_ms: Millis,
    pub captures: crate::media::uploads::CaptureConfig,
    /// Organiser keys pinned on the command line; when empty, the first
    /// manifest's own keys are trusted.
    pub pinned_keys: TrustedKeys,
    /// A refused sign-in or pairing is answered after this long.
    pub refusal_delay_ms: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            undo_window_ms: 120_000,
            session_ttl_ms: 12 * 3600 * 1000,
            hold_ttl_ms: 120_000,
            captures: crate::media::uploads::CaptureConfig::default(),
            pinned_keys: TrustedKeys::default(),
            refusal_delay_ms: 1000,
        }
    }
}

/// Runs the readiness rehearsal for `POST /api/v1/rehearsal`. The
/// rehearsal sits above the server (it starts a scratch box of its own),
/// so the HTTP layer does not import it: the binary hands one in
/// (`rehearsal::FromRunningBox`).
pub trait Rehearse: Send + Sync {
    fn rehearse(
        &self,
        parts: Venuebox,
        expected_capture_gb: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = crate::domain::readiness::Report> + Send>>;
}

/// What every request shares: the box's parts, and what only the HTTP
/// layer needs, behind one `Arc` (axum clones the state for each request
/// and layer: one count, not two dozen). The parts are reached through it
/// as its own fields (`st.store`), by `Deref`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The fields of [`AppState`].
pub struct Shared {
    pub parts: Venuebox,
    pub config: Arc<ApiConfig>,
    pub auth: Arc<auth::AuthState>,
    /// The listener's caps and timeouts (read by `serve`).
    pub conn: Arc<conn::ConnLimits>,
    /// Connections open per class, and the addresses staff use (marked
    /// by every authenticated request, read by every accept).
    pub conns: Arc<conn::ConnBudget>,
    /// Live feeds open per session and in total.
    pub feeds: Arc<feeds::FeedSlots>,
    /// Guest searches per staff member per minute.
    pub lookups: Arc<lookup::LookupBudget>,
    /// What runs `POST /api/v1/rehearsal`, handed in by the binary once
    /// (unset: the endpoint says to rehearse on the box's console).
    pub rehearse: std::sync::OnceLock<Arc<dyn Rehearse>>,
    /// On a satellite: the client its staff's calls go to the primary with.
    pub forward: Arc<forward::Forwarder>,
}

impl AppState {
    /// The HTTP layer over `parts`, with fresh sessions and budgets.
    pub fn new(parts: Venuebox, config: ApiConfig, conn: conn::ConnLimits) -> AppState {
        AppState(Arc::new(Shared {
            parts,
            config: Arc::new(config),
            auth: Default::default(),
            conn: Arc::new(conn),
            conns: Default::default(),
            feeds: Default::default(),
            lookups: Default::default(),
            rehearse: Default::default(),
            forward: Default::default(),
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl std::ops::Deref for Shared {
    type Target = Venuebox;
    fn deref(&self) -> &Venuebox {
        &self.parts
    }
}

/// Declares a set of routes once, as both the router and the list of
/// `(path, methods)` it serves: the test holds the list (so the router)
/// equal to the OpenAPI document, which `policy::authorize` enforces.
macro_rules! routes {
    ($list:ident, $build:ident; $($path:literal => $($method:ident $handler:path),+ $(; layer $layer:expr)?;)*) => {
        /// `(path, methods)` of every route the matching builder serves.
        pub const $list: &[(&str, &[&str])] = &[$(($path, &[$(stringify!($method)),+])),*];

        fn $build() -> Router<AppState> {
            Router::new()$(.route($path, {
                let r = axum::routing::MethodRouter::new()$(.$method($handler))+;
                $(let r = r.layer($layer);)?
                r
            }))*
        }
    };
}

routes! { ROUTES, api_routes;
    "/healthz" => get ops::healthz;
    "/api/v1/clock" => put ops::set_clock;
    "/api/v1/rehearsal" => post ops::rehearse;
    "/metrics" => get ops::metrics;
    "/api/v1/openapi.json" => get ops::openapi;
    "/api/v1/session" => post session::sign_in, get session::whoami, delete session::sign_out;
    "/api/v1/sessions" => get session::list;
    "/api/v1/sessions/{id}" => delete session::revoke;
    "/api/v1/sign-in-locks" => delete session::clear_locks;
    "/api/v1/pairing-codes" => post pairing::create_code;
    "/api/v1/pairing/print" => post pairing::print;
    "/api/v1/paired-devices" => get pairing::list, post pairing::pair;
    "/api/v1/paired-devices/{id}" => delete pairing::revoke;
    "/api/v1/event" => get event::show;
    "/api/v1/manifest" => post event::import; layer DefaultBodyLimit::max(policy::MANIFEST_BODY_LIMIT);
    "/api/v1/checkins" => post checkins::create, get checkins::list;
    "/api/v1/checkins/{id}/undo" => post checkins::undo;
    "/api/v1/tickets" => get lookup::find;
    "/api/v1/stats" => get checkins::stats;
    "/api/v1/walkups" => post sales::walkup;
    "/api/v1/scholarships" => get sales::scholarships;
    "/api/v1/scholarships/claims" => post sales::claim;
    "/api/v1/orders/{id}" => get sales::order;
    "/api/v1/orders/{id}/receipt" => get sales::receipt_text;
    "/api/v1/orders/{id}/void" => post sales::void;
    "/api/v1/orders/{id}/refund" => post sales::refund;
    "/api/v1/tickets/{id}/qr" => get sales::ticket_qr;
    "/api/v1/receipts/verify" => get sales::verify_receipt;
    "/api/v1/drops" => get drops::list, post drops::create;
    "/api/v1/drops/feed" => get drops::feed;
    "/api/v1/drops/{id}" => get drops::show, put drops::update;
    "/api/v1/drops/{id}/restock" => post drops::restock;
    "/api/v1/drops/{id}/ledger" => get drops::ledger;
    "/api/v1/drops/{id}/holds" => post drops::hold;
    "/api/v1/drops/{id}/sales" => post drops::sell;
    "/api/v1/holds/{id}" => delete drops::release;
    "/api/v1/holds/{id}/checkout" => post drops::checkout;
    "/api/v1/pool" => get drops::pool;
    "/api/v1/creators/{id}/captures" => get captures::by_creator;
    "/api/v1/creators/{id}/summary" => get captures::summary;
    "/api/v1/captures/check" => post captures::check;
    "/api/v1/captures/{sha256}" => head captures::exists;
    "/api/v1/captures/{sha256}/thumbnail" => get captures::thumbnail;
    "/api/v1/captures/{sha256}/hide" => post captures::hide;
    "/api/v1/upload-links" => post captures::create_link;
    "/api/v1/open-uploads" => get tus::list_open, delete tus::clear_owner;
    "/api/v1/open-uploads/{id}" => delete tus::clear_open;
    "/api/v1/devices" => get devices::list;
    "/api/v1/devices/scan" => post devices::inject;
    "/api/v1/devices/test" => post devices::self_test;
    "/api/v1/scans/feed" => get devices::feed;
    "/api/v1/orders/{id}/print" => post devices::reprint;
    "/api/v1/print-jobs" => get devices::print_jobs;
    "/api/v1/sync" => get sync::status;
    "/api/v1/sync/now" => post sync::now;
    "/api/v1/sync/manifest-freeze" => put sync::freeze;
    "/api/v1/standby" => get standby::status;
    "/api/v1/standby/codes" => post standby::create_code;
    "/api/v1/standby/join" => post standby::join;
    "/api/v1/standby/promote" => post standby::promote;
}

// tus answers carry Tus-Resumable on every response, errors included.
routes! { UPLOAD_ROUTES, upload_routes;
    "/api/v1/uploads" => post tus::create, options tus::options;
    "/api/v1/uploads/" => post tus::create, options tus::options;
    "/api/v1/uploads/{id}" => head tus::head, patch tus::patch, delete tus::delete, options tus::options;
}

/// Every route: `policy::authorize` runs on each before its handler (the
/// caller's role from the OpenAPI document's `x-roles`, and the body size,
/// are checked before any body is read).
pub fn router(state: AppState) -> Router {
    let authorize = || axum::middleware::from_fn_with_state(state.clone(), policy::authorize);
    let uploads = upload_routes()
        .route_layer(authorize())
        .layer(axum::middleware::map_response(tus::add_tus_resumable));
    api_routes()
        .route_layer(authorize())
        .layer(DefaultBodyLimit::max(policy::JSON_BODY_LIMIT))
        .merge(uploads)
        .merge(web::routes())
        .fallback(ops::not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), forward::satellite))
        .layer(axum::middleware::from_fn_with_state(state.clone(), forward::trust_satellite))
        .layer(cors(state.clone()))
        .layer(axum::middleware::from_fn_with_state(state.clone(), tus::options_beside_cors))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Every answer: no MIME sniffing, never inside a frame (the staff app
/// must not be clickjacked from a page on the guest Wi-Fi).
async fn security_headers(mut r: axum::response::Response) -> axum::response::Response {
    use axum::http::HeaderValue;
    let h = r.headers_mut();
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    // The staff app's pages bring a stricter policy of their own.
    h.entry("content-security-policy")
        .or_insert(HeaderValue::from_static("frame-ancestors 'none'"));
    r
}

/// HTTPS answers also tell browsers to use nothing but HTTPS for a year.
pub async fn hsts(mut r: axum::response::Response) -> axum::response::Response {
    r.headers_mut().insert(
        "strict-transport-security",
        axum::http::HeaderValue::from_static("max-age=31536000"),
    );
    r
}

/// Whether `origin` is one of the box's own: its mDNS name, an address
/// its certificate covers, or loopback. Other sites get no CORS grant.
fn own_origin(st: &AppState, origin: &axum::http::HeaderValue) -> bool {
    let Some(rest) = origin
        .to_str()
        .ok()
        .and_then(|o| o.strip_prefix("https://").or_else(|| o.strip_prefix("http://")))
    else {
        return false;
    };
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        rest.split(':').next().unwrap_or("")
    };
    if host == "localhost" {
        return true;
    }
    if host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
        return true;
    }
    st.lan.as_ref().is_some_and(|l| l.covers(host))
}

/// The box's own pages (and tus-js-client in them) may call it from
/// another of its origins (its pairing page, another of its addresses);
/// no other site may.
fn cors(st: AppState) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, Method};
    let h = |names: &[&'static str]| {
        names.iter().map(|n| HeaderName::from_static(n)).collect::<Vec<_>>()
    };
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::AllowOrigin::predicate(move |origin, _| {
            own_origin(&st, origin)
        }))
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(h(&[
            "authorization",
            "content-type",
            "tus-resumable",
            "upload-length",
            "upload-offset",
            "upload-metadata",
            "upload-defer-length",
            "upload-checksum",
            "upload-concat",
            "x-http-method-override",
            "x-requested-with",
            "x-venuebox-epoch",
        ]))
        .expose_headers(h(&[
            "location",
            "tus-resumable",
            "tus-version",
            "tus-extension",
            "tus-max-size",
            "tus-checksum-algorithm",
            "upload-offset",
            "upload-length",
            "upload-metadata",
            "upload-defer-length",
            "upload-expires",
            "idempotent-replayed",
        ]))
        .max_age(std::time::Duration::from_secs(86_400))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn state(dir: &std::path::Path) -> AppState {
        crate::server::open(&crate::server::Config::new(dir), crate::clock::Clock::system())
            .unwrap()
    }

    async fn call(app: Router, req: Request<Body>) -> (StatusCode, serde_json::Value) {
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or_default())
    }

    #[tokio::test]
    async fn a_box_without_an_event_is_healthy_and_says_what_to_load() {
        let dir = tempfile::tempdir().unwrap();
        let st = state(dir.path());
        let app = router(st.clone());
        let (status, health) =
            call(app.clone(), Request::get("/healthz").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(health["event"], serde_json::Value::Null);
        let token = st
            .store
            .create_session(
                crate::domain::role::Actor {
                    name: "t".into(),
                    role: crate::domain::role::Role::Door,
                },
                st.clock.now(),
                60_000,
            )
            .await
            .unwrap()
            .0;
        let req = Request::post("/api/v1/checkins")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(r#"{"code":"X-12345678","gate":"main","nonce":"n1"}"#))
            .unwrap();
        let (status, body) = call(app.clone(), req).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(
            body["error"]["message"].as_str().unwrap().contains("import the event manifest"),
            "{body}"
        );
        let req = Request::post("/api/v1/session")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"pin":"1111"}"#))
            .unwrap();
        let (status, body) = call(app.clone(), req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], "device_not_paired");
        let actor = crate::domain::role::Actor {
            name: "t".into(),
            role: crate::domain::role::Role::Supervisor,
        };
        let (code, _) = st.store.create_pairing_code(actor, st.clock.now(), 60_000).await.unwrap();
        let req =
            Request::post("/api/v1/paired-devices").header("content-type", "application/json");
        let (status, paired) = call(
            app.clone(),
            req.body(Body::from(format!(r#"{{"code":"{code}","name":"tablet"}}"#))).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{paired}");
        let sign_in =
            format!(r#"{{"pin":"1111","device":"{}"}}"#, paired["credential"].as_str().unwrap());
        let req = Request::post("/api/v1/session")
            .header("content-type", "application/json")
            .body(Body::from(sign_in))
            .unwrap();
        let (status, body) = call(app, req).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(body["error"]["message"].as_str().unwrap().contains("venuebox token"));
    }

    /// The router serves exactly the documented operations, method by
    /// method (the lists come from the same declarations as the router).
    #[test]
    fn every_route_in_the_router_is_in_the_openapi_document() {
        let doc: serde_json::Value = serde_json::from_str(ops::OPENAPI).unwrap();
        let mut routed = std::collections::BTreeSet::new();
        for (path, methods) in ROUTES.iter().chain(UPLOAD_ROUTES) {
            for m in *methods {
                assert!(routed.insert(format!("{m} {path}")), "{m} {path} is routed twice");
            }
        }
        let mut documented = std::collections::BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                documented.insert(format!("{method} {path}"));
            }
        }
        let missing: Vec<_> = routed.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&routed).collect();
        assert!(missing.is_empty(), "routed but not documented: {missing:?}");
        assert!(extra.is_empty(), "documented but not routed: {extra:?}");
    }

    #[test]
    fn the_openapi_document_states_the_binarys_version() {
        let doc: serde_json::Value = serde_json::from_str(ops::OPENAPI).unwrap();
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn the_openapi_document_lists_every_error_code_and_no_other() {
        let doc: serde_json::Value = serde_json::from_str(ops::OPENAPI).unwrap();
        let listed: std::collections::BTreeSet<&str> = doc["components"]["schemas"]["Error"]
            ["properties"]["error"]["properties"]["code"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let codes = crate::domain::error_code::ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, codes);
    }

    #[test]
    fn the_openapi_document_is_valid_json_with_every_reason() {
        let doc: serde_json::Value = serde_json::from_str(ops::OPENAPI).unwrap();
        let reasons = doc["components"]["schemas"]["Reason"].to_string();
        for r in crate::domain::checkin::Reason::ALL {
            assert!(
                reasons.contains(r.as_str()),
                "{} missing from the OpenAPI document",
                r.as_str()
            );
        }
    }
}
