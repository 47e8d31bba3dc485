//! The USB adapter (nusb): finds scanners and printers, follows hotplug
//! (plus a re-list every few seconds, since hotplug events need udev),
//! claims interfaces away from the kernel drivers (so a scanner never
//! types into a console), reads scanner reports and drives printers.
//! Everything it learns goes through the pure decoders in `hid`,
//! `serial` and `escpos`, and on to the scan pipeline and print queue.

use super::config::{DevicesConfig, Seen};
use super::escpos::{self, PrinterStatus, StatusKind};
use super::hid::{BootKeyboardDecoder, DecoderConfig};
use super::pipeline::{Binding, ScanPipeline};
use super::printing::{self, Printer};
use super::registry::{DeviceState, Registry};
use super::serial::{HidPosDecoder, SerialLineDecoder};
use super::DeviceError;
use crate::clock::Clock;
use crate::domain::ids::GateId;
use crate::store::Store;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use nusb::descriptors::TransferType;
use nusb::hotplug::HotplugEvent;
use nusb::transfer::{
    Buffer, Bulk, ControlIn, ControlType, Direction, In, Interrupt, Out, Recipient,
};
use nusb::{DeviceId, DeviceInfo, Interface};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

const USB_TIMEOUT: Duration = Duration::from_secs(5);
const RELIST: Duration = Duration::from_secs(3);

fn usb_err(e: impl std::fmt::Display + std::fmt::Debug) -> DeviceError {
    let text = format!("{e:?}");
    if text.contains("Disconnected") || text.contains("NotFound") {
        DeviceError::Unavailable(format!("unplugged ({e})"))
    } else {
        DeviceError::Io(e.to_string())
    }
}

/// What a device is for the box, from its interface descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    KeyboardScanner(u8),
    PosScanner(u8),
    /// (control interface, data interface)
    SerialScanner(u8),
    Printer(u8),
}

pub fn classify(info: &DeviceInfo) -> Option<Kind> {
    let ifaces: Vec<_> = info.interfaces().collect();
    if let Some(i) = ifaces.iter().find(|i| i.class() == 0x07) {
        return Some(Kind::Printer(i.interface_number()));
    }
    if let Some(i) =
        ifaces.iter().find(|i| i.class() == 0x03 && i.subclass() == 1 && i.protocol() == 1)
    {
        return Some(Kind::KeyboardScanner(i.interface_number()));
    }
    // HID that is neither a boot keyboard nor a mouse: a HID POS scanner.
    if let Some(i) = ifaces.iter().find(|i| i.class() == 0x03 && i.protocol() == 0) {
        return Some(Kind::PosScanner(i.interface_number()));
    }
    if ifaces.iter().any(|i| i.class() == 0x02) {
        if let Some(d) = ifaces.iter().find(|i| i.class() == 0x0a) {
            return Some(Kind::SerialScanner(d.interface_number()));
        }
    }
    None
}

pub fn seen(info: &DeviceInfo) -> Seen {
    let chain: Vec<String> = info.port_chain().iter().map(|p| p.to_string()).collect();
    Seen {
        vid: info.vendor_id(),
        pid: info.product_id(),
        serial: info.serial_number().map(String::from),
        port: format!("{}-{}", info.busnum(), chain.join(".")),
    }
}

fn device_name(info: &DeviceInfo) -> String {
    format!(
        "{} {} ({:04x}:{:04x})",
        info.manufacturer_string().unwrap_or("?"),
        info.product_string().unwrap_or("USB device"),
        info.vendor_id(),
        info.product_id()
    )
}

/// Every USB device the box would use, with what it would do: for
/// `venuebox devices`.
pub async fn list(config: &DevicesConfig) -> Result<Vec<(String, String, String)>, DeviceError> {
    let devices = nusb::list_devices()
        .await
        .map_err(|e| DeviceError::Unavailable(format!("cannot list USB devices: {e}")))?;
    Ok(devices
        .filter_map(|d| {
            let kind = classify(&d)?;
            let s = seen(&d);
            let role = match kind {
                Kind::Printer(_) => format!("printer, station {}", config.printer(&s).station),
                _ => {
                    let r = config.scanner(&s);
                    format!(
                        "scanner, gate {} ({})",
                        r.gate.unwrap_or_else(|| "first gate".into()),
                        r.direction.as_str()
                    )
                }
            };
            Some((s.port, device_name(&d), role))
        })
        .collect())
}

/// `venuebox devices test`: a test page on every attached printer.
pub async fn print_test_pages() -> Result<usize, DeviceError> {
    let devices = nusb::list_devices()
        .await
        .map_err(|e| DeviceError::Unavailable(format!("cannot list USB devices: {e}")))?;
    let mut n = 0;
    for info in devices {
        if let Some(Kind::Printer(iface)) = classify(&info) {
            let p = UsbPrinter::open(&info, iface, format!("usb:{}", seen(&info).port)).await?;
            p.print(printing::test_page(&device_name(&info))).await?;
            n += 1;
        }
    }
    Ok(n)
}

/// A device task and how to stop it when the device leaves.
struct Running {
    task: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
    /// The registry id, `usb:<port>`.
    name: String,
}

/// Finds devices as they come and go and runs a task for each.
pub struct UsbManager {
    pub config: Arc<DevicesConfig>,
    pub pipeline: Arc<ScanPipeline>,
    pub registry: Arc<Registry>,
    pub store: Store,
    pub clock: Clock,
}

impl UsbManager {
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut watch = match nusb::watch_devices() {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "USB hotplug unavailable; re-listing devices every few seconds instead");
                None
            }
        };
        // One task per device in use; a finished task means the device went
        // away, and a re-list picks it up again when it is back.
        let mut running: HashMap<DeviceId, Running> = HashMap::new();
        let mut tick = tokio::time::interval(RELIST);
        let mut warned = false;
        loop {
            let event = async {
                match watch.as_mut() {
                    Some(w) => w.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                ev = event => match ev {
                    Some(HotplugEvent::Connected(info)) => self.attach(info, &mut running, &stop),
                    Some(HotplugEvent::Disconnected(id)) => {
                        if let Some(r) = running.remove(&id) {
                            r.stop.cancel();
                            self.registry.update(&r.name, "disconnected", Some("unplugged".into()));
                        }
                    }
                    None => {}
                },
                _ = tick.tick() => {
                    running.retain(|_, r| !r.task.is_finished());
                    match nusb::list_devices().await {
                        Ok(devices) => {
                            if warned {
                                self.registry.update("usb", "ready", None);
                            }
                            warned = false;
                            for info in devices {
                                self.attach(info, &mut running, &stop);
                            }
                        }
                        Err(e) if !warned => {
                            warned = true;
                            tracing::warn!(error = %e, "no USB: scanners and printers are unavailable until it appears");
                            self.registry.set(DeviceState {
                                id: "usb".into(),
                                kind: "usb".into(),
                                name: "USB bus".into(),
                                role: "scanners and printers".into(),
                                status: "unavailable".into(),
                                detail: Some(format!("cannot list USB devices ({e}): scan with staff phones; receipts wait in the queue")),
                            });
                        }
                        Err(_) => {}
                    }
                }
            }
        }
    }

    fn attach(
        self: &Arc<Self>,
        info: DeviceInfo,
        running: &mut HashMap<DeviceId, Running>,
        stop: &CancellationToken,
    ) {
        if running.get(&info.id()).is_some_and(|r| !r.task.is_finished()) {
            return;
        }
        let Some(kind) = classify(&info) else { return };
        let me = self.clone();
        let token = stop.child_token();
        let id = info.id();
        let name = format!("usb:{}", seen(&info).port);
        let task_token = token.clone();
        running.insert(
            id,
            Running {
                task: tokio::spawn(async move { me.drive(info, kind, task_token).await }),
                stop: token,
                name,
            },
        );
    }

    async fn drive(&self, info: DeviceInfo, kind: Kind, stop: CancellationToken) {
        let s = seen(&info);
        let id = format!("usb:{}", s.port);
        let name = device_name(&info);
        let result = match kind {
            Kind::Printer(iface) => {
                let rule = self.config.printer(&s);
                self.registry.set(DeviceState {
                    id: id.clone(),
                    kind: "printer".into(),
                    name,
                    role: format!("station {}", rule.station),
                    status: "connected".into(),
                    detail: None,
                });
                match UsbPrinter::open(&info, iface, id.clone()).await {
                    Ok(p) => {
                        printing::run(
                            Arc::new(p),
                            rule.station,
                            rule.width,
                            self.store.clone(),
                            self.clock.clone(),
                            self.registry.clone(),
                            stop,
                        )
                        .await;
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Kind::KeyboardScanner(iface) | Kind::PosScanner(iface) | Kind::SerialScanner(iface) => {
                let rule = self.config.scanner(&s);
                let binding = Binding {
                    scanner: id.clone(),
                    gate: rule.gate.clone().map(GateId),
                    direction: rule.direction,
                };
                let role = format!(
                    "gate {} ({})",
                    rule.gate.clone().unwrap_or_else(|| "first".into()),
                    rule.direction.as_str()
                );
                self.registry.set(DeviceState {
                    id: id.clone(),
                    kind: "scanner".into(),
                    name,
                    role,
                    status: "connected".into(),
                    detail: None,
                });
                let decoder = DecoderConfig {
                    prefix: rule.prefix.clone(),
                    suffix: rule.suffix.clone(),
                    inter_key_timeout: rule.inter_key_timeout_ms.map(Duration::from_millis),
                };
                scanner(&info, kind, iface, decoder, &binding, &self.pipeline, stop).await
            }
        };
        let detail = match result {
            Ok(()) => None,
            Err(e) => {
                tracing::info!(device = %id, error = %e, "device stopped");
                Some(e.to_string())
            }
        };
        self.registry.update(&id, "disconnected", detail);
    }
}

/// Reads a scanner until it is unplugged or the box stops.
async fn scanner(
    info: &DeviceInfo,
    kind: Kind,
    iface: u8,
    cfg: DecoderConfig,
    b: &Binding,
    pipeline: &ScanPipeline,
    stop: CancellationToken,
) -> Result<(), DeviceError> {
    let dev = info.open().await.map_err(usb_err)?;
    // Detaching usbhid / cdc_acm: the codes come to us, not to a console.
    let iface: Interface = dev.detach_and_claim_interface(iface).await.map_err(usb_err)?;
    let desc =
        iface.descriptor().ok_or_else(|| DeviceError::Io("interface has no descriptor".into()))?;
    let want = if matches!(kind, Kind::SerialScanner(_)) {
        TransferType::Bulk
    } else {
        TransferType::Interrupt
    };
    let addr = desc
        .endpoints()
        .find(|e| e.transfer_type() == want && e.direction() == Direction::In)
        .ok_or_else(|| DeviceError::Io("scanner has no IN endpoint".into()))?
        .address();
    tracing::info!(scanner = %b.scanner, gate = ?b.gate, "scanner ready");
    let mut keyboard = BootKeyboardDecoder::new(cfg.clone());
    let mut pos = HidPosDecoder::default();
    let mut serial = SerialLineDecoder::new(&cfg.prefix, &cfg.suffix);
    let tick = cfg.inter_key_timeout.unwrap_or(Duration::from_secs(3600));
    // Both endpoint kinds deliver the same completions; one loop serves both.
    macro_rules! read_loop {
        ($ep:expr) => {{
            let mut ep = $ep;
            let mps = ep.max_packet_size();
            for _ in 0..4 {
                ep.submit(Buffer::new(mps));
            }
            loop {
                let c = tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(tick) => {
                        if let Some(code) = keyboard.timed_out(Instant::now()) {
                            let _ = pipeline.scan(b, &code, Instant::now()).await;
                        }
                        continue;
                    }
                    c = ep.next_complete() => c,
                };
                c.status.map_err(usb_err)?;
                let data = c.buffer[..c.actual_len].to_vec();
                ep.submit(Buffer::new(mps));
                let at = Instant::now();
                let codes: Vec<String> = match kind {
                    Kind::KeyboardScanner(_) => keyboard.feed(&data, at).into_iter().collect(),
                    Kind::PosScanner(_) => pos.feed(&data).into_iter().collect(),
                    _ => serial.feed(&data),
                };
                for code in codes {
                    if let Err(e) = pipeline.scan(b, &code, at).await {
                        tracing::warn!(scanner = %b.scanner, error = %e, "scan not recorded");
                    }
                }
            }
        }};
    }
    if want == TransferType::Bulk {
        read_loop!(iface.endpoint::<Bulk, In>(addr).map_err(usb_err)?)
    } else {
        read_loop!(iface.endpoint::<Interrupt, In>(addr).map_err(usb_err)?)
    }
}

/// A USB printer-class receipt printer speaking ESC/POS.
pub struct UsbPrinter {
    id: String,
    iface: Interface,
    number: u8,
    /// Bulk OUT, shared by status requests and jobs: one writer at a time.
    out: tokio::sync::Mutex<nusb::io::EndpointWrite<Bulk>>,
    /// Bulk IN for `DLE EOT` replies; `None` once the printer has shown it
    /// does not answer them (then the port status alone is used).
    status_in: tokio::sync::Mutex<Option<nusb::Endpoint<Bulk, In>>>,
}

impl UsbPrinter {
    pub async fn open(
        info: &DeviceInfo,
        number: u8,
        id: String,
    ) -> Result<UsbPrinter, DeviceError> {
        let dev = info.open().await.map_err(usb_err)?;
        // Detach usblp: the box owns the printer.
        let iface = dev.detach_and_claim_interface(number).await.map_err(usb_err)?;
        let desc = iface
            .descriptor()
            .ok_or_else(|| DeviceError::Io("printer interface has no descriptor".into()))?;
        let bulk = |dir: Direction| {
            desc.endpoints()
                .find(|e| e.transfer_type() == TransferType::Bulk && e.direction() == dir)
                .map(|e| e.address())
        };
        let out_addr = bulk(Direction::Out)
            .ok_or_else(|| DeviceError::Io("printer has no bulk OUT endpoint".into()))?;
        let in_addr = bulk(Direction::In);
        let out = iface
            .endpoint::<Bulk, Out>(out_addr)
            .map_err(usb_err)?
            .writer(16 * 1024)
            .with_write_timeout(USB_TIMEOUT);
        let status_in = match in_addr {
            Some(a) => Some(iface.endpoint::<Bulk, In>(a).map_err(usb_err)?),
            None => None,
        };
        let p = UsbPrinter {
            id,
            iface,
            number,
            out: tokio::sync::Mutex::new(out),
            status_in: tokio::sync::Mutex::new(status_in),
        };
        let dev_id = p.device_id().await.unwrap_or_default();
        tracing::info!(printer = %p.id, device_id = ?dev_id, "printer ready");
        Ok(p)
    }

    async fn class_in(&self, request: u8, value: u16, length: u16) -> Result<Vec<u8>, DeviceError> {
        let req = ControlIn {
            control_type: ControlType::Class,
            recipient: Recipient::Interface,
            request,
            value,
            index: (self.number as u16) << 8,
            length,
        };
        self.iface.control_in(req, USB_TIMEOUT).await.map_err(usb_err)
    }

    /// IEEE 1284 device id (GET_DEVICE_ID).
    pub async fn device_id(&self) -> Result<Vec<(String, String)>, DeviceError> {
        Ok(escpos::device_id(&self.class_in(0, 0, 1024).await?))
    }

    /// One `DLE EOT n` round trip; `None` when the printer does not answer.
    async fn realtime(&self, kind: StatusKind) -> Result<Option<u8>, DeviceError> {
        let mut guard = self.status_in.lock().await;
        let Some(ep) = guard.as_mut() else {
            return Ok(None);
        };
        {
            let mut out = self.out.lock().await;
            out.write_all(&escpos::status_request(kind)).await.map_err(usb_err)?;
            out.flush().await.map_err(usb_err)?;
        }
        ep.submit(Buffer::new(ep.max_packet_size()));
        match tokio::time::timeout(Duration::from_millis(300), ep.next_complete()).await {
            Ok(c) => {
                c.status.map_err(usb_err)?;
                Ok(c.buffer[..c.actual_len].last().copied())
            }
            Err(_) => {
                ep.cancel_all();
                let _ = ep.next_complete().await;
                tracing::info!(printer = %self.id, "printer does not answer DLE EOT; using the USB port status only");
                *guard = None;
                Ok(None)
            }
        }
    }
}

impl Printer for UsbPrinter {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn status(&self) -> BoxFuture<'_, Result<PrinterStatus, DeviceError>> {
        Box::pin(async move {
            let port = self.class_in(1, 0, 1).await?;
            let mut s = escpos::port_status(port.first().copied().unwrap_or(0x18));
            for kind in [StatusKind::OfflineCause, StatusKind::PaperSensor] {
                if let Some(byte) = self.realtime(kind).await? {
                    s.apply(kind, byte);
                }
            }
            Ok(s)
        })
    }

    fn print(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<(), DeviceError>> {
        Box::pin(async move {
            let mut out = self.out.lock().await;
            out.write_all(&bytes).await.map_err(usb_err)?;
            out.flush().await.map_err(usb_err)
        })
    }
}
