//! Who may call what, enforced before any handler runs and before any
//! body is read. The policy is the OpenAPI document itself: an operation
//! with `security` needs a signed-in caller whose role is in its
//! `x-roles`; one without is public. One table, so the documentation
//! cannot drift from what the box enforces, and a route missing from the
//! document is refused rather than left open.
//!
//! Handlers keep their own role checks where a decision needs more than
//! the role (a comp needs a supervisor's PIN, an upload link one creator).
//!
//! An operation marked `x-loopback: true` (the metrics, the document
//! itself) is also open without a token on the loopback listener, where
//! the box's own tools and a local scraper call it; on the LAN it needs a
//! signed-in caller like any other.

use super::auth::Principal;
use super::error::ApiError;
use super::AppState;
use crate::domain::error_code::ErrorCode;
use crate::domain::role::Role;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::LazyLock;

/// Largest JSON body on any route but the manifest import.
pub const JSON_BODY_LIMIT: usize = 256 * 1024;
/// Largest manifest accepted over HTTP; a 5,000-ticket manifest is ~1 MB.
pub const MANIFEST_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// Who may call an operation.
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    /// `None`: public. `Some(roles)`: signed in with one of `roles`.
    pub roles: Option<Vec<Role>>,
    /// Open without a token on the loopback listener.
    pub loopback: bool,
}

/// The embedded OpenAPI document, parsed once.
static DOC: LazyLock<serde_json::Value> = LazyLock::new(|| {
    serde_json::from_str(super::ops::OPENAPI).expect("the embedded OpenAPI document is JSON")
});

/// Path, then upper-case method: looked up with borrowed strings, so the
/// check on every request allocates nothing.
static POLICY: LazyLock<HashMap<String, HashMap<String, Rule>>> = LazyLock::new(|| {
    let doc = &*DOC;
    let mut rules = HashMap::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            let roles = op.get("security").map(|_| {
                op["x-roles"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{method} {path} has security but no x-roles"))
                    .iter()
                    .map(|r| {
                        r.as_str()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or_else(|| panic!("{method} {path}: bad role {r}"))
                    })
                    .collect()
            });
            let loopback = op.get("x-loopback").and_then(|v| v.as_bool()).unwrap_or(false);
            let rule = Rule { roles, loopback };
            rules
                .entry(path.clone())
                .or_insert_with(HashMap::new)
                .insert(method.to_uppercase(), rule);
        }
    }
    rules
});

/// The rule for an operation, as the document states it. HEAD falls back
/// to GET, as the router answers HEAD with the GET handler.
pub fn rule(method: &Method, path: &str) -> Option<&'static Rule> {
    let ops = POLICY.get(path)?;
    ops.get(method.as_str()).or_else(|| (method == Method::HEAD).then(|| ops.get("GET")).flatten())
}

/// Checks every string in a JSON request body against the `maxLength`
/// its schema documents for the operation (`method`, the router's
/// `path`): the documented limit is the enforced one. `Err` names the
/// first field that is too long.
pub fn check_lengths(
    method: &Method,
    path: &str,
    body: &serde_json::Value,
) -> Result<(), ApiError> {
    let doc = &*DOC;
    let schema = &doc["paths"][path][method.as_str().to_ascii_lowercase()]["requestBody"]
        ["content"]["application/json"]["schema"];
    if schema.is_null() {
        return Ok(());
    }
    match walk_lengths(doc, schema, body) {
        None => Ok(()),
        Some((at, max)) => Err(ApiError::bad_request(format!(
            "body{at} is longer than {max} characters: send a shorter one"
        ))),
    }
}

/// The same for the query string's documented parameters.
pub fn check_query_lengths(method: &Method, path: &str, query: &str) -> Result<(), ApiError> {
    let params = &DOC["paths"][path][method.as_str().to_ascii_lowercase()]["parameters"];
    let Some(params) = params.as_array() else { return Ok(()) };
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        let declared = params.iter().find(|p| p["in"] == "query" && p["name"] == k.as_ref());
        if let Some(max) = declared.and_then(|p| p["schema"]["maxLength"].as_u64()) {
            if v.chars().count() as u64 > max {
                return Err(ApiError::bad_request(format!(
                    "query parameter {k} is longer than {max} characters: send a shorter one"
                )));
            }
        }
    }
    Ok(())
}

/// The first string in `value` longer than its schema's `maxLength`: its
/// place (built only then, so a request within the limits allocates
/// nothing here) and the limit.
fn walk_lengths(
    doc: &serde_json::Value,
    schema: &serde_json::Value,
    value: &serde_json::Value,
) -> Option<(String, u64)> {
    use serde_json::Value;
    let schema = match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap_or_default()],
        None => schema,
    };
    for alt in ["oneOf", "anyOf", "allOf"] {
        for s in schema.get(alt).and_then(Value::as_array).into_iter().flatten() {
            if let Some(found) = walk_lengths(doc, s, value) {
                return Some(found);
            }
        }
    }
    match value {
        Value::String(text) => {
            let max = schema.get("maxLength").and_then(Value::as_u64)?;
            (text.chars().count() as u64 > max).then(|| (String::new(), max))
        }
        Value::Object(fields) => {
            let props = schema.get("properties").and_then(Value::as_object);
            // A map (`additionalProperties`): every value has that schema.
            let rest = schema.get("additionalProperties").filter(|s| s.is_object());
            fields.iter().find_map(|(k, v)| {
                let field = props.and_then(|p| p.get(k)).or(rest)?;
                let (at, max) = walk_lengths(doc, field, v)?;
                Some((format!(".{k}{at}"), max))
            })
        }
        Value::Array(items) => {
            let item = schema.get("items")?;
            items
                .iter()
                .find_map(|v| walk_lengths(doc, item, v))
                .map(|(at, max)| (format!("[]{at}"), max))
        }
        _ => None,
    }
}

/// 405 naming the methods the path has (logged quietly: any guest can
/// send these, and the log must not fill with them).
fn method_not_allowed(path: &str) -> Response {
    let mut allowed: Vec<&str> =
        POLICY.get(path).map(|ops| ops.keys().map(String::as_str).collect()).unwrap_or_default();
    allowed.sort_unstable();
    let allow = allowed.join(", ");
    tracing::debug!(%path, %allow, "method not allowed");
    let msg = format!("{path} answers {allow} only");
    let mut r = ApiError::new(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed, msg)
        .into_response();
    if let Ok(v) = header::HeaderValue::from_str(&allow) {
        r.headers_mut().insert(header::ALLOW, v);
    }
    r
}

/// The body limit of a route: the manifest is large, uploads are limited
/// by the tus rules, everything else is a small JSON document.
pub fn body_limit(path: &str) -> Option<usize> {
    if path == "/api/v1/manifest" {
        Some(MANIFEST_BODY_LIMIT)
    } else if path.starts_with("/api/v1/uploads") {
        None
    } else {
        Some(JSON_BODY_LIMIT)
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::BodyTooLarge,
        format!("the request body is over {limit} bytes: send less"),
    )
}

/// A phone that has seen a newer primary says so (`X-Venuebox-Epoch`,
/// signed by the pair's box key): a primary still at an older epoch is the
/// old one, and stops taking writes before it answers this request (with
/// 503 `not_primary`, which sends the phone on to the new one).
async fn fence_on_newer_epoch(st: &AppState, headers: &axum::http::HeaderMap) {
    let Some(claim) = headers.get("x-venuebox-epoch").and_then(|v| v.to_str().ok()) else {
        return;
    };
    let mine = st.store.replica().epoch();
    // Only a claim above this box's epoch is worth a signature check.
    let above =
        claim.split_once('.').and_then(|(e, _)| e.parse::<i64>().ok()).is_some_and(|e| e > mine);
    if !above {
        return;
    }
    let Some(epoch) = st.store.verify_epoch_proof(claim) else { return };
    tracing::warn!(
        epoch,
        "a phone has seen a newer primary: this box stops taking writes and follows it"
    );
    if let Err(e) = st.store.fence(epoch).await {
        tracing::error!(error = %e, "cannot fence this box");
    }
}

/// The middleware: authenticate, check the role, check the declared body
/// size; only then does the handler (and its body extractor) run.
pub async fn authorize(State(st): State<AppState>, req: Request, next: Next) -> Response {
    fence_on_newer_epoch(&st, req.headers()).await;
    let Some(matched) = req.extensions().get::<MatchedPath>().cloned() else {
        return next.run(req).await;
    };
    let path = matched.as_str();
    let Some(rule) = rule(req.method(), path) else {
        // The router serves only documented operations (a test holds them
        // equal), so this is a method the path does not have.
        return method_not_allowed(path);
    };
    let (mut parts, body) = req.into_parts();
    let local =
        parts.extensions.get::<super::conn::Listener>() == Some(&super::conn::Listener::Local);
    if let Some(roles) = rule.roles.as_ref().filter(|_| !(rule.loopback && local)) {
        let p = match Principal::from_request_parts(&mut parts, &st).await {
            Ok(p) => p,
            Err(e) => return e.into_response(),
        };
        if !roles.contains(&p.actor.role) {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            return ApiError::forbidden(format!(
                "signed in as {} ({}); this needs the {} role: ask a supervisor",
                p.actor.name,
                p.actor.role,
                names.join(" or ")
            ))
            .into_response();
        }
        parts.extensions.insert(p);
    }
    if let Some(limit) = body_limit(path) {
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return too_large(limit).into_response();
        }
    }
    next.run(Request::from_parts(parts, body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every free-text field of every JSON body and query string has a
    /// documented maximum, and that maximum is what the box enforces.
    #[test]
    fn every_free_text_field_has_a_documented_and_enforced_maximum() {
        fn strings(
            doc: &serde_json::Value,
            s: &serde_json::Value,
            at: String,
            out: &mut Vec<(String, Option<u64>)>,
            depth: u8,
        ) {
            let s = match s.get("$ref").and_then(|r| r.as_str()) {
                Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap()],
                None => s,
            };
            if depth > 8 {
                return;
            }
            let is_string = s["type"] == "string"
                || s["type"].as_array().is_some_and(|t| t.iter().any(|x| x == "string"));
            let closed = s.get("enum").is_some() || s.get("const").is_some();
            if is_string && !closed && s["format"] != "date-time" {
                out.push((at.clone(), s["maxLength"].as_u64()));
            }
            for (k, v) in s["properties"].as_object().into_iter().flatten() {
                strings(doc, v, format!("{at}.{k}"), out, depth + 1);
            }
            if let Some(i) = s.get("items") {
                strings(doc, i, format!("{at}[]"), out, depth + 1);
            }
            for alt in ["oneOf", "anyOf", "allOf"] {
                for v in s[alt].as_array().into_iter().flatten() {
                    strings(doc, v, at.clone(), out, depth + 1);
                }
            }
        }
        let doc = &*DOC;
        let mut found = Vec::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let body = &op["requestBody"]["content"]["application/json"]["schema"];
                if !body.is_null() {
                    strings(doc, body, format!("{method} {path} body"), &mut found, 0);
                }
                for p in
                    op["parameters"].as_array().into_iter().flatten().filter(|p| p["in"] == "query")
                {
                    strings(
                        doc,
                        &p["schema"],
                        format!("{method} {path} ?{}", p["name"]),
                        &mut found,
                        0,
                    );
                }
            }
        }
        let missing: Vec<_> = found.iter().filter(|(_, m)| m.is_none()).map(|(a, _)| a).collect();
        assert!(missing.is_empty(), "free-text fields without maxLength: {missing:?}");
        assert!(found.len() > 60, "{}", found.len());
        // Enforced as documented: one character over is refused, naming the field.
        let over = serde_json::json!({"code": "x".repeat(1025), "gate": "main", "nonce": "n"});
        let e = check_lengths(&Method::POST, "/api/v1/checkins", &over).unwrap_err();
        assert!(e.message.contains("body.code") && e.message.contains("1024"), "{}", e.message);
        let ok = serde_json::json!({"code": "x".repeat(1024), "gate": "main", "nonce": "n"});
        assert!(check_lengths(&Method::POST, "/api/v1/checkins", &ok).is_ok());
        let tender = serde_json::json!({"tier": "ga", "nonce": "n", "tender": {"kind": "card", "reference": "r".repeat(129)}});
        assert!(
            check_lengths(&Method::POST, "/api/v1/walkups", &tender).is_err(),
            "inside oneOf too"
        );
        let q = format!("gate={}", "g".repeat(65));
        assert!(check_query_lengths(&Method::GET, "/api/v1/checkins", &q).is_err());
    }

    #[test]
    fn the_document_gives_every_secured_operation_roles_and_leaves_sign_in_public() {
        let public = Rule { roles: None, loopback: false };
        assert_eq!(rule(&Method::POST, "/api/v1/session"), Some(&public));
        assert_eq!(rule(&Method::GET, "/healthz"), Some(&public));
        assert_eq!(rule(&Method::HEAD, "/healthz"), Some(&public), "HEAD follows GET");
        let metrics = rule(&Method::GET, "/metrics").unwrap();
        assert!(metrics.loopback && metrics.roles.is_some(), "metrics: loopback or staff");
        let orders = rule(&Method::GET, "/api/v1/orders/{id}").unwrap().roles.as_ref().unwrap();
        assert!(
            orders.contains(&Role::Merch)
                && !orders.contains(&Role::Capture)
                && !orders.contains(&Role::Door)
        );
        assert_eq!(rule(&Method::GET, "/api/v1/nowhere"), None);
    }
}
