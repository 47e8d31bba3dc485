//! Persistence: one SQLite file in the data directory, WAL mode with
//! `synchronous=FULL`, embedded migrations, a single writer thread with
//! group commit, a pool of read-only connections, and the outbox.
//!
//! Only this module speaks SQL. Callers get typed methods; every mutation
//! that the cloud must learn about appends its outbox row inside the same
//! job, hence the same transaction.

mod audit;
pub mod identity;
mod manifests;
mod migrate;
pub mod outbox;
mod readers;
pub mod scans;
pub mod sessions;
mod writer;

pub use identity::BoxIdentity;
pub use manifests::ImportOutcome;
pub use writer::WriteCtx;

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
    #[error("{0}")]
    Io(String),
    #[error("box identity: {0}")]
    Identity(String),
    #[error("the database has schema version {found}, newer than this venuebox knows ({known}): install a newer venuebox, or restore a backup made by this version")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("the write could not be made durable ({0}); nothing from it was kept: check the disk and retry")]
    Commit(String),
    #[error("the store is shutting down")]
    Closed,
    #[error("internal store error: {0}")]
    Internal(String),
    #[error("no event is loaded on this box: import the event manifest first (venuebox manifest import FILE)")]
    NoEvent,
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("unknown gate '{gate}': this event's gates are {known}")]
    UnknownGate { gate: String, known: String },
    #[error("nonce '{0}' was already used for a different scan: make a fresh nonce for every scan")]
    NonceConflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
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
}

/// Settings every connection gets. `synchronous=FULL` in WAL mode makes
/// each COMMIT fsync the WAL: the line between "acknowledged" and "lost".
fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the data directory's database, applies
    /// migrations, loads the current event and starts the writer.
    pub fn open(dir: &Path, metrics: Arc<Metrics>, opts: StoreOptions) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(format!("cannot create data directory {}: {e}", dir.display())))?;
        let identity = Arc::new(BoxIdentity::load_or_create(dir)?);
        let path = dir.join(DB_FILE);
        let mut conn = Connection::open(&path)?;
        configure(&conn)?;
        migrate::apply(&mut conn)?;
        let event: EventCell = Arc::new(RwLock::new(manifests::load_current(&conn)?));
        let readers = Arc::new(ReadPool::open(path.clone(), opts.read_connections)?);
        let (jobs, _thread) = writer::spawn(conn, identity.box_id.clone(), event.clone(), metrics, opts.write_queue);
        Ok(Store { jobs, readers, event, identity, path: Arc::new(path) })
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
        let (job, rx) = writer::job(f);
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
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
