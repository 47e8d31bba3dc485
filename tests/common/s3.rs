//! A real S3-compatible server for sync tests (moto's server mode,
//! installed by the test itself from PyPI on first use, cached outside the clone), a
//! fault proxy that cuts connections mid-body and takes the link down, and
//! a sync configuration with test-sized timings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use venuebox::sync::config::{SyncArgs, SyncConfig};
use venuebox::sync::s3::S3;

pub const MOTO: &str = "moto[s3]==5.2.5";

/// Runs `cmd` from a thread that lives as long as the test binary: the
/// child is killed when the binary's process ends (PDEATHSIG), so no
/// server outlives its tests.
pub fn spawn_tied(mut cmd: std::process::Command, what: &'static str) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    std::thread::Builder::new()
        .name(what.into())
        .spawn(move || {
            let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {what}: {e}"));
            let _ = child.wait();
        })
        .unwrap();
}

/// A Python path where `import_check` works, installing `specs` from
/// PyPI once if it does not: into a directory cached outside the clone
/// (`$VENUEBOX_PYDEPS_CACHE`, default /var/tmp/venuebox-pydeps), named by
/// `name` and a hash of `specs`, so a fresh clone finds them and a change
/// of version installs anew.
pub fn python_deps(name: &str, import_check: &str, specs: &[&str]) -> PathBuf {
    use sha2::Digest;
    static INSTALL: Mutex<()> = Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let cache = std::env::var_os("VENUEBOX_PYDEPS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/venuebox-pydeps"));
    let key = sha2::Sha256::digest(specs.join("\n").as_bytes());
    let dir =
        cache.join(format!("{name}-{:02x}{:02x}{:02x}{:02x}", key[0], key[1], key[2], key[3]));
    let ok = |dir: &PathBuf| {
        // Quiet: a missing module is expected before the first install.
        Command::new("python3")
            .args(["-c", import_check])
            .env("PYTHONPATH", dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok(&dir) {
        // Installed beside, then renamed: another test binary (or an
        // interrupted run) never sees half an installation.
        let tmp = dir.with_extension(format!("tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let out = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
            .arg(&tmp)
            .args(specs)
            .output()
            .expect("python3 is needed for this test");
        assert!(
            out.status.success(),
            "cannot install {specs:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_dir_all(&dir);
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        assert!(ok(&dir), "{specs:?} installed but `{import_check}` fails");
    }
    dir
}

/// A Python path holding moto's S3 server.
pub fn moto_path() -> PathBuf {
    python_deps(
        "pydeps-moto",
        "import moto.server, flask, flask_cors",
        &[MOTO, "flask", "flask-cors"],
    )
}

/// moto's S3 server on a loopback port, its request log in a file: one
/// per test binary, started on first use and gone when the binary exits;
/// each test takes a bucket of its own ([`Moto::new_bucket`]).
pub struct Moto {
    pub addr: SocketAddr,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Moto {
    pub fn shared() -> &'static Moto {
        static SHARED: std::sync::OnceLock<Moto> = std::sync::OnceLock::new();
        SHARED.get_or_init(Moto::launch)
    }

    /// Starts moto, tied to the test binary (`spawn_tied`).
    fn launch() -> Moto {
        let pythonpath = moto_path();
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = dir.path().join("moto.log");
        let stderr = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .env("PYTHONPATH", &pythonpath)
            .stdout(Stdio::null())
            .stderr(stderr);
        spawn_tied(cmd, "moto");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        for _ in 0..400 {
            if std::net::TcpStream::connect(addr).is_ok() {
                // No pooled connections: each test runs its own runtime.
                let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
                return Moto { addr, log, _dir: dir, http };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("moto did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
    }

    /// A new, empty bucket only this test uses.
    pub async fn new_bucket(&self) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let bucket = format!("venue-cloud-{}", N.fetch_add(1, Ordering::SeqCst));
        self.create_bucket(&bucket).await;
        bucket
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn create_bucket(&self, bucket: &str) {
        let r = self.http.put(format!("{}/{bucket}", self.endpoint())).send().await.unwrap();
        assert!(r.status().is_success(), "create bucket: {}", r.status());
    }

    /// Every key under `prefix`, with its size, in key order.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = self
                .http
                .get(format!("{}/{bucket}", self.endpoint()))
                .query(&[("list-type", "2"), ("prefix", prefix)]);
            if let Some(t) = &token {
                req = req.query(&[("continuation-token", t.as_str())]);
            }
            let text = req.send().await.unwrap().text().await.unwrap();
            for item in text.split("<Contents>").skip(1) {
                out.push((tag(item, "Key").unwrap(), tag(item, "Size").unwrap().parse().unwrap()));
            }
            match tag(&text, "NextContinuationToken") {
                Some(t) if tag(&text, "IsTruncated").as_deref() == Some("true") => token = Some(t),
                _ => break,
            }
        }
        out.sort();
        out
    }

    /// A signed client for `bucket` (objects are private).
    fn client(&self, bucket: &str) -> S3 {
        S3::new(&sync_config(&self.endpoint(), bucket).target).unwrap()
    }

    pub async fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        self.client(bucket).get(key).await.unwrap_or_else(|e| panic!("GET {key}: {e}")).to_vec()
    }

    pub async fn delete(&self, bucket: &str, key: &str) {
        self.client(bucket).delete(key).await.unwrap_or_else(|e| panic!("DELETE {key}: {e}"));
    }

    pub async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.client(bucket)
            .put(key, body.into(), false, None)
            .await
            .unwrap_or_else(|e| panic!("PUT {key}: {e}"));
    }

    /// The request lines moto logged for `bucket`: (method, path with
    /// query, status).
    pub fn requests(&self, bucket: &str) -> Vec<(String, String, u16)> {
        let mine = |p: &str| {
            p.strip_prefix('/')
                .and_then(|p| p.strip_prefix(bucket))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?']))
        };
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let start = l.find('"')? + 1;
                let end = start + l[start..].find('"')?;
                let mut req = l[start..end].split(' ');
                let (method, path) = (req.next()?.to_string(), req.next()?.to_string());
                let status = l[end + 1..].split_whitespace().next()?.parse().ok()?;
                Some((method, path, status))
            })
            .filter(|(_, path, _)| mine(path))
            .collect()
    }
}

fn tag(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&format!("</{name}>"))?;
    Some(text[start..end].to_string())
}

/// A TCP proxy in front of the bucket: `set_down(true)` drops every
/// connection and refuses new ones (the venue's uplink is gone);
/// `cut_after(n)` cuts the connection that carries the n-th byte sent from
/// now on, in the middle of whatever body it is sending.
#[derive(Clone)]
pub struct FaultProxy {
    pub addr: SocketAddr,
    down: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
    cut_at: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    pub cuts: Arc<AtomicU64>,
    lose: Arc<AtomicU64>,
}

impl FaultProxy {
    pub async fn start(to: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = FaultProxy {
            addr: listener.local_addr().unwrap(),
            down: Arc::default(),
            generation: Arc::default(),
            cut_at: Arc::new(AtomicU64::new(u64::MAX)),
            sent: Arc::default(),
            cuts: Arc::default(),
            lose: Arc::default(),
        };
        let proxy = p.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if proxy.down.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                tokio::spawn(proxy.clone().pipe(client, to));
            }
        });
        p
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub fn cut_after(&self, bytes: u64) {
        self.cut_at.store(self.sent.load(Ordering::SeqCst) + bytes, Ordering::SeqCst);
    }

    /// The next `n` connections lose their answer: the server gets the
    /// whole request and answers, the client hears nothing (the link died
    /// after the server acted).
    pub fn lose_answers(&self, n: u64) {
        self.lose.store(n, Ordering::SeqCst);
    }

    async fn pipe(self, client: TcpStream, to: SocketAddr) {
        let Ok(server) = TcpStream::connect(to).await else {
            return;
        };
        let born = self.generation.load(Ordering::SeqCst);
        let lose = self
            .lose
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let (cr, cw) = client.into_split();
        let (mut sr, sw) = server.into_split();
        if lose {
            // Send the request, wait for the first byte of the answer, drop both.
            let up = self.pump(cr, sw, born, true);
            let mut first = [0u8; 1];
            tokio::select! {
                _ = up => {},
                _ = sr.read(&mut first) => {},
            }
            self.cuts.fetch_add(1, Ordering::SeqCst);
            return;
        }
        tokio::select! {
            _ = self.pump(cr, sw, born, true) => {},
            _ = self.pump(sr, cw, born, false) => {},
        }
    }

    /// Copies one direction until either side closes, the link goes down,
    /// or (`upstream` only) the armed cut point is crossed mid-body.
    async fn pump(
        &self,
        mut from: OwnedReadHalf,
        mut to: OwnedWriteHalf,
        born: u64,
        upstream: bool,
    ) {
        let alive =
            || !self.down.load(Ordering::SeqCst) && self.generation.load(Ordering::SeqCst) == born;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n =
                match tokio::time::timeout(Duration::from_millis(100), from.read(&mut buf)).await {
                    Err(_) if alive() => continue,
                    Err(_) | Ok(Ok(0)) | Ok(Err(_)) => return,
                    Ok(Ok(n)) => n,
                };
            if !alive() {
                return;
            }
            if upstream {
                let before = self.sent.fetch_add(n as u64, Ordering::SeqCst);
                let cut_at = self.cut_at.load(Ordering::SeqCst);
                if before < cut_at && before + n as u64 >= cut_at {
                    self.cuts.fetch_add(1, Ordering::SeqCst);
                    return; // pull the cable mid-body
                }
            }
            if to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }
}

/// A bucket of this test's own on the shared moto, behind a fault proxy
/// (up).
pub async fn bucket_behind_proxy() -> (&'static Moto, FaultProxy, String) {
    let moto = Moto::shared();
    let bucket = moto.new_bucket().await;
    let proxy = FaultProxy::start(moto.addr).await;
    (moto, proxy, bucket)
}

pub const PREFIX: &str = "acme/rooftop";

/// Sync to `endpoint` with test-sized timings: segments close after
/// 200 ms, backoff from 100 ms to 2 s, a probe every 250 ms.
pub fn sync_config(endpoint: &str, bucket: &str) -> SyncConfig {
    let args = SyncArgs {
        url: format!("s3://{bucket}/{PREFIX}"),
        endpoint: Some(endpoint.into()),
        ..Default::default()
    };
    let env = |k: &str| match k {
        "AWS_ACCESS_KEY_ID" => Some("AKIDTEST".to_string()),
        "AWS_SECRET_ACCESS_KEY" => Some("test-secret-never-shown".to_string()),
        _ => None,
    };
    let mut c = SyncConfig::resolve(&args, std::path::Path::new("/nonexistent"), &env).unwrap();
    c.segment.max_age_ms = 200;
    c.interval = Duration::from_millis(100);
    c.backoff_base = Duration::from_millis(100);
    c.backoff_cap = Duration::from_secs(2);
    c.probe_every = Duration::from_millis(250);
    c.permanent_retry = Duration::from_secs(3600);
    c.manifest_poll = Some(Duration::from_millis(300));
    c
}

/// Every event line under `events/`, decoded, in key order.
pub async fn landed_events(moto: &Moto, bucket: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for (key, _) in moto.list(bucket, &format!("{PREFIX}/events/")).await {
        assert!(key.ends_with(".ndjson.zst"), "{key}");
        let bytes = moto.get(bucket, &key).await;
        let text = zstd::stream::decode_all(&bytes[..]).unwrap();
        for line in String::from_utf8(text).unwrap().lines() {
            out.push(serde_json::from_str(line).unwrap());
        }
    }
    out
}
