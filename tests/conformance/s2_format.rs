//! Section 2: packet format — reserved flags, packet identifiers, property length.

use crate::fixture::*;
use ringmq::codec::{Packet, Protocol, QoS};

/// [MQTT-2.1.3-1] Flag bits marked "Reserved" must have the value listed; anything else is a
/// Malformed Packet (here a PINGREQ with flags 0001).
#[tokio::test]
async fn mqtt_2_1_3_1_wrong_reserved_flags_are_malformed() {
    let b = Broker::start().await;
    assert_v5_violation(&b, &[0xC1, 0x00], &[0x81]).await;
}

/// [MQTT-2.2.1-2] A QoS 0 PUBLISH has no Packet Identifier: the bytes the broker forwards are
/// exactly header, topic, property length and payload.
#[tokio::test]
async fn mqtt_2_2_1_2_qos0_publish_has_no_packet_identifier() {
    let b = Broker::start().await;
    let mut s = Raw::v5(&b, "sub").await;
    s.subscribe("t", 1).await;
    let mut p = Raw::v5(&b, "pub").await;
    p.publish("t", 0, b"x").await;
    let bytes = s.next_frame(WAIT).await.expect("a PUBLISH");
    assert_eq!(bytes, [0x30, 5, 0, 1, b't', 0, b'x']);
}

/// [MQTT-2.2.1-3] A client must give each new SUBSCRIBE, UNSUBSCRIBE and QoS > 0 PUBLISH a
/// non-zero Packet Identifier: the broker refuses 0.
#[tokio::test]
async fn mqtt_2_2_1_3_zero_packet_identifier_is_refused() {
    let b = Broker::start().await;
    let publish = raw_publish(0x32, b"t", Some(0), &[], b"x");
    assert_v5_violation(&b, &publish, &[0x81, 0x82]).await;
    let mut body = vec![0, 0, 0];
    body.extend(field(b"t"));
    body.push(1);
    assert_v5_violation(&b, &frame(0x82, &body), &[0x81, 0x82]).await;
    let mut body = vec![0, 0, 0];
    body.extend(field(b"t"));
    assert_v5_violation(&b, &frame(0xA2, &body), &[0x81, 0x82]).await;
}

/// [MQTT-2.2.1-4] The server gives each new QoS > 0 PUBLISH a non-zero Packet Identifier that
/// is not in use. Also [MQTT-4.3.2-1], [MQTT-4.3.2-2] (first send has DUP 0),
/// [MQTT-4.3.3-1], [MQTT-4.3.3-2].
#[tokio::test]
async fn mqtt_2_2_1_4_server_packet_identifiers_are_nonzero_and_unused() {
    let b = Broker::start().await;
    let mut s = Raw::v5(&b, "sub").await;
    s.subscribe("t/+", 2).await;
    let mut p = Raw::v5(&b, "pub").await;
    for i in 0..10u8 {
        let topic = if i % 2 == 0 { "t/1" } else { "t/2" };
        p.publish(topic, 1 + i % 2, &[i]).await;
    }
    let mut ids = Vec::new();
    for _ in 0..10 {
        let m = s.recv_publish().await;
        assert!(!m.dup, "a first transmission has DUP 0");
        assert_ne!(m.qos, QoS::AtMostOnce);
        ids.push(m.packet_id);
    }
    assert!(ids.iter().all(|&id| id != 0), "{ids:?}");
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        ids.len(),
        "ids of unacknowledged PUBLISHes are distinct: {ids:?}"
    );
}

/// [MQTT-2.2.1-5] PUBACK, PUBREC, PUBREL and PUBCOMP carry the Packet Identifier of the PUBLISH
/// they acknowledge — checked both for the broker as receiver and as sender. Also
/// [MQTT-4.3.2-4], [MQTT-4.3.3-4], [MQTT-4.3.3-8], [MQTT-4.3.3-11].
#[tokio::test]
async fn mqtt_2_2_1_5_acks_carry_the_publish_packet_identifier() {
    let b = Broker::start().await;
    let mut s = Raw::v5(&b, "sub").await;
    s.subscribe("t", 2).await;
    let mut p = Raw::v5(&b, "pub").await;
    p.send(Packet::Publish(publish("t", 1, 0x1234, b"one")))
        .await;
    assert_eq!(p.recv().await, Packet::PubAck(ack(0x1234, 0)));
    p.send(Packet::Publish(publish("t", 2, 0xBEEF, b"two")))
        .await;
    assert_eq!(p.recv().await, Packet::PubRec(ack(0xBEEF, 0)));
    p.send(Packet::PubRel(ack(0xBEEF, 0))).await;
    assert_eq!(p.recv().await, Packet::PubComp(ack(0xBEEF, 0)));
    // Broker as sender: its PUBREL repeats the id of its PUBLISH.
    let m1 = s.recv_acked().await;
    let m2 = s.recv_publish().await;
    assert_eq!((m1.qos, m2.qos), (QoS::AtLeastOnce, QoS::ExactlyOnce));
    s.send(Packet::PubRec(ack(m2.packet_id, 0))).await;
    assert_eq!(s.recv().await, Packet::PubRel(ack(m2.packet_id, 0)));
    s.send(Packet::PubComp(ack(m2.packet_id, 0))).await;
    s.expect_silence(QUIET).await;
}

/// [MQTT-2.2.1-6] SUBACK and UNSUBACK carry the Packet Identifier of their request, here with
/// several requests in flight at once.
#[tokio::test]
async fn mqtt_2_2_1_6_suback_and_unsuback_echo_the_identifier() {
    let b = Broker::start().await;
    let mut c = Raw::v5(&b, "c").await;
    for id in [0xFFFF, 1, 0x8000] {
        c.send(Packet::Subscribe(subscribe(id, &[("a", sub(1))])))
            .await;
    }
    for id in [0xFFFF, 1, 0x8000] {
        assert!(matches!(c.recv().await, Packet::SubAck(a) if a.packet_id == id));
    }
    c.send(unsubscribe_packet(0x4242, &["a"])).await;
    c.send(unsubscribe_packet(7, &["a"])).await;
    assert!(matches!(c.recv().await, Packet::UnsubAck(a) if a.packet_id == 0x4242));
    assert!(matches!(c.recv().await, Packet::UnsubAck(a) if a.packet_id == 7));
}

/// [MQTT-2.2.2-1] A packet without properties says so with a Property Length of 0 (checked on
/// the bytes of SUBACK and UNSUBACK, which always carry a property length in v5).
#[tokio::test]
async fn mqtt_2_2_2_1_no_properties_is_a_zero_property_length() {
    let b = Broker::start().await;
    let mut c = Raw::v5(&b, "c").await;
    c.send(Packet::Subscribe(subscribe(9, &[("a", sub(1))])))
        .await;
    assert_eq!(
        c.next_frame(WAIT).await.expect("SUBACK"),
        [0x90, 4, 0, 9, 0, 1]
    );
    c.send_bytes(&wire(&unsubscribe_packet(10, &["a"]), Protocol::V5))
        .await;
    assert_eq!(
        c.next_frame(WAIT).await.expect("UNSUBACK"),
        [0xB0, 4, 0, 10, 0, 0]
    );
}
