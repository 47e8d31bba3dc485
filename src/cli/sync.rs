//! `venuebox sync status`, `venuebox sync now` and `venuebox payouts run`:
//! the cloud side from the box's shell.

use super::args::{DataDir, SyncCli};
use anyhow::{bail, Result};
use clap::Subcommand;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use venuebox::clock::Clock;
use venuebox::domain::time::parse_rfc3339;
use venuebox::server::{self, Config};

#[derive(Subcommand)]
// `now` carries the sync flags; parsed once and moved, never copied.
#[expect(clippy::large_enum_variant)]
pub enum SyncCommand {
    /// Events and bytes pending, lag, last success, last error.
    Status {
        #[command(flatten)]
        dir: DataDir,
        /// The same status as JSON (as GET /api/v1/sync gives it).
        #[arg(long)]
        json: bool,
    },
    /// Send everything pending now, with a progress bar. With a running
    /// `serve` on this data directory, asks it to sync and follows along.
    Now {
        #[command(flatten)]
        dir: DataDir,
        #[command(flatten)]
        sync: SyncCli,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
}

pub async fn sync(cmd: SyncCommand) -> Result<()> {
    match cmd {
        SyncCommand::Status { dir, json } => {
            let state = server::open(&Config::new(&dir.data_dir), Clock::system())?;
            let now = state.clock.now();
            let mut s = venuebox::sync::status(&state.store, &state.sync, now).await?;
            // This process does not sync; say whether a running box does.
            s.state = match venuebox::sync::try_lock(&dir.data_dir)? {
                None => "syncing in a running venuebox serve".into(),
                Some(_) => "not running (no venuebox serve --sync on this data directory)".into(),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print_status(&s, now);
            }
            if s.permanent_error() {
                std::process::exit(2);
            }
            Ok(())
        }
        SyncCommand::Now { dir, sync, timeout_secs } => sync_now(&dir, sync, timeout_secs).await,
    }
}

/// Sends everything pending now (the lanes `serve` runs, or a running
/// box asked to), following the progress until nothing is left, a
/// permanent error, or `timeout_secs`.
pub(super) async fn sync_now(dir: &DataDir, sync: SyncCli, timeout_secs: u64) -> Result<()> {
    use std::io::Write;
    // Everything pending goes now: a segment closes whatever its age.
    let mut config = sync.config(&dir.data_dir)?;
    if let Some(c) = &mut config {
        c.segment.max_age_ms = 0;
    }
    let mut server_config = Config::new(&dir.data_dir);
    server_config.sync = config.clone();
    let state = server::open(&server_config, Clock::system())?;
    let start = venuebox::sync::status(&state.store, &state.sync, state.clock.now()).await?;
    let (events_total, captures_total) = (start.events_pending, start.captures_pending);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout_secs);
    let lock = venuebox::sync::try_lock(&dir.data_dir)?;
    let stop = CancellationToken::new();
    // The same lanes `serve` runs (backoff, probes, permanent
    // errors), here until everything is sent.
    let lanes = match (lock.is_some(), config) {
        (true, Some(c)) => {
            let syncer = venuebox::sync::Syncer::new(
                state.store.clone(),
                state.media.clone(),
                state.clock.clone(),
                c,
                state.sync.clone(),
                Default::default(),
                dir.data_dir.clone(),
            )
            .map_err(anyhow::Error::msg)?;
            Some(tokio::spawn(Arc::new(syncer).run(stop.clone())))
        }
        (true, None) => {
            bail!("no bucket given: pass --sync s3://BUCKET/PREFIX (or set VENUEBOX_SYNC)")
        }
        (false, _) => {
            state.store.sync_request(state.clock.now()).await?;
            eprintln!("a running venuebox serve syncs this box; asked it to sync now");
            None
        }
    };
    let outcome = loop {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let s = venuebox::sync::status(&state.store, &state.sync, state.clock.now()).await?;
        eprint!(
            "\r{}  {}   ",
            progress(events_total, s.events_pending, "events"),
            progress(captures_total, s.captures_pending, "captures")
        );
        let _ = std::io::stderr().flush();
        if s.events_pending == 0 && s.captures_pending == 0 && s.files_pending == 0 {
            eprintln!("\nall synced");
            break Ok(());
        }
        // Our own lanes say so live (a stored error may be an old
        // one they are retrying); a running box's only in the store.
        let stopped = match &lanes {
            Some(_) => {
                let live = state.sync.live();
                use venuebox::sync::LaneStatus::Error;
                live.events.state == Error || live.captures.state == Error
            }
            None => s.permanent_error(),
        };
        if stopped {
            eprintln!();
            let e = s.last_error.unwrap_or_default();
            break Err(anyhow::anyhow!("sync is stopped by a permanent error: {e}"));
        }
        if std::time::Instant::now() > deadline {
            eprintln!();
            let (events, captures) = (s.events_pending, s.captures_pending);
            break Err(anyhow::anyhow!("not caught up after {timeout_secs} s: {events} events and {captures} captures pending; see venuebox sync status"));
        }
    };
    stop.cancel();
    if let Some(l) = lanes {
        let _ = l.await;
    }
    outcome
}

fn ago(now: i64, at: &Option<String>) -> String {
    match at.as_deref().map(parse_rfc3339) {
        Some(Ok(t)) => format!("{} ({}s ago)", at.as_deref().unwrap_or_default(), (now - t) / 1000),
        _ => "never".into(),
    }
}

fn mib(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

fn print_status(s: &venuebox::sync::SyncStatus, now: i64) {
    println!("sync            {}", s.state);
    println!(
        "events pending  {} ({}), seq {} of {}",
        s.events_pending,
        mib(s.event_bytes_pending),
        s.cursor,
        s.last_seq
    );
    println!("captures        {} pending ({})", s.captures_pending, mib(s.capture_bytes_pending));
    println!("files pending   {}", s.files_pending);
    println!("lag             {:.1} s", s.lag_seconds);
    println!("last success    {}", ago(now, &s.last_success_at));
    match &s.last_error {
        Some(e) => println!(
            "last error      [{}] {} at {}",
            s.last_error_kind.as_deref().unwrap_or("?"),
            e,
            s.last_error_at.as_deref().unwrap_or("?")
        ),
        None => println!("last error      none"),
    }
    println!(
        "manifest        updates {}",
        if s.manifest_updates_frozen { "FROZEN by an admin" } else { "applied when newer" }
    );
}

fn progress(total: i64, left: i64, what: &str) -> String {
    let done = (total - left).max(0);
    let width = 30;
    let filled = if total > 0 { (done * width / total) as usize } else { width as usize };
    format!("[{}{}] {done}/{total} {what}", "#".repeat(filled), " ".repeat(width as usize - filled))
}

#[derive(Subcommand)]
pub enum PayoutsCommand {
    /// Write one statement per creator (JSON and CSV) under DATA_DIR/payouts/.
    Run {
        #[command(flatten)]
        dir: DataDir,
    },
}

pub async fn payouts(cmd: PayoutsCommand) -> Result<()> {
    match cmd {
        PayoutsCommand::Run { dir } => {
            let state = server::open(&Config::new(&dir.data_dir), Clock::system())?;
            let (statements, files) = venuebox::sync::payouts::run_statements(
                &state.store,
                &dir.data_dir,
                state.clock.now(),
            )
            .await?;
            for s in &statements {
                println!(
                    "{:<16} {:<24} payout {}",
                    s.creator,
                    s.name,
                    venuebox::domain::money::format_money(s.totals.payout_minor, &s.currency)
                );
            }
            println!(
                "wrote {} files under {} (queued for the bucket when sync is on)",
                files.len(),
                dir.data_dir.join("payouts").display()
            );
            Ok(())
        }
    }
}
