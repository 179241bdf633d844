//! HTTPS on the listen address: the certificate chain and key the operator names
//! (`tls_cert`, `tls_key`), read once at start. Clients that need a bearer token over
//! TLS (the Azure CLI refuses one on plain HTTP) are served on the same address as
//! every other route.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// The acceptor for `cert` and `key`, or none when neither is set. One without the other
/// is refused, as is a file that holds no certificate or no key.
pub fn acceptor(cert: Option<&Path>, key: Option<&Path>) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (c, k),
        (Some(_), None) => anyhow::bail!("tls_cert is set without tls_key: give both, or neither"),
        (None, Some(_)) => anyhow::bail!("tls_key is set without tls_cert: give both, or neither"),
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("tls_cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("tls_cert {}: the file holds no certificate", cert.display());
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| anyhow::anyhow!("tls_key {}: {e}", key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow::anyhow!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| anyhow::anyhow!("tls_cert and tls_key do not make a server identity: {e}"))?;
    let mut config = config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}
