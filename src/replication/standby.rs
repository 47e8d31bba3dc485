//! The follower's side of a link: takes the leader's epoch, installs a
//! snapshot when sent one (reporting first what it took alone, when it
//! is a fenced old primary), applies each frame of log rows in one
//! transaction and acknowledges it once it is on disk.

use super::frame::{self, Frame, Hello, SnapshotHead};
use super::link::Stream;
use super::{LinkError, Replication};
use crate::store::replica::Role;
use crate::store::Store;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

pub async fn follow(
    stream: &mut Stream,
    store: &Store,
    repl: &Arc<Replication>,
    leader: &Hello,
    me: &Hello,
    stop: &CancellationToken,
) -> Result<(), LinkError> {
    if leader.epoch > store.replica().epoch() || store.replica().role() != Role::Standby {
        store.become_standby(leader.epoch).await?;
    }
    let mut last = me.seq;
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => {
                let _ = frame::write(stream, &Frame::Bye("the box is shutting down".into())).await;
                return Ok(());
            }
            f = tokio::time::timeout(repl.config.silence, frame::read(stream)) => f,
        };
        let Ok(f) = next else {
            return Err(LinkError::Silent(repl.config.silence));
        };
        if store.replica().role() != Role::Standby {
            let _ = frame::write(stream, &Frame::Bye("this box was promoted".into())).await;
            return Err(LinkError::RoleChanged);
        }
        repl.contact();
        match f? {
            Frame::Rows(rows) => {
                let newest = rows.last().map_or(last, |r| r.seq);
                last = store.apply_log(rows).await?;
                repl.update(|s| {
                    s.peer_seq = s.peer_seq.max(newest);
                    s.lag_writes = (s.peer_seq - last).max(0);
                });
                frame::write(stream, &Frame::Ack(last)).await?;
            }
            Frame::Ping(leader_seq) => {
                repl.update(|s| {
                    s.peer_seq = leader_seq;
                    s.lag_writes = (leader_seq - last).max(0);
                });
                frame::write(stream, &Frame::Ack(last)).await?;
            }
            Frame::SnapshotHead(head) => {
                last =
                    receive_snapshot(stream, store, repl, &head, me.seq_epoch.unwrap_or(me.epoch))
                        .await?;
                repl.update(|s| s.snapshots += 1);
                frame::write(stream, &Frame::Ack(last)).await?;
            }
            Frame::Bye(why) => return Err(LinkError::Refused(why)),
            other => return Err(LinkError::Refused(format!("unexpected frame {other:?}"))),
        }
    }
}

/// Receives the snapshot's chunks into a file, checks its length and
/// SHA-256, reports what this box took alone (when told it diverged),
/// and installs it. Returns the seq it covers. `my_epoch` is the epoch
/// of this box's own newest write (the one it took them under, even when
/// a phone has fenced it to the newer epoch since).
async fn receive_snapshot(
    stream: &mut Stream,
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
        let chunk = match tokio::time::timeout(repl.config.silence, frame::read(stream)).await {
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
    if head.diverged {
        let report = super::report::collect(store, &path, my_epoch).await?;
        tracing::warn!(
            checkins = report.checkins.len(),
            orders = report.orders.len(),
            "this box took writes the new primary never saw: reporting them before following it"
        );
        frame::write(
            stream,
            &Frame::Report(serde_json::to_vec(&report).expect("a report serializes")),
        )
        .await?;
    }
    let seq = store.install_snapshot(path.clone()).await?;
    let _ = std::fs::remove_file(&path);
    tracing::info!(seq, bytes = head.bytes, "installed the primary's snapshot");
    Ok(seq)
}
