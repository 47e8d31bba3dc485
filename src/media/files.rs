//! Where capture bytes live, and moving them there durably.
//!
//! - `uploads/<id>.part` — an upload in progress; its durable length is
//!   what the database says its offset is (extra bytes after a crash are
//!   cut off when the upload resumes).
//! - `captures/<2 hex>/<62 hex>` — finished captures by SHA-256; a file
//!   there is complete and fsynced, and is never rewritten.
//! - `thumbs/<2 hex>/<62 hex>.jpg` — dashboard thumbnails.

use super::{io_err, MediaError};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct MediaFiles {
    root: PathBuf,
    /// `Some(bytes)`: a pretend disk of this size holding only the capture
    /// files, instead of the real free space (tests, where other tests
    /// share the real disk).
    pretend_disk: Option<u64>,
}

fn sync_dir(dir: &Path) -> Result<(), MediaError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir.display()))
}

impl MediaFiles {
    pub fn open(data_dir: &Path) -> Result<MediaFiles, MediaError> {
        Self::open_on(data_dir, None)
    }

    /// Opens with a pretend disk of `pretend_disk` bytes (see the field).
    pub fn open_on(data_dir: &Path, pretend_disk: Option<u64>) -> Result<MediaFiles, MediaError> {
        let m = MediaFiles { root: data_dir.to_path_buf(), pretend_disk };
        for d in ["uploads", "captures", "thumbs"] {
            let p = m.root.join(d);
            std::fs::create_dir_all(&p).map_err(io_err(p.display()))?;
        }
        Ok(m)
    }

    pub fn part(&self, upload: &str) -> PathBuf {
        self.root.join("uploads").join(format!("{upload}.part"))
    }

    pub fn capture(&self, sha256: &str) -> PathBuf {
        self.root.join("captures").join(&sha256[..2]).join(&sha256[2..])
    }

    pub fn thumbnail(&self, sha256: &str) -> PathBuf {
        self.root.join("thumbs").join(&sha256[..2]).join(format!("{}.jpg", &sha256[2..]))
    }

    /// Makes the empty part file of a new upload, durably.
    pub fn create_part(&self, upload: &str) -> Result<(), MediaError> {
        let p = self.part(upload);
        File::create(&p).and_then(|f| f.sync_all()).map_err(io_err(p.display()))?;
        sync_dir(&self.root.join("uploads"))
    }

    /// Opens a part file for writing at `offset`, cutting anything after it
    /// (bytes a crash left behind that were never acknowledged).
    pub fn open_part_at(&self, upload: &str, offset: u64) -> Result<File, MediaError> {
        let p = self.part(upload);
        let f = OpenOptions::new().write(true).open(&p).map_err(io_err(p.display()))?;
        let len = f.metadata().map_err(io_err(p.display()))?.len();
        if len < offset {
            return Err(MediaError::Io(format!(
                "{} has {len} bytes but {offset} were acknowledged: the disk lost data",
                p.display()
            )));
        }
        if len > offset {
            f.set_len(offset).map_err(io_err(p.display()))?;
        }
        let mut f = f;
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(offset))
            .map_err(io_err(p.display()))?;
        Ok(f)
    }

    pub fn remove_part(&self, upload: &str) {
        let p = self.part(upload);
        if let Err(e) = std::fs::remove_file(&p) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %p.display(), error = %e, "cannot remove partial upload");
            }
        }
    }

    /// Moves a complete, fsynced part file into the content-addressed
    /// store. Returns false when those bytes were already stored (the part
    /// is then removed: the bytes are kept once).
    pub fn store_capture(&self, upload: &str, sha256: &str) -> Result<bool, MediaError> {
        let dest = self.capture(sha256);
        let part = self.part(upload);
        if dest.exists() {
            std::fs::remove_file(&part).map_err(io_err(part.display()))?;
            return Ok(false);
        }
        let dir = dest.parent().expect("two-level layout");
        std::fs::create_dir_all(dir).map_err(io_err(dir.display()))?;
        std::fs::rename(&part, &dest).map_err(io_err(dest.display()))?;
        sync_dir(dir)?;
        sync_dir(&self.root.join("uploads"))?;
        Ok(true)
    }

    /// Moves a complete, fsynced file made elsewhere on this disk (a
    /// standby's copy of the primary's capture or thumbnail, already
    /// checked) into place under `dest`, durably.
    pub fn adopt(&self, from: &Path, dest: &Path) -> Result<(), MediaError> {
        let dir = dest.parent().expect("two-level layout");
        std::fs::create_dir_all(dir).map_err(io_err(dir.display()))?;
        std::fs::rename(from, dest).map_err(io_err(dest.display()))?;
        sync_dir(dir)
    }

    pub fn write_thumbnail(&self, sha256: &str, jpeg: &[u8]) -> Result<(), MediaError> {
        let dest = self.thumbnail(sha256);
        let dir = dest.parent().expect("two-level layout");
        std::fs::create_dir_all(dir).map_err(io_err(dir.display()))?;
        let tmp = dest.with_extension("tmp");
        std::fs::write(&tmp, jpeg).map_err(io_err(tmp.display()))?;
        std::fs::rename(&tmp, &dest).map_err(io_err(dest.display()))
    }

    /// Bytes free for an unprivileged writer on the data directory's disk.
    /// The data directory the files live under.
    pub fn data_dir(&self) -> &Path {
        &self.root
    }

    pub fn free_bytes(&self) -> Result<u64, MediaError> {
        if let Some(size) = self.pretend_disk {
            let used: u64 = ["uploads", "captures", "thumbs"]
                .iter()
                .map(|d| bytes_under(&self.root.join(d)))
                .sum();
            return Ok(size.saturating_sub(used));
        }
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let path = CString::new(self.root.as_os_str().as_bytes())
            .map_err(|_| MediaError::Io("data directory path has a NUL byte".into()))?;
        // SAFETY: `path` is a valid C string and `st` a properly sized out-parameter.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
        if rc != 0 {
            return Err(MediaError::Io(format!(
                "statvfs {}: {}",
                self.root.display(),
                std::io::Error::last_os_error()
            )));
        }
        Ok(st.f_bavail as u64 * st.f_frsize as u64)
    }
}

/// The bytes of every file under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => bytes_under(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_part_is_cut_back_to_its_acknowledged_offset_and_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let m = MediaFiles::open(dir.path()).unwrap();
        m.create_part("u1").unwrap();
        let mut f = m.open_part_at("u1", 0).unwrap();
        f.write_all(b"hello world").unwrap();
        drop(f);
        // Only 5 bytes were acknowledged: the rest is cut on resume.
        let mut f = m.open_part_at("u1", 5).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 5);
        f.write_all(b"!").unwrap();
        drop(f);
        let f = m.open_part_at("u1", 5).unwrap();
        drop(f);
        assert_eq!(
            std::fs::read(m.part("u1")).unwrap(),
            b"hello",
            "appends at the offset, and a resume cuts back"
        );
        assert!(m.open_part_at("u1", 9).is_err(), "cannot resume beyond what the disk has");
        let sha = "ab".repeat(32);
        assert!(m.store_capture("u1", &sha).unwrap());
        assert_eq!(std::fs::read(m.capture(&sha)).unwrap(), b"hello");
        m.create_part("u2").unwrap();
        assert!(!m.store_capture("u2", &sha).unwrap(), "same bytes are stored once");
        assert!(!m.part("u2").exists());
        assert!(m.free_bytes().unwrap() > 0);
    }
}
