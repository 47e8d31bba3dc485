//! The venue LAN end to end against the real binary: HTTPS with the box's
//! own authority (a client that trusts only that CA walks the check-in
//! through; one that does not is refused at the handshake), an operator's
//! certificate served and reloaded, and the plain-HTTP pairing listener
//! that serves the pairing page and the CA and nothing else.

use crate::common;

use common::binary::{client_trusting, pairing_code, serve_lan};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::Duration;

use common::binary::Running;

#[tokio::test]
async fn a_phone_trusting_the_box_ca_checks_in_over_https_and_others_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (child, addrs) = serve_lan(tmp.path(), &["--demo", "--mdns-name", "door-box", "--no-mdns"]);
    let _box = Running(child);
    let ca = std::fs::read(tmp.path().join("tls/ca.pem")).unwrap();
    // The banner gives staff the URLs, the fingerprint and a QR code.
    assert!(addrs.banner.contains("https://door-box.local:"), "{}", addrs.banner);
    assert!(addrs.banner.contains("box CA fingerprint (SHA-256): "), "{}", addrs.banner);
    assert!(addrs.banner.contains('█'), "a QR code in the terminal");
    let port = addrs.https.rsplit(':').next().unwrap().to_string();
    let https = |host: &str, path: &str| format!("https://{host}:{port}{path}");
    let phone = client_trusting(&ca);

    // The mDNS name in the certificate: resolve it to loopback for the test.
    let by_name = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .resolve("door-box.local", addrs.https.parse().unwrap())
        .build()
        .unwrap();
    let h: Value = by_name
        .get(https("door-box.local", "/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ok");
    for host in ["localhost", "127.0.0.1"] {
        let r = phone.get(https(host, "/healthz")).send().await.unwrap();
        assert!(r.status().is_success(), "{host}");
        assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    }
    let plain = reqwest::get(format!("http://{}/healthz", addrs.plain)).await.unwrap();
    assert!(!plain.headers().contains_key("strict-transport-security"), "HSTS only over HTTPS");
    // Not in the certificate: refused by the client's verification.
    let other = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .resolve("elsewhere.example", addrs.https.parse().unwrap())
        .build()
        .unwrap();
    assert!(other.get(https("elsewhere.example", "/healthz")).send().await.is_err());
    // A client that does not trust the box's CA fails the handshake.
    let stranger = reqwest::Client::builder().https_only(true).build().unwrap();
    let e = stranger.get(https("localhost", "/healthz")).send().await.unwrap_err();
    assert!(e.is_connect(), "{e:?}");

    // The check-in walk-through, over HTTPS only.
    let code = pairing_code(tmp.path());
    let token =
        &common::binary::phone_session(&phone, &https("localhost", ""), &code, "1111").await;
    let ticket = std::fs::read_to_string(tmp.path().join("demo/tickets.csv"))
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(2)
        .unwrap()
        .to_string();
    let scan = |nonce: &str| {
        phone
            .post(https("localhost", "/api/v1/checkins"))
            .bearer_auth(token)
            .json(&json!({"code": ticket, "gate": "main", "nonce": nonce}))
            .send()
    };
    // The metrics and the document: staff only on the LAN.
    for path in ["/metrics", "/api/v1/openapi.json"] {
        let anon = phone.get(https("localhost", path)).send().await.unwrap().status();
        let staff =
            phone.get(https("localhost", path)).bearer_auth(token).send().await.unwrap().status();
        assert_eq!((anon.as_u16(), staff.as_u16()), (401, 200), "{path}");
    }
    let first: Value = scan("https-1").await.unwrap().json().await.unwrap();
    assert_eq!(first["verdict"], "admit", "{first}");
    let second: Value = scan("https-2").await.unwrap().json().await.unwrap();
    assert_eq!(second["reason"], "already_checked_in");
}

/// The LAN's plain HTTP: the pairing page and the CA; anything else is a
/// redirect to HTTPS, answered before a request body (a PIN) is read.
#[tokio::test]
async fn plain_http_on_the_lan_serves_only_pairing_and_never_reads_a_pin() {
    let tmp = tempfile::tempdir().unwrap();
    let (child, addrs) = serve_lan(tmp.path(), &["--demo"]);
    let _box = Running(child);
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let base = format!("http://{}", addrs.pair);
    // The printed link is /pair#pair=CODE: a browser sends only /pair.
    let answer = http.get(format!("{base}/pair#pair=ABCD-EFGH-JKMN")).send().await.unwrap();
    for (name, value) in [("x-content-type-options", "nosniff"), ("referrer-policy", "no-referrer")]
    {
        assert_eq!(answer.headers()[name], value);
    }
    let csp = answer.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{csp}");
    let page = answer.text().await.unwrap();
    let ca = std::fs::read_to_string(tmp.path().join("tls/ca.pem")).unwrap();
    let fp = venuebox::net::tls::fingerprint_colons(&venuebox::net::tls::fingerprint(
        &rustls_pemfile_der(&ca),
    ));
    assert!(page.contains(&fp), "the page shows the fingerprint");
    assert!(!page.contains("ABCD-EFGH-JKMN"), "the server never saw the code");
    assert!(page.contains("<script src=/pair.js"), "the page's script hands the code on");
    let js = http.get(format!("{base}/pair.js")).send().await.unwrap().text().await.unwrap();
    assert!(js.contains("get(\"pair\")") && js.contains("a.staff"), "{js}");
    let hostile =
        http.get(format!("{base}/pair?code=<script>")).send().await.unwrap().text().await.unwrap();
    assert_eq!(hostile, page, "nothing of a query is echoed");
    assert!(
        page.contains("Android")
            && page.contains("iPhone")
            && page.contains("macOS")
            && page.contains("Windows")
    );
    assert_eq!(http.get(format!("{base}/ca.pem")).send().await.unwrap().text().await.unwrap(), ca);
    let der = http.get(format!("{base}/ca.crt")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(der.as_ref(), rustls_pemfile_der(&ca).as_slice());
    for path in ["/api/v1/event", "/healthz", "/metrics", "/api/v1/openapi.json"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 308, "{path}");
        let port = addrs.https.rsplit(':').next().unwrap();
        assert_eq!(r.headers()["location"], format!("https://127.0.0.1:{port}{path}").as_str());
    }
    // A sign-in sent in clear: the redirect comes back though the body
    // never left the client (only headers were sent), and the connection
    // is closed rather than read further.
    let mut s = std::net::TcpStream::connect(&addrs.pair).unwrap();
    s.write_all(b"POST /api/v1/session HTTP/1.1\r\nHost: box\r\ncontent-type: application/json\r\ncontent-length: 40\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 308"), "{text}");
    assert!(text.to_ascii_lowercase().contains("connection: close"), "{text}");
    let m = reqwest::get(format!("http://{}/metrics", addrs.plain))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("venuebox_signin_failures_total{reason=\"wrong_pin\"} 0"));
}

/// An operator's own certificate (say, for a real domain) is served, and
/// replaced on disk it is picked up without a restart.
#[tokio::test]
async fn an_operators_certificate_is_served_and_reloaded() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = (tmp.path().join("op.pem"), tmp.path().join("op.key"));
    let make = |name: &str| {
        let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    };
    let (c1, k1) = make("box.example.org");
    std::fs::write(&cert, &c1).unwrap();
    std::fs::write(&key, &k1).unwrap();
    let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let (child, addrs) = serve_lan(
        &tmp.path().join("data"),
        &["--tls-cert", cert_s, "--tls-key", key_s, "--lan-check-secs", "1"],
    );
    let _box = Running(child);
    let trusting = |pem: &str| {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
            .resolve("box.example.org", addrs.https.parse().unwrap())
            .build()
            .unwrap()
    };
    let url =
        format!("https://box.example.org:{}/healthz", addrs.https.rsplit(':').next().unwrap());
    assert!(trusting(&c1).get(&url).send().await.unwrap().status().is_success());
    let (c2, k2) = make("box.example.org");
    // Key first, then certificate: in between the pair does not match and
    // the box keeps serving the old one.
    std::fs::write(&key, &k2).unwrap();
    std::fs::write(&cert, &c2).unwrap();
    let mut reloaded = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if trusting(&c2).get(&url).send().await.is_ok() {
            reloaded = true;
            break;
        }
    }
    assert!(reloaded, "the new certificate is served without a restart");
    assert!(trusting(&c1).get(&url).send().await.is_err(), "the old one is gone");
}

fn rustls_pemfile_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
}

/// Door staff pair by scanning paper: `venuebox pair --print` and the API
/// both put the pairing QR code (the pairing page with a fresh code), the
/// staff URLs and the CA fingerprint on the receipt printer.
#[tokio::test]
async fn pairing_slips_print_the_qr_code_and_the_fingerprint() {
    let tmp = tempfile::tempdir().unwrap();
    let (child, addrs) = serve_lan(tmp.path(), &["--demo", "--simulate"]);
    let _box = Running(child);
    let ca = std::fs::read_to_string(tmp.path().join("tls/ca.pem")).unwrap();
    let fp = venuebox::net::tls::fingerprint(&rustls_pemfile_der(&ca));
    let out = std::process::Command::new(common::binary::BIN)
        .args(["pair", "--print", "--pair-port", "8081", "--data-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let sup = common::binary::token(tmp.path(), "supervisor");
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/v1/pairing/print", addrs.plain))
        .bearer_auth(&sup)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let printed = tmp.path().join("printed");
    let mut slips = Vec::new();
    for _ in 0..50 {
        slips = std::fs::read_dir(&printed)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "escpos"))
                    .collect()
            })
            .unwrap_or_default();
        // The fake printer writes the bytes, then their text: wait for both.
        let texts_done = slips.iter().all(|p| {
            std::fs::read_to_string(p.with_extension("txt")).is_ok_and(|t| t.contains("SHA-256"))
        });
        if slips.len() >= 2 && texts_done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    slips.sort();
    assert_eq!(slips.len(), 2, "both slips printed");
    let pair_port = addrs.pair.rsplit(':').next().unwrap();
    for (slip, port) in slips.iter().zip(["8081", pair_port]) {
        let bytes = std::fs::read(slip).unwrap();
        let qr = venuebox::devices::escpos::qr_payloads(&bytes);
        let url = String::from_utf8(qr[0].clone()).unwrap();
        assert!(
            url.starts_with("http://") && url.contains(&format!(":{port}/pair#pair=")),
            "{url}"
        );
        let text = std::fs::read_to_string(slip.with_extension("txt")).unwrap();
        let grouped = venuebox::net::tls::fingerprint_colons(&fp);
        // Eight bytes a line on 42-column paper: each line stands whole.
        for line in grouped.split(':').collect::<Vec<_>>().chunks(8) {
            assert!(text.contains(&line.join(":")), "{text}");
        }
        assert!(text.contains("Code: "));
    }
}
