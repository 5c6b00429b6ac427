//! Sections 4.3 and 4.4: the QoS 0, 1 and 2 delivery protocols, with the broker as sender and
//! as receiver, and message delivery retry.

use crate::fixture::*;
use ringmq::codec::{Packet, Publish, QoS};
use std::time::Duration;

/// A persistent subscriber "s" on "t" at `q`, connected, and a publisher "p".
async fn session(b: &Broker, q: u8) -> (Raw, Raw) {
    let mut s = Raw::connect(b, persistent(v5("s"), 60)).await;
    s.subscribe("t", q).await;
    (s, Raw::v5(b, "p").await)
}

/// Reconnect "s" (clean start 0) and check the session was there.
async fn resume(b: &Broker) -> Raw {
    let (s, ack) = Raw::handshake(b, persistent(v5("s"), 60)).await;
    assert!(ack.session_present);
    s
}

/// [MQTT-4.3.1-1] QoS 0: the server sends the PUBLISH with QoS 0 and DUP 0 (the first bytes
/// on the wire: type 3, flags 0000).
#[tokio::test]
async fn mqtt_4_3_1_1_qos0_is_sent_with_dup_0() {
    let b = Broker::start().await;
    let (mut s, mut p) = session(&b, 2).await;
    p.publish("t", 0, b"x").await;
    let f = s.next_frame(WAIT).await.expect("PUBLISH");
    assert_eq!(f[0], 0x30);
}

/// [MQTT-4.3.2-3] QoS 1: the PUBLISH stays unacknowledged until PUBACK — resent (DUP 1) when
/// the session resumes without it, never resent once acknowledged.
#[tokio::test]
async fn mqtt_4_3_2_3_qos1_unacknowledged_until_puback() {
    let b = Broker::start().await;
    let (mut s, mut p) = session(&b, 1).await;
    p.publish("t", 1, b"x").await;
    let first = s.recv_publish().await;
    s.drop_tcp().await;
    let mut s = resume(&b).await;
    let again = s.recv_publish().await;
    assert_eq!((again.dup, again.packet_id), (true, first.packet_id));
    s.ack(&again).await;
    s.disconnect().await;
    let mut s = resume(&b).await;
    s.expect_silence(QUIET).await;
}

/// [MQTT-4.3.2-5] After PUBACK, a PUBLISH with the same packet id is a new message (whatever
/// its DUP flag): the broker delivers it again.
#[tokio::test]
async fn mqtt_4_3_2_5_same_id_after_puback_is_a_new_message() {
    same_id_twice(1).await;
}

/// Two complete QoS `q` flows with the same packet id (the second with DUP 1): both messages
/// are delivered.
async fn same_id_twice(q: u8) {
    let b = Broker::start().await;
    let (mut s, mut p) = session(&b, q).await;
    p.publish_packet(publish("t", q, 9, b"first")).await;
    let mut again = publish("t", q, 9, b"second");
    again.dup = true;
    p.publish_packet(again).await;
    assert_eq!(payloads(&s.recv_n(2).await), ["first", "second"]);
}

/// [MQTT-4.3.3-3] QoS 2: the PUBLISH stays unacknowledged until PUBREC — resent with DUP 1
/// and its packet id when the session resumes.
#[tokio::test]
async fn mqtt_4_3_3_3_qos2_publish_unacknowledged_until_pubrec() {
    let b = Broker::start().await;
    let (mut s, mut p) = session(&b, 2).await;
    p.publish("t", 2, b"x").await;
    let first = s.recv_publish().await;
    assert!(!first.dup);
    s.drop_tcp().await;
    let mut s = resume(&b).await;
    let again = s.recv_publish().await;
    assert_eq!(
        (again.dup, again.packet_id, again.qos),
        (true, first.packet_id, QoS::ExactlyOnce)
    );
    s.ack(&again).await;
}

/// [MQTT-4.3.3-4] On PUBREC (reason < 0x80) the sender sends PUBREL with the same id.
#[tokio::test]
async fn mqtt_4_3_3_4_pubrel_answers_pubrec() {
    let b = Broker::start().await;
    released_qos2(&b).await;
}

/// A QoS 2 message to session "s", PUBREC'd by it and answered with PUBREL (checked).
/// Returns the subscriber and the packet id.
async fn released_qos2(b: &Broker) -> (Raw, u16) {
    let (mut s, mut p) = session(b, 2).await;
    p.publish("t", 2, b"x").await;
    let m = s.recv_publish().await;
    s.send(Packet::PubRec(ack(m.packet_id, 0))).await;
    assert_eq!(s.recv().await, Packet::PubRel(ack(m.packet_id, 0)));
    (s, m.packet_id)
}

/// [MQTT-4.3.3-5], [MQTT-4.3.3-6] The PUBREL stays unacknowledged until PUBCOMP (resent on
/// resume), and once it was sent the PUBLISH is never sent again.
#[tokio::test]
async fn mqtt_4_3_3_5_pubrel_resent_until_pubcomp_publish_never_again() {
    let b = Broker::start().await;
    let (s, id) = released_qos2(&b).await;
    s.drop_tcp().await;
    let mut s = resume(&b).await;
    assert_eq!(
        s.recv().await,
        Packet::PubRel(ack(id, 0)),
        "PUBREL again, no PUBLISH"
    );
    s.send(Packet::PubComp(ack(id, 0))).await;
    s.expect_silence(QUIET).await;
    s.disconnect().await;
    let mut s = resume(&b).await;
    s.expect_silence(QUIET).await;
}

/// [MQTT-4.3.3-7] Once the QoS 2 PUBLISH has been sent, message expiry no longer applies: the
/// unacknowledged message is resent on resume even after its expiry interval (1 s) passed.
#[tokio::test]
async fn mqtt_4_3_3_7_no_expiry_once_the_qos2_publish_was_sent() {
    let b = Broker::start().await;
    let (mut s, mut p) = session(&b, 2).await;
    let mut m = publish("t", 2, 0, b"x");
    m.properties.message_expiry_interval_s = Some(1);
    p.publish_packet(m).await;
    let first = s.recv_publish().await;
    s.drop_tcp().await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut s = resume(&b).await;
    let again = s.recv_publish().await;
    assert_eq!((again.dup, again.packet_id), (true, first.packet_id));
}

/// [MQTT-4.3.3-10] Until PUBREL, a PUBLISH with the same id is acknowledged with PUBREC again
/// and not delivered twice.
#[tokio::test]
async fn mqtt_4_3_3_10_retransmitted_qos2_publish_is_not_delivered_twice() {
    let b = Broker::start().await;
    let (mut s, mut p) = session(&b, 2).await;
    let m = publish("t", 2, 7, b"once");
    p.send(Packet::Publish(m.clone())).await;
    assert!(matches!(p.recv().await, Packet::PubRec(a) if a.packet_id == 7));
    let resend = Publish { dup: true, ..m };
    p.send(Packet::Publish(resend)).await;
    assert!(matches!(p.recv().await, Packet::PubRec(a) if a.packet_id == 7));
    p.send(Packet::PubRel(ack(7, 0))).await;
    assert_eq!(p.recv().await, Packet::PubComp(ack(7, 0)));
    assert_eq!(payloads(&s.recv_n(1).await), ["once"]);
    s.expect_silence(QUIET).await;
}

/// [MQTT-4.3.3-12] After PUBCOMP, a PUBLISH with the same id is a new message.
#[tokio::test]
async fn mqtt_4_3_3_12_same_id_after_pubcomp_is_a_new_message() {
    same_id_twice(2).await;
}

/// [MQTT-4.3.3-13] The QoS 2 acknowledgement sequence goes on even after the message expired.
#[tokio::test]
async fn mqtt_4_3_3_13_qos2_flow_completes_after_expiry() {
    let b = Broker::start().await;
    let mut p = Raw::v5(&b, "p").await;
    let mut m = publish("t", 2, 3, b"x");
    m.properties.message_expiry_interval_s = Some(1);
    p.send(Packet::Publish(m)).await;
    assert!(matches!(p.recv().await, Packet::PubRec(a) if a.packet_id == 3));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    p.send(Packet::PubRel(ack(3, 0))).await;
    assert_eq!(p.recv().await, Packet::PubComp(ack(3, 0)));
}

/// [MQTT-4.4.0-1] On resume the server resends unacknowledged PUBLISHes (DUP 1) and PUBRELs
/// with their original ids, in order — and resends nothing while the connection lasts.
/// (Also checks the server side of [MQTT-4.6.0-1]: the original order.)
#[tokio::test]
async fn mqtt_4_4_0_1_unacknowledged_packets_resent_on_resume_only() {
    let b = Broker::start().await;
    let (mut s, mut p) = session(&b, 2).await;
    p.publish("t", 1, b"m1").await;
    p.publish("t", 2, b"m2").await;
    p.publish("t", 1, b"m3").await;
    let m: Vec<Publish> = vec![
        s.recv_publish().await,
        s.recv_publish().await,
        s.recv_publish().await,
    ];
    assert_eq!(payloads(&m), ["m1", "m2", "m3"]);
    s.send(Packet::PubRec(ack(m[1].packet_id, 0))).await;
    assert_eq!(s.recv().await, Packet::PubRel(ack(m[1].packet_id, 0)));
    s.expect_silence(Duration::from_millis(1200)).await;
    s.drop_tcp().await;
    let mut s = resume(&b).await;
    let mut publishes = Vec::new();
    let mut pubrel = None;
    for _ in 0..3 {
        match s.recv().await {
            Packet::Publish(x) => publishes.push(x),
            Packet::PubRel(a) => pubrel = Some(a.packet_id),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(pubrel, Some(m[1].packet_id));
    assert_eq!(payloads(&publishes), ["m1", "m3"]);
    assert!(publishes.iter().all(|x| x.dup));
    assert_eq!(
        publishes.iter().map(|x| x.packet_id).collect::<Vec<_>>(),
        [m[0].packet_id, m[2].packet_id]
    );
}

/// [MQTT-4.4.0-2] A PUBACK or PUBREC with a reason of 0x80 or more acknowledges the PUBLISH:
/// it is never retransmitted (and a failed PUBREC gets no PUBREL).
#[tokio::test]
async fn mqtt_4_4_0_2_failed_acknowledgement_is_not_retransmitted() {
    let b = Broker::start().await;
    let (mut s, mut p) = session(&b, 2).await;
    p.publish("t", 1, b"refused 1").await;
    p.publish("t", 2, b"refused 2").await;
    let m1 = s.recv_publish().await;
    let m2 = s.recv_publish().await;
    s.send(Packet::PubAck(ack(m1.packet_id, 0x80))).await;
    s.send(Packet::PubRec(ack(m2.packet_id, 0x80))).await;
    s.expect_silence(QUIET).await;
    s.drop_tcp().await;
    let mut s = resume(&b).await;
    s.expect_silence(QUIET).await;
}
