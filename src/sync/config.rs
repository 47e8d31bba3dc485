//! Sync settings: the bucket (`s3://BUCKET/PREFIX`), where it is, the
//! credentials, and the knobs of the loop. Endpoint, region and keys fall
//! back to the environment variables AWS tools use; keys may instead sit
//! in `DATA_DIR/sync-credentials`, which must be mode 0600.

use super::plan::SegmentRules;
use super::s3::Target;
use rusty_s3::Credentials;
use std::path::Path;
use std::time::Duration;

pub const CREDENTIALS_FILE: &str = "sync-credentials";

#[derive(Clone, Debug)]
pub struct SyncConfig {
    pub target: Target,
    pub segment: SegmentRules,
    /// How often an idle loop looks for new work.
    pub interval: Duration,
    /// First and largest wait after a retryable failure.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// While backing off, probe the bucket this often to notice the link return.
    pub probe_every: Duration,
    /// How often a permanent error is tried again (config may have been fixed).
    pub permanent_retry: Duration,
    /// Bytes per second for capture uploads; `None`: no cap.
    pub capture_rate: Option<u64>,
    /// Captures at least this big go by multipart upload.
    pub multipart_threshold: u64,
    pub part_size: u64,
    /// Parts of one capture in flight at once (memory: this × part size).
    pub part_concurrency: usize,
    /// How often to look for a newer signed manifest; `None`: never.
    pub manifest_poll: Option<Duration>,
    /// Fetch the manifest from this HTTPS URL (and URL.sig) instead of the bucket.
    pub manifest_url: Option<url::Url>,
    /// Local time (in the event's zone) of the nightly payout run.
    pub payouts_at: (i8, i8),
}

/// Why sync cannot be set up; every message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A `--sync*` flag (or its environment variable) has a wrong value.
    #[error("{0}")]
    Flag(String),
    /// The bucket's keys are missing, malformed or readable by others.
    #[error("{0}")]
    Credentials(String),
    /// The credentials file exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Io { path: std::path::PathBuf, source: std::io::Error },
}

/// What the command line gives (`--sync-*` flags, flattened into `serve`
/// and `sync now`); the rest comes from the environment.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SyncArgs {
    /// `s3://BUCKET/PREFIX` (the `--sync` flag, which turns sync on).
    #[arg(skip)]
    pub url: String,
    /// S3 endpoint (MinIO, R2, Garage...); default AWS_ENDPOINT_URL, else AWS for the region.
    #[arg(long = "sync-endpoint")]
    pub endpoint: Option<String>,
    /// Region; default AWS_REGION, else us-east-1.
    #[arg(long = "sync-region")]
    pub region: Option<String>,
    /// path or virtual; default path with a custom endpoint, virtual for AWS.
    #[arg(long = "sync-addressing")]
    pub addressing: Option<String>,
    /// Bandwidth cap for capture uploads, in kbit/s (0: none). Events are never capped.
    #[arg(long = "sync-capture-kbps")]
    pub capture_kbps: Option<u64>,
    /// An event segment closes when its first event is this many seconds old [default: 5].
    #[arg(long = "sync-segment-secs")]
    pub segment_secs: Option<u64>,
    /// ...or when it holds this many events [default: 10000].
    #[arg(long = "sync-segment-events")]
    pub segment_events: Option<usize>,
    /// ...or this many KiB of uncompressed NDJSON [default: 8192].
    #[arg(long = "sync-segment-kib")]
    pub segment_kib: Option<usize>,
    /// Seconds between looks for a newer signed manifest (0: never) [default: 30].
    #[arg(long = "manifest-poll-secs")]
    pub manifest_poll_secs: Option<u64>,
    /// Fetch manifests from this HTTPS URL (and URL.sig) instead of the bucket.
    #[arg(long = "manifest-url")]
    pub manifest_url: Option<String>,
    /// Local time (event time zone) of the nightly payout statements [default: 03:00].
    #[arg(long = "payouts-at", value_name = "HH:MM")]
    pub payouts_at: Option<String>,
}

impl SyncConfig {
    /// Resolves `args` against the environment (`env`) and the data
    /// directory. Errors say what to set; they never echo a secret.
    pub fn resolve(
        args: &SyncArgs,
        data_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SyncConfig, ConfigError> {
        let rest = args.url.strip_prefix("s3://").ok_or_else(|| {
            ConfigError::Flag(format!("--sync wants s3://BUCKET/PREFIX, not '{}'", args.url))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.len() < 3
            || !bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        {
            return Err(ConfigError::Flag(format!(
                "'{bucket}' is not a bucket name: 3-63 lowercase letters, digits, dots or hyphens"
            )));
        }
        let env_nonempty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let region = args
            .region
            .clone()
            .or_else(|| env_nonempty("AWS_REGION"))
            .or_else(|| env_nonempty("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        let custom = args
            .endpoint
            .clone()
            .or_else(|| env_nonempty("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env_nonempty("AWS_ENDPOINT_URL"));
        let endpoint_text =
            custom.clone().unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let endpoint: url::Url = endpoint_text.parse().map_err(|e| {
            ConfigError::Flag(format!("endpoint '{endpoint_text}' is not a URL ({e})"))
        })?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            let why = format!("endpoint '{endpoint_text}' must be http:// or https://");
            return Err(ConfigError::Flag(why));
        }
        let path_style = match args.addressing.as_deref() {
            Some("path") => true,
            Some("virtual") => false,
            None => custom.is_some(),
            Some(other) => {
                let why = format!("--sync-addressing is path or virtual, not '{other}'");
                return Err(ConfigError::Flag(why));
            }
        };
        let credentials = credentials(data_dir, env)?;
        let payouts_at = match &args.payouts_at {
            None => (3, 0),
            Some(t) => parse_hhmm(t).ok_or_else(|| {
                ConfigError::Flag(format!("--payouts-at wants HH:MM (24 h), not '{t}'"))
            })?,
        };
        let manifest_url = match &args.manifest_url {
            None => None,
            Some(u) => {
                let bad = |e| ConfigError::Flag(format!("--manifest-url '{u}': {e}"));
                Some(u.parse::<url::Url>().map_err(bad)?)
            }
        };
        let d = SegmentRules::default();
        let segment = SegmentRules {
            max_age_ms: args.segment_secs.map(|s| s as i64 * 1000).unwrap_or(d.max_age_ms),
            max_events: args.segment_events.filter(|n| *n > 0).unwrap_or(d.max_events),
            max_bytes: args.segment_kib.filter(|n| *n > 0).map(|k| k << 10).unwrap_or(d.max_bytes),
        };
        Ok(SyncConfig {
            target: Target {
                endpoint,
                region,
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
                path_style,
                credentials: Some(credentials),
            },
            segment,
            interval: Duration::from_secs(1),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            probe_every: Duration::from_secs(3),
            permanent_retry: Duration::from_secs(60),
            capture_rate: args.capture_kbps.filter(|k| *k > 0).map(|k| k * 1000 / 8),
            multipart_threshold: 8 << 20,
            part_size: 8 << 20,
            part_concurrency: 2,
            manifest_poll: Some(Duration::from_secs(args.manifest_poll_secs.unwrap_or(30)))
                .filter(|d| !d.is_zero()),
            manifest_url,
            payouts_at,
        })
    }

    /// `s3://bucket/prefix`: safe to show anywhere.
    pub fn describe(&self) -> String {
        format!("s3://{}/{} ({})", self.target.bucket, self.target.prefix, self.target.endpoint)
    }
}

fn parse_hhmm(t: &str) -> Option<(i8, i8)> {
    let (h, m) = t.split_once(':')?;
    let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some((h, m))
}

/// Keys from the environment, else from `DATA_DIR/sync-credentials`
/// (`AWS_ACCESS_KEY_ID=…` lines, as in an env file).
pub fn credentials(
    data_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Credentials, ConfigError> {
    let from_env = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"));
    if let (Some(k), Some(s)) = from_env {
        return Ok(match env("AWS_SESSION_TOKEN") {
            Some(t) if !t.is_empty() => Credentials::new_with_token(k, s, t),
            _ => Credentials::new(k, s),
        });
    }
    let path = data_dir.join(CREDENTIALS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::Credentials(format!(
                "no credentials for the bucket: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or write them to {} (mode 0600)",
                path.display()
            )))
        }
        Err(source) => return Err(ConfigError::Io { path, source }),
    };
    crate::secrets::check_private(&path).map_err(ConfigError::Credentials)?;
    let mut vals = std::collections::HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(ConfigError::Credentials(format!("{}: lines are NAME=VALUE (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)", path.display())));
        };
        vals.insert(
            k.trim().trim_start_matches("export ").to_string(),
            v.trim().trim_matches('"').to_string(),
        );
    }
    match (vals.get("AWS_ACCESS_KEY_ID"), vals.get("AWS_SECRET_ACCESS_KEY")) {
        (Some(k), Some(s)) => Ok(match vals.get("AWS_SESSION_TOKEN") {
            Some(t) => Credentials::new_with_token(k, s, t),
            None => Credentials::new(k, s),
        }),
        _ => Err(ConfigError::Credentials(format!(
            "{} needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The config, or the message the operator would read.
    fn resolve(url: &str, vars: &[(&str, &str)], dir: &Path) -> Result<SyncConfig, String> {
        let map: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let args = SyncArgs { url: url.into(), ..Default::default() };
        SyncConfig::resolve(&args, dir, &|k| map.get(k).cloned()).map_err(|e| e.to_string())
    }

    #[test]
    fn target_endpoint_region_and_keys_come_from_the_flag_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let keys =
            [("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"), ("AWS_SECRET_ACCESS_KEY", "sekrit-value")];
        let c = resolve("s3://venue-cloud/acme/rooftop/", &keys, dir.path()).unwrap();
        assert_eq!(
            (c.target.bucket.as_str(), c.target.prefix.as_str()),
            ("venue-cloud", "acme/rooftop")
        );
        assert_eq!(c.target.endpoint.as_str(), "https://s3.us-east-1.amazonaws.com/");
        assert!(!c.target.path_style, "AWS itself: virtual-host addressing");
        let vars = [
            keys[0],
            keys[1],
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("AWS_REGION", "eu-central-1"),
        ];
        let c = resolve("s3://venue-cloud", &vars, dir.path()).unwrap();
        assert!(
            c.target.path_style && c.target.region == "eu-central-1" && c.target.prefix.is_empty()
        );
        assert!(
            !format!("{:?} {}", c.target, c.describe()).contains("sekrit"),
            "no secret in what we print"
        );
        assert!(resolve("https://x/y", &keys, dir.path())
            .unwrap_err()
            .contains("s3://BUCKET/PREFIX"));
        assert!(resolve("s3://No_Such", &keys, dir.path())
            .unwrap_err()
            .contains("not a bucket name"));
    }

    #[test]
    fn the_credentials_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let err = resolve("s3://bkt", &[], dir.path()).unwrap_err();
        assert!(err.contains("AWS_ACCESS_KEY_ID") && err.contains(CREDENTIALS_FILE), "{err}");
        let path = dir.path().join(CREDENTIALS_FILE);
        std::fs::write(&path, "AWS_ACCESS_KEY_ID=AKID\nAWS_SECRET_ACCESS_KEY=topsecret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = resolve("s3://bkt", &[], dir.path()).unwrap_err();
        assert!(err.contains("chmod 600") && !err.contains("topsecret"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = resolve("s3://bkt", &[], dir.path()).unwrap();
        assert_eq!(c.target.credentials.unwrap().key(), "AKID");
    }
}
