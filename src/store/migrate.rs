//! Schema migrations: SQL files embedded in the binary, applied in order,
//! each in its own transaction together with the row recording it.

use super::StoreError;
use rusqlite::Connection;

/// (version, name, SQL). Append only: a released migration never changes.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("migrations/0001_init.sql")),
    (2, "sales", include_str!("migrations/0002_sales.sql")),
    (3, "captures", include_str!("migrations/0003_captures.sql")),
    (4, "printing", include_str!("migrations/0004_printing.sql")),
    (5, "sync", include_str!("migrations/0005_sync.sql")),
    (6, "pairing", include_str!("migrations/0006_pairing.sql")),
    (7, "pairing_slips", include_str!("migrations/0007_pairing_slips.sql")),
    (8, "order_requests", include_str!("migrations/0008_order_requests.sql")),
    (9, "clock", include_str!("migrations/0009_clock.sql")),
    (10, "pretix", include_str!("migrations/0010_pretix.sql")),
    (11, "pairing_witness", include_str!("migrations/0011_pairing_witness.sql")),
    (12, "upload_owners", include_str!("migrations/0012_upload_owners.sql")),
    (13, "pretix_link", include_str!("migrations/0013_pretix_link.sql")),
    (14, "ticket_lookup", include_str!("migrations/0014_ticket_lookup.sql")),
    (15, "replication", include_str!("migrations/0015_replication.sql")),
    (16, "escrow", include_str!("migrations/0016_escrow.sql")),
    (17, "previews", include_str!("migrations/0017_previews.sql")),
];

pub fn latest() -> i64 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}

/// Brings the database up to this binary's schema. A database written by a
/// newer venuebox is refused rather than guessed at.
pub fn apply(conn: &mut Connection) -> Result<i64, StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )?;
    let current: i64 =
        conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| {
            r.get(0)
        })?;
    if current > latest() {
        return Err(StoreError::SchemaTooNew { found: current, known: latest() });
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, strftime('%s','now') * 1000)",
            rusqlite::params![version, name],
        )?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, name, "applied schema migration");
    }
    Ok(latest())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_once_and_refuses_a_newer_database() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(apply(&mut conn).unwrap(), latest());
        assert_eq!(apply(&mut conn).unwrap(), latest(), "second run is a no-op");
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 0)", []).unwrap();
        let err = apply(&mut conn).unwrap_err();
        assert!(matches!(err, StoreError::SchemaTooNew { found: 999, .. }));
        assert!(err.to_string().contains("newer venuebox"), "{err}");
    }
}
