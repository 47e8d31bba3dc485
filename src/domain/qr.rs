//! QR codes for ticket codes, rendered as PNG bytes in memory (the caller
//! decides whether they go to a file, an HTTP answer or a printer).

use qrcode::{Color, EcLevel, QrCode};

/// Pixels per QR module; with the 4-module quiet zone a version 8 code
/// (49 modules) is 228 px square, sharp enough for phone screens and print.
const SCALE: usize = 4;
const QUIET: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("text is too long for a QR code: {0}")]
    TooLong(String),
    #[error("PNG encoding failed: {0}")]
    Png(String),
}

/// The QR version (1–40) that `text` needs at error correction M.
pub fn version_for(text: &str) -> Result<i16, QrError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| QrError::TooLong(e.to_string()))?;
    match code.version() {
        qrcode::Version::Normal(v) | qrcode::Version::Micro(v) => Ok(v),
    }
}

/// Renders `text` for a terminal: two modules per character cell with
/// Unicode half blocks, light on dark as terminals usually are inverted
/// for scanning, with the quiet zone phones need.
pub fn terminal(text: &str) -> Result<String, QrError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L)
        .map_err(|e| QrError::TooLong(e.to_string()))?;
    let n = code.width();
    let colors = code.to_colors();
    let dark = |x: isize, y: isize| {
        x >= 0
            && y >= 0
            && (x as usize) < n
            && (y as usize) < n
            && colors[y as usize * n + x as usize] == Color::Dark
    };
    let q = 2isize;
    let mut out = String::new();
    let mut y = -q;
    while y < n as isize + q {
        for x in -q..n as isize + q {
            // Light modules are drawn as blocks so the code reads on a dark
            // terminal background.
            out.push(match (!dark(x, y), !dark(x, y + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
        y += 2;
    }
    Ok(out)
}

/// Renders `text` as a black-on-white 8-bit greyscale PNG at level M.
pub fn png(text: &str) -> Result<Vec<u8>, QrError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| QrError::TooLong(e.to_string()))?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, c) in colors.iter().enumerate() {
        if *c == Color::Dark {
            let (mx, my) = (i % modules + QUIET, i / modules + QUIET);
            for y in my * SCALE..(my + 1) * SCALE {
                pixels[y * side + mx * SCALE..y * side + (mx + 1) * SCALE].fill(0);
            }
        }
    }
    let mut out = Vec::with_capacity(side * side / 8);
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut out),
        &pixels,
        side as u32,
        side as u32,
        image::ExtendedColorType::L8,
    )
    .map_err(|e| QrError::Png(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_png_of_the_expected_size() {
        let bytes = png("VB1:HELLO").unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let img = image::load_from_memory(&bytes).unwrap();
        let modules = 21 + 4 * (version_for("VB1:HELLO").unwrap() as u32 - 1);
        assert_eq!(img.width(), (modules + 8) * 4);
    }
}
