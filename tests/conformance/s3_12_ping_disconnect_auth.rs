//! Sections 3.12 – 3.15: PINGREQ / PINGRESP, DISCONNECT (both directions) and the AUTH fixed
//! header. The enhanced authentication exchanges are in `s4_12_auth`.

use crate::fixture::*;
use ringmq::codec::{Disconnect, Packet, Properties, Protocol};
use std::time::Duration;

const DISCONNECT_CODES: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];

fn disconnect(reason: u8, properties: Properties) -> Packet {
    Packet::Disconnect(Disconnect { reason, properties })
}

/// [MQTT-3.12.4-1] The server answers PINGREQ with PINGRESP.
#[tokio::test]
async fn mqtt_3_12_4_1_pingreq_gets_pingresp() {
    let b = Broker::start().await;
    let mut c = Raw::v5(&b, "c").await;
    for _ in 0..3 {
        c.send(Packet::PingReq).await;
        assert_eq!(c.recv().await, Packet::PingResp);
    }
}

/// 3.12.1 (no statement number): PINGREQ has no variable header or payload; one with a body is
/// Malformed.
#[tokio::test]
async fn sec_3_12_pingreq_with_a_body_is_malformed() {
    let b = Broker::start().await;
    assert_v5_violation(&b, &[0xC0, 1, 0], &[0x81]).await;
}

/// [MQTT-3.14.0-1] The server sends no DISCONNECT before a successful CONNACK: a bad CONNECT
/// (here a duplicated property, a Protocol Error) is answered with CONNACK, not DISCONNECT.
#[tokio::test]
async fn mqtt_3_14_0_1_no_disconnect_before_a_successful_connack() {
    let b = Broker::start().await;
    let twice = [0x21, 0, 5, 0x21, 0, 6];
    let bad = raw_connect(b"MQTT", 5, 0x02, Some(&twice), &field(b"c"));
    assert_connect_refused(&b, Protocol::V5, &bad, &[0x82]).await;
}

/// [MQTT-3.14.1-1] DISCONNECT's reserved flags must be 0: otherwise Malformed (0x81).
#[tokio::test]
async fn mqtt_3_14_1_1_disconnect_with_wrong_flags_is_malformed() {
    let b = Broker::start().await;
    assert_v5_violation(&b, &[0xE2, 0], &[0x81]).await;
}

/// [MQTT-3.14.2-1] The DISCONNECT the server sends uses a DISCONNECT reason code (checked for
/// a malformed packet, a protocol error, a receive-maximum overrun and a session takeover).
#[tokio::test]
async fn mqtt_3_14_2_1_server_disconnect_uses_disconnect_reason_codes() {
    let b = Broker::with(&["--receive-maximum", "1"]).await;
    let mut seen = Vec::new();
    for bad in [vec![0xC1, 0], vec![0x20, 3, 0, 0, 0]] {
        let mut c = Raw::v5(&b, "c").await;
        c.send_bytes(&bad).await;
        seen.push(c.expect_refused(DISCONNECT_CODES).await);
    }
    let mut c = Raw::v5(&b, "c").await;
    c.send(Packet::Publish(publish("t", 2, 1, b"x"))).await;
    c.send(Packet::Publish(publish("t", 2, 2, b"x"))).await;
    seen.push(c.expect_refused(DISCONNECT_CODES).await);
    let mut old = Raw::v5(&b, "dup").await;
    let _new = Raw::v5(&b, "dup").await;
    seen.push(old.expect_refused(DISCONNECT_CODES).await);
    let codes: Vec<u8> = seen.into_iter().map(|d| d.expect("v5").reason).collect();
    assert_eq!(codes, [0x81, 0x82, 0x93, 0x8E]);
}

/// [MQTT-3.14.2-2] The server never sends Session Expiry Interval on DISCONNECT (checked on a
/// takeover of a session that has one; every `expect_refused` checks it too).
#[tokio::test]
async fn mqtt_3_14_2_2_no_session_expiry_on_server_disconnect() {
    let b = Broker::start().await;
    let mut old = Raw::connect(&b, persistent(v5("dup"), 300)).await;
    let _new = Raw::connect(&b, persistent(v5("dup"), 300)).await;
    let d = old.expect_refused(&[0x8E]).await.expect("DISCONNECT");
    assert_eq!(d.properties.session_expiry_interval_s, None);
}

/// [MQTT-3.14.2-3], [MQTT-3.14.2-4] No Reason String or User Property that would take the
/// DISCONNECT over the client's Maximum Packet Size (16 bytes here): the DISCONNECT is sent
/// without them.
#[tokio::test]
async fn mqtt_3_14_2_3_disconnect_within_the_client_maximum_packet_size() {
    let b = Broker::start().await;
    let mut c = v5("c");
    c.properties.maximum_packet_size = Some(16);
    let mut raw = Raw::connect(&b, c).await;
    raw.send_bytes(&[0xC1, 0]).await;
    match raw.next_frame(WAIT).await {
        Ok(f) => {
            assert_eq!(f[0], 0xE0, "a DISCONNECT: {f:?}");
            assert!(f.len() <= 16, "DISCONNECT of {} bytes > 16: {f:?}", f.len());
            assert!(matches!(raw.next_frame(WAIT).await, Err(Got::Closed)));
        }
        Err(Got::Closed) => {} // Closing without DISCONNECT is allowed too.
        Err(other) => panic!("{other:?}"),
    }
}

/// [MQTT-3.14.4-1], [MQTT-3.14.4-2] After its DISCONNECT the server sends nothing more and
/// closes — even while messages are streaming to that client.
#[tokio::test]
async fn mqtt_3_14_4_1_nothing_after_the_server_disconnect() {
    let b = Broker::start().await;
    let mut s = Raw::v5(&b, "s").await;
    s.subscribe("flood", 0).await;
    let mut p = Raw::v5(&b, "p").await;
    let flood = tokio::spawn(async move {
        for i in 0..500u32 {
            p.publish("flood", 0, &i.to_be_bytes()).await;
        }
        p.ping().await;
    });
    s.recv_publish().await;
    s.send_bytes(&[0xC1, 0]).await;
    // The last packet before the close is the DISCONNECT (checked by expect_refused).
    s.expect_refused(&[0x81]).await;
    flood.await.expect("the publisher is unaffected");
}

/// [MQTT-3.14.4-3] DISCONNECT with reason 0x00: the will is discarded, not published.
/// Also [MQTT-3.1.2-10].
#[tokio::test]
async fn mqtt_3_14_4_3_normal_disconnect_discards_the_will() {
    let b = Broker::start().await;
    let mut w = Raw::v5(&b, "watcher").await;
    w.subscribe("will/#", 1).await;
    for c in [v5("c"), persistent(v5("c"), 30)] {
        let raw = Raw::connect(&b, with_will(c, "will/c", "x", 1, false)).await;
        raw.disconnect().await;
    }
    w.expect_silence(Duration::from_millis(500)).await;
}

/// 3.14.2.1 (no statement number): DISCONNECT with reason 0x04 (Disconnect with Will Message)
/// closes normally but publishes the will.
#[tokio::test]
async fn sec_3_14_2_1_disconnect_with_will_message_publishes_the_will() {
    let b = Broker::start().await;
    let mut w = Raw::v5(&b, "watcher").await;
    w.subscribe("will/#", 1).await;
    let mut c = Raw::connect(&b, with_will(v5("c"), "will/c", "asked for", 1, false)).await;
    c.send(disconnect(0x04, Properties::default())).await;
    c.expect_closed().await;
    assert_eq!(&w.recv_acked().await.payload[..], b"asked for");
}

/// 3.14.2.2.2 (no statement number): a Session Expiry Interval of 0 in CONNECT may not be
/// raised by DISCONNECT — a Protocol Error.
#[tokio::test]
async fn sec_3_14_2_2_2_disconnect_cannot_raise_a_zero_session_expiry() {
    let b = Broker::start().await;
    let props = Properties {
        session_expiry_interval_s: Some(30),
        ..Properties::default()
    };
    let bad = wire(&disconnect(0, props), Protocol::V5);
    assert_v5_violation(&b, &bad, &[0x82]).await;
}

/// 3.14.2.2.2 (no statement number): the Session Expiry Interval of DISCONNECT replaces the
/// CONNECT's (here 60 s → 0: the session ends with the connection).
#[tokio::test]
async fn sec_3_14_2_2_2_disconnect_sets_the_session_expiry() {
    let b = Broker::start().await;
    let mut c = Raw::connect(&b, persistent(v5("c"), 60)).await;
    c.subscribe("t", 1).await;
    let props = Properties {
        session_expiry_interval_s: Some(0),
        ..Properties::default()
    };
    c.send(disconnect(0, props)).await;
    c.expect_closed().await;
    let (_c, ack) = Raw::handshake(&b, persistent(v5("c"), 60)).await;
    assert!(!ack.session_present);
}

/// [MQTT-3.15.1-1] AUTH's reserved flags must be 0: otherwise Malformed.
#[tokio::test]
async fn mqtt_3_15_1_1_auth_with_wrong_flags_is_malformed() {
    let b = Broker::start().await;
    assert_v5_violation(&b, &[0xF1, 0], &[0x81]).await;
}
