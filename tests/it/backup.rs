//! `venuebox backup DEST` while the box runs and the door keeps scanning:
//! the copy is one consistent snapshot (integrity ok, every check-in
//! acknowledged before the backup began is in it, none acknowledged after
//! it ended), readable only by its owner, with the box identity. The real
//! binary, a door client in this process.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_while_the_door_scans_is_one_consistent_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) =
        common::binary::serve(dir.path(), &["--demo", "--https-listen", "off"], &[]);
    let door = common::binary::token(dir.path(), "door");
    let csv = std::fs::read_to_string(dir.path().join("demo/tickets.csv")).unwrap();
    let codes: Vec<String> =
        csv.lines().skip(1).map(|l| l.split(',').nth(2).unwrap().to_string()).collect();
    let acked = Arc::new(AtomicU64::new(0));
    let scanning = {
        let (acked, addr) = (acked.clone(), addr.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for (i, code) in codes.iter().take(400).enumerate() {
                let r = http
                    .post(format!("http://{addr}/api/v1/checkins"))
                    .bearer_auth(&door)
                    .json(&serde_json::json!({"code": code, "gate": "main", "nonce": format!("b{i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                acked.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    while acked.load(Ordering::SeqCst) < 50 {
        tokio::task::yield_now().await;
    }
    let dest = dir.path().join("backup-1");
    let before = acked.load(Ordering::SeqCst);
    let out = tokio::task::spawn_blocking({
        let (data, dest) = (dir.path().to_path_buf(), dest.clone());
        move || {
            Command::new(common::binary::BIN)
                .args(["backup", "--data-dir"])
                .arg(data)
                .arg(dest)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let after = acked.load(Ordering::SeqCst);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("integrity ok"), "{said}");
    scanning.await.unwrap();

    let db = rusqlite::Connection::open(dest.join("venuebox.db")).unwrap();
    let check: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    let scans: u64 = db.query_row("SELECT COUNT(*) FROM scans", [], |r| r.get(0)).unwrap();
    assert!(
        (before..=after).contains(&scans),
        "the copy holds {scans} scans; {before} were acknowledged before it began, {after} when it ended"
    );
    let outbox: u64 = db
        .query_row("SELECT COUNT(*) FROM outbox WHERE kind LIKE 'checkin.%'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(outbox, scans, "each scan's event is in the same snapshot");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dest), 0o700);
    assert_eq!(mode(&dest.join("venuebox.db")), 0o600);
    assert_eq!(
        std::fs::read(dest.join("identity.json")).unwrap(),
        std::fs::read(dir.path().join("identity.json")).unwrap()
    );
    assert_eq!(mode(&dest.join("identity.json")), 0o600);
    // Never over an earlier backup.
    let again = Command::new(common::binary::BIN)
        .args(["backup", "--data-dir"])
        .arg(dir.path())
        .arg(&dest)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let _ = child.kill();
    let _ = child.wait();
}
