//! The device pipeline without hardware (`serve --simulate`): a scan from
//! a "scanner" is checked in through the same path as the HTTP API and
//! lights the fake LEDs; a double read is one scan; receipts print on the
//! fake printer, wait while it is out of paper and print when it is fixed;
//! every verdict reaches the staff feed.

use crate::common;

use common::{nonce, TestBox};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use venuebox::api::ApiConfig;
use venuebox::clock::Clock;
use venuebox::devices::escpos::{encode_receipt, qr_payloads, PrinterStatus};
use venuebox::devices::signals::Output;
use venuebox::devices::Mode;
use venuebox::domain::role::Role;

async fn start() -> TestBox {
    TestBox::start_devices(Clock::system(), ApiConfig::default(), Mode::Simulate, |m| {
        m["creators"] = json!([{"id": "cr", "name": "Cr"}]);
        m["drops"] = common::open_drop("cr", 9);
    })
    .await
}

#[tokio::test]
async fn a_scanned_ticket_is_checked_in_and_lights_green_and_a_double_read_is_one_scan() {
    let b = start().await;
    let door = b.token(Role::Door).await;
    let gpio = b.state.devices.fake_gpio.clone().unwrap();
    let code = b.signed("T-1", "ga");
    let t0 = Instant::now();
    let (st, v) =
        b.post(&door, "/api/v1/devices/scan", json!({"code": code, "scanner": "usb:1-1"})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["verdict"], "admit");
    assert!(gpio.wait_on(Output::Green, t0, Duration::from_secs(2)).await.is_some());
    assert!(
        gpio.wait_on(Output::Relay, t0, Duration::from_secs(2)).await.is_some(),
        "door released"
    );
    // The same code again at once from the same scanner: a double read.
    let (_, v) =
        b.post(&door, "/api/v1/devices/scan", json!({"code": code, "scanner": "usb:1-1"})).await;
    assert_eq!(v["double_read"], true);
    // From another scanner it is a second scan: rejected, red.
    let t1 = Instant::now();
    let (_, v) =
        b.post(&door, "/api/v1/devices/scan", json!({"code": code, "scanner": "usb:1-2"})).await;
    assert_eq!(v["reason"], "already_checked_in");
    assert!(gpio.wait_on(Output::Red, t1, Duration::from_secs(2)).await.is_some());
    let (_, list) = b.get(&door, "/api/v1/checkins?ticket=T-1").await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "the double read was not recorded");
    assert_eq!(items[1]["device"], "usb:1-1");
}

#[tokio::test]
async fn receipts_print_wait_for_paper_and_carry_the_proof() {
    let b = start().await;
    let merch = b.token(Role::Merch).await;
    let printer = b.state.devices.fake_printer.clone().unwrap();
    printer.set_status(PrinterStatus { paper_out: true, ..Default::default() });
    let (st, sale) = b.post(&merch, "/api/v1/drops/d/sales", json!({"items": [{"sku": "TEE", "qty": 1}], "nonce": nonce(), "tender": {"kind": "card", "reference": "T"}})).await;
    assert_eq!(st, 200);
    let printed = b.dir.path().join("printed");
    // Out of paper: staff see why, the job waits.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, d) = b.get(&merch, "/api/v1/devices").await;
        let p = d["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["kind"] == "printer")
            .unwrap()
            .clone();
        if p["status"] == "needs_attention" {
            assert!(p["detail"].as_str().unwrap().contains("load a roll"), "{p}");
            assert_eq!(d["print_jobs_pending"], 1);
            break;
        }
        assert!(Instant::now() < deadline, "printer never reported paper out: {d}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(std::fs::read_dir(&printed).unwrap().count(), 0, "nothing printed without paper");
    printer.set_status(PrinterStatus::default());
    let file = printed.join("00001.escpos");
    // The job is marked printed only after its bytes went out.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, d) = b.get(&merch, "/api/v1/devices").await;
        if d["print_jobs_pending"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the receipt never printed after the paper came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bytes = std::fs::read(&file).unwrap();
    let order = b
        .state
        .store
        .order(venuebox::domain::ids::OrderId(sale["order_id"].as_str().unwrap().into()))
        .await
        .unwrap();
    assert_eq!(
        bytes,
        encode_receipt(&order.receipt, 42, "Europe/Berlin"),
        "byte-identical ESC/POS"
    );
    assert_eq!(qr_payloads(&bytes), vec![order.receipt.proof.as_bytes().to_vec()]);
    // A reprint on request.
    let r = b
        .http
        .post(b.url(&format!("/api/v1/orders/{}/print", sale["order_id"].as_str().unwrap())))
        .bearer_auth(&merch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !printed.join("00002.escpos").exists() {
        assert!(Instant::now() < deadline, "reprint never printed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, jobs) = b.get(&merch, "/api/v1/print-jobs").await;
    let kinds: Vec<&str> =
        jobs["jobs"].as_array().unwrap().iter().map(|j| j["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["reprint", "receipt"]);
}

#[tokio::test]
async fn every_verdict_reaches_the_staff_feed_and_injection_needs_simulate() {
    let b = start().await;
    let door = b.token(Role::Door).await;
    let mut feed = b.http.get(b.url("/api/v1/scans/feed")).bearer_auth(&door).send().await.unwrap();
    assert_eq!(feed.headers()["content-type"], "text/event-stream");
    b.scan(&door, json!({"code": "SECRET-0001", "gate": "main", "nonce": nonce()})).await;
    b.post(&door, "/api/v1/devices/scan", json!({"code": "NOT-A-TICKET"})).await;
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while text.matches("event: scan").count() < 2 {
        let chunk = tokio::time::timeout(Duration::from_secs(5), feed.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
        assert!(Instant::now() < deadline);
    }
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(events[0]["verdict"], "admit");
    assert_eq!(events[1]["reason"], "unknown_ticket");
    assert_eq!(events[1]["source"], "simulated-scanner");

    let off = TestBox::start().await;
    let t = off.token(Role::Door).await;
    let (st, _) = off.post(&t, "/api/v1/devices/scan", json!({"code": "X"})).await;
    assert_eq!(st, 409, "no injection on a real box");
}
