//! A second entrance, as an operator sets it up: the primary prints a
//! join code (`venuebox pair --standby`), the second box joins with it as
//! a satellite (`venuebox join … --satellite`, pinned to the printed CA
//! fingerprint) and follows the primary's log. A phone pairs at the
//! satellite's own address with a code from the primary's console and
//! admits there: the primary decides (one authority), the same ticket at
//! the main door is "already checked in", a replayed nonce gets the same
//! answer; the satellite's USB scanner (simulated) checks in at the
//! primary too. Then the satellite misses an admission (it is down), the
//! primary dies and the satellite comes back apart: it answers reads from
//! its copy, admits from it (flagged `x-venuebox-apart`), refuses other
//! writes, keeps what it admitted across a kill -9; the primary back, the
//! satellite reports, the primary merges by nonce and lists the ticket
//! admitted at both entrances with both records, and the satellite
//! forwards again.

use crate::common;
use common::binary::{self, client_trusting, pairing_code, phone_session, until, Running};
use common::standby::{primary_back, tickets, two_entrances};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// One check-in answer as the phone sees it.
struct Answer {
    status: u16,
    /// `idempotent-replayed`: the stored answer to a nonce seen before.
    replayed: bool,
    /// `x-venuebox-apart`: decided by the satellite on its own.
    apart: bool,
    body: Value,
}

/// `POST /api/v1/checkins` at `base` as `token`.
async fn check_in(
    phone: &reqwest::Client,
    base: &str,
    token: &str,
    code: &str,
    nonce: &str,
) -> Answer {
    let r = phone
        .post(format!("{base}/api/v1/checkins"))
        .bearer_auth(token)
        .json(&json!({"code": code, "gate": "main", "nonce": nonce}))
        .send()
        .await
        .unwrap();
    let replayed = r.headers().contains_key("idempotent-replayed");
    let apart = r.headers().contains_key("x-venuebox-apart");
    Answer { status: r.status().as_u16(), replayed, apart, body: r.json().await.unwrap() }
}

/// A scan of `code` by the satellite's (simulated) USB scanner `usb-1`.
async fn usb_scan(phone: &reqwest::Client, base: &str, token: &str, code: &str) -> (u16, Value) {
    let r = phone
        .post(format!("{base}/api/v1/devices/scan"))
        .bearer_auth(token)
        .json(&json!({"code": code, "scanner": "usb-1"}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_satellite_forwards_its_door_to_the_primary_one_ticket_one_admission() {
    let dirs = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dirs.path().join("a"), dirs.path().join("b"));
    let t = two_entrances(&a_dir, &b_dir);
    let (mut a, a_addrs, _b, b_addrs) = (t.a, t.a_addrs, t.b, t.b_addrs);
    let a_link = t.a_link.clone();
    let admin = binary::token(&a_dir, "admin");
    let a_base = format!("http://{}", a_addrs.plain);
    let b_base = format!("http://{}", b_addrs.plain);

    // The primary lists the satellite; the pair's own view (no standby
    // joined) is untouched by it.
    let view = until(&a_base, "/api/v1/standby", &admin, "the satellite never followed", |v| {
        v["link"]["satellites"][0]["connected"] == true
    })
    .await;
    assert_eq!(view["link"]["connected"], false, "a satellite is not the standby: {view}");
    // The satellite serves the event (from the primary's snapshot) and
    // says what it is; it names no box for its phones to move to.
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        let h: Value =
            reqwest::get(format!("{b_base}/healthz")).await.unwrap().json().await.unwrap();
        if h["event"].is_string() {
            break h;
        }
        assert!(Instant::now() < deadline, "the satellite never had the event: {h}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(health["role"], "satellite", "{health}");
    assert_eq!(health["peer"], Value::Null, "{health}");

    // A phone at the satellite's own address pairs with a code printed on
    // the primary's console and signs in with its PIN: both are the
    // primary's (the satellite has no write of its own).
    let ca = std::fs::read(b_dir.join("tls/ca.pem")).unwrap();
    assert_eq!(ca, std::fs::read(a_dir.join("tls/ca.pem")).unwrap(), "one CA for every box");
    let phone = client_trusting(&ca);
    let port = b_addrs.https.rsplit(':').next().unwrap();
    let sat = format!("https://localhost:{port}");
    let token = phone_session(&phone, &sat, &pairing_code(&a_dir), "1111").await;

    let all = tickets(&a_dir);
    let (ticket, code) = &all[0];
    let Answer { status, replayed, body: first, .. } =
        check_in(&phone, &sat, &token, code, "sat-1").await;
    assert_eq!(
        (status, replayed, first["verdict"].as_str()),
        (200, false, Some("admit")),
        "{first}"
    );
    assert_eq!(first["ticket"]["id"], ticket.as_str(), "{first}");
    // The same nonce again at the satellite: the primary's stored answer.
    let Answer { status, replayed, body: replay, .. } =
        check_in(&phone, &sat, &token, code, "sat-1").await;
    assert_eq!((status, replayed), (200, true), "{replay}");
    assert_eq!(replay["scan_id"], first["scan_id"], "{replay}");
    // The same ticket at the main door: the primary admitted it already.
    let door = binary::token(&a_dir, "door");
    let (_, main) = binary::call(
        reqwest::Method::POST,
        &a_base,
        "/api/v1/checkins",
        &door,
        Some(json!({"code": code, "gate": "main", "nonce": "main-1"})),
    )
    .await;
    assert_eq!(main["reason"], "already_checked_in", "{main}");
    // And a second scan of it at the satellite says the same.
    let again = check_in(&phone, &sat, &token, code, "sat-2").await.body;
    assert_eq!(again["reason"], "already_checked_in", "{again}");

    // The satellite's own USB scanner (simulated): joined, its scans are
    // the primary's check-ins too, as the satellite's scanner credential.
    let (status, usb) = usb_scan(&phone, &sat, &token, &all[4].1).await;
    assert_eq!((status, usb["verdict"].as_str()), (200, Some("admit")), "{usb}");
    let (_, main4) = binary::call(
        reqwest::Method::POST,
        &a_base,
        "/api/v1/checkins",
        &door,
        Some(json!({"code": all[4].1, "gate": "main", "nonce": "main-4"})),
    )
    .await;
    assert_eq!(main4["reason"], "already_checked_in", "the primary decided it: {main4}");
    let (_, scans) = binary::call(
        reqwest::Method::GET,
        &a_base,
        &format!("/api/v1/checkins?ticket={}", all[4].0),
        &admin,
        None,
    )
    .await;
    let admitted = scans["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["verdict"] == "admit"))
        .unwrap_or_else(|| panic!("{scans}"));
    assert!(admitted["staff"].as_str().unwrap_or("").starts_with("satellite "), "{scans}");
    assert_eq!(admitted["device"], "usb-1", "{scans}");

    // The satellite's copy follows the primary's log to its end.
    let (_, st) =
        binary::call(reqwest::Method::GET, &a_base, "/api/v1/standby", &admin, None).await;
    let seq = st["seq"].as_i64().unwrap_or_else(|| panic!("{st}"));
    assert_eq!(
        st["link"]["peer_web"],
        Value::Null,
        "a satellite is not the pair's other box: {st}"
    );
    until(&a_base, "/api/v1/standby", &admin, "the satellite never caught up", |v| {
        v["link"]["satellites"][0]["seq"].as_i64() >= Some(seq)
    })
    .await;

    // A cut: the satellite misses a ticket the main door admits (it is
    // down meanwhile), then the primary is gone and the satellite back.
    let (t3, c3) = &all[2];
    drop(_b);
    let (_, main3) = binary::call(
        reqwest::Method::POST,
        &a_base,
        "/api/v1/checkins",
        &door,
        Some(json!({"code": c3, "gate": "main", "nonce": "main-3"})),
    )
    .await;
    assert_eq!(main3["verdict"], "admit", "{main3}");
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    let (b, b_addrs) = binary::serve_lan_with(&b_dir, "127.0.0.1:0", &["--simulate"], &[]);
    let _b = Running(b);
    let b_base = format!("http://{}", b_addrs.plain);
    let port = b_addrs.https.rsplit(':').next().unwrap();
    let sat = format!("https://localhost:{port}");
    until(&b_base, "/api/v1/standby", &admin, "the satellite never saw the link go", |v| {
        v["link"]["connected"] == false
    })
    .await;
    let health: Value =
        reqwest::get(format!("{b_base}/healthz")).await.unwrap().json().await.unwrap();
    assert_eq!(health["apart"], true, "{health}");
    // The app's reads come from the satellite's copy meanwhile.
    let me: Value = phone
        .get(format!("{sat}/api/v1/session"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(me["name"].is_string(), "{me}");
    // A write with no apart mode: refused, saying why.
    let r = phone
        .post(format!("{sat}/api/v1/pairing-codes"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);

    // Apart, the satellite decides against its copy (exact up to the cut)
    // and says so on every answer.
    let (t2, c2) = &all[1];
    let Answer { status, apart, body: a2, .. } =
        check_in(&phone, &sat, &token, c2, "apart-2").await;
    assert_eq!((status, apart, a2["verdict"].as_str()), (200, true, Some("admit")), "{a2}");
    assert_eq!(a2["ticket"]["id"], t2.as_str());
    let again2 = check_in(&phone, &sat, &token, c2, "apart-2b").await.body;
    assert_eq!(again2["reason"], "already_checked_in", "{again2}");
    // Admitted at the primary before the cut: the copy knows it.
    let again1 = check_in(&phone, &sat, &token, code, "apart-1").await.body;
    assert_eq!(again1["reason"], "already_checked_in", "{again1}");
    // Admitted at the main door after the cut: the satellite cannot know.
    let a3 = check_in(&phone, &sat, &token, c3, "apart-3").await.body;
    assert_eq!(a3["verdict"], "admit", "{a3}");
    // Its USB scanner goes on too, decided here.
    let (status, usb5) = usb_scan(&phone, &sat, &token, &all[5].1).await;
    assert_eq!((status, usb5["verdict"].as_str()), (200, Some("admit")), "{usb5}");

    // kill -9 of the satellite during the cut: what it acknowledged stays.
    drop(_b);
    let (b, b_addrs) = binary::serve_lan_with(&b_dir, "127.0.0.1:0", &["--simulate"], &[]);
    let _b = Running(b);
    let port = b_addrs.https.rsplit(':').next().unwrap();
    let sat = format!("https://localhost:{port}");
    let Answer { replayed, apart, body: again, .. } =
        check_in(&phone, &sat, &token, c2, "apart-2").await;
    assert_eq!((replayed, apart, &again["scan_id"]), (true, true, &a2["scan_id"]), "{again}");
    let health: Value = reqwest::get(format!("http://{}/healthz", b_addrs.plain))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["apart"], true, "still apart after the restart: {health}");
    let after = check_in(&phone, &sat, &token, c2, "apart-2c").await.body;
    assert_eq!(after["reason"], "already_checked_in", "{after}");

    // The link returns: the satellite reports what it decided apart, the
    // primary merges it by nonce and lists the ticket admitted on both
    // sides with both records; the satellite follows again.
    let (_a, a_base) = primary_back(&a_dir, &a_link, &b_addrs, &admin).await;
    let view =
        until(&a_base, "/api/v1/standby", &admin, "the primary never listed the merge", |v| {
            v["takeover_report"].as_array().is_some_and(|r| r.len() >= 3)
        })
        .await;
    let entry = |nonce: &str| -> Value {
        view["takeover_report"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["reference"] == nonce)
            .cloned()
            .unwrap_or_else(|| panic!("{nonce} not listed: {view}"))
    };
    assert_eq!(entry("apart-2")["outcome"], "merged", "{view}");
    let double = entry("apart-3");
    assert_eq!(double["outcome"], "double_admission", "{view}");
    assert_eq!(double["detail"]["new_primary"]["nonce"], "main-3", "{double}");
    assert_eq!(double["detail"]["old_primary"]["ticket"], t3.as_str(), "{double}");
    // The scanner's admission apart is merged too; nothing else is listed.
    let report = view["takeover_report"].as_array().unwrap();
    assert_eq!(report.len(), 3, "only admissions: {view}");
    assert!(
        report.iter().any(|e| e["outcome"] == "merged"
            && e["detail"]["old_primary"]["ticket"] == all[5].0.as_str()),
        "{view}"
    );
    // The ticket admitted apart is inside at the main door too.
    let door = binary::token(&a_dir, "door");
    let (_, main2) = binary::call(
        reqwest::Method::POST,
        &a_base,
        "/api/v1/checkins",
        &door,
        Some(json!({"code": c2, "gate": "main", "nonce": "main-2"})),
    )
    .await;
    assert_eq!(main2["reason"], "already_checked_in", "{main2}");
    // And the satellite forwards again.
    let Answer { status, apart, body: fwd, .. } =
        check_in(&phone, &sat, &token, &all[3].1, "sat-4").await;
    assert_eq!((status, apart, fwd["verdict"].as_str()), (200, false, Some("admit")), "{fwd}");
}
