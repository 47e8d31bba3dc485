//! Scanners and printers against a real kernel USB stack: these tests run
//! inside the usbvm virtual machine (`bash scripts/usb-tests`), where emulated USB
//! gadgets are real devices to the kernel and to nusb. Outside it they are
//! ignored. The box runs in hardware mode: its USB manager finds the
//! devices by hotplug, claims them from usbhid/usblp, and drives them; the
//! test plays the other side of the cable through the gadget nodes.

mod common;

use common::{nonce, TestBox};
use serde_json::{json, Value};
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use venuebox::api::ApiConfig;
use venuebox::clock::Clock;
use venuebox::devices::escpos::encode_receipt;
use venuebox::devices::hid::char_to_report;
use venuebox::devices::signals::Output;
use venuebox::devices::Mode;
use venuebox::domain::role::Role;

/// TCG emulation is slow; a real failure is not.
const T: Duration = Duration::from_secs(60);
const GADGET_SET_PRINTER_STATUS: u64 = 0xC001_6722;

struct Gadget {
    node: String,
    udc: String,
    configfs: String,
}

fn gadget(kind: &str) -> Gadget {
    let n: usize = std::env::var("USBVM_GADGETS").unwrap().parse().unwrap();
    let var = |i: usize, f: &str| std::env::var(format!("USBVM_GADGET_{i}_{f}")).unwrap();
    let i = (0..n).find(|&i| var(i, "KIND") == kind).unwrap_or_else(|| panic!("no {kind} gadget"));
    Gadget { node: var(i, "NODE"), udc: var(i, "UDC"), configfs: var(i, "CONFIGFS") }
}

impl Gadget {
    fn plug(&self) {
        std::fs::write(format!("{}/UDC", self.configfs), &self.udc).unwrap();
    }
    fn unplug(&self) {
        std::fs::write(format!("{}/UDC", self.configfs), "\n").unwrap();
    }
}

fn in_vm() -> bool {
    std::env::var("USBVM").as_deref() == Ok("1")
}

/// Types `text` and Enter as a scanner in keyboard mode would; returns
/// when the last report was written.
fn type_code(node: &str, text: &str) -> Instant {
    let mut f = OpenOptions::new().write(true).open(node).expect("open HID gadget node");
    for c in text.chars().chain(['\n']) {
        let (mods, key) = char_to_report(c).unwrap_or_else(|| panic!("cannot type {c:?}"));
        f.write_all(&[mods, 0, key, 0, 0, 0, 0, 0]).unwrap();
        f.write_all(&[0; 8]).unwrap();
    }
    Instant::now()
}

async fn device(b: &TestBox, token: &str, kind: &str, status: &str) -> Value {
    let deadline = Instant::now() + T;
    loop {
        let (_, d) = b.get(token, "/api/v1/devices").await;
        if let Some(dev) = d["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["kind"] == kind && x["status"] == status)
        {
            return dev.clone();
        }
        assert!(Instant::now() < deadline, "no {kind} became {status}: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start() -> TestBox {
    TestBox::start_devices(Clock::system(), ApiConfig::default(), Mode::Hardware, |m| {
        m["creators"] = json!([{"id": "cr", "name": "Cr"}]);
        m["drops"] = common::open_drop("cr", 50);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the usbvm virtual machine: bash scripts/usb-tests"]
async fn usb_scanner_hotplug_checks_in_lights_up_and_survives_replug() {
    assert!(in_vm(), "run through bash scripts/usb-tests");
    let b = start().await;
    let door = b.token(Role::Door).await;
    let gpio = b.state.devices.fake_gpio.clone().expect("no GPIO in the VM: lights are recorded");
    let kbd = gadget("hidkbd");
    kbd.plug();
    let dev = device(&b, &door, "scanner", "connected").await;
    let id = dev["id"].as_str().unwrap().to_string();
    assert_eq!(dev["role"], "gate first (entry)");
    // Give the box a moment to claim the interface from usbhid.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Scan p50/p99: from the last HID report of a code to the green LED.
    let mut lat = Vec::new();
    for i in 0..12 {
        let code = b.signed(&format!("U-{i}"), "ga");
        let node = kbd.node.clone();
        let before = Instant::now();
        let typed = tokio::task::spawn_blocking(move || type_code(&node, &code)).await.unwrap();
        let ev = gpio
            .wait_on(Output::Green, before, T)
            .await
            .unwrap_or_else(|| panic!("scan {i}: no green light"));
        lat.push(ev.at.saturating_duration_since(typed));
    }
    lat.sort();
    println!(
        "usbvm: last HID report to green LED over {} scans: p50 {:?}, p99 {:?}",
        lat.len(),
        lat[lat.len() / 2],
        lat[lat.len() - 1]
    );
    let (_, list) = b.get(&door, "/api/v1/checkins?verdict=admit").await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 12);
    assert!(items.iter().all(|s| s["device"] == id.as_str()), "recorded as scanned by {id}");

    // A code that is already in: red.
    let code = b.signed("U-0", "ga");
    let node = kbd.node.clone();
    let before = Instant::now();
    tokio::task::spawn_blocking(move || type_code(&node, &code)).await.unwrap();
    assert!(gpio.wait_on(Output::Red, before, T).await.is_some(), "a repeat entry lights red");

    // Unplug mid-operation, plug back in: scanning carries on.
    kbd.unplug();
    device(&b, &door, "scanner", "disconnected").await;
    kbd.plug();
    device(&b, &door, "scanner", "connected").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let code = b.signed("U-after-replug", "ga");
    let node = kbd.node.clone();
    let before = Instant::now();
    tokio::task::spawn_blocking(move || type_code(&node, &code)).await.unwrap();
    assert!(gpio.wait_on(Output::Green, before, T).await.is_some(), "scans after a replug");
    kbd.unplug();
}

/// Waits until the printer side holds `n` bytes and the box has marked
/// the job printed (which it does only after writing every byte), so any
/// extra bytes would already be there.
async fn wait_for_bytes(b: &TestBox, token: &str, got: &Mutex<Vec<u8>>, n: usize) {
    let deadline = Instant::now() + T;
    loop {
        let (_, d) = b.get(token, "/api/v1/devices").await;
        if got.lock().unwrap().len() >= n && d["print_jobs_pending"] == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "receipt incomplete: {} of {n} bytes, {} jobs pending",
            got.lock().unwrap().len(),
            d["print_jobs_pending"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The printer's side of the cable: answers DLE EOT status requests from
/// `paper`, keeps GET_PORT_STATUS in step, and collects everything else.
fn printer_side(
    node: String,
    paper: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
) {
    let f = loop {
        match OpenOptions::new().read(true).write(true).open(&node) {
            Ok(f) => break f,
            Err(_) if !stop.load(Ordering::SeqCst) => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => return,
        }
    };
    let mut f = f;
    let fd = f.as_raw_fd();
    let set_port = |ok: bool| {
        let s: u8 = if ok { 0x10 | 0x08 } else { 0x10 | 0x20 };
        // SAFETY: ioctl by value on an open descriptor.
        unsafe { libc::ioctl(fd, GADGET_SET_PRINTER_STATUS as _, libc::c_ulong::from(s)) };
    };
    let mut last = !paper.load(Ordering::SeqCst);
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        let ok = paper.load(Ordering::SeqCst);
        if ok != last {
            set_port(ok);
            last = ok;
        }
        // Non-blocking poll so paper changes take effect while idle.
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 50) } <= 0 {
            // Idle: the bytes held back (a status request may have been
            // split across reads) belong to the job.
            got.lock().unwrap().extend(pending.drain(..));
            continue;
        }
        let n = match f.read(&mut buf) {
            Ok(n) => n,
            Err(_) => continue,
        };
        pending.extend_from_slice(&buf[..n]);
        // Status requests are answered and kept out of the job bytes.
        while let Some(at) =
            pending.windows(3).position(|w| w[0] == 0x10 && w[1] == 0x04 && (1..=4).contains(&w[2]))
        {
            let kind = pending[at + 2];
            got.lock().unwrap().extend_from_slice(&pending[..at]);
            pending.drain(..at + 3);
            let ok = paper.load(Ordering::SeqCst);
            let reply = match (kind, ok) {
                (2, false) => 0x32, // offline cause: paper end
                (4, false) => 0x72, // paper sensor: paper end
                _ => 0x12,
            };
            let _ = f.write_all(&[reply]);
        }
        let keep = pending.len().min(2);
        let flush = pending.len() - keep;
        got.lock().unwrap().extend(pending.drain(..flush));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the usbvm virtual machine: bash scripts/usb-tests"]
async fn usb_printer_prints_byte_identical_receipts_and_waits_out_paper_out() {
    assert!(in_vm(), "run through bash scripts/usb-tests");
    let b = start().await;
    let merch = b.token(Role::Merch).await;
    let printer = gadget("printer");
    let paper = Arc::new(AtomicBool::new(false));
    let got = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    printer.plug();
    device(&b, &merch, "printer", "connected").await;
    let side = {
        let (node, paper, got, stop) =
            (printer.node.clone(), paper.clone(), got.clone(), stop.clone());
        std::thread::spawn(move || printer_side(node, paper, got, stop))
    };
    // Out of paper: the sale's receipt waits, and staff are told.
    let (st, sale) = b.post(&merch, "/api/v1/drops/d/sales", json!({"items": [{"sku": "TEE", "qty": 1}], "nonce": nonce(), "tender": {"kind": "card", "reference": "T"}})).await;
    assert_eq!(st, 200, "{sale}");
    let dev = device(&b, &merch, "printer", "needs_attention").await;
    assert!(dev["detail"].as_str().unwrap().contains("paper"), "{dev}");
    // The worker has asked the printer and holds the job back.
    let (_, d) = b.get(&merch, "/api/v1/devices").await;
    assert_eq!(d["print_jobs_pending"], 1, "{d}");
    assert!(got.lock().unwrap().is_empty(), "nothing printed without paper");
    // Paper in: it prints, byte for byte.
    paper.store(true, Ordering::SeqCst);
    let order = b
        .state
        .store
        .order(venuebox::domain::ids::OrderId(sale["order_id"].as_str().unwrap().into()))
        .await
        .unwrap();
    let want = encode_receipt(&order.receipt, 42, "Europe/Berlin");
    wait_for_bytes(&b, &merch, &got, want.len()).await;
    assert!(
        *got.lock().unwrap() == want,
        "the printer received exactly the receipt's ESC/POS bytes"
    );

    // Unplugged while a sale happens: the receipt prints when it is back.
    // (The gadget node is closed before unplugging: the guest kernel's
    // f_printer can corrupt a list when unbound with its node open.)
    stop.store(true, Ordering::SeqCst);
    side.join().unwrap();
    got.lock().unwrap().clear();
    printer.unplug();
    device(&b, &merch, "printer", "disconnected").await;
    let (_, sale2) = b.post(&merch, "/api/v1/drops/d/sales", json!({"items": [{"sku": "TEE", "qty": 2}], "nonce": nonce(), "tender": {"kind": "card", "reference": "T"}})).await;
    printer.plug();
    stop.store(false, Ordering::SeqCst);
    let side = {
        let (node, paper, got, stop) =
            (printer.node.clone(), paper.clone(), got.clone(), stop.clone());
        std::thread::spawn(move || printer_side(node, paper, got, stop))
    };
    let order2 = b
        .state
        .store
        .order(venuebox::domain::ids::OrderId(sale2["order_id"].as_str().unwrap().into()))
        .await
        .unwrap();
    let want2 = encode_receipt(&order2.receipt, 42, "Europe/Berlin");
    wait_for_bytes(&b, &merch, &got, want2.len()).await;
    assert!(*got.lock().unwrap() == want2, "after a replug the waiting receipt prints whole");
    stop.store(true, Ordering::SeqCst);
    let _ = side.join();
    printer.unplug();
}
