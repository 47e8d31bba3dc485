//! A small pool of read-only connections. Reads run on tokio's blocking
//! threads, never on the async workers; WAL lets them proceed while the
//! writer commits.

use super::StoreError;
use rusqlite::{Connection, OpenFlags};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

pub struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// One permit per connection: a reader waits here, not on the mutex.
    permits: Semaphore,
}

pub fn open_reader(path: &PathBuf) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

impl ReadPool {
    pub fn open(path: PathBuf, size: usize) -> Result<ReadPool, StoreError> {
        let conns = (0..size).map(|_| open_reader(&path)).collect::<Result<Vec<_>, _>>()?;
        Ok(ReadPool { path, idle: Mutex::new(conns), permits: Semaphore::new(size) })
    }

    pub async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let _permit = self.permits.acquire().await.map_err(|_| StoreError::Closed)?;
        let conn = self.idle.lock().expect("read pool lock").pop();
        let pool = Arc::clone(self);
        let joined = tokio::task::spawn_blocking(move || {
            let conn = match conn {
                Some(c) => c,
                None => open_reader(&pool.path)?,
            };
            let out = f(&conn);
            pool.idle.lock().expect("read pool lock").push(conn);
            out
        })
        .await;
        // A panicking read loses its connection; the next read opens a new one.
        joined.unwrap_or_else(|_| Err(StoreError::Internal("a read panicked; see the log".into())))
    }
}
