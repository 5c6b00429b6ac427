//! QoS flows at the packet level, in both directions: PUBLISH/PUBACK and
//! PUBLISH/PUBREC/PUBREL/PUBCOMP, duplicate suppression, and packet identifiers.

use crate::common::*;
use ringmq::codec::{Packet, Publish};
use std::collections::BTreeSet;

version_tests!(
    mqtt_4_3_2_qos1_publish_is_acknowledged_with_puback,
    mqtt_4_3_3_qos2_publish_completes_with_pubrec_pubrel_pubcomp_and_is_delivered_once,
    mqtt_4_3_2_qos1_delivery_has_a_packet_id_and_completes_with_puback,
    mqtt_4_3_3_qos2_delivery_completes_with_pubrec_pubrel_pubcomp,
    mqtt_2_2_1_client_and_server_packet_ids_are_independent,
    mqtt_2_2_1_packet_ids_are_unique_per_session_and_allocated_per_session,
);

/// A rumqttc subscriber of `filter` on shard 0 and a raw client on shard 1.
async fn raw_publisher_and_subscriber(b: &Broker, v: Version, filter: &str) -> (Raw, Client) {
    let mut sub = Client::connect(b, v, &b.id("flow-sub", 0)).await;
    assert_eq!(sub.subscribe(filter, 2).await, 2);
    let raw = Raw::connect(b, v.protocol(), &b.id("flow-raw-pub", 1)).await;
    (raw, sub)
}

/// A raw subscriber of `filter` at `q` on shard 0 and a rumqttc publisher on shard 1.
async fn raw_subscriber_and_publisher(
    b: &Broker,
    v: Version,
    filter: &str,
    q: u8,
) -> (Raw, Client) {
    let mut raw = Raw::connect(b, v.protocol(), &b.id("flow-raw-sub", 0)).await;
    assert_eq!(raw.subscribe(filter, q).await, [q]);
    let publisher = Client::connect(b, v, &b.id("flow-pub", 1)).await;
    (raw, publisher)
}

async fn mqtt_4_3_2_qos1_publish_is_acknowledged_with_puback(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let (mut raw, mut sub) = raw_publisher_and_subscriber(&b, v, "f/1").await;
    raw.send(&publish_packet("f/1", 1, 10, b"one")).await;
    assert_eq!(
        raw.recv().await,
        Packet::PubAck(ack(10)),
        "PUBACK echoes the packet id"
    );
    let m = sub.recv().await;
    assert_eq!((m.text().as_str(), m.qos), ("one", 1));
    sub.expect_nothing(QUIET).await;
}

async fn mqtt_4_3_3_qos2_publish_completes_with_pubrec_pubrel_pubcomp_and_is_delivered_once(
    v: Version,
    shards: usize,
) {
    let b = Broker::start(shards).await;
    let (mut raw, mut sub) = raw_publisher_and_subscriber(&b, v, "f/2").await;
    raw.send(&publish_packet("f/2", 2, 11, b"two")).await;
    assert_eq!(raw.recv().await, Packet::PubRec(ack(11)));
    // Until PUBREL, a PUBLISH with the same id is acknowledged again but not delivered again
    // [MQTT-4.3.3-10] (v5) / [MQTT-4.3.3-2] (v3.1.1).
    let mut again = publish_packet("f/2", 2, 11, b"two");
    if let Packet::Publish(p) = &mut again {
        p.dup = true;
    }
    raw.send(&again).await;
    assert_eq!(raw.recv().await, Packet::PubRec(ack(11)));
    raw.send(&Packet::PubRel(ack(11))).await;
    assert_eq!(raw.recv().await, Packet::PubComp(ack(11)));
    let m = sub.recv().await;
    assert_eq!((m.text().as_str(), m.qos), ("two", 2));
    sub.expect_nothing(QUIET).await;
    // After PUBCOMP the id is free: the same id now carries a new message.
    raw.send(&publish_packet("f/2", 2, 11, b"three")).await;
    assert_eq!(raw.recv().await, Packet::PubRec(ack(11)));
    raw.send(&Packet::PubRel(ack(11))).await;
    assert_eq!(raw.recv().await, Packet::PubComp(ack(11)));
    assert_eq!(sub.recv().await.text(), "three");
}

fn assert_fresh_delivery(p: &Publish, q: u8, payload: &str) {
    assert_eq!(p.qos as u8, q);
    assert_ne!(
        p.packet_id, 0,
        "QoS > 0 carries a non-zero packet id [MQTT-2.2.1-3]"
    );
    assert!(!p.dup, "a first delivery has DUP 0 [MQTT-3.3.1-1]");
    assert_eq!(&p.payload[..], payload.as_bytes());
}

async fn mqtt_4_3_2_qos1_delivery_has_a_packet_id_and_completes_with_puback(
    v: Version,
    shards: usize,
) {
    let b = Broker::start(shards).await;
    let (mut raw, mut publisher) = raw_subscriber_and_publisher(&b, v, "d/1", 1).await;
    publisher.publish("d/1", 1, "first", false).await;
    publisher.publish("d/1", 1, "second", false).await;
    publisher.settle().await;
    let p1 = raw.recv_publish().await;
    let p2 = raw.recv_publish().await;
    assert_fresh_delivery(&p1, 1, "first");
    assert_fresh_delivery(&p2, 1, "second");
    assert_ne!(
        p1.packet_id, p2.packet_id,
        "two unacknowledged messages, two ids"
    );
    raw.send(&Packet::PubAck(ack(p1.packet_id))).await;
    raw.send(&Packet::PubAck(ack(p2.packet_id))).await;
    // Acknowledged: nothing is sent again.
    raw.expect_silence(QUIET).await;
}

async fn mqtt_4_3_3_qos2_delivery_completes_with_pubrec_pubrel_pubcomp(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let (mut raw, mut publisher) = raw_subscriber_and_publisher(&b, v, "d/2", 2).await;
    for text in ["x", "y"] {
        publisher.publish_settled("d/2", 2, text, false).await;
        let p = raw.recv_publish().await;
        assert_fresh_delivery(&p, 2, text);
        raw.send(&Packet::PubRec(ack(p.packet_id))).await;
        assert_eq!(raw.recv().await, Packet::PubRel(ack(p.packet_id)));
        raw.send(&Packet::PubComp(ack(p.packet_id))).await;
    }
    raw.expect_silence(QUIET).await;
}

async fn mqtt_2_2_1_client_and_server_packet_ids_are_independent(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let mut raw = Raw::connect(&b, v.protocol(), "echo").await;
    assert_eq!(raw.subscribe("ids/t", 2).await, [2]);
    // Our QoS 2 publish with id 1 comes back to us as the broker's own QoS 2 delivery, whose id
    // the broker picks from its own set (often 1 as well): both exchanges complete.
    raw.send(&publish_packet("ids/t", 2, 1, b"echo")).await;
    let mut delivery = None;
    let mut pubrec = false;
    for p in raw.recv_n(2).await {
        match p {
            Packet::PubRec(a) if a.packet_id == 1 => pubrec = true,
            Packet::Publish(p) => delivery = Some(p),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pubrec, "PUBREC for our publish");
    let delivery = delivery.expect("the broker's delivery to us");
    assert_fresh_delivery(&delivery, 2, "echo");
    let theirs = delivery.packet_id;
    raw.send(&Packet::PubRel(ack(1))).await;
    raw.send(&Packet::PubRec(ack(theirs))).await;
    let mut answers = raw.recv_n(2).await;
    answers.sort_by_key(|p| matches!(p, Packet::PubRel(_)));
    assert_eq!(
        answers,
        [Packet::PubComp(ack(1)), Packet::PubRel(ack(theirs))]
    );
    raw.send(&Packet::PubComp(ack(theirs))).await;
    raw.expect_silence(QUIET).await;
}

async fn mqtt_2_2_1_packet_ids_are_unique_per_session_and_allocated_per_session(
    v: Version,
    shards: usize,
) {
    let b = Broker::start(shards).await;
    let mut a = Raw::connect(&b, v.protocol(), &b.id("ids-a", 0)).await;
    assert_eq!(a.subscribe("ps/#", 1).await, [1]);
    let mut publisher = Client::connect(&b, v, &b.id("ids-pub", 1)).await;
    for i in 0..5 {
        publisher.publish("ps/a", 1, format!("a{i}"), false).await;
    }
    publisher.settle().await;
    let mut ids_a_seen = BTreeSet::new();
    for _ in 0..5 {
        let p = a.recv_publish().await;
        assert!(
            ids_a_seen.insert(p.packet_id),
            "id {} reused while unacknowledged",
            p.packet_id
        );
    }
    // A second session's numbering does not continue the first one's: ids are per session.
    let mut other = Raw::connect(&b, v.protocol(), &b.id("ids-b", 1)).await;
    assert_eq!(other.subscribe("ps/b", 1).await, [1]);
    publisher.publish_settled("ps/b", 1, "b0", false).await;
    let first_b = other.recv_publish().await.packet_id;
    assert!(
        ids_a_seen.contains(&first_b),
        "session B's first id {first_b} is one session A also uses ({ids_a_seen:?})"
    );
    // A gets the message too, with an id distinct from its five unacknowledged ones.
    let sixth = a.recv_publish().await.packet_id;
    assert!(
        !ids_a_seen.contains(&sixth),
        "id {sixth} is still in flight"
    );
}
