//! `venuebox event close`: the end of an event on this box. With the box
//! stopped (its data-directory lock), the event is marked closed (the box
//! will not serve it again); with `--sync` everything pending is sent, the
//! bucket is listed to verify it holds every event seq and every capture,
//! and the archive goes to the bucket under `archive/`; an archive is
//! written locally with `--archive DIR` (a checked snapshot of the
//! database, the box identity, the capture index); with
//! `--wipe-personal-data` holder names, attendee codes, uploader ids and
//! staff sessions are erased from the box, keeping every figure — only
//! when the bucket was verified complete, or with `--force`.

use super::args::{DataDir, SyncCli};
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
    /// The bucket: a final sync, the verification and the archive there.
    #[command(flatten)]
    pub sync: SyncCli,
    /// Give up the final sync after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
}

pub async fn run(cmd: EventCommand) -> Result<()> {
    let EventCommand::Close(args) = cmd;
    let CloseArgs { dir, archive, wipe_personal_data, force, sync, timeout_secs } = args;
    let _lock = match server::lock_data_dir(&dir.data_dir) {
        Err(LockError::Busy(d)) => bail!(
            "the box is running on {}: stop it first (systemctl stop venuebox), then close the event",
            d.display()
        ),
        other => other?,
    };
    let bucket = sync.config(&dir.data_dir)?;
    if wipe_personal_data && bucket.is_none() && !force {
        bail!(
            "refusing to erase personal data: nothing shows that the bucket holds this box's records. \
             Close with --sync s3://BUCKET/PREFIX (the bucket is then verified), \
             or pass --force to erase anyway"
        );
    }
    if bucket.is_some() {
        super::sync::sync_now(&dir, sync, timeout_secs).await.context("the final sync failed")?;
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
        let report = state.store.snapshot_dir(&dir.data_dir, &dest).await?;
        let index = dest.join("captures.ndjson");
        let captures = state.store.capture_index().await?;
        let mut file = std::fs::File::create(&index)?;
        file.write_all(&capture_lines(&captures)?)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.sync_all()?;
        std::fs::File::open(&dest)?.sync_all()?;
        println!(
            "archive in {}: database {} bytes (integrity ok, {} events), {} captures listed",
            dest.display(),
            report.bytes,
            report.outbox_events,
            captures.len()
        );
    }
    let mut verified = false;
    if let Some(config) = &bucket {
        let s3 = venuebox::sync::s3::S3::new(&config.target)?;
        let v = venuebox::sync::verify::verify(&state.store, &s3, &state.media).await?;
        for (first, last) in &v.missing_events {
            println!("MISSING in the bucket: events {first} to {last}");
        }
        for sha in &v.missing_captures {
            println!("MISSING in the bucket: capture {sha}");
        }
        for sha in &v.differing_captures {
            println!("DIFFERENT in the bucket: capture {sha} (its bytes there are not the box's: sync it again)");
        }
        verified = v.complete();
        println!(
            "bucket {}: events 1 to {}, {} captures checked, {} of them byte for byte (MD5)",
            if verified { "verified" } else { "INCOMPLETE" },
            v.last_seq,
            v.captures_checked,
            v.captures_hashed
        );
        archive_to_bucket(&state, &s3, &event, &dir.data_dir).await?;
    }
    if wipe_personal_data {
        if !verified && !force {
            bail!("refusing to erase personal data: the bucket lacks what is listed above (sync again, or pass --force)");
        }
        let w = state.store.wipe_personal_data(actor, state.clock.now()).await?;
        println!(
            "personal data erased: {} tickets, {} scans, {} captures, {} events, {} sessions; the figures stay",
            w.tickets, w.scans, w.captures, w.outbox_events, w.sessions
        );
    }
    Ok(())
}

/// The archive in the bucket: `archive/box=<id>/event=<id>/venuebox.db`
/// (a checked snapshot) and `captures.ndjson`.
async fn archive_to_bucket(
    state: &venuebox::api::AppState,
    s3: &venuebox::sync::s3::S3,
    event: &str,
    data_dir: &std::path::Path,
) -> Result<()> {
    let snapshot = data_dir.join(format!("archive-{event}.db"));
    let _ = std::fs::remove_file(&snapshot);
    state.store.backup(snapshot.clone()).await?;
    let index = capture_lines(&state.store.capture_index().await?)?;
    let head = format!("archive/box={}/event={event}", state.store.box_id());
    let sent = s3.put_file(&s3.key(&format!("{head}/venuebox.db")), &snapshot).await;
    std::fs::remove_file(&snapshot)?;
    sent?;
    s3.put(&s3.key(&format!("{head}/captures.ndjson")), index.into(), false, None).await?;
    println!("archive in the bucket under {head}/");
    Ok(())
}

/// The capture index as NDJSON, one capture a line.
fn capture_lines(captures: &[venuebox::store::closing::CaptureIndexEntry]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for c in captures {
        writeln!(out, "{}", serde_json::to_string(c)?)?;
    }
    Ok(out)
}
