//! Authentication and authorization, sans-IO.
//!
//! - [`security`]: the whole security state ([`security::Security`]: password file, ACL, JWT keys,
//!   anonymous policy) as one immutable value shared by every shard, the CONNECT decision over
//!   it, and reload (SIGHUP, JWT key files changed on disk).
//! - [`password`]: Mosquitto `password_file` (`$7$`, `$6$`, `$argon2id$`) and the per-shard
//!   verification cache; [`passwd_cmd`]: the `ringmq passwd` tool.
//! - [`acl`]: Mosquitto `acl_file`, compiled into per-user tries (`acl_trie`) so the PUBLISH and
//!   delivery checks are one walk over the topic.
//! - [`jwt`], [`jwt_acl`]: JWT on CONNECT (token as the password) and EMQX-form ACL claims.
//! - Below: MQTT 5 enhanced authentication (AUTH packets, [MQTT-4.12]), a pluggable
//!   [`Authenticator`] per method name; SCRAM-SHA-256 is built in.
//!
//! Owns: credentials, rules, and the decisions over them. Never: blocks or does I/O on a
//! shard's data path (files are read at load and reload only; a slow key derivation is handed
//! back to run off the reactor), takes a lock during a check, or panics on file, token or
//! packet contents.

pub mod acl;
mod acl_trie;
pub mod jwt;
pub mod jwt_acl;
pub mod passwd_cmd;
pub mod password;
mod scram;
pub mod security;

pub use scram::{ScramCredentials, ScramSha256};

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;

/// A problem in a security file (password file, ACL file): which file, which line (0 = the
/// whole file), and why. Never a panic: every bad line of a file a user wrote is one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub path: Option<std::path::PathBuf>,
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.path, self.line) {
            (Some(p), 0) => write!(f, "{}: ", p.display())?,
            (Some(p), n) => write!(f, "{}:line {n}: ", p.display())?,
            (None, 0) => {}
            (None, n) => write!(f, "line {n}: ")?,
        }
        f.write_str(&self.reason)
    }
}

impl std::error::Error for FileError {}

/// What the broker answers after one step of an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Send AUTH 0x18 (Continue authentication) with this data and wait for the client.
    Continue(Bytes),
    /// Authenticated: CONNACK 0x00 (or AUTH 0x00 on re-authentication) with this data.
    Success(Option<Bytes>),
    /// Refused with this reason code (0x86 bad user name or password, 0x87 not authorized,
    /// 0x8C bad authentication method).
    Fail(u8),
}

/// One authentication method, shared by every shard (credentials are read-only).
pub trait Authenticator: Send + Sync {
    /// The Authentication Method name clients put in CONNECT, e.g. `SCRAM-SHA-256`.
    fn method(&self) -> &'static str;
    /// Start an exchange with the client's first Authentication Data.
    fn start(&self, data: Option<&[u8]>) -> (Option<Box<dyn AuthExchange>>, AuthStep);
}

/// The state of one exchange on one connection.
pub trait AuthExchange {
    /// The client's next Authentication Data (from AUTH 0x18).
    fn step(&mut self, data: Option<&[u8]>) -> AuthStep;
}

/// Every method the broker offers, by name.
#[derive(Default, Clone)]
pub struct Registry {
    methods: HashMap<&'static str, Arc<dyn Authenticator>>,
}

impl Registry {
    /// The methods the configuration enables: SCRAM-SHA-256 when users are configured.
    pub fn from_config(cfg: &crate::config::Config) -> Registry {
        let mut r = Registry::default();
        if !cfg.users.is_empty() {
            let users = cfg
                .users
                .iter()
                .map(|u| (u.username.clone(), ScramCredentials::derive(&u.password)))
                .collect();
            r.add(Arc::new(ScramSha256::new(users)));
        }
        r
    }

    pub fn add(&mut self, method: Arc<dyn Authenticator>) {
        self.methods.insert(method.method(), method);
    }

    pub fn get(&self, method: &str) -> Option<&Arc<dyn Authenticator>> {
        self.methods.get(method)
    }

    pub fn names(&self) -> Vec<&'static str> {
        let mut v: Vec<_> = self.methods.keys().copied().collect();
        v.sort_unstable();
        v
    }
}
