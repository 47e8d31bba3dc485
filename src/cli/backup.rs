//! `venuebox backup DEST`: a consistent copy of the box's data while it
//! runs — the database (one snapshot, checked) and the box identity, in a
//! new directory only its owner can read.

use super::args::DataDir;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use venuebox::clock::Clock;
use venuebox::server::{self, Config};

#[derive(Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// A new directory for the copy (created, mode 0700).
    pub dest: PathBuf,
}

pub async fn run(args: BackupArgs) -> Result<()> {
    let BackupArgs { dir, dest } = args;
    let state = server::open(&Config::new(&dir.data_dir), Clock::system())
        .with_context(|| format!("cannot open {}", dir.data_dir.display()))?;
    let report = state.store.snapshot_dir(&dir.data_dir, &dest).await?;
    println!(
        "backup in {}: database {} bytes (integrity ok; {} scans, {} orders, {} captures, {} events) and the box identity",
        dest.display(),
        report.bytes,
        report.scans,
        report.orders,
        report.captures,
        report.outbox_events
    );
    println!(
        "capture files are not copied: they never change, so copy {} as it is (rsync), and they are in the bucket once synced",
        dir.data_dir.join("captures").display()
    );
    Ok(())
}
