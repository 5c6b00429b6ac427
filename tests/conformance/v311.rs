//! MQTT 3.1.1 statements where the broker behaves differently from MQTT 5.0 (no DISCONNECT from
//! the server, return codes instead of reason codes, no properties, CleanSession instead of
//! Clean Start and Session Expiry), run with a v3.1.1 raw client. Names: `mqtt311_` + the
//! 3.1.1 statement number.

use crate::fixture::*;
use ringmq::codec::Protocol;
use std::time::{Duration, Instant};

/// [MQTT-3.1.2-2] (3.1.1) An unsupported protocol level is answered with CONNACK return code
/// 0x01 (unacceptable protocol level), then the connection is closed.
#[tokio::test]
async fn mqtt311_3_1_2_2_unsupported_level_gets_return_code_1() {
    let b = Broker::start().await;
    let bad = raw_connect(b"MQTT", 6, 0x02, None, &field(b"c"));
    let ack = assert_connect_refused(&b, Protocol::V311, &bad, &[0x01]).await;
    assert!(ack.is_some());
}

/// [MQTT-3.1.2-3], [MQTT-3.1.4-1] (3.1.1) A CONNECT that does not conform (reserved flag set)
/// is closed without CONNACK — 3.1.1 has no return code for it.
#[tokio::test]
async fn mqtt311_3_1_4_1_bad_connect_is_closed_without_connack() {
    let b = Broker::start().await;
    let bad = raw_connect(b"MQTT", 4, 0x03, None, &field(b"c"));
    assert_connect_refused(&b, Protocol::V311, &bad, &[]).await;
}

/// [MQTT-3.1.2-22] (3.1.1) User Name Flag 0 requires Password Flag 0 (5.0 lifted this).
#[tokio::test]
async fn mqtt311_3_1_2_22_password_without_user_name_is_refused() {
    let b = Broker::start().await;
    let mut payload = field(b"c");
    payload.extend(field(b"secret"));
    let bad = raw_connect(b"MQTT", 4, 0x42, None, &payload);
    assert_connect_refused(&b, Protocol::V311, &bad, &[]).await;
}

/// [MQTT-3.1.2-24] (3.1.1) Keep alive: after 1.5 × Keep Alive of silence the server closes the
/// connection — without DISCONNECT, which 3.1.1 servers never send.
#[tokio::test]
async fn mqtt311_3_1_2_24_keep_alive_closes_without_disconnect() {
    let b = Broker::start().await;
    let mut c = v3("idle");
    c.keep_alive_s = 1;
    let mut raw = Raw::connect(&b, c).await;
    let start = Instant::now();
    raw.expect_refused(&[]).await;
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1400) && took <= Duration::from_millis(2900),
        "{took:?}"
    );
}

/// [MQTT-3.1.3-8], [MQTT-3.1.3-9] (3.1.1) A zero-byte client id requires CleanSession 1; with
/// CleanSession 0 the server answers return code 0x02 (identifier rejected) and closes.
#[tokio::test]
async fn mqtt311_3_1_3_9_empty_client_id_without_clean_session_gets_0x02() {
    let b = Broker::start().await;
    let bad = wire_connect(&persistent(v3(""), 0));
    assert_connect_refused(&b, Protocol::V311, &bad, &[0x02]).await;
}

/// [MQTT-3.1.3-6] (3.1.1) A zero-byte client id with CleanSession 1 is accepted (the server
/// assigns an id; 3.1.1 cannot tell the client which).
#[tokio::test]
async fn mqtt311_3_1_3_6_empty_client_id_with_clean_session_is_accepted() {
    let b = Broker::start().await;
    let mut a = Raw::v3(&b, "").await;
    let mut c = Raw::v3(&b, "").await;
    a.subscribe("t", 1).await;
    c.publish("t", 1, b"between anonymous clients").await;
    assert_eq!(
        &a.recv_acked().await.payload[..],
        b"between anonymous clients"
    );
}

/// [MQTT-3.1.2-4], [MQTT-3.1.2-6], [MQTT-3.2.2-1..3] (3.1.1) CleanSession 0 keeps the session
/// with no expiry (Session Present 1 on return, messages queued meanwhile delivered);
/// CleanSession 1 discards it (Session Present 0).
#[tokio::test]
async fn mqtt311_3_1_2_4_clean_session_0_keeps_the_session() {
    let b = Broker::start().await;
    let mut s = Raw::connect(&b, persistent(v3("s"), 0)).await;
    s.subscribe("t", 1).await;
    s.disconnect().await;
    Raw::v3(&b, "p").await.publish("t", 1, b"queued").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (mut s, ack) = Raw::handshake(&b, persistent(v3("s"), 0)).await;
    assert!(ack.session_present);
    assert_eq!(&s.recv_acked().await.payload[..], b"queued");
    s.disconnect().await;
    let (_s, ack) = Raw::handshake(&b, v3("s")).await;
    assert!(!ack.session_present, "CleanSession 1 discards the session");
    drop(_s);
    let (_s, ack) = Raw::handshake(&b, persistent(v3("s"), 0)).await;
    assert!(!ack.session_present);
}

/// ringmq: `--session-expiry-max-s` also bounds 3.1.1 persistent sessions (which otherwise
/// get `persistent_session_expiry_s`).
#[tokio::test]
async fn mqtt311_persistent_session_bounded_by_session_expiry_max() {
    let b = Broker::with(&["--session-expiry-max-s", "1"]).await;
    let mut s = Raw::connect(&b, persistent(v3("s"), 0)).await;
    s.subscribe("t", 1).await;
    s.disconnect().await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (_s, ack) = Raw::handshake(&b, persistent(v3("s"), 0)).await;
    assert!(!ack.session_present);
}

/// ringmq: a 3.1.1 persistent session (which cannot ask for an expiry) gets
/// `persistent_session_expiry_s` (default 7200 s, EMQX's; 0 = never, Mosquitto's), and outlives
/// a disconnect shorter than it.
#[tokio::test]
async fn mqtt311_persistent_session_gets_the_configured_default_expiry() {
    let b = Broker::with(&["--persistent-session-expiry-s", "1"]).await;
    let mut s = Raw::connect(&b, persistent(v3("s"), 0)).await;
    s.subscribe("t", 1).await;
    s.disconnect().await;
    let (s, ack) = Raw::handshake(&b, persistent(v3("s"), 0)).await;
    assert!(ack.session_present, "reconnected within the expiry");
    s.disconnect().await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (_s, ack) = Raw::handshake(&b, persistent(v3("s"), 0)).await;
    assert!(!ack.session_present, "expired after 1 s offline");
    drop(_s);
    let b = Broker::with(&["--persistent-session-expiry-s", "0"]).await;
    let mut s = Raw::connect(&b, persistent(v3("s"), 0)).await;
    s.subscribe("t", 1).await;
    s.disconnect().await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (_s, ack) = Raw::handshake(&b, persistent(v3("s"), 0)).await;
    assert!(ack.session_present, "0 = never expires");
}

/// [MQTT-3.1.4-2] (3.1.1) A second connection with the same client id: the server disconnects
/// the existing client (just closes it: no DISCONNECT in 3.1.1).
async fn mqtt311_3_1_4_2_takeover_closes_the_old_connection(shards: usize) {
    let b = Broker::shards(shards, &[]).await;
    let id = b.id("twice", 1);
    let mut old = Raw::v3(&b, &id).await;
    let mut new = Raw::v3(&b, &id).await;
    old.expect_refused(&[]).await;
    new.ping().await;
}
shard_tests!(mqtt311_3_1_4_2_takeover_closes_the_old_connection);

/// [MQTT-4.8.0-1] (3.1.1) A protocol violation closes the connection (no DISCONNECT); others
/// lose nothing. Here: a QoS 3 PUBLISH.
#[tokio::test]
async fn mqtt311_4_8_0_1_protocol_violation_closes_the_connection() {
    let b = Broker::start().await;
    let offender = Raw::v3(&b, &b.id("offender", 1)).await;
    let bad = frame(0x36, &[0, 1, b't', 0, 1, b'x']);
    assert_violation(&b, offender, &bad, &[]).await;
}

/// [MQTT-3.8.3-4] (3.1.1) Bits 7-2 of the requested QoS byte are reserved in 3.1.1 (5.0 uses
/// them for options): a SUBSCRIBE with No Local set is Malformed and closed.
#[tokio::test]
async fn mqtt311_3_8_3_4_reserved_subscribe_option_bits_close_the_connection() {
    let b = Broker::start().await;
    let offender = Raw::v3(&b, &b.id("offender", 1)).await;
    let mut body = vec![0, 1];
    body.extend(field(b"t"));
    body.push(0x04 | 1);
    assert_violation(&b, offender, &frame(0x82, &body), &[]).await;
}

/// [MQTT-3.9.3-2] (3.1.1) SUBACK return codes are 0x00, 0x01, 0x02 or 0x80: a refused filter
/// gets 0x80 (5.0 would say 0x8F).
#[tokio::test]
async fn mqtt311_3_9_3_2_refused_subscription_is_0x80() {
    let b = Broker::with(&["--topic-levels-max", "2"]).await;
    let mut c = Raw::v3(&b, "c").await;
    let a = c
        .subscribe_with(subscribe(0, &[("a/b/c", sub(1)), ("a/b", sub(2))]))
        .await;
    assert_eq!(a.codes, [0x80, 0x02]);
}

/// [MQTT-3.14.4-3] (3.1.1) Any DISCONNECT discards the will (3.1.1 DISCONNECT has no reason).
#[tokio::test]
async fn mqtt311_3_14_4_3_disconnect_discards_the_will() {
    let b = Broker::start().await;
    let mut w = Raw::v3(&b, "watcher").await;
    w.subscribe("will/#", 1).await;
    let c = Raw::connect(&b, with_will(v3("c"), "will/c", "x", 1, false)).await;
    c.disconnect().await;
    w.expect_silence(Duration::from_millis(500)).await;
    let c = Raw::connect(&b, with_will(v3("d"), "will/d", "lost", 1, false)).await;
    c.drop_tcp().await;
    assert_eq!(&w.recv_acked().await.payload[..], b"lost");
}

/// 3.1.1 §2.2.1: packet type 15 is reserved before 5.0 — an AUTH on a 3.1.1 connection is a
/// protocol violation and closes it.
#[tokio::test]
async fn mqtt311_2_2_1_packet_type_15_is_reserved() {
    let b = Broker::start().await;
    let offender = Raw::v3(&b, &b.id("offender", 1)).await;
    assert_violation(&b, offender, &[0xF0, 0], &[]).await;
}

/// [MQTT-4.7.3-1] (3.1.1) A zero-length topic name is never valid before 5.0 (no Topic Alias).
#[tokio::test]
async fn mqtt311_4_7_3_1_empty_topic_name_closes_the_connection() {
    let b = Broker::start().await;
    let offender = Raw::v3(&b, &b.id("offender", 1)).await;
    assert_violation(&b, offender, &frame(0x30, &[0, 0, b'x']), &[]).await;
}

/// 3.1.1 §3.11: UNSUBACK carries only the packet id (no reason codes, no properties).
#[tokio::test]
async fn mqtt311_3_11_unsuback_has_no_payload() {
    let b = Broker::start().await;
    let mut c = Raw::v3(&b, "c").await;
    c.subscribe("t", 1).await;
    c.send(unsubscribe_packet(0x0102, &["t", "never"])).await;
    assert_eq!(c.next_frame(WAIT).await.expect("UNSUBACK"), [0xB0, 2, 1, 2]);
}

/// MQTT 3.1 ("MQIsdp", level 3) clients are served too, and exchange messages with 5.0 ones.
#[tokio::test]
async fn mqtt31_mqisdp_client_is_served() {
    let b = Broker::start().await;
    let mut c = v3("old");
    c.protocol = Protocol::V310;
    let mut old = Raw::connect(&b, c).await;
    old.subscribe("t", 1).await;
    let mut new = Raw::v5(&b, "new").await;
    new.subscribe("u", 1).await;
    new.publish("t", 1, b"to 3.1").await;
    assert_eq!(&old.recv_acked().await.payload[..], b"to 3.1");
    old.publish("u", 1, b"to 5.0").await;
    assert_eq!(&new.recv_acked().await.payload[..], b"to 5.0");
}
