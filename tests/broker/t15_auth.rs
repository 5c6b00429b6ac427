//! Area 15: passwords, ACLs and tokens, enforced by the broker. The password file is made by
//! Mosquitto's own `mosquitto_passwd`; clients are the raw client (to read reason codes) and
//! `mosquitto_pub` / `mosquitto_sub`.

use crate::common::*;
use crate::raw_client::connect_packet;
use ringmq::codec::{Connect, Packet, Properties, Protocol, Publish, QoS};
use std::path::PathBuf;
use std::time::Duration;

shard_tests!(
    a_mosquitto_passwd_file_admits_the_right_password_only,
    the_acl_file_refuses_publishes_and_subscriptions_with_the_right_codes,
    nobody_publishes_under_sys,
    a_jwt_in_the_password_field_authenticates_and_its_expiry_is_checked,
);

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str, shards: usize) -> Dir {
        let p =
            std::env::temp_dir().join(format!("ringmq-auth-{tag}-{}-{shards}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch dir");
        Dir(p)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mosquitto_passwd(file: &std::path::Path, user: &str, password: &str, create: bool) {
    let mut cmd = std::process::Command::new("mosquitto_passwd");
    if create {
        cmd.arg("-c");
    }
    let status = cmd
        .arg("-b")
        .arg(file)
        .args([user, password])
        .status()
        .expect("mosquitto_passwd (Debian package mosquitto)");
    assert!(status.success(), "mosquitto_passwd failed");
}

fn with_credentials(protocol: Protocol, id: &str, user: &str, password: &[u8]) -> Connect {
    let mut c = connect_packet(protocol, id);
    c.username = Some(user.into());
    c.password = Some(password.to_vec().into());
    c
}

fn publish(topic: &str, qos: QoS, packet_id: u16) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        packet_id,
        properties: Properties::default(),
        payload: b"x".to_vec().into(),
    })
}

async fn a_mosquitto_passwd_file_admits_the_right_password_only(shards: usize) {
    let d = Dir::new("pw", shards);
    let pw = d.file("passwd");
    mosquitto_passwd(&pw, "alice", "wonderland", true);
    mosquitto_passwd(&pw, "bob", "builder", false);
    let b = Broker::with(
        shards,
        &[
            "--password-file",
            pw.to_str().expect("utf-8"),
            "--allow-anonymous",
            "false",
        ],
    )
    .await;
    let w = Witness::start_as(&b, "bob", "builder").await;
    for (protocol, bad, anon) in [(Protocol::V5, 0x86, 0x87), (Protocol::V311, 4, 5)] {
        let good = with_credentials(protocol, &b.id("alice", 1), "alice", b"wonderland");
        assert_eq!(Raw::handshake(&b, good).await.1.code, 0, "{protocol:?}");
        let wrong = with_credentials(protocol, &b.id("alice2", 0), "alice", b"queen");
        assert_eq!(
            Raw::handshake(&b, wrong).await.1.code,
            bad,
            "{protocol:?} wrong password"
        );
        let unknown = with_credentials(protocol, &b.id("carol", 0), "carol", b"x");
        assert_eq!(
            Raw::handshake(&b, unknown).await.1.code,
            bad,
            "{protocol:?} unknown user"
        );
        let nobody = connect_packet(protocol, &b.id("anon", 1));
        assert_eq!(
            Raw::handshake(&b, nobody).await.1.code,
            anon,
            "{protocol:?} anonymous"
        );
        // Again, now from the verification cache.
        let again = with_credentials(protocol, &b.id("alice3", 0), "alice", b"wonderland");
        assert_eq!(
            Raw::handshake(&b, again).await.1.code,
            0,
            "{protocol:?} cached"
        );
    }
    // Mosquitto's own client with the same file's credentials.
    let ok = tokio::process::Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &b.port.to_string(),
            "-u",
            "alice",
            "-P",
        ])
        .args(["wonderland", "-t", "pw/t", "-m", "hi", "-q", "1"])
        .kill_on_drop(true)
        .status()
        .await
        .expect("mosquitto_pub");
    assert!(ok.success());
    w.finish().await;
}

async fn the_acl_file_refuses_publishes_and_subscriptions_with_the_right_codes(shards: usize) {
    let d = Dir::new("acl", shards);
    let acl = d.file("acl");
    std::fs::write(
        &acl,
        "# anonymous clients\ntopic readwrite witness/#\ntopic readwrite test/#\n\
         topic deny test/nosubscribe\ntopic read ro/#\n",
    )
    .expect("write acl");
    let b = Broker::with(shards, &["--acl-file", acl.to_str().expect("utf-8")]).await;
    let w = Witness::start(&b).await;
    for (protocol, sub_refused) in [(Protocol::V5, 0x87), (Protocol::V311, 0x80)] {
        let mut c = Raw::connect(&b, protocol, &b.id("acl", 1)).await;
        assert_eq!(
            c.subscribe("test/nosubscribe", 1).await,
            [sub_refused],
            "{protocol:?}"
        );
        assert_eq!(c.subscribe("test/ok", 1).await, [1], "{protocol:?}");
        assert_eq!(c.subscribe("ro/t", 1).await, [1], "{protocol:?}");
        // Publishing where it may only read: v5 PUBACK 0x87, v3 acknowledged and dropped.
        c.0.send(publish("ro/t", QoS::AtLeastOnce, 7)).await;
        match c.0.recv().await {
            Packet::PubAck(a) => {
                assert_eq!(
                    a.reason,
                    if protocol.is_v5() { 0x87 } else { 0 },
                    "{protocol:?}"
                )
            }
            other => panic!("expected PUBACK, got {other:?}"),
        }
        // Nothing was forwarded: the next message it gets is its own allowed publish.
        c.0.send(publish("test/ok", QoS::AtLeastOnce, 8)).await;
        let got = c.recv_n(2).await;
        let topics: Vec<String> = got
            .iter()
            .filter_map(|p| match p {
                Packet::Publish(m) => Some(m.topic.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(topics, ["test/ok"], "{protocol:?}: {got:?}");
    }
    w.finish().await;
}

async fn nobody_publishes_under_sys(shards: usize) {
    let b = Broker::start(shards).await;
    let mut watcher = Raw::connect(&b, Protocol::V5, &b.id("sys-watch", 0)).await;
    // The broker's own $SYS tree and presence events flow under $SYS/#: watch only the topics
    // the clients try to forge.
    watcher.subscribe("$SYS/broker/forged", 0).await;
    watcher.subscribe("$SYS/fake", 0).await;
    let mut c = Raw::connect(&b, Protocol::V5, &b.id("sys-pub", 1)).await;
    c.0.send(publish("$SYS/broker/forged", QoS::AtLeastOnce, 1))
        .await;
    match c.0.recv().await {
        Packet::PubAck(a) => assert_eq!(a.reason, 0x87),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    let mut v3 = Client::connect(&b, Version::V3, &b.id("sys-v3", 1)).await;
    v3.publish("$SYS/fake", 1, "x", false).await;
    v3.settle().await;
    let leaked = tokio::time::timeout(Duration::from_millis(300), watcher.0.recv()).await;
    assert!(
        leaked.is_err(),
        "a client's $SYS publish was delivered: {leaked:?}"
    );
}

async fn a_jwt_in_the_password_field_authenticates_and_its_expiry_is_checked(shards: usize) {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let d = Dir::new("jwt", shards);
    let secret = d.file("secret");
    let key = b"a test secret of at least thirty-two bytes!!";
    std::fs::write(&secret, key).expect("write secret");
    let b = Broker::with(
        shards,
        &[
            "--config",
            &write_jwt_config(&d, &secret),
            "--allow-anonymous",
            "false",
        ],
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let token = |exp: u64| {
        encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({ "sub": "device-9", "exp": exp }),
            &EncodingKey::from_secret(key),
        )
        .expect("sign")
    };
    for (protocol, bad) in [(Protocol::V5, 0x86), (Protocol::V311, 4)] {
        let ok = with_credentials(
            protocol,
            &b.id("jwt", 1),
            "device-9",
            token(now + 600).as_bytes(),
        );
        assert_eq!(Raw::handshake(&b, ok).await.1.code, 0, "{protocol:?}");
        let old = with_credentials(
            protocol,
            &b.id("jwt-old", 0),
            "device-9",
            token(now - 600).as_bytes(),
        );
        assert_eq!(
            Raw::handshake(&b, old).await.1.code,
            bad,
            "{protocol:?} expired"
        );
        let forged = with_credentials(protocol, &b.id("jwt-bad", 0), "device-9", b"eyJ0.eyJ0.sig");
        assert_eq!(
            Raw::handshake(&b, forged).await.1.code,
            bad,
            "{protocol:?} forged"
        );
    }
    // A token that expires while connected: the client is disconnected (v5 0xA0).
    let soon = with_credentials(
        Protocol::V5,
        &b.id("jwt-soon", 1),
        "device-9",
        token(now + 2).as_bytes(),
    );
    let (mut c, ack) = Raw::handshake(&b, soon).await;
    assert_eq!(ack.code, 0);
    let (_, disconnect) = c.0.expect_refused(&[0xA0]).await;
    assert!(disconnect.is_some());
}

fn write_jwt_config(d: &Dir, secret: &std::path::Path) -> String {
    let cfg = d.file("ringmq.toml");
    std::fs::write(
        &cfg,
        format!(
            "jwt_secret_file = \"{}\"\njwt_algorithms = [\"HS256\"]\n",
            secret.display()
        ),
    )
    .expect("write config");
    cfg.to_str().expect("utf-8").to_string()
}
