//! Interoperability: tuspy (the Python tus client, installed by this test
//! into target/ from PyPI if it is missing) uploads a photo through a
//! proxy that cuts the connection mid-upload; the client resumes from the
//! box's offset and the capture arrives intact.

mod common;

use common::{jpeg, sha256_hex, TestBox};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use venuebox::clock::Clock;
use venuebox::domain::role::Role;
use venuebox::media::uploads::CaptureConfig;

/// A Python path holding tuspy.
fn tuspy() -> PathBuf {
    common::s3::python_deps("pydeps", "import tusclient", &["tuspy==1.1.0"])
}

/// Forwards 127.0.0.1:<port> to `to`, cutting the connection once when
/// the client has sent `cut_after` bytes in total.
async fn cutting_proxy(
    to: std::net::SocketAddr,
    cut_after: u64,
) -> (std::net::SocketAddr, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let cut = Arc::new(AtomicBool::new(false));
    let cut_flag = cut.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let (sent, cut) = (sent.clone(), cut.clone());
            tokio::spawn(async move {
                let server = TcpStream::connect(to).await.unwrap();
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let total = sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                        if total >= cut_after && !cut.swap(true, Ordering::SeqCst) {
                            return; // pull the cable: both directions drop
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let down = async {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                };
                tokio::select! { _ = up => {}, _ = down => {} }
            });
        }
    });
    (addr, cut_flag)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tuspy_uploads_through_a_dropped_connection_and_resumes() {
    let pydeps = tokio::task::spawn_blocking(tuspy).await.unwrap();
    let b = TestBox::start_captures(Clock::system(), CaptureConfig::default()).await;
    let token = b.token(Role::Capture).await;
    let photo = jpeg(1400, 1000, 42);
    assert!(photo.len() > 2 << 20, "big enough to need several chunks");
    let file = b.dir.path().join("proof.jpg");
    std::fs::write(&file, &photo).unwrap();
    let (proxy, cut) = cutting_proxy(b.addr, 1_600_000).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/tus_upload.py");
    let url = format!("http://{proxy}/api/v1/uploads/");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .arg(url)
            .arg(token)
            .arg(file)
            .arg("cr-a")
            .env("PYTHONPATH", pydeps)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "tuspy failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(cut.load(Ordering::SeqCst), "the proxy cut the connection mid-upload");
    let capture =
        b.state.store.capture(sha256_hex(&photo)).await.unwrap().expect("capture stored intact");
    assert_eq!(
        (capture.bytes, capture.media_type.as_str(), capture.uploader.as_deref()),
        (photo.len() as u64, "image/jpeg", Some("tuspy"))
    );
}
