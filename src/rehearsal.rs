//! Is this box ready for doors? The rehearsal behind `venuebox rehearse`
//! and `POST /api/v1/rehearsal`: on a scratch copy of the data (a snapshot
//! beside the data directory, removed afterwards; the real database is only
//! read), the real code paths run once over a real HTTP server in this
//! process: a walk-up sale and its receipt, that ticket checked in, a
//! scholarship claim, a photo uploaded with tus. Devices the rehearsal
//! holds itself (the box stopped, or simulated) are tested: the lights
//! blink, each printer prints a test slip (the pairing QR code and the
//! scanner test code), each scanner is asked to read the test code and its
//! verdict is shown; devices a running box holds are listed against its
//! configuration. With a bucket, a probe object goes under `rehearsal/`,
//! is read back and removed, and the published manifest is looked for.
//! Free disk is compared with the expected capture volume and the clock is
//! checked. Every line says what to fix.

use crate::clock::Clock;
use crate::devices::config::DevicesConfig;
use crate::devices::{Devices, Mode};
use crate::domain::manifest::{Gate, Tier};
use crate::domain::role::{Actor, Role};
use crate::parts::Venuebox;
use crate::server::{self, Config};
use crate::store::printing::{PairingSlip, PrintJobView, DEFAULT_STATION};
use crate::sync::config::SyncConfig;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use crate::domain::readiness::{Check, Report};

/// Lines the operator must read while the rehearsal runs ("scan the test
/// code now").
pub type Tell = Arc<dyn Fn(&str) + Send + Sync>;

/// Which devices the rehearsal meets, and how.
pub enum DeviceCheck {
    /// The rehearsal opens them itself (the box stopped, or simulated).
    Own(Box<OwnDevices>),
    /// A running box holds them: its registry against its configuration.
    Running(Arc<Devices>),
    /// Another process holds them: not checked (a FIX line saying so).
    Held,
}

/// Devices the rehearsal opens: lights, a test slip per printer, a test
/// read per scanner.
pub struct OwnDevices {
    /// `Hardware` or `Simulate`.
    pub mode: Mode,
    pub config: DevicesConfig,
    /// The test slip, without its scanner test code yet.
    pub slip: PairingSlip,
    /// How long each scanner has to read the test code; zero lists them only.
    pub scan_wait: Duration,
    pub tell: Tell,
}

pub struct Options {
    pub expected_capture_gb: u64,
    pub bucket: Option<SyncConfig>,
    pub devices: DeviceCheck,
}

/// The rehearsal the running box's admin screen asks for (`POST
/// /api/v1/rehearsal`): its bucket, its devices as it holds them.
pub struct FromRunningBox;

impl crate::api::Rehearse for FromRunningBox {
    fn rehearse(
        &self,
        st: Venuebox,
        expected_capture_gb: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Report> + Send>> {
        Box::pin(async move {
            let options = Options {
                expected_capture_gb,
                bucket: st.sync.setup.as_ref().map(|(c, _)| c.clone()),
                devices: DeviceCheck::Running(st.devices.clone()),
            };
            let dir = st.media.data_dir().to_path_buf();
            run(&st, &dir, options).await
        })
    }
}

/// Runs every check against the box whose state is `real` and whose data
/// directory is `data_dir`.
pub async fn run(real: &Venuebox, data_dir: &Path, options: Options) -> Report {
    let Options { expected_capture_gb, bucket, devices } = options;
    let mut report = Report::default();
    report.add(
        "clock",
        match server::apply_clock(real).await {
            Ok(c) => match c.advice {
                None => Ok(format!("{} ({})", c.now, c.source)),
                Some(a) => Err(a),
            },
            Err(e) => Err(format!("cannot read the clock's records: {e}")),
        },
    );
    let need = expected_capture_gb << 30;
    report.add("disk", match real.media.free_bytes() {
        Ok(free) if free >= need => Ok(format!("{} GiB free for {expected_capture_gb} GiB of captures", free >> 30)),
        Ok(free) => Err(format!("only {} GiB free for {expected_capture_gb} GiB of captures expected: free space on {} or sync captures away first", free >> 30, data_dir.display())),
        Err(e) => Err(format!("cannot read free space: {e}")),
    });
    // Previews are not the door's: a missing decoder is said, not a FIX.
    let missing = crate::media::preview::Tools::find().missing();
    report.add(
        "previews",
        Ok(if missing.is_empty() {
            "every capture type (JPEG, PNG, WebP, HEIC, video) by the sandboxed decoders".into()
        } else {
            let lines: Vec<String> =
                missing.iter().map(|m| format!("{} (install {})", m.what, m.package)).collect();
            format!("no previews of: {}", lines.join("; "))
        }),
    );
    match real.store.event() {
        None => report.add(
            "event",
            Err("no event loaded: import the manifest (venuebox manifest import FILE)".into()),
        ),
        Some(ev) => {
            report.add("event", Ok(format!("{} version {}", ev.event_id(), ev.manifest.version)));
            let scratch = data_dir.join(format!(
                "rehearsal-{}",
                crate::secrets::hex(&crate::secrets::random_bytes::<4>())
            ));
            match real.store.snapshot_dir(data_dir, &scratch).await {
                Ok(_) => {
                    if let Err(e) = flows(&scratch, devices, &mut report).await {
                        report.add("rehearsal", Err(format!("the rehearsal stopped: {e}")));
                    }
                }
                Err(e) => report
                    .add("rehearsal", Err(format!("cannot copy the data for the rehearsal: {e}"))),
            }
            let _ = std::fs::remove_dir_all(&scratch);
            if let Some(b) = &bucket {
                bucket_checks(b, &ev.event_id().to_string(), real.store.box_id(), &mut report)
                    .await;
            }
        }
    }
    if bucket.is_none() {
        report.add("sync", Err("no bucket configured: serve gets --sync s3://BUCKET/PREFIX (nothing would leave the box)".into()));
    }
    report.ready = report.checks.iter().all(|c| c.ready);
    report
}

/// The test slip each printer prints: the box's pairing page `url` (no
/// code: the real database is not written), its staff `urls` and its CA
/// fingerprint, if the box has made its CA yet.
pub fn test_slip(data_dir: &Path, box_id: &str, url: String, urls: Vec<String>) -> PairingSlip {
    let has_ca = crate::net::tls::tls_dir(data_dir).join("ca.pem").exists();
    let fingerprint = has_ca
        .then(|| crate::net::tls::load_or_create_ca(data_dir, box_id).ok())
        .flatten()
        .map(|ca| ca.fingerprint());
    PairingSlip { url, urls, fingerprint, code: None, expires_at: None, test_code: None }
}

/// The door, the till, a scholarship seat, a capture and the devices, on
/// the scratch copy through the real HTTP server.
async fn flows(scratch: &Path, devices: DeviceCheck, report: &mut Report) -> Result<(), String> {
    let mut config = Config::new(scratch);
    if let DeviceCheck::Own(own) = &devices {
        config.devices = own.mode.clone();
        config.device_config = own.config.clone();
    }
    let state = server::open(&config, Clock::system()).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let base = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(state.clone(), listener, async move {
        let _ = stopped.await;
    }));
    // Whatever happens below, the scratch server stops before the scratch
    // copy is removed (a running box rehearses many times).
    let outcome = async {
        let staff = Staff::sign_in(&state, base).await?;
        let ev = state.store.event().ok_or("the scratch copy has no event")?;
        let tier = ev.manifest.tiers.first().ok_or("the manifest has no tier")?;
        // A walk-up ticket for cash, then that ticket at the first gate.
        let sale = staff.walk_up(tier, "rehearsal-sale", "Rehearsal").await;
        let code =
            sale.as_ref().ok().and_then(|v| v["tickets"][0]["code"].as_str().map(str::to_string));
        let order = sale.as_ref().ok().and_then(|v| v["order_id"].as_str().map(str::to_string));
        report.add(
            "sale",
            sale.map(|v| {
                format!("walk-up ticket sold, order {}", v["order_id"].as_str().unwrap_or("?"))
            }),
        );
        let gate = ev.manifest.gates.first().ok_or("the manifest has no gate")?;
        report.add(
            "check-in",
            match code {
                None => Err("no ticket to check in (the sale failed)".into()),
                Some(code) => staff.check_in(&code, gate).await,
            },
        );
        // A scholarship seat, with the first code of the first programme.
        if let Some((program, claim)) =
            ev.manifest.scholarships.iter().find_map(|p| p.codes.first().map(|c| (p, c)))
        {
            let claimed = staff.claim(&claim.code, tier).await;
            report
                .add("scholarship", claimed.map(|_| format!("a seat of {} claimed", program.name)));
        }
        // A photo through tus.
        report.add(
            "capture",
            match ev.manifest.creators.first() {
                None => Ok("no creators in the manifest: nothing to upload".into()),
                Some(creator) => {
                    upload_photo(&staff.http, &staff.base, &staff.capture, creator.id.as_str())
                        .await
                }
            },
        );
        device_flows(&state, &staff, tier, devices, order.as_deref(), report).await
    }
    .await;
    let _ = stop.send(());
    let _ = server.await;
    outcome
}

/// The rehearsal's staff on the scratch box: a session per role it acts
/// in, and an HTTP client to the scratch box's API.
struct Staff {
    http: reqwest::Client,
    base: String,
    merch: String,
    door: String,
    capture: String,
}

impl Staff {
    async fn sign_in(state: &Venuebox, base: String) -> Result<Staff, String> {
        let token = |role: Role| {
            let store = state.store.clone();
            let now = state.clock.now();
            async move {
                let actor = Actor { name: format!("rehearsal ({role})"), role };
                store
                    .create_session(actor, now, 3_600_000)
                    .await
                    .map(|t| t.0)
                    .map_err(|e| e.to_string())
            }
        };
        Ok(Staff {
            http: reqwest::Client::new(),
            base,
            merch: token(Role::Merch).await?,
            door: token(Role::Door).await?,
            capture: token(Role::Capture).await?,
        })
    }

    /// POSTs `body` as `token`: the answer, or its status and message.
    async fn post(&self, path: &str, token: &str, body: Value) -> Result<Value, String> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status();
        let v: Value =
            serde_json::from_slice(&r.bytes().await.unwrap_or_default()).unwrap_or_default();
        if status.is_success() {
            Ok(v)
        } else {
            Err(format!("{status}: {}", v["error"]["message"].as_str().unwrap_or("?")))
        }
    }

    async fn walk_up(&self, tier: &Tier, nonce: &str, holder: &str) -> Result<Value, String> {
        let body = json!({"tier": tier.id, "nonce": nonce, "holder": holder,
            "tender": {"kind": "cash", "given_minor": tier.price_minor}});
        self.post("/api/v1/walkups", &self.merch, body).await
    }

    async fn check_in(&self, code: &str, gate: &Gate) -> Result<String, String> {
        let body = json!({"code": code, "gate": gate.id, "nonce": "rehearsal-scan"});
        let v = self.post("/api/v1/checkins", &self.door, body).await?;
        if v["verdict"] == "admit" {
            Ok(format!("admitted at {}", gate.name))
        } else {
            Err(format!("refused at {}: {}", gate.name, v["message"]))
        }
    }

    /// A scholarship seat: free first, else paid in cash as the seat asks.
    async fn claim(&self, code: &str, tier: &Tier) -> Result<Value, String> {
        let free = json!({"code": code, "nonce": "rehearsal-claim"});
        match self.post("/api/v1/scholarships/claims", &self.merch, free).await {
            Ok(v) => Ok(v),
            Err(_) => {
                let tender = json!({"kind": "cash", "given_minor": tier.price_minor});
                let paid = json!({"code": code, "nonce": "rehearsal-claim-paid", "tender": tender});
                self.post("/api/v1/scholarships/claims", &self.merch, paid).await
            }
        }
    }
}

/// The devices part: with devices of its own, lights, a test slip per
/// printer (with the receipt of the rehearsal's sale) and a test read per
/// scanner; a running box's devices listed as it holds them.
async fn device_flows(
    state: &Venuebox,
    staff: &Staff,
    tier: &Tier,
    devices: DeviceCheck,
    order: Option<&str>,
    report: &mut Report,
) -> Result<(), String> {
    match devices {
        DeviceCheck::Own(own) => {
            let OwnDevices { config: device_config, slip, scan_wait, tell, .. } = *own;
            // The scanner test code: one more walk-up ticket, scanned only
            // by the scanners under test.
            let test_code = staff
                .walk_up(tier, "rehearsal-scanner-test", "Scanner test")
                .await
                .ok()
                .and_then(|v| v["tickets"][0]["code"].as_str().map(str::to_string));
            state.devices.pipeline.signaller().self_test();
            // USB devices announce themselves as the device task finds them.
            tokio::time::sleep(Duration::from_secs(1)).await;
            device_checks(&state.devices, &device_config, report);
            receipt_check(state, order, report).await.map_err(|e| e.to_string())?;
            if let Some(code) = test_code {
                let slip = PairingSlip { test_code: Some(code.clone()), ..slip };
                printer_tests(state, slip, report).await.map_err(|e| e.to_string())?;
                scanner_tests(state, &device_config, &code, scan_wait, &tell, report).await;
            }
        }
        DeviceCheck::Running(live) => {
            device_checks(&live, &live.config, report);
            report.add("devices", Ok("listed as the running box holds them; for test slips and scanner reads, rehearse with the box stopped (venuebox rehearse)".into()));
        }
        DeviceCheck::Held => report.add("devices", Err("the box is running: stop it (systemctl stop venuebox) to test its scanners, printers and lights, or rehearse from the admin screen".into())),
    }
    Ok(())
}

async fn upload_photo(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    creator: &str,
) -> Result<String, String> {
    use base64::Engine;
    let mut jpeg = Vec::new();
    image::RgbImage::from_fn(320, 240, |x, y| image::Rgb([x as u8, y as u8, 128]))
        .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
        .map_err(|e| e.to_string())?;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let meta = format!(
        "creator {},consent {},filename {}",
        b64(creator),
        b64("true"),
        b64("rehearsal.jpg")
    );
    let r = http
        .post(format!("{base}/api/v1/uploads/"))
        .bearer_auth(token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", jpeg.len().to_string())
        .header("upload-metadata", meta)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let at = r
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| format!("the upload was not created ({})", r.status()))?;
    let url = if at.starts_with("http") { at } else { format!("{base}{at}") };
    let r = http
        .patch(url)
        .bearer_auth(token)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(jpeg.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status().as_u16() == 204 {
        Ok(format!("a {} byte photo uploaded with tus", jpeg.len()))
    } else {
        Err(format!("the upload's bytes were refused ({})", r.status()))
    }
}

/// Every device seen, and every configured printer station that has none.
fn device_checks(devices: &Devices, config: &DevicesConfig, report: &mut Report) {
    let listed = devices.registry.list();
    for d in &listed {
        let ok = matches!(d.status.as_str(), "ready" | "connected");
        let what = format!("{} ({}, {})", d.name, d.kind, d.role);
        report.add(
            "device",
            if ok {
                Ok(what)
            } else {
                Err(format!("{what}: {}", d.detail.clone().unwrap_or_else(|| d.status.clone())))
            },
        );
    }
    for p in &config.printers {
        let station = format!("station {}", p.station);
        if !listed.iter().any(|d| d.kind == "printer" && d.role.contains(&station)) {
            report.add("printer", Err(format!("no printer for {station} is plugged in: connect it (and switch it on), or fix its entry in the device configuration")));
        }
    }
}

/// The sale's receipt printed, when a printer is there to print it.
async fn receipt_check(
    state: &Venuebox,
    order: Option<&str>,
    report: &mut Report,
) -> Result<(), crate::store::StoreError> {
    let has_printer = state.devices.registry.list().iter().any(|d| d.kind == "printer");
    if let Some(order) = order {
        if has_printer {
            let printed = wait_for_jobs(state, |jobs| {
                jobs.iter().any(|j| j.order_id.as_deref() == Some(order) && j.status == "done")
            })
            .await?;
            report.add(
                "receipt",
                if printed {
                    Ok("the sale's receipt printed".into())
                } else {
                    Err("the sale's receipt did not print within 10 s: check the paper, the cover and the printer's light".into())
                },
            );
        }
    }
    Ok(())
}

/// Waits up to 10 s for the print queue to satisfy `done`.
async fn wait_for_jobs(
    state: &Venuebox,
    done: impl Fn(&[PrintJobView]) -> bool,
) -> Result<bool, crate::store::StoreError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if done(&state.store.print_jobs(false, 50).await?) {
            return Ok(true);
        }
        if std::time::Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A test slip on every station that has a printer plugged in.
async fn printer_tests(
    state: &Venuebox,
    slip: PairingSlip,
    report: &mut Report,
) -> Result<(), crate::store::StoreError> {
    let mut queued: Vec<(String, String, i64)> = Vec::new();
    for p in state.devices.registry.list().into_iter().filter(|d| d.kind == "printer") {
        let station = p.role.strip_prefix("station ").unwrap_or(DEFAULT_STATION).to_string();
        if queued.iter().any(|(s, _, _)| *s == station) {
            continue;
        }
        let job = state
            .store
            .queue_pairing_slip(slip.clone(), station.clone(), state.clock.now())
            .await?;
        queued.push((station, p.name, job));
    }
    let ids: Vec<i64> = queued.iter().map(|q| q.2).collect();
    wait_for_jobs(state, |jobs| {
        ids.iter().all(|id| jobs.iter().any(|j| j.id == *id && j.status == "done"))
    })
    .await?;
    let jobs = state.store.print_jobs(false, 50).await?;
    for (station, name, job) in queued {
        let done = jobs.iter().any(|j| j.id == job && j.status == "done");
        report.add(
            "printer",
            if done {
                Ok(format!("{name} (station {station}) printed the test slip: the pairing QR code and the scanner test code"))
            } else {
                Err(format!("{name} (station {station}) did not print the test slip within 10 s: check the paper, the cover and the printer's light"))
            },
        );
    }
    Ok(())
}

/// Asks each scanner to read the test code and shows the verdict it led to.
async fn scanner_tests(
    state: &Venuebox,
    config: &DevicesConfig,
    code: &str,
    wait: Duration,
    tell: &Tell,
    report: &mut Report,
) {
    let listed = state.devices.registry.list();
    let mut scanners: Vec<(String, String)> = listed
        .iter()
        .filter(|d| d.kind == "scanner" && d.status == "connected")
        .map(|d| (d.id.clone(), format!("{} ({})", d.name, d.role)))
        .collect();
    for rule in &config.scanners {
        let role = format!(
            "gate {} ({})",
            rule.gate.as_deref().unwrap_or("first"),
            rule.direction.as_str()
        );
        if !listed.iter().any(|d| d.kind == "scanner" && d.role == role) {
            report.add("scanner", Err(format!("no scanner for {role} is plugged in: connect it, or fix its entry in the device configuration")));
        }
    }
    let simulated = state.devices.mode == Mode::Simulate;
    if simulated {
        scanners.push((TERMINAL.into(), "this terminal (simulated: type the code, Enter)".into()));
    }
    if scanners.is_empty() {
        return;
    }
    if wait.is_zero() {
        for (_, label) in scanners {
            report.add(
                "scanner",
                Ok(format!("{label}: connected, not test-read (--scan-wait-secs 0)")),
            );
        }
        return;
    }
    let mut feed = state.devices.pipeline.subscribe();
    if simulated {
        terminal_scanner(state.devices.pipeline.clone());
    }
    tell(&format!("\nScanner test code (also on each printer's test slip): {code}"));
    if let Ok(qr) = crate::domain::qr::terminal(code) {
        tell(&qr);
    }
    for (id, label) in scanners {
        tell(&format!("Scan the test code now with {label}: waiting up to {} s", wait.as_secs()));
        let deadline = tokio::time::Instant::now() + wait;
        let read = loop {
            match tokio::time::timeout_at(deadline, feed.recv()).await {
                Ok(Ok(v)) if v.source == id.as_str() => break Some(v),
                Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(_)) | Err(_) => break None,
            }
        };
        report.add(
            "scanner",
            match read {
                Some(v) => {
                    let (gate, verdict, message) = (v.gate, v.verdict.as_str(), v.message);
                    tell(&format!("  read: gate {gate}, {verdict}: {message}"));
                    Ok(format!("{label}: read the test code, gate {gate} said {verdict} ({message}), lights signalled"))
                }
                None => Err(format!("{label}: nothing read in {} s: check its cable and that it is in USB keyboard (HID) mode, then rehearse again", wait.as_secs())),
            },
        );
    }
}

/// The simulated scanner's name: lines typed on standard input.
const TERMINAL: &str = "terminal";

/// `--simulate`: each line on standard input is a read by a scanner at the
/// first gate, through the same pipeline as a USB scanner's.
fn terminal_scanner(pipeline: Arc<crate::devices::pipeline::ScanPipeline>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(8);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let binding = crate::devices::pipeline::Binding {
            scanner: TERMINAL.into(),
            gate: None,
            direction: crate::domain::checkin::Direction::Entry,
        };
        while let Some(line) = rx.recv().await {
            let code = line.trim();
            if !code.is_empty() {
                if let Err(e) = pipeline.scan(&binding, code, std::time::Instant::now()).await {
                    tracing::warn!(error = %e, "the terminal scanner's read failed");
                }
            }
        }
    });
}

async fn bucket_checks(config: &SyncConfig, event: &str, box_id: &str, report: &mut Report) {
    let s3 = match crate::sync::s3::S3::new(&config.target) {
        Ok(s) => s,
        Err(e) => return report.add("sync", Err(e.to_string())),
    };
    let key = s3.key(&format!("rehearsal/{box_id}-{}.txt", std::process::id()));
    let body = format!("venuebox rehearsal from {box_id}");
    let round_trip = async {
        s3.put(&key, body.clone().into(), false, None).await?;
        let back = s3.get(&key).await?;
        s3.delete(&key).await?;
        Ok::<_, crate::sync::s3::S3Error>(back == body.as_bytes())
    }
    .await;
    report.add(
        "sync",
        match round_trip {
            Ok(true) => Ok("a probe object written, read back and removed under rehearsal/".into()),
            Ok(false) => Err("the bucket gave back other bytes than were written".into()),
            Err(e) => Err(format!("{e}")),
        },
    );
    let manifest = s3.key(&format!("manifests/event={event}/manifest.json"));
    report.add("manifest", match s3.head(&manifest).await {
        Ok(Some(_)) => Ok(format!("the published manifest is in the bucket ({manifest})")),
        Ok(None) => Err(format!("no manifest published at {manifest}: the organiser publishes it there (and its .sig)")),
        Err(e) => Err(format!("cannot look for the manifest: {e}")),
    });
}
