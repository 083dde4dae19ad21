//! TLS termination with rustls, and certificate reload without restart.
//!
//! TLS 1.2 and 1.3 only, with the ring provider's cipher suites (all AEAD
//! with forward secrecy: ECDHE + AES-GCM or ChaCha20-Poly1305), HTTP/2 and
//! HTTP/1.1 by ALPN. The certificate and key are read from `server.tls` and
//! re-read whenever either file changes (checked every few seconds, so a
//! renewal is served within 15 s); a file that does not parse, or a key that
//! does not match its certificate, keeps the previous pair and is reported
//! through [`Reloader::poll`] so the caller can raise an alert.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::crypto::ring::default_provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Tls;

/// A TLS problem, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file is not what it should be.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn invalid(path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Loads and checks a certificate chain and its private key.
pub fn load_pair(tls: &Tls) -> Result<Arc<CertifiedKey>, TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(&tls.cert)?;
    let key_pem = read(&tls.key)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| invalid(&tls.cert, "not a PEM certificate chain"))?;
    if certs.is_empty() {
        return Err(invalid(&tls.cert, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| invalid(&tls.key, "not a PEM private key"))?;
    let provider = default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|_| invalid(&tls.key, "unsupported private key"))?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match()
        .map_err(|_| invalid(&tls.key, "the private key does not match the certificate"))?;
    Ok(Arc::new(ck))
}

/// Serves whatever pair is current.
#[derive(Debug)]
struct Current(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// The TLS acceptor configuration and its reloader.
pub struct Reloader {
    tls: Tls,
    current: Arc<Current>,
    stamp: Option<(SystemTime, SystemTime)>,
    /// The rustls server configuration (TLS 1.2+, h2 and http/1.1).
    pub config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("cert", &self.tls.cert)
            .finish_non_exhaustive()
    }
}

fn stamp(tls: &Tls) -> Option<(SystemTime, SystemTime)> {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((m(&tls.cert)?, m(&tls.key)?))
}

impl Reloader {
    /// Loads the pair (refusing to start on a bad one) and builds the server configuration.
    pub fn new(tls: &Tls) -> Result<Self, TlsError> {
        let pair = load_pair(tls)?;
        let current = Arc::new(Current(ArcSwap::new(pair)));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| invalid(&tls.cert, e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // An HTTP/1.1 event stream takes its session's write key out of
        // rustls once it is a one-way stream (`http::serve::sock`); nothing
        // else does.
        config.enable_secret_extraction = true;
        Ok(Self {
            tls: tls.clone(),
            current,
            stamp: stamp(tls),
            config: Arc::new(config),
        })
    }

    /// Re-reads the files if they changed. `Ok(true)` when a new pair is now
    /// served, `Ok(false)` when nothing changed, `Err` when the new files are
    /// broken (the previous pair stays).
    pub fn poll(&mut self) -> Result<bool, TlsError> {
        let now = stamp(&self.tls);
        if now.is_none() || now == self.stamp {
            return Ok(false);
        }
        self.stamp = now;
        let pair = load_pair(&self.tls)?;
        self.current.0.store(pair);
        Ok(true)
    }
}
