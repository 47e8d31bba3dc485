//! HID boot-keyboard reports from a barcode scanner in keyboard mode,
//! decoded into scanned codes: US layout with shift, only newly pressed
//! keys count (a held key is one character), Enter or keypad Enter ends a
//! code, an inter-key timeout ends a code whose scanner sends no suffix,
//! an AIM symbology identifier (`]Q1`, `]C0`…) is stripped, and a
//! configured prefix and suffix are removed.

use std::time::{Duration, Instant};

/// Report byte 0 bits for the two shift keys.
const LEFT_SHIFT: u8 = 0x02;
const RIGHT_SHIFT: u8 = 0x20;
const ENTER: u8 = 0x28;
const KEYPAD_ENTER: u8 = 0x58;

/// US layout: (usage, unshifted, shifted).
fn key_char(usage: u8, shift: bool) -> Option<char> {
    let c = match usage {
        0x04..=0x1d => {
            let c = (b'a' + usage - 0x04) as char;
            return Some(if shift { c.to_ascii_uppercase() } else { c });
        }
        0x1e..=0x26 => {
            let digit = (b'1' + usage - 0x1e) as char;
            let shifted = ['!', '@', '#', '$', '%', '^', '&', '*', '('][(usage - 0x1e) as usize];
            return Some(if shift { shifted } else { digit });
        }
        0x27 => ('0', ')'),
        0x2c => (' ', ' '),
        0x2d => ('-', '_'),
        0x2e => ('=', '+'),
        0x2f => ('[', '{'),
        0x30 => (']', '}'),
        0x31 => ('\\', '|'),
        0x33 => (';', ':'),
        0x34 => ('\'', '"'),
        0x35 => ('`', '~'),
        0x36 => (',', '<'),
        0x37 => ('.', '>'),
        0x38 => ('/', '?'),
        0x2b => ('\t', '\t'),
        // Keypad: digits and operators, unaffected by shift.
        0x54 => ('/', '/'),
        0x55 => ('*', '*'),
        0x56 => ('-', '-'),
        0x57 => ('+', '+'),
        0x59..=0x61 => {
            let d = (b'1' + usage - 0x59) as char;
            (d, d)
        }
        0x62 => ('0', '0'),
        0x63 => ('.', '.'),
        _ => return None,
    };
    Some(if shift { c.1 } else { c.0 })
}

/// The character a scanner must "type" for `c`: (modifiers, usage).
/// The inverse of the decoder, for tests and the device simulator.
pub fn char_to_report(c: char) -> Option<(u8, u8)> {
    if c == '\n' {
        return Some((0, ENTER));
    }
    for usage in 0x04..=0x38u8 {
        for (shift, mods) in [(false, 0), (true, LEFT_SHIFT)] {
            if key_char(usage, shift) == Some(c) {
                return Some((mods, usage));
            }
        }
    }
    None
}

#[derive(Clone, Debug, Default)]
pub struct DecoderConfig {
    /// Removed from the start of a code when present (set on the scanner).
    pub prefix: String,
    /// Removed from the end of a code when present.
    pub suffix: String,
    /// A code ends after this long without a key (for scanners set to send
    /// no Enter). `None`: only Enter ends a code.
    pub inter_key_timeout: Option<Duration>,
}

pub struct BootKeyboardDecoder {
    config: DecoderConfig,
    pressed: [u8; 6],
    text: String,
    last_key: Option<Instant>,
}

impl BootKeyboardDecoder {
    pub fn new(config: DecoderConfig) -> Self {
        BootKeyboardDecoder { config, pressed: [0; 6], text: String::new(), last_key: None }
    }

    /// Feeds one input report; returns a finished code if this report
    /// ended one. Reports shorter than 8 bytes are ignored.
    pub fn feed(&mut self, report: &[u8], now: Instant) -> Option<String> {
        let mut done = self.timed_out(now);
        if report.len() < 8 {
            return done;
        }
        let shift = report[0] & (LEFT_SHIFT | RIGHT_SHIFT) != 0;
        let keys: [u8; 6] = report[2..8].try_into().expect("length checked");
        // 0x01 in every slot is ErrorRollOver: too many keys; keep state.
        if keys.iter().all(|&k| k == 0x01) {
            return done;
        }
        let before = self.pressed;
        for &k in keys.iter().filter(|&&k| k > 0x03 && !before.contains(&k)) {
            self.last_key = Some(now);
            if k == ENTER || k == KEYPAD_ENTER {
                if let Some(code) = self.finish() {
                    done = Some(code);
                }
            } else if let Some(c) = key_char(k, shift) {
                self.text.push(c);
            }
        }
        self.pressed = keys;
        done
    }

    /// A code ended by the inter-key timeout, if one is due at `now`.
    pub fn timed_out(&mut self, now: Instant) -> Option<String> {
        let t = self.config.inter_key_timeout?;
        if self.last_key.is_some_and(|at| now.duration_since(at) >= t) && !self.text.is_empty() {
            return self.finish();
        }
        None
    }

    fn finish(&mut self) -> Option<String> {
        let raw = std::mem::take(&mut self.text);
        clean_code(&raw, &self.config.prefix, &self.config.suffix)
    }
}

/// Strips an AIM symbology identifier (`]` + letter + digit/letter), then
/// the configured prefix and suffix, then line-end characters.
pub fn clean_code(raw: &str, prefix: &str, suffix: &str) -> Option<String> {
    let mut s = raw.trim_matches(|c| c == '\r' || c == '\n');
    let b = s.as_bytes();
    if b.len() >= 3 && b[0] == b']' && b[1].is_ascii_alphabetic() && b[2].is_ascii_alphanumeric() {
        s = &s[3..];
    }
    if !prefix.is_empty() {
        s = s.strip_prefix(prefix).unwrap_or(s);
    }
    if !suffix.is_empty() {
        s = s.strip_suffix(suffix).unwrap_or(s);
    }
    (!s.is_empty()).then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(text: &str) -> Vec<[u8; 8]> {
        text.chars()
            .flat_map(|c| {
                let (m, k) = char_to_report(c).unwrap_or_else(|| panic!("cannot type {c:?}"));
                [[m, 0, k, 0, 0, 0, 0, 0], [0; 8]]
            })
            .collect()
    }

    fn decode(reports: &[[u8; 8]], config: DecoderConfig) -> Vec<String> {
        let mut d = BootKeyboardDecoder::new(config);
        let now = Instant::now();
        reports.iter().filter_map(|r| d.feed(r, now)).collect()
    }

    #[test]
    fn a_signed_ticket_code_round_trips_through_key_reports() {
        let code = "VB1:$50RT939I*/5560Z$0-/5GG66L6LTDT-GZLK5ZWD*W8GV8EOYK";
        assert_eq!(decode(&typed(&format!("{code}\n")), DecoderConfig::default()), [code]);
    }

    #[test]
    fn decoder_table() {
        let cfg = |prefix: &str, suffix: &str| DecoderConfig {
            prefix: prefix.into(),
            suffix: suffix.into(),
            inter_key_timeout: None,
        };
        let cases: Vec<(&str, DecoderConfig, Vec<&str>)> = vec![
            ("abc\n", cfg("", ""), vec!["abc"]),
            ("]Q1VBR-12AB\n", cfg("", ""), vec!["VBR-12AB"]),
            ("]C0123\n", cfg("", ""), vec!["123"]),
            ("#X#code!\n", cfg("#X#", "!"), vec!["code"]),
            ("one\ntwo\n", cfg("", ""), vec!["one", "two"]),
            ("Mixed Case: a/b?\n", cfg("", ""), vec!["Mixed Case: a/b?"]),
            ("\n\n", cfg("", ""), vec![]),
        ];
        for (text, config, want) in cases {
            assert_eq!(decode(&typed(text), config), want, "{text:?}");
        }
    }

    #[test]
    fn only_newly_pressed_keys_count_and_keypad_enter_ends_a_code() {
        let a = 0x04;
        let b = 0x05;
        let reports = [
            [0, 0, a, 0, 0, 0, 0, 0],
            [0, 0, a, 0, 0, 0, 0, 0], // held: not a second 'a'
            [0, 0, a, b, 0, 0, 0, 0], // b pressed while a held
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0x20, 0, a, 0, 0, 0, 0, 0],          // right shift
            [0, 0, 0x1, 0x1, 0x1, 0x1, 0x1, 0x1], // rollover error: ignored
            [0, 0, KEYPAD_ENTER, 0, 0, 0, 0, 0],
        ];
        assert_eq!(decode(&reports, DecoderConfig::default()), ["abA"]);
    }

    #[test]
    fn a_scanner_without_enter_is_ended_by_the_inter_key_timeout() {
        let mut d = BootKeyboardDecoder::new(DecoderConfig {
            inter_key_timeout: Some(Duration::from_millis(50)),
            ..Default::default()
        });
        let t0 = Instant::now();
        for r in typed("XYZ") {
            assert_eq!(d.feed(&r, t0), None);
        }
        assert_eq!(d.timed_out(t0 + Duration::from_millis(10)), None);
        assert_eq!(d.timed_out(t0 + Duration::from_millis(60)).as_deref(), Some("XYZ"));
        assert_eq!(d.timed_out(t0 + Duration::from_millis(200)), None, "once");
    }
}
