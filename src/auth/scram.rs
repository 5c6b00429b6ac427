//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as an MQTT 5 authentication method: the password never
//! crosses the wire and the broker stores only salted keys; the client learns the broker knew
//! the key too (server signature in the final message).

use super::{AuthExchange, AuthStep, Authenticator};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

type HmacSha256 = Hmac<Sha256>;

/// RFC 7677 recommends at least 4096.
pub const ITERATIONS: u32 = 4096;

/// What the broker keeps per user: never the password.
#[derive(Debug, Clone)]
pub struct ScramCredentials {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut m = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    m.update(msg);
    m.finalize().into_bytes().into()
}

impl ScramCredentials {
    /// Derive credentials from a password with a fresh random salt.
    pub fn derive(password: &str) -> Self {
        let salt: [u8; 16] = rand::random();
        Self::derive_with(password, &salt, ITERATIONS)
    }

    pub fn derive_with(password: &str, salt: &[u8], iterations: u32) -> Self {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        ScramCredentials {
            salt: salt.to_vec(),
            iterations,
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        }
    }
}

pub struct ScramSha256 {
    users: Arc<HashMap<String, ScramCredentials>>,
}

impl ScramSha256 {
    pub fn new(users: HashMap<String, ScramCredentials>) -> Self {
        ScramSha256 {
            users: Arc::new(users),
        }
    }

    /// Start with a fixed server nonce (tests against RFC 7677's vector).
    fn start_with_nonce(
        &self,
        data: Option<&[u8]>,
        server_nonce: &str,
    ) -> (Option<Box<dyn AuthExchange>>, AuthStep) {
        let Some(first) = data.and_then(|d| std::str::from_utf8(d).ok()) else {
            return (None, AuthStep::Fail(0x87));
        };
        // gs2 header: "n,," (no channel binding) or "y,," (client could but thinks we can't);
        // "p=" asks for channel binding, which MQTT over TCP does not offer.
        let Some((gs2, bare)) = first
            .strip_prefix("n,,")
            .map(|b| ("n,,", b))
            .or_else(|| first.strip_prefix("y,,").map(|b| ("y,,", b)))
        else {
            return (None, AuthStep::Fail(0x87));
        };
        let mut user = None;
        let mut client_nonce = None;
        for attr in bare.split(',') {
            if let Some(v) = attr.strip_prefix("n=") {
                user = Some(v.replace("=2C", ",").replace("=3D", "="));
            } else if let Some(v) = attr.strip_prefix("r=") {
                client_nonce = Some(v.to_string());
            }
        }
        let (Some(user), Some(client_nonce)) = (user, client_nonce) else {
            return (None, AuthStep::Fail(0x87));
        };
        let Some(cred) = self.users.get(&user).cloned() else {
            return (None, AuthStep::Fail(0x86));
        };
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&cred.salt),
            cred.iterations
        );
        let exchange = Exchange {
            cred,
            gs2: gs2.to_string(),
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            nonce,
            done: false,
        };
        (
            Some(Box::new(exchange)),
            AuthStep::Continue(Bytes::from(server_first)),
        )
    }
}

impl Authenticator for ScramSha256 {
    fn method(&self) -> &'static str {
        "SCRAM-SHA-256"
    }

    fn start(&self, data: Option<&[u8]>) -> (Option<Box<dyn AuthExchange>>, AuthStep) {
        let raw: [u8; 18] = rand::random();
        let nonce = B64.encode(raw);
        self.start_with_nonce(data, &nonce)
    }
}

struct Exchange {
    cred: ScramCredentials,
    gs2: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    done: bool,
}

impl AuthExchange for Exchange {
    fn step(&mut self, data: Option<&[u8]>) -> AuthStep {
        if self.done {
            return AuthStep::Fail(0x82);
        }
        self.done = true;
        let Some(fin) = data.and_then(|d| std::str::from_utf8(d).ok()) else {
            return AuthStep::Fail(0x87);
        };
        let Some((without_proof, proof_b64)) = fin.rsplit_once(",p=") else {
            return AuthStep::Fail(0x87);
        };
        let mut channel = None;
        let mut nonce = None;
        for attr in without_proof.split(',') {
            if let Some(v) = attr.strip_prefix("c=") {
                channel = Some(v);
            } else if let Some(v) = attr.strip_prefix("r=") {
                nonce = Some(v);
            }
        }
        if channel != Some(&B64.encode(self.gs2.as_bytes())) || nonce != Some(self.nonce.as_str()) {
            return AuthStep::Fail(0x87);
        }
        let Ok(proof) = B64.decode(proof_b64) else {
            return AuthStep::Fail(0x87);
        };
        if proof.len() != 32 {
            return AuthStep::Fail(0x86);
        }
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let client_signature = hmac(&self.cred.stored_key, auth_message.as_bytes());
        let mut client_key = [0u8; 32];
        for i in 0..32 {
            client_key[i] = proof[i] ^ client_signature[i];
        }
        let stored: [u8; 32] = Sha256::digest(client_key).into();
        // Constant-time comparison: don't leak how many bytes of the proof were right.
        let diff = stored
            .iter()
            .zip(self.cred.stored_key.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return AuthStep::Fail(0x86);
        }
        let server_signature = hmac(&self.cred.server_key, auth_message.as_bytes());
        AuthStep::Success(Some(Bytes::from(format!(
            "v={}",
            B64.encode(server_signature)
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc7677() -> ScramSha256 {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let mut users = HashMap::new();
        users.insert(
            "user".to_string(),
            ScramCredentials::derive_with("pencil", &salt, 4096),
        );
        ScramSha256::new(users)
    }

    #[test]
    fn rfc7677_test_vector() {
        let scram = rfc7677();
        let (ex, step) = scram.start_with_nonce(
            Some(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"),
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        );
        assert_eq!(
            step,
            AuthStep::Continue(Bytes::from_static(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
            ))
        );
        let mut ex = ex.expect("exchange");
        let fin = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            ex.step(Some(fin)),
            AuthStep::Success(Some(Bytes::from_static(
                b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
            )))
        );
    }

    #[test]
    fn wrong_proof_unknown_user_and_garbage_are_refused() {
        let scram = rfc7677();
        let (ex, _) = scram.start_with_nonce(Some(b"n,,n=user,r=abc"), "xyz");
        let mut ex = ex.expect("exchange");
        let bad = format!("c=biws,r=abcxyz,p={}", B64.encode([0u8; 32]));
        assert_eq!(ex.step(Some(bad.as_bytes())), AuthStep::Fail(0x86));
        assert!(matches!(
            scram.start(Some(b"n,,n=nobody,r=abc")),
            (None, AuthStep::Fail(0x86))
        ));
        assert!(matches!(
            scram.start(Some(b"p=tls-unique,,n=user,r=a")),
            (None, AuthStep::Fail(_))
        ));
        assert!(matches!(scram.start(None), (None, AuthStep::Fail(_))));
        let (ex, _) = scram.start_with_nonce(Some(b"n,,n=user,r=abc"), "xyz");
        let mut ex = ex.expect("exchange");
        assert_eq!(
            ex.step(Some(b"c=biws,r=WRONG,p=AAAA")),
            AuthStep::Fail(0x87)
        );
    }
}
