//! The real `venuebox` binary, for tests that run, kill and restart it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_venuebox");

/// A child process killed when the test ends, passed or panicked (an
/// orphaned box would hold the test's output open).
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `venuebox serve --listen 127.0.0.1:0 --data-dir DIR ARGS` with
/// `env` added, waits until it listens, and returns it with its address.
/// The LAN listeners are off unless `args` name `--https-listen`.
pub fn serve(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Child, String) {
    let lan: &[&str] =
        if args.contains(&"--https-listen") { &[] } else { &["--https-listen", "off"] };
    let mut child = spawn_serve(dir, &[lan, args].concat(), env);
    let addr = listening(&mut child);
    (child, addr)
}

/// Reads a starting `venuebox serve`'s piped stdout until it listens; its
/// plain HTTP address. Stdout is drained from then on, so the child never
/// blocks on a full pipe.
pub fn listening(child: &mut Child) -> String {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("venuebox exited before listening").unwrap();
        if let Some(rest) = line.strip_prefix("venuebox listening on http://") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    addr
}

/// `venuebox serve --listen 127.0.0.1:0 --data-dir DIR ARGS`, stdout piped
/// (logs at warn unless `env` says otherwise).
fn spawn_serve(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
    Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start venuebox")
}

/// A bearer token for `role`, as `venuebox token` prints it.
pub fn token(dir: &Path, role: &str) -> String {
    let out =
        Command::new(BIN).args(["token", "--role", role, "--data-dir"]).arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A one-time pairing code, as `venuebox pair` prints it.
pub fn pairing_code(dir: &Path) -> String {
    let out =
        Command::new(BIN).args(["pair", "--code-only", "--data-dir"]).arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A client whose connections come from `ip` (any of 127.0.0.0/8), so one
/// test can be several phones on the LAN.
pub fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder().local_address(std::net::IpAddr::from(ip)).build().unwrap()
}

/// The kernel's peak resident set (VmHWM) and current one (VmRSS) of a
/// process, in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Resets the peak resident set of `pid`, so VmHWM measures from now.
pub fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// The addresses a box with its LAN side on prints at start.
pub struct LanAddrs {
    pub plain: String,
    pub https: String,
    pub pair: String,
    /// The standby link's address.
    pub link: String,
    /// Everything it printed before listening (URLs, fingerprint, QR).
    pub banner: String,
}

/// Starts `venuebox serve` with every listener on 127.0.0.1:0 (mDNS off
/// unless `args` turn it on with `--mdns-name`) and waits for all three.
pub fn serve_lan(dir: &Path, args: &[&str]) -> (Child, LanAddrs) {
    serve_lan_at(dir, "127.0.0.1:0", args)
}

/// `serve_lan` with the HTTPS side on `https` (a box started again on the
/// address its phones know).
pub fn serve_lan_at(dir: &Path, https: &str, args: &[&str]) -> (Child, LanAddrs) {
    serve_lan_with(dir, https, args, &[])
}

/// `serve_lan_at` with `env` added (the benchmark's boxes log errors only).
pub fn serve_lan_with(
    dir: &Path,
    https: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, LanAddrs) {
    let mdns: &[&str] = if args.contains(&"--mdns-name") { &[] } else { &["--no-mdns"] };
    let lan: &[&str] = &["--https-listen", https, "--pair-listen", "127.0.0.1:0"];
    let link: &[&str] =
        if args.contains(&"--link-listen") { &[] } else { &["--link-listen", "127.0.0.1:0"] };
    let mut child = spawn_serve(dir, &[lan, link, mdns, args].concat(), env);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut plain, mut https, mut pair, mut banner) = (None, None, None, String::new());
    let mut link = None;
    while plain.is_none() || https.is_none() || pair.is_none() || link.is_none() {
        let line = lines.next().expect("venuebox exited before listening").unwrap();
        let addr = |rest: &str| rest.split_whitespace().next().unwrap().to_string();
        if let Some(rest) = line.strip_prefix("venuebox listening on http://") {
            plain = Some(addr(rest));
        } else if let Some(rest) = line.strip_prefix("venuebox listening on https://") {
            https = Some(addr(rest));
        } else if let Some(rest) = line.strip_prefix("pairing page on http://") {
            pair = Some(addr(rest));
        } else if let Some(rest) = line.strip_prefix("standby link on ") {
            link = Some(addr(rest));
        }
        banner.push_str(&line);
        banner.push('\n');
    }
    // The banner goes on after the listeners (URLs, QR); read it briefly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in lines {
            if tx.send(l.unwrap_or_default()).is_err() {
                // The test stopped listening; keep draining so the child never blocks.
            }
        }
    });
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) => {
                banner.push_str(&l);
                banner.push('\n');
            }
            Err(_) => break,
        }
    }
    let (plain, https, pair, link) = (plain.unwrap(), https.unwrap(), pair.unwrap(), link.unwrap());
    (child, LanAddrs { plain, https, pair, link, banner })
}

/// Waits (at most 30 s) until `f` holds of `GET path` on `base` as
/// `token`, and returns that answer; fails saying `what` did not happen.
pub async fn until(
    base: &str,
    path: &str,
    token: &str,
    what: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, v) = call(reqwest::Method::GET, base, path, token, None).await;
        if f(&v) {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A JSON call to the box at `base` (`http://ADDR`) as `token`: the
/// status and the answer (`null` when it is not JSON).
pub async fn call(
    method: reqwest::Method,
    base: &str,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req =
        reqwest::Client::new().request(method, format!("{base}{path}")).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// POSTs `body` as JSON to `url` (as `token`, if any) and reads the JSON
/// answer (`null` when it is not JSON).
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> serde_json::Value {
    let mut req = http.post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    r.json().await.unwrap_or_default()
}

/// A staff phone's way in at `base`: paired with the one-time `code`, then
/// signed in with `pin`; its session token.
pub async fn phone_session(http: &reqwest::Client, base: &str, code: &str, pin: &str) -> String {
    let body = serde_json::json!({"code": code, "name": "door phone"});
    let paired = post_json(http, &format!("{base}/api/v1/paired-devices"), None, body).await;
    let device = paired["credential"].as_str().unwrap_or_else(|| panic!("pairing: {paired}"));
    let body = serde_json::json!({"pin": pin, "device": device});
    let s = post_json(http, &format!("{base}/api/v1/session"), None, body).await;
    s["token"].as_str().unwrap_or_else(|| panic!("sign-in: {s}")).to_string()
}

/// A phone's HTTPS client that trusts only the box CA in `ca_pem`.
pub fn client_trusting(ca_pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem).unwrap())
        .https_only(true)
        .build()
        .unwrap()
}
