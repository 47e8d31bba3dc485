//! Live proof captures: what an uploader tells us about a photo or video
//! (the tus `Upload-Metadata` header), and what kind of file its first
//! bytes say it is. Files themselves are handled in `media`.

use super::ids::CreatorId;
use super::time::{parse_rfc3339, Millis};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Serialize;
use std::collections::BTreeMap;

/// What the first bytes of an upload said: its type, its size in pixels
/// and its own capture time, when it says them (`media::probe` reads it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Probe {
    pub media: MediaType,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// From the file itself, when it says.
    pub captured_at: Option<Millis>,
}

/// The file types the box accepts, recognised by their bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum MediaType {
    Jpeg,
    Png,
    Heic,
    Webp,
    Mp4,
    Mov,
}

impl MediaType {
    pub fn mime(self) -> &'static str {
        match self {
            MediaType::Jpeg => "image/jpeg",
            MediaType::Png => "image/png",
            MediaType::Heic => "image/heic",
            MediaType::Webp => "image/webp",
            MediaType::Mp4 => "video/mp4",
            MediaType::Mov => "video/quicktime",
        }
    }

    pub fn is_video(self) -> bool {
        matches!(self, MediaType::Mp4 | MediaType::Mov)
    }

    pub fn parse_mime(s: &str) -> Option<MediaType> {
        [
            MediaType::Jpeg,
            MediaType::Png,
            MediaType::Heic,
            MediaType::Webp,
            MediaType::Mp4,
            MediaType::Mov,
        ]
        .into_iter()
        .find(|m| m.mime() == s)
    }
}

/// How many leading bytes [`sniff`] needs.
pub const SNIFF_LEN: usize = 32;

/// The media type of a file from its first bytes (magic numbers), never
/// from its name or the type the client claimed.
pub fn sniff(head: &[u8]) -> Option<MediaType> {
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(MediaType::Jpeg);
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some(MediaType::Png);
    }
    if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return Some(MediaType::Webp);
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        let major = &head[8..12];
        return match major {
            b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"hevm" | b"hevs"
            | b"mif1" | b"msf1" => Some(MediaType::Heic),
            b"qt  " => Some(MediaType::Mov),
            b"isom" | b"iso2" | b"iso3" | b"iso4" | b"iso5" | b"iso6" | b"mp41" | b"mp42"
            | b"avc1" | b"M4V " | b"MSNV" | b"3gp4" | b"3gp5" | b"3g2a" | b"mmp4" | b"dash" => {
                Some(MediaType::Mp4)
            }
            _ => None,
        };
    }
    // Old QuickTime files start straight with an atom.
    if head.len() >= 8
        && matches!(&head[4..8], b"moov" | b"mdat" | b"wide" | b"free" | b"skip" | b"pnot")
    {
        return Some(MediaType::Mov);
    }
    None
}

/// The tus `Upload-Metadata` header: comma-separated `key base64value`.
pub fn parse_metadata(header: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for pair in header.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut parts = pair.splitn(2, ' ');
        let key = parts.next().unwrap_or_default();
        if key.is_empty() || !key.is_ascii() || key.contains(' ') {
            return Err(format!("Upload-Metadata key '{key}' is not valid"));
        }
        let value = match parts.next().map(str::trim) {
            None | Some("") => String::new(),
            Some(v) => {
                let bytes = B64
                    .decode(v)
                    .map_err(|_| format!("Upload-Metadata value of '{key}' is not base64"))?;
                String::from_utf8(bytes)
                    .map_err(|_| format!("Upload-Metadata value of '{key}' is not UTF-8"))?
            }
        };
        if out.insert(key.to_string(), value).is_some() {
            return Err(format!("Upload-Metadata key '{key}' appears twice"));
        }
    }
    Ok(out)
}

/// What the uploader says about a capture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaptureMeta {
    pub filename: Option<String>,
    pub claimed_type: Option<String>,
    pub creator: CreatorId,
    /// Staff name or an attendee's ticket id.
    pub uploader: Option<String>,
    pub consent: bool,
    /// The device's capture time, used when the file has none.
    pub captured_at: Option<Millis>,
}

/// Reads the capture fields from tus metadata. `scope` is the creator an
/// upload link is bound to: it is the default, and no other is allowed.
/// Keys follow tus-js-client and Uppy (`filename`, `filetype`) plus ours.
pub fn capture_meta(
    m: &BTreeMap<String, String>,
    scope: Option<&CreatorId>,
) -> Result<CaptureMeta, String> {
    let get = |keys: &[&str]| {
        keys.iter().find_map(|k| m.get(*k)).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    };
    let creator =
        match (get(&["creator", "creator_id"]), scope) {
            (Some(c), Some(s)) if c != s.as_str() => {
                return Err(format!("this upload link is for creator '{s}', not '{c}'"))
            }
            (Some(c), _) => CreatorId(c),
            (None, Some(s)) => s.clone(),
            (None, None) => return Err(
                "Upload-Metadata needs 'creator': the id of the creator this capture is proof for"
                    .into(),
            ),
        };
    let consent = match get(&["consent"]).as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("false") | Some("0") | Some("no") => false,
        Some("true") | Some("1") | Some("yes") => true,
        Some(other) => {
            return Err(format!("Upload-Metadata consent '{other}' must be true or false"))
        }
    };
    let captured_at = get(&["captured_at"])
        .map(|t| parse_rfc3339(&t).map_err(|e| format!("Upload-Metadata captured_at: {e}")))
        .transpose()?;
    Ok(CaptureMeta {
        filename: get(&["filename", "name"]),
        claimed_type: get(&["filetype", "content_type", "type"]),
        creator,
        uploader: get(&["uploader"]),
        consent,
        captured_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_table() {
        let cases: Vec<(&[u8], Option<MediaType>)> = vec![
            (b"\xFF\xD8\xFF\xE1....Exif", Some(MediaType::Jpeg)),
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", Some(MediaType::Png)),
            (b"RIFF\x10\0\0\0WEBPVP8 ", Some(MediaType::Webp)),
            (b"\0\0\0\x18ftypheic\0\0\0\0mif1heic", Some(MediaType::Heic)),
            (b"\0\0\0\x18ftypmif1\0\0\0\0mif1heic", Some(MediaType::Heic)),
            (b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2", Some(MediaType::Mp4)),
            (b"\0\0\0\x14ftypqt  \0\0\x02\0qt  ", Some(MediaType::Mov)),
            (b"\0\0\0\x08wide\0\0\0\0mdat", Some(MediaType::Mov)),
            (b"\0\0\0\x18ftypavif\0\0\0\0", None),
            (b"GIF89a", None),
            (b"%PDF-1.7", None),
            (b"", None),
            (b"\xFF\xD8", None),
        ];
        for (bytes, want) in cases {
            assert_eq!(sniff(bytes), want, "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn metadata_parses_tus_pairs_and_refuses_garbage() {
        let m =
            parse_metadata("filename bXkucG5n,creator Y3ItYQ==,consent dHJ1ZQ==,empty").unwrap();
        assert_eq!(m["filename"], "my.png");
        assert_eq!(m["creator"], "cr-a");
        assert_eq!(m["empty"], "");
        assert!(parse_metadata("filename !!!").unwrap_err().contains("base64"));
        assert!(parse_metadata("a YQ==,a YQ==").unwrap_err().contains("twice"));
    }

    #[test]
    fn capture_meta_table() {
        let m = |pairs: &[(&str, &str)]| {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()
        };
        let scope = CreatorId::from("cr-a");
        let ok = capture_meta(
            &m(&[
                ("creator", "cr-a"),
                ("consent", "yes"),
                ("filetype", "image/png"),
                ("captured_at", "2026-11-27T20:00:00Z"),
            ]),
            None,
        )
        .unwrap();
        assert!(ok.consent);
        assert_eq!(ok.claimed_type.as_deref(), Some("image/png"));
        assert!(ok.captured_at.is_some());
        assert_eq!(
            capture_meta(&m(&[]), Some(&scope)).unwrap().creator,
            scope,
            "a link supplies its creator"
        );
        assert!(
            !capture_meta(&m(&[("creator", "cr-a")]), None).unwrap().consent,
            "no consent unless given"
        );
        assert!(capture_meta(&m(&[]), None).unwrap_err().contains("creator"));
        assert!(capture_meta(&m(&[("creator", "cr-b")]), Some(&scope))
            .unwrap_err()
            .contains("upload link"));
        assert!(capture_meta(&m(&[("creator", "cr-a"), ("consent", "maybe")]), None)
            .unwrap_err()
            .contains("true or false"));
        assert!(capture_meta(&m(&[("creator", "cr-a"), ("captured_at", "noon")]), None)
            .unwrap_err()
            .contains("RFC 3339"));
    }
}
