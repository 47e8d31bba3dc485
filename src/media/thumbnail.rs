//! Small JPEG thumbnails for the creator dashboard, cheap enough for a Pi
//! and bounded in memory whatever the file holds:
//!
//! - A JPEG whose EXIF carries a camera thumbnail at least
//!   [`MIN_EMBEDDED_SIDE`] on its long side uses that (a few kilobytes to
//!   decode instead of megabytes: most phones embed one).
//! - Otherwise a JPEG is decoded at reduced scale (the decoder's 1/2, 1/4, 1/8 DCT
//!   scaling, to the smallest size still at least [`MAX_SIDE`]), so a
//!   12-megapixel photo costs a 500×375 decode, not a 4000×3000 one.
//! - PNG streams row by row into a box filter: one row in memory, never the
//!   whole image.
//! - WebP is decoded whole, so only up to [`MAX_WEBP_PIXELS`].
//! - EXIF orientation is applied, so a portrait photo stands up.
//!
//! - Where the field's C decoders are installed (`preview.rs`, run in the
//!   sandbox of `sandbox.rs`): a JPEG without a usable embedded preview is
//!   decoded by libjpeg-turbo's `djpeg` at reduced scale, a HEIC/HEIF by
//!   libheif (its own thumbnail item when it has one), a video's poster
//!   frame and duration by `ffmpeg`/`ffprobe`. Without them, a JPEG is
//!   decoded in-process (slower) and HEIC and videos get no thumbnail.
//!
//! [`Worker`] runs the work on one low-priority thread, so check-ins and
//! sales never wait behind it.

use super::preview::{self, Tools};
use super::probe::{exif_orientation, read_prefix, PROBE_BYTES};
use super::MediaError;
use crate::domain::capture::{sniff, MediaType, SNIFF_LEN};
use image::{imageops, RgbImage};
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// Longest side of a thumbnail, in pixels.
pub const MAX_SIDE: u32 = 320;
/// An embedded EXIF thumbnail is used when its long side is at least this.
pub const MIN_EMBEDDED_SIDE: u32 = 240;
/// Largest buffer a JPEG decode may allocate (the scaled planes and, for
/// progressive files, their coefficients).
const MAX_DECODE_BYTES: usize = 24 << 20;
/// A WebP is decoded whole (RGBA): at most this many pixels (32 MiB).
pub const MAX_WEBP_PIXELS: u64 = 8_000_000;
/// A progressive JPEG keeps every coefficient until the last scan.
const MAX_PROGRESSIVE_PIXELS: u64 = 8_000_000;
/// Interlaced PNGs cannot stream row by row.
const MAX_INTERLACED_PNG_PIXELS: u64 = 4_000_000;

fn fail(e: impl std::fmt::Display) -> MediaError {
    MediaError::Thumbnail(e.to_string())
}

/// A capture's preview: a JPEG thumbnail, and a video's duration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preview {
    pub jpeg: Vec<u8>,
    pub duration_ms: Option<i64>,
}

/// A thumbnail of the photo at `path`, as JPEG bytes, by the in-process
/// decoders only.
pub fn make(path: &Path) -> Result<Vec<u8>, MediaError> {
    Ok(make_with(path, &Tools::none())?.jpeg)
}

/// A preview of the capture at `path`, using the C decoders in `tools`
/// (in the sandbox) where they are installed.
pub fn make_with(path: &Path, tools: &Tools) -> Result<Preview, MediaError> {
    let head = read_prefix(path, PROBE_BYTES)?;
    let media = sniff(&head[..head.len().min(SNIFF_LEN)]).ok_or(MediaError::Unsupported)?;
    let mut duration_ms = None;
    let (small, orientation) = match media {
        MediaType::Jpeg => {
            let dims = super::probe::image_dimensions(media, &head);
            let img = match (embedded(&head), &tools.djpeg, dims) {
                (Some(img), _, _) => img,
                (None, Some(djpeg), Some(dims)) => preview::jpeg(djpeg, path, dims, MAX_SIDE)?,
                (None, _, _) => jpeg_scaled(path)?,
            };
            (img, exif_orientation(&head))
        }
        MediaType::Png => (png_scaled(path)?, exif_orientation(&head)),
        MediaType::Webp => (webp_bounded(path, &head)?, exif_orientation(&head)),
        // libheif and ffmpeg turn the picture as the file says.
        MediaType::Heic => match &tools.heif {
            Some(heif) => (preview::heif(heif, path, MAX_SIDE)?, 1),
            None => return Err(MediaError::Unsupported),
        },
        MediaType::Mp4 | MediaType::Mov => match (&tools.ffprobe, &tools.ffmpeg) {
            (Some(probe), Some(ffmpeg)) => {
                let (img, duration) = preview::video(probe, ffmpeg, path, MAX_SIDE)?;
                duration_ms = duration;
                (img, 1)
            }
            _ => return Err(MediaError::Unsupported),
        },
    };
    let oriented = orient(fit(small), orientation);
    let mut out = Vec::with_capacity(16 * 1024);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 75)
        .encode_image(&oriented)
        .map_err(fail)?;
    Ok(Preview { jpeg: out, duration_ms })
}

/// The camera's own thumbnail from EXIF, when it is big enough to stand in.
fn embedded(head: &[u8]) -> Option<RgbImage> {
    let bytes = super::probe::exif_thumbnail(head)?;
    let mut d = jpeg_decoder::Decoder::new(std::io::Cursor::new(&bytes));
    d.set_max_decoding_buffer_size(4 << 20);
    d.read_info().ok()?;
    let info = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| d.info())).ok()??;
    if (info.width.max(info.height) as u32) < MIN_EMBEDDED_SIDE
        || info.pixel_format != jpeg_decoder::PixelFormat::RGB24
    {
        return None;
    }
    let pixels = d.decode().ok()?;
    RgbImage::from_raw(info.width as u32, info.height as u32, pixels)
}

/// Scales down to fit [`MAX_SIDE`] keeping the aspect (a no-op when it fits).
fn fit(img: RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    if w <= MAX_SIDE && h <= MAX_SIDE {
        return img;
    }
    let scale = MAX_SIDE as f64 / w.max(h) as f64;
    let (tw, th) =
        (((w as f64 * scale).round() as u32).max(1), ((h as f64 * scale).round() as u32).max(1));
    imageops::thumbnail(&img, tw, th)
}

/// EXIF orientation 1–8 applied to the pixels.
fn orient(img: RgbImage, orientation: u32) -> RgbImage {
    match orientation {
        2 => imageops::flip_horizontal(&img),
        3 => imageops::rotate180(&img),
        4 => imageops::flip_vertical(&img),
        5 => imageops::flip_horizontal(&imageops::rotate90(&img)),
        6 => imageops::rotate90(&img),
        7 => imageops::flip_horizontal(&imageops::rotate270(&img)),
        8 => imageops::rotate270(&img),
        _ => img,
    }
}

fn jpeg_scaled(path: &Path) -> Result<RgbImage, MediaError> {
    use jpeg_decoder::{CodingProcess, PixelFormat};
    let f = std::fs::File::open(path).map_err(fail)?;
    let mut d = jpeg_decoder::Decoder::new(BufReader::new(f));
    d.set_max_decoding_buffer_size(MAX_DECODE_BYTES);
    d.read_info().map_err(fail)?;
    let info = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| d.info()))
        .ok()
        .flatten()
        .ok_or_else(|| fail("unreadable JPEG header"))?;
    if info.coding_process == CodingProcess::DctProgressive
        && info.width as u64 * info.height as u64 > MAX_PROGRESSIVE_PIXELS
    {
        return Err(fail("a progressive JPEG this large is not thumbnailed (it would need its whole coefficient set in memory)"));
    }
    d.scale(MAX_SIDE as u16, MAX_SIDE as u16).map_err(fail)?;
    let pixels = d.decode().map_err(fail)?;
    let info = d.info().ok_or_else(|| fail("no image"))?;
    let (w, h) = (info.width as u32, info.height as u32);
    let rgb: Vec<u8> = match info.pixel_format {
        PixelFormat::RGB24 => pixels,
        PixelFormat::L8 => pixels.iter().flat_map(|&g| [g, g, g]).collect(),
        PixelFormat::CMYK32 => pixels
            .chunks_exact(4)
            .flat_map(|p| {
                let k = 255 - p[3] as u32;
                [
                    ((255 - p[0] as u32) * k / 255) as u8,
                    ((255 - p[1] as u32) * k / 255) as u8,
                    ((255 - p[2] as u32) * k / 255) as u8,
                ]
            })
            .collect(),
        PixelFormat::L16 => pixels.chunks_exact(2).flat_map(|p| [p[0], p[0], p[0]]).collect(),
    };
    RgbImage::from_raw(w, h, rgb).ok_or_else(|| fail("decoded size does not match"))
}

/// PNG rows averaged into a grid of at most [`MAX_SIDE`] on the long side
/// as they stream by.
fn png_scaled(path: &Path) -> Result<RgbImage, MediaError> {
    let f = std::fs::File::open(path).map_err(fail)?;
    let mut decoder = png::Decoder::new(BufReader::new(f));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(fail)?;
    let info = reader.info();
    let (w, h) = (info.width, info.height);
    if info.interlaced && w as u64 * h as u64 > MAX_INTERLACED_PNG_PIXELS {
        return Err(fail("an interlaced PNG this large is not thumbnailed"));
    }
    let (color, _) = reader.output_color_type();
    let channels = color.samples();
    let scale = (MAX_SIDE as f64 / w.max(h) as f64).min(1.0);
    let (tw, th) =
        (((w as f64 * scale).ceil() as u32).max(1), ((h as f64 * scale).ceil() as u32).max(1));
    let mut sums = vec![0u64; tw as usize * th as usize * 3];
    let mut counts = vec![0u32; tw as usize * th as usize];
    if info.interlaced {
        let mut buf = vec![0u8; reader.output_buffer_size().ok_or_else(|| fail("PNG too large"))?];
        let frame = reader.next_frame(&mut buf).map_err(fail)?;
        for y in 0..h {
            let row = &buf[(y as usize * frame.line_size)..][..frame.line_size];
            accumulate(row, y, w, h, tw, th, channels, &mut sums, &mut counts);
        }
    } else {
        let mut y = 0;
        while let Some(row) = reader.next_row().map_err(fail)? {
            accumulate(row.data(), y, w, h, tw, th, channels, &mut sums, &mut counts);
            y += 1;
        }
    }
    let mut out = RgbImage::new(tw, th);
    for (i, px) in out.pixels_mut().enumerate() {
        let n = counts[i].max(1) as u64;
        px.0 = [(sums[i * 3] / n) as u8, (sums[i * 3 + 1] / n) as u8, (sums[i * 3 + 2] / n) as u8];
    }
    Ok(out)
}

#[expect(clippy::too_many_arguments)]
fn accumulate(
    row: &[u8],
    y: u32,
    w: u32,
    h: u32,
    tw: u32,
    th: u32,
    channels: usize,
    sums: &mut [u64],
    counts: &mut [u32],
) {
    let ty = (y as u64 * th as u64 / h as u64) as usize;
    for x in 0..w as usize {
        let Some(p) = row.get(x * channels..(x + 1) * channels) else {
            break;
        };
        let (r, g, b) = match channels {
            1 | 2 => (p[0], p[0], p[0]),
            _ => (p[0], p[1], p[2]),
        };
        let tx = (x as u64 * tw as u64 / w as u64) as usize;
        let i = ty * tw as usize + tx;
        sums[i * 3] += r as u64;
        sums[i * 3 + 1] += g as u64;
        sums[i * 3 + 2] += b as u64;
        counts[i] += 1;
    }
}

fn webp_bounded(path: &Path, head: &[u8]) -> Result<RgbImage, MediaError> {
    let (w, h) = super::probe::image_dimensions(MediaType::Webp, head)
        .ok_or_else(|| fail("unreadable WebP header"))?;
    if w as u64 * h as u64 > MAX_WEBP_PIXELS {
        return Err(fail("a WebP this large is not thumbnailed"));
    }
    let mut reader =
        image::ImageReader::open(path).map_err(fail)?.with_guessed_format().map_err(fail)?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    limits.max_alloc = Some(MAX_WEBP_PIXELS * 4 + (4 << 20));
    reader.limits(limits);
    Ok(reader.decode().map_err(fail)?.to_rgb8())
}

/// A file to make a preview of, and where to send it.
type Job = (PathBuf, tokio::sync::oneshot::Sender<Result<Preview, MediaError>>);

/// Threads at the lowest CPU priority, each making one preview at a time
/// (a decode is CPU-bound; the door's requests must always come first,
/// and the kernel gives a nice-19 thread next to nothing while they run).
pub struct Worker {
    /// Jobs for the threads; they end when this is dropped.
    jobs: std::sync::mpsc::Sender<Job>,
}

impl Worker {
    /// `threads` workers using the decoders in `tools`.
    pub fn new(tools: Tools, threads: usize) -> Self {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for n in 0..threads.max(1) {
            let (rx, tools) = (rx.clone(), tools.clone());
            std::thread::Builder::new()
                .name(format!("thumbnails-{n}"))
                .spawn(move || {
                    // SAFETY: a plain syscall on this thread's own id.
                    unsafe {
                        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19);
                    }
                    loop {
                        let job = rx.lock().expect("the preview queue").recv();
                        let Ok((path, reply)) = job else { return };
                        let _ = reply.send(make_with(&path, &tools));
                    }
                })
                .expect("spawn a thumbnail thread");
        }
        Worker { jobs }
    }

    pub async fn make(&self, path: PathBuf) -> Result<Preview, MediaError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs.send((path, tx)).map_err(|_| fail("the thumbnail thread stopped"))?;
        rx.await.map_err(|_| fail("the thumbnail thread stopped"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(jpeg: &[u8]) -> image::DynamicImage {
        image::load_from_memory(jpeg).unwrap()
    }

    #[test]
    fn thumbnails_fit_the_box_and_keep_the_aspect() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.png");
        image::RgbImage::from_pixel(1200, 600, image::Rgb([200, 30, 30])).save(&p).unwrap();
        let jpeg = make(&p).unwrap();
        let t = decode(&jpeg);
        assert_eq!((t.width(), t.height()), (320, 160));
        assert_eq!(&jpeg[..3], &[0xFF, 0xD8, 0xFF]);
        let px = t.to_rgb8().get_pixel(100, 80).0;
        assert!(px[0] > 170 && px[1] < 70, "the colour survives the row-by-row average: {px:?}");
    }

    #[test]
    fn a_big_jpeg_is_decoded_at_reduced_scale_and_fits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("photo.jpg");
        let img = image::RgbImage::from_fn(4000, 3000, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        img.save(&p).unwrap();
        let t = decode(&make(&p).unwrap());
        assert_eq!((t.width(), t.height()), (320, 240));
    }

    #[test]
    fn exif_orientation_6_stands_a_portrait_photo_up() {
        // Stored landscape, left half red, right half blue; orientation 6
        // says "rotate 90° clockwise to view": the red half ends on top.
        let img = image::RgbImage::from_fn(400, 200, |x, _| {
            if x < 200 {
                image::Rgb([220, 0, 0])
            } else {
                image::Rgb([0, 0, 220])
            }
        });
        let field = exif::Field {
            tag: exif::Tag::Orientation,
            ifd_num: exif::In::PRIMARY,
            value: exif::Value::Short(vec![6]),
        };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("portrait.jpg");
        std::fs::write(&p, crate::media::probe::tests::jpeg_with_fields(&img, &[field])).unwrap();
        let t = decode(&make(&p).unwrap()).to_rgb8();
        assert_eq!(t.dimensions(), (160, 320));
        let (top, bottom) = (t.get_pixel(80, 40).0, t.get_pixel(80, 280).0);
        assert!(top[0] > 150 && top[2] < 80, "red on top: {top:?}");
        assert!(bottom[2] > 150 && bottom[0] < 80, "blue below: {bottom:?}");
    }

    #[test]
    fn a_camera_thumbnail_in_exif_is_used_when_big_enough() {
        // The main image is red, the embedded 320×240 thumbnail green: the
        // result is green, so the embedded one was used.
        let main = image::RgbImage::from_pixel(1600, 1200, image::Rgb([220, 0, 0]));
        let small = image::RgbImage::from_pixel(320, 240, image::Rgb([0, 200, 0]));
        let mut thumb = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut thumb).encode_image(&small).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("camera.jpg");
        std::fs::write(&p, crate::media::probe::tests::jpeg_with_thumbnail(&main, &thumb)).unwrap();
        let t = decode(&make(&p).unwrap()).to_rgb8();
        assert_eq!(t.dimensions(), (320, 240));
        assert!(t.get_pixel(100, 100).0[1] > 150, "{:?}", t.get_pixel(100, 100));
        // Too small an embedded thumbnail (160×120, as some phones embed) is not used.
        let tiny = image::RgbImage::from_pixel(160, 120, image::Rgb([0, 200, 0]));
        let mut thumb = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut thumb).encode_image(&tiny).unwrap();
        std::fs::write(&p, crate::media::probe::tests::jpeg_with_thumbnail(&main, &thumb)).unwrap();
        assert!(
            decode(&make(&p).unwrap()).to_rgb8().get_pixel(100, 100).0[0] > 150,
            "decoded from the main image"
        );
    }

    #[test]
    fn garbage_after_a_jpeg_or_png_header_is_refused_not_decoded() {
        let dir = tempfile::tempdir().unwrap();
        for (name, header) in [
            ("x.jpg", &b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00"[..]),
            ("x.png", &b"\x89PNG\r\n\x1a\n"[..]),
        ] {
            let p = dir.path().join(name);
            let mut bytes = header.to_vec();
            bytes.extend((0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
            std::fs::write(&p, bytes).unwrap();
            assert!(make(&p).is_err(), "{name}");
        }
    }
}
