//! `venuebox backup DEST`: a consistent copy of the box's data while it
//! runs — the database (one snapshot, checked) and the box identity, in a
//! new directory only its owner can read.

use super::args::DataDir;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use venuebox::clock::Clock;
use venuebox::server::{self, Config};
use venuebox::store::backup::BackupReport;

#[derive(Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// A new directory for the copy (created, mode 0700).
    pub dest: PathBuf,
}

/// The database as it is now (a checked snapshot) and the box identity in
/// `dest`, a new directory only its owner can read (0700, files 0600).
pub(super) async fn snapshot(
    state: &venuebox::api::AppState,
    data_dir: &Path,
    dest: &Path,
) -> Result<BackupReport> {
    if dest.exists() {
        bail!("{} exists already: use a new directory", dest.display());
    }
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o700))?;
    let report = state.store.backup(dest.join("venuebox.db")).await?;
    let identity = venuebox::store::identity::FILE;
    std::fs::copy(data_dir.join(identity), dest.join(identity))
        .with_context(|| format!("cannot copy {identity}"))?;
    for f in [report.path.as_path(), &dest.join(identity)] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600))?;
        // On disk before anything relies on it (event close wipes next).
        std::fs::File::open(f)?.sync_all()?;
    }
    std::fs::File::open(dest)?.sync_all()?;
    Ok(report)
}

pub async fn run(args: BackupArgs) -> Result<()> {
    let BackupArgs { dir, dest } = args;
    let state = server::open(&Config::new(&dir.data_dir), Clock::system())
        .with_context(|| format!("cannot open {}", dir.data_dir.display()))?;
    let report = snapshot(&state, &dir.data_dir, &dest).await?;
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
