//! HTTPS for the HTTP server (`--tls-cert`, `--tls-key`): the certificate chain and key are
//! read from PEM files, offered with ALPN `h2` and `http/1.1`, and re-read while the worker runs
//! so that a renewed certificate (cert-manager renewing a Secret, the kubelet swapping the
//! mounted files) is served without a restart. A pair that cannot be used keeps the one in
//! force. Serving connections is `serve`'s job; this module only knows certificates.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus::IntGauge;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::metrics::Families;

/// How often the certificate and key files are re-read. Comparing contents (not mtimes) sees a
/// Kubernetes Secret swapped in by symlink as surely as a file copied over in place, and two
/// small files cost next to nothing to read.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);
/// A certificate or key file larger than this is refused rather than read (a chain is a few KiB).
const MAX_PEM_BYTES: u64 = 1 << 20;
/// What the TLS listener offers in ALPN, preferred first.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why a certificate and key pair cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS {what} file {path}: {reason}")]
    Read {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("the TLS certificate file {path} is not a PEM certificate chain: {reason}")]
    Certificate { path: PathBuf, reason: String },
    #[error(
        "the TLS key file {path} holds no usable private key (PEM PKCS#8, RSA or EC): {reason}"
    )]
    Key { path: PathBuf, reason: String },
    #[error("the TLS key file {key} does not belong to the certificate in {cert}: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("setting up TLS: {0}")]
    Setup(#[from] rustls::Error),
    #[error("registering the TLS metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// The provider every TLS object of the worker uses: `ring`, as the operator's client does.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The bytes of the certificate and key files as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PairBytes {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl PairBytes {
    fn read(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Ok(PairBytes {
            cert: read_limited(cert, "certificate")?,
            key: read_limited(key, "key")?,
        })
    }
}

fn read_limited(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    let failed = |reason: String| TlsError::Read {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| failed(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| failed(e.to_string()))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(failed(format!("larger than {MAX_PEM_BYTES} bytes")));
    }
    Ok(bytes)
}

/// Parses a PEM chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC) and
/// checks that the key is the certificate's. The paths only name the files in errors.
pub fn parse_pair(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_path: &Path,
    key_path: &Path,
) -> Result<CertifiedKey, TlsError> {
    let bad_cert = |reason: String| TlsError::Certificate {
        path: cert_path.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_cert(e.to_string()))?;
    if chain.is_empty() {
        return Err(bad_cert("no CERTIFICATE block".into()));
    }
    let bad_key = |reason: String| TlsError::Key {
        path: key_path.to_path_buf(),
        reason,
    };
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| bad_key(e.to_string()))?;
    let signer = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| bad_key(e.to_string()))?;
    let pair = CertifiedKey::new(chain, signer);
    match pair.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(pair)
        }
        Err(rustls::Error::InconsistentKeys(e)) => Err(TlsError::Mismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
            reason: format!("{e:?}"),
        }),
        Err(e) => Err(bad_cert(e.to_string())),
    }
}

/// Hands every handshake the pair in force; the reloader replaces it.
#[derive(Debug)]
struct CurrentPair(RwLock<Arc<CertifiedKey>>);

impl CurrentPair {
    fn get(&self) -> Arc<CertifiedKey> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, pair: CertifiedKey) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
    }
}

impl ResolvesServerCert for CurrentPair {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// The certificate and key files, the pair in force, and its reloading.
pub struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    current: Arc<CurrentPair>,
    /// The files as last read, good or bad: a change is acted on (and a problem logged) once.
    seen: Result<PairBytes, String>,
    valid: IntGauge,
}

impl TlsFiles {
    /// Reads and checks the pair; there is no pair in force to fall back on yet, so any problem
    /// is an error (the worker refuses to start rather than serve without its certificate).
    pub fn load(cert: &Path, key: &Path, registry: &Families) -> Result<Self, TlsError> {
        let bytes = PairBytes::read(cert, key)?;
        let pair = parse_pair(&bytes.cert, &bytes.key, cert, key)?;
        let valid = IntGauge::new(
            "kamera_http_tls_files_valid",
            "1 while the TLS certificate and key files as they are now are in use; 0 while they are unreadable or invalid and the last good pair is served",
        )?;
        registry.register(Box::new(valid.clone()))?;
        valid.set(1);
        Ok(TlsFiles {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: Arc::new(CurrentPair(RwLock::new(Arc::new(pair)))),
            seen: Ok(bytes),
            valid,
        })
    }

    /// The TLS configuration of the listener: TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`, the
    /// certificate of the moment at every handshake.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.current.clone());
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// The acceptor of TLS connections of the listener ([`Self::server_config`]).
    pub fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
        Ok(tokio_rustls::TlsAcceptor::from(self.server_config()?))
    }

    /// Takes the files as just read; applies a changed, valid pair. True when a new pair was applied.
    fn reload(&mut self, read: Result<PairBytes, TlsError>) -> bool {
        let read = read.map_err(|e| e.to_string());
        if read == self.seen {
            return false;
        }
        self.seen = read.clone();
        let parsed = read.and_then(|bytes| {
            parse_pair(&bytes.cert, &bytes.key, &self.cert, &self.key).map_err(|e| e.to_string())
        });
        match parsed {
            Ok(pair) => {
                info!(cert = %self.cert.display(), "TLS certificate reloaded");
                self.current.set(pair);
                self.valid.set(1);
                true
            }
            Err(reason) => {
                error!(cert = %self.cert.display(), key = %self.key.display(), error = %reason, "TLS certificate files not applied; still serving the previous certificate");
                self.valid.set(0);
                false
            }
        }
    }

    /// Re-reads the files every `every` until `shutdown`, applying each valid change.
    pub async fn watch(mut self, every: Duration, shutdown: CancellationToken) {
        let (cert, key) = (self.cert.clone(), self.key.clone());
        let read = move || PairBytes::read(&cert, &key);
        super::reload::poll(every, shutdown, read, |pair| {
            self.reload(pair);
        })
        .await;
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
