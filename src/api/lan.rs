//! The plain-HTTP listener on the LAN (`--pair-listen`): the pairing page
//! (the box's HTTPS addresses, its CA fingerprint, how to install the CA on
//! each kind of phone and computer), the CA certificate itself, and a
//! redirect to HTTPS for everything else. No API runs here, so no PIN or
//! token is ever read in clear text: a request with a body is answered
//! with the redirect and the connection closed before its body is read.

use super::AppState;
use crate::net::tls::fingerprint_colons;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

#[derive(Clone)]
struct Pairing {
    st: AppState,
    https_port: u16,
}

pub fn pair_router(st: AppState, https_port: u16) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/pair", get(page))
        .route("/ca.pem", get(ca_pem))
        .route("/ca.crt", get(ca_der))
        .fallback(to_https)
        .with_state(Pairing { st, https_port })
}

/// The staff URLs of the box: by mDNS name first, then by address.
pub fn staff_urls(st: &AppState, https_port: u16) -> Vec<String> {
    st.lan.as_ref().map(|l| l.staff_urls(https_port)).unwrap_or_default()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[derive(serde::Deserialize)]
struct PageQuery {
    #[serde(default)]
    code: Option<String>,
}

async fn page(
    State(p): State<Pairing>,
    q: Result<axum::extract::Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let fp = p.st.lan.as_ref().and_then(|l| l.fingerprint());
    let urls = staff_urls(&p.st, p.https_port);
    // A pairing code from the QR: shown, and carried on to the HTTPS page
    // in the fragment (never sent to a server in clear).
    let code = q.ok().and_then(|axum::extract::Query(q)| q.code).filter(|c| {
        !c.is_empty()
            && c.len() <= 20
            && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
    });
    let fragment = code.as_ref().map(|c| format!("#pair={c}")).unwrap_or_default();
    let links: String = urls
        .iter()
        .map(|u| format!("<li><a href=\"{0}{1}\">{0}</a></li>", escape(u), escape(&fragment)))
        .collect();
    let code_html = code.map(|c| format!("<p>Your pairing code: <strong class=fp>{}</strong> (valid 10 minutes, one device)</p>", escape(&c))).unwrap_or_default();
    let fp_html = match &fp {
        Some(f) => format!(
            "<p>Certificate authority fingerprint (SHA-256) — check that your device shows the same:</p><p class=fp>{}</p>\
             <p><a class=button href=\"/ca.crt\">Download the box's certificate</a> (<a href=\"/ca.pem\">PEM</a>)</p>",
            escape(&fingerprint_colons(f))
        ),
        None => "<p>This box serves its operator's own certificate: no certificate to install.</p>".into(),
    };
    let html = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <title>Pair with venuebox</title><style>body{{font-family:system-ui,sans-serif;max-width:40em;margin:1em auto;padding:0 1em;line-height:1.4}}\
         .fp{{font-family:monospace;word-break:break-all;background:#f3f3f3;padding:.5em}}.button{{display:inline-block;padding:.6em 1em;background:#0a7;color:#fff;border-radius:.3em;text-decoration:none}}\
         h2{{margin-top:1.5em}}</style></head><body>\
         <h1>venuebox {box_id}</h1>\
         <p>Staff pages are served over HTTPS only. Install the box's certificate once, then open:</p><ul>{links}</ul>\
         {code_html}{fp_html}\
         <h2>Android</h2><ol><li>Tap <em>Download the box's certificate</em>.</li><li>Settings → Security → More security settings → Install from device storage → CA certificate → Install anyway.</li><li>Pick the downloaded file, then open the HTTPS address above.</li></ol>\
         <h2>iPhone and iPad</h2><ol><li>Open this page in Safari and tap <em>Download the box's certificate</em>; allow the profile download.</li><li>Settings → General → VPN &amp; Device Management → the venuebox profile → Install.</li><li>Settings → General → About → Certificate Trust Settings → turn on full trust for the venuebox authority.</li></ol>\
         <h2>macOS</h2><ol><li>Download the certificate and double-click it: Keychain Access opens.</li><li>Add it to the System keychain, open it, and under Trust choose <em>Always Trust</em>.</li></ol>\
         <h2>Windows</h2><ol><li>Download the certificate and open it → Install Certificate → Local Machine.</li><li>Place it in <em>Trusted Root Certification Authorities</em> → Finish.</li></ol>\
         <p>Then ask a supervisor for a pairing code: it lets this device sign in with a staff PIN.</p>\
         </body></html>",
        box_id = escape(p.st.store.box_id()),
    );
    Html(html).into_response()
}

fn ca(p: &Pairing) -> Option<&crate::net::tls::BoxCa> {
    p.st.lan.as_ref().and_then(|l| l.ca.as_ref())
}

async fn ca_pem(State(p): State<Pairing>) -> Response {
    match ca(&p) {
        Some(ca) => ([(header::CONTENT_TYPE, "application/x-pem-file")], ca.cert_pem.clone())
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "this box serves an operator's certificate; there is no box CA to install\n",
        )
            .into_response(),
    }
}

async fn ca_der(State(p): State<Pairing>) -> Response {
    match ca(&p) {
        Some(ca) => {
            let disposition = "attachment; filename=\"venuebox-ca.crt\"";
            (
                [
                    (header::CONTENT_TYPE, "application/x-x509-ca-cert"),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                ca.cert_der.to_vec(),
            )
                .into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            "this box serves an operator's certificate; there is no box CA to install\n",
        )
            .into_response(),
    }
}

/// The host a client used, if it is a plain host name or address (never
/// echoed back otherwise).
fn request_host(h: &HeaderMap) -> Option<String> {
    let host = h.get(header::HOST)?.to_str().ok()?;
    let host = if let Some(rest) = host.strip_prefix('[') {
        format!("[{}]", rest.split(']').next()?)
    } else {
        host.split(':').next()?.to_string()
    };
    let ok = !host.is_empty()
        && host.len() <= 255
        && host.chars().all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c));
    ok.then_some(host)
}

/// Everything else goes to HTTPS. A request with a body (a PIN, a token)
/// gets the redirect without its body being read, and the connection is
/// closed so the body never is.
async fn to_https(State(p): State<Pairing>, req: Request) -> Response {
    let host = request_host(req.headers()).unwrap_or_else(|| {
        p.st.lan
            .as_ref()
            .and_then(|l| l.names().dns.into_iter().next())
            .unwrap_or_else(|| "localhost".into())
    });
    let path = req.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
    let location = format!("https://{host}:{}{path}", p.https_port);
    let mut r =
        (StatusCode::PERMANENT_REDIRECT, format!("use HTTPS: {location}\n")).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    let has_body = req.headers().contains_key(header::CONTENT_LENGTH)
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    if has_body {
        r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    drop(req);
    r
}
