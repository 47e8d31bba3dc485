//! Counters and histograms for `/metrics`, in the Prometheus text format.
//!
//! Plain atomics, written by the store's writer thread and the API, read by
//! the scrape handler; no metrics crate, since the box needs a handful of
//! series and the Pi pays for every dependency.

use crate::domain::checkin::Reason;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A fixed-bucket histogram (cumulative on render, as Prometheus expects).
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum in millionths, so it stays an integer atomic.
    sum_micros: AtomicU64,
    total: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.sum_micros.fetch_add((v * 1e6) as u64, Relaxed);
        self.total.fetch_add(1, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let total = self.total.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {total}");
    }
}

/// Why a sign-in (or a pairing, or an approver PIN) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignInFailure {
    WrongPin,
    DeviceNotPaired,
    BadPairingCode,
    Throttled,
    Busy,
}

impl SignInFailure {
    pub const ALL: [SignInFailure; 5] = [
        SignInFailure::WrongPin,
        SignInFailure::DeviceNotPaired,
        SignInFailure::BadPairingCode,
        SignInFailure::Throttled,
        SignInFailure::Busy,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            SignInFailure::WrongPin => "wrong_pin",
            SignInFailure::DeviceNotPaired => "device_not_paired",
            SignInFailure::BadPairingCode => "bad_pairing_code",
            SignInFailure::Throttled => "throttled",
            SignInFailure::Busy => "busy",
        }
    }
}

/// The connection classes' names, in `api::conn::Class` order.
pub const CONNECTION_CLASSES: [&str; 3] = ["local", "known", "stranger"];

pub struct Metrics {
    admitted: AtomicU64,
    signin_failures: [AtomicU64; SignInFailure::ALL.len()],
    /// Connections refused at once, by class (local, known, stranger).
    connections_refused: [AtomicU64; 3],
    /// Request bodies cut off for arriving too slowly.
    bodies_too_slow: AtomicU64,
    /// Strangers' idle connections closed to let another stranger in.
    connections_evicted: AtomicU64,
    /// Connections open now (set by the accept loop).
    pub connections_open: AtomicU64,
    /// Milliseconds since `born` of the last scan decided: uploads slow
    /// down while the door is busy.
    last_scan_ms: AtomicU64,
    born: std::time::Instant,
    rejected: [AtomicU64; Reason::ALL.len()],
    replayed: AtomicU64,
    /// Thumbnails made and refused (noise, a video, a decode error).
    thumbnails: [AtomicU64; 2],
    pub write_batch_size: Histogram,
    pub commit_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            admitted: AtomicU64::new(0),
            signin_failures: std::array::from_fn(|_| AtomicU64::new(0)),
            connections_refused: std::array::from_fn(|_| AtomicU64::new(0)),
            bodies_too_slow: AtomicU64::new(0),
            connections_evicted: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            last_scan_ms: AtomicU64::new(0),
            born: std::time::Instant::now(),
            rejected: std::array::from_fn(|_| AtomicU64::new(0)),
            replayed: AtomicU64::new(0),
            thumbnails: [AtomicU64::new(0), AtomicU64::new(0)],
            write_batch_size: Histogram::new(&[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
            commit_seconds: Histogram::new(&[
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
        }
    }
}

impl Metrics {
    pub fn checkin(&self, reason: Option<Reason>) {
        self.last_scan_ms.store(self.born.elapsed().as_millis() as u64 + 1, Relaxed);
        match reason {
            None => self.admitted.fetch_add(1, Relaxed),
            Some(r) => self.rejected[r as usize].fetch_add(1, Relaxed),
        };
    }

    /// Whether a scan was decided within the last `window`.
    pub fn door_busy_within(&self, window: std::time::Duration) -> bool {
        let last = self.last_scan_ms.load(Relaxed);
        last > 0
            && (self.born.elapsed().as_millis() as u64 + 1).saturating_sub(last)
                <= window.as_millis() as u64
    }

    pub fn signin_failure(&self, why: SignInFailure) {
        self.signin_failures[why as usize].fetch_add(1, Relaxed);
    }

    /// A connection closed at once; `class` is its index among
    /// [`CONNECTION_CLASSES`].
    pub fn connection_refused(&self, class: usize) {
        if let Some(c) = self.connections_refused.get(class) {
            c.fetch_add(1, Relaxed);
        }
    }

    pub fn connection_evicted(&self) {
        self.connections_evicted.fetch_add(1, Relaxed);
    }

    pub fn body_too_slow(&self) {
        self.bodies_too_slow.fetch_add(1, Relaxed);
    }

    pub fn replayed(&self) {
        self.replayed.fetch_add(1, Relaxed);
    }

    /// One capture's thumbnail was tried: made, or not.
    pub fn thumbnail(&self, made: bool) {
        self.thumbnails[usize::from(!made)].fetch_add(1, Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let n = "venuebox_checkins_total";
        family(&mut out, n, "Scans decided, by verdict and reason.", "counter");
        let _ =
            writeln!(out, "{n}{{verdict=\"admit\",reason=\"\"}} {}", self.admitted.load(Relaxed));
        let rejected = Reason::ALL.map(|r| (r.as_str(), self.rejected[r as usize].load(Relaxed)));
        labelled(&mut out, "venuebox_checkins_total{verdict=\"reject\",reason", &rejected);
        let n = "venuebox_thumbnails_total";
        family(&mut out, n, "Capture thumbnails tried, by outcome.", "counter");
        let thumbs = [("made", &self.thumbnails[0]), ("failed", &self.thumbnails[1])];
        labelled(
            &mut out,
            "venuebox_thumbnails_total{outcome",
            &thumbs.map(|(k, c)| (k, c.load(Relaxed))),
        );
        let n = "venuebox_nonce_replays_total";
        family(
            &mut out,
            n,
            "Scans and orders answered from an earlier request with the same nonce.",
            "counter",
        );
        let _ = writeln!(out, "{n} {}", self.replayed.load(Relaxed));
        let n = "venuebox_signin_failures_total";
        family(&mut out, n, "Refused sign-ins, pairings and approver PINs, by reason.", "counter");
        let failures = SignInFailure::ALL
            .map(|f| (f.as_str(), self.signin_failures[f as usize].load(Relaxed)));
        labelled(&mut out, "venuebox_signin_failures_total{reason", &failures);
        let n = "venuebox_connections_refused_total";
        family(
            &mut out,
            n,
            "Connections closed at once because their class or their address had too many open.",
            "counter",
        );
        let refused: Vec<(&str, u64)> = CONNECTION_CLASSES
            .iter()
            .zip(&self.connections_refused)
            .map(|(c, n)| (*c, n.load(Relaxed)))
            .collect();
        labelled(&mut out, "venuebox_connections_refused_total{class", &refused);
        let n = "venuebox_connections_evicted_total";
        family(
            &mut out,
            n,
            "Strangers' idle or stuck connections closed to let another stranger in.",
            "counter",
        );
        let _ = writeln!(out, "{n} {}", self.connections_evicted.load(Relaxed));
        let n = "venuebox_request_bodies_too_slow_total";
        family(
            &mut out,
            n,
            "Requests whose body arrived slower than the minimum rate (answered 408).",
            "counter",
        );
        let _ = writeln!(out, "{n} {}", self.bodies_too_slow.load(Relaxed));
        let n = "venuebox_connections_open";
        family(&mut out, n, "HTTP connections open now.", "gauge");
        let _ = writeln!(out, "{n} {}", self.connections_open.load(Relaxed));
        self.write_batch_size.render(
            &mut out,
            "venuebox_store_write_batch_size",
            "Commands committed together in one transaction.",
        );
        self.commit_seconds.render(
            &mut out,
            "venuebox_store_commit_seconds",
            "Time from BEGIN to durable COMMIT of one write batch.",
        );
        out
    }
}

/// A metric family's HELP and TYPE lines.
fn family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One sample per label value: `prefix` is the name and labels up to the
/// last label's `=` (e.g. `name{reason`).
fn labelled(out: &mut String, prefix: &str, rows: &[(&str, u64)]) {
    for (value, count) in rows {
        let _ = writeln!(out, "{prefix}=\"{value}\"}} {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.checkin(None);
        m.checkin(Some(Reason::AlreadyCheckedIn));
        m.write_batch_size.observe(3.0);
        m.write_batch_size.observe(100.0);
        let text = m.render();
        assert!(text.contains("venuebox_checkins_total{verdict=\"admit\",reason=\"\"} 1"));
        assert!(text.contains("reason=\"already_checked_in\"} 1"));
        assert!(text.contains("venuebox_store_write_batch_size_bucket{le=\"4\"} 1"));
        assert!(text.contains("venuebox_store_write_batch_size_bucket{le=\"128\"} 2"));
        assert!(text.contains("venuebox_store_write_batch_size_count 2"));
    }
}
