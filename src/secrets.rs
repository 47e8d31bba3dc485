//! Randomness and secrets on disk. Ids, tokens, codes, salts and keys come
//! from the operating system's random source; a secret file (keys, the box
//! identity, credentials) is written whole — a temporary file, fsynced,
//! renamed over the old one, the directory fsynced — and is readable by the
//! box's user only.

use std::io::Write;
use std::path::Path;

/// `N` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).expect("the operating system's random source failed");
    b
}

/// Lower-case hex, two digits a byte.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Makes every file and directory this process creates from now on
/// readable by its user only (umask 077), however the box was started (a
/// shell's 022, a unit without `UMask=`): the data directory holds PINs'
/// hashes, tokens' digests, personal data and keys.
pub fn private_by_default() {
    // SAFETY: umask only changes this process's file-creation mask.
    unsafe {
        libc::umask(0o077);
    }
}

/// Takes group and other permissions off `path` if it has any (a data
/// directory or database made before, or by another tool).
pub fn make_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` with mode 0600, atomically and durably: after
/// a crash the file holds either the old bytes or the new ones.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(parent).and_then(|d| d.sync_all())
}

/// Refuses a secret file other users could read, saying how to fix it.
pub fn check_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} is readable by other users (mode {mode:o}): chmod 600 it",
            path.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_secret_file_is_private_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        write_private(&path, b"old").unwrap();
        write_private(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!path.with_extension("tmp").exists());
    }

    #[test]
    fn random_bytes_differ_and_hex_is_two_digits_a_byte() {
        assert_ne!(random_bytes::<16>(), random_bytes::<16>());
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
