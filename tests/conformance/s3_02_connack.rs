//! Section 3.2: CONNACK — first packet, flags, Session Present, reason codes, and the
//! capabilities the server advertises (and then enforces).

use crate::fixture::*;
use ringmq::codec::{Packet, Protocol};
use std::time::{Duration, Instant};

/// The CONNACK reason codes of 3.2.2.2.
const CONNACK_CODES: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];

/// A persistent session "s" subscribed to "t" at QoS 1, disconnected, with `n` messages queued.
async fn offline_session(b: &Broker, n: usize) {
    let mut s = Raw::connect(b, persistent(v5("s"), 60)).await;
    s.subscribe("t", 1).await;
    s.disconnect().await;
    let mut p = Raw::v5(b, "p").await;
    for i in 0..n {
        p.publish("t", 1, format!("m{i}").as_bytes()).await;
    }
}

/// [MQTT-3.2.0-1] CONNACK comes before any other packet, even with messages waiting.
#[tokio::test]
async fn mqtt_3_2_0_1_connack_is_the_first_packet() {
    let b = Broker::start().await;
    offline_session(&b, 5).await;
    let mut raw = Raw::open(&b, Protocol::V5).await;
    raw.send_bytes(&wire_connect(&persistent(v5("s"), 60)))
        .await;
    let first = raw.next_frame(WAIT).await.expect("a packet");
    assert_eq!(first[0], 0x20, "first packet is CONNACK: {first:?}");
    assert_eq!(raw.recv_n(5).await.len(), 5);
}

/// [MQTT-3.2.0-2] At most one CONNACK per connection: none comes after the first, whatever the
/// client does next.
#[tokio::test]
async fn mqtt_3_2_0_2_only_one_connack() {
    let b = Broker::start().await;
    let mut c = Raw::v5(&b, "c").await;
    c.subscribe("t", 2).await;
    c.publish("t", 2, b"x").await;
    c.recv_acked().await;
    c.ping().await;
    c.unsubscribe(&["t"]).await;
    match c.next(QUIET).await {
        Got::Timeout => {}
        other => panic!("nothing more expected, got {other:?}"),
    }
}

/// [MQTT-3.2.2-1] Bits 7-1 of the Connect Acknowledge Flags are 0 (checked on the raw byte,
/// with Session Present 0 and 1).
#[tokio::test]
async fn mqtt_3_2_2_1_connack_reserved_flag_bits_are_0() {
    let b = Broker::start().await;
    for expect_present in [false, true] {
        let mut raw = Raw::open(&b, Protocol::V5).await;
        raw.send_bytes(&wire_connect(&persistent(v5("s"), 60)))
            .await;
        let f = raw.next_frame(WAIT).await.expect("CONNACK");
        assert_eq!(f[0], 0x20);
        assert_eq!(f[2], u8::from(expect_present), "flags byte {:#04x}", f[2]);
        raw.disconnect().await;
    }
}

/// [MQTT-3.2.2-2] Accepting Clean Start 1: Session Present 0 and reason 0x00, even when a
/// session existed.
#[tokio::test]
async fn mqtt_3_2_2_2_clean_start_gives_session_present_0() {
    let b = Broker::start().await;
    offline_session(&b, 0).await;
    let (_s, ack) = Raw::handshake(&b, v5("s")).await;
    assert_eq!((ack.code, ack.session_present), (0, false));
}

/// [MQTT-3.2.2-3] Accepting Clean Start 0: Session Present 1 when the server has the session,
/// 0 when it has none; reason 0x00 in both cases.
#[tokio::test]
async fn mqtt_3_2_2_3_session_present_tells_whether_state_was_kept() {
    let b = Broker::start().await;
    let (_x, ack) = Raw::handshake(&b, persistent(v5("s"), 60)).await;
    assert_eq!((ack.code, ack.session_present), (0, false));
    drop(_x);
    offline_session(&b, 0).await;
    let (_s, ack) = Raw::handshake(&b, persistent(v5("s"), 60)).await;
    assert_eq!((ack.code, ack.session_present), (0, true));
}

/// [MQTT-3.2.2-6] A CONNACK with a non-zero reason has Session Present 0, even when a session
/// exists for that client id.
#[tokio::test]
async fn mqtt_3_2_2_6_refusal_has_session_present_0() {
    let b = Broker::with(&["--maximum-qos", "1"]).await;
    offline_session(&b, 0).await;
    let bad = wire_connect(&persistent(with_will(v5("s"), "w", "x", 2, false), 60));
    let ack = assert_connect_refused(&b, Protocol::V5, &bad, &[0x9B]).await;
    assert!(!ack.expect("CONNACK").session_present);
}

/// [MQTT-3.2.2-7] After a CONNACK with a reason of 0x80 or more the server closes the
/// connection (here a redirect, 0x9C / 0x9D with a Server Reference).
#[tokio::test]
async fn mqtt_3_2_2_7_refusal_closes_the_connection() {
    for (permanent, code) in [("false", 0x9C), ("true", 0x9D)] {
        let b = Broker::with(&[
            "--redirect-server-reference",
            "other.example:1883",
            "--redirect-permanent",
            permanent,
        ])
        .await;
        let mut raw = Raw::open(&b, Protocol::V5).await;
        raw.send_bytes(&wire_connect(&v5("c"))).await;
        let seen = raw.expect_closed().await;
        match seen.as_slice() {
            [Packet::ConnAck(a)] => {
                assert_eq!(a.code, code);
                assert_eq!(
                    a.properties.server_reference.as_deref(),
                    Some("other.example:1883")
                );
            }
            other => panic!("expected one CONNACK {code:#04x}, got {other:?}"),
        }
    }
}

/// [MQTT-3.2.2-8] CONNACK reason codes come from the CONNACK list (3.2.2.2): checked on an
/// accepted connection and on refusals for malformed input, a protocol error and an
/// unsupported authentication method.
#[tokio::test]
async fn mqtt_3_2_2_8_connack_uses_connect_reason_codes() {
    let b = Broker::start().await;
    let (_ok, ack) = Raw::handshake(&b, v5("ok")).await;
    assert!(CONNACK_CODES.contains(&ack.code));
    let malformed = raw_connect(b"MQTT", 5, 0x03, Some(&[]), &field(b"c"));
    // Session Expiry Interval twice: a Protocol Error.
    let twice = [0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2];
    let duplicate = raw_connect(b"MQTT", 5, 0x02, Some(&twice), &field(b"c"));
    let mut auth = v5("c");
    auth.properties.authentication_method = Some("NO-SUCH-METHOD".into());
    for bad in [malformed, duplicate, wire_connect(&auth)] {
        let ack = assert_connect_refused(&b, Protocol::V5, &bad, CONNACK_CODES)
            .await
            .expect("a CONNACK");
        assert!(ack.code >= 0x80, "{ack:?}");
    }
}

/// [MQTT-3.2.2-9] A server without QoS 2 (or QoS 1) support says so with Maximum QoS in
/// CONNACK; a server supporting QoS 2 may leave it out.
#[tokio::test]
async fn mqtt_3_2_2_9_maximum_qos_is_advertised() {
    for (flag, want) in [(None, None), (Some("1"), Some(1)), (Some("0"), Some(0))] {
        let b = match flag {
            Some(q) => Broker::with(&["--maximum-qos", q]).await,
            None => Broker::start().await,
        };
        let (_c, ack) = Raw::handshake(&b, v5("c")).await;
        assert_eq!(ack.properties.maximum_qos, want, "--maximum-qos {flag:?}");
    }
}

/// [MQTT-3.2.2-10] A server without QoS 1/2 support still accepts SUBSCRIBE asking for QoS 0,
/// 1 or 2 (granting what it supports), and delivers at the granted QoS.
#[tokio::test]
async fn mqtt_3_2_2_10_subscribe_accepted_above_maximum_qos() {
    let b = Broker::with(&["--maximum-qos", "0"]).await;
    let mut c = Raw::v5(&b, "c").await;
    let a = c
        .subscribe_with(subscribe(0, &[("a", sub(0)), ("b", sub(1)), ("c", sub(2))]))
        .await;
    assert_eq!(a.codes, [0, 0, 0]);
    let mut p = Raw::v5(&b, "p").await;
    p.publish("c", 0, b"x").await;
    assert_eq!(c.recv_publish().await.qos, ringmq::codec::QoS::AtMostOnce);
}

/// [MQTT-3.2.2-11] A client must not publish above the Maximum QoS; when one does, the server
/// disconnects it with 0x9B (QoS not supported).
#[tokio::test]
async fn mqtt_3_2_2_11_publish_above_maximum_qos_is_refused_0x9b() {
    let b = Broker::with(&["--maximum-qos", "1"]).await;
    let bad = wire(&Packet::Publish(publish("t", 2, 1, b"x")), Protocol::V5);
    assert_v5_violation(&b, &bad, &[0x9B]).await;
}

/// [MQTT-3.2.2-12] A will QoS above what the server supports: the connection is refused
/// (CONNACK 0x9B) and closed.
#[tokio::test]
async fn mqtt_3_2_2_12_will_qos_above_maximum_is_refused_0x9b() {
    let b = Broker::with(&["--maximum-qos", "1"]).await;
    let bad = wire_connect(&with_will(v5("c"), "w", "x", 2, false));
    assert_connect_refused(&b, Protocol::V5, &bad, &[0x9B]).await;
}

/// [MQTT-3.2.2-13] A retained will on a server without retained messages: refused (CONNACK
/// 0x9A) and closed.
#[tokio::test]
async fn mqtt_3_2_2_13_retained_will_without_retain_support_is_refused_0x9a() {
    let b = Broker::with(&["--retain-available", "false"]).await;
    let bad = wire_connect(&with_will(v5("c"), "w", "x", 0, true));
    assert_connect_refused(&b, Protocol::V5, &bad, &[0x9A]).await;
}

/// [MQTT-3.2.2-14] With Retain Available 0 (advertised in CONNACK) a client must not publish
/// with RETAIN 1; when one does, the server disconnects it with 0x9A.
#[tokio::test]
async fn mqtt_3_2_2_14_retained_publish_without_retain_support_is_refused_0x9a() {
    let b = Broker::with(&["--retain-available", "false"]).await;
    let (_c, ack) = Raw::handshake(&b, v5("c")).await;
    assert_eq!(ack.properties.retain_available, Some(0));
    let bad = wire(&Packet::Publish(retained("t", 0, 0, b"x")), Protocol::V5);
    assert_v5_violation(&b, &bad, &[0x9A]).await;
}

/// [MQTT-3.2.2-15] The server advertises its Maximum Packet Size; a client packet over it is
/// refused with 0x95 (Packet too large).
#[tokio::test]
async fn mqtt_3_2_2_15_packet_over_the_server_maximum_is_refused_0x95() {
    let b = Broker::with(&["--packet-bytes-max", "256"]).await;
    let (_c, ack) = Raw::handshake(&b, v5("c")).await;
    assert_eq!(ack.properties.maximum_packet_size, Some(256));
    let bad = wire(
        &Packet::Publish(publish("t", 0, 0, &[b'x'; 300])),
        Protocol::V5,
    );
    assert_v5_violation(&b, &bad, &[0x95]).await;
}

/// [MQTT-3.2.2-16] The Assigned Client Identifier is new: not the id of any session the
/// server holds (connected or not).
#[tokio::test]
async fn mqtt_3_2_2_16_assigned_client_id_is_not_in_use() {
    let b = Broker::start().await;
    let (_first, ack) = Raw::handshake(&b, persistent(v5(""), 60)).await;
    let first = ack.properties.assigned_client_identifier.expect("assigned");
    drop(_first);
    for _ in 0..5 {
        let (_c, ack) = Raw::handshake(&b, v5("")).await;
        let id = ack.properties.assigned_client_identifier.expect("assigned");
        assert_ne!(id, first);
    }
    let (_again, ack) = Raw::handshake(&b, persistent(v5(&first), 60)).await;
    assert!(
        ack.session_present,
        "the first assigned session is still held"
    );
}

/// [MQTT-3.2.2-17] A client must not use a Topic Alias above the Topic Alias Maximum in
/// CONNACK; when one does, the server disconnects it with 0x94. Also [MQTT-3.3.2-9].
#[tokio::test]
async fn mqtt_3_2_2_17_topic_alias_above_maximum_is_refused_0x94() {
    let b = Broker::with(&["--topic-alias-maximum", "2"]).await;
    let (_c, ack) = Raw::handshake(&b, v5("c")).await;
    assert_eq!(ack.properties.topic_alias_maximum, Some(2));
    let bad = raw_publish(0x30, b"t", None, &[0x23, 0, 3], b"x");
    assert_v5_violation(&b, &bad, &[0x94]).await;
}

/// [MQTT-3.2.2-18] Topic Alias Maximum absent (the server accepts no alias): any Topic Alias
/// from the client is refused with 0x94.
#[tokio::test]
async fn mqtt_3_2_2_18_topic_alias_when_none_allowed_is_refused_0x94() {
    let b = Broker::with(&["--topic-alias-maximum", "0"]).await;
    let (_c, ack) = Raw::handshake(&b, v5("c")).await;
    assert!(matches!(ack.properties.topic_alias_maximum, None | Some(0)));
    let bad = raw_publish(0x30, b"t", None, &[0x23, 0, 1], b"x");
    assert_v5_violation(&b, &bad, &[0x94]).await;
}

/// [MQTT-3.2.2-19], [MQTT-3.2.2-20] No Reason String or User Property that would make the
/// CONNACK larger than the client's Maximum Packet Size (checked on a small maximum; ringmq
/// sends neither on CONNACK).
#[tokio::test]
async fn mqtt_3_2_2_19_connack_within_the_client_maximum_packet_size() {
    let b = Broker::start().await;
    let mut c = v5("c");
    c.properties.maximum_packet_size = Some(32);
    let mut raw = Raw::open(&b, Protocol::V5).await;
    raw.send_bytes(&wire_connect(&c)).await;
    let f = raw.next_frame(WAIT).await.expect("CONNACK");
    assert!(f.len() <= 32, "CONNACK of {} bytes", f.len());
    let mut buf = bytes::BytesMut::from(&f[..]);
    match ringmq::codec::decode(&mut buf, Protocol::V5, usize::MAX) {
        Ok(Some(Packet::ConnAck(a))) => {
            assert_eq!(a.properties.reason_string, None);
            assert!(a.properties.user_properties.is_empty());
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// [MQTT-3.2.2-21] (client side) The server's Server Keep Alive replaces the client's keep
/// alive — and the server enforces its own value: 1 s here although the client asked for 60.
#[tokio::test]
async fn mqtt_3_2_2_21_server_keep_alive_is_announced_and_enforced() {
    let b = Broker::with(&["--server-keep-alive-s", "1"]).await;
    let mut c = v5("c");
    c.keep_alive_s = 60;
    let (mut raw, ack) = Raw::handshake(&b, c).await;
    assert_eq!(ack.properties.server_keep_alive_s, Some(1));
    let start = Instant::now();
    raw.expect_refused(&[0x8D]).await;
    assert!(
        start.elapsed() < Duration::from_millis(2900),
        "{:?}",
        start.elapsed()
    );
}
