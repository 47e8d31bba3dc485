//! The link between the two boxes of a pair: mutual TLS with link
//! certificates from the pair's shared CA (each box checks the other's
//! chain and the link name, so a guest on the Wi-Fi cannot speak it), the
//! hello both sides send first, and what the two hellos decide: who leads,
//! who follows, who must fence itself first.

use super::frame::{self, Frame, Hello, PROTOCOL};
use crate::net::tls::{self, BoxCa, TlsError};
use crate::store::replica::Role;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

/// How long a peer has for the TCP connect, the TLS handshake and its hello.
pub const HANDSHAKE: Duration = Duration::from_secs(5);

pub type Stream = TlsStream<TcpStream>;

/// Both ends of the link's TLS, from this box's link certificate.
#[derive(Clone)]
pub struct LinkTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl LinkTls {
    pub fn new(ca: &BoxCa, node: &str) -> Result<LinkTls, TlsError> {
        let cert = tls::issue_link(ca, node)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert_der.clone()).map_err(|e| TlsError::BadCa(e.to_string()))?;
        let roots = Arc::new(roots);
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.clone(),
            provider.clone(),
        )
        .build()
        .map_err(|e| TlsError::Generate(e.to_string()))?;
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Generate(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(cert.chain.clone(), cert.key.clone_key())
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Generate(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(cert.chain, cert.key)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        Ok(LinkTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }

    /// Dials the peer at `addr` (host:port).
    pub async fn connect(&self, addr: &str) -> std::io::Result<Stream> {
        let name = ServerName::try_from(tls::LINK_NAME).expect("a valid name");
        tokio::time::timeout(HANDSHAKE, async {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            Ok(TlsStream::Client(self.connector.connect(name, tcp).await?))
        })
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out"))?
    }

    /// Takes a connection a peer made.
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<Stream> {
        tcp.set_nodelay(true)?;
        tokio::time::timeout(HANDSHAKE, self.acceptor.accept(tcp))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out"))?
            .map(TlsStream::Server)
    }
}

/// Sends this box's hello and reads the peer's.
pub async fn hello(stream: &mut Stream, me: &Hello) -> Result<Hello, frame::FrameError> {
    frame::write(stream, &Frame::Hello(me.clone())).await?;
    match tokio::time::timeout(HANDSHAKE, frame::read(stream)).await {
        Err(_) => Err(frame::FrameError::Malformed("no hello in time".into())),
        Ok(Ok(Frame::Hello(h))) => Ok(h),
        Ok(Ok(Frame::Bye(why))) => {
            Err(frame::FrameError::Malformed(format!("the peer said: {why}")))
        }
        Ok(Ok(other)) => {
            Err(frame::FrameError::Malformed(format!("expected a hello, got {other:?}")))
        }
        Ok(Err(e)) => Err(e),
    }
}

/// What this box does on a link, from both hellos.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Ship the log to the peer.
    Lead,
    /// Apply the peer's log (taking its epoch first when it is newer).
    Follow,
    /// The peer leads at a newer epoch: stop taking writes now, then follow.
    Fence(i64),
    Close(String),
}

/// The epoch rules (ARCHITECTURE.md, "Two boxes"): the primary with the
/// higher epoch leads; a primary that meets a higher epoch fences itself;
/// two standbys, two primaries at one epoch, or different versions: close.
pub fn plan(me: &Hello, peer: &Hello) -> Plan {
    if peer.protocol != PROTOCOL || peer.schema != me.schema {
        return Plan::Close(format!(
            "the peer runs another venuebox version (link {} schema {}, here {} and {}): install the same package on both boxes",
            peer.protocol, peer.schema, PROTOCOL, me.schema
        ));
    }
    match (me.role, peer.role) {
        (Role::Primary, _) if peer.epoch > me.epoch => Plan::Fence(peer.epoch),
        (Role::Primary, Role::Primary) if peer.epoch == me.epoch => Plan::Close(format!(
            "both boxes are primary at epoch {}: promote only one box",
            me.epoch
        )),
        (Role::Primary, _) => Plan::Lead,
        (Role::Standby | Role::Satellite, Role::Primary) if peer.epoch >= me.epoch => Plan::Follow,
        (Role::Standby | Role::Satellite, Role::Primary) => Plan::Close(format!(
            "the peer is a primary of epoch {}, older than this box's {}: it fences itself",
            peer.epoch, me.epoch
        )),
        (Role::Standby, Role::Standby) => {
            Plan::Close("both boxes are standbys: promote one".into())
        }
        (Role::Standby | Role::Satellite, Role::Satellite | Role::Standby) => {
            Plan::Close("a standby or a satellite follows only a primary".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(role: Role, epoch: i64) -> Hello {
        Hello {
            protocol: PROTOCOL,
            node: "n".into(),
            role,
            epoch,
            seq: 0,
            seq_epoch: None,
            epoch_start: None,
            schema: 15,
            purpose: Default::default(),
            web_port: None,
            apart: false,
            standby_link: None,
        }
    }

    #[test]
    fn the_higher_epoch_leads_and_an_old_primary_fences_itself() {
        use Role::{Primary as P, Standby as S};
        assert_eq!(plan(&h(P, 1), &h(S, 1)), Plan::Lead);
        assert_eq!(plan(&h(S, 1), &h(P, 1)), Plan::Follow);
        assert_eq!(plan(&h(S, 1), &h(P, 2)), Plan::Follow);
        // The old primary comes back: it fences itself; the new one leads.
        assert_eq!(plan(&h(P, 1), &h(P, 2)), Plan::Fence(2));
        assert_eq!(plan(&h(P, 2), &h(P, 1)), Plan::Lead);
        assert!(matches!(plan(&h(P, 2), &h(P, 2)), Plan::Close(_)));
        assert!(matches!(plan(&h(S, 3), &h(P, 2)), Plan::Close(_)));
        assert!(matches!(plan(&h(S, 1), &h(S, 1)), Plan::Close(_)));
        // A satellite follows the primary and is led like a standby; it
        // never leads, and a primary meeting a satellite of a newer epoch
        // (it has followed a promoted box) fences itself.
        use Role::Satellite as T;
        assert_eq!(plan(&h(P, 1), &h(T, 1)), Plan::Lead);
        assert_eq!(plan(&h(T, 1), &h(P, 2)), Plan::Follow);
        assert_eq!(plan(&h(P, 1), &h(T, 2)), Plan::Fence(2));
        assert!(matches!(plan(&h(T, 1), &h(S, 1)), Plan::Close(_)));
        assert!(matches!(plan(&h(T, 2), &h(P, 1)), Plan::Close(_)));
        let mut other = h(S, 1);
        other.schema = 14;
        assert!(matches!(plan(&h(P, 1), &other), Plan::Close(_)));
    }
}
