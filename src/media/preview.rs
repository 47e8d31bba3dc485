//! Previews the pure-Rust decoders cannot make well, by the field's own
//! tools run in the sandbox (`sandbox.rs`): libjpeg-turbo's `djpeg` for a
//! JPEG without a usable embedded preview (DCT scaling to 1/8, 1/4 or 1/2),
//! libheif's `heif-thumbnailer` for HEIC/HEIF (the file's own thumbnail
//! item when it has one), and `ffprobe`/`ffmpeg` for a video's duration
//! and a poster frame. What comes back is small (a PNM on standard output,
//! or a PNG of at most the preview's size) and is checked before it is
//! read. A missing tool is a preview the box cannot make, and says so
//! (`Tools::missing`: `venuebox rehearse`, the dashboard).

use super::sandbox::{self, Limits};
use super::MediaError;
use image::RgbImage;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The decoders found on this machine.
#[derive(Clone, Debug, Default)]
pub struct Tools {
    pub djpeg: Option<PathBuf>,
    pub heif: Option<PathBuf>,
    pub ffmpeg: Option<PathBuf>,
    pub ffprobe: Option<PathBuf>,
}

/// A kind of preview this box cannot make, and the package that would
/// make it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct MissingPreview {
    /// `jpeg` (made slowly in-process instead), `heif` or `video`.
    pub kind: String,
    pub what: String,
    pub package: String,
}

fn find(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

impl Tools {
    /// Looks for the tools where Debian installs them.
    pub fn find() -> Tools {
        Tools {
            djpeg: find("djpeg"),
            heif: find("heif-thumbnailer"),
            ffmpeg: find("ffmpeg"),
            ffprobe: find("ffprobe"),
        }
    }

    /// None at all: the pure-Rust decoders only.
    pub fn none() -> Tools {
        Tools::default()
    }

    /// What this box cannot preview, and what to install for it.
    pub fn missing(&self) -> Vec<MissingPreview> {
        let mut out = Vec::new();
        let mut miss = |kind: &str, what: &str, package: &str| {
            out.push(MissingPreview {
                kind: kind.into(),
                what: what.into(),
                package: package.into(),
            })
        };
        if self.djpeg.is_none() {
            miss(
                "jpeg",
                "JPEG photos without an embedded preview (made slowly in-process instead)",
                "libjpeg-turbo-progs",
            );
        }
        if self.heif.is_none() {
            miss("heif", "HEIC/HEIF photos", "heif-thumbnailer");
        }
        if self.ffmpeg.is_none() || self.ffprobe.is_none() {
            miss("video", "videos (poster frame and duration)", "ffmpeg");
        }
        out
    }
}

/// Limits for a decoder child: room for a 12-megapixel decode at reduced
/// scale, or one HEVC frame; seconds, not minutes.
fn limits(output: usize, file: u64) -> Limits {
    Limits { memory: 768 << 20, cpu_secs: 10, wall: Duration::from_secs(20), output, file }
}

thread_local! {
    /// What the decoders this thread ran cost, for the log and benchmarks.
    static SPENT: std::cell::Cell<(Duration, u64)> = const { std::cell::Cell::new((Duration::ZERO, 0)) };
}

fn cost(ran: &sandbox::Ran) {
    SPENT.with(|s| {
        let (cpu, peak) = s.get();
        s.set((cpu + ran.cpu, peak.max(ran.peak_kib)));
    });
}

/// The decoders' CPU time this thread has spent, and the largest peak
/// memory (KiB) one of them had, since the last call.
pub fn take_spent() -> (Duration, u64) {
    SPENT.with(|s| s.replace((Duration::ZERO, 0)))
}

fn failed(e: sandbox::SandboxError) -> MediaError {
    MediaError::Thumbnail(e.to_string())
}

/// A binary PPM (P6) or PGM (P5) with 8-bit samples, at most
/// `max_pixels`, as RGB.
pub fn parse_pnm(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, MediaError> {
    let bad = |why: &str| MediaError::Thumbnail(format!("the decoder's image is malformed: {why}"));
    let mut fields = Vec::new();
    let mut at = 2;
    let magic = bytes.get(..2).ok_or_else(|| bad("empty"))?;
    let channels = match magic {
        b"P6" => 3,
        b"P5" => 1,
        _ => return Err(bad("not a PPM or PGM")),
    };
    while fields.len() < 3 {
        while bytes.get(at).is_some_and(|b| b.is_ascii_whitespace()) {
            at += 1;
        }
        if bytes.get(at) == Some(&b'#') {
            while bytes.get(at).is_some_and(|b| *b != b'\n') {
                at += 1;
            }
            continue;
        }
        let start = at;
        while bytes.get(at).is_some_and(|b| b.is_ascii_digit()) {
            at += 1;
        }
        let n: u64 = std::str::from_utf8(&bytes[start..at])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("a header number"))?;
        fields.push(n);
    }
    at += 1; // the one whitespace byte before the samples
    let (w, h, max) = (fields[0], fields[1], fields[2]);
    if w == 0 || h == 0 || w * h > max_pixels || max != 255 {
        return Err(bad("its size or depth"));
    }
    let len = (w * h * channels) as usize;
    let data = bytes.get(at..at + len).ok_or_else(|| bad("short"))?;
    let rgb =
        if channels == 3 { data.to_vec() } else { data.iter().flat_map(|&g| [g, g, g]).collect() };
    RgbImage::from_raw(w as u32, h as u32, rgb).ok_or_else(|| bad("its length"))
}

/// The DCT scale `djpeg` decodes at: the smallest that still gives at
/// least `side` pixels on the long side.
pub fn jpeg_scale(width: u32, height: u32, side: u32) -> u32 {
    let long = width.max(height);
    [8, 4, 2].into_iter().find(|d| long / d >= side).unwrap_or(1)
}

/// Most pixels a decoder's image may have once scaled (6 MB as RGB): a
/// 48-megapixel photo at 1/8 is 0.75 million. A file claiming more is not
/// decoded: its output would be the box's memory.
pub const MAX_SCALED_PIXELS: u64 = 2_000_000;

/// A JPEG decoded at reduced scale by `djpeg` (`dims`: its size, from the
/// header, to choose the scale).
pub fn jpeg(tool: &Path, path: &Path, dims: (u32, u32), side: u32) -> Result<RgbImage, MediaError> {
    let scale = jpeg_scale(dims.0, dims.1, side);
    let (w, h) = (dims.0.div_ceil(scale) as u64, dims.1.div_ceil(scale) as u64);
    if w * h > MAX_SCALED_PIXELS {
        return Err(MediaError::Thumbnail(format!(
            "a JPEG of {} × {} pixels is too large to preview",
            dims.0, dims.1
        )));
    }
    let file = std::fs::File::open(path).map_err(|e| MediaError::Io(e.to_string()))?;
    let args: Vec<OsString> = vec!["-scale".into(), format!("1/{scale}").into(), "-pnm".into()];
    let ran = sandbox::run(tool, &args, Some(file), &limits((w * h * 3 + 64) as usize, 0))
        .map_err(failed)?;
    cost(&ran);
    parse_pnm(&ran.stdout, w * h)
}

/// A private directory (0700) for one decoder's output file, removed
/// with what is in it when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, MediaError> {
        use std::os::unix::fs::DirBuilderExt;
        let name = format!(
            "venuebox-preview-{}-{}",
            std::process::id(),
            crate::secrets::hex(&crate::secrets::random_bytes::<8>())
        );
        let dir = std::env::temp_dir().join(name);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| MediaError::Io(format!("{}: {e}", dir.display())))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A HEIC/HEIF's preview by `heif-thumbnailer` (its own thumbnail item
/// when it has one), written as a PNG of at most `side` pixels into a
/// private directory, then read.
pub fn heif(tool: &Path, path: &Path, side: u32) -> Result<RgbImage, MediaError> {
    let dir = Scratch::new()?;
    let png = dir.0.join("preview.png");
    let args: Vec<OsString> =
        vec!["-s".into(), side.to_string().into(), path.into(), png.clone().into()];
    // The PNG it may write: at most a few bytes a pixel.
    let file_limit = u64::from(side) * u64::from(side) * 4 + (64 << 10);
    cost(&sandbox::run(tool, &args, None, &limits(64 << 10, file_limit)).map_err(failed)?);
    let img = image::ImageReader::open(&png)
        .map_err(|e| MediaError::Io(e.to_string()))?
        .with_guessed_format()
        .map_err(|e| MediaError::Io(e.to_string()))?;
    let mut img = img;
    let mut lim = image::Limits::default();
    lim.max_image_width = Some(side * 2);
    lim.max_image_height = Some(side * 2);
    img.limits(lim);
    Ok(img.decode().map_err(|e| MediaError::Thumbnail(e.to_string()))?.to_rgb8())
}

/// A video's duration (ms) by `ffprobe`, and a poster frame by `ffmpeg`
/// (a second in, or the middle of a shorter clip), scaled to fit `side`.
pub fn video(
    ffprobe: &Path,
    ffmpeg: &Path,
    path: &Path,
    side: u32,
) -> Result<(RgbImage, Option<i64>), MediaError> {
    let probe: Vec<OsString> = vec![
        "-v".into(),
        "error".into(),
        "-show_entries".into(),
        "format=duration".into(),
        "-of".into(),
        "default=noprint_wrappers=1:nokey=1".into(),
        path.into(),
    ];
    let duration = sandbox::run(ffprobe, &probe, None, &limits(4096, 0))
        .ok()
        .inspect(cost)
        .and_then(|ran| String::from_utf8_lossy(&ran.stdout).trim().parse::<f64>().ok())
        .filter(|d| d.is_finite() && *d >= 0.0)
        .map(|d| (d * 1000.0).round() as i64);
    let at = duration.map_or(0.0, |ms| (ms as f64 / 2000.0).min(1.0));
    let fit = format!("scale={side}:{side}:force_original_aspect_ratio=decrease");
    let args: Vec<OsString> = vec![
        "-v".into(),
        "error".into(),
        "-nostdin".into(),
        "-threads".into(),
        "1".into(),
        "-ss".into(),
        format!("{at:.3}").into(),
        "-i".into(),
        path.into(),
        "-frames:v".into(),
        "1".into(),
        "-vf".into(),
        fit.into(),
        "-f".into(),
        "image2pipe".into(),
        "-vcodec".into(),
        "ppm".into(),
        "-".into(),
    ];
    let px = u64::from(side) * u64::from(side);
    let ran =
        sandbox::run(ffmpeg, &args, None, &limits((px * 3 + 64) as usize, 0)).map_err(failed)?;
    cost(&ran);
    Ok((parse_pnm(&ran.stdout, px)?, duration))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pnm_is_read_within_its_bounds_and_nothing_else_is() {
        let mut ppm = b"P6\n# a comment\n2 1\n255\n".to_vec();
        ppm.extend([255, 0, 0, 0, 0, 255]);
        let img = parse_pnm(&ppm, 10).unwrap();
        assert_eq!(img.dimensions(), (2, 1));
        assert_eq!(img.get_pixel(1, 0).0, [0, 0, 255]);
        let mut pgm = b"P5 1 1 255\n".to_vec();
        pgm.push(7);
        assert_eq!(parse_pnm(&pgm, 10).unwrap().get_pixel(0, 0).0, [7, 7, 7]);
        assert!(parse_pnm(&ppm, 1).is_err(), "past its pixel bound");
        assert!(parse_pnm(&ppm[..ppm.len() - 1], 10).is_err(), "short");
        assert!(parse_pnm(b"P6\n99999999 99999999\n255\n", u64::MAX).is_err(), "huge and short");
        assert!(parse_pnm(b"GIF89a", 10).is_err());
        assert!(parse_pnm(b"P6\n1 1\n65535\n\0\0\0\0\0\0", 10).is_err(), "16-bit");
    }

    #[test]
    fn the_jpeg_scale_is_the_smallest_that_still_fills_a_preview() {
        assert_eq!(jpeg_scale(4032, 3024, 320), 8);
        assert_eq!(jpeg_scale(1600, 1200, 320), 4);
        assert_eq!(jpeg_scale(800, 600, 320), 2);
        assert_eq!(jpeg_scale(400, 300, 320), 1);
    }

    #[test]
    fn a_missing_tool_names_the_package_that_brings_it() {
        let missing = Tools::none().missing();
        let packages: Vec<&str> = missing.iter().map(|m| m.package.as_str()).collect();
        assert_eq!(packages, ["libjpeg-turbo-progs", "heif-thumbnailer", "ffmpeg"]);
    }
}
