//! The standby (ARCHITECTURE.md, "Two boxes"): the link between the two
//! boxes of a pair and what runs on it. The store records and applies
//! changesets (`store::replica`); this module carries them.
//!
//! - `frame`: the wire format; `link`: mutual TLS, hellos, the epoch rules;
//! - `primary`: the leader ships the log (or a snapshot) and releases the
//!   answers the store holds for the standby, or goes on alone after
//!   `ack_bound`;
//! - `standby`: the follower applies and acknowledges;
//! - `join`: enrolment of a standby with a one-time code;
//! - `report`: what a fenced old primary took alone, and the merge.
//!
//! Each box listens for its peer and dials it; one link at a time.

mod files;
pub mod frame;
pub mod join;
pub mod link;
mod primary;
pub mod report;
mod standby;

use crate::clock::Clock;
use crate::media::MediaFiles;
use crate::metrics::Metrics;
use crate::store::replica::Role;
use crate::store::Store;
use crate::throttle::Throttle;
use frame::Hello;
use link::{LinkTls, Plan};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The link's settings.
#[derive(Clone, Debug)]
pub struct ReplicationConfig {
    /// The longest an answer waits for the standby before the primary
    /// goes on alone (`--standby-ack-ms`).
    pub ack_bound: Duration,
    /// Log rows kept after the standby has them, so a short cut is caught
    /// up from the log rather than a snapshot.
    pub keep_rows: i64,
    /// The link is dead when nothing arrived for this long.
    pub silence: Duration,
    /// Where snapshots are written and received (the data directory).
    pub data_dir: PathBuf,
    /// Bytes per second the primary sends capture files at (the door's
    /// writes never wait for them: they go on a link of their own, and
    /// pause while the door is busy).
    pub copy_rate: u64,
}

impl ReplicationConfig {
    pub fn new(data_dir: PathBuf) -> ReplicationConfig {
        ReplicationConfig {
            ack_bound: Duration::from_millis(1000),
            keep_rows: 50_000,
            silence: Duration::from_secs(3),
            data_dir,
            copy_rate: 4 << 20,
        }
    }
}

/// What the dashboard shows about the pair.
#[derive(Clone, Debug, Default, serde::Serialize, schemars::JsonSchema)]
pub struct LinkStatus {
    /// The port this box listens on for its peer, if it does.
    pub listen_port: Option<u16>,
    /// The peer's replication address, when this box is in a pair.
    pub peer: Option<String>,
    /// The peer's node name, once it said hello.
    pub peer_node: Option<String>,
    pub connected: bool,
    /// This box ships its log (it is the primary on the link).
    pub leading: bool,
    /// The newest seq the peer holds (acknowledged, or the leader's newest).
    pub peer_seq: i64,
    /// Writes the standby has not acknowledged yet (on the leader), or
    /// has not received yet (on the follower).
    pub lag_writes: i64,
    /// How long the oldest answer waiting for the standby has waited.
    pub lag_ms: i64,
    /// Answers wait for the standby (it is connected and caught up).
    pub in_sync: bool,
    /// Unix ms of the last frame from the peer.
    pub last_contact_ms: Option<i64>,
    /// Unix ms since this primary goes on alone (standby gone or behind).
    pub alone_since_ms: Option<i64>,
    pub snapshots: u64,
    /// On a standby: captures copied (each checked by its SHA-256), files
    /// still to copy, bytes copied.
    pub files_copied: u64,
    pub files_left: u64,
    pub file_bytes_copied: u64,
    pub last_error: Option<String>,
    /// The staff app's HTTPS port on this box, and the peer's app
    /// (`https://host:port`, from its hello): where phones go when the
    /// peer is the primary.
    pub web_port: Option<u16>,
    pub peer_web: Option<String>,
    /// On the primary: the satellites that have followed it since it
    /// started, by node name.
    #[serde(default)]
    pub satellites: Vec<SatelliteStatus>,
}

/// One satellite as the primary sees it.
#[derive(Clone, Debug, Default, serde::Serialize, schemars::JsonSchema)]
pub struct SatelliteStatus {
    pub node: String,
    /// Its link is up (it follows the log).
    pub connected: bool,
    /// The newest seq it has applied.
    pub seq: i64,
    /// Unix ms of its last acknowledgement.
    pub last_contact_ms: Option<i64>,
    /// Unix ms since its link is down (it may be apart).
    pub apart_since_ms: Option<i64>,
}

impl LinkStatus {
    /// The pair's gauges for `/metrics`: role and epoch, whether answers
    /// wait for the standby, how far behind it is, captures left to copy.
    /// Nothing when the box is not in a pair.
    pub fn render_metrics(&self, primary: bool, epoch: i64) -> String {
        use std::fmt::Write;
        if self.peer.is_none() {
            return String::new();
        }
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, value: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        };
        gauge("venuebox_pair_primary", "1 when this box is the pair's primary.", primary.into());
        gauge("venuebox_pair_epoch", "The pair's epoch as this box knows it.", epoch);
        gauge(
            "venuebox_pair_connected",
            "1 while the link to the other box is up.",
            self.connected.into(),
        );
        gauge(
            "venuebox_pair_in_sync",
            "1 while answers wait for the standby (0: the primary goes on alone).",
            self.in_sync.into(),
        );
        gauge(
            "venuebox_pair_lag_writes",
            "Writes the standby has not acknowledged or received.",
            self.lag_writes,
        );
        gauge(
            "venuebox_pair_lag_ms",
            "Age of the oldest answer waiting for the standby.",
            self.lag_ms,
        );
        gauge(
            "venuebox_pair_files_left",
            "Capture files the standby has still to copy.",
            self.files_left as i64,
        );
        out
    }
}

/// The running link's handle: settings and status.
pub struct Replication {
    pub config: ReplicationConfig,
    pub status: Mutex<LinkStatus>,
    pub clock: Clock,
    media: MediaFiles,
    metrics: Arc<Metrics>,
    copy_throttle: Throttle,
}

impl Replication {
    pub fn new(
        config: ReplicationConfig,
        clock: Clock,
        media: MediaFiles,
        metrics: Arc<Metrics>,
    ) -> Arc<Replication> {
        let copy_throttle = Throttle::new(config.copy_rate);
        Arc::new(Replication {
            config,
            status: Mutex::new(LinkStatus::default()),
            clock,
            media,
            metrics,
            copy_throttle,
        })
    }

    pub fn status(&self) -> LinkStatus {
        self.status.lock().expect("link status").clone()
    }

    pub fn update_listen(&self, port: Option<u16>, web_port: Option<u16>) {
        self.update(|s| {
            s.listen_port = port;
            s.web_port = web_port;
        });
    }

    /// Whether the link to the peer (a satellite's to its primary) is up.
    pub fn connected(&self) -> bool {
        self.status.lock().expect("link status").connected
    }

    /// The peer's staff-app address, when known.
    pub fn peer_web(&self) -> Option<String> {
        self.status.lock().expect("link status").peer_web.clone()
    }

    /// Takes the peer's app address from its hello (and the address the
    /// link reached it at), kept across restarts.
    async fn learn_peer_web(&self, store: &Store, ip: std::net::IpAddr, hello: &Hello) {
        let Some(port) = hello.web_port else { return };
        let url = match ip {
            std::net::IpAddr::V6(v6) => format!("https://[{v6}]:{port}"),
            std::net::IpAddr::V4(v4) => format!("https://{v4}:{port}"),
        };
        if self.peer_web().as_deref() == Some(url.as_str()) {
            return;
        }
        self.update(|s| s.peer_web = Some(url.clone()));
        if let Err(e) = store.set_peer_web(url).await {
            tracing::warn!(error = %e, "cannot keep the peer's app address");
        }
    }

    fn update(&self, f: impl FnOnce(&mut LinkStatus)) {
        f(&mut self.status.lock().expect("link status"));
    }

    /// Updates (adding it when new) the primary's line for a satellite.
    fn satellite(&self, node: &str, f: impl FnOnce(&mut SatelliteStatus)) {
        self.update(|s| {
            let i = match s.satellites.iter().position(|x| x.node == node) {
                Some(i) => i,
                None => {
                    s.satellites.push(SatelliteStatus { node: node.into(), ..Default::default() });
                    s.satellites.len() - 1
                }
            };
            f(&mut s.satellites[i]);
        });
    }

    fn contact(&self) {
        let now = self.clock.now();
        self.update(|s| s.last_contact_ms = Some(now));
    }
}

/// This box's hello, from the store.
async fn my_hello(
    store: &Store,
    repl: &Replication,
    node: &str,
) -> Result<Hello, crate::store::StoreError> {
    let st = store.replica_state().await?;
    let standby_link = match st.role {
        Role::Primary => store.peer_address().await?,
        _ => None,
    };
    let web_port = repl.status.lock().expect("link status").web_port;
    Ok(Hello {
        protocol: frame::PROTOCOL,
        node: node.to_string(),
        role: st.role,
        epoch: st.epoch,
        seq: st.seq,
        seq_epoch: store.log_epoch_at(st.seq).await?,
        epoch_start: st.epoch_start,
        schema: store.schema_version().await?,
        purpose: if st.role == Role::Satellite {
            frame::Purpose::Satellite
        } else {
            frame::Purpose::Log
        },
        web_port,
        apart: st.apart_since.is_some(),
        standby_link,
    })
}

/// Runs the link until `stop`: accepts the peer on `listener`, dials the
/// peer this box knows (from `join`), and acts on a standby's promotion
/// request (`venuebox promote`).
pub async fn run(
    store: Store,
    tls: LinkTls,
    repl: Arc<Replication>,
    listener: Option<TcpListener>,
    stop: CancellationToken,
) {
    let busy = Arc::new(tokio::sync::Mutex::new(()));
    let node = store.node_name().await.unwrap_or_else(|_| "box".into());
    if let Ok(Some(url)) = store.peer_web().await {
        repl.update(|s| s.peer_web = s.peer_web.take().or(Some(url)));
    }
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(listener) = listener {
        let (store, tls, repl, busy, node, stop) =
            (store.clone(), tls.clone(), repl.clone(), busy.clone(), node.clone(), stop.clone());
        tasks.spawn(async move {
            loop {
                let (tcp, from) = tokio::select! {
                    _ = stop.cancelled() => return,
                    a = listener.accept() => match a {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!(error = %e, "replication accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let (store, tls, repl, busy, node, stop) = (
                    store.clone(),
                    tls.clone(),
                    repl.clone(),
                    busy.clone(),
                    node.clone(),
                    stop.clone(),
                );
                tokio::spawn(async move {
                    let stream = match tls.accept(tcp).await {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(%from, error = %e, "refused a replication link: not a box of this pair");
                            return;
                        }
                    };
                    session(stream, &store, &repl, &node, &busy, &stop, None).await;
                });
            }
        });
    }
    {
        let (store, tls, repl, busy, node, stop) =
            (store.clone(), tls.clone(), repl.clone(), busy.clone(), node.clone(), stop.clone());
        tasks.spawn(async move { dial(store, tls, repl, busy, node, stop).await });
    }
    tasks.spawn(files::copier(
        store.clone(),
        tls.clone(),
        repl.clone(),
        node.clone(),
        stop.clone(),
    ));
    tasks.spawn(promotions(store.clone(), repl.clock.clone(), stop.clone()));
    tasks.spawn(primary::trim(store, repl, stop.clone()));
    while tasks.join_next().await.is_some() {}
}

/// Dials the peer whenever no link is up.
async fn dial(
    store: Store,
    tls: LinkTls,
    repl: Arc<Replication>,
    busy: Arc<tokio::sync::Mutex<()>>,
    node: String,
    stop: CancellationToken,
) {
    loop {
        let peer = store.peer_address().await.ok().flatten();
        repl.update(|s| s.peer = peer.clone());
        // A satellite tries the pair's other box when its primary does not
        // answer (after a takeover, that one is the primary).
        let alt = match store.replica().role() {
            Role::Satellite => store.alt_peer().await.ok().flatten(),
            _ => None,
        };
        for addr in peer.iter().chain(alt.iter()) {
            if busy.try_lock().is_err() {
                break;
            }
            match tls.connect(addr).await {
                Ok(stream) => {
                    session(stream, &store, &repl, &node, &busy, &stop, Some(addr)).await;
                    break;
                }
                Err(e) => repl.update(|s| s.last_error = Some(format!("cannot reach {addr}: {e}"))),
            }
        }
        // Jittered, so two boxes dialing each other at once do not collide again.
        let wait = 300 + u64::from(u16::from_be_bytes(crate::secrets::random_bytes::<2>())) % 500;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
    }
}

/// One link from hello to close; one at a time per box.
async fn session(
    mut stream: link::Stream,
    store: &Store,
    repl: &Arc<Replication>,
    node: &str,
    busy: &tokio::sync::Mutex<()>,
    stop: &CancellationToken,
    dialed: Option<&str>,
) {
    let me = match my_hello(store, repl, node).await {
        Ok(me) => me,
        Err(e) => return tracing::warn!(error = %e, "cannot start a replication link"),
    };
    let peer = match link::hello(&mut stream, &me).await {
        Ok(p) => p,
        Err(e) => return tracing::info!(error = %e, "a replication link closed before its hello"),
    };
    // The pair's other box (a satellite is not where phones go); on a
    // satellite, only a primary is where its calls go.
    let learn = peer.purpose != frame::Purpose::Satellite
        && (me.role != Role::Satellite || peer.role == Role::Primary);
    if let (Ok(addr), true) = (stream.get_ref().0.peer_addr(), learn) {
        repl.learn_peer_web(store, addr.ip(), &peer).await;
    }
    if peer.purpose == frame::Purpose::Files {
        if me.role != Role::Primary {
            let _ =
                frame::write(&mut stream, &frame::Frame::Bye("this box is not the primary".into()))
                    .await;
            return;
        }
        if let Err(e) = files::serve(&mut stream, repl, stop).await {
            tracing::info!(error = %e, "the standby's file link closed");
        }
        return;
    }
    if peer.purpose == frame::Purpose::Satellite && me.role == Role::Primary {
        return lead_satellite(stream, store, repl, &me, &peer, stop).await;
    }
    let Ok(_held) = busy.try_lock() else {
        let _ = frame::write(&mut stream, &frame::Frame::Bye("a link is already up".into())).await;
        return;
    };
    let outcome = async {
        repl.update(|s| {
            s.peer_node = Some(peer.node.clone());
            s.connected = true;
        });
        repl.contact();
        let plan = match link::plan(&me, &peer) {
            Plan::Fence(epoch) => {
                store.fence(epoch).await?;
                Plan::Follow
            }
            p => p,
        };
        tracing::info!(peer = %peer.node, ?plan, epoch = me.epoch, peer_epoch = peer.epoch, "replication link up");
        match plan {
            Plan::Lead => {
                primary::lead(&mut stream, store, repl, &peer, primary::Follower::Standby, stop)
                    .await
            }
            Plan::Follow => {
                if me.role == Role::Satellite {
                    keep_primary(store, dialed, &peer).await?;
                }
                standby::follow(&mut stream, store, repl, &peer, &me, stop).await
            }
            Plan::Close(why) => {
                let _ = frame::write(&mut stream, &frame::Frame::Bye(why.clone())).await;
                Err(LinkError::Refused(why))
            }
            Plan::Fence(_) => unreachable!("fencing was handled above"),
        }
    }
    .await;
    store.replica().go_on_alone();
    let now = repl.clock.now();
    repl.update(|s| {
        s.connected = false;
        s.leading = false;
        s.in_sync = false;
        if store.replica().role() == Role::Primary && s.alone_since_ms.is_none() {
            s.alone_since_ms = Some(now);
        }
        if let Err(e) = &outcome {
            s.last_error = Some(e.to_string());
        }
    });
    match outcome {
        Ok(()) => tracing::info!("replication link closed"),
        Err(e) => tracing::warn!(error = %e, "replication link closed"),
    }
}

/// On a satellite following a primary: that box is the one to dial first
/// from now on (the other one, after a takeover), and the standby it
/// names the one to try next.
async fn keep_primary(
    store: &Store,
    dialed: Option<&str>,
    primary: &Hello,
) -> Result<(), crate::store::StoreError> {
    let stored = store.peer_address().await?;
    if let Some(addr) = dialed.filter(|a| stored.as_deref() != Some(*a)) {
        tracing::warn!(primary = %primary.node, %addr, "the primary is now the box at {addr}: following it");
        store.set_peer(addr.to_string()).await?;
    }
    let next = primary.standby_link.clone().or(stored.filter(|s| Some(s.as_str()) != dialed));
    if let Some(next) = next.filter(|n| Some(n.as_str()) != dialed) {
        if store.alt_peer().await?.as_deref() != Some(next.as_str()) {
            store.set_alt_peer(next).await?;
        }
    }
    Ok(())
}

/// A satellite's link, on the primary: several at once, beside the
/// standby's, none of them holding an answer.
async fn lead_satellite(
    mut stream: link::Stream,
    store: &Store,
    repl: &Arc<Replication>,
    me: &Hello,
    peer: &Hello,
    stop: &CancellationToken,
) {
    let outcome = match link::plan(me, peer) {
        Plan::Lead => {
            let now = repl.clock.now();
            repl.satellite(&peer.node, |s| {
                s.connected = true;
                s.apart_since_ms = None;
                s.last_contact_ms = Some(now);
            });
            tracing::info!(satellite = %peer.node, "a satellite follows this box");
            primary::lead(&mut stream, store, repl, peer, primary::Follower::Satellite, stop).await
        }
        Plan::Fence(epoch) => store.fence(epoch).await.map_err(LinkError::from),
        Plan::Follow | Plan::Close(_) => Err(LinkError::Refused(format!(
            "{} cannot lead satellite {} (roles {:?}/{:?}, epochs {}/{})",
            me.node, peer.node, me.role, peer.role, me.epoch, peer.epoch
        ))),
    };
    let now = repl.clock.now();
    repl.satellite(&peer.node, |s| {
        s.connected = false;
        s.apart_since_ms = Some(now);
    });
    match outcome {
        Ok(()) => tracing::info!(satellite = %peer.node, "a satellite's link closed"),
        Err(e) => tracing::warn!(satellite = %peer.node, error = %e, "a satellite's link closed"),
    }
}

/// `venuebox promote` asks the running standby through its store.
async fn promotions(store: Store, clock: crate::clock::Clock, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        if store.replica().role().follows() && store.promotion_requested().await.unwrap_or(false) {
            match store.promote(clock.now()).await {
                Ok(st) => {
                    tracing::warn!(epoch = st.epoch, "promoted on request: this box is the primary")
                }
                Err(e) => tracing::error!(error = %e, "cannot promote"),
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Frame(#[from] frame::FrameError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Refused(String),
    #[error("the peer was silent for {0:?}")]
    Silent(Duration),
    #[error("this box's role changed")]
    RoleChanged,
}
