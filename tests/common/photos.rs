//! Photos as cameras write them, for tests and the benchmark: a JPEG with
//! an APP1 EXIF segment (fields such as the capture time, and an embedded
//! preview JPEG). One builder, included by `media::probe`'s unit tests and
//! by the benchmark with `#[path]`.

/// `jpeg` (a whole JPEG file) with an APP1 EXIF segment right after its
/// start-of-image marker, holding `fields` and, when given, `thumb` (a
/// JPEG) as the embedded thumbnail.
pub fn with_exif(jpeg: &[u8], fields: &[exif::Field], thumb: Option<&[u8]>) -> Vec<u8> {
    let mut w = exif::experimental::Writer::new();
    for f in fields {
        w.push_field(f);
    }
    if let Some(t) = thumb {
        w.set_jpeg(t, exif::In::THUMBNAIL);
    }
    let mut tiff = std::io::Cursor::new(Vec::new());
    w.write(&mut tiff, false).expect("EXIF fields a test chose serialise");
    let tiff = tiff.into_inner();
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(&tiff);
    out.extend_from_slice(&jpeg[2..]);
    out
}
