//! The accept loop: how many connections the box takes, from whom, and how
//! long a connection may sit without sending. The venue Wi-Fi may be shared
//! with guests, so nothing a client does with sockets alone (opening many,
//! sending headers a byte a minute, trickling a body, idling on
//! keep-alive) may hold file descriptors or memory without a bound, nor
//! take the room the door needs.
//!
//! Connections are counted in three classes, each with its own budget
//! ([`Class`]): the loopback API listener (`--listen`), LAN clients at an
//! address where staff signed in recently, and strangers. Strangers can
//! only ever fill their own quarter of the LAN's connections; a phone that
//! signed in keeps getting connections however many strangers knock.
//! A request body must keep up a minimum rate after a short grace
//! ([`PacedBody`]), so a body trickled a byte at a time frees its slot.
//!
//! It does not route or authorise; that is the router's job. It speaks
//! HTTP/1.1 only.

use crate::metrics::Metrics;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// Bounds on what one client, or all of them, may hold open.
#[derive(Clone, Debug)]
pub struct ConnLimits {
    /// A request's headers must arrive within this; it is also how long an
    /// idle keep-alive connection waits for its next request.
    pub header_timeout: Duration,
    /// A connection on which no byte moved either way for this long is
    /// closed (a client that stopped reading, a feed nobody reads).
    pub idle_timeout: Duration,
    /// Connections open at once on the LAN listeners (HTTPS and pairing
    /// together), and separately on the loopback listener. Strangers (no
    /// staff sign-in from their address lately) get a quarter of the LAN's.
    pub max_connections: usize,
    /// Connections open at once from one address; a stranger gets a
    /// quarter of it.
    pub max_per_address: usize,
    /// A request body may take this long before it must keep up
    /// `body_min_rate`.
    pub body_grace: Duration,
    /// Bytes a second a request body must average, counted from its first
    /// read after `body_grace`; slower, the request fails with 408 and the
    /// connection closes.
    pub body_min_rate: u64,
    /// After shutdown is asked, how long connections in flight may finish.
    pub drain: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 512,
            max_per_address: 64,
            body_grace: Duration::from_secs(10),
            body_min_rate: 1024,
            drain: Duration::from_secs(5),
        }
    }
}

/// Who a connection is counted as, decided when it is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// The plain API listener (`--listen`, loopback by default): the box's
    /// own scripts and tools. Never starved by the LAN.
    Local,
    /// A LAN client at an address from which staff signed in or used a
    /// valid token lately.
    Known,
    /// Anyone else on the LAN.
    Stranger,
}

impl Class {
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        crate::metrics::CONNECTION_CLASSES[self.index()]
    }

    /// (total, per address) for this class under `limits`.
    fn caps(self, limits: &ConnLimits) -> (usize, usize) {
        match self {
            Class::Local => (limits.max_connections, limits.max_per_address),
            Class::Known => {
                let strangers = Class::Stranger.caps(limits).0;
                (limits.max_connections.saturating_sub(strangers).max(1), limits.max_per_address)
            }
            Class::Stranger => {
                ((limits.max_connections / 4).max(1), (limits.max_per_address / 4).max(1))
            }
        }
    }
}

/// How long an address stays known after staff last used it.
const KNOWN_FOR: Duration = Duration::from_secs(12 * 3600);
/// Addresses remembered as known; the oldest is forgotten first. Only a
/// valid sign-in or token adds one, so staff devices alone fill it.
const MAX_KNOWN: usize = 4096;

#[derive(Default)]
struct Counts {
    per_class: [usize; 3],
    per_addr: HashMap<(Class, IpAddr), usize>,
    /// Open strangers' connections by id, for choosing one to close when
    /// their share is full and another stranger knocks.
    strangers: HashMap<u64, Stranger>,
    next_id: u64,
}

/// A stranger's connection, as far as choosing whom to close goes.
struct Stranger {
    ip: IpAddr,
    /// When it last started or finished a request (or was accepted).
    since: Instant,
    /// A request is being read or answered.
    in_flight: bool,
    /// Closes the connection.
    close: tokio_util::sync::CancellationToken,
}

/// A request in flight longer than this on a stranger's connection is a
/// slow one (a trickled body, a held read): its connection may be closed
/// for a newcomer.
const SLOW_REQUEST: Duration = Duration::from_secs(1);
/// A stranger's connection idle this long may be closed for a newcomer.
/// Busy clients are never closed, so a flood of requests cannot make the
/// box churn through TLS handshakes; at most the whole share every two
/// seconds.
const IDLE_TO_CLOSE: Duration = Duration::from_secs(2);

/// Connections open now, per class and per address, across every
/// listener, and the addresses staff use. A slot is given back when its
/// [`ConnSlot`] drops, whatever way the connection ended.
#[derive(Default)]
pub struct ConnBudget {
    counts: Mutex<Counts>,
    /// Address → when staff last proved themselves from it. Read on every
    /// accept, written on every authenticated request (cheap: one lock,
    /// one insert).
    known: Mutex<HashMap<IpAddr, Instant>>,
}

impl Counts {
    /// Closes the stranger connection idle (or stuck in one request) the
    /// longest and frees its place; `false` when every one is busy with a
    /// request that is not yet slow.
    fn close_idlest_stranger(&mut self) -> bool {
        let victim = self
            .strangers
            .iter()
            .filter(|(_, s)| {
                let limit = if s.in_flight { SLOW_REQUEST } else { IDLE_TO_CLOSE };
                s.since.elapsed() > limit
            })
            .min_by_key(|(id, s)| (s.since, **id))
            .map(|(id, _)| *id);
        let Some(s) = victim.and_then(|id| self.strangers.remove(&id)) else { return false };
        s.close.cancel();
        self.per_class[Class::Stranger.index()] -= 1;
        let key = (Class::Stranger, s.ip);
        if let Some(n) = self.per_addr.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.per_addr.remove(&key);
            }
        }
        true
    }
}

pub struct ConnSlot {
    budget: Arc<ConnBudget>,
    class: Class,
    ip: IpAddr,
    /// For a stranger: its id among `Counts::strangers`.
    id: Option<u64>,
    /// Cancelled when the box closes this connection for a newcomer.
    pub close: tokio_util::sync::CancellationToken,
}

impl ConnSlot {
    /// Marks a request starting (`true`) or finished (`false`) on this
    /// connection; only strangers' connections are tracked.
    pub fn request(&self, started: bool) {
        let Some(id) = self.id else { return };
        let mut g = self.budget.counts.lock().expect("connection count");
        if let Some(s) = g.strangers.get_mut(&id) {
            s.in_flight = started;
            s.since = Instant::now();
        }
    }
}

impl ConnBudget {
    /// Remembers that staff proved themselves from `ip`: its next
    /// connections count as [`Class::Known`].
    pub fn mark_known(&self, ip: IpAddr) {
        let ip = address_key(ip);
        let now = Instant::now();
        let mut known = self.known.lock().expect("known addresses");
        if known.len() >= MAX_KNOWN && !known.contains_key(&ip) {
            known.retain(|_, at| now.duration_since(*at) < KNOWN_FOR);
            if known.len() >= MAX_KNOWN {
                if let Some(oldest) = known.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k) {
                    known.remove(&oldest);
                }
            }
        }
        known.insert(ip, now);
    }

    /// The class a new LAN connection from `ip` counts in.
    pub fn lan_class(&self, ip: IpAddr) -> Class {
        let ip = address_key(ip);
        let known = self.known.lock().expect("known addresses");
        match known.get(&ip) {
            Some(at) if at.elapsed() < KNOWN_FOR => Class::Known,
            _ => Class::Stranger,
        }
    }

    /// A slot for a new connection from `ip` in `class`, or `None` when
    /// that class or that address already has as many as allowed. When
    /// the strangers' share is full, a new stranger takes the place of the
    /// stranger that has been idle (or stuck in one request) the longest,
    /// so the share cannot be held shut against a phone coming to pair.
    pub fn admit(
        self: &Arc<Self>,
        class: Class,
        ip: IpAddr,
        limits: &ConnLimits,
    ) -> Option<ConnSlot> {
        let ip = address_key(ip);
        let (total, per_addr) = class.caps(limits);
        let mut g = self.counts.lock().expect("connection count");
        let per = g.per_addr.get(&(class, ip)).copied().unwrap_or(0);
        if per >= per_addr {
            return None;
        }
        let full = g.per_class[class.index()] >= total;
        if full && (class != Class::Stranger || !g.close_idlest_stranger()) {
            return None;
        }
        g.per_class[class.index()] += 1;
        *g.per_addr.entry((class, ip)).or_insert(0) += 1;
        let close = tokio_util::sync::CancellationToken::new();
        let id = (class == Class::Stranger).then(|| {
            g.next_id += 1;
            let id = g.next_id;
            let entry =
                Stranger { ip, since: Instant::now(), in_flight: false, close: close.clone() };
            g.strangers.insert(id, entry);
            id
        });
        Some(ConnSlot { budget: self.clone(), class, ip, id, close })
    }

    /// Connections open now, in every class.
    pub fn open(&self) -> usize {
        self.counts.lock().expect("connection count").per_class.iter().sum()
    }

    /// Connections open now in `class`.
    pub fn open_in(&self, class: Class) -> usize {
        self.counts.lock().expect("connection count").per_class[class.index()]
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut g = self.budget.counts.lock().expect("connection count");
        if let Some(id) = self.id {
            if g.strangers.remove(&id).is_none() {
                // Closed for a newcomer: its place was given back then.
                return;
            }
        }
        g.per_class[self.class.index()] -= 1;
        let key = (self.class, self.ip);
        if let Some(n) = g.per_addr.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                g.per_addr.remove(&key);
            }
        }
    }
}

/// The key an address counts under. IPv4-mapped IPv6 counts as its IPv4
/// address; other IPv6 addresses count one by one (every phone on the venue
/// LAN shares its /64), the total cap bounds the rest.
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// A socket that fails with `TimedOut` once no byte has moved either way
/// for `idle`. Server-sent event streams stay alive through their
/// keep-alive comments (15 s), well inside the default minute.
pub struct IdleStream {
    inner: TcpStream,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl IdleStream {
    pub fn new(inner: TcpStream, idle: Duration) -> Self {
        IdleStream { inner, idle, deadline: Box::pin(tokio::time::sleep(idle)) }
    }

    fn moved(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }

    /// A write that moved bytes resets the deadline; one that waits past it fails.
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match r {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.moved();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            other => other,
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle too long")
}

impl AsyncRead for IdleStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            other => other,
        }
    }
}

impl AsyncWrite for IdleStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        self.after_write(cx, r)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.after_write(cx, r)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A request body that must keep up [`ConnLimits::body_min_rate`]: by
/// `grace + received / min_rate` after its first read, counted from that
/// read, the next bytes must have arrived, or the body fails with
/// [`BodyTooSlow`]. The clock starts at the first read, not at the
/// request, so a handler that waits (for an upload slot) before reading
/// costs the client nothing.
pub struct PacedBody {
    inner: Incoming,
    grace: Duration,
    min_rate: u64,
    started: Option<Instant>,
    received: u64,
    /// Fires when the bytes so far stop paying for more time.
    deadline: Pin<Box<Sleep>>,
    /// Counts the bodies cut off.
    metrics: Arc<Metrics>,
}

impl PacedBody {
    pub fn new(inner: Incoming, limits: &ConnLimits, metrics: Arc<Metrics>) -> Self {
        PacedBody {
            inner,
            metrics,
            grace: limits.body_grace,
            min_rate: limits.body_min_rate.max(1),
            started: None,
            received: 0,
            deadline: Box::pin(tokio::time::sleep(limits.body_grace)),
        }
    }

    fn push_deadline(&mut self) {
        let started = *self.started.get_or_insert_with(Instant::now);
        let earned = Duration::from_secs_f64(self.received as f64 / self.min_rate as f64);
        self.deadline.as_mut().reset(started + self.grace + earned);
    }
}

/// A request body that arrived slower than the box accepts.
#[derive(Debug, thiserror::Error)]
#[error("the request body arrived too slowly: check the connection and send it again")]
pub struct BodyTooSlow;

impl HttpBody for PacedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.started.is_none() {
            self.push_deadline();
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.received += data.len() as u64;
                    self.push_deadline();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if self.deadline.as_mut().poll(cx).is_ready() {
                    self.metrics.body_too_slow();
                    Poll::Ready(Some(Err(BodyTooSlow.into())))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `e` (or what caused it) is a [`BodyTooSlow`].
pub fn is_too_slow(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<BodyTooSlow>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Which budget a listener's connections are counted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// The plain API listener (`--listen`): [`Class::Local`].
    Local,
    /// HTTPS and the pairing page: [`Class::Known`] or [`Class::Stranger`]
    /// by the caller's address.
    Lan,
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves,
/// then lets connections in flight finish for `limits.drain`. With `tls`,
/// each connection first completes a TLS handshake, within the header
/// timeout.
#[expect(clippy::too_many_arguments)]
pub async fn serve(
    listener: TcpListener,
    kind: Listener,
    app: Router,
    limits: ConnLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    budget: Arc<ConnBudget>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(64 * 1024)
        .writev(false);
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors (or similar): pause instead of
                    // spinning, the connections in flight free some.
                    tracing::warn!(error = %e, "accept failed; pausing 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let class = match kind {
            Listener::Local => Class::Local,
            Listener::Lan => budget.lan_class(peer.ip()),
        };
        let Some(slot) = budget.admit(class, peer.ip(), &limits) else {
            metrics.connection_refused(class.index());
            tracing::debug!(peer = %peer, class = class.as_str(), "connection refused: too many open");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let stream = IdleStream::new(stream, limits.idle_timeout);
        let app = app.clone();
        let (pace, m) = (limits.clone(), metrics.clone());
        let slot = Arc::new(slot);
        let tracked = slot.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req.extensions_mut().insert(kind);
            let body = |b| Body::new(PacedBody::new(b, &pace, m.clone()));
            let answer = app.clone().oneshot(req.map(body));
            let tracked = tracked.clone();
            tracked.request(true);
            async move {
                let r = answer.await;
                tracked.request(false);
                r
            }
        });
        metrics.connections_open.store(budget.open() as u64, Relaxed);
        let (budget, metrics, http, watcher, tls) =
            (budget.clone(), metrics.clone(), http.clone(), graceful.watcher(), tls.clone());
        let handshake_within = limits.header_timeout;
        let close = slot.close.clone();
        let connection = async move {
            match tls {
                None => {
                    let _ =
                        watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await;
                }
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_within, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            let _ = watcher
                                .watch(http.serve_connection(TokioIo::new(tls_stream), service))
                                .await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(peer = %peer, "TLS handshake too slow; closed"),
                    }
                }
            }
        };
        tokio::spawn(async move {
            tokio::select! {
                _ = connection => {}
                _ = close.cancelled() => {
                    metrics.connection_evicted();
                    tracing::debug!(peer = %peer, "stranger's idle connection closed for a newcomer");
                }
            }
            drop(slot);
            metrics.connections_open.store(budget.open() as u64, Relaxed);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown()).await.is_err() {
        tracing::info!("connections still open after the drain time (live feeds); closing them");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per: usize) -> ConnLimits {
        ConnLimits { max_connections: total, max_per_address: per, ..ConnLimits::default() }
    }

    #[test]
    fn an_address_and_the_box_each_have_a_cap_and_slots_come_back() {
        let limits = limits(3, 2);
        let count = Arc::new(ConnBudget::default());
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        let a1 = count.admit(Class::Local, a, &limits).unwrap();
        let _a2 = count.admit(Class::Local, a, &limits).unwrap();
        assert!(count.admit(Class::Local, a, &limits).is_none(), "third from one address");
        let _b1 = count.admit(Class::Local, b, &limits).unwrap();
        assert!(count.admit(Class::Local, b, &limits).is_none(), "box full");
        drop(a1);
        assert_eq!(count.open(), 2);
        assert!(
            count.admit(Class::Local, b, &limits).is_some(),
            "a closed connection frees its slot"
        );
    }

    #[test]
    fn an_ipv4_mapped_address_counts_as_its_ipv4_address() {
        let limits = limits(10, 1);
        let count = Arc::new(ConnBudget::default());
        let _x = count.admit(Class::Local, "10.0.0.9".parse().unwrap(), &limits).unwrap();
        assert!(count.admit(Class::Local, "::ffff:10.0.0.9".parse().unwrap(), &limits).is_none());
        assert!(count.admit(Class::Local, "2001:db8::1".parse().unwrap(), &limits).is_some());
    }

    #[test]
    fn strangers_fill_only_their_quarter_and_never_a_known_phone_or_loopback() {
        let limits = limits(64, 16);
        let budget = Arc::new(ConnBudget::default());
        let phone = IpAddr::from([10, 0, 0, 50]);
        budget.mark_known(phone);
        let mut held = Vec::new();
        for a in 1..=200u8 {
            let ip = IpAddr::from([10, 0, 1, a]);
            assert_eq!(budget.lan_class(ip), Class::Stranger);
            while let Some(s) = budget.admit(Class::Stranger, ip, &limits) {
                // Each one busy with a request: none can be closed for another.
                s.request(true);
                held.push(s);
            }
        }
        assert_eq!(budget.open_in(Class::Stranger), 16, "a quarter of 64");
        assert_eq!(held.len(), 16);
        assert_eq!(budget.lan_class(phone), Class::Known);
        let mine: Vec<_> =
            (0..16).map(|_| budget.admit(Class::Known, phone, &limits).expect("known")).collect();
        assert_eq!(mine.len(), 16);
        assert!(budget.admit(Class::Local, IpAddr::from([127, 0, 0, 1]), &limits).is_some());
        // One stranger address holds at most a quarter of the per-address cap.
        let one = Arc::new(ConnBudget::default());
        let s = IpAddr::from([10, 0, 2, 1]);
        let held: Vec<_> =
            std::iter::from_fn(|| one.admit(Class::Stranger, s, &limits)).take(100).collect();
        assert_eq!(held.len(), 4);
    }

    /// Strangers that only hold a connection open cannot keep the share
    /// shut: a newcomer (a phone coming to pair) takes the place of the
    /// one idle the longest, which is closed.
    #[tokio::test(start_paused = true)]
    async fn a_newcomer_takes_the_place_of_the_idlest_stranger() {
        let limits = limits(16, 16);
        let budget = Arc::new(ConnBudget::default());
        let idle: Vec<_> = (1..=4u8)
            .map(|a| budget.admit(Class::Stranger, IpAddr::from([10, 0, 3, a]), &limits).unwrap())
            .collect();
        assert_eq!(budget.open_in(Class::Stranger), 4);
        let newer = IpAddr::from([10, 0, 4, 2]);
        assert!(budget.admit(Class::Stranger, newer, &limits).is_none(), "none idle long yet");
        tokio::time::advance(IDLE_TO_CLOSE + Duration::from_millis(10)).await;
        idle[3].request(true);
        let phone = budget.admit(Class::Stranger, IpAddr::from([10, 0, 4, 1]), &limits);
        assert!(phone.is_some(), "let in");
        assert!(idle[0].close.is_cancelled(), "the idlest one is closed");
        assert!(!idle[1].close.is_cancelled());
        assert_eq!(budget.open_in(Class::Stranger), 4, "the share stays a quarter");
        drop(idle);
        assert_eq!(budget.open_in(Class::Stranger), 1, "a closed one is not given back twice");
    }

    #[test]
    fn known_addresses_stay_bounded() {
        let budget = ConnBudget::default();
        for i in 0..(MAX_KNOWN as u32 + 10) {
            budget.mark_known(IpAddr::from(std::net::Ipv6Addr::from(i as u128 + 1)));
        }
        assert!(budget.known.lock().unwrap().len() <= MAX_KNOWN);
        let newest = IpAddr::from(std::net::Ipv6Addr::from(MAX_KNOWN as u128 + 10));
        assert_eq!(budget.lan_class(newest), Class::Known);
    }
}
