//! Cloud sync end to end: the real box (store, HTTP server, sync loop)
//! syncing through a fault proxy to a real S3-compatible server (moto,
//! installed by the test set-up from PyPI). Every seq lands exactly once
//! and gap-free, captures arrive byte-identical, multipart uploads resume
//! without re-sending finished parts, permanent errors are reported and
//! lose nothing, a quiet box catches up when the link returns, manifests
//! come down, and payout statements can be recomputed from `events/`.

use crate::common;

use common::s3::{bucket_behind_proxy, landed_events, sync_config, Moto, PREFIX};
use common::{jpeg, nonce, sha256_hex, tus_metadata, TestBox, EVENT};
use serde_json::{json, Value};
use std::time::Duration;
use venuebox::domain::keys::sign_detached;
use venuebox::domain::role::Role;
use venuebox::domain::time::format_rfc3339;

async fn wait_for(what: &str, secs: u64, mut check: impl AsyncFnMut() -> bool) {
    let until = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < until {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Waits until the events lane has looked for a manifest `n` more times
/// (each pass of the lane does, frozen or not).
async fn checks_pass(b: &TestBox, n: u64) {
    let checks = || b.state.sync.live().manifest_checks;
    let until = checks() + n;
    wait_for("passes of the events lane", 10, async || checks() >= until).await;
}

async fn status(b: &TestBox) -> Value {
    let t = b.token(Role::Supervisor).await;
    let (st, s) = b.get(&t, "/api/v1/sync").await;
    assert_eq!(st, 200, "{s}");
    s
}

async fn wait_synced(b: &TestBox, secs: u64) {
    let until = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let s = status(b).await;
        if s["events_pending"] == 0 && s["captures_pending"] == 0 && s["files_pending"] == 0 {
            return;
        }
        assert!(std::time::Instant::now() < until, "sync did not catch up in {secs} s: {s:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every seq from 1 to the box's last, exactly once, in key order.
async fn assert_exactly_once(moto: &Moto, bucket: &str, b: &TestBox) -> Vec<Value> {
    let events = landed_events(moto, bucket).await;
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    let last = status(b).await["last_seq"].as_i64().unwrap();
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>(), "every seq once, gap-free, in order");
    for e in &events {
        assert_eq!(e["box_id"], b.state.store.box_id());
        assert!(
            e["at"].as_str().unwrap().ends_with('Z')
                && e["kind"].is_string()
                && e.get("payload").is_some()
        );
    }
    events
}

async fn check_in_many(b: &TestBox, n: usize) {
    let door = b.token(Role::Door).await;
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (http, url, token, code) = (
            b.http.clone(),
            b.url("/api/v1/checkins"),
            door.clone(),
            b.signed(&format!("T-{}", nonce()), "ga"),
        );
        tasks.push(tokio::spawn(async move {
            let body = json!({"code": code, "gate": "main", "nonce": nonce()});
            let r = http.post(url).bearer_auth(token).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }));
        if tasks.len() == 16 {
            for t in tasks.drain(..) {
                t.await.unwrap();
            }
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Uploads `bytes` with tus (create, then 8 MiB PATCHes) to the box at `base`.
async fn tus_upload(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    bytes: &[u8],
    creator: &str,
    name: &str,
) -> String {
    let meta = tus_metadata(&[
        ("filename", name),
        ("creator", creator),
        ("uploader", "Cam"),
        ("consent", "true"),
    ]);
    let tus =
        |req: reqwest::RequestBuilder| req.bearer_auth(token).header("tus-resumable", "1.0.0");
    let create = http
        .post(format!("{base}/api/v1/uploads/"))
        .header("upload-length", bytes.len().to_string())
        .header("upload-metadata", meta);
    let r = tus(create).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    for (i, chunk) in bytes.chunks(8 << 20).enumerate() {
        let patch = http
            .patch(format!("{base}{loc}"))
            .header("upload-offset", (i * (8 << 20)).to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(chunk.to_vec());
        assert_eq!(tus(patch).send().await.unwrap().status(), 204);
    }
    sha256_hex(bytes)
}

async fn upload(b: &TestBox, creator: &str, bytes: &[u8], name: &str) -> String {
    tus_upload(&b.http, &b.url(""), &b.token(Role::Capture).await, bytes, creator, name).await
}

fn video(mib: usize, seed: u8) -> Vec<u8> {
    let mut v = b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2".to_vec();
    let mut x = seed as u32 | 1;
    v.resize(mib << 20, 0);
    for b in v[24..].iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_seq_lands_exactly_once_through_cuts_and_an_outage() {
    let (moto, proxy, bucket) = bucket_behind_proxy().await;
    let b = TestBox::start_synced(sync_config(&proxy.endpoint(), &bucket), |_| {}).await;
    check_in_many(&b, 150).await;
    // Cut a connection mid-body, then take the link away while writes go on.
    proxy.cut_after(700);
    check_in_many(&b, 150).await;
    proxy.set_down(true);
    check_in_many(&b, 200).await;
    // Observed, not slept for: attempts fail while the link is down.
    wait_for("a failed attempt", 10, async || status(&b).await["last_error_kind"] == "retryable")
        .await;
    let s = status(&b).await;
    assert!(
        s["events_pending"].as_i64().unwrap() >= 200,
        "nothing can leave while the link is down: {s}"
    );
    assert_eq!(s["last_error_kind"], "retryable", "{s}");
    assert!(s["lag_seconds"].as_f64().unwrap() > 0.0);
    proxy.set_down(false);
    wait_synced(&b, 30).await;
    assert!(proxy.cuts.load(std::sync::atomic::Ordering::SeqCst) >= 1, "a body was cut mid-way");
    let events = assert_exactly_once(moto, &bucket, &b).await;
    assert!(events.iter().filter(|e| e["kind"] == "checkin.admitted").count() == 500);
    // The manifest poll that failed during the outage clears on its next try.
    wait_for("every stream recovered", 10, async || status(&b).await["last_error"].is_null()).await;
    let s = status(&b).await;
    assert!(s["last_error"].is_null() && s["lag_seconds"] == 0.0, "recovered: {s}");
    // Keys: hive-style partitions, zero-padded seqs that list in order.
    let keys = moto.list(&bucket, &format!("{PREFIX}/events/")).await;
    let date = format_rfc3339(b.state.clock.now())[..10].to_string();
    let first = &keys[0].0;
    assert!(
        first.starts_with(&format!(
            "{PREFIX}/events/box={}/date={date}/000000000001-",
            b.state.store.box_id()
        )),
        "{first}"
    );
    // The metrics say the same.
    let metrics = b.http.get(b.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("venuebox_sync_events_pending 0")
            && metrics.contains("venuebox_sync_permanent_error 0"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_box_catches_up_when_the_link_returns() {
    let (moto, proxy, bucket) = bucket_behind_proxy().await;
    proxy.set_down(true);
    let b = TestBox::start_synced(sync_config(&proxy.endpoint(), &bucket), |_| {}).await;
    check_in_many(&b, 40).await;
    wait_for("a few failed attempts", 10, async || {
        status(&b).await["live"]["events"]["consecutive_failures"].as_u64().unwrap_or(0) >= 3
    })
    .await;
    wait_for("the backoff state", 5, async || status(&b).await["state"] == "backoff").await;
    // No new local writes from here on: the link alone brings it back.
    proxy.set_down(false);
    wait_synced(&b, 15).await;
    assert_exactly_once(moto, &bucket, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_error_is_reported_loses_nothing_and_clears_once_fixed() {
    let moto = Moto::shared();
    // A bucket name no other test uses, created only once "fixed".
    let missing = format!("no-such-bucket-{}", std::process::id());
    let b = TestBox::start_synced(sync_config(&moto.endpoint(), &missing), |_| {}).await;
    check_in_many(&b, 20).await;
    wait_for("the permanent error", 10, async || status(&b).await["state"] == "error").await;
    let s = status(&b).await;
    assert_eq!(s["last_error_kind"], "permanent", "{s}");
    let err = s["last_error"].as_str().unwrap();
    assert!(err.contains("no-such-bucket") && err.contains("does not exist"), "{err}");
    assert!(
        !err.contains("test-secret") && !err.contains("X-Amz-Signature"),
        "no secrets in errors: {err}"
    );
    let metrics = b.http.get(b.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("venuebox_sync_permanent_error 1"), "{metrics}");
    assert!(s["events_pending"].as_i64().unwrap() >= 20, "nothing dropped: {s}");
    // A door phone may not poke sync; a supervisor may.
    let door = b.token(Role::Door).await;
    assert_eq!(b.post(&door, "/api/v1/sync/now", json!({})).await.0, 403);
    // Fix the configuration (create the bucket) and ask for a sync.
    moto.create_bucket(&missing).await;
    let sup = b.token(Role::Supervisor).await;
    assert_eq!(b.post(&sup, "/api/v1/sync/now", json!({})).await.0, 202);
    wait_for("the catch-up", 15, async || status(&b).await["events_pending"] == 0).await;
    let events = landed_events(moto, &missing).await;
    assert_eq!(events.len() as i64, status(&b).await["last_seq"].as_i64().unwrap());
    // Every stream's error clears (the manifest poll's on its next look).
    wait_for("the errors to clear", 10, async || status(&b).await["last_error"].is_null()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_put_and_the_cursor_update_leaves_each_seq_once() {
    use venuebox::domain::ids::Seq;
    use venuebox::store::sync::PendingSegment;
    use venuebox::sync::plan::{encode, LogEvent};
    use venuebox::sync::{SyncHandle, Syncer};
    let moto = Moto::shared();
    let bucket = moto.new_bucket().await;
    // A box with no sync loop of its own: the test plays the syncer.
    let b = TestBox::start().await;
    let store = &b.state.store;
    let restart = || {
        let st = &b.state;
        let config = sync_config(&moto.endpoint(), &bucket);
        Syncer::new(
            st.store.clone(),
            st.media.clone(),
            st.clock.clone(),
            config,
            std::sync::Arc::new(SyncHandle::default()),
            Default::default(),
            b.dir.path().to_path_buf(),
        )
        .unwrap()
    };
    let key = |first: i64, last: i64| {
        let date = format_rfc3339(b.state.clock.now())[..10].to_string();
        format!(
            "{PREFIX}/events/box={}/date={date}/{first:012}-{last:012}.ndjson.zst",
            store.box_id()
        )
    };
    check_in_many(&b, 5).await;
    let rows = store.outbox_after(Seq(0), 1000).await.unwrap();
    let last = rows.last().unwrap().seq.0;
    // The syncer planned the segment and its PUT reached the bucket; then
    // the power went, before the cursor moved.
    let planned = PendingSegment { first: 1, last, key: key(1, last) };
    assert_eq!(store.sync_plan_segment(0, planned.clone()).await.unwrap(), Some(planned.clone()));
    let events: Vec<LogEvent> = rows.into_iter().map(LogEvent::from).collect();
    moto.put(&bucket, &planned.key, encode(&events)).await;
    // After the restart the pending segment goes again: 412, same bytes,
    // counted as sent; the cursor moves; nothing is doubled.
    let s = restart();
    assert!(s.events_step(true).await.unwrap());
    assert_eq!(store.sync_stream("events").await.unwrap().cursor, last);
    assert!(!s.events_step(true).await.unwrap(), "nothing left");
    let landed = moto.list(&bucket, &format!("{PREFIX}/events/")).await;
    assert_eq!(landed.len(), 1, "{landed:?}");
    let seqs: Vec<i64> =
        landed_events(moto, &bucket).await.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>());

    // Different bytes already at the next segment's key (another box with
    // this identity?): a permanent error, nothing overwritten, cursor kept.
    check_in_many(&b, 1).await;
    let next = PendingSegment { first: last + 1, last: last + 1, key: key(last + 1, last + 1) };
    moto.put(&bucket, &next.key, b"not ours".to_vec()).await;
    let err = restart().events_step(true).await.unwrap_err();
    assert!(err.is_permanent() && err.to_string().contains("different bytes"), "{err}");
    assert_eq!(moto.get(&bucket, &next.key).await, b"not ours");
    assert_eq!(store.sync_stream("events").await.unwrap().cursor, last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_arrive_byte_identical_and_a_cut_multipart_upload_keeps_its_finished_parts() {
    let (moto, proxy, bucket) = bucket_behind_proxy().await;
    proxy.set_down(true);
    let b = TestBox::start_synced(sync_config(&proxy.endpoint(), &bucket), |_| {}).await;
    let photo = jpeg(640, 480, 7);
    let big = video(30, 3);
    let photo_sha = upload(&b, "cr-a", &photo, "IMG_1.jpg").await;
    let big_sha = upload(&b, "cr-b", &big, "clip.mp4").await;
    // Someone in a third photo withdraws consent before it left the box.
    let withdrawn = upload(&b, "cr-a", &jpeg(320, 240, 8), "IMG_2.jpg").await;
    let sup = b.token(Role::Supervisor).await;
    let body = json!({"reason": "the guest asked", "consent_withdrawn": true});
    assert_eq!(b.post(&sup, &format!("/api/v1/captures/{withdrawn}/hide"), body).await.0, 200);
    // The link returns; cut it again in the middle of the third part.
    proxy.cut_after(20 << 20);
    proxy.set_down(false);
    wait_synced(&b, 60).await;
    assert!(proxy.cuts.load(std::sync::atomic::Ordering::SeqCst) >= 1, "the proxy cut a body");
    assert_eq!(
        sha256_hex(&moto.get(&bucket, &format!("{PREFIX}/captures/{photo_sha}")).await),
        photo_sha
    );
    assert_eq!(
        sha256_hex(&moto.get(&bucket, &format!("{PREFIX}/captures/{big_sha}")).await),
        big_sha
    );
    let keys: Vec<String> =
        moto.list(&bucket, &format!("{PREFIX}/captures/")).await.into_iter().map(|k| k.0).collect();
    assert_eq!(
        keys.len(),
        2,
        "nothing else under captures/, and not the withdrawn photo: {keys:?}"
    );
    // Each part was accepted once: finished parts were not sent again.
    let parts: Vec<(String, u16)> = moto
        .requests(&bucket)
        .into_iter()
        .filter(|(m, p, _)| m == "PUT" && p.contains("partNumber="))
        .map(|(_, p, s)| {
            (p.split("partNumber=").nth(1).unwrap().split('&').next().unwrap().to_string(), s)
        })
        .collect();
    let accepted: Vec<&String> = parts.iter().filter(|p| p.1 == 200).map(|p| &p.0).collect();
    let mut unique = accepted.clone();
    unique.dedup();
    assert_eq!(accepted.len(), 4, "30 MiB in 8 MiB parts: 4 parts accepted once each: {parts:?}");
    assert_eq!(unique.len(), 4);
    // Capture metadata travels in the event log.
    let events = assert_exactly_once(moto, &bucket, &b).await;
    let done: Vec<&Value> = events.iter().filter(|e| e["kind"] == "capture.completed").collect();
    assert_eq!(done.len(), 3);
    let hidden = events.iter().find(|e| e["kind"] == "capture.hidden").unwrap();
    assert_eq!(
        (hidden["payload"]["sha256"].as_str(), hidden["payload"]["consent_withdrawn"].as_bool()),
        (Some(withdrawn.as_str()), Some(true))
    );
    assert!(done.iter().any(|e| e["payload"]["sha256"] == big_sha
        && e["payload"]["creator"] == "cr-b"
        && e["payload"]["consent"] == true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bandwidth_cap_paces_captures_and_check_ins_do_not_wait_behind_them() {
    let (moto, proxy, bucket) = bucket_behind_proxy().await;
    proxy.set_down(true);
    let mut config = sync_config(&proxy.endpoint(), &bucket);
    config.capture_rate = Some(1_000_000); // 8 Mbit/s
    let b = TestBox::start_synced(config, |_| {}).await;
    let clip = video(6, 4);
    let sha = upload(&b, "cr-a", &clip, "clip.mp4").await;
    proxy.set_down(false);
    let start = std::time::Instant::now();
    wait_for("the upload's own events to land", 10, async || {
        status(&b).await["events_pending"] == 0
    })
    .await;
    // While the video trickles out, the door keeps scanning: those events
    // reach the bucket before the video is done.
    check_in_many(&b, 20).await;
    wait_for("the check-ins to land", 5, async || status(&b).await["events_pending"] == 0).await;
    assert_eq!(status(&b).await["captures_pending"], 1, "the video is still going out");
    wait_synced(&b, 30).await;
    let took = start.elapsed();
    assert!(took >= Duration::from_secs(5), "6.3 MB at 1 MB/s cannot take {took:?}");
    assert_eq!(sha256_hex(&moto.get(&bucket, &format!("{PREFIX}/captures/{sha}")).await), sha);
}

/// The test event with things to sell, timed around now.
fn selling(m: &mut Value) {
    let at = |mins: i64| format_rfc3339(venuebox::clock::Clock::system().now() + mins * 60_000);
    m["event"]["tax_rate_bp"] = json!(1900);
    m["scholarships"] = json!([
        {"id": "p-free", "name": "Free", "funder": {"kind": "creator", "creator": "cr-a", "name": "Alice"}, "tier": "ga", "seats": 5,
         "discount": {"kind": "full"}, "codes": [{"code": "F1", "creator": "cr-a", "cap": 5}]}
    ]);
    m["drops"] = json!([
        {"id": "d-now", "name": "Now", "creator": "cr-a", "opens_at": at(-5), "closes_at": at(120),
         "products": [{"sku": "TEE", "name": "Tee", "price_minor": 2000, "quantity": 50}]}
    ]);
}

/// A photo goes in one PUT (below the multipart threshold); the status
/// then counts its bytes as sent and the captures stream's last success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_sent_in_one_put_shows_in_the_status() {
    let moto = Moto::shared();
    let bucket = moto.new_bucket().await;
    let b = TestBox::start_synced(sync_config(&moto.endpoint(), &bucket), |_| {}).await;
    let before = status(&b).await;
    let captures = |s: &Value| {
        s["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["stream"] == "captures")
            .cloned()
            .unwrap()
    };
    assert!(captures(&before)["last_success_at"].is_null(), "{before}");
    let photo = jpeg(640, 480, 9);
    upload(&b, "cr-a", &photo, "IMG_9.jpg").await;
    wait_for("the photo in the bucket", 10, async || status(&b).await["captures_pending"] == 0)
        .await;
    let s = status(&b).await;
    assert_eq!(s["live"]["capture_bytes_sent"], photo.len() as u64, "{s}");
    assert!(captures(&s)["last_success_at"].is_i64(), "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payout_statements_land_and_recompute_from_the_event_log_alone() {
    let moto = Moto::shared();
    let bucket = moto.new_bucket().await;
    let b = TestBox::start_synced(sync_config(&moto.endpoint(), &bucket), selling).await;
    let merch = b.token(Role::Merch).await;
    let door = b.token(Role::Door).await;
    let sup = b.token(Role::Supervisor).await;
    let card = json!({"kind": "card", "reference": "T-1"});
    let mut orders = Vec::new();
    for _ in 0..3 {
        let (st, o) = b
            .post(
                &merch,
                "/api/v1/walkups",
                json!({"tier": "ga", "nonce": nonce(), "referral_code": "ALICE", "tender": card}),
            )
            .await;
        assert_eq!(st, 200, "{o}");
        orders.push(o["order_id"].as_str().unwrap().to_string());
    }
    for _ in 0..2 {
        let (st, o) = b
            .post(
                &merch,
                "/api/v1/drops/d-now/sales",
                json!({"items": [{"sku": "TEE", "qty": 2}], "nonce": nonce(), "tender": card}),
            )
            .await;
        assert_eq!(st, 200, "{o}");
        orders.push(o["order_id"].as_str().unwrap().to_string());
    }
    for _ in 0..2 {
        let (st, o) = b
            .post(&door, "/api/v1/scholarships/claims", json!({"code": "F1", "nonce": nonce()}))
            .await;
        assert_eq!(st, 200, "{o}");
    }
    assert_eq!(
        b.post(
            &sup,
            &format!("/api/v1/orders/{}/refund", orders[0]),
            json!({"reason": "changed plans"})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        b.post(
            &sup,
            &format!("/api/v1/orders/{}/void", orders[4]),
            json!({"reason": "wrong size"})
        )
        .await
        .0,
        200
    );
    let hidden = upload(&b, "cr-a", &jpeg(64, 64, 1), "a.jpg").await;
    upload(&b, "cr-a", &jpeg(64, 64, 2), "b.jpg").await;
    assert_eq!(
        b.post(&sup, &format!("/api/v1/captures/{hidden}/hide"), json!({"reason": "blurry"}))
            .await
            .0,
        200
    );

    let dir = b.dir.path().to_path_buf();
    venuebox::sync::payouts::run_statements(&b.state.store, &dir, b.state.clock.now())
        .await
        .unwrap();
    wait_synced(&b, 30).await;
    let statements = moto.list(&bucket, &format!("{PREFIX}/payouts/event={EVENT}/")).await;
    assert_eq!(statements.len(), 4, "JSON and CSV for two creators: {statements:?}");
    let key = statements.iter().find(|k| k.0.ends_with("creator=cr-a.json")).unwrap().0.clone();
    assert!(key.contains("/date="), "{key}");
    let landed: Value = serde_json::from_slice(&moto.get(&bucket, &key).await).unwrap();
    assert!(landed["payout_minor"].as_i64().unwrap() > 0, "{landed}");
    let csv = String::from_utf8(moto.get(&bucket, &key.replace(".json", ".csv")).await).unwrap();
    assert!(csv.contains(&format!("payout_minor,{}", landed["payout_minor"])), "{csv}");

    // A cloud job with the manifest and events/ only gets the same totals.
    let events = assert_exactly_once(moto, &bucket, &b).await;
    let manifest = b.state.store.event().unwrap().manifest.clone();
    let typed = venuebox::sync::recompute::parse(&events).expect("every event fits its type");
    let recomputed = venuebox::sync::recompute::totals(&manifest, &typed);
    let box_statements = b.state.store.payout_statements(b.state.clock.now()).await.unwrap();
    for s in &box_statements {
        assert_eq!(recomputed[&s.creator], s.totals, "creator {}", s.creator);
    }
    let a = &recomputed["cr-a"];
    assert_eq!(
        (a.referral_tickets.orders, a.drops.orders, a.scholarship_seats_funded, a.captures),
        (3, 2, 2, 1)
    );
    assert!(a.referral_tickets.refunded_minor > 0 && a.drops.refunded_minor > 0);
    assert_eq!(landed["payout_minor"].as_i64().unwrap(), a.payout_minor);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nightly_statements_are_written_at_three_in_the_event_zone_and_uploaded() {
    let moto = Moto::shared();
    let bucket = moto.new_bucket().await;
    // 01:59:58 UTC on 28 Nov is 02:59:58 in Berlin, the test event's zone.
    let clock = venuebox::clock::Clock::fixed(
        venuebox::domain::time::parse_rfc3339("2026-11-28T01:59:58Z").unwrap(),
    );
    let b = TestBox::start_synced_at(clock.clone(), sync_config(&moto.endpoint(), &bucket), |_| {})
        .await;
    let prefix = format!("{PREFIX}/payouts/event={EVENT}/date=2026-11-28/");
    // Each pass of the events lane looks for a manifest and then at the
    // payouts: two looks, and nothing was written at 02:59:58.
    checks_pass(&b, 2).await;
    assert!(moto.list(&bucket, &prefix).await.is_empty(), "not before 03:00");
    clock.advance(3_000);
    wait_for("the nightly statements", 10, async || moto.list(&bucket, &prefix).await.len() == 4)
        .await;
    let keys: Vec<String> = moto.list(&bucket, &prefix).await.into_iter().map(|k| k.0).collect();
    assert!(
        keys.iter().any(|k| k.ends_with("creator=cr-a.csv"))
            && keys.iter().any(|k| k.ends_with("creator=cr-b.json")),
        "{keys:?}"
    );
    assert!(b
        .dir
        .path()
        .join("payouts")
        .join(format!("event={EVENT}"))
        .join("date=2026-11-28")
        .join("creator=cr-a.json")
        .exists());
    let payouts = status(&b).await["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream"] == "payouts")
        .unwrap()
        .clone();
    assert!(payouts["last_success_at"].is_i64(), "{payouts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_signed_manifest_comes_down_without_touching_check_ins_and_can_be_frozen() {
    let moto = Moto::shared();
    let bucket = moto.new_bucket().await;
    let b = TestBox::start_synced(sync_config(&moto.endpoint(), &bucket), |_| {}).await;
    let door = b.token(Role::Door).await;
    assert_eq!(
        b.scan(&door, json!({"code": "SECRET-0001", "gate": "main", "nonce": nonce()})).await.0,
        200
    );
    let publish = |version: u64, extra: fn(&mut Value)| {
        let bytes = common::manifest(&b.key, version, extra);
        let sig = sign_detached(&b.key.signing_key(), &bytes);
        (bytes, sig)
    };
    let key = format!("{PREFIX}/manifests/event={EVENT}/manifest.json");
    // Version 2: a ticket sold online, R-4 blocked.
    let (bytes, sig) = publish(2, |m| {
        m["tickets"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": "ONLINE-1", "tier": "ga", "secret": "SECRET-ONLINE"}));
        m["blocked_tickets"] = json!(["R-4"]);
    });
    moto.put(&bucket, &format!("{key}.sig"), sig.into_bytes()).await;
    moto.put(&bucket, &key, bytes).await;
    wait_for("version 2", 10, async || b.state.store.event().unwrap().manifest.version == 2).await;
    // Polls of an unchanged manifest download nothing (304).
    let not_modified = || {
        moto.requests(&bucket)
            .iter()
            .filter(|(m, p, s)| m == "GET" && p.contains("manifest.json?") && *s == 304)
            .count()
    };
    wait_for("a conditional poll", 5, async || not_modified() >= 1).await;
    let (st, v) =
        b.scan(&door, json!({"code": "SECRET-ONLINE", "gate": "main", "nonce": nonce()})).await;
    assert_eq!((st, v["verdict"].as_str()), (200, Some("admit")), "{v}");
    let (_, v) =
        b.scan(&door, json!({"code": "SECRET-0004", "gate": "main", "nonce": nonce()})).await;
    assert_eq!(v["reason"], "blocked", "blocked by the update: {v}");
    let (_, v) =
        b.scan(&door, json!({"code": "SECRET-0001", "gate": "main", "nonce": nonce()})).await;
    assert_eq!(
        v["reason"], "already_checked_in",
        "the check-in made before the update stands: {v}"
    );
    // Frozen during doors: version 3 waits.
    let admin = b.token(Role::Admin).await;
    let r = b
        .http
        .put(b.url("/api/v1/sync/manifest-freeze"))
        .bearer_auth(&door)
        .json(&json!({"frozen": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = b
        .http
        .put(b.url("/api/v1/sync/manifest-freeze"))
        .bearer_auth(&admin)
        .json(&json!({"frozen": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (bytes, sig) = publish(3, |_| {});
    moto.put(&bucket, &format!("{key}.sig"), sig.into_bytes()).await;
    moto.put(&bucket, &key, bytes).await;
    checks_pass(&b, 2).await;
    assert_eq!(b.state.store.event().unwrap().manifest.version, 2, "frozen");
    let r = b
        .http
        .put(b.url("/api/v1/sync/manifest-freeze"))
        .bearer_auth(&admin)
        .json(&json!({"frozen": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_for("version 3", 10, async || b.state.store.event().unwrap().manifest.version == 3).await;
    // A manifest signed by someone else is refused and reported; v3 stays.
    let (v4, _) = publish(4, |_| {});
    let stranger = venuebox::organiser::keyfile::KeyFile::generate();
    moto.put(
        &bucket,
        &format!("{key}.sig"),
        sign_detached(&stranger.signing_key(), &v4).into_bytes(),
    )
    .await;
    moto.put(&bucket, &key, v4.clone()).await;
    wait_for("the refusal", 10, async || {
        let s = status(&b).await;
        s["streams"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["stream"] == "manifest" && s["last_error"].is_string())
    })
    .await;
    assert_eq!(b.state.store.event().unwrap().manifest.version, 3);
    // A few more polls see the same refused pair, then the organiser
    // fixes the signature alone; the same bytes now apply.
    checks_pass(&b, 2).await;
    assert_eq!(b.state.store.event().unwrap().manifest.version, 3);
    moto.put(&bucket, &format!("{key}.sig"), sign_detached(&b.key.signing_key(), &v4).into_bytes())
        .await;
    wait_for("version 4", 10, async || b.state.store.event().unwrap().manifest.version == 4).await;
}

mod crash {
    //! kill -9 of the real binary while it syncs: after restarts the
    //! bucket holds every seq exactly once, gap-free, and the capture
    //! whose multipart upload was cut by the kills arrives intact.

    use super::common::binary::{self, token};
    use super::common::s3::{landed_events, Moto, PREFIX};
    use super::common::sha256_hex;
    use super::video;
    use serde_json::{json, Value};
    use std::path::Path;
    use std::process::Child;
    use std::time::Duration;

    fn start(dir: &Path, moto: &Moto, bucket: &str) -> (Child, String) {
        let target = format!("s3://{bucket}/{PREFIX}");
        let args = [
            "--demo",
            "--sync-segment-secs",
            "1",
            "--sync-capture-kbps",
            "80000",
            "--sync",
            &target,
            "--sync-endpoint",
            &moto.endpoint(),
        ];
        binary::serve(
            dir,
            &args,
            &[("AWS_ACCESS_KEY_ID", "AKIDTEST"), ("AWS_SECRET_ACCESS_KEY", "crash-secret")],
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill_9_during_sync_loses_and_duplicates_nothing() {
        let moto = Moto::shared();
        let bucket = moto.new_bucket().await;
        let dir = tempfile::tempdir().unwrap();
        let (mut child, mut addr) = start(dir.path(), moto, &bucket);
        let (door, capture, sup) = (
            token(dir.path(), "door"),
            token(dir.path(), "capture"),
            token(dir.path(), "supervisor"),
        );
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        let clip = video(40, 9);
        super::tus_upload(&http, &format!("http://{addr}"), &capture, &clip, "cr-mara", "clip.mp4")
            .await;
        let csv = std::fs::read_to_string(dir.path().join("demo/tickets.csv")).unwrap();
        let codes: Vec<String> =
            csv.lines().skip(1).map(|l| l.splitn(3, ',').nth(2).unwrap().to_string()).collect();
        let mut next = 0;
        for round in 0..4 {
            // Check-ins keep coming while the box syncs...
            let until = std::time::Instant::now() + Duration::from_millis(700 + round * 300);
            while std::time::Instant::now() < until && next < codes.len() {
                let body =
                    json!({"code": codes[next], "gate": "main", "nonce": format!("k-{next}")});
                next += 1;
                let _ = http
                    .post(format!("http://{addr}/api/v1/checkins"))
                    .bearer_auth(&door)
                    .json(&body)
                    .send()
                    .await;
            }
            // ...and the power goes.
            child.kill().unwrap();
            child.wait().unwrap();
            (child, addr) = start(dir.path(), moto, &bucket);
        }
        let until = std::time::Instant::now() + Duration::from_secs(60);
        let status = loop {
            let s: Value = http
                .get(format!("http://{addr}/api/v1/sync"))
                .bearer_auth(&sup)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if s["events_pending"] == 0 && s["captures_pending"] == 0 {
                break s;
            }
            assert!(std::time::Instant::now() < until, "not caught up after the kills: {s:#}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        child.kill().unwrap();
        child.wait().unwrap();
        let events = landed_events(moto, &bucket).await;
        let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        let last = status["last_seq"].as_i64().unwrap();
        assert!(last > 100, "load ran ({last} events)");
        assert_eq!(
            seqs,
            (1..=last).collect::<Vec<_>>(),
            "every seq exactly once across four kills"
        );
        let sha = sha256_hex(&clip);
        assert_eq!(sha256_hex(&moto.get(&bucket, &format!("{PREFIX}/captures/{sha}")).await), sha);
        // A part the server took just before a kill may go again; no more.
        let accepted = moto
            .requests(&bucket)
            .iter()
            .filter(|(m, p, s)| m == "PUT" && p.contains("partNumber=") && *s == 200)
            .count();
        assert!(
            (5..=5 + 4).contains(&accepted),
            "40 MiB is 5 parts; {accepted} accepted across 4 kills"
        );
        let created = moto
            .requests(&bucket)
            .iter()
            .filter(|(m, p, _)| m == "POST" && p.contains("uploads") && !p.contains("uploadId"))
            .count();
        assert_eq!(
            created, 1,
            "restarts resumed the one multipart upload instead of starting over"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_queries_the_landing_with_duckdb() {
    let duckdb = common::s3::python_deps("pydeps-duckdb", "import duckdb", &["duckdb==1.5.6"]);
    let moto = Moto::shared();
    let bucket = moto.new_bucket().await;
    let b = TestBox::start_synced(sync_config(&moto.endpoint(), &bucket), |_| {}).await;
    check_in_many(&b, 30).await;
    upload(&b, "cr-a", &jpeg(64, 64, 5), "x.jpg").await;
    wait_synced(&b, 20).await;
    let events = assert_exactly_once(moto, &bucket, &b).await;
    // The analyst copies events/ down (aws s3 sync, rclone...) and asks DuckDB.
    let landing = tempfile::tempdir().unwrap();
    for (key, _) in moto.list(&bucket, &format!("{PREFIX}/events/")).await {
        let path = landing.path().join(key.strip_prefix(&format!("{PREFIX}/")).unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, moto.get(&bucket, &key).await).unwrap();
    }
    let query = "select box, date, kind, count(*) as n, min(seq), max(seq) \
                 from read_json_auto('events/**/*.ndjson.zst', hive_partitioning=true) group by all order by kind";
    let out = std::process::Command::new("python3")
        .args(["-c", &format!("import duckdb, json\nrows = duckdb.sql(\"{query}\").fetchall()\nprint(json.dumps([[str(c) for c in r] for r in rows]))")])
        .current_dir(landing.path())
        .env("PYTHONPATH", duckdb)
        .output()
        .unwrap();
    assert!(out.status.success(), "duckdb: {}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Vec<String>> = serde_json::from_slice(&out.stdout).unwrap();
    let admitted =
        rows.iter().find(|r| r[2] == "checkin.admitted").unwrap_or_else(|| panic!("{rows:?}"));
    assert_eq!(admitted[0], b.state.store.box_id(), "box from the path");
    assert_eq!(admitted[1], format_rfc3339(b.state.clock.now())[..10], "date from the path");
    assert_eq!(admitted[3], "30");
    let total: usize = rows.iter().map(|r| r[3].parse::<usize>().unwrap()).sum();
    assert_eq!(total, events.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_runs_sync_status_and_sync_now_from_the_command_line() {
    use common::binary::BIN;
    use std::process::Command;
    let moto = Moto::shared();
    let bucket = moto.new_bucket().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    // A demo box that ran for a moment and wrote its outbox.
    let (mut child, _) = common::binary::serve(dir.path(), &["--demo"], &[]);
    child.kill().unwrap();
    child.wait().unwrap();
    let vb = |args: &[&str], creds: bool| {
        let mut c = Command::new(BIN);
        c.args(args)
            .args(["--data-dir", &d])
            .env("RUST_LOG", "warn")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY");
        if creds {
            c.env("AWS_ACCESS_KEY_ID", "AKIDCLI").env("AWS_SECRET_ACCESS_KEY", "cli-secret-value");
        }
        c.output().unwrap()
    };
    let status = vb(&["sync", "status"], false);
    let text = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(
        status.status.success()
            && text.contains("events pending")
            && text.contains("seq 0 of")
            && text.contains("last success    never"),
        "{text}"
    );
    let target = format!("s3://{bucket}/{PREFIX}");
    let sync = ["sync", "now", "--sync", &target, "--sync-endpoint", &moto.endpoint()];
    // No keys anywhere: a clear error that says where keys go.
    let no_keys = vb(&sync, false);
    let err = String::from_utf8_lossy(&no_keys.stderr).to_string();
    assert!(
        !no_keys.status.success()
            && err.contains("AWS_ACCESS_KEY_ID")
            && err.contains("sync-credentials"),
        "{err}"
    );
    // Keys in a file others can read: refused.
    let creds = dir.path().join("sync-credentials");
    std::fs::write(&creds, "AWS_ACCESS_KEY_ID=AKIDFILE\nAWS_SECRET_ACCESS_KEY=file-secret-value\n")
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loose = vb(&sync, false);
    let err = String::from_utf8_lossy(&loose.stderr).to_string();
    assert!(
        !loose.status.success() && err.contains("chmod 600") && !err.contains("file-secret-value"),
        "{err}"
    );
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A bucket that does not exist: a permanent error, said at once.
    let missing = format!("s3://no-such-bucket-cli/{PREFIX}");
    let wrong = [&sync[..3], &[missing.as_str()], &sync[4..]].concat();
    let stopped = vb(&wrong, false);
    let err = String::from_utf8_lossy(&stopped.stderr).to_string();
    assert!(!stopped.status.success() && err.contains("permanent error"), "{err}");
    // Fixed, the next run retries at once and catches up.
    let ok = vb(&sync, false);
    let err = String::from_utf8_lossy(&ok.stderr).to_string();
    assert!(ok.status.success() && err.contains("all synced"), "{err}");
    // Statements on demand are queued for the bucket, and the next sync takes them.
    let payouts = vb(&["payouts", "run"], false);
    assert!(payouts.status.success(), "{}", String::from_utf8_lossy(&payouts.stderr));
    assert!(vb(&sync, true).status.success());
    let landed = moto.list(&bucket, &format!("{PREFIX}/payouts/event=evt-demo/")).await;
    assert_eq!(landed.len(), 4, "two creators, JSON and CSV: {landed:?}");
    let json = vb(&["sync", "status", "--json"], false);
    let s: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        (s["events_pending"].as_i64(), s["files_pending"].as_i64()),
        (Some(0), Some(0)),
        "{s}"
    );
    assert_eq!(landed_events(moto, &bucket).await.len() as i64, s["last_seq"].as_i64().unwrap());
    // Secrets are never shown in help.
    let help =
        String::from_utf8(Command::new(BIN).args(["serve", "--help"]).output().unwrap().stdout)
            .unwrap();
    assert!(help.contains("--sync <s3://BUCKET/PREFIX>"), "{help}");
    let secret_flags: Vec<&str> = help
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("--") && l.to_lowercase().contains("secret"))
        .collect();
    assert!(secret_flags.is_empty(), "no flag takes a secret: {secret_flags:?}");
}

/// A plain web server for files: what an organiser's HTTPS site would be.
async fn file_server(
    files: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>>,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let files = files.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let path = String::from_utf8_lossy(&req)
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .to_string();
                let body = files.lock().unwrap().get(&path).cloned();
                let head = match &body {
                    Some(b) => format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        b.len()
                    ),
                    None => {
                        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            .to_string()
                    }
                };
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(&body.unwrap_or_default()).await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_published_at_a_url_is_applied_too() {
    let moto = Moto::shared();
    let bucket = moto.new_bucket().await;
    let files: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>> =
        Default::default();
    let site = file_server(files.clone()).await;
    let mut config = sync_config(&moto.endpoint(), &bucket);
    config.manifest_url = Some(format!("{site}/events/rooftop.json").parse().unwrap());
    let b = TestBox::start_synced(config, |_| {}).await;
    let bytes = common::manifest(&b.key, 2, |m| {
        m["tickets"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": "WEB-1", "tier": "ga", "secret": "SECRET-WEB"}));
        m["creators"] = json!([{"id": "cr-a", "name": "Alice"}, {"id": "cr-b", "name": "Bo"}]);
    });
    let sig = sign_detached(&b.key.signing_key(), &bytes);
    files.lock().unwrap().insert("/events/rooftop.json.sig".into(), sig.into_bytes());
    files.lock().unwrap().insert("/events/rooftop.json".into(), bytes);
    wait_for("version 2 from the URL", 10, async || {
        b.state.store.event().unwrap().manifest.version == 2
    })
    .await;
    let door = b.token(Role::Door).await;
    let (_, v) =
        b.scan(&door, json!({"code": "SECRET-WEB", "gate": "main", "nonce": nonce()})).await;
    assert_eq!(v["verdict"], "admit", "{v}");
}
