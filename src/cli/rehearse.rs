//! `venuebox rehearse`: the readiness report of `venuebox::rehearsal`
//! before doors, for the operator at the box: text or JSON, exit status 1
//! when anything is not ready. With the box stopped, its scanners,
//! printers and lights are tested (the operator is asked to scan the test
//! code on standard error); while it runs, they are its own and only the
//! rest is rehearsed. With `--simulate` this terminal is a scanner: type
//! the test code.

use super::args::{DataDir, StaffUrlArgs, SyncCli};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use venuebox::clock::Clock;
use venuebox::devices::Mode;
use venuebox::rehearsal::{self, DeviceCheck, Options, OwnDevices};
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
    let real = server::open(&Config::new(&dir.data_dir), Clock::system())
        .with_context(|| format!("cannot open {}", dir.data_dir.display()))?;
    // A running box holds the scanners and printers: testing them here
    // would take them from it.
    let running = matches!(server::lock_data_dir(&dir.data_dir), Err(server::LockError::Busy(_)));
    let devices = if running && !simulate {
        DeviceCheck::Held
    } else {
        let (urls, url) = lan.urls(real.store.box_id(), None);
        DeviceCheck::Own(Box::new(OwnDevices {
            mode: if simulate { Mode::Simulate } else { Mode::Hardware },
            config: super::load_devices(devices.as_deref())?,
            slip: rehearsal::test_slip(&dir.data_dir, real.store.box_id(), url, urls),
            scan_wait: Duration::from_secs(scan_wait_secs),
            tell: Arc::new(|line: &str| eprintln!("{line}")),
        }))
    };
    let bucket = sync.config(&dir.data_dir)?;
    let report =
        rehearsal::run(&real, &dir.data_dir, Options { expected_capture_gb, bucket, devices })
            .await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    if !report.ready {
        std::process::exit(1);
    }
    Ok(())
}
