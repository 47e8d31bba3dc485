//! Door check-in end to end: the real server on 127.0.0.1:0, a real HTTP
//! client, the real SQLite file.

use crate::common;

use common::{nonce, TestBox, DOOR_PIN, EVENT};
use serde_json::{json, Value};
use venuebox::api::ApiConfig;
use venuebox::clock::Clock;
use venuebox::domain::ids::Seq;
use venuebox::domain::keys::{sign_detached, signing_key_from_bytes};
use venuebox::domain::role::Role;
use venuebox::organiser::keyfile::KeyFile;

fn scan_body(code: &str, gate: &str) -> Value {
    json!({"code": code, "gate": gate, "nonce": nonce()})
}

#[tokio::test]
async fn staff_sign_in_with_a_pin_and_scan_a_signed_ticket_once() {
    let b = TestBox::start().await;
    let phone = b.pair_device("door phone").await;
    let (status, s) = b.sign_in(&phone, DOOR_PIN).await;
    assert_eq!(status, 200);
    assert_eq!(s["role"], "door");
    let token = s["token"].as_str().unwrap().to_string();

    let code = b.signed("T-100", "ga");
    let (st, first) = b.scan(&token, scan_body(&code, "main")).await;
    assert_eq!(st, 200);
    assert_eq!(first["verdict"], "admit", "{first}");
    assert_eq!(first["reason"], Value::Null);
    assert_eq!(first["ticket"]["id"], "T-100");
    assert_eq!(first["ticket"]["tier_name"], "General");

    let (_, again) = b.scan(&token, scan_body(&code, "vip")).await;
    assert_eq!(again["reason"], "not_allowed_at_gate", "ga ticket at the vip gate");
    let (_, again) = b.scan(&token, scan_body(&code, "main")).await;
    assert_eq!(again["verdict"], "reject");
    assert_eq!(again["reason"], "already_checked_in");
    assert_eq!(again["previous"]["gate"], "main");
    assert_eq!(again["previous"]["at"], first["recorded_at"]);
    assert!(again["message"].as_str().unwrap().contains("Main door"), "{again}");
}

#[tokio::test]
async fn every_reject_reason_reaches_the_door() {
    let b = TestBox::start().await;
    let t = b.token(Role::Door).await;
    let stranger = KeyFile::generate();
    let forged = venuebox::organiser::tickets::mint(
        &stranger.signing_key(),
        &EVENT.into(),
        &"ga".into(),
        ["T-9".into()],
        (None, None),
    )
    .unwrap()
    .remove(0)
    .code;
    let other_event = venuebox::organiser::tickets::mint(
        &b.key.signing_key(),
        &"evt-other".into(),
        &"ga".into(),
        ["T-9".into()],
        (None, None),
    )
    .unwrap()
    .remove(0)
    .code;
    let future = b.signed_window("T-F", "ga", (Some(4_000_000_000), None));
    let past = b.signed_window("T-P", "ga", (None, Some(1_000_000_000)));
    let cases = [
        ("SECRET-0001", "main", "entry", Value::Null),
        ("NO-SUCH-SECRET", "main", "entry", json!("unknown_ticket")),
        ("VB1:GARBAGE", "main", "entry", json!("unknown_ticket")),
        (forged.as_str(), "main", "entry", json!("bad_signature")),
        (other_event.as_str(), "main", "entry", json!("wrong_event")),
        ("SECRET-0002", "main", "entry", json!("unpaid")),
        ("SECRET-0003", "main", "entry", json!("cancelled")),
        (future.as_str(), "main", "entry", json!("not_valid_yet")),
        (past.as_str(), "main", "entry", json!("expired")),
        ("SECRET-0004", "vip", "entry", json!("not_allowed_at_gate")),
        ("SECRET-0004", "main", "exit", json!("not_checked_in")),
        ("SECRET-0005", "vip", "entry", Value::Null),
        ("SECRET-0005", "vip", "entry", json!("already_checked_in")),
    ];
    for (code, gate, dir, want) in cases {
        let (st, v) = b
            .scan(&t, json!({"code": code, "gate": gate, "direction": dir, "nonce": nonce()}))
            .await;
        assert_eq!(st, 200, "{code}: {v}");
        assert_eq!(v["reason"], want, "{code} at {gate} ({dir}): {v}");
        assert_eq!(v["verdict"], if want.is_null() { "admit" } else { "reject" });
    }
    // Exit, then re-entry where the gate allows it.
    for (dir, want) in
        [("exit", Value::Null), ("exit", json!("not_checked_in")), ("entry", Value::Null)]
    {
        let (_, v) = b
            .scan(
                &t,
                json!({"code": "SECRET-0001", "gate": "main", "direction": dir, "nonce": nonce()}),
            )
            .await;
        assert_eq!(v["reason"], want, "{dir}: {v}");
    }
    // Every failed scan is logged and listed.
    let (_, list) = b.get(&t, "/api/v1/checkins?verdict=reject&limit=100").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 12);
}

#[tokio::test]
async fn the_same_nonce_returns_the_first_answer_and_changes_nothing() {
    let b = TestBox::start().await;
    let t = b.token(Role::Door).await;
    let body = json!({"code": b.signed("T-1", "ga"), "gate": "main", "nonce": "phone-7-scan-1"});
    let first =
        b.http.post(b.url("/api/v1/checkins")).bearer_auth(&t).json(&body).send().await.unwrap();
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let before = b.state.store.outbox_after(Seq(0), 1000).await.unwrap().len();
    let second =
        b.http.post(b.url("/api/v1/checkins")).bearer_auth(&t).json(&body).send().await.unwrap();
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let second: Value = second.json().await.unwrap();
    assert_eq!(first, second);
    assert_eq!(second["verdict"], "admit");
    assert_eq!(
        b.state.store.outbox_after(Seq(0), 1000).await.unwrap().len(),
        before,
        "a replay writes nothing"
    );
    // The same nonce for a different scan is a client bug, not a replay.
    let (st, v) =
        b.scan(&t, json!({"code": "SECRET-0004", "gate": "main", "nonce": "phone-7-scan-1"})).await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["error"]["code"], "nonce_reused");
}

#[tokio::test]
async fn fifty_clients_scanning_one_ticket_at_two_gates_admit_it_exactly_once() {
    let b = TestBox::start().await;
    let t = b.token(Role::Door).await;
    let code = b.signed("T-RACE", "vip");
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (http, url, t, code) =
            (b.http.clone(), b.url("/api/v1/checkins"), t.clone(), code.clone());
        let gate = if i % 2 == 0 { "main" } else { "vip" };
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(t)
                .json(&json!({"code": code, "gate": gate, "nonce": nonce()}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }));
    }
    let mut admits = 0;
    for task in tasks {
        let v = task.await.unwrap();
        if v["verdict"] == "admit" {
            admits += 1;
        } else {
            assert_eq!(v["reason"], "already_checked_in", "{v}");
        }
    }
    assert_eq!(admits, 1);
    let (_, list) = b.get(&t, "/api/v1/checkins?verdict=admit&ticket=T-RACE").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "the log agrees");
}

#[tokio::test]
async fn every_scan_and_undo_appends_a_gap_free_outbox_row_in_its_transaction() {
    let clock = Clock::fixed(1_800_000_000_000);
    let b = TestBox::start_with(
        clock.clone(),
        ApiConfig { undo_window_ms: 60_000, ..ApiConfig::default() },
    )
    .await;
    let door = b.token(Role::Door).await;
    let sup = b.token(Role::Supervisor).await;
    let (_, admitted) = b.scan(&door, scan_body("SECRET-0001", "main")).await;
    b.scan(&door, scan_body("NOPE-NOPE", "main")).await;
    let id = admitted["scan_id"].as_i64().unwrap();
    let undo = |tok: &str| {
        b.http
            .post(b.url(&format!("/api/v1/checkins/{id}/undo")))
            .bearer_auth(tok.to_string())
            .send()
    };
    assert_eq!(undo(&door).await.unwrap().status(), 403, "door staff cannot undo");
    clock.advance(30_000);
    let r = undo(&sup).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(undo(&sup).await.unwrap().status(), 409, "already undone");
    // After an undo the ticket can be admitted again.
    let (_, again) = b.scan(&door, scan_body("SECRET-0001", "main")).await;
    assert_eq!(again["verdict"], "admit");
    // Outside the window, no undo.
    clock.advance(61_000);
    let late = b
        .http
        .post(b.url(&format!("/api/v1/checkins/{}/undo", again["scan_id"])))
        .bearer_auth(&sup)
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 409);
    assert!(late.text().await.unwrap().contains("undo window"));

    let rows = b.state.store.outbox_after(Seq(0), 100).await.unwrap();
    let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "manifest.imported",
            "checkin.admitted",
            "checkin.rejected",
            "checkin.undone",
            "checkin.admitted"
        ]
    );
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.seq, Seq(i as i64 + 1), "gap-free");
        assert_eq!(r.box_id, b.state.store.box_id());
    }
    assert_eq!(rows[2].payload["reason"], "unknown_ticket");
    let (_, stats) = b.get(&door, "/api/v1/stats").await;
    assert_eq!(stats["inside"], 1);
    assert_eq!(stats["gates"]["main"]["undone"], 1);
    assert_eq!(stats["rejected_by_reason"]["unknown_ticket"], 1);
}

#[tokio::test]
async fn bad_input_gets_a_400_that_says_what_to_do_and_stores_nothing() {
    let b = TestBox::start().await;
    let t = b.token(Role::Door).await;
    let cases = [
        (json!({"gate": "main", "nonce": "x"}), "code"),
        (json!({"code": "", "gate": "main", "nonce": "x"}), "code must be"),
        (json!({"code": "SECRET-0001", "gate": "main", "nonce": ""}), "nonce"),
        (
            json!({"code": "SECRET-0001", "gate": "main", "nonce": "x", "direction": "sideways"}),
            "entry or exit",
        ),
        (
            json!({"code": "SECRET-0001", "gate": "main", "nonce": "x", "scanned_at": "yesterday"}),
            "RFC 3339",
        ),
        (json!({"code": "SECRET-0001", "gate": "roof", "nonce": "x"}), "main, vip"),
        (
            json!({"code": "SECRET-0001", "gate": "main", "nonce": "x", "colour": "red"}),
            "unknown field",
        ),
    ];
    for (body, hint) in cases {
        let (st, v) = b.scan(&t, body.clone()).await;
        assert_eq!(st, 400, "{body}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(hint), "{body}: {v}");
    }
    let raw = b
        .http
        .post(b.url("/api/v1/checkins"))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    assert_eq!(b.state.store.outbox_after(Seq(1), 100).await.unwrap().len(), 0, "nothing recorded");
}

#[tokio::test]
async fn roles_are_checked_on_every_endpoint() {
    let b = TestBox::start().await;
    let merch = b.token(Role::Merch).await;
    let door = b.token(Role::Door).await;
    let scan = json!({"code": "SECRET-0001", "gate": "main", "nonce": nonce()});
    let r = b.http.post(b.url("/api/v1/checkins")).json(&scan).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("sign in"));
    let r = b
        .http
        .post(b.url("/api/v1/checkins"))
        .bearer_auth("vbx_forged")
        .json(&scan)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(b.scan(&merch, scan.clone()).await.0, 403);
    assert_eq!(b.get(&merch, "/api/v1/checkins").await.0, 403);
    let import = json!({"manifest": "{}", "signature": "x"});
    let r = b
        .http
        .post(b.url("/api/v1/manifest"))
        .bearer_auth(&door)
        .json(&import)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Signing out ends the token.
    let r = b.http.delete(b.url("/api/v1/session")).bearer_auth(&door).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(b.scan(&door, scan).await.0, 401);
}

#[tokio::test]
async fn pin_guessing_is_throttled_per_device() {
    // No refusal delay, so the guard's own waits are what the test sees.
    let b = TestBox::start_with(
        venuebox::clock::Clock::system(),
        ApiConfig { refusal_delay_ms: 0, ..ApiConfig::default() },
    )
    .await;
    let phone = b.pair_device("guessing phone").await;
    let other = b.pair_device("door phone").await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(b.sign_in(&phone, "0000").await.0);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429]);
    let r = b
        .http
        .post(b.url("/api/v1/session"))
        .json(&json!({"pin": DOOR_PIN, "device": phone}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "even the right PIN waits on the guessing device");
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(b.sign_in(&other, DOOR_PIN).await.0, 200, "another paired device is not locked out");
}

#[tokio::test]
async fn a_bad_manifest_leaves_the_loaded_one_intact_and_a_newer_one_applies_atomically() {
    let b = TestBox::start().await;
    let admin = b.token(Role::Admin).await;
    let door = b.token(Role::Door).await;
    let post = |manifest: Vec<u8>, signature: String| {
        b.http
            .post(b.url("/api/v1/manifest"))
            .bearer_auth(&admin)
            .json(
                &json!({"manifest": String::from_utf8(manifest).unwrap(), "signature": signature}),
            )
            .send()
    };
    // Tampered after signing.
    let good = common::manifest(&b.key, 2, |m| m["revoked_codes"] = json!(["SECRET-0004"]));
    let sig = sign_detached(&b.key.signing_key(), &good);
    let tampered = String::from_utf8(good.clone())
        .unwrap()
        .replace("SECRET-0004\"", "SECRET-0001\"")
        .into_bytes();
    let r = post(tampered, sig.clone()).await.unwrap();
    assert_eq!(r.status(), 400);
    // Signed by a key the box does not trust.
    let evil = signing_key_from_bytes([66; 32]);
    let r = post(good.clone(), sign_detached(&evil, &good)).await.unwrap();
    assert_eq!(r.status(), 400);
    // Valid signature, invalid content (a ticket in an unknown tier).
    let broken = common::manifest(&b.key, 3, |m| m["tickets"][0]["tier"] = json!("balcony"));
    let r = post(broken.clone(), sign_detached(&b.key.signing_key(), &broken)).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("balcony"));
    // The old manifest is still in force: version 1, SECRET-0004 scans.
    let (_, ev) = b.get(&door, "/api/v1/event").await;
    assert_eq!(ev["manifest_version"], 1);

    // The good one applies, and revokes SECRET-0004.
    let r = post(good.clone(), sig.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["outcome"], "imported");
    let (_, scan) = b.scan(&door, scan_body("SECRET-0004", "main")).await;
    assert_eq!(scan["reason"], "revoked");
    // Same again: unchanged. Older: refused.
    let v: Value = post(good, sig).await.unwrap().json().await.unwrap();
    assert_eq!(v["outcome"], "unchanged");
    let old = common::manifest(&b.key, 1, |_| {});
    let r = post(old.clone(), sign_detached(&b.key.signing_key(), &old)).await.unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("not newer"));
}

#[tokio::test]
async fn health_metrics_and_the_openapi_document_cover_every_route() {
    let b = TestBox::start().await;
    let t = b.token(Role::Door).await;
    b.scan(&t, scan_body("SECRET-0001", "main")).await;
    b.scan(&t, scan_body("SECRET-0001", "main")).await;
    let h: Value = b.http.get(b.url("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(h["event"], EVENT);
    let m = b.http.get(b.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("venuebox_checkins_total{verdict=\"admit\",reason=\"\"} 1"), "{m}");
    assert!(
        m.contains("venuebox_checkins_total{verdict=\"reject\",reason=\"already_checked_in\"} 1")
    );
    assert!(m.contains("venuebox_store_commit_seconds_count"));
    // A scrape flood does not read the outbox each time: the sync figures
    // are computed at most every two seconds (before: a table scan per
    // scrape, 39-71 ms at 20-60k rows).
    let pending = |m: &str| {
        m.lines().find_map(|l| l.strip_prefix("venuebox_sync_events_pending ")).unwrap().to_string()
    };
    let before = pending(&m);
    b.scan(&t, scan_body("SECRET-0004", "main")).await;
    let (_, sync) = b.get(&b.token(Role::Supervisor).await, "/api/v1/sync").await;
    assert_eq!(
        sync["events_pending"].to_string(),
        (before.parse::<i64>().unwrap() + 1).to_string()
    );
    let again = b.http.get(b.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(pending(&again), before, "the same figures within two seconds");
    let doc: Value =
        b.http.get(b.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 9);
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let url = b.url(&path.replace("{id}", "1"));
            let r =
                b.http.request(method.to_uppercase().parse().unwrap(), url).send().await.unwrap();
            assert!(
                ![404, 405].contains(&r.status().as_u16()),
                "{method} {path} is documented but not routed"
            );
        }
    }
    let r = b.http.get(b.url("/api/v1/nothing-here")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_guest_with_a_dead_phone_is_found_by_name_order_or_email_and_checked_in_once() {
    let b = TestBox::start_full(Clock::system(), ApiConfig::default(), |m| {
        m["tickets"][0]["order"] = json!("ORD-7");
        m["tickets"][0]["email"] = json!("Ada@Example.org");
        m["tickets"][3]["holder"] = json!("Adam 100%_sure");
    })
    .await;
    let door = b.token(Role::Door).await;
    let find = |q: &str| {
        let url = reqwest::Url::parse_with_params(&b.url("/api/v1/tickets"), [("q", q)]).unwrap();
        let (http, door) = (b.http.clone(), door.clone());
        async move {
            let r = http.get(url).bearer_auth(&door).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let ids = |v: &Value| -> Vec<String> {
        v["items"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().into()).collect()
    };
    let (status, by_name) = find("ada").await;
    assert_eq!((status, ids(&by_name)), (200, vec!["R-1".to_string(), "R-4".into()]), "{by_name}");
    let ada = &by_name["items"][0];
    assert_eq!(
        (&ada["holder"], &ada["tier_name"], &ada["order"], &ada["status"]),
        (&json!("Ada"), &json!("General"), &json!("ORD-7"), &json!("paid")),
        "{ada}"
    );
    let text = by_name.to_string();
    assert!(
        !text.contains("SECRET-0001") && !text.to_lowercase().contains("example.org"),
        "neither the code nor the email leaves: {text}"
    );
    assert_eq!(ids(&find("ord-7").await.1), ["R-1"], "a whole order code");
    assert_eq!(ids(&find("ada@example.ORG").await.1), ["R-1"], "a whole email");
    assert_eq!(
        ids(&find("example.org").await.1),
        Vec::<String>::new(),
        "part of an email is not searched"
    );
    assert_eq!(ids(&find("0%_").await.1), ["R-4"], "wildcards are letters");
    let (status, e) = find(" a ").await;
    assert_eq!(status, 400, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("2 to 100 characters"), "{e}");

    // Checked in from the result: the same table as a scan of its code.
    let body = |ticket: &str| json!({"ticket": ticket, "gate": "main", "nonce": nonce()});
    let (status, first) = b.scan(&door, body("R-1")).await;
    assert_eq!((status, &first["verdict"]), (200, &json!("admit")), "{first}");
    let (_, again) = b.scan(&door, scan_body("SECRET-0001", "main")).await;
    assert_eq!(again["reason"], "already_checked_in", "then her code is already in: {again}");
    let (_, found) = find("ORD-7").await;
    assert_eq!(found["items"][0]["admitted"]["gate_name"], "Main door", "{found}");
    let (_, unpaid) = b.scan(&door, body("R-2")).await;
    assert_eq!(unpaid["reason"], "unpaid", "{unpaid}");
    let (_, vip) = b.scan(&door, json!({"ticket": "R-5", "gate": "vip", "nonce": nonce()})).await;
    assert_eq!(vip["verdict"], "admit", "{vip}");
    let (_, unknown) = b.scan(&door, body("R-404")).await;
    assert_eq!(unknown["reason"], "unknown_ticket", "{unknown}");
    let sup = b.token(Role::Supervisor).await;
    let (_, scans) = b.get(&sup, "/api/v1/checkins?ticket=R-1").await;
    assert_eq!(scans["items"][1]["code"], "SECRET-0001", "recorded with her code: {scans}");
    let (status, both) = b
        .scan(
            &door,
            json!({"ticket": "R-1", "code": "SECRET-0001", "gate": "main", "nonce": nonce()}),
        )
        .await;
    assert_eq!(status, 400, "{both}");

    // Who may search, and how often.
    let merch = b.token(Role::Merch).await;
    let r = b.http.get(b.url("/api/v1/tickets?q=ada")).bearer_auth(&merch).send().await.unwrap();
    assert_eq!(r.status(), 403);
    // Six searches above; the rest of the minute's budget, then 429.
    let mut more = 0;
    let (status, e) = loop {
        let (status, v) = find("Vic").await;
        if status != 200 || more > 100 {
            break (status, v);
        }
        more += 1;
    };
    assert_eq!((6 + more, status), (venuebox::api::lookup::PER_WINDOW, 429), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("scan the guest's code"), "{e}");
}
