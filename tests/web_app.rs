//! The staff web app in a real browser: Debian's headless Chromium, driven
//! by playwright-core (both installed by this test on first use: chromium
//! with apt, playwright-core from npm into the tools cache), at phone size against
//! the real binary over HTTPS, trusting only the box's CA. The browser side
//! is `tests/browser/door.mjs`; screenshots land in target/web-shots/.

mod common;

use common::browser::{chromium, playwright, qr_video, tsc};

use std::path::{Path, PathBuf};
use std::process::Command;

/// The app's modules and workers type-check as JavaScript (`// @ts-check`
/// in each, `tests/browser/tsconfig*.json`): a call with the wrong
/// arguments, a misspelt property of an answer's DOM node, a worker using
/// a page's global fail here instead of on a phone at the door.
#[test]
fn the_staff_apps_code_type_checks() {
    let tsc = tsc();
    for config in ["tests/browser/tsconfig.json", "tests/browser/tsconfig.worker.json"] {
        let out = Command::new(&tsc)
            .args(["-p", config])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("node runs tsc");
        assert!(
            out.status.success(),
            "tsc -p {config}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// (id, code) of the demo's ticket on `row` of tickets.csv.
fn demo_ticket(data: &Path, row: usize) -> (String, String) {
    let csv = std::fs::read_to_string(data.join("demo/tickets.csv")).unwrap();
    let mut fields = csv.lines().nth(row).unwrap().split(',');
    let id = fields.next().unwrap().to_string();
    (id, fields.nth(1).unwrap().to_string())
}

/// A walk-up ticket sold with `holder` as its holder name; its code.
async fn walkup(plain: &str, merch: &str, holder: &str) -> String {
    let body = serde_json::json!({"tier": "ga", "nonce": "web-xss", "holder": holder,
        "tender": {"kind": "card", "reference": "T-1"}});
    let base = format!("http://{plain}");
    let (_, r) =
        common::binary::call(reqwest::Method::POST, &base, "/api/v1/walkups", merch, Some(body))
            .await;
    r["tickets"][0]["code"].as_str().unwrap_or_else(|| panic!("no walk-up: {r}")).to_string()
}

/// The pairing link in the QR code `venuebox pair` prints (read from the
/// terminal's QR code, as a phone's camera reads it; the same as the text
/// beside it) and its code. The box prints its LAN address; the test's box
/// listens on loopback, so the link's host and port become the pairing
/// listener's, and its path and fragment are kept as printed.
fn printed_pairing_link(dir: &std::path::Path, https_port: &str, pair: &str) -> (String, String) {
    let pair_port = pair.rsplit(':').next().unwrap();
    let out = Command::new(common::binary::BIN)
        .args(["pair", "--mdns-name", "door-box", "--https-port", https_port])
        .args(["--pair-port", pair_port, "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let url = text
        .lines()
        .find_map(|l| l.strip_prefix("scan to pair").and_then(|r| r.split(": ").nth(1)))
        .unwrap_or_else(|| panic!("no pairing link in:\n{text}"));
    let scanned = common::decode_terminal_qr(&text);
    assert_eq!(scanned, url, "the QR code holds the link printed beside it");
    let rest = scanned.strip_prefix("http://").unwrap();
    let (_, path) = rest.split_at(rest.find('/').unwrap());
    assert!(path.starts_with("/pair#pair="), "{url}");
    let code = path.rsplit('=').next().unwrap().to_string();
    (format!("http://{pair}{path}"), code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn door_staff_pair_sign_in_and_check_tickets_in_by_hand_and_by_camera() {
    chromium();
    let node = playwright();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addrs) = common::binary::serve_lan(
        dir.path(),
        &["--demo", "--simulate", "--mdns-name", "door-box", "--no-mdns"],
    );
    let https_port = addrs.https.rsplit(':').next().unwrap().to_string();
    let (pair_url, code) = printed_pairing_link(dir.path(), &https_port, &addrs.pair);
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../web-shots");
    std::fs::create_dir_all(&shots).unwrap();
    const XSS: &str = "<img src=x onerror=\"window.__xss=1\">";
    let xss_code = walkup(&addrs.plain, &common::binary::token(dir.path(), "merch"), XSS).await;
    // The door step's camera sees no code; the scan step's shows 25
    // distinct tickets, half a second each with 1.2 s between guests.
    let blank = dir.path().join("blank.y4m");
    qr_video(&[], 0, 10, 10, &blank, 1);
    let queue: Vec<_> = (10..35)
        .map(|row| dir.path().join(format!("demo/qr/{}.png", demo_ticket(dir.path(), row).0)))
        .collect();
    let video = dir.path().join("queue.y4m");
    qr_video(&queue, 5, 12, 10, &video, 1);
    let script = node.join("door.mjs");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/door.mjs"), &script).unwrap();
    let profile = dir.path().join("chromium-profile");
    let door = common::binary::token(dir.path(), "door");
    // Captures go through a proxy that cuts the connection mid-upload.
    let proxy = common::s3::FaultProxy::start(addrs.https.parse().unwrap()).await;
    let photo = common::jpeg(1000, 700, 5);
    let photo_path = dir.path().join("IMG_0001.jpg");
    std::fs::write(&photo_path, &photo).unwrap();
    // The creator's crew: one photo sent at once, one picked offline.
    let (link_photo, queued_photo) = (common::jpeg(800, 600, 6), common::jpeg(640, 480, 7));
    std::fs::write(dir.path().join("IMG_0002.jpg"), &link_photo).unwrap();
    std::fs::write(dir.path().join("IMG_0003.jpg"), &queued_photo).unwrap();
    let capture_code = common::binary::pairing_code(dir.path());
    let run = |step: &str| {
        let mut cmd = Command::new("node");
        cmd.arg(&script)
            .current_dir(&node)
            .env("BOX", format!("https://{}", addrs.https))
            .env("APP", format!("https://door-box.local:{https_port}"))
            .env("APP_HOST", "door-box.local")
            .env("PAIR_URL", &pair_url)
            .env("CA_PEM", dir.path().join("tls/ca.pem"))
            .env("PAIR_CODE", &code)
            .env("TICKET_CODE", demo_ticket(dir.path(), 1).1)
            .env("XSS_CODE", &xss_code)
            .env("LATER_CODE", demo_ticket(dir.path(), 3).1)
            .env("VIDEO", if step == "scan" { &video } else { &blank })
            .env("FIND", "Guest 42")
            .env("LOCALE", if step == "german" { "de-DE" } else { "en-US" })
            .env("OTHER_CODE", demo_ticket(dir.path(), 4).1)
            .env("DOOR_TOKEN", &door)
            .env("NODE_EXTRA_CA_CERTS", dir.path().join("tls/ca.pem"))
            .env("SHOTS", &shots)
            .env("PROFILE", &profile)
            .env("STEP", step)
            .env("PROXY_BOX", format!("https://{}", proxy.endpoint().trim_start_matches("http://")))
            .env("CAPTURE_PAIR_CODE", &capture_code)
            .env("PHOTO", &photo_path)
            .env("LINK_PHOTO", dir.path().join("IMG_0002.jpg"))
            .env("QUEUED_PHOTO", dir.path().join("IMG_0003.jpg"))
            .env("SCANNER_CODE", demo_ticket(dir.path(), 5).1)
            .env("MANIFEST", dir.path().join("demo/manifest.json"))
            .env("MANIFEST_SIG", dir.path().join("demo/manifest.json.sig"));
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };
    let out = run("door").await.unwrap();
    proxy.cut_after(500_000);
    let capture = run("capture").await.unwrap();
    let scan = run("scan").await.unwrap();
    let german = run("german").await.unwrap();
    let on_box = reqwest::Client::new()
        .head(format!("http://{}/api/v1/captures/{}", addrs.plain, common::sha256_hex(&photo)))
        .bearer_auth(common::binary::token(dir.path(), "capture"))
        .send()
        .await
        .unwrap();
    let on_box = on_box.status();
    assert_eq!(on_box, 200, "the box holds the photo's bytes");
    let admin = common::binary::token(dir.path(), "admin");
    let plain = format!("http://{}", addrs.plain);
    let path = "/api/v1/creators/cr-mara/captures";
    let (_, captures) =
        common::binary::call(reqwest::Method::GET, &plain, path, &admin, None).await;

    // Then the box goes away: the phone opens the app again, and the box
    // comes back on its address while the app is open.
    let _ = child.kill();
    let _ = child.wait();
    let offline = run("offline");
    let shot = shots.join("10-offline.png");
    let _ = std::fs::remove_file(&shot);
    for _ in 0..600 {
        if shot.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let args = ["--demo", "--simulate", "--mdns-name", "door-box", "--no-mdns"];
    let (child, _) = common::binary::serve_lan_at(dir.path(), &addrs.https, &args);
    let _back = common::binary::Running(child);
    let offline = offline.await.unwrap();
    let r = browser_result(&out);
    assert_eq!(r["errors"], serde_json::json!([]), "no script errors on the page: {r}");
    assert_eq!(
        (r["pairPage"]["code"].as_str(), r["pairPage"]["fieldValue"].as_str()),
        (Some(code.as_str()), Some(code.as_str())),
        "the printed link's code shown on the pairing page and carried into the app: {r}"
    );
    assert_eq!(r["who"], "Dana at the door (door)", "{r}");
    let small = &r["small"];
    let bottom = small["y"].as_f64().unwrap() + small["height"].as_f64().unwrap();
    assert!(bottom <= 640.0, "Check in is on the first screen at 360×640: {small}");
    assert_eq!(r["first"]["class"], "verdict admit", "{r}");
    assert_eq!(r["first"]["big"], "ADMIT", "{r}");
    assert_eq!(r["second"]["class"], "verdict reject", "{r}");
    assert_eq!(r["second"]["big"], "STOP", "{r}");
    let message = r["second"]["message"].as_str().unwrap();
    assert_eq!(message, "Already checked in", "said in words staff can say: {r}");
    let previous = r["second"]["previous"].as_str().unwrap();
    assert!(
        previous.starts_with("at Main door, just now (") && !previous.contains("UTC"),
        "where and when, in the event's time zone: {r}"
    );
    assert_eq!(
        r["second"]["status"],
        format!("{message} {previous}"),
        "the verdict is announced (role=status): {r}"
    );
    assert_eq!(
        (r["xss"]["holder"].as_str(), &r["injected"]),
        (Some(XSS), &serde_json::json!(false)),
        "{r}"
    );
    assert!(r["expired"].as_str().unwrap().contains("what you typed is kept"), "{r}");
    assert_eq!(r["kept"], demo_ticket(dir.path(), 3).1, "the typed code survived the sign-in: {r}");
    assert_eq!(r["after"]["big"], "ADMIT", "{r}");
    assert_eq!(
        (&r["door"]["cameraOpen"], &r["door"]["focused"]),
        (&serde_json::json!(true), &serde_json::json!("MAIN")),
        "for door staff the camera opens by itself, and no field takes the focus: {r}"
    );
    let d = &r["dashboard"];
    assert_eq!(d["verdict"], "admit", "{r}");
    assert_eq!(r["supervisor"], "Sam the supervisor (supervisor)", "{r}");
    let sale = &r["sale"];
    assert_eq!(sale["total"], "€50.00", "{sale}");
    assert!(sale["held"].as_str().unwrap().starts_with("Held for"), "the hold counts down: {sale}");
    assert_eq!(sale["change"], "Change: €10.00", "{sale}");
    assert_eq!(
        sale["cartAfter"], "Nothing in the cart yet.",
        "the cart is empty once paid: {sale}"
    );
    let card = &r["card"];
    assert!(card["receipt"].as_str().unwrap().contains("Card"), "{card}");
    assert_eq!(card["voided"], "Order voided: its items are back in stock.", "{card}");
    assert_eq!(card["stockBack"], true, "{card}");
    let comp = &r["comp"];
    assert_eq!(comp["pinField"], 0, "a supervisor needs no approver: {comp}");
    assert!(comp["receipt"].as_str().unwrap().contains("Comp"), "{comp}");
    let wrong = comp["wrongPin"].as_str().unwrap();
    assert!(
        wrong.starts_with("That PIN cannot approve this")
            && wrong.contains("The box said: that PIN"),
        "in words, with the box's details: {comp}"
    );
    let by_merch = comp["byMerch"].as_str().unwrap();
    assert!(
        by_merch.contains("Comp, approved by") && by_merch.contains("Max at merch"),
        "merch staff, a supervisor's PIN: {comp}"
    );
    let claim = &r["claim"];
    assert_eq!(claim["change"], "Change: €0.00", "a free seat: {claim}");
    assert!(
        claim["again"].as_str().unwrap().starts_with("This scholarship code has been used up."),
        "used up, said: {claim}"
    );
    let w = &r["walkup"];
    assert_eq!(w["change"], "Change: €5.00", "{w}");
    assert_eq!(w["decoded"], true, "the QR on screen reads back: {w}");
    assert_eq!(w["door"]["big"], "ADMIT", "the walk-up's QR scans at the door: {w}");
    assert_eq!(w["door"]["holder"], "Walk In", "{w}");
    assert_eq!(w["undone"], "Check-in undone.", "a supervisor undid it: {w}");
    assert_eq!(w["rescan"], "ADMIT", "undone, the ticket scans again: {w}");
    assert!(sale["print"].as_str().unwrap().starts_with("Receipt printed"), "{sale}");
    assert!(sale["found"].as_str().unwrap().ends_with("€50.00, paid"), "{sale}");
    assert!(sale["refunded"].as_str().unwrap().starts_with("Order refunded"), "{sale}");
    let s = &r["scanner"];
    assert_eq!(s["injected"], "admit", "{s}");
    assert!(
        s["shown"].as_str().unwrap().starts_with("ADMIT Admit"),
        "the scanner's verdict at the gate: {s}"
    );
    assert!(s["shown"].as_str().unwrap().contains("usb-scanner-1"), "{s}");
    let a = &r["admin"];
    assert_eq!(a["pairing"].as_str().unwrap().len(), 14, "a pairing code: {a}");
    let taken = a["codeTaken"].as_str().unwrap_or_default();
    assert!(taken.contains("guest phone") && taken.contains("127.0.0.1"), "who took it: {a}");
    assert_eq!(a["takerAfter"], 401, "revoked in one tap: {a}");
    let devices = a["devices"].as_array().unwrap();
    assert!(
        devices
            .iter()
            .any(|d| d.as_str().unwrap().contains("door phone · 127.0.0.1 · 1 wrong PIN")),
        "the paired phones with their wrong PINs: {a}"
    );
    assert!(a["manifest"].as_str().unwrap().starts_with("Already loaded: evt-demo"), "{a}");
    assert_eq!(a["frozen"], true, "{a}");
    assert_eq!(a["dropSaved"], "Saved: Late caps.", "{a}");
    assert_eq!(a["capsOnHand"], "8", "5 to start, 3 restocked: {a}");
    assert_eq!(a["doorAfterRevoke"], 401, "the revoked door session is out: {a}");
    assert!(a["clock"].as_str().unwrap().starts_with("The box's time is now 20"), "{a}");
    // The rehearsal from the admin screen: the flows ran on a copy; no
    // bucket is configured in this test, which it names.
    let rehearsal = a["rehearsal"].as_str().unwrap();
    assert!(rehearsal.contains("OK check-in: admitted at"), "{rehearsal}");
    assert!(rehearsal.contains("FIX sync: no bucket configured"), "{rehearsal}");
    let l = &r["linkPage"];
    assert_eq!(
        (&l["creator"], &l["fixed"]),
        (&serde_json::json!("cr-mara"), &serde_json::json!(true)),
        "{l}"
    );
    assert_eq!(l["state"], "on the box", "{l}");
    assert_eq!(l["captures"], "1", "the creator sees their capture: {l}");
    assert!(l["queued"].as_str().unwrap().starts_with("waiting for the box"), "{l}");
    assert_eq!(l["afterReload"], "on the box", "{l}");
    assert_eq!(l["capturesAfter"], "2", "the page counts the queued photo once it is up: {l}");
    assert_eq!(l["sliced"], true, "{l}");
    assert_eq!(r["unlabelled"], serde_json::json!({}), "every control is labelled: {r}");
    let receipt = sale["receipt"].as_str().unwrap();
    assert!(receipt.contains("Tour tee") && receipt.contains("50.00"), "{receipt}");
    assert!(d["ms"].as_u64().unwrap() <= 1000, "the dashboard counted it within 1 s: {d}");
    let held: Vec<&str> =
        captures["items"].as_array().unwrap().iter().filter_map(|c| c["sha256"].as_str()).collect();
    for (what, bytes) in [("sent from the link", &link_photo), ("queued offline", &queued_photo)] {
        let sha = common::sha256_hex(bytes);
        assert!(held.contains(&sha.as_str()), "the photo {what} is Mara's on the box: {captures}");
    }
    let stdout = String::from_utf8_lossy(&capture.stdout);
    assert!(capture.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&capture.stderr));
    let c: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let mut axe = vec![("capture", c["axe"].clone())];
    assert_eq!(c["state"], "on the box", "{c}");
    assert!(
        proxy.cuts.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the upload was cut mid-way"
    );
    assert_eq!(c["sha256"], common::sha256_hex(&photo), "{c}");
    let cached = r["shell"]["cached"].as_u64().unwrap_or(0);
    assert!(r["shell"]["active"] == true && cached >= 20, "the shell is cached: {}", r["shell"]);
    assert_eq!(
        r["shell"]["missing"],
        serde_json::json!([]),
        "every file the box lists is kept offline"
    );
    let stdout = String::from_utf8_lossy(&scan.stdout);
    assert!(scan.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&scan.stderr));
    let c: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    axe.push(("scan", c["axe"].clone()));
    let stdout = String::from_utf8_lossy(&german.stdout);
    assert!(german.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&german.stderr));
    let g: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        (&g["lang"], &g["signIn"], &g["verdict"]),
        (&serde_json::json!("de"), &serde_json::json!("Anmelden"), &serde_json::json!("STOPP")),
        "a German phone gets German: {g}"
    );
    assert_eq!(g["message"], "Code nicht erkannt", "{g}");
    axe.push(("german", g["axe"].clone()));
    assert_eq!(c["errors"], serde_json::json!([]), "{c}");
    let log = c["log"].as_array().unwrap();
    let admitted: Vec<&str> =
        log.iter().filter(|v| v["big"] == "ADMIT").filter_map(|v| v["holder"].as_str()).collect();
    let wanted: Vec<String> = (10..35).map(|row| demo_ticket(dir.path(), row).0).collect();
    assert_eq!(admitted, wanted, "each of the 25 tickets admitted once, in the order shown: {c}");
    assert_eq!(c["tapsBefore"], 0, "no tap between admits: {c}");
    assert!(
        log.iter().filter(|v| v["big"] == "ADMIT").all(|v| v["gone"].is_number()),
        "every ADMIT cleared itself: {c}"
    );
    assert_eq!(
        (&c["stop"]["big"], &c["stopStays"]),
        (&serde_json::json!("STOP"), &serde_json::json!(1)),
        "the looped first ticket is a STOP, and it stays until tapped: {c}"
    );
    assert_eq!(c["stop"]["holder"], wanted[0], "{c}");
    assert_eq!(c["found"], serde_json::json!(["Guest 42"]), "found by name: {c}");
    assert_eq!(
        (&c["byName"]["big"], &c["byName"]["holder"]),
        (&serde_json::json!("ADMIT"), &serde_json::json!("Guest 42")),
        "{c}"
    );
    let m = &c["merch"];
    let codes: Vec<String> = (10..35).map(|row| demo_ticket(dir.path(), row).1).collect();
    assert!(
        codes.contains(&m["buyer"].as_str().unwrap_or_default().to_string()),
        "the buyer's ticket read by the camera: {m}"
    );
    assert_eq!(m["quick"], serde_json::json!(["Exact", "€50.00", "€100.00", "€200.00"]), "{m}");
    assert_eq!(
        (&m["change"], &m["cart"]),
        (&serde_json::json!("Change: €25.00"), &serde_json::json!("Nothing in the cart yet.")),
        "{m}"
    );
    let stdout = String::from_utf8_lossy(&offline.stdout);
    assert!(offline.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&offline.stderr));
    let o: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    axe.push(("offline", o["axe"].clone()));
    axe.push(("door", r["axe"].clone()));
    let serious: Vec<_> = axe.iter().filter(|(_, v)| v != &serde_json::json!({})).collect();
    assert!(
        serious.is_empty(),
        "axe-core: serious or critical violations on these screens: {serious:?}"
    );
    let said = o["offline"].as_str().unwrap_or_default();
    assert!(said.contains("cannot be reached") && said.contains("Nothing can be admitted"), "{o}");
    assert!(o["age"].as_str().unwrap_or_default().contains("s old"), "how old the screen is: {o}");
    assert_eq!(
        (&o["recovered"], &o["navigations"]),
        (&serde_json::json!(true), &serde_json::json!(1)),
        "the box back, the app went on by itself, without a reload: {o}"
    );
    for shot in [
        "10-offline",
        "1-pair",
        "2-sign-in",
        "3-door",
        "4-admit",
        "5-already-in",
        "6-holder-as-text",
        "8-camera-stop",
        "9-lookup",
    ] {
        assert!(shots.join(format!("{shot}.png")).exists(), "screenshot {shot}");
    }
}

/// What a browser script printed last (its JSON result), once it
/// succeeded.
fn browser_result(out: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// Waits until `f` holds of the pair view at `base` (`GET /api/v1/standby`).
async fn until_pair(base: &str, admin: &str, what: &str, f: impl Fn(&serde_json::Value) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, v) =
            common::binary::call(reqwest::Method::GET, base, "/api/v1/standby", admin, None).await;
        if f(&v) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `node tests/browser/NAME` (copied beside Playwright), with the
/// screenshots directory in `SHOTS`; the caller adds its own environment.
fn browser_script(node: &std::path::Path, name: &str) -> Command {
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../web-shots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = node.join(name);
    for file in [name, "phone.mjs"] {
        let from = format!("{}/tests/browser/{file}", env!("CARGO_MANIFEST_DIR"));
        std::fs::copy(from, node.join(file)).unwrap();
    }
    let mut cmd = Command::new("node");
    cmd.arg(&script).current_dir(node).env("SHOTS", &shots);
    cmd
}

/// Two boxes: the primary dies; the admin's tab offers the standby, the
/// admin promotes it on its admin screen, and a door phone paired and
/// signed in at the primary follows by itself, with no pairing and no
/// PIN, and admits there (`tests/browser/takeover.mjs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_staff_app_follows_a_takeover_with_no_pairing_or_sign_in() {
    use common::binary::{call, serve_lan, token, Running};
    use common::standby::{free_port, join, standby_code};
    chromium();
    let node = playwright();
    let dirs = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dirs.path().join("a"), dirs.path().join("b"));
    let (a, a_addrs) = serve_lan(&a_dir, &["--demo", "--no-mdns", "--mdns-name", "door-box"]);
    let mut a = Running(a);
    let (code, fingerprint) = standby_code(&a_dir);
    let b_link = free_port();
    let out = join(&b_dir, &a_addrs.https, &code, &fingerprint, b_link);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let link = format!("127.0.0.1:{b_link}");
    let (b, b_addrs) = serve_lan(&b_dir, &["--link-listen", &link, "--no-mdns"]);
    let _b = Running(b);
    let admin = token(&a_dir, "admin");
    let a_plain = format!("http://{}", a_addrs.plain);
    until_pair(&a_plain, &admin, "never in sync", |v| {
        v["link"]["in_sync"] == true && v["link"]["peer_web"].is_string()
    })
    .await;
    let https_port = a_addrs.https.rsplit(':').next().unwrap().to_string();
    let (pair_url, _) = printed_pairing_link(&a_dir, &https_port, &a_addrs.pair);
    let ready = dirs.path().join("ready");
    let standby = format!("https://{}", b_addrs.https);
    let mut cmd = browser_script(&node, "takeover.mjs");
    cmd.env("APP", format!("https://door-box.local:{https_port}"))
        .env("APP_HOST", "door-box.local")
        .env("PAIR_URL", &pair_url)
        .env("CA_PEM", a_dir.join("tls/ca.pem"))
        .env("FIRST_CODE", demo_ticket(&a_dir, 1).1)
        .env("SECOND_CODE", demo_ticket(&a_dir, 2).1)
        .env("STANDBY", &standby)
        .env("READY", &ready)
        .env("PROFILE", dirs.path().join("chromium-profile"));
    let run = tokio::task::spawn_blocking(move || cmd.output().unwrap());
    while !ready.exists() && !run.is_finished() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The primary dies; the admin promotes the standby from the app.
    let _ = a.0.kill();
    let _ = a.0.wait();
    let out = run.await.unwrap();
    let r = browser_result(&out);
    eprintln!("takeover in the browser: {r}");
    assert_eq!(r["errors"], serde_json::json!([]), "{r}");
    assert_eq!(r["first"], "ADMIT", "{r}");
    assert_eq!(r["after"]["origin"], standby.as_str(), "{r}");
    assert_eq!(r["after"]["hash"], "", "the carried sign-in left the address: {r}");
    assert_eq!(r["after"]["token"], r["before"]["token"], "the same sign-in: {r}");
    assert_eq!(r["after"]["known"]["epoch"], 2, "{r}");
    assert_eq!(r["asked"], serde_json::json!([]), "no pairing or sign-in on the new box: {r}");
    assert_eq!(r["second"], "ADMIT", "{r}");
    assert_eq!(r["again"], "STOP", "the first admission is on the new primary: {r}");
    assert_eq!(r["pairRole"], "This box: primary, epoch 2", "{r}");
    let command = r["joinCommand"].as_str().unwrap();
    assert!(
        command.starts_with("venuebox join https://") && command.contains("--fingerprint"),
        "{r}"
    );
    assert!(r["pairLink"].as_str().unwrap().starts_with("The other box is not connected"), "{r}");
    let door = token(&b_dir, "door");
    let (_, stats) = call(
        reqwest::Method::GET,
        &format!("http://{}", b_addrs.plain),
        "/api/v1/stats",
        &door,
        None,
    )
    .await;
    assert_eq!(stats["admitted"], 2, "{stats}");
}

/// A second entrance: the staff app paired at a satellite from the
/// printed link admits through the primary, then, the primary gone, says
/// it is apart, goes on admitting from the satellite's copy and sells a
/// walk-up ticket from its escrow (`tests/browser/satellite.mjs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_staff_app_at_a_satellite_admits_apart_and_says_so() {
    use common::binary::{call, serve_lan, token, Running};
    use common::standby::{free_port, join_as, standby_code};
    chromium();
    let node = playwright();
    let dirs = tempfile::tempdir().unwrap();
    let (a_dir, s_dir) = (dirs.path().join("a"), dirs.path().join("s"));
    let (a, a_addrs) = serve_lan(&a_dir, &["--demo", "--no-mdns"]);
    let mut a = Running(a);
    let (code, fingerprint) = standby_code(&a_dir);
    let out = join_as(&s_dir, &a_addrs.https, &code, &fingerprint, free_port(), &["--satellite"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (s, s_addrs) = serve_lan(&s_dir, &["--no-mdns", "--mdns-name", "door-box"]);
    let _s = Running(s);
    let admin = token(&a_dir, "admin");
    let a_plain = format!("http://{}", a_addrs.plain);
    until_pair(&a_plain, &admin, "the satellite never followed", |v| {
        v["link"]["satellites"][0]["connected"] == true
    })
    .await;
    // The operator prints the link on the primary's console, for the
    // satellite's address (its ports, its name): the code is the primary's.
    let https_port = s_addrs.https.rsplit(':').next().unwrap().to_string();
    let (pair_url, _) = printed_pairing_link(&a_dir, &https_port, &s_addrs.pair);
    let ready = dirs.path().join("ready");
    let app = format!("https://door-box.local:{https_port}");
    let mut cmd = browser_script(&node, "satellite.mjs");
    cmd.env("APP", &app)
        .env("APP_HOST", "door-box.local")
        .env("PAIR_URL", &pair_url)
        .env("CA_PEM", s_dir.join("tls/ca.pem"))
        .env("FIRST_CODE", demo_ticket(&a_dir, 1).1)
        .env("SECOND_CODE", demo_ticket(&a_dir, 2).1)
        .env("READY", &ready)
        .env("PROFILE", dirs.path().join("chromium-profile"));
    let run = tokio::task::spawn_blocking(move || cmd.output().unwrap());
    while !ready.exists() && !run.is_finished() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The first admission was the primary's.
    let door = token(&a_dir, "door");
    let (_, stats) = call(reqwest::Method::GET, &a_plain, "/api/v1/stats", &door, None).await;
    assert_eq!(stats["admitted"], 1, "{stats}");
    let _ = a.0.kill();
    let _ = a.0.wait();
    let out = run.await.unwrap();
    let r = browser_result(&out);
    eprintln!("the app at a satellite, apart: {r}");
    assert_eq!(r["errors"], serde_json::json!([]), "{r}");
    assert_eq!(r["first"], "ADMIT", "{r}");
    assert_eq!(r["apartBefore"], 0, "not apart while joined: {r}");
    assert!(r["apartText"].as_str().unwrap().starts_with("Apart from the main box"), "{r}");
    assert_eq!(r["second"], "ADMIT", "admitted apart: {r}");
    assert_eq!(r["again"], "STOP", "the primary's admission is in the copy: {r}");
    assert!(r["walkup"]["change"].as_str().is_some_and(|c| c.contains('5')), "sold apart: {r}");
    assert_eq!(r["walkup"]["apart"], true, "and says it is apart: {r}");
    assert_eq!(r["origin"], app.as_str(), "the app stayed at the satellite: {r}");
}
