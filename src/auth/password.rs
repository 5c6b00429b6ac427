//! Password files in Mosquitto's `password_file` format, read unchanged, and the verification
//! cache that keeps a reconnect storm from redoing key derivation.
//!
//! Owns: parsing a password file into per-user hashes, verifying a CONNECT password against them
//! in constant time, producing new `$7$` / `$argon2id$` entries for `ringmq passwd`, and the
//! bounded cache of successful verifications. Never: panics or unwraps on file contents (every
//! bad line is a [`PasswordError`] naming the line), keeps a password or a fast digest of one in
//! memory (the cache holds keyed HMACs only), or does I/O other than reading the file it is asked
//! to load.
//!
//! Formats (one `user:hash` per line; `#` comments and blank lines are skipped):
//! - `$7$ITERATIONS$SALT$HASH`: PBKDF2-HMAC-SHA512, 64-byte key. Mosquitto 2.0 writes 12-byte
//!   salts and 101 iterations; 2.1 writes 64-byte salts. Any salt length is read.
//! - `$6$SALT$HASH`: one round of SHA-512 over the password bytes then the salt bytes (Mosquitto
//!   1.x's default; `mosquitto_passwd -H sha512` still writes it). Weak: accepted, never written.
//! - `$argon2id$v=19$m=..,t=..,p=..$SALT$HASH`: a PHC string (Mosquitto 2.1, `ringmq passwd`).
//!
//! Key derivation is deliberately slow (argon2id at the defaults is tens of milliseconds), so the
//! broker must not run [`PasswordFile::verify`] on a shard's reactor thread for every CONNECT:
//! ask the [`VerifyCache`] first (cheap), and derive off the reactor on a miss.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use subtle::ConstantTimeEq;

/// Standard alphabet, padding optional: OpenSSL's BIO decoder (Mosquitto's) is that lenient.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
/// Padded standard base64, as `mosquitto_passwd` writes it.
const B64_OUT: GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// PBKDF2 iterations `ringmq passwd --hash pbkdf2` writes by default. Mosquitto writes 101,
/// which is cheap to brute-force; 10 000 costs about 5 ms per verification here (the cache makes
/// that once per user and shard) and Mosquitto 2.0 and 2.1 both read it.
pub const PBKDF2_ITERATIONS_DEFAULT: u32 = 10_000;
/// Salt length for new `$7$` entries: 12 bytes, the only length Mosquitto 2.0 accepts.
pub const PBKDF2_SALT_BYTES: usize = 12;
/// Upper bound on iterations read from a file: a typo of extra zeros would otherwise make each
/// verification take minutes on a shard's CPU.
pub const PBKDF2_ITERATIONS_MAX: u32 = 10_000_000;
/// Upper bound on an argon2 entry's memory cost (KiB) read from a file: 1 GiB per verification
/// is already more than a broker should spend.
pub const ARGON2_M_COST_MAX: u32 = 1 << 20;
/// Upper bound on an argon2 entry's time cost read from a file.
pub const ARGON2_T_COST_MAX: u32 = 64;
/// Longest user name or hash field Mosquitto accepts (it warns and skips longer ones).
const FIELD_BYTES_MAX: usize = 65_535;

/// One user's stored hash.
#[derive(Clone)]
enum Hash {
    Sha512 {
        salt: Box<[u8]>,
        hash: [u8; 64],
    },
    Pbkdf2Sha512 {
        iterations: u32,
        salt: Box<[u8]>,
        hash: [u8; 64],
    },
    /// The PHC string, validated at load; parsed again (cheaply) at each verification because
    /// `PasswordHash` borrows its text.
    Argon2(Box<str>),
}

impl std::fmt::Debug for Hash {
    // Never print hash material in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Hash::Sha512 { .. } => "$6$",
            Hash::Pbkdf2Sha512 { .. } => "$7$",
            Hash::Argon2(_) => "$argon2$",
        })
    }
}

/// A line of a password file that cannot be used (see [`super::FileError`]).
pub type PasswordError = super::FileError;

/// Every loaded file gets a fresh generation, so a [`VerifyCache`] can tell it was reloaded.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// A parsed password file. Immutable and `Send + Sync`: one `Arc<PasswordFile>` is shared by all
/// shards and swapped whole on reload.
#[derive(Debug)]
pub struct PasswordFile {
    users: HashMap<Box<str>, Hash>,
    generation: u64,
}

fn bad(line: usize, reason: impl Into<String>) -> PasswordError {
    PasswordError {
        path: None,
        line,
        reason: reason.into(),
    }
}

impl PasswordFile {
    /// Read and parse `path`; errors name the file and line.
    pub fn load(path: &Path) -> Result<PasswordFile, PasswordError> {
        let text = std::fs::read_to_string(path).map_err(|e| PasswordError {
            path: Some(path.to_path_buf()),
            line: 0,
            reason: format!("cannot read password file: {e}"),
        })?;
        PasswordFile::parse(&text).map_err(|mut e| {
            e.path = Some(path.to_path_buf());
            e
        })
    }

    /// Parse the text of a password file.
    pub fn parse(text: &str) -> Result<PasswordFile, PasswordError> {
        let mut users = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let Some((user, hash)) = split_line(raw).map_err(|r| bad(n, r))? else {
                continue;
            };
            let parsed = parse_hash(hash).map_err(|r| bad(n, format!("user {user:?}: {r}")))?;
            if users.insert(Box::from(user), parsed).is_some() {
                return Err(bad(n, format!("user {user:?} appears twice")));
            }
        }
        Ok(PasswordFile {
            users,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
        })
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The user names, in no particular order.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(|u| &**u)
    }

    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// Which load this is; changes on every reload.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Does `password` match `user`'s entry? Slow by design (key derivation); constant-time in
    /// the comparison. An unknown user is simply `false`.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        match self.users.get(user) {
            Some(h) => verify_hash(h, password),
            None => false,
        }
    }
}

/// Split one line into (user, hash field), or `None` for comments and blank lines.
/// Mosquitto trims blanks around both fields and ignores anything after a second `:`.
pub(crate) fn split_line(raw: &str) -> Result<Option<(&str, &str)>, String> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let Some((user, rest)) = line.split_once(':') else {
        return Err("expected user:hash (no ':' on this line)".into());
    };
    let user = user.trim();
    let hash = rest.split(':').next().unwrap_or("").trim();
    if user.is_empty() {
        return Err("empty user name".into());
    }
    if user.len() > FIELD_BYTES_MAX || hash.len() > FIELD_BYTES_MAX {
        return Err("user name or hash longer than 65535 bytes".into());
    }
    if hash.is_empty() {
        return Err(format!("user {user:?}: missing password hash"));
    }
    Ok(Some((user, hash)))
}

fn decode_b64(what: &str, s: &str) -> Result<Vec<u8>, String> {
    B64.decode(s)
        .map_err(|e| format!("{what} is not valid base64 ({e})"))
}

fn decode_digest(s: &str) -> Result<[u8; 64], String> {
    let v = decode_b64("hash", s)?;
    <[u8; 64]>::try_from(v.as_slice())
        .map_err(|_| format!("hash must be 64 bytes (SHA-512), got {}", v.len()))
}

fn parse_hash(field: &str) -> Result<Hash, String> {
    if field.starts_with("$argon2") {
        return parse_argon2(field);
    }
    let Some(body) = field.strip_prefix('$') else {
        return Err(
            "unhashed password (run `ringmq passwd` or `mosquitto_passwd -U` on the file)".into(),
        );
    };
    let parts: Vec<&str> = body.split('$').collect();
    match parts.as_slice() {
        ["6", salt, hash] => {
            let salt = decode_b64("salt", salt)?;
            if salt.is_empty() {
                return Err("empty salt".into());
            }
            Ok(Hash::Sha512 {
                salt: salt.into(),
                hash: decode_digest(hash)?,
            })
        }
        ["7", iterations, salt, hash] => {
            let iterations: u32 = iterations
                .parse()
                .map_err(|_| format!("iteration count {iterations:?} is not a number"))?;
            if iterations == 0 || iterations > PBKDF2_ITERATIONS_MAX {
                return Err(format!(
                    "iteration count {iterations} outside 1..={PBKDF2_ITERATIONS_MAX}"
                ));
            }
            let salt = decode_b64("salt", salt)?;
            if salt.is_empty() {
                return Err("empty salt".into());
            }
            Ok(Hash::Pbkdf2Sha512 {
                iterations,
                salt: salt.into(),
                hash: decode_digest(hash)?,
            })
        }
        ["6", ..] => Err("$6$ entries have the form $6$salt$hash".into()),
        ["7", ..] => Err("$7$ entries have the form $7$iterations$salt$hash".into()),
        [kind, ..] => Err(format!(
            "unknown hash type ${kind}$ (expected $6$, $7$ or $argon2id$)"
        )),
        [] => Err("empty hash".into()),
    }
}

fn parse_argon2(field: &str) -> Result<Hash, String> {
    let phc = argon2::PasswordHash::new(field).map_err(|e| format!("bad argon2 hash: {e}"))?;
    argon2::Algorithm::try_from(phc.algorithm).map_err(|e| format!("bad argon2 hash: {e}"))?;
    let params = argon2::Params::try_from(&phc).map_err(|e| format!("bad argon2 hash: {e}"))?;
    if params.m_cost() > ARGON2_M_COST_MAX || params.t_cost() > ARGON2_T_COST_MAX {
        return Err(format!(
            "argon2 cost m={} t={} above the limits m<={ARGON2_M_COST_MAX} t<={ARGON2_T_COST_MAX}",
            params.m_cost(),
            params.t_cost()
        ));
    }
    if phc.hash.is_none() {
        return Err("argon2 hash has no hash part".into());
    }
    Ok(Hash::Argon2(field.into()))
}

fn verify_hash(h: &Hash, password: &[u8]) -> bool {
    match h {
        Hash::Sha512 { salt, hash } => {
            let mut d = Sha512::new();
            d.update(password);
            d.update(salt);
            let got: [u8; 64] = d.finalize().into();
            got.ct_eq(hash).into()
        }
        Hash::Pbkdf2Sha512 {
            iterations,
            salt,
            hash,
        } => {
            let mut got = [0u8; 64];
            pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut got);
            got.ct_eq(hash).into()
        }
        Hash::Argon2(phc) => {
            use argon2::PasswordVerifier;
            // Validated at load; a parse failure here can only mean "no match".
            match argon2::PasswordHash::new(phc) {
                // The crate compares in constant time.
                Ok(parsed) => argon2::Argon2::default()
                    .verify_password(password, &parsed)
                    .is_ok(),
                Err(_) => false,
            }
        }
    }
}

/// A new `$7$` hash field (PBKDF2-SHA512, 12-byte random salt) that Mosquitto 2.0 and 2.1 read.
pub fn hash_pbkdf2(password: &[u8], iterations: u32) -> String {
    let salt: [u8; PBKDF2_SALT_BYTES] = rand::random();
    let mut key = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(password, &salt, iterations, &mut key);
    format!(
        "$7${iterations}${}${}",
        B64_OUT.encode(salt),
        B64_OUT.encode(key)
    )
}

/// A new `$argon2id$` hash field with the argon2 crate's defaults (19 MiB, t=2, p=1: OWASP's
/// recommendation) and a random salt.
pub fn hash_argon2id(password: &[u8]) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Successful verifications, so a client that reconnects with the same password costs one HMAC
/// instead of a key derivation. One per shard (not shared: no lock, no contention on CONNECT).
///
/// Keyed by user name; the value is HMAC-SHA256 of the password under a random key made when the
/// cache is, so a memory dump does not yield a fast-to-attack digest. Bounded: at `capacity`
/// users the oldest entry goes (FIFO; a storm reconnects the same users, so recency buys
/// little). Emptied when the password file it was filled from is replaced (reload), so a changed
/// or deleted password never passes from the cache. Failed verifications are never cached.
pub struct VerifyCache {
    key: [u8; 32],
    generation: u64,
    capacity: usize,
    entries: HashMap<Box<str>, [u8; 32]>,
    order: VecDeque<Box<str>>,
}

/// Default [`VerifyCache`] capacity per shard: 64 Ki users at ~100 bytes each is ~6 MiB.
pub const VERIFY_CACHE_USERS_DEFAULT: usize = 65_536;

impl VerifyCache {
    pub fn new(capacity: usize) -> VerifyCache {
        VerifyCache {
            key: rand::random(),
            generation: 0,
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn digest(&self, password: &[u8]) -> [u8; 32] {
        let mut m = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(m) => m,
            // HMAC takes keys of any length; unreachable, but never panic.
            Err(_) => return Sha256::digest(password).into(),
        };
        m.update(password);
        m.finalize().into_bytes().into()
    }

    fn sync(&mut self, file: &PasswordFile) {
        if self.generation != file.generation {
            self.entries.clear();
            self.order.clear();
            self.generation = file.generation;
        }
    }

    /// `true` if this exact password was verified for `user` against this load of the file.
    /// `false` means "not known": derive (off the reactor) and [`insert`](Self::insert) on success.
    pub fn hit(&mut self, file: &PasswordFile, user: &str, password: &[u8]) -> bool {
        self.sync(file);
        let d = self.digest(password);
        match self.entries.get(user) {
            Some(stored) => stored.ct_eq(&d).into(),
            None => false,
        }
    }

    /// Record a successful verification.
    pub fn insert(&mut self, file: &PasswordFile, user: &str, password: &[u8]) {
        self.sync(file);
        let d = self.digest(password);
        if let Some(v) = self.entries.get_mut(user) {
            *v = d;
            return;
        }
        while self.entries.len() >= self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.entries.remove(&old);
                }
                None => break,
            }
        }
        let user: Box<str> = user.into();
        self.order.push_back(user.clone());
        self.entries.insert(user, d);
    }

    /// Cache first, then derive inline. For tests and the control plane; a shard should split
    /// this into [`hit`](Self::hit), an off-reactor [`PasswordFile::verify`], and
    /// [`insert`](Self::insert).
    pub fn verify(&mut self, file: &PasswordFile, user: &str, password: &[u8]) -> bool {
        if self.hit(file, user, password) {
            return true;
        }
        let ok = file.verify(user, password);
        if ok {
            self.insert(file, user, password);
        }
        ok
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
#[path = "password_tests.rs"]
mod tests;
