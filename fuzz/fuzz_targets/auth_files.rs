//! Fuzz the auth file parsers and checks: arbitrary text as a password file, an ACL file, and
//! a JWT ACL claim must never panic, and an ACL or claim that compiles must answer every check
//! (topics and filters taken from the input) without panicking.
//!
//! Input layout: the text up to the first NUL is the file; the rest, split on NUL, gives the
//! user name, client id and topics to check.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringmq::auth::acl::{Access, Acl};
use ringmq::auth::jwt_acl::ClaimAcl;
use ringmq::auth::password::PasswordFile;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let file = parts.next().unwrap_or("");
    let user = parts.next();
    let client_id = parts.next().unwrap_or("c");
    let topics: Vec<&str> = parts.take(8).collect();

    let _ = PasswordFile::parse(file);

    if let Ok(acl) = Acl::parse(file) {
        for t in &topics {
            let _ = acl.check(user, client_id, t, Access::Read);
            let _ = acl.check(user, client_id, t, Access::Write);
            let _ = acl.check_subscribe(user, client_id, t);
        }
    }

    if let Ok(v) = serde_json::from_str::<serde_json::Value>(file) {
        if let Ok(c) = ClaimAcl::from_claim(&v, user, client_id) {
            for t in &topics {
                let _ = c.check(t, Access::Write);
                let _ = c.check_subscribe(t);
            }
        }
    }
});
