//! Making a pair of boxes as an operator does: the first prints a standby
//! code and its CA fingerprint (`venuebox pair --standby`), the second
//! joins with them (`venuebox join`).

use super::binary::BIN;
use std::path::Path;
use std::process::Command;

/// A free loopback port for a standby's link (the primary must know it
/// before the standby runs).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The primary's printed standby code and CA fingerprint.
pub fn standby_code(dir: &Path) -> (String, String) {
    let out =
        Command::new(BIN).args(["pair", "--standby", "--data-dir"]).arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {text}"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    (field("standby code: "), field("box CA fingerprint (SHA-256): "))
}

/// `venuebox join https://PRIMARY CODE --fingerprint FP --link-port PORT`.
pub fn join(
    dir: &Path,
    https: &str,
    code: &str,
    fingerprint: &str,
    link_port: u16,
) -> std::process::Output {
    join_as(dir, https, code, fingerprint, link_port, &[])
}

/// `join` with more arguments (`--satellite`).
pub fn join_as(
    dir: &Path,
    https: &str,
    code: &str,
    fingerprint: &str,
    link_port: u16,
    more: &[&str],
) -> std::process::Output {
    Command::new(BIN)
        .args(["join", &format!("https://{https}"), code, "--fingerprint", fingerprint])
        .args(["--link-port", &link_port.to_string()])
        .args(more)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap()
}

/// `venuebox promote` on a standby's console.
pub fn promote(dir: &Path) {
    let out = Command::new(BIN).args(["promote", "--data-dir"]).arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A primary and a satellite at a second entrance, as an operator sets
/// them up: the primary serves the demo event with its link on a fixed
/// port (`a_link`, so it can come back at the same place), the satellite
/// joins with a printed code (`join --satellite`) and serves with
/// simulated devices.
pub struct TwoEntrances {
    pub a: super::binary::Running,
    pub a_addrs: super::binary::LanAddrs,
    pub a_link: String,
    pub b: super::binary::Running,
    pub b_addrs: super::binary::LanAddrs,
}

pub fn two_entrances(a_dir: &Path, b_dir: &Path) -> TwoEntrances {
    use super::binary::{serve_lan_with, Running};
    let a_link = format!("127.0.0.1:{}", free_port());
    let (a, a_addrs) =
        serve_lan_with(a_dir, "127.0.0.1:0", &["--demo", "--link-listen", a_link.as_str()], &[]);
    let a = Running(a);
    let (code, fingerprint) = standby_code(a_dir);
    let out = join_as(b_dir, &a_addrs.https, &code, &fingerprint, free_port(), &["--satellite"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("is the satellite of"), "{out:?}");
    let (b, b_addrs) = serve_lan_with(b_dir, "127.0.0.1:0", &["--simulate"], &[]);
    TwoEntrances { a, a_addrs, a_link, b: Running(b), b_addrs }
}

/// The primary of `two_entrances` started again at its place (its link
/// port), returned once the satellite has reported what it did apart and
/// follows it again; with its plain base URL.
pub async fn primary_back(
    a_dir: &Path,
    a_link: &str,
    b_addrs: &super::binary::LanAddrs,
    admin: &str,
) -> (super::binary::Running, String) {
    use super::binary::{serve_lan_with, until, Running};
    let (a, a_addrs) =
        serve_lan_with(a_dir, "127.0.0.1:0", &["--demo", "--link-listen", a_link], &[]);
    let b_base = format!("http://{}", b_addrs.plain);
    until(&b_base, "/api/v1/standby", admin, "the satellite never merged and followed", |v| {
        v["link"]["connected"] == true && v["apart_since"].is_null()
    })
    .await;
    (Running(a), format!("http://{}", a_addrs.plain))
}

use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The demo event's tickets: (ticket id, code).
pub fn tickets(dir: &Path) -> Vec<(String, String)> {
    let csv = std::fs::read_to_string(dir.join("demo/tickets.csv")).unwrap();
    csv.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.splitn(3, ',').collect();
            (f[0].to_string(), f[2].to_string())
        })
        .collect()
}

/// General-admission ticket codes (the demo drop sells to their holders).
pub fn buyers(dir: &Path) -> Vec<String> {
    let csv = std::fs::read_to_string(dir.join("demo/tickets.csv")).unwrap();
    csv.lines()
        .skip(1)
        .filter(|l| l.contains(",ga,"))
        .map(|l| l.splitn(3, ',').nth(2).unwrap().to_string())
        .collect()
}

/// The demo drop and its SKUs.
pub const DROP: &str = "drop-live";
pub const SKUS: [&str; 3] = ["TEE-BLK-M", "TEE-BLK-L", "POSTER"];

/// One acknowledged answer in the clients' own log: a check-in (`key`
/// is the ticket, `answer` the verdict), a sale (`key` the order) or a
/// hold (`key` the hold). `body` is what was sent, to send again.
#[derive(Clone, Debug)]
pub struct Acked {
    pub kind: &'static str,
    pub nonce: String,
    pub key: String,
    pub answer: String,
    pub body: Value,
}

/// Door and merch clients, each retrying a request that got no answer
/// (or a 5xx) with the same nonce at whatever box is current, as phones
/// do; every answer they got is logged.
pub struct Load {
    pub acked: Arc<Mutex<Vec<Acked>>>,
    /// `http://ADDR` of the box the clients talk to; the test moves it.
    pub base: Arc<Mutex<String>>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn new(base: &str) -> Load {
        Load { acked: Arc::default(), base: Arc::new(Mutex::new(base.to_string())), tasks: vec![] }
    }

    pub fn answered(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    pub fn point_at(&self, base: &str) {
        *self.base.lock().unwrap() = base.to_string();
    }

    pub async fn finish(self) -> Vec<Acked> {
        for t in self.tasks {
            t.await.unwrap();
        }
        self.acked.lock().unwrap().clone()
    }

    /// `workers` door clients; each ticket scanned twice.
    pub fn door(&mut self, door: &str, tickets: &[(String, String)], workers: usize) {
        for w in 0..workers {
            let mine: Vec<_> = tickets.iter().skip(w).step_by(workers).cloned().collect();
            let (acked, base, door) = (self.acked.clone(), self.base.clone(), door.to_string());
            self.tasks.push(tokio::spawn(async move {
                let http = client();
                for (ticket, code) in mine {
                    for attempt in 0..2 {
                        let nonce = format!("{ticket}-{attempt}");
                        let body = json!({"code": code, "gate": "main", "nonce": nonce});
                        let (_, v) =
                            until_answered(&http, &base, "/api/v1/checkins", &door, &body).await;
                        let answer = v["verdict"].as_str().unwrap_or_else(|| panic!("{v}")).into();
                        let key = ticket.clone();
                        acked.lock().unwrap().push(Acked {
                            kind: "checkin",
                            nonce,
                            key,
                            answer,
                            body,
                        });
                    }
                }
            }));
        }
    }

    /// `workers` merch clients selling one unit to each buyer (every
    /// fourth only holds), until the drop is sold out.
    pub fn merch(&mut self, merch: &str, buyers: &[String], workers: usize) {
        for w in 0..workers {
            let mine: Vec<_> = buyers.iter().skip(w).step_by(workers).cloned().collect();
            let (acked, base, merch) = (self.acked.clone(), self.base.clone(), merch.to_string());
            self.tasks.push(tokio::spawn(async move {
                let http = client();
                for (i, buyer) in mine.into_iter().enumerate() {
                    let nonce = format!("sale-{w}-{i}");
                    let items = json!([{"sku": SKUS[i % 3], "qty": 1}]);
                    let (kind, path, body) = if i % 4 == 0 {
                        ("hold", "holds", json!({"items": items, "attendee_code": buyer, "nonce": nonce}))
                    } else {
                        ("sale", "sales", json!({"items": items, "attendee_code": buyer, "nonce": nonce, "tender": {"kind": "card", "reference": "T"}}))
                    };
                    let url = format!("/api/v1/drops/{DROP}/{path}");
                    let (status, v) = until_answered(&http, &base, &url, &merch, &body).await;
                    let key = match (kind, status) {
                        ("sale", 200) => v["order_id"].as_str().unwrap().to_string(),
                        ("hold", 201) => v["id"].as_str().unwrap_or_else(|| panic!("{v}")).to_string(),
                        (_, 409) => continue, // sold out, and nothing was sold
                        _ => panic!("{path} answered {status}: {v}"),
                    };
                    acked.lock().unwrap().push(Acked { kind, nonce, key, answer: status.to_string(), body });
                }
            }));
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(3)).build().unwrap()
}

/// Sends `body` until a box answers with something other than a 5xx.
async fn until_answered(
    http: &reqwest::Client,
    base: &Mutex<String>,
    path: &str,
    token: &str,
    body: &Value,
) -> (u16, Value) {
    loop {
        let url = format!("{}{path}", base.lock().unwrap());
        match http.post(&url).bearer_auth(token).json(body).send().await {
            Ok(r) if !r.status().is_server_error() => {
                let status = r.status().as_u16();
                return (status, r.json().await.unwrap_or(Value::Null));
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The checker, on the box at `base`: every acknowledged check-in, sale
/// and hold is there (the same nonce answers the same way; a hold can
/// still be paid), no ticket admitted twice, no unit oversold.
pub async fn check(base: &str, door: &str, merch: &str, acked: &[Acked]) {
    let http = client();
    let mut admitted = std::collections::HashMap::<&str, usize>::new();
    for a in acked.iter().filter(|a| a.kind == "checkin" && a.answer == "admit") {
        *admitted.entry(&a.key).or_default() += 1;
    }
    assert!(admitted.values().all(|&n| n == 1), "a ticket admitted twice");
    let post = |path: String, token: &str, body: &Value| {
        http.post(format!("{base}{path}")).bearer_auth(token).json(body).send()
    };
    for a in acked {
        let (path, token) = match a.kind {
            "checkin" => ("/api/v1/checkins".to_string(), door),
            "sale" => (format!("/api/v1/drops/{DROP}/sales"), merch),
            _ => (format!("/api/v1/holds/{}/checkout", a.key), merch),
        };
        let body = if a.kind == "hold" {
            json!({"nonce": format!("{}-paid", a.nonce), "tender": {"kind": "card", "reference": "T"}})
        } else {
            a.body.clone()
        };
        let r = post(path, token, &body).await.unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        match a.kind {
            "checkin" if a.answer == "admit" => {
                assert_eq!(v["verdict"], "admit", "check-in {} lost: {v}", a.nonce)
            }
            "sale" => assert_eq!(v["order_id"], a.key.as_str(), "sale {} lost: {v}", a.nonce),
            "hold" => assert_eq!(status, 200, "hold {} lost: {v}", a.key),
            _ => {}
        }
    }
    // Stock: never below zero, and the ledger explains what is on hand.
    let path = format!("/api/v1/drops/{DROP}/ledger");
    let (_, l) = super::binary::call(reqwest::Method::GET, base, &path, merch, None).await;
    for sku in SKUS {
        let on_hand = l["on_hand"][sku].as_i64().unwrap_or_else(|| panic!("{sku} in {l}"));
        assert!(on_hand >= 0, "{sku} oversold: {l}");
        let moved: i64 = l["ledger"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["sku"] == sku)
            .map(|r| r["delta"].as_i64().unwrap())
            .sum();
        assert_eq!(moved, on_hand, "{sku}: the ledger does not explain the stock");
    }
}
