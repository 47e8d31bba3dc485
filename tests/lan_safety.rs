//! Safe on a shared Wi-Fi: what a guest on the venue LAN can and cannot
//! do to the box. Each test reproduces an attack that worked before this
//! work, against the real server on 127.0.0.1:0 (or the real binary).

mod common;

use common::TestBox;
use serde_json::{json, Value};
use venuebox::domain::role::Role;

const DOC: &str = include_str!("../src/api/openapi.json");

/// A concrete path for a documented one: `{sha256}` gets a well-formed
/// hash, other parameters a plausible id.
fn concrete(path: &str) -> String {
    path.replace("{sha256}", &"ab".repeat(32)).replace("{id}", "x-1")
}

/// Every documented operation, with every role and with no token: the
/// roles in its `x-roles` get past authorisation (whatever the handler then
/// says of the empty body), the others get 403, no token 401. Driven by
/// the OpenAPI document, which the router test holds to the router: a new
/// route cannot skip this matrix.
#[tokio::test]
async fn role_matrix_for_every_documented_operation() {
    let b = TestBox::start_captures(venuebox::clock::Clock::system(), Default::default()).await;
    let mut tokens = Vec::new();
    for role in Role::ALL {
        tokens.push((role, b.token(role).await));
    }
    let doc: Value = serde_json::from_str(DOC).unwrap();
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let Some(roles) = op.get("x-roles") else {
                assert!(op.get("security").is_none(), "{method} {path} has security but no x-roles");
                continue;
            };
            let allowed: Vec<&str> = roles.as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
            let url = b.url(&concrete(path));
            let m: reqwest::Method = method.to_uppercase().parse().unwrap();
            let call = |token: Option<&str>| {
                let mut r = b.http.request(m.clone(), &url).header("tus-resumable", "1.0.0");
                if let Some(t) = token {
                    r = r.bearer_auth(t);
                }
                if m != reqwest::Method::GET && m != reqwest::Method::HEAD && m != reqwest::Method::DELETE {
                    r = r.header("content-type", "application/json").body("{}");
                }
                r.send()
            };
            let status = call(None).await.unwrap().status().as_u16();
            assert_eq!(status, 401, "{method} {path} without a token");
            for (role, token) in &tokens {
                // Signing out ends the session, so it gets a fresh one.
                let fresh = if path == "/api/v1/session" && method == "delete" { b.token(*role).await } else { token.clone() };
                let status = call(Some(&fresh)).await.unwrap().status().as_u16();
                if allowed.contains(&role.as_str()) {
                    assert!(status != 401 && status != 403, "{method} {path} as {role}: {status}, but x-roles allows it");
                    assert!(status < 500, "{method} {path} as {role}: {status}");
                } else {
                    assert_eq!(status, 403, "{method} {path} as {role}, not in x-roles {allowed:?}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 250, "only {checked} calls checked");
}

/// Orders, receipts and the QR images of minted tickets admit people at
/// the door: capture and door staff cannot read them, and their ids do not
/// follow each other.
#[tokio::test]
async fn ticket_codes_are_for_merch_only_and_ids_cannot_be_guessed() {
    let b = TestBox::start().await;
    let merch = b.token(Role::Merch).await;
    let mut orders = Vec::new();
    for i in 0..2 {
        let (s, o) = b.post(&merch, "/api/v1/walkups", json!({"tier": "ga", "nonce": format!("w-{i}"), "tender": {"kind": "cash", "given_minor": 2500}})).await;
        assert_eq!(s, 200, "{o}");
        orders.push(o);
    }
    let (a, c) = (orders[0]["order_id"].as_str().unwrap(), orders[1]["order_id"].as_str().unwrap());
    let common_prefix = a.chars().zip(c.chars()).take_while(|(x, y)| x == y).count();
    assert!(a.len() - common_prefix >= 10, "order ids {a} and {c} share all but their tail");
    let t = orders[0]["tickets"][0]["id"].as_str().unwrap();
    for role in [Role::Capture, Role::Door] {
        let tok = b.token(role).await;
        for path in [format!("/api/v1/orders/{a}"), format!("/api/v1/orders/{a}/receipt"), format!("/api/v1/tickets/{t}/qr")] {
            let (s, _) = b.get(&tok, &path).await;
            assert_eq!(s, 403, "{role} reading {path}");
        }
    }
    let (s, _) = b.get(&merch, &format!("/api/v1/tickets/{t}/qr")).await;
    assert_eq!(s, 200);
}

/// The door's scan list shows the codes it scanned only to supervisors.
#[tokio::test]
async fn the_scan_list_masks_codes_below_supervisor() {
    let b = TestBox::start().await;
    let door = b.token(Role::Door).await;
    let (s, _) = b.scan(&door, json!({"code": "SECRET-0001", "gate": "main", "nonce": "n1"})).await;
    assert_eq!(s, 200);
    let (_, list) = b.get(&door, "/api/v1/checkins").await;
    assert_eq!(list["items"][0]["code"], "…0001");
    let (_, list) = b.get(&b.token(Role::Supervisor).await, "/api/v1/checkins").await;
    assert_eq!(list["items"][0]["code"], "SECRET-0001");
}

/// A body over the limit is refused with 413 from its declared length,
/// before it is read and before anything else; a body without a token is
/// refused before it is parsed.
#[tokio::test]
async fn oversized_and_unauthenticated_bodies_are_refused_before_reading() {
    let b = TestBox::start().await;
    let door = b.token(Role::Door).await;
    let big = vec![b'x'; 300 * 1024];
    let r = b.http.post(b.url("/api/v1/checkins")).bearer_auth(&door).header("content-type", "application/json").body(big.clone()).send().await.unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "body_too_large");
    // Chunked, so no length is declared: still 413, once the limit is crossed.
    let stream = futures_util::stream::iter((0..300).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024])));
    let r = b.http.post(b.url("/api/v1/checkins")).bearer_auth(&door).header("content-type", "application/json").body(reqwest::Body::wrap_stream(stream)).send().await.unwrap();
    assert_eq!(r.status(), 413);
    // Malformed JSON without a token: 401, not 400, so nothing was parsed.
    let r = b.http.post(b.url("/api/v1/checkins")).header("content-type", "application/json").body("{not json").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = b.http.post(b.url("/api/v1/checkins")).header("authorization", format!("bearer {door}")).header("content-type", "application/json").body(r#"{"code":"SECRET-0004","gate":"main","nonce":"lc"}"#).send().await.unwrap();
    assert_eq!(r.status(), 200, "the Bearer scheme in lower case");
}
