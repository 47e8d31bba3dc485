//! The command line: one module per group of subcommands, each turning
//! its flags into library calls. Nothing here decides anything the library
//! does not; defaults come from the library's `Default`s.

mod args;
mod devices;
mod logging;
mod organiser;
mod serve;
mod staff;
mod sync;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::Path;
use venuebox::domain::keys::{public_key_from_base64, TrustedKeys};

#[derive(Parser)]
#[command(
    name = "venuebox",
    version,
    about = "The box at the venue: offline ticket check-in for creator-led micro-events."
)]
struct Cli {
    /// How the log on stderr looks: text (coloured only on a terminal) or
    /// json (one object per line).
    #[arg(long, global = true, value_enum, default_value_t, env = "VENUEBOX_LOG_FORMAT")]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// `serve` has many flags; the value is parsed once and moved, never copied.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Run the box: the HTTP API for staff devices.
    Serve(serve::ServeArgs),
    /// Cloud sync: what is pending, or sync now.
    #[command(subcommand)]
    Sync(sync::SyncCommand),
    /// Print a bearer token for scripts on the box itself.
    Token(staff::TokenArgs),
    /// Make a one-time code (valid 10 minutes) that pairs one staff device.
    /// Only a paired device can sign in with a PIN.
    Pair(staff::PairArgs),
    /// Boxes announcing themselves on the LAN (mDNS), with their TXT records.
    Discover(staff::DiscoverArgs),
    /// Event manifests: import one into the box, or sign one as organiser.
    #[command(subcommand)]
    Manifest(organiser::ManifestCommand),
    /// Mint signed tickets (organiser).
    #[command(subcommand)]
    Tickets(organiser::TicketsCommand),
    /// Make an organiser signing key file.
    Keygen(organiser::KeygenArgs),
    /// Staff helpers.
    #[command(subcommand)]
    Staff(staff::StaffCommand),
    /// Creator payout statements.
    #[command(subcommand)]
    Payouts(sync::PayoutsCommand),
    /// USB scanners and printers attached to this machine, and what they would do.
    Devices(devices::DevicesArgs),
}

/// Parses the command line and runs it on a multi-threaded runtime.
pub fn main() -> Result<()> {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Serve(a) => serve::run(a).await,
            Command::Sync(c) => sync::sync(c).await,
            Command::Token(a) => staff::token(a).await,
            Command::Pair(a) => staff::pair(a).await,
            Command::Discover(a) => staff::discover(a).await,
            Command::Manifest(c) => organiser::manifest(c).await,
            Command::Tickets(c) => organiser::tickets(c),
            Command::Keygen(a) => organiser::keygen(a),
            Command::Staff(c) => staff::staff(c),
            Command::Payouts(c) => sync::payouts(c).await,
            Command::Devices(a) => devices::run(a).await,
        }
    })
}

fn pinned(keys: &[String]) -> Result<TrustedKeys> {
    let keys = keys
        .iter()
        .map(|k| public_key_from_base64(k).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    Ok(TrustedKeys::new(keys))
}

fn load_devices(path: Option<&Path>) -> Result<venuebox::devices::config::DevicesConfig> {
    match path {
        Some(p) => venuebox::devices::config::DevicesConfig::load(p).map_err(anyhow::Error::msg),
        None => Ok(Default::default()),
    }
}
