//! Live proof uploads over tus 1.0.0, rule by rule, against the real server
//! with a real HTTP client: offsets, 409, 412, 415, 460, 413, 423, 507,
//! expiry, termination, defer-length, creation-with-upload, dedupe, type
//! refusal, quota and the disk floor, and the dashboard data they feed.

use crate::common;

use common::{jpeg, sha256_hex, tus_metadata, TestBox};
use reqwest::{Method, Response};
use serde_json::json;
use std::time::Duration;
use venuebox::clock::Clock;
use venuebox::domain::ids::Seq;
use venuebox::domain::role::Role;
use venuebox::media::uploads::CaptureConfig;

const MIB: u64 = 1 << 20;

async fn start() -> (TestBox, String) {
    start_with(CaptureConfig::default()).await
}

async fn start_with(cfg: CaptureConfig) -> (TestBox, String) {
    let b = TestBox::start_captures(Clock::system(), cfg).await;
    let t = b.token(Role::Capture).await;
    (b, t)
}

fn meta(creator: &str) -> String {
    tus_metadata(&[
        ("filename", "IMG_0001.jpg"),
        ("filetype", "image/jpeg"),
        ("creator", creator),
        ("uploader", "Cam"),
        ("consent", "true"),
    ])
}

async fn tus(
    b: &TestBox,
    token: &str,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> Response {
    let mut req =
        b.http.request(method, b.url(path)).bearer_auth(token).header("tus-resumable", "1.0.0");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    if let Some(body) = body {
        req = req.header("content-type", "application/offset+octet-stream").body(body);
    }
    req.send().await.unwrap()
}

async fn create(b: &TestBox, token: &str, length: usize, metadata: &str) -> String {
    let r = tus(
        b,
        token,
        Method::POST,
        "/api/v1/uploads/",
        &[("upload-length", length.to_string()), ("upload-metadata", metadata.to_string())],
        None,
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    assert!(r.headers().contains_key("upload-expires"));
    assert_eq!(r.headers()["tus-resumable"], "1.0.0");
    r.headers()["location"].to_str().unwrap().to_string()
}

async fn patch(b: &TestBox, token: &str, loc: &str, offset: usize, chunk: &[u8]) -> Response {
    tus(
        b,
        token,
        Method::PATCH,
        loc,
        &[("upload-offset", offset.to_string())],
        Some(chunk.to_vec()),
    )
    .await
}

async fn offset(b: &TestBox, token: &str, loc: &str) -> u64 {
    let r = tus(b, token, Method::HEAD, loc, &[], None).await;
    assert_eq!(r.status(), 200, "HEAD {loc}");
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.headers()["upload-offset"].to_str().unwrap().parse().unwrap()
}

/// Uploads all of `bytes` in `chunk`-sized PATCHes.
async fn upload(b: &TestBox, token: &str, bytes: &[u8], chunk: usize, metadata: &str) -> String {
    let loc = create(b, token, bytes.len(), metadata).await;
    for (i, c) in bytes.chunks(chunk).enumerate() {
        let r = patch(b, token, &loc, i * chunk, c).await;
        assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    }
    loc
}

#[tokio::test]
async fn options_advertises_exactly_what_is_implemented() {
    let (b, _) = start().await;
    let r = b.http.request(Method::OPTIONS, b.url("/api/v1/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let h = r.headers();
    assert_eq!(h["tus-version"], "1.0.0");
    assert_eq!(
        h["tus-extension"],
        "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination"
    );
    assert_eq!(h["tus-checksum-algorithm"], "sha1,sha256");
    assert_eq!(h["tus-max-size"], (4u64 << 30).to_string());
    // A browser's CORS preflight from one of the box's own origins gets
    // the tus headers allowed and exposed; another site gets no grant.
    let preflight = |origin: &'static str| {
        b.http
            .request(Method::OPTIONS, b.url("/api/v1/uploads/"))
            .header("origin", origin)
            .header("access-control-request-method", "PATCH")
            .header("access-control-request-headers", "tus-resumable,upload-offset,upload-checksum")
            .send()
    };
    let r = preflight("http://localhost:8081").await.unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "http://localhost:8081");
    let allowed = r.headers()["access-control-allow-headers"].to_str().unwrap().to_string();
    assert!(allowed.contains("upload-offset") && allowed.contains("upload-checksum"), "{allowed}");
    let r = preflight("https://evil.example").await.unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"), "no grant for another site");
}

#[tokio::test]
async fn a_photo_uploads_in_chunks_and_becomes_a_capture_with_a_thumbnail() {
    let (b, t) = start().await;
    let photo = jpeg(800, 600, 1);
    let loc = create(&b, &t, photo.len(), &meta("cr-a")).await;
    let third = photo.len() / 3;
    for (i, range) in [0..third, third..2 * third].into_iter().enumerate() {
        assert_eq!(
            patch(&b, &t, &loc, range.start, &photo[range.clone()]).await.status(),
            204,
            "chunk {i}"
        );
        assert_eq!(offset(&b, &t, &loc).await, range.end as u64);
    }
    // A PATCH at the wrong offset is refused and changes nothing.
    let r = patch(&b, &t, &loc, 0, &photo[..10]).await;
    assert_eq!(r.status(), 409);
    assert_eq!(offset(&b, &t, &loc).await, 2 * third as u64);
    let r = tus(
        &b,
        &t,
        Method::PATCH,
        &loc,
        &[("upload-offset", (2 * third).to_string()), ("content-type", "application/json".into())],
        None,
    )
    .await;
    assert_eq!(r.status(), 415, "PATCH needs application/offset+octet-stream");
    let r = patch(&b, &t, &loc, 2 * third, &photo[2 * third..]).await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["upload-offset"], photo.len().to_string());

    let (_, list) = b.get(&t, "/api/v1/creators/cr-a/captures").await;
    assert_eq!(list["count"], 1);
    let c = &list["items"][0];
    assert_eq!(c["sha256"], sha256_hex(&photo));
    assert_eq!(
        (c["media_type"].as_str(), c["width"].as_u64(), c["height"].as_u64()),
        (Some("image/jpeg"), Some(800), Some(600))
    );
    assert_eq!((c["consent"].as_bool(), c["uploader"].as_str()), (Some(true), Some("Cam")));
    let stored = std::fs::read(
        b.dir
            .path()
            .join("captures")
            .join(&c["sha256"].as_str().unwrap()[..2])
            .join(&c["sha256"].as_str().unwrap()[2..]),
    )
    .unwrap();
    assert_eq!(stored, photo, "content-addressed file holds the bytes");
    // The thumbnail is made in the background.
    let sha = c["sha256"].as_str().unwrap().to_string();
    let thumb = loop {
        let r = b
            .http
            .get(b.url(&format!("/api/v1/captures/{sha}/thumbnail")))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break r.bytes().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let img = image::load_from_memory(&thumb).unwrap();
    assert_eq!((img.width(), img.height()), (320, 240));
    // Creators' upload links see their own thumbnails only.
    let admin = b.token(Role::Admin).await;
    for (creator, status) in [("cr-a", 200), ("cr-b", 404)] {
        let (_, link) = b.post(&admin, "/api/v1/upload-links", json!({"creator": creator})).await;
        let r = b
            .http
            .get(b.url(&format!("/api/v1/captures/{sha}/thumbnail")))
            .bearer_auth(link["token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{creator}'s link");
    }
    let rows = b.state.store.outbox_after(Seq(0), 100).await.unwrap();
    let done = rows.iter().find(|r| r.kind == "capture.completed").unwrap();
    assert_eq!(
        (done.payload["creator"].as_str(), done.payload["duplicate"].as_bool()),
        (Some("cr-a"), Some(false))
    );
}

#[tokio::test]
async fn every_request_needs_tus_resumable_1_0_0() {
    let (b, t) = start().await;
    for version in [None, Some("0.2.2")] {
        let mut req =
            b.http.post(b.url("/api/v1/uploads/")).bearer_auth(&t).header("upload-length", "10");
        if let Some(v) = version {
            req = req.header("tus-resumable", v);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 412);
        assert_eq!(r.headers()["tus-version"], "1.0.0");
    }
}

#[tokio::test]
async fn a_chunk_with_a_wrong_checksum_is_discarded_with_460() {
    use base64::Engine;
    let (b, t) = start().await;
    let photo = jpeg(64, 64, 2);
    let loc = create(&b, &t, photo.len(), &meta("cr-a")).await;
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    use sha1::Digest as _;
    let half = photo.len() / 2;
    let good = format!("sha1 {}", b64(&sha1::Sha1::digest(&photo[..half])));
    let r = tus(
        &b,
        &t,
        Method::PATCH,
        &loc,
        &[("upload-offset", "0".into()), ("upload-checksum", good)],
        Some(photo[..half].to_vec()),
    )
    .await;
    assert_eq!(r.status(), 204);
    let bad = format!("sha256 {}", b64(&sha2::Sha256::digest(b"something else")));
    let r = tus(
        &b,
        &t,
        Method::PATCH,
        &loc,
        &[("upload-offset", half.to_string()), ("upload-checksum", bad)],
        Some(photo[half..].to_vec()),
    )
    .await;
    assert_eq!(r.status().as_u16(), 460);
    assert_eq!(offset(&b, &t, &loc).await, half as u64, "the bad chunk was discarded");
    let r = tus(
        &b,
        &t,
        Method::PATCH,
        &loc,
        &[("upload-offset", half.to_string()), ("upload-checksum", "md5 AAAA".into())],
        Some(photo[half..].to_vec()),
    )
    .await;
    assert_eq!(r.status(), 400, "unsupported algorithm");
    let good = format!("sha256 {}", b64(&sha2::Sha256::digest(&photo[half..])));
    let r = tus(
        &b,
        &t,
        Method::PATCH,
        &loc,
        &[("upload-offset", half.to_string()), ("upload-checksum", good)],
        Some(photo[half..].to_vec()),
    )
    .await;
    assert_eq!(r.status(), 204);
    // The whole-file hash survived the discarded chunk.
    assert_eq!(
        b.state.store.capture(sha256_hex(&photo)).await.unwrap().unwrap().bytes,
        photo.len() as u64
    );
}

#[tokio::test]
async fn creation_with_upload_and_deferred_length() {
    let (b, t) = start().await;
    let photo = jpeg(120, 90, 3);
    let r = tus(
        &b,
        &t,
        Method::POST,
        "/api/v1/uploads/",
        &[("upload-length", photo.len().to_string()), ("upload-metadata", meta("cr-a"))],
        Some(photo[..100].to_vec()),
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["upload-offset"], "100");
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(patch(&b, &t, &loc, 100, &photo[100..]).await.status(), 204);

    let other = jpeg(120, 90, 4);
    let r = tus(
        &b,
        &t,
        Method::POST,
        "/api/v1/uploads",
        &[("upload-defer-length", "1".into()), ("upload-metadata", meta("cr-a"))],
        None,
    )
    .await;
    assert_eq!(r.status(), 201);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let r = tus(&b, &t, Method::HEAD, &loc, &[], None).await;
    assert_eq!(r.headers()["upload-defer-length"], "1");
    assert!(!r.headers().contains_key("upload-length"));
    assert_eq!(patch(&b, &t, &loc, 0, &other[..50]).await.status(), 204);
    let r = tus(
        &b,
        &t,
        Method::PATCH,
        &loc,
        &[("upload-offset", "50".into()), ("upload-length", other.len().to_string())],
        Some(other[50..].to_vec()),
    )
    .await;
    assert_eq!(r.status(), 204);
    let r = tus(&b, &t, Method::HEAD, &loc, &[], None).await;
    assert_eq!(r.headers()["upload-length"], other.len().to_string());
    let (_, list) = b.get(&t, "/api/v1/creators/cr-a/captures").await;
    assert_eq!(list["count"], 2);
    // Both or neither: a creation must say its length one way.
    let r = tus(
        &b,
        &t,
        Method::POST,
        "/api/v1/uploads/",
        &[
            ("upload-defer-length", "1".into()),
            ("upload-length", "5".into()),
            ("upload-metadata", meta("cr-a")),
        ],
        None,
    )
    .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn termination_removes_the_upload_and_its_partial_file() {
    let (b, t) = start().await;
    let photo = jpeg(64, 64, 5);
    let loc = create(&b, &t, photo.len(), &meta("cr-a")).await;
    patch(&b, &t, &loc, 0, &photo[..100]).await;
    let id = loc.rsplit('/').next().unwrap();
    let part = b.dir.path().join("uploads").join(format!("{id}.part"));
    assert!(part.exists());
    assert_eq!(tus(&b, &t, Method::DELETE, &loc, &[], None).await.status(), 204);
    assert!(!part.exists());
    assert_eq!(tus(&b, &t, Method::HEAD, &loc, &[], None).await.status(), 410);
    assert_eq!(patch(&b, &t, &loc, 100, &photo[100..]).await.status(), 410);
    assert_eq!(tus(&b, &t, Method::HEAD, "/api/v1/uploads/nope", &[], None).await.status(), 404);
}

/// An upload's URL seen by someone else on the Wi-Fi, or by another crew
/// member (before: any capture token could continue or delete it): only
/// the sign-in that made it, or a supervisor, can touch it.
#[tokio::test]
async fn only_the_sign_in_that_made_an_upload_continues_or_ends_it() {
    let (b, mine) = start().await;
    let photo = jpeg(64, 64, 6);
    let loc = create(&b, &mine, photo.len(), &meta("cr-a")).await;
    assert_eq!(patch(&b, &mine, &loc, 0, &photo[..100]).await.status(), 204);
    let other = b.token(Role::Capture).await;
    assert_eq!(tus(&b, &other, Method::HEAD, &loc, &[], None).await.status(), 404);
    assert_eq!(patch(&b, &other, &loc, 100, &photo[100..]).await.status(), 404);
    assert_eq!(tus(&b, &other, Method::DELETE, &loc, &[], None).await.status(), 404);
    assert_eq!(offset(&b, &mine, &loc).await, 100, "untouched by the others");
    assert_eq!(patch(&b, &mine, &loc, 100, &photo[100..]).await.status(), 204);
    let loc2 = create(&b, &mine, photo.len(), &meta("cr-a")).await;
    let sup = b.token(Role::Supervisor).await;
    assert_eq!(tus(&b, &sup, Method::DELETE, &loc2, &[], None).await.status(), 204);
}

#[tokio::test]
async fn abandoned_uploads_expire_and_the_janitor_removes_their_files() {
    let clock = Clock::fixed(1_800_000_000_000);
    let b = TestBox::start_captures(
        clock.clone(),
        CaptureConfig { upload_expiry_ms: 60_000, ..CaptureConfig::default() },
    )
    .await;
    let t = b.token(Role::Capture).await;
    let photo = jpeg(64, 64, 6);
    let loc = create(&b, &t, photo.len(), &meta("cr-a")).await;
    let r = patch(&b, &t, &loc, 0, &photo[..100]).await;
    let expires = r.headers()["upload-expires"].to_str().unwrap().to_string();
    assert!(expires.ends_with(" GMT"), "{expires}");
    let id = loc.rsplit('/').next().unwrap().to_string();
    let part = b.dir.path().join("uploads").join(format!("{id}.part"));
    clock.advance(61_000);
    // The housekeeping task runs every second on the box's clock.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while part.exists() {
        assert!(std::time::Instant::now() < deadline, "janitor never removed {}", part.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tus(&b, &t, Method::HEAD, &loc, &[], None).await.status(), 410);
}

#[tokio::test]
async fn the_same_bytes_are_stored_once_and_phones_can_ask_first() {
    let (b, t) = start().await;
    let photo = jpeg(200, 100, 7);
    let sha = sha256_hex(&photo);
    let (_, check) = b.post(&t, "/api/v1/captures/check", json!({"sha256": [sha]})).await;
    assert_eq!(check["missing"], json!([sha]));
    upload(&b, &t, &photo, 1000, &meta("cr-a")).await;
    upload(&b, &t, &photo, 5000, &meta("cr-b")).await;
    let (_, check) =
        b.post(&t, "/api/v1/captures/check", json!({"sha256": [sha, "0".repeat(64)]})).await;
    assert_eq!(
        (check["present"].clone(), check["missing"].clone()),
        (json!([sha]), json!(["0".repeat(64)]))
    );
    let r = b
        .http
        .head(b.url(&format!("/api/v1/captures/{sha}")))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let files = std::fs::read_dir(b.dir.path().join("captures").join(&sha[..2])).unwrap().count();
    assert_eq!(files, 1, "bytes stored once");
    let rows = b.state.store.outbox_after(Seq(0), 100).await.unwrap();
    let dup: Vec<bool> = rows
        .iter()
        .filter(|r| r.kind == "capture.completed")
        .map(|r| r.payload["duplicate"].as_bool().unwrap())
        .collect();
    assert_eq!(dup, [false, true], "both uploads are recorded");
    assert_eq!(b.get(&t, "/api/v1/creators/cr-a/captures").await.1["count"], 1);
}

#[tokio::test]
async fn a_file_that_is_not_a_photo_or_video_is_refused_with_415_when_complete() {
    let (b, t) = start().await;
    let text = b"%PDF-1.7 this is a document, whatever its name says".to_vec();
    let loc = create(&b, &t, text.len(), &meta("cr-a")).await;
    let r = patch(&b, &t, &loc, 0, &text).await;
    assert_eq!(r.status(), 415);
    assert!(r.text().await.unwrap().contains("JPEG"));
    assert_eq!(tus(&b, &t, Method::HEAD, &loc, &[], None).await.status(), 415);
    assert_eq!(b.get(&t, "/api/v1/creators/cr-a/captures").await.1["count"], 0);
    let id = loc.rsplit('/').next().unwrap();
    assert!(!b.dir.path().join("uploads").join(format!("{id}.part")).exists());
}

#[tokio::test]
async fn size_limit_quota_and_body_past_the_length_are_refused() {
    let (b, t) = start_with(CaptureConfig {
        max_upload_bytes: 10_000,
        quota_bytes: 15_000,
        ..CaptureConfig::default()
    })
    .await;
    let r = tus(
        &b,
        &t,
        Method::POST,
        "/api/v1/uploads/",
        &[("upload-length", "10001".into()), ("upload-metadata", meta("cr-a"))],
        None,
    )
    .await;
    assert_eq!(r.status(), 413);
    let loc = create(&b, &t, 8000, &meta("cr-a")).await;
    let r = tus(
        &b,
        &t,
        Method::POST,
        "/api/v1/uploads/",
        &[("upload-length", "8000".into()), ("upload-metadata", meta("cr-a"))],
        None,
    )
    .await;
    assert_eq!(r.status(), 507, "quota counts uploads in progress");
    let r = patch(&b, &t, &loc, 0, &vec![0xFF; 9000]).await;
    assert_eq!(r.status(), 413);
    assert_eq!(offset(&b, &t, &loc).await, 0, "nothing of the oversized body was kept");
}

#[tokio::test]
async fn below_the_disk_floor_new_uploads_wait_and_running_ones_stop_cleanly() {
    // A pretend disk 40 MiB above the floor, holding only this box's
    // capture files (the real disk is shared with every other test): a
    // 128 MiB upload must stop part-way.
    let floor = CaptureConfig::default().disk_floor_bytes;
    let b = TestBox::start_config(
        Clock::system(),
        |c| {
            c.api.captures = CaptureConfig::default();
            c.pretend_disk_bytes = Some(floor + 40 * MIB);
        },
        |m| {
            m["creators"] = serde_json::json!([{"id": "cr-a", "name": "Alice"}]);
        },
    )
    .await;
    let t = b.token(Role::Capture).await;
    let mut big = jpeg(16, 16, 8);
    big.resize(128 * MIB as usize, 0x55);
    // Deferred length: the creation itself asks for no space.
    let r = tus(
        &b,
        &t,
        Method::POST,
        "/api/v1/uploads/",
        &[("upload-defer-length", "1".into()), ("upload-metadata", meta("cr-a"))],
        None,
    )
    .await;
    assert_eq!(r.status(), 201);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let r = tus(
        &b,
        &t,
        Method::PATCH,
        &loc,
        &[("upload-offset", "0".into()), ("upload-length", big.len().to_string())],
        Some(big.clone()),
    )
    .await;
    assert_eq!(r.status(), 507, "{}", r.text().await.unwrap());
    let at = offset(&b, &t, &loc).await;
    assert!(at > 0 && at < big.len() as u64, "kept what arrived durably: {at}");
    let id = loc.rsplit('/').next().unwrap();
    assert_eq!(
        std::fs::metadata(b.dir.path().join("uploads").join(format!("{id}.part"))).unwrap().len(),
        at
    );
    let r = tus(
        &b,
        &t,
        Method::POST,
        "/api/v1/uploads/",
        &[("upload-length", "100".into()), ("upload-metadata", meta("cr-a"))],
        None,
    )
    .await;
    assert_eq!(r.status(), 507);
    assert!(r.text().await.unwrap().contains("disk is nearly full"));
}

#[tokio::test]
async fn an_interrupted_patch_keeps_what_arrived_and_one_writer_at_a_time() {
    let (b, t) = start().await;
    let mut big = jpeg(16, 16, 9);
    big.resize(12 * MIB as usize, 0x11);
    let loc = create(&b, &t, big.len(), &meta("cr-a")).await;
    // A body that sends 3 MiB, then waits, then fails like a dropped connection.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let stream =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
        );
    let req = b
        .http
        .patch(b.url(&loc))
        .bearer_auth(&t)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(reqwest::Body::wrap_stream(stream));
    let first = tokio::spawn(req.send());
    for c in big[..3 * MIB as usize].chunks(MIB as usize) {
        tx.send(Ok(c.to_vec())).await.unwrap();
    }
    // The first request holds the upload (observed, not slept for)...
    let id = loc.rsplit('/').next().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while b.state.uploads.slot(&id).try_lock().is_ok() {
        assert!(std::time::Instant::now() < deadline, "the first PATCH never took the upload");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...so meanwhile another request may not write the same upload.
    let r = patch(&b, &t, &loc, 0, &big[..10]).await;
    assert_eq!(r.status(), 423);
    tx.send(Err(std::io::Error::other("cable pulled"))).await.unwrap();
    drop(tx);
    let _ = first.await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let at = loop {
        let at = offset(&b, &t, &loc).await;
        if at > 0 || std::time::Instant::now() > deadline {
            break at;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(at, 3 * MIB, "what arrived was kept");
    let r = patch(&b, &t, &loc, at as usize, &big[at as usize..]).await;
    assert_eq!(r.status(), 204);
    assert!(b.state.store.capture(sha256_hex(&big)).await.unwrap().is_some());
}

#[tokio::test]
async fn who_may_upload_links_hiding_and_the_creator_summary() {
    let (b, t) = start().await;
    let door = b.token(Role::Door).await;
    let admin = b.token(Role::Admin).await;
    let sup = b.token(Role::Supervisor).await;
    let r = b
        .http
        .post(b.url("/api/v1/uploads/"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = tus(
        &b,
        &door,
        Method::POST,
        "/api/v1/uploads/",
        &[("upload-length", "5".into()), ("upload-metadata", meta("cr-a"))],
        None,
    )
    .await;
    assert_eq!(r.status(), 403);
    let r = tus(
        &b,
        &t,
        Method::POST,
        "/api/v1/uploads/",
        &[("upload-length", "5".into()), ("upload-metadata", meta("cr-zz"))],
        None,
    )
    .await;
    assert_eq!(r.status(), 400, "unknown creator");

    // An upload link for Alice's crew: no creator needed, no other creator allowed, nothing else reachable.
    let (st, link) =
        b.post(&admin, "/api/v1/upload-links", json!({"creator": "cr-a", "hours": 6})).await;
    assert_eq!(st, 201, "{link}");
    let crew = link["token"].as_str().unwrap().to_string();
    let photo = jpeg(90, 90, 10);
    upload(
        &b,
        &crew,
        &photo,
        4096,
        &tus_metadata(&[("filename", "crew.jpg"), ("consent", "true")]),
    )
    .await;
    let r = tus(
        &b,
        &crew,
        Method::POST,
        "/api/v1/uploads/",
        &[("upload-length", "5".into()), ("upload-metadata", meta("cr-b"))],
        None,
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(b.get(&crew, "/api/v1/event").await.0, 403);
    // The crew's page: their creator's captures and figures, no one else's.
    let (st, own) = b.get(&crew, "/api/v1/creators/cr-a/captures").await;
    assert_eq!((st, own["count"].as_u64()), (200, Some(1)), "{own}");
    assert_eq!(b.get(&crew, "/api/v1/creators/cr-a/summary").await.0, 200);
    for other in
        ["/api/v1/creators/cr-b/captures", "/api/v1/creators/cr-b/summary", "/api/v1/checkins"]
    {
        assert_eq!(b.get(&crew, other).await.0, 403, "{other}");
    }
    assert_eq!(
        b.post(&t, "/api/v1/upload-links", json!({"creator": "cr-a"})).await.0,
        403,
        "only admins make links"
    );

    // The dashboard shows it; a supervisor hides it (consent withdrawn).
    let sha = sha256_hex(&photo);
    let (_, summary) = b.get(&t, "/api/v1/creators/cr-a/summary").await;
    assert_eq!(
        (summary["captures"]["count"].as_u64(), summary["captures"]["bytes"].as_u64()),
        (Some(1), Some(photo.len() as u64))
    );
    assert_eq!(
        b.post(&t, &format!("/api/v1/captures/{sha}/hide"), json!({"reason": "consent withdrawn"}))
            .await
            .0,
        403
    );
    let (st, _) = b
        .post(&sup, &format!("/api/v1/captures/{sha}/hide"), json!({"reason": "consent withdrawn"}))
        .await;
    assert_eq!(st, 200);
    assert_eq!(b.get(&t, "/api/v1/creators/cr-a/captures").await.1["count"], 0);
    let rows = b.state.store.outbox_after(Seq(0), 100).await.unwrap();
    assert!(rows.iter().any(|r| r.kind == "capture.hidden" && r.payload["sha256"] == sha));
}

#[tokio::test]
async fn the_creator_summary_counts_attributed_tickets_checkins_and_drop_sales() {
    let b = TestBox::start_full(Clock::system(), Default::default(), |m| {
        m["creators"] = json!([{"id": "cr-a", "name": "Alice", "referral_codes": ["ALICE"]}]);
        m["drops"] = common::open_drop("cr-a", 9);
    })
    .await;
    let merch = b.token(Role::Merch).await;
    let door = b.token(Role::Door).await;
    let card = json!({"kind": "card", "reference": "T"});
    let (_, sold) = b
        .post(
            &merch,
            "/api/v1/walkups",
            json!({"tier": "ga", "nonce": "w1", "referral_code": "ALICE", "tender": card}),
        )
        .await;
    b.post(
        &merch,
        "/api/v1/walkups",
        json!({"tier": "ga", "nonce": "w2", "referral_code": "ALICE", "tender": card}),
    )
    .await;
    b.scan(&door, json!({"code": sold["tickets"][0]["code"], "gate": "main", "nonce": "s1"})).await;
    b.post(
        &merch,
        "/api/v1/drops/d/sales",
        json!({"items": [{"sku": "TEE", "qty": 2}], "nonce": "d1", "tender": card}),
    )
    .await;
    let (_, s) = b.get(&merch, "/api/v1/creators/cr-a/summary").await;
    assert_eq!(
        (s["tickets_attributed"].as_u64(), s["checkins_attributed"].as_u64()),
        (Some(2), Some(1)),
        "{s}"
    );
    assert_eq!(
        (
            s["drop_orders"].as_u64(),
            s["drop_sales_minor"].as_i64(),
            s["ticket_sales_minor"].as_i64()
        ),
        (Some(1), Some(4000), Some(5000))
    );
    assert_eq!(b.get(&merch, "/api/v1/creators/nobody/summary").await.0, 404);
}
