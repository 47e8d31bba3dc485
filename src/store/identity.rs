//! The box's identity: a random box id and an Ed25519 key pair, made on
//! first start and kept in `DATA_DIR/identity.json` (mode 0600). The id
//! names the box in every outbox row; the key will sign walk-up tickets.

use super::StoreError;
use crate::domain::keys::{public_key_to_base64, signing_key_from_bytes};
use crate::secrets::{hex, random_bytes};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub struct BoxIdentity {
    pub box_id: String,
    pub key: SigningKey,
}

#[derive(Serialize, Deserialize)]
struct IdentityFile {
    box_id: String,
    secret_key: String,
    public_key: String,
}

pub const FILE: &str = "identity.json";

impl BoxIdentity {
    pub fn load_or_create(dir: &Path) -> Result<BoxIdentity, StoreError> {
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let f: IdentityFile = serde_json::from_slice(&bytes).map_err(|e| {
                    StoreError::Identity(format!(
                        "{} is damaged ({e}); restore it from backup",
                        path.display()
                    ))
                })?;
                let seed: [u8; 32] =
                    B64.decode(&f.secret_key).ok().and_then(|b| b.try_into().ok()).ok_or_else(
                        || {
                            StoreError::Identity(format!(
                                "{} has no valid secret_key; restore it from backup",
                                path.display()
                            ))
                        },
                    )?;
                Ok(BoxIdentity { box_id: f.box_id, key: signing_key_from_bytes(seed) })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = BoxIdentity {
                    box_id: format!("box-{}", hex(&random_bytes::<8>())),
                    key: signing_key_from_bytes(random_bytes()),
                };
                let f = IdentityFile {
                    box_id: id.box_id.clone(),
                    secret_key: B64.encode(id.key.to_bytes()),
                    public_key: public_key_to_base64(&id.key.verifying_key()),
                };
                write_private(&path, &serde_json::to_vec_pretty(&f).expect("identity serialises"))?;
                tracing::info!(box_id = %id.box_id, "created box identity");
                Ok(id)
            }
            Err(e) => Err(StoreError::io(format!("cannot read {}", path.display()))(e)),
        }
    }
}

/// The identity file as it is on disk, for a standby that joins: it
/// must be the same box (same id, same key) to take over.
pub fn read_file(dir: &Path) -> Result<String, StoreError> {
    let path = dir.join(FILE);
    std::fs::read_to_string(&path)
        .map_err(StoreError::io(format!("cannot read {}", path.display())))
}

/// Installs the primary's identity file in a joining standby's data
/// directory (checked first; the directory must not have one yet).
pub fn install_file(dir: &Path, contents: &str) -> Result<BoxIdentity, StoreError> {
    let path = dir.join(FILE);
    if path.exists() {
        return Err(StoreError::Identity(format!(
            "{} exists: this box has an identity of its own; join from an empty data directory",
            path.display()
        )));
    }
    let f: IdentityFile = serde_json::from_str(contents).map_err(|e| {
        StoreError::Identity(format!("the primary's identity file is damaged: {e}"))
    })?;
    write_private(&path, contents.as_bytes())?;
    let id = BoxIdentity::load_or_create(dir)?;
    debug_assert_eq!(id.box_id, f.box_id);
    Ok(id)
}

/// Writes a secret file durably: mode 0600 from the first byte, fsynced,
/// renamed into place, directory fsynced.
/// An exclusive, non-blocking `flock` on `path` (created if missing):
/// `None` when another process holds it. The lock lives as long as the
/// returned file, and ends with the process whatever way it ends.
pub fn try_lock_file(path: &Path) -> std::io::Result<Option<std::fs::File>> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(Some(f));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(None)
    } else {
        Err(e)
    }
}

/// Writes a secret file (mode 0600) whole, or not at all.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    crate::secrets::write_private(path, bytes)
        .map_err(StoreError::io(format!("cannot write {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_once_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = BoxIdentity::load_or_create(dir.path()).unwrap();
        let b = BoxIdentity::load_or_create(dir.path()).unwrap();
        assert_eq!(a.box_id, b.box_id);
        assert_eq!(a.key.to_bytes(), b.key.to_bytes());
        let mode = std::fs::metadata(dir.path().join(FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
