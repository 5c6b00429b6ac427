//! JWT tests with tokens signed here: every algorithm family, exp/nbf, kid selection, algorithm
//! confusion, the username claim, the ACL claim, and reload on mtime change.

use super::*;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/auth/jwt");
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(DIR).join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("fixture")
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(String::from);
    encode(&h, claims, key).expect("sign")
}

fn secret_verifier(dir: &tempfile::TempDir) -> JwtVerifier {
    let p = dir.path().join("secret");
    std::fs::write(&p, [SECRET, b"\n"].concat()).expect("write secret");
    JwtVerifier::load(JwtConfig::new(KeySource::Secret(p))).expect("load secret")
}

#[test]
fn hmac_family_and_expiry_returned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let v = secret_verifier(&dir);
    let key = EncodingKey::from_secret(SECRET);
    let exp = now() + 600;
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let t = sign(alg, None, &key, &json!({"exp": exp, "sub": "x"}));
        assert!(looks_like_jwt(t.as_bytes()));
        let g = v
            .verify(t.as_bytes(), Some("alice"), "c")
            .expect("valid token");
        assert_eq!(g.expires_at_s, Some(exp));
        assert_eq!(g.username.as_deref(), Some("alice"));
        assert!(g.acl.is_none());
    }
    let wrong = EncodingKey::from_secret(b"another secret that is long enough!!");
    let t = sign(Algorithm::HS256, None, &wrong, &json!({"exp": exp}));
    assert!(v.verify(t.as_bytes(), None, "c").is_err(), "wrong secret");
    assert!(!looks_like_jwt(b"plain password"));
}

#[test]
fn exp_nbf_and_required_exp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let v = secret_verifier(&dir);
    let key = EncodingKey::from_secret(SECRET);
    let expired = sign(Algorithm::HS256, None, &key, &json!({"exp": now() - 10}));
    assert!(v.verify(expired.as_bytes(), None, "c").is_err(), "expired");
    let early = sign(
        Algorithm::HS256,
        None,
        &key,
        &json!({"exp": now() + 600, "nbf": now() + 300}),
    );
    assert!(
        v.verify(early.as_bytes(), None, "c").is_err(),
        "not yet valid"
    );
    let forever = sign(Algorithm::HS256, None, &key, &json!({"sub": "x"}));
    assert!(
        v.verify(forever.as_bytes(), None, "c").is_err(),
        "exp required by default"
    );
    let mut cfg = v.config().clone();
    cfg.require_exp = false;
    let lax = JwtVerifier::load(cfg).expect("load");
    let g = lax
        .verify(forever.as_bytes(), None, "c")
        .expect("no exp allowed");
    assert_eq!(g.expires_at_s, None);
}

#[test]
fn rsa_and_ec_public_keys() {
    let exp = now() + 600;
    let claims = json!({"exp": exp});
    let rsa_key = EncodingKey::from_rsa_pem(&read("rsa-private.pem")).expect("rsa key");
    let v = JwtVerifier::load(JwtConfig::new(KeySource::PublicKey(fixture(
        "rsa-public.pem",
    ))))
    .expect("rsa public");
    for alg in [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
    ] {
        let t = sign(alg, None, &rsa_key, &claims);
        v.verify(t.as_bytes(), None, "c").expect("rsa token");
    }
    for (public, private, alg) in [
        ("ec256-public.pem", "ec256-private.pem", Algorithm::ES256),
        ("ec384-public.pem", "ec384-private.pem", Algorithm::ES384),
    ] {
        let v = JwtVerifier::load(JwtConfig::new(KeySource::PublicKey(fixture(public))))
            .expect("ec public");
        let k = EncodingKey::from_ec_pem(&read(private)).expect("ec key");
        let t = sign(alg, None, &k, &claims);
        v.verify(t.as_bytes(), None, "c").expect("ec token");
        // The RSA-signed token fails against the EC key.
        let t = sign(Algorithm::RS256, None, &rsa_key, &claims);
        assert!(v.verify(t.as_bytes(), None, "c").is_err());
    }
}

#[test]
fn algorithm_confusion_is_refused() {
    // HS256 signed with the RSA public key's bytes as the secret: the classic confusion attack.
    let public = read("rsa-public.pem");
    let forged = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(&public),
        &json!({"exp": now() + 600}),
    );
    let v = JwtVerifier::load(JwtConfig::new(KeySource::PublicKey(fixture(
        "rsa-public.pem",
    ))))
    .expect("rsa public");
    assert!(v.verify(forged.as_bytes(), None, "c").is_err());
    // alg none is not even parsed as a token.
    let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJleHAiOjk5OTk5OTk5OTl9.";
    assert!(v.verify(none.as_bytes(), None, "c").is_err());
    // A configured algorithm the key cannot verify is a configuration error.
    let mut cfg = JwtConfig::new(KeySource::PublicKey(fixture("rsa-public.pem")));
    cfg.algorithms = vec![Algorithm::HS256];
    assert!(JwtVerifier::load(cfg).is_err());
    // A configured subset is enforced.
    let mut cfg = JwtConfig::new(KeySource::PublicKey(fixture("rsa-public.pem")));
    cfg.algorithms = vec![Algorithm::RS512];
    let v = JwtVerifier::load(cfg).expect("load");
    let rsa_key = EncodingKey::from_rsa_pem(&read("rsa-private.pem")).expect("rsa key");
    let t = sign(
        Algorithm::RS256,
        None,
        &rsa_key,
        &json!({"exp": now() + 600}),
    );
    assert!(v.verify(t.as_bytes(), None, "c").is_err());
}

#[test]
fn jwks_picks_the_key_by_kid() {
    let v = JwtVerifier::load(JwtConfig::new(KeySource::Jwks(fixture("jwks.json")))).expect("jwks");
    let claims = json!({"exp": now() + 600});
    let rsa_key = EncodingKey::from_rsa_pem(&read("rsa-private.pem")).expect("rsa key");
    let ec_key = EncodingKey::from_ec_pem(&read("ec256-private.pem")).expect("ec key");
    v.verify(
        sign(Algorithm::RS256, Some("rsa-1"), &rsa_key, &claims).as_bytes(),
        None,
        "c",
    )
    .expect("rsa by kid");
    v.verify(
        sign(Algorithm::ES256, Some("ec-1"), &ec_key, &claims).as_bytes(),
        None,
        "c",
    )
    .expect("ec by kid");
    let wrong_kid = sign(Algorithm::RS256, Some("ec-1"), &rsa_key, &claims);
    assert!(v.verify(wrong_kid.as_bytes(), None, "c").is_err());
    let no_kid = sign(Algorithm::RS256, None, &rsa_key, &claims);
    assert!(
        v.verify(no_kid.as_bytes(), None, "c").is_err(),
        "two keys, no kid"
    );
    let unknown = sign(Algorithm::RS256, Some("zzz"), &rsa_key, &claims);
    assert!(v.verify(unknown.as_bytes(), None, "c").is_err());
}

#[test]
fn username_claim_binds_and_acl_claim_compiles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = secret_verifier(&dir).config().clone();
    cfg.username_claim = Some("username".into());
    cfg.acl_claim = Some("acl".into());
    let v = JwtVerifier::load(cfg).expect("load");
    let key = EncodingKey::from_secret(SECRET);
    let t = sign(
        Algorithm::HS256,
        None,
        &key,
        &json!({"exp": now() + 600, "username": "bob",
                "acl": [{"permission": "allow", "action": "publish", "topic": "u/${username}/${clientid}"}]}),
    );
    let g = v
        .verify(t.as_bytes(), None, "dev1")
        .expect("no CONNECT user name: the claim's");
    assert_eq!(g.username.as_deref(), Some("bob"));
    let acl = g.acl.expect("acl claim");
    assert_eq!(
        acl.check("u/bob/dev1", crate::auth::acl::Access::Write),
        Some(true)
    );
    assert_eq!(
        acl.check("u/bob/dev2", crate::auth::acl::Access::Write),
        None
    );
    assert!(v.verify(t.as_bytes(), Some("bob"), "dev1").is_ok());
    assert!(
        v.verify(t.as_bytes(), Some("mallory"), "dev1").is_err(),
        "name mismatch"
    );
    let no_name = sign(Algorithm::HS256, None, &key, &json!({"exp": now() + 600}));
    assert!(
        v.verify(no_name.as_bytes(), None, "c").is_err(),
        "claim required"
    );
    let bad_acl = sign(
        Algorithm::HS256,
        None,
        &key,
        &json!({"exp": now() + 600, "username": "b", "acl": 5}),
    );
    assert!(
        v.verify(bad_acl.as_bytes(), None, "c").is_err(),
        "malformed ACL refuses the token"
    );
}

#[test]
fn key_files_reload_on_mtime_change_and_bad_files_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let v = secret_verifier(&dir);
    assert!(!v.changed_on_disk());
    let p = dir.path().join("secret");
    let new_secret = b"a-completely-different-secret-of-32+bytes";
    std::fs::write(&p, new_secret).expect("rewrite");
    // Make sure the mtime moves even on coarse-grained filesystems.
    let later = SystemTime::now() + std::time::Duration::from_secs(2);
    std::fs::File::options()
        .write(true)
        .open(&p)
        .and_then(|f| f.set_modified(later))
        .expect("set mtime");
    assert!(v.changed_on_disk());
    let v2 = v.reload().expect("reload");
    assert!(!v2.changed_on_disk());
    let t = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(new_secret),
        &json!({"exp": now() + 60}),
    );
    assert!(
        v2.verify(t.as_bytes(), None, "c").is_ok() && v.verify(t.as_bytes(), None, "c").is_err()
    );
    // Bad files: short secret, garbage PEM, garbage JWKS, missing file.
    std::fs::write(&p, b"short").expect("write");
    assert!(v.reload().is_err(), "short secret");
    let junk = dir.path().join("junk");
    std::fs::write(
        &junk,
        b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n",
    )
    .expect("write");
    assert!(JwtVerifier::load(JwtConfig::new(KeySource::PublicKey(junk.clone()))).is_err());
    assert!(JwtVerifier::load(JwtConfig::new(KeySource::Jwks(junk))).is_err());
    assert!(JwtVerifier::load(JwtConfig::new(KeySource::Jwks(dir.path().join("none")))).is_err());
}

#[test]
fn garbage_tokens_never_panic() {
    use proptest::prelude::*;
    let dir = tempfile::tempdir().expect("tempdir");
    let v = secret_verifier(&dir);
    proptest!(ProptestConfig::with_cases(512), |(s in proptest::collection::vec(any::<u8>(), 0..200))| {
        let _ = v.verify(&s, None, "c");
    });
    proptest!(ProptestConfig::with_cases(256), |(a in "eyJ[A-Za-z0-9_-]{0,40}", b in "[A-Za-z0-9_-]{0,40}", c in "[A-Za-z0-9_-]{0,40}")| {
        let _ = v.verify(format!("{a}.{b}.{c}").as_bytes(), None, "c");
    });
}
