//! Sections 3.10 and 3.11: UNSUBSCRIBE and UNSUBACK.

use crate::fixture::*;
use ringmq::codec::{Packet, QoS};

/// An UNSUBSCRIBE with packet id 1, no properties and these raw filters.
fn raw_unsubscribe(first: u8, filters: &[&[u8]]) -> Vec<u8> {
    let mut body = vec![0, 1, 0];
    for f in filters {
        body.extend(field(f));
    }
    frame(first, &body)
}

/// [MQTT-3.10.1-1] UNSUBSCRIBE's fixed-header flags are 0010; anything else is Malformed.
#[tokio::test]
async fn mqtt_3_10_1_1_unsubscribe_with_wrong_flags_is_malformed() {
    let b = Broker::start().await;
    assert_v5_violation(&b, &raw_unsubscribe(0xA0, &[b"t"]), &[0x81]).await;
}

/// [MQTT-3.10.3-1] UNSUBSCRIBE filters are UTF-8 Encoded Strings: ill-formed UTF-8 is Malformed.
#[tokio::test]
async fn mqtt_3_10_3_1_unsubscribe_filter_must_be_utf8() {
    let b = Broker::start().await;
    assert_v5_violation(&b, &raw_unsubscribe(0xA2, &[b"\xC0\x80"]), &[0x81]).await;
}

/// [MQTT-3.10.3-2] An UNSUBSCRIBE holds at least one filter; one with none is a Protocol Error
/// (3.10.3).
#[tokio::test]
async fn mqtt_3_10_3_2_unsubscribe_without_filters_is_a_protocol_error() {
    let b = Broker::start().await;
    assert_v5_violation(&b, &raw_unsubscribe(0xA2, &[]), &[0x82]).await;
}

/// [MQTT-3.10.4-1] Filters are compared character by character with the session's filters:
/// "a/b" does not remove "a/+", "a/+" does.
#[tokio::test]
async fn mqtt_3_10_4_1_filters_are_compared_character_by_character() {
    let b = Broker::start().await;
    let mut s = Raw::v5(&b, "s").await;
    s.subscribe("a/+", 1).await;
    assert_eq!(s.unsubscribe(&["a/b"]).await.codes, [0x11]);
    assert_eq!(s.unsubscribe(&["A/+"]).await.codes, [0x11]);
    let mut p = Raw::v5(&b, "p").await;
    p.publish("a/b", 1, b"still").await;
    assert_eq!(&s.recv_acked().await.payload[..], b"still");
    assert_eq!(s.unsubscribe(&["a/+"]).await.codes, [0x00]);
    p.publish("a/b", 1, b"gone").await;
    s.expect_silence(QUIET).await;
}

/// [MQTT-3.10.4-2] After UNSUBSCRIBE the server adds no new matching messages for the client.
#[tokio::test]
async fn mqtt_3_10_4_2_no_new_messages_after_unsubscribe() {
    let b = Broker::start().await;
    let mut s = Raw::v5(&b, "s").await;
    s.subscribe("t", 1).await;
    s.unsubscribe(&["t"]).await;
    let mut p = Raw::v5(&b, "p").await;
    for _ in 0..3 {
        p.publish("t", 1, b"x").await;
    }
    s.expect_silence(QUIET).await;
}

/// [MQTT-3.10.4-3] QoS 1/2 messages the server had started sending are completed after the
/// UNSUBSCRIBE: the QoS 2 flow goes on (PUBREC → PUBREL → PUBCOMP).
#[tokio::test]
async fn mqtt_3_10_4_3_started_deliveries_complete_after_unsubscribe() {
    let b = Broker::start().await;
    let mut s = Raw::v5(&b, "s").await;
    s.subscribe("t", 2).await;
    Raw::v5(&b, "p").await.publish("t", 2, b"x").await;
    let m = s.recv_publish().await;
    assert_eq!(m.qos, QoS::ExactlyOnce);
    s.unsubscribe(&["t"]).await;
    s.ack(&m).await;
    s.expect_silence(QUIET).await;
}

/// [MQTT-3.10.4-4], [MQTT-3.10.4-5] Every UNSUBSCRIBE gets an UNSUBACK with its packet id, even
/// when nothing was removed.
#[tokio::test]
async fn mqtt_3_10_4_5_unsuback_even_when_nothing_was_removed() {
    let b = Broker::start().await;
    let mut c = Raw::v5(&b, "c").await;
    for id in [1u16, 0xFFFF] {
        c.send(unsubscribe_packet(id, &["never/subscribed"])).await;
        match c.recv().await {
            Packet::UnsubAck(a) => assert_eq!((a.packet_id, a.codes), (id, vec![0x11])),
            other => panic!("expected UNSUBACK, got {other:?}"),
        }
    }
}

/// [MQTT-3.10.4-6] Several filters in one UNSUBSCRIBE: handled one by one, one UNSUBACK.
/// Also [MQTT-3.11.3-1] (codes in filter order) and [MQTT-3.11.3-2] (UNSUBACK codes).
#[tokio::test]
async fn mqtt_3_10_4_6_several_filters_one_unsuback() {
    let b = Broker::start().await;
    let mut s = Raw::v5(&b, "s").await;
    s.subscribe("a", 1).await;
    s.subscribe("c/#", 1).await;
    let u = s.unsubscribe(&["a", "b", "c/#", "a"]).await;
    assert_eq!(u.codes, [0x00, 0x11, 0x00, 0x11]);
    const UNSUBACK_CODES: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
    assert!(u.codes.iter().all(|c| UNSUBACK_CODES.contains(c)));
    s.expect_silence(QUIET).await;
}
