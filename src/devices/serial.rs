//! Scanners that are not keyboards: CDC-ACM serial scanners (a code per
//! line) and HID point-of-sale scanners (usage page 0x8C, the
//! Honeywell/Zebra "HID POS" report layout).

use super::hid::clean_code;

/// Bytes from a serial scanner, split into codes at CR or LF.
#[derive(Default)]
pub struct SerialLineDecoder {
    buf: Vec<u8>,
    pub prefix: String,
    pub suffix: String,
}

impl SerialLineDecoder {
    pub fn new(prefix: &str, suffix: &str) -> Self {
        SerialLineDecoder { buf: Vec::new(), prefix: prefix.into(), suffix: suffix.into() }
    }

    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\r' || b == b'\n' {
                let line = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
                out.extend(clean_code(&line, &self.prefix, &self.suffix));
            } else if self.buf.len() < 4096 {
                self.buf.push(b);
            }
        }
        out
    }
}

/// Report id of the HID POS "scanned data" input report.
pub const POS_REPORT_ID: u8 = 0x02;

/// HID POS scanned-data reports: `[id 0x02, length, data (up to 56),
/// AIM symbology (3), 2 reserved, flags]`; flags bit 0 means "more data
/// follows in the next report" for codes longer than one report.
#[derive(Default)]
pub struct HidPosDecoder {
    data: Vec<u8>,
}

impl HidPosDecoder {
    pub fn feed(&mut self, report: &[u8]) -> Option<String> {
        if report.len() < 2 || report[0] != POS_REPORT_ID {
            return None;
        }
        let len = (report[1] as usize).min(56).min(report.len().saturating_sub(2));
        self.data.extend_from_slice(&report[2..2 + len]);
        let more = report.get(63).is_some_and(|f| f & 1 != 0);
        if more {
            return None;
        }
        let text = String::from_utf8_lossy(&std::mem::take(&mut self.data)).into_owned();
        clean_code(&text, "", "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_lines_become_codes_whatever_the_line_ending() {
        let mut d = SerialLineDecoder::default();
        assert!(d.feed(b"VB1:AB").is_empty());
        assert_eq!(d.feed(b"C\r\n]Q1SECRET-1\n\r\n"), ["VB1:ABC", "SECRET-1"]);
    }

    fn pos_report(data: &[u8], more: bool) -> [u8; 64] {
        let mut r = [0u8; 64];
        r[0] = POS_REPORT_ID;
        r[1] = data.len() as u8;
        r[2..2 + data.len()].copy_from_slice(data);
        r[58..61].copy_from_slice(b"]Q1");
        r[63] = more as u8;
        r
    }

    #[test]
    fn pos_reports_join_continued_data_and_ignore_other_reports() {
        let mut d = HidPosDecoder::default();
        let long = "X".repeat(56);
        assert_eq!(d.feed(&pos_report(long.as_bytes(), true)), None);
        assert_eq!(d.feed(&pos_report(b"YZ", false)).unwrap(), format!("{long}YZ"));
        assert_eq!(d.feed(&[0x01, 0, 0]), None, "another report id");
        assert_eq!(d.feed(&pos_report(b"SECRET-9", false)).as_deref(), Some("SECRET-9"));
    }
}
