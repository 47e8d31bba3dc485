//! Capture files to the standby: after the rows, in the background, on a
//! link of their own. The standby asks for each capture (and thumbnail) it
//! lacks, resuming a partial copy; the primary sends it under a bandwidth
//! cap and pauses while the door is busy; the standby checks a capture's
//! SHA-256 (its name) before it counts, and only then moves it in place.

use super::frame::{self, FileHead, FileKind, FileWant, Frame, Hello, Purpose};
use super::link::{LinkTls, Stream};
use super::{LinkError, Replication};
use crate::store::replica::Role;
use crate::store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const CHUNK: usize = 64 << 10;
/// The door counts as busy for this long after a scan: copying waits.
const DOOR_QUIET: Duration = Duration::from_millis(300);

fn path_of(repl: &Replication, kind: FileKind, sha256: &str) -> Option<PathBuf> {
    let valid = sha256.len() == 64
        && sha256.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    valid.then(|| match kind {
        FileKind::Capture => repl.media.capture(sha256),
        FileKind::Thumbnail => repl.media.thumbnail(sha256),
    })
}

/// On the primary: answers a standby's file requests until it closes.
pub async fn serve(
    stream: &mut Stream,
    repl: &Replication,
    stop: &CancellationToken,
) -> Result<(), LinkError> {
    loop {
        let want = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            f = frame::read(stream) => match f? {
                Frame::FileWant(w) => w,
                Frame::Bye(_) => return Ok(()),
                other => return Err(LinkError::Refused(format!("expected a file request, got {other:?}"))),
            },
        };
        let file = match path_of(repl, want.kind, &want.sha256) {
            Some(p) => tokio::fs::File::open(&p).await.ok(),
            None => None,
        };
        let Some(mut file) = file else {
            frame::write(stream, &Frame::FileHead(FileHead { bytes: None })).await?;
            continue;
        };
        let len = file.metadata().await.map_err(io)?.len();
        frame::write(stream, &Frame::FileHead(FileHead { bytes: Some(len) })).await?;
        file.seek(std::io::SeekFrom::Start(want.offset.min(len))).await.map_err(io)?;
        let mut buf = vec![0; CHUNK];
        loop {
            while repl.metrics.door_busy_within(DOOR_QUIET) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let n = file.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            repl.copy_throttle.take(n as u64).await;
            frame::write(stream, &Frame::Chunk(buf[..n].to_vec())).await?;
        }
    }
}

fn io(e: std::io::Error) -> LinkError {
    LinkError::Refused(format!("a capture file: {e}"))
}

/// On a standby: copies what it lacks, every few seconds, while it follows.
pub async fn copier(
    store: Store,
    tls: LinkTls,
    repl: Arc<Replication>,
    node: String,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        if store.replica().role() != Role::Standby {
            continue;
        }
        let Ok(Some(peer)) = store.peer_address().await else { continue };
        let wanted = match missing(&store, &repl).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the captures to copy");
                continue;
            }
        };
        repl.update(|s| s.files_left = wanted.len() as u64);
        sweep_parts(&repl, &wanted).await;
        if wanted.is_empty() {
            continue;
        }
        let Ok(hello) = super::my_hello(&store, &repl, &node).await else { continue };
        if let Err(e) = copy_from(&peer, &tls, &repl, &hello, wanted, &stop).await {
            tracing::info!(error = %e, "copying capture files stopped; trying again shortly");
        }
    }
}

/// Removes partial copies of files the standby no longer lacks (one left
/// by an interrupted attempt whose file came another way), so the
/// directory holds at most one part per wanted file.
async fn sweep_parts(repl: &Replication, wanted: &[(FileKind, String, Option<u64>)]) {
    let dir = repl.config.data_dir.join("replication").join("files");
    let Ok(mut entries) = tokio::fs::read_dir(&dir).await else { return };
    let keep: std::collections::HashSet<String> =
        wanted.iter().map(|(kind, sha, _)| format!("{sha}.{kind:?}.part")).collect();
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !keep.contains(&name) {
            let _ = tokio::fs::remove_file(entry.path()).await;
        }
    }
}

/// The files the standby lacks: captures first, then thumbnails.
async fn missing(
    store: &Store,
    repl: &Replication,
) -> Result<Vec<(FileKind, String, Option<u64>)>, LinkError> {
    let all = store.capture_files().await?;
    let media = repl.media.clone();
    Ok(tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for (sha, bytes, _) in &all {
            if !media.capture(sha).exists() {
                out.push((FileKind::Capture, sha.clone(), Some(*bytes)));
            }
        }
        for (sha, _, thumb) in &all {
            if *thumb && !media.thumbnail(sha).exists() {
                out.push((FileKind::Thumbnail, sha.clone(), None));
            }
        }
        out
    })
    .await
    .unwrap_or_default())
}

async fn copy_from(
    peer: &str,
    tls: &LinkTls,
    repl: &Replication,
    hello: &Hello,
    wanted: Vec<(FileKind, String, Option<u64>)>,
    stop: &CancellationToken,
) -> Result<(), LinkError> {
    let mut stream = tls
        .connect(peer)
        .await
        .map_err(|e| LinkError::Refused(format!("cannot reach {peer}: {e}")))?;
    let mine = Hello { purpose: Purpose::Files, ..hello.clone() };
    let theirs = super::link::hello(&mut stream, &mine).await?;
    if theirs.role != Role::Primary {
        return Err(LinkError::Refused("the peer is not the primary".into()));
    }
    let dir = repl.config.data_dir.join("replication").join("files");
    tokio::fs::create_dir_all(&dir).await.map_err(io)?;
    for (kind, sha, size) in wanted {
        if stop.is_cancelled() {
            break;
        }
        let part = dir.join(format!("{sha}.{kind:?}.part"));
        let offset = tokio::fs::metadata(&part).await.map(|m| m.len()).unwrap_or(0);
        let offset = if size.is_some_and(|s| offset > s) { 0 } else { offset };
        frame::write(&mut stream, &Frame::FileWant(FileWant { kind, sha256: sha.clone(), offset }))
            .await?;
        let len = match frame::read(&mut stream).await? {
            Frame::FileHead(FileHead { bytes: Some(n) }) => n,
            Frame::FileHead(FileHead { bytes: None }) => continue,
            other => {
                return Err(LinkError::Refused(format!("expected a file head, got {other:?}")))
            }
        };
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&part)
            .await
            .map_err(io)?;
        file.set_len(offset.min(len)).await.map_err(io)?;
        let mut got = offset.min(len);
        while got < len {
            let chunk =
                match tokio::time::timeout(repl.config.silence * 4, frame::read(&mut stream)).await
                {
                    Err(_) => return Err(LinkError::Silent(repl.config.silence * 4)),
                    Ok(Ok(Frame::Chunk(c))) => c,
                    Ok(Ok(other)) => {
                        return Err(LinkError::Refused(format!("expected a chunk, got {other:?}")))
                    }
                    Ok(Err(e)) => return Err(e.into()),
                };
            got += chunk.len() as u64;
            if got > len {
                return Err(LinkError::Refused("a file longer than announced".into()));
            }
            file.write_all(&chunk).await.map_err(io)?;
            repl.update(|s| s.file_bytes_copied += chunk.len() as u64);
        }
        file.sync_all().await.map_err(io)?;
        drop(file);
        if kind == FileKind::Capture && !matches_sha(&part, &sha).await? {
            let _ = tokio::fs::remove_file(&part).await;
            tracing::warn!(capture = %sha, "a copied capture does not match its SHA-256: copying it again");
            continue;
        }
        let dest = path_of(repl, kind, &sha).expect("a valid name");
        repl.media.adopt(&part, &dest).map_err(|e| LinkError::Refused(e.to_string()))?;
        repl.update(|s| {
            if kind == FileKind::Capture {
                s.files_copied += 1;
            }
            s.files_left = s.files_left.saturating_sub(1);
        });
    }
    let _ = frame::write(&mut stream, &Frame::Bye("copied".into())).await;
    Ok(())
}

async fn matches_sha(path: &std::path::Path, sha: &str) -> Result<bool, LinkError> {
    use sha2::{Digest, Sha256};
    let mut f = tokio::fs::File::open(path).await.map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0; CHUNK];
    loop {
        let n = f.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(crate::secrets::hex(&h.finalize()) == sha)
}
