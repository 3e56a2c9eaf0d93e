//! TLS clients (rustls with the ring provider): one that trusts only the CA certificates
//! of a PEM file the config names, and one that trusts nothing (for a plain connection
//! that never uses it).

use std::path::Path;
use std::sync::Arc;

/// A client that trusts only the CA certificates in `ca_file` (PEM), TLS 1.2 or 1.3;
/// errors name `setting` and the file.
pub fn client_trusting(ca_file: &Path, setting: &str) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
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
    Ok(builder()
        .map_err(|e| fault(&e))?
        .with_root_certificates(roots)
        .with_no_client_auth())
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
