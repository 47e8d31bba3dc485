//! Previews of every capture type a phone sends, made by the field's C
//! decoders in the box's sandbox (libjpeg-turbo's `djpeg`, libheif's
//! `heif-thumbnailer`, `ffmpeg`/`ffprobe`; installed with apt as the
//! Debian package recommends them). The real binary serves the demo event;
//! a capture credential uploads over tus, as the capture page does: a
//! 12-megapixel JPEG with no embedded preview, a HEIC, a 30 s 1080p video,
//! then a hostile corpus (truncated files, a JPEG claiming 65,500 × 65,500
//! pixels, malformed HEIF boxes, a video without its index, garbage after
//! a QuickTime header). The good ones get thumbnails (the video its
//! duration); every hostile one is answered (stored or refused) and gets
//! "no preview", the box's own memory does not grow with them, and it
//! goes on serving. Needs root (apt), as CI has.

mod common;

use common::binary::{self, Running};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn tool(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A 4032 × 3024 photo-like JPEG (gradients and grain, no EXIF preview).
fn photo(path: &Path) {
    let mut x: u32 = 0x9E37_79B9;
    let img = image::RgbImage::from_fn(4032, 3024, |px, py| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let grain = (x & 15) as u8;
        let blue = ((px + py) / 28) as u8;
        image::Rgb([(px / 16) as u8 ^ grain, (py / 12) as u8, blue.wrapping_add(grain)])
    });
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut f, 88).encode_image(&img).unwrap();
}

/// A tiny JPEG whose frame header claims 65,500 × 65,500 pixels.
fn huge_jpeg(path: &Path) {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut bytes)
        .encode_image(&image::RgbImage::from_pixel(16, 16, image::Rgb([9, 9, 9])))
        .unwrap();
    let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).expect("a baseline frame header");
    bytes[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xDC, 0xFF, 0xDC]);
    std::fs::write(path, bytes).unwrap();
}

fn noise(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

async fn captures(base: &str, admin: &str) -> Vec<Value> {
    let (_, v) =
        binary::call(reqwest::Method::GET, base, "/api/v1/creators/cr-mara/captures", admin, None)
            .await;
    v["items"].as_array().cloned().unwrap_or_else(|| panic!("{v}"))
}

/// Waits until no capture's preview is pending; returns them.
async fn settled(base: &str, admin: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let c = captures(base, admin).await;
        if c.len() >= n && c.iter().all(|c| c["preview"] != "pending") {
            return c;
        }
        assert!(Instant::now() < deadline, "previews never settled: {c:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn by_sha<'a>(all: &'a [Value], bytes: &[u8]) -> &'a Value {
    let sha = common::sha256_hex(bytes);
    all.iter()
        .find(|c| c["sha256"] == sha.as_str())
        .unwrap_or_else(|| panic!("{sha} not stored: {all:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_capture_type_gets_a_preview_and_hostile_files_get_none() {
    common::apt::install(&[
        "libjpeg-turbo-progs",
        "heif-thumbnailer",
        "libheif-examples",
        "ffmpeg",
    ]);
    let dirs = tempfile::tempdir().unwrap();
    let media = dirs.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    let p = |n: &str| media.join(n);
    photo(&p("photo.jpg"));
    image::open(p("photo.jpg"))
        .unwrap()
        .resize(1920, 1440, image::imageops::FilterType::Triangle)
        .save(p("photo.png"))
        .unwrap();
    tool(
        "heif-enc",
        &["-q", "60", p("photo.png").to_str().unwrap(), "-o", p("photo.heic").to_str().unwrap()],
    );
    tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=1920x1080:rate=30",
            "-t",
            "30",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-y",
            p("clip.mp4").to_str().unwrap(),
        ],
    );
    let read = |n: &str| std::fs::read(p(n)).unwrap();
    let (jpg, heic, mp4) = (read("photo.jpg"), read("photo.heic"), read("clip.mp4"));

    let dir = dirs.path().join("box");
    let (child, base) = binary::serve(&dir, &["--demo"], &[]);
    let pid = child.id();
    let _box = Running(child);
    let base = format!("http://{base}");
    let (capture, admin) = (binary::token(&dir, "capture"), binary::token(&dir, "admin"));
    let http = reqwest::Client::new();

    for (name, mime, bytes) in [
        ("IMG_0001.jpg", "image/jpeg", &jpg),
        ("IMG_0002.heic", "image/heic", &heic),
        ("clip.mp4", "video/mp4", &mp4),
    ] {
        assert_eq!(
            common::tus_upload(&http, &base, &capture, name, mime, bytes).await,
            204,
            "{name}"
        );
    }
    let all = settled(&base, &admin, 3).await;
    for (what, bytes) in [("jpeg", &jpg), ("heic", &heic), ("video", &mp4)] {
        let c = by_sha(&all, bytes);
        assert_eq!(c["preview"], "ready", "{what}: {c}");
        let (status, thumb) = {
            let r = http
                .get(format!("{base}{}", c["thumbnail"].as_str().unwrap()))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap();
            (r.status(), r.bytes().await.unwrap())
        };
        assert_eq!(status, 200, "{what}");
        let img = image::load_from_memory(&thumb).unwrap();
        assert_eq!(img.width().max(img.height()), 320, "{what}: {}x{}", img.width(), img.height());
    }
    let video = by_sha(&all, &mp4);
    let ms = video["duration_ms"].as_i64().unwrap_or_else(|| panic!("{video}"));
    assert!((29_900..=30_100).contains(&ms), "a 30 s clip: {ms} ms");

    // The hostile corpus: each answered, none previewed, the box's memory
    // unchanged by them (the decoders' memory is their own).
    huge_jpeg(&p("huge.jpg"));
    let mut bad_heif = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
    bad_heif.extend(b"\0\0\xff\xffmeta");
    bad_heif.extend(noise(200_000, 7));
    let mut bad_mov = b"\0\0\0\x14ftypqt  \0\0\0\0qt  ".to_vec();
    bad_mov.extend(noise(300_000, 11));
    let hostile: Vec<(&str, &str, Vec<u8>)> = vec![
        ("truncated.jpg", "image/jpeg", jpg[..jpg.len() / 3].to_vec()),
        ("huge.jpg", "image/jpeg", read("huge.jpg")),
        ("truncated.heic", "image/heic", heic[..heic.len() / 2].to_vec()),
        ("boxes.heic", "image/heic", bad_heif),
        ("noindex.mp4", "video/mp4", mp4[..mp4.len() / 2].to_vec()),
        ("garbage.mov", "video/quicktime", bad_mov),
    ];
    binary::reset_peak(pid);
    let (_, before) = binary::memory_kib(pid);
    let mut stored = Vec::new();
    for (name, mime, bytes) in &hostile {
        let status = common::tus_upload(&http, &base, &capture, name, mime, bytes).await;
        assert!(status == 204 || status == 415, "{name}: answered {status}");
        if status == 204 {
            stored.push((name, bytes));
        }
    }
    let all = settled(&base, &admin, 3 + stored.len()).await;
    for (name, bytes) in &stored {
        let c = by_sha(&all, bytes);
        assert!(c["preview"] == "failed" || c["preview"] == "none", "{name}: {c}");
        assert!(c["thumbnail"].is_null(), "{name}: {c}");
    }
    let (peak, _) = binary::memory_kib(pid);
    eprintln!(
        "hostile corpus: {} stored, box RSS {before} KiB before, peak {peak} KiB",
        stored.len()
    );
    assert!(peak < before + 16 * 1024, "the box's peak grew from {before} to {peak} KiB");
    let health: Value =
        reqwest::get(format!("{base}/healthz")).await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok", "{health}");
}
