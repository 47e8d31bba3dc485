//! Tickets sold by a real pretix (installed from PyPI by the test set-up,
//! tests/common/pretix.rs), read by the box offline: an event switched to
//! pretix's signed secrets (pretix_sig1), items with and without
//! variations, orders placed through pretix's REST API; every ticket's
//! secret verifies with the key pretix publishes for its event and says
//! which item and variation it admits; another event's key refuses it; a
//! classic (random) pretix secret is not taken for a signed one.
//!
//! And the whole round trip with the real binary: `venuebox pretix
//! import` (its clear refusals first), the door scanning pretix tickets
//! with pretix out of reach, the check-ins sent back through a link that
//! loses answers, pretix's check-in log holding each exactly once with the
//! box's times, and the box importing again by itself.

mod common;

use common::binary::{call, serve, token, Running, BIN};
use common::pretix::Pretix;
use common::s3::FaultProxy;
use reqwest::Method;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use venuebox::domain::pretix::{parse_sig1, sig1_key, Sig1Error};
use venuebox::domain::time::parse_rfc3339;

/// pretix on SQLite fails writes that meet (500, "database is locked"):
/// the tests of this binary take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An event with general admission and a VIP item in two variations, a
/// quota for all, a check-in list; its item ids.
async fn event(p: &Pretix, slug: &str, signed: bool) -> (i64, i64, Vec<i64>) {
    let ev = json!({"name": {"en": format!("Creator night {slug}")}, "slug": slug,
        "date_from": "2026-12-05T19:00:00Z", "currency": "EUR", "live": false});
    p.ok(Method::POST, "/events/", Some(ev)).await;
    if signed {
        p.use_signed_secrets(slug);
    }
    let ga = json!({"name": {"en": "General admission"}, "default_price": "25.00", "admission": true, "active": true});
    let ga = p.ok(Method::POST, &format!("/events/{slug}/items/"), Some(ga)).await["id"]
        .as_i64()
        .unwrap();
    let vip = json!({"name": {"en": "VIP"}, "default_price": "90.00", "admission": true, "active": true,
        "has_variations": true,
        "variations": [{"value": {"en": "Front row"}, "active": true, "default_price": "120.00"},
                       {"value": {"en": "Balcony"}, "active": true}]});
    let vip = p.ok(Method::POST, &format!("/events/{slug}/items/"), Some(vip)).await;
    let variations: Vec<i64> =
        vip["variations"].as_array().unwrap().iter().map(|v| v["id"].as_i64().unwrap()).collect();
    let vip = vip["id"].as_i64().unwrap();
    let quota = json!({"name": "all", "size": 100, "items": [ga, vip], "variations": variations});
    p.ok(Method::POST, &format!("/events/{slug}/quotas/"), Some(quota)).await;
    let list = json!({"name": "Main door", "all_products": true});
    p.ok(Method::POST, &format!("/events/{slug}/checkinlists/"), Some(list)).await;
    (ga, vip, variations)
}

/// Places an order (paid or pending) for `positions` (item, variation).
async fn order(
    p: &Pretix,
    slug: &str,
    paid: bool,
    positions: &[(i64, Option<i64>, &str)],
) -> Value {
    order_with(p, slug, paid, positions, json!({})).await
}

/// `order`, with more of pretix's order fields (`require_approval`, …).
async fn order_with(
    p: &Pretix,
    slug: &str,
    paid: bool,
    positions: &[(i64, Option<i64>, &str)],
    extra: Value,
) -> Value {
    let positions: Vec<Value> = positions
        .iter()
        .map(|(item, variation, name)| json!({"item": item, "variation": variation, "attendee_name": name}))
        .collect();
    let mut body = json!({"email": "guest@example.org", "locale": "en", "sales_channel": "web",
        "payment_provider": "manual", "status": if paid { "p" } else { "n" }, "send_email": false,
        "positions": positions});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    p.ok(Method::POST, &format!("/events/{slug}/orders/"), Some(body)).await
}

/// A token of a new team of the organizer with `permissions` (pretix's
/// team fields), written to a private file in `dir`.
async fn team_token(p: &Pretix, dir: &Path, name: &str, permissions: Value) -> std::path::PathBuf {
    let mut team = json!({"name": name, "all_events": true, "limit_events": []});
    for (k, v) in permissions.as_object().unwrap() {
        team[k] = v.clone();
    }
    let team = p.ok(Method::POST, "/teams/", Some(team)).await["id"].as_i64().unwrap();
    let t =
        p.ok(Method::POST, &format!("/teams/{team}/tokens/"), Some(json!({"name": name}))).await;
    let file = dir.join(format!("{name}.token"));
    private_file(&file, t["token"].as_str().unwrap());
    file
}

/// A staff file with Dana (door, 1111) and Sam (supervisor, 4444).
fn staff_file(dir: &Path) -> std::path::PathBuf {
    let staff = dir.join("staff.json");
    let hash = |pin: &str| venuebox::organiser::demo::hash_pin(pin);
    std::fs::write(
        &staff,
        json!([{"name": "Dana", "role": "door", "pin_hash": hash("1111")},
               {"name": "Sam", "role": "supervisor", "pin_hash": hash("4444")}])
        .to_string(),
    )
    .unwrap();
    staff
}

/// A test's files: the box's data directory (made by the import), pretix's
/// full team token in a private file, the staff file.
struct Work {
    tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    token_file: std::path::PathBuf,
    staff: std::path::PathBuf,
}

impl Work {
    fn new(p: &Pretix) -> Work {
        let tmp = tempfile::tempdir().unwrap();
        let token_file = tmp.path().join("pretix.token");
        private_file(&token_file, &p.token);
        let staff = staff_file(tmp.path());
        Work { dir: tmp.path().join("box"), token_file, staff, tmp }
    }
}

/// The id of the event's first check-in list.
async fn first_list(p: &Pretix, slug: &str) -> i64 {
    p.ok(Method::GET, &format!("/events/{slug}/checkinlists/"), None).await["results"][0]["id"]
        .as_i64()
        .unwrap()
}

/// `POST /api/v1/checkins` as door staff: the box's answer (a verdict,
/// admit or not), after checking it was one (200 or 201).
async fn check_in(base: &str, door: &str, body: Value) -> Value {
    let (status, v) = call(Method::POST, base, "/api/v1/checkins", door, Some(body)).await;
    assert!(status == 200 || status == 201, "{status} {v}");
    v
}

/// Polls `GET /api/v1/sync` until `done` holds for its `pretix` part.
async fn pretix_state_until(
    base: &str,
    sup: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        let (status, v) = call(Method::GET, base, "/api/v1/sync", sup, None).await;
        assert_eq!(status, 200, "{v}");
        last = v["pretix"].clone();
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: {last}");
}

async fn keys(p: &Pretix, slug: &str) -> Vec<ed25519_dalek::VerifyingKey> {
    let ev = p.ok(Method::GET, &format!("/events/{slug}/"), None).await;
    ev["valid_keys"]["pretix_sig1"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| sig1_key(k.as_str().unwrap()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pretix_signed_tickets_verify_offline_with_their_events_key() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let p = tokio::task::spawn_blocking(Pretix::shared).await.unwrap();
    let (ga, vip, variations) = event(p, "night", true).await;
    let paid = order(
        p,
        "night",
        true,
        &[(ga, None, "Ada Lovelace"), (vip, Some(variations[0]), "Grace Hopper")],
    )
    .await;
    let pending = order(p, "night", false, &[(vip, Some(variations[1]), "Alan Turing")]).await;
    let night = keys(p, "night").await;
    assert_eq!(night.len(), 1, "one signing key for the event");

    for o in [&paid, &pending] {
        for pos in o["positions"].as_array().unwrap() {
            let secret = pos["secret"].as_str().unwrap();
            let t = parse_sig1(secret, &night).unwrap_or_else(|e| panic!("{secret}: {e}"));
            assert_eq!(t.item, pos["item"].as_i64().unwrap(), "{pos}");
            assert_eq!(t.variation, pos["variation"].as_i64().unwrap_or(0), "{pos}");
            assert_eq!((t.subevent, t.valid_from, t.valid_until), (0, None, None));
            assert!(!t.seed.is_empty());
        }
    }

    // Another signed event has its own key: this event's tickets do not
    // verify with it.
    let (mga, _, _) = event(p, "matinee", true).await;
    order(p, "matinee", true, &[(mga, None, "Someone")]).await;
    let matinee = keys(p, "matinee").await;
    let ada = paid["positions"][0]["secret"].as_str().unwrap();
    assert_eq!(parse_sig1(ada, &matinee), Err(Sig1Error::BadSignature));

    // A classic event: pretix's random secrets are not signed tickets.
    let (cga, _, _) = event(p, "classic", false).await;
    let classic = order(p, "classic", true, &[(cga, None, "Linus")]).await;
    let secret = classic["positions"][0]["secret"].as_str().unwrap();
    assert_eq!(parse_sig1(secret, &night), Err(Sig1Error::NotSig1), "{secret}");
}

/// `venuebox pretix import` against `url` for `event`, with `token_file`
/// and any `extra` flags: (succeeded, stdout, stderr).
fn import(
    dir: &Path,
    url: &str,
    event: &str,
    token_file: &Path,
    extra: &[&str],
) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args([
            "pretix",
            "import",
            "--url",
            url,
            "--organizer",
            "venue",
            "--event",
            event,
            "--token-file",
        ])
        .arg(token_file)
        .args(extra)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("VENUEBOX_PRETIX_TOKEN")
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

fn private_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// pretix's check-ins of `slug`: (successful, error reason, type, list, datetime in ms).
async fn pretix_checkins(p: &Pretix, slug: &str) -> Vec<(bool, String, String, i64, i64)> {
    let mut out = Vec::new();
    let mut page = 1;
    loop {
        let v = p.ok(Method::GET, &format!("/events/{slug}/checkins/?page={page}"), None).await;
        for c in v["results"].as_array().unwrap() {
            out.push((
                c["successful"].as_bool().unwrap(),
                c["error_reason"].as_str().unwrap_or_default().to_string(),
                c["type"].as_str().unwrap().to_string(),
                c["list"].as_i64().unwrap(),
                parse_rfc3339(c["datetime"].as_str().unwrap()).unwrap(),
            ));
        }
        if v["next"].is_null() {
            return out;
        }
        page += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_door_admits_pretix_tickets_offline_and_pretix_counts_each_check_in_once() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let p = tokio::task::spawn_blocking(Pretix::shared).await.unwrap();
    let slug = "doors";
    // The event starts with classic random secrets and switches to signed
    // ones after its first sale, as an organiser may: both kinds scan.
    let (ga, vip, variations) = event(p, slug, false).await;
    let lists = p.ok(Method::GET, &format!("/events/{slug}/checkinlists/"), None).await;
    let main_list = lists["results"][0]["id"].as_i64().unwrap();
    let vip_list = json!({"name": "VIP door", "all_products": false, "limit_products": [vip]});
    let vip_list =
        p.ok(Method::POST, &format!("/events/{slug}/checkinlists/"), Some(vip_list)).await["id"]
            .as_i64()
            .unwrap();
    let secret = |o: &Value| o["positions"][0]["secret"].as_str().unwrap().to_string();
    let cleo = secret(&order(p, slug, true, &[(ga, None, "Cleo Classic")]).await);
    p.use_signed_secrets(slug);
    let ada = secret(&order(p, slug, true, &[(ga, None, "Ada Lovelace")]).await);
    let grace = secret(&order(p, slug, true, &[(vip, Some(variations[0]), "Grace Hopper")]).await);
    let alan = secret(&order(p, slug, false, &[(ga, None, "Alan Turing")]).await);
    let linus = order(p, slug, true, &[(ga, None, "Linus")]).await;
    let linus_old = secret(&linus);
    // Linus's ticket is reissued: pretix revokes the old signed secret.
    let pos = linus["positions"][0]["id"].as_i64().unwrap();
    let reissued = p
        .ok(Method::POST, &format!("/events/{slug}/orderpositions/{pos}/regenerate_secrets/"), None)
        .await;
    let linus_new = reissued["secret"].as_str().unwrap().to_string();
    assert_ne!(linus_new, linus_old);
    // Bea's ticket is blocked in pretix.
    let bea = order(p, slug, true, &[(ga, None, "Bea Blocked")]).await;
    let pos = bea["positions"][0]["id"].as_i64().unwrap();
    let body = json!({"name": "admin"});
    p.ok(Method::POST, &format!("/events/{slug}/orderpositions/{pos}/add_block/"), Some(body))
        .await;
    let bea = secret(&bea);

    let upstream: std::net::SocketAddr = p.base.trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start(upstream).await;
    let url = proxy.endpoint();
    let work = Work::new(p);
    let (dir, token_file, staff) = (work.dir.clone(), work.token_file.clone(), work.staff.clone());
    let staff_flag = ["--staff", staff.to_str().unwrap()];

    // Refusals that say what to do, and leave the box without an event.
    let wrong = work.tmp.path().join("wrong.token");
    private_file(&wrong, "not-a-real-token");
    let (ok, _, err) = import(&dir, &url, slug, &wrong, &staff_flag);
    assert!(!ok && err.contains("refused the API token (401)"), "{err}");
    let (ok, _, err) = import(&dir, &url, "nope", &token_file, &staff_flag);
    assert!(!ok && err.contains("no event 'nope' under organizer 'venue'"), "{err}");
    let (ok, _, err) =
        import(&dir, &url, slug, &token_file, &["--list", "999999", staff_flag[0], staff_flag[1]]);
    assert!(!ok && err.contains("no check-in list 999999") && err.contains("VIP door"), "{err}");
    let (ok, _, err) = import(&dir, &url, slug, &token_file, &[]);
    assert!(!ok && err.contains("--staff"), "{err}");
    let team = json!({"name": "no orders", "all_events": true, "limit_events": [], "all_event_permissions": false,
                      "limit_event_permissions": {}, "all_organizer_permissions": false, "limit_organizer_permissions": {}});
    let team = p.ok(Method::POST, "/teams/", Some(team)).await["id"].as_i64().unwrap();
    let weak =
        p.ok(Method::POST, &format!("/teams/{team}/tokens/"), Some(json!({"name": "weak"}))).await;
    let weak_file = work.tmp.path().join("weak.token");
    private_file(&weak_file, weak["token"].as_str().unwrap());
    let (ok, _, err) = import(&dir, &url, slug, &weak_file, &staff_flag);
    assert!(!ok && err.contains("403") && err.contains("may not"), "{err}");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, _, err) = import(&dir, &url, slug, &token_file, &staff_flag);
    assert!(!ok && err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();

    let (ok, out, err) = import(&dir, &url, slug, &token_file, &staff_flag);
    assert!(ok, "{err}");
    assert!(
        out.contains("imported pretix-venue-doors version 1")
            && out.contains("6 tickets")
            && out.contains("1 signing key"),
        "{out}"
    );
    assert!(
        out.contains(&format!("gate pretix-{main_list}: Main door"))
            && out.contains(&format!("gate pretix-{vip_list}: VIP door")),
        "{out}"
    );
    // Again: only what changed since is read, and nothing has.
    let (ok, out, err) = import(&dir, &url, slug, &token_file, &[]);
    assert!(ok && out.contains("version 1 is up to date"), "{out}{err}");
    let kept = dir.join("pretix-token");
    assert_eq!(std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777, 0o600);

    // Sold online after the import: the box has never heard of it.
    let late = secret(&order(p, slug, true, &[(ga, None, "Late Comer")]).await);

    let door = token(&dir, "door");
    let sup = token(&dir, "supervisor");
    proxy.set_down(true); // the venue's internet is gone
                          // A fixed port, so the box restarted after a crash is where it was.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let start = || {
        let flags =
            ["--pretix-send-every-ms", "200", "--pretix-import-every", "10", "--listen", &listen];
        Running(serve(&dir, &flags, &[]).0)
    };
    let mut running = start();
    let base = format!("http://{listen}");
    let main = format!("pretix-{main_list}");
    let vipg = format!("pretix-{vip_list}");
    let mut n = 0;
    let mut scan = |code: &str, gate: &str, direction: &str| {
        n += 1;
        let body =
            json!({"code": code, "gate": gate, "direction": direction, "nonce": format!("t-{n}")});
        let (base, door) = (base.clone(), door.clone());
        async move { check_in(&base, &door, body).await }
    };
    let verdict = |v: &Value| v["reason"].as_str().unwrap_or("admit").to_string();
    let mut admitted = Vec::new();
    let mut refused = Vec::new();
    let (ada, grace, alan, linus_old, linus_new, late, main, vipg) =
        (&*ada, &*grace, &*alan, &*linus_old, &*linus_new, &*late, &*main, &*vipg);
    let (cleo, bea) = (&*cleo, &*bea);
    let expect = [
        (ada, main, "entry", "admit"),
        (ada, main, "entry", "already_checked_in"),
        (ada, vipg, "entry", "not_allowed_at_gate"),
        (grace, vipg, "entry", "admit"),
        (alan, main, "entry", "unpaid"),
        (linus_old, main, "entry", "revoked"),
        (linus_new, main, "entry", "admit"),
        (late, main, "entry", "admit"),
        (cleo, main, "entry", "admit"),
        (bea, main, "entry", "blocked"),
        ("FORGED-OR-FOREIGN-CODE", main, "entry", "unknown_ticket"),
        (ada, main, "exit", "admit"),
        (ada, main, "entry", "admit"),
    ];
    let (mut grace_scan, mut linus_scan) = (0, 0);
    for (code, gate, dir_, want) in expect {
        let v = scan(code, gate, dir_).await;
        assert_eq!(verdict(&v), want, "{code} at {gate}: {v}");
        let at = parse_rfc3339(v["recorded_at"].as_str().unwrap()).unwrap();
        if want == "admit" {
            admitted.push(at)
        } else {
            refused.push(at)
        }
        if code == grace {
            grace_scan = v["scan_id"].as_i64().unwrap();
        }
        if code == linus_new {
            linus_scan = v["scan_id"].as_i64().unwrap();
        }
    }
    // A supervisor takes Grace's check-in back before pretix heard of it:
    // pretix never counts it.
    let (status, v) =
        call(Method::POST, &base, &format!("/api/v1/checkins/{grace_scan}/undo"), &sup, None).await;
    assert_eq!(status, 200, "{v}");
    admitted.remove(1);

    // The link returns, and the first three answers are lost on the way
    // back: pretix acted, the box did not hear it, and sends them again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        pretix_checkins(p, slug).await.is_empty(),
        "nothing reached pretix while it was out of reach"
    );
    proxy.lose_answers(3);
    proxy.set_down(false);
    let want_ok = admitted.len();
    let want_failed = refused.len();
    // Part way through, the box is killed (power cut) and starts again.
    for _ in 0..600 {
        if pretix_checkins(p, slug).await.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.0.kill().unwrap();
    running.0.wait().unwrap();
    assert!(pretix_checkins(p, slug).await.len() < want_ok + want_failed, "killed part way");
    drop(running);
    let _restarted = start();
    for _ in 0..600 {
        let got = pretix_checkins(p, slug).await;
        if got.len() >= want_ok + want_failed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(proxy.cuts.load(std::sync::atomic::Ordering::SeqCst) >= 3, "answers were lost");
    tokio::time::sleep(Duration::from_secs(2)).await; // any duplicate would arrive by now
    let got = pretix_checkins(p, slug).await;
    let mut ok_times: Vec<i64> = got.iter().filter(|c| c.0).map(|c| c.4).collect();
    ok_times.sort();
    admitted.sort();
    assert_eq!(ok_times, admitted, "each admitted scan once, at the box's time: {got:?}");
    let types: Vec<&str> = got.iter().filter(|c| c.0).map(|c| c.2.as_str()).collect();
    assert_eq!(types.iter().filter(|t| **t == "exit").count(), 1, "{got:?}");
    let mut failed: Vec<(String, i64)> =
        got.iter().filter(|c| !c.0).map(|c| (c.1.clone(), c.4)).collect();
    failed.sort();
    let mut want: Vec<(String, i64)> =
        ["already_redeemed", "product", "unpaid", "revoked", "blocked", "invalid"]
            .iter()
            .map(|r| r.to_string())
            .zip(refused.iter().copied())
            .collect();
    want.sort();
    assert_eq!(failed, want, "each refused scan once, with pretix's reason and the box's time");
    assert!(got.iter().filter(|c| c.1 == "product").all(|c| c.3 == vip_list), "on the gate's list");

    // Linus's check-in, already in pretix, is taken back: pretix annuls it.
    let (status, v) =
        call(Method::POST, &base, &format!("/api/v1/checkins/{linus_scan}/undo"), &sup, None).await;
    assert_eq!(status, 200, "{v}");
    let linus_at = parse_rfc3339(v["recorded_at"].as_str().unwrap()).unwrap();
    let mut annulled = Vec::new();
    for _ in 0..300 {
        annulled =
            pretix_checkins(p, slug).await.into_iter().filter(|c| c.1 == "annulled").collect();
        if !annulled.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(annulled.len(), 1, "{annulled:?}");
    assert_eq!(
        (annulled[0].0, annulled[0].4),
        (false, linus_at),
        "the check-in at the box's time, annulled"
    );

    // The box imports again by itself: the late ticket is listed now,
    // under the same id its signature gave it, so it is still inside.
    for _ in 0..300 {
        let h = call(Method::GET, &base, "/healthz", &door, None).await.1;
        if h["manifest_version"].as_u64() >= Some(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let h = call(Method::GET, &base, "/healthz", &door, None).await.1;
    assert_eq!(h["manifest_version"], 2, "re-imported: {h}");
    // What the dashboard shows of it.
    let (status, sync) = call(Method::GET, &base, "/api/v1/sync", &sup, None).await;
    assert_eq!(status, 200, "{sync}");
    let px = &sync["pretix"];
    assert_eq!(
        (px["sending"].as_bool(), px["waiting_scans"].as_i64(), px["refused_scans"].as_i64()),
        (Some(true), Some(0), Some(0)),
        "{px}"
    );
    assert!(px["last_import"].as_str().is_some_and(|t| t.starts_with("version 2")), "{px}");
    let v = scan(late, main, "entry").await;
    assert_eq!(verdict(&v), "already_checked_in", "{v}");
    assert_eq!(v["ticket"]["holder"], "Late Comer", "listed now: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_may_not_check_in_costs_no_check_in_and_pretixs_refusals_stay_refusals() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let p = tokio::task::spawn_blocking(Pretix::shared).await.unwrap();
    let slug = "readonly";
    let (ga, _, _) = event(p, slug, true).await;
    let secret = |o: &Value| o["positions"][0]["secret"].as_str().unwrap().to_string();
    let ada = secret(&order(p, slug, true, &[(ga, None, "Ada")]).await);
    let bo = secret(&order(p, slug, true, &[(ga, None, "Bo")]).await);
    // Waits for the organiser's approval: refused at every list, even one
    // that admits pending orders (pretix's own rule).
    let cy = json!({"require_approval": true});
    let cy = secret(&order_with(p, slug, false, &[(ga, None, "Cy")], cy).await);
    // Unpaid, on a list that admits pending orders after asking; the
    // order asks staff to check ID, the product to hand over a wristband.
    let di = json!({"checkin_attention": true, "checkin_text": "Check ID: under 18"});
    let di = secret(&order_with(p, slug, false, &[(ga, None, "Di")], di).await);
    let note = json!({"checkin_text": "Hand over a wristband"});
    p.ok(Method::PATCH, &format!("/events/{slug}/items/{ga}/"), Some(note)).await;
    let lists = p.ok(Method::GET, &format!("/events/{slug}/checkinlists/"), None).await;
    let list = lists["results"][0]["id"].as_i64().unwrap();
    let pending = json!({"include_pending": true});
    p.ok(Method::PATCH, &format!("/events/{slug}/checkinlists/{list}/"), Some(pending)).await;
    // A second list: pretix counts entries per list.
    let lounge = json!({"name": "Lounge", "all_products": true});
    let lounge = p.ok(Method::POST, &format!("/events/{slug}/checkinlists/"), Some(lounge)).await
        ["id"]
        .as_i64()
        .unwrap();

    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("box");
    // The organiser's first token may read orders, not check in.
    let reader = team_token(p, work.path(), "readers", json!({"can_view_orders": true})).await;
    let full = team_token(
        p,
        work.path(),
        "door",
        json!({"can_view_orders": true, "can_checkin_orders": true}),
    )
    .await;
    let staff = staff_file(work.path());
    let (ok, out, err) =
        import(&dir, &p.base, slug, &reader, &["--staff", staff.to_str().unwrap()]);
    assert!(ok, "the door works with a token that reads orders: {out}{err}");
    assert!(
        err.contains("warning: check-ins cannot go back to pretix")
            && err.contains("permission to check in"),
        "the import says which permission is missing: {err}"
    );

    let flags = ["--pretix-send-every-ms", "200", "--undo-window-secs", "3600"];
    let (child, addr) = serve(&dir, &flags, &[]);
    let _running = Running(child);
    let base = format!("http://{addr}");
    let (door, sup, admin) = (token(&dir, "door"), token(&dir, "supervisor"), token(&dir, "admin"));
    let main = format!("pretix-{list}");
    let mut n = 0;
    let mut scan_at = |code: &str, gate: &str, confirm_unpaid: bool| {
        n += 1;
        let body = json!({"code": code, "gate": gate, "direction": "entry", "nonce": format!("ro-{n}"),
                          "confirm_unpaid": confirm_unpaid});
        let (base, door) = (base.clone(), door.clone());
        async move { check_in(&base, &door, body).await }
    };
    let verdict = |v: &Value| v["reason"].as_str().unwrap_or("admit").to_string();
    let a = scan_at(&ada, &main, false).await;
    assert_eq!(verdict(&a), "admit");
    assert_eq!(a["checkin_texts"], json!(["Hand over a wristband"]), "{a}");
    let b = scan_at(&bo, &main, false).await;
    assert_eq!(verdict(&b), "admit");
    assert_eq!(verdict(&scan_at(&ada, &main, false).await), "already_checked_in");
    let lounge_gate = format!("pretix-{lounge}");
    assert_eq!(
        verdict(&scan_at(&ada, &lounge_gate, false).await),
        "admit",
        "another list, its own count"
    );
    let c = scan_at(&cy, &main, true).await;
    assert_eq!(
        (verdict(&c), c["ask"].clone()),
        ("unapproved".into(), Value::Null),
        "awaiting approval, on a list that admits pending: {c}"
    );
    let d = scan_at(&di, &main, false).await;
    assert_eq!((verdict(&d), d["ask"].as_str()), ("unpaid".into(), Some("unpaid")), "{d}");
    assert_eq!(d["attention"], true, "{d}");
    assert_eq!(d["checkin_texts"], json!(["Hand over a wristband", "Check ID: under 18"]), "{d}");
    let d = scan_at(&di, &main, true).await;
    assert_eq!(verdict(&d), "admit", "staff let Di in anyway: {d}");
    assert_eq!(
        verdict(&scan_at(&di, &lounge_gate, true).await),
        "unpaid",
        "the lounge admits paid orders only"
    );

    // The lane stops on the link, loudly, and files nothing as refused.
    let px = pretix_state_until(&base, &sup, "the lane says it stopped", |px| {
        px["paused"].is_string() && px["needs_fixing"] == true
    })
    .await;
    assert!(px["paused"].as_str().unwrap().contains("permission to check in"), "{px}");
    assert_eq!(
        (px["waiting_scans"].as_i64(), px["refused_scans"].as_i64()),
        (Some(8), Some(0)),
        "{px}"
    );
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("venuebox_pretix_link_paused 1")
            && metrics.contains("venuebox_pretix_scans_waiting 8"),
        "{metrics}"
    );
    let status =
        Command::new(BIN).args(["pretix", "status", "--data-dir"]).arg(&dir).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.contains("CHECK-INS ARE NOT GOING BACK"), "{status}");
    assert!(pretix_checkins(p, slug).await.is_empty(), "pretix heard of nothing yet");

    // A token that still may not check in is refused; the right one is taken
    // while the box runs, and every check-in arrives once.
    let give = |file: &Path| {
        let out = Command::new(BIN)
            .args(["pretix", "token", "--token-file"])
            .arg(file)
            .arg("--data-dir")
            .arg(&dir)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, said) = give(&reader);
    assert!(
        !ok && said.contains("permission to check in") && said.contains("keeps its old token"),
        "{said}"
    );
    let (ok, said) = give(&full);
    assert!(ok, "{said}");
    let px = pretix_state_until(&base, &sup, "the lane goes again", |px| {
        px["paused"].is_null() && px["waiting_scans"] == 0
    })
    .await;
    assert_eq!(px["refused_scans"], 0, "{px}");
    tokio::time::sleep(Duration::from_secs(1)).await; // a duplicate would arrive by now
    let got = pretix_checkins(p, slug).await;
    let mut ok: Vec<i64> = got.iter().filter(|c| c.0).map(|c| c.3).collect();
    ok.sort();
    let mut reasons: Vec<&str> = got.iter().filter(|c| !c.0).map(|c| c.1.as_str()).collect();
    reasons.sort();
    assert_eq!(
        (ok, reasons),
        (vec![list, list, list, lounge], vec!["already_redeemed", "unapproved", "unpaid"]),
        "Ada, Bo and Di (let in unpaid) on the main list, Ada in the lounge, Di refused there (paid only); the question to staff never reached pretix: {got:?}"
    );
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("venuebox_pretix_link_paused 0"), "{metrics}");

    // Twenty minutes later (the box's clock set on), a supervisor undoes
    // Bo's check-in: pretix annuls only within 15 minutes, so it keeps Bo
    // inside, and the box says so instead of calling it annulled.
    let later = venuebox::domain::time::format_rfc3339(
        parse_rfc3339(b["recorded_at"].as_str().unwrap()).unwrap() + 20 * 60_000,
    );
    let (status, v) =
        call(Method::PUT, &base, "/api/v1/clock", &admin, Some(json!({"now": later}))).await;
    assert_eq!(status, 200, "{v}");
    let bo_scan = b["scan_id"].as_i64().unwrap();
    let (status, v) =
        call(Method::POST, &base, &format!("/api/v1/checkins/{bo_scan}/undo"), &sup, None).await;
    assert_eq!(status, 200, "{v}");
    let px = pretix_state_until(&base, &sup, "the refused annulment is shown", |px| {
        px["refused_annulments"] == 1
    })
    .await;
    let r = &px["refusals"][0];
    assert_eq!(
        (r["scan_id"].as_i64(), r["kind"].as_str()),
        (Some(bo_scan), Some("annulment")),
        "{px}"
    );
    assert!(r["detail"].as_str().unwrap().contains("15 minutes"), "pretix's own words: {px}");
    let got = pretix_checkins(p, slug).await;
    assert_eq!(got.iter().filter(|c| c.0).count(), 4, "pretix still counts Bo in: {got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_raced_by_edits_and_new_orders_misses_no_order() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let p = tokio::task::spawn_blocking(Pretix::shared).await.unwrap();
    let slug = "busy";
    let (ga, _, _) = event(p, slug, false).await;
    let quota = p.ok(Method::GET, &format!("/events/{slug}/quotas/"), None).await["results"][0]
        ["id"]
        .as_i64()
        .unwrap();
    let unlimited = json!({"size": null});
    p.ok(Method::PATCH, &format!("/events/{slug}/quotas/{quota}/"), Some(unlimited)).await;
    tokio::task::spawn_blocking(move || p.bulk_orders("busy", ga, 2_000)).await.unwrap();
    // The orders pretix changed longest ago: edited, each jumps to the end
    // of a listing sorted by last change.
    let oldest = p
        .ok(
            Method::GET,
            &format!("/events/{slug}/orders/?ordering=last_modified&page_size=50"),
            None,
        )
        .await;
    let oldest: Vec<(i64, String)> = oldest["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let pos = &o["positions"][0];
            (pos["id"].as_i64().unwrap(), pos["secret"].as_str().unwrap().to_string())
        })
        .collect();

    let work = Work::new(p);
    let (dir, token_file, staff) = (work.dir.clone(), work.token_file.clone(), work.staff.clone());
    let mut first = Command::new(BIN)
        .args(["pretix", "import", "--url", &p.base, "--organizer", "venue", "--event", slug])
        .arg("--token-file")
        .arg(&token_file)
        .arg("--staff")
        .arg(&staff)
        .arg("--data-dir")
        .arg(&dir)
        .env_remove("VENUEBOX_PRETIX_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // While it reads, the organiser's team edits attendees of the oldest
    // orders and the shop sells more.
    let started = std::time::Instant::now();
    let mut names: std::collections::HashMap<String, String> = Default::default();
    let mut edits = 0;
    let mut sold = Vec::new();
    while first.try_wait().unwrap().is_none() {
        let (pos, secret) = &oldest[edits % oldest.len()];
        let name = format!("Edited {edits}");
        let body = json!({"attendee_name": name});
        p.ok(Method::PATCH, &format!("/events/{slug}/orderpositions/{pos}/"), Some(body)).await;
        names.insert(secret.clone(), name);
        edits += 1;
        if edits % 5 == 0 {
            let o = order(p, slug, true, &[(ga, None, &format!("Sold {edits}"))]).await;
            sold.push(o["positions"][0]["secret"].as_str().unwrap().to_string());
        }
    }
    let took = started.elapsed();
    let out = first.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(edits >= 10, "the import raced {edits} edits only ({took:?}): {text}");
    println!("import of 2,000 orders raced by {edits} edits and {} sales: {took:?}", sold.len());

    // The next import brings what changed meanwhile; one order never read
    // would be missing from it and from every later one.
    let (ok, text, err) = import(&dir, &p.base, slug, &token_file, &[]);
    assert!(ok, "{err}");
    let count = p.ok(Method::GET, &format!("/events/{slug}/orders/?page_size=1"), None).await
        ["count"]
        .as_i64()
        .unwrap();
    assert_eq!(count, 2_000 + sold.len() as i64);
    assert!(text.contains(&format!("{count} tickets")), "every position is on the box: {text}");
    let started = std::time::Instant::now();
    let (ok, text, err) = import(&dir, &p.base, slug, &token_file, &[]);
    assert!(ok && text.contains("version 2 is up to date"), "nothing changed since: {text}{err}");
    println!("re-import with nothing changed: {:?}", started.elapsed());

    // The last edits and the sales made during the race are at the door.
    let (child, addr) = serve(&dir, &[], &[]);
    let _running = Running(child);
    let base = format!("http://{addr}");
    let door = token(&dir, "door");
    let gate = first_list(p, slug).await;
    let mut n = 0;
    let wanted = names
        .iter()
        .map(|(s, h)| (s.clone(), h.clone()))
        .chain(sold.iter().enumerate().map(|(i, s)| (s.clone(), format!("Sold {}", (i + 1) * 5))));
    for (secret, holder) in wanted {
        n += 1;
        let body = json!({"code": secret, "gate": format!("pretix-{gate}"), "direction": "entry", "nonce": format!("busy-{n}")});
        let v = check_in(&base, &door, body).await;
        assert_eq!(
            (v["reason"].as_str(), v["ticket"]["holder"].as_str()),
            (None, Some(&*holder)),
            "{v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_date_of_an_event_series_is_imported_and_its_tickets_only_admit() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let p = tokio::task::spawn_blocking(Pretix::shared).await.unwrap();
    let slug = "tour";
    let ev = json!({"name": {"en": "The tour"}, "slug": slug, "has_subevents": true,
        "date_from": "2026-12-05T19:00:00Z", "currency": "EUR", "live": false});
    p.ok(Method::POST, "/events/", Some(ev)).await;
    p.use_signed_secrets(slug);
    let ga = json!({"name": {"en": "Ticket"}, "default_price": "20.00", "admission": true, "active": true});
    let ga = p.ok(Method::POST, &format!("/events/{slug}/items/"), Some(ga)).await["id"]
        .as_i64()
        .unwrap();
    let mut dates = Vec::new();
    for (name, from) in [
        ("Friday", "2026-12-05T19:00:00Z"),
        ("Saturday matinee", "2026-12-06T15:00:00Z"),
        ("Saturday night", "2026-12-06T20:00:00Z"),
    ] {
        let d = json!({"name": {"en": name}, "date_from": from, "active": true, "meta_data": {}});
        let id = p.ok(Method::POST, &format!("/events/{slug}/subevents/"), Some(d)).await["id"]
            .as_i64()
            .unwrap();
        let quota = json!({"name": name, "size": 100, "items": [ga], "subevent": id});
        p.ok(Method::POST, &format!("/events/{slug}/quotas/"), Some(quota)).await;
        dates.push(id);
    }
    let (fri, sat) = (dates[0], dates[1]);
    for (name, subevent) in
        [("All dates", None), ("Friday door", Some(fri)), ("Matinee door", Some(sat))]
    {
        let list = json!({"name": name, "all_products": true, "subevent": subevent});
        p.ok(Method::POST, &format!("/events/{slug}/checkinlists/"), Some(list)).await;
    }
    let buy = |positions: Vec<(i64, &'static str)>| async move {
        let positions: Vec<Value> = positions
            .into_iter()
            .map(|(d, name)| json!({"item": ga, "subevent": d, "attendee_name": name}))
            .collect();
        let body = json!({"email": "fan@example.org", "locale": "en", "sales_channel": "web",
            "payment_provider": "manual", "status": "p", "send_email": false, "positions": positions});
        let o = p.ok(Method::POST, &format!("/events/{slug}/orders/"), Some(body)).await;
        o["positions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["secret"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let ana = buy(vec![(fri, "Ana")]).await.remove(0);
    let ben = buy(vec![(sat, "Ben")]).await.remove(0);
    let both = buy(vec![(fri, "Cleo"), (sat, "Cleo")]).await;

    let work = Work::new(p);
    let (dir, token_file, staff) = (work.dir.clone(), work.token_file.clone(), work.staff.clone());
    let staff = staff.to_str().unwrap();
    let with = |extra: &[&'static str]| -> Vec<&str> { [&["--staff", staff], extra].concat() };
    let (ok, _, err) = import(&dir, &p.base, slug, &token_file, &with(&[]));
    assert!(
        !ok && err.contains("is an event series")
            && err.contains("--date YYYY-MM-DD")
            && err.contains(&format!("--subevent {sat}")),
        "no date chosen: the dates there are: {err}"
    );
    let (ok, _, err) = import(&dir, &p.base, slug, &token_file, &with(&["--date", "2026-12-06"]));
    assert!(!ok && err.contains("has 2 dates then") && err.contains("Saturday night"), "{err}");
    let (ok, _, err) = import(&dir, &p.base, slug, &token_file, &with(&["--date", "2026-12-07"]));
    assert!(!ok && err.contains("no date on 2026-12-07"), "{err}");
    let (ok, out, err) = import(&dir, &p.base, slug, &token_file, &with(&["--date", "2026-12-05"]));
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("imported pretix-venue-tour-{fri} version 1"))
            && out.contains(" 2 tickets"),
        "Ana's ticket and Cleo's Friday one: {out}"
    );
    assert!(
        out.contains("All dates") && out.contains("Friday door") && !out.contains("Matinee door"),
        "{out}"
    );
    let (ok, out, err) = import(&dir, &p.base, slug, &token_file, &[]);
    assert!(ok && out.contains("is up to date"), "the date is kept: {out}{err}");

    let (child, addr) = serve(&dir, &[], &[]);
    let _running = Running(child);
    let base = format!("http://{addr}");
    let door = token(&dir, "door");
    let (status, event) = call(Method::GET, &base, "/api/v1/event", &door, None).await;
    assert_eq!(status, 200, "{event}");
    let gate =
        event["gates"].as_array().unwrap().iter().find(|g| g["name"] == "Friday door").unwrap()
            ["id"]
            .as_str()
            .unwrap()
            .to_string();
    for (i, (code, want)) in
        [(&ana, "admit"), (&ben, "wrong_event"), (&both[0], "admit"), (&both[1], "wrong_event")]
            .into_iter()
            .enumerate()
    {
        let body = json!({"code": code, "gate": gate, "nonce": format!("tour-{i}")});
        let v = check_in(&base, &door, body).await;
        assert_eq!(
            v["reason"].as_str().unwrap_or("admit"),
            want,
            "a ticket for Saturday at Friday's door: {v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_connected_as_a_pretix_device_checks_in_as_that_device() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let p = tokio::task::spawn_blocking(Pretix::shared).await.unwrap();
    let slug = "devices";
    let (ga, _, _) = event(p, slug, true).await;
    let ada = order(p, slug, true, &[(ga, None, "Ada")]).await["positions"][0]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    // In pretix's back office: Organizer → Devices → Connect a device.
    let device = json!({"name": "Box at the main door", "all_events": true, "limit_events": [],
                        "security_profile": "pretixscan"});
    let device = p.ok(Method::POST, "/devices/", Some(device)).await;
    let setup = device["initialization_token"].as_str().unwrap().to_string();
    let device_id = device["device_id"].as_i64().unwrap();

    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("box");
    let init = |token: &str| {
        let out = Command::new(BIN)
            .args(["pretix", "init", "--url", &p.base, "--setup-token", token, "--data-dir"])
            .arg(&dir)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, said) = init(&setup);
    assert!(ok, "{said}");
    assert!(
        said.contains(&format!("pretix device #{device_id}"))
            && said.contains("organizer venue")
            && said.contains("venuebox pretix import"),
        "{said}"
    );
    let (ok, said) = init(&setup);
    assert!(!ok && said.contains("already been used"), "a setup token works once: {said}");

    let staff = staff_file(work.path());
    let out = Command::new(BIN)
        .args(["pretix", "import", "--url", &p.base, "--organizer", "venue", "--event", slug])
        .arg("--staff")
        .arg(&staff)
        .arg("--data-dir")
        .arg(&dir)
        .env_remove("VENUEBOX_PRETIX_TOKEN")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success() && text.contains("imported"), "{text}{err}");
    assert!(!err.contains("warning"), "a pretixSCAN device may check in: {err}");

    let (child, addr) = serve(&dir, &["--pretix-send-every-ms", "200"], &[]);
    let _running = Running(child);
    let base = format!("http://{addr}");
    let door = token(&dir, "door");
    let list = first_list(p, slug).await;
    let body = json!({"code": ada, "gate": format!("pretix-{list}"), "nonce": "device-1"});
    let v = check_in(&base, &door, body).await;
    assert!(v["reason"].is_null(), "{v}");
    let mut got = Value::Null;
    for _ in 0..300 {
        got = p.ok(Method::GET, &format!("/events/{slug}/checkins/"), None).await;
        if got["count"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let c = &got["results"][0];
    assert_eq!(
        (c["successful"].as_bool(), c["device"].as_i64()),
        (Some(true), Some(device_id)),
        "pretix shows which device checked Ada in: {got}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_with_custom_rules_is_decided_offline_as_pretix_decides_it() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let p = tokio::task::spawn_blocking(Pretix::shared).await.unwrap();
    let slug = "ruled";
    let ev = json!({"name": {"en": "Day festival"}, "slug": slug, "date_from": "2026-12-05T19:00:00Z",
        "date_admission": "2026-12-05T18:00:00Z", "currency": "EUR", "live": false, "timezone": "Europe/Berlin"});
    p.ok(Method::POST, "/events/", Some(ev)).await;
    let item = |name: &str| {
        let body = json!({"name": {"en": name}, "default_price": "10.00", "admission": true, "active": true});
        async move {
            p.ok(Method::POST, &format!("/events/{slug}/items/"), Some(body)).await["id"]
                .as_i64()
                .unwrap()
        }
    };
    let (ga, vip) = (item("Day pass").await, item("VIP").await);
    let quota = json!({"name": "all", "size": null, "items": [ga, vip]});
    p.ok(Method::POST, &format!("/events/{slug}/quotas/"), Some(quota)).await;
    // Day passes only; two entries a day, an hour apart; from ten minutes
    // before admission.
    let rules = json!({"and": [
        {"inList": [{"var": "product"}, {"objectList": [{"lookup": ["product", ga.to_string(), "Day pass"]}]}]},
        {"<": [{"var": "entries_today"}, 2]},
        {"or": [{">": [{"var": "minutes_since_last_entry"}, 59]}, {"==": [{"var": "minutes_since_last_entry"}, -1]}]},
        {"isAfter": [{"var": "now"}, {"buildTime": ["date_admission"]}, 10]}]});
    let list = json!({"name": "Day door", "all_products": true, "allow_multiple_entries": true,
                      "allow_entry_after_exit": true, "rules": rules});
    let list = p.ok(Method::POST, &format!("/events/{slug}/checkinlists/"), Some(list)).await["id"]
        .as_i64()
        .unwrap();
    let secret = |o: Value| o["positions"][0]["secret"].as_str().unwrap().to_string();
    // Each step scans one ticket at the box and its twin at pretix.
    let (box_pass, px_pass) = (
        secret(order(p, slug, true, &[(ga, None, "At the box")]).await),
        secret(order(p, slug, true, &[(ga, None, "At pretix")]).await),
    );
    let (box_vip, px_vip) = (
        secret(order(p, slug, true, &[(vip, None, "VIP at the box")]).await),
        secret(order(p, slug, true, &[(vip, None, "VIP at pretix")]).await),
    );

    let work = Work::new(p);
    let (dir, token_file, staff) = (work.dir.clone(), work.token_file.clone(), work.staff.clone());
    let (ok, out, err) =
        import(&dir, &p.base, slug, &token_file, &["--staff", staff.to_str().unwrap()]);
    assert!(ok, "a list with rules imports: {out}{err}");
    let (child, addr) = serve(&dir, &[], &[]);
    let _running = Running(child);
    let base = format!("http://{addr}");
    let script = [
        ("2026-12-05T17:40:00Z", false, "rules"),
        ("2026-12-05T17:55:00Z", false, "admit"),
        ("2026-12-05T18:20:00Z", false, "rules"),
        ("2026-12-05T19:00:00Z", false, "admit"),
        ("2026-12-05T19:01:00Z", true, "rules"),
        ("2026-12-05T20:30:00Z", false, "rules"),
        // After midnight in Berlin (23:30 UTC), a new day.
        ("2026-12-05T23:30:00Z", false, "admit"),
    ];
    for (i, (at, is_vip, want)) in script.into_iter().enumerate() {
        // Sessions end with the day they were made on: sign in anew after
        // moving the box's clock on.
        let admin = token(&dir, "admin");
        let (status, v) = call(
            Method::PUT,
            &base,
            "/api/v1/clock",
            &admin,
            Some(json!({"now": at, "confirm": true})),
        )
        .await;
        assert_eq!(status, 200, "{v}");
        let door = token(&dir, "door");
        let code = if is_vip { &box_vip } else { &box_pass };
        let body =
            json!({"code": code, "gate": format!("pretix-{list}"), "nonce": format!("rule-{i}")});
        let v = check_in(&base, &door, body).await;
        let at_box = v["reason"].as_str().unwrap_or("admit").to_string();
        let twin = if is_vip { &px_vip } else { &px_pass };
        let body = json!({"secret": twin, "lists": [list], "type": "entry", "datetime": v["recorded_at"],
                          "nonce": format!("pretix-rule-{i}"), "force": false, "ignore_unpaid": false,
                          "questions_supported": false, "source_type": "barcode"});
        let (_, answer) = p.api(Method::POST, "/checkinrpc/redeem/", Some(body)).await;
        let at_pretix = match answer["status"].as_str() {
            Some("ok") => "admit".to_string(),
            _ => answer["reason"].as_str().unwrap_or("?").to_string(),
        };
        assert_eq!(
            (at_box.as_str(), at_pretix.as_str()),
            (want, want),
            "step {i} at {at}: box {v}, pretix {answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn questions_asked_at_check_in_are_answered_at_the_door_and_reach_pretix() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let p = tokio::task::spawn_blocking(Pretix::shared).await.unwrap();
    let slug = "asked";
    let (ga, _, _) = event(p, slug, false).await;
    let q = |body: Value| async move {
        p.ok(Method::POST, &format!("/events/{slug}/questions/"), Some(body)).await
    };
    let band = q(json!({"question": {"en": "Wristband number"}, "identifier": "BAND", "type": "S", "required": true,
                        "items": [ga], "ask_during_checkin": true, "position": 1}))
    .await["id"]
        .as_i64()
        .unwrap();
    let drink = q(
        json!({"question": {"en": "Drink voucher"}, "identifier": "DRINK", "type": "C", "required": false, "items": [ga],
                         "ask_during_checkin": true, "position": 2,
                         "options": [{"answer": {"en": "Beer"}, "identifier": "BEER"}, {"answer": {"en": "Juice"}, "identifier": "JUICE"}]}),
    )
    .await;
    let juice = drink["options"][1]["id"].as_i64().unwrap();
    let drink = drink["id"].as_i64().unwrap();
    let ana = order(p, slug, true, &[(ga, None, "Ana")]).await;
    // Bo gave a wristband number when buying: only the drink is asked.
    let bo = json!({"email": "bo@example.org", "locale": "en", "sales_channel": "web", "payment_provider": "manual",
        "status": "p", "send_email": false,
        "positions": [{"item": ga, "attendee_name": "Bo", "answers": [{"question": band, "answer": "W-12", "options": []}]}]});
    let bo = p.ok(Method::POST, &format!("/events/{slug}/orders/"), Some(bo)).await;
    let secret = |o: &Value| o["positions"][0]["secret"].as_str().unwrap().to_string();

    let work = Work::new(p);
    let (dir, token_file, staff) = (work.dir.clone(), work.token_file.clone(), work.staff.clone());
    let (ok, out, err) =
        import(&dir, &p.base, slug, &token_file, &["--staff", staff.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let (child, addr) = serve(&dir, &["--pretix-send-every-ms", "200"], &[]);
    let _running = Running(child);
    let base = format!("http://{addr}");
    let (door, sup) = (token(&dir, "door"), token(&dir, "supervisor"));
    let list = first_list(p, slug).await;
    let mut n = 0;
    let mut scan = |code: String, answers: Value| {
        n += 1;
        let body = json!({"code": code, "gate": format!("pretix-{list}"), "nonce": format!("asked-{n}"), "answers": answers});
        let (base, door) = (base.clone(), door.clone());
        async move { check_in(&base, &door, body).await }
    };
    let asked = |v: &Value| -> Vec<i64> {
        v["questions"].as_array().unwrap().iter().map(|q| q["id"].as_i64().unwrap()).collect()
    };
    let v = scan(secret(&ana), json!({})).await;
    assert_eq!((v["reason"].as_str(), asked(&v)), (Some("incomplete"), vec![band, drink]), "{v}");
    assert_eq!(v["questions"][1]["options"][1]["answer"], "Juice", "{v}");
    let v =
        scan(secret(&ana), json!({band.to_string(): " ", drink.to_string(): juice.to_string()}))
            .await;
    assert_eq!(
        (v["reason"].as_str(), asked(&v)),
        (Some("incomplete"), vec![band, drink]),
        "a required answer left empty: {v}"
    );
    let v =
        scan(secret(&ana), json!({band.to_string(): "W-77", drink.to_string(): juice.to_string()}))
            .await;
    assert!(v["reason"].is_null(), "{v}");
    let v = scan(secret(&bo), json!({})).await;
    assert_eq!((v["reason"].as_str(), asked(&v)), (Some("incomplete"), vec![drink]), "{v}");
    let v = scan(secret(&bo), json!({drink.to_string(): ""})).await;
    assert!(v["reason"].is_null(), "the drink is optional: {v}");
    let (status, v) = call(Method::POST, &base, "/api/v1/checkins", &door,
        Some(json!({"code": secret(&ana), "gate": format!("pretix-{list}"), "nonce": "asked-bad", "answers": {"first": "x"}}))).await;
    assert!(
        status == 400 && v["error"]["message"].as_str().unwrap().contains("question ids"),
        "{status} {v}"
    );

    pretix_state_until(&base, &sup, "every scan went back", |px| px["waiting_scans"] == 0).await;
    let got = pretix_checkins(p, slug).await;
    assert_eq!(
        (got.iter().filter(|c| c.0).count(), got.iter().filter(|c| !c.0).count()),
        (2, 0),
        "the questions never reached pretix as refusals: {got:?}"
    );
    let ana = p
        .ok(Method::GET, &format!("/events/{slug}/orders/{}/", ana["code"].as_str().unwrap()), None)
        .await;
    let answers = &ana["positions"][0]["answers"];
    let given: Vec<(i64, String)> = answers
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["question"].as_i64().unwrap(), a["answer"].as_str().unwrap().to_string()))
        .collect();
    assert!(
        given.contains(&(band, "W-77".into()))
            && given.iter().any(|(q, a)| *q == drink && a == "Juice"),
        "Ana's answers in pretix: {answers}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn door_staff_on_a_phone_see_pretixs_notes_let_an_unpaid_guest_in_and_answer_its_question() {
    common::browser::chromium();
    let node = common::browser::playwright();
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let p = tokio::task::spawn_blocking(Pretix::shared).await.unwrap();
    let slug = "phone";
    let (ga, _, _) = event(p, slug, true).await;
    let note = json!({"checkin_text": "Hand over a wristband"});
    p.ok(Method::PATCH, &format!("/events/{slug}/items/{ga}/"), Some(note)).await;
    let band = json!({"question": {"en": "Wristband number"}, "identifier": "BAND", "type": "S",
        "required": true, "items": [ga], "ask_during_checkin": true, "position": 1});
    let band = p.ok(Method::POST, &format!("/events/{slug}/questions/"), Some(band)).await["id"]
        .as_i64()
        .unwrap();
    let list = first_list(p, slug).await;
    let pending = json!({"include_pending": true});
    p.ok(Method::PATCH, &format!("/events/{slug}/checkinlists/{list}/"), Some(pending)).await;
    // Bo answered when buying; Di has not paid, and staff are to check ID.
    let bo = json!({"email": "bo@example.org", "locale": "en", "sales_channel": "web", "payment_provider": "manual",
        "status": "p", "send_email": false,
        "positions": [{"item": ga, "attendee_name": "Bo", "answers": [{"question": band, "answer": "W-12", "options": []}]}]});
    let bo = p.ok(Method::POST, &format!("/events/{slug}/orders/"), Some(bo)).await;
    let di = json!({"checkin_attention": true, "checkin_text": "Check ID: under 18"});
    let di = order_with(p, slug, false, &[(ga, None, "Di")], di).await;
    let secret = |o: &Value| o["positions"][0]["secret"].as_str().unwrap().to_string();

    let work = Work::new(p);
    let (ok, out, err) = import(
        &work.dir,
        &p.base,
        slug,
        &work.token_file,
        &["--staff", work.staff.to_str().unwrap()],
    );
    assert!(ok, "{out}{err}");
    let (child, addrs) =
        common::binary::serve_lan(&work.dir, &["--pretix-send-every-ms", "200", "--no-mdns"]);
    let _running = Running(child);
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../web-shots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = node.join("pretix_door.mjs");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/pretix_door.mjs"), &script)
        .unwrap();
    let mut cmd = Command::new("node");
    cmd.arg(&script)
        .current_dir(&node)
        .env("BOX", format!("https://{}", addrs.https))
        .env("CA_PEM", work.dir.join("tls/ca.pem"))
        .env("PAIR_CODE", common::binary::pairing_code(&work.dir))
        .env("BO_CODE", secret(&bo))
        .env("DI_CODE", secret(&di))
        .env("SHOTS", &shots);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(r["errors"], json!([]), "no script errors on the page: {r}");
    let (b, d) = (&r["bo"], &r["di"]);
    assert_eq!(
        (&b["big"], &b["notes"]),
        (&json!("ADMIT"), &json!(["Hand over a wristband"])),
        "{r}"
    );
    assert_eq!(b["attention"], false, "{r}");
    assert_eq!(d["big"], "UNPAID", "staff are asked, not refused: {r}");
    assert_eq!(d["attention"], true, "the order's attention mark: {r}");
    assert_eq!(d["notes"], json!(["Hand over a wristband", "Check ID: under 18"]), "{r}");
    assert_eq!(r["asked"]["questions"], json!(["Wristband number *"]), "{r}");
    assert_eq!(r["answered"]["big"], "ADMIT", "{r}");

    let sup = token(&work.dir, "supervisor");
    let base = format!("http://{}", addrs.plain);
    pretix_state_until(&base, &sup, "both check-ins went back", |px| px["waiting_scans"] == 0)
        .await;
    let got = pretix_checkins(p, slug).await;
    assert_eq!(
        (got.iter().filter(|c| c.0).count(), got.iter().filter(|c| !c.0).count()),
        (2, 0),
        "pretix holds both check-ins, Di's unpaid one too: {got:?}"
    );
    let di = p
        .ok(Method::GET, &format!("/events/{slug}/orders/{}/", di["code"].as_str().unwrap()), None)
        .await;
    let answers = &di["positions"][0]["answers"];
    assert!(
        answers.as_array().unwrap().iter().any(|a| a["question"] == band && a["answer"] == "W-99"),
        "the answer typed on the phone is in pretix: {answers}"
    );
}
