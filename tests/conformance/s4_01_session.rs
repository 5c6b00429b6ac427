//! Sections 4.1 and 4.5: session state — kept while connected, discarded after expiry, and
//! messages added to the session of every matching subscriber.

use crate::fixture::*;
use std::time::Duration;

/// [MQTT-4.1.0-1] The session is not discarded while the connection is open, even past its
/// Session Expiry Interval (1 s here).
#[tokio::test]
async fn mqtt_4_1_0_1_session_kept_while_connected() {
    let b = Broker::start().await;
    let mut s = Raw::connect(&b, persistent(v5("s"), 1)).await;
    s.subscribe("t", 1).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        s.ping().await;
    }
    Raw::v5(&b, "p").await.publish("t", 1, b"still here").await;
    assert_eq!(&s.recv_acked().await.payload[..], b"still here");
}

/// [MQTT-4.1.0-2] After the connection closes, the session is discarded once its Session
/// Expiry Interval has passed — and not before.
#[tokio::test]
async fn mqtt_4_1_0_2_session_discarded_after_expiry() {
    let b = Broker::start().await;
    for (id, expiry) in [("early", 2), ("late", 1)] {
        let mut s = Raw::connect(&b, persistent(v5(id), expiry)).await;
        s.subscribe("t", 1).await;
        s.drop_tcp().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_early, ack) = Raw::handshake(&b, persistent(v5("early"), 2)).await;
    assert!(
        ack.session_present,
        "200 ms into a 2 s expiry the session is still there"
    );
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let (_late, ack) = Raw::handshake(&b, persistent(v5("late"), 1)).await;
    assert!(!ack.session_present, "2.2 s into a 1 s expiry it is gone");
}

/// 3.2.2.3.2 (no statement number): a server may lower the Session Expiry Interval the client
/// asked for, and then says so in CONNACK.
#[tokio::test]
async fn sec_3_2_2_3_2_session_expiry_capped_and_announced() {
    let b = Broker::with(&["--session-expiry-max-s", "1"]).await;
    let (_c, ack) = Raw::handshake(&b, persistent(v5("c"), 3600)).await;
    assert_eq!(ack.properties.session_expiry_interval_s, Some(1));
}

/// [MQTT-4.5.0-1] A message the server took ownership of is added to the session of every
/// client with a matching subscription — connected or not, on any shard.
async fn mqtt_4_5_0_1_message_added_to_every_matching_session(shards: usize) {
    let b = Broker::shards(shards, &[]).await;
    let off = b.id("offline", 0);
    let mut s = Raw::connect(&b, persistent(v5(&off), 60)).await;
    s.subscribe("t/+", 1).await;
    s.disconnect().await;
    let mut on1 = Raw::v5(&b, &b.id("online-a", 1)).await;
    on1.subscribe("t/#", 1).await;
    let mut on2 = Raw::v3(&b, &b.id("online-b", 0)).await;
    on2.subscribe("+/x", 2).await;
    Raw::v5(&b, &b.id("pub", 1))
        .await
        .publish("t/x", 2, b"all")
        .await;
    assert_eq!(&on1.recv_acked().await.payload[..], b"all");
    assert_eq!(&on2.recv_acked().await.payload[..], b"all");
    let (mut s, _) = Raw::handshake(&b, persistent(v5(&off), 60)).await;
    assert_eq!(&s.recv_acked().await.payload[..], b"all");
}
shard_tests!(mqtt_4_5_0_1_message_added_to_every_matching_session);
