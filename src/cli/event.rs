//! `venuebox event close`: the end of an event on this box. With the box
//! stopped (its data-directory lock), the event is marked closed (the box
//! will not serve it again), an archive is written if asked (a checked
//! snapshot of the database, the box identity, the capture index), and
//! with `--wipe-personal-data` holder names, attendee codes, uploader ids
//! and staff sessions are erased from the box, keeping every figure. The
//! wipe needs proof that the records are safe elsewhere, or `--force`.

use super::args::DataDir;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use venuebox::clock::Clock;
use venuebox::domain::role::{Actor, Role};
use venuebox::server::{self, Config, LockError};

#[derive(Subcommand)]
pub enum EventCommand {
    /// Close the event on this box (stop the box first): archive, then
    /// optionally erase personal data.
    Close(CloseArgs),
}

#[derive(Args)]
pub struct CloseArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// Write an archive into this new directory: the database (a checked
    /// snapshot), the box identity and captures.ndjson (the capture index).
    #[arg(long, value_name = "DIR")]
    pub archive: Option<PathBuf>,
    /// Erase holder names, attendee codes, uploader ids and staff sessions
    /// from the box (the figures stay).
    #[arg(long)]
    pub wipe_personal_data: bool,
    /// Wipe even though nothing shows the records are safe in the bucket.
    #[arg(long)]
    pub force: bool,
}

pub async fn run(cmd: EventCommand) -> Result<()> {
    let EventCommand::Close(args) = cmd;
    let CloseArgs { dir, archive, wipe_personal_data, force } = args;
    let _lock = match server::lock_data_dir(&dir.data_dir) {
        Err(LockError::Busy(d)) => bail!(
            "the box is running on {}: stop it first (systemctl stop venuebox), then close the event",
            d.display()
        ),
        other => other?,
    };
    if wipe_personal_data && !force {
        bail!(
            "refusing to erase personal data: nothing shows that the bucket holds this box's records. \
             Sync first (venuebox sync now --sync s3://…) and keep an archive (--archive DIR), \
             then pass --force to erase anyway"
        );
    }
    let state = server::open(&Config::new(&dir.data_dir), Clock::system())
        .with_context(|| format!("cannot open {}", dir.data_dir.display()))?;
    let actor = Actor { name: "venuebox event close".into(), role: Role::Admin };
    let now = state.clock.now();
    let event = state.store.close_event(actor.clone(), now).await?;
    let counts = state.store.counts().await?;
    println!(
        "event {event} closed on this box: {} admitted, {} refused, {} inside at the end",
        counts.admitted, counts.rejected, counts.inside
    );
    if let Some(dest) = archive {
        if dest.exists() {
            bail!("{} exists already: archive into a new directory", dest.display());
        }
        std::fs::create_dir_all(&dest)?;
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o700))?;
        let report = state.store.backup(dest.join("venuebox.db")).await?;
        let identity = venuebox::store::identity::FILE;
        std::fs::copy(dir.data_dir.join(identity), dest.join(identity))?;
        let mut index = std::fs::File::create(dest.join("captures.ndjson"))?;
        let captures = state.store.capture_index().await?;
        for c in &captures {
            writeln!(index, "{}", serde_json::to_string(c)?)?;
        }
        index.sync_all()?;
        for f in ["venuebox.db", identity, "captures.ndjson"] {
            std::fs::set_permissions(dest.join(f), std::fs::Permissions::from_mode(0o600))?;
        }
        println!(
            "archive in {}: database {} bytes (integrity ok, {} events), {} captures listed",
            dest.display(),
            report.bytes,
            report.outbox_events,
            captures.len()
        );
    }
    if wipe_personal_data {
        let w = state.store.wipe_personal_data(actor, state.clock.now()).await?;
        println!(
            "personal data erased: {} tickets, {} scans, {} captures, {} events, {} sessions; the figures stay",
            w.tickets, w.scans, w.captures, w.outbox_events, w.sessions
        );
    }
    Ok(())
}
