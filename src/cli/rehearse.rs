//! `venuebox rehearse`: before doors, is this box ready? On a scratch copy
//! of the data (the real database is only read), the real code paths run
//! once over the real HTTP server in this process: a walk-up sale and its
//! receipt, that ticket checked in, a scholarship claim, a photo uploaded
//! with tus; the lights blink; devices are listed against the device
//! configuration (an unplugged printer is named). With `--sync` a probe
//! object goes to the bucket under `rehearsal/`, is read back and removed,
//! and the newest published manifest is looked for. Free disk is compared
//! with the expected capture volume and the clock is checked. The report
//! says what to fix, line by line (or JSON); exit status 1 when anything
//! is not ready. Each printer prints a test slip (the pairing QR code and
//! the scanner test code); each scanner is asked to read the test code
//! ("scan the test code now") and its verdict is shown as the door would
//! see it. With `--simulate` this terminal is a scanner: type the code.

use super::args::{DataDir, StaffUrlArgs, SyncCli};
use anyhow::{Context, Result};
use clap::Args;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use venuebox::clock::Clock;
use venuebox::domain::role::{Actor, Role};
use venuebox::server::{self, Config};
use venuebox::store::printing::{PairingSlip, PrintJobView, DEFAULT_STATION};

#[derive(Args)]
pub struct RehearseArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// The device configuration serve uses (scanners, printers, lights).
    #[arg(long, env = "VENUEBOX_DEVICES")]
    pub devices: Option<PathBuf>,
    /// Simulated devices, as `serve --simulate`.
    #[arg(long)]
    pub simulate: bool,
    /// The bucket serve syncs to: a probe round trip and the manifest.
    #[command(flatten)]
    pub sync: SyncCli,
    /// Captures expected tonight, in GiB: free disk must hold them.
    #[arg(long, default_value_t = 20)]
    pub expected_capture_gb: u64,
    /// Seconds to wait for each scanner to read the test code (0: list
    /// the scanners without a test read).
    #[arg(long, default_value_t = 60)]
    pub scan_wait_secs: u64,
    /// Where phones reach the box, for the pairing QR on the test slips.
    #[command(flatten)]
    pub lan: StaffUrlArgs,
    /// The report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What the device checks print and ask for.
struct DeviceTest {
    /// The test slip, without its scanner test code yet.
    slip: PairingSlip,
    scan_wait: Duration,
}

#[derive(serde::Serialize)]
struct Check {
    check: &'static str,
    ready: bool,
    said: String,
}

#[derive(Default)]
struct Report(Vec<Check>);

impl Report {
    fn add(&mut self, check: &'static str, outcome: Result<String, String>) {
        let (ready, said) = match outcome {
            Ok(s) => (true, s),
            Err(s) => (false, s),
        };
        self.0.push(Check { check, ready, said });
    }
}

pub async fn run(args: RehearseArgs) -> Result<()> {
    let RehearseArgs {
        dir,
        devices,
        simulate,
        sync,
        expected_capture_gb,
        scan_wait_secs,
        lan,
        json,
    } = args;
    let mut report = Report::default();
    let real = server::open(&Config::new(&dir.data_dir), Clock::system())
        .with_context(|| format!("cannot open {}", dir.data_dir.display()))?;
    let clock = server::apply_clock(&real).await?;
    report.add(
        "clock",
        match clock.advice {
            None => Ok(format!("{} ({})", clock.now, clock.source)),
            Some(a) => Err(a),
        },
    );
    let need = expected_capture_gb << 30;
    report.add("disk", match real.media.free_bytes() {
        Ok(free) if free >= need => Ok(format!("{} GiB free for {expected_capture_gb} GiB of captures", free >> 30)),
        Ok(free) => Err(format!("only {} GiB free for {expected_capture_gb} GiB of captures expected: free space on {} or sync captures away first", free >> 30, dir.data_dir.display())),
        Err(e) => Err(format!("cannot read free space: {e}")),
    });
    let bucket = sync.config(&dir.data_dir)?;
    match real.store.event() {
        None => report.add(
            "event",
            Err("no event loaded: import the manifest (venuebox manifest import FILE)".into()),
        ),
        Some(ev) => {
            report.add("event", Ok(format!("{} version {}", ev.event_id(), ev.manifest.version)));
            let scratch = scratch_copy(&real, &dir.data_dir).await?;
            let mut config = Config::new(&scratch);
            // A running box holds the scanners and printers: checking them
            // here would take them from it.
            let running =
                matches!(server::lock_data_dir(&dir.data_dir), Err(server::LockError::Busy(_)));
            config.devices = if simulate {
                venuebox::devices::Mode::Simulate
            } else if running {
                report.add("devices", Err("the box is running: stop it (systemctl stop venuebox) to check its scanners, printers and lights".into()));
                venuebox::devices::Mode::Off
            } else {
                venuebox::devices::Mode::Hardware
            };
            config.device_config = super::load_devices(devices.as_deref())?;
            let test = DeviceTest {
                slip: test_slip(&real, &dir.data_dir, &lan),
                scan_wait: Duration::from_secs(scan_wait_secs),
            };
            let outcome = flows(&config, &test, &mut report).await;
            let _ = std::fs::remove_dir_all(&scratch);
            outcome?;
            if let Some(b) = &bucket {
                bucket_checks(b, &ev.event_id().to_string(), real.store.box_id(), &mut report)
                    .await;
            }
        }
    }
    if bucket.is_none() {
        report.add("sync", Err("no bucket given: pass --sync s3://BUCKET/PREFIX as serve gets it (nothing would leave the box)".into()));
    }
    let ready = report.0.iter().all(|c| c.ready);
    if json {
        println!("{}", serde_json::to_string_pretty(&json!({"ready": ready, "checks": report.0}))?);
    } else {
        for c in &report.0 {
            println!("{} {:<12} {}", if c.ready { "OK " } else { "FIX" }, c.check, c.said);
        }
        println!(
            "{}",
            if ready { "READY for doors" } else { "NOT READY: fix the lines marked FIX" }
        );
    }
    if !ready {
        std::process::exit(1);
    }
    Ok(())
}

/// The database as it is now (one snapshot) and the box identity, in a
/// scratch directory beside the data directory.
async fn scratch_copy(
    real: &venuebox::api::AppState,
    data_dir: &std::path::Path,
) -> Result<PathBuf> {
    let scratch = data_dir.join(format!("rehearsal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    super::backup::snapshot(real, data_dir, &scratch).await?;
    Ok(scratch)
}

/// The test slip each printer prints: the real box's pairing page (no
/// code: the real database is not written) and CA fingerprint, if the box
/// has made its CA yet.
fn test_slip(
    real: &venuebox::api::AppState,
    data_dir: &std::path::Path,
    lan: &StaffUrlArgs,
) -> PairingSlip {
    let (urls, url) = lan.urls(real.store.box_id(), None);
    let has_ca = venuebox::net::tls::tls_dir(data_dir).join("ca.pem").exists();
    let fingerprint = has_ca
        .then(|| venuebox::net::tls::load_or_create_ca(data_dir, real.store.box_id()).ok())
        .flatten()
        .map(|ca| ca.fingerprint());
    PairingSlip { url, urls, fingerprint, code: None, expires_at: None, test_code: None }
}

/// The door, the till, a scholarship seat, a capture and the devices, on
/// the scratch copy through the real HTTP server.
async fn flows(config: &Config, test: &DeviceTest, report: &mut Report) -> Result<()> {
    let state = server::open(config, Clock::system())?;
    let ev = state.store.event().context("the scratch copy has no event")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(state.clone(), listener, async move {
        let _ = stopped.await;
    }));
    let token = |role: Role| {
        let store = state.store.clone();
        let now = state.clock.now();
        async move {
            let actor = Actor { name: format!("rehearsal ({role})"), role };
            store.create_session(actor, now, 3_600_000).await.map(|t| t.0)
        }
    };
    let (merch, door, capture) =
        (token(Role::Merch).await?, token(Role::Door).await?, token(Role::Capture).await?);
    let http = reqwest::Client::new();
    let post = |path: String, tok: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(tok)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let said = |r: reqwest::Response| async move {
        let status = r.status();
        let v: Value =
            serde_json::from_slice(&r.bytes().await.unwrap_or_default()).unwrap_or_default();
        if status.is_success() {
            Ok(v)
        } else {
            Err(format!("{status}: {}", v["error"]["message"].as_str().unwrap_or("?")))
        }
    };

    // A walk-up ticket for cash, then that ticket at the first gate.
    let tier = ev.manifest.tiers.first().context("the manifest has no tier")?;
    let walk_up = |nonce: &'static str, holder: &'static str| {
        let body = json!({"tier": tier.id, "nonce": nonce, "holder": holder,
            "tender": {"kind": "cash", "given_minor": tier.price_minor}});
        let sent = post("/api/v1/walkups".into(), &merch, body);
        async move { said(sent.await.map_err(|e| e.to_string())?).await }
    };
    let sale = walk_up("rehearsal-sale", "Rehearsal").await;
    let code =
        sale.as_ref().ok().and_then(|v| v["tickets"][0]["code"].as_str().map(str::to_string));
    let order = sale.as_ref().ok().and_then(|v| v["order_id"].as_str().map(str::to_string));
    report.add(
        "sale",
        sale.map(|v| {
            format!("walk-up ticket sold, order {}", v["order_id"].as_str().unwrap_or("?"))
        }),
    );
    let gate = ev.manifest.gates.first().context("the manifest has no gate")?;
    report.add(
        "check-in",
        match code {
            None => Err("no ticket to check in (the sale failed)".into()),
            Some(code) => {
                async {
                    let r = post(
                        "/api/v1/checkins".into(),
                        &door,
                        json!({"code": code, "gate": gate.id, "nonce": "rehearsal-scan"}),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    let v = said(r).await?;
                    if v["verdict"] == "admit" {
                        Ok(format!("admitted at {}", gate.name))
                    } else {
                        Err(format!("refused at {}: {}", gate.name, v["message"]))
                    }
                }
                .await
            }
        },
    );
    // A scholarship seat, with the first code of the first programme.
    if let Some((program, claim)) =
        ev.manifest.scholarships.iter().find_map(|p| p.codes.first().map(|c| (p, c)))
    {
        let tender = json!({"kind": "cash", "given_minor": tier.price_minor});
        let outcome = async {
            let mut r = said(post("/api/v1/scholarships/claims".into(), &merch, json!({"code": claim.code, "nonce": "rehearsal-claim"})).await.map_err(|e| e.to_string())?).await;
            if r.is_err() {
                r = said(post("/api/v1/scholarships/claims".into(), &merch, json!({"code": claim.code, "nonce": "rehearsal-claim-paid", "tender": tender})).await.map_err(|e| e.to_string())?).await;
            }
            r.map(|_| format!("a seat of {} claimed", program.name))
        }.await;
        report.add("scholarship", outcome);
    }
    // A photo through tus.
    report.add(
        "capture",
        match ev.manifest.creators.first() {
            None => Ok("no creators in the manifest: nothing to upload".into()),
            Some(creator) => upload_photo(&http, &base, &capture, creator.id.as_str()).await,
        },
    );
    // The scanner test code: one more walk-up ticket, scanned only by the
    // scanners under test.
    let test_code = walk_up("rehearsal-scanner-test", "Scanner test")
        .await
        .ok()
        .and_then(|v| v["tickets"][0]["code"].as_str().map(str::to_string));
    // Lights, printers, scanners as the device configuration expects them.
    state.devices.pipeline.signaller().self_test();
    // USB devices announce themselves as the device task finds them.
    tokio::time::sleep(Duration::from_secs(1)).await;
    device_checks(&state, config, order.as_deref(), report).await?;
    if let Some(code) = test_code {
        let mut slip = test.slip.clone();
        slip.test_code = Some(code.clone());
        printer_tests(&state, slip, report).await?;
        scanner_tests(&state, config, &code, test.scan_wait, report).await;
    }
    let _ = stop.send(());
    let _ = server.await;
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

async fn device_checks(
    state: &venuebox::api::AppState,
    config: &Config,
    order: Option<&str>,
    report: &mut Report,
) -> Result<()> {
    let listed = state.devices.registry.list();
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
    for p in &config.device_config.printers {
        let station = format!("station {}", p.station);
        if !listed.iter().any(|d| d.kind == "printer" && d.role.contains(&station)) {
            report.add("printer", Err(format!("no printer for {station} is plugged in: connect it (and switch it on), or fix its entry in the device configuration")));
        }
    }
    if let Some(order) = order {
        if listed.iter().any(|d| d.kind == "printer") {
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
    state: &venuebox::api::AppState,
    done: impl Fn(&[PrintJobView]) -> bool,
) -> Result<bool> {
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
    state: &venuebox::api::AppState,
    slip: PairingSlip,
    report: &mut Report,
) -> Result<()> {
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
    state: &venuebox::api::AppState,
    config: &Config,
    code: &str,
    wait: Duration,
    report: &mut Report,
) {
    let listed = state.devices.registry.list();
    let mut scanners: Vec<(String, String)> = listed
        .iter()
        .filter(|d| d.kind == "scanner" && d.status == "connected")
        .map(|d| (d.id.clone(), format!("{} ({})", d.name, d.role)))
        .collect();
    for rule in &config.device_config.scanners {
        let role = format!(
            "gate {} ({})",
            rule.gate.as_deref().unwrap_or("first"),
            rule.direction.as_str()
        );
        if !listed.iter().any(|d| d.kind == "scanner" && d.role == role) {
            report.add("scanner", Err(format!("no scanner for {role} is plugged in: connect it, or fix its entry in the device configuration")));
        }
    }
    let simulated = state.devices.mode == venuebox::devices::Mode::Simulate;
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
    eprintln!("\nScanner test code (also on each printer's test slip): {code}");
    if let Ok(qr) = venuebox::domain::qr::terminal(code) {
        eprintln!("{qr}");
    }
    for (id, label) in scanners {
        eprintln!("Scan the test code now with {label}: waiting up to {} s", wait.as_secs());
        let deadline = tokio::time::Instant::now() + wait;
        let read = loop {
            match tokio::time::timeout_at(deadline, feed.recv()).await {
                Ok(Ok(v)) if v["source"] == id.as_str() => break Some(v),
                Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(_)) | Err(_) => break None,
            }
        };
        report.add(
            "scanner",
            match read {
                Some(v) => {
                    let gate = v["gate"].as_str().unwrap_or("?");
                    let verdict = v["verdict"].as_str().unwrap_or("?");
                    let message = v["message"].as_str().unwrap_or("");
                    eprintln!("  read: gate {gate}, {verdict}: {message}");
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
fn terminal_scanner(pipeline: std::sync::Arc<venuebox::devices::pipeline::ScanPipeline>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(8);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let binding = venuebox::devices::pipeline::Binding {
            scanner: TERMINAL.into(),
            gate: None,
            direction: venuebox::domain::checkin::Direction::Entry,
        };
        while let Some(line) = rx.recv().await {
            let code = line.trim();
            if !code.is_empty() {
                if let Err(e) = pipeline.scan(&binding, code, std::time::Instant::now()).await {
                    eprintln!("  that read failed: {e}");
                }
            }
        }
    });
}

async fn bucket_checks(
    config: &venuebox::sync::config::SyncConfig,
    event: &str,
    box_id: &str,
    report: &mut Report,
) {
    let s3 = match venuebox::sync::s3::S3::new(&config.target) {
        Ok(s) => s,
        Err(e) => return report.add("sync", Err(e.to_string())),
    };
    let key = s3.key(&format!("rehearsal/{box_id}-{}.txt", std::process::id()));
    let body = format!("venuebox rehearsal from {box_id}");
    let round_trip = async {
        s3.put(&key, body.clone().into(), false, None).await?;
        let back = s3.get(&key).await?;
        s3.delete(&key).await?;
        Ok::<_, venuebox::sync::s3::S3Error>(back == body.as_bytes())
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
