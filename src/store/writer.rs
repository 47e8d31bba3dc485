//! The single writer: one OS thread owns the only read-write connection and
//! takes jobs from a channel. It runs every job already waiting inside one
//! transaction (group commit), each job in its own savepoint so one failing
//! job does not undo its neighbours, commits once with `synchronous=FULL`,
//! and only then answers each caller. One fsync serves the whole batch;
//! nobody hears "done" before the disk has it.

use super::replica::{self, Role};
use super::{manifests, BoxIdentity, StoreError};
use crate::domain::manifest::EventSnapshot;
use crate::metrics::Metrics;
use rusqlite::Connection;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, RwLock};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Upper bound on jobs per transaction, so one commit's latency stays short
/// even when a burst queues thousands of scans.
const MAX_BATCH: usize = 256;

/// How long a small batch waits for more jobs while answers are held for
/// the standby, and below what size it does.
const GATHER: std::time::Duration = std::time::Duration::from_micros(100);
const GATHER_BELOW: usize = 4;

/// What a job sees: the open transaction and the state the writer owns.
pub struct WriteCtx<'a> {
    pub conn: &'a Connection,
    pub box_id: &'a str,
    /// The box's identity: its key signs walk-up tickets and receipt proofs.
    pub identity: &'a BoxIdentity,
    /// The current event. A job that replaces it (manifest import) sets it
    /// here; later jobs in the batch see the new one, and readers see it
    /// once the batch has committed.
    pub event: &'a mut Option<Arc<EventSnapshot>>,
    pub metrics: &'a Metrics,
}

/// Shared, read-mostly view of the current event for request handlers.
pub type EventCell = Arc<RwLock<Option<Arc<EventSnapshot>>>>;

pub(super) type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;

/// One caller's unit of work and the way to answer it.
pub(crate) trait Job: Send {
    /// Runs inside the batch transaction; the reply is sent after COMMIT.
    fn run(self: Box<Self>, ctx: &mut WriteCtx<'_>) -> Reply;
    /// Answers without running (no transaction could be started, or the
    /// box may not take this write).
    fn fail(self: Box<Self>, e: StoreError);
    /// Whether a box in `role` takes this job.
    fn allowed(&self, role: Role) -> bool;
}

/// Which boxes take a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A write of this box's own: the primary's alone.
    Own,
    /// A primary's change applied on a follower, or a box's own
    /// bookkeeping (role, position): every box takes it.
    Replicated,
    /// What a satellite decides while cut off from the primary
    /// (ARCHITECTURE.md, "Satellites"); a primary takes it too.
    Apart,
}

impl Kind {
    fn allowed(self, role: Role) -> bool {
        match self {
            Kind::Own => role == Role::Primary,
            Kind::Replicated => true,
            Kind::Apart => matches!(role, Role::Primary | Role::Satellite),
        }
    }
}

struct FnJob<F, T> {
    f: F,
    tx: oneshot::Sender<Result<T, StoreError>>,
    kind: Kind,
}

impl<T, F> Job for FnJob<F, T>
where
    T: Send + 'static,
    F: FnOnce(&mut WriteCtx<'_>) -> Result<T, StoreError> + Send + 'static,
{
    fn run(self: Box<Self>, ctx: &mut WriteCtx<'_>) -> Reply {
        let FnJob { f, tx, .. } = *self;
        let result = in_savepoint(ctx, f);
        Box::new(move |commit: Result<(), String>| {
            let _ = tx.send(match commit {
                Ok(()) => result,
                Err(e) => Err(StoreError::Commit(e)),
            });
        })
    }

    fn fail(self: Box<Self>, e: StoreError) {
        let _ = self.tx.send(Err(e));
    }

    fn allowed(&self, role: Role) -> bool {
        self.kind.allowed(role)
    }
}

pub(crate) fn job<T, F>(
    f: F,
    kind: Kind,
) -> (Box<dyn Job>, oneshot::Receiver<Result<T, StoreError>>)
where
    T: Send + 'static,
    F: FnOnce(&mut WriteCtx<'_>) -> Result<T, StoreError> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    (Box::new(FnJob { f, tx, kind }), rx)
}

pub(super) fn in_savepoint<T>(
    ctx: &mut WriteCtx<'_>,
    f: impl FnOnce(&mut WriteCtx<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    ctx.conn.execute_batch("SAVEPOINT job")?;
    let before = ctx.event.clone();
    let result = catch_unwind(AssertUnwindSafe(|| f(ctx)))
        .unwrap_or_else(|_| Err(StoreError::Internal("a write job panicked; see the log".into())));
    match result {
        Ok(v) => {
            ctx.conn.execute_batch("RELEASE job")?;
            Ok(v)
        }
        Err(e) => {
            *ctx.event = before;
            ctx.conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(e)
        }
    }
}

pub(crate) fn spawn(
    conn: Connection,
    identity: Arc<BoxIdentity>,
    event: EventCell,
    metrics: Arc<Metrics>,
    replica: Arc<replica::Shared>,
    capacity: usize,
) -> (mpsc::Sender<Box<dyn Job>>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(capacity);
    let handle = std::thread::Builder::new()
        .name("venuebox-writer".into())
        .spawn(move || run(conn, identity, event, metrics, replica, rx))
        .expect("cannot start the writer thread");
    (tx, handle)
}

fn run(
    conn: Connection,
    identity: Arc<BoxIdentity>,
    cell: EventCell,
    metrics: Arc<Metrics>,
    replica: Arc<replica::Shared>,
    mut rx: mpsc::Receiver<Box<dyn Job>>,
) {
    let mut event = cell.read().expect("event lock").clone();
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    let mut replies: Vec<Reply> = Vec::with_capacity(MAX_BATCH);
    // Changes when another connection (e.g. `venuebox manifest import` in a
    // second process) commits, so the writer can reload the event.
    let mut data_version = data_version_of(&conn);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        drain(&mut rx, &mut batch);
        // Answers already wait for the standby: others are in flight, and
        // each comes back to this queue the moment its answer goes out. A
        // moment's wait lets those on their way join this batch (one
        // commit, one fsync and one changeset for several), as
        // PostgreSQL's commit_delay does when other transactions are
        // active. A lone door (nothing held) never waits.
        if batch.len() < GATHER_BELOW && replica.capturing() && replica.answers_held() {
            std::thread::sleep(GATHER);
            drain(&mut rx, &mut batch);
        }
        metrics.write_batch_size.observe(batch.len() as f64);
        let started = Instant::now();
        let before = event.clone();
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let msg = format!("cannot start a write transaction: {e}");
            tracing::error!("{msg}");
            batch.drain(..).for_each(|j| j.fail(StoreError::Commit(msg.clone())));
            continue;
        }
        // While a standby is enrolled, the batch's changes are recorded
        // and logged in this transaction for it (store/replica.rs).
        let (capture, epoch) = (replica.capturing(), replica.epoch());
        let mut session = if capture {
            match replica.start_session(&conn) {
                Ok(s) => Some(s),
                Err(e) => {
                    let msg = format!("cannot record the batch for the standby: {e}");
                    tracing::error!("{msg}");
                    let _ = conn.execute_batch("ROLLBACK");
                    batch.drain(..).for_each(|j| j.fail(StoreError::Commit(msg.clone())));
                    continue;
                }
            }
        } else {
            None
        };
        let dv = data_version_of(&conn);
        if dv != data_version {
            data_version = dv;
            match manifests::load_current(&conn, &identity) {
                Ok(current) => event = current,
                Err(e) => {
                    tracing::error!(error = %e, "cannot reload the event after another process changed the database")
                }
            }
        }
        for j in batch.drain(..) {
            if !j.allowed(replica.role()) {
                j.fail(StoreError::NotPrimary);
                continue;
            }
            let mut ctx = WriteCtx {
                conn: &conn,
                box_id: &identity.box_id,
                identity: &identity,
                event: &mut event,
                metrics: &metrics,
            };
            replies.push(j.run(&mut ctx));
        }
        let logged = match session.as_mut().map(|s| replica::log_batch(&conn, s, epoch)) {
            None => Ok(None),
            Some(r) => r.map_err(|e| format!("cannot log the batch for the standby: {e}")),
        };
        drop(session);
        let (outcome, logged) = match logged {
            Ok(seq) => (conn.execute_batch("COMMIT").map_err(|e| e.to_string()), seq),
            Err(e) => (Err(e), None),
        };
        metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
        match &outcome {
            Ok(()) => {
                let changed = match (&before, &event) {
                    (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
                    (None, None) => false,
                    _ => true,
                };
                if changed {
                    *cell.write().expect("event lock") = event.clone();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "write batch failed to commit; every caller in it is told");
                let _ = conn.execute_batch("ROLLBACK");
                event = manifests::load_current(&conn, &identity).unwrap_or(before);
            }
        }
        let replies = match &outcome {
            // Held until the standby has the batch, unless it is not in sync.
            Ok(()) => replica.after_commit(logged, std::mem::take(&mut replies)),
            Err(_) => std::mem::take(&mut replies),
        };
        for r in replies {
            r(outcome.clone());
        }
    }
    tracing::debug!("writer stopped: every store handle is gone");
}

/// Takes every job already waiting, up to [`MAX_BATCH`].
fn drain(rx: &mut mpsc::Receiver<Box<dyn Job>>, batch: &mut Vec<Box<dyn Job>>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(j) => batch.push(j),
            Err(_) => break,
        }
    }
}

fn data_version_of(conn: &Connection) -> i64 {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0)).unwrap_or(0)
}
