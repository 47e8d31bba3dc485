//! Capture files on disk: partial uploads, the content-addressed store
//! (`captures/ab/cdef…`, named by SHA-256), thumbnails, free-disk checks,
//! and reading what a finished file is (type, dimensions, capture time).
//!
//! Only this module touches capture files: `uploads` is the upload life
//! cycle (limits, slots, finishing into a capture, recovery), `append` one
//! request body streamed, hashed and made durable into a part file. It knows
//! nothing of HTTP (the tus protocol is in `api::tus`) or SQL (upload and
//! capture rows go through `Store`).

pub mod append;
pub mod files;
pub mod preview;
pub mod probe;
pub mod sandbox;
pub mod thumbnail;
pub mod uploads;

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

type Job = Box<dyn FnOnce() + Send>;

/// The threads upload bytes are hashed and written on: a few, at nice 10,
/// kept for the life of the process (a thread cannot portably get its
/// priority back, so the shared blocking pool, which also serves the
/// door's reads, is never lowered).
struct BulkLane {
    /// Work for the lane's threads; the mutex only guards the receiver.
    jobs: std::sync::mpsc::Sender<Job>,
}

const BULK_THREADS: usize = 4;

fn bulk_lane() -> &'static std::sync::Mutex<BulkLane> {
    static LANE: std::sync::OnceLock<std::sync::Mutex<BulkLane>> = std::sync::OnceLock::new();
    LANE.get_or_init(|| {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..BULK_THREADS {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("upload-io-{i}"))
                .spawn(move || {
                    // SAFETY: a plain syscall on this thread's own id.
                    unsafe {
                        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10);
                    }
                    loop {
                        let job = match rx.lock().expect("bulk lane").recv() {
                            Ok(j) => j,
                            Err(_) => return,
                        };
                        // A panicking job loses its answer (the caller sees
                        // an error), not the thread.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })
                .expect("spawn an upload I/O thread");
        }
        std::sync::Mutex::new(BulkLane { jobs })
    })
}

/// Runs `f` on the upload I/O threads, below the CPU priority of the async
/// threads that answer check-ins and sales: hashing and writing upload
/// bytes is bulk work, the door is not.
pub async fn below_the_door<F, R>(f: F) -> Result<R, MediaError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(f());
    });
    bulk_lane()
        .lock()
        .expect("bulk lane")
        .jobs
        .send(job)
        .map_err(|_| MediaError::Io("upload I/O threads stopped".into()))?;
    rx.await.map_err(|_| MediaError::Io("upload I/O thread failed".into()))
}

/// Asks the kernel to start writing `file`'s dirty pages back now, without
/// waiting (Linux `sync_file_range`), so a later fsync (ours or SQLite's,
/// which on ext4 may have to flush them first) finds little left to do.
pub fn start_writeback(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for the call's duration.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}
