//! The organiser's tools: make a signing key, sign a manifest, mint signed
//! tickets with their QR images, and build the demo event. They run on the
//! organiser's laptop or on the box, and touch only files — never the
//! box's database, which they reach, like everyone, through the store.

pub mod demo;
pub mod keyfile;
pub mod tickets;

use crate::secrets::write_private;
use keyfile::KeyFile;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum OrganiserError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> OrganiserError + '_ {
    move |source| OrganiserError::Io { path: path.to_path_buf(), source }
}

/// The signature file that goes with a manifest: `FILE.sig`.
pub fn signature_path(manifest: &Path) -> PathBuf {
    let mut s = manifest.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// Signs `manifest`'s exact bytes and writes the base64 signature next to it.
pub fn sign_manifest(manifest: &Path, key: &KeyFile) -> Result<PathBuf, OrganiserError> {
    let bytes = std::fs::read(manifest).map_err(io(manifest))?;
    crate::domain::manifest::parse(&bytes)
        .map_err(|e| OrganiserError::Invalid(format!("{}: {e}", manifest.display())))?;
    let sig = crate::domain::keys::sign_detached(&key.signing_key(), &bytes);
    let out = signature_path(manifest);
    write_private(&out, format!("{sig}\n").as_bytes()).map_err(io(&out))?;
    Ok(out)
}
