//! Tickets issued by pretix, read offline. An event whose secrets use
//! pretix's signature scheme 1 (`pretix_sig1`) gives each ticket a QR text
//! that carries what it admits and an Ed25519 signature over that, so a
//! ticket sold after the box last spoke to pretix still proves itself:
//!
//! base64, then reversed (so secrets do not all start alike), of
//! `0x01 | payload length (u16 BE) | signature length (u16 BE) | payload |
//! signature`, where the payload is the protobuf message
//! `Ticket { string seed = 1; int64 item = 2; int64 variation = 3;
//! int64 subevent = 4; optional int64 validFromUnixTime = 5;
//! optional int64 validUntilUnixTime = 6; }` and the signature is Ed25519
//! over the payload's bytes. The event's public key is published (its
//! `valid_keys.pretix_sig1`) as base64 of a PEM SubjectPublicKeyInfo.

use super::ids::{TicketId, TierId};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};

/// What a signed pretix ticket says of itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sig1Ticket {
    /// Random per ticket: what makes two tickets of one item differ.
    pub seed: String,
    /// pretix's item id.
    pub item: i64,
    /// pretix's variation id; 0 for none.
    pub variation: i64,
    /// pretix's date (subevent) id; 0 for none.
    pub subevent: i64,
    /// Unix seconds; `None` when pretix set no limit (it writes 0).
    pub valid_from: Option<i64>,
    pub valid_until: Option<i64>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Sig1Error {
    /// Not in the scheme's shape: a classic random secret, or another code.
    #[error("not a pretix signed ticket")]
    NotSig1,
    /// In the shape, but no key of the event signed it (forged, or
    /// another event's ticket).
    #[error("the ticket's signature is not one of this event's pretix keys")]
    BadSignature,
    #[error("a pretix signed ticket whose contents cannot be read: {0}")]
    Malformed(&'static str),
}

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the key's
/// 32 bytes follow it.
const ED25519_SPKI: [u8; 12] =
    [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// An event's key as pretix's API lists it in `valid_keys.pretix_sig1`.
pub fn sig1_key(listed: &str) -> Result<VerifyingKey, String> {
    let pem =
        B64.decode(listed.trim()).map_err(|e| format!("a pretix_sig1 key is not base64 ({e})"))?;
    let pem = String::from_utf8(pem).map_err(|_| "a pretix_sig1 key is not a PEM text")?;
    let body: String =
        pem.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("-----")).collect();
    if !pem.contains("-----BEGIN PUBLIC KEY-----") {
        return Err("a pretix_sig1 key is not a PEM public key".into());
    }
    let der =
        B64.decode(body).map_err(|e| format!("a pretix_sig1 key's PEM is not base64 ({e})"))?;
    let raw = der
        .strip_prefix(&ED25519_SPKI[..])
        .filter(|k| k.len() == 32)
        .ok_or("a pretix_sig1 key is not an Ed25519 public key")?;
    VerifyingKey::from_bytes(raw.try_into().expect("32 bytes"))
        .map_err(|e| format!("a pretix_sig1 key is not a valid Ed25519 point ({e})"))
}

/// The box's ticket id for a pretix signed ticket: its seed, which the
/// secret carries, so the same ticket has the same id whether the box
/// learnt of it from an import or from its signature alone.
pub fn signed_ticket_id(seed: &str) -> TicketId {
    TicketId(format!("pxs-{seed}"))
}

/// The box's ticket id for a pretix position with a random secret.
pub fn position_ticket_id(position: i64) -> TicketId {
    TicketId(format!("pxp-{position}"))
}

/// Whether a ticket id is one of pretix's (`signed_ticket_id`,
/// `position_ticket_id`).
pub fn is_pretix_ticket(id: &TicketId) -> bool {
    id.as_str().starts_with("pxs-") || id.as_str().starts_with("pxp-")
}

/// The tier of a pretix item (check-in lists filter by item).
pub fn item_tier(item: i64) -> TierId {
    TierId(format!("px{item}"))
}

/// The pretix item of a tier made by `item_tier`.
pub fn tier_item(tier: &TierId) -> Option<i64> {
    tier.as_str().strip_prefix("px")?.parse().ok()
}

/// Reads and checks a scanned text against the event's keys.
pub fn parse_sig1(text: &str, keys: &[VerifyingKey]) -> Result<Sig1Ticket, Sig1Error> {
    // The scheme's texts are base64 only; anything else is not one.
    if text.len() < 8 || !text.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)) {
        return Err(Sig1Error::NotSig1);
    }
    let reversed: String = text.chars().rev().collect();
    let raw = B64.decode(reversed).map_err(|_| Sig1Error::NotSig1)?;
    if raw.len() < 5 || raw[0] != 0x01 {
        return Err(Sig1Error::NotSig1);
    }
    let payload_len = u16::from_be_bytes([raw[1], raw[2]]) as usize;
    let sig_len = u16::from_be_bytes([raw[3], raw[4]]) as usize;
    if raw.len() != 5 + payload_len + sig_len {
        return Err(Sig1Error::NotSig1);
    }
    let payload = &raw[5..5 + payload_len];
    let signature = Signature::from_slice(&raw[5 + payload_len..])
        .map_err(|_| Sig1Error::Malformed("the signature is not 64 bytes"))?;
    if !keys.iter().any(|k| k.verify(payload, &signature).is_ok()) {
        return Err(Sig1Error::BadSignature);
    }
    decode_ticket(payload)
}

/// The protobuf `Ticket`: field 1 a string, fields 2–6 int64 varints;
/// fields this box does not know are skipped by their wire type.
fn decode_ticket(mut b: &[u8]) -> Result<Sig1Ticket, Sig1Error> {
    let mut t = Sig1Ticket {
        seed: String::new(),
        item: 0,
        variation: 0,
        subevent: 0,
        valid_from: None,
        valid_until: None,
    };
    while !b.is_empty() {
        let tag = varint(&mut b)?;
        let (field, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => {
                let v = varint(&mut b)? as i64;
                let time = (v != 0).then_some(v);
                match field {
                    2 => t.item = v,
                    3 => t.variation = v,
                    4 => t.subevent = v,
                    5 => t.valid_from = time,
                    6 => t.valid_until = time,
                    _ => {}
                }
            }
            2 => {
                let len = varint(&mut b)? as usize;
                let bytes =
                    b.get(..len).ok_or(Sig1Error::Malformed("a field runs past the end"))?;
                if field == 1 {
                    t.seed = String::from_utf8(bytes.to_vec())
                        .map_err(|_| Sig1Error::Malformed("the seed is not text"))?;
                }
                b = &b[len..];
            }
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                b = b.get(n..).ok_or(Sig1Error::Malformed("a field runs past the end"))?;
            }
            _ => return Err(Sig1Error::Malformed("an unknown protobuf wire type")),
        }
    }
    if t.item <= 0 || t.item > 9_999_999_999 {
        return Err(Sig1Error::Malformed("no item, or an item id past ten digits"));
    }
    if t.seed.is_empty() || t.seed.len() > 20 || !t.seed.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(Sig1Error::Malformed("the seed is not 1 to 20 letters and digits"));
    }
    Ok(t)
}

fn varint(b: &mut &[u8]) -> Result<u64, Sig1Error> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&byte, rest) =
            b.split_first().ok_or(Sig1Error::Malformed("a number runs past the end"))?;
        *b = rest;
        v |= ((byte & 0x7f) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(Sig1Error::Malformed("a number longer than ten bytes"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    /// A secret as pretix makes it (fields in order, zeros left out).
    pub(crate) fn secret(
        key: &SigningKey,
        seed: &str,
        item: u64,
        variation: u64,
        until: u64,
    ) -> String {
        let mut p = vec![0x0a, seed.len() as u8];
        p.extend_from_slice(seed.as_bytes());
        for (field, v) in [(2u64, item), (3, variation), (6, until)] {
            if v != 0 {
                put_varint(&mut p, field << 3);
                put_varint(&mut p, v);
            }
        }
        let sig = key.sign(&p).to_bytes();
        let mut raw = vec![1];
        raw.extend_from_slice(&(p.len() as u16).to_be_bytes());
        raw.extend_from_slice(&(sig.len() as u16).to_be_bytes());
        raw.extend_from_slice(&p);
        raw.extend_from_slice(&sig);
        B64.encode(raw).chars().rev().collect()
    }

    pub(crate) fn listed(key: &VerifyingKey) -> String {
        let mut der = ED25519_SPKI.to_vec();
        der.extend_from_slice(key.as_bytes());
        let pem =
            format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", B64.encode(der));
        B64.encode(pem)
    }

    #[test]
    fn a_signed_ticket_reads_with_its_events_key_and_only_with_it() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        let public = sig1_key(&listed(&key.verifying_key())).unwrap();
        assert_eq!(public, key.verifying_key());
        let s = secret(&key, "h7Xq2pLm9", 12, 3, 1_800_000_000);
        assert_eq!(
            parse_sig1(&s, &[public]),
            Ok(Sig1Ticket {
                seed: "h7Xq2pLm9".into(),
                item: 12,
                variation: 3,
                subevent: 0,
                valid_from: None,
                valid_until: Some(1_800_000_000),
            })
        );
        assert_eq!(parse_sig1(&s, &[other.verifying_key()]), Err(Sig1Error::BadSignature));
        // One character changed: the signature no longer holds (or the
        // text no longer has the scheme's shape).
        let mut tampered: Vec<char> = s.chars().collect();
        let i = tampered.len() - 12;
        tampered[i] = if tampered[i] == 'A' { 'B' } else { 'A' };
        let tampered: String = tampered.into_iter().collect();
        assert!(parse_sig1(&tampered, &[public]).is_err());
    }

    #[test]
    fn other_codes_are_not_taken_for_pretix_tickets() {
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
        for text in
            ["", "SECRET-0001", "qxk2k9d8t3wzbm6yfjx4ay7hdbq3kc2v", "VB1:ABC", "AAAAAAAAAAAA"]
        {
            assert_eq!(parse_sig1(text, &[key]), Err(Sig1Error::NotSig1), "{text}");
        }
        assert!(sig1_key("not base64!").is_err());
        assert!(sig1_key(
            &B64.encode("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
        )
        .is_err());
    }
}
