//! Safe on a shared Wi-Fi: what a guest on the venue LAN can and cannot
//! do to the box. Each test reproduces an attack that worked before this
//! work, against the real server on 127.0.0.1:0 (or the real binary).

use crate::common;

use common::TestBox;
use serde_json::{json, Value};
use venuebox::domain::role::Role;

const DOC: &str = include_str!("../../src/api/openapi.json");

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
                assert!(
                    op.get("security").is_none(),
                    "{method} {path} has security but no x-roles"
                );
                continue;
            };
            let allowed: Vec<&str> =
                roles.as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
            let url = b.url(&concrete(path));
            let m: reqwest::Method = method.to_uppercase().parse().unwrap();
            let call = |token: Option<&str>| {
                let mut r = b.http.request(m.clone(), &url).header("tus-resumable", "1.0.0");
                if let Some(t) = token {
                    r = r.bearer_auth(t);
                }
                if m != reqwest::Method::GET
                    && m != reqwest::Method::HEAD
                    && m != reqwest::Method::DELETE
                {
                    r = r.header("content-type", "application/json").body("{}");
                }
                r.send()
            };
            let status = call(None).await.unwrap().status().as_u16();
            if op.get("x-loopback") == Some(&Value::Bool(true)) {
                // The test box serves on the loopback listener (the LAN side
                // is checked in lan_https).
                assert_eq!(status, 200, "{method} {path} on loopback without a token");
            } else {
                assert_eq!(status, 401, "{method} {path} without a token");
            }
            for (role, token) in &tokens {
                // Signing out ends the session, so it gets a fresh one.
                let fresh = if path == "/api/v1/session" && method == "delete" {
                    b.token(*role).await
                } else {
                    token.clone()
                };
                let status = call(Some(&fresh)).await.unwrap().status().as_u16();
                if allowed.contains(&role.as_str()) {
                    assert!(
                        status != 401 && status != 403,
                        "{method} {path} as {role}: {status}, but x-roles allows it"
                    );
                    assert!(status < 500, "{method} {path} as {role}: {status}");
                } else {
                    assert_eq!(
                        status, 403,
                        "{method} {path} as {role}, not in x-roles {allowed:?}"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 250, "only {checked} calls checked");
}

/// Orders, receipts and the QR images of minted tickets admit people at
/// the door: capture and door staff cannot read them, other merch staff
/// see them masked, and their ids do not follow each other.
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
        for path in [
            format!("/api/v1/orders/{a}"),
            format!("/api/v1/orders/{a}/receipt"),
            format!("/api/v1/tickets/{t}/qr"),
        ] {
            let (s, _) = b.get(&tok, &path).await;
            assert_eq!(s, 403, "{role} reading {path}");
        }
    }
    let (s, _) = b.get(&merch, &format!("/api/v1/tickets/{t}/qr")).await;
    assert_eq!(s, 200);

    // Another merch staff member (before: read the print queue's order ids,
    // then each order's admitting codes): codes masked, no QR, no reprint,
    // no order ids in the print queue. The seller and supervisors see all.
    let other = venuebox::domain::role::Actor { name: "Mo at merch".into(), role: Role::Merch };
    let (other, _) =
        b.state.store.create_session(other, b.state.clock.now(), 3_600_000).await.unwrap();
    let code = orders[0]["tickets"][0]["code"].as_str().unwrap();
    let (s, seen) = b.get(&other, &format!("/api/v1/orders/{a}")).await;
    assert_eq!(s, 200);
    let shown = seen["tickets"][0]["code"].as_str().unwrap();
    assert!(shown.starts_with('…') && shown.len() < 10, "{shown}");
    assert!(!seen.to_string().contains(code), "no code anywhere in the answer: {seen}");
    let r = b
        .http
        .get(b.url(&format!("/api/v1/orders/{a}/receipt")))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert!(!r.text().await.unwrap().contains(code));
    assert_eq!(b.get(&other, &format!("/api/v1/tickets/{t}/qr")).await.0, 403);
    assert_eq!(b.post(&other, &format!("/api/v1/orders/{a}/print"), json!({})).await.0, 403);
    let (_, jobs) = b.get(&other, "/api/v1/print-jobs").await;
    assert!(jobs["jobs"].as_array().unwrap().iter().all(|j| j["order_id"].is_null()), "{jobs}");
    let (_, jobs) = b.get(&merch, "/api/v1/print-jobs").await;
    assert!(jobs["jobs"].as_array().unwrap().iter().any(|j| j["order_id"] == a), "{jobs}");
    let sup = b.token(Role::Supervisor).await;
    let (_, full) = b.get(&sup, &format!("/api/v1/orders/{a}")).await;
    assert_eq!(full["tickets"][0]["code"], code);
    assert_eq!(b.post(&merch, &format!("/api/v1/orders/{a}/print"), json!({})).await.0, 202);
}

/// Free text is bounded as the document says, in bodies and query strings,
/// on the real server: one character over is a 400 naming the field.
#[tokio::test]
async fn documented_maximum_lengths_are_enforced() {
    let b = TestBox::start().await;
    let door = b.token(Role::Door).await;
    let (s, v) =
        b.scan(&door, json!({"code": "x".repeat(1025), "gate": "main", "nonce": "n1"})).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("body.code is longer than 1024"),
        "{v}"
    );
    let merch = b.token(Role::Merch).await;
    let (s, v) = b
        .post(
            &merch,
            "/api/v1/walkups",
            json!({"tier": "ga", "nonce": "w", "holder": "h".repeat(129)}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = b
        .get(&b.token(Role::Supervisor).await, &format!("/api/v1/checkins?gate={}", "g".repeat(65)))
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, _) = b.scan(&door, json!({"code": "SECRET-0001", "gate": "main", "nonce": "n2"})).await;
    assert_eq!(s, 200, "within the limits, as before");
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
    let r = b
        .http
        .post(b.url("/api/v1/checkins"))
        .bearer_auth(&door)
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "body_too_large");
    // Chunked, so no length is declared: still 413, once the limit is crossed.
    let stream =
        futures_util::stream::iter((0..300).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024])));
    let r = b
        .http
        .post(b.url("/api/v1/checkins"))
        .bearer_auth(&door)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // Malformed JSON without a token: 401, not 400, so nothing was parsed.
    let r = b
        .http
        .post(b.url("/api/v1/checkins"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = b
        .http
        .post(b.url("/api/v1/checkins"))
        .header("authorization", format!("bearer {door}"))
        .header("content-type", "application/json")
        .body(r#"{"code":"SECRET-0004","gate":"main","nonce":"lc"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the Bearer scheme in lower case");
}

async fn create_upload(b: &TestBox, token: &str, length: u64) -> (u16, Value, Option<String>) {
    let r = b
        .http
        .post(b.url("/api/v1/uploads/"))
        .bearer_auth(token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", length.to_string())
        .header(
            "upload-metadata",
            common::tus_metadata(&[("creator", "cr-a"), ("consent", "true")]),
        )
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
    let captures = venuebox::media::uploads::CaptureConfig {
        max_upload_bytes: 1 << 30,
        quota_bytes: 3 << 30,
        ..Default::default()
    };
    let clock = venuebox::clock::Clock::fixed(1_800_000_000_000);
    let b = TestBox::start_captures(clock.clone(), captures).await;
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
    let big: Vec<String> = open["uploads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["length"] == (1u64 << 30))
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();
    for id in &big {
        let r = b
            .http
            .delete(b.url(&format!("/api/v1/open-uploads/{id}")))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    let r = b
        .http
        .delete(b.url(&format!("/api/v1/open-uploads/{}", big[0])))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "already cleared");
    assert_eq!(create_upload(&b, &crew, 1 << 30).await.0, 201, "the freed reservation is usable");
}

/// One capture user signing in again and again (before: 23 sign-ins ×
/// two 4 GiB promises reserved 200 GiB, and every phone got 507 for a
/// day): promises are counted per staff member across sign-ins, an
/// upload that sees no bytes for five minutes stops holding its promise,
/// and an admin clears one person's reservations at once.
#[tokio::test]
async fn one_capture_user_cannot_reserve_the_box_across_sign_ins() {
    let captures = venuebox::media::uploads::CaptureConfig {
        max_upload_bytes: 1 << 30,
        quota_bytes: 4 << 30,
        ..Default::default()
    };
    let clock = venuebox::clock::Clock::fixed(1_800_000_000_000);
    let b = TestBox::start_captures(clock.clone(), captures).await;
    let cam = venuebox::domain::role::Actor { name: "Cam".into(), role: Role::Capture };
    let mut created = 0;
    for _ in 0..5 {
        let (tok, _) =
            b.state.store.create_session(cam.clone(), clock.now(), 3_600_000).await.unwrap();
        for _ in 0..2 {
            created += usize::from(create_upload(&b, &tok, 1 << 30).await.0 == 201);
        }
    }
    assert_eq!(created, 2, "two of the largest promised by Cam in all, however many sign-ins");
    let other = b.token(Role::Capture).await;
    assert_eq!(create_upload(&b, &other, 1 << 30).await.0, 201, "another person still uploads");
    // Five minutes without a byte: Cam's promises give their room back.
    clock.advance(5 * 60_000 + 1);
    let (tok, _) = b.state.store.create_session(cam.clone(), clock.now(), 3_600_000).await.unwrap();
    assert_eq!(create_upload(&b, &tok, 1 << 30).await.0, 201, "idle promises are reclaimed");
    // The admin clears everything Cam has open in one call.
    let admin = b.token(Role::Admin).await;
    let (_, open) = b.get(&admin, "/api/v1/open-uploads").await;
    assert!(
        open["uploads"].as_array().unwrap().iter().any(|u| u["owner"] == "staff:Cam"),
        "{open}"
    );
    let r = b
        .http
        .delete(b.url("/api/v1/open-uploads?owner=staff:Cam"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["cleared"], 3, "{v}");
    let (_, open) = b.get(&admin, "/api/v1/open-uploads").await;
    assert!(
        open["uploads"].as_array().unwrap().iter().all(|u| u["owner"] != "staff:Cam"),
        "{open}"
    );
    assert_eq!(create_upload(&b, &tok, 1 << 30).await.0, 201);
    assert_eq!(create_upload(&b, &tok, 1 << 30).await.0, 201);
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
    for (price, tax, qty, says) in [
        (1i64 << 62, 0, 5, "price of 0 to"),
        (100, 1 << 31, 5, "tax_rate_bp must be 0 to"),
        (100, 0, 4_000_000, "quantity must be at most"),
    ] {
        let (s, v) = b.post(&admin, "/api/v1/drops", spec(price, tax, qty)).await;
        assert_eq!(s, 400, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(says), "{v}");
    }
    let (s, v) = b.post(&admin, "/api/v1/drops", spec(100_000_000, 0, 100_000)).await;
    assert_eq!(s, 201, "{v}");
    let sale = |qty: u64, tender: Value| json!({"items": [{"sku": "GOLD", "qty": qty}], "nonce": common::nonce(), "tender": tender});
    let (s, v) = b
        .post(
            &merch,
            "/api/v1/drops/d-x/sales",
            sale(20_000, json!({"kind": "card", "reference": "T-1"})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = b
        .post(
            &merch,
            "/api/v1/drops/d-x/sales",
            sale(1, json!({"kind": "cash", "given_minor": i64::MAX})),
        )
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("bad_tender")), "{v}");
    // The largest sale allowed, twice: totals stay positive and add up.
    for _ in 0..2 {
        let (s, v) = b
            .post(
                &merch,
                "/api/v1/drops/d-x/sales",
                sale(10_000, json!({"kind": "card", "reference": "T-2"})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["total_minor"], 1_000_000_000_000i64);
    }
    let (s, summary) = b.get(&merch, "/api/v1/creators/cr-a/summary").await;
    assert_eq!(s, 200, "{summary}");
}

/// A sign-in as `body` asks, on `b`: (status, answer, Retry-After).
async fn session_attempt(b: &TestBox, body: Value) -> (u16, Value, i64) {
    let r = b.http.post(b.url("/api/v1/session")).json(&body).send().await.unwrap();
    let s = r.status().as_u16();
    let wait =
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0);
    (s, r.json().await.unwrap_or_default(), wait)
}

/// A manifest may ask six digits of supervisors: a four-digit guess is
/// never checked against them (it costs the box no argon2 check and takes
/// nothing from the box-wide budget), and the supervisor's six digits work.
#[tokio::test]
async fn a_role_may_need_longer_pins_and_short_guesses_never_reach_it() {
    let api = venuebox::api::ApiConfig { refusal_delay_ms: 0, ..Default::default() };
    let b = TestBox::start_full(venuebox::clock::Clock::system(), api, |m| {
        m["pin_length"] = json!({"supervisor": 6, "admin": 6});
        m["staff"][1]["pin_hash"] = json!(venuebox::organiser::demo::hash_pin("135799"));
    })
    .await;
    let phone = b.pair_device("supervisor phone").await;
    let (s, v, _) =
        session_attempt(&b, json!({"pin": "1357", "device": phone, "name": "Sam"})).await;
    assert_eq!(s, 401, "{v}");
    let (s, v, _) = session_attempt(&b, json!({"pin": common::DOOR_PIN, "device": phone})).await;
    assert_eq!((s, v["role"].as_str()), (200, Some("door")), "door PINs stay four digits: {v}");
    let (s, v, _) = session_attempt(&b, json!({"pin": "135799", "device": phone})).await;
    assert_eq!((s, v["role"].as_str()), (200, Some("supervisor")), "{v}");
    let m = b.http.get(b.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("venuebox_signin_failures_total{reason=\"wrong_pin\"} 1"), "{m}");
}

/// The walk the issue found: a door phone alternating a guess at the
/// supervisor's PIN with its own right PIN (before: the admin's 5555
/// found at 5.5 guesses a second), and a merch phone guessing the comp
/// approver's PIN (4444 at 11.4 a second). With the box's clock moved on
/// by every wait it asks for: a right PIN never clears the device's wrong
/// ones, supervisors see them, and after 20 the device is unpaired; the
/// approver's PIN is counted the same way. Neither PIN is found.
#[tokio::test]
async fn staff_phones_cannot_walk_a_supervisors_pin_by_sign_in_or_comp() {
    let clock = venuebox::clock::Clock::fixed(1_800_000_000_000);
    let api = venuebox::api::ApiConfig { refusal_delay_ms: 0, ..Default::default() };
    let b = TestBox::start_full(clock.clone(), api, |m| {
        m["staff"].as_array_mut().unwrap().push(json!({"name": "Max", "role": "merch", "pin_hash": venuebox::organiser::demo::hash_pin("8642")}));
    })
    .await;
    let door = b.pair_device("door phone").await;
    let own = json!({"pin": common::DOOR_PIN, "device": door});
    let (mut checked, mut found, mut unpaired) = (0, false, false);
    for guess in 0..2_000u32 {
        let pin = format!("{:04}", 3000 + guess);
        let (s, v, wait) =
            session_attempt(&b, json!({"pin": pin, "name": "Sam", "device": door})).await;
        match s {
            401 if v["error"]["code"] == "device_not_paired" => {
                unpaired = true;
                break;
            }
            401 => checked += 1,
            429 => {
                assert!(wait >= 1, "{v}");
                clock.advance(wait * 1000);
            }
            200 => found = true,
            s => panic!("{s} {v}"),
        }
        let _ = session_attempt(&b, own.clone()).await;
    }
    assert!(!found && unpaired, "checked {checked}");
    assert_eq!(checked, 20, "unpaired at its 20th wrong PIN");
    let (s, v, _) = session_attempt(&b, own.clone()).await;
    assert_eq!((s, v["error"]["code"].as_str()), (401, Some("device_not_paired")));
    let sup = b.token(Role::Supervisor).await;
    let (_, list) = b.get(&sup, "/api/v1/paired-devices").await;
    let d = &list["devices"][0];
    assert_eq!((d["wrong_pins"].as_u64(), d["revoked_at"].is_null()), (Some(20), false), "{d}");
    assert!(d["revoked_by"].as_str().unwrap().contains("wrong PINs"), "{d}");

    // A merch phone, signed in, guessing the approver's PIN for comps.
    let merch_dev = b.pair_device("merch phone").await;
    let (s, m, _) = session_attempt(&b, json!({"pin": "8642", "device": merch_dev})).await;
    assert_eq!(s, 200, "{m}");
    let merch = m["token"].as_str().unwrap().to_string();
    let (mut checked, mut unpaired) = (0, false);
    for guess in 0..2_000u32 {
        let body = json!({
            "nonce": format!("comp-{guess}"),
            "tier": "ga",
            "tender": {"kind": "comp", "approver_pin": format!("{:04}", 5000 + guess)}
        });
        let (s, v) = b.post(&merch, "/api/v1/walkups", body).await;
        match s {
            403 => checked += 1,
            // Longer than any wait the guard asks for.
            429 => clock.advance(3_600_000),
            401 => {
                unpaired = true;
                break;
            }
            s => panic!("{s} {v}"),
        }
    }
    assert!(unpaired, "the merch phone's sign-in ended with its pairing");
    assert_eq!(checked, 20, "approver PINs checked");
}

mod real_binary {
    //! The same attacks against the real binary with the demo event, from
    //! other processes' worth of clients on several loopback addresses.

    use super::common::binary::{self, client_from, memory_kib, pairing_code, reset_peak};
    use serde_json::{json, Value};
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    struct Demo {
        _dir: tempfile::TempDir,
        dir: std::path::PathBuf,
        child: std::process::Child,
        addr: String,
    }

    impl Drop for Demo {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn demo(args: &[&str]) -> Demo {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut all = vec!["--demo"];
        all.extend_from_slice(args);
        let (child, addr) = binary::serve(&dir, &all, &[]);
        Demo { _dir: tmp, dir, child, addr }
    }

    impl Demo {
        fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }
        async fn pair(&self, http: &reqwest::Client, name: &str) -> String {
            let code = pairing_code(&self.dir);
            let r = http
                .post(self.url("/api/v1/paired-devices"))
                .json(&json!({"code": code, "name": name}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()["credential"].as_str().unwrap().to_string()
        }
        async fn sign_in(&self, http: &reqwest::Client, device: &str, pin: &str) -> u16 {
            let body = json!({"pin": pin, "device": device});
            http.post(self.url("/api/v1/session"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
        async fn metric(&self, line_start: &str) -> u64 {
            let text = reqwest::get(self.url("/metrics")).await.unwrap().text().await.unwrap();
            text.lines()
                .find(|l| l.starts_with(line_start))
                .and_then(|l| l.rsplit(' ').next())
                .unwrap()
                .parse()
                .unwrap()
        }
    }

    /// 200 sign-ins at once from guests (no paired device) and 100 from
    /// twenty paired devices with wrong PINs: the box's peak memory grows by
    /// less than 64 MiB, no PIN is found, at most a handful of checks per
    /// device ever ran, and every refusal was held for the refusal delay.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_wrong_sign_ins_keep_memory_bounded_and_are_counted_first() {
        let d = demo(&[]);
        let http = reqwest::Client::new();
        let mut devices = Vec::new();
        for i in 0..20 {
            devices.push(d.pair(&http, &format!("phone {i}")).await);
        }
        let pid = d.child.id();
        let (_, idle_rss) = memory_kib(pid);
        reset_peak(pid);
        let mut guests = Vec::new();
        for i in 0..200u32 {
            let c = client_from([127, 0, 1, (i % 250) as u8 + 1]);
            let url = d.url("/api/v1/session");
            guests.push(tokio::spawn(async move {
                c.post(url)
                    .json(&json!({"pin": format!("{:04}", i)}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }));
        }
        let mut staff = Vec::new();
        for round in 0..5 {
            for (i, dev) in devices.iter().enumerate() {
                let (c, url, dev) =
                    (client_from([127, 0, 2, i as u8 + 1]), d.url("/api/v1/session"), dev.clone());
                let pin = format!("{:04}", 9000 + round * 20 + i);
                staff.push(tokio::spawn(async move {
                    c.post(url)
                        .json(&json!({"pin": pin, "device": dev}))
                        .send()
                        .await
                        .unwrap()
                        .status()
                        .as_u16()
                }));
            }
        }
        let t0 = std::time::Instant::now();
        for g in guests {
            assert_eq!(
                g.await.unwrap(),
                401,
                "a guest without a paired device never gets a PIN checked"
            );
        }
        assert!(
            t0.elapsed() >= Duration::from_millis(500),
            "refusals are held, not answered at once"
        );
        let mut seen = std::collections::BTreeMap::new();
        for s in staff {
            *seen.entry(s.await.unwrap()).or_insert(0) += 1;
        }
        assert!(!seen.contains_key(&200), "a wrong PIN signed in: {seen:?}");
        assert!(seen.keys().all(|s| [401, 429, 503].contains(s)), "{seen:?}");
        let (peak, _) = memory_kib(pid);
        assert!(peak < idle_rss + 64 * 1024, "peak {peak} KiB against {idle_rss} KiB idle");
        let checked = d.metric("venuebox_signin_failures_total{reason=\"wrong_pin\"}").await;
        assert!(
            checked <= 100 && checked as usize == seen.get(&401).copied().unwrap_or(0),
            "{checked} checked, {seen:?}"
        );
        assert!(
            d.metric("venuebox_signin_failures_total{reason=\"device_not_paired\"}").await >= 200
        );
        // A right PIN on a fresh phone still signs in.
        let fresh = d.pair(&client_from([127, 0, 3, 1]), "supervisor phone").await;
        assert_eq!(d.sign_in(&client_from([127, 0, 3, 1]), &fresh, "4444").await, 200);
    }

    /// Forty guesses at once from one paired device: one is checked, the
    /// others are refused before any check (before this work, 39 were
    /// checked and one found the supervisor's PIN).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn simultaneous_guesses_from_one_device_are_checked_one_at_a_time() {
        let d = demo(&[]);
        let c = client_from([127, 0, 7, 1]);
        let dev = d.pair(&c, "guessing phone").await;
        let mut tasks = Vec::new();
        for i in 0..40 {
            let (c, url, dev) = (c.clone(), d.url("/api/v1/session"), dev.clone());
            let body = json!({"pin": format!("{:04}", 7000 + i), "name": "Sam the supervisor", "device": dev});
            tasks.push(tokio::spawn(async move {
                c.post(url).json(&body).send().await.unwrap().status().as_u16()
            }));
        }
        let mut seen = std::collections::BTreeMap::new();
        for t in tasks {
            *seen.entry(t.await.unwrap()).or_insert(0) += 1;
        }
        let checked = seen.get(&401).copied().unwrap_or(0);
        // Requests that arrive after the first check ended may be checked
        // in turn; never two at once, and never most of them.
        assert!(
            (1..=5).contains(&checked) && seen.get(&429).copied().unwrap_or(0) == 40 - checked,
            "{seen:?}"
        );
        assert_eq!(
            d.metric("venuebox_signin_failures_total{reason=\"wrong_pin\"}").await,
            checked as u64
        );
    }

    /// PATCHes to 3,000 made-up upload ids of 30 KB each leave the real
    /// box's memory where it was (before this work each left a lock entry
    /// behind: +295 MB for 5,000 ids of 60 KB).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn made_up_upload_ids_do_not_grow_the_real_box() {
        let d = demo(&[]);
        let cap = binary::token(&d.dir, "capture");
        let http = reqwest::Client::new();
        let patch = |id: String| {
            http.patch(d.url(&format!("/api/v1/uploads/{id}")))
                .bearer_auth(&cap)
                .header("tus-resumable", "1.0.0")
                .header("upload-offset", "0")
                .header("content-type", "application/offset+octet-stream")
                .body("x")
                .send()
        };
        for i in 0..200 {
            patch(format!("{i:032x}")).await.unwrap();
        }
        let (_, before) = memory_kib(d.child.id());
        for i in 0..3000 {
            let id = format!("{i:08x}").repeat(30_000 / 8);
            assert_eq!(patch(id).await.unwrap().status(), 404);
        }
        let (_, after) = memory_kib(d.child.id());
        assert!(after < before + 16 * 1024, "RSS {before} KiB before, {after} KiB after");
    }

    /// Thirty wrong PINs (checked against every staff member, as the app
    /// signs in) spread over six devices on six addresses, guests
    /// hammering the admin's own address: the admin's phone (signed in as
    /// the admin before) signs in at once with the right PIN. The box-wide
    /// budget of wrong PINs is spent, so a phone that never signed in as
    /// the admin waits, until a supervisor clears the locks.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wrong_pins_from_elsewhere_cannot_lock_staff_out() {
        let d = demo(&["--sign-in-refusal-delay-ms", "20"]);
        let mut bad = Vec::new();
        for i in 0..6u8 {
            let c = client_from([127, 0, 4, i + 1]);
            let dev = d.pair(&c, &format!("stolen {i}")).await;
            bad.push((c, dev));
        }
        let admin = client_from([127, 0, 5, 1]);
        let admins_phone = d.pair(&admin, "admin phone").await;
        let as_admin = json!({"pin": "5555", "name": "Alex the admin", "device": admins_phone});
        assert_eq!(
            admin.post(d.url("/api/v1/session")).json(&as_admin).send().await.unwrap().status(),
            200
        );
        let mut checked = 0;
        for n in 0..30 {
            let (c, dev) = &bad[n % 6];
            let body = json!({"pin": format!("{:04}", 6000 + n), "device": dev});
            let s = c
                .post(d.url("/api/v1/session"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            assert!(s == 401 || s == 429, "{s}");
            checked += usize::from(s == 401);
        }
        assert_eq!(checked, 20, "the box-wide budget of wrong PINs");
        let guest = client_from([127, 0, 5, 1]);
        for _ in 0..20 {
            let s = guest
                .post(d.url("/api/v1/session"))
                .json(&json!({"pin": "0000"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            assert!(s == 401 || s == 429);
        }
        let r = admin.post(d.url("/api/v1/session")).json(&as_admin).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let signed: Value = r.json().await.unwrap();
        let sup = signed["token"].as_str().unwrap();
        // A phone that never signed in as the admin is held back...
        let fresh_c = client_from([127, 0, 5, 2]);
        let fresh = d.pair(&fresh_c, "new admin phone").await;
        let body = json!({"pin": "5555", "name": "Alex the admin", "device": fresh});
        let r = fresh_c.post(d.url("/api/v1/session")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 429);
        // ...until a supervisor (here the admin) clears the locks.
        let r = admin.delete(d.url("/api/v1/sign-in-locks")).bearer_auth(sup).send().await.unwrap();
        assert_eq!(r.status(), 204);
        let r = fresh_c.post(d.url("/api/v1/session")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        // The stolen devices are revoked by a supervisor and stop at once.
        let list: Value = admin
            .get(d.url("/api/v1/paired-devices"))
            .bearer_auth(sup)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let stolen =
            list["devices"].as_array().unwrap().iter().find(|x| x["name"] == "stolen 0").unwrap();
        assert!(stolen["wrong_pins"].as_u64().unwrap() >= 1, "{stolen}");
        let stolen = stolen["id"].as_str().unwrap().to_string();
        let r = admin
            .delete(d.url(&format!("/api/v1/paired-devices/{stolen}")))
            .bearer_auth(sup)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let (c, dev) = &bad[0];
        let body: Value = c
            .post(d.url("/api/v1/session"))
            .json(&json!({"pin": "1111", "device": dev}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["error"]["code"], "device_not_paired");
    }

    fn read_all(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
        s.set_read_timeout(Some(limit)).unwrap();
        let t0 = Instant::now();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        (got, t0.elapsed())
    }

    /// Idle, half-sent headers, a stalled body: each connection is closed by
    /// the box on time. Past the cap for an address, more connections from
    /// it are closed at once while another address is served.
    #[test]
    fn slow_idle_and_surplus_connections_are_closed_in_time() {
        let d = demo(&[
            "--header-timeout-secs",
            "1",
            "--idle-timeout-secs",
            "2",
            "--max-connections-per-address",
            "4",
        ]);
        let addr: std::net::SocketAddr = d.addr.parse().unwrap();
        let cases: [(&str, &[u8], f64); 4] = [
            ("idle", b"", 1.0),
            ("half-sent headers", b"GET /healthz HTTP/1.1\r\nHost: box\r\n", 1.0),
            ("keep-alive after a request", b"GET /healthz HTTP/1.1\r\nHost: box\r\n\r\n", 1.0),
            ("stalled body", b"POST /api/v1/paired-devices HTTP/1.1\r\nHost: box\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"co", 2.0),
        ];
        for (what, send, after) in cases {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(send).unwrap();
            let (_, took) = read_all(&mut s, Duration::from_secs(10));
            let secs = took.as_secs_f64();
            assert!(secs >= after * 0.8 && secs < after + 1.5, "{what}: closed after {secs:.2} s");
        }
        let held: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(200));
        let mut surplus = TcpStream::connect(addr).unwrap();
        let _ = surplus.write_all(b"GET /healthz HTTP/1.1\r\nHost: box\r\n\r\n");
        let (got, took) = read_all(&mut surplus, Duration::from_secs(5));
        assert!(
            got.is_empty() && took < Duration::from_millis(500),
            "the fifth connection from one address is closed at once"
        );
        let mut other = socket_from([127, 0, 6, 1], addr);
        other
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: box\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (got, _) = read_all(&mut other, Duration::from_secs(5));
        assert!(got.starts_with(b"HTTP/1.1 200"), "another address is served");
        drop(held);
    }

    /// A body trickled a byte every 300 ms (each byte resets the idle
    /// timer, so before this work it held its connection for as long as
    /// the client liked): answered 408 once it falls below the minimum
    /// rate after the grace, and the connection closed.
    #[test]
    fn a_trickled_body_is_cut_off_with_408_and_its_connection_closed() {
        let d = demo(&["--body-grace-secs", "1", "--idle-timeout-secs", "60"]);
        let addr: std::net::SocketAddr = d.addr.parse().unwrap();
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"POST /api/v1/paired-devices HTTP/1.1\r\nHost: box\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{").unwrap();
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            for _ in 0..40 {
                std::thread::sleep(Duration::from_millis(300));
                if w.write_all(b" ").is_err() {
                    break;
                }
            }
        });
        let (got, took) = read_all(&mut s, Duration::from_secs(10));
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("too slowly"), "{text}");
        let secs = took.as_secs_f64();
        assert!((0.8..4.0).contains(&secs), "closed after {secs:.2} s");
        drop(s);
        writer.join().unwrap();
    }

    /// A TCP connection to `to` from the local address `from`.
    fn socket_from(from: [u8; 4], to: std::net::SocketAddr) -> TcpStream {
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
        assert!(fd >= 0);
        let bind = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 0,
            sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(from) },
            sin_zero: [0; 8],
        };
        let std::net::SocketAddr::V4(to4) = to else { panic!("IPv4 only") };
        let dest = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: to4.port().to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(to4.ip().octets()) },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        unsafe {
            assert_eq!(libc::bind(fd, &bind as *const _ as *const libc::sockaddr, len), 0);
            assert_eq!(libc::connect(fd, &dest as *const _ as *const libc::sockaddr, len), 0);
            std::os::fd::FromRawFd::from_raw_fd(fd)
        }
    }
}

/// A supervisor sees who is signed in (never their tokens) and ends one
/// session at once; every answer says nosniff and no framing.
#[tokio::test]
async fn supervisors_list_and_revoke_sessions() {
    let b = TestBox::start().await;
    let sup = b.token(Role::Supervisor).await;
    let phone = b.pair_device("door phone").await;
    let (s, signed) = b.sign_in(&phone, common::DOOR_PIN).await;
    assert_eq!(s, 200);
    let door = signed["token"].as_str().unwrap().to_string();
    let r = b.http.get(b.url("/api/v1/sessions")).bearer_auth(&sup).send().await.unwrap();
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["content-security-policy"], "frame-ancestors 'none'");
    let list: Value = r.json().await.unwrap();
    assert!(!list.to_string().contains(&door), "no token in the list");
    let mine = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["staff"] == "Dana" && x["device"].is_string())
        .unwrap()
        .clone();
    assert_eq!(
        b.scan(&door, json!({"code": "SECRET-0001", "gate": "main", "nonce": "before"})).await.0,
        200
    );
    let r = b
        .http
        .delete(b.url(&format!("/api/v1/sessions/{}", mine["id"].as_str().unwrap())))
        .bearer_auth(&sup)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        b.scan(&door, json!({"code": "SECRET-0004", "gate": "main", "nonce": "after"})).await.0,
        401,
        "revoked at once, cache included"
    );
    assert_eq!(
        b.http
            .delete(b.url("/api/v1/sessions/0123456789abcdef"))
            .bearer_auth(&sup)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

mod door_room {
    //! The door keeps its room on a shared Wi-Fi: strangers trickling
    //! bodies, idling and knocking from many addresses fill only their own
    //! share of connections, and a signed-in phone goes on checking in.

    use super::common::binary::{pairing_code, phone_session, serve_lan, Running};
    use serde_json::{json, Value};
    use std::time::{Duration, Instant};

    fn https_client(ca: &[u8], from: Option<[u8; 4]>) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(ca).unwrap())
            .https_only(true);
        if let Some(ip) = from {
            b = b.local_address(std::net::IpAddr::from(ip));
        }
        b.build().unwrap()
    }

    /// A sign-in that announces 200,000 bytes and sends one every `every`.
    async fn trickle(c: reqwest::Client, url: String, every: Duration) -> Result<u16, String> {
        let body = futures_util::stream::unfold(0u32, move |n| async move {
            if n > 0 {
                tokio::time::sleep(every).await;
            }
            (n < 200_000).then(|| (Ok::<_, std::io::Error>(bytes::Bytes::from_static(b" ")), n + 1))
        });
        c.post(url)
            .header("content-type", "application/json")
            .header("content-length", "200000")
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    }

    /// Eight guest addresses each try 16 trickling sign-ins over TLS (a
    /// byte every 3 s), and 200 more addresses open idle TLS connections;
    /// before this work they took every slot of every listener. Now: the
    /// door phone, signed in before, checks in over HTTPS on its kept
    /// connection and on new ones, the loopback listener answers, a new
    /// phone pairs and signs in, and every trickled sign-in ends soon
    /// (refused, closed for a newcomer, or cut off with 408 after the
    /// grace).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn strangers_trickling_and_idling_never_take_the_doors_connections() {
        let tmp = tempfile::tempdir().unwrap();
        let (child, addrs) = serve_lan(
            tmp.path(),
            &[
                "--demo",
                "--max-connections",
                "64",
                "--max-connections-per-address",
                "16",
                "--body-grace-secs",
                "2",
                "--idle-timeout-secs",
                "60",
            ],
        );
        let _box = Running(child);
        let ca = std::fs::read(tmp.path().join("tls/ca.pem")).unwrap();
        let port = addrs.https.rsplit(':').next().unwrap().to_string();
        let base = format!("https://localhost:{port}");
        let phone = https_client(&ca, Some([127, 0, 5, 1]));
        let code = pairing_code(tmp.path());
        let token = phone_session(&phone, &base, &code, "1111").await;
        let tickets = std::fs::read_to_string(tmp.path().join("demo/tickets.csv")).unwrap();
        let codes: Vec<String> =
            tickets.lines().skip(1).map(|l| l.split(',').nth(2).unwrap().to_string()).collect();

        let t0 = Instant::now();
        let mut attack = Vec::new();
        for a in 0..8u8 {
            let c = https_client(&ca, Some([127, 0, 9, a + 1]));
            for _ in 0..16 {
                let url = format!("{base}/api/v1/session");
                attack.push(tokio::spawn(trickle(c.clone(), url, Duration::from_secs(3))));
            }
        }
        // The trickles take the strangers' share first; idle sockets knock on a full room.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let mut idle = Vec::new();
        for a in 0..200u32 {
            let from = std::net::SocketAddr::from((
                [127, 0, 10 + (a / 250) as u8, (a % 250) as u8 + 1],
                0,
            ));
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.bind(from).unwrap();
            if let Ok(s) = sock.connect(addrs.https.parse().unwrap()).await {
                idle.push(s);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;

        let checkin = |c: &reqwest::Client, code: &str, nonce: String| {
            c.post(format!("{base}/api/v1/checkins"))
                .bearer_auth(&token)
                .json(&json!({"code": code, "gate": "main", "nonce": nonce}))
                .send()
        };
        for (i, code) in codes.iter().take(20).enumerate() {
            let r = checkin(&phone, code, format!("room-{i}")).await.expect("kept connection");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["verdict"], "admit", "{v}");
        }
        // A new connection from the phone (a fresh client) is accepted at once.
        let fresh = https_client(&ca, Some([127, 0, 5, 1]));
        let t = Instant::now();
        let r = checkin(&fresh, &codes[20], "room-new".into()).await.expect("new connection");
        assert_eq!(r.status(), 200);
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        // The loopback listener is never starved by the LAN.
        let h = reqwest::get(format!("http://{}/healthz", addrs.plain)).await.unwrap();
        assert_eq!(h.status(), 200);
        // A new phone, never seen, pairs and signs in during the flood: it
        // takes the place of a stranger that only holds a socket open.
        // (A phone retries a refused connection, as browsers do.)
        let newcomer = https_client(&ca, Some([127, 0, 6, 1]));
        let code = pairing_code(tmp.path());
        let t = Instant::now();
        let body = json!({"code": code, "name": "new phone"});
        let paired = loop {
            let r = newcomer.post(format!("{base}/api/v1/paired-devices")).json(&body).send().await;
            match r {
                Ok(r) => break r.json::<Value>().await.unwrap(),
                Err(_) if t.elapsed() < Duration::from_secs(5) => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Err(e) => panic!("a new phone cannot pair during the flood: {e}"),
            }
        };
        let device = paired["credential"].as_str().unwrap_or_else(|| panic!("{paired}"));
        let signed = newcomer
            .post(format!("{base}/api/v1/session"))
            .json(&json!({"pin": "2222", "device": device}))
            .send()
            .await
            .unwrap();
        assert_eq!(signed.status(), 200);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

        // Every trickled sign-in ends: refused at once, or cut off after the grace.
        let mut seen = std::collections::BTreeMap::new();
        for a in attack {
            let got = tokio::time::timeout(Duration::from_secs(30), a)
                .await
                .expect("a trickled request is never held for long")
                .unwrap();
            *seen.entry(got.map_err(|_| 0).unwrap_or_else(|e| e)).or_insert(0) += 1;
        }
        assert!(t0.elapsed() < Duration::from_secs(30));
        let cut = seen.get(&408).copied().unwrap_or(0);
        assert!(cut <= 16, "a stranger's share at most: {seen:?}");
        assert_eq!(cut + seen.get(&0).copied().unwrap_or(0), 128, "{seen:?}");
        let metrics = reqwest::get(format!("http://{}/metrics", addrs.plain))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(metrics.contains("venuebox_connections_refused_total{class=\"stranger\"}"));
        let evicted: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("venuebox_connections_evicted_total "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(evicted >= 1, "the newcomer took an idle stranger's place");
        drop(idle);
    }
}
