//! The tus 1.0.0 resumable upload protocol under `/api/v1/uploads/`: core,
//! creation, creation-with-upload, creation-defer-length, expiration,
//! checksum (sha1, sha256) and termination — so any tus client works.
//!
//! Bytes stream to the upload's part file through a bounded buffer
//! (`media::append`; this module maps headers to it and its stops to
//! statuses); the SHA-256 of the whole file is computed while streaming. The offset a
//! HEAD reports is only what has been fsynced: a long PATCH checkpoints
//! every few MiB, and a PATCH cut off mid-body keeps what arrived (unless
//! it carried a checksum, which covers the whole body). One request at a
//! time writes an upload; others get 423.

use super::auth::Principal;
use super::error::ApiError;
use super::AppState;
use crate::domain::capture::{capture_meta, parse_metadata};
use crate::domain::error_code::ErrorCode;
use crate::domain::role::Role;
use crate::domain::time::Millis;
use crate::media::append::{disk_has_room, AppendError, Appender, Checksum};
use crate::media::uploads::{FinishError, Slot, DOOR_BUSY_WINDOW};
use crate::media::MediaError;
use crate::secrets::{hex, random_bytes};
use crate::store::captures::{NewUpload, UploadRow, UploadStatus};
use crate::store::sessions::token_digest;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha1::Sha1;
use sha2::{Digest, Sha256};

pub const VERSION: &str = "1.0.0";
pub const EXTENSIONS: &str =
    "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination";
pub const CHECKSUM_ALGORITHMS: &str = "sha1,sha256";
const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn tus_error(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError::new(status, code, message)
}

/// Every request but OPTIONS must speak tus 1.0.0.
fn check_resumable(h: &HeaderMap) -> Result<(), Box<Response>> {
    match header(h, "tus-resumable") {
        Some(VERSION) => Ok(()),
        other => {
            let msg = match other {
                None => "send Tus-Resumable: 1.0.0 (this is a tus upload endpoint)".to_string(),
                Some(v) => format!("tus version {v} is not supported: this box speaks tus 1.0.0"),
            };
            let mut r = tus_error(StatusCode::PRECONDITION_FAILED, ErrorCode::TusVersion, msg)
                .into_response();
            r.headers_mut().insert("tus-version", HeaderValue::from_static(VERSION));
            Err(Box::new(r))
        }
    }
}

fn http_date(ms: Millis) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&f).unwrap_or_default()
}

fn set(r: &mut Response, name: &'static str, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        r.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

/// Adds `Tus-Resumable` to every answer of the upload routes.
pub async fn add_tus_resumable(mut r: Response) -> Response {
    r.headers_mut().insert("tus-resumable", HeaderValue::from_static(VERSION));
    r
}

pub async fn options(State(st): State<AppState>) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    set(&mut r, "tus-version", VERSION);
    set(&mut r, "tus-extension", EXTENSIONS);
    set(&mut r, "tus-max-size", st.config.captures.max_upload_bytes);
    set(&mut r, "tus-checksum-algorithm", CHECKSUM_ALGORITHMS);
    r
}

/// The CORS layer answers every OPTIONS request as a preflight. A tus
/// client's plain OPTIONS (no `Access-Control-Request-Method`) must reach
/// the tus answer instead, and a browser's preflight gets the tus
/// capability headers too.
pub async fn options_beside_cors(
    State(st): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if req.method() != axum::http::Method::OPTIONS
        || !req.uri().path().starts_with("/api/v1/uploads")
    {
        return next.run(req).await;
    }
    let preflight = req.headers().contains_key("access-control-request-method");
    let tus = add_tus_resumable(options(State(st)).await).await;
    if !preflight {
        return tus;
    }
    let mut r = next.run(req).await;
    for (k, v) in tus.headers() {
        r.headers_mut().insert(k.clone(), v.clone());
    }
    r
}

fn require_uploader(p: &Principal) -> Result<(), ApiError> {
    p.require(Role::Capture)
}

fn parse_u64(h: &HeaderMap, name: &str) -> Result<Option<u64>, ApiError> {
    header(h, name)
        .map(|v| {
            v.trim().parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("{name} must be a non-negative integer"))
            })
        })
        .transpose()
}

fn check_disk(st: &AppState, needed: u64) -> Result<(), ApiError> {
    let room = disk_has_room(&st.media, &st.config.captures, needed).map_err(|e| {
        tracing::error!(error = %e, "cannot read free disk space");
        ApiError::internal()
    })?;
    if !room {
        return Err(tus_error(
            StatusCode::INSUFFICIENT_STORAGE,
            ErrorCode::DiskFull,
            "the box's disk is nearly full, so uploads are paused: try again after the captures have synced, or tell a supervisor",
        ));
    }
    Ok(())
}

pub async fn create(
    State(st): State<AppState>,
    p: Principal,
    h: HeaderMap,
    body: Body,
) -> Result<Response, Response> {
    check_resumable(&h).map_err(|r| *r)?;
    create_upload(st, p, h, body).await.map_err(IntoResponse::into_response)
}

async fn create_upload(
    st: AppState,
    p: Principal,
    h: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_uploader(&p)?;
    let cfg = &st.config.captures;
    let length = parse_u64(&h, "upload-length")?;
    let deferred = match header(&h, "upload-defer-length") {
        None => false,
        Some("1") => true,
        Some(_) => return Err(ApiError::bad_request("Upload-Defer-Length must be 1")),
    };
    if length.is_some() == deferred {
        return Err(ApiError::bad_request(
            "send exactly one of Upload-Length or Upload-Defer-Length: 1",
        ));
    }
    if length.is_some_and(|l| l > cfg.max_upload_bytes) {
        return Err(tus_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooLarge,
            format!("an upload may be at most {} bytes (Tus-Max-Size)", cfg.max_upload_bytes),
        ));
    }
    let raw_meta = header(&h, "upload-metadata").unwrap_or("").to_string();
    let meta = parse_metadata(&raw_meta)
        .and_then(|m| capture_meta(&m, p.creator_scope.as_ref()))
        .map_err(ApiError::bad_request)?;
    let ev = st.store.event().ok_or_else(|| {
        tus_error(
            StatusCode::CONFLICT,
            ErrorCode::NoEvent,
            "no event is loaded: an admin must import the manifest first",
        )
    })?;
    if ev.creator(&meta.creator).is_none() {
        return Err(ApiError::bad_request(format!(
            "creator '{}' is not in this event's manifest",
            meta.creator
        )));
    }
    let session = token_digest(&p.token);
    let owner = upload_owner(&p, &session);
    let per_owner = cfg.per_session_reserve_bytes();
    let moved_since = st.clock.now() - cfg.promise_idle_ms;
    let q = st.store.capture_quota(owner.clone(), per_owner, moved_since).await?;
    if q.owner_open >= cfg.max_open_per_session {
        return Err(tus_error(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooManyOpenUploads,
            format!("you already have {} uploads open: finish or delete some (DELETE the upload URL) before starting more", q.owner_open),
        ));
    }
    let asked = length.unwrap_or(0);
    if q.owner_reserved.saturating_add(asked) > per_owner {
        return Err(tus_error(
            StatusCode::INSUFFICIENT_STORAGE,
            ErrorCode::ReservationFull,
            format!("your open uploads already promise {} bytes: send them (or delete them) before starting more", q.owner_reserved),
        ));
    }
    if q.received.saturating_add(q.reserved).saturating_add(asked) > cfg.quota_bytes {
        return Err(tus_error(StatusCode::INSUFFICIENT_STORAGE, ErrorCode::QuotaReached, "the box's capture quota is used up: new uploads wait until captures have synced and been cleared"));
    }
    check_disk(&st, length.unwrap_or(0))?;
    let id = hex(&random_bytes::<16>());
    let media = st.media.clone();
    let part_id = id.clone();
    tokio::task::spawn_blocking(move || media.create_part(&part_id))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(media_error)?;
    let now = st.clock.now();
    let row = st
        .store
        .create_upload(NewUpload {
            id: id.clone(),
            length,
            metadata: raw_meta,
            meta,
            created_by: p.actor.name.clone(),
            session_sha256: session,
            owner,
            now,
            expires_at: now + cfg.upload_expiry_ms,
        })
        .await?;
    tracing::info!(upload = %id, creator = %row.creator, length = ?length, "upload created");
    let mut offset = 0;
    // creation-with-upload: the first bytes may come with the POST.
    if header(&h, "content-type") == Some(OFFSET_OCTET_STREAM) {
        let slot = st.uploads.slot(&id);
        let mut slot = slot.lock().await;
        offset = append(&st, &row, &mut slot, &h, body).await?;
    }
    let mut r = StatusCode::CREATED.into_response();
    set(&mut r, "location", format!("/api/v1/uploads/{id}"));
    set(&mut r, "upload-expires", http_date(now + cfg.upload_expiry_ms));
    set(&mut r, "upload-offset", offset);
    Ok(r)
}

/// Upload ids are 32 lowercase hex characters; anything else is not one,
/// and is answered without a lookup or a lock.
fn is_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Finds an upload this caller may touch: 404 unknown, 410 gone.
async fn upload_for(st: &AppState, p: &Principal, id: &str) -> Result<UploadRow, ApiError> {
    require_uploader(p)?;
    if !is_upload_id(id) {
        return Err(ApiError::not_found(format!(
            "upload {} is not known to this box: start a new upload",
            id.chars().take(40).collect::<String>()
        )));
    }
    let row = st.store.upload(id.to_string()).await?.ok_or_else(|| {
        ApiError::not_found(format!("upload {id} is not known to this box: start a new upload"))
    })?;
    if let Some(scope) = &p.creator_scope {
        if &row.creator != scope {
            return Err(ApiError::not_found(format!(
                "upload {id} is not known to this box: start a new upload"
            )));
        }
    }
    // Only the sign-in (or link) that made it continues or ends it, or a
    // supervisor; to anyone else it does not exist.
    let mine = row.session_sha256.as_deref().is_none_or(|s| s == token_digest(&p.token));
    if !mine && !p.actor.role.allows(Role::Supervisor) {
        return Err(ApiError::not_found(format!(
            "upload {id} is not known to this sign-in: start a new upload"
        )));
    }
    match row.status {
        UploadStatus::Active | UploadStatus::Complete => Ok(row),
        UploadStatus::Refused => Err(tus_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMedia,
            "this upload was refused: it is not a photo or video the box accepts",
        )),
        other => Err(tus_error(
            StatusCode::GONE,
            ErrorCode::UploadGone,
            format!("upload {id} was {}: start a new upload", other.as_str()),
        )),
    }
}

pub async fn head(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    h: HeaderMap,
) -> Result<Response, Response> {
    check_resumable(&h).map_err(|r| *r)?;
    let row = upload_for(&st, &p, &id).await.map_err(IntoResponse::into_response)?;
    let mut r = StatusCode::OK.into_response();
    set(&mut r, "upload-offset", row.offset);
    match row.length {
        Some(l) => set(&mut r, "upload-length", l),
        None => set(&mut r, "upload-defer-length", 1),
    }
    if !row.metadata.is_empty() {
        set(&mut r, "upload-metadata", &row.metadata);
    }
    set(&mut r, "cache-control", "no-store");
    if row.status == UploadStatus::Active {
        set(&mut r, "upload-expires", http_date(row.expires_at));
    }
    Ok(r)
}

pub async fn patch(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    h: HeaderMap,
    body: Body,
) -> Result<Response, Response> {
    check_resumable(&h).map_err(|r| *r)?;
    patch_upload(st, p, id, h, body).await.map_err(IntoResponse::into_response)
}

async fn patch_upload(
    st: AppState,
    p: Principal,
    id: String,
    h: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if header(&h, "content-type") != Some(OFFSET_OCTET_STREAM) {
        return Err(tus_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::ContentType,
            format!("a PATCH body must have Content-Type: {OFFSET_OCTET_STREAM}"),
        ));
    }
    let claimed = parse_u64(&h, "upload-offset")?
        .ok_or_else(|| ApiError::bad_request("Upload-Offset is required"))?;
    // Only an upload that exists and is the caller's gets a slot, so made-up
    // ids never grow the slot table.
    upload_for(&st, &p, &id).await?;
    let slot = st.uploads.slot(&id);
    let Ok(mut slot) = slot.try_lock() else {
        return Err(tus_error(
            StatusCode::LOCKED,
            ErrorCode::UploadBusy,
            "another request is writing this upload: wait for it, then HEAD for the offset",
        ));
    };
    // Read the row only once the upload is ours, so the offset is current.
    let row = upload_for(&st, &p, &id).await?;
    if claimed != row.offset {
        return Err(tus_error(StatusCode::CONFLICT, ErrorCode::OffsetMismatch, format!("Upload-Offset {claimed} does not match the upload's offset {}: HEAD the upload and resume from there", row.offset)));
    }
    let offset = if row.status == UploadStatus::Complete {
        row.offset
    } else {
        append(&st, &row, &mut slot, &h, body).await?
    };
    let mut r = StatusCode::NO_CONTENT.into_response();
    set(&mut r, "upload-offset", offset);
    if offset != row.length.unwrap_or(u64::MAX) {
        set(
            &mut r,
            "upload-expires",
            http_date(st.clock.now() + st.config.captures.upload_expiry_ms),
        );
    }
    Ok(r)
}

pub async fn delete(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    h: HeaderMap,
) -> Result<Response, Response> {
    check_resumable(&h).map_err(|r| *r)?;
    let result: Result<Response, ApiError> = async {
        upload_for(&st, &p, &id).await?;
        terminate(&st, &id, || upload_for(&st, &p, &id)).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await;
    result.map_err(IntoResponse::into_response)
}

/// Ends an upload that `current` finds (read again once no request writes
/// it) and removes its partial file. A finished upload's capture stays: it
/// is proof; only the upload resource ends (a supervisor hides a capture).
pub(super) async fn terminate<F, Fut>(st: &AppState, id: &str, current: F) -> Result<(), ApiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<UploadRow, ApiError>>,
{
    let slot = st.uploads.slot(id);
    let Ok(_held) = slot.try_lock() else {
        return Err(tus_error(
            StatusCode::LOCKED,
            ErrorCode::UploadBusy,
            "another request is writing this upload: try again when it ends",
        ));
    };
    let row = current().await?;
    st.store.end_upload(row.id.clone(), UploadStatus::Terminated, None, st.clock.now()).await?;
    st.media.remove_part(&row.id);
    st.uploads.forget(&row.id);
    Ok(())
}

/// Whose promise an upload is: a staff member by name (across their
/// sign-ins), or one upload link.
fn upload_owner(p: &Principal, session: &str) -> String {
    match &p.creator_scope {
        Some(_) => format!("link:{}", &session[..12]),
        None => format!("staff:{}", p.actor.name),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerQuery {
    owner: String,
}

/// `DELETE /api/v1/open-uploads?owner=…`: an admin ends every open upload
/// of one staff member or upload link at once.
pub async fn clear_owner(
    State(st): State<AppState>,
    p: Principal,
    super::json::Query(q): super::json::Query<OwnerQuery>,
) -> Result<axum::Json<Cleared>, ApiError> {
    p.require(Role::Admin)?;
    if q.owner.is_empty() || q.owner.len() > 200 {
        return Err(ApiError::bad_request(
            "owner must be an owner from GET /api/v1/open-uploads, e.g. staff:Cam",
        ));
    }
    let ids = st.store.open_uploads_of(q.owner.clone()).await?;
    let mut cleared = 0;
    for id in ids {
        let find = || async {
            let row = st.store.upload(id.clone()).await?;
            row.filter(|r| r.status == UploadStatus::Active)
                .ok_or_else(|| ApiError::not_found("upload already ended"))
        };
        if find().await.is_ok() && terminate(&st, &id, find).await.is_ok() {
            cleared += 1;
        }
    }
    tracing::warn!(owner = %q.owner, cleared, by = %p.actor.name, "an owner's open uploads cleared by an admin");
    Ok(axum::Json(Cleared { cleared }))
}

/// How many uploads an admin's clearing ended.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Cleared {
    cleared: usize,
}

/// `GET /api/v1/open-uploads`: what is in progress and what it reserves.
pub async fn list_open(
    State(st): State<AppState>,
    p: Principal,
) -> Result<axum::Json<OpenUploads>, ApiError> {
    p.require(Role::Admin)?;
    let uploads = st.store.open_uploads(1000).await?;
    let reserved_bytes: u64 =
        uploads.iter().map(|u| u.length.unwrap_or(u.offset).saturating_sub(u.offset)).sum();
    let received_bytes: u64 = uploads.iter().map(|u| u.offset).sum();
    Ok(axum::Json(OpenUploads { uploads, received_bytes, reserved_bytes }))
}

/// Uploads in progress, what they received and what they still promise.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct OpenUploads {
    uploads: Vec<crate::store::captures::OpenUpload>,
    received_bytes: u64,
    reserved_bytes: u64,
}

/// `DELETE /api/v1/open-uploads/{id}`: an admin ends someone's upload
/// (e.g. one that reserves space and never sends).
pub async fn clear_open(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    p.require(Role::Admin)?;
    let find = || async {
        let row = if is_upload_id(&id) { st.store.upload(id.clone()).await? } else { None };
        row.filter(|r| r.status == UploadStatus::Active).ok_or_else(|| {
            ApiError::not_found(format!(
                "no upload in progress with id '{}'",
                id.chars().take(40).collect::<String>()
            ))
        })
    };
    find().await?;
    terminate(&st, &id, find).await?;
    tracing::info!(upload = %id, by = %p.actor.name, "open upload cleared by an admin");
    Ok(StatusCode::NO_CONTENT)
}

fn parse_checksum(h: &HeaderMap) -> Result<Option<Checksum>, ApiError> {
    let Some(v) = header(h, "upload-checksum") else {
        return Ok(None);
    };
    let (alg, b64) = v.trim().split_once(' ').ok_or_else(|| {
        ApiError::bad_request("Upload-Checksum must be '<algorithm> <base64 digest>'")
    })?;
    let want = B64
        .decode(b64.trim())
        .map_err(|_| ApiError::bad_request("Upload-Checksum digest is not base64"))?;
    match alg {
        "sha1" => Ok(Some(Checksum::Sha1(Sha1::new(), want))),
        "sha256" => Ok(Some(Checksum::Sha256(Sha256::new(), want))),
        other => Err(ApiError::bad_request(format!("checksum algorithm '{other}' is not supported: use sha1 or sha256 (Tus-Checksum-Algorithm)"))),
    }
}

fn media_error(e: MediaError) -> ApiError {
    tracing::error!(error = %e, "capture file error");
    ApiError::internal()
}

/// The upload's length after this PATCH: an `Upload-Length` it sends (for
/// a deferred length) may set it once, between the offset and the limit.
fn new_length(h: &HeaderMap, row: &UploadRow, max: u64) -> Result<Option<u64>, ApiError> {
    let Some(l) = parse_u64(h, "upload-length")? else { return Ok(row.length) };
    match row.length {
        Some(known) if known != l => {
            Err(ApiError::bad_request("Upload-Length cannot change once set"))
        }
        _ if l < row.offset || l > max => Err(tus_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooLarge,
            format!("Upload-Length must be between the offset and {max}"),
        )),
        _ => Ok(Some(l)),
    }
}

/// Appends a request body at the upload's offset (`media::append`);
/// returns the new durable offset.
async fn append(
    st: &AppState,
    row: &UploadRow,
    slot: &mut Slot,
    h: &HeaderMap,
    body: Body,
) -> Result<u64, ApiError> {
    let cfg = &st.config.captures;
    let length = new_length(h, row, cfg.max_upload_bytes)?;
    let check = parse_checksum(h)?;
    let door_busy = || st.metrics.door_busy_within(DOOR_BUSY_WINDOW);
    let appender = Appender { life: st.uploads_lifecycle(), config: cfg, door_busy: &door_busy };
    appender.append(row, slot, length, check, body.into_data_stream()).await.map_err(append_error)
}

/// What a stopped append means in tus: the status, and whether what
/// arrived is kept.
fn append_error(e: AppendError) -> ApiError {
    match e {
        AppendError::TooLarge { limit } => tus_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooLarge,
            format!("the body goes past the upload's length ({limit} bytes)"),
        ),
        AppendError::CutBeforeChecksum => tus_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::Interrupted,
            "the body was cut off before its checksum could be checked: resume from the offset",
        ),
        AppendError::ChecksumMismatch => tus_error(
            StatusCode::from_u16(460).expect("460 is a valid status"),
            ErrorCode::ChecksumMismatch,
            "the chunk's checksum does not match: it was discarded, send it again",
        ),
        AppendError::DiskFull => tus_error(StatusCode::INSUFFICIENT_STORAGE, ErrorCode::DiskFull, "the box's disk is nearly full, so uploads are paused (what arrived is kept): resume after the captures have synced, or tell a supervisor"),
        AppendError::Interrupted => tus_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::Interrupted,
            "the connection dropped: what arrived is kept, resume from the offset",
        ),
        AppendError::Finish(e) => finish_error(e),
        AppendError::Media(e) => media_error(e),
        AppendError::Store(e) => e.into(),
    }
}

fn finish_error(e: FinishError) -> ApiError {
    match e {
        FinishError::Media(MediaError::Unsupported) => tus_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMedia,
            "this file is not a photo or video the box accepts (JPEG, PNG, HEIC/HEIF, WebP, MP4, MOV): it was not stored",
        ),
        FinishError::Media(e) => media_error(e),
        FinishError::Store(e) => e.into(),
    }
}
