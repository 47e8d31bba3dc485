//! The organiser's tools: keys, signing manifests, minting tickets, and
//! importing a signed manifest into a box.

use super::args::DataDir;
use super::pinned;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use venuebox::domain::ids::{EventId, TicketId, TierId};
use venuebox::domain::role::{Actor, Role};
use venuebox::domain::time::parse_rfc3339;
use venuebox::organiser::{self, keyfile::KeyFile, tickets};
use venuebox::server::{self, Config};
use venuebox::store::ImportOutcome;

#[derive(Subcommand)]
pub enum ManifestCommand {
    /// Verify and load a signed manifest (FILE plus FILE.sig).
    Import {
        file: PathBuf,
        /// Signature file; defaults to FILE.sig.
        #[arg(long)]
        signature: Option<PathBuf>,
        #[command(flatten)]
        dir: DataDir,
        /// Organiser public key (base64) to trust; repeat for several.
        #[arg(long = "organiser-key")]
        organiser_keys: Vec<String>,
    },
    /// Sign FILE with an organiser key, writing FILE.sig.
    Sign {
        /// The manifest (JSON) to sign, as it will be imported, byte for byte.
        file: PathBuf,
        /// The organiser key file (from `venuebox keygen`).
        #[arg(long)]
        key: PathBuf,
    },
}

pub async fn manifest(cmd: ManifestCommand) -> Result<()> {
    match cmd {
        ManifestCommand::Import { file, signature, dir, organiser_keys } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let sig_path = signature.unwrap_or_else(|| organiser::signature_path(&file));
            let sig = std::fs::read_to_string(&sig_path).ok();
            if sig.is_none() {
                bail!("no signature at {}: sign the manifest (venuebox manifest sign) or pass --signature", sig_path.display());
            }
            let state = server::open_on_box_clock(&Config::new(&dir.data_dir)).await?;
            let actor = Actor { name: "box-cli".into(), role: Role::Admin };
            let outcome = state
                .store
                .import_manifest(bytes, sig, pinned(&organiser_keys)?, actor, state.clock.now())
                .await?;
            match outcome {
                ImportOutcome::Imported { event_id, version, tickets, .. } => {
                    println!("imported {event_id} version {version} ({tickets} listed tickets)")
                }
                ImportOutcome::Unchanged { event_id, version } => {
                    println!("{event_id} version {version} is already loaded")
                }
            }
            Ok(())
        }
        ManifestCommand::Sign { file, key } => {
            let key = KeyFile::load(&key)?;
            let now = venuebox::clock::Clock::system().now();
            let out = organiser::sign_manifest(&file, &key, now)?;
            println!("wrote {}", out.display());
            Ok(())
        }
    }
}

#[derive(Subcommand)]
pub enum TicketsCommand {
    /// Mint signed ticket codes, a tickets.csv and one QR PNG per ticket.
    Issue {
        /// The organiser key file that signs the tickets (from `venuebox keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The event id, as in the manifest.
        #[arg(long)]
        event: String,
        /// The tier id, as in the manifest.
        #[arg(long)]
        tier: String,
        /// How many tickets to mint.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Number of the first ticket; ids are PREFIX + number.
        #[arg(long, default_value_t = 1)]
        first: u32,
        /// Ticket id prefix.
        #[arg(long, default_value = "T-")]
        prefix: String,
        /// RFC 3339 time before which the tickets do not scan.
        #[arg(long)]
        valid_from: Option<String>,
        /// RFC 3339 time after which the tickets do not scan.
        #[arg(long)]
        valid_until: Option<String>,
        /// Output directory (tickets.csv is appended to, qr/ filled).
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn tickets(cmd: TicketsCommand) -> Result<()> {
    match cmd {
        TicketsCommand::Issue {
            key,
            event,
            tier,
            count,
            first,
            prefix,
            valid_from,
            valid_until,
            out,
        } => {
            let key = KeyFile::load(&key)?;
            let ids =
                (first..first.saturating_add(count)).map(|n| TicketId(format!("{prefix}{n}")));
            let window = (unix_secs(&valid_from)?, unix_secs(&valid_until)?);
            let minted =
                tickets::mint(&key.signing_key(), &EventId(event), &TierId(tier), ids, window)?;
            let rows: Vec<_> = minted.into_iter().map(|m| (m.id, m.tier, m.code)).collect();
            tickets::write_out(&out, &rows, true)?;
            println!("minted {} tickets into {}", rows.len(), out.display());
            Ok(())
        }
    }
}

#[derive(Args)]
pub struct KeygenArgs {
    /// Where to write the key (mode 0600).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn keygen(args: KeygenArgs) -> Result<()> {
    let KeygenArgs { out } = args;
    if out.exists() {
        bail!("{} exists: refusing to overwrite a key", out.display());
    }
    let key = KeyFile::generate();
    key.save(&out)?;
    println!(
        "key {} written to {}\npublic key for the manifest's organiser_keys: {}",
        key.key_id,
        out.display(),
        key.public_key
    );
    Ok(())
}

fn unix_secs(s: &Option<String>) -> Result<Option<u32>> {
    s.as_deref()
        .map(|t| parse_rfc3339(t).map(|ms| (ms / 1000) as u32).map_err(anyhow::Error::msg))
        .transpose()
}
