//! Password file tests: fixtures written by the real `mosquitto_passwd` (and independent
//! PBKDF2/argon2 implementations), a live run of `mosquitto_passwd` when it is installed, and
//! every kind of bad line.

use super::*;
use std::process::Command;

const FIXTURE: &str = include_str!("../../tests/fixtures/auth/passwd");
const MOSQUITTO_PASSWD: &str = "/usr/bin/mosquitto_passwd";

#[test]
fn fixture_from_mosquitto_passwd_and_friends_verifies() {
    let f = PasswordFile::parse(FIXTURE).expect("fixture parses");
    assert_eq!(f.len(), 5);
    for (user, pw) in [
        ("alice", "secret"), // $7$, mosquitto_passwd 2.0 (12-byte salt, 101 iterations)
        ("carol smith", "pä ss:wörd"), // $7$, space in the name, ':' and UTF-8 in the password
        ("bob", "hunter2"),  // $6$, mosquitto_passwd -H sha512
        ("dave", "long-salt-pw"), // $7$ with a 64-byte salt (Mosquitto 2.1's)
        ("erin", "correct horse"), // $argon2id$ from the reference implementation
    ] {
        assert!(
            f.verify(user, pw.as_bytes()),
            "{user} with the right password"
        );
        assert!(!f.verify(user, b"wrong"), "{user} with a wrong password");
        assert!(!f.verify(user, b""), "{user} with an empty password");
    }
    assert!(!f.verify("mallory", b"secret"), "unknown user");
    // ($7$ cannot tell "secret" from "secret\0": HMAC zero-pads short keys, a known PBKDF2
    // property. Mosquitto stops at the NUL anyway. $6$ and argon2id tell them apart.)
    assert!(
        !f.verify("bob", b"hunter2\0"),
        "trailing NUL is a different password"
    );
}

#[test]
fn live_mosquitto_passwd_files_verify() {
    if !Path::new(MOSQUITTO_PASSWD).exists() {
        eprintln!("skipped: {MOSQUITTO_PASSWD} not installed (Debian package mosquitto)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pw");
    let run = |args: &[&str]| {
        let st = Command::new(MOSQUITTO_PASSWD)
            .args(args)
            .status()
            .expect("run mosquitto_passwd");
        assert!(st.success(), "mosquitto_passwd {args:?}");
    };
    let p = path.to_str().expect("utf-8 temp path");
    run(&["-b", "-c", p, "u7", "pässwörd with spaces"]);
    run(&["-H", "sha512", "-b", p, "u6", "six"]);
    run(&["-H", "sha512-pbkdf2", "-b", p, "u7b", "x"]);
    let f = PasswordFile::load(&path).expect("mosquitto_passwd output parses");
    assert!(f.verify("u7", "pässwörd with spaces".as_bytes()));
    assert!(f.verify("u6", b"six"));
    assert!(f.verify("u7b", b"x"));
    assert!(!f.verify("u6", b"Six"));
    // -D removes, and we agree.
    run(&["-D", p, "u6"]);
    let f = PasswordFile::load(&path).expect("parses after -D");
    assert!(!f.contains("u6"));
    assert_eq!(f.len(), 2);
}

#[test]
fn our_hashes_verify() {
    let h7 = hash_pbkdf2(b"pw", 1000);
    assert!(h7.starts_with("$7$1000$"));
    let ha = hash_argon2id(b"pw").expect("argon2id");
    assert!(ha.starts_with("$argon2id$v=19$"));
    let f = PasswordFile::parse(&format!("a:{h7}\nb:{ha}\n")).expect("parses");
    assert!(f.verify("a", b"pw") && f.verify("b", b"pw"));
    assert!(!f.verify("a", b"pW") && !f.verify("b", b"pW"));
}

#[test]
fn comments_blanks_whitespace_and_crlf() {
    let h = hash_pbkdf2(b"x", 1);
    let text = format!("# top\n\n   \n  # indented comment\n u1 : {h} \r\nu2:{h}:ignored-extra\n");
    let f = PasswordFile::parse(&text).expect("parses");
    assert!(f.verify("u1", b"x"));
    assert!(f.verify("u2", b"x"));
    assert_eq!(f.len(), 2);
}

fn err_line(text: &str) -> (usize, String) {
    match PasswordFile::parse(text) {
        Ok(_) => panic!("{text:?} should be refused"),
        Err(e) => (e.line, e.reason),
    }
}

#[test]
fn bad_lines_are_errors_with_line_numbers() {
    let ok = hash_pbkdf2(b"x", 1);
    let cases: Vec<(String, &str)> = vec![
        ("nocolon".into(), "no ':'"),
        (":$6$AAAA$AAAA".into(), "empty user"),
        ("u:".into(), "missing password hash"),
        ("u:plaintext".into(), "unhashed"),
        ("u:$5$abc$def".into(), "unknown hash type"),
        ("u:$6$onlysalt".into(), "$6$salt$hash"),
        ("u:$7$101$salt".into(), "$7$iterations$salt$hash"),
        ("u:$7$abc$AAAA$AAAA".into(), "not a number"),
        ("u:$7$0$AAAA$AAAA".into(), "outside"),
        ("u:$7$99999999999$AAAA$AAAA".into(), "not a number"),
        ("u:$7$101$!!!!$AAAA".into(), "base64"),
        ("u:$7$101$AAAA$AAAA".into(), "64 bytes"),
        ("u:$6$$AAAA".into(), "empty salt"),
        ("u:$argon2id$v=19$m=4096,t=2,p=1$c29tZXNhbHQ".into(), "argon2"),
        ("u:$argon2id$garbage".into(), "argon2"),
        (
            "u:$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHQxMjM0$cvEazogelEb60VCJP01gP23apDs0bsO4NQBlpChXn9U"
                .into(),
            "limits",
        ),
        (format!("u:{ok}\nu:{ok}"), "twice"),
    ];
    for (body, want) in cases {
        let text = format!("# header\n\nok:{ok}\n{body}\n");
        let (line, reason) = err_line(&text);
        assert!(line >= 4, "{body:?}: line {line}");
        assert!(reason.contains(want), "{body:?}: {reason:?} lacks {want:?}");
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    use proptest::prelude::*;
    proptest!(ProptestConfig::with_cases(512), |(s in "[a-z:$0-9A-Za-z+/=#\\n ]{0,200}")| {
        let _ = PasswordFile::parse(&s);
    });
    // Lines of $-separated pieces, close to the real formats.
    proptest!(ProptestConfig::with_cases(512), |(k in "[67]|argon2id|argon2i", a in "[A-Za-z0-9+/=,]{0,30}", b in "[A-Za-z0-9+/=]{0,90}")| {
        let _ = PasswordFile::parse(&format!("u:${k}${a}${b}\nv:${k}$1${a}${b}\n"));
    });
}

#[test]
fn load_names_the_file() {
    let e = PasswordFile::load(Path::new("/nonexistent/ringmq/pw")).expect_err("missing file");
    assert!(e.to_string().contains("/nonexistent/ringmq/pw"));
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("pw");
    std::fs::write(&p, "ok:$6$AAAA\n").expect("write");
    let e = PasswordFile::load(&p).expect_err("bad file");
    let msg = e.to_string();
    assert!(msg.contains("pw:line 1: "), "{msg}");
}

#[test]
fn cache_hits_after_success_only_and_clears_on_reload() {
    let h = hash_pbkdf2(b"pw", 1);
    let f1 = PasswordFile::parse(&format!("a:{h}\n")).expect("parses");
    let mut c = VerifyCache::new(8);
    assert!(!c.hit(&f1, "a", b"pw"), "empty cache");
    assert!(!c.verify(&f1, "a", b"bad"));
    assert!(c.is_empty(), "failures are not cached");
    assert!(c.verify(&f1, "a", b"pw"));
    assert!(c.hit(&f1, "a", b"pw"));
    assert!(!c.hit(&f1, "a", b"pW"), "another password misses");
    // Reload with a changed password: the old one must not pass from the cache.
    let h2 = hash_pbkdf2(b"new", 1);
    let f2 = PasswordFile::parse(&format!("a:{h2}\n")).expect("parses");
    assert!(!c.hit(&f2, "a", b"pw"));
    assert!(c.is_empty());
    assert!(!c.verify(&f2, "a", b"pw"));
    assert!(c.verify(&f2, "a", b"new"));
}

#[test]
fn cache_is_bounded() {
    let h = hash_pbkdf2(b"pw", 1);
    let text: String = (0..20).map(|i| format!("u{i}:{h}\n")).collect();
    let f = PasswordFile::parse(&text).expect("parses");
    let mut c = VerifyCache::new(4);
    for i in 0..20 {
        assert!(c.verify(&f, &format!("u{i}"), b"pw"));
        assert!(c.len() <= 4);
    }
    assert!(c.hit(&f, "u19", b"pw"), "newest kept");
    assert!(!c.hit(&f, "u0", b"pw"), "oldest evicted");
}

#[test]
fn debug_never_prints_hashes() {
    let f = PasswordFile::parse(FIXTURE).expect("fixture parses");
    let s = format!("{f:?}");
    assert!(!s.contains("HSzMuteVMzmAyS72"), "{s}");
}
