//! Differential test: the same acl_file in the real Mosquitto and in `ringmq::auth::acl::Acl`
//! must allow and refuse the same publishes (write) and deliveries (read), for anonymous
//! clients, users with their own rules, users with only patterns, and a user name and a client id
//! with `+`.
//! (Client ids with `/` are left out on purpose: ringmq refuses them pattern access, Mosquitto
//! 2.0 does not; see the module doc of `auth::acl`.)

use crate::mosquitto::{available, run_bounded, Mosquitto, MOSQUITTO_PUB, MOSQUITTO_SUB};
use ringmq::auth::acl::{Access, Acl};
use ringmq::auth::password::hash_pbkdf2;
use std::collections::BTreeSet;
use std::time::Duration;

const ACL: &str = "\
# anonymous
topic read public/#
topic write anon/out
user alice
topic readwrite alice/#
topic deny alice/secret
topic read shared/+/status
topic write $SYS/test/x
user bob
topic read alice/#
topic write shared/bob/status
user admin
topic readwrite #
topic readwrite $SYS/#
pattern readwrite users/%u/#
pattern read devices/%c/in
pattern write devices/%c/out
pattern deny users/%u/locked
";

const TOPICS: &[&str] = &[
    "public/x",
    "anon/out",
    "alice/x",
    "alice/secret",
    "shared/bob/status",
    "users/alice/x",
    "users/bob/x",
    "users/carol/x",
    "users/alice/locked",
    "devices/a1/in",
    "devices/dev7/out",
    "devices/dev9/in",
    "devices/dev9/out",
    "devices/dev8/in",
    "other",
];

/// (user, client id). Every user's password is "pw".
const WHO: &[(Option<&str>, &str)] = &[
    (None, "anon1"),
    (Some("alice"), "a1"),
    (Some("bob"), "dev7"),
    (Some("carol"), "dev9"),
    (Some("evil+"), "dev8"),
    // Own rules decide first; the '+' in the client id then refuses every pattern.
    (Some("alice"), "a+1"),
];

fn creds(user: Option<&str>, cid: &str) -> Vec<String> {
    let mut v = vec!["-i".to_string(), cid.to_string()];
    if let Some(u) = user {
        v.extend(["-u".into(), u.into(), "-P".into(), "pw".into()]);
    }
    v
}

fn sub_args(port: &str, user: Option<&str>, cid: &str, topics: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["-h", "127.0.0.1", "-p", port, "-v", "-W", "4", "-q", "1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.extend(creds(user, cid));
    for t in topics {
        v.extend(["-t".into(), t.to_string()]);
    }
    v
}

fn publish(port: &str, user: Option<&str>, cid: &str, topic: &str, payload: &str) {
    let mut args: Vec<String> = [
        "-h",
        "127.0.0.1",
        "-p",
        port,
        "-q",
        "1",
        "-t",
        topic,
        "-m",
        payload,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(creds(user, cid));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (out, finished) = run_bounded(MOSQUITTO_PUB, &refs, Duration::from_secs(10));
    assert!(finished, "mosquitto_pub {refs:?} did not finish");
    assert!(
        out.status.success(),
        "mosquitto_pub {refs:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Start `mosquitto_sub` for each (user, client id) on every topic, in threads; returns the
/// lines each printed ("topic payload").
fn subscribe_all(
    port: &str,
    who: &[(Option<&str>, &str)],
    topics: &[&str],
) -> Vec<std::thread::JoinHandle<BTreeSet<String>>> {
    who.iter()
        .map(|(u, c)| {
            let args = sub_args(port, *u, c, topics);
            std::thread::spawn(move || {
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                let (out, _) = run_bounded(MOSQUITTO_SUB, &refs, Duration::from_secs(15));
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(String::from)
                    .collect()
            })
        })
        .collect()
}

#[test]
fn acl_decisions_match_mosquitto() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let acl_path = dir.path().join("acl");
    std::fs::write(&acl_path, ACL).expect("write acl");
    let pw_path = dir.path().join("pw");
    let pw: String = ["alice", "bob", "carol", "evil+", "admin"]
        .iter()
        .map(|u| format!("{u}:{}\n", hash_pbkdf2(b"pw", 101)))
        .collect();
    std::fs::write(&pw_path, pw).expect("write pw");
    let ours = Acl::load(&acl_path).expect("our parser reads it");
    let m = Mosquitto::start(&format!(
        "allow_anonymous true\npassword_file {}\nacl_file {}",
        pw_path.display(),
        acl_path.display()
    ));
    let port = m.port_arg();
    let settle = Duration::from_millis(1500);

    // Reads: everyone subscribes to every topic; admin publishes each once.
    let readers = subscribe_all(&port, WHO, TOPICS);
    std::thread::sleep(settle);
    for t in TOPICS {
        publish(&port, Some("admin"), "admin-pub", t, "r");
    }
    for ((user, cid), h) in WHO.iter().zip(readers) {
        let got = h.join().expect("reader thread");
        for t in TOPICS {
            let mosq = got.contains(&format!("{t} r"));
            let ring = ours.check(*user, cid, t, Access::Read);
            assert_eq!(
                ring, mosq,
                "read {t} as {user:?}/{cid}: ringmq {ring}, Mosquitto {mosq}"
            );
        }
    }

    // Writes: admin watches every topic; each client publishes to each topic.
    let mut all: Vec<&str> = TOPICS.to_vec();
    all.push("$SYS/test/x");
    let watcher = subscribe_all(&port, &[(Some("admin"), "admin-sub")], &all);
    std::thread::sleep(settle);
    for (i, (user, cid)) in WHO.iter().enumerate() {
        for t in &all {
            publish(&port, *user, cid, t, &format!("w{i}"));
        }
    }
    let got = watcher
        .into_iter()
        .next()
        .expect("one watcher")
        .join()
        .expect("watcher thread");
    for (i, (user, cid)) in WHO.iter().enumerate() {
        for t in &all {
            let mosq = got.contains(&format!("{t} w{i}"));
            let ring = ours.check(*user, cid, t, Access::Write);
            assert_eq!(
                ring, mosq,
                "write {t} as {user:?}/{cid}: ringmq {ring}, Mosquitto {mosq}"
            );
        }
    }
}
