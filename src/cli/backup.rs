//! `venuebox backup DEST`: a consistent copy of the box's data while it
//! runs — the database (one snapshot, checked) and the box identity, in a
//! new directory only its owner can read.

use super::args::DataDir;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::os::unix::fs::PermissionsExt;
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
    if dest.exists() {
        bail!("{} exists already: back up into a new directory", dest.display());
    }
    std::fs::create_dir_all(&dest).with_context(|| format!("cannot create {}", dest.display()))?;
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o700))?;
    let state = server::open(&Config::new(&dir.data_dir), Clock::system())
        .with_context(|| format!("cannot open {}", dir.data_dir.display()))?;
    let report = state.store.backup(dest.join("venuebox.db")).await?;
    std::fs::set_permissions(&report.path, std::fs::Permissions::from_mode(0o600))?;
    let identity = venuebox::store::identity::FILE;
    std::fs::copy(dir.data_dir.join(identity), dest.join(identity))
        .with_context(|| format!("cannot copy {identity}"))?;
    std::fs::set_permissions(dest.join(identity), std::fs::Permissions::from_mode(0o600))?;
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
