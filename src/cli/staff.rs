//! Staff access from the box's own shell: script tokens, pairing codes
//! (with the terminal QR and the printed slip), PIN hashes, and finding
//! boxes on the LAN.

use super::args::{DataDir, StaffUrlArgs};
use super::serve::pairing_text;
use anyhow::Result;
use clap::{Args, Subcommand};
use venuebox::api::ApiConfig;
use venuebox::domain::role::{Actor, Role};
use venuebox::organiser;
use venuebox::server::{self, Config};

#[derive(Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// door, merch, capture, supervisor or admin.
    #[arg(long)]
    pub role: String,
    /// Name recorded in the audit log.
    #[arg(long, default_value = "box-cli")]
    pub name: String,
    /// Hours the token is valid.
    #[arg(long, default_value_t = ApiConfig::default().session_ttl_ms / 3_600_000)]
    pub hours: i64,
}

/// Prints a bearer token.
pub async fn token(args: TokenArgs) -> Result<()> {
    let TokenArgs { dir, role, name, hours } = args;
    let role: Role = role.parse().map_err(anyhow::Error::msg)?;
    let state = server::open_on_box_clock(&Config::new(&dir.data_dir)).await?;
    let now = state.clock.now();
    let (token, _) =
        state.store.create_session(Actor { name, role }, now, hours * 3_600_000).await?;
    println!("{token}");
    Ok(())
}

#[derive(Args)]
pub struct PairArgs {
    #[command(flatten)]
    pub dir: DataDir,
    #[command(flatten)]
    pub lan: StaffUrlArgs,
    /// Print only the code (for scripts).
    #[arg(long)]
    pub code_only: bool,
    /// Also print the QR code, URLs and fingerprint on the receipt printer
    /// (the running box's print queue), for staff to scan from paper.
    #[arg(long)]
    pub print: bool,
    /// The printer station for --print.
    #[arg(long, default_value = "default")]
    pub station: String,
    /// A code that enrols a standby box instead (`venuebox join` on the
    /// new box; prints the command to run there).
    #[arg(long, conflicts_with_all = ["print"])]
    pub standby: bool,
}

/// Makes a pairing code and shows (or prints) how to use it.
pub async fn pair(args: PairArgs) -> Result<()> {
    let PairArgs { dir, lan, code_only, print, station, standby } = args;
    let state = server::open_on_box_clock(&Config::new(&dir.data_dir)).await?;
    if standby {
        let ttl = venuebox::replication::join::JOIN_CODE_TTL_MS;
        let (code, _) = state.store.create_join_code(state.clock.now(), ttl).await?;
        if code_only {
            println!("{code}");
            return Ok(());
        }
        let ca = venuebox::net::tls::load_or_create_ca(&dir.data_dir, state.store.box_id())?;
        let (urls, _) = lan.urls(state.store.box_id(), None);
        println!("standby code: {code} (one box, 10 minutes)");
        println!(
            "box CA fingerprint (SHA-256): {}",
            venuebox::net::tls::fingerprint_colons(&ca.fingerprint())
        );
        println!("on the new box run:");
        for u in urls.iter().filter(|u| u.starts_with("https://")).take(3) {
            println!(
                "  {}",
                venuebox::replication::join::command(
                    u.trim_end_matches('/'),
                    &code,
                    &ca.fingerprint()
                )
            );
        }
        return Ok(());
    }
    let actor = Actor { name: "box-cli".into(), role: Role::Admin };
    let ttl = venuebox::api::PAIRING_CODE_TTL_MS;
    let now = state.clock.now();
    let (code, expires_at) = state.store.create_pairing_code(actor, now, ttl).await?;
    if code_only {
        println!("{code}");
        return Ok(());
    }
    let ca = venuebox::net::tls::load_or_create_ca(&dir.data_dir, state.store.box_id())?;
    let (urls, url) = lan.urls(state.store.box_id(), Some(&code));
    print!("{}", pairing_text(&urls, Some(&url), Some(&ca.fingerprint()), Some(&code)));
    if print {
        let slip = venuebox::store::printing::PairingSlip {
            url,
            urls,
            fingerprint: Some(ca.fingerprint()),
            code: Some(code),
            expires_at: Some(venuebox::domain::time::format_rfc3339(expires_at)),
            test_code: None,
        };
        let job = state.store.queue_pairing_slip(slip, station.clone(), now).await?;
        println!(
            "queued for the printer at station {station} (job {job}); the running box prints it"
        );
    }
    Ok(())
}

#[derive(Args)]
pub struct DiscoverArgs {
    /// Seconds to listen.
    #[arg(long, default_value_t = 3)]
    pub wait_secs: u64,
}

/// Lists the boxes that answer on mDNS.
pub async fn discover(args: DiscoverArgs) -> Result<()> {
    let DiscoverArgs { wait_secs } = args;
    let found = tokio::task::spawn_blocking(move || {
        venuebox::net::mdns::discover(std::time::Duration::from_secs(wait_secs))
    })
    .await??;
    if found.is_empty() {
        println!("no venuebox found on this network in {wait_secs} s (is multicast allowed on this Wi-Fi?)");
    }
    for f in found {
        let txt: Vec<String> = f.txt.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{}  https://{}:{}/  [{}]  {}",
            f.instance,
            f.host.trim_end_matches('.'),
            f.port,
            f.addresses.join(", "),
            txt.join(" ")
        );
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum StaffCommand {
    /// Print the argon2id hash of a PIN for the manifest's staff list.
    HashPin {
        /// The staff member's PIN.
        pin: String,
    },
}

pub fn staff(cmd: StaffCommand) -> Result<()> {
    match cmd {
        StaffCommand::HashPin { pin } => {
            println!("{}", organiser::demo::hash_pin(&pin));
            Ok(())
        }
    }
}
