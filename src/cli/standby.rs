//! The pair of boxes from the console: `venuebox join` enrols this box as
//! the standby (or a satellite) of a running primary, `venuebox promote` makes a standby
//! the primary, `venuebox standby status` says where this box stands.

use super::args::DataDir;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::time::Duration;
use venuebox::replication::join::{JoinBundle, JoinRequest};
use venuebox::server::{self, Config};
use venuebox::store::replica::Role;

#[derive(Args)]
pub struct JoinArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// The primary's HTTPS address, as its screen shows it (https://HOST:8443).
    pub url: String,
    /// The one-time standby code from the primary (admin screen, or `venuebox pair --standby`).
    pub code: String,
    /// The primary's CA fingerprint (SHA-256, as its screen shows it): this
    /// box talks to nothing else.
    #[arg(long)]
    pub fingerprint: String,
    /// The port this box's standby link will listen on (its --link-listen),
    /// so the primary can reach it after a takeover.
    #[arg(long, default_value_t = venuebox::net::LINK_PORT)]
    pub link_port: u16,
    /// Join as a satellite: a second entrance with its own phones and
    /// scanners, forwarding to the primary while it reaches it and
    /// admitting from its copy while it does not (not the standby).
    #[arg(long)]
    pub satellite: bool,
}

/// Enrols this (empty) data directory as the standby of the primary.
pub async fn join(args: JoinArgs) -> Result<()> {
    let JoinArgs { dir, url, code, fingerprint, link_port, satellite } = args;
    let data_dir = dir.data_dir;
    let _serving = server::lock_data_dir(&data_dir)?;
    if data_dir.join(venuebox::store::DB_FILE).exists() {
        bail!(
            "{} already holds a box's data: join from an empty data directory (a standby receives everything from the primary)",
            data_dir.display()
        );
    }
    let parsed = url::Url::parse(&url).with_context(|| {
        format!("{url} is not a URL: give the primary's address as https://HOST:PORT")
    })?;
    let host = parsed.host_str().context("the URL has no host")?.to_string();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(venuebox::net::tls::pinned_client(&fingerprint))
        .timeout(Duration::from_secs(30))
        .build()?;
    let node = format!("node-{}", venuebox::secrets::hex(&venuebox::secrets::random_bytes::<4>()));
    let answer = client
        .post(parsed.join("/api/v1/standby/join")?)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&JoinRequest { code, node: node.clone(), link_port, satellite })?)
        .send()
        .await
        .with_context(|| {
            format!("cannot reach the primary at {url} (check the address and the fingerprint)")
        })?;
    let status = answer.status();
    if !status.is_success() {
        let body: serde_json::Value =
            serde_json::from_slice(&answer.bytes().await.unwrap_or_default()).unwrap_or_default();
        bail!(
            "the primary refused ({status}): {}",
            body["error"]["message"].as_str().unwrap_or("no reason given")
        );
    }
    let bundle: JoinBundle = serde_json::from_slice(&answer.bytes().await?)
        .context("the primary's answer is not a join bundle")?;
    std::fs::create_dir_all(&data_dir)?;
    venuebox::store::identity::install_file(&data_dir, &bundle.identity)?;
    venuebox::net::tls::install_ca(&data_dir, &bundle.ca_pem, &bundle.ca_key_pem)?;
    for (name, text) in &bundle.files {
        if !venuebox::replication::join::CARRIED_FILES.contains(&name.as_str()) {
            continue;
        }
        let path = data_dir.join(name);
        venuebox::secrets::write_private(&path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(token) = bundle.scanner_token.as_deref().filter(|_| satellite) {
        let path = data_dir.join(venuebox::api::forward::SCANNER_TOKEN_FILE);
        venuebox::secrets::write_private(&path, token.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let state = server::open(&Config::new(&data_dir), venuebox::clock::Clock::system())?;
    state.store.set_node(node.clone()).await?;
    if satellite {
        state.store.become_satellite(bundle.epoch).await?;
    } else {
        state.store.become_standby(bundle.epoch).await?;
    }
    let peer = if host.contains(':') {
        format!("[{host}]:{}", bundle.link_port)
    } else {
        format!("{host}:{}", bundle.link_port)
    };
    state.store.set_peer(peer.clone()).await?;
    println!(
        "joined: this box ({node}) is the {} of {} at {peer}, epoch {}; box {}",
        if satellite { "satellite" } else { "standby" },
        bundle.primary_node,
        bundle.epoch,
        state.store.box_id()
    );
    println!("start it (venuebox serve, or systemctl start venuebox): it receives the event and everything since over the link");
    Ok(())
}

#[derive(Args)]
pub struct PromoteArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// Seconds to wait for the running box to take the promotion.
    #[arg(long, default_value_t = 10)]
    pub wait_secs: u64,
}

/// Makes this standby the primary: through the running box when one
/// serves this data directory, directly otherwise.
pub async fn promote(args: PromoteArgs) -> Result<()> {
    let data_dir = args.dir.data_dir;
    let running = server::lock_data_dir(&data_dir).is_err();
    let state = server::open(&Config::new(&data_dir), venuebox::clock::Clock::system())?;
    if state.store.replica().role() == Role::Primary {
        bail!("this box is already the primary (epoch {})", state.store.replica().epoch());
    }
    if !running {
        let st = state.store.promote(state.clock.now()).await?;
        println!(
            "promoted: this box is the primary at epoch {} (start it: venuebox serve)",
            st.epoch
        );
        return Ok(());
    }
    state.store.request_promotion().await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(args.wait_secs);
    while std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let stored = state.store.stored_role().await?;
        if stored.0 == Role::Primary {
            println!(
                "promoted: this box is the primary at epoch {}; phones follow it by themselves",
                stored.1
            );
            return Ok(());
        }
    }
    bail!(
        "the running box did not take the promotion in {}s: see its log (journalctl -u venuebox)",
        args.wait_secs
    )
}

#[derive(Subcommand)]
pub enum StandbyCommand {
    /// Role, epoch and log position of this box, as stored.
    Status(StatusArgs),
}

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub dir: DataDir,
}

pub async fn run(cmd: StandbyCommand) -> Result<()> {
    match cmd {
        StandbyCommand::Status(StatusArgs { dir }) => {
            let state =
                server::open(&Config::new(&dir.data_dir), venuebox::clock::Clock::system())?;
            let st = state.store.replica_state().await?;
            let (role, epoch) = state.store.stored_role().await?;
            println!(
                "{}",
                serde_json::json!({
                    "role": role,
                    "epoch": epoch,
                    "seq": st.seq,
                    "epoch_start": st.epoch_start,
                    "capture": st.capture,
                    "peer": state.store.peer_address().await?,
                    "node": state.store.node_name().await?,
                })
            );
            Ok(())
        }
    }
}
