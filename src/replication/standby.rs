//! The follower's side of a link: takes the leader's epoch, installs a
//! snapshot when sent one (reporting first what it took alone, when it
//! is a fenced old primary), applies the frames of log rows that have
//! arrived in one transaction and acknowledges the newest once it is on
//! disk.

use super::frame::{self, Frame, Hello, SnapshotHead};
use super::link::Stream;
use super::{LinkError, Replication};
use crate::store::replica::LogRow;
use crate::store::replica::Role;
use crate::store::Store;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// What the reader hands the applier, in the order the frames came.
enum Work {
    Rows(Vec<LogRow>),
    Ping(i64),
    /// Everything before it is applied: answers the seq reached.
    Drain(tokio::sync::oneshot::Sender<i64>),
    /// A snapshot was installed: the log goes on from this seq.
    Reset(i64),
}

/// Frames queued between the reader and the applier (backpressure beyond).
const QUEUED: usize = 64;

/// Follows the leader: a reader takes frames off the link while an
/// applier applies what has arrived, every frame queued meanwhile in the
/// same transaction (one fsync for all of them), and acknowledges the
/// newest seq once it is on disk. Under load the standby keeps up with
/// the primary's group commit instead of paying one fsync per frame.
pub async fn follow(
    stream: &mut Stream,
    store: &Store,
    repl: &Arc<Replication>,
    leader: &Hello,
    me: &Hello,
    stop: &CancellationToken,
) -> Result<(), LinkError> {
    match store.replica().role() {
        Role::Satellite if leader.epoch > store.replica().epoch() => {
            store.become_satellite(leader.epoch).await?
        }
        Role::Satellite => {}
        Role::Standby if leader.epoch <= store.replica().epoch() => {}
        _ => store.become_standby(leader.epoch).await?,
    }
    let (mut rd, wr) = tokio::io::split(stream);
    let wr = tokio::sync::Mutex::new(wr);
    let (tx, rx) = tokio::sync::mpsc::channel(QUEUED);
    let reader = async {
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => {
                    let bye = Frame::Bye("the box is shutting down".into());
                    let _ = frame::write(&mut *wr.lock().await, &bye).await;
                    return Ok(());
                }
                f = tokio::time::timeout(repl.config.silence, frame::read(&mut rd)) => f,
            };
            let Ok(f) = next else {
                return Err(LinkError::Silent(repl.config.silence));
            };
            if !store.replica().role().follows() {
                let bye = Frame::Bye("this box was promoted".into());
                let _ = frame::write(&mut *wr.lock().await, &bye).await;
                return Err(LinkError::RoleChanged);
            }
            repl.contact();
            let work = match f? {
                Frame::Rows(rows) => Work::Rows(rows),
                Frame::Ping(leader_seq) => Work::Ping(leader_seq),
                Frame::SnapshotHead(head) => {
                    let (done, applied) = tokio::sync::oneshot::channel();
                    if tx.send(Work::Drain(done)).await.is_err() || applied.await.is_err() {
                        return Ok(());
                    }
                    let epoch = me.seq_epoch.unwrap_or(me.epoch);
                    let seq = receive_snapshot(&mut rd, &wr, store, repl, &head, epoch).await?;
                    repl.update(|s| s.snapshots += 1);
                    Work::Reset(seq)
                }
                Frame::Bye(why) => return Err(LinkError::Refused(why)),
                other => return Err(LinkError::Refused(format!("unexpected frame {other:?}"))),
            };
            if tx.send(work).await.is_err() {
                return Ok(());
            }
        }
    };
    let applier = apply(rx, &wr, store, repl, me.seq);
    tokio::select! {
        r = reader => r,
        r = applier => r,
    }
}

/// The applier: everything queued goes in one transaction, then one ack.
async fn apply<W: tokio::io::AsyncWrite + Unpin>(
    mut rx: tokio::sync::mpsc::Receiver<Work>,
    wr: &tokio::sync::Mutex<W>,
    store: &Store,
    repl: &Replication,
    mut last: i64,
) -> Result<(), LinkError> {
    let mut held: Option<Work> = None;
    let mut receipts = Receipts::default();
    loop {
        let work = match held.take() {
            Some(w) => w,
            None => match rx.recv().await {
                Some(w) => w,
                None => return Ok(()),
            },
        };
        match work {
            Work::Rows(mut rows) => {
                while let Ok(more) = rx.try_recv() {
                    match more {
                        Work::Rows(r) => rows.extend(r),
                        other => {
                            held = Some(other);
                            break;
                        }
                    }
                }
                let newest = rows.last().map_or(last, |r| r.seq);
                last = store.apply_log(rows).await?;
                if store.replica().report_pending() && store.settle_report().await? {
                    tracing::info!("the primary has merged what this box took apart");
                }
                repl.update(|s| {
                    s.peer_seq = s.peer_seq.max(newest);
                    s.lag_writes = (s.peer_seq - last).max(0);
                });
            }
            Work::Ping(leader_seq) => {
                repl.update(|s| {
                    s.peer_seq = leader_seq;
                    s.lag_writes = (leader_seq - last).max(0);
                });
            }
            Work::Drain(done) => {
                let _ = done.send(last);
                continue;
            }
            Work::Reset(seq) => last = seq,
        }
        frame::write(&mut *wr.lock().await, &Frame::Ack(last)).await?;
        receipts.tell(wr, store).await?;
    }
}

/// A satellite's printed receipts, told to the primary (which marks them
/// done in its log) at most twice a second; each told once per link.
#[derive(Default)]
struct Receipts {
    told: std::collections::HashSet<(i64, i64)>,
    last: Option<std::time::Instant>,
}

impl Receipts {
    async fn tell<W: tokio::io::AsyncWrite + Unpin>(
        &mut self,
        wr: &tokio::sync::Mutex<W>,
        store: &Store,
    ) -> Result<(), LinkError> {
        use crate::store::replica::Role;
        let due = self.last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_millis(500));
        if store.replica().role() != Role::Satellite || !due {
            return Ok(());
        }
        self.last = Some(std::time::Instant::now());
        store.forget_printed().await?;
        let printed: Vec<_> = store
            .printed_here()
            .await?
            .into_iter()
            .filter(|p| self.told.insert((p.job_id, p.created_at)))
            .collect();
        if printed.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_vec(&printed).expect("printed receipts serialize");
        frame::write(&mut *wr.lock().await, &Frame::Printed(body)).await?;
        Ok(())
    }
}

/// Receives the snapshot's chunks into a file, checks its length and
/// SHA-256, reports what this box took alone (when told it diverged),
/// and installs it. Returns the seq it covers. `my_epoch` is the epoch
/// of this box's own newest write (the one it took them under, even when
/// a phone has fenced it to the newer epoch since).
async fn receive_snapshot<R: tokio::io::AsyncRead + Unpin, W: tokio::io::AsyncWrite + Unpin>(
    rd: &mut R,
    wr: &tokio::sync::Mutex<W>,
    store: &Store,
    repl: &Replication,
    head: &SnapshotHead,
    my_epoch: i64,
) -> Result<i64, LinkError> {
    use sha2::{Digest, Sha256};
    let dir = repl.config.data_dir.join("replication");
    let io = |e: std::io::Error| LinkError::Refused(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(&dir).map_err(io)?;
    let path = dir.join("incoming.db");
    let _ = std::fs::remove_file(&path);
    let mut file = tokio::fs::File::create(&path).await.map_err(io)?;
    let (mut got, mut hasher) = (0u64, Sha256::new());
    while got < head.bytes {
        let chunk = match tokio::time::timeout(repl.config.silence, frame::read(rd)).await {
            Err(_) => return Err(LinkError::Silent(repl.config.silence)),
            Ok(Ok(Frame::Chunk(c))) => c,
            Ok(Ok(other)) => {
                return Err(LinkError::Refused(format!("expected a snapshot chunk, got {other:?}")))
            }
            Ok(Err(e)) => return Err(e.into()),
        };
        got += chunk.len() as u64;
        if got > head.bytes {
            return Err(LinkError::Refused("the snapshot is longer than announced".into()));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(io)?;
        repl.contact();
    }
    file.sync_all().await.map_err(io)?;
    drop(file);
    if crate::secrets::hex(&hasher.finalize()) != head.sha256 {
        return Err(LinkError::Refused("the snapshot does not match its SHA-256".into()));
    }
    let mut sent = None;
    if head.diverged {
        let mut report = super::report::collect(store, &path, my_epoch).await?;
        // A report sent before and not seen merged yet goes again (its
        // writes are no longer in this box's rows: a snapshot replaced them).
        if let Some(before) = store.pending_report().await? {
            report.absorb(before);
        }
        tracing::warn!(
            checkins = report.checkins.len(),
            orders = report.orders.len(),
            "this box took writes the new primary never saw: reporting them before following it"
        );
        frame::write(
            &mut *wr.lock().await,
            &Frame::Report(serde_json::to_vec(&report).expect("a report serializes")),
        )
        .await?;
        sent = Some(report);
    }
    let seq = store.install_snapshot(path.clone(), sent).await?;
    let _ = std::fs::remove_file(&path);
    tracing::info!(seq, bytes = head.bytes, "installed the primary's snapshot");
    Ok(seq)
}
