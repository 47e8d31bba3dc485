//! A binary-to-text encoding over the QR alphanumeric character set minus
//! the space: 44 symbols, three characters for every two bytes (44³ ≥ 2¹⁶)
//! and two for a trailing byte, as dense as RFC 9285 Base45.
//!
//! Why not Base45 itself: its alphabet includes the space, and a space at
//! the end of a code is trimmed by too many scanners, forms and terminals.

const ALPHABET: &[u8; 44] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ$%*+-./:";

fn value(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u32)
}

pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() / 2 * 3 + 2);
    for chunk in bytes.chunks(2) {
        let (mut n, digits) = match *chunk {
            [a, b] => ((a as u32) << 8 | b as u32, 3),
            [a] => (a as u32, 2),
            _ => unreachable!("chunks(2) yields one or two bytes"),
        };
        for _ in 0..digits {
            out.push(ALPHABET[(n % 44) as usize] as char);
            n /= 44;
        }
    }
    out
}

pub fn decode(text: &str) -> Option<Vec<u8>> {
    let t = text.as_bytes();
    if t.len() % 3 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(t.len() / 3 * 2 + 1);
    for chunk in t.chunks(3) {
        let mut n = 0u32;
        for &c in chunk.iter().rev() {
            n = n * 44 + value(c)?;
        }
        if chunk.len() == 3 {
            if n > 0xFFFF {
                return None;
            }
            out.push((n >> 8) as u8);
            out.push(n as u8);
        } else {
            if n > 0xFF {
                return None;
            }
            out.push(n as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length_and_edge_value() {
        let samples: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![255],
            vec![0, 0],
            vec![255, 255],
            (0..=255).collect(),
            (0..=254).rev().collect(),
        ];
        for s in samples {
            let text = encode(&s);
            assert!(!text.contains(' '));
            assert_eq!(decode(&text).as_deref(), Some(&s[..]), "{text}");
        }
    }

    #[test]
    fn refuses_impossible_text() {
        assert_eq!(decode("A"), None, "one dangling character");
        assert_eq!(decode("ab0"), None, "lower case is not in the alphabet");
        assert_eq!(decode("A B"), None, "space is not in the alphabet");
        assert_eq!(decode(":::"), None, "value above 0xFFFF");
        assert_eq!(decode("::"), None, "value above 0xFF");
    }
}
