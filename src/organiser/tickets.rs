//! Minting signed tickets: codes, a CSV (`ticket_id,tier,code`) and one QR
//! PNG per ticket, named by ticket id.

use super::{io, OrganiserError};
use crate::domain::code::{encode_signed, EventTag, TicketClaim};
use crate::domain::ids::{EventId, TicketId, TierId};
use crate::domain::keys::KeyId;
use crate::domain::qr;
use ed25519_dalek::SigningKey;
use std::io::Write;
use std::path::Path;

#[derive(Clone, Debug)]
pub struct Minted {
    pub id: TicketId,
    pub tier: TierId,
    pub code: String,
}

/// Signs one code per id. Window bounds are Unix seconds.
pub fn mint(
    key: &SigningKey,
    event: &EventId,
    tier: &TierId,
    ids: impl IntoIterator<Item = TicketId>,
    window: (Option<u32>, Option<u32>),
) -> Result<Vec<Minted>, OrganiserError> {
    let tag = EventTag::of(event);
    let key_id = KeyId::of(&key.verifying_key());
    ids.into_iter()
        .map(|id| {
            let claim = TicketClaim {
                event: tag,
                key: key_id,
                ticket: id.clone(),
                tier: tier.clone(),
                valid_from: window.0,
                valid_until: window.1,
            };
            let code = encode_signed(&claim, key)
                .map_err(|e| OrganiserError::Invalid(format!("ticket {id}: {e}")))?;
            Ok(Minted { id, tier: tier.clone(), code })
        })
        .collect()
}

/// A QR image file name for a ticket id, safe on any filesystem.
pub fn qr_file_name(id: &TicketId) -> String {
    let safe: String = id
        .as_str()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    format!("{safe}.png")
}

/// Writes (or appends to) `dir/tickets.csv` and `dir/qr/<id>.png`.
pub fn write_out(
    dir: &Path,
    tickets: &[(TicketId, TierId, String)],
    append: bool,
) -> Result<(), OrganiserError> {
    let qr_dir = dir.join("qr");
    std::fs::create_dir_all(&qr_dir).map_err(io(&qr_dir))?;
    let csv_path = dir.join("tickets.csv");
    let exists = csv_path.exists();
    let mut csv = std::fs::OpenOptions::new()
        .create(true)
        .append(append)
        .write(true)
        .truncate(!append)
        .open(&csv_path)
        .map_err(io(&csv_path))?;
    let mut text = String::new();
    if !(append && exists) {
        text.push_str("ticket_id,tier,code\n");
    }
    for (id, tier, code) in tickets {
        text.push_str(&format!("{id},{tier},{code}\n"));
        let png =
            qr::png(code).map_err(|e| OrganiserError::Invalid(format!("ticket {id}: {e}")))?;
        let path = qr_dir.join(qr_file_name(id));
        std::fs::write(&path, png).map_err(io(&path))?;
    }
    csv.write_all(text.as_bytes()).map_err(io(&csv_path))?;
    csv.sync_all().map_err(io(&csv_path))?;
    Ok(())
}
