//! The S3 adapter: the few object operations sync needs, over reqwest
//! (rustls), each request presigned by `rusty-s3` (no SigV4 of our own),
//! and every failure sorted into retryable or permanent. URLs carry the
//! access key id and a signature, so they never reach an error message.

use crate::throttle::Throttle;
use bytes::Bytes;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::sync::Arc;
use std::time::Duration;

/// How long a presigned request stays valid: long enough for a slow part.
const SIGN_FOR: Duration = Duration::from_secs(3600);
/// Floor rate assumed for a request's time limit (the venue's worst uplink).
const MIN_RATE: u64 = 32 << 10;

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum S3Error {
    /// Network trouble, timeouts, 5xx, 429, slow-down: try again later.
    #[error("{0}")]
    Retryable(String),
    /// Bad credentials, no such bucket, access denied: fix the configuration.
    #[error("{0}")]
    Permanent(String),
    /// `If-None-Match: *` and the object is already there.
    #[error("the object already exists")]
    Exists,
    /// No such key, or no such multipart upload.
    #[error("not found")]
    NotFound,
}

impl S3Error {
    pub fn kind(&self) -> &'static str {
        match self {
            S3Error::Permanent(_) => "permanent",
            _ => "retryable",
        }
    }
}

/// Where the bucket is and how to reach it. `Debug` shows no secret.
#[derive(Clone)]
pub struct Target {
    pub endpoint: url::Url,
    pub region: String,
    pub bucket: String,
    pub prefix: String,
    pub path_style: bool,
    pub credentials: Option<Credentials>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{} at {} ({})", self.bucket, self.prefix, self.endpoint, self.region)
    }
}

#[derive(Clone)]
pub struct S3 {
    bucket: Arc<Bucket>,
    /// Swappable: fixed credentials (a new sync-credentials file) take
    /// effect on the next retry without a restart.
    credentials: Arc<std::sync::RwLock<Option<Arc<Credentials>>>>,
    http: reqwest::Client,
    prefix: String,
}

/// A response's metadata: size and entity tag.
#[derive(Clone, Debug)]
pub struct ObjectInfo {
    pub size: u64,
    pub etag: String,
}

fn error_code(body: &str) -> Option<String> {
    let start = body.find("<Code>")? + 6;
    let end = body[start..].find("</Code>")? + start;
    Some(body[start..end].to_string())
}

/// Sorts an S3 error response. `what` names the operation for the message.
pub fn classify(status: u16, body: &str, bucket: &str, what: &str) -> S3Error {
    let code = error_code(body).unwrap_or_default();
    let said =
        if code.is_empty() { format!("HTTP {status}") } else { format!("{code}, HTTP {status}") };
    match (status, code.as_str()) {
        (412, _) => S3Error::Exists,
        (404, "NoSuchBucket") => S3Error::Permanent(format!("bucket '{bucket}' does not exist ({said}): create it, or fix the bucket in --sync")),
        (404, "NoSuchUpload") | (404, "NoSuchKey") => S3Error::NotFound,
        (404, "") => S3Error::NotFound,
        (403, "RequestTimeTooSkewed") => S3Error::Permanent(format!("{what}: the box's clock is too far off ({said}): set the time (NTP) and sync resumes")),
        (401 | 403, _) | (400, "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AuthorizationHeaderMalformed") => S3Error::Permanent(format!(
            "{what}: access denied ({said}): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or DATA_DIR/sync-credentials) and the bucket policy"
        )),
        (408 | 429, _) | (500..=599, _) | (409, _) => S3Error::Retryable(format!("{what}: server busy or failing ({said})")),
        (400, "RequestTimeout" | "SlowDown" | "InternalError" | "ExpiredToken" | "IncompleteBody") => {
            S3Error::Retryable(format!("{what}: {said}"))
        }
        _ => S3Error::Permanent(format!("{what}: refused ({said}): check the bucket and endpoint given to --sync and the bucket's settings")),
    }
}

fn net_error(what: &str, e: reqwest::Error) -> S3Error {
    let e = e.without_url();
    let how = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "connection failed"
    };
    let mut detail = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        detail = format!("{detail}: {s}");
        src = s.source();
    }
    S3Error::Retryable(format!("{what}: {how} ({detail})"))
}

impl S3 {
    /// A client for `target`; a target that cannot be addressed is a
    /// permanent error (fix the configuration).
    pub fn new(target: &Target) -> Result<S3, S3Error> {
        let style = if target.path_style { UrlStyle::Path } else { UrlStyle::VirtualHost };
        let bucket = Bucket::new(
            target.endpoint.clone(),
            style,
            target.bucket.clone(),
            target.region.clone(),
        )
        .map_err(|e| {
            S3Error::Permanent(format!("bucket '{}' at {}: {e}", target.bucket, target.endpoint))
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // No read timeout: a capped upload may rightly hear nothing for
            // minutes; every request has a total limit instead.
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| S3Error::Permanent(format!("HTTP client: {e}")))?;
        Ok(S3 {
            bucket: Arc::new(bucket),
            credentials: Arc::new(std::sync::RwLock::new(target.credentials.clone().map(Arc::new))),
            http,
            prefix: target.prefix.trim_matches('/').to_string(),
        })
    }

    /// The full key for `rel` under the configured prefix.
    pub fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn creds(&self) -> Option<Arc<Credentials>> {
        self.credentials.read().expect("credentials lock").clone()
    }

    pub fn set_credentials(&self, c: Credentials) {
        *self.credentials.write().expect("credentials lock") = Some(Arc::new(c));
    }

    async fn send(
        &self,
        what: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, S3Error> {
        let resp = req.send().await.map_err(|e| net_error(what, e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        Err(classify(status, &body, self.bucket.name(), what))
    }

    /// A request's time limit: generous for the worst uplink, and for a
    /// capped rate shared by the parts in flight.
    fn limit(bytes: u64, throttle: Option<&Throttle>) -> Duration {
        let rate = throttle.map_or(MIN_RATE, |t| (t.rate() / 4).clamp(1, MIN_RATE));
        Duration::from_secs(30 + bytes / rate)
    }

    /// The cheap connectivity probe: HEAD on the bucket.
    pub async fn probe(&self) -> Result<(), S3Error> {
        let url = self.bucket.head_bucket(self.creds().as_deref()).sign(SIGN_FOR);
        let resp = self
            .http
            .head(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| net_error("probe", e))?;
        match resp.status().as_u16() {
            200..=299 => Ok(()),
            404 => Err(classify(404, "<Code>NoSuchBucket</Code>", self.bucket.name(), "probe")),
            s => Err(classify(s, "", self.bucket.name(), "probe")),
        }
    }

    /// PUT `key`; with `if_absent`, only if no object is there yet
    /// (`S3Error::Exists` otherwise).
    pub async fn put(
        &self,
        key: &str,
        body: Bytes,
        if_absent: bool,
        throttle: Option<&Throttle>,
    ) -> Result<String, S3Error> {
        let len = body.len() as u64;
        self.put_body(key, body_of(body, throttle), len, if_absent, throttle).await
    }

    /// PUT `key` from the file at `path`, read as it is sent (a database
    /// archive never sits in memory whole).
    pub async fn put_file(&self, key: &str, path: &std::path::Path) -> Result<String, S3Error> {
        use tokio::io::AsyncReadExt;
        let local = |e: std::io::Error| S3Error::Permanent(format!("{}: {e}", path.display()));
        let file = tokio::fs::File::open(path).await.map_err(local)?;
        let len = file.metadata().await.map_err(local)?.len();
        let chunks = futures_util::stream::unfold(file, |mut f| async move {
            let mut buf = bytes::BytesMut::with_capacity(256 << 10);
            match f.read_buf(&mut buf).await {
                Ok(0) => None,
                Ok(_) => Some((Ok::<_, std::io::Error>(buf.freeze()), f)),
                Err(e) => Some((Err(e), f)),
            }
        });
        self.put_body(key, reqwest::Body::wrap_stream(chunks), len, false, None).await
    }

    async fn put_body(
        &self,
        key: &str,
        body: reqwest::Body,
        len: u64,
        if_absent: bool,
        throttle: Option<&Throttle>,
    ) -> Result<String, S3Error> {
        let creds = self.creds();
        let mut action = self.bucket.put_object(creds.as_deref(), key);
        if if_absent {
            action.headers_mut().insert("if-none-match", "*");
        }
        let url = action.sign(SIGN_FOR);
        let mut req = self
            .http
            .put(url)
            .timeout(Self::limit(len, throttle))
            .header(reqwest::header::CONTENT_LENGTH, len);
        if if_absent {
            req = req.header(reqwest::header::IF_NONE_MATCH, "*");
        }
        let resp = self.send("put object", req.body(body)).await?;
        Ok(etag_of(&resp))
    }

    /// Every object whose key starts with `rel` (under the configured
    /// prefix): its key relative to that prefix, and its size.
    pub async fn list(&self, rel: &str) -> Result<Vec<Listed>, S3Error> {
        let creds = self.creds();
        let full = self.key(rel);
        let head = self.key("");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(creds.as_deref());
            action.with_prefix(full.as_str());
            if let Some(t) = &token {
                action.with_continuation_token(t.as_str());
            }
            let url = action.sign(SIGN_FOR);
            let resp = self
                .send("list objects", self.http.get(url).timeout(Duration::from_secs(60)))
                .await?;
            let text = resp.text().await.map_err(|e| net_error("list objects", e))?;
            let page = rusty_s3::actions::ListObjectsV2::parse_response(&text).map_err(|e| {
                S3Error::Retryable(format!("list objects: an answer that is not a listing ({e})"))
            })?;
            for c in page.contents {
                let key = c.key.strip_prefix(head.as_str()).unwrap_or(&c.key).to_string();
                let etag = c.etag.map(|e| e.trim_matches('"').to_string());
                out.push(Listed { key, size: c.size.unwrap_or(0), etag });
            }
            match page.next_continuation_token {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// DELETE `key` (a probe object, a test's lost segment).
    pub async fn delete(&self, key: &str) -> Result<(), S3Error> {
        let url = self.bucket.delete_object(self.creds().as_deref(), key).sign(SIGN_FOR);
        self.send("delete object", self.http.delete(url).timeout(Duration::from_secs(30))).await?;
        Ok(())
    }

    /// GET `key` whole (segments and manifests: small objects).
    pub async fn get(&self, key: &str) -> Result<Bytes, S3Error> {
        let creds = self.creds();
        let url = self.bucket.get_object(creds.as_deref(), key).sign(SIGN_FOR);
        let resp =
            self.send("get object", self.http.get(url).timeout(Duration::from_secs(60))).await?;
        resp.bytes().await.map_err(|e| net_error("get object", e))
    }

    /// GET `key` unless it still has entity tag `etag`: `Ok(None)` then
    /// (HTTP 304, nothing downloaded), else the bytes and their tag.
    pub async fn get_fresh(
        &self,
        key: &str,
        etag: Option<&str>,
    ) -> Result<Option<(Bytes, String)>, S3Error> {
        let url = self.bucket.get_object(self.creds().as_deref(), key).sign(SIGN_FOR);
        self.conditional_get(url, etag, "get object").await
    }

    /// The same for a plain URL (a manifest published over HTTPS).
    pub async fn get_url_fresh(
        &self,
        url: &url::Url,
        etag: Option<&str>,
    ) -> Result<Option<(Bytes, String)>, S3Error> {
        self.conditional_get(url.clone(), etag, "get manifest").await
    }

    async fn conditional_get(
        &self,
        url: url::Url,
        etag: Option<&str>,
        what: &str,
    ) -> Result<Option<(Bytes, String)>, S3Error> {
        let mut req = self.http.get(url).timeout(Duration::from_secs(60));
        if let Some(tag) = etag.filter(|t| !t.is_empty()) {
            req = req.header(reqwest::header::IF_NONE_MATCH, tag);
        }
        let resp = req.send().await.map_err(|e| net_error(what, e))?;
        match resp.status().as_u16() {
            304 => Ok(None),
            200..=299 => {
                let tag = etag_of(&resp);
                Ok(Some((resp.bytes().await.map_err(|e| net_error(what, e))?, tag)))
            }
            status => {
                let body = resp.text().await.unwrap_or_default();
                Err(classify(status, &body, self.bucket.name(), what))
            }
        }
    }

    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, S3Error> {
        let creds = self.creds();
        let url = self.bucket.head_object(creds.as_deref(), key).sign(SIGN_FOR);
        match self.send("head object", self.http.head(url).timeout(Duration::from_secs(30))).await {
            // The header, not `content_length()`: a HEAD response has no body.
            Ok(resp) => {
                let size = resp
                    .headers()
                    .get(reqwest::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                Ok(Some(ObjectInfo { size: size.unwrap_or(0), etag: etag_of(&resp) }))
            }
            Err(S3Error::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Starts a multipart upload whose parts carry CRC32 checksums, which
    /// the server checks on arrival.
    pub async fn create_multipart(&self, key: &str) -> Result<String, S3Error> {
        let creds = self.creds();
        let mut action = self.bucket.create_multipart_upload(creds.as_deref(), key);
        action.headers_mut().insert("x-amz-checksum-algorithm", "CRC32");
        let url = action.sign(SIGN_FOR);
        let req = self
            .http
            .post(url)
            .timeout(Duration::from_secs(30))
            .header("x-amz-checksum-algorithm", "CRC32");
        let resp = self.send("create multipart upload", req).await?;
        let text = resp.text().await.map_err(|e| net_error("create multipart upload", e))?;
        let parsed =
            rusty_s3::actions::CreateMultipartUpload::parse_response(&text).map_err(|e| {
                S3Error::Retryable(format!("create multipart upload: unreadable answer ({e})"))
            })?;
        Ok(parsed.upload_id().to_string())
    }

    /// Sends one part with its CRC32 (base64); returns the part's ETag.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part: u16,
        body: Bytes,
        crc32: &str,
        throttle: Option<&Throttle>,
    ) -> Result<String, S3Error> {
        let creds = self.creds();
        let mut action = self.bucket.upload_part(creds.as_deref(), key, part, upload_id);
        action.headers_mut().insert("x-amz-checksum-crc32", crc32.to_string());
        let url = action.sign(SIGN_FOR);
        let len = body.len() as u64;
        let req = self
            .http
            .put(url)
            .timeout(Self::limit(len, throttle))
            .header(reqwest::header::CONTENT_LENGTH, len)
            .header("x-amz-checksum-crc32", crc32)
            .body(body_of(body, throttle));
        let resp = self.send("upload part", req).await?;
        let tag = etag_of(&resp);
        if tag.is_empty() {
            return Err(S3Error::Retryable("upload part: the server sent no ETag".into()));
        }
        Ok(tag)
    }

    /// Completes with every part's number, ETag and CRC32, in order.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u16, String, String)],
    ) -> Result<(), S3Error> {
        let creds = self.creds();
        let action = self.bucket.complete_multipart_upload(
            creds.as_deref(),
            key,
            upload_id,
            std::iter::empty::<&str>(),
        );
        let url = action.sign(SIGN_FOR);
        // rusty-s3's body has no checksums; the XML is small enough to write.
        let esc = |s: &str| s.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;");
        let mut body = String::from("<CompleteMultipartUpload>");
        for (n, etag, crc) in parts {
            body += &format!("<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag><ChecksumCRC32>{}</ChecksumCRC32></Part>", esc(etag), esc(crc));
        }
        body += "</CompleteMultipartUpload>";
        let resp = self
            .send(
                "complete multipart upload",
                self.http.post(url).timeout(Duration::from_secs(120)).body(body),
            )
            .await?;
        // S3 may answer 200 and still report an error in the body.
        let text = resp.text().await.map_err(|e| net_error("complete multipart upload", e))?;
        if text.contains("<Error>") {
            return Err(classify(500, &text, self.bucket.name(), "complete multipart upload"));
        }
        Ok(())
    }
}

/// An object in a listing: its key relative to the prefix, size, ETag.
#[derive(Clone, Debug)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    /// Without quotes: the MD5 of a single PUT's bytes, or of the parts'
    /// MD5s then `-N` for a multipart upload (unless the bucket encrypts
    /// with KMS).
    pub etag: Option<String>,
}

/// base64 of the big-endian CRC32, as S3's `x-amz-checksum-crc32` wants it.
pub fn crc32_base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(crc32fast::hash(bytes).to_be_bytes())
}

fn etag_of(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The body as is, or paced by the capture bandwidth cap in 64 KiB steps.
fn body_of(body: Bytes, throttle: Option<&Throttle>) -> reqwest::Body {
    match throttle {
        None => reqwest::Body::from(body),
        Some(t) => {
            let t = t.clone();
            let chunks = futures_util::stream::unfold((body, t), |(mut rest, t)| async move {
                if rest.is_empty() {
                    return None;
                }
                let n = rest.len().min(64 << 10);
                let chunk = rest.split_to(n);
                t.take(n as u64).await;
                Some((Ok::<_, std::io::Error>(chunk), (rest, t)))
            });
            reqwest::Body::wrap_stream(chunks)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capped_upload_gets_time_enough_to_finish() {
        let part = 8u64 << 20;
        assert!(S3::limit(part, None) >= Duration::from_secs(256), "8 MiB at 32 KiB/s");
        let slow = Throttle::new(12_500); // 100 kbit/s, shared by the parts in flight
        assert!(
            S3::limit(part, Some(&slow)) >= Duration::from_secs(2 * part / 12_500),
            "{:?}",
            S3::limit(part, Some(&slow))
        );
    }

    #[test]
    fn crc32_is_big_endian_base64() {
        // CRC32("123456789") = 0xCBF43926, the check value of the standard.
        assert_eq!(crc32_base64(b"123456789"), "y/Q5Jg==");
    }

    #[test]
    fn errors_are_sorted_into_retryable_and_permanent() {
        let kind = |s, b: &str| classify(s, b, "bkt", "put").kind();
        assert_eq!(classify(412, "", "bkt", "put"), S3Error::Exists);
        assert_eq!(
            classify(404, "<Error><Code>NoSuchUpload</Code></Error>", "bkt", "x"),
            S3Error::NotFound
        );
        assert_eq!(kind(404, "<Error><Code>NoSuchBucket</Code></Error>"), "permanent");
        assert_eq!(kind(403, "<Error><Code>AccessDenied</Code></Error>"), "permanent");
        assert_eq!(kind(403, "<Error><Code>InvalidAccessKeyId</Code></Error>"), "permanent");
        assert_eq!(kind(400, "<Error><Code>InvalidBucketName</Code></Error>"), "permanent");
        assert_eq!(kind(503, "<Error><Code>SlowDown</Code></Error>"), "retryable");
        assert_eq!(kind(500, ""), "retryable");
        assert_eq!(kind(429, ""), "retryable");
        assert_eq!(kind(400, "<Error><Code>RequestTimeout</Code></Error>"), "retryable");
        let msg =
            classify(403, "<Error><Code>AccessDenied</Code></Error>", "bkt", "put").to_string();
        assert!(msg.contains("AccessDenied") && msg.contains("AWS_ACCESS_KEY_ID"), "{msg}");
    }
}
