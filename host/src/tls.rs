//! TLS (rustls with the ring provider). Clients: one that trusts only the CA
//! certificates of a PEM file the config names (presenting, if configured, a client
//! certificate read again from its files when they change), and one that trusts nothing
//! (for a plain connection that never uses it). The listener's: TLS 1.3 (1.2 if configured), HTTP/2
//! and HTTP/1.1 by ALPN, optional client certificates, and a certificate reloaded from
//! its files when they change, with no restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use crate::config::TlsConfig;

/// A client that trusts only the CA certificates in `ca_file` (PEM), TLS 1.2 or 1.3;
/// errors name `setting` and the file.
pub fn client_trusting(ca_file: &Path, setting: &str) -> Result<rustls::ClientConfig, String> {
    let roots = roots(ca_file, setting)?;
    Ok(builder()
        .map_err(|e| format!("{setting}: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The CA certificates of `ca_file` (PEM); errors name `setting` and the file.
fn roots(ca_file: &Path, setting: &str) -> Result<rustls::RootCertStore, String> {
    let fault = |e: &dyn std::fmt::Display| format!("{setting} {}: {e}", ca_file.display());
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca_file).map_err(|e| fault(&e))? {
        roots
            .add(certificate.map_err(|e| fault(&e))?)
            .map_err(|e| fault(&e))?;
    }
    if roots.is_empty() {
        return Err(fault(&"no certificate in it"));
    }
    Ok(roots)
}

/// A client that trusts no certificate.
pub fn client_trusting_nothing() -> rustls::ClientConfig {
    builder()
        .unwrap_or_else(|e| unreachable!("ring supports the default versions: {e}"))
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

fn builder()
-> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier>, rustls::Error> {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
}

/// An HTTP(S) client with a pooled connector (webhooks, the JWKS URL).
pub type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<hyper::body::Bytes>,
>;

/// An HTTP client for `uri`: HTTPS verified against `ca_file` (the platform's CA
/// certificates without one), or plain HTTP (the caller allows it on loopback only).
/// Errors name `setting`.
pub fn https_client(
    ca_file: Option<&Path>,
    uri: &axum::http::Uri,
    setting: &str,
) -> Result<HttpClient, String> {
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match (ca_file, uri.scheme_str()) {
        (Some(ca_file), _) => {
            builder.with_tls_config(client_trusting(ca_file, &format!("{setting}.tls_ca_file"))?)
        }
        // Plain HTTP on loopback: no TLS, so no CA to read.
        (None, Some("http")) => builder.with_tls_config(client_trusting_nothing()),
        (None, _) => builder.with_native_roots().map_err(|e| {
            format!("{setting}: the platform's CA certificates cannot be read: {e}")
        })?,
    };
    let connector = builder.https_or_http().enable_http1().build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .build(connector),
    )
}

/// The listener's TLS: the rustls config for its acceptor, whose certificate and key are
/// read again from their files by [`ServerTls::reload`].
pub struct ServerTls {
    /// For the acceptor.
    pub config: Arc<rustls::ServerConfig>,
    certificate: Arc<CertificateFiles>,
}

/// The certificate the handshakes get, and the files it comes from.
#[derive(Debug)]
struct CertificateFiles {
    certificate: PathBuf,
    private_key: PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for CertificateFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

/// The chain of `certificate` and the key of `private_key` (a file only its owner may
/// read), from PEM; errors name `settings` (the certificate's, the key's) and the file.
fn read_pair(
    certificate: &Path,
    private_key: &Path,
    settings: (&str, &str),
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let at = |setting: &str, path: &Path, e: &dyn std::fmt::Display| {
        format!("{setting} {}: {e}", path.display())
    };
    let chain = CertificateDer::pem_file_iter(certificate)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|e| at(settings.0, certificate, &e))?;
    if chain.is_empty() {
        return Err(at(settings.0, certificate, &"no certificate in it"));
    }
    crate::config::owner_only(private_key, settings.1, "the TLS private key")?;
    let key =
        PrivateKeyDer::from_pem_file(private_key).map_err(|e| at(settings.1, private_key, &e))?;
    Ok((chain, key))
}

/// The chain of `certificate` and the key of `private_key`, checked to belong together.
fn load(
    certificate: &Path,
    private_key: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<CertifiedKey, String> {
    let settings = ("tls.certificate", "tls.private_key");
    let (chain, key) = read_pair(certificate, private_key, settings)?;
    certified(chain, key, provider, private_key, certificate, settings.1)
}

fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &rustls::crypto::CryptoProvider,
    private_key: &Path,
    certificate: &Path,
    key_setting: &str,
) -> Result<CertifiedKey, String> {
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        let why = match e {
            rustls::Error::InconsistentKeys(_) => {
                format!("is not the key of {}", certificate.display())
            }
            e => e.to_string(),
        };
        format!("{key_setting} {}: {why}", private_key.display())
    })
}

/// A client that trusts only the CA certificates in `ca_file` and, when asked for one,
/// presents the certificate `identity` names (its chain and its key's files, with the
/// settings that name them): mutual TLS to a server that verifies its clients. The files
/// are read again when they change ([`ClientCertificateFiles`]), so a renewed certificate
/// needs no restart.
pub fn client_trusting_as(
    ca_file: &Path,
    setting: &str,
    identity: Option<(&Path, &Path, (&str, &str))>,
) -> Result<rustls::ClientConfig, String> {
    let Some((certificate, private_key, settings)) = identity else {
        return client_trusting(ca_file, setting);
    };
    let roots = roots(ca_file, setting)?;
    // The key must be the certificate's: checked here, at start, not at the first
    // handshake the server refuses.
    let files = ClientCertificateFiles::read(certificate, private_key, settings)?;
    Ok(builder()
        .map_err(|e| format!("{setting}: {e}"))?
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(files)))
}

/// A client's certificate and key, from their files, read again at a handshake that asks
/// for a certificate when either file's bytes changed since the pair in use was read: a
/// renewal (a new certificate and key written in place, a mounted secret updated) is
/// presented from the next connection on, with no restart. Connections already open keep
/// theirs (a server checks a client's certificate when the connection is made). A pair
/// that does not read (a file half-written, a key of another certificate, a key others may
/// read) keeps the one in use, and says why in the log at each handshake until it reads.
#[derive(Debug)]
pub struct ClientCertificateFiles {
    certificate: PathBuf,
    private_key: PathBuf,
    settings: (String, String),
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// The files' bytes as last read, and the pair in use.
    current: RwLock<(Vec<u8>, Arc<CertifiedKey>)>,
}

impl ClientCertificateFiles {
    /// Reads the pair; errors name the setting and the file.
    fn read(
        certificate: &Path,
        private_key: &Path,
        settings: (&str, &str),
    ) -> Result<ClientCertificateFiles, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let bytes = both(certificate, private_key).unwrap_or_default();
        let (chain, key) = read_pair(certificate, private_key, settings)?;
        let pair = certified(chain, key, &provider, private_key, certificate, settings.1)?;
        Ok(ClientCertificateFiles {
            certificate: certificate.to_owned(),
            private_key: private_key.to_owned(),
            settings: (settings.0.to_owned(), settings.1.to_owned()),
            provider,
            current: RwLock::new((bytes, Arc::new(pair))),
        })
    }

    /// The pair to present now: read again first if the files changed.
    fn now(&self) -> Arc<CertifiedKey> {
        let bytes = both(&self.certificate, &self.private_key);
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        let unchanged = bytes.as_ref().is_none_or(|bytes| *bytes == current.0);
        if unchanged {
            return Arc::clone(&current.1);
        }
        drop(current);
        let settings = (self.settings.0.as_str(), self.settings.1.as_str());
        let read =
            read_pair(&self.certificate, &self.private_key, settings).and_then(|(chain, key)| {
                certified(
                    chain,
                    key,
                    &self.provider,
                    &self.private_key,
                    &self.certificate,
                    settings.1,
                )
            });
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        match (read, bytes) {
            (Ok(pair), Some(bytes)) => {
                let leaf = pair.cert.first().map(|leaf| certificate_sha256(leaf));
                tracing::info!(
                    certificate = %self.certificate.display(),
                    certificate_sha256 = %leaf.map(|d| crate::registry::hex(&d)).unwrap_or_default(),
                    "client certificate read again: presented from this connection on"
                );
                *current = (bytes, Arc::new(pair));
            }
            (Err(error), _) => {
                tracing::error!("client certificate not read again, the one in use stays: {error}")
            }
            (Ok(_), None) => {}
        }
        Arc::clone(&current.1)
    }
}

/// The bytes of both files, one after the other (`None` if either cannot be read now).
fn both(certificate: &Path, private_key: &Path) -> Option<Vec<u8>> {
    let mut bytes = std::fs::read(certificate).ok()?;
    bytes.extend(std::fs::read(private_key).ok()?);
    Some(bytes)
}

impl rustls::client::ResolvesClientCert for ClientCertificateFiles {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.now())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The sha256 of a certificate (DER): how the config names a client's certificate.
pub fn certificate_sha256(certificate: &[u8]) -> [u8; 32] {
    Sha256::digest(certificate).into()
}

/// The listener's TLS as the config says; errors name the setting and the file.
pub fn server(config: &TlsConfig) -> Result<ServerTls, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let first = load(&config.certificate, &config.private_key, &provider)?;
    let files = Arc::new(CertificateFiles {
        certificate: config.certificate.clone(),
        private_key: config.private_key.clone(),
        provider: Arc::clone(&provider),
        current: RwLock::new(Arc::new(first)),
    });
    let versions: &[&rustls::SupportedProtocolVersion] = match config.min_version.as_str() {
        "1.2" => &[&rustls::version::TLS13, &rustls::version::TLS12],
        _ => &[&rustls::version::TLS13],
    };
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|e| format!("tls.min_version: {e}"))?;
    let builder = match &config.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(ca_file, "tls.client_ca")?),
                Arc::clone(&provider),
            );
            let verifier = if config.client_certificate_required() {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| format!("tls.client_ca {}: {e}", ca_file.display()))?,
            )
        }
    };
    let mut server = builder.with_cert_resolver(Arc::clone(&files) as Arc<dyn ResolvesServerCert>);
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(ServerTls {
        config: Arc::new(server),
        certificate: files,
    })
}

impl ServerTls {
    /// Reads the certificate and key again: the next handshakes get them. On a fault (a
    /// file half-written, a key of another certificate) the pair in use stays, and the
    /// fault is the answer.
    pub fn reload(&self) -> Result<(), String> {
        let files = &self.certificate;
        let loaded = Arc::new(load(
            &files.certificate,
            &files.private_key,
            &files.provider,
        )?);
        *self
            .certificate
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = loaded;
        Ok(())
    }

    /// The sha256 of the leaf certificate in use, hex.
    pub fn certificate_sha256(&self) -> String {
        let current = self
            .certificate
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        current
            .cert
            .first()
            .map(|leaf| crate::registry::hex(&certificate_sha256(leaf)))
            .unwrap_or_default()
    }

    /// The certificate's and the key's files (what to watch).
    pub fn files(&self) -> Vec<PathBuf> {
        vec![
            self.certificate.certificate.clone(),
            self.certificate.private_key.clone(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::ResolvesClientCert;

    /// A self-signed certificate for `name`: its PEM, its key's PEM, its DER.
    fn certificate(name: &str) -> (String, String, Vec<u8>) {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("generated");
        (cert.pem(), signing_key.serialize_pem(), cert.der().to_vec())
    }

    fn write(dir: &Path, (cert, key): (&str, &str)) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(dir.join("client.pem"), cert).expect("written");
        let key_file = dir.join("client.key");
        std::fs::write(&key_file, key).expect("written");
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }

    /// A renewed client certificate is presented at the next handshake, with no restart;
    /// a renewal that does not read (a certificate with another's key) keeps the pair in
    /// use until one does.
    #[test]
    fn a_renewed_client_certificate_is_presented_from_the_next_handshake() {
        let dir = tempfile::tempdir().expect("a directory");
        let (first, renewed) = (certificate("host-a"), certificate("host-b"));
        write(dir.path(), (&first.0, &first.1));
        let settings = ("store.tls_client_certificate", "store.tls_client_key");
        let files = ClientCertificateFiles::read(
            &dir.path().join("client.pem"),
            &dir.path().join("client.key"),
            settings,
        )
        .expect("reads");
        let presented = |files: &ClientCertificateFiles| {
            files.resolve(&[], &[]).expect("a certificate").cert[0].to_vec()
        };
        assert_eq!(presented(&files), first.2);
        assert_eq!(presented(&files), first.2, "unchanged files, the same pair");

        write(dir.path(), (&renewed.0, &renewed.1));
        assert_eq!(
            presented(&files),
            renewed.2,
            "the renewal, at the next handshake"
        );

        // Half a renewal: the first certificate with the renewed key.
        write(dir.path(), (&first.0, &renewed.1));
        assert_eq!(
            presented(&files),
            renewed.2,
            "a pair that does not read is not used"
        );
        std::fs::remove_file(dir.path().join("client.key")).expect("removed");
        assert_eq!(presented(&files), renewed.2, "nor a missing file");

        write(dir.path(), (&first.0, &first.1));
        assert_eq!(presented(&files), first.2, "a pair that reads again is");
    }
}
