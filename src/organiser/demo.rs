//! The demo event: everything needed to try the box without an organiser
//! account — a fresh organiser key, a signed manifest with three tiers, two
//! gates and five staff, 1,000 signed tickets and 100 random-secret
//! tickets, their QR images, and a README saying how to try it.

use super::keyfile::KeyFile;
use super::tickets::{mint, write_out};
use super::{io, sign_manifest, OrganiserError};
use crate::domain::ids::{EventId, TicketId, TierId};
use crate::domain::time::{format_rfc3339, Millis};
use crate::secrets::{hex, random_bytes};
use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::Argon2;
use serde_json::json;
use std::path::{Path, PathBuf};

pub const EVENT_ID: &str = "evt-demo";
/// (name, role, PIN) of the demo staff; the PINs are printed in README.txt.
pub const STAFF: [(&str, &str, &str); 5] = [
    ("Dana at the door", "door", "1111"),
    ("Max at merch", "merch", "2222"),
    ("Cam the capturer", "capture", "3333"),
    ("Sam the supervisor", "supervisor", "4444"),
    ("Alex the admin", "admin", "5555"),
];

pub struct Demo {
    pub dir: PathBuf,
    pub manifest: PathBuf,
    pub signature: PathBuf,
}

/// An argon2id PHC string for a PIN, as the manifest's `pin_hash`.
pub fn hash_pin(pin: &str) -> String {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).expect("16 bytes is a valid salt");
    Argon2::default()
        .hash_password(pin.as_bytes(), &salt)
        .expect("argon2 with default parameters")
        .to_string()
}

/// Writes the demo event into `data_dir/demo/` and returns where.
/// `box_key` (base64) is listed in `box_keys` so walk-up tickets this box
/// mints scan at any box of the event.
pub fn create(data_dir: &Path, now: Millis, box_key: Option<&str>) -> Result<Demo, OrganiserError> {
    let dir = data_dir.join("demo");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let key = KeyFile::generate();
    key.save(&dir.join("organiser.key"))?;
    let sk = key.signing_key();
    let event = EventId::from(EVENT_ID);

    // Signed tickets: 800 general, 150 VIP, 50 crew. They are deliberately
    // not listed in the manifest — like tickets sold online after the last
    // sync, they scan on their signature alone.
    let mut rows = Vec::new();
    for (tier, range) in [("ga", 1..=800), ("vip", 801..=950), ("crew", 951..=1000)] {
        let ids = range.map(|n| TicketId(format!("S-{n:04}")));
        for m in mint(&sk, &event, &TierId::from(tier), ids, (None, None))? {
            rows.push((m.id, m.tier, m.code));
        }
    }
    // Random-secret tickets: listed in the manifest, 100 general admission.
    let mut listed = Vec::new();
    for n in 1..=100 {
        let id = TicketId(format!("R-{n:03}"));
        let secret = format!("VBR-{}", hex(&random_bytes::<8>()).to_uppercase());
        listed
            .push(json!({"id": id, "tier": "ga", "secret": secret, "holder": format!("Guest {n}"),
                   "order": format!("DEMO{n:03}"), "email": format!("guest{n}@example.org")}));
        rows.push((id, TierId::from("ga"), secret));
    }
    let staff: Vec<_> = STAFF
        .iter()
        .map(|(name, role, pin)| json!({"name": name, "role": role, "pin_hash": hash_pin(pin)}))
        .collect();
    let hour = 3_600_000;
    let minute = 60_000;
    let at = |offset: Millis| format_rfc3339(now + offset);
    let mut scholarship_codes: Vec<_> = (1..=10)
        .map(|n| json!({"code": format!("MARA-FRIEND-{n:02}"), "creator": "cr-mara"}))
        .collect();
    scholarship_codes.push(json!({"code": "JULES-CREW", "creator": "cr-jules", "cap": 5}));
    let manifest = json!({
        "schema": 1,
        "version": 1,
        "event": {
            "id": EVENT_ID, "name": "venuebox demo night", "timezone": "UTC", "currency": "EUR",
            "doors_at": format_rfc3339(now - hour), "starts_at": format_rfc3339(now), "ends_at": format_rfc3339(now + 12 * hour),
            "tax_rate_bp": 1900, "prices_include_tax": true,
        },
        "box_keys": box_key.map(|k| vec![json!({"public_key": k, "label": "demo box"})]).unwrap_or_default(),
        "creators": [
            {"id": "cr-mara", "name": "Mara Lux", "referral_codes": ["MARA10"], "payout": {"ticket_share_bp": 1000, "drop_share_bp": 2000}},
            {"id": "cr-jules", "name": "Jules Vega", "referral_codes": ["JULES"], "payout": {"ticket_share_bp": 500, "drop_share_bp": 1500}},
        ],
        "scholarships": [
            {"id": "sch-mara", "name": "Mara's community seats", "funder": {"kind": "creator", "creator": "cr-mara", "name": "Mara Lux"},
             "tier": "ga", "seats": 20, "discount": {"kind": "full"}, "codes": scholarship_codes,
             "escrow": {"share_percent": 20, "min": 1, "max": 4}},
            {"id": "sch-acme", "name": "Acme Audio half-price seats", "funder": {"kind": "sponsor", "name": "Acme Audio"},
             "tier": "ga", "seats": 10, "discount": {"kind": "percent", "percent": 50},
             "codes": (1..=5).map(|n| json!({"code": format!("ACME-{n}"), "creator": "cr-jules", "cap": 2})).collect::<Vec<_>>()},
        ],
        "drops": [
            {"id": "drop-live", "name": "Mara's tour merch", "creator": "cr-mara",
             "opens_at": at(-10 * minute), "closes_at": at(3 * hour),
             "per_attendee_limit": 4, "on_close": "next_drop",
             "escrow": {"share_percent": 20, "min": 2, "max": 10},
             "reserve": {"quantity": 5, "tiers": ["vip"], "release_at": at(30 * minute)},
             "products": [
                {"sku": "TEE-BLK-M", "name": "Tour tee", "variant": "black M", "price_minor": 2500, "quantity": 30},
                {"sku": "TEE-BLK-L", "name": "Tour tee", "variant": "black L", "price_minor": 2500, "quantity": 30},
                {"sku": "POSTER", "name": "Signed poster", "price_minor": 1500, "quantity": 50, "tax_rate_bp": 700},
             ]},
            {"id": "drop-late", "name": "Jules' after-show vinyl", "creator": "cr-jules",
             "opens_at": at(3 * hour), "closes_at": at(6 * hour), "on_close": "pool",
             "products": [
                {"sku": "TEE-BLK-M", "name": "Tour tee", "variant": "black M", "price_minor": 2500, "quantity": 10},
                {"sku": "VINYL", "name": "Live vinyl", "price_minor": 3000, "quantity": 20},
             ]},
        ],
        "organiser_keys": [{"public_key": key.public_key, "label": "demo organiser"}],
        "tiers": [
            {"id": "ga", "name": "General admission", "price_minor": 2500, "capacity": 900,
             "escrow": {"share_percent": 5, "min": 5, "max": 40}},
            {"id": "vip", "name": "VIP", "price_minor": 9000, "capacity": 150},
            {"id": "crew", "name": "Creator crew", "price_minor": 0, "capacity": 50},
        ],
        "gates": [
            {"id": "main", "name": "Main door", "entry": true, "exit": true, "reentry": true},
            {"id": "vip", "name": "VIP door", "tiers": ["vip", "crew"]},
        ],
        "tickets": listed,
        "revoked_codes": [],
        "blocked_tickets": [],
        "staff": staff,
    });
    let manifest_path = dir.join("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest).expect("json"))
        .map_err(io(&manifest_path))?;
    let signature = sign_manifest(&manifest_path, &key, now)?;
    write_out(&dir, &rows, false)?;
    let readme = dir.join("README.txt");
    std::fs::write(&readme, readme_text(&dir, &rows)).map_err(io(&readme))?;
    Ok(Demo { dir, manifest: manifest_path, signature })
}

fn readme_text(dir: &Path, rows: &[(TicketId, TierId, String)]) -> String {
    let signed = &rows[0].2;
    let secret = &rows[1000].2;
    let staff: String = STAFF.iter().map(|(n, r, p)| format!("  {p}  {r:<10} {n}\n")).collect();
    format!(
        "venuebox demo event ({EVENT_ID})\n\
         ================================\n\n\
         Files here:\n\
         \x20 manifest.json, manifest.json.sig  the signed event manifest the box loaded\n\
         \x20 organiser.key                     the demo organiser's signing key (mint more tickets with it)\n\
         \x20 tickets.csv                       ticket_id,tier,code for 1,000 signed and 100 random-secret tickets\n\
         \x20 qr/<ticket_id>.png                one QR code per ticket\n\n\
         Tiers: ga (S-0001..S-0800, R-001..R-100), vip (S-0801..S-0950), crew (S-0951..S-1000).\n\
         Gates: main (everyone; entry, exit, re-entry) and vip (vip and crew only).\n\n\
         Staff PINs:\n{staff}\n\
         Try a check-in (the box listens on 127.0.0.1:8080 by default). A PIN signs in only from a\n\
         device a supervisor paired; `venuebox pair` on the box makes a one-time code (10 minutes):\n\n\
         \x20 CODE=$(venuebox pair --code-only --data-dir {data_dir})\n\
         \x20 DEVICE=$(curl -s -X POST localhost:8080/api/v1/paired-devices -H 'content-type: application/json' \\\n\
         \x20         -d \"{{\\\"code\\\":\\\"$CODE\\\",\\\"name\\\":\\\"my laptop\\\"}}\" | sed 's/.*\"credential\":\"\\([^\"]*\\)\".*/\\1/')\n\
         \x20 TOKEN=$(curl -s -X POST localhost:8080/api/v1/session -H 'content-type: application/json' \\\n\
         \x20         -d \"{{\\\"pin\\\":\\\"1111\\\",\\\"device\\\":\\\"$DEVICE\\\"}}\" | sed 's/.*\"token\":\"\\([^\"]*\\)\".*/\\1/')\n\
         \x20 curl -s -X POST localhost:8080/api/v1/checkins -H \"authorization: Bearer $TOKEN\" \\\n\
         \x20      -H 'content-type: application/json' \\\n\
         \x20      -d '{{\"code\":\"{signed}\",\"gate\":\"main\",\"nonce\":\"try-1\"}}'\n\n\
         Run the second command again with nonce try-2: already_checked_in, with when and where.\n\
         A random-secret ticket: {secret}\n\n\
         Selling (sign in as merch, PIN 2222, on the same device into $MERCH the same way):\n\
         \x20 # a walk-up ticket, cash, credited to creator Mara by her referral code\n\
         \x20 curl -s -X POST localhost:8080/api/v1/walkups -H \"authorization: Bearer $MERCH\" -H 'content-type: application/json' \\\n\
         \x20      -d '{{\"tier\":\"ga\",\"nonce\":\"sale-1\",\"referral_code\":\"MARA10\",\"tender\":{{\"kind\":\"cash\",\"given_minor\":3000}}}}'\n\
         \x20 # a free scholarship seat recruited by Mara\n\
         \x20 curl -s -X POST localhost:8080/api/v1/scholarships/claims -H \"authorization: Bearer $MERCH\" -H 'content-type: application/json' \\\n\
         \x20      -d '{{\"code\":\"MARA-FRIEND-01\",\"nonce\":\"claim-1\"}}'\n\
         \x20 # the live drop: a tee for the holder of ticket S-0001 (the drop limits 4 per attendee)\n\
         \x20 curl -s -X POST localhost:8080/api/v1/drops/drop-live/sales -H \"authorization: Bearer $MERCH\" -H 'content-type: application/json' \\\n\
         \x20      -d '{{\"items\":[{{\"sku\":\"TEE-BLK-M\",\"qty\":1}}],\"attendee_code\":\"{signed}\",\"nonce\":\"sale-2\",\"tender\":{{\"kind\":\"card\",\"reference\":\"T-0042\"}}}}'\n\
         \x20 curl -s localhost:8080/api/v1/drops -H \"authorization: Bearer $MERCH\"\n\
         Scholarship codes: MARA-FRIEND-01..10 (free), JULES-CREW (free, 5 uses), ACME-1..5 (half price, 2 uses each).\n\
         Drops: drop-live (now, 3 h; 5 of each product held for VIP until 30 min in) and drop-late (in 3 h).\n\n\
         Mint more signed tickets:\n\
         \x20 venuebox tickets issue --key {key} --event {EVENT_ID} --tier ga --count 10 --first 2001 --out more-tickets\n",
        key = dir.join("organiser.key").display(),
        data_dir = dir.parent().unwrap_or(dir).display(),
    )
}
