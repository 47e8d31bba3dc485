//! A real box for tests: a temp data directory, a signed manifest made
//! with a fresh organiser key, the real store and the real HTTP server on
//! 127.0.0.1:0, and a reqwest client.

#![allow(dead_code)]

pub mod apt;
pub mod binary;
pub mod browser;
pub mod cache;
pub mod deb;
pub mod netns;
pub mod pretix;
pub mod s3;
pub mod standby;

use serde_json::{json, Value};
use std::net::SocketAddr;
use venuebox::api::{ApiConfig, AppState};
use venuebox::clock::Clock;
use venuebox::domain::ids::{EventId, TicketId, TierId};
use venuebox::domain::keys::{sign_detached, TrustedKeys};
use venuebox::domain::role::{Actor, Role};
use venuebox::organiser::demo::hash_pin;
use venuebox::organiser::keyfile::KeyFile;
use venuebox::organiser::tickets::mint;
use venuebox::server::{self, Config};

pub const EVENT: &str = "evt-test";
pub const DOOR_PIN: &str = "2468";
pub const SUPERVISOR_PIN: &str = "1357";

pub struct TestBox {
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub state: AppState,
    pub key: KeyFile,
    pub http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A manifest's `drops`: one drop `d` by `creator`, open from 2000 to
/// 2100, with `quantity` tees (`TEE`, 20.00).
pub fn open_drop(creator: &str, quantity: u32) -> Value {
    json!([{"id": "d", "name": "D", "creator": creator,
        "opens_at": "2000-01-01T00:00:00Z", "closes_at": "2100-01-01T00:00:00Z",
        "products": [{"sku": "TEE", "name": "Tee", "price_minor": 2000, "quantity": quantity}]}])
}

/// The test event: tiers ga and vip, gate `main` (everyone, entry and exit
/// with re-entry) and gate `vip` (vip only, entry only), a few listed
/// tickets, one staff member per role.
pub fn manifest(key: &KeyFile, version: u64, extra: impl FnOnce(&mut Value)) -> Vec<u8> {
    let pin_hash = hash_pin(DOOR_PIN);
    let mut m = json!({
        "schema": 1,
        "version": version,
        "event": {"id": EVENT, "name": "Test night", "timezone": "Europe/Berlin", "currency": "EUR",
                  "doors_at": "2026-11-27T18:00:00Z", "starts_at": "2026-11-27T19:00:00Z", "ends_at": "2026-11-28T02:00:00Z"},
        "organiser_keys": [{"public_key": key.public_key}],
        "tiers": [{"id": "ga", "name": "General", "price_minor": 2500, "capacity": 5000},
                  {"id": "vip", "name": "VIP", "price_minor": 9000, "capacity": 100}],
        "gates": [{"id": "main", "name": "Main door", "exit": true, "reentry": true},
                  {"id": "vip", "name": "VIP door", "tiers": ["vip"]}],
        "tickets": [
            {"id": "R-1", "tier": "ga", "secret": "SECRET-0001", "holder": "Ada"},
            {"id": "R-2", "tier": "ga", "secret": "SECRET-0002", "status": "unpaid"},
            {"id": "R-3", "tier": "ga", "secret": "SECRET-0003", "status": "cancelled"},
            {"id": "R-4", "tier": "ga", "secret": "SECRET-0004"},
            {"id": "R-5", "tier": "vip", "secret": "SECRET-0005", "holder": "Vic"}
        ],
        "staff": [{"name": "Dana", "role": "door", "pin_hash": pin_hash},
                  {"name": "Sam", "role": "supervisor", "pin_hash": hash_pin(SUPERVISOR_PIN)}]
    });
    extra(&mut m);
    serde_json::to_vec_pretty(&m).unwrap()
}

impl TestBox {
    pub async fn start() -> TestBox {
        Self::start_with(Clock::system(), ApiConfig::default()).await
    }

    pub async fn start_with(clock: Clock, api: ApiConfig) -> TestBox {
        Self::start_full(clock, api, |_| {}).await
    }

    /// A box with a creator `cr-a` and `cr-b` and the given capture limits.
    pub async fn start_captures(
        clock: Clock,
        captures: venuebox::media::uploads::CaptureConfig,
    ) -> TestBox {
        let api = ApiConfig { captures, ..ApiConfig::default() };
        Self::start_full(clock, api, |m| {
            m["creators"] = json!([
                {"id": "cr-a", "name": "Alice", "referral_codes": ["ALICE"]},
                {"id": "cr-b", "name": "Bo"}
            ]);
        })
        .await
    }

    /// A box whose manifest `extra` changed first (sections for selling...).
    pub async fn start_full(
        clock: Clock,
        api: ApiConfig,
        extra: impl FnOnce(&mut Value),
    ) -> TestBox {
        Self::start_devices(clock, api, venuebox::devices::Mode::Off, extra).await
    }

    /// A box with its devices in `mode` (Simulate: fake lights and printer).
    pub async fn start_devices(
        clock: Clock,
        api: ApiConfig,
        mode: venuebox::devices::Mode,
        extra: impl FnOnce(&mut Value),
    ) -> TestBox {
        Self::start_config(
            clock,
            |c| {
                c.api = api;
                c.devices = mode;
            },
            extra,
        )
        .await
    }

    /// A box syncing to a bucket, with creators `cr-a` (10 % of tickets,
    /// 20 % of drops) and `cr-b`, and whatever `extra` adds.
    pub async fn start_synced(
        sync: venuebox::sync::config::SyncConfig,
        extra: impl FnOnce(&mut Value),
    ) -> TestBox {
        Self::start_synced_at(Clock::system(), sync, extra).await
    }

    pub async fn start_synced_at(
        clock: Clock,
        sync: venuebox::sync::config::SyncConfig,
        extra: impl FnOnce(&mut Value),
    ) -> TestBox {
        Self::start_config(clock, |c| c.sync = Some(sync), |m| {
            m["creators"] = json!([
                {"id": "cr-a", "name": "Alice", "referral_codes": ["ALICE"], "payout": {"ticket_share_bp": 1000, "drop_share_bp": 2000}},
                {"id": "cr-b", "name": "Bo"}
            ]);
            extra(m);
        })
        .await
    }

    /// A box whose server configuration `configure` set.
    pub async fn start_config(
        clock: Clock,
        configure: impl FnOnce(&mut Config),
        extra: impl FnOnce(&mut Value),
    ) -> TestBox {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyFile::generate();
        let mut config = Config::new(dir.path());
        configure(&mut config);
        let state = server::open(&config, clock).unwrap();
        // As `venuebox serve` composes it: the admin's rehearsal is handed in.
        let _ = state.rehearse.set(std::sync::Arc::new(venuebox::rehearsal::FromRunningBox));
        let bytes = manifest(&key, 1, extra);
        let sig = sign_detached(&key.signing_key(), &bytes);
        let admin = Actor { name: "setup".into(), role: Role::Admin };
        state
            .store
            .import_manifest(bytes, Some(sig), TrustedKeys::default(), admin, state.clock.now())
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server::serve(state.clone(), listener, async move {
            let _ = rx.await;
        }));
        TestBox { dir, addr, state, key, http: reqwest::Client::new(), shutdown: Some(tx) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A token for `role`, made the way `venuebox token` makes one.
    pub async fn token(&self, role: Role) -> String {
        let actor = Actor { name: format!("test-{role}"), role };
        self.state
            .store
            .create_session(actor, self.state.clock.now(), 24 * 3_600_000)
            .await
            .unwrap()
            .0
    }

    /// Pairs a new staff device the way a phone does (a supervisor's code,
    /// traded over HTTP) and returns its credential.
    pub async fn pair_device(&self, name: &str) -> String {
        let actor = Actor { name: "test-supervisor".into(), role: Role::Supervisor };
        let (code, _) = self
            .state
            .store
            .create_pairing_code(actor, self.state.clock.now(), 600_000)
            .await
            .unwrap();
        let r = self
            .http
            .post(self.url("/api/v1/paired-devices"))
            .json(&json!({"code": code, "name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        v["credential"].as_str().unwrap().to_string()
    }

    /// Signs in with `pin` from the paired device `device`: (status, body).
    pub async fn sign_in(&self, device: &str, pin: &str) -> (u16, Value) {
        let r = self
            .http
            .post(self.url("/api/v1/session"))
            .json(&json!({"pin": pin, "device": device}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or_default())
    }

    /// A signed code for this event, minted with the organiser key.
    pub fn signed(&self, id: &str, tier: &str) -> String {
        self.signed_window(id, tier, (None, None))
    }

    pub fn signed_window(
        &self,
        id: &str,
        tier: &str,
        window: (Option<u32>, Option<u32>),
    ) -> String {
        mint(
            &self.key.signing_key(),
            &EventId::from(EVENT),
            &TierId::from(tier),
            [TicketId::from(id)],
            window,
        )
        .unwrap()
        .remove(0)
        .code
    }

    pub async fn scan(&self, token: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url("/api/v1/checkins"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let r = self.http.post(self.url(path)).bearer_auth(token).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).bearer_auth(token).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for TestBox {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A fresh nonce per call.
pub fn nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("n-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Decodes the one QR code in a PNG image.
pub fn decode_qr_png(bytes: &[u8]) -> String {
    let luma = image::load_from_memory(bytes).unwrap().to_luma8();
    let (w, h) = (luma.width() as usize, luma.height() as usize);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        luma.get_pixel(x as u32, y as u32).0[0]
    });
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().unwrap().1
}

/// The text of the QR code a terminal shows (`venuebox pair`, the
/// banner): lines of half blocks, light drawn as blocks, read back into
/// modules as a phone's camera would and decoded.
pub fn decode_terminal_qr(text: &str) -> String {
    let rows: Vec<Vec<char>> = text
        .lines()
        .filter(|l| !l.is_empty() && l.chars().all(|c| matches!(c, '█' | '▀' | '▄' | ' ')))
        .map(|l| l.chars().collect())
        .collect();
    assert!(!rows.is_empty(), "no QR code in:\n{text}");
    let (scale, quiet) = (4usize, 4usize);
    let w = rows.iter().map(Vec::len).max().unwrap();
    let (pw, ph) = ((w + 2 * quiet) * scale, (rows.len() * 2 + 2 * quiet) * scale);
    let light = |x: usize, y: usize| -> bool {
        let (mx, my) = (x / scale, y / scale);
        if mx < quiet || my < quiet || mx >= w + quiet || my >= rows.len() * 2 + quiet {
            return true;
        }
        let (cx, cy) = (mx - quiet, my - quiet);
        let c = rows[cy / 2].get(cx).copied().unwrap_or(' ');
        if cy % 2 == 0 {
            matches!(c, '█' | '▀')
        } else {
            matches!(c, '█' | '▄')
        }
    };
    let mut img =
        rqrr::PreparedImage::prepare_from_greyscale(
            pw,
            ph,
            |x, y| {
                if light(x, y) {
                    255
                } else {
                    0
                }
            },
        );
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in:\n{text}");
    grids[0].decode().unwrap().1
}

/// A real JPEG photo of `w`×`h` pixels (noise, so it does not compress away).
pub fn jpeg(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761) | 1;
    let img = image::RgbImage::from_fn(w, h, |_, _| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        image::Rgb([x as u8, (x >> 8) as u8, (x >> 16) as u8])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img).unwrap();
    out
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// `key value` pairs as a tus Upload-Metadata header.
pub fn tus_metadata(pairs: &[(&str, &str)]) -> String {
    use base64::Engine;
    pairs
        .iter()
        .map(|(k, v)| format!("{k} {}", base64::engine::general_purpose::STANDARD.encode(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// A whole file uploaded over tus at `base` as a creator's phone sends it
/// (Mara's, uploader Cam, with consent): created, then PATCHed in 4 MiB
/// chunks. The last status (204 stored, or what refused it).
pub async fn tus_upload(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
    mime: &str,
    bytes: &[u8],
) -> u16 {
    let meta = tus_metadata(&[
        ("filename", name),
        ("filetype", mime),
        ("creator", "cr-mara"),
        ("uploader", "Cam"),
        ("consent", "true"),
    ]);
    let r = http
        .post(format!("{base}/api/v1/uploads/"))
        .bearer_auth(token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", bytes.len().to_string())
        .header("upload-metadata", meta)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{name}: {}", r.text().await.unwrap());
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let url = if loc.starts_with("http") { loc } else { format!("{base}{loc}") };
    let mut status = 0;
    for (i, chunk) in bytes.chunks(4 << 20).enumerate() {
        let r = http
            .patch(&url)
            .bearer_auth(token)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", (i * (4 << 20)).to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        status = r.status().as_u16();
        if status != 204 {
            break;
        }
    }
    status
}
