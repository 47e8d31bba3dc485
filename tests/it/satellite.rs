//! A second entrance, as an operator sets it up: the primary prints a
//! join code (`venuebox pair --standby`), the second box joins with it as
//! a satellite (`venuebox join … --satellite`, pinned to the printed CA
//! fingerprint) and follows the primary's log beside the standby. A phone
//! pairs at the satellite's own address with a code from the primary's
//! console and admits there: the primary decides (one authority), the same
//! ticket at the main door is "already checked in", a replayed nonce gets
//! the same answer. With the primary gone, the satellite says so.

use crate::common;
use common::binary::{self, pairing_code, phone_session, Running};
use common::standby::{free_port, join_as, standby_code, tickets};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn client_trusting(ca_pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem).unwrap())
        .https_only(true)
        .build()
        .unwrap()
}

/// Waits until `f` holds of `GET path` on `base` (as `token`).
async fn until(
    base: &str,
    path: &str,
    token: &str,
    what: &str,
    f: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = binary::call(reqwest::Method::GET, base, path, token, None).await;
        if f(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_satellite_forwards_its_door_to_the_primary_one_ticket_one_admission() {
    let dirs = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dirs.path().join("a"), dirs.path().join("b"));
    let (a, a_addrs) = binary::serve_lan_with(&a_dir, "127.0.0.1:0", &["--demo"], &[]);
    let mut a = Running(a);
    let (code, fingerprint) = standby_code(&a_dir);
    let out = join_as(&b_dir, &a_addrs.https, &code, &fingerprint, free_port(), &["--satellite"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("is the satellite of"), "{out:?}");
    let (b, b_addrs) = binary::serve_lan_with(&b_dir, "127.0.0.1:0", &[], &[]);
    let _b = Running(b);
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
    let scan = |base: String, nonce: &'static str, token: String| {
        let phone = phone.clone();
        let code = code.clone();
        async move {
            let r = phone
                .post(format!("{base}/api/v1/checkins"))
                .bearer_auth(token)
                .json(&json!({"code": code, "gate": "main", "nonce": nonce}))
                .send()
                .await
                .unwrap();
            let replayed = r.headers().contains_key("idempotent-replayed");
            (r.status().as_u16(), replayed, r.json::<Value>().await.unwrap())
        }
    };
    let (status, replayed, first) = scan(sat.clone(), "sat-1", token.clone()).await;
    assert_eq!(
        (status, replayed, first["verdict"].as_str()),
        (200, false, Some("admit")),
        "{first}"
    );
    assert_eq!(first["ticket"]["id"], ticket.as_str(), "{first}");
    // The same nonce again at the satellite: the primary's stored answer.
    let (status, replayed, replay) = scan(sat.clone(), "sat-1", token.clone()).await;
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
    let (_, _, again) = scan(sat.clone(), "sat-2", token.clone()).await;
    assert_eq!(again["reason"], "already_checked_in", "{again}");

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

    // The primary gone: the satellite does not decide on its own (yet),
    // it says what is wrong, and keeps nothing half done.
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    let (status, _, refused) = scan(sat.clone(), "sat-3", token.clone()).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (503, Some("primary_unreachable")));
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("satellite") && message.contains("link"), "{message}");
    // Its own pair view (answered by the satellite itself) shows the link down.
    until(&b_base, "/api/v1/standby", &admin, "the satellite never saw the link go", |v| {
        v["link"]["connected"] == false
    })
    .await;
}
