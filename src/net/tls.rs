//! The box's own certificate authority and the server certificate it
//! signs, or an operator's certificate from files; the rustls server
//! configuration that serves whichever is current, swapped without a
//! restart.
//!
//! Files under `DATA_DIR/tls/`: `ca.pem` (the CA certificate staff devices
//! install), `ca.key` (0600), `server.pem` + `server.key` (0600, the current
//! server certificate). The CA is made once and kept; the server
//! certificate is re-issued whenever the names it must cover change.
//!
//! It does not listen or accept; `api::conn` does, with the acceptor made
//! here.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read or write {path}: {source}: check the data directory's permissions")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}: delete DATA_DIR/tls/ to have the box make a new authority (staff devices must then install it again)")]
    BadCa(String),
    #[error("{path}: {why}: give a PEM certificate chain and its PEM private key")]
    BadOperatorFile { path: PathBuf, why: String },
    #[error("certificate generation failed: {0}")]
    Generate(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io { path: path.to_path_buf(), source }
}

/// What the server certificate must be valid for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    pub dns: BTreeSet<String>,
    pub ips: BTreeSet<IpAddr>,
}

impl Names {
    /// `<mdns>.local`, `localhost`, the loopback addresses and `addrs`.
    pub fn for_box(mdns_name: &str, addrs: impl IntoIterator<Item = IpAddr>) -> Names {
        let mut n = Names::default();
        n.dns.insert(format!("{mdns_name}.local"));
        n.dns.insert("localhost".into());
        n.ips.insert(IpAddr::from([127, 0, 0, 1]));
        n.ips.insert(IpAddr::from(std::net::Ipv6Addr::LOCALHOST));
        n.ips.extend(addrs);
        n
    }
}

/// The box's certificate authority.
pub struct BoxCa {
    pub cert_pem: String,
    pub cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl BoxCa {
    /// Hex SHA-256 of the CA certificate (DER): what staff compare.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert_der)
    }
}

pub fn fingerprint(der: &[u8]) -> String {
    crate::secrets::hex(&Sha256::digest(der))
}

pub use crate::domain::keys::fingerprint_colons;

/// The CA's parameters: the same every time for one box, so a stored CA
/// key can sign again without parsing the stored certificate.
fn ca_params(box_id: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.distinguished_name.push(DnType::OrganizationName, "venuebox");
    p.distinguished_name.push(DnType::CommonName, format!("venuebox {box_id} local authority"));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(2);
    p.not_after = now + time::Duration::days(3650);
    p
}

pub fn tls_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tls")
}

/// Loads the box's CA from `DATA_DIR/tls/`, or makes one (ECDSA P-256).
pub fn load_or_create_ca(data_dir: &Path, box_id: &str) -> Result<BoxCa, TlsError> {
    let dir = tls_dir(data_dir);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
    if cert_path.exists() && key_path.exists() {
        let key_pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| TlsError::BadCa(format!("{}: {e}", key_path.display())))?;
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| TlsError::BadCa(format!("{}: {e}", cert_path.display())))?;
        return Ok(BoxCa { cert_pem, cert_der, issuer: Issuer::new(ca_params(box_id), key) });
    }
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let params = ca_params(box_id);
    let cert = params.self_signed(&key).map_err(|e| TlsError::Generate(e.to_string()))?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    write_public(&cert_path, cert.pem().as_bytes())?;
    tracing::info!(path = %cert_path.display(), "made the box's certificate authority");
    Ok(BoxCa {
        cert_pem: cert.pem(),
        cert_der: cert.der().clone(),
        issuer: Issuer::new(params, key),
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    crate::secrets::write_private(path, bytes).map_err(io(path))
}

fn write_public(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    write_private(path, bytes)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).map_err(io(path))
}

/// A server certificate for `names`, signed by the CA, written to
/// `server.pem`/`server.key`, and ready to serve.
pub fn issue_server(
    data_dir: &Path,
    ca: &BoxCa,
    names: &Names,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let mut sans: Vec<SanType> = Vec::new();
    for d in &names.dns {
        sans.push(SanType::DnsName(
            d.clone().try_into().map_err(|e| TlsError::Generate(format!("name {d}: {e}")))?,
        ));
    }
    sans.extend(names.ips.iter().map(|ip| SanType::IpAddress(*ip)));
    let mut p = CertificateParams::default();
    p.subject_alt_names = sans;
    p.distinguished_name.push(
        DnType::CommonName,
        names.dns.iter().next().cloned().unwrap_or_else(|| "venuebox".into()),
    );
    p.use_authority_key_identifier_extension = true;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = time::OffsetDateTime::now_utc();
    // Apple devices refuse server certificates valid for more than 825 days.
    p.not_before = now - time::Duration::days(2);
    p.not_after = now + time::Duration::days(397);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let cert = p.signed_by(&key, &ca.issuer).map_err(|e| TlsError::Generate(e.to_string()))?;
    let dir = tls_dir(data_dir);
    write_private(&dir.join("server.key"), key.serialize_pem().as_bytes())?;
    write_public(&dir.join("server.pem"), format!("{}{}", cert.pem(), ca.cert_pem).as_bytes())?;
    let key_der = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let signer = any_supported_type(&key_der).map_err(|e| TlsError::Generate(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(vec![cert.der().clone(), ca.cert_der.clone()], signer)))
}

/// The name on every replication link certificate: the boxes of a pair
/// check each other's chain to the shared CA and this name, not an address.
pub const LINK_NAME: &str = "link.venuebox.internal";

/// A certificate for the replication link between two boxes of one
/// event, for both ends (server and client authentication), signed by
/// the shared CA. Made at each start, kept in memory only.
pub fn issue_link(ca: &BoxCa, node: &str) -> Result<LinkCert, TlsError> {
    let mut p = CertificateParams::default();
    p.subject_alt_names = vec![SanType::DnsName(
        LINK_NAME.try_into().map_err(|e| TlsError::Generate(format!("{e}")))?,
    )];
    p.distinguished_name.push(DnType::CommonName, format!("venuebox node {node}"));
    p.use_authority_key_identifier_extension = true;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(2);
    p.not_after = now + time::Duration::days(397);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let cert = p.signed_by(&key, &ca.issuer).map_err(|e| TlsError::Generate(e.to_string()))?;
    let key = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    Ok(LinkCert { chain: vec![cert.der().clone(), ca.cert_der.clone()], key })
}

/// A link certificate chain (leaf, CA) and its key.
pub struct LinkCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// The CA's private key (PEM), for a standby that joins: it must issue
/// the same certificates the phones already trust.
pub fn ca_key_pem(data_dir: &Path) -> Result<String, TlsError> {
    let path = tls_dir(data_dir).join("ca.key");
    std::fs::read_to_string(&path).map_err(io(&path))
}

/// Installs a joining standby's copy of the pair's CA (certificate and
/// key) in its data directory, replacing any CA it made itself.
pub fn install_ca(data_dir: &Path, cert_pem: &str, key_pem: &str) -> Result<(), TlsError> {
    KeyPair::from_pem(key_pem)
        .map_err(|e| TlsError::BadCa(format!("the primary's CA key: {e}")))?;
    CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| TlsError::BadCa(format!("the primary's CA certificate: {e}")))?;
    let dir = tls_dir(data_dir);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    for stale in ["server.pem", "server.key"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    write_private(&dir.join("ca.key"), key_pem.as_bytes())?;
    write_public(&dir.join("ca.pem"), cert_pem.as_bytes())
}

/// A fingerprint as staff copy it: with or without colons, any case.
pub fn normalise_fingerprint(fp: &str) -> String {
    fp.chars().filter(|c| c.is_ascii_hexdigit()).map(|c| c.to_ascii_lowercase()).collect()
}

/// A TLS client that trusts a box whose chain carries the CA with this
/// fingerprint (and whose certificate that CA signed for the name asked):
/// how a joining standby reaches the primary before it has the CA.
pub fn pinned_client(fingerprint: &str) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            fingerprint: normalise_fingerprint(fingerprint),
            provider,
        }))
        .with_no_client_auth()
}

#[derive(Debug)]
struct Pinned {
    fingerprint: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let ca = intermediates.iter().find(|c| fingerprint(c) == self.fingerprint).ok_or_else(|| {
            rustls::Error::General(
                "the box's certificate authority does not have the fingerprint given: check it on the primary's screen".into(),
            )
        })?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        verifier.verify_server_cert(end_entity, &[], server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// An operator's certificate chain and key from PEM files.
pub fn load_operator(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let bad =
        |path: &Path, why: String| TlsError::BadOperatorFile { path: path.to_path_buf(), why };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(bad(cert, "no certificate in it".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e.to_string()))?;
    let signer = any_supported_type(&key_der).map_err(|e| bad(key, e.to_string()))?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match().map_err(|e| bad(key, format!("does not belong to the certificate ({e})")))?;
    Ok(Arc::new(ck))
}

/// Serves whatever certificate is current; [`CertSwitch::set`] swaps it
/// for new connections while old ones finish with theirs.
#[derive(Debug)]
pub struct CertSwitch {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertSwitch {
    pub fn new(first: Arc<CertifiedKey>) -> Arc<Self> {
        Arc::new(CertSwitch { current: RwLock::new(first) })
    }
    pub fn set(&self, next: Arc<CertifiedKey>) {
        *self.current.write().expect("certificate switch") = next;
    }
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.read().expect("certificate switch").clone()
    }
}

impl ResolvesServerCert for CertSwitch {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The rustls configuration: TLS 1.2 and 1.3 with ring, HTTP/1.1.
pub fn server_config(certs: Arc<CertSwitch>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// The box's non-loopback addresses now (IPv6 link-local ones left out:
/// a URL cannot carry their zone reliably).
pub fn local_addresses() -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| !ip.is_loopback())
        .filter(|ip| match ip {
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
            IpAddr::V4(_) => true,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_made_once_and_signs_again_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let ca = load_or_create_ca(dir.path(), "box-1").unwrap();
        let again = load_or_create_ca(dir.path(), "box-1").unwrap();
        assert_eq!(ca.fingerprint(), again.fingerprint());
        use std::os::unix::fs::PermissionsExt;
        let mode =
            std::fs::metadata(dir.path().join("tls/ca.key")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names = Names::for_box("venuebox-abc", [IpAddr::from([10, 0, 0, 5])]);
        let ck = issue_server(dir.path(), &again, &names).unwrap();
        // The chain is the leaf then the CA made before the restart.
        assert_eq!(ck.cert[1].as_ref(), ca.cert_der.as_ref());
        assert_eq!(fingerprint_colons("ab01"), "AB:01");
    }
}
