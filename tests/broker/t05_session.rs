//! Sessions: persistence of subscriptions and queued messages while offline, retransmission of
//! unacknowledged messages on reconnect, QoS 0 while offline, clean start, v5 session expiry.

use crate::common::*;
use ringmq::codec::{Connect, Disconnect, Packet, Properties, Protocol};
use std::time::Duration;

version_tests!(
    mqtt_3_1_2_4_persistent_session_keeps_subscriptions_and_queues_qos1_and_qos2,
    mqtt_4_4_0_1_unacknowledged_qos1_is_resent_with_dup_and_the_same_packet_id,
    mqtt_4_4_0_1_unacknowledged_pubrel_is_resent_after_reconnect,
    qos0_is_not_queued_for_an_offline_session_by_default,
    qos0_is_queued_for_an_offline_session_when_configured,
    mqtt_3_1_2_6_clean_start_discards_the_stored_session,
    mqtt_4_3_3_incoming_qos2_state_survives_a_reconnect,
);

shard_tests!(
    mqtt_3_1_2_11_v5_session_ends_when_its_expiry_interval_has_passed,
    mqtt_3_1_2_11_v5_session_expiry_0_ends_the_session_at_disconnect,
    mqtt_3_14_2_2_v5_disconnect_may_not_set_expiry_when_connect_had_0,
    v5_disconnect_session_expiry_0_ends_a_persistent_session,
);

/// A persistent session `id` (homed on shard 0) subscribed to `filter` at QoS 2, then
/// disconnected normally.
async fn offline_subscriber(b: &Broker, v: Version, name: &str, filter: &str) -> String {
    let id = b.id(name, 0);
    let mut c = Client::connect_with(b, v, &id, Opts::persistent()).await;
    assert_eq!(c.subscribe(filter, 2).await, 2);
    c.disconnect().await;
    id
}

async fn publisher(b: &Broker, v: Version) -> Client {
    Client::connect(b, v, &b.id("session-pub", 1)).await
}

async fn resume(b: &Broker, v: Version, id: &str) -> Client {
    let c = Client::connect_with(b, v, id, Opts::persistent()).await;
    assert!(c.connack.session_present, "{id}: session present");
    c
}

async fn mqtt_3_1_2_4_persistent_session_keeps_subscriptions_and_queues_qos1_and_qos2(
    v: Version,
    shards: usize,
) {
    let b = Broker::start(shards).await;
    let id = offline_subscriber(&b, v, "keeper", "p/#").await;
    let mut p = publisher(&b, v).await;
    p.publish("p/a", 1, "q1", false).await;
    p.publish("p/a", 2, "q2", false).await;
    p.publish("p/a", 0, "q0", false).await;
    p.settle().await;
    let mut c = resume(&b, v, &id).await;
    let got = c.drain(Duration::from_millis(500)).await;
    assert_eq!(texts(&got), ["q1", "q2"], "QoS 1 and 2 queued, QoS 0 not");
    assert_eq!((got[0].qos, got[1].qos), (1, 2));
    // The subscription survived: live messages arrive without subscribing again.
    p.publish_settled("p/b", 1, "live", false).await;
    assert_eq!(c.recv().await.text(), "live");
}

/// Connect `id` with clean start 0 (v5: session expiry 300 s) through a raw client; returns
/// it with the session present flag.
async fn raw_persistent(b: &Broker, protocol: Protocol, id: &str) -> (Raw, bool) {
    raw_persistent_with(b, protocol, id, 300).await
}

async fn raw_persistent_with(
    b: &Broker,
    protocol: Protocol,
    id: &str,
    expiry_s: u32,
) -> (Raw, bool) {
    let c = Connect {
        clean_start: false,
        properties: Properties {
            session_expiry_interval_s: protocol.is_v5().then_some(expiry_s),
            ..Properties::default()
        },
        ..connect_packet(protocol, id)
    };
    let (raw, ack) = Raw::handshake(b, c).await;
    assert_eq!(ack.code, 0);
    (raw, ack.session_present)
}

async fn mqtt_4_4_0_1_unacknowledged_qos1_is_resent_with_dup_and_the_same_packet_id(
    v: Version,
    shards: usize,
) {
    let b = Broker::start(shards).await;
    let id = b.id("resend1", 0);
    let (mut raw, _) = raw_persistent(&b, v.protocol(), &id).await;
    assert_eq!(raw.subscribe("dup/t", 1).await, [1]);
    let mut p = publisher(&b, v).await;
    p.publish_settled("dup/t", 1, "m1", false).await;
    let first = raw.recv_publish().await;
    assert!(!first.dup);
    // No PUBACK: drop the connection and come back (several times: with 2 shards the new
    // connection may be accepted on either shard and handed over).
    for _ in 0..3 {
        raw.drop_connection().await;
        let (again, present) = raw_persistent(&b, v.protocol(), &id).await;
        raw = again;
        assert!(present);
        let resent = raw.recv_publish().await;
        assert!(resent.dup, "a redelivery has DUP 1 [MQTT-3.3.1-1]");
        assert_eq!(
            resent.packet_id, first.packet_id,
            "original packet id [MQTT-4.4.0-1]"
        );
        assert_eq!(
            (resent.topic, resent.payload),
            (first.topic.clone(), first.payload.clone())
        );
    }
    raw.send(&Packet::PubAck(ack(first.packet_id))).await;
    raw.expect_silence(QUIET).await;
    raw.drop_connection().await;
    let (mut raw, _) = raw_persistent(&b, v.protocol(), &id).await;
    raw.expect_silence(QUIET).await;
}

async fn mqtt_4_4_0_1_unacknowledged_pubrel_is_resent_after_reconnect(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let id = b.id("resend2", 0);
    let (mut raw, _) = raw_persistent(&b, v.protocol(), &id).await;
    assert_eq!(raw.subscribe("dup/q2", 2).await, [2]);
    let mut p = publisher(&b, v).await;
    p.publish_settled("dup/q2", 2, "m2", false).await;
    let delivery = raw.recv_publish().await;
    raw.send(&Packet::PubRec(ack(delivery.packet_id))).await;
    assert_eq!(raw.recv().await, Packet::PubRel(ack(delivery.packet_id)));
    // No PUBCOMP: on reconnect the PUBREL comes again, not the PUBLISH.
    raw.drop_connection().await;
    let (mut raw, present) = raw_persistent(&b, v.protocol(), &id).await;
    assert!(present);
    assert_eq!(raw.recv().await, Packet::PubRel(ack(delivery.packet_id)));
    raw.send(&Packet::PubComp(ack(delivery.packet_id))).await;
    raw.expect_silence(QUIET).await;
}

async fn mqtt_4_3_3_incoming_qos2_state_survives_a_reconnect(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let mut sub = Client::connect(&b, v, &b.id("q2-watch", 1)).await;
    assert_eq!(sub.subscribe("in2/t", 2).await, 2);
    let id = b.id("q2-sender", 0);
    let (mut raw, _) = raw_persistent(&b, v.protocol(), &id).await;
    raw.send(&publish_packet("in2/t", 2, 9, b"once")).await;
    assert_eq!(raw.recv().await, Packet::PubRec(ack(9)));
    // Connection lost before PUBREL: the client resends the PUBLISH with DUP [MQTT-4.4.0-1];
    // the broker still owns the message, so it acknowledges without delivering it again.
    raw.drop_connection().await;
    let (mut raw, present) = raw_persistent(&b, v.protocol(), &id).await;
    assert!(present);
    let mut again = publish_packet("in2/t", 2, 9, b"once");
    if let Packet::Publish(p) = &mut again {
        p.dup = true;
    }
    raw.send(&again).await;
    assert_eq!(raw.recv().await, Packet::PubRec(ack(9)));
    raw.send(&Packet::PubRel(ack(9))).await;
    assert_eq!(raw.recv().await, Packet::PubComp(ack(9)));
    assert_eq!(
        texts(&sub.drain(QUIET).await),
        ["once"],
        "delivered exactly once"
    );
}

async fn qos0_offline(v: Version, shards: usize, queue_qos0: bool) -> Vec<String> {
    let flag = if queue_qos0 { "true" } else { "false" };
    let b = Broker::with(shards, &["--queue-qos0-offline", flag]).await;
    let id = offline_subscriber(&b, v, "q0", "z/#").await;
    let mut p = publisher(&b, v).await;
    p.publish("z/t", 0, "zero", false).await;
    p.publish("z/t", 1, "one", false).await;
    p.settle().await;
    let mut c = resume(&b, v, &id).await;
    texts(&c.drain(Duration::from_millis(500)).await)
}

async fn qos0_is_not_queued_for_an_offline_session_by_default(v: Version, shards: usize) {
    assert_eq!(qos0_offline(v, shards, false).await, ["one"]);
}

async fn qos0_is_queued_for_an_offline_session_when_configured(v: Version, shards: usize) {
    assert_eq!(qos0_offline(v, shards, true).await, ["zero", "one"]);
}

async fn mqtt_3_1_2_6_clean_start_discards_the_stored_session(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let id = offline_subscriber(&b, v, "discard", "cs/#").await;
    let mut p = publisher(&b, v).await;
    p.publish_settled("cs/t", 1, "queued", false).await;
    let mut c = Client::connect(&b, v, &id).await;
    assert!(!c.connack.session_present);
    c.expect_nothing(QUIET).await;
    // The subscription went with the session.
    p.publish_settled("cs/t", 1, "live", false).await;
    c.expect_nothing(QUIET).await;
}

/// A v5 session `id` with clean start 0 and `expiry_s`, subscribed to "ex/#", disconnected;
/// returns whether connecting that way found a session.
async fn v5_session(b: &Broker, id: &str, expiry_s: u32) -> bool {
    let opts = Opts::persistent().expiry(expiry_s);
    let mut c = Client::connect_with(b, Version::V5, id, opts).await;
    let present = c.connack.session_present;
    assert_eq!(c.subscribe("ex/#", 1).await, 1);
    c.disconnect().await;
    present
}

async fn mqtt_3_1_2_11_v5_session_ends_when_its_expiry_interval_has_passed(shards: usize) {
    let b = Broker::start(shards).await;
    let id = b.id("expiring", 0);
    assert!(!v5_session(&b, &id, 1).await);
    assert!(
        v5_session(&b, &id, 1).await,
        "resumed within the 1 s expiry"
    );
    let mut p = publisher(&b, Version::V5).await;
    p.publish_settled("ex/t", 1, "lost", false).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let mut c = Client::connect_with(&b, Version::V5, &id, Opts::persistent().expiry(1)).await;
    assert!(!c.connack.session_present, "the session expired after 1 s");
    c.expect_nothing(QUIET).await;
}

async fn mqtt_3_1_2_11_v5_session_expiry_0_ends_the_session_at_disconnect(shards: usize) {
    let b = Broker::start(shards).await;
    let id = b.id("no-expiry", 0);
    assert!(!v5_session(&b, &id, 0).await);
    assert!(
        !v5_session(&b, &id, 0).await,
        "clean start 0 with expiry 0 keeps nothing"
    );
}

/// A raw v5 client with clean start 0 and session expiry `expiry_s`, subscribed to "de/#".
async fn raw_v5_with_expiry(b: &Broker, id: &str, expiry_s: u32) -> Raw {
    let (mut raw, _) = raw_persistent_with(b, Protocol::V5, id, expiry_s).await;
    assert_eq!(raw.subscribe("de/#", 1).await, [1]);
    raw
}

fn disconnect_with_expiry(expiry_s: u32) -> Packet {
    Packet::Disconnect(Disconnect {
        reason: 0,
        properties: Properties {
            session_expiry_interval_s: Some(expiry_s),
            ..Properties::default()
        },
    })
}

async fn mqtt_3_14_2_2_v5_disconnect_may_not_set_expiry_when_connect_had_0(shards: usize) {
    let b = Broker::start(shards).await;
    let mut raw = raw_v5_with_expiry(&b, "zero-then-more", 0).await;
    raw.send(&disconnect_with_expiry(60)).await;
    raw.expect_refused(&[0x82]).await;
}

async fn v5_disconnect_session_expiry_0_ends_a_persistent_session(shards: usize) {
    let b = Broker::start(shards).await;
    let id = b.id("shorten", 0);
    let mut raw = raw_v5_with_expiry(&b, &id, 300).await;
    raw.send(&disconnect_with_expiry(0)).await;
    assert!(raw.expect_close(WAIT).await.is_empty());
    let c = Client::connect_with(&b, Version::V5, &id, Opts::persistent()).await;
    assert!(
        !c.connack.session_present,
        "DISCONNECT lowered the expiry to 0 [MQTT-3.14.2]"
    );
}
