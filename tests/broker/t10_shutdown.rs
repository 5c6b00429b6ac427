//! Area 10: the end of connections and of the broker. SIGTERM stops accepting, tells v5 clients
//! DISCONNECT 0x8B after flushing what they were owed, and exits 0 within a few seconds; a
//! refusal reaches the client before the close instead of being destroyed by a reset.

use crate::common::*;
use crate::raw_client::{field, frame};
use ringmq::codec::{Packet, Protocol};
use std::time::Duration;

shard_tests!(
    a_second_broker_on_a_busy_port_refuses_to_start,
    sigterm_flushes_tells_v5_clients_0x8b_and_exits_0,
    receive_maximum_exceeded_is_read_as_0x93_not_a_reset,
);

async fn sigterm_flushes_tells_v5_clients_0x8b_and_exits_0(shards: usize) {
    let mut b = Broker::start(shards).await;
    let (mut v5, _) = Raw::handshake(&b, connect_packet(Protocol::V5, &b.id("sd-v5", 0))).await;
    assert_eq!(v5.subscribe("sd/t", 0).await, [0]);
    let mut v3 = Raw::connect(&b, Protocol::V311, &b.id("sd-v3", 1)).await;
    assert_eq!(v3.subscribe("sd/t", 0).await, [0]);
    // Messages the subscribers have not read yet when the signal comes.
    let mut p = Client::connect(&b, Version::V3, &b.id("sd-pub", 1)).await;
    for i in 0..100 {
        p.publish("sd/t", 1, i.to_string(), false).await;
    }
    p.settle().await;
    let t0 = std::time::Instant::now();
    let status = b.terminate(Duration::from_secs(8)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "exits 0 on SIGTERM, got {status:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "within a few seconds"
    );
    let seen = v5.expect_close(WAIT).await;
    let publishes = seen
        .iter()
        .filter(|p| matches!(p, Packet::Publish(_)))
        .count();
    assert_eq!(publishes, 100, "everything owed was flushed first");
    match seen.last() {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, 0x8B, "server shutting down"),
        other => panic!("expected DISCONNECT 0x8B last, got {other:?}"),
    }
    let seen = v3.expect_close(WAIT).await;
    assert_eq!(seen.len(), 100, "v3: the messages, then a plain close");
    assert!(seen.iter().all(|p| matches!(p, Packet::Publish(_))));
}

async fn receive_maximum_exceeded_is_read_as_0x93_not_a_reset(shards: usize) {
    let b = Broker::with(shards, &["--receive-maximum", "2"]).await;
    let (mut raw, _) = Raw::handshake(&b, connect_packet(Protocol::V5, &b.id("rm", 0))).await;
    // Far more QoS 2 PUBLISHes than allowed, in one write, never released: the broker refuses
    // the third while most of the burst is still unread in its socket.
    let mut burst = Vec::new();
    for id in 1..=200u16 {
        burst.extend(publish_frame_v5(id, &[b'x'; 1024]));
    }
    raw.send_bytes(&burst).await;
    raw.expect_refused(&[0x93]).await;
}

/// A v5 QoS 2 PUBLISH to `rm/t` with packet id `id` and no properties.
fn publish_frame_v5(id: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = field(b"rm/t");
    body.extend(id.to_be_bytes());
    body.push(0); // property length
    body.extend(payload);
    frame(0x34, &body)
}

/// SO_REUSEPORT must not let a second broker join the first one's port and split its clients:
/// it exits with an error naming the port, and the first one serves on.
async fn a_second_broker_on_a_busy_port_refuses_to_start(shards: usize) {
    let mut b = Broker::start(shards).await;
    let second = tokio::process::Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .args(["--bind", &format!("127.0.0.1:{}", b.port), "--pin", "false"])
        .args(["--durability", "none"])
        .args(["--http-enabled", "false"])
        .args(["--shards", &shards.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("the second broker exits")
        .expect("ran");
    assert!(
        !out.status.success(),
        "a second broker started on a busy port"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&b.port.to_string()),
        "the error names the port: {err}"
    );
    b.assert_serving().await;
}
