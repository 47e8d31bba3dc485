//! Capture files on disk: partial uploads, the content-addressed store
//! (`captures/ab/cdef…`, named by SHA-256), thumbnails, free-disk checks,
//! and reading what a finished file is (type, dimensions, capture time).
//!
//! Only this module touches capture files. It knows nothing of HTTP (the
//! tus protocol is in `api::tus`) or SQL (upload and capture rows are in
//! `store::captures`).

pub mod files;
pub mod probe;
pub mod thumbnail;

pub use files::MediaFiles;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("{0}")]
    Io(String),
    #[error("not a photo or video this box accepts (JPEG, PNG, HEIC/HEIF, WebP, MP4, MOV)")]
    Unsupported,
    #[error("cannot make a thumbnail: {0}")]
    Thumbnail(String),
}

pub(crate) fn io_err(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> MediaError {
    move |e| MediaError::Io(format!("{what}: {e}"))
}
