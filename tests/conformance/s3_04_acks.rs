//! Sections 3.4 – 3.7: PUBACK, PUBREC, PUBREL, PUBCOMP — reason codes, the PUBREL fixed-header
//! flags, and properties bounded by the receiver's Maximum Packet Size.

use crate::fixture::*;
use ringmq::codec::{Ack, Packet, Protocol};

const PUBACK_CODES: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL_CODES: &[u8] = &[0x00, 0x92];

fn acked(p: Packet) -> Ack {
    match p {
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => a,
        other => panic!("expected an acknowledgement, got {other:?}"),
    }
}

/// [MQTT-3.4.2-1] The PUBACK the server sends uses a PUBACK reason code (with and without a
/// matching subscriber).
#[tokio::test]
async fn mqtt_3_4_2_1_puback_uses_puback_reason_codes() {
    let b = Broker::start().await;
    let mut c = Raw::v5(&b, "c").await;
    for subscribed in [false, true] {
        if subscribed {
            c.subscribe("t", 0).await;
        }
        c.send(Packet::Publish(publish("t", 1, 3, b"x"))).await;
        let a = acked(
            c.wait_for("PUBACK", |p| matches!(p, Packet::PubAck(_)))
                .await,
        );
        assert!(PUBACK_CODES.contains(&a.reason), "{a:?}");
        assert_eq!(a.packet_id, 3);
    }
}

/// [MQTT-3.5.2-1] The PUBREC the server sends uses a PUBREC reason code.
#[tokio::test]
async fn mqtt_3_5_2_1_pubrec_uses_pubrec_reason_codes() {
    let b = Broker::start().await;
    let mut c = Raw::v5(&b, "c").await;
    for (subscribed, id) in [(false, 4), (true, 5)] {
        if subscribed {
            c.subscribe("t", 0).await;
        }
        c.send(Packet::Publish(publish("t", 2, id, b"x"))).await;
        let a = acked(
            c.wait_for("PUBREC", |p| matches!(p, Packet::PubRec(_)))
                .await,
        );
        assert!(PUBACK_CODES.contains(&a.reason), "{a:?}");
        c.send(Packet::PubRel(ack(id, 0))).await;
        c.wait_for("PUBCOMP", |p| matches!(p, Packet::PubComp(_)))
            .await;
    }
}

/// [MQTT-3.6.1-1] PUBREL's fixed-header flags are 0010; anything else is Malformed.
#[tokio::test]
async fn mqtt_3_6_1_1_pubrel_with_wrong_flags_is_malformed() {
    let b = Broker::start().await;
    assert_v5_violation(&b, &[0x60, 2, 0, 1], &[0x81]).await;
}

/// [MQTT-3.6.2-1] The PUBREL the server sends uses a PUBREL reason code: 0x00 for a message
/// it has, 0x92 (Packet Identifier not found) for a PUBREC of an unknown id.
#[tokio::test]
async fn mqtt_3_6_2_1_pubrel_uses_pubrel_reason_codes() {
    let b = Broker::start().await;
    let mut s = Raw::v5(&b, "s").await;
    s.subscribe("t", 2).await;
    Raw::v5(&b, "p").await.publish("t", 2, b"x").await;
    let m = s.recv_publish().await;
    s.send(Packet::PubRec(ack(m.packet_id, 0))).await;
    let a = acked(s.recv().await);
    assert_eq!((a.packet_id, a.reason), (m.packet_id, 0));
    s.send(Packet::PubComp(ack(m.packet_id, 0))).await;
    s.send(Packet::PubRec(ack(999, 0))).await;
    let a = acked(s.recv().await);
    assert!(PUBREL_CODES.contains(&a.reason));
    assert_eq!((a.packet_id, a.reason), (999, 0x92));
}

/// [MQTT-3.7.2-1] The PUBCOMP the server sends uses a PUBCOMP reason code: 0x92 for a PUBREL
/// of an unknown id.
#[tokio::test]
async fn mqtt_3_7_2_1_pubcomp_uses_pubcomp_reason_codes() {
    let b = Broker::start().await;
    let mut c = Raw::v5(&b, "c").await;
    c.send(Packet::PubRel(ack(4242, 0))).await;
    let a = acked(c.recv().await);
    assert!(PUBREL_CODES.contains(&a.reason));
    assert_eq!((a.packet_id, a.reason), (4242, 0x92));
    c.send(Packet::Publish(publish("t", 2, 7, b"x"))).await;
    c.recv().await;
    c.send(Packet::PubRel(ack(7, 0))).await;
    assert_eq!(acked(c.recv().await).reason, 0);
}

/// [MQTT-3.4.2-2], [MQTT-3.4.2-3] and the same statements of PUBREC (3.5.2-2/3), PUBREL
/// (3.6.2-2/3), PUBCOMP (3.7.2-2/3), SUBACK (3.9.2-1/2) and UNSUBACK (3.11.2-1/2): no Reason
/// String or User Property that would take the packet over the client's Maximum Packet Size
/// (16 bytes here). Every acknowledgement the client gets is within it.
#[tokio::test]
async fn mqtt_3_4_2_2_acknowledgements_within_the_client_maximum_packet_size() {
    let b = Broker::start().await;
    let mut c = v5("c");
    c.properties.maximum_packet_size = Some(16);
    let mut raw = Raw::connect(&b, c).await;
    let max = 16;
    let check = |f: Vec<u8>| {
        assert!(f.len() <= max, "{} bytes: {f:?}", f.len());
        f
    };
    raw.send(Packet::Subscribe(subscribe(1, &[("t", sub(2))])))
        .await;
    check(raw.next_frame(WAIT).await.expect("SUBACK"));
    raw.send(Packet::Publish(publish("t", 1, 2, b"x"))).await;
    let mut frames = Vec::new();
    for _ in 0..2 {
        frames.push(check(raw.next_frame(WAIT).await.expect("PUBACK / PUBLISH")));
    }
    let delivered = frames.iter().find(|f| f[0] >> 4 == 3).expect("a PUBLISH");
    let id = u16::from_be_bytes([delivered[5], delivered[6]]);
    raw.send(Packet::PubAck(ack(id, 0))).await;
    raw.send(Packet::Publish(publish("u", 2, 3, b"x"))).await;
    check(raw.next_frame(WAIT).await.expect("PUBREC"));
    raw.send(Packet::PubRel(ack(3, 0))).await;
    check(raw.next_frame(WAIT).await.expect("PUBCOMP"));
    raw.send(Packet::PubRec(ack(9, 0))).await;
    check(raw.next_frame(WAIT).await.expect("PUBREL (0x92)"));
    raw.send_bytes(&wire(&unsubscribe_packet(4, &["nothing"]), Protocol::V5))
        .await;
    check(raw.next_frame(WAIT).await.expect("UNSUBACK"));
}
