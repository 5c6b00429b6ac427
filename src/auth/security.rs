//! The broker's security state as one immutable value, and the CONNECT decision over it.
//!
//! Owns: loading the password file, the ACL file and the JWT keys from the configuration into a
//! [`Security`] (shared by every shard as `Arc<Security>`, swapped whole on reload); the CONNECT
//! decision ([`Security::check_connect`]: anonymous policy, password file with the per-shard
//! [`VerifyCache`], JWT); and reload ([`Security::reload`] for SIGHUP, [`Security::poll`] for
//! JWT key files changed on disk), where a file that fails to load keeps its previous version.
//! Never: runs a key derivation itself on the caller's thread (it hands back a
//! [`PasswordJob`] to run off the reactor), takes a lock, or does I/O outside load/reload/poll.

use super::acl::Acl;
use super::jwt::{looks_like_jwt, JwtConfig, JwtVerifier, KeySource};
use super::jwt_acl::ClaimAcl;
use super::password::{PasswordFile, VerifyCache};
use crate::config::Config;
use std::sync::Arc;

/// Why a CONNECT is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Wrong or unverifiable credentials: v5 0x86, v3 return code 4.
    BadCredentials,
    /// No credentials where they are required (anonymous not allowed): v5 0x87, v3 code 5.
    NotAuthorized,
}

impl Refusal {
    /// CONNACK reason code for MQTT 5.
    pub fn v5_reason(self) -> u8 {
        match self {
            Refusal::BadCredentials => 0x86,
            Refusal::NotAuthorized => 0x87,
        }
    }
    /// CONNACK return code for MQTT 3.1 / 3.1.1.
    pub fn v3_return_code(self) -> u8 {
        match self {
            Refusal::BadCredentials => 4,
            Refusal::NotAuthorized => 5,
        }
    }
}

/// An accepted CONNECT.
#[derive(Debug, Clone, Default)]
pub struct Authenticated {
    /// The user name ACL checks use (`None`: anonymous). For JWT, the username claim if set.
    pub username: Option<String>,
    /// `true` when a password or token proved the name. `false` for a name taken on trust
    /// because no password mechanism is configured (Mosquitto applies that user's ACL rules
    /// anyway; so does ringmq, see docs/SECURITY.md).
    pub verified: bool,
    /// Token expiry, Unix seconds: disconnect the client then (v5 DISCONNECT 0xA0).
    pub expires_at_s: Option<u64>,
    /// The token's ACL rules, checked before the file ACL.
    pub claim_acl: Option<ClaimAcl>,
}

/// What the CONNECT carried that matters here.
#[derive(Debug, Clone, Copy)]
pub struct ConnectAuth<'a> {
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
    pub client_id: &'a str,
    /// The listener the client came in on is bound to a loopback address.
    pub loopback_listener: bool,
    /// That listener's own `allow_anonymous`, which wins over the global one.
    pub listener_allow_anonymous: Option<bool>,
}

/// The answer to a CONNECT.
pub enum ConnectCheck {
    Done(Result<Authenticated, Refusal>),
    /// A password to verify that the cache does not know: run [`PasswordJob::run`] off the
    /// reactor (it is `Send`), then [`PasswordJob::finish`] back on the shard.
    Derive(PasswordJob),
}

/// One pending key derivation.
pub struct PasswordJob {
    file: Arc<PasswordFile>,
    user: String,
    password: Vec<u8>,
}

impl PasswordJob {
    /// The slow part: key derivation (milliseconds). Call it off the reactor thread.
    pub fn run(&self) -> bool {
        self.file.verify(&self.user, &self.password)
    }

    /// Record the outcome in the shard's cache and turn it into the CONNECT answer.
    pub fn finish(self, ok: bool, cache: &mut VerifyCache) -> Result<Authenticated, Refusal> {
        if !ok {
            return Err(Refusal::BadCredentials);
        }
        cache.insert(&self.file, &self.user, &self.password);
        Ok(Authenticated {
            username: Some(self.user),
            verified: true,
            ..Authenticated::default()
        })
    }
}

/// Everything the broker's authentication and authorization read. Immutable.
#[derive(Debug, Clone)]
pub struct Security {
    pub passwords: Option<Arc<PasswordFile>>,
    pub acl: Arc<Acl>,
    pub jwt: Option<Arc<JwtVerifier>>,
    pub allow_anonymous: Option<bool>,
}

impl Security {
    /// No passwords, no token keys, the ACL that allows everything but writes under `$SYS`:
    /// what a broker without security files runs with.
    pub fn open() -> Security {
        Security {
            passwords: None,
            acl: Arc::new(Acl::allow_all()),
            jwt: None,
            allow_anonymous: None,
        }
    }
}

/// A reload's result: the new state (old pieces kept where loading failed) and what failed.
pub struct Reloaded {
    pub security: Security,
    pub errors: Vec<String>,
}

fn jwt_config(cfg: &Config) -> Result<Option<JwtConfig>, String> {
    let source = match (
        &cfg.jwt_secret_file,
        &cfg.jwt_public_key_file,
        &cfg.jwt_jwks_file,
    ) {
        (Some(p), None, None) => KeySource::Secret(p.clone()),
        (None, Some(p), None) => KeySource::PublicKey(p.clone()),
        (None, None, Some(p)) => KeySource::Jwks(p.clone()),
        (None, None, None) => return Ok(None),
        _ => {
            return Err(
                "jwt: set at most one of jwt_secret_file, jwt_public_key_file, jwt_jwks_file"
                    .into(),
            )
        }
    };
    let mut algorithms = Vec::new();
    for a in &cfg.jwt_algorithms {
        algorithms.push(
            a.parse()
                .map_err(|_| format!("jwt_algorithms: unknown algorithm {a:?}"))?,
        );
    }
    Ok(Some(JwtConfig {
        source,
        algorithms,
        username_claim: cfg.jwt_username_claim.clone(),
        acl_claim: cfg.jwt_acl_claim.clone(),
        audience: cfg.jwt_audience.clone(),
        require_exp: cfg.jwt_require_exp,
        leeway_s: cfg.jwt_leeway_s,
    }))
}

fn load_passwords(cfg: &Config) -> Result<Option<Arc<PasswordFile>>, String> {
    match &cfg.password_file {
        None => Ok(None),
        Some(p) => PasswordFile::load(p)
            .map(|f| Some(Arc::new(f)))
            .map_err(|e| e.to_string()),
    }
}

fn load_acl(cfg: &Config) -> Result<Arc<Acl>, String> {
    match &cfg.acl_file {
        None => Ok(Arc::new(Acl::allow_all())),
        Some(p) => Acl::load(p).map(Arc::new).map_err(|e| e.to_string()),
    }
}

fn load_jwt(cfg: &Config) -> Result<Option<Arc<JwtVerifier>>, String> {
    match jwt_config(cfg)? {
        None => Ok(None),
        Some(c) => JwtVerifier::load(c)
            .map(|v| Some(Arc::new(v)))
            .map_err(|e| e.to_string()),
    }
}

impl Security {
    /// Load every configured file; the first failure is the error (the broker does not start).
    pub fn load(cfg: &Config) -> Result<Security, String> {
        Ok(Security {
            passwords: load_passwords(cfg)?,
            acl: load_acl(cfg)?,
            jwt: load_jwt(cfg)?,
            allow_anonymous: cfg.allow_anonymous,
        })
    }

    /// SIGHUP: load every file again from `cfg` (the configuration as re-read, or the one the
    /// broker runs with). A file that fails keeps its previous version; each failure is logged
    /// at error level and returned.
    pub fn reload(&self, cfg: &Config) -> Reloaded {
        let mut errors = Vec::new();
        let mut keep = |what: &str, e: String| {
            log::error!("reload: {what}: {e}; keeping the previous version");
            errors.push(format!("{what}: {e}"));
        };
        let passwords = load_passwords(cfg).unwrap_or_else(|e| {
            keep("password_file", e);
            self.passwords.clone()
        });
        let acl = load_acl(cfg).unwrap_or_else(|e| {
            keep("acl_file", e);
            self.acl.clone()
        });
        let jwt = load_jwt(cfg).unwrap_or_else(|e| {
            keep("jwt keys", e);
            self.jwt.clone()
        });
        Reloaded {
            security: Security {
                passwords,
                acl,
                jwt,
                allow_anonymous: cfg.allow_anonymous,
            },
            errors,
        }
    }

    /// For the control thread every few seconds: `Some(new)` when the JWT key file changed on
    /// disk and loaded; a changed file that fails to load is logged and the old keys stay.
    pub fn poll(&self) -> Option<Security> {
        let jwt = self.jwt.as_ref()?;
        if !jwt.changed_on_disk() {
            return None;
        }
        match jwt.reload() {
            Ok(v) => {
                log::info!(
                    "jwt keys reloaded from {}",
                    v.config().source.path().display()
                );
                Some(Security {
                    jwt: Some(Arc::new(v)),
                    ..self.clone()
                })
            }
            Err(e) => {
                log::error!("jwt keys changed on disk but did not load: {e}; keeping the old keys");
                None
            }
        }
    }

    /// Lines for the start-up log: what is enforced, and how to add a user.
    pub fn describe(&self, cfg: &Config) -> Vec<String> {
        let mut out = Vec::new();
        match (&self.passwords, &cfg.password_file) {
            (Some(f), Some(p)) => out.push(format!(
                "passwords: {} ({} users; add one with `ringmq passwd {} USER`)",
                p.display(),
                f.len(),
                p.display()
            )),
            _ => out.push(
                "passwords: none (create a file with `ringmq passwd -c FILE USER` and set \
                 password_file)"
                    .into(),
            ),
        }
        match &cfg.acl_file {
            Some(p) if self.acl.is_enforcing() => out.push(format!(
                "acl: {} ({} rules)",
                p.display(),
                self.acl.rule_count()
            )),
            _ => out.push("acl: none (everything allowed except publishing under $SYS)".into()),
        }
        if let Some(j) = &self.jwt {
            out.push(format!(
                "jwt: tokens verified with {} ({} keys)",
                j.config().source.path().display(),
                j.key_count()
            ));
        }
        out.push(
            match self.allow_anonymous {
                None => "anonymous clients: allowed on loopback listeners only",
                Some(true) => "anonymous clients: allowed on every listener",
                Some(false) => "anonymous clients: refused",
            }
            .into(),
        );
        out
    }

    /// Are clients without credentials allowed on this listener?
    pub fn anonymous_allowed(&self, loopback_listener: bool) -> bool {
        self.allow_anonymous.unwrap_or(loopback_listener)
    }

    /// The same, with the listener's own setting first (see `listeners::ListenerConfig`).
    fn anonymous_allowed_on(&self, c: &ConnectAuth<'_>) -> bool {
        c.listener_allow_anonymous
            .unwrap_or_else(|| self.anonymous_allowed(c.loopback_listener))
    }

    /// Decide a CONNECT (after any enhanced authentication, which has its own path). Cheap
    /// unless it returns [`ConnectCheck::Derive`] (token verification is a signature check,
    /// tens of microseconds for RSA; it runs inline).
    pub fn check_connect(&self, cache: &mut VerifyCache, c: ConnectAuth<'_>) -> ConnectCheck {
        use ConnectCheck::Done;
        if let (Some(jwt), Some(pw)) = (&self.jwt, c.password) {
            if looks_like_jwt(pw) {
                return Done(match jwt.verify(pw, c.username, c.client_id) {
                    Ok(g) => Ok(Authenticated {
                        username: g.username,
                        verified: true,
                        expires_at_s: g.expires_at_s,
                        claim_acl: g.acl,
                    }),
                    Err(e) => {
                        log::debug!("client {:?}: {e}", c.client_id);
                        Err(Refusal::BadCredentials)
                    }
                });
            }
        }
        let Some(user) = c.username else {
            return Done(if self.anonymous_allowed_on(&c) {
                Ok(Authenticated::default())
            } else {
                Err(Refusal::NotAuthorized)
            });
        };
        match (&self.passwords, c.password) {
            (Some(_), None) => Done(Err(Refusal::BadCredentials)),
            (Some(file), Some(pw)) => {
                if cache.hit(file, user, pw) {
                    return Done(Ok(Authenticated {
                        username: Some(user.into()),
                        verified: true,
                        ..Authenticated::default()
                    }));
                }
                if !file.contains(user) {
                    return Done(Err(Refusal::BadCredentials));
                }
                ConnectCheck::Derive(PasswordJob {
                    file: file.clone(),
                    user: user.into(),
                    password: pw.to_vec(),
                })
            }
            // Only JWT is configured and this was not a token.
            (None, _) if self.jwt.is_some() => Done(Err(Refusal::BadCredentials)),
            // No password mechanism: Mosquitto takes the name on trust when anonymous access
            // is allowed, and refuses the client otherwise.
            (None, _) => Done(if self.anonymous_allowed_on(&c) {
                Ok(Authenticated {
                    username: Some(user.into()),
                    verified: false,
                    ..Authenticated::default()
                })
            } else {
                Err(Refusal::NotAuthorized)
            }),
        }
    }
}

#[cfg(test)]
#[path = "security_tests.rs"]
mod tests;
