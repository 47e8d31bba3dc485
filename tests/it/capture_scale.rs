//! Live capture at phone scale, against the real binary: a hostile 1 GiB
//! upload (a JPEG or PNG header, then noise) is stored with a clear answer
//! and the box's peak memory stays within 64 MiB of idle while it is
//! received, probed and (not) thumbnailed.

use crate::common;

use common::binary::{memory_kib, reset_peak, serve, token};
use serde_json::Value;
use std::time::Duration;

const GIB: u64 = 1 << 30;

use common::binary::Running;

/// `header` then pseudo-random bytes up to `len`, made as they are sent.
fn hostile_body(header: &'static [u8], len: u64) -> reqwest::Body {
    let chunk = 1u64 << 20;
    let stream = futures_util::stream::iter((0..len.div_ceil(chunk)).map(move |i| {
        let n = chunk.min(len - i * chunk) as usize;
        let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ i;
        let mut buf: Vec<u8> = (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        if i == 0 {
            buf[..header.len()].copy_from_slice(header);
        }
        Ok::<_, std::io::Error>(buf)
    }));
    reqwest::Body::wrap_stream(stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_gigabyte_photo_is_stored_with_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let (child, addr) = serve(tmp.path(), &["--demo"], &[]);
    let pid = child.id();
    let _box = Running(child);
    let cap = token(tmp.path(), "capture");
    let http = reqwest::Client::new();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, idle) = memory_kib(pid);
    reset_peak(pid);
    let meta = common::tus_metadata(&[("creator", "cr-mara"), ("consent", "true")]);
    for (name, header) in [("jpeg", &b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"[..]), ("png", &b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x40\x00\x00\x00\x40\x00\x08\x02\x00\x00\x00"[..])] {
        let r = http
            .post(format!("http://{addr}/api/v1/uploads/"))
            .bearer_auth(&cap)
            .header("tus-resumable", "1.0.0")
            .header("upload-length", GIB.to_string())
            .header("upload-metadata", &meta)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{name}");
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        let r = http
            .patch(format!("http://{addr}{loc}"))
            .bearer_auth(&cap)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", "0")
            .header("content-type", "application/offset+octet-stream")
            .body(hostile_body(header, GIB))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{name}: a clear answer: stored");
        assert_eq!(r.headers()["upload-offset"], GIB.to_string().as_str());
    }
    // Both stored, typed by their magic bytes; their thumbnails fail cleanly.
    let mut listed = Value::Null;
    for _ in 0..100 {
        listed = http
            .get(format!("http://{addr}/api/v1/creators/cr-mara/captures"))
            .bearer_auth(&cap)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = listed["items"].as_array().cloned().unwrap_or_default();
        if items.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Observed, not slept for: the thumbnailer has tried (and refused) both.
    let failed = || async {
        let text = http.get(format!("http://{addr}/metrics")).send().await.unwrap().text().await;
        let line = text
            .unwrap()
            .lines()
            .find(|l| l.starts_with("venuebox_thumbnails_total{outcome=\"failed\"}"))
            .map(str::to_string);
        line.and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).unwrap_or(0)
    };
    for _ in 0..100 {
        if failed().await >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(failed().await, 2, "both thumbnails were tried and refused");
    let mut types: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["media_type"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(types, ["image/jpeg", "image/png"], "{listed}");
    assert!(
        listed["items"].as_array().unwrap().iter().all(|c| c["thumbnail"].is_null()),
        "no thumbnail of noise"
    );
    let (peak, _) = memory_kib(pid);
    assert!(peak < idle + 64 * 1024, "peak {peak} KiB against {idle} KiB idle");
    eprintln!("idle {idle} KiB, peak {peak} KiB over two 1 GiB hostile uploads");
}
