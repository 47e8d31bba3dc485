//! Small JPEG thumbnails for the creator dashboard. JPEG, PNG and WebP
//! are decoded in pure Rust; HEIC and videos get no thumbnail (no pure-Rust
//! HEVC decoder; the dashboard shows a placeholder).

use super::MediaError;
use crate::domain::capture::MediaType;
use std::path::Path;

/// Longest side of a thumbnail, in pixels.
pub const MAX_SIDE: u32 = 320;

pub fn can_thumbnail(media: MediaType) -> bool {
    matches!(media, MediaType::Jpeg | MediaType::Png | MediaType::Webp)
}

/// Decodes `path` within memory limits fit for a Pi and returns a JPEG.
pub fn make(path: &Path) -> Result<Vec<u8>, MediaError> {
    let err = |e: image::ImageError| MediaError::Thumbnail(e.to_string());
    let mut reader = image::ImageReader::open(path).map_err(|e| MediaError::Thumbnail(e.to_string()))?.with_guessed_format().map_err(|e| MediaError::Thumbnail(e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(16_384);
    limits.max_image_height = Some(16_384);
    limits.max_alloc = Some(192 * 1024 * 1024);
    reader.limits(limits);
    let img = reader.decode().map_err(err)?;
    let thumb = img.thumbnail(MAX_SIDE, MAX_SIDE).to_rgb8();
    let mut out = Vec::with_capacity(16 * 1024);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 75).encode_image(&thumb).map_err(err)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_fit_the_box_and_keep_the_aspect() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.png");
        image::RgbImage::from_pixel(1200, 600, image::Rgb([200, 30, 30])).save(&p).unwrap();
        let jpeg = make(&p).unwrap();
        let t = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((t.width(), t.height()), (320, 160));
        assert_eq!(&jpeg[..3], &[0xFF, 0xD8, 0xFF]);
    }
}
