//! The store's side of the standby (ARCHITECTURE.md, "Two boxes"): the
//! box's role and epoch, the changeset each write batch leaves in
//! `repl_log` while a standby is enrolled, applying a primary's changesets
//! on the standby, and the gate that holds a batch's answers until the
//! standby has it (or the bound has passed).
//!
//! The link between the boxes is `replication`'s; this module only reads
//! and writes rows and hands out what the link needs.

use super::changeset::{self, Session};
use super::writer::Reply;
use super::{Store, StoreError};
use crate::domain::error_code::ErrorCode;
use rusqlite::{Connection, OptionalExtension};
use std::collections::VecDeque;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use tokio::sync::watch;

/// What a box is in a pair.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "PairRole")]
pub enum Role {
    /// Takes writes (a box on its own is a primary without a standby).
    Primary,
    /// Applies the primary's changesets and refuses every other write.
    Standby,
    /// Follows the primary like a standby, refuses writes of its own like
    /// a standby, and serves an entrance of its own, forwarding its staff's
    /// calls to the primary (ARCHITECTURE.md, "Satellites").
    Satellite,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Standby => "standby",
            Role::Satellite => "satellite",
        }
    }

    /// The role stored as text; a box with none stored is a primary.
    fn parse(s: Option<&str>) -> Role {
        match s {
            Some("standby") => Role::Standby,
            Some("satellite") => Role::Satellite,
            _ => Role::Primary,
        }
    }

    fn from_u8(n: u8) -> Role {
        match n {
            x if x == Role::Standby as u8 => Role::Standby,
            x if x == Role::Satellite as u8 => Role::Satellite,
            _ => Role::Primary,
        }
    }

    /// Applies a primary's log (a standby or a satellite).
    pub fn follows(self) -> bool {
        self != Role::Primary
    }
}

/// Tables the session does not record: the replication bookkeeping (each
/// box its own) and SQLite's and the migrations' own.
fn replicated_table(name: &str) -> bool {
    !(name.starts_with("repl_") || name.starts_with("sqlite_") || name == "schema_migrations")
}

/// The tables a standby gets, by name.
fn replicated_tables(conn: &Connection) -> Result<Vec<CString>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
    let names = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
    Ok(names
        .into_iter()
        .filter(|n| replicated_table(n))
        .map(|n| CString::new(n).expect("table names have no NUL"))
        .collect())
}

/// Writes the batch's changeset as the next log row (inside the batch's
/// transaction); `None` when the batch changed nothing.
pub(super) fn log_batch(
    conn: &Connection,
    session: &mut Session<'_>,
    epoch: i64,
) -> Result<Option<LogRow>, StoreError> {
    let Some(changeset) = session.changeset().map_err(StoreError::Internal)? else {
        return Ok(None);
    };
    let seq: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM repl_log")?
        .query_row([], |r| r.get(0))?;
    conn.prepare_cached("INSERT INTO repl_log (seq, epoch, changeset) VALUES (?1, ?2, ?3)")?
        .execute(rusqlite::params![seq, epoch, changeset])?;
    Ok(Some(LogRow { seq, epoch, changeset }))
}

/// The newest committed log rows, kept in memory so the shipper sends a
/// batch without reading back what the writer has just written.
const RECENT_ROWS: usize = 512;
const RECENT_BYTES: usize = 4 << 20;

/// The rows in memory, contiguous, and their changesets' total size.
#[derive(Default)]
struct Recent {
    rows: VecDeque<LogRow>,
    bytes: usize,
}

impl Recent {
    fn clear(&mut self) {
        self.rows.clear();
        self.bytes = 0;
    }

    fn push(&mut self, row: LogRow) {
        if self.rows.back().is_some_and(|r| r.seq + 1 != row.seq || r.epoch != row.epoch) {
            self.clear();
        }
        self.bytes += row.changeset.len();
        self.rows.push_back(row);
        while self.rows.len() > RECENT_ROWS || (self.bytes > RECENT_BYTES && self.rows.len() > 1) {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(r) = self.rows.pop_front() {
            self.bytes -= r.changeset.len();
        }
    }
}

/// One log row as it travels to the standby.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRow {
    pub seq: i64,
    pub epoch: i64,
    pub changeset: Vec<u8>,
}

/// Held answers of committed batches, waiting for the standby.
#[derive(Default)]
struct Gate {
    /// Whether answers wait for the standby at all (it is connected and
    /// in sync); otherwise they go out at commit.
    waiting: bool,
    pending: VecDeque<(i64, Instant, Vec<Reply>)>,
}

/// The box's replication state, shared by the writer and the link.
pub struct Shared {
    role: AtomicU8,
    epoch: AtomicI64,
    /// Record each batch's changeset (a standby is enrolled).
    capture: AtomicBool,
    gate: Mutex<Gate>,
    /// The newest log seq committed here (the shipper wakes on it).
    committed: watch::Sender<i64>,
    /// The newest committed log rows (see [`RECENT_ROWS`]).
    recent: Mutex<Recent>,
    /// The epoch proof for the current epoch, made once per epoch.
    proof: Mutex<Option<(i64, String)>>,
    tables: Vec<CString>,
    /// What the standby's apply knows of the schema (kept between batches).
    schema: Mutex<changeset::Schema>,
    /// A report of writes taken apart was sent and not yet seen merged
    /// (`Store::settle_report`).
    report_pending: AtomicBool,
}

impl Shared {
    pub(super) fn load(conn: &Connection) -> Result<Shared, StoreError> {
        let get = |key: &str| -> Result<Option<String>, StoreError> {
            Ok(conn
                .query_row("SELECT value FROM repl_state WHERE key = ?1", [key], |r| r.get(0))
                .optional()?)
        };
        let role = Role::parse(get("role")?.as_deref());
        let epoch = get("epoch")?.and_then(|e| e.parse().ok()).unwrap_or(1);
        let capture = get("capture")?.as_deref() == Some("on");
        let last: i64 =
            conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM repl_log", [], |r| r.get(0))?;
        Ok(Shared {
            role: AtomicU8::new(role as u8),
            epoch: AtomicI64::new(epoch),
            capture: AtomicBool::new(capture),
            gate: Mutex::new(Gate::default()),
            committed: watch::channel(last).0,
            recent: Mutex::new(Recent::default()),
            proof: Mutex::new(None),
            tables: replicated_tables(conn)?,
            schema: Mutex::new(changeset::Schema::default()),
            report_pending: AtomicBool::new(get("apart_report")?.is_some()),
        })
    }

    /// Starts recording a batch's changes to every replicated table.
    pub(super) fn start_session<'c>(&self, conn: &'c Connection) -> Result<Session<'c>, String> {
        Session::start(conn, &self.tables)
    }

    pub fn role(&self) -> Role {
        Role::from_u8(self.role.load(Ordering::Acquire))
    }

    pub fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A report of writes taken apart waits to be seen merged.
    pub fn report_pending(&self) -> bool {
        self.report_pending.load(Ordering::Acquire)
    }

    /// Whether the writer records changesets now (a primary with a standby).
    pub(super) fn capturing(&self) -> bool {
        self.role() == Role::Primary && self.capture.load(Ordering::Acquire)
    }

    /// The newest committed log seq, and changes to it.
    pub fn committed(&self) -> watch::Receiver<i64> {
        self.committed.subscribe()
    }

    /// After a batch committed: its answers go out now, or wait for the
    /// standby's acknowledgement of `seq` (returned empty then).
    pub(super) fn after_commit(&self, row: Option<LogRow>, replies: Vec<Reply>) -> Vec<Reply> {
        let Some(row) = row else { return replies };
        let seq = row.seq;
        self.recent.lock().expect("recent log rows").push(row);
        self.committed.send_replace(seq);
        let mut gate = self.gate.lock().expect("replication gate");
        if !gate.waiting || replies.is_empty() {
            return replies;
        }
        gate.pending.push_back((seq, Instant::now(), replies));
        Vec::new()
    }

    /// From now on answers wait for the standby (it is in sync).
    pub fn wait_for_standby(&self) {
        self.gate.lock().expect("replication gate").waiting = true;
    }

    /// The standby has applied everything up to `seq`: those answers go out.
    pub fn acknowledged(&self, seq: i64) {
        let ready: Vec<Reply> = {
            let mut gate = self.gate.lock().expect("replication gate");
            let mut out = Vec::new();
            while gate.pending.front().is_some_and(|(s, _, _)| *s <= seq) {
                out.extend(gate.pending.pop_front().expect("front").2);
            }
            out
        };
        ready.into_iter().for_each(|r| r(Ok(())));
    }

    /// Whether answers are held for the standby now.
    pub(super) fn answers_held(&self) -> bool {
        !self.gate.lock().expect("replication gate").pending.is_empty()
    }

    /// When the oldest held answer started waiting, if one does.
    pub fn oldest_wait(&self) -> Option<Instant> {
        self.gate.lock().expect("replication gate").pending.front().map(|p| p.1)
    }

    /// The standby is gone or too slow: every held answer goes out and
    /// answers stop waiting until [`Shared::wait_for_standby`] again.
    pub fn go_on_alone(&self) {
        let ready: Vec<Reply> = {
            let mut gate = self.gate.lock().expect("replication gate");
            gate.waiting = false;
            gate.pending.drain(..).flat_map(|p| p.2).collect()
        };
        ready.into_iter().for_each(|r| r(Ok(())));
    }

    /// A new role (promotion, fence): the rows in memory may be another
    /// history's, so they are forgotten first.
    fn set_role(&self, role: Role) {
        self.recent.lock().expect("recent log rows").clear();
        self.role.store(role as u8, Ordering::Release);
    }

    /// The rows after `after` from memory, when memory holds `after + 1`
    /// (a caught-up standby), or none when memory ends at `after` (every
    /// commit of this process is in memory before it is announced);
    /// `None`: read the log. Memory holds only this process's commits,
    /// contiguous: a gap (another process's commit) empties it, and such a
    /// commit right after memory's last row is found by the caller's
    /// periodic look into the log.
    fn recent_after(&self, after: i64, limit: usize, max_bytes: usize) -> Option<Vec<LogRow>> {
        let recent = self.recent.lock().expect("recent log rows");
        let (first, last) = (recent.rows.front()?.seq, recent.rows.back()?.seq);
        if first > after + 1 || after > last {
            return None;
        }
        let (mut out, mut bytes) = (Vec::new(), 0usize);
        let from = usize::try_from(after + 1 - first).unwrap_or(0);
        for row in recent.rows.iter().skip(from).take(limit) {
            bytes += row.changeset.len();
            out.push(row.clone());
            if bytes >= max_bytes {
                break;
            }
        }
        Some(out)
    }

    /// The log was trimmed up to `upto`: memory forgets those rows too.
    fn forget_upto(&self, upto: i64) {
        let mut recent = self.recent.lock().expect("recent log rows");
        while recent.rows.front().is_some_and(|r| r.seq <= upto) {
            recent.pop_front();
        }
    }

    /// Whether answers wait for the standby now.
    pub fn in_sync(&self) -> bool {
        self.gate.lock().expect("replication gate").waiting
    }
}

fn set_state(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO repl_state (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

/// A satellite decided something cut off from the primary: from now on
/// (across restarts) it reports its decisions before it follows the
/// primary again; cleared when the primary's log shows the report merged
/// (`Store::settle_report`).
pub(super) fn mark_apart(conn: &Connection, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO repl_state (key, value) VALUES ('apart', ?1) ON CONFLICT (key) DO NOTHING",
    )?
    .execute([now.to_string()])?;
    conn.prepare_cached(
        "INSERT INTO repl_state (key, value) VALUES ('apart_count', '1')
         ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
    )?
    .execute([])?;
    Ok(())
}

/// A value of this box's own replication state (`node`, `apart_report`, …).
pub(super) fn state_of(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    get_state(conn, key)
}

fn get_state(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT value FROM repl_state WHERE key = ?1", [key], |r| r.get(0)).optional()
}

/// Where a box stands in its pair (for the dashboard and the link).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct ReplicaState {
    pub role: Role,
    pub epoch: i64,
    /// The newest log seq here (written as primary, or applied as standby).
    pub seq: i64,
    /// The seq this box's epoch started at (its promotion), if it was promoted.
    pub epoch_start: Option<i64>,
    /// Whether write batches are recorded for a standby.
    pub capture: bool,
    /// Unix ms of the first decision a satellite took cut off from the
    /// primary that the primary has not merged yet (ARCHITECTURE.md,
    /// "Satellites").
    pub apart_since: Option<i64>,
    /// Check-ins and sales this satellite decided apart that wait to be
    /// merged on the primary.
    pub apart_decisions: i64,
}

impl Store {
    pub fn replica(&self) -> &Shared {
        &self.replica
    }

    /// Role, epoch and log position, as stored.
    pub async fn replica_state(&self) -> Result<ReplicaState, StoreError> {
        let (role, epoch) = (self.replica.role(), self.replica.epoch());
        self.read(move |c| {
            let seq =
                c.query_row("SELECT COALESCE(MAX(seq), 0) FROM repl_log", [], |r| r.get(0))?;
            let epoch_start = get_state(c, "epoch_start")?.and_then(|s| s.parse().ok());
            let capture = get_state(c, "capture")?.as_deref() == Some("on");
            let apart_since = get_state(c, "apart")?.and_then(|s| s.parse().ok());
            let apart_decisions = if apart_since.is_some() {
                get_state(c, "apart_count")?.and_then(|s| s.parse().ok()).unwrap_or(0)
            } else {
                0
            };
            Ok(ReplicaState {
                role,
                epoch,
                seq,
                epoch_start,
                capture,
                apart_since,
                apart_decisions,
            })
        })
        .await
    }

    /// A standby joined: from the next batch on, every batch's changeset
    /// is logged for it.
    pub async fn start_capture(&self) -> Result<(), StoreError> {
        self.write(|ctx| Ok(set_state(ctx.conn, "capture", "on")?)).await?;
        self.replica.capture.store(true, Ordering::Release);
        Ok(())
    }

    /// Log rows after `after`, oldest first, at most `limit` of them and
    /// about `max_bytes` (at least one when there is one; none when
    /// nothing is newer). `Err(Trimmed)` when the row after `after` is no
    /// longer kept.
    ///
    /// `from_log` reads the log even when memory is at `after`: it also
    /// finds a commit another process (a CLI command) made since.
    pub async fn log_after(
        &self,
        after: i64,
        limit: usize,
        max_bytes: usize,
        from_log: bool,
    ) -> Result<Vec<LogRow>, StoreError> {
        let memory = self.replica.recent_after(after, limit, max_bytes);
        if let Some(rows) = memory.filter(|rows| !(rows.is_empty() && from_log)) {
            return Ok(rows);
        }
        self.read(move |c| {
            let first: Option<i64> =
                c.query_row("SELECT MIN(seq) FROM repl_log", [], |r| r.get(0))?;
            if first.is_some_and(|f| f > after + 1) {
                return Err(StoreError::refused(
                    ErrorCode::StandbyBehind,
                    format!(
                        "the log no longer holds seq {}: the standby needs a snapshot",
                        after + 1
                    ),
                ));
            }
            let mut stmt = c.prepare_cached(
                "SELECT seq, epoch, changeset FROM repl_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let mut rows = stmt.query(rusqlite::params![after, limit as i64])?;
            let (mut out, mut bytes) = (Vec::new(), 0usize);
            while let Some(r) = rows.next()? {
                let row = LogRow { seq: r.get(0)?, epoch: r.get(1)?, changeset: r.get(2)? };
                bytes += row.changeset.len();
                out.push(row);
                if bytes >= max_bytes {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }

    /// Forgets log rows up to `upto` (the standby has them, and a margin
    /// is kept by the caller). The newest row always stays: the next seq
    /// follows it, so a seq is never given twice.
    pub async fn trim_log(&self, upto: i64) -> Result<(), StoreError> {
        self.replica.forget_upto(upto);
        self.write_replicated(move |ctx| {
            ctx.conn.execute(
                "DELETE FROM repl_log WHERE seq <= ?1 AND seq < (SELECT MAX(seq) FROM repl_log)",
                [upto],
            )?;
            Ok(())
        })
        .await
    }

    /// On the standby: applies the primary's rows in order, all in one
    /// transaction with their log rows and the new position. Rows it has
    /// already applied are skipped; a gap or a row that does not fit the
    /// data is an error (the standby then needs a snapshot). Returns the
    /// last seq applied.
    pub async fn apply_log(&self, rows: Vec<LogRow>) -> Result<i64, StoreError> {
        let replica = self.replica.clone();
        self.write_replicated(move |ctx| {
            let mut schema = replica.schema.lock().expect("schema cache");
            let mut last: i64 = ctx
                .conn
                .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM repl_log")?
                .query_row([], |r| r.get(0))?;
            let manifest = |c: &Connection| -> rusqlite::Result<i64> {
                c.prepare_cached("SELECT COALESCE(MAX(id), 0) FROM manifests")?
                    .query_row([], |r| r.get(0))
            };
            let manifest_before = manifest(ctx.conn)?;
            let mut fresh = Vec::with_capacity(rows.len());
            for row in rows {
                if row.seq <= last {
                    continue;
                }
                if row.seq != last + 1 {
                    return Err(StoreError::refused(
                        ErrorCode::StandbyBehind,
                        format!("got seq {} after {last}: the standby needs a snapshot", row.seq),
                    ));
                }
                last = row.seq;
                fresh.push(row);
            }
            // Several batches waiting apply as one changeset: SQLite then
            // prepares its statements once per table, not once per batch.
            match fresh.as_slice() {
                [] => {}
                [one] => apply_changeset(ctx.conn, &one.changeset, &mut schema)?,
                many => {
                    let all: Vec<&[u8]> = many.iter().map(|r| r.changeset.as_slice()).collect();
                    let combined = changeset::combine(&all).map_err(StoreError::Internal)?;
                    apply_changeset(ctx.conn, &combined, &mut schema)?;
                }
            }
            let mut insert = ctx.conn.prepare_cached(
                "INSERT INTO repl_log (seq, epoch, changeset) VALUES (?1, ?2, ?3)",
            )?;
            for row in &fresh {
                insert.execute(rusqlite::params![row.seq, row.epoch, row.changeset])?;
            }
            // A new event manifest arrived: the standby serves it too.
            if manifest(ctx.conn)? != manifest_before {
                *ctx.event = super::manifests::load_current(ctx.conn, ctx.identity)?;
            }
            Ok(last)
        })
        .await
    }

    /// Makes this box the standby of a primary at `epoch` (after a snapshot
    /// from it was installed, or when a higher epoch fenced it).
    pub async fn become_standby(&self, epoch: i64) -> Result<(), StoreError> {
        self.become_follower(Role::Standby, epoch).await
    }

    /// Makes this box a satellite of the primary at `epoch` (`join
    /// --satellite`).
    pub async fn become_satellite(&self, epoch: i64) -> Result<(), StoreError> {
        self.become_follower(Role::Satellite, epoch).await
    }

    async fn become_follower(&self, role: Role, epoch: i64) -> Result<(), StoreError> {
        self.write_replicated(move |ctx| {
            set_state(ctx.conn, "role", role.as_str())?;
            set_state(ctx.conn, "epoch", &epoch.to_string())?;
            set_state(ctx.conn, "capture", "off")?;
            Ok(())
        })
        .await?;
        self.replica.set_role(role);
        self.replica.epoch.store(epoch, Ordering::Release);
        self.replica.capture.store(false, Ordering::Release);
        self.replica.go_on_alone();
        Ok(())
    }

    /// A higher epoch was seen: this box stops taking writes at once (the
    /// role in memory first, then on disk), whatever it was doing.
    pub async fn fence(&self, epoch: i64) -> Result<(), StoreError> {
        if epoch <= self.replica.epoch() {
            return Ok(());
        }
        // A satellite stays one: it only learns the newer epoch.
        let role = match self.replica.role() {
            Role::Satellite => Role::Satellite,
            _ => Role::Standby,
        };
        self.replica.set_role(role);
        tracing::warn!(epoch, "a newer primary exists: this box takes no more writes");
        self.become_follower(role, epoch).await
    }

    /// Makes this standby the primary at the next epoch, starting at the
    /// seq it has applied; from the next batch on, its batches are logged
    /// (for the old primary, once it comes back as standby).
    pub async fn promote(&self, now: i64) -> Result<ReplicaState, StoreError> {
        if self.replica.role() == Role::Primary {
            return Err(StoreError::Conflict("this box is already the primary".into()));
        }
        let was_satellite = self.replica.role() == Role::Satellite;
        let epoch = self.replica.epoch() + 1;
        self.write_replicated(move |ctx| {
            // A satellite taking over: what it was lent is its own stock now.
            if let (true, Some(node)) = (was_satellite, get_state(ctx.conn, "node")?) {
                super::escrow::recall(ctx.conn, &node)?;
                super::escrow::bring_home(ctx, &node, now)?;
            }
            let seq: i64 =
                ctx.conn
                    .query_row("SELECT COALESCE(MAX(seq), 0) FROM repl_log", [], |r| r.get(0))?;
            set_state(ctx.conn, "role", Role::Primary.as_str())?;
            set_state(ctx.conn, "epoch", &epoch.to_string())?;
            set_state(ctx.conn, "epoch_start", &seq.to_string())?;
            set_state(ctx.conn, "capture", "on")?;
            ctx.conn.execute("DELETE FROM repl_state WHERE key = 'promote'", [])?;
            Ok(())
        })
        .await?;
        self.replica.epoch.store(epoch, Ordering::Release);
        self.replica.capture.store(true, Ordering::Release);
        self.replica.set_role(Role::Primary);
        tracing::warn!(epoch, "promoted: this box is the primary now");
        self.replica_state().await
    }
}

impl Store {
    /// The database's schema version (both boxes of a pair must agree).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        self.read(|c| {
            Ok(c.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| {
                r.get(0)
            })?)
        })
        .await
    }

    /// This box's name in its pair, made once.
    pub async fn node_name(&self) -> Result<String, StoreError> {
        if let Some(n) = self.read(|c| Ok(get_state(c, "node")?)).await? {
            return Ok(n);
        }
        let made = format!("node-{}", crate::secrets::hex(&crate::secrets::random_bytes::<4>()));
        self.write_replicated(move |ctx| {
            Ok(match get_state(ctx.conn, "node")? {
                Some(n) => n,
                None => {
                    set_state(ctx.conn, "node", &made)?;
                    made
                }
            })
        })
        .await
    }

    /// Names this box in its pair (a joining standby's name, chosen by it).
    pub async fn set_node(&self, node: String) -> Result<(), StoreError> {
        self.write_replicated(move |ctx| Ok(set_state(ctx.conn, "node", &node)?)).await
    }

    /// Role and epoch as stored (what another process, the running box,
    /// last wrote), not as this process holds them.
    pub async fn stored_role(&self) -> Result<(Role, i64), StoreError> {
        self.read(|c| {
            let role = Role::parse(get_state(c, "role")?.as_deref());
            let epoch = get_state(c, "epoch")?.and_then(|e| e.parse().ok()).unwrap_or(1);
            Ok((role, epoch))
        })
        .await
    }

    /// Every capture's SHA-256, size and whether it has a thumbnail, oldest
    /// first: what a standby copies.
    pub async fn capture_files(&self) -> Result<Vec<(String, u64, bool)>, StoreError> {
        self.read(|c| {
            let mut stmt =
                c.prepare("SELECT sha256, bytes, thumbnail = 'ready' FROM captures ORDER BY id")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// The peer's replication address (host:port), once the pair is made.
    pub async fn peer_address(&self) -> Result<Option<String>, StoreError> {
        self.read(|c| Ok(get_state(c, "peer")?)).await
    }

    /// The peer's staff-app address (`https://host:port`), as its last
    /// hello said: where phones go when the peer is the primary.
    pub async fn peer_web(&self) -> Result<Option<String>, StoreError> {
        self.read(|c| Ok(get_state(c, "peer_web")?)).await
    }

    /// On a satellite: the pair's other box (the standby its primary
    /// named), tried when the primary does not answer: after a takeover it
    /// is the primary.
    pub async fn alt_peer(&self) -> Result<Option<String>, StoreError> {
        self.read(|c| Ok(get_state(c, "alt_peer")?)).await
    }

    pub async fn set_alt_peer(&self, address: String) -> Result<(), StoreError> {
        self.write_replicated(move |ctx| Ok(set_state(ctx.conn, "alt_peer", &address)?)).await
    }

    pub async fn set_peer_web(&self, url: String) -> Result<(), StoreError> {
        self.write_replicated(move |ctx| Ok(set_state(ctx.conn, "peer_web", &url)?)).await
    }

    /// Records the pair: the peer's replication address and, on the
    /// primary, that batches are logged for it from now on.
    pub async fn set_peer(&self, address: String) -> Result<(), StoreError> {
        self.write_replicated(move |ctx| Ok(set_state(ctx.conn, "peer", &address)?)).await
    }

    /// A one-time code (valid `ttl` ms) that enrols one standby; only its
    /// digest is kept, on this box alone.
    pub async fn create_join_code(&self, now: i64, ttl: i64) -> Result<(String, i64), StoreError> {
        let code = super::pairing::new_code();
        let digest = super::sessions::token_digest(&super::pairing::normalise_code(&code));
        let expires = now + ttl;
        self.write_replicated(move |ctx| {
            set_state(ctx.conn, "join_code", &format!("{digest} {expires}"))?;
            Ok(())
        })
        .await?;
        Ok((code, expires))
    }

    /// Takes the join code if it is the current one and not expired: it
    /// works once.
    pub async fn take_join_code(&self, code: &str, now: i64) -> Result<bool, StoreError> {
        let digest = super::sessions::token_digest(&super::pairing::normalise_code(code));
        self.write_replicated(move |ctx| {
            let Some(stored) = get_state(ctx.conn, "join_code")? else { return Ok(false) };
            let (want, expires) = stored.split_once(' ').unwrap_or((&stored, "0"));
            let valid = want == digest && expires.parse::<i64>().unwrap_or(0) > now;
            if valid {
                ctx.conn.execute("DELETE FROM repl_state WHERE key = 'join_code'", [])?;
            }
            Ok(valid)
        })
        .await
    }

    /// `venuebox promote` on the console: the running box promotes itself
    /// when it sees this (the command cannot reach its memory).
    pub async fn request_promotion(&self) -> Result<(), StoreError> {
        self.write_replicated(|ctx| Ok(set_state(ctx.conn, "promote", "requested")?)).await
    }

    pub async fn promotion_requested(&self) -> Result<bool, StoreError> {
        self.read(|c| Ok(get_state(c, "promote")?.as_deref() == Some("requested"))).await
    }
}

/// A copy of the primary's database for a standby that cannot follow the
/// log: the file and the log seq it holds everything up to.
pub struct Snapshot {
    pub path: std::path::PathBuf,
    pub seq: i64,
    pub epoch: i64,
}

impl Store {
    /// Writes a consistent copy of the database to `dest` (`VACUUM INTO`
    /// on one read transaction) for a standby, with the seq it covers.
    pub async fn snapshot(&self, dest: std::path::PathBuf) -> Result<Snapshot, StoreError> {
        let _ = std::fs::remove_file(&dest);
        let target = dest.to_string_lossy().into_owned();
        let epoch = self.replica.epoch();
        let seq = self
            .read(move |c| {
                c.execute("VACUUM INTO ?1", [&target])?;
                // The seq the copy holds, read from the copy itself.
                let copy = Connection::open_with_flags(
                    &target,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )?;
                Ok(copy.query_row("SELECT COALESCE(MAX(seq), 0) FROM repl_log", [], |r| r.get(0))?)
            })
            .await?;
        Ok(Snapshot { path: dest, seq, epoch })
    }

    /// On a standby: replaces every replicated row with the snapshot's, in
    /// one transaction (a crash leaves the old copy whole), and continues
    /// its log from the snapshot's seq. Refused when the snapshot was made
    /// by another schema version (the two boxes must run the same package).
    ///
    /// `report`: what this box took apart (or alone, as a fenced old
    /// primary) and has just reported; kept here, outside the replicated
    /// rows, until the primary's log shows it merged (`settle_report`), and
    /// sent again with the next report if the link drops before.
    pub async fn install_snapshot(
        &self,
        snapshot: std::path::PathBuf,
        report: Option<super::takeover::TakeoverReport>,
    ) -> Result<i64, StoreError> {
        let tables = self.replica.tables.clone();
        let report = report.filter(|r| !r.checkins.is_empty() || !r.orders.is_empty());
        let pending = report.is_some();
        let report = report.map(|r| {
            let since = r
                .checkins
                .iter()
                .map(|c| c.recorded_at)
                .chain(r.orders.iter().map(|o| o.created_at))
                .min()
                .unwrap_or(0);
            (serde_json::to_string(&r).expect("a report serializes"), since)
        });
        self.write_replicated(move |ctx| {
            let snap = Connection::open_with_flags(
                &snapshot,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )?;
            let version = |c: &Connection| -> rusqlite::Result<i64> {
                c.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))
            };
            let (theirs, ours) = (version(&snap)?, version(ctx.conn)?);
            if theirs != ours {
                return Err(StoreError::refused(
                    ErrorCode::StandbyBehind,
                    format!("the primary's database is at schema version {theirs}, this box's at {ours}: install the same venuebox package on both boxes"),
                ));
            }
            let check: String = snap.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
            if check != "ok" {
                return Err(StoreError::Internal(format!("the snapshot fails its check: {check}")));
            }
            ctx.conn.execute_batch("PRAGMA defer_foreign_keys = ON")?;
            let copy = |table: &str| -> Result<(), StoreError> {
                ctx.conn.execute(&format!("DELETE FROM main.\"{table}\""), [])?;
                let mut read = snap.prepare(&format!("SELECT * FROM \"{table}\""))?;
                let n = read.column_count();
                let marks = vec!["?"; n].join(", ");
                let mut write =
                    ctx.conn.prepare(&format!("INSERT INTO main.\"{table}\" VALUES ({marks})"))?;
                let mut rows = read.query([])?;
                while let Some(r) = rows.next()? {
                    let values = (0..n)
                        .map(|i| r.get::<_, rusqlite::types::Value>(i))
                        .collect::<Result<Vec<_>, _>>()?;
                    write.execute(rusqlite::params_from_iter(values))?;
                }
                Ok(())
            };
            for t in &tables {
                copy(t.to_str().expect("ASCII table names"))?;
            }
            // AUTOINCREMENT counters, if a table has one: ids are never
            // given twice.
            let has_sequence = |c: &Connection| -> rusqlite::Result<bool> {
                c.query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_sequence'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n > 0)
            };
            if has_sequence(&snap)? && has_sequence(ctx.conn)? {
                copy("sqlite_sequence")?;
            }
            let newest: Option<(i64, i64, Vec<u8>)> = snap
                .query_row(
                    "SELECT seq, epoch, changeset FROM repl_log ORDER BY seq DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            ctx.conn.execute("DELETE FROM repl_log", [])?;
            if let Some((json, since)) = &report {
                set_state(ctx.conn, "apart_report", json)?;
                // Until it is settled the box says so in its hello, and
                // reports again at the next link.
                mark_apart(ctx.conn, *since)?;
            }
            let seq = match newest {
                Some((seq, epoch, changeset)) => {
                    ctx.conn.execute(
                        "INSERT INTO repl_log (seq, epoch, changeset) VALUES (?1, ?2, ?3)",
                        rusqlite::params![seq, epoch, changeset],
                    )?;
                    seq
                }
                None => 0,
            };
            *ctx.event = super::manifests::load_current(ctx.conn, ctx.identity)?;
            Ok(seq)
        })
        .await
        .inspect(|_| {
            if pending {
                self.replica.report_pending.store(true, Ordering::Release);
            }
        })
    }

    /// The report kept since the last snapshot, if it is not settled.
    pub async fn pending_report(
        &self,
    ) -> Result<Option<super::takeover::TakeoverReport>, StoreError> {
        self.read(|c| Ok(get_state(c, "apart_report")?.and_then(|j| serde_json::from_str(&j).ok())))
            .await
    }

    /// Clears the kept report once the primary's log has brought every
    /// item of it here: a check-in's or a sale's nonce among the rows, or
    /// listed in the takeover report. Returns whether it is settled now.
    pub async fn settle_report(&self) -> Result<bool, StoreError> {
        let settled = self
            .write_replicated(|ctx| {
                let Some(json) = get_state(ctx.conn, "apart_report")? else { return Ok(true) };
                let report: super::takeover::TakeoverReport =
                    serde_json::from_str(&json).unwrap_or_default();
                let seen = |table: &str, nonce: &str| -> rusqlite::Result<bool> {
                    let sql = format!(
                        "SELECT EXISTS (SELECT 1 FROM {table} WHERE nonce = ?1)
                             OR EXISTS (SELECT 1 FROM takeover_report WHERE ref = ?1)"
                    );
                    ctx.conn.prepare_cached(&sql)?.query_row([nonce], |r| r.get(0))
                };
                for c in &report.checkins {
                    if !seen("scans", &c.nonce)? {
                        return Ok(false);
                    }
                }
                for o in &report.orders {
                    if !seen("orders", &o.nonce)? {
                        return Ok(false);
                    }
                }
                for c in &report.closes {
                    let closed: bool = ctx
                        .conn
                        .prepare_cached(
                            "SELECT EXISTS (SELECT 1 FROM orders WHERE id = ?1 AND status != 'paid')
                                 OR EXISTS (SELECT 1 FROM takeover_report WHERE ref = 'close:' || ?1)",
                        )?
                        .query_row([&c.order], |r| r.get(0))?;
                    if !closed {
                        return Ok(false);
                    }
                }
                ctx.conn.execute(
                    "DELETE FROM repl_state WHERE key IN ('apart', 'apart_report', 'apart_count')",
                    [],
                )?;
                Ok(true)
            })
            .await?;
        if settled {
            self.replica.report_pending.store(false, Ordering::Release);
        }
        Ok(settled)
    }

    /// The epoch of this box's log row at `seq` (`None`: not kept): a
    /// standby's position is on the primary's history when both logs
    /// hold the same epoch at that seq.
    pub async fn log_epoch_at(&self, seq: i64) -> Result<Option<i64>, StoreError> {
        self.read(move |c| {
            Ok(c.query_row("SELECT epoch FROM repl_log WHERE seq = ?1", [seq], |r| r.get(0))
                .optional()?)
        })
        .await
    }
}

/// Applies one changeset. The standby is an exact copy, so every change
/// must fit: a conflict means it is not, and the whole batch is refused.
fn apply_changeset(
    conn: &Connection,
    bytes: &[u8],
    schema: &mut changeset::Schema,
) -> Result<(), StoreError> {
    changeset::apply(conn, bytes, schema).map_err(|e| match e {
        changeset::ApplyError::Conflict(kind) => StoreError::refused(
            ErrorCode::StandbyBehind,
            format!("a replicated change does not fit this copy (conflict {kind}): the standby needs a snapshot"),
        ),
        changeset::ApplyError::Sql(msg) => StoreError::Internal(msg),
    })
}

impl Store {
    /// SHA-256 over every replicated row, table by table in key order: two
    /// boxes with the same digest hold the same data.
    pub async fn replicated_digest(&self) -> Result<String, StoreError> {
        let tables = self.replica.tables.clone();
        self.read(move |c| {
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            for t in &tables {
                let name = t.to_str().expect("ASCII table names");
                let mut keys: Vec<(i64, String)> = Vec::new();
                let mut info = c.prepare(&format!("PRAGMA table_info(\"{name}\")"))?;
                let mut rows = info.query([])?;
                while let Some(r) = rows.next()? {
                    let pk: i64 = r.get(5)?;
                    if pk > 0 {
                        keys.push((pk, r.get(1)?));
                    }
                }
                keys.sort();
                let order: Vec<String> =
                    keys.into_iter().map(|(_, k)| format!("\"{k}\"")).collect();
                let mut stmt =
                    c.prepare(&format!("SELECT * FROM \"{name}\" ORDER BY {}", order.join(", ")))?;
                let n = stmt.column_count();
                h.update(name.as_bytes());
                let mut rows = stmt.query([])?;
                while let Some(r) = rows.next()? {
                    for i in 0..n {
                        let v: rusqlite::types::Value = r.get(i)?;
                        h.update(format!("{v:?}\u{1f}").as_bytes());
                    }
                    h.update(b"\x1e");
                }
            }
            Ok(crate::secrets::hex(&h.finalize()))
        })
        .await
    }
}

/// What an epoch proof signs: this box (both boxes of a pair share its id
/// and key) was promoted to `epoch`.
fn epoch_claim(box_id: &str, epoch: i64) -> Vec<u8> {
    format!("venuebox-epoch\0{box_id}\0{epoch}").into_bytes()
}

impl Store {
    /// `EPOCH.SIGNATURE`: shown on `/healthz` and carried by phones in
    /// `X-Venuebox-Epoch`, so an old primary that meets a phone which
    /// has seen the new one fences itself. Only a box of the pair can make
    /// one (the box key), so a guest cannot fence the door with a number.
    /// Signed once per epoch: `/healthz` is asked often.
    pub fn epoch_proof(&self) -> String {
        use base64::Engine;
        use ed25519_dalek::Signer;
        let epoch = self.replica.epoch();
        let mut cached = self.replica.proof.lock().expect("epoch proof");
        if let Some((_, proof)) = cached.as_ref().filter(|(e, _)| *e == epoch) {
            return proof.clone();
        }
        let sig = self.identity.key.sign(&epoch_claim(&self.identity.box_id, epoch));
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.to_bytes());
        let proof = format!("{epoch}.{b64}");
        *cached = Some((epoch, proof.clone()));
        proof
    }

    /// The epoch a phone's `X-Venuebox-Epoch` proves, if its signature is
    /// this pair's.
    pub fn verify_epoch_proof(&self, proof: &str) -> Option<i64> {
        use base64::Engine;
        let (epoch, b64) = proof.split_once('.')?;
        let epoch: i64 = epoch.parse().ok()?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64).ok()?;
        let sig = ed25519_dalek::Signature::from_slice(&bytes).ok()?;
        self.identity
            .key
            .verifying_key()
            .verify_strict(&epoch_claim(&self.identity.box_id, epoch), &sig)
            .ok()
            .map(|_| epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::store::StoreOptions;
    use std::sync::Arc;
    use std::time::Duration;

    fn open(dir: &std::path::Path) -> Store {
        Store::open(dir, Arc::new(Metrics::default()), StoreOptions::default()).unwrap()
    }

    async fn audit(store: &Store, n: i64, fail: bool) -> Result<(), StoreError> {
        store
            .write(move |ctx| {
                ctx.conn.execute(
                    "INSERT INTO audit (at, actor, role, action, detail) VALUES (?1, 't', 'admin', 'x', '')",
                    [n],
                )?;
                if fail {
                    return Err(StoreError::Conflict("refused".into()));
                }
                Ok(())
            })
            .await
    }

    /// A standby made from the primary's snapshot (as `join` makes it).
    async fn standby_of(primary: &Store, dir: &std::path::Path) -> Store {
        std::fs::create_dir_all(dir).unwrap();
        primary.backup(dir.join(crate::store::DB_FILE)).await.unwrap();
        let standby = open(dir);
        standby.become_standby(primary.replica().epoch()).await.unwrap();
        standby
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_standby_applies_the_primarys_batches_to_the_same_rows_and_takes_no_writes() {
        let dirs = tempfile::tempdir().unwrap();
        let primary = open(&dirs.path().join("a"));
        audit(&primary, 1, false).await.unwrap();
        primary.start_capture().await.unwrap();
        let standby = standby_of(&primary, &dirs.path().join("b")).await;
        // Batches with a failing job in them: only what committed travels.
        let mut tasks = Vec::new();
        for i in 2..60 {
            let p = primary.clone();
            tasks.push(tokio::spawn(async move { audit(&p, i, i % 7 == 0).await }));
        }
        for t in tasks {
            let _ = t.await.unwrap();
        }
        let rows = primary.log_after(0, 1000, 1 << 20, true).await.unwrap();
        assert!(!rows.is_empty());
        let last = standby.apply_log(rows.clone()).await.unwrap();
        assert_eq!(last, rows.last().unwrap().seq);
        assert_eq!(
            primary.replicated_digest().await.unwrap(),
            standby.replicated_digest().await.unwrap()
        );
        // Applying the same rows again changes nothing (already applied).
        assert_eq!(standby.apply_log(rows).await.unwrap(), last);
        // The standby refuses the writes a primary takes.
        assert!(matches!(audit(&standby, 99, false).await, Err(StoreError::NotPrimary)));
        // A gap is refused: it needs a snapshot.
        let gap = LogRow { seq: last + 2, epoch: 1, changeset: vec![] };
        assert!(standby.apply_log(vec![gap]).await.is_err());
        // Trimmed rows: the log says so.
        // (The concurrent writes above may have shared one batch, so two
        // more, one batch each, give rows to trim.)
        audit(&primary, 100, false).await.unwrap();
        audit(&primary, 101, false).await.unwrap();
        primary.trim_log(last + 1).await.unwrap();
        assert!(primary.log_after(0, 10, 1 << 20, true).await.is_err());
        assert!(primary.log_after(last, 10, 1 << 20, true).await.is_err());
        assert_eq!(primary.log_after(last + 1, 10, 1 << 20, true).await.unwrap().len(), 1);
        // The newest row always stays, so the next seq follows it.
        primary.trim_log(i64::MAX).await.unwrap();
        audit(&primary, 102, false).await.unwrap();
        let tail = primary.log_after(last + 2, 10, 1 << 20, true).await.unwrap();
        assert_eq!(tail.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![last + 3]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_shipper_reads_its_own_commits_from_memory_and_another_processs_from_the_log() {
        let dirs = tempfile::tempdir().unwrap();
        let primary = open(dirs.path());
        primary.start_capture().await.unwrap();
        audit(&primary, 1, false).await.unwrap();
        let mine = primary.log_after(0, 10, 1 << 20, true).await.unwrap();
        let n = mine.last().unwrap().seq;
        // Nothing newer: memory says so without a read of the log.
        assert!(primary.log_after(n, 10, 1 << 20, false).await.unwrap().is_empty());
        // A CLI command in another process commits the next seq.
        let cli = open(dirs.path());
        audit(&cli, 2, false).await.unwrap();
        drop(cli);
        // Only the log knows it: the shipper's periodic look finds it.
        assert!(primary.log_after(n, 10, 1 << 20, false).await.unwrap().is_empty());
        let seqs = |rows: Vec<LogRow>| rows.iter().map(|r| r.seq).collect::<Vec<_>>();
        assert_eq!(seqs(primary.log_after(n, 10, 1 << 20, true).await.unwrap()), vec![n + 1]);
        // This process's next commit leaves a gap in memory: the log again.
        audit(&primary, 3, false).await.unwrap();
        assert_eq!(
            seqs(primary.log_after(n, 10, 1 << 20, false).await.unwrap()),
            vec![n + 1, n + 2]
        );
        assert_eq!(seqs(primary.log_after(n + 1, 10, 1 << 20, false).await.unwrap()), vec![n + 2]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_replaces_a_standbys_rows_and_the_log_goes_on_from_it() {
        let dirs = tempfile::tempdir().unwrap();
        let primary = open(&dirs.path().join("a"));
        primary.start_capture().await.unwrap();
        for i in 0..5 {
            audit(&primary, i, false).await.unwrap();
        }
        // A standby with rows of its own (a fenced old primary's, say).
        let standby = open(&dirs.path().join("b"));
        audit(&standby, 77, false).await.unwrap();
        standby.become_standby(1).await.unwrap();
        let snap = primary.snapshot(dirs.path().join("snap.db")).await.unwrap();
        assert_eq!(snap.seq, 5);
        assert_eq!(standby.install_snapshot(snap.path, None).await.unwrap(), 5);
        assert_eq!(
            primary.replicated_digest().await.unwrap(),
            standby.replicated_digest().await.unwrap()
        );
        assert_eq!(standby.log_epoch_at(5).await.unwrap(), Some(1));
        audit(&primary, 6, false).await.unwrap();
        standby.apply_log(primary.log_after(5, 10, 1 << 20, true).await.unwrap()).await.unwrap();
        assert_eq!(
            primary.replicated_digest().await.unwrap(),
            standby.replicated_digest().await.unwrap()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_report_is_kept_past_the_snapshot_until_the_primarys_log_shows_it_merged() {
        use crate::store::takeover::{LoneOrder, TakeoverReport};
        let dirs = tempfile::tempdir().unwrap();
        let primary = open(&dirs.path().join("a"));
        primary.start_capture().await.unwrap();
        audit(&primary, 1, false).await.unwrap();
        let satellite = open(&dirs.path().join("b"));
        satellite.become_satellite(1).await.unwrap();
        let report = TakeoverReport {
            old_epoch: 1,
            satellite: Some("node-b".into()),
            checkins: vec![],
            orders: vec![LoneOrder {
                id: "O-1".into(),
                nonce: "apart-sale-1".into(),
                kind: "merch".into(),
                status: "paid".into(),
                created_at: 1_700_000_000_000,
                staff: "Jo".into(),
                currency: "EUR".into(),
                total_minor: 2500,
                items: vec![("d".into(), "tee".into(), 1)],
                rows: vec![],
            }],
            closes: vec![],
        };
        // Reported, then the snapshot replaced the rows that held it: the
        // report itself stays, and the box still says it was apart.
        let snap = primary.snapshot(dirs.path().join("snap.db")).await.unwrap();
        let seq = satellite.install_snapshot(snap.path, Some(report.clone())).await.unwrap();
        assert!(satellite.replica().report_pending());
        assert_eq!(satellite.pending_report().await.unwrap(), Some(report.clone()));
        assert!(!satellite.settle_report().await.unwrap(), "not merged yet");
        let st = satellite.replica_state().await.unwrap();
        assert_eq!(st.apart_since, Some(1_700_000_000_000));
        // Someone else's write arrives first: still not settled.
        audit(&primary, 2, false).await.unwrap();
        satellite
            .apply_log(primary.log_after(seq, 10, 1 << 20, true).await.unwrap())
            .await
            .unwrap();
        assert!(!satellite.settle_report().await.unwrap());
        // The primary merges it (the sale is listed): settled when the
        // listing arrives, and the box is no longer apart.
        let before = primary.replica_state().await.unwrap().seq;
        assert_eq!(primary.merge_takeover(report, 5).await.unwrap(), 1);
        satellite
            .apply_log(primary.log_after(before, 10, 1 << 20, true).await.unwrap())
            .await
            .unwrap();
        assert!(satellite.settle_report().await.unwrap());
        assert!(!satellite.replica().report_pending());
        assert_eq!(satellite.pending_report().await.unwrap(), None);
        assert_eq!(satellite.replica_state().await.unwrap().apart_since, None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_wait_for_the_standby_only_while_it_is_in_sync() {
        let dir = tempfile::tempdir().unwrap();
        let primary = open(dir.path());
        primary.start_capture().await.unwrap();
        primary.replica().wait_for_standby();
        let p = primary.clone();
        let mut write = tokio::spawn(async move { audit(&p, 1, false).await });
        // Committed, but not answered until the standby acknowledges it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!write.is_finished());
        let seq = *primary.replica().committed().borrow();
        assert!(primary.replica().oldest_wait().is_some());
        primary.replica().acknowledged(seq);
        (&mut write).await.unwrap().unwrap();
        // Held again; the standby is declared gone: answered at once.
        let p = primary.clone();
        let write = tokio::spawn(async move { audit(&p, 2, false).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        primary.replica().go_on_alone();
        write.await.unwrap().unwrap();
        assert!(!primary.replica().in_sync());
        audit(&primary, 3, false).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn promotion_raises_the_epoch_and_a_higher_epoch_fences_the_old_primary() {
        let dirs = tempfile::tempdir().unwrap();
        let primary = open(&dirs.path().join("a"));
        primary.start_capture().await.unwrap();
        let standby = standby_of(&primary, &dirs.path().join("b")).await;
        audit(&primary, 1, false).await.unwrap();
        standby.apply_log(primary.log_after(0, 10, 1 << 20, true).await.unwrap()).await.unwrap();
        let promoted = standby.promote(1_700_000_000_000).await.unwrap();
        assert_eq!(
            (promoted.role, promoted.epoch, promoted.epoch_start),
            (Role::Primary, 2, Some(1))
        );
        audit(&standby, 2, false).await.unwrap();
        let next = standby.log_after(1, 10, 1 << 20, true).await.unwrap();
        assert_eq!((next[0].seq, next[0].epoch), (2, 2), "the log goes on, in the new epoch");
        primary.fence(promoted.epoch).await.unwrap();
        assert!(matches!(audit(&primary, 3, false).await, Err(StoreError::NotPrimary)));
        // Reopened, it is still fenced.
        drop(primary);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let reopened = open(&dirs.path().join("a"));
        assert_eq!(reopened.replica().role(), Role::Standby);
        assert_eq!(reopened.replica().epoch(), 2);
    }

    #[tokio::test]
    async fn an_epoch_proof_holds_only_with_the_box_key_and_its_own_number() {
        let dirs = tempfile::tempdir().unwrap();
        let store = open(&dirs.path().join("a"));
        let proof = store.epoch_proof();
        assert_eq!(store.verify_epoch_proof(&proof), Some(store.replica().epoch()));
        let (_, sig) = proof.split_once('.').unwrap();
        assert_eq!(store.verify_epoch_proof(&format!("99.{sig}")), None, "another number");
        assert_eq!(store.verify_epoch_proof("2.AAAA"), None);
        assert_eq!(store.verify_epoch_proof("nonsense"), None);
        let other = open(&dirs.path().join("b"));
        assert_eq!(other.verify_epoch_proof(&proof), None, "another box's key");
    }

    #[test]
    fn memory_serves_only_contiguous_rows_and_falls_back_on_a_gap() {
        let row = |seq, epoch| LogRow { seq, epoch, changeset: vec![0; 10] };
        let mut r = Recent::default();
        for seq in 1..=3 {
            r.push(row(seq, 1));
        }
        assert_eq!((r.rows.len(), r.bytes), (3, 30));
        // Another process committed seq 4: a gap empties memory.
        r.push(row(5, 1));
        assert_eq!((r.rows.len(), r.bytes), (1, 10));
        // A new epoch starts over too.
        r.push(row(6, 2));
        assert_eq!(r.rows.front().map(|x| x.seq), Some(6));
        for seq in 7..(7 + RECENT_ROWS as i64) {
            r.push(row(seq, 2));
        }
        assert_eq!((r.rows.len(), r.bytes), (RECENT_ROWS, RECENT_ROWS * 10));
    }
}
