//! SQLite's session extension, called directly: record what a transaction
//! changes as a *changeset* (each row's primary key, old and new values),
//! combine changesets, and apply one to another copy of the database
//! (read with SQLite's iterator, written with cached statements). The bundled
//! SQLite is compiled with it (`.cargo/config.toml`: `LIBSQLITE3_FLAGS`);
//! rusqlite's own wrapper would need libclang on every build machine for
//! its bindings, so the few functions used are declared here.
//!
//! Only `replica` uses this; every `unsafe` block is here.

use rusqlite::types::Value;
use rusqlite::{ffi, Connection};
use std::ffi::{c_char, c_int, c_void, CString};
use std::marker::PhantomData;

#[repr(C)]
struct RawSession {
    _opaque: [u8; 0],
}

#[repr(C)]
struct RawGroup {
    _opaque: [u8; 0],
}

#[repr(C)]
struct RawIter {
    _opaque: [u8; 0],
}

extern "C" {
    fn sqlite3session_create(
        db: *mut ffi::sqlite3,
        db_name: *const c_char,
        out: *mut *mut RawSession,
    ) -> c_int;
    fn sqlite3session_delete(session: *mut RawSession);
    fn sqlite3session_attach(session: *mut RawSession, table: *const c_char) -> c_int;
    fn sqlite3session_isempty(session: *mut RawSession) -> c_int;
    fn sqlite3session_changeset(
        session: *mut RawSession,
        len: *mut c_int,
        out: *mut *mut c_void,
    ) -> c_int;
    fn sqlite3changeset_start(out: *mut *mut RawIter, len: c_int, changeset: *mut c_void) -> c_int;
    fn sqlite3changeset_next(iter: *mut RawIter) -> c_int;
    fn sqlite3changeset_op(
        iter: *mut RawIter,
        table: *mut *const c_char,
        columns: *mut c_int,
        op: *mut c_int,
        indirect: *mut c_int,
    ) -> c_int;
    fn sqlite3changeset_pk(iter: *mut RawIter, pk: *mut *mut u8, columns: *mut c_int) -> c_int;
    fn sqlite3changeset_old(
        iter: *mut RawIter,
        column: c_int,
        out: *mut *mut ffi::sqlite3_value,
    ) -> c_int;
    fn sqlite3changeset_new(
        iter: *mut RawIter,
        column: c_int,
        out: *mut *mut ffi::sqlite3_value,
    ) -> c_int;
    fn sqlite3changeset_finalize(iter: *mut RawIter) -> c_int;
    fn sqlite3changegroup_new(out: *mut *mut RawGroup) -> c_int;
    fn sqlite3changegroup_add(group: *mut RawGroup, len: c_int, data: *mut c_void) -> c_int;
    fn sqlite3changegroup_output(
        group: *mut RawGroup,
        len: *mut c_int,
        out: *mut *mut c_void,
    ) -> c_int;
    fn sqlite3changegroup_delete(group: *mut RawGroup);
}

fn check(conn: &Connection, rc: c_int, what: &str) -> Result<(), String> {
    if rc == ffi::SQLITE_OK {
        return Ok(());
    }
    // SAFETY: the connection's handle is valid while `conn` is borrowed;
    // sqlite3_errmsg returns a string owned by SQLite, copied at once.
    let msg = unsafe {
        let p = ffi::sqlite3_errmsg(conn.handle());
        if p.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    Err(format!("{what}: SQLite error {rc} {msg}"))
}

/// Records the changes made through `conn` to the attached tables while it
/// lives. It borrows the connection, so it cannot outlive it.
pub struct Session<'c> {
    raw: *mut RawSession,
    conn: &'c Connection,
    _not_send: PhantomData<*mut ()>,
}

impl<'c> Session<'c> {
    /// Starts recording changes to `tables` of the main database.
    pub fn start(conn: &'c Connection, tables: &[CString]) -> Result<Session<'c>, String> {
        let mut raw: *mut RawSession = std::ptr::null_mut();
        // SAFETY: a valid handle and a NUL-terminated name; on success
        // SQLite gives a session we delete in Drop.
        let rc = unsafe { sqlite3session_create(conn.handle(), c"main".as_ptr(), &mut raw) };
        check(conn, rc, "cannot start recording changes")?;
        let session = Session { raw, conn, _not_send: PhantomData };
        for t in tables {
            // SAFETY: `raw` is the live session; `t` is NUL-terminated and
            // SQLite copies the name.
            let rc = unsafe { sqlite3session_attach(session.raw, t.as_ptr()) };
            check(conn, rc, "cannot record a table")?;
        }
        Ok(session)
    }

    /// The changeset of everything recorded so far; `None` when nothing
    /// changed.
    pub fn changeset(&mut self) -> Result<Option<Vec<u8>>, String> {
        // SAFETY: `raw` is the live session.
        if unsafe { sqlite3session_isempty(self.raw) } != 0 {
            return Ok(None);
        }
        let (mut len, mut buf): (c_int, *mut c_void) = (0, std::ptr::null_mut());
        // SAFETY: out-pointers to locals; on success SQLite allocated `buf`
        // (len bytes), which is copied and freed with sqlite3_free below.
        let rc = unsafe { sqlite3session_changeset(self.raw, &mut len, &mut buf) };
        check(self.conn, rc, "cannot make the changeset")?;
        if buf.is_null() || len <= 0 {
            return Ok(None);
        }
        // SAFETY: `buf` holds `len` bytes that SQLite wrote.
        let bytes = unsafe { std::slice::from_raw_parts(buf as *const u8, len as usize).to_vec() };
        // SAFETY: `buf` came from SQLite's allocator and is not used again.
        unsafe { ffi::sqlite3_free(buf) };
        Ok(Some(bytes))
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        // SAFETY: `raw` is the session made in `start`, deleted once, while
        // its connection is still open (the borrow guarantees it).
        unsafe { sqlite3session_delete(self.raw) }
    }
}

/// Several changesets, in order, as one: what applying them one after the
/// other would do (a row inserted then updated is one insert). Applying
/// one changeset prepares statements for every table it touches, so a
/// standby with several batches waiting applies them as one.
pub fn combine(changesets: &[&[u8]]) -> Result<Vec<u8>, String> {
    let mut raw: *mut RawGroup = std::ptr::null_mut();
    // SAFETY: an out-pointer to a local; on success SQLite gives a group
    // that `Group` deletes on every path below.
    if unsafe { sqlite3changegroup_new(&mut raw) } != ffi::SQLITE_OK || raw.is_null() {
        return Err("cannot combine changesets: out of memory".into());
    }
    struct Group(*mut RawGroup);
    impl Drop for Group {
        fn drop(&mut self) {
            // SAFETY: the group made above, deleted once.
            unsafe { sqlite3changegroup_delete(self.0) }
        }
    }
    let group = Group(raw);
    for c in changesets {
        let len = len_of(c)?;
        // SAFETY: SQLite only reads the buffer (and copies what it keeps).
        let rc = unsafe { sqlite3changegroup_add(group.0, len, c.as_ptr() as *mut c_void) };
        if rc != ffi::SQLITE_OK {
            return Err(format!("cannot combine changesets: SQLite error {rc}"));
        }
    }
    let (mut len, mut buf): (c_int, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: out-pointers to locals; SQLite allocates `buf` (len bytes),
    // copied and freed with sqlite3_free below.
    let rc = unsafe { sqlite3changegroup_output(group.0, &mut len, &mut buf) };
    if rc != ffi::SQLITE_OK {
        return Err(format!("cannot combine changesets: SQLite error {rc}"));
    }
    if buf.is_null() || len <= 0 {
        return Ok(Vec::new());
    }
    // SAFETY: `buf` holds `len` bytes that SQLite wrote.
    let out = unsafe { std::slice::from_raw_parts(buf as *const u8, len as usize).to_vec() };
    // SAFETY: `buf` came from SQLite's allocator and is not used again.
    unsafe { ffi::sqlite3_free(buf) };
    Ok(out)
}

fn len_of(bytes: &[u8]) -> Result<c_int, String> {
    c_int::try_from(bytes.len()).map_err(|_| "the changeset is over 2 GiB".to_string())
}

/// What a change does to its row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Op {
    Insert,
    Update,
    Delete,
}

/// One change of a changeset, copied out of SQLite: a column's value is
/// `None` where the changeset does not carry it (an update's unchanged
/// columns).
#[derive(Debug)]
struct Change {
    table: std::rc::Rc<str>,
    op: Op,
    pk: std::rc::Rc<[bool]>,
    old: Vec<Option<Value>>,
    new: Vec<Option<Value>>,
}

/// Copies a value out of SQLite; `None` for a column the change does not
/// carry (a null pointer).
///
/// # Safety
/// `v` is null or a value valid until the iterator moves on.
unsafe fn owned(v: *mut ffi::sqlite3_value) -> Result<Option<Value>, String> {
    if v.is_null() {
        return Ok(None);
    }
    // SAFETY: `v` is a live value (the caller's contract); text and blob
    // pointers are read before the length, as SQLite asks, and copied.
    unsafe {
        Ok(Some(match ffi::sqlite3_value_type(v) {
            ffi::SQLITE_INTEGER => Value::Integer(ffi::sqlite3_value_int64(v)),
            ffi::SQLITE_FLOAT => Value::Real(ffi::sqlite3_value_double(v)),
            ffi::SQLITE_TEXT => {
                let p = ffi::sqlite3_value_text(v);
                let n = ffi::sqlite3_value_bytes(v).max(0) as usize;
                let bytes = if p.is_null() { &[][..] } else { std::slice::from_raw_parts(p, n) };
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| "a replicated text value is not UTF-8".to_string())?;
                Value::Text(text)
            }
            ffi::SQLITE_BLOB => {
                let p = ffi::sqlite3_value_blob(v) as *const u8;
                let n = ffi::sqlite3_value_bytes(v).max(0) as usize;
                Value::Blob(if p.is_null() {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(p, n).to_vec()
                })
            }
            _ => Value::Null,
        }))
    }
}

/// Every change of a changeset, in its order.
fn changes(changeset: &[u8]) -> Result<Vec<Change>, String> {
    let len = len_of(changeset)?;
    let mut raw: *mut RawIter = std::ptr::null_mut();
    // SAFETY: SQLite only reads the buffer, which outlives the iterator
    // (finalized below on every path).
    let rc = unsafe { sqlite3changeset_start(&mut raw, len, changeset.as_ptr() as *mut c_void) };
    if rc != ffi::SQLITE_OK || raw.is_null() {
        return Err(format!("cannot read the changeset: SQLite error {rc}"));
    }
    struct Iter(*mut RawIter);
    impl Drop for Iter {
        fn drop(&mut self) {
            // SAFETY: the iterator made above, finalized once.
            unsafe { sqlite3changeset_finalize(self.0) };
        }
    }
    let iter = Iter(raw);
    let mut out = Vec::new();
    let (mut table, mut pk): (std::rc::Rc<str>, std::rc::Rc<[bool]>) =
        ("".into(), Vec::new().into());
    loop {
        // SAFETY: the live iterator; every pointer it hands out is read
        // before the next call moves it on.
        let rc = unsafe { sqlite3changeset_next(iter.0) };
        if rc == ffi::SQLITE_DONE {
            return Ok(out);
        }
        if rc != ffi::SQLITE_ROW {
            return Err(format!("cannot read the changeset: SQLite error {rc}"));
        }
        let (mut name, mut n, mut op, mut indirect) = (std::ptr::null(), 0, 0, 0);
        let mut flags: *mut u8 = std::ptr::null_mut();
        // SAFETY: out-pointers to locals; the name and the key flags are
        // SQLite's until the next step, copied (or compared) at once.
        let (name, flags) = unsafe {
            let rc = sqlite3changeset_op(iter.0, &mut name, &mut n, &mut op, &mut indirect);
            if rc != ffi::SQLITE_OK || name.is_null() {
                return Err(format!("cannot read the changeset: SQLite error {rc}"));
            }
            if sqlite3changeset_pk(iter.0, &mut flags, &mut n) != ffi::SQLITE_OK || flags.is_null()
            {
                return Err("cannot read the changeset's keys".into());
            }
            (std::ffi::CStr::from_ptr(name), std::slice::from_raw_parts(flags, n.max(0) as usize))
        };
        if table.as_bytes() != name.to_bytes() {
            table = name.to_str().map_err(|_| "a table name is not UTF-8".to_string())?.into();
            pk = flags.iter().map(|f| *f != 0).collect::<Vec<_>>().into();
        }
        let op = match op {
            ffi::SQLITE_INSERT => Op::Insert,
            ffi::SQLITE_UPDATE => Op::Update,
            ffi::SQLITE_DELETE => Op::Delete,
            other => return Err(format!("an unknown change {other} in the changeset")),
        };
        let column = |i: c_int, new: bool| -> Result<Option<Value>, String> {
            let mut v: *mut ffi::sqlite3_value = std::ptr::null_mut();
            // SAFETY: `i` is below the change's column count; the value is
            // copied before the iterator moves.
            unsafe {
                let rc = if new {
                    sqlite3changeset_new(iter.0, i, &mut v)
                } else {
                    sqlite3changeset_old(iter.0, i, &mut v)
                };
                if rc != ffi::SQLITE_OK {
                    return Err(format!("cannot read a changed value: SQLite error {rc}"));
                }
                owned(v)
            }
        };
        let (mut old, mut new) = (Vec::new(), Vec::new());
        if op != Op::Insert {
            old = (0..n).map(|i| column(i, false)).collect::<Result<_, _>>()?;
        }
        if op != Op::Delete {
            new = (0..n).map(|i| column(i, true)).collect::<Result<_, _>>()?;
        }
        out.push(Change { table: table.clone(), op, pk: pk.clone(), old, new });
    }
}

/// Why a changeset did not apply.
#[derive(Debug, PartialEq, Eq)]
pub enum ApplyError {
    /// A change did not fit the rows here (SQLite's conflict types: 1 the
    /// old values differ, 2 the row is missing, 3 the row exists, 4 a
    /// constraint, 5 a foreign key).
    Conflict(i32),
    Sql(String),
}

/// How one change went.
enum Failed {
    /// A constraint other than the key: tried again once the rest of the
    /// changeset is in (a unique value moving from one row to another).
    Constraint,
    Refused(ApplyError),
}

impl From<rusqlite::Error> for Failed {
    fn from(e: rusqlite::Error) -> Failed {
        Failed::Refused(ApplyError::Sql(e.to_string()))
    }
}

/// What [`apply`] needs to know of the tables it writes, read from the
/// schema once and kept while the schema stays the same (its version is
/// read on every apply; a migration changes it).
#[derive(Default)]
pub struct Schema {
    version: Option<i64>,
    tables: std::collections::HashMap<String, std::sync::Arc<Table>>,
}

/// A table's column names in order, and whether it has foreign keys.
pub struct Table {
    names: Vec<String>,
    foreign_keys: bool,
}

impl Schema {
    fn check(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let version: i64 =
            conn.prepare_cached("PRAGMA schema_version")?.query_row([], |r| r.get(0))?;
        if self.version != Some(version) {
            self.tables.clear();
            self.version = Some(version);
        }
        Ok(())
    }

    fn table(&mut self, conn: &Connection, name: &str) -> rusqlite::Result<std::sync::Arc<Table>> {
        if let Some(t) = self.tables.get(name) {
            return Ok(t.clone());
        }
        let names = conn
            .prepare_cached("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?
            .query_map([name], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        let foreign_keys = conn
            .prepare_cached("SELECT COUNT(*) > 0 FROM pragma_foreign_key_list(?1)")?
            .query_row([name], |r| r.get::<_, bool>(0))?;
        let table = std::sync::Arc::new(Table { names, foreign_keys });
        self.tables.insert(name.to_string(), table.clone());
        Ok(table)
    }
}

/// Applies a changeset through `conn` inside the caller's transaction or
/// savepoint, which the caller rolls back on an error: on a conflict the
/// changes already made are not undone here.
///
/// The changes run as cached statements: SQLite's own apply prepares its
/// statements on every call and sets `defer_foreign_keys`, which expires
/// every prepared statement of the connection; on a standby's writer that
/// was most of its work. Foreign keys are deferred here only when a changed
/// table has any; the rules are SQLite's: an update or a delete must find
/// the row with the old values it carries, an insert must not find it,
/// and a change refused by another constraint is tried again at the end.
pub fn apply(conn: &Connection, changeset: &[u8], schema: &mut Schema) -> Result<(), ApplyError> {
    if changeset.is_empty() {
        return Ok(());
    }
    let changes = changes(changeset).map_err(ApplyError::Sql)?;
    let sql = |e: rusqlite::Error| ApplyError::Sql(e.to_string());
    schema.check(conn).map_err(sql)?;
    let mut columns: Vec<(std::rc::Rc<str>, std::sync::Arc<Table>)> = Vec::new();
    let mut defer = false;
    for c in &changes {
        if columns.iter().any(|(t, _)| *t == c.table) {
            continue;
        }
        let table = schema.table(conn, &c.table).map_err(sql)?;
        if table.names.len() != c.pk.len() {
            return Err(ApplyError::Sql(format!(
                "table {} has {} columns here and {} in the changeset: install the same venuebox package on both boxes",
                c.table,
                table.names.len(),
                c.pk.len()
            )));
        }
        defer |= table.foreign_keys;
        columns.push((c.table.clone(), table));
    }
    if defer {
        conn.execute_batch("PRAGMA defer_foreign_keys = ON").map_err(sql)?;
    }
    // A table's place in `columns` and its column names.
    let names = |c: &Change| -> (usize, &[String]) {
        let i = columns.iter().position(|(t, _)| *t == c.table).expect("looked up above");
        (i, &columns[i].1.names)
    };
    let mut texts = Texts::new();
    // Passes until every change is in; one that made no progress means
    // the constraint is real.
    let mut pending = changes;
    while !pending.is_empty() {
        let before = pending.len();
        let mut left = Vec::new();
        for c in pending {
            match apply_one(conn, names(&c), &mut texts, &c) {
                Ok(()) => {}
                Err(Failed::Constraint) => left.push(c),
                Err(Failed::Refused(e)) => return Err(e),
            }
        }
        if left.len() == before {
            return Err(ApplyError::Conflict(4));
        }
        pending = left;
    }
    if defer {
        let (mut now, mut high) = (0, 0);
        // SAFETY: the connection's live handle and out-pointers to locals.
        let rc = unsafe {
            ffi::sqlite3_db_status(
                conn.handle(),
                ffi::SQLITE_DBSTATUS_DEFERRED_FKS,
                &mut now,
                &mut high,
                0,
            )
        };
        if rc == ffi::SQLITE_OK && now > 0 {
            return Err(ApplyError::Conflict(5));
        }
    }
    Ok(())
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"a" = ?1 AND "b" IS ?2 ...` over the columns that carry a value (keys
/// compared with `=`, which finds them by their index); parameters are
/// numbered from `first`, in column order.
fn clause(names: &[String], pk: &[bool], values: &[Option<Value>], first: usize) -> String {
    let mut out = String::new();
    for (n, i) in (0..values.len()).filter(|i| values[*i].is_some()).enumerate() {
        if !out.is_empty() {
            out.push_str(" AND ");
        }
        let how = if pk[i] { "=" } else { "IS" };
        out.push_str(&format!("{} {how} ?{}", quoted(&names[i]), first + n));
    }
    out
}

/// The statement text of each change shape (table, operation, columns
/// carried), made once per apply: a catch-up applies thousands of
/// changes of a few shapes.
type Texts = std::collections::HashMap<(usize, Op, u64, u64), String>;

/// Which columns carry a value, as bits (`None` past 64 columns).
fn carried(values: &[Option<Value>]) -> Option<u64> {
    (values.len() <= 64).then(|| {
        values.iter().enumerate().filter(|(_, v)| v.is_some()).fold(0, |m, (i, _)| m | 1 << i)
    })
}

/// The statement for a change of `c`'s shape; its parameters are the
/// new values carried, then the old ones, in column order (an insert:
/// every new value).
fn text(names: &[String], c: &Change) -> String {
    let table = format!("main.{}", quoted(&c.table));
    match c.op {
        Op::Insert => {
            let marks: Vec<String> = (1..=c.new.len()).map(|i| format!("?{i}")).collect();
            format!("INSERT INTO {table} VALUES ({})", marks.join(", "))
        }
        Op::Delete => format!("DELETE FROM {table} WHERE {}", clause(names, &c.pk, &c.old, 1)),
        Op::Update => {
            let set: Vec<String> = (0..c.new.len())
                .filter(|i| c.new[*i].is_some())
                .enumerate()
                .map(|(n, i)| format!("{} = ?{}", quoted(&names[i]), n + 1))
                .collect();
            let old = clause(names, &c.pk, &c.old, set.len() + 1);
            format!("UPDATE {table} SET {} WHERE {old}", set.join(", "))
        }
    }
}

fn apply_one(
    conn: &Connection,
    (table, names): (usize, &[String]),
    texts: &mut Texts,
    c: &Change,
) -> Result<(), Failed> {
    if c.op == Op::Update && c.new.iter().all(Option::is_none) {
        return Ok(());
    }
    let made;
    let sql: &str = match (carried(&c.new), carried(&c.old)) {
        (Some(new), Some(old)) => {
            let key = (table, c.op, new, old);
            texts.entry(key).or_insert_with(|| text(names, c))
        }
        _ => {
            made = text(names, c);
            &made
        }
    };
    let mut s = conn.prepare_cached(sql)?;
    let outcome = match c.op {
        Op::Insert => s.execute(rusqlite::params_from_iter(
            c.new.iter().map(|v| v.as_ref().unwrap_or(&Value::Null)),
        )),
        Op::Delete | Op::Update => {
            s.execute(rusqlite::params_from_iter(c.new.iter().chain(c.old.iter()).flatten()))
        }
    };
    let done = match outcome {
        Ok(n) => n,
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            // An insert whose key is taken: the row is already here.
            let key = [ffi::SQLITE_CONSTRAINT_PRIMARYKEY, ffi::SQLITE_CONSTRAINT_ROWID];
            return Err(if c.op == Op::Insert && key.contains(&e.extended_code) {
                Failed::Refused(ApplyError::Conflict(3))
            } else {
                Failed::Constraint
            });
        }
        Err(e) => return Err(e.into()),
    };
    if done == 1 {
        return Ok(());
    }
    // Not found with its old values: the row differs (1) or is missing (2).
    let keys: Vec<Option<Value>> =
        c.old.iter().zip(c.pk.iter()).map(|(v, k)| if *k { v.clone() } else { None }).collect();
    let found: bool = conn
        .prepare_cached(&format!(
            "SELECT COUNT(*) > 0 FROM main.{} WHERE {}",
            quoted(&c.table),
            clause(names, &c.pk, &keys, 1)
        ))?
        .query_row(rusqlite::params_from_iter(keys.iter().flatten()), |r| r.get(0))?;
    Err(Failed::Refused(ApplyError::Conflict(if found { 1 } else { 2 })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
             CREATE TABLE k (name TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID;
             CREATE TABLE own (x INTEGER PRIMARY KEY);",
        )
        .unwrap();
        c
    }

    fn dump(c: &Connection) -> Vec<String> {
        let mut out = Vec::new();
        for q in [
            "SELECT id || '=' || v FROM t ORDER BY id",
            "SELECT name || '=' || n FROM k ORDER BY name",
        ] {
            let mut s = c.prepare(q).unwrap();
            out.extend(s.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap));
        }
        out
    }

    #[test]
    fn a_recorded_transaction_applied_elsewhere_gives_the_same_rows() {
        let (a, b) = (db(), db());
        let tables = [CString::new("t").unwrap(), CString::new("k").unwrap()];
        a.execute_batch("INSERT INTO t VALUES (1, 'one'); INSERT INTO k VALUES ('x', 1)").unwrap();
        b.execute_batch("INSERT INTO t VALUES (1, 'one'); INSERT INTO k VALUES ('x', 1)").unwrap();
        a.execute_batch("BEGIN").unwrap();
        let mut s = Session::start(&a, &tables).unwrap();
        a.execute_batch(
            "INSERT INTO t VALUES (2, 'two'); UPDATE k SET n = n + 1 WHERE name = 'x';
             INSERT INTO own VALUES (7);
             SAVEPOINT job; INSERT INTO t VALUES (3, 'gone'); ROLLBACK TO job; RELEASE job;
             DELETE FROM t WHERE id = 1;",
        )
        .unwrap();
        let cs = s.changeset().unwrap().unwrap();
        drop(s);
        a.execute_batch("COMMIT").unwrap();
        apply(&b, &cs, &mut Schema::default()).unwrap();
        assert_eq!(dump(&a), dump(&b));
        assert_eq!(dump(&b), vec!["2=two", "x=2"]);
        let own: i64 = b.query_row("SELECT COUNT(*) FROM own", [], |r| r.get(0)).unwrap();
        assert_eq!(own, 0, "a table not attached is not recorded");
        // The same changeset again does not fit; the caller's savepoint
        // undoes what it did change.
        b.execute_batch("SAVEPOINT job").unwrap();
        assert!(matches!(apply(&b, &cs, &mut Schema::default()), Err(ApplyError::Conflict(_))));
        b.execute_batch("ROLLBACK TO job; RELEASE job").unwrap();
        assert_eq!(dump(&b), vec!["2=two", "x=2"]);
    }

    /// Records one transaction of `sql` on `a` and returns its changeset.
    fn record(a: &Connection, sql: &str) -> Vec<u8> {
        record_on(a, &["t", "k"], sql)
    }

    fn record_on(a: &Connection, tables: &[&str], sql: &str) -> Vec<u8> {
        let tables: Vec<CString> = tables.iter().map(|t| CString::new(*t).unwrap()).collect();
        a.execute_batch("BEGIN").unwrap();
        let mut s = Session::start(a, &tables).unwrap();
        a.execute_batch(sql).unwrap();
        let cs = s.changeset().unwrap().unwrap();
        drop(s);
        a.execute_batch("COMMIT").unwrap();
        cs
    }

    #[test]
    fn what_the_apply_knows_of_a_table_is_read_again_after_a_migration() {
        let (a, b) = (db(), db());
        let mut schema = Schema::default();
        apply(&b, &record(&a, "INSERT INTO t VALUES (1, 'one')"), &mut schema).unwrap();
        // Both boxes migrate (the same package): a new column.
        for c in [&a, &b] {
            c.execute_batch("ALTER TABLE t ADD COLUMN w INTEGER").unwrap();
        }
        apply(&b, &record(&a, "INSERT INTO t VALUES (2, 'two', 5)"), &mut schema).unwrap();
        let w: i64 = b.query_row("SELECT w FROM t WHERE id = 2", [], |r| r.get(0)).unwrap();
        assert_eq!(w, 5);
        assert_eq!(dump(&a), dump(&b));
    }

    #[test]
    fn batches_combined_apply_as_they_would_one_after_the_other() {
        let (a, one_by_one, combined) = (db(), db(), db());
        let batches = [
            record(&a, "INSERT INTO t VALUES (1, 'one'); INSERT INTO k VALUES ('x', 1)"),
            record(&a, "UPDATE t SET v = 'uno' WHERE id = 1; INSERT INTO t VALUES (2, 'two')"),
            record(&a, "DELETE FROM t WHERE id = 2; UPDATE k SET n = n + 5"),
            record(&a, "INSERT INTO t VALUES (2, 'again')"),
        ];
        for b in &batches {
            apply(&one_by_one, b, &mut Schema::default()).unwrap();
        }
        let all: Vec<&[u8]> = batches.iter().map(Vec::as_slice).collect();
        apply(&combined, &combine(&all).unwrap(), &mut Schema::default()).unwrap();
        assert_eq!(dump(&one_by_one), dump(&a));
        assert_eq!(dump(&combined), dump(&a));
        assert_eq!(dump(&a), vec!["1=uno", "2=again", "x=6"]);
        // Combined, a copy that does not fit is still refused.
        let stale = db();
        stale.execute_batch("INSERT INTO t VALUES (1, 'other')").unwrap();
        assert!(matches!(
            apply(&stale, &combine(&all).unwrap(), &mut Schema::default()),
            Err(ApplyError::Conflict(_))
        ));
    }

    #[test]
    fn nothing_changed_is_no_changeset() {
        let a = db();
        let mut s = Session::start(&a, &[CString::new("t").unwrap()]).unwrap();
        a.execute_batch("INSERT INTO own VALUES (1)").unwrap();
        assert_eq!(s.changeset().unwrap(), None);
    }

    fn db2() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER NOT NULL REFERENCES parent (id));
             CREATE TABLE parent (id INTEGER PRIMARY KEY, badge TEXT UNIQUE, r REAL, b BLOB, n);",
        )
        .unwrap();
        c
    }

    fn record2(a: &Connection, sql: &str) -> Vec<u8> {
        record_on(a, &["child", "parent"], sql)
    }

    fn dump2(c: &Connection) -> Vec<String> {
        let mut s = c
            .prepare(
                "SELECT 'p' || id || ':' || quote(badge) || ':' || quote(r) || ':' || quote(b) || ':' || quote(n) FROM parent
                 UNION ALL SELECT 'c' || id || ':' || parent FROM child ORDER BY 1",
            )
            .unwrap();
        s.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap).collect()
    }

    #[test]
    fn a_unique_value_moving_between_rows_and_a_child_before_its_parent_apply() {
        let (a, b) = (db2(), db2());
        let setup = "INSERT INTO parent VALUES (1, 'gold', 1.5, x'00ff', NULL);
                     INSERT INTO parent VALUES (2, 'silver', -0.25, x'', 'it''s');";
        a.execute_batch(setup).unwrap();
        b.execute_batch(setup).unwrap();
        // The child table is recorded first, so its row comes before its
        // parent's; the badge moves from row 1 to row 2.
        let cs = record2(
            &a,
            "PRAGMA defer_foreign_keys = ON;
             INSERT INTO child VALUES (10, 3); INSERT INTO parent VALUES (3, NULL, 2.0, NULL, 7);
             UPDATE parent SET badge = NULL WHERE id = 1; UPDATE parent SET badge = 'gold' WHERE id = 2;",
        );
        b.execute_batch("BEGIN").unwrap();
        apply(&b, &cs, &mut Schema::default()).unwrap();
        b.execute_batch("COMMIT").unwrap();
        assert_eq!(dump2(&a), dump2(&b));
        assert!(dump2(&b).contains(&"p2:'gold':-0.25:X'':'it''s'".to_string()), "{:?}", dump2(&b));
        apply(&b, &record2(&a, "UPDATE parent SET n = 8 WHERE id = 3"), &mut Schema::default())
            .unwrap();
        assert_eq!(dump2(&a), dump2(&b));
        // And back: one of the two directions meets the value still held.
        let back = "UPDATE parent SET badge = NULL WHERE id = 2; UPDATE parent SET badge = 'gold' WHERE id = 1";
        apply(&b, &record2(&a, back), &mut Schema::default()).unwrap();
        assert_eq!(dump2(&a), dump2(&b));
    }

    #[test]
    fn a_change_that_does_not_fit_is_refused_with_its_kind() {
        let (a, b) = (db2(), db2());
        a.execute_batch("INSERT INTO parent VALUES (1, 'gold', 1.5, NULL, NULL)").unwrap();
        let insert = record2(&a, "INSERT INTO parent VALUES (2, 'silver', 0, NULL, NULL)");
        let update = record2(&a, "UPDATE parent SET r = 9 WHERE id = 1");
        let orphan = record2(&a, "INSERT INTO child VALUES (1, 1)");
        let check = |c: &Connection, cs: &[u8]| {
            c.execute_batch("SAVEPOINT job").unwrap();
            let r = apply(c, cs, &mut Schema::default());
            c.execute_batch("ROLLBACK TO job; RELEASE job").unwrap();
            r
        };
        // The row is missing here.
        assert_eq!(check(&b, &update), Err(ApplyError::Conflict(2)));
        // The row is here with other values.
        b.execute_batch("INSERT INTO parent VALUES (1, 'gold', 2.5, NULL, NULL)").unwrap();
        assert_eq!(check(&b, &update), Err(ApplyError::Conflict(1)));
        // The row is already here.
        b.execute_batch("INSERT INTO parent VALUES (2, 'other', 0, NULL, NULL)").unwrap();
        assert_eq!(check(&b, &insert), Err(ApplyError::Conflict(3)));
        // Another row holds its unique value, whatever else applies.
        b.execute_batch("DELETE FROM parent WHERE id = 2; INSERT INTO parent VALUES (5, 'silver', 0, NULL, NULL)").unwrap();
        assert_eq!(check(&b, &insert), Err(ApplyError::Conflict(4)));
        // A child whose parent is not here.
        b.execute_batch("DELETE FROM parent WHERE id = 1").unwrap();
        b.execute_batch("BEGIN").unwrap();
        assert_eq!(check(&b, &orphan), Err(ApplyError::Conflict(5)));
        b.execute_batch("COMMIT").unwrap();
        assert_eq!(dump2(&b), vec!["p5:'silver':0.0:NULL:NULL"]);
    }
}
