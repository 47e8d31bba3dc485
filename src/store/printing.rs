//! The print queue: a job per receipt, written in the order's own
//! transaction; printers take the oldest pending job of their station and
//! mark it done only after the bytes went out.

use super::{Store, StoreError, WriteCtx};
use crate::domain::ids::OrderId;
use crate::domain::receipt::Receipt;
use crate::domain::time::{format_rfc3339, Millis};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// Where receipts print unless the device configuration says otherwise.
pub const DEFAULT_STATION: &str = "default";

/// The station a satellite's printer configured for `station` serves on
/// the primary's queue: the satellite's sales (forwarded, or apart) print
/// there, at the satellite's own counter.
pub fn satellite_station(node: &str, station: &str) -> String {
    format!("{node}:{station}")
}

/// Where an order's receipt prints: at the satellite it was sold at
/// (forwarded from it, `satellite`, or sold here apart), else at the
/// default station.
pub(crate) fn receipt_station(
    ctx: &WriteCtx<'_>,
    apart: bool,
    satellite: Option<&str>,
) -> Result<String, StoreError> {
    let node = if apart {
        super::replica::state_of(ctx.conn, "node")?
    } else {
        satellite.map(str::to_string)
    };
    Ok(node.map_or_else(|| DEFAULT_STATION.to_string(), |n| satellite_station(&n, DEFAULT_STATION)))
}

/// A receipt a satellite printed from its copy, as it tells the primary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PrintedHere {
    pub job_id: i64,
    pub created_at: Millis,
    pub printer: String,
    pub printed_at: Millis,
}
/// A receipt not printed within this time is not printed on its own any
/// more (a printer plugged in hours later should not spew old receipts);
/// it can still be reprinted on request.
pub const STALE_AFTER_MS: Millis = 15 * 60_000;

pub(crate) fn enqueue(
    ctx: &WriteCtx<'_>,
    order: Option<&str>,
    kind: &str,
    station: &str,
    now: Millis,
) -> Result<i64, StoreError> {
    ctx.conn
        .prepare_cached("INSERT INTO print_jobs (order_id, kind, station, created_at, status) VALUES (?1, ?2, ?3, ?4, 'pending')")?
        .execute(params![order, kind, station, now])?;
    Ok(ctx.conn.last_insert_rowid())
}

/// A job a printer is about to print.
#[derive(Clone, Debug)]
pub struct PrintJob {
    pub id: i64,
    pub kind: String,
    /// The receipt to print (absent for test pages and pairing slips).
    pub receipt: Option<Receipt>,
    /// What a pairing slip says.
    pub slip: Option<PairingSlip>,
}

/// A slip that pairs a staff phone: scan the QR, check the fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PairingSlip {
    /// The pairing page with the code, as the QR code carries it.
    pub url: String,
    /// The staff URLs over HTTPS.
    pub urls: Vec<String>,
    /// Hex SHA-256 of the box CA certificate (DER).
    pub fingerprint: Option<String>,
    /// The pairing code in the URL; none on a rehearsal slip (the page
    /// then asks for one).
    pub code: Option<String>,
    pub expires_at: Option<String>,
    /// A rehearsal slip: the code staff scan to test each scanner, printed
    /// as a second QR code under the pairing one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_code: Option<String>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct PrintJobView {
    pub id: i64,
    pub order_id: Option<String>,
    pub kind: String,
    pub station: String,
    pub created_at: String,
    pub status: String,
    pub printed_at: Option<String>,
    pub printer: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// Who sold the job's order (never sent: it decides whether the
    /// caller may see the order id).
    #[serde(skip)]
    pub seller: Option<String>,
}

fn job_of(
    id: i64,
    kind: String,
    receipt: Option<String>,
    payload: Option<String>,
) -> Result<PrintJob, StoreError> {
    let internal = |e: serde_json::Error| StoreError::Internal(e.to_string());
    let receipt = receipt.map(|r| serde_json::from_str(&r)).transpose().map_err(internal)?;
    let slip = payload.map(|p| serde_json::from_str(&p)).transpose().map_err(internal)?;
    Ok(PrintJob { id, kind, receipt, slip })
}

impl Store {
    fn is_satellite(&self) -> bool {
        self.replica().role() == super::replica::Role::Satellite
    }

    /// On a satellite: the oldest job of its own station (`satellite_station`)
    /// in its copy that it has not printed yet. It takes no write of its own:
    /// what it printed is kept beside the copy (`repl_printed`).
    async fn next_print_job_here(
        &self,
        station: String,
        now: Millis,
    ) -> Result<Option<PrintJob>, StoreError> {
        self.read(move |c| {
            let node = super::replica::state_of(c, "node")?.unwrap_or_default();
            let row: Option<(i64, String, Option<String>, Option<String>)> = c
                .prepare_cached(
                    "SELECT j.id, j.kind, o.receipt, j.payload FROM print_jobs j LEFT JOIN orders o ON o.id = j.order_id
                     WHERE j.station = ?1 AND j.status = 'pending' AND j.created_at >= ?2
                       AND NOT EXISTS (SELECT 1 FROM repl_printed p WHERE p.job_id = j.id AND p.created_at = j.created_at)
                     ORDER BY j.id LIMIT 1",
                )?
                .query_row(params![satellite_station(&node, &station), now - STALE_AFTER_MS], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?;
            row.map(|(id, kind, receipt, payload)| job_of(id, kind, receipt, payload)).transpose()
        })
        .await
    }

    /// On a satellite: what its printers printed that the primary's log
    /// does not show done yet.
    pub async fn printed_here(&self) -> Result<Vec<PrintedHere>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT p.job_id, p.created_at, p.printer, p.printed_at FROM repl_printed p
                 WHERE EXISTS (SELECT 1 FROM print_jobs j WHERE j.id = p.job_id AND j.created_at = p.created_at AND j.status = 'pending')",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(PrintedHere { job_id: r.get(0)?, created_at: r.get(1)?, printer: r.get(2)?, printed_at: r.get(3)? })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// On a satellite: forgets what the primary's log shows done (or no
    /// longer has: a job made apart, replaced by a snapshot).
    pub async fn forget_printed(&self) -> Result<(), StoreError> {
        const DONE: &str = "FROM repl_printed WHERE NOT EXISTS (SELECT 1 FROM print_jobs j
            WHERE j.id = repl_printed.job_id AND j.created_at = repl_printed.created_at AND j.status = 'pending')";
        // Looked at first: most of the time there is nothing to forget, and
        // a write would cost the satellite an fsync.
        let any: bool = self
            .read(|c| {
                Ok(c.query_row(&format!("SELECT EXISTS (SELECT 1 {DONE})"), [], |r| r.get(0))?)
            })
            .await?;
        if !any {
            return Ok(());
        }
        self.write_replicated(|ctx| {
            ctx.conn.execute(&format!("DELETE {DONE}"), [])?;
            Ok(())
        })
        .await
    }

    /// On the primary: the receipts a satellite printed, done.
    pub async fn printed_at_satellite(&self, printed: Vec<PrintedHere>) -> Result<(), StoreError> {
        self.write(move |ctx| {
            for p in printed {
                ctx.conn
                    .prepare_cached(
                        "UPDATE print_jobs SET status = 'done', printed_at = ?1, printer = ?2, attempts = attempts + 1
                         WHERE id = ?3 AND created_at = ?4 AND status = 'pending'",
                    )?
                    .execute(params![p.printed_at, p.printer, p.job_id, p.created_at])?;
            }
            Ok(())
        })
        .await
    }

    /// The oldest pending job for `station`; stale ones are skipped first.
    pub async fn next_print_job(
        &self,
        station: String,
        now: Millis,
    ) -> Result<Option<PrintJob>, StoreError> {
        if self.is_satellite() {
            return self.next_print_job_here(station, now).await;
        }
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached("UPDATE print_jobs SET status = 'skipped' WHERE station = ?1 AND status = 'pending' AND created_at < ?2")?
                .execute(params![station, now - STALE_AFTER_MS])?;
            let row: Option<(i64, String, Option<String>, Option<String>)> = ctx
                .conn
                .prepare_cached(
                    "SELECT j.id, j.kind, o.receipt, j.payload FROM print_jobs j LEFT JOIN orders o ON o.id = j.order_id
                     WHERE j.station = ?1 AND j.status = 'pending' ORDER BY j.id LIMIT 1",
                )?
                .query_row([&station], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()?;
            row.map(|(id, kind, receipt, payload)| job_of(id, kind, receipt, payload)).transpose()
        })
        .await
    }

    pub async fn print_job_done(
        &self,
        id: i64,
        printer: String,
        now: Millis,
    ) -> Result<(), StoreError> {
        if self.is_satellite() {
            return self
                .write_replicated(move |ctx| {
                    ctx.conn
                        .prepare_cached(
                            "INSERT OR IGNORE INTO repl_printed (job_id, created_at, printer, printed_at)
                             SELECT id, created_at, ?2, ?3 FROM print_jobs WHERE id = ?1",
                        )?
                        .execute(params![id, printer, now])?;
                    Ok(())
                })
                .await;
        }
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached("UPDATE print_jobs SET status = 'done', printed_at = ?1, printer = ?2, attempts = attempts + 1 WHERE id = ?3")?
                .execute(params![now, printer, id])?;
            Ok(())
        })
        .await
    }

    pub async fn print_job_failed(&self, id: i64, error: String) -> Result<(), StoreError> {
        if self.is_satellite() {
            // Tried again at the next look; the primary keeps the count.
            tracing::warn!(job = id, error = %error, "a receipt did not print at this satellite");
            return Ok(());
        }
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached(
                    "UPDATE print_jobs SET attempts = attempts + 1, last_error = ?1 WHERE id = ?2",
                )?
                .execute(params![error, id])?;
            Ok(())
        })
        .await
    }

    /// Queues a reprint of an order's receipt, or a test page (`None`).
    pub async fn queue_print(
        &self,
        order: Option<OrderId>,
        station: String,
        now: Millis,
    ) -> Result<i64, StoreError> {
        self.write(move |ctx| {
            if let Some(o) = &order {
                let exists: bool = ctx
                    .conn
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM orders WHERE id = ?1)")?
                    .query_row([o.as_str()], |r| r.get(0))?;
                if !exists {
                    return Err(StoreError::NotFound(format!("order {o}")));
                }
            }
            enqueue(
                ctx,
                order.as_ref().map(|o| o.as_str()),
                if order.is_some() { "reprint" } else { "test" },
                &station,
                now,
            )
        })
        .await
    }

    /// Queues a pairing slip on `station`'s printer.
    pub async fn queue_pairing_slip(
        &self,
        slip: PairingSlip,
        station: String,
        now: Millis,
    ) -> Result<i64, StoreError> {
        let payload =
            serde_json::to_string(&slip).map_err(|e| StoreError::Internal(e.to_string()))?;
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached("INSERT INTO print_jobs (kind, station, created_at, status, payload) VALUES ('pairing', ?1, ?2, 'pending', ?3)")?
                .execute(params![station, now, payload])?;
            Ok(ctx.conn.last_insert_rowid())
        })
        .await
    }

    pub async fn print_jobs(
        &self,
        pending_only: bool,
        limit: usize,
    ) -> Result<Vec<PrintJobView>, StoreError> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT j.id, j.order_id, j.kind, j.station, j.created_at, j.status, j.printed_at, j.printer, j.attempts, j.last_error, o.staff
                     FROM print_jobs j LEFT JOIN orders o ON o.id = j.order_id
                     WHERE (?1 = 0 OR j.status = 'pending') ORDER BY j.id DESC LIMIT ?2",
                )?
                .query_map(params![pending_only, limit as i64], |r| {
                    Ok(PrintJobView {
                        id: r.get(0)?,
                        order_id: r.get(1)?,
                        kind: r.get(2)?,
                        station: r.get(3)?,
                        created_at: format_rfc3339(r.get(4)?),
                        status: r.get(5)?,
                        printed_at: r.get::<_, Option<Millis>>(6)?.map(format_rfc3339),
                        printer: r.get(7)?,
                        attempts: r.get(8)?,
                        last_error: r.get(9)?,
                        seller: r.get(10)?,
                    })
                })?
                .collect::<Result<_, _>>()?)
        })
        .await
    }
}
