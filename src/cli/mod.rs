//! The command line: one module per group of subcommands, each turning
//! its flags into library calls. Nothing here decides anything the library
//! does not; defaults come from the library's `Default`s.

mod args;
mod backup;
mod config;
mod devices;
mod event;
mod logging;
mod organiser;
mod pretix;
mod rehearse;
mod serve;
mod staff;
mod standby;
mod sync;

use anyhow::{Context, Result};
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
    /// A configuration file with `serve` settings (TOML, the flags' long
    /// names); flags and environment variables override it.
    #[arg(long, global = true, value_name = "FILE", env = "VENUEBOX_CONFIG")]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// `serve` has many flags; the value is parsed once and moved, never copied.
#[expect(clippy::large_enum_variant)]
enum Command {
    /// Run the box: the HTTP API for staff devices.
    #[command(args_override_self = true)]
    Serve(serve::ServeArgs),
    /// The end of an event: close it on this box, archive, erase personal data.
    #[command(subcommand)]
    Event(event::EventCommand),
    /// Before doors: run the real code paths on a scratch copy, check devices,
    /// the bucket, disk and clock, and say what is not ready.
    Rehearse(rehearse::RehearseArgs),
    /// A consistent copy of the database and the box identity while the box runs.
    Backup(backup::BackupArgs),
    /// The configuration file: check it and show the effective settings.
    #[command(subcommand)]
    Config(ConfigCommand),
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
    /// Tickets sold with pretix: import the event, see what waits to go back.
    #[command(subcommand)]
    Pretix(pretix::PretixCommand),
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
    /// Enrol this box as the standby (or, with --satellite, a satellite)
    /// of a running primary (an empty data directory, a one-time code and
    /// the primary's CA fingerprint).
    Join(standby::JoinArgs),
    /// Make this standby the primary (the old primary is gone): phones follow.
    Promote(standby::PromoteArgs),
    /// The pair of boxes: where this box stands.
    #[command(subcommand)]
    Standby(standby::StandbyCommand),
    /// Print the API's OpenAPI document (the answers' schemas derived from
    /// this build's types; what `GET /api/v1/openapi.json` serves).
    Openapi,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Read the configuration file (--config, VENUEBOX_CONFIG, else
    /// /etc/venuebox/venuebox.toml), check every setting as `serve` would,
    /// and print the effective settings (secrets masked) with where each
    /// came from: file, environment, flag or default.
    Check,
}

/// `serve` as clap sees it (global flags included).
fn serve_command() -> clap::Command {
    let mut cli = <Cli as clap::CommandFactory>::command();
    cli.build();
    cli.find_subcommand("serve").expect("serve").clone()
}

/// The command line, with the configuration file's settings in front of
/// `serve`'s own flags.
fn parse() -> Result<Cli> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = Cli::parse_from(&argv);
    let (Command::Serve(_), Some(file)) = (&cli.command, &cli.config) else {
        return Ok(cli);
    };
    let settings = config::flags(&serve_command(), file)?;
    // Right after the subcommand's name: the first word that is not a
    // global option or its value.
    let mut at = 1;
    while at < argv.len() {
        let a = argv[at].to_string_lossy();
        if a == "serve" {
            break;
        }
        at += if a == "--config" || a == "--log-format" { 2 } else { 1 };
    }
    Ok(Cli::parse_from(config::inject(argv, at + 1, settings)))
}

fn config_check(file: Option<std::path::PathBuf>) -> Result<()> {
    use clap::FromArgMatches;
    let file = file.unwrap_or_else(|| config::PACKAGED.into());
    let serve = serve_command();
    let settings = config::flags(&serve, &file)?;
    let from_file: Vec<String> = settings
        .iter()
        .map(|s| {
            let s = s.to_string_lossy();
            s.trim_start_matches("--").split('=').next().unwrap_or_default().to_string()
        })
        .collect();
    let synthetic = config::inject(vec!["serve".into()], 1, settings);
    let matches = serve
        .clone()
        .try_get_matches_from(synthetic)
        .with_context(|| format!("{} has a setting serve refuses", file.display()))?;
    let args = serve::ServeArgs::from_arg_matches(&matches)?;
    serve::server_config(&args).with_context(|| format!("{} does not work", file.display()))?;
    println!("{}: OK", file.display());
    print!("{}", config::effective(&serve, &matches, &from_file));
    Ok(())
}

/// Parses the command line and runs it on a multi-threaded runtime.
pub fn main() -> Result<()> {
    let cli = parse()?;
    logging::init(cli.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Serve(a) => serve::run(a).await,
            Command::Config(ConfigCommand::Check) => config_check(cli.config),
            Command::Backup(a) => backup::run(a).await,
            Command::Event(c) => event::run(c).await,
            Command::Rehearse(a) => rehearse::run(a).await,
            Command::Sync(c) => sync::sync(c).await,
            Command::Token(a) => staff::token(a).await,
            Command::Pair(a) => staff::pair(a).await,
            Command::Join(a) => standby::join(a).await,
            Command::Promote(a) => standby::promote(a).await,
            Command::Standby(c) => standby::run(c).await,
            Command::Discover(a) => staff::discover(a).await,
            Command::Manifest(c) => organiser::manifest(c).await,
            Command::Pretix(c) => pretix::run(c).await,
            Command::Tickets(c) => organiser::tickets(c),
            Command::Keygen(a) => organiser::keygen(a),
            Command::Staff(c) => staff::staff(c),
            Command::Payouts(c) => sync::payouts(c).await,
            Command::Devices(a) => devices::run(a).await,
            Command::Openapi => {
                let doc = venuebox::api::schemas::document();
                println!("{}", serde_json::to_string_pretty(&doc).expect("JSON"));
                Ok(())
            }
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
