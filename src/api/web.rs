//! The staff web app: the files under `web/`, embedded in the binary when
//! it is built (no Node.js or build step at run time), served at `/` and
//! `/app/…` (the service worker at `/sw.js`). They are public (they hold no data; every call they make to
//! the API carries the staff member's token), answered with a strict
//! content security policy (this origin only, no inline script) and an
//! ETag, so a phone revalidates instead of downloading again.

use super::AppState;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// Only this origin's scripts, styles, API and camera frames; nothing
/// inline, nothing framed.
const CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
media-src 'self' blob:; connect-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    mime: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $mime:literal) => {
        Asset { name: $name, mime: $mime, bytes: include_bytes!(concat!("../../web/", $name)) }
    };
}

static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("strings.js", "text/javascript; charset=utf-8"),
    asset!("ui.js", "text/javascript; charset=utf-8"),
    asset!("door.js", "text/javascript; charset=utf-8"),
    asset!("merch.js", "text/javascript; charset=utf-8"),
    asset!("capture.js", "text/javascript; charset=utf-8"),
    asset!("sha256.js", "text/javascript; charset=utf-8"),
    asset!("dashboard.js", "text/javascript; charset=utf-8"),
    asset!("admin.js", "text/javascript; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("sw.js", "text/javascript; charset=utf-8"),
    asset!("qr-worker.js", "text/javascript; charset=utf-8"),
    asset!("vendor/jsQR.js", "text/javascript; charset=utf-8"),
    asset!("vendor/jsQR.LICENSE", "text/plain; charset=utf-8"),
    asset!("vendor/tus.min.js", "text/javascript; charset=utf-8"),
    asset!("vendor/tus.LICENSE", "text/plain; charset=utf-8"),
];

/// Each asset's ETag: the start of its SHA-256, computed once.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| format!("\"{}\"", &crate::secrets::hex(&Sha256::digest(a.bytes))[..16]))
        .collect()
});

/// The app's routes, outside the API's access policy.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/sw.js", get(worker))
        .route("/app/{*file}", get(file))
}

/// The service worker lives at the root so that it may serve `/`.
async fn worker(headers: HeaderMap) -> Response {
    serve("sw.js", &headers)
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(&name, &headers)
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such file in the staff app").into_response();
    };
    let (asset, etag) = (&ASSETS[i], &ETAGS[i]);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut r =
        if fresh { StatusCode::NOT_MODIFIED.into_response() } else { asset.bytes.into_response() };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    r
}
