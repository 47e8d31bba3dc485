//! The WAL checkpointer: copies committed pages from the WAL back into the
//! database on a thread of its own, so no answer waits for it.
//!
//! SQLite's default checkpoints inside the COMMIT that crosses 1,000 WAL
//! pages: that caller (and everyone queued behind the single writer) waits
//! for thousands of page writes and an fsync of the database file. With a
//! standby, both boxes do it on the door's path, and about one answer in a
//! hundred paid for it: the p99. Here the writer's connection never
//! checkpoints (`wal_autocheckpoint=0`) and this thread runs a PASSIVE
//! checkpoint (it never blocks the writer or the readers) every
//! `INTERVAL`. Durability is unchanged: a commit is durable once its WAL
//! frames are synced, checkpointed or not.

use super::StoreError;
use rusqlite::Connection;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

const INTERVAL: Duration = Duration::from_millis(250);

/// Stops the thread when the last store handle drops it.
pub(super) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

/// Makes `writer` leave checkpoints to the thread this starts.
pub(super) fn spawn(writer: &Connection, path: &Path) -> Result<Checkpointer, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    writer.pragma_update(None, "wal_autocheckpoint", 0)?;
    let (stop, rx) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("venuebox-checkpoint".into())
        .spawn(move || run(conn, rx))
        .map_err(StoreError::io("cannot start the checkpoint thread"))?;
    Ok(Checkpointer { _stop: stop })
}

fn run(conn: Connection, stop: mpsc::Receiver<()>) {
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(INTERVAL) {
        // (busy, frames in the WAL, frames copied back); nothing to do
        // costs a read of the WAL index, no fsync.
        let r = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        if let Err(e) = r {
            tracing::warn!(error = %e, "WAL checkpoint failed; the next one tries again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_never_checkpoints_and_the_thread_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let w = Connection::open(&path).unwrap();
        w.pragma_update(None, "journal_mode", "WAL").unwrap();
        w.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        let cp = spawn(&w, &path).unwrap();
        let wal = || std::fs::metadata(dir.path().join("t.db-wal")).map(|m| m.len()).unwrap_or(0);
        let db = || std::fs::metadata(&path).unwrap().len();
        let before = db();
        // Far past the default 1,000 pages: the writer alone would have
        // checkpointed (and grown the database file) by now.
        for _ in 0..1500 {
            w.execute("INSERT INTO t VALUES (zeroblob(4000))", []).unwrap();
        }
        assert!(wal() > 1500 * 4096, "every page is still in the WAL");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while db() < before + 1500 * 4000 {
            assert!(std::time::Instant::now() < deadline, "the thread never checkpointed");
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(cp);
        let n: i64 = w.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1500);
    }
}
