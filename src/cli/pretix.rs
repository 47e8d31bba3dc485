//! `venuebox pretix`: bring an event in from pretix (the box must be
//! stopped; a running box with the token re-imports by itself), and the
//! state of the check-ins waiting to go back.

use super::args::DataDir;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use venuebox::clock::Clock;
use venuebox::domain::manifest::StaffEntry;
use venuebox::pretix::{self, client::Client, import};
use venuebox::server::{self, Config};

#[derive(Subcommand)]
pub enum PretixCommand {
    /// Import an event's products, check-in lists, orders and signing keys
    /// from pretix as this box's event (again: only what changed).
    Import(ImportArgs),
    /// The check-ins waiting to be sent back to pretix, and the last import.
    Status {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Connect this box to pretix as a device, with a one-time setup token
    /// from pretix's back office (Organizer → Devices → Connect a device),
    /// as pretixSCAN does: pretix then shows which device checked whom in.
    /// Then `venuebox pretix import` (no --token-file needed).
    Init {
        /// pretix's address, e.g. https://pretix.eu.
        #[arg(long)]
        url: String,
        /// The device's one-time setup token (used once; make another in
        /// pretix if it fails).
        #[arg(long, value_name = "TOKEN")]
        setup_token: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Give the box a new API token (the box may be running: it takes the
    /// token within a minute and sends every check-in that waited). The
    /// token is checked against the event first.
    Token {
        /// File (mode 0600) holding the new API token.
        #[arg(long, value_name = "FILE")]
        token_file: PathBuf,
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Args)]
pub struct ImportArgs {
    /// pretix's address, e.g. https://pretix.eu.
    #[arg(long)]
    url: String,
    /// The organizer's short form (in the event's address: /ORGANIZER/EVENT/).
    #[arg(long)]
    organizer: String,
    /// The event's short form.
    #[arg(long)]
    event: String,
    /// File (mode 0600) holding an API token of a pretix team with access to
    /// the event (view and change orders); or set VENUEBOX_PRETIX_TOKEN. The
    /// box keeps a copy in DATA_DIR/pretix-token to send check-ins back.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// A check-in list to bring in as a gate (its id in pretix); repeat for
    /// several. Default: the lists of the last import, or all of them.
    #[arg(long = "list", value_name = "ID")]
    lists: Vec<i64>,
    /// For an event series: the date to run, by the day it starts
    /// (YYYY-MM-DD, the event's time zone). A box runs one date.
    #[arg(long, value_name = "YYYY-MM-DD", conflicts_with = "subevent")]
    date: Option<String>,
    /// For an event series: the date to run, by pretix's id for it (when
    /// a day has several).
    #[arg(long, value_name = "ID")]
    subevent: Option<i64>,
    /// Staff who may sign in (JSON list of {"name", "role", "pin_hash"};
    /// `venuebox staff hash-pin` makes a hash). Needed on the first import;
    /// later imports keep the staff already loaded.
    #[arg(long, value_name = "FILE")]
    staff: Option<PathBuf>,
    #[command(flatten)]
    dir: DataDir,
}

pub async fn run(cmd: PretixCommand) -> Result<()> {
    match cmd {
        PretixCommand::Import(a) => import(a).await,
        PretixCommand::Status { dir } => status(dir).await,
        PretixCommand::Token { token_file, dir } => new_token(token_file, dir).await,
        PretixCommand::Init { url, setup_token, dir } => init(url, setup_token, dir).await,
    }
}

async fn init(url: String, setup_token: String, dir: DataDir) -> Result<()> {
    std::fs::create_dir_all(&dir.data_dir)
        .with_context(|| format!("cannot make {}", dir.data_dir.display()))?;
    let device =
        pretix::client::initialize_device(&url, &setup_token).await.map_err(anyhow::Error::msg)?;
    let kept = dir.data_dir.join(pretix::TOKEN_FILE);
    venuebox::secrets::write_private(&kept, format!("{}\n", device.token).as_bytes())
        .with_context(|| format!("cannot write {}", kept.display()))?;
    pretix::owned_like_dir(&kept, &dir.data_dir);
    println!(
        "this box is pretix device #{} \"{}\" of organizer {} (security profile {}); its token is in {}",
        device.device_id,
        device.name,
        device.organizer,
        device.security_profile,
        kept.display()
    );
    println!(
        "next: venuebox pretix import --url {url} --organizer {} --event EVENT --staff FILE",
        device.organizer
    );
    Ok(())
}

async fn new_token(file: PathBuf, dir: DataDir) -> Result<()> {
    let token = pretix::read_token_file(&file).map_err(anyhow::Error::msg)?;
    let state = server::open(&Config::new(&dir.data_dir), Clock::system())
        .with_context(|| format!("cannot open {}", dir.data_dir.display()))?;
    let Some(link) = state.store.event().and_then(|e| e.manifest.pretix.clone()) else {
        bail!("the loaded event did not come from pretix: use `venuebox pretix import --token-file FILE`");
    };
    let client =
        Client::new(&link.url, &link.organizer, &link.event, &token).map_err(anyhow::Error::msg)?;
    client
        .get("event:", "read the event")
        .await
        .context("the new token cannot read the event in pretix; the box keeps its old token")?;
    let lists: Vec<i64> = link.lists.iter().map(|l| l.id).collect();
    pretix::checkins::check_permission(&client, &lists)
        .await
        .context("the box keeps its old token")?;
    let kept = dir.data_dir.join(pretix::TOKEN_FILE);
    venuebox::secrets::write_private(&kept, format!("{token}\n").as_bytes())
        .with_context(|| format!("cannot write {}", kept.display()))?;
    pretix::owned_like_dir(&kept, &dir.data_dir);
    println!(
        "the token may read the event and check in on its {} list(s); kept in {} (a running box takes it within a minute; unless --pretix-token-file or {} names another)",
        lists.len(),
        kept.display(),
        pretix::TOKEN_ENV
    );
    Ok(())
}

async fn import(a: ImportArgs) -> Result<()> {
    let _lock = match server::lock_data_dir(&a.dir.data_dir) {
        Ok(l) => l,
        Err(server::LockError::Busy(_)) => bail!(
            "the box is running on {}: with a pretix token it imports again by itself (serve --pretix-import-every); stop it to import by hand",
            a.dir.data_dir.display()
        ),
        Err(e) => return Err(e.into()),
    };
    let env = |k: &str| std::env::var(k).ok();
    let token = pretix::token(a.token_file.as_deref(), &a.dir.data_dir, &env)
        .map_err(anyhow::Error::msg)?
        .with_context(|| {
            format!(
                "no pretix API token: give --token-file FILE (mode 0600) or set {}",
                pretix::TOKEN_ENV
            )
        })?;
    let staff: Option<Vec<StaffEntry>> = match &a.staff {
        Some(p) => Some(
            serde_json::from_slice(
                &std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?,
            )
            .with_context(|| {
                format!(
                    "{}: expected a JSON list of {{\"name\", \"role\", \"pin_hash\"}}",
                    p.display()
                )
            })?,
        ),
        None => None,
    };
    let client = Client::new(&a.url, &a.organizer, &a.event, &token).map_err(anyhow::Error::msg)?;
    let state = server::open_on_box_clock(&Config::new(&a.dir.data_dir))
        .await
        .with_context(|| format!("cannot open {}", a.dir.data_dir.display()))?;
    let key = pretix::organiser_key(&a.dir.data_dir).map_err(anyhow::Error::msg)?;
    if let Some(d) = &a.date {
        if d.len() != 10
            || time::Date::parse(d, time::macros::format_description!("[year]-[month]-[day]"))
                .is_err()
        {
            bail!("--date '{d}' must be a day as YYYY-MM-DD, e.g. 2026-12-05");
        }
    }
    let date = match (a.subevent, a.date) {
        (Some(id), _) => Some(import::DateChoice::Subevent(id)),
        (None, Some(d)) => Some(import::DateChoice::Day(d)),
        (None, None) => None,
    };
    let opts =
        import::ImportOptions { lists: (!a.lists.is_empty()).then_some(a.lists), staff, date };
    let r = import::run(&state.store, &client, &opts, &key, state.clock.now()).await?;
    if a.token_file.is_some() {
        let kept = a.dir.data_dir.join(pretix::TOKEN_FILE);
        if a.token_file.as_deref() != Some(kept.as_path()) {
            venuebox::secrets::write_private(&kept, format!("{token}\n").as_bytes())
                .with_context(|| format!("cannot write {}", kept.display()))?;
            pretix::owned_like_dir(&kept, &a.dir.data_dir);
        }
    }
    if r.changed {
        println!(
            "imported {} version {} from pretix: {} tickets ({} orders read), {} signing key(s)",
            r.event_id, r.version, r.tickets, r.orders_fetched, r.signed_keys
        );
    } else {
        println!(
            "{} version {} is up to date with pretix ({} orders read)",
            r.event_id, r.version, r.orders_fetched
        );
    }
    for (id, name) in &r.gates {
        println!("  gate {id}: {name}");
    }
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

async fn status(dir: DataDir) -> Result<()> {
    let state = server::open(&Config::new(&dir.data_dir), Clock::system())
        .with_context(|| format!("cannot open {}", dir.data_dir.display()))?;
    let Some(link) = state.store.event().and_then(|e| e.manifest.pretix.clone()) else {
        bail!("the loaded event did not come from pretix (venuebox pretix import)");
    };
    let c = state.store.pretix_counts(10).await?;
    println!("pretix event {}/{} at {}", link.organizer, link.event, link.url);
    println!(
        "scans sent through #{}; {} newer scan(s) not yet handled; {} refused by pretix; {} undone at the door that pretix would not annul",
        c.sent_through, c.waiting, c.refused, c.annul_refused
    );
    if let Some(why) = state.store.pretix_value(pretix::PAUSED_KEY).await? {
        println!("CHECK-INS ARE NOT GOING BACK: {why}");
    }
    for r in &c.latest {
        println!(
            "  scan #{} ({}) refused at {}: {}",
            r.scan_id,
            r.kind,
            venuebox::domain::time::format_rfc3339(r.at),
            r.detail
        );
    }
    Ok(())
}
