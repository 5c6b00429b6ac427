//! Area 12: who may connect. Anonymous clients (no credentials) are admitted by default only on
//! loopback listeners; `allow_anonymous` (global, or per listener, which wins) decides
//! otherwise. A refused client gets CONNACK 0x87 Not authorized (v5) or return code 5 (v3), as
//! from Mosquitto, and nobody else notices.

use crate::broker_process::PortLease;
use crate::common::*;
use ringmq::codec::Protocol;

shard_tests!(
    allow_anonymous_false_refuses_clients_without_credentials,
    a_listeners_own_allow_anonymous_overrides_the_global_one,
);

async fn allow_anonymous_false_refuses_clients_without_credentials(shards: usize) {
    let mut b = Broker::with(shards, &["--allow-anonymous", "false"]).await;
    for (protocol, code) in [
        (Protocol::V5, 0x87),
        (Protocol::V311, 5),
        (Protocol::V310, 5),
    ] {
        let id = b.id("anon", 1);
        let id = if protocol == Protocol::V310 {
            "anon-v31".to_string()
        } else {
            id
        };
        let (_raw, ack) = Raw::handshake(&b, connect_packet(protocol, &id)).await;
        assert_eq!(ack.code, code, "{protocol:?}");
        assert!(!ack.session_present);
    }
    b.assert_alive();
}

async fn a_listeners_own_allow_anonymous_overrides_the_global_one(shards: usize) {
    // Global: refuse. A second listener that admits anonymous clients anyway.
    let open = PortLease::acquire();
    let dir = std::env::temp_dir().join(format!("ringmq-access-{}-{shards}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let file = dir.join("ringmq.toml");
    std::fs::write(
        &file,
        format!(
            "allow_anonymous = false\n[[listener]]\nbind = \"127.0.0.1:{}\"\nallow_anonymous = true\n",
            open.port
        ),
    )
    .expect("write config");
    let b = Broker::with(shards, &["--config", file.to_str().expect("utf-8")]).await;
    let (_refused, ack) = Raw::handshake(&b, connect_packet(Protocol::V5, &b.id("a", 0))).await;
    assert_eq!(
        ack.code, 0x87,
        "the global setting applies to the --bind listener"
    );
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", open.port))
        .await
        .expect("the second listener accepts");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A v3.1.1 CONNECT, clean session, client id "b".
    s.write_all(&[
        0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 30, 0, 1, b'b',
    ])
    .await
    .expect("write CONNECT");
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack).await.expect("CONNACK");
    assert_eq!(
        connack,
        [0x20, 2, 0, 0],
        "admitted on the listener that allows it"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
