//! Who may use the admin API: admin users (a Mosquitto-format file of argon2id hashes, written
//! by `ringmq admin add-user`), bearer tokens handed out by `POST /api/v1/login`, and the limit
//! on failed logins per address.
//!
//! Owns: the tokens (random, in memory only, forgotten at restart, kept by their SHA-256 so the
//! map's lookups reveal nothing about a token's bytes through timing) and the failure counts.
//! Never: keeps a password or a verified password's result; every login verifies the hash
//! again (slow by design), which is why failures are rate-limited.

use crate::auth::password::PasswordFile;
use crate::limits;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The admin users file, re-read when it changes on disk (one `stat` per API call), so
/// `ringmq admin add-user` opens a running broker's API without a restart.
pub struct AdminUsers {
    pub path: PathBuf,
    loaded: Mutex<Option<(Stamp, Arc<PasswordFile>)>>,
}

/// What tells that the file changed: modification time, size and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp(Option<SystemTime>, u64, u64);

fn stamp(path: &std::path::Path) -> std::io::Result<Option<Stamp>> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(Stamp(m.modified().ok(), m.len(), m.ino()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl AdminUsers {
    pub fn new(path: PathBuf) -> AdminUsers {
        AdminUsers {
            path,
            loaded: Mutex::new(None),
        }
    }

    /// The users as the file is now; a missing file has none. A file that does not parse is an
    /// error (the API stays closed rather than guessing).
    pub fn current(&self) -> Result<Arc<PasswordFile>, String> {
        let err = |e: std::io::Error| format!("admin users file {}: {e}", self.path.display());
        let Some(now) = stamp(&self.path).map_err(err)? else {
            return PasswordFile::parse("")
                .map(Arc::new)
                .map_err(|e| e.to_string());
        };
        let mut loaded = self.loaded.lock().map_err(|_| "admin users poisoned")?;
        if let Some((s, f)) = &*loaded {
            if *s == now {
                return Ok(f.clone());
            }
        }
        let f = Arc::new(PasswordFile::load(&self.path).map_err(|e| e.to_string())?);
        *loaded = Some((now, f.clone()));
        Ok(f)
    }

    pub fn count(&self) -> Result<usize, String> {
        self.current().map(|f| f.len())
    }
}

/// A logged-in admin's token.
#[derive(Debug, Clone)]
pub struct Token {
    pub user: String,
    pub expires: Instant,
}

/// Tokens by SHA-256 of their text.
#[derive(Default)]
pub struct Tokens {
    by_hash: HashMap<[u8; 32], Token>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// A new random token (256 bits, hex) for `user`, valid for `ttl`.
    pub fn issue(&mut self, user: &str, ttl: Duration) -> String {
        let now = Instant::now();
        self.by_hash.retain(|_, t| t.expires > now);
        if self.by_hash.len() >= limits::HTTP_TOKENS_MAX {
            // Past the bound the soonest to expire goes: a login flood cannot grow the map.
            if let Some(k) = self
                .by_hash
                .iter()
                .min_by_key(|(_, t)| t.expires)
                .map(|(k, _)| *k)
            {
                self.by_hash.remove(&k);
            }
        }
        let bytes: [u8; 32] = rand::random();
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.by_hash.insert(
            digest(&text),
            Token {
                user: user.to_owned(),
                expires: now + ttl,
            },
        );
        text
    }

    /// The token's holder, if it is known and not expired.
    pub fn check(&mut self, token: &str) -> Option<Token> {
        let k = digest(token);
        match self.by_hash.get(&k) {
            Some(t) if t.expires > Instant::now() => Some(t.clone()),
            Some(_) => {
                self.by_hash.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Tokens of a user whose admin entry is gone stop working at once.
    pub fn forget_user(&mut self, user: &str) {
        self.by_hash.retain(|_, t| t.user != user);
    }
}

/// Failed logins per source address in the current window.
#[derive(Default)]
pub struct LoginFailures {
    by_addr: HashMap<IpAddr, (u32, Instant)>,
}

impl LoginFailures {
    /// `Some(wait)` when `addr` used up its failures for this window.
    pub fn blocked(&mut self, addr: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let (n, since) = *self.by_addr.get(&addr)?;
        let left = (since + limits::HTTP_LOGIN_WINDOW).saturating_duration_since(now);
        if left.is_zero() {
            self.by_addr.remove(&addr);
            return None;
        }
        (n >= limits::HTTP_LOGIN_FAILURES_MAX).then_some(left)
    }

    pub fn failed(&mut self, addr: IpAddr) {
        let now = Instant::now();
        if self.by_addr.len() >= limits::HTTP_LOGIN_ADDRESSES_MAX {
            self.by_addr
                .retain(|_, (_, since)| now.duration_since(*since) < limits::HTTP_LOGIN_WINDOW);
        }
        if self.by_addr.len() >= limits::HTTP_LOGIN_ADDRESSES_MAX
            && !self.by_addr.contains_key(&addr)
        {
            // Still full of live entries: count this failure against every newcomer alike by
            // refusing to remember it, which only makes the limit stricter for known addresses.
            return;
        }
        let e = self.by_addr.entry(addr).or_insert((0, now));
        if now.duration_since(e.1) >= limits::HTTP_LOGIN_WINDOW {
            *e = (0, now);
        }
        e.0 += 1;
    }

    pub fn succeeded(&mut self, addr: IpAddr) {
        self.by_addr.remove(&addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_checked_and_forgotten() {
        let mut t = Tokens::default();
        let a = t.issue("alice", Duration::from_secs(60));
        let b = t.issue("alice", Duration::from_secs(60));
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(t.check(&a).map(|x| x.user), Some("alice".into()));
        assert!(t.check("nope").is_none());
        let old = t.issue("bob", Duration::ZERO);
        assert!(t.check(&old).is_none(), "expired");
        t.forget_user("alice");
        assert!(t.check(&a).is_none() && t.check(&b).is_none());
    }

    #[test]
    fn failures_block_an_address_for_the_window() {
        let mut f = LoginFailures::default();
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        let other: IpAddr = "10.0.0.2".parse().expect("ip");
        for _ in 0..limits::HTTP_LOGIN_FAILURES_MAX {
            assert!(f.blocked(ip).is_none());
            f.failed(ip);
        }
        assert!(f.blocked(ip).is_some());
        assert!(f.blocked(other).is_none());
        f.succeeded(ip);
        assert!(f.blocked(ip).is_none());
    }

    #[test]
    fn admin_users_follow_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("admin-users");
        let a = AdminUsers::new(p.clone());
        assert_eq!(a.count(), Ok(0), "no file: no users, API closed");
        let h = crate::auth::password::hash_argon2id(b"pw").expect("hash");
        crate::auth::passwd_cmd::write_atomic(&p, &format!("root:{h}\n")).expect("write");
        let f = a.current().expect("loads");
        assert!(f.verify("root", b"pw") && !f.verify("root", b"x"));
        std::fs::write(&p, "garbage line\n").expect("write");
        assert!(a.current().is_err());
    }
}
