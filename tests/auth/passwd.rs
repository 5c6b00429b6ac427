//! `ringmq passwd --hash pbkdf2` output, accepted by Mosquitto's own password check and by ours.

use crate::mosquitto::{available, run_bounded, Mosquitto, MOSQUITTO_PUB};
use ringmq::auth::password::PasswordFile;
use std::process::Command;
use std::time::Duration;

fn ringmq_passwd(args: &[&str]) {
    let st = Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .arg("passwd")
        .args(args)
        .status()
        .expect("run ringmq passwd");
    assert!(st.success(), "ringmq passwd {args:?}");
}

fn publish(m: &Mosquitto, user: &str, pw: &str) -> bool {
    let port = m.port_arg();
    let (out, finished) = run_bounded(
        MOSQUITTO_PUB,
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-u",
            user,
            "-P",
            pw,
            "-t",
            "t",
            "-m",
            "x",
            "-q",
            "1",
        ],
        Duration::from_secs(10),
    );
    assert!(finished, "mosquitto_pub did not finish in 10 s");
    out.status.success()
}

#[test]
fn password_file_from_ringmq_passwd_is_accepted_by_mosquitto() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pw");
    let f = file.to_str().expect("utf-8 path");
    ringmq_passwd(&["-c", "-b", "--hash", "pbkdf2", f, "alice", "s3cret pass"]);
    ringmq_passwd(&["-b", "-H", "sha512-pbkdf2", f, "bob", "другой"]);
    // An argon2id user too: Mosquitto 2.0 cannot read it and drops only that line.
    ringmq_passwd(&["-b", f, "erin", "argon"]);

    let ours = PasswordFile::load(&file).expect("our verifier reads it");
    assert!(ours.verify("alice", b"s3cret pass"));
    assert!(ours.verify("bob", "другой".as_bytes()));
    assert!(ours.verify("erin", b"argon"));

    let m = Mosquitto::start(&format!(
        "allow_anonymous false\npassword_file {}",
        file.display()
    ));
    assert!(
        publish(&m, "alice", "s3cret pass"),
        "alice accepted by Mosquitto"
    );
    assert!(publish(&m, "bob", "другой"), "bob accepted by Mosquitto");
    assert!(
        !publish(&m, "alice", "wrong"),
        "wrong password refused by Mosquitto"
    );
    assert!(
        !publish(&m, "nobody", "x"),
        "unknown user refused by Mosquitto"
    );
}
