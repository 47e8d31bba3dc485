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

async fn create_upload(b: &TestBox, token: &str, length: u64) -> (u16, Value, Option<String>) {
    let r = b
        .http
        .post(b.url("/api/v1/uploads/"))
        .bearer_auth(token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", length.to_string())
        .header("upload-metadata", common::tus_metadata(&[("creator", "cr-a"), ("consent", "true")]))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let loc = r.headers().get("location").map(|v| v.to_str().unwrap().to_string());
    (status, r.json().await.unwrap_or_default(), loc)
}

/// PATCHes to made-up upload ids (long ones too) take no lock and leave
/// nothing behind; a token that may not upload is refused before any
/// lookup.
#[tokio::test]
async fn made_up_upload_ids_leave_nothing_behind() {
    let b = TestBox::start_captures(venuebox::clock::Clock::system(), Default::default()).await;
    let cap = b.token(Role::Capture).await;
    let door = b.token(Role::Door).await;
    for i in 0..300 {
        let id = if i % 2 == 0 { format!("{:032x}", i) } else { "z".repeat(4000) };
        for token in [&cap, &door] {
            let r = b
                .http
                .patch(b.url(&format!("/api/v1/uploads/{id}")))
                .bearer_auth(token)
                .header("tus-resumable", "1.0.0")
                .header("upload-offset", "0")
                .header("content-type", "application/offset+octet-stream")
                .body("x")
                .send()
                .await
                .unwrap();
            assert!(matches!(r.status().as_u16(), 403 | 404), "{}", r.status());
        }
    }
    assert_eq!(b.state.uploads.len(), 0, "no slot for an upload that does not exist");
}

/// Empty uploads with a huge Upload-Length cannot use up the quota: one
/// sign-in keeps at most 16 open and promises at most two of the largest
/// uploads; everyone else can still upload, and an admin sees and clears
/// the reservations.
#[tokio::test]
async fn reservations_are_bounded_per_sign_in_and_admins_clear_them() {
    let captures = venuebox::api::tus::CaptureConfig { max_upload_bytes: 1 << 30, quota_bytes: 3 << 30, ..Default::default() };
    let b = TestBox::start_captures(venuebox::clock::Clock::system(), captures).await;
    let admin = b.token(Role::Admin).await;
    let link: Value = b.post(&admin, "/api/v1/upload-links", json!({"creator": "cr-a"})).await.1;
    let link = link["token"].as_str().unwrap().to_string();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(create_upload(&b, &link, 1 << 30).await.0);
    }
    assert_eq!(statuses, [201, 201, 507, 507], "two of the largest uploads promised, no more");
    let (s, body, _) = create_upload(&b, &link, 1 << 30).await;
    assert_eq!((s, body["error"]["code"].as_str()), (507, Some("reservation_full")));
    let link2: Value = b.post(&admin, "/api/v1/upload-links", json!({"creator": "cr-a"})).await.1;
    let link2 = link2["token"].as_str().unwrap().to_string();
    for i in 0..16 {
        assert_eq!(create_upload(&b, &link2, 10).await.0, 201, "small upload {i}");
    }
    let (s, body, _) = create_upload(&b, &link2, 10).await;
    assert_eq!((s, body["error"]["code"].as_str()), (429, Some("too_many_open_uploads")));
    // Someone else still uploads.
    let crew = b.token(Role::Capture).await;
    let (s, _, loc) = create_upload(&b, &crew, 100).await;
    assert_eq!(s, 201);
    assert!(loc.is_some());
    // The admin sees every open upload and clears the link's big ones.
    let (s, open) = b.get(&admin, "/api/v1/open-uploads").await;
    assert_eq!(s, 200);
    assert_eq!(open["uploads"].as_array().unwrap().len(), 19);
    assert_eq!(open["reserved_bytes"], (2u64 << 30) + 16 * 10 + 100);
    let big: Vec<String> = open["uploads"].as_array().unwrap().iter().filter(|u| u["length"] == (1u64 << 30)).map(|u| u["id"].as_str().unwrap().to_string()).collect();
    for id in &big {
        let r = b.http.delete(b.url(&format!("/api/v1/open-uploads/{id}"))).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(r.status(), 204);
    }
    let r = b.http.delete(b.url(&format!("/api/v1/open-uploads/{}", big[0]))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 404, "already cleared");
    assert_eq!(create_upload(&b, &crew, 1 << 30).await.0, 201, "the freed reservation is usable");
}

/// Prices, quantities, tax rates and cash are bounded: what used to wrap
/// a total to a negative paid order (and break the creator's summary for
/// good) is refused with a 400 that says the range.
#[tokio::test]
async fn money_out_of_range_is_refused_instead_of_wrapping() {
    let b = TestBox::start_captures(venuebox::clock::Clock::system(), Default::default()).await;
    let admin = b.token(Role::Admin).await;
    let merch = b.token(Role::Merch).await;
    let now = venuebox::domain::time::format_rfc3339(b.state.clock.now() - 60_000);
    let later = venuebox::domain::time::format_rfc3339(b.state.clock.now() + 3_600_000);
    let spec = |price: i64, tax: u64, qty: u64| {
        json!({"id": "d-x", "name": "X", "creator": "cr-a", "opens_at": now, "closes_at": later,
               "products": [{"sku": "GOLD", "name": "Gold", "price_minor": price, "quantity": qty, "tax_rate_bp": tax}]})
    };
    for (price, tax, qty, says) in [(1i64 << 62, 0, 5, "price of 0 to"), (100, 1 << 31, 5, "tax_rate_bp must be 0 to"), (100, 0, 4_000_000, "quantity must be at most")] {
        let (s, v) = b.post(&admin, "/api/v1/drops", spec(price, tax, qty)).await;
        assert_eq!(s, 400, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(says), "{v}");
    }
    let (s, v) = b.post(&admin, "/api/v1/drops", spec(100_000_000, 0, 100_000)).await;
    assert_eq!(s, 201, "{v}");
    let sale = |qty: u64, tender: Value| json!({"items": [{"sku": "GOLD", "qty": qty}], "nonce": common::nonce(), "tender": tender});
    let (s, v) = b.post(&merch, "/api/v1/drops/d-x/sales", sale(20_000, json!({"kind": "card", "reference": "T-1"}))).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = b.post(&merch, "/api/v1/drops/d-x/sales", sale(1, json!({"kind": "cash", "given_minor": i64::MAX}))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("bad_tender")), "{v}");
    // The largest sale allowed, twice: totals stay positive and add up.
    for _ in 0..2 {
        let (s, v) = b.post(&merch, "/api/v1/drops/d-x/sales", sale(10_000, json!({"kind": "card", "reference": "T-2"}))).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["total_minor"], 1_000_000_000_000i64);
    }
    let (s, summary) = b.get(&merch, "/api/v1/creators/cr-a/summary").await;
    assert_eq!(s, 200, "{summary}");
}
