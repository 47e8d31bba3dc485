//! Paired staff devices and the one-time codes that pair them. A PIN signs
//! in only from a paired device, so a guest on the venue Wi-Fi cannot even
//! try one. Codes and credentials are kept as SHA-256 digests only.

use super::sessions::token_digest;
use super::{audit, Store, StoreError};
use crate::domain::role::Actor;
use crate::domain::time::Millis;
use crate::secrets::{hex, random_bytes};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// Characters of a pairing code: Crockford's base 32, no I, L, O or U, so
/// a code read aloud or typed from a screen is not misread.
const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// 12 characters: 60 bits, shown as `XXXX-XXXX-XXXX`.
const CODE_LEN: usize = 12;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PairedDevice {
    pub id: String,
    pub name: String,
    pub paired_by: String,
    pub paired_at: Millis,
    pub last_sign_in_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
    pub revoked_by: Option<String>,
    /// The pairing code that paired it, by [`code_id`].
    pub code_id: Option<String>,
    /// The address it paired from.
    pub paired_from: Option<String>,
    /// SHA-256 of the device's credential (never the credential itself).
    #[serde(skip)]
    pub credential_sha256: String,
}

/// What a pairing code turns into: the device row and its credential,
/// shown to the device once.
pub struct NewDevice {
    pub device: PairedDevice,
    pub credential: String,
}

/// A code as staff type it: case, spaces and dashes do not matter.
pub fn normalise_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

/// What a code is called once made: the start of its SHA-256, so the
/// supervisor's screen can say which device took it without the code
/// itself being stored or listed.
pub fn code_id(code: &str) -> String {
    token_digest(&normalise_code(code))[..12].to_string()
}

pub(super) fn new_code() -> String {
    let raw = random_bytes::<CODE_LEN>();
    let s: String = raw.iter().map(|b| CODE_ALPHABET[(b & 31) as usize] as char).collect();
    format!("{}-{}-{}", &s[0..4], &s[4..8], &s[8..12])
}

fn device_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PairedDevice> {
    Ok(PairedDevice {
        id: r.get(0)?,
        name: r.get(1)?,
        paired_by: r.get(2)?,
        paired_at: r.get(3)?,
        last_sign_in_at: r.get(4)?,
        revoked_at: r.get(5)?,
        revoked_by: r.get(6)?,
        credential_sha256: r.get(7)?,
        code_id: r.get(8)?,
        paired_from: r.get(9)?,
    })
}

const DEVICE_COLUMNS: &str =
    "id, name, paired_by, paired_at, last_sign_in_at, revoked_at, revoked_by, credential_sha256, code_id, paired_from";

impl Store {
    /// A fresh one-time pairing code, valid for `ttl_ms`.
    pub async fn create_pairing_code(
        &self,
        actor: Actor,
        now: Millis,
        ttl_ms: Millis,
    ) -> Result<(String, Millis), StoreError> {
        let code = new_code();
        let digest = token_digest(&normalise_code(&code));
        let expires_at = now + ttl_ms;
        self.write(move |ctx| {
            ctx.conn.prepare_cached("DELETE FROM pairing_codes WHERE expires_at < ?1 AND used_at IS NULL")?.execute([now])?;
            ctx.conn
                .prepare_cached("INSERT INTO pairing_codes (code_sha256, created_by, created_role, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)")?
                .execute(params![digest, actor.name, actor.role.as_str(), now, expires_at])?;
            audit::record(ctx, &actor, "pairing_code.create", &serde_json::json!({"expires_at": expires_at}), now)?;
            Ok(())
        })
        .await?;
        Ok((code, expires_at))
    }

    /// Pairs a device with a code: `None` when the code is unknown, used
    /// or expired (the caller cannot tell which, on purpose).
    pub async fn pair_device(
        &self,
        code: &str,
        name: String,
        from: Option<String>,
        now: Millis,
    ) -> Result<Option<NewDevice>, StoreError> {
        let digest = token_digest(&normalise_code(code));
        let code_id = code_id(code);
        self.write(move |ctx| {
            let used = ctx
                .conn
                .prepare_cached("UPDATE pairing_codes SET used_at = ?2 WHERE code_sha256 = ?1 AND used_at IS NULL AND expires_at > ?2 RETURNING created_by, created_role")?
                .query_row(params![digest, now], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .optional()?;
            let Some((paired_by, role)) = used else { return Ok(None) };
            // The pairing is the act of whoever made the code.
            let role = role.parse().unwrap_or(crate::domain::role::Role::Supervisor);
            let id = format!("dev-{}", hex(&random_bytes::<6>()));
            let credential = format!("vbd_{}", hex(&random_bytes::<24>()));
            let device = PairedDevice {
                id: id.clone(),
                name,
                paired_by,
                paired_at: now,
                last_sign_in_at: None,
                revoked_at: None,
                revoked_by: None,
                credential_sha256: token_digest(&credential),
                code_id: Some(code_id),
                paired_from: from,
            };
            ctx.conn
                .prepare_cached("INSERT INTO paired_devices (id, name, credential_sha256, paired_by, paired_at, code_id, paired_from) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?
                .execute(params![device.id, device.name, device.credential_sha256, device.paired_by, now, device.code_id, device.paired_from])?;
            ctx.conn.prepare_cached("UPDATE pairing_codes SET device_id = ?2 WHERE code_sha256 = ?1")?.execute(params![digest, id])?;
            let actor = Actor { name: device.paired_by.clone(), role };
            audit::record(ctx, &actor, "device.pair", &serde_json::json!({"device": id, "name": device.name, "from": device.paired_from}), now)?;
            Ok(Some(NewDevice { device, credential }))
        })
        .await
    }

    /// Every device ever paired, newest first (revoked ones included).
    pub async fn paired_devices(&self) -> Result<Vec<PairedDevice>, StoreError> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {DEVICE_COLUMNS} FROM paired_devices ORDER BY paired_at DESC"
                ))?
                .query_map([], device_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Revokes a device and ends every session signed in on it. Returns the
    /// device and how many sessions ended.
    pub async fn revoke_device(
        &self,
        id: String,
        actor: Actor,
        now: Millis,
    ) -> Result<(PairedDevice, usize), StoreError> {
        self.write(move |ctx| {
            let n = ctx
                .conn
                .prepare_cached("UPDATE paired_devices SET revoked_at = ?2, revoked_by = ?3 WHERE id = ?1 AND revoked_at IS NULL")?
                .execute(params![id, now, actor.name])?;
            let device = ctx
                .conn
                .prepare_cached(&format!("SELECT {DEVICE_COLUMNS} FROM paired_devices WHERE id = ?1"))?
                .query_row([&id], device_row)
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("no paired device '{id}': GET /api/v1/paired-devices lists them")))?;
            let ended = ctx.conn.prepare_cached("DELETE FROM sessions WHERE device_id = ?1")?.execute([&id])?;
            if n > 0 {
                audit::record(ctx, &actor, "device.revoke", &serde_json::json!({"device": id, "sessions_ended": ended}), now)?;
            }
            Ok((device, ended))
        })
        .await
    }

    /// Records a sign-in on a device (shown in the device list).
    pub(crate) fn touch_device(
        ctx: &super::WriteCtx<'_>,
        id: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        ctx.conn
            .prepare_cached("UPDATE paired_devices SET last_sign_in_at = ?2 WHERE id = ?1")?
            .execute(params![id, now])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_grouped_unambiguous_and_typed_any_way() {
        let c = new_code();
        assert_eq!(c.len(), 14);
        assert!(c.chars().all(|ch| ch == '-' || CODE_ALPHABET.contains(&(ch as u8))), "{c}");
        assert_eq!(normalise_code(&c.to_lowercase().replace('-', " ")), c.replace('-', ""));
    }
}
