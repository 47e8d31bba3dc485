//! A real pretix for the pretix tests: the version below, installed from
//! PyPI into a virtual environment cached outside the clone
//! (`$VENUEBOX_PRETIX_CACHE`, default /var/tmp/venuebox-pretix), on SQLite
//! in a temporary directory (in /dev/shm when there is one), started from
//! a copy of a database migrated once per pretix version and kept beside
//! the environment (pretix's migrations take over a minute), served by Django's server on a
//! loopback port, killed with the test binary (PDEATHSIG). The organizer
//! `venue`, a team allowed everything and its API token are made through
//! Django by `tests/interop/pretix_setup.py`, as an operator would in
//! pretix's back office.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub const PRETIX: &str = "pretix==2026.8.0";

pub struct Pretix {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The team's API token.
    pub token: String,
    config: PathBuf,
    python: PathBuf,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// pretix's configuration for a database and data in `dir`, served at `base`.
fn write_config(dir: &Path, base: &str, secret: &str) -> PathBuf {
    let config = dir.join("pretix.cfg");
    let data = dir.display().to_string();
    std::fs::write(
        &config,
        format!(
            "[pretix]\ninstance_name=venuebox test\nurl={base}\ncurrency=EUR\ndatadir={data}\n\n\
             [database]\nbackend=sqlite3\nname={data}/db.sqlite3\n\n\
             [django]\ndebug=off\nsecret=test-only-{secret}\n\n\
             [mail]\nfrom=test@example.org\nhost=127.0.0.1\nport=9\n"
        ),
    )
    .unwrap();
    config
}

/// Where the scratch directories go: /dev/shm when there is one (pretix's
/// migrations are many small transactions).
fn scratch() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// The virtual environment's python, installing pretix on first use, and a
/// database migrated by this pretix (made on first use).
fn python() -> (PathBuf, PathBuf) {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let cache = std::env::var_os("VENUEBOX_PRETIX_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/venuebox-pretix"));
    let venv = cache.join(PRETIX.replace("==", "-"));
    let migrated = cache.join(format!("{}-migrated.sqlite3", PRETIX.replace("==", "-")));
    let python = venv.join("bin/python");
    let ready = |p: &Path| {
        Command::new(p)
            .args(["-c", "import pretix"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ready(&python) {
        let _ = std::fs::remove_dir_all(&venv);
        std::fs::create_dir_all(&cache).unwrap();
        let run = |cmd: &mut Command| {
            let out = cmd.output().expect("python3 is needed for the pretix tests");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        };
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        // One dependency (django-jquery-js) has no wheel: build it, take
        // wheels for the rest.
        run(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--prefer-binary",
            PRETIX,
        ]));
        assert!(ready(&python), "{PRETIX} installed but does not import");
        let _ = std::fs::remove_file(&migrated);
    }
    if !migrated.exists() {
        let dir = tempfile::Builder::new()
            .prefix(&format!("venuebox-pretix-{}-migrate-", std::process::id()))
            .tempdir_in(scratch())
            .unwrap();
        let config = write_config(dir.path(), "http://127.0.0.1:9", "migrate");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/pretix_setup.py");
        let out = Command::new(&python)
            .arg(script)
            .arg("migrate")
            .env("PRETIX_CONFIG_FILE", &config)
            .output()
            .unwrap();
        assert!(out.status.success(), "pretix migrate: {}", String::from_utf8_lossy(&out.stderr));
        let tmp = migrated.with_extension("tmp");
        std::fs::copy(dir.path().join("db.sqlite3"), &tmp).unwrap();
        std::fs::rename(&tmp, &migrated).unwrap();
    }
    (python, migrated)
}

impl Pretix {
    /// One pretix for the whole test binary (its migrations take a minute
    /// or more); tests keep to events of their own.
    pub fn shared() -> &'static Pretix {
        static SHARED: std::sync::OnceLock<Pretix> = std::sync::OnceLock::new();
        SHARED.get_or_init(Pretix::start)
    }

    /// A fresh pretix (its own database), ready for API calls.
    pub fn start() -> Pretix {
        let (python, migrated) = python();
        let parent = scratch();
        // The shared pretix's directory outlives its test binary (statics
        // are never dropped): sweep those of binaries that are gone.
        for e in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) =
                name.strip_prefix("venuebox-pretix-").and_then(|r| r.split('-').next())
            {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("venuebox-pretix-{}-", std::process::id()))
            .tempdir_in(parent)
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let config = write_config(dir.path(), &base, &port.to_string());
        std::fs::copy(&migrated, dir.path().join("db.sqlite3")).unwrap();
        let mut pretix = Pretix {
            base,
            token: String::new(),
            config,
            python,
            http: reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap(),
            _dir: dir,
        };
        pretix.token = pretix.setup(&["setup"]).trim().to_string();
        let log = std::fs::File::create(pretix._dir.path().join("server.log")).unwrap();
        let mut cmd = Command::new(&pretix.python);
        cmd.args(["-m", "pretix", "runserver", &format!("127.0.0.1:{port}"), "--noreload"])
            .env("PRETIX_CONFIG_FILE", &pretix.config)
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        super::s3::spawn_tied(cmd, "pretix");
        for _ in 0..600 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return pretix;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "pretix did not start: {}",
            std::fs::read_to_string(pretix._dir.path().join("server.log")).unwrap_or_default()
        );
    }

    /// Runs `tests/interop/pretix_setup.py ARGS`; what it printed.
    fn setup(&self, args: &[&str]) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/pretix_setup.py");
        let out = Command::new(&self.python)
            .arg(script)
            .args(args)
            .env("PRETIX_CONFIG_FILE", &self.config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pretix_setup {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Switches `event` to signed ticket secrets (pretix_sig1).
    pub fn use_signed_secrets(&self, event: &str) {
        self.setup(&["sig1", event]);
    }

    /// Places `n` paid one-ticket orders of `item` in `event` at once.
    pub fn bulk_orders(&self, event: &str, item: i64, n: usize) {
        self.setup(&["orders", event, &item.to_string(), &n.to_string()]);
    }

    /// A call to `/api/v1/organizers/venue{path}`: status and JSON answer.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}/api/v1/organizers/venue{path}", self.base);
        let mut req = self
            .http
            .request(method, &url)
            .header("authorization", format!("Token {}", self.token));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or_default())
    }

    /// `api`, which must answer 2xx; the answer.
    pub async fn ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.api(method.clone(), path, body).await;
        assert!((200..300).contains(&status), "{method} {path}: {status} {v}");
        v
    }
}
