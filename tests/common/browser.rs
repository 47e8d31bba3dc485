//! What the browser tests (and the camera benchmark) need: Debian's
//! chromium and playwright-core, installed on first use, and a fake camera
//! video of QR codes.

use std::path::{Path, PathBuf};
use std::process::Command;

const PLAYWRIGHT: &str = "playwright-core@1.64.1";
/// The accessibility checker the browser test runs on every screen.
const AXE: &str = "axe-core@4.14.1";
/// The type checker the browser test runs over the app's modules.
const TYPESCRIPT: &str = "typescript@5.9.3";

/// Debian's chromium, installed with apt when missing (the test machines
/// run as root and reach Debian's mirrors).
pub fn chromium() {
    if Path::new("/usr/bin/chromium").exists() {
        return;
    }
    super::apt::install(&["chromium"]);
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "apt installed chromium, but not as /usr/bin/chromium"
    );
}

/// A directory with playwright-core and axe-core in node_modules
/// (installed once, into the tools cache).
pub fn playwright() -> PathBuf {
    let dir = super::cache::dir("node-web", &[PLAYWRIGHT, AXE]);
    if !dir.join("node_modules/playwright-core/package.json").exists()
        || !dir.join("node_modules/axe-core/axe.min.js").exists()
    {
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&dir)
            .args([PLAYWRIGHT, AXE])
            .output()
            .expect("node and npm are needed for the browser tests");
        assert!(
            out.status.success(),
            "npm install {PLAYWRIGHT}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dir
}

/// `tsc` (TypeScript's compiler, from npm into the tools cache once).
pub fn tsc() -> PathBuf {
    let dir = super::cache::dir("node-tsc", &[TYPESCRIPT]);
    let tsc = dir.join("node_modules/.bin/tsc");
    if !tsc.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&dir)
            .arg(TYPESCRIPT)
            .output()
            .expect("node and npm are needed for the browser tests");
        assert!(
            out.status.success(),
            "npm install {TYPESCRIPT}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    tsc
}

/// A y4m video (what Chromium's fake camera plays, looped) of QR code
/// PNGs held up in front of the camera one after another: 640×480, grey
/// (I420 with neutral chroma), each code `frames` frames at `fps` in the
/// middle of a white frame, drawn `scale` times its size (1: a ticket at
/// arm's length, inside the door's aiming frame), then `gap` white frames
/// (the camera between two guests). With no PNGs, a white video (a camera
/// that sees no code).
pub fn qr_video(pngs: &[PathBuf], frames: usize, gap: usize, fps: u32, out: &Path, scale: u32) {
    let (w, h) = (640u32, 480u32);
    let chroma = vec![128u8; (w * h / 2) as usize];
    let white = vec![255u8; (w * h) as usize];
    let mut video = format!("YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n").into_bytes();
    let mut frame = |luma: &[u8]| {
        video.extend_from_slice(b"FRAME\n");
        video.extend_from_slice(luma);
        video.extend_from_slice(&chroma);
    };
    for png in pngs {
        let qr = image::open(png).unwrap().to_luma8();
        let (qw, qh) = (qr.width() * scale, qr.height() * scale);
        let (ox, oy) = ((w - qw) / 2, (h - qh) / 2);
        let mut luma = white.clone();
        for y in 0..qh {
            for x in 0..qw {
                luma[((oy + y) * w + ox + x) as usize] = qr.get_pixel(x / scale, y / scale).0[0];
            }
        }
        for _ in 0..frames {
            frame(&luma);
        }
        for _ in 0..gap {
            frame(&white);
        }
    }
    if pngs.is_empty() {
        for _ in 0..gap.max(1) {
            frame(&white);
        }
    }
    std::fs::write(out, video).unwrap();
}
