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

impl Store {
    /// The oldest pending job for `station`; stale ones are skipped first.
    pub async fn next_print_job(
        &self,
        station: String,
        now: Millis,
    ) -> Result<Option<PrintJob>, StoreError> {
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
            row.map(|(id, kind, receipt, payload)| {
                let internal = |e: serde_json::Error| StoreError::Internal(e.to_string());
                let receipt = receipt.map(|r| serde_json::from_str(&r)).transpose().map_err(internal)?;
                let slip = payload.map(|p| serde_json::from_str(&p)).transpose().map_err(internal)?;
                Ok(PrintJob { id, kind, receipt, slip })
            })
            .transpose()
        })
        .await
    }

    pub async fn print_job_done(
        &self,
        id: i64,
        printer: String,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached("UPDATE print_jobs SET status = 'done', printed_at = ?1, printer = ?2, attempts = attempts + 1 WHERE id = ?3")?
                .execute(params![now, printer, id])?;
            Ok(())
        })
        .await
    }

    pub async fn print_job_failed(&self, id: i64, error: String) -> Result<(), StoreError> {
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
