//! Ed25519 keys as the venue sees them: a public key is named by a short
//! key id (the first four bytes of its SHA-256), which signed ticket codes
//! carry so the box knows which key to check without trying them all.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// First four bytes of SHA-256 over the raw 32-byte public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 4]);

impl KeyId {
    pub fn of(key: &VerifyingKey) -> KeyId {
        let digest = Sha256::digest(key.as_bytes());
        KeyId([digest[0], digest[1], digest[2], digest[3]])
    }

    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A set of public keys the box trusts for one purpose.
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys {
    keys: Vec<(KeyId, VerifyingKey)>,
}

impl TrustedKeys {
    pub fn new(keys: impl IntoIterator<Item = VerifyingKey>) -> Self {
        TrustedKeys { keys: keys.into_iter().map(|k| (KeyId::of(&k), k)).collect() }
    }

    /// Adds a key unless it is already trusted.
    pub fn add(&mut self, key: VerifyingKey) {
        if !self.keys.iter().any(|(_, k)| *k == key) {
            self.keys.push((KeyId::of(&key), key));
        }
    }

    pub fn get(&self, id: KeyId) -> Option<&VerifyingKey> {
        self.keys.iter().find(|(k, _)| *k == id).map(|(_, v)| v)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The id of the first trusted key that made `sig` over `msg`.
    pub fn verify_any(&self, msg: &[u8], sig: &Signature) -> Option<KeyId> {
        self.keys.iter().find(|(_, k)| k.verify(msg, sig).is_ok()).map(|(id, _)| *id)
    }
}

pub fn public_key_from_base64(text: &str) -> Result<VerifyingKey, String> {
    let bytes = B64.decode(text.trim()).map_err(|e| format!("public key is not base64 ({e})"))?;
    let arr: [u8; 32] =
        bytes.try_into().map_err(|_| "public key must be 32 bytes (Ed25519)".to_string())?;
    VerifyingKey::from_bytes(&arr)
        .map_err(|_| "public key is not a valid Ed25519 point".to_string())
}

pub fn public_key_to_base64(key: &VerifyingKey) -> String {
    B64.encode(key.as_bytes())
}

pub fn signing_key_from_bytes(seed: [u8; 32]) -> SigningKey {
    SigningKey::from_bytes(&seed)
}

/// A detached signature as standard base64 text.
pub fn sign_detached(key: &SigningKey, msg: &[u8]) -> String {
    B64.encode(key.sign(msg).to_bytes())
}

pub fn signature_from_base64(text: &str) -> Result<Signature, String> {
    let bytes = B64.decode(text.trim()).map_err(|e| format!("signature is not base64 ({e})"))?;
    let arr: [u8; 64] =
        bytes.try_into().map_err(|_| "signature must be 64 bytes (Ed25519)".to_string())?;
    Ok(Signature::from_bytes(&arr))
}

/// `AB:CD:…` groups of a hex fingerprint (the box CA's), as phones show
/// certificate details.
pub fn fingerprint_colons(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detached_signature_verifies_only_with_its_key_and_message() {
        let a = signing_key_from_bytes([1; 32]);
        let b = signing_key_from_bytes([2; 32]);
        let sig = signature_from_base64(&sign_detached(&a, b"hello")).unwrap();
        let trusted = TrustedKeys::new([b.verifying_key(), a.verifying_key()]);
        assert_eq!(trusted.verify_any(b"hello", &sig), Some(KeyId::of(&a.verifying_key())));
        assert_eq!(trusted.verify_any(b"hellO", &sig), None);
        assert_eq!(TrustedKeys::new([b.verifying_key()]).verify_any(b"hello", &sig), None);
    }

    #[test]
    fn public_keys_round_trip_and_bad_ones_are_explained() {
        let k = signing_key_from_bytes([7; 32]).verifying_key();
        assert_eq!(public_key_from_base64(&public_key_to_base64(&k)).unwrap(), k);
        assert!(public_key_from_base64("AAAA").unwrap_err().contains("32 bytes"));
        assert!(public_key_from_base64("%%%").unwrap_err().contains("base64"));
    }
}
