//! JWT on CONNECT, EMQX-style: the client sends a signed token as its password.
//!
//! Owns: the verification keys (an HMAC secret file, a PEM public key file or a JWKS file),
//! which algorithms they may verify, checking a token's signature, `exp`, `nbf` and optional
//! audience, binding it to the CONNECT user name, and returning what the broker acts on: the
//! user name to use, the expiry (the broker disconnects the client then), and the ACL claim
//! compiled for this connection ([`ClaimAcl`]). Never: accepts `alg: none` or an algorithm
//! outside the configured family (an RSA public key is never used as an HMAC secret), panics on
//! a token or key file, or watches files from the data path: [`JwtVerifier::changed_on_disk`]
//! is an mtime comparison for the control thread to poll, and [`JwtVerifier::reload`] builds a
//! new verifier to swap in.

use super::jwt_acl::ClaimAcl;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Where the verification key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// HS256/384/512: the file's bytes are the secret (one trailing line break is dropped).
    Secret(PathBuf),
    /// RS*/PS* (RSA) or ES256/ES384 (EC) public key in PEM.
    PublicKey(PathBuf),
    /// A JSON Web Key Set; a token's `kid` picks the key (a set of one needs no `kid`).
    Jwks(PathBuf),
}

impl KeySource {
    pub fn path(&self) -> &Path {
        match self {
            KeySource::Secret(p) | KeySource::PublicKey(p) | KeySource::Jwks(p) => p,
        }
    }
}

/// What to verify and what to take from a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    pub source: KeySource,
    /// Accepted `alg` values; empty = every algorithm of the key's family.
    pub algorithms: Vec<Algorithm>,
    /// Claim that names the user (e.g. `username`, or `sub`). If set and the client sent a
    /// user name, they must be equal; the claim's value is the user name the broker uses.
    pub username_claim: Option<String>,
    /// Claim carrying EMQX-form ACL rules (e.g. `acl`); absent in a token = no token rules.
    pub acl_claim: Option<String>,
    /// Required `aud`, if any.
    pub audience: Option<String>,
    /// Refuse tokens without `exp` (a token that never expires is a password that cannot be
    /// revoked). Default true.
    pub require_exp: bool,
    /// Clock skew tolerated on `exp` and `nbf`, seconds.
    pub leeway_s: u64,
}

impl JwtConfig {
    pub fn new(source: KeySource) -> JwtConfig {
        JwtConfig {
            source,
            algorithms: Vec::new(),
            username_claim: None,
            acl_claim: None,
            audience: None,
            require_exp: true,
            leeway_s: 0,
        }
    }
}

/// Why a token or a key file was refused (the broker logs it and answers 0x86 / v3 code 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtError(pub String);

impl std::fmt::Display for JwtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for JwtError {}

fn err(s: impl Into<String>) -> JwtError {
    JwtError(s.into())
}

/// A verified token.
#[derive(Debug, Clone)]
pub struct JwtGrant {
    /// The user name to run the session as: the username claim if configured, else the
    /// CONNECT user name.
    pub username: Option<String>,
    /// `exp`, Unix seconds: disconnect the client then (v5: DISCONNECT 0xA0, "Maximum connect
    /// time", the code MQTT 5 has for exactly this).
    pub expires_at_s: Option<u64>,
    /// The ACL claim compiled for this connection, checked before the file ACL.
    pub acl: Option<ClaimAcl>,
}

const HMAC: &[Algorithm] = &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
const RSA: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];
const EC: &[Algorithm] = &[Algorithm::ES256, Algorithm::ES384];

struct Key {
    kid: Option<String>,
    key: DecodingKey,
    /// The algorithms this key may verify.
    family: &'static [Algorithm],
}

/// Verifies tokens with one loaded key source. Immutable and `Send + Sync`: shared as an `Arc`,
/// replaced whole when [`JwtVerifier::reload`] succeeds.
pub struct JwtVerifier {
    cfg: JwtConfig,
    keys: Vec<Key>,
    mtime: Option<SystemTime>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("source", &self.cfg.source)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn load_keys(source: &KeySource) -> Result<Vec<Key>, JwtError> {
    let path = source.path();
    let bytes = std::fs::read(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let at = |e: &dyn std::fmt::Display| err(format!("{}: {e}", path.display()));
    match source {
        KeySource::Secret(_) => {
            let secret = bytes
                .strip_suffix(b"\n")
                .map(|s| s.strip_suffix(b"\r").unwrap_or(s))
                .unwrap_or(&bytes);
            if secret.len() < 32 {
                return Err(at(&"an HMAC secret must be at least 32 bytes"));
            }
            Ok(vec![Key {
                kid: None,
                key: DecodingKey::from_secret(secret),
                family: HMAC,
            }])
        }
        KeySource::PublicKey(_) => {
            let (key, family) = if let Ok(k) = DecodingKey::from_rsa_pem(&bytes) {
                (k, RSA)
            } else if let Ok(k) = DecodingKey::from_ec_pem(&bytes) {
                (k, EC)
            } else {
                return Err(at(&"not an RSA or EC public key in PEM"));
            };
            Ok(vec![Key {
                kid: None,
                key,
                family,
            }])
        }
        KeySource::Jwks(_) => {
            let set: JwkSet = serde_json::from_slice(&bytes).map_err(|e| at(&e))?;
            let mut keys = Vec::new();
            for jwk in &set.keys {
                use jsonwebtoken::jwk::AlgorithmParameters as P;
                let family = match &jwk.algorithm {
                    P::RSA(_) => RSA,
                    P::EllipticCurve(_) => EC,
                    // Symmetric keys in a JWKS would let anyone holding the set sign tokens.
                    _ => continue,
                };
                let key = DecodingKey::from_jwk(jwk).map_err(|e| at(&e))?;
                keys.push(Key {
                    kid: jwk.common.key_id.clone(),
                    key,
                    family,
                });
            }
            if keys.is_empty() {
                return Err(at(&"no RSA or EC keys in the key set"));
            }
            Ok(keys)
        }
    }
}

/// Does a CONNECT password look like a JWT (three base64url segments, a JSON header)? Lets the
/// broker try JWT only for tokens and the password file for everything else.
pub fn looks_like_jwt(password: &[u8]) -> bool {
    password.starts_with(b"eyJ")
        && password.iter().filter(|&&b| b == b'.').count() == 2
        && password
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
}

impl JwtVerifier {
    /// Load the key source. Fails on an unreadable or malformed key, or on configured
    /// algorithms outside the key's family.
    pub fn load(cfg: JwtConfig) -> Result<JwtVerifier, JwtError> {
        let keys = load_keys(&cfg.source)?;
        for a in &cfg.algorithms {
            if !keys.iter().any(|k| k.family.contains(a)) {
                return Err(err(format!(
                    "jwt_algorithms: {a:?} cannot be verified with the key in {}",
                    cfg.source.path().display()
                )));
            }
        }
        let mtime = mtime(cfg.source.path());
        Ok(JwtVerifier { cfg, keys, mtime })
    }

    pub fn config(&self) -> &JwtConfig {
        &self.cfg
    }

    /// Keys loaded (1 for a secret or PEM file).
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Has the key file's modification time changed since it was loaded? One `stat`; for the
    /// control thread to poll (every few seconds), never per CONNECT.
    pub fn changed_on_disk(&self) -> bool {
        mtime(self.cfg.source.path()) != self.mtime
    }

    /// A new verifier from the file as it is now (the caller keeps the old one on error).
    pub fn reload(&self) -> Result<JwtVerifier, JwtError> {
        JwtVerifier::load(self.cfg.clone())
    }

    /// Verify the CONNECT password as a token for this client.
    pub fn verify(
        &self,
        password: &[u8],
        username: Option<&str>,
        client_id: &str,
    ) -> Result<JwtGrant, JwtError> {
        let token = std::str::from_utf8(password).map_err(|_| err("token is not UTF-8"))?;
        let header = jsonwebtoken::decode_header(token).map_err(|e| err(format!("token: {e}")))?;
        let key = match &header.kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None if self.keys.len() == 1 => self.keys.first(),
            None => return Err(err("token has no kid and the key set has several keys")),
        }
        .ok_or_else(|| err("token's kid names no known key"))?;
        let allowed = |a: &Algorithm| {
            key.family.contains(a)
                && (self.cfg.algorithms.is_empty() || self.cfg.algorithms.contains(a))
        };
        if !allowed(&header.alg) {
            return Err(err(format!(
                "token algorithm {:?} not accepted",
                header.alg
            )));
        }
        let mut v = Validation::new(header.alg);
        v.algorithms = vec![header.alg];
        v.leeway = self.cfg.leeway_s;
        v.validate_exp = true;
        v.validate_nbf = true;
        match &self.cfg.audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        let required: &[&str] = if self.cfg.require_exp { &["exp"] } else { &[] };
        v.set_required_spec_claims(required);
        let data = jsonwebtoken::decode::<Value>(token, &key.key, &v)
            .map_err(|e| err(format!("token refused: {e}")))?;
        let claims = data.claims;
        let expires_at_s = match claims.get("exp") {
            None => None,
            Some(e) => Some(
                e.as_u64()
                    .or_else(|| e.as_f64().map(|f| f.max(0.0) as u64))
                    .ok_or_else(|| err("exp is not a number"))?,
            ),
        };
        let username = match &self.cfg.username_claim {
            None => username.map(String::from),
            Some(name) => {
                let claimed = claims
                    .get(name)
                    .and_then(Value::as_str)
                    .ok_or_else(|| err(format!("token has no string claim {name:?}")))?;
                if username.is_some_and(|u| u != claimed) {
                    return Err(err(format!(
                        "user name does not match the token's {name:?}"
                    )));
                }
                Some(claimed.to_string())
            }
        };
        let acl = match self.cfg.acl_claim.as_deref().and_then(|c| claims.get(c)) {
            None => None,
            Some(claim) => Some(
                ClaimAcl::from_claim(claim, username.as_deref(), client_id)
                    .map_err(|e| err(format!("token ACL claim: {e}")))?,
            ),
        };
        Ok(JwtGrant {
            username,
            expires_at_s,
            acl,
        })
    }
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
