//! Persistence: one SQLite file in the data directory, WAL mode with
//! `synchronous=FULL`, embedded migrations, a single writer thread with
//! group commit, a checkpoint thread (`checkpoint.rs`), a pool of read-only
//! connections, and the outbox.
//!
//! Only this module speaks SQL. Callers get typed methods; every mutation
//! that the cloud must learn about appends its outbox row inside the same
//! job, hence the same transaction.

mod audit;
pub mod backup;
pub mod captures;
mod changeset;
mod checkpoint;
pub mod closing;
pub mod drops;
pub mod escrow;
pub mod identity;
mod manifests;
mod migrate;
mod orders;
pub mod outbox;
pub mod pairing;
pub mod payouts;
pub mod pretix;
pub mod printing;
mod readers;
pub mod replica;
pub mod sales;
pub mod scans;
pub mod sessions;
pub mod sync;
pub mod takeover;
pub mod tickets;
mod writer;

pub use identity::BoxIdentity;
pub use manifests::ImportOutcome;
pub use writer::WriteCtx;

use crate::domain::error_code::ErrorCode;
use crate::domain::manifest::{EventSnapshot, ManifestError};
use crate::metrics::Metrics;
use readers::ReadPool;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;
use writer::{EventCell, Job};

pub const DB_FILE: &str = "venuebox.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A file the store needs (identity, data directory, a written
    /// statement): what it was doing, and the system's error.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("box identity: {0}")]
    Identity(String),
    #[error("the database has schema version {found}, newer than this venuebox knows ({known}): install a newer venuebox, or restore a backup made by this version")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("the write could not be made durable ({0}); nothing from it was kept: check the disk and retry")]
    Commit(String),
    #[error("the store is shutting down")]
    Closed,
    /// A write on a box that is not the primary (the standby, or an old
    /// primary a newer epoch fenced).
    #[error("this box follows the primary (it is its standby or a satellite) and takes no writes of its own: do this on the primary box (a pairing code made there works at every box)")]
    NotPrimary,
    #[error("internal store error: {0}")]
    Internal(String),
    #[error("no event is loaded on this box: import the event manifest first (venuebox manifest import FILE)")]
    NoEvent,
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("unknown gate '{gate}': this event's gates are {known}")]
    UnknownGate { gate: String, known: String },
    #[error(
        "nonce '{0}' was already used for a different scan: make a fresh nonce for every scan"
    )]
    NonceConflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A sale, hold or claim the rules refuse (sold out, code used up...).
    #[error("{message}")]
    Refused { code: ErrorCode, message: String },
    /// Input the store could only judge against its data (an unknown SKU,
    /// a tender that does not cover the total...).
    #[error("{message}")]
    Invalid { code: ErrorCode, message: String },
}

impl StoreError {
    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
        let what = what.into();
        move |source| StoreError::Io { what, source }
    }

    pub fn refused(code: ErrorCode, message: impl Into<String>) -> StoreError {
        StoreError::Refused { code, message: message.into() }
    }
    pub fn invalid(code: ErrorCode, message: impl Into<String>) -> StoreError {
        StoreError::Invalid { code, message: message.into() }
    }
}

pub struct StoreOptions {
    pub read_connections: usize,
    /// Jobs that may wait for the writer before callers wait to enqueue.
    pub write_queue: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { read_connections: 4, write_queue: 4096 }
    }
}

/// A cheap, cloneable handle to the box's database.
#[derive(Clone)]
pub struct Store {
    /// Jobs for the writer thread; when the last handle drops, it stops.
    jobs: mpsc::Sender<Box<dyn Job>>,
    readers: Arc<ReadPool>,
    event: EventCell,
    identity: Arc<BoxIdentity>,
    path: Arc<PathBuf>,
    replica: Arc<replica::Shared>,
    /// Checkpoints the WAL off the writer's path until the last handle goes.
    _checkpoint: Arc<checkpoint::Checkpointer>,
}

/// Settings every connection gets. `synchronous=FULL` in WAL mode makes
/// each COMMIT fsync the WAL: the line between "acknowledged" and "lost".
fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // The writer's jobs and a standby's applied changes (one statement per
    // table and change shape) together use more than rusqlite's default
    // 16; a statement pushed out is parsed again on its next use.
    conn.set_prepared_statement_cache_capacity(256);
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the data directory's database, applies
    /// migrations, loads the current event and starts the writer.
    pub fn open(
        dir: &Path,
        metrics: Arc<Metrics>,
        opts: StoreOptions,
    ) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(StoreError::io(format!("cannot create data directory {}", dir.display())))?;
        // Private whoever made it: 0700, and the database 0600 (SQLite
        // gives its -wal and -shm files the database's permissions).
        if let Err(e) = crate::secrets::make_private(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot make the data directory private (0700): others on this machine may read it");
        }
        let identity = Arc::new(BoxIdentity::load_or_create(dir)?);
        let path = dir.join(DB_FILE);
        let mut conn = Connection::open(&path)?;
        for f in [DB_FILE, "venuebox.db-wal", "venuebox.db-shm"] {
            let p = dir.join(f);
            if p.exists() {
                crate::secrets::make_private(&p)
                    .map_err(StoreError::io(format!("cannot make {} private", p.display())))?;
            }
        }
        configure(&conn)?;
        migrate::apply(&mut conn)?;
        let event: EventCell = Arc::new(RwLock::new(manifests::load_current(&conn, &identity)?));
        let readers = Arc::new(ReadPool::open(path.clone(), opts.read_connections)?);
        let replica = Arc::new(replica::Shared::load(&conn)?);
        let checkpoint = Arc::new(checkpoint::spawn(&conn, &path)?);
        let (jobs, _thread) = writer::spawn(
            conn,
            identity.clone(),
            event.clone(),
            metrics,
            replica.clone(),
            opts.write_queue,
        );
        Ok(Store {
            jobs,
            readers,
            event,
            identity,
            path: Arc::new(path),
            replica,
            _checkpoint: checkpoint,
        })
    }

    pub fn box_id(&self) -> &str {
        &self.identity.box_id
    }

    pub fn identity(&self) -> &BoxIdentity {
        &self.identity
    }

    pub fn db_path(&self) -> &Path {
        &self.path
    }

    /// The event currently loaded, if any.
    pub fn event(&self) -> Option<Arc<EventSnapshot>> {
        self.event.read().expect("event lock").clone()
    }

    /// Runs `f` in the writer's next batch and returns after it committed.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (job, rx) = writer::job(f, writer::Kind::Own);
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// The same for the writes a standby takes: the primary's changes and
    /// its own role and position (`replica`).
    pub(crate) async fn write_replicated<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (job, rx) = writer::job(f, writer::Kind::Replicated);
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// The same for what a satellite decides while cut off from the
    /// primary (a primary takes these too; a standby does not).
    pub(crate) async fn write_apart<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (job, rx) = writer::job(f, writer::Kind::Apart);
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Returns once the writer thread has run an empty job: proof it is
    /// alive and not stuck (the systemd watchdog pings only then).
    pub async fn writer_alive(&self) -> Result<(), StoreError> {
        self.write(|_| Ok(())).await
    }

    /// Fault injection for the watchdog test (`serve
    /// --fault-stall-writer-after`): blocks the writer thread for good.
    #[doc(hidden)]
    pub async fn stall_writer(&self) -> Result<(), StoreError> {
        self.write(|_| loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        })
        .await
    }

    /// Runs `f` on a pooled read-only connection off the async threads.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.readers.read(f).await
    }
}

#[cfg(test)]
mod rules_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn open(dir: &Path) -> (Store, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        (Store::open(dir, metrics.clone(), StoreOptions::default()).unwrap(), metrics)
    }

    fn batches(m: &Metrics) -> u64 {
        let text = m.render();
        let line =
            text.lines().find(|l| l.starts_with("venuebox_store_write_batch_size_count")).unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_writes_commit_together_and_a_failing_one_leaves_its_neighbours_intact() {
        let dir = tempfile::tempdir().unwrap();
        let (store, metrics) = open(dir.path());
        // Hold the writer so the next 99 jobs queue up behind it.
        let (started, holding) = tokio::sync::oneshot::channel();
        let blocker = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .write(move |_| {
                        let _ = started.send(());
                        std::thread::sleep(Duration::from_millis(200));
                        Ok(())
                    })
                    .await
            })
        };
        holding.await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..99i64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .write(move |ctx| {
                        ctx.conn.execute("INSERT INTO audit (at, actor, role, action, detail) VALUES (?1, 't', 'admin', 'x', '')", [i])?;
                        if i % 10 == 0 {
                            return Err(StoreError::Conflict(format!("job {i} fails")));
                        }
                        Ok(i)
                    })
                    .await
            }));
        }
        blocker.await.unwrap().unwrap();
        let mut failed = 0;
        for t in tasks {
            if t.await.unwrap().is_err() {
                failed += 1;
            }
        }
        assert_eq!(failed, 10);
        let kept: Vec<i64> = store
            .read(|c| {
                Ok(c.prepare("SELECT at FROM audit ORDER BY at")?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?)
            })
            .await
            .unwrap();
        assert_eq!(kept, (0..99).filter(|i| i % 10 != 0).collect::<Vec<_>>());
        assert!(batches(&metrics) < 20, "99 queued jobs took {} transactions", batches(&metrics));
    }

    #[tokio::test]
    async fn the_writer_commits_with_full_sync_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path());
        let (mode, sync): (String, i64) = store
            .write(|ctx| {
                let mode = ctx.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
                let sync = ctx.conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
                Ok((mode, sync))
            })
            .await
            .unwrap();
        assert_eq!((mode.as_str(), sync), ("wal", 2), "2 is FULL");
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone_and_the_writer_lives_on() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path());
        let err = store.write::<(), _>(|_| panic!("boom")).await.unwrap_err();
        assert!(matches!(err, StoreError::Internal(_)));
        assert_eq!(store.write(|_| Ok(7)).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_database_from_a_newer_venuebox_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path()));
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)", []).unwrap();
        let err = Store::open(dir.path(), Arc::default(), StoreOptions::default()).err().unwrap();
        assert!(matches!(err, StoreError::SchemaTooNew { found: 99, .. }), "{err}");
    }
}
