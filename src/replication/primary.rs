//! The leader's side of a link: brings the standby to its position (from
//! the log, or a snapshot when the log no longer reaches back or the
//! standby holds writes this box never saw), then ships each committed
//! batch as it commits. The standby's acknowledgements release the
//! answers the store holds; an answer that waited `ack_bound` releases
//! them all and the box goes on alone until the standby has caught up.

use super::frame::{self, Frame, Hello, SnapshotHead};
use super::link::Stream;
use super::{LinkError, Replication};
use crate::store::replica::Role;
use crate::store::Store;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

/// Rows per frame, and bytes (at least one row per frame).
const ROWS_PER_FRAME: usize = 256;
const BYTES_PER_FRAME: usize = 1 << 20;
/// Snapshot chunk size.
const CHUNK: usize = 256 << 10;
/// Rows shipped and not yet acknowledged before the leader waits.
const IN_FLIGHT: i64 = 4096;

/// Whether the follower's position is on this box's history, and if not,
/// whether it holds writes this box never saw (a fenced old primary's).
async fn start_from(store: &Store, peer: &Hello) -> Result<(bool, bool), LinkError> {
    // A satellite's decisions apart are not in any log: it reports them
    // against a fresh snapshot, like a fenced old primary.
    if peer.apart {
        return Ok((false, true));
    }
    let st = store.replica_state().await?;
    let diverged = peer.seq > st.seq
        || (st.epoch_start.is_some_and(|s| peer.seq > s) && peer.seq_epoch < Some(st.epoch))
        || matches!(
            (store.log_epoch_at(peer.seq).await?, peer.seq_epoch),
            (Some(mine), Some(theirs)) if mine != theirs
        );
    let on_history = peer.seq > 0 && !diverged && store.log_epoch_at(peer.seq).await?.is_some();
    Ok((on_history, diverged))
}

/// Who is led: the standby (its acknowledgements release the answers the
/// store holds, and it is the pair's status), or a satellite (never waited
/// for; its own line in the status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Follower {
    Standby,
    Satellite,
}

/// Leads the link until it fails, the box stops leading, or `stop`.
pub async fn lead(
    stream: &mut Stream,
    store: &Store,
    repl: &Arc<Replication>,
    peer: &Hello,
    follower: Follower,
    stop: &CancellationToken,
) -> Result<(), LinkError> {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let acked = Arc::new(AtomicI64::new(0));
    let last_heard = Arc::new(std::sync::Mutex::new(Instant::now()));
    let standby = follower == Follower::Standby;
    if standby {
        repl.update(|s| {
            s.leading = true;
            s.peer_seq = peer.seq;
        });
    } else {
        repl.satellite(&peer.node, |s| s.seq = peer.seq);
    }
    let (on_history, diverged) = start_from(store, peer).await?;
    // A satellite back from apart has sold out of its escrow: nothing it
    // was lent comes home before its report is merged.
    let report_merged = Arc::new(AtomicBool::new(!peer.apart));
    // The reader: acknowledgements and reports.
    let read_side = {
        let (store, repl, acked, last_heard) =
            (store.clone(), repl.clone(), acked.clone(), last_heard.clone());
        let report_merged = report_merged.clone();
        let node = peer.node.clone();
        async move {
            loop {
                match frame::read(&mut reader).await? {
                    Frame::Ack(seq) if !standby => {
                        *last_heard.lock().expect("clock") = Instant::now();
                        acked.fetch_max(seq, Ordering::AcqRel);
                        let now = repl.clock.now();
                        repl.satellite(&node, |s| {
                            s.seq = seq;
                            s.last_contact_ms = Some(now);
                        });
                    }
                    Frame::Ack(seq) => {
                        *last_heard.lock().expect("clock") = Instant::now();
                        repl.contact();
                        acked.fetch_max(seq, Ordering::AcqRel);
                        store.replica().acknowledged(seq);
                        let committed = *store.replica().committed().borrow();
                        if seq >= committed && !store.replica().in_sync() {
                            store.replica().wait_for_standby();
                            repl.update(|s| {
                                s.in_sync = true;
                                s.alone_since_ms = None;
                            });
                            tracing::info!(
                                seq,
                                "the standby has caught up: answers wait for it again"
                            );
                        }
                        repl.update(|s| {
                            s.peer_seq = seq;
                            s.lag_writes = (committed - seq).max(0);
                        });
                    }
                    Frame::Report(body) => {
                        *last_heard.lock().expect("clock") = Instant::now();
                        super::report::merge(&store, &repl.clock, &body).await?;
                        report_merged.store(true, Ordering::Release);
                    }
                    Frame::Printed(body) if !standby => {
                        let printed = serde_json::from_slice(&body).map_err(|e| {
                            LinkError::Refused(format!("a malformed list of printed receipts: {e}"))
                        })?;
                        store.printed_at_satellite(printed).await?;
                    }
                    Frame::Bye(why) => return Err(LinkError::Refused(why)),
                    other => return Err(LinkError::Refused(format!("unexpected frame {other:?}"))),
                }
            }
        }
    };
    // The watchdog: the door never waits longer than the bound.
    let watchdog = {
        let (store, repl, last_heard) = (store.clone(), repl.clone(), last_heard.clone());
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if !standby {
                    let silent = last_heard.lock().expect("clock").elapsed();
                    if silent > repl.config.silence {
                        return Err::<(), _>(LinkError::Silent(silent));
                    }
                    if store.replica().role() != Role::Primary {
                        return Err(LinkError::RoleChanged);
                    }
                    continue;
                }
                let waited = store.replica().oldest_wait().map(|t| t.elapsed());
                if waited.is_some_and(|w| w > repl.config.ack_bound) {
                    store.replica().go_on_alone();
                    let now = repl.clock.now();
                    repl.update(|s| {
                        s.in_sync = false;
                        s.alone_since_ms.get_or_insert(now);
                    });
                    tracing::warn!(bound = ?repl.config.ack_bound, "the standby did not acknowledge in time: going on alone");
                }
                repl.update(|s| s.lag_ms = waited.map_or(0, |w| w.as_millis() as i64));
                let silent = last_heard.lock().expect("clock").elapsed();
                if silent > repl.config.silence {
                    return Err::<(), _>(LinkError::Silent(silent));
                }
                if store.replica().role() != Role::Primary {
                    return Err(LinkError::RoleChanged);
                }
            }
        }
    };
    let ship = async {
        let mut sent = if on_history {
            peer.seq
        } else {
            let seq = send_snapshot(&mut writer, store, repl, diverged, &peer.node).await?;
            if standby {
                repl.update(|s| s.snapshots += 1);
            }
            seq
        };
        let mut committed = store.replica().committed();
        let mut last_send = Instant::now();
        // Commits of this process are in memory before they are announced;
        // another process's (a CLI command's) only in the log, looked at
        // when the periodic wake-up fires.
        let mut from_log = true;
        loop {
            if stop.is_cancelled() {
                let _ =
                    frame::write(&mut writer, &Frame::Bye("the box is shutting down".into())).await;
                return Ok(());
            }
            if sent - acked.load(Ordering::Acquire) < IN_FLIGHT {
                let rows =
                    match store.log_after(sent, ROWS_PER_FRAME, BYTES_PER_FRAME, from_log).await {
                        Ok(rows) => rows,
                        // Trimmed under us (the standby fell far behind): start over.
                        Err(e) => return Err(LinkError::Store(e)),
                    };
                from_log = false;
                if let Some(last) = rows.last() {
                    sent = last.seq;
                    frame::write(&mut writer, &Frame::Rows(rows)).await?;
                    last_send = Instant::now();
                    continue;
                }
            }
            if last_send.elapsed() > Duration::from_millis(250) {
                frame::write(&mut writer, &Frame::Ping(sent)).await?;
                last_send = Instant::now();
            }
            // Woken by a commit here, or every 100 ms for a write another
            // process (a CLI command) committed.
            tokio::select! {
                _ = committed.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => from_log = true,
                _ = stop.cancelled() => {}
            }
        }
    };
    let keeper = async {
        if standby {
            return std::future::pending().await;
        }
        keep_escrow(store, repl, &peer.node, &acked, &report_merged).await
    };
    tokio::select! {
        r = read_side => r,
        r = watchdog => r,
        r = ship => r,
        r = keeper => r,
    }
}

/// How often the keeper looks at a satellite's escrow.
const KEEPER_EVERY: Duration = Duration::from_millis(200);

/// The escrow keeper for one satellite on its link (ARCHITECTURE.md,
/// "Satellites: escrow"): lends by the rules, and brings units taken back
/// home only once the satellite has acknowledged a position at or after
/// the commit that took them (until then it might sell them, cut off).
async fn keep_escrow(
    store: &Store,
    repl: &Replication,
    node: &str,
    acked: &AtomicI64,
    report_merged: &AtomicBool,
) -> Result<(), LinkError> {
    // The log position the units now on their way back were taken at.
    let mut taken_at: Option<i64> = None;
    loop {
        let seen = acked.load(Ordering::Acquire);
        let home = report_merged.load(Ordering::Acquire) && taken_at.is_some_and(|t| seen >= t);
        // A keeper that cannot do its work says so and tries again: the
        // link (and the log the satellite follows) does not depend on it.
        let step = match store.keep_escrow(node.to_string(), home, repl.clock.now()).await {
            Ok(step) => step,
            Err(e) => {
                tracing::warn!(satellite = node, error = %e, "cannot keep the satellite's escrow");
                tokio::time::sleep(KEEPER_EVERY).await;
                continue;
            }
        };
        let head = *store.replica().committed().borrow();
        taken_at = match (step.recalled, step.reclaimed, taken_at) {
            (false, _, _) => None,
            (true, true, _) | (true, false, None) => Some(head),
            (true, false, Some(t)) => Some(if home { head } else { t }),
        };
        // One run per interval, whatever the door commits: a read, and a
        // write only when a loan changes.
        tokio::time::sleep(KEEPER_EVERY).await;
    }
}

/// Sends a snapshot of the database; returns the seq it covers.
async fn send_snapshot<W: tokio::io::AsyncWrite + Unpin>(
    writer: &mut W,
    store: &Store,
    repl: &Replication,
    diverged: bool,
    follower: &str,
) -> Result<i64, LinkError> {
    use sha2::{Digest, Sha256};
    let dir = repl.config.data_dir.join("replication");
    std::fs::create_dir_all(&dir)
        .map_err(|e| LinkError::Refused(format!("{}: {e}", dir.display())))?;
    // One file per follower: a satellite's snapshot and the standby's may
    // be made at once.
    let safe: String =
        follower.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(64).collect();
    let path = dir.join(format!("outgoing-{safe}.db"));
    let snap = store.snapshot(path.clone()).await?;
    let io = |e: std::io::Error| LinkError::Refused(format!("snapshot {}: {e}", path.display()));
    let mut file = tokio::fs::File::open(&path).await.map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; CHUNK];
    loop {
        let n = file.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let bytes = file.metadata().await.map_err(io)?.len();
    let head = SnapshotHead {
        seq: snap.seq,
        epoch: snap.epoch,
        bytes,
        sha256: crate::secrets::hex(&hasher.finalize()),
        diverged,
    };
    tracing::info!(seq = head.seq, bytes, diverged, "sending the standby a snapshot");
    frame::write(writer, &Frame::SnapshotHead(head)).await?;
    let mut file = tokio::fs::File::open(&path).await.map_err(io)?;
    loop {
        let n = file.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        frame::write(writer, &Frame::Chunk(buf[..n].to_vec())).await?;
    }
    let _ = std::fs::remove_file(&path);
    Ok(snap.seq)
}

/// Keeps the log from growing without bound: rows more than `keep_rows`
/// behind the newest are forgotten every few seconds (a standby that far
/// behind gets a snapshot instead).
pub async fn trim(store: Store, repl: Arc<Replication>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        if store.replica().role() != Role::Primary {
            continue;
        }
        let upto = *store.replica().committed().borrow() - repl.config.keep_rows;
        if upto > 0 {
            if let Err(e) = store.trim_log(upto).await {
                tracing::warn!(error = %e, "cannot trim the replication log");
            }
        }
    }
}
