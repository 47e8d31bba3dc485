//! SQLite's session extension, called directly: record what a transaction
//! changes as a *changeset* (each row's primary key, old and new values),
//! and apply a changeset to another copy of the database. The bundled
//! SQLite is compiled with it (`.cargo/config.toml`: `LIBSQLITE3_FLAGS`);
//! rusqlite's own wrapper would need libclang on every build machine for
//! its bindings, so the few functions used are declared here.
//!
//! Only `replica` uses this; every `unsafe` block is here.

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

type ConflictFn = unsafe extern "C" fn(*mut c_void, c_int, *mut RawIter) -> c_int;
type FilterFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;

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
    #[allow(clippy::too_many_arguments)]
    fn sqlite3changeset_apply_v2(
        db: *mut ffi::sqlite3,
        len: c_int,
        changeset: *mut c_void,
        filter: Option<FilterFn>,
        conflict: Option<ConflictFn>,
        ctx: *mut c_void,
        rebase: *mut *mut c_void,
        rebase_len: *mut c_int,
        flags: c_int,
    ) -> c_int;
    fn sqlite3changegroup_new(out: *mut *mut RawGroup) -> c_int;
    fn sqlite3changegroup_add(group: *mut RawGroup, len: c_int, data: *mut c_void) -> c_int;
    fn sqlite3changegroup_output(
        group: *mut RawGroup,
        len: *mut c_int,
        out: *mut *mut c_void,
    ) -> c_int;
    fn sqlite3changegroup_delete(group: *mut RawGroup);
}

const SQLITE_CHANGESET_ABORT: c_int = 2;
/// The caller's transaction (the writer job's savepoint) is the unit of
/// all-or-nothing; SQLite need not open a savepoint of its own.
const SQLITE_CHANGESETAPPLY_NOSAVEPOINT: c_int = 1;

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

/// Why a changeset did not apply.
#[derive(Debug, PartialEq, Eq)]
pub enum ApplyError {
    /// A change did not fit the rows here (SQLite's conflict type: 1 the
    /// old values differ, 2 the row is missing, 3 the row exists, 4 a
    /// constraint, 5 a foreign key).
    Conflict(i32),
    Sql(String),
}

unsafe extern "C" fn abort_on_conflict(ctx: *mut c_void, kind: c_int, _: *mut RawIter) -> c_int {
    // SAFETY: `ctx` is the `c_int` that `apply` lends for the call.
    let seen = unsafe { &mut *(ctx as *mut c_int) };
    if *seen == 0 {
        *seen = kind;
    }
    SQLITE_CHANGESET_ABORT
}

fn len_of(bytes: &[u8]) -> Result<c_int, String> {
    c_int::try_from(bytes.len()).map_err(|_| "the changeset is over 2 GiB".to_string())
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

/// Applies a changeset through `conn` inside the caller's transaction or
/// savepoint, which the caller rolls back on an error: on a conflict the
/// changes already made are not undone here.
pub fn apply(conn: &Connection, changeset: &[u8]) -> Result<(), ApplyError> {
    if changeset.is_empty() {
        return Ok(());
    }
    let len = len_of(changeset).map_err(ApplyError::Sql)?;
    let mut conflict: c_int = 0;
    // SAFETY: SQLite only reads the changeset buffer (the API takes a
    // non-const pointer); the callback and its context live for the call;
    // no rebase buffer is asked for.
    let rc = unsafe {
        sqlite3changeset_apply_v2(
            conn.handle(),
            len,
            changeset.as_ptr() as *mut c_void,
            None,
            Some(abort_on_conflict),
            &mut conflict as *mut c_int as *mut c_void,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            SQLITE_CHANGESETAPPLY_NOSAVEPOINT,
        )
    };
    if conflict != 0 {
        return Err(ApplyError::Conflict(conflict));
    }
    check(conn, rc, "cannot apply the changeset").map_err(ApplyError::Sql)
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
        apply(&b, &cs).unwrap();
        assert_eq!(dump(&a), dump(&b));
        assert_eq!(dump(&b), vec!["2=two", "x=2"]);
        let own: i64 = b.query_row("SELECT COUNT(*) FROM own", [], |r| r.get(0)).unwrap();
        assert_eq!(own, 0, "a table not attached is not recorded");
        // The same changeset again does not fit; the caller's savepoint
        // undoes what it did change.
        b.execute_batch("SAVEPOINT job").unwrap();
        assert!(matches!(apply(&b, &cs), Err(ApplyError::Conflict(_))));
        b.execute_batch("ROLLBACK TO job; RELEASE job").unwrap();
        assert_eq!(dump(&b), vec!["2=two", "x=2"]);
    }

    /// Records one transaction of `sql` on `a` and returns its changeset.
    fn record(a: &Connection, sql: &str) -> Vec<u8> {
        let tables = [CString::new("t").unwrap(), CString::new("k").unwrap()];
        a.execute_batch("BEGIN").unwrap();
        let mut s = Session::start(a, &tables).unwrap();
        a.execute_batch(sql).unwrap();
        let cs = s.changeset().unwrap().unwrap();
        drop(s);
        a.execute_batch("COMMIT").unwrap();
        cs
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
            apply(&one_by_one, b).unwrap();
        }
        let all: Vec<&[u8]> = batches.iter().map(Vec::as_slice).collect();
        apply(&combined, &combine(&all).unwrap()).unwrap();
        assert_eq!(dump(&one_by_one), dump(&a));
        assert_eq!(dump(&combined), dump(&a));
        assert_eq!(dump(&a), vec!["1=uno", "2=again", "x=6"]);
        // Combined, a copy that does not fit is still refused.
        let stale = db();
        stale.execute_batch("INSERT INTO t VALUES (1, 'other')").unwrap();
        assert!(matches!(apply(&stale, &combine(&all).unwrap()), Err(ApplyError::Conflict(_))));
    }

    #[test]
    fn nothing_changed_is_no_changeset() {
        let a = db();
        let mut s = Session::start(&a, &[CString::new("t").unwrap()]).unwrap();
        a.execute_batch("INSERT INTO own VALUES (1)").unwrap();
        assert_eq!(s.changeset().unwrap(), None);
    }
}
