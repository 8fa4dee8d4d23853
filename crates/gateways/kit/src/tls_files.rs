//! TLS with rustls, for any listener: [`Tls`] holds the server configuration made from PEM
//! files (certificate chain, private key, and optionally the CAs client certificates must chain
//! to), and [`TlsAcceptor`] is the kit's [`Acceptor`] that runs the handshake inside the
//! listener's handshake deadline. Protocols never know they run over TLS.
//!
//! - Only TLS 1.2 and 1.3 (rustls has nothing older): a client offering TLS 1.0/1.1 or SSL is
//!   refused in the handshake.
//! - [`Tls::reload`] re-reads the files (SIGHUP): new connections get the new certificate, open
//!   ones keep theirs; a file that does not load leaves the old configuration in place.
//! - With `client_ca_file`, every client must present a certificate that chains to one of those
//!   CAs (mutual TLS).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpStream;

use crate::client_cert::{login_name, CertLoginFrom};
use crate::principal_rules::PrincipalRules;
use crate::tls::Acceptor;

/// Where a listener's TLS material is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the server's certificate, then its chain.
    pub cert_file: PathBuf,
    /// PEM: its private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM: CAs client certificates must chain to; set, clients must present one.
    pub client_ca_file: Option<PathBuf>,
    /// Which part of a client certificate's subject is its user (certificate logins).
    pub cert_login_from: CertLoginFrom,
    /// Kafka's `ssl.principal.mapping.rules`, applied to the distinguished name.
    pub principal_rules: Option<Arc<PrincipalRules>>,
}

/// Why TLS material did not load.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {error}")]
    File { path: PathBuf, error: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_error(path: &Path, error: impl ToString) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        error: error.to_string(),
    }
}

impl TlsFiles {
    /// The rustls configuration these files make (blocking: reads files).
    pub fn server_config(&self) -> Result<ServerConfig, TlsError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert_file)
            .map_err(|e| file_error(&self.cert_file, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| file_error(&self.cert_file, e))?;
        if certs.is_empty() {
            return Err(file_error(&self.cert_file, "no certificate in the file"));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key_file)
            .map_err(|e| file_error(&self.key_file, e))?;
        // ring: builds with only a C compiler. rustls 0.23.48 deprecates it for lacking
        // post-quantum key exchange (X25519MLKEM768, which aws-lc-rs has); the classic groups
        // (X25519, P-256, P-384) it offers are what clients negotiate today.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &self.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for ca in CertificateDer::pem_file_iter(path).map_err(|e| file_error(path, e))? {
                    roots
                        .add(ca.map_err(|e| file_error(path, e))?)
                        .map_err(|e| file_error(path, e))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| TlsError::Config(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        builder
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))
    }
}

/// A listener's TLS: its files and the configuration made from them, replaceable while
/// connections use the old one. Cheap to clone (shared).
#[derive(Clone)]
pub struct Tls {
    files: TlsFiles,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

impl Tls {
    /// Loads `files` (blocking).
    pub fn load(files: TlsFiles) -> Result<Tls, TlsError> {
        let config = files.server_config()?;
        Ok(Tls {
            files,
            current: Arc::new(RwLock::new(Arc::new(config))),
        })
    }

    /// Loads the files again (blocking); on an error the current configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = self.files.server_config()?;
        *self.current.write() = Arc::new(config);
        Ok(())
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The acceptor for a listener.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor_with_alpn(&[])
    }

    /// The acceptor for a listener whose protocol is chosen by ALPN: gRPC clients insist on
    /// `h2`, HTTPS clients offer `http/1.1`.
    pub fn acceptor_with_alpn(&self, protocols: &[&[u8]]) -> TlsAcceptor {
        TlsAcceptor {
            tls: self.clone(),
            alpn: protocols.iter().map(|p| p.to_vec()).collect(),
        }
    }
}

/// The kit [`Acceptor`] that runs a TLS handshake with the [`Tls`]'s current configuration.
#[derive(Clone, Debug)]
pub struct TlsAcceptor {
    tls: Tls,
    /// ALPN protocols offered, most preferred first; none: no ALPN.
    alpn: Vec<Vec<u8>>,
}

impl Acceptor for TlsAcceptor {
    type Stream = tokio_rustls::server::TlsStream<TcpStream>;

    async fn accept(&self, tcp: TcpStream) -> io::Result<Self::Stream> {
        let mut config = self.tls.current.read().clone();
        if !self.alpn.is_empty() {
            // A copy per connection (a few reference counts): the reloadable config stays one.
            let mut with_alpn = (*config).clone();
            with_alpn.alpn_protocols = self.alpn.clone();
            config = Arc::new(with_alpn);
        }
        tokio_rustls::TlsAcceptor::from(config).accept(tcp).await
    }

    fn client_login(&self, stream: &Self::Stream) -> Option<String> {
        // Without mutual TLS, nothing verified a certificate a client may have sent.
        self.tls.files.client_ca_file.as_ref()?;
        let leaf = stream.get_ref().1.peer_certificates()?.first()?;
        let name = login_name(leaf, self.tls.files.cert_login_from)?;
        let Some(rules) = &self.tls.files.principal_rules else {
            return Some(name);
        };
        let user = rules.apply(&name);
        if user.is_none() {
            let peer = stream.get_ref().0.peer_addr().ok();
            tracing::warn!(?peer, subject = %name,
                "no principal_mapping_rules rule applies to the client certificate: it names no user");
        }
        user
    }
}
