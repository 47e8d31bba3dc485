//! The plain-HTTP listener on the LAN (`--pair-listen`): the pairing page
//! (the box's HTTPS addresses, its CA fingerprint, how to install the CA on
//! each kind of phone and computer), the CA certificate itself, and a
//! redirect to HTTPS for everything else. No API runs here, so no PIN or
//! token is ever read in clear text: a request with a body is answered
//! with the redirect and the connection closed before its body is read.
//! A pairing code reaches this page only in the URL fragment (which no
//! browser sends): the page's script shows it and hands it on to the
//! HTTPS links, so the code never crosses the Wi-Fi in clear.

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
        .route("/pair.js", get(script))
        .route("/ca.pem", get(ca_pem))
        .route("/ca.crt", get(ca_der))
        .fallback(to_https)
        .layer(axum::middleware::map_response(page_headers))
        .with_state(Pairing { st, https_port })
}

/// Every answer of the pairing listener: no sniffing, no framing, and
/// nothing but the page's own script and inline styles.
async fn page_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

/// The page's script: the code from the fragment, shown and carried on to
/// the HTTPS links under the same fragment key the staff app reads.
async fn script() -> Response {
    let key = crate::net::PAIR_FRAGMENT;
    let js = format!(
        "// The pairing code rides in the URL fragment, which browsers never send.\n\
         const code = new URLSearchParams(location.hash.slice(1)).get(\"{key}\") || \"\";\n\
         if (/^[A-Za-z0-9-]{{1,20}}$/.test(code)) {{\n\
           document.getElementById(\"code\").textContent = code;\n\
           document.getElementById(\"code-box\").hidden = false;\n\
           for (const a of document.querySelectorAll(\"a.staff\")) a.href = a.href.split(\"#\")[0] + \"#{key}=\" + encodeURIComponent(code);\n\
         }}\n"
    );
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], js).into_response()
}

/// The staff URLs of the box: by mDNS name first, then by address.
pub fn staff_urls(st: &AppState, https_port: u16) -> Vec<String> {
    st.lan.as_ref().map(|l| l.staff_urls(https_port)).unwrap_or_default()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

async fn page(State(p): State<Pairing>) -> Response {
    let fp = p.st.lan.as_ref().and_then(|l| l.fingerprint());
    let urls = staff_urls(&p.st, p.https_port);
    let links: String = urls
        .iter()
        .map(|u| format!("<li><a class=staff href=\"{0}\">{0}</a></li>", escape(u)))
        .collect();
    let code_html = "<p id=code-box hidden>Your pairing code: <strong class=fp id=code></strong> (valid 10 minutes, one device)</p>";
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
         .fp{{font-family:monospace;word-break:break-all;background:#f3f3f3;padding:.5em}}.button{{display:inline-block;padding:.75em 1em;background:#06603f;color:#fff;border-radius:.3em;text-decoration:none}}\
         a{{display:inline-block;min-height:44px;line-height:44px}}h2{{margin-top:1.5em}}</style><script src=/pair.js defer></script></head><body>\
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
