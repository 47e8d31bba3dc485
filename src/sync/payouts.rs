//! Nightly payout statements: at a set local time in the event's zone
//! (03:00 unless configured), and on demand (`venuebox payouts run`), one
//! statement per creator, written under `DATA_DIR/payouts/` and queued for
//! the bucket at the same relative key
//! (`payouts/event=<id>/date=YYYY-MM-DD/creator=<id>.{json,csv}`).

use super::Syncer;
use crate::domain::payout::Statement;
use crate::domain::time::Millis;
use crate::store::{Store, StoreError};
use std::path::{Path, PathBuf};

fn zone(tz: &str) -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get(tz).unwrap_or_else(|e| {
        tracing::warn!(timezone = tz, error = %e, "unknown time zone; payout times use UTC");
        jiff::tz::TimeZone::UTC
    })
}

/// The first `hh:mm` local time in `tz` strictly after `after`.
pub fn next_run(after: Millis, tz: &str, at: (i8, i8)) -> Millis {
    let zone = zone(tz);
    let Ok(ts) = jiff::Timestamp::from_millisecond(after) else {
        return after + 86_400_000;
    };
    let local = ts.to_zoned(zone.clone());
    let mut day = local.date();
    for _ in 0..3 {
        let candidate =
            day.at(at.0, at.1, 0, 0).to_zoned(zone.clone()).map(|z| z.timestamp().as_millisecond());
        if let Ok(c) = candidate {
            if c > after {
                return c;
            }
        }
        day = day.tomorrow().unwrap_or(day);
    }
    after + 86_400_000
}

/// `YYYY-MM-DD` of `now` in the event's zone: the statement's date.
pub fn local_date(now: Millis, tz: &str) -> String {
    jiff::Timestamp::from_millisecond(now)
        .map(|t| t.to_zoned(zone(tz)).date().to_string())
        .unwrap_or_default()
}

/// Writes each statement as JSON and CSV under
/// `DATA_DIR/payouts/event=<id>/date=YYYY-MM-DD/creator=<id>.{json,csv}`;
/// returns the files written.
pub fn write_statements(
    data_dir: &Path,
    statements: &[Statement],
    date: &str,
) -> Result<Vec<PathBuf>, StoreError> {
    let mut files = Vec::new();
    for s in statements {
        let dir = data_dir
            .join("payouts")
            .join(format!("event={}", s.event))
            .join(format!("date={date}"));
        std::fs::create_dir_all(&dir).map_err(StoreError::io(dir.display().to_string()))?;
        let base = dir.join(format!("creator={}", s.creator));
        let json = base.with_extension("json");
        let body = serde_json::to_vec_pretty(s).expect("statement serialises");
        std::fs::write(&json, body).map_err(StoreError::io(json.display().to_string()))?;
        let csv = base.with_extension("csv");
        std::fs::write(&csv, s.csv()).map_err(StoreError::io(csv.display().to_string()))?;
        files.extend([json, csv]);
    }
    Ok(files)
}

/// Computes every statement, writes JSON and CSV, and queues the files
/// for the bucket. What both the nightly run and `payouts run` do.
pub async fn run_statements(
    store: &Store,
    data_dir: &Path,
    now: Millis,
) -> Result<(Vec<Statement>, Vec<PathBuf>), StoreError> {
    let ev = store.event().ok_or(StoreError::NoEvent)?;
    let statements = store.payout_statements(now).await?;
    let date = local_date(now, &ev.manifest.event.timezone);
    let files = write_statements(data_dir, &statements, &date)?;
    let queued = files
        .iter()
        .filter_map(|f| {
            let rel = f.strip_prefix(data_dir).ok()?.to_str()?.to_string();
            Some((rel, f.to_str()?.to_string()))
        })
        .collect();
    store.sync_file_queue(queued, now).await?;
    Ok((statements, files))
}

impl Syncer {
    /// When the first nightly run is due if none has run yet.
    pub(super) fn first_payout_due(&self) -> Option<Millis> {
        let ev = self.store.event()?;
        Some(next_run(self.clock.now(), &ev.manifest.event.timezone, self.config.payouts_at))
    }

    /// Runs the statements when the nightly time has come.
    pub(super) async fn payouts_step(&self, first_due: Option<Millis>) {
        let Some(ev) = self.store.event() else { return };
        let Ok(row) = self.store.sync_stream("payouts").await else {
            return;
        };
        let due = match row.last_success_at {
            Some(last) => next_run(last, &ev.manifest.event.timezone, self.config.payouts_at),
            None => match first_due {
                Some(d) => d,
                None => {
                    next_run(self.clock.now(), &ev.manifest.event.timezone, self.config.payouts_at)
                }
            },
        };
        let now = self.clock.now();
        if now < due {
            return;
        }
        match run_statements(&self.store, &self.data_dir, now).await {
            Ok((statements, _)) => {
                tracing::info!(
                    creators = statements.len(),
                    "nightly payout statements written and queued for the bucket"
                );
                self.record("payouts", Ok(())).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "nightly payout statements failed; will retry");
                self.record("payouts", Err(&e.into())).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::parse_rfc3339;

    #[test]
    fn the_nightly_run_is_at_three_in_the_event_zone() {
        let t = |s: &str| parse_rfc3339(s).unwrap();
        // 22:00 UTC on 27 Nov is 23:00 in Berlin: next run 03:00 Berlin = 02:00 UTC.
        assert_eq!(
            next_run(t("2026-11-27T22:00:00Z"), "Europe/Berlin", (3, 0)),
            t("2026-11-28T02:00:00Z")
        );
        // Just after a run, the next is a day later.
        assert_eq!(
            next_run(t("2026-11-28T02:00:00Z"), "Europe/Berlin", (3, 0)),
            t("2026-11-29T02:00:00Z")
        );
        // Summer time: 03:00 in Berlin is 01:00 UTC.
        assert_eq!(
            next_run(t("2026-07-01T12:00:00Z"), "Europe/Berlin", (3, 0)),
            t("2026-07-02T01:00:00Z")
        );
        assert_eq!(
            next_run(t("2026-11-27T10:00:00Z"), "Nowhere/Such", (3, 30)),
            t("2026-11-28T03:30:00Z"),
            "unknown zone: UTC"
        );
        assert_eq!(local_date(t("2026-11-27T23:30:00Z"), "Europe/Berlin"), "2026-11-28");
    }
}
