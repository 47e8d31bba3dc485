//! Instants as Unix milliseconds, and their RFC 3339 text form on the wire
//! and in the manifest. The clock itself is read by callers, never here.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Unix time in milliseconds (UTC).
pub type Millis = i64;

/// Parses an RFC 3339 timestamp (`2026-11-27T19:00:00+01:00`) into Unix ms.
pub fn parse_rfc3339(s: &str) -> Result<Millis, String> {
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("'{s}' is not an RFC 3339 time such as 2026-11-27T19:00:00Z ({e})"))?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as Millis)
}

/// Formats Unix ms as RFC 3339 in UTC with millisecond precision.
pub fn format_rfc3339(ms: Millis) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let t = t.replace_nanosecond((ms.rem_euclid(1000) as u32) * 1_000_000).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_else(|_| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_offsets_normalised_to_utc() {
        let ms = parse_rfc3339("2026-11-27T20:00:00+01:00").unwrap();
        assert_eq!(format_rfc3339(ms), "2026-11-27T19:00:00Z");
        assert_eq!(parse_rfc3339("2026-11-27T19:00:00.250Z").unwrap(), ms + 250);
    }

    #[test]
    fn rejects_text_that_is_not_a_time() {
        let err = parse_rfc3339("tomorrow").unwrap_err();
        assert!(err.contains("RFC 3339"), "{err}");
    }
}
