//! Printing receipts: a worker per printer takes its station's pending
//! jobs, asks the printer how it is, and prints only when it is ready —
//! out of paper or cover open, the job waits (and staff see why) instead
//! of being lost. `FakePrinter` writes what it would print to files.

use super::escpos::{encode_receipt, EscPos, PrinterStatus};
use super::registry::Registry;
use super::DeviceError;
use crate::clock::Clock;
use crate::store::Store;
use futures_util::future::BoxFuture;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub trait Printer: Send + Sync {
    fn id(&self) -> String;
    fn status(&self) -> BoxFuture<'_, Result<PrinterStatus, DeviceError>>;
    fn print(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<(), DeviceError>>;
}

/// A test page: proves the printer, the paper and the cutter.
pub fn test_page(name: &str) -> Vec<u8> {
    EscPos::new().line("venuebox test page").line(name).qr(b"VENUEBOX-TEST", 4).cut(3).finish()
}

/// A pairing slip: the QR code of the pairing page (with its code), the
/// staff URLs and the CA fingerprint to compare, in groups staff can read.
/// A rehearsal slip (`test_code`) says the printer works and carries the
/// scanner test code as a second QR code.
pub fn pairing_slip(slip: &crate::store::printing::PairingSlip, width: usize) -> Vec<u8> {
    use super::escpos::Align;
    let mut p = EscPos::new();
    p.align(Align::Center);
    if slip.test_code.is_some() {
        p.bold(true).line("venuebox rehearsal").bold(false).line("this printer works").line("");
    }
    p.bold(true).line("venuebox: pair a staff phone").bold(false).line("");
    p.line("1. Scan with the phone's camera")
        .line("2. Install the box's certificate")
        .line("3. Check the fingerprint below")
        .line("");
    p.qr(slip.url.as_bytes(), 6).line("");
    p.align(Align::Left);
    match (&slip.code, &slip.expires_at) {
        (Some(code), Some(until)) => {
            p.line(&format!("Code: {code}")).line(&format!("valid until {until}"));
        }
        (Some(code), None) => {
            p.line(&format!("Code: {code}"));
        }
        _ => {
            p.line("Code: a supervisor makes one").line("(admin screen, or venuebox pair)");
        }
    }
    p.line("");
    for u in &slip.urls {
        p.line(u);
    }
    if let Some(fp) = &slip.fingerprint {
        p.line("").line("CA fingerprint (SHA-256):");
        let grouped = crate::domain::keys::fingerprint_colons(fp);
        // 16 bytes a line: "AB:CD:..." is 47 characters; narrower paper gets 8.
        let per_line = if width >= 48 { 16 } else { 8 };
        for chunk in grouped.split(':').collect::<Vec<_>>().chunks(per_line) {
            p.line(&chunk.join(":"));
        }
    }
    if let Some(test) = &slip.test_code {
        p.line("").align(Align::Center).bold(true).line("Scanner test").bold(false);
        p.line("scan this with each scanner").line("when the rehearsal asks").line("");
        p.qr(test.as_bytes(), 4).line("");
    }
    p.cut(3).finish()
}

/// Prints `station`'s jobs on `printer` until `stop`.
pub async fn run(
    printer: Arc<dyn Printer>,
    station: String,
    width: usize,
    store: Store,
    clock: Clock,
    registry: Arc<Registry>,
    stop: CancellationToken,
) {
    let id = printer.id();
    let idle = Duration::from_millis(250);
    let mut last_status: Option<PrinterStatus> = None;
    let mut last_check = std::time::Instant::now();
    while !stop.is_cancelled() {
        let job = match store.next_print_job(station.clone(), clock.now()).await {
            Ok(Some(j)) => j,
            Ok(None) => {
                // Idle: still look at the printer now and then, so staff
                // see "out of paper" before the next sale, not after.
                if last_check.elapsed() >= Duration::from_secs(2) {
                    last_check = std::time::Instant::now();
                    match printer.status().await {
                        Ok(s) if last_status != Some(s) => {
                            registry.update(
                                &id,
                                if s.ready() { "ready" } else { "needs_attention" },
                                s.advice().map(String::from),
                            );
                            last_status = Some(s);
                        }
                        Ok(_) => {}
                        Err(DeviceError::Unavailable(why)) => {
                            registry.update(&id, "disconnected", Some(why));
                            return;
                        }
                        Err(e) => tracing::debug!(printer = %id, error = %e, "status check failed"),
                    }
                }
                tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(idle) => continue }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the print queue");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let status = match printer.status().await {
            Ok(s) => s,
            Err(DeviceError::Unavailable(why)) => {
                registry.update(&id, "disconnected", Some(why));
                return;
            }
            Err(e) => {
                registry.update(&id, "needs_attention", Some(e.to_string()));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if last_status != Some(status) {
            registry.update(
                &id,
                if status.ready() { "ready" } else { "needs_attention" },
                status.advice().map(String::from),
            );
            if !status.ready() {
                tracing::warn!(printer = %id, advice = ?status.advice(), "receipt waits for the printer");
            }
            last_status = Some(status);
        }
        if !status.ready() {
            tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(Duration::from_millis(500)) => continue }
        }
        let bytes = match (&job.receipt, &job.slip) {
            (Some(r), _) => {
                let zone = store.event().map(|e| e.manifest.event.timezone.clone());
                encode_receipt(r, width, zone.as_deref().unwrap_or("UTC"))
            }
            (None, Some(slip)) => pairing_slip(slip, width),
            (None, None) => test_page(&id),
        };
        match printer.print(bytes).await {
            Ok(()) => {
                if let Err(e) = store.print_job_done(job.id, id.clone(), clock.now()).await {
                    tracing::error!(error = %e, job = job.id, "printed, but could not record it");
                }
                tracing::info!(printer = %id, job = job.id, kind = %job.kind, "printed");
            }
            Err(e) => {
                let _ = store.print_job_failed(job.id, e.to_string()).await;
                if let DeviceError::Unavailable(why) = e {
                    registry.update(&id, "disconnected", Some(why));
                    return;
                }
                registry.update(
                    &id,
                    "needs_attention",
                    Some(format!("printing failed: {e}; the receipt will be retried")),
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Writes each job to `dir` as `<n>.escpos` (the bytes) and `<n>.txt`
/// (what is readable of them), with a status a test can change.
pub struct FakePrinter {
    dir: PathBuf,
    /// What the next status request answers.
    pub status: Mutex<PrinterStatus>,
    printed: Mutex<u64>,
}

impl FakePrinter {
    pub fn new(dir: PathBuf) -> Result<FakePrinter, DeviceError> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| DeviceError::Io(format!("{}: {e}", dir.display())))?;
        Ok(FakePrinter { dir, status: Mutex::default(), printed: Mutex::new(0) })
    }

    pub fn set_status(&self, s: PrinterStatus) {
        *self.status.lock().expect("fake printer") = s;
    }
}

impl Printer for FakePrinter {
    fn id(&self) -> String {
        "simulated-printer".into()
    }
    fn status(&self) -> BoxFuture<'_, Result<PrinterStatus, DeviceError>> {
        let s = *self.status.lock().expect("fake printer");
        Box::pin(async move { Ok(s) })
    }
    fn print(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<(), DeviceError>> {
        Box::pin(async move {
            let n = {
                let mut p = self.printed.lock().expect("fake printer");
                *p += 1;
                *p
            };
            let text: String = bytes
                .iter()
                .map(|&b| if b == b'\n' || (0x20..0x7F).contains(&b) { b as char } else { ' ' })
                .collect();
            let base = self.dir.join(format!("{n:05}"));
            std::fs::write(base.with_extension("escpos"), &bytes)
                .map_err(|e| DeviceError::Io(e.to_string()))?;
            std::fs::write(base.with_extension("txt"), text)
                .map_err(|e| DeviceError::Io(e.to_string()))?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::escpos::qr_payloads;
    use crate::store::printing::PairingSlip;

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    #[test]
    fn a_rehearsal_slip_carries_the_pairing_page_and_the_scanner_test_code() {
        let slip = PairingSlip {
            url: "http://10.0.0.2:8081/".into(),
            urls: vec!["https://box.local:8443/".into()],
            fingerprint: Some("ab".repeat(32)),
            code: None,
            expires_at: None,
            test_code: Some("VB1.test".into()),
        };
        let bytes = pairing_slip(&slip, 42);
        assert_eq!(
            qr_payloads(&bytes),
            vec![b"http://10.0.0.2:8081/".to_vec(), b"VB1.test".to_vec()],
            "the pairing QR first, then the scanner test code"
        );
        let t = text(&bytes);
        assert!(t.contains("this printer works") && t.contains("a supervisor makes one"), "{t}");
        // A staff pairing slip: one QR with its code, no rehearsal words.
        let pairing = PairingSlip {
            code: Some("123456".into()),
            expires_at: Some("2026-11-30T20:00:00Z".into()),
            test_code: None,
            ..slip
        };
        let bytes = pairing_slip(&pairing, 42);
        assert_eq!(qr_payloads(&bytes).len(), 1);
        let t = text(&bytes);
        assert!(t.contains("Code: 123456") && !t.contains("rehearsal"), "{t}");
    }
}
