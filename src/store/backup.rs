//! A consistent copy of the box's database while it runs: `VACUUM INTO`
//! reads one snapshot on a read connection (writers carry on) into a new,
//! compact file; then the copy is checked (`PRAGMA integrity_check`) and
//! counted.

use super::{Store, StoreError};
use crate::domain::error_code::ErrorCode;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

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
    /// The database as it is now (a checked snapshot) and the box identity
    /// from `data_dir` in `dest`, a new directory only its owner can read
    /// (0700, files 0600), all on disk before this returns: what `backup`,
    /// the archive of `event close` and the rehearsal's scratch copy are.
    pub async fn snapshot_dir(
        &self,
        data_dir: &Path,
        dest: &Path,
    ) -> Result<BackupReport, StoreError> {
        use std::os::unix::fs::PermissionsExt;
        if dest.exists() {
            return Err(StoreError::invalid(
                ErrorCode::BackupExists,
                format!("{} exists already: use a new directory", dest.display()),
            ));
        }
        let io = |what: &str, e: std::io::Error| StoreError::Internal(format!("{what}: {e}"));
        std::fs::create_dir_all(dest).map_err(|e| io(&dest.display().to_string(), e))?;
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io("permissions", e))?;
        let report = self.backup(dest.join(super::DB_FILE)).await?;
        let identity = super::identity::FILE;
        std::fs::copy(data_dir.join(identity), dest.join(identity))
            .map_err(|e| io(&format!("cannot copy {identity}"), e))?;
        for f in [report.path.as_path(), &dest.join(identity)] {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| io("permissions", e))?;
            // On disk before anything relies on it (event close wipes next).
            std::fs::File::open(f).and_then(|f| f.sync_all()).map_err(|e| io("fsync", e))?;
        }
        std::fs::File::open(dest).and_then(|d| d.sync_all()).map_err(|e| io("fsync", e))?;
        Ok(report)
    }

    /// Writes the database as it is now to `dest` (which must not exist)
    /// and checks the copy.
    pub async fn backup(&self, dest: PathBuf) -> Result<BackupReport, StoreError> {
        if dest.exists() {
            return Err(StoreError::invalid(
                ErrorCode::BackupExists,
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
                ErrorCode::BackupDamaged,
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
