//! The staff web app: the files under `web/`, embedded in the binary when
//! it is built (no Node.js or build step at run time), served at `/` and
//! `/app/…` (the service worker at `/sw.js`, the list of files it keeps
//! offline at `/app/shell.json`). They are public (they hold no data; every call they make to
//! the API carries the staff member's token), answered with a strict
//! content security policy (this origin only, no inline script) and an
//! ETag, so a phone revalidates instead of downloading again.

use super::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// Only this origin's scripts, styles, API and camera frames; nothing
/// inline, nothing framed. The one exception: the app may ask the other
/// box of a pair whether it is the primary now (`connect-src`).
const CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
media-src 'self' blob:; connect-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// A response's policy, with the pair's other box added.
fn own_csp(st: &AppState, mut r: Response) -> Response {
    r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp(st));
    r
}

/// The policy with the pair's other box added to `connect-src`.
fn csp(st: &AppState) -> HeaderValue {
    let peer = st.replication.peer_web().filter(|u| {
        u.starts_with("https://")
            && u[8..].bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    });
    match peer {
        Some(url) => HeaderValue::from_str(
            &CSP.replace("connect-src 'self'", &format!("connect-src 'self' {url}")),
        )
        .unwrap_or(HeaderValue::from_static(CSP)),
        None => HeaderValue::from_static(CSP),
    }
}

struct Asset {
    name: &'static str,
    mime: &'static str,
    bytes: &'static [u8],
    /// Compressed when the binary was built (build.rs); none for images.
    gzip: Option<&'static [u8]>,
    brotli: Option<&'static [u8]>,
}

macro_rules! asset {
    ($name:literal, $mime:literal) => {
        Asset {
            name: $name,
            mime: $mime,
            bytes: include_bytes!(concat!("../../web/", $name)),
            gzip: Some(include_bytes!(concat!(env!("OUT_DIR"), "/web/", $name, ".gz"))),
            brotli: Some(include_bytes!(concat!(env!("OUT_DIR"), "/web/", $name, ".br"))),
        }
    };
    ($name:literal, $mime:literal, as is) => {
        Asset {
            name: $name,
            mime: $mime,
            bytes: include_bytes!(concat!("../../web/", $name)),
            gzip: None,
            brotli: None,
        }
    };
}

static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("strings.js", "text/javascript; charset=utf-8"),
    asset!("ui.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("door.js", "text/javascript; charset=utf-8"),
    asset!("merch.js", "text/javascript; charset=utf-8"),
    asset!("capture.js", "text/javascript; charset=utf-8"),
    asset!("sha256.js", "text/javascript; charset=utf-8"),
    asset!("dashboard.js", "text/javascript; charset=utf-8"),
    asset!("admin.js", "text/javascript; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("sw.js", "text/javascript; charset=utf-8"),
    asset!("qr-worker.js", "text/javascript; charset=utf-8"),
    asset!("camera.js", "text/javascript; charset=utf-8"),
    asset!("takeover.js", "text/javascript; charset=utf-8"),
    asset!("manifest.webmanifest", "application/manifest+json"),
    asset!("vendor/jsQR.js", "text/javascript; charset=utf-8"),
    asset!("vendor/jsQR.LICENSE", "text/plain; charset=utf-8"),
    asset!("vendor/tus.min.js", "text/javascript; charset=utf-8"),
    asset!("vendor/tus.LICENSE", "text/plain; charset=utf-8"),
    asset!("icons/icon-32.png", "image/png", as is),
    asset!("icons/icon-192.png", "image/png", as is),
    asset!("icons/icon-512.png", "image/png", as is),
];

/// How one asset is sent: as is, gzip or brotli.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Encoding {
    Identity,
    Gzip,
    Brotli,
}

impl Encoding {
    /// The best the client takes (`Accept-Encoding`, q=0 meaning "not
    /// this"): brotli, then gzip, else the file as is.
    fn chosen(headers: &HeaderMap) -> Encoding {
        let accepted = |name: &str| {
            headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).any(
                |v| {
                    v.split(',').any(|part| {
                        let mut it = part.split(';');
                        let coding = it.next().unwrap_or("").trim();
                        let q = it
                            .find_map(|p| p.trim().strip_prefix("q="))
                            .and_then(|q| q.trim().parse::<f32>().ok())
                            .unwrap_or(1.0);
                        coding.eq_ignore_ascii_case(name) && q > 0.0
                    })
                },
            )
        };
        if accepted("br") {
            Encoding::Brotli
        } else if accepted("gzip") {
            Encoding::Gzip
        } else {
            Encoding::Identity
        }
    }
}

/// Each asset's ETag: the start of its SHA-256, computed once (one per
/// encoding: they are different bytes).
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS.iter().map(|a| crate::secrets::hex(&Sha256::digest(a.bytes))[..16].to_string()).collect()
});

/// The app's routes, outside the API's access policy.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/sw.js", get(worker))
        .route("/favicon.ico", get(favicon))
        .route("/app/shell.json", get(shell))
        .route("/app/{*file}", get(file))
}

/// What the service worker keeps for the app to open offline: the page and
/// every file built into the box but the worker itself and the licences.
fn shell_files() -> Vec<String> {
    std::iter::once("/".to_string())
        .chain(
            ASSETS
                .iter()
                .filter(|a| a.name != "sw.js" && !a.name.ends_with(".LICENSE"))
                .map(|a| format!("/app/{}", a.name)),
        )
        .collect()
}

/// The offline shell's file list (what `sw.js` caches when installed).
async fn shell(State(st): State<AppState>) -> Response {
    let mut r = axum::Json(serde_json::json!({ "files": shell_files() })).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, csp(&st));
    r
}

/// The service worker lives at the root so that it may serve `/`.
async fn worker(State(st): State<AppState>, headers: HeaderMap) -> Response {
    own_csp(&st, serve("sw.js", &headers))
}

/// Browsers ask for it on their own; a PNG is what they all read.
async fn favicon(State(st): State<AppState>, headers: HeaderMap) -> Response {
    own_csp(&st, serve("icons/icon-32.png", &headers))
}

async fn index(State(st): State<AppState>, headers: HeaderMap) -> Response {
    own_csp(&st, serve("index.html", &headers))
}

async fn file(
    State(st): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    own_csp(&st, serve(&name, &headers))
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such file in the staff app").into_response();
    };
    let asset = &ASSETS[i];
    let (bytes, encoding, suffix) = match (Encoding::chosen(headers), asset.brotli, asset.gzip) {
        (Encoding::Brotli, Some(br), _) => (br, Some("br"), "-br"),
        (Encoding::Brotli | Encoding::Gzip, _, Some(gz)) => (gz, Some("gzip"), "-gz"),
        _ => (asset.bytes, None, ""),
    };
    let etag = format!("\"{}{suffix}\"", ETAGS[i]);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut r =
        if fresh { StatusCode::NOT_MODIFIED.into_response() } else { bytes.into_response() };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Some(e) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(e));
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// The keys of each language's table in `strings.js` (a nested
    /// table's as `table.key`), read from its layout: languages at two
    /// spaces, keys at four, a nested table's keys at six.
    fn string_keys() -> BTreeMap<String, BTreeSet<String>> {
        let text =
            std::str::from_utf8(ASSETS.iter().find(|a| a.name == "strings.js").unwrap().bytes)
                .unwrap();
        let key = |line: &str, indent: usize| -> Option<String> {
            let rest = line.strip_prefix(&" ".repeat(indent))?;
            let name: String =
                rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            (!name.is_empty() && rest[name.len()..].starts_with(':')).then_some(name)
        };
        let (mut langs, mut lang, mut table) = (BTreeMap::new(), None::<String>, None::<String>);
        for line in text.lines() {
            if let Some(l) = key(line, 2).filter(|_| line.ends_with('{')) {
                lang = Some(l);
                continue;
            }
            let Some(l) = &lang else { continue };
            let keys: &mut BTreeSet<String> = langs.entry(l.clone()).or_default();
            if let Some(k) = key(line, 4) {
                table = line.ends_with('{').then(|| k.clone());
                keys.insert(k);
            } else if let (Some(t), Some(k)) = (&table, key(line, 6)) {
                keys.insert(format!("{t}.{k}"));
            } else if line.starts_with("    }") {
                table = None;
            }
        }
        langs
    }

    /// Every file under `web/`, relative (`vendor/jsQR.js`).
    fn web_files() -> Vec<String> {
        fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, root, out);
                } else {
                    out.push(p.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        let mut out = Vec::new();
        walk(&root, &root, &mut out);
        out.sort();
        out
    }

    /// A file added to `web/` is built into the box (and so kept offline by
    /// the service worker), or the app would load it from nowhere.
    #[test]
    fn every_file_of_the_app_is_served_and_kept_offline() {
        let served: BTreeSet<&str> = ASSETS.iter().map(|a| a.name).collect();
        let files = web_files();
        // The vendored files' checksums are for people checking them, not the app.
        let missing: Vec<&String> = files
            .iter()
            .filter(|f| !served.contains(f.as_str()) && f.as_str() != "vendor/SHA256SUMS")
            .collect();
        assert!(missing.is_empty(), "web/ files not in ASSETS: {missing:?}");
        let shell = shell_files();
        for f in files.iter().filter(|f| f.ends_with(".js") && f.as_str() != "sw.js") {
            assert!(shell.contains(&format!("/app/{f}")), "{f} is not kept offline");
        }
        assert!(shell.contains(&"/".to_string()));
    }

    /// The app's own modules are type-checked (the browser test runs tsc
    /// over them); a module without `// @ts-check` would be skipped.
    #[test]
    fn every_module_of_the_app_is_type_checked() {
        let unchecked: Vec<String> = web_files()
            .into_iter()
            .filter(|f| f.ends_with(".js") && !f.starts_with("vendor/"))
            .filter(|f| {
                let text = std::fs::read_to_string(
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web").join(f),
                )
                .unwrap();
                !text.starts_with("// @ts-check\n")
            })
            .collect();
        assert!(unchecked.is_empty(), "modules without // @ts-check: {unchecked:?}");
    }

    #[test]
    fn the_best_encoding_the_client_takes_is_sent() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            Encoding::chosen(&h)
        };
        assert_eq!(with("gzip, deflate, br, zstd"), Encoding::Brotli);
        assert_eq!(with("gzip"), Encoding::Gzip);
        assert_eq!(with("br;q=0, gzip;q=0.5"), Encoding::Gzip);
        assert_eq!(with("identity"), Encoding::Identity);
        assert_eq!(Encoding::chosen(&HeaderMap::new()), Encoding::Identity);
    }

    #[test]
    fn every_compressed_file_is_its_file_and_each_encoding_has_its_own_etag() {
        use std::io::Read;
        for a in ASSETS {
            if let Some(gz) = a.gzip {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(gz).read_to_end(&mut out).unwrap();
                assert_eq!(out, a.bytes, "{}.gz", a.name);
            }
            if let Some(br) = a.brotli {
                let mut out = Vec::new();
                brotli::BrotliDecompress(&mut &br[..], &mut out).unwrap();
                assert_eq!(out, a.bytes, "{}.br", a.name);
            }
        }
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("br"));
        let br = serve("app.js", &h);
        assert_eq!(br.headers()[header::CONTENT_ENCODING], "br");
        let etag = br.headers()[header::ETAG].clone();
        h.insert(header::IF_NONE_MATCH, etag.clone());
        assert_eq!(serve("app.js", &h).status(), StatusCode::NOT_MODIFIED);
        let mut plain = HeaderMap::new();
        plain.insert(header::IF_NONE_MATCH, etag);
        let r = serve("app.js", &plain);
        assert_eq!(r.status(), StatusCode::OK, "another encoding, another ETag");
        assert!(r.headers().get(header::CONTENT_ENCODING).is_none());
        let png = serve("icons/icon-32.png", &h);
        assert!(png.headers().get(header::CONTENT_ENCODING).is_none(), "images as they are");
    }

    #[test]
    fn every_error_code_has_a_sentence_in_every_language() {
        let langs = string_keys();
        let codes: BTreeSet<String> = crate::domain::error_code::ErrorCode::ALL
            .iter()
            .map(|c| format!("errors.{}", c.as_str()))
            .collect();
        assert!(!langs.is_empty());
        for (lang, keys) in &langs {
            let said: BTreeSet<String> =
                keys.iter().filter(|k| k.starts_with("errors.")).cloned().collect();
            assert_eq!(
                said, codes,
                "strings.js, {lang}: the error sentences and the box's codes differ"
            );
        }
    }

    #[test]
    fn every_language_has_every_word() {
        let langs = string_keys();
        let en = &langs["en"];
        assert!(en.len() > 200, "the English table was read: {}", en.len());
        assert!(langs.contains_key("de"), "German is there: {:?}", langs.keys());
        for (lang, keys) in &langs {
            assert_eq!(
                en.difference(keys).collect::<Vec<_>>(),
                Vec::<&String>::new(),
                "strings.js, {lang}: missing"
            );
            assert_eq!(
                keys.difference(en).collect::<Vec<_>>(),
                Vec::<&String>::new(),
                "strings.js, {lang}: not in English"
            );
        }
    }
}
