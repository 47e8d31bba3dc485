//! The accept loop: how many connections the box takes, from whom, and how
//! long a connection may sit without sending. The venue Wi-Fi may be shared
//! with guests, so nothing a client does with sockets alone (opening many,
//! sending headers a byte a minute, stalling mid-body, idling on
//! keep-alive) may hold file descriptors or memory without a bound.
//!
//! It does not route or authorise; that is the router's job. It speaks
//! HTTP/1.1 only (staff phones and scripts; TLS arrives with the LAN work).

use crate::metrics::Metrics;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
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
    /// closed (a stalled body, a client that stopped reading).
    pub idle_timeout: Duration,
    /// Connections open at once, from everyone.
    pub max_connections: usize,
    /// Connections open at once from one address.
    pub max_per_address: usize,
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
            drain: Duration::from_secs(5),
        }
    }
}

/// Connections open now, in total and per address, across every listener.
/// A slot is given back
/// when its [`ConnSlot`] drops, whatever way the connection ended.
#[derive(Default)]
pub struct ConnCount {
    inner: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

pub struct ConnSlot {
    count: Arc<ConnCount>,
    ip: IpAddr,
}

impl ConnCount {
    /// A slot for a new connection from `ip`, or `None` when the box or
    /// that address already has as many as allowed.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, limits: &ConnLimits) -> Option<ConnSlot> {
        let ip = address_key(ip);
        let mut g = self.inner.lock().expect("connection count");
        let per = g.1.get(&ip).copied().unwrap_or(0);
        if g.0 >= limits.max_connections || per >= limits.max_per_address {
            return None;
        }
        g.0 += 1;
        g.1.insert(ip, per + 1);
        Some(ConnSlot { count: self.clone(), ip })
    }

    pub fn open(&self) -> usize {
        self.inner.lock().expect("connection count").0
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut g = self.count.inner.lock().expect("connection count");
        g.0 -= 1;
        if let Some(n) = g.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                g.1.remove(&self.ip);
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

/// Serves `app` on `listener` within `limits` until `shutdown` resolves,
/// then lets connections in flight finish for `limits.drain`. With `tls`,
/// each connection first completes a TLS handshake, within the header
/// timeout.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    count: Arc<ConnCount>,
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
        let Some(slot) = count.admit(peer.ip(), &limits) else {
            metrics.connection_refused();
            tracing::debug!(peer = %peer, "connection refused: too many open");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let stream = IdleStream::new(stream, limits.idle_timeout);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req.map(Body::new))
        });
        metrics.connections_open.store(count.open() as u64, Relaxed);
        let (count, metrics, http, watcher, tls) =
            (count.clone(), metrics.clone(), http.clone(), graceful.watcher(), tls.clone());
        let handshake_within = limits.header_timeout;
        tokio::spawn(async move {
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
            drop(slot);
            metrics.connections_open.store(count.open() as u64, Relaxed);
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

    #[test]
    fn an_address_and_the_box_each_have_a_cap_and_slots_come_back() {
        let limits = ConnLimits { max_connections: 3, max_per_address: 2, ..ConnLimits::default() };
        let count = Arc::new(ConnCount::default());
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        let a1 = count.admit(a, &limits).unwrap();
        let _a2 = count.admit(a, &limits).unwrap();
        assert!(count.admit(a, &limits).is_none(), "third from one address");
        let _b1 = count.admit(b, &limits).unwrap();
        assert!(count.admit(b, &limits).is_none(), "box full");
        drop(a1);
        assert_eq!(count.open(), 2);
        assert!(count.admit(b, &limits).is_some(), "a closed connection frees its slot");
    }

    #[test]
    fn an_ipv4_mapped_address_counts_as_its_ipv4_address() {
        let limits =
            ConnLimits { max_connections: 10, max_per_address: 1, ..ConnLimits::default() };
        let count = Arc::new(ConnCount::default());
        let _x = count.admit("10.0.0.9".parse().unwrap(), &limits).unwrap();
        assert!(count.admit("::ffff:10.0.0.9".parse().unwrap(), &limits).is_none());
        assert!(count.admit("2001:db8::1".parse().unwrap(), &limits).is_some());
    }
}
