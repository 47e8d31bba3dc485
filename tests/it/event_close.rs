//! `venuebox event close` with the real binary: it will not run beside a
//! serving box; it will not erase personal data without proof or
//! `--force`; with both it archives first, then leaves no holder name or
//! ticket code anywhere in the database file (checked on its bytes) while
//! the figures stay; and the box then refuses to serve the closed event.

use crate::common;

use common::binary::call;
use reqwest::Method;
use std::path::Path;
use std::process::{Command, Output};

fn venuebox(args: &[&str], dir: &Path) -> Output {
    Command::new(common::binary::BIN)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap()
}

/// A demo box that sold a walk-up ticket to `holder`, checked it in and
/// took a photo of the night (tus), then stopped: (data directory, the
/// ticket's code).
async fn evening(dir: &Path, holder: &str) -> (std::path::PathBuf, String) {
    let data = dir.join("data");
    let (mut child, addr) = common::binary::serve(&data, &["--demo"], &[]);
    let base = format!("http://{addr}");
    let merch = common::binary::token(&data, "merch");
    let sale = serde_json::json!({"tier": "ga", "nonce": "close-1", "holder": holder,
        "tender": {"kind": "cash", "given_minor": 5000}});
    let (_, sold) = call(Method::POST, &base, "/api/v1/walkups", &merch, Some(sale)).await;
    let code = sold["tickets"][0]["code"].as_str().unwrap().to_string();
    let door = common::binary::token(&data, "door");
    let scan = serde_json::json!({"code": code, "gate": "main", "nonce": "close-2"});
    assert_eq!(call(Method::POST, &base, "/api/v1/checkins", &door, Some(scan)).await.0, 200);
    let capture = common::binary::token(&data, "capture");
    let photo = common::jpeg(640, 480, 7);
    let http = reqwest::Client::new();
    let meta = common::tus_metadata(&[("creator", "cr-mara"), ("consent", "true")]);
    let created = http
        .post(format!("{base}/api/v1/uploads/"))
        .bearer_auth(&capture)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", photo.len().to_string())
        .header("upload-metadata", meta)
        .send()
        .await
        .unwrap();
    let at = created.headers()["location"].to_str().unwrap().to_string();
    let url = if at.starts_with("http") { at } else { format!("{base}{at}") };
    let sent = http
        .patch(url)
        .bearer_auth(&capture)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(photo)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 204);
    let _ = child.kill();
    let _ = child.wait();
    (data, code)
}

/// Every byte of the database, its WAL and shared memory included.
fn db_bytes(dir: &Path) -> Vec<u8> {
    ["venuebox.db", "venuebox.db-wal", "venuebox.db-shm"]
        .iter()
        .filter_map(|f| std::fs::read(dir.join(f)).ok())
        .flatten()
        .collect()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn closing_archives_then_erases_personal_data_but_keeps_the_figures() {
    const NAME: &str = "Zebulon Quartermain";
    let dir = tempfile::tempdir().unwrap();
    let (data, code) = evening(dir.path(), NAME).await;
    let (mut child, _) = common::binary::serve(&data, &[], &[]);
    // Not beside a running box.
    let out = venuebox(&["event", "close"], &data);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stop it first"));
    let _ = child.kill();
    let _ = child.wait();

    // Not without proof or --force; nothing changes.
    let out = venuebox(&["event", "close", "--wipe-personal-data"], &data);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert!(contains(&db_bytes(&data), NAME), "untouched");

    let archive = dir.path().join("archive");
    let out = venuebox(
        &[
            "event",
            "close",
            "--archive",
            archive.to_str().unwrap(),
            "--wipe-personal-data",
            "--force",
        ],
        &data,
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("personal data erased"), "{said}");
    let bytes = db_bytes(&data);
    assert!(!contains(&bytes, NAME), "no holder name left in the database file");
    assert!(!contains(&bytes, &code), "no ticket code left in the database file");
    assert!(
        contains(&std::fs::read(archive.join("venuebox.db")).unwrap(), NAME),
        "the archive keeps the record"
    );
    assert!(archive.join("captures.ndjson").exists() && archive.join("identity.json").exists());

    // The figures stay.
    let db = rusqlite::Connection::open(data.join("venuebox.db")).unwrap();
    let one = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(one("SELECT COUNT(*) FROM scans WHERE verdict = 'admit'"), 1);
    assert_eq!(one("SELECT COALESCE(SUM(total_minor), 0) FROM orders WHERE status = 'paid'"), 2500);
    assert_eq!(one("SELECT COUNT(*) FROM sessions"), 0);
    drop(db);

    // The closed event is not served again.
    let out = Command::new(common::binary::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--https-listen", "off", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("was closed on this box"));
}

#[tokio::test]
async fn the_bucket_is_verified_before_anything_is_erased() {
    const NAME: &str = "Quillon Marchbanks";
    let moto = common::s3::Moto::shared();
    let bucket = moto.new_bucket().await;
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = evening(dir.path(), NAME).await;
    let target = format!("s3://{bucket}/venue");
    let endpoint = moto.endpoint();
    let sync = ["--sync", target.as_str(), "--sync-endpoint", endpoint.as_str()];

    // Close with the bucket: a final sync, the bucket verified, the archive there.
    let out = venuebox(&[&["event", "close"][..], &sync].concat(), &data);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("bucket verified"), "{said}");
    let archived = moto.list(&bucket, "venue/archive/").await;
    assert_eq!(archived.len(), 2, "database and capture index: {archived:?}");
    // The database arrived whole (streamed from its snapshot file): a
    // SQLite file of the listed size holding the record.
    let (db_key, db_size) = archived.iter().find(|(k, _)| k.ends_with("/venuebox.db")).unwrap();
    let db = moto.get(&bucket, db_key).await;
    assert_eq!((db.len() as u64, &db[..16]), (*db_size, &b"SQLite format 3\0"[..]));
    assert!(contains(&db, NAME), "the archive in the bucket keeps the record");

    // An events segment goes missing from the bucket: the check names the
    // seqs and nothing is erased.
    let segments = moto.list(&bucket, "venue/events/").await;
    let (lost, _) = segments.first().expect("a segment").clone();
    let kept = moto.get(&bucket, &lost).await;
    moto.delete(&bucket, &lost).await;
    let out = venuebox(&[&["event", "close", "--wipe-personal-data"][..], &sync].concat(), &data);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "refused: {said}");
    assert!(
        said.contains("MISSING in the bucket: events 1 to") && said.contains("INCOMPLETE"),
        "{said}"
    );
    assert!(contains(&db_bytes(&data), NAME), "nothing erased");

    // The segment back, but the photo in the bucket is not the photo on the
    // box (same key, same size, other bytes): named, nothing erased.
    moto.put(&bucket, &lost, kept).await;
    let photos = moto.list(&bucket, "venue/captures/").await;
    let (photo_key, size) = photos.first().expect("the photo was synced").clone();
    let original = moto.get(&bucket, &photo_key).await;
    moto.put(&bucket, &photo_key, vec![0x55; size as usize]).await;
    let out = venuebox(&[&["event", "close", "--wipe-personal-data"][..], &sync].concat(), &data);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "refused: {said}");
    let sha = photo_key.rsplit('/').next().unwrap();
    assert!(said.contains(&format!("DIFFERENT in the bucket: capture {sha}")), "{said}");
    assert!(contains(&db_bytes(&data), NAME), "nothing erased");

    // Back in the bucket: verified, and the wipe needs no --force.
    moto.put(&bucket, &photo_key, original).await;
    let out = venuebox(&[&["event", "close", "--wipe-personal-data"][..], &sync].concat(), &data);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("bucket verified") && said.contains("personal data erased"), "{said}");
    assert!(said.contains("1 captures checked, 1 of them byte for byte"), "{said}");
    assert!(!contains(&db_bytes(&data), NAME), "erased once the bucket holds everything");
}
