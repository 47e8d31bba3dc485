//! The frames the two boxes exchange on the replication link: a length,
//! a kind and a body. Bodies are bounded (`MAX_FRAME`), read into memory
//! only after the length was checked; the link is mutually authenticated
//! before the first frame, so only a box of this event can send one.

use crate::store::replica::{LogRow, Role};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest frame either side accepts: one batch's changeset (a
/// manifest import with thousands of tickets fits with room to spare).
pub const MAX_FRAME: usize = 64 << 20;

/// The link's version: both boxes must speak the same one.
pub const PROTOCOL: u32 = 1;

/// What each side says first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    /// The box's node name in the pair (both share the event's box id).
    pub node: String,
    pub role: Role,
    pub epoch: i64,
    /// The newest log seq it holds, and that row's epoch.
    pub seq: i64,
    pub seq_epoch: Option<i64>,
    /// The seq its current epoch started at, when it was promoted.
    pub epoch_start: Option<i64>,
    /// The database's schema version: both must run the same package.
    pub schema: i64,
    /// What the connection is for: the log, or copying capture files (a
    /// second connection, so a long file never holds up an ack).
    #[serde(default)]
    pub purpose: Purpose,
    /// The port this box serves the staff app on (HTTPS), so the peer can
    /// tell phones where to go when this box takes over.
    #[serde(default)]
    pub web_port: Option<u16>,
    /// A satellite holds decisions it took cut off from the primary: it
    /// reports them (and gets a snapshot) before following again.
    #[serde(default)]
    pub apart: bool,
    /// A primary's standby (its link address), so a satellite can find
    /// it when it takes over.
    #[serde(default)]
    pub standby_link: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    #[default]
    Log,
    Files,
    /// A satellite following the primary's log (several may, beside the
    /// standby).
    Satellite,
}

/// Which file of a capture the follower wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    Capture,
    Thumbnail,
}

/// The follower asks for one file, from `offset` on (a resumed copy).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileWant {
    pub kind: FileKind,
    pub sha256: String,
    pub offset: u64,
}

/// The leader's answer: the file's whole length, then its bytes from the
/// offset in chunks; `None` when it does not hold that file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHead {
    pub bytes: Option<u64>,
}

/// A snapshot follows in chunks: what it covers and how to check it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHead {
    pub seq: i64,
    pub epoch: i64,
    pub bytes: u64,
    pub sha256: String,
    /// The follower took writes the leader never saw: it reports them
    /// before installing the snapshot.
    pub diverged: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    Hello(Hello),
    /// Log rows in seq order.
    Rows(Vec<LogRow>),
    /// The follower has applied (and fsynced) everything up to this seq.
    Ack(i64),
    /// Nothing to ship: the leader's newest seq, so the follower knows its lag.
    Ping(i64),
    SnapshotHead(SnapshotHead),
    /// Part of a snapshot or a file.
    Chunk(Vec<u8>),
    FileWant(FileWant),
    FileHead(FileHead),
    /// What a fenced old primary took alone (JSON, `replication::report`).
    Report(Vec<u8>),
    /// The sender closes the link, and why.
    Bye(String),
    /// A satellite's receipts printed at its own printers (JSON,
    /// `store::printing::PrintedHere`), for the primary to mark done.
    Printed(Vec<u8>),
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the link closed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the peer sent a frame of {0} bytes (at most {MAX_FRAME})")]
    TooLarge(usize),
    #[error("the peer sent a malformed frame: {0}")]
    Malformed(String),
}

fn kind(f: &Frame) -> u8 {
    match f {
        Frame::Hello(_) => 1,
        Frame::Rows(_) => 2,
        Frame::Ack(_) => 3,
        Frame::Ping(_) => 4,
        Frame::SnapshotHead(_) => 5,
        Frame::Chunk(_) => 6,
        Frame::Report(_) => 7,
        Frame::Bye(_) => 8,
        Frame::FileWant(_) => 9,
        Frame::FileHead(_) => 10,
        Frame::Printed(_) => 11,
    }
}

/// The frame as bytes: u32 length (of kind and body), u8 kind, body.
pub fn encode(f: &Frame) -> Vec<u8> {
    let mut body = Vec::new();
    match f {
        Frame::Hello(h) => body = serde_json::to_vec(h).expect("a hello serializes"),
        Frame::SnapshotHead(h) => body = serde_json::to_vec(h).expect("a head serializes"),
        Frame::FileWant(w) => body = serde_json::to_vec(w).expect("a want serializes"),
        Frame::FileHead(h) => body = serde_json::to_vec(h).expect("a head serializes"),
        Frame::Rows(rows) => {
            for r in rows {
                body.extend_from_slice(&r.seq.to_be_bytes());
                body.extend_from_slice(&r.epoch.to_be_bytes());
                body.extend_from_slice(&(r.changeset.len() as u32).to_be_bytes());
                body.extend_from_slice(&r.changeset);
            }
        }
        Frame::Ack(seq) | Frame::Ping(seq) => body.extend_from_slice(&seq.to_be_bytes()),
        Frame::Chunk(b) | Frame::Report(b) | Frame::Printed(b) => body.extend_from_slice(b),
        Frame::Bye(why) => body.extend_from_slice(why.as_bytes()),
    }
    let mut out = Vec::with_capacity(5 + body.len());
    out.extend_from_slice(&((body.len() + 1) as u32).to_be_bytes());
    out.push(kind(f));
    out.extend_from_slice(&body);
    out
}

fn bad(why: impl Into<String>) -> FrameError {
    FrameError::Malformed(why.into())
}

fn i64_at(b: &[u8], at: usize) -> Result<i64, FrameError> {
    let bytes: [u8; 8] =
        b.get(at..at + 8).and_then(|s| s.try_into().ok()).ok_or_else(|| bad("short number"))?;
    Ok(i64::from_be_bytes(bytes))
}

/// Parses one frame's kind and body.
pub fn decode(kind: u8, body: Vec<u8>) -> Result<Frame, FrameError> {
    Ok(match kind {
        1 => Frame::Hello(serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?),
        5 => Frame::SnapshotHead(serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?),
        9 => Frame::FileWant(serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?),
        10 => Frame::FileHead(serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?),
        2 => {
            let mut rows = Vec::new();
            let mut at = 0;
            while at < body.len() {
                let (seq, epoch) = (i64_at(&body, at)?, i64_at(&body, at + 8)?);
                let len = body
                    .get(at + 16..at + 20)
                    .map(|s| u32::from_be_bytes(s.try_into().expect("4 bytes")) as usize)
                    .ok_or_else(|| bad("short row"))?;
                let changeset = body
                    .get(at + 20..at + 20 + len)
                    .ok_or_else(|| bad("short changeset"))?
                    .to_vec();
                rows.push(LogRow { seq, epoch, changeset });
                at += 20 + len;
            }
            Frame::Rows(rows)
        }
        3 => Frame::Ack(i64_at(&body, 0)?),
        4 => Frame::Ping(i64_at(&body, 0)?),
        6 => Frame::Chunk(body),
        7 => Frame::Report(body),
        11 => Frame::Printed(body),
        8 => Frame::Bye(String::from_utf8_lossy(&body).into_owned()),
        k => return Err(bad(format!("unknown frame kind {k}"))),
    })
}

pub async fn write<W: AsyncWrite + Unpin>(w: &mut W, f: &Frame) -> Result<(), FrameError> {
    w.write_all(&encode(f)).await?;
    w.flush().await?;
    Ok(())
}

pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Frame, FrameError> {
    let len = r.read_u32().await? as usize;
    if len == 0 {
        return Err(bad("empty frame"));
    }
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let k = r.read_u8().await?;
    let mut body = vec![0; len - 1];
    r.read_exact(&mut body).await?;
    decode(k, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_frame_reads_back_as_written_and_bad_ones_are_refused() {
        let frames = vec![
            Frame::Hello(Hello {
                protocol: PROTOCOL,
                node: "b".into(),
                role: Role::Standby,
                epoch: 3,
                seq: 9,
                seq_epoch: Some(2),
                epoch_start: None,
                schema: 15,
                purpose: Purpose::Files,
                web_port: Some(8443),
                apart: false,
                standby_link: None,
            }),
            Frame::Rows(vec![
                LogRow { seq: 1, epoch: 1, changeset: vec![1, 2, 3] },
                LogRow { seq: 2, epoch: 1, changeset: vec![] },
            ]),
            Frame::Ack(7),
            Frame::Ping(8),
            Frame::SnapshotHead(SnapshotHead {
                seq: 4,
                epoch: 1,
                bytes: 10,
                sha256: "ab".into(),
                diverged: true,
            }),
            Frame::Chunk(vec![9; 100]),
            Frame::Report(b"{}".to_vec()),
            Frame::FileWant(FileWant { kind: FileKind::Capture, sha256: "cd".into(), offset: 5 }),
            Frame::FileHead(FileHead { bytes: None }),
            Frame::Bye("done".into()),
        ];
        let mut wire = Vec::new();
        for f in &frames {
            write(&mut wire, f).await.unwrap();
        }
        let mut r = &wire[..];
        for f in &frames {
            assert_eq!(&read(&mut r).await.unwrap(), f);
        }
        // A length beyond the bound is refused before anything is allocated.
        let mut huge = &((MAX_FRAME as u32) + 1).to_be_bytes()[..];
        assert!(matches!(read(&mut huge).await, Err(FrameError::TooLarge(_))));
        // A row whose length runs past the body.
        let mut short = encode(&Frame::Rows(vec![LogRow { seq: 1, epoch: 1, changeset: vec![1] }]));
        short[4 + 1 + 19] = 200;
        assert!(matches!(read(&mut &short[..]).await, Err(FrameError::Malformed(_))));
        assert!(matches!(decode(99, vec![]), Err(FrameError::Malformed(_))));
    }
}
