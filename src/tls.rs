//! In-process TLS (docs/protocol.md 1: `wss://` without a terminator in front): reads
//! `server.tls.cert` and `server.tls.key` (PEM) into a rustls 0.23 server config on ring.
//!
//! A missing or unreadable file, or one without a certificate or key, stops start-up with an
//! error naming the config key and the path. The files are read once, at start-up: replacing
//! a certificate means restarting (drain first, see docs/operating.md, "TLS").

use std::io;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use crate::config::TlsConfig;

/// The rustls server config for `tls`, or an error naming the offending key.
pub fn server_config(tls: &TlsConfig) -> io::Result<ServerConfig> {
    let bad = |key: &str, path: &str, problem: String| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("config key {key}: {path}: {problem}"))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| bad("server.tls.cert", &tls.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("server.tls.cert", &tls.cert, "no PEM certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| bad("server.tls.key", &tls.key, e.to_string()))?;
    // ring explicitly, whatever provider is installed process-wide.
    ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("server.tls", &tls.cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("server.tls.key", &tls.key, format!("does not fit the certificate: {e}")))
}
