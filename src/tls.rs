//! TLS configuration for `mqtts` and `wss` listeners: the rustls `ServerConfig` built from a listener's
//! PEM files (TLS 1.2 and 1.3, ALPN `mqtt`, or `http/1.1` for `wss`, optional or required client certificates against
//! `cafile`), and the client certificate's Common Name for `use_identity_as_username`.
//!
//! Owns: reading certificate and key files, at start and on SIGHUP (on the control thread).
//! Never: runs on a shard's data path (shards receive a finished `Arc<ServerConfig>`), or
//! panics on a file's contents: every problem is an error naming the file.

use crate::listeners::ListenerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use std::path::Path;
use std::sync::Arc;

/// The ALPN protocol id MQTT over TLS uses (IANA: "mqtt").
pub const ALPN_MQTT: &[u8] = b"mqtt";
/// The ALPN protocol id of HTTP/1.1, which a WebSocket handshake over TLS runs on.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs: Result<Vec<_>, _> =
        rustls_pemfile::certs(&mut std::io::BufReader::new(file)).collect();
    let certs = certs.map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate found", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut std::io::BufReader::new(file))
        .map_err(|e| format!("{}: {e}", path.display()))?
        .ok_or_else(|| format!("{}: no PEM private key found", path.display()))
}

/// The server configuration of one TLS listener.
pub fn server_config(l: &ListenerConfig) -> Result<Arc<ServerConfig>, String> {
    let (Some(certfile), Some(keyfile)) = (&l.certfile, &l.keyfile) else {
        return Err(format!(
            "listener {}: TLS needs certfile and keyfile",
            l.bind
        ));
    };
    let certs = read_certs(certfile)?;
    let key = read_key(keyfile)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| format!("listener {}: {e}", l.bind))?;
    let builder = match &l.cafile {
        Some(cafile) => {
            let mut roots = RootCertStore::empty();
            for c in read_certs(cafile)? {
                roots
                    .add(c)
                    .map_err(|e| format!("{}: {e}", cafile.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = if l.require_certificate {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier
                .build()
                .map_err(|e| format!("{}: {e}", cafile.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("{} / {}: {e}", certfile.display(), keyfile.display()))?;
    // A client that offers ALPN must offer "mqtt" (or, for MQTT over WebSocket, "http/1.1",
    // which browsers offer for wss); one that offers none is served.
    // kTLS listeners take the session keys out of rustls after the handshake.
    cfg.enable_secret_extraction = l.ktls;
    cfg.alpn_protocols = if l.protocol.is_websocket() {
        vec![ALPN_HTTP1.to_vec()]
    } else {
        vec![ALPN_MQTT.to_vec()]
    };
    Ok(Arc::new(cfg))
}

/// The Common Name of the verified client certificate, if the client sent one.
pub fn identity(conn: &ServerConnection) -> Option<String> {
    let cert = conn.peer_certificates()?.first()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// The TLS configurations of every listener (`None` for plain ones), e.g. after SIGHUP.
pub fn load_all(listeners: &[ListenerConfig]) -> Result<Vec<Option<Arc<ServerConfig>>>, String> {
    listeners
        .iter()
        .map(|l| l.protocol.is_tls().then(|| server_config(l)).transpose())
        .collect()
}
