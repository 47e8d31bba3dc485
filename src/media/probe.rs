//! What a finished capture is: its type by magic bytes, its dimensions,
//! and its capture time from EXIF (photos) or the `mvhd` box (videos).
//!
//! Memory is bounded by design, whatever the file holds: photos are probed
//! from their first [`PROBE_BYTES`] only (where headers and EXIF live; a
//! JPEG's APP1 segment is at most 64 KiB), and videos by seeking between box
//! headers, reading a few bytes at each. Nothing here reads a capture whole.

use super::{io_err, MediaError};
use crate::domain::capture::{sniff, MediaType, SNIFF_LEN};
use crate::domain::time::Millis;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

pub use crate::domain::capture::Probe;

/// How much of a photo is read to probe it.
pub const PROBE_BYTES: u64 = 1 << 20;

pub fn probe(path: &Path) -> Result<Probe, MediaError> {
    let head = read_prefix(path, PROBE_BYTES)?;
    let media = sniff(&head[..head.len().min(SNIFF_LEN)]).ok_or(MediaError::Unsupported)?;
    let mut p = Probe { media, width: None, height: None, captured_at: None };
    match media {
        MediaType::Jpeg | MediaType::Png | MediaType::Webp => {
            if let Some((w, h)) = image_dimensions(media, &head) {
                (p.width, p.height) = (Some(w), Some(h));
            }
            p.captured_at = exif_time(&head);
        }
        MediaType::Heic => {
            let mut f = File::open(path).map_err(io_err(path.display()))?;
            if let Some((w, h)) = heic_dimensions(&mut f) {
                (p.width, p.height) = (Some(w), Some(h));
            }
            p.captured_at = exif_time(&head);
        }
        MediaType::Mp4 | MediaType::Mov => {
            let mut f = File::open(path).map_err(io_err(path.display()))?;
            let (time, dims) = movie_header(&mut f).unwrap_or((None, None));
            p.captured_at = time;
            if let Some((w, h)) = dims {
                (p.width, p.height) = (Some(w), Some(h));
            }
        }
    }
    Ok(p)
}

/// The first `limit` bytes of a file (fewer if it is shorter).
pub fn read_prefix(path: &Path, limit: u64) -> Result<Vec<u8>, MediaError> {
    let f = File::open(path).map_err(io_err(path.display()))?;
    let mut head =
        Vec::with_capacity(limit.min(f.metadata().map(|m| m.len()).unwrap_or(limit)) as usize);
    f.take(limit).read_to_end(&mut head).map_err(io_err(path.display()))?;
    Ok(head)
}

/// Width and height from a photo's headers, read from `head` alone.
pub fn image_dimensions(media: MediaType, head: &[u8]) -> Option<(u32, u32)> {
    match media {
        MediaType::Jpeg => {
            let mut d = jpeg_decoder::Decoder::new(std::io::Cursor::new(head));
            d.read_info().ok()?;
            // A frame header with a precision jpeg-decoder cannot describe
            // panics in `info`; such a file simply has no dimensions.
            let info =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| d.info())).ok()??;
            Some((info.width as u32, info.height as u32))
        }
        // PNG: the IHDR chunk always comes first.
        MediaType::Png if head.len() >= 24 && &head[12..16] == b"IHDR" => Some((
            u32::from_be_bytes(head[16..20].try_into().ok()?),
            u32::from_be_bytes(head[20..24].try_into().ok()?),
        )),
        MediaType::Webp => webp_dimensions(head),
        _ => None,
    }
}

/// WebP canvas size from the first chunk: VP8X (extended), VP8L
/// (lossless) or "VP8 " (lossy).
fn webp_dimensions(h: &[u8]) -> Option<(u32, u32)> {
    let le24 = |b: &[u8]| b[0] as u32 | (b[1] as u32) << 8 | (b[2] as u32) << 16;
    match h.get(12..16)? {
        b"VP8X" => Some((le24(h.get(24..27)?) + 1, le24(h.get(27..30)?) + 1)),
        b"VP8L" => {
            let b = h.get(21..25)?;
            let bits = u32::from_le_bytes(b.try_into().ok()?);
            Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
        }
        b"VP8 " => {
            let b = h.get(26..30)?;
            Some((
                u16::from_le_bytes([b[0], b[1]]) as u32 & 0x3FFF,
                u16::from_le_bytes([b[2], b[3]]) as u32 & 0x3FFF,
            ))
        }
        _ => None,
    }
}

/// The EXIF block of a photo, parsed from its first bytes.
fn exif_of(head: &[u8]) -> Option<exif::Exif> {
    exif::Reader::new().read_from_container(&mut std::io::Cursor::new(head)).ok()
}

/// The JPEG thumbnail a camera embedded in its EXIF (IFD1), if any.
pub fn exif_thumbnail(head: &[u8]) -> Option<Vec<u8>> {
    let e = exif_of(head)?;
    let at =
        e.get_field(exif::Tag::JPEGInterchangeFormat, exif::In::THUMBNAIL)?.value.get_uint(0)?
            as usize;
    let len = e
        .get_field(exif::Tag::JPEGInterchangeFormatLength, exif::In::THUMBNAIL)?
        .value
        .get_uint(0)? as usize;
    e.buf().get(at..at.checked_add(len)?).map(<[u8]>::to_vec)
}

/// EXIF orientation (1–8), 1 when absent.
pub fn exif_orientation(head: &[u8]) -> u32 {
    exif_of(head)
        .and_then(|e| {
            e.get_field(exif::Tag::Orientation, exif::In::PRIMARY).and_then(|f| f.value.get_uint(0))
        })
        .filter(|o| (1..=8).contains(o))
        .unwrap_or(1)
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// DateTimeOriginal (or DateTime) with OffsetTimeOriginal when present.
/// Without an offset the camera's local time is read as UTC: the box has
/// no time-zone database, and the device's own capture time (kept in the
/// upload row) is there to cross-check.
fn exif_time(head: &[u8]) -> Option<Millis> {
    let exif = exif_of(head)?;
    let field = exif
        .get_field(exif::Tag::DateTimeOriginal, exif::In::PRIMARY)
        .or_else(|| exif.get_field(exif::Tag::DateTime, exif::In::PRIMARY))?;
    let exif::Value::Ascii(ref v) = field.value else {
        return None;
    };
    let dt = exif::DateTime::from_ascii(v.first()?).ok()?;
    let offset = exif
        .get_field(exif::Tag::OffsetTimeOriginal, exif::In::PRIMARY)
        .and_then(|f| match &f.value {
            exif::Value::Ascii(v) => {
                v.first().and_then(|s| std::str::from_utf8(s).ok()).map(str::to_string)
            }
            _ => None,
        })
        .unwrap_or_else(|| "Z".into());
    let text = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}",
        dt.year,
        dt.month,
        dt.day,
        dt.hour,
        dt.minute,
        dt.second,
        if offset == "Z" { "Z" } else { &offset }
    );
    crate::domain::time::parse_rfc3339(&text).ok()
}

/// Reads a box header at the current position: (type, payload length).
fn box_header(f: &mut File, limit: u64) -> Option<([u8; 4], u64)> {
    let mut h = [0u8; 8];
    f.read_exact(&mut h).ok()?;
    let size = u32::from_be_bytes(h[..4].try_into().ok()?) as u64;
    let kind: [u8; 4] = h[4..8].try_into().ok()?;
    let (header, total) = match size {
        1 => {
            let mut big = [0u8; 8];
            f.read_exact(&mut big).ok()?;
            (16, u64::from_be_bytes(big))
        }
        0 => (8, limit),
        s => (8, s),
    };
    (total >= header && total <= limit).then_some((kind, total - header))
}

/// Finds the first child box of `kind` among boxes in [start, start+len).
fn find_box(f: &mut File, start: u64, len: u64, kind: &[u8; 4]) -> Option<(u64, u64)> {
    let mut pos = start;
    while pos + 8 <= start + len {
        f.seek(SeekFrom::Start(pos)).ok()?;
        let (k, payload) = box_header(f, start + len - pos)?;
        let body = f.stream_position().ok()?;
        if &k == kind {
            return Some((body, payload));
        }
        pos = body + payload;
    }
    None
}

/// Creation time from `moov/mvhd` and the first video track's size from
/// `moov/trak/tkhd`. QuickTime counts seconds from 1904.
/// (creation time, width × height) of a movie, each when present.
type MovieHeader = (Option<Millis>, Option<(u32, u32)>);

fn movie_header(f: &mut File) -> Option<MovieHeader> {
    let file_len = f.metadata().ok()?.len();
    let (moov, moov_len) = find_box(f, 0, file_len, b"moov")?;
    let mut time = None;
    if let Some((mvhd, _)) = find_box(f, moov, moov_len, b"mvhd") {
        f.seek(SeekFrom::Start(mvhd)).ok()?;
        let mut b = [0u8; 12];
        f.read_exact(&mut b).ok()?;
        let secs = if b[0] == 1 {
            u64::from_be_bytes(b[4..12].try_into().ok()?)
        } else {
            u32::from_be_bytes(b[4..8].try_into().ok()?) as u64
        };
        const FROM_1904: u64 = 2_082_844_800;
        if secs > FROM_1904 {
            time = Some(((secs - FROM_1904) * 1000) as Millis);
        }
    }
    let mut dims = None;
    let mut pos = moov;
    while let Some((trak, trak_len)) = find_box(f, pos, moov + moov_len - pos, b"trak") {
        if let Some((tkhd, tkhd_len)) = find_box(f, trak, trak_len, b"tkhd") {
            if tkhd_len >= 8 {
                f.seek(SeekFrom::Start(tkhd + tkhd_len - 8)).ok()?;
                let mut b = [0u8; 8];
                f.read_exact(&mut b).ok()?;
                let (w, h) = (
                    u32::from_be_bytes(b[..4].try_into().ok()?) >> 16,
                    u32::from_be_bytes(b[4..].try_into().ok()?) >> 16,
                );
                if w > 0 && h > 0 {
                    dims = Some((w, h));
                    break;
                }
            }
        }
        pos = trak + trak_len;
    }
    Some((time, dims))
}

/// HEIF image size from the first `ispe` property near the start.
fn heic_dimensions(f: &mut File) -> Option<(u32, u32)> {
    f.seek(SeekFrom::Start(0)).ok()?;
    let mut buf = vec![0u8; 64 * 1024];
    let n = read_up_to(f, &mut buf).ok()?;
    let at = buf[..n].windows(4).position(|w| w == b"ispe")?;
    let b = buf.get(at + 8..at + 16)?;
    Some((u32::from_be_bytes(b[..4].try_into().ok()?), u32::from_be_bytes(b[4..].try_into().ok()?)))
}

/// The EXIF-JPEG builder the benchmark uses too.
#[cfg(test)]
#[path = "../../tests/common/photos.rs"]
mod photos;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal MP4: ftyp, then moov with mvhd (v0) and one trak/tkhd.
    pub(crate) fn tiny_mp4(created_unix: u64, w: u32, h: u32) -> Vec<u8> {
        fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
            let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
            v.extend_from_slice(kind);
            v.extend_from_slice(body);
            v
        }
        let mut mvhd = vec![0u8; 4];
        mvhd.extend_from_slice(&((created_unix + 2_082_844_800) as u32).to_be_bytes());
        mvhd.extend_from_slice(&[0u8; 92]);
        let mut tkhd = vec![0u8; 76];
        tkhd.extend_from_slice(&(w << 16).to_be_bytes());
        tkhd.extend_from_slice(&(h << 16).to_be_bytes());
        let trak = bx(b"trak", &bx(b"tkhd", &tkhd));
        let moov = bx(b"moov", &[bx(b"mvhd", &mvhd), trak].concat());
        [bx(b"ftyp", b"isom\0\0\x02\0isomiso2"), bx(b"mdat", &[7u8; 64]), moov].concat()
    }

    #[test]
    fn reads_time_and_size_from_a_video_with_moov_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.mp4");
        std::fs::write(&p, tiny_mp4(1_800_000_000, 1920, 1080)).unwrap();
        let probe = probe(&p).unwrap();
        assert_eq!(probe.media, MediaType::Mp4);
        assert_eq!(probe.captured_at, Some(1_800_000_000_000));
        assert_eq!((probe.width, probe.height), (Some(1920), Some(1080)));
    }

    /// A JPEG with an EXIF APP1 segment carrying the given date fields.
    fn jpeg_with_exif(fields: &[(exif::Tag, &str)]) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(30, 20, image::Rgb([1, 2, 3]));
        let owned: Vec<exif::Field> = fields
            .iter()
            .map(|(tag, v)| exif::Field {
                tag: *tag,
                ifd_num: exif::In::PRIMARY,
                value: exif::Value::Ascii(vec![v.as_bytes().to_vec()]),
            })
            .collect();
        jpeg_with_fields(&img, &owned)
    }

    /// `img` as a JPEG with an APP1 EXIF segment holding `fields`.
    pub(crate) fn jpeg_with_fields(img: &image::RgbImage, fields: &[exif::Field]) -> Vec<u8> {
        exif_jpeg(img, fields, None)
    }

    /// `img` as a JPEG whose EXIF embeds `thumb` (a JPEG) as cameras do.
    pub(crate) fn jpeg_with_thumbnail(img: &image::RgbImage, thumb: &[u8]) -> Vec<u8> {
        let f = exif::Field {
            tag: exif::Tag::Orientation,
            ifd_num: exif::In::PRIMARY,
            value: exif::Value::Short(vec![1]),
        };
        exif_jpeg(img, &[f], Some(thumb))
    }

    fn exif_jpeg(img: &image::RgbImage, fields: &[exif::Field], thumb: Option<&[u8]>) -> Vec<u8> {
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg).encode_image(img).unwrap();
        super::photos::with_exif(&jpeg, fields, thumb)
    }

    #[test]
    fn a_huge_exif_block_and_a_truncated_jpeg_are_probed_within_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let img = image::RgbImage::from_pixel(64, 48, image::Rgb([9, 9, 9]));
        let big = "x".repeat(60_000);
        let fields = [
            exif::Field {
                tag: exif::Tag::ImageDescription,
                ifd_num: exif::In::PRIMARY,
                value: exif::Value::Ascii(vec![big.into_bytes()]),
            },
            exif::Field {
                tag: exif::Tag::DateTime,
                ifd_num: exif::In::PRIMARY,
                value: exif::Value::Ascii(vec![b"2026:11:27 21:30:00".to_vec()]),
            },
        ];
        let path = dir.path().join("big-exif.jpg");
        std::fs::write(&path, jpeg_with_fields(&img, &fields)).unwrap();
        let p = probe(&path).unwrap();
        assert_eq!((p.width, p.height), (Some(64), Some(48)));
        assert_eq!(
            p.captured_at,
            Some(crate::domain::time::parse_rfc3339("2026-11-27T21:30:00Z").unwrap())
        );
        let whole = std::fs::read(&path).unwrap();
        let cut = dir.path().join("cut.jpg");
        std::fs::write(&cut, &whole[..whole.len() - 300]).unwrap();
        let p = probe(&cut).unwrap();
        assert_eq!(p.media, MediaType::Jpeg);
        // A thumbnail of a cut file either is made from what is there or
        // fails cleanly; it never takes the box down.
        let _ = crate::media::thumbnail::make(&cut);
    }

    #[test]
    fn the_capture_time_comes_from_exif_with_its_offset_when_given() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                vec![
                    (exif::Tag::DateTimeOriginal, "2026:11:27 21:30:00"),
                    (exif::Tag::OffsetTimeOriginal, "+01:00"),
                ],
                "2026-11-27T20:30:00Z",
            ),
            (vec![(exif::Tag::DateTimeOriginal, "2026:11:27 21:30:00")], "2026-11-27T21:30:00Z"),
        ];
        for (fields, want) in cases {
            let p = dir.path().join("exif.jpg");
            std::fs::write(&p, jpeg_with_exif(&fields)).unwrap();
            let probe = probe(&p).unwrap();
            assert_eq!(
                probe.captured_at,
                Some(crate::domain::time::parse_rfc3339(want).unwrap()),
                "{fields:?}"
            );
            assert_eq!((probe.width, probe.height), (Some(30), Some(20)));
        }
    }

    #[test]
    fn reads_image_size_and_refuses_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("x.png");
        image::RgbImage::new(40, 30).save(&png).unwrap();
        let p = probe(&png).unwrap();
        assert_eq!(
            (p.media, p.width, p.height, p.captured_at),
            (MediaType::Png, Some(40), Some(30), None)
        );
        let txt = dir.path().join("notes.jpg");
        std::fs::write(&txt, b"just some text pretending").unwrap();
        assert!(
            matches!(probe(&txt), Err(MediaError::Unsupported)),
            "the name does not make it a JPEG"
        );
    }
}
