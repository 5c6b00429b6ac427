//! CONNECT decisions and reload over real files in a temporary directory.

use super::*;
use crate::auth::acl::Access;
use crate::auth::password::hash_pbkdf2;
use std::path::Path;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

fn connect<'a>(user: Option<&'a str>, pw: Option<&'a [u8]>, loopback: bool) -> ConnectAuth<'a> {
    ConnectAuth {
        username: user,
        password: pw,
        client_id: "c1",
        loopback_listener: loopback,
        listener_allow_anonymous: None,
    }
}

/// Run a check to the end, doing the derivation inline as a shard would off the reactor.
fn decide(
    s: &Security,
    cache: &mut VerifyCache,
    c: ConnectAuth<'_>,
) -> (Result<Authenticated, Refusal>, bool) {
    match s.check_connect(cache, c) {
        ConnectCheck::Done(r) => (r, false),
        ConnectCheck::Derive(job) => {
            let ok = job.run();
            (job.finish(ok, cache), true)
        }
    }
}

#[test]
fn anonymous_policy_follows_allow_anonymous_and_loopback() {
    let s = Security::load(&Config::default()).expect("defaults load");
    let mut cache = VerifyCache::new(4);
    assert!(
        decide(&s, &mut cache, connect(None, None, true)).0.is_ok(),
        "loopback: allowed"
    );
    assert_eq!(
        decide(&s, &mut cache, connect(None, None, false)).0.err(),
        Some(Refusal::NotAuthorized)
    );
    let open = Security {
        allow_anonymous: Some(true),
        ..s.clone()
    };
    assert!(decide(&open, &mut cache, connect(None, None, false))
        .0
        .is_ok());
    let closed = Security {
        allow_anonymous: Some(false),
        ..s.clone()
    };
    assert!(decide(&closed, &mut cache, connect(None, None, true))
        .0
        .is_err());
    // No password mechanism: a name is taken on trust where anonymous clients are allowed.
    let (r, _) = decide(&s, &mut cache, connect(Some("bob"), None, true));
    let a = r.expect("trusted name");
    assert_eq!((a.username.as_deref(), a.verified), (Some("bob"), false));
    assert!(decide(&s, &mut cache, connect(Some("bob"), None, false))
        .0
        .is_err());
    assert!(!s.acl.is_enforcing());
    assert_eq!(
        (
            Refusal::BadCredentials.v5_reason(),
            Refusal::BadCredentials.v3_return_code()
        ),
        (0x86, 4)
    );
    assert_eq!(
        (
            Refusal::NotAuthorized.v5_reason(),
            Refusal::NotAuthorized.v3_return_code()
        ),
        (0x87, 5)
    );
}

#[test]
fn password_file_with_cache_and_reload_keeping_old_on_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = write(
        dir.path(),
        "pw",
        &format!("alice:{}\n", hash_pbkdf2(b"one", 1000)),
    );
    let acl = write(dir.path(), "acl", "user alice\ntopic readwrite a/#\n");
    let cfg = Config {
        password_file: Some(pw.clone()),
        acl_file: Some(acl.clone()),
        allow_anonymous: Some(false),
        ..Config::default()
    };
    let s = Security::load(&cfg).expect("loads");
    let mut cache = VerifyCache::new(16);
    let (r, derived) = decide(&s, &mut cache, connect(Some("alice"), Some(b"one"), false));
    assert!(r.expect("right password").verified && derived);
    let (r, derived) = decide(&s, &mut cache, connect(Some("alice"), Some(b"one"), false));
    assert!(r.is_ok() && !derived, "second time from the cache");
    assert_eq!(
        decide(&s, &mut cache, connect(Some("alice"), Some(b"two"), false))
            .0
            .err(),
        Some(Refusal::BadCredentials)
    );
    assert_eq!(
        decide(&s, &mut cache, connect(Some("alice"), None, false))
            .0
            .err(),
        Some(Refusal::BadCredentials)
    );
    assert_eq!(
        decide(&s, &mut cache, connect(Some("zed"), Some(b"one"), false))
            .0
            .err(),
        Some(Refusal::BadCredentials)
    );
    assert_eq!(
        decide(&s, &mut cache, connect(None, None, false)).0.err(),
        Some(Refusal::NotAuthorized)
    );
    assert!(s.acl.check(Some("alice"), "c1", "a/b", Access::Write));
    let lines = s.describe(&cfg).join("\n");
    assert!(
        lines.contains("1 users") && lines.contains("1 rules") && lines.contains("refused"),
        "{lines}"
    );
    assert!(Security::load(&Config::default())
        .expect("defaults")
        .describe(&Config::default())
        .join("\n")
        .contains("loopback listeners only"));

    // Reload with a new password and a broken ACL: passwords change, the ACL stays.
    std::fs::write(&pw, format!("alice:{}\n", hash_pbkdf2(b"two", 1000))).expect("write");
    std::fs::write(&acl, "user alice\nbogus\n").expect("write");
    let r = s.reload(&cfg);
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(
        r.errors[0].contains("acl_file") && r.errors[0].contains("line 2"),
        "{:?}",
        r.errors
    );
    let s2 = r.security;
    assert!(Arc::ptr_eq(&s2.acl, &s.acl), "old ACL kept");
    let (r, derived) = decide(&s2, &mut cache, connect(Some("alice"), Some(b"one"), false));
    assert!(
        r.is_err() && derived,
        "cache emptied by the reload: the old password is re-checked and fails"
    );
    assert!(
        decide(&s2, &mut cache, connect(Some("alice"), Some(b"two"), false))
            .0
            .is_ok()
    );
    // A missing password file on reload keeps the old one too.
    std::fs::remove_file(&pw).expect("rm");
    let r = s2.reload(&cfg);
    assert!(r.errors.iter().any(|e| e.contains("password_file")));
    assert!(Arc::ptr_eq(
        r.security.passwords.as_ref().expect("kept"),
        s2.passwords.as_ref().expect("had one")
    ));
}

#[test]
fn jwt_first_for_tokens_password_file_for_the_rest() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = b"0123456789abcdef0123456789abcdef!!";
    let sp = write(
        dir.path(),
        "secret",
        std::str::from_utf8(secret).expect("ascii"),
    );
    let pw = write(
        dir.path(),
        "pw",
        &format!("alice:{}\n", hash_pbkdf2(b"one", 1000)),
    );
    let cfg = Config {
        password_file: Some(pw),
        jwt_secret_file: Some(sp.clone()),
        jwt_acl_claim: Some("acl".into()),
        allow_anonymous: Some(false),
        ..Config::default()
    };
    let s = Security::load(&cfg).expect("loads");
    let exp = jsonwebtoken::get_current_timestamp() + 300;
    let claims = serde_json::json!({"exp": exp, "acl": {"pub": ["t/1"]}});
    let token = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("sign");
    let mut cache = VerifyCache::new(4);
    let (r, _) = decide(
        &s,
        &mut cache,
        connect(Some("dev"), Some(token.as_bytes()), false),
    );
    let a = r.expect("token accepted");
    assert_eq!(a.expires_at_s, Some(exp));
    assert_eq!(
        a.claim_acl.expect("acl").check("t/1", Access::Write),
        Some(true)
    );
    assert!(
        decide(&s, &mut cache, connect(Some("alice"), Some(b"one"), false))
            .0
            .is_ok()
    );
    let forged = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(b"not the secret at all, not at all"),
    )
    .expect("sign");
    assert!(decide(
        &s,
        &mut cache,
        connect(None, Some(forged.as_bytes()), false)
    )
    .0
    .is_err());
    // Key file rotated on disk: poll picks it up.
    assert!(s.poll().is_none());
    let new_secret = "a-rotated-secret-that-is-long-enough!";
    std::fs::write(&sp, new_secret).expect("write");
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
    std::fs::File::options()
        .write(true)
        .open(&sp)
        .and_then(|f| f.set_modified(later))
        .expect("mtime");
    let s2 = s.poll().expect("rotated keys loaded");
    let token2 = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(new_secret.as_bytes()),
    )
    .expect("sign");
    assert!(decide(
        &s2,
        &mut cache,
        connect(None, Some(token2.as_bytes()), false)
    )
    .0
    .is_ok());
    assert!(decide(
        &s,
        &mut cache,
        connect(None, Some(token2.as_bytes()), false)
    )
    .0
    .is_err());
}

#[test]
fn security_is_shareable_across_shards() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Security>();
    send_sync::<PasswordJob>();
}
