//! Ticket codes: what a QR code on a ticket says, and how to read it.
//!
//! Two kinds exist. A **signed code** (`VB1:` then base44 text) carries a
//! compact binary claim — format version, event tag, key id, ticket id,
//! tier, optional validity window — and an Ed25519 signature over it, so a
//! ticket sold online after the last sync still scans. Any other text is a
//! **random secret** that must be listed in the manifest.
//!
//! Layout of a v1 claim (big-endian), followed by the 64-byte signature:
//! `version u8 | flags u8 | event tag [4] | key id [4] | len u8 | ticket id |
//! len u8 | tier | valid_from u32? | valid_until u32?` where flags bit 0 and
//! bit 1 say whether the two window bounds (Unix seconds) are present. The
//! signature covers `VBT1` followed by the claim, so a ticket signature can
//! never be replayed as the signature of anything else.
//!
//! Limits (ticket id ≤ 24 bytes, tier ≤ 12 bytes) keep the longest code at
//! 184 characters, inside a version 8 QR code at error correction M.

use super::base44;
use super::ids::{EventId, TicketId, TierId};
use super::keys::{KeyId, TrustedKeys};
use ed25519_dalek::{Signature, Signer, SigningKey};
use sha2::{Digest, Sha256};

pub const SIGNED_PREFIX: &str = "VB1:";
const VERSION: u8 = 1;
const CONTEXT: &[u8] = b"VBT1";
pub const MAX_TICKET_ID: usize = 24;
pub const MAX_TIER: usize = 12;

/// The first four bytes of SHA-256 over the event id: enough to tell a
/// ticket for another event apart, short enough for the QR code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventTag(pub [u8; 4]);

impl EventTag {
    pub fn of(event: &EventId) -> EventTag {
        let d = Sha256::digest(event.as_str().as_bytes());
        EventTag([d[0], d[1], d[2], d[3]])
    }
}

/// What a signed code asserts about its ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketClaim {
    pub event: EventTag,
    pub key: KeyId,
    pub ticket: TicketId,
    pub tier: TierId,
    /// Unix seconds.
    pub valid_from: Option<u32>,
    /// Unix seconds.
    pub valid_until: Option<u32>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodeError {
    #[error("ticket id must be 1 to {MAX_TICKET_ID} bytes")]
    TicketIdLength,
    #[error("tier id must be 1 to {MAX_TIER} bytes")]
    TierLength,
    #[error("not a venuebox signed code")]
    Malformed,
    #[error("signed code format version {0} is not supported by this box")]
    UnsupportedVersion(u8),
}

impl TicketClaim {
    fn to_bytes(&self) -> Result<Vec<u8>, CodeError> {
        let id = self.ticket.as_str().as_bytes();
        let tier = self.tier.as_str().as_bytes();
        if id.is_empty() || id.len() > MAX_TICKET_ID {
            return Err(CodeError::TicketIdLength);
        }
        if tier.is_empty() || tier.len() > MAX_TIER {
            return Err(CodeError::TierLength);
        }
        let flags = self.valid_from.is_some() as u8 | (self.valid_until.is_some() as u8) << 1;
        let mut b = Vec::with_capacity(16 + id.len() + tier.len() + 8);
        b.extend_from_slice(&[VERSION, flags]);
        b.extend_from_slice(&self.event.0);
        b.extend_from_slice(&self.key.0);
        b.push(id.len() as u8);
        b.extend_from_slice(id);
        b.push(tier.len() as u8);
        b.extend_from_slice(tier);
        for t in [self.valid_from, self.valid_until].into_iter().flatten() {
            b.extend_from_slice(&t.to_be_bytes());
        }
        Ok(b)
    }

    fn from_bytes(b: &[u8]) -> Result<TicketClaim, CodeError> {
        let mut r = Reader(b);
        let version = r.u8()?;
        if version != VERSION {
            return Err(CodeError::UnsupportedVersion(version));
        }
        let flags = r.u8()?;
        if flags & !0b11 != 0 {
            return Err(CodeError::Malformed);
        }
        let event = EventTag(r.array()?);
        let key = KeyId(r.array()?);
        let ticket = TicketId(r.short_str(MAX_TICKET_ID)?);
        let tier = TierId(r.short_str(MAX_TIER)?);
        let valid_from = if flags & 1 != 0 { Some(u32::from_be_bytes(r.array()?)) } else { None };
        let valid_until = if flags & 2 != 0 { Some(u32::from_be_bytes(r.array()?)) } else { None };
        if !r.0.is_empty() {
            return Err(CodeError::Malformed);
        }
        Ok(TicketClaim { event, key, ticket, tier, valid_from, valid_until })
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn u8(&mut self) -> Result<u8, CodeError> {
        let (&first, rest) = self.0.split_first().ok_or(CodeError::Malformed)?;
        self.0 = rest;
        Ok(first)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodeError> {
        if self.0.len() < N {
            return Err(CodeError::Malformed);
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        Ok(head.try_into().expect("length checked"))
    }
    fn short_str(&mut self, max: usize) -> Result<String, CodeError> {
        let len = self.u8()? as usize;
        if len == 0 || len > max || self.0.len() < len {
            return Err(CodeError::Malformed);
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8(head.to_vec()).map_err(|_| CodeError::Malformed)
    }
}

fn signed_message(claim_bytes: &[u8]) -> Vec<u8> {
    [CONTEXT, claim_bytes].concat()
}

/// Makes the signed code for `claim`; `claim.key` must be `key`'s id.
pub fn encode_signed(claim: &TicketClaim, key: &SigningKey) -> Result<String, CodeError> {
    debug_assert_eq!(claim.key, KeyId::of(&key.verifying_key()));
    let mut bytes = claim.to_bytes()?;
    let sig = key.sign(&signed_message(&bytes));
    bytes.extend_from_slice(&sig.to_bytes());
    Ok(format!("{SIGNED_PREFIX}{}", base44::encode(&bytes)))
}

/// A signed code split into its claim and signature, not yet verified.
#[derive(Clone, Debug)]
pub struct SignedCode {
    pub claim: TicketClaim,
    claim_bytes: Vec<u8>,
    signature: Signature,
}

impl SignedCode {
    /// Whether the key the claim names is trusted and made the signature.
    pub fn verify(&self, keys: &TrustedKeys) -> bool {
        keys.get(self.claim.key).is_some_and(|k| {
            k.verify_strict(&signed_message(&self.claim_bytes), &self.signature).is_ok()
        })
    }
}

/// What a scanned text turned out to be.
#[derive(Clone, Debug)]
pub enum ScannedCode {
    Signed(SignedCode),
    Secret(String),
}

/// Reads a scanned text. Surrounding line breaks and tabs (scanner
/// suffixes) are ignored; everything else is significant.
pub fn parse(text: &str) -> Result<ScannedCode, CodeError> {
    let text = text.trim_matches(|c| c == '\r' || c == '\n' || c == '\t');
    let Some(body) = text.strip_prefix(SIGNED_PREFIX) else {
        return Ok(ScannedCode::Secret(text.to_owned()));
    };
    let bytes = base44::decode(body).ok_or(CodeError::Malformed)?;
    if bytes.len() < 64 {
        return Err(CodeError::Malformed);
    }
    let (claim_bytes, sig) = bytes.split_at(bytes.len() - 64);
    let claim = TicketClaim::from_bytes(claim_bytes)?;
    let signature = Signature::from_bytes(sig.try_into().expect("64 bytes"));
    Ok(ScannedCode::Signed(SignedCode { claim, claim_bytes: claim_bytes.to_vec(), signature }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::keys::signing_key_from_bytes;
    use qrcode::{EcLevel, QrCode, Version};

    fn claim(key: &SigningKey, id: &str, tier: &str, window: Option<(u32, u32)>) -> TicketClaim {
        TicketClaim {
            event: EventTag::of(&EventId::from("evt-test")),
            key: KeyId::of(&key.verifying_key()),
            ticket: TicketId::from(id),
            tier: TierId::from(tier),
            valid_from: window.map(|w| w.0),
            valid_until: window.map(|w| w.1),
        }
    }

    fn signed(text: &str) -> SignedCode {
        match parse(text).unwrap() {
            ScannedCode::Signed(s) => s,
            other => panic!("expected a signed code, got {other:?}"),
        }
    }

    #[test]
    fn round_trip_keeps_every_field_and_verifies() {
        let key = signing_key_from_bytes([9; 32]);
        for c in [
            claim(&key, "T-1", "ga", None),
            claim(&key, "ticket-000042", "vip", Some((1_700_000_000, 1_800_000_000))),
        ] {
            let code = encode_signed(&c, &key).unwrap();
            assert!(code.starts_with("VB1:"));
            let s = signed(&code);
            assert_eq!(s.claim, c);
            assert!(s.verify(&TrustedKeys::new([key.verifying_key()])));
        }
    }

    #[test]
    fn only_one_bound_of_the_window_may_be_present() {
        let key = signing_key_from_bytes([9; 32]);
        let mut c = claim(&key, "T-2", "ga", None);
        c.valid_until = Some(1_800_000_000);
        assert_eq!(signed(&encode_signed(&c, &key).unwrap()).claim, c);
    }

    #[test]
    fn tampering_with_any_character_breaks_the_code() {
        let key = signing_key_from_bytes([9; 32]);
        let trusted = TrustedKeys::new([key.verifying_key()]);
        let code = encode_signed(&claim(&key, "T-3", "ga", None), &key).unwrap();
        for i in SIGNED_PREFIX.len()..code.len() {
            let mut bytes = code.clone().into_bytes();
            bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
            let tampered = String::from_utf8(bytes).unwrap();
            let ok = matches!(parse(&tampered), Ok(ScannedCode::Signed(s)) if s.verify(&trusted));
            assert!(!ok, "tampered at {i} still verifies");
        }
    }

    #[test]
    fn wrong_key_and_rotated_keys() {
        let old = signing_key_from_bytes([1; 32]);
        let new = signing_key_from_bytes([2; 32]);
        let stranger = signing_key_from_bytes([3; 32]);
        let by_old = signed(&encode_signed(&claim(&old, "T-4", "ga", None), &old).unwrap());
        let by_stranger =
            signed(&encode_signed(&claim(&stranger, "T-5", "ga", None), &stranger).unwrap());
        let rotated = TrustedKeys::new([new.verifying_key(), old.verifying_key()]);
        assert!(by_old.verify(&rotated), "old key still listed after rotation");
        assert!(!by_old.verify(&TrustedKeys::new([new.verifying_key()])), "old key dropped");
        assert!(!by_stranger.verify(&rotated));
    }

    #[test]
    fn a_claim_signed_by_one_key_but_naming_another_fails() {
        let a = signing_key_from_bytes([1; 32]);
        let b = signing_key_from_bytes([2; 32]);
        let mut c = claim(&a, "T-6", "ga", None);
        let bytes = c.to_bytes().unwrap();
        let sig = b.sign(&signed_message(&bytes));
        c.key = KeyId::of(&a.verifying_key());
        let forged = format!(
            "{SIGNED_PREFIX}{}",
            base44::encode(&[bytes, sig.to_bytes().to_vec()].concat())
        );
        assert!(!signed(&forged).verify(&TrustedKeys::new([a.verifying_key(), b.verifying_key()])));
    }

    #[test]
    fn other_text_is_a_secret_and_scanner_suffixes_are_ignored() {
        assert!(
            matches!(parse("AB12CD34\r\n").unwrap(), ScannedCode::Secret(s) if s == "AB12CD34")
        );
        assert_eq!(parse("VB1:!!!").unwrap_err(), CodeError::Malformed);
        assert_eq!(parse("VB1:").unwrap_err(), CodeError::Malformed);
    }

    #[test]
    fn over_long_ids_are_refused_when_minting() {
        let key = signing_key_from_bytes([9; 32]);
        let long = "x".repeat(MAX_TICKET_ID + 1);
        assert_eq!(
            encode_signed(&claim(&key, &long, "ga", None), &key).unwrap_err(),
            CodeError::TicketIdLength
        );
        assert_eq!(
            encode_signed(&claim(&key, "ok", "tier-too-long", None), &key).unwrap_err(),
            CodeError::TierLength
        );
    }

    #[test]
    fn the_longest_code_fits_a_version_8_qr_at_level_m() {
        let key = signing_key_from_bytes([9; 32]);
        let c = claim(
            &key,
            &"x".repeat(MAX_TICKET_ID),
            &"y".repeat(MAX_TIER),
            Some((u32::MAX, u32::MAX)),
        );
        let code = encode_signed(&c, &key).unwrap();
        assert_eq!(code.len(), 184);
        QrCode::with_version(code.as_bytes(), Version::Normal(8), EcLevel::M)
            .expect("longest signed code must fit QR version 8-M");
    }
}
