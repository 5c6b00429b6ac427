//! What the broker listens on: `[[listener]]` tables (Mosquitto's names: `bind`, `protocol`,
//! `certfile`, `keyfile`, `cafile`, `require_certificate`, `use_identity_as_username`,
//! `allow_anonymous`; for WebSocket listeners `path` and `origins`; for `mqtts` our own `ktls`),
//! the `--bind` shorthand for one plain listener, and the default when
//! neither is given: loopback only, `127.0.0.1:1883` and `[::1]:1883`, as Mosquitto 2's
//! local-only mode.
//!
//! Owns: the effective listener list, its validation, and which listeners admit anonymous
//! clients. Never: opens a socket or reads a certificate (that is `net::listener` and
//! [`crate::tls`]).

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The default listeners when none is configured.
pub const DEFAULT_BINDS: [&str; 2] = ["127.0.0.1:1883", "[::1]:1883"];

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ListenerProtocol {
    #[default]
    Mqtt,
    /// MQTT over TLS (default port 8883).
    Mqtts,
    /// MQTT over WebSocket (default port 8083 in examples).
    Ws,
    /// MQTT over WebSocket over TLS (8084), with the TLS keys of `mqtts`.
    Wss,
}

impl ListenerProtocol {
    pub fn is_tls(self) -> bool {
        matches!(self, ListenerProtocol::Mqtts | ListenerProtocol::Wss)
    }

    pub fn is_websocket(self) -> bool {
        matches!(self, ListenerProtocol::Ws | ListenerProtocol::Wss)
    }

    pub fn name(self) -> &'static str {
        match self {
            ListenerProtocol::Mqtt => "mqtt",
            ListenerProtocol::Mqtts => "mqtts",
            ListenerProtocol::Ws => "ws",
            ListenerProtocol::Wss => "wss",
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// `address:port`, e.g. `0.0.0.0:8883` or `[::]:1883`.
    pub bind: String,
    #[serde(default)]
    pub protocol: ListenerProtocol,
    /// PEM certificate chain of the server (TLS listeners).
    pub certfile: Option<PathBuf>,
    /// PEM private key of the server (PKCS#8, PKCS#1 or SEC1).
    pub keyfile: Option<PathBuf>,
    /// PEM CA certificates client certificates are verified against.
    pub cafile: Option<PathBuf>,
    /// Refuse TLS clients without a certificate signed by `cafile`.
    #[serde(default)]
    pub require_certificate: bool,
    /// The client certificate's Common Name replaces the CONNECT's user name.
    #[serde(default)]
    pub use_identity_as_username: bool,
    /// Admit clients without credentials on this listener; unset: the global setting, and
    /// without one, only on loopback addresses.
    pub allow_anonymous: Option<bool>,
    /// WebSocket listeners: the HTTP path upgraded (default `/mqtt`); others get 404.
    pub path: Option<String>,
    /// WebSocket listeners: the `Origin` values admitted (e.g. `https://app.example.com`);
    /// empty admits any. A browser's request from another origin gets 403.
    #[serde(default)]
    pub origins: Vec<String>,
    /// `mqtts` listeners: after the rustls handshake, hand the session keys to the kernel
    /// (kTLS) so records are encrypted and decrypted in `send`/`recv`; a kernel without the
    /// `tls` module keeps rustls (see `transport::ktls`).
    #[serde(default)]
    pub ktls: bool,
}

impl ListenerConfig {
    pub fn plain(bind: &str) -> ListenerConfig {
        ListenerConfig {
            bind: bind.into(),
            protocol: ListenerProtocol::Mqtt,
            certfile: None,
            keyfile: None,
            cafile: None,
            require_certificate: false,
            use_identity_as_username: false,
            allow_anonymous: None,
            path: None,
            origins: Vec::new(),
            ktls: false,
        }
    }

    /// The path a WebSocket listener serves.
    pub fn ws_path(&self) -> &str {
        self.path
            .as_deref()
            .unwrap_or(crate::limits::WS_PATH_DEFAULT)
    }

    pub fn addr(&self) -> Option<SocketAddr> {
        self.bind.parse().ok()
    }

    pub fn is_loopback(&self) -> bool {
        self.addr().is_some_and(|a| a.ip().is_loopback())
    }

    /// Whether clients without credentials are admitted here: this listener's setting, else
    /// the global one, else only on a loopback address (a broker reachable from the network
    /// never starts open by accident).
    pub fn anonymous_allowed(&self, global: Option<bool>) -> bool {
        self.allow_anonymous
            .or(global)
            .unwrap_or_else(|| self.is_loopback())
    }

    /// A clear message for a listener that cannot work as configured.
    pub fn validate(&self) -> Result<(), String> {
        let at = format!("listener {} ({})", self.bind, self.protocol.name());
        if self.addr().is_none() {
            return Err(format!(
                "{at}: bind must be an address:port such as 0.0.0.0:1883 or [::]:8883"
            ));
        }
        if self.protocol.is_websocket() {
            let path = self.ws_path();
            if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b == b'?' || b == b'#') {
                return Err(format!(
                    "{at}: path must start with / and hold no spaces, ? or #, e.g. \"/mqtt\""
                ));
            }
            if let Some(o) = self
                .origins
                .iter()
                .find(|o| !o.contains("://") || o.ends_with('/'))
            {
                return Err(format!(
                    "{at}: origin {o:?} must be scheme://host[:port] without a path, e.g. \"https://app.example.com\""
                ));
            }
        } else if self.path.is_some() || !self.origins.is_empty() {
            return Err(format!(
                "{at}: path/origins are WebSocket settings; set protocol = \"ws\" or \"wss\""
            ));
        }
        if self.protocol.is_tls() {
            if self.certfile.is_none() || self.keyfile.is_none() {
                return Err(format!("{at}: TLS needs certfile and keyfile"));
            }
        } else if self.certfile.is_some() || self.keyfile.is_some() || self.cafile.is_some() {
            return Err(format!(
                "{at}: certfile/keyfile/cafile given for a plain listener; set protocol = \"mqtts\" or \"wss\""
            ));
        }
        if self.ktls && self.protocol != ListenerProtocol::Mqtts {
            // wss would work the same way under its WebSocket layer, but the prototype keeps
            // the surface small until kTLS has run somewhere real.
            return Err(format!(
                "{at}: ktls is an mqtts setting (not for plain or WebSocket listeners)"
            ));
        }
        if self.require_certificate && self.cafile.is_none() {
            return Err(format!("{at}: require_certificate needs cafile"));
        }
        if self.use_identity_as_username && self.cafile.is_none() {
            return Err(format!(
                "{at}: use_identity_as_username needs cafile (client certificates)"
            ));
        }
        Ok(())
    }
}

/// The listeners to open: the configured tables plus the `--bind` shorthand, or the loopback
/// default when there are none.
pub fn effective(tables: &[ListenerConfig], bind: Option<&str>) -> (Vec<ListenerConfig>, bool) {
    let mut all: Vec<ListenerConfig> = tables.to_vec();
    if let Some(b) = bind {
        all.push(ListenerConfig::plain(b));
    }
    if all.is_empty() {
        return (
            DEFAULT_BINDS
                .iter()
                .map(|b| ListenerConfig::plain(b))
                .collect(),
            true,
        );
    }
    (all, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_listeners_the_broker_is_local_only_and_open() {
        let (l, default) = effective(&[], None);
        assert!(default);
        assert_eq!(l.len(), 2);
        assert!(l
            .iter()
            .all(|l| l.is_loopback() && l.anonymous_allowed(None)));
    }

    #[test]
    fn anonymous_is_refused_off_loopback_unless_allowed() {
        let public = ListenerConfig::plain("0.0.0.0:1883");
        assert!(!public.anonymous_allowed(None));
        assert!(public.anonymous_allowed(Some(true)));
        let mut local = ListenerConfig::plain("127.0.0.1:1883");
        assert!(local.anonymous_allowed(None));
        assert!(!local.anonymous_allowed(Some(false)));
        local.allow_anonymous = Some(true);
        assert!(
            local.anonymous_allowed(Some(false)),
            "the listener's own setting wins"
        );
    }

    #[test]
    fn bad_listeners_are_explained() {
        let mut tls = ListenerConfig::plain("0.0.0.0:8883");
        tls.protocol = ListenerProtocol::Mqtts;
        assert!(tls.validate().unwrap_err().contains("certfile"));
        tls.certfile = Some("c.pem".into());
        tls.keyfile = Some("k.pem".into());
        assert!(tls.validate().is_ok());
        tls.ktls = true;
        assert!(tls.validate().is_ok());
        tls.require_certificate = true;
        assert!(tls.validate().unwrap_err().contains("cafile"));
        assert!(ListenerConfig::plain("nowhere").validate().is_err());
        let mut plain = ListenerConfig::plain("0.0.0.0:1883");
        plain.certfile = Some("c.pem".into());
        assert!(plain.validate().unwrap_err().contains("mqtts"));
        let mut ws = ListenerConfig::plain("0.0.0.0:8084");
        ws.protocol = ListenerProtocol::Wss;
        ws.certfile = Some("c.pem".into());
        ws.keyfile = Some("k.pem".into());
        ws.ktls = true;
        assert!(ws.validate().unwrap_err().contains("ktls"));
    }

    #[test]
    fn websocket_listeners_check_path_and_origins() {
        let mut ws = ListenerConfig::plain("127.0.0.1:8083");
        assert!(ListenerConfig {
            path: Some("/mqtt".into()),
            ..ws.clone()
        }
        .validate()
        .unwrap_err()
        .contains("WebSocket"));
        ws.protocol = ListenerProtocol::Ws;
        assert!(ws.validate().is_ok());
        assert_eq!(ws.ws_path(), "/mqtt");
        ws.path = Some("mqtt".into());
        assert!(ws.validate().unwrap_err().contains("path"));
        ws.path = Some("/ws/mqtt".into());
        ws.origins = vec!["https://app.example.com".into()];
        assert!(ws.validate().is_ok());
        ws.origins = vec!["app.example.com".into()];
        assert!(ws.validate().unwrap_err().contains("origin"));
        let mut wss = ListenerConfig::plain("127.0.0.1:8084");
        wss.protocol = ListenerProtocol::Wss;
        assert!(wss.validate().unwrap_err().contains("certfile"));
    }

    #[test]
    fn bind_adds_a_plain_listener_to_the_tables() {
        let mut tls = ListenerConfig::plain("127.0.0.1:8883");
        tls.protocol = ListenerProtocol::Mqtts;
        let (l, default) = effective(&[tls], Some("127.0.0.1:1883"));
        assert!(!default);
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].protocol, ListenerProtocol::Mqtt);
    }
}
