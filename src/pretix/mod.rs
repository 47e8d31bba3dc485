//! Working with pretix, where many organisers already sell their tickets:
//! `import` turns a pretix event into a manifest signed by the box's own
//! organiser key, `checkins` sends the door's scans back, `client` is the
//! REST adapter. This module holds the credentials (a 0600 file or the
//! environment, never a flag), the box's organiser key and the loop a
//! running box keeps while the event is a pretix one: send scans back as
//! soon as pretix answers, re-import every few minutes.

pub mod checkins;
pub mod client;
pub mod import;

use crate::clock::Clock;
use crate::store::Store;
use client::Client;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The token's file in the data directory (mode 0600), written by
/// `venuebox pretix import` so the running box can go on.
pub const TOKEN_FILE: &str = "pretix-token";
/// The environment variable that may hold the token instead.
pub const TOKEN_ENV: &str = "VENUEBOX_PRETIX_TOKEN";
/// The key the box signs its pretix manifests with (mode 0600).
pub const KEY_FILE: &str = "pretix-organiser.key";

/// Reads a token file, refusing one other users could read.
pub fn read_token_file(path: &Path) -> Result<String, String> {
    crate::secrets::check_private(path)
        .map_err(|e| format!("the pretix token file: {e} (the token opens your pretix orders)"))?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the pretix token file {}: {e}", path.display()))?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(format!("{} is empty: put the pretix API token in it", path.display()));
    }
    Ok(token)
}

/// The token: from the file given (which must exist), else the
/// environment, else the data directory's file (absent: "no pretix").
pub fn token(
    file: Option<&Path>,
    data_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, String> {
    if let Some(f) = file {
        return read_token_file(f).map(Some);
    }
    if let Some(t) = env(TOKEN_ENV).filter(|t| !t.trim().is_empty()) {
        return Ok(Some(t.trim().to_string()));
    }
    let f = data_dir.join(TOKEN_FILE);
    if f.exists() {
        read_token_file(&f).map(Some)
    } else {
        Ok(None)
    }
}

/// The box's organiser key for pretix manifests, made on first use.
pub fn organiser_key(data_dir: &Path) -> Result<ed25519_dalek::SigningKey, String> {
    use crate::organiser::keyfile::KeyFile;
    let path = data_dir.join(KEY_FILE);
    if path.exists() {
        return KeyFile::load(&path).map(|k| k.signing_key()).map_err(|e| e.to_string());
    }
    let key = KeyFile::generate();
    key.save(&path).map_err(|e| e.to_string())?;
    owned_like_dir(&path, data_dir);
    Ok(key.signing_key())
}

/// Gives a file the data directory's owner, so one made by `venuebox
/// pretix import` run as root stays readable by the service's user.
pub fn owned_like_dir(path: &Path, data_dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(dir) = std::fs::metadata(data_dir) {
        if let Err(e) = std::os::unix::fs::chown(path, Some(dir.uid()), Some(dir.gid())) {
            tracing::debug!(error = %e, path = %path.display(), "cannot give the file the data directory's owner");
        }
    }
}

/// How a running box works with pretix.
#[derive(Clone, Debug)]
pub struct PretixConfig {
    /// The token the box started with.
    pub token: String,
    /// The file given for it (`--pretix-token-file`); `None`: the
    /// environment, or the data directory's file. Read again while the
    /// link is stopped, so a mended token is taken without a restart.
    pub token_file: Option<PathBuf>,
    pub data_dir: PathBuf,
    /// How often the event is imported again.
    pub import_every: Duration,
    /// How often the lane looks for scans to send when idle.
    pub send_every: Duration,
}

/// What the admin and `/metrics` see of the pretix lane.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PretixStatus {
    pub last_import_at: Option<crate::domain::time::Millis>,
    pub last_import: Option<String>,
    pub last_sent_at: Option<crate::domain::time::Millis>,
    pub last_error: Option<String>,
    pub last_error_at: Option<crate::domain::time::Millis>,
    /// Why check-ins are not going back (the link, not one scan), and
    /// what to do; `None` while they go.
    pub paused: Option<String>,
    pub paused_since: Option<crate::domain::time::Millis>,
    /// Whether someone must mend something (token, permission, setting),
    /// rather than wait for the network or pretix.
    pub needs_fixing: bool,
}

#[derive(Debug, Default)]
pub struct PretixHandle {
    pub setup: Option<PretixConfig>,
    pub status: Mutex<PretixStatus>,
}

impl PretixHandle {
    fn update(&self, f: impl FnOnce(&mut PretixStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub fn status(&self) -> PretixStatus {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The named value that keeps why the lane is stopped, for `venuebox
/// pretix status` and across restarts.
pub const PAUSED_KEY: &str = "link_problem";

/// The running box's pretix loop: while the loaded event came from pretix,
/// check the token may check in, send scans back (backing off while the
/// link is down, re-reading the token while it is refused) and import
/// again every `import_every`.
pub async fn run(
    handle: std::sync::Arc<PretixHandle>,
    store: Store,
    clock: Clock,
    stop: CancellationToken,
) {
    let Some(cfg) = handle.setup.clone() else { return };
    let mut next_import = tokio::time::Instant::now() + cfg.import_every;
    let mut backoff = Duration::ZERO;
    let mut token = cfg.token.clone();
    let mut current: Option<(crate::domain::manifest::PretixLink, checkins::Sender, Client)> = None;
    // Whether the current client's token was shown to be allowed to check in.
    let mut allowed = false;
    loop {
        let wait = if backoff.is_zero() { cfg.send_every } else { backoff };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if store.replica().role() != crate::store::replica::Role::Primary {
            continue; // only the primary of a pair talks to pretix
        }
        let Some(link) = store.event().and_then(|e| e.manifest.pretix.clone()) else { continue };
        if handle.status().paused.is_some() {
            let env = |k: &str| std::env::var(k).ok();
            match self::token(cfg.token_file.as_deref(), &cfg.data_dir, &env) {
                Ok(Some(t)) if t != token => {
                    tracing::info!("pretix: a new API token was found; trying it");
                    token = t;
                    current = None;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pretix: cannot read the token again"),
            }
        }
        if current.as_ref().is_none_or(|(l, _, _)| {
            l.url != link.url || l.organizer != link.organizer || l.event != link.event
        }) {
            allowed = false;
            match Client::new(&link.url, &link.organizer, &link.event, &token) {
                Ok(c) => {
                    current =
                        Some((link.clone(), checkins::Sender::new(store.clone(), c.clone()), c))
                }
                Err(e) => {
                    pause(&handle, &store, &clock, e, true).await;
                    backoff = Duration::from_secs(60);
                    continue;
                }
            }
        }
        let (_, sender, client) = current.as_ref().expect("set above");
        let lists: Vec<i64> = link.lists.iter().map(|l| l.id).collect();
        let mut failed: Option<checkins::SendError> = None;
        if !allowed {
            match checkins::check_permission(client, &lists).await {
                Ok(()) => allowed = true,
                Err(e) => failed = Some(e),
            }
        }
        while failed.is_none() {
            match sender.step(clock.now()).await {
                Ok(0) => break,
                Ok(_) => handle.update(|s| s.last_sent_at = Some(clock.now())),
                Err(e) => failed = Some(e),
            }
        }
        if let Some(e) = &failed {
            if e.needs_fixing() {
                // Check the token again before the next send: a mended
                // token or permission is found by the check.
                allowed = false;
            }
        }
        let mut import_failed = None;
        if failed.is_none() && tokio::time::Instant::now() >= next_import {
            next_import = tokio::time::Instant::now() + cfg.import_every;
            let key = organiser_key(&cfg.data_dir);
            let outcome = match key {
                Ok(key) => import::run(
                    &store,
                    client,
                    &import::ImportOptions::default(),
                    &key,
                    clock.now(),
                )
                .await
                .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(r) => {
                    tracing::info!(
                        version = r.version,
                        changed = r.changed,
                        orders = r.orders_fetched,
                        "imported from pretix"
                    );
                    let text = format!(
                        "version {} ({} tickets; {} orders changed)",
                        r.version, r.tickets, r.orders_fetched
                    );
                    handle.update(|s| {
                        (s.last_import_at, s.last_import) = (Some(clock.now()), Some(text))
                    });
                }
                Err(e) => import_failed = Some(format!("import: {e}")),
            }
        }
        match (failed, import_failed) {
            (None, None) => {
                backoff = Duration::ZERO;
                resume(&handle, &store).await;
            }
            (None, Some(e)) => {
                resume(&handle, &store).await;
                tracing::warn!(error = %e, "pretix: will try again");
                handle.update(|s| (s.last_error, s.last_error_at) = (Some(e), Some(clock.now())));
                backoff = next_backoff(backoff, cfg.send_every);
            }
            (Some(e), _) => {
                let fix = e.needs_fixing();
                pause(&handle, &store, &clock, e.to_string(), fix).await;
                backoff = next_backoff(backoff, cfg.send_every);
            }
        }
    }
}

fn next_backoff(backoff: Duration, send_every: Duration) -> Duration {
    let base = send_every.max(Duration::from_secs(1));
    (backoff * 2).clamp(base, Duration::from_secs(60))
}

/// The lane stopped on the link: said once in the log (an error when
/// someone must act), kept in the status and the store.
async fn pause(handle: &PretixHandle, store: &Store, clock: &Clock, why: String, fix: bool) {
    let now = clock.now();
    let before = handle.status().paused;
    if before.as_deref() != Some(why.as_str()) {
        if fix {
            tracing::error!(why = %why, "pretix: check-ins are not going back");
        } else {
            tracing::warn!(why = %why, "pretix: check-ins wait for pretix");
        }
        if let Err(e) = store.pretix_set_value(PAUSED_KEY, Some(why.clone())).await {
            tracing::warn!(error = %e, "pretix: cannot note the stop");
        }
    }
    handle.update(|s| {
        s.paused_since = s.paused_since.or(Some(now));
        s.paused = Some(why.clone());
        s.needs_fixing = fix;
        (s.last_error, s.last_error_at) = (Some(why), Some(now));
    });
}

/// The lane goes again.
async fn resume(handle: &PretixHandle, store: &Store) {
    let was = handle.status().paused;
    handle.update(|s| {
        s.paused = None;
        s.paused_since = None;
        s.needs_fixing = false;
        s.last_error = None;
    });
    if was.is_some() {
        tracing::info!("pretix: check-ins go back again");
    }
    // The note in the store (kept across restarts) is cleared once, not
    // written on every healthy round: the writer serves the door.
    let noted = was.is_some() || matches!(store.pretix_value(PAUSED_KEY).await, Ok(Some(_)));
    if noted {
        if let Err(e) = store.pretix_set_value(PAUSED_KEY, None).await {
            tracing::warn!(error = %e, "pretix: cannot clear the stop");
        }
    }
}

/// `/metrics` lines of the pretix lane.
pub fn render_metrics(
    status: &PretixStatus,
    counts: &crate::store::pretix::PretixCounts,
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let gauge = |out: &mut String, name: &str, help: &str, v: i64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    };
    gauge(
        &mut out,
        "venuebox_pretix_link_paused",
        "1 while check-ins cannot go back to pretix (token, permission, pretix unreachable).",
        i64::from(status.paused.is_some()),
    );
    gauge(
        &mut out,
        "venuebox_pretix_link_needs_fixing",
        "1 while the pretix link waits for someone to mend the token or a setting.",
        i64::from(status.needs_fixing),
    );
    gauge(
        &mut out,
        "venuebox_pretix_scans_waiting",
        "Scans not yet sent back to pretix.",
        counts.waiting,
    );
    gauge(
        &mut out,
        "venuebox_pretix_scans_refused",
        "Scans pretix declined (kept on the box).",
        counts.refused,
    );
    gauge(
        &mut out,
        "venuebox_pretix_annulments_refused",
        "Check-ins undone at the door that pretix would not annul.",
        counts.annul_refused,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_the_environment_or_a_private_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let none = |_: &str| None;
        assert_eq!(
            token(None, dir.path(), &none).unwrap(),
            None,
            "no file, no variable: no pretix"
        );
        let f = dir.path().join(TOKEN_FILE);
        std::fs::write(&f, "abc\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(token(None, dir.path(), &none).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(token(None, dir.path(), &none).unwrap().as_deref(), Some("abc"));
        let env = |k: &str| (k == TOKEN_ENV).then(|| "fromenv".to_string());
        assert_eq!(token(None, dir.path(), &env).unwrap().as_deref(), Some("fromenv"));
        let missing = dir.path().join("nope");
        assert!(
            token(Some(&missing), dir.path(), &env).unwrap_err().contains("cannot read"),
            "a file given wins"
        );
    }

    #[test]
    fn the_key_made_by_root_belongs_to_the_data_directorys_owner() {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return; // only root can give a file away (CI runs as root)
        }
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
        organiser_key(dir.path()).unwrap();
        let meta = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap();
        assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o777), (65534, 65534, 0o600));
        organiser_key(dir.path()).unwrap();
    }
}
