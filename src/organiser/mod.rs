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

/// Signs `manifest`'s exact bytes and writes the base64 signature next to
/// it. A manifest without `signed_at` gets one first (`now`, the signer's
/// clock), written into the file as its first field, the rest untouched:
/// boxes use it to tell that their own clock cannot be right.
pub fn sign_manifest(
    manifest: &Path,
    key: &KeyFile,
    now: crate::domain::time::Millis,
) -> Result<PathBuf, OrganiserError> {
    let mut bytes = std::fs::read(manifest).map_err(io(manifest))?;
    let invalid = |e| OrganiserError::Invalid(format!("{}: {e}", manifest.display()));
    let parsed = crate::domain::manifest::parse(&bytes).map_err(invalid)?;
    if parsed.manifest.signed_at.is_none() {
        let open = bytes.iter().position(|b| *b == b'{').expect("a parsed manifest is an object");
        let stamp = format!("\n  \"signed_at\": \"{}\",", crate::domain::time::format_rfc3339(now));
        bytes.splice(open + 1..open + 1, stamp.into_bytes());
        crate::domain::manifest::parse(&bytes).map_err(invalid)?;
        let tmp = manifest.with_extension("json.tmp");
        std::fs::write(&tmp, &bytes).map_err(io(&tmp))?;
        std::fs::rename(&tmp, manifest).map_err(io(manifest))?;
    }
    let sig = crate::domain::keys::sign_detached(&key.signing_key(), &bytes);
    let out = signature_path(manifest);
    write_private(&out, format!("{sig}\n").as_bytes()).map_err(io(&out))?;
    Ok(out)
}
