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
//! is not ready. Scanners are listed, not waited for: scan a ticket at
//! each gate once the box runs.

use super::args::{DataDir, SyncCli};
use anyhow::{Context, Result};
use clap::Args;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use venuebox::clock::Clock;
use venuebox::domain::role::{Actor, Role};
use venuebox::server::{self, Config};

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
    /// The report as JSON.
    #[arg(long)]
    pub json: bool,
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
    let RehearseArgs { dir, devices, simulate, sync, expected_capture_gb, json } = args;
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
            let outcome = flows(&config, &mut report).await;
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

/// The door, the till, a scholarship seat, a capture and the devices, on
/// the scratch copy through the real HTTP server.
async fn flows(config: &Config, report: &mut Report) -> Result<()> {
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
    let sale = async {
        let r = post(
            "/api/v1/walkups".into(),
            &merch,
            json!({"tier": tier.id, "nonce": "rehearsal-sale", "holder": "Rehearsal",
            "tender": {"kind": "cash", "given_minor": tier.price_minor}}),
        )
        .await
        .map_err(|e| e.to_string())?;
        said(r).await
    }
    .await;
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
    // Lights, printers, scanners as the device configuration expects them.
    state.devices.pipeline.signaller().self_test();
    // USB devices announce themselves as the device task finds them.
    tokio::time::sleep(Duration::from_secs(1)).await;
    device_checks(&state, config, order.as_deref(), report).await?;
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
            // Printed as soon as the printer is done, or said after 10 s.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let printed = loop {
                let jobs = state.store.print_jobs(false, 50).await?;
                if jobs.iter().any(|j| j.order_id.as_deref() == Some(order) && j.status == "done") {
                    break true;
                }
                if std::time::Instant::now() > deadline {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
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
