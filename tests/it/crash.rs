//! Power-cut test: the real `venuebox` binary under load is killed with
//! SIGKILL, restarted on the same data directory, and must still hold every
//! check-in it acknowledged — and admit no ticket twice.

use crate::common;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

use common::binary;
use std::path::Path;
use std::process::Child;
use std::sync::{Arc, Mutex};

/// Starts `venuebox serve --demo` on a free loopback port and returns it with its address.
fn start(dir: &Path) -> (Child, String) {
    start_with(dir, &[])
}

fn start_with(dir: &Path, extra: &[&str]) -> (Child, String) {
    binary::serve(dir, &[&["--demo"], extra].concat(), &[])
}

fn token(dir: &Path) -> String {
    binary::token(dir, "door")
}

#[derive(Clone, Debug)]
struct Acked {
    nonce: String,
    code: String,
    ticket: String,
    scan_id: i64,
    verdict: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_checkin_and_admits_no_ticket_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start(dir.path());
    let token = token(dir.path());
    let csv = std::fs::read_to_string(dir.path().join("demo/tickets.csv")).unwrap();
    let tickets: Vec<(String, String)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let mut f = l.splitn(3, ',');
            (f.next().unwrap().to_string(), {
                f.next();
                f.next().unwrap().to_string()
            })
        })
        .collect();
    assert_eq!(tickets.len(), 1100);

    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let http =
        reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build().unwrap();
    let workers = 16;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (http, acked, token) = (http.clone(), acked.clone(), token.clone());
        let url = format!("http://{addr}/api/v1/checkins");
        let mine: Vec<_> = tickets.iter().skip(w).step_by(workers).cloned().collect();
        tasks.push(tokio::spawn(async move {
            // Each ticket is scanned twice: the second must never admit.
            for (ticket, code) in mine {
                for attempt in 0..2 {
                    let nonce = format!("{ticket}-{attempt}");
                    let body = json!({"code": code, "gate": "main", "nonce": nonce});
                    let Ok(resp) = http.post(&url).bearer_auth(&token).json(&body).send().await
                    else {
                        return;
                    };
                    let Ok(v) = resp.json::<Value>().await else {
                        return;
                    };
                    acked.lock().unwrap().push(Acked {
                        nonce,
                        code: code.clone(),
                        ticket: ticket.clone(),
                        scan_id: v["scan_id"].as_i64().unwrap(),
                        verdict: v["verdict"].as_str().unwrap().to_string(),
                    });
                }
            }
        }));
    }
    // Pull the plug mid-load.
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        if acked.lock().unwrap().len() >= 600 || tasks.iter().all(|t| t.is_finished()) {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 600 && acked.len() < 2200,
        "killed mid-load ({} acknowledged)",
        acked.len()
    );

    let (mut child, addr) = start(dir.path());
    let url = format!("http://{addr}/api/v1/checkins");
    // Every acknowledged scan is there: its nonce replays the same answer.
    for a in &acked {
        let body = json!({"code": a.code, "gate": "main", "nonce": a.nonce});
        let r = http.post(&url).bearer_auth(&token).json(&body).send().await.unwrap();
        assert_eq!(
            r.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()),
            Some("true"),
            "{a:?} was lost"
        );
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            (v["scan_id"].as_i64().unwrap(), v["verdict"].as_str().unwrap()),
            (a.scan_id, a.verdict.as_str()),
            "{a:?}"
        );
    }
    // No ticket was admitted twice, and each acknowledged admit now scans as already inside.
    let admitted: HashSet<&str> =
        acked.iter().filter(|a| a.verdict == "admit").map(|a| a.ticket.as_str()).collect();
    let mut per_ticket: HashMap<&str, usize> = HashMap::new();
    for a in acked.iter().filter(|a| a.verdict == "admit") {
        *per_ticket.entry(a.ticket.as_str()).or_default() += 1;
    }
    assert!(per_ticket.values().all(|n| *n == 1), "a ticket was admitted twice before the crash");
    for a in acked.iter().filter(|a| a.verdict == "admit") {
        let body = json!({"code": a.code, "gate": "main", "nonce": format!("after-{}", a.nonce)});
        let v: Value = http
            .post(&url)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["reason"], "already_checked_in", "{} after restart: {v}", a.ticket);
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // The database itself: one admission per ticket at most, and a gap-free outbox.
    let db = rusqlite::Connection::open(dir.path().join("venuebox.db")).unwrap();
    let twice: i64 = db
        .query_row("SELECT COUNT(*) FROM (SELECT ticket_id FROM scans WHERE verdict = 'admit' GROUP BY ticket_id HAVING COUNT(*) > 1)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(twice, 0);
    let in_db: i64 = db
        .query_row("SELECT COUNT(DISTINCT ticket_id) FROM scans WHERE verdict = 'admit'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(in_db as usize >= admitted.len());
    let (count, max): (i64, i64) = db
        .query_row("SELECT COUNT(*), MAX(seq) FROM outbox", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!(count, max, "outbox sequence has a gap");
}

#[derive(Clone, Debug)]
struct AckedSale {
    nonce: String,
    order: String,
    body: Value,
}

/// The demo's live drop and the stock it starts with.
const DROP: &str = "drop-live";
const INITIAL: [(&str, i64); 3] = [("TEE-BLK-M", 30), ("TEE-BLK-L", 30), ("POSTER", 50)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_burst_of_checkouts_keeps_stock_equal_to_initial_minus_sales() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start_with(dir.path(), &["--hold-secs", "1"]);
    let token = binary::token(dir.path(), "merch");
    let csv = std::fs::read_to_string(dir.path().join("demo/tickets.csv")).unwrap();
    // General-admission buyers (the drop needs the buyer's ticket).
    let buyers: Vec<String> = csv
        .lines()
        .skip(1)
        .filter(|l| l.contains(",ga,"))
        .map(|l| l.splitn(3, ',').nth(2).unwrap().to_string())
        .collect();

    let acked: Arc<Mutex<Vec<AckedSale>>> = Arc::default();
    let held: Arc<Mutex<usize>> = Arc::default();
    let http =
        reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build().unwrap();
    let workers = 12;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (http, acked, held, token, addr) =
            (http.clone(), acked.clone(), held.clone(), token.clone(), addr.clone());
        let mine: Vec<String> = buyers.iter().skip(w).step_by(workers).cloned().collect();
        tasks.push(tokio::spawn(async move {
            for (i, buyer) in mine.into_iter().enumerate() {
                let sku = INITIAL[i % 3].0;
                let nonce = format!("crash-{w}-{i}");
                let items = json!([{"sku": sku, "qty": 1 + (i % 2)}]);
                // Every third buyer, starting with the first, only holds
                // (and never pays): that stock must come back.
                let (path, body) = if i % 3 == 0 {
                    ("holds", json!({"items": items, "attendee_code": buyer, "nonce": nonce}))
                } else {
                    ("sales", json!({"items": items, "attendee_code": buyer, "nonce": nonce, "tender": {"kind": "card", "reference": "T"}}))
                };
                let url = format!("http://{addr}/api/v1/drops/{DROP}/{path}");
                let Ok(resp) = http.post(&url).bearer_auth(&token).json(&body).send().await else { return };
                let status = resp.status().as_u16();
                let Ok(v) = resp.json::<Value>().await else { return };
                match (path, status) {
                    ("sales", 200) => acked.lock().unwrap().push(AckedSale { nonce, order: v["order_id"].as_str().unwrap().into(), body }),
                    ("holds", 201) => *held.lock().unwrap() += 1,
                    (_, 409) => {} // sold out: fine, and nothing was sold
                    _ => panic!("{path} answered {status}: {v}"),
                }
            }
        }));
    }
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        if acked.lock().unwrap().len() >= 25 || tasks.iter().all(|t| t.is_finished()) {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty(), "the burst sold something before the kill");
    assert!(*held.lock().unwrap() > 0, "the burst made holds that were never paid");

    let (mut child, addr) = start_with(dir.path(), &["--hold-secs", "1"]);
    // Every acknowledged sale is there: its nonce replays the same order.
    for a in &acked {
        let url = format!("http://{addr}/api/v1/drops/{DROP}/sales");
        let v: Value = http
            .post(&url)
            .bearer_auth(&token)
            .json(&a.body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            v["order_id"].as_str(),
            Some(a.order.as_str()),
            "sale {} was lost: {v}",
            a.nonce
        );
        assert_eq!(v["status"], "paid");
    }
    // Unpaid holds expire by themselves: nothing stays reserved.
    let drop_url = format!("http://{addr}/api/v1/drops/{DROP}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let products = loop {
        let d: Value =
            http.get(&drop_url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        let products = d["products"].as_array().unwrap().clone();
        if products.iter().all(|p| p["held"] == 0) {
            break products;
        }
        assert!(std::time::Instant::now() < deadline, "holds never expired: {d}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();

    // Stock on hand = initial - what was sold, product by product, and the
    // ledger explains it; every acknowledged sale is among those sold.
    let db = rusqlite::Connection::open(dir.path().join("venuebox.db")).unwrap();
    let sold_orders: HashSet<String> = db
        .prepare("SELECT id FROM orders WHERE kind = 'drop' AND status = 'paid'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(acked.iter().all(|a| sold_orders.contains(&a.order)));
    for (sku, initial) in INITIAL {
        let sold: i64 = db
            .query_row("SELECT COALESCE(SUM(oi.qty), 0) FROM order_items oi JOIN orders o ON o.id = oi.order_id WHERE o.status = 'paid' AND oi.sku = ?1", [sku], |r| r.get(0))
            .unwrap();
        let (on_hand, ledger): (i64, i64) = db
            .query_row(
                "SELECT (SELECT on_hand FROM stock WHERE drop_id = ?1 AND sku = ?2), (SELECT SUM(delta) FROM inventory_ledger WHERE drop_id = ?1 AND sku = ?2)",
                [DROP, sku],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(on_hand, initial - sold, "{sku}");
        assert_eq!(ledger, on_hand, "{sku}: the ledger explains the stock");
        let shown = products.iter().find(|p| p["sku"] == sku).unwrap();
        assert_eq!(shown["on_hand"], on_hand);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_upload_resumes_from_the_last_durable_offset() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start(dir.path());
    let token = binary::token(dir.path(), "capture");
    let mut video = b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2".to_vec();
    video.resize(40 << 20, 0x42);
    let sha: String = sha2::Sha256::digest(&video).iter().map(|b| format!("{b:02x}")).collect();
    let http = reqwest::Client::new();
    let meta = format!("creator {}", base64_of("cr-mara"));
    let r = http
        .post(format!("http://{addr}/api/v1/uploads/"))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", video.len().to_string())
        .header("upload-metadata", meta)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let head = |addr: String| {
        let (http, token, loc) = (http.clone(), token.clone(), loc.clone());
        async move {
            let r = http
                .head(format!("http://{addr}{loc}"))
                .bearer_auth(token)
                .header("tus-resumable", "1.0.0")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.headers()["upload-offset"].to_str().unwrap().parse::<u64>().unwrap()
        }
    };
    // 20 MiB arrive, then the phone stalls with the request still open.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let stream =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
        );
    let req = http
        .patch(format!("http://{addr}{loc}"))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(reqwest::Body::wrap_stream(stream));
    let stalled = tokio::spawn(req.send());
    for c in video[..20 << 20].chunks(1 << 20) {
        tx.send(Ok(c.to_vec())).await.unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while head(addr.clone()).await < 16 << 20 {
        assert!(std::time::Instant::now() < deadline, "checkpoints never reached 16 MiB");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(tx);
    let _ = stalled.await;

    let (mut child, addr) = start(dir.path());
    let durable = head(addr.clone()).await;
    assert!(
        (16 << 20..=20 << 20).contains(&durable) && durable % (8 << 20) == 0,
        "resumes from a checkpoint: {durable}"
    );
    let r = http
        .patch(format!("http://{addr}{loc}"))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", durable.to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(video[durable as usize..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    let r = http
        .head(format!("http://{addr}/api/v1/captures/{sha}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the capture arrived whole, hash and all");
    child.kill().unwrap();
    child.wait().unwrap();
    let stored =
        std::fs::read(dir.path().join("captures").join(&sha[..2]).join(&sha[2..])).unwrap();
    assert!(stored == video, "stored bytes equal the original");
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
