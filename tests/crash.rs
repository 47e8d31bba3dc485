//! Power-cut test: the real `venuebox` binary under load is killed with
//! SIGKILL, restarted on the same data directory, and must still hold every
//! check-in it acknowledged — and admit no ticket twice.

use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

const BIN: &str = env!("CARGO_BIN_EXE_venuebox");

/// Starts `venuebox serve` on a free loopback port and returns it with its address.
fn start(dir: &Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start venuebox");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("venuebox exited before listening").unwrap();
        if let Some(rest) = line.strip_prefix("venuebox listening on http://") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

fn token(dir: &Path) -> String {
    let out = Command::new(BIN).args(["token", "--role", "door", "--data-dir"]).arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
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
            (f.next().unwrap().to_string(), { f.next(); f.next().unwrap().to_string() })
        })
        .collect();
    assert_eq!(tickets.len(), 1100);

    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build().unwrap();
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
                    let Ok(resp) = http.post(&url).bearer_auth(&token).json(&body).send().await else { return };
                    let Ok(v) = resp.json::<Value>().await else { return };
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
        if acked.lock().unwrap().len() >= 600 {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 600 && acked.len() < 2200, "killed mid-load ({} acknowledged)", acked.len());

    let (mut child, addr) = start(dir.path());
    let url = format!("http://{addr}/api/v1/checkins");
    // Every acknowledged scan is there: its nonce replays the same answer.
    for a in &acked {
        let body = json!({"code": a.code, "gate": "main", "nonce": a.nonce});
        let r = http.post(&url).bearer_auth(&token).json(&body).send().await.unwrap();
        assert_eq!(r.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"), "{a:?} was lost");
        let v: Value = r.json().await.unwrap();
        assert_eq!((v["scan_id"].as_i64().unwrap(), v["verdict"].as_str().unwrap()), (a.scan_id, a.verdict.as_str()), "{a:?}");
    }
    // No ticket was admitted twice, and each acknowledged admit now scans as already inside.
    let admitted: HashSet<&str> = acked.iter().filter(|a| a.verdict == "admit").map(|a| a.ticket.as_str()).collect();
    let mut per_ticket: HashMap<&str, usize> = HashMap::new();
    for a in acked.iter().filter(|a| a.verdict == "admit") {
        *per_ticket.entry(a.ticket.as_str()).or_default() += 1;
    }
    assert!(per_ticket.values().all(|n| *n == 1), "a ticket was admitted twice before the crash");
    for a in acked.iter().filter(|a| a.verdict == "admit") {
        let body = json!({"code": a.code, "gate": "main", "nonce": format!("after-{}", a.nonce)});
        let v: Value = http.post(&url).bearer_auth(&token).json(&body).send().await.unwrap().json().await.unwrap();
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
    let in_db: i64 = db.query_row("SELECT COUNT(DISTINCT ticket_id) FROM scans WHERE verdict = 'admit'", [], |r| r.get(0)).unwrap();
    assert!(in_db as usize >= admitted.len());
    let (count, max): (i64, i64) = db.query_row("SELECT COUNT(*), MAX(seq) FROM outbox", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!(count, max, "outbox sequence has a gap");
}
