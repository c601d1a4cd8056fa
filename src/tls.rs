//! TLS settings from PEM files: the radiant's certificate and key, and the CA its peers'
//! and its own certificates chain to. Builds the rustls configurations the reactor
//! (server side of client and peer connections, client side of peer links) and the
//! client library use. TLS 1.3 only, with rustls's `ring` provider.
//!
//! This module reads files and builds configurations; it opens no sockets. Every error
//! names the file and what to do.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Why a TLS file or setting cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}: {reason}", path.display())]
pub struct TlsError {
    /// What the file is (`tls_cert_file`, `tls_key_file`, `tls_ca_file`, `--tls-ca`).
    pub what: &'static str,
    /// The file.
    pub path: PathBuf,
    /// Why, and what to do.
    pub reason: String,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn error(what: &'static str, path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError { what, path: path.to_path_buf(), reason: reason.into() }
}

/// Every certificate in a PEM file (at least one).
pub fn load_certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(what, path, format!("cannot read it as PEM: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(what, path, format!("holds a damaged certificate: {e}")))?;
    if certificates.is_empty() {
        return Err(error(what, path, "holds no certificate (-----BEGIN CERTIFICATE-----)"));
    }
    Ok(certificates)
}

/// The CA certificates a peer's or the server's certificate must chain to.
pub fn load_roots(what: &'static str, path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in load_certificates(what, path)? {
        roots
            .add(certificate)
            .map_err(|e| error(what, path, format!("holds a certificate that is no CA: {e}")))?;
    }
    Ok(Arc::new(roots))
}

/// A client configuration that trusts only the CA in `ca_file` (the client library,
/// `--tls-ca`).
pub fn client_config(ca_file: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = load_roots("--tls-ca", ca_file)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| error("--tls-ca", ca_file, e.to_string()))?;
    Ok(Arc::new(builder.with_root_certificates(roots).with_no_client_auth()))
}

/// A radiant's TLS: what it serves clients with, and what its peer links use both ways.
#[derive(Clone)]
pub struct RadiantTls {
    /// The client port: the radiant's certificate; clients need none.
    pub clients: Arc<ServerConfig>,
    /// The peer port: the radiant's certificate, and the dialler's must chain to the CA.
    pub peers_accept: Arc<ServerConfig>,
    /// Dialling a peer: its certificate must chain to the CA and name the address
    /// dialled; this radiant presents its own.
    pub peers_dial: Arc<ClientConfig>,
}

impl std::fmt::Debug for RadiantTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RadiantTls(..)")
    }
}

impl RadiantTls {
    /// Loads the certificate chain, its key and the CA, and builds the three
    /// configurations; any file that fails to load is an error naming it.
    pub fn load(cert_file: &Path, key_file: &Path, ca_file: &Path) -> Result<RadiantTls, TlsError> {
        let chain = load_certificates("tls_cert_file", cert_file)?;
        let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
            error("tls_key_file", key_file, format!("holds no usable private key: {e}"))
        })?;
        let roots = load_roots("tls_ca_file", ca_file)?;
        let versions = [&rustls::version::TLS13];
        let mismatch = |e: rustls::Error| {
            let reason = format!("does not go with tls_cert_file {}: {e}", cert_file.display());
            error("tls_key_file", key_file, reason)
        };
        let clients = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&versions)
            .map_err(mismatch)?
            .with_no_client_auth()
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(mismatch)?;
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                .build()
                .map_err(|e| error("tls_ca_file", ca_file, e.to_string()))?;
        let peers_accept = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&versions)
            .map_err(mismatch)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(mismatch)?;
        let peers_dial = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&versions)
            .map_err(mismatch)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(mismatch)?;
        Ok(RadiantTls {
            clients: Arc::new(clients),
            peers_accept: Arc::new(peers_accept),
            peers_dial: Arc::new(peers_dial),
        })
    }
}

/// The name a certificate must carry for `host`: an IP address as such, else a DNS name.
pub fn server_name(host: &str) -> Option<rustls::pki_types::ServerName<'static>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Some(rustls::pki_types::ServerName::IpAddress(ip.into()));
    }
    rustls::pki_types::ServerName::try_from(host.to_string()).ok()
}
