//! ESC/POS for receipt printers: encoding a receipt (initialise, code
//! page, alignment, bold and size, a QR code with the `GS ( k` functions,
//! feed and cut) and reading real-time status (`DLE EOT n`) bit by bit.

use crate::domain::receipt::{render_text, Receipt};

const ESC: u8 = 0x1B;
const GS: u8 = 0x1D;
const DLE: u8 = 0x10;
const EOT: u8 = 0x04;

/// Windows-1252 (ESC t 16): Latin letters in names print; anything else
/// becomes '?'.
const CODE_PAGE_WPC1252: u8 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left = 0,
    Center = 1,
    Right = 2,
}

/// Builds an ESC/POS byte stream.
#[derive(Default)]
pub struct EscPos {
    out: Vec<u8>,
}

impl EscPos {
    pub fn new() -> Self {
        let mut p = EscPos::default();
        p.out.extend_from_slice(&[ESC, b'@', ESC, b't', CODE_PAGE_WPC1252]);
        p
    }

    pub fn align(&mut self, a: Align) -> &mut Self {
        self.out.extend_from_slice(&[ESC, b'a', a as u8]);
        self
    }

    pub fn bold(&mut self, on: bool) -> &mut Self {
        self.out.extend_from_slice(&[ESC, b'E', on as u8]);
        self
    }

    /// Character size: width and height multipliers 1–8.
    pub fn size(&mut self, width: u8, height: u8) -> &mut Self {
        let n = ((width.clamp(1, 8) - 1) << 4) | (height.clamp(1, 8) - 1);
        self.out.extend_from_slice(&[GS, b'!', n]);
        self
    }

    /// Text in the printer's code page, then a line feed.
    pub fn line(&mut self, text: &str) -> &mut Self {
        self.out.extend(text.chars().map(|c| match c as u32 {
            0x20..=0x7E | 0xA0..=0xFF => c as u32 as u8,
            _ => b'?',
        }));
        self.out.push(b'\n');
        self
    }

    /// A QR code (model 2, error correction M) holding `data`.
    pub fn qr(&mut self, data: &[u8], module: u8) -> &mut Self {
        let func = |out: &mut Vec<u8>, body: &[u8]| {
            let len = body.len() as u16;
            out.extend_from_slice(&[GS, b'(', b'k', (len & 0xFF) as u8, (len >> 8) as u8]);
            out.extend_from_slice(body);
        };
        func(&mut self.out, &[49, 65, 50, 0]); // fn 165: model 2
        func(&mut self.out, &[49, 67, module.clamp(1, 16)]); // fn 167: module size
        func(&mut self.out, &[49, 69, 49]); // fn 169: error correction M
        let mut store = vec![49, 80, 48]; // fn 180: store data
        store.extend_from_slice(data);
        func(&mut self.out, &store);
        func(&mut self.out, &[49, 81, 48]); // fn 181: print
        self
    }

    /// Feeds `lines` and makes a partial cut.
    pub fn cut(&mut self, lines: u8) -> &mut Self {
        self.out.extend_from_slice(&[GS, b'V', 65, lines]);
        self
    }

    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

/// A receipt as the printer gets it: the event name large and bold, the
/// text body, the proof of purchase as a QR code, then a cut.
pub fn encode_receipt(r: &Receipt, width: usize, zone: &str) -> Vec<u8> {
    let text = render_text(r, width, zone);
    let mut lines = text.lines();
    let mut p = EscPos::new();
    p.align(Align::Center).bold(true).size(1, 2);
    if let Some(title) = lines.next() {
        p.line(title.trim());
    }
    p.size(1, 1).bold(false).align(Align::Left);
    for l in lines.take_while(|l| !l.contains("Proof of purchase")) {
        p.line(l);
    }
    p.align(Align::Center)
        .line("Proof of purchase")
        .qr(r.proof.as_bytes(), 4)
        .line(&r.order_id)
        .align(Align::Left);
    p.cut(3).finish()
}

/// The QR payloads stored in an ESC/POS stream (`GS ( k` fn 180), read
/// back by their length fields: a check that what the printer is told to
/// print is exactly the proof code.
pub fn qr_payloads(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 8 <= stream.len() {
        if stream[i..i + 3] == [GS, b'(', b'k'] {
            let len = stream[i + 3] as usize | (stream[i + 4] as usize) << 8;
            let body = &stream[i + 5..(i + 5 + len).min(stream.len())];
            if body.len() >= 3 && body[..3] == [49, 80, 48] {
                out.push(body[3..].to_vec());
            }
            i += 5 + len;
        } else {
            i += 1;
        }
    }
    out
}

/// Which real-time status to ask for with `DLE EOT n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusKind {
    Printer = 1,
    OfflineCause = 2,
    ErrorCause = 3,
    PaperSensor = 4,
}

pub fn status_request(kind: StatusKind) -> [u8; 3] {
    [DLE, EOT, kind as u8]
}

/// What the printer said, each flag from its own bit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PrinterStatus {
    pub offline: bool,
    pub cover_open: bool,
    pub paper_out: bool,
    pub paper_near_end: bool,
    pub error: bool,
}

impl PrinterStatus {
    /// Whether a job can print now.
    pub fn ready(&self) -> bool {
        !(self.offline || self.cover_open || self.paper_out || self.error)
    }

    /// What staff should do, if anything.
    pub fn advice(&self) -> Option<&'static str> {
        if self.paper_out {
            Some("printer out of paper: load a roll, the receipt will print")
        } else if self.cover_open {
            Some("printer cover open: close it, the receipt will print")
        } else if self.error {
            Some("printer error: check for a paper jam, then switch it off and on")
        } else if self.offline {
            Some("printer offline: check it is switched on")
        } else if self.paper_near_end {
            Some("printer paper running low: have a roll ready")
        } else {
            None
        }
    }

    /// Folds one `DLE EOT n` reply into the status. A byte whose fixed bits
    /// (bit 1 and bit 4 set, bits 0 and 7 clear) are wrong is not a status
    /// reply and is ignored: `false`.
    pub fn apply(&mut self, kind: StatusKind, byte: u8) -> bool {
        if byte & 0b1001_0011 != 0b0001_0010 {
            return false;
        }
        let bit = |n: u8| byte & (1 << n) != 0;
        match kind {
            StatusKind::Printer => self.offline = bit(3),
            StatusKind::OfflineCause => {
                self.cover_open = bit(2);
                self.paper_out |= bit(5);
                self.error = bit(6);
            }
            StatusKind::ErrorCause => self.error = bit(3) || bit(5) || bit(6),
            StatusKind::PaperSensor => {
                self.paper_near_end = bit(2) || bit(3);
                self.paper_out = bit(5) || bit(6);
            }
        }
        true
    }
}

/// USB printer class GET_PORT_STATUS byte.
pub fn port_status(byte: u8) -> PrinterStatus {
    PrinterStatus {
        paper_out: byte & 0x20 != 0,
        offline: byte & 0x10 == 0,
        error: byte & 0x08 == 0,
        ..Default::default()
    }
}

/// USB printer class GET_DEVICE_ID: a big-endian length (including its
/// two bytes), then IEEE 1284 `KEY:value;` pairs.
pub fn device_id(reply: &[u8]) -> Vec<(String, String)> {
    if reply.len() < 2 {
        return vec![];
    }
    let len = (u16::from_be_bytes([reply[0], reply[1]]) as usize).clamp(2, reply.len());
    String::from_utf8_lossy(&reply[2..len])
        .split(';')
        .filter_map(|kv| kv.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::keys::signing_key_from_bytes;

    #[test]
    fn a_receipt_starts_initialised_ends_cut_and_carries_its_proof_as_a_qr_code() {
        let r = crate::domain::receipt::tests::sample();
        let bytes = encode_receipt(&r, 42, "UTC");
        assert_eq!(&bytes[..5], &[0x1B, b'@', 0x1B, b't', 16]);
        assert_eq!(&bytes[bytes.len() - 4..], &[0x1D, b'V', 65, 3]);
        assert!(bytes.windows(9).any(|w| w == b"23.80 EUR"));
        // The stored QR payload, found by its pL pH length field, is the proof.
        let payloads = qr_payloads(&bytes);
        assert_eq!(payloads, vec![r.proof.as_bytes().to_vec()]);
        let store = bytes
            .windows(8)
            .position(|w| w[..3] == [0x1D, b'(', b'k'] && w[5..8] == [49, 80, 48])
            .unwrap();
        let len = bytes[store + 3] as usize | (bytes[store + 4] as usize) << 8;
        assert_eq!(len, r.proof.len() + 3, "pL pH count the three function bytes");
        // Rendered as a QR symbol and scanned back, it still verifies.
        let code =
            qrcode::QrCode::with_error_correction_level(&payloads[0], qrcode::EcLevel::M).unwrap();
        let w = code.width();
        let colors = code.to_colors();
        let scale = 4;
        let side = (w + 8) * scale;
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(side, side, |x, y| {
            let (mx, my) = ((x / scale) as isize - 4, (y / scale) as isize - 4);
            let dark = mx >= 0
                && my >= 0
                && (mx as usize) < w
                && (my as usize) < w
                && colors[my as usize * w + mx as usize] == qrcode::Color::Dark;
            if dark {
                0
            } else {
                255
            }
        });
        let scanned = img.detect_grids()[0].decode().unwrap().1;
        let keys =
            crate::domain::keys::TrustedKeys::new(
                [signing_key_from_bytes([4; 32]).verifying_key()],
            );
        assert_eq!(crate::domain::receipt::verify_proof(&scanned, &keys).unwrap().order_id, "O-1");
    }

    #[test]
    fn text_outside_the_code_page_becomes_a_question_mark() {
        let bytes = EscPos::new().line("Zoë → €").finish();
        assert_eq!(&bytes[5..], b"Zo\xEB ? ?\n");
    }

    #[test]
    fn status_bits_table() {
        // (request, reply byte, expected status)
        let s = |f: fn(&mut PrinterStatus)| {
            let mut p = PrinterStatus::default();
            f(&mut p);
            p
        };
        let cases = [
            (StatusKind::Printer, 0x12, s(|_| {})),
            (StatusKind::Printer, 0x1A, s(|p| p.offline = true)),
            (StatusKind::OfflineCause, 0x16, s(|p| p.cover_open = true)),
            (StatusKind::OfflineCause, 0x32, s(|p| p.paper_out = true)),
            (StatusKind::OfflineCause, 0x52, s(|p| p.error = true)),
            (StatusKind::PaperSensor, 0x1E, s(|p| p.paper_near_end = true)),
            (StatusKind::PaperSensor, 0x72, s(|p| p.paper_out = true)),
            (
                StatusKind::PaperSensor,
                0x7E,
                s(|p| {
                    p.paper_out = true;
                    p.paper_near_end = true
                }),
            ),
        ];
        for (kind, byte, want) in cases {
            let mut got = PrinterStatus::default();
            assert!(got.apply(kind, byte), "{byte:#04x} is a status reply");
            assert_eq!(got, want, "{kind:?} {byte:#04x}");
        }
        let mut p = PrinterStatus::default();
        assert!(!p.apply(StatusKind::Printer, 0xFF), "fixed bits wrong: not a status byte");
        assert!(!p.apply(StatusKind::Printer, 0x00));
        assert_eq!(status_request(StatusKind::PaperSensor), [0x10, 0x04, 4]);
        assert!(!s(|p| p.paper_out = true).ready());
        assert!(s(|p| p.paper_near_end = true).ready(), "near end still prints");
        assert!(s(|p| p.paper_out = true).advice().unwrap().contains("load a roll"));
    }

    #[test]
    fn printer_class_replies() {
        assert_eq!(port_status(0x18), PrinterStatus::default());
        assert_eq!(
            port_status(0x30),
            PrinterStatus { paper_out: true, error: true, ..Default::default() }
        );
        assert!(port_status(0x08).offline);
        let mut reply = vec![0, 0];
        reply.extend_from_slice(b"MFG:usbvm;CMD:ESC/POS;MDL:usbvm printer;CLS:PRINTER;");
        let n = reply.len() as u16;
        reply[..2].copy_from_slice(&n.to_be_bytes());
        reply.extend_from_slice(b"garbage after the length");
        let id = device_id(&reply);
        assert_eq!(id[0], ("MFG".into(), "usbvm".into()));
        assert_eq!(id[1], ("CMD".into(), "ESC/POS".into()));
        assert_eq!(id.len(), 4);
    }
}
