//! A consistent copy of the box's database while it runs: `VACUUM INTO`
//! reads one snapshot on a read connection (writers carry on) into a new,
//! compact file; then the copy is checked (`PRAGMA integrity_check`) and
//! counted.

use super::{Store, StoreError};
use rusqlite::{Connection, OpenFlags};
use std::path::PathBuf;

/// What a backup holds.
#[derive(Debug, serde::Serialize)]
pub struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub scans: u64,
    pub orders: u64,
    pub captures: u64,
    pub outbox_events: u64,
}

impl Store {
    /// Writes the database as it is now to `dest` (which must not exist)
    /// and checks the copy.
    pub async fn backup(&self, dest: PathBuf) -> Result<BackupReport, StoreError> {
        if dest.exists() {
            return Err(StoreError::invalid(
                "backup_exists",
                format!("{} exists already: pick a new file", dest.display()),
            ));
        }
        let target = dest.to_string_lossy().into_owned();
        self.read(move |conn| {
            conn.execute("VACUUM INTO ?1", [&target])?;
            Ok(())
        })
        .await?;
        let copy = Connection::open_with_flags(&dest, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let check: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(StoreError::invalid(
                "backup_damaged",
                format!("the copy at {} fails its integrity check: {check}", dest.display()),
            ));
        }
        let count = |table: &str| -> Result<u64, StoreError> {
            Ok(copy
                .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get::<_, i64>(0))?
                as u64)
        };
        Ok(BackupReport {
            bytes: std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0),
            scans: count("scans")?,
            orders: count("orders")?,
            captures: count("captures")?,
            outbox_events: count("outbox")?,
            path: dest,
        })
    }
}
