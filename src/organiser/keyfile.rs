//! The organiser's key file: an Ed25519 key pair as JSON, mode 0600.

use super::{io, OrganiserError};
use crate::domain::keys::{public_key_to_base64, signing_key_from_bytes, KeyId};
use crate::secrets::{random_bytes, write_private};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use std::path::Path;

const KIND: &str = "venuebox-organiser-key";

#[derive(Serialize, Deserialize)]
pub struct KeyFile {
    pub kind: String,
    pub key_id: String,
    /// Goes into the manifest's `organiser_keys`.
    pub public_key: String,
    pub secret_key: String,
}

impl KeyFile {
    pub fn generate() -> KeyFile {
        KeyFile::from_signing_key(&signing_key_from_bytes(random_bytes()))
    }

    pub fn from_signing_key(k: &SigningKey) -> KeyFile {
        KeyFile {
            kind: KIND.into(),
            key_id: KeyId::of(&k.verifying_key()).hex(),
            public_key: public_key_to_base64(&k.verifying_key()),
            secret_key: B64.encode(k.to_bytes()),
        }
    }

    pub fn signing_key(&self) -> SigningKey {
        let seed: [u8; 32] = B64
            .decode(&self.secret_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .expect("checked at load");
        signing_key_from_bytes(seed)
    }

    pub fn load(path: &Path) -> Result<KeyFile, OrganiserError> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        let k: KeyFile = serde_json::from_slice(&bytes).map_err(|e| {
            OrganiserError::Invalid(format!(
                "{} is not a venuebox key file ({e}): make one with `venuebox keygen`",
                path.display()
            ))
        })?;
        let ok =
            k.kind == KIND && B64.decode(&k.secret_key).map(|b| b.len() == 32).unwrap_or(false);
        if !ok {
            return Err(OrganiserError::Invalid(format!(
                "{} is not a venuebox organiser key file",
                path.display()
            )));
        }
        Ok(k)
    }

    pub fn save(&self, path: &Path) -> Result<(), OrganiserError> {
        let bytes = serde_json::to_vec_pretty(self).expect("key file serialises");
        write_private(path, &bytes).map_err(super::io(path))
    }
}
