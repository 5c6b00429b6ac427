//! TLS for benchmark clients (`--tls`, `--tls-ca FILE`): the rustls client configuration every
//! connection of a run shares, and a blocking TLS stream for `probe`.
//!
//! Owns: loading the CA file, the server name checked against the broker's certificate, and the
//! choices that make runs comparable between brokers: TLS 1.2 and 1.3 offered (1.3 is what both
//! ringmq and Mosquitto negotiate), **no session resumption** (every connection makes a full
//! handshake, so a connection-rate figure is not flattered by tickets), no ALPN, no client
//! certificate. Never: touching sockets of the load path; [`crate::client::Client`] drives its
//! own `ClientConnection` over the non-blocking socket.

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::Arc;

/// What every TLS connection of a run is made from.
#[derive(Debug, Clone)]
pub struct TlsClient {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
}

impl TlsClient {
    /// A client trusting the CA certificate(s) in `ca_file` (PEM) and checking the broker's
    /// certificate against `server_name` (a DNS name or an IP address).
    pub fn new(ca_file: &Path, server_name: &str) -> Result<TlsClient, String> {
        let pem = std::fs::read(ca_file).map_err(|e| format!("{}: {e}", ca_file.display()))?;
        let mut roots = RootCertStore::empty();
        let mut n = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| format!("{}: {e}", ca_file.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", ca_file.display()))?;
            n += 1;
        }
        if n == 0 {
            return Err(format!("{}: no PEM certificate found", ca_file.display()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.resumption = rustls::client::Resumption::disabled();
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|e| format!("TLS server name {server_name:?}: {e}"))?;
        Ok(TlsClient {
            config: Arc::new(config),
            server_name,
        })
    }

    /// A fresh client-side TLS session (no handshake bytes sent yet).
    pub fn connection(&self) -> Result<rustls::ClientConnection, rustls::Error> {
        rustls::ClientConnection::new(self.config.clone(), self.server_name.clone())
    }
}

/// The TLS settings of the broker flags, if any: `--tls-ca` implies `--tls`, and `--tls` needs
/// a CA (the harness carries no system root store: test brokers use test CAs).
pub fn from_args(b: &crate::cli::BrokerArgs) -> Result<Option<TlsClient>, String> {
    match (&b.tls_ca, b.tls) {
        (None, false) => Ok(None),
        (None, true) => {
            Err("--tls needs --tls-ca FILE (the CA that signed the broker's certificate)".into())
        }
        (Some(ca), _) => {
            let name = b.tls_server_name.as_deref().unwrap_or(&b.host);
            TlsClient::new(ca, name).map(Some)
        }
    }
}
