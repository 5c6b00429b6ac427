//! Section 3.1: CONNECT — first packet, protocol name and level, flags, clean start, will,
//! user name and password, keep alive, CONNECT properties, payload, and the server's actions.

use crate::fixture::*;
use bytestring::ByteString;
use ringmq::codec::{Packet, Properties, Protocol};
use std::time::{Duration, Instant};

/// A v5 CONNECT payload field list: client id "c" then `rest`.
fn payload(rest: &[u8]) -> Vec<u8> {
    let mut p = field(b"c");
    p.extend_from_slice(rest);
    p
}

/// Will properties (empty), will topic "w", will payload "x".
fn will_fields() -> Vec<u8> {
    let mut w = vec![0];
    w.extend(field(b"w"));
    w.extend(field(b"x"));
    w
}

/// A v5 client subscribed to `filter` at QoS 1, to see wills and other messages.
async fn watcher(b: &Broker, filter: &str) -> Raw {
    let mut w = Raw::v5(b, &b.id("watcher", 0)).await;
    w.subscribe(filter, 1).await;
    w
}

/// [MQTT-3.1.0-1] The first packet a client sends must be CONNECT: anything else (here
/// PINGREQ, then a PUBLISH) gets no answer and the connection is closed.
#[tokio::test]
async fn mqtt_3_1_0_1_first_packet_must_be_connect() {
    let b = Broker::start().await;
    assert_connect_refused(&b, Protocol::V5, &[0xC0, 0], &[]).await;
    let publish = wire(&Packet::Publish(publish("t", 0, 0, b"x")), Protocol::V5);
    assert_connect_refused(&b, Protocol::V5, &publish, &[]).await;
}

/// [MQTT-3.1.0-2] A second CONNECT is a Protocol Error: DISCONNECT 0x82 and close (and no
/// second CONNACK [MQTT-3.2.0-2]).
#[tokio::test]
async fn mqtt_3_1_0_2_second_connect_is_a_protocol_error() {
    let b = Broker::start().await;
    let again = wire_connect(&v5("offender"));
    assert_v5_violation(&b, &again, &[0x82]).await;
}

/// [MQTT-3.1.2-1] The protocol name must be "MQTT"; otherwise the server may answer CONNACK
/// 0x84 and must close the connection.
#[tokio::test]
async fn mqtt_3_1_2_1_wrong_protocol_name_is_refused() {
    let b = Broker::start().await;
    let bad = raw_connect(b"MQTX", 5, 0x02, Some(&[]), &payload(&[]));
    let mut raw = Raw::open(&b, Protocol::V5).await;
    raw.send_bytes(&bad).await;
    match raw.next_frame(WAIT).await {
        Err(Got::Closed) => {}
        Ok(f) => {
            assert_eq!(&f[..2], [0x20, 3], "only a CONNACK may come: {f:?}");
            assert_eq!(f[3], 0x84, "CONNACK 0x84 (Unsupported Protocol Version)");
            assert!(matches!(raw.next_frame(WAIT).await, Err(Got::Closed)));
        }
        Err(other) => panic!("expected close, got {other:?}"),
    }
}

/// [MQTT-3.1.2-2] A protocol level the server does not accept: it may send CONNACK 0x84 and
/// must close. (ringmq answers in the 3.1.1 form, return code 0x01, since it cannot know which
/// version the client speaks; either answer is a refusal the client understands.)
#[tokio::test]
async fn mqtt_3_1_2_2_unsupported_protocol_level_is_refused() {
    let b = Broker::start().await;
    let by = Bystander::start(&b).await;
    let mut raw = Raw::open(&b, Protocol::V5).await;
    raw.send_bytes(&raw_connect(b"MQTT", 6, 0x02, Some(&[]), &payload(&[])))
        .await;
    let f = raw.next_frame(WAIT).await.expect("a CONNACK");
    assert_eq!(f[0], 0x20, "CONNACK: {f:?}");
    assert!(
        (f.len() == 4 && f[3] == 0x01) || (f.len() >= 5 && f[3] == 0x84),
        "refused with 0x01 (v3 form) or 0x84 (v5): {f:?}"
    );
    assert!(matches!(raw.next_frame(WAIT).await, Err(Got::Closed)));
    by.finish().await;
}

/// [MQTT-3.1.2-3] The reserved CONNECT flag must be 0; if not, the CONNECT is Malformed.
#[tokio::test]
async fn mqtt_3_1_2_3_reserved_connect_flag_is_malformed() {
    let b = Broker::start().await;
    let bad = raw_connect(b"MQTT", 5, 0x03, Some(&[]), &payload(&[]));
    assert_connect_refused(&b, Protocol::V5, &bad, &[0x81]).await;
}

/// [MQTT-3.1.2-4] Clean Start 1 discards any existing session and starts a new one: no
/// subscription and no queued message survive. Also [MQTT-3.1.4-4].
#[tokio::test]
async fn mqtt_3_1_2_4_clean_start_discards_the_session() {
    let b = Broker::start().await;
    let mut s = Raw::connect(&b, persistent(v5("s"), 60)).await;
    s.subscribe("t", 1).await;
    s.disconnect().await;
    Raw::v5(&b, "p").await.publish("t", 1, b"queued").await;
    let (mut s, ack) = Raw::handshake(&b, v5("s")).await;
    assert_eq!((ack.code, ack.session_present), (0, false));
    s.expect_silence(QUIET).await;
    Raw::v5(&b, "p").await.publish("t", 1, b"live").await;
    s.expect_silence(QUIET).await;
}

/// [MQTT-3.1.2-5] Clean Start 0 with an existing session resumes it: the subscription is still
/// there and what was queued while offline is delivered.
#[tokio::test]
async fn mqtt_3_1_2_5_clean_start_0_resumes_the_session() {
    let b = Broker::start().await;
    let mut s = Raw::connect(&b, persistent(v5("s"), 60)).await;
    s.subscribe("t", 1).await;
    s.disconnect().await;
    let mut p = Raw::v5(&b, "p").await;
    p.publish("t", 1, b"queued").await;
    let (mut s, ack) = Raw::handshake(&b, persistent(v5("s"), 60)).await;
    assert!(ack.session_present);
    assert_eq!(payloads(&[s.recv_acked().await]), ["queued"]);
    p.publish("t", 1, b"live").await;
    assert_eq!(payloads(&[s.recv_acked().await]), ["live"]);
}

/// [MQTT-3.1.2-6] Clean Start 0 without a session creates one (Session Present 0, and the new
/// session is there on the next connection).
#[tokio::test]
async fn mqtt_3_1_2_6_clean_start_0_without_session_creates_one() {
    let b = Broker::start().await;
    let (mut s, ack) = Raw::handshake(&b, persistent(v5("s"), 60)).await;
    assert!(!ack.session_present);
    s.subscribe("t", 1).await;
    s.disconnect().await;
    let (_s, ack) = Raw::handshake(&b, persistent(v5("s"), 60)).await;
    assert!(ack.session_present);
}

/// [MQTT-3.1.2-7], [MQTT-3.1.2-8] The will is stored with the session and published when the
/// network connection closes without a normal DISCONNECT.
#[tokio::test]
async fn mqtt_3_1_2_8_will_published_when_the_connection_is_lost() {
    let b = Broker::start().await;
    let mut w = watcher(&b, "will/#").await;
    let c = Raw::connect(&b, with_will(v5("c"), "will/c", "gone", 1, false)).await;
    w.expect_silence(QUIET).await;
    c.drop_tcp().await;
    let m = w.recv_acked().await;
    assert_eq!((&m.topic[..], &m.payload[..]), ("will/c", &b"gone"[..]));
}

/// [MQTT-3.1.2-8] Only DISCONNECT with reason 0x00 deletes the will: a DISCONNECT with an
/// error reason (0x80 Unspecified error) still gets the will published.
#[tokio::test]
async fn mqtt_3_1_2_8_will_published_after_disconnect_with_error_reason() {
    let b = Broker::start().await;
    let mut w = watcher(&b, "will/#").await;
    let mut c = Raw::connect(&b, with_will(v5("c"), "will/c", "error", 1, false)).await;
    c.send(Packet::Disconnect(ringmq::codec::Disconnect {
        reason: 0x80,
        properties: Properties::default(),
    }))
    .await;
    c.expect_closed().await;
    let m = w.recv_acked().await;
    assert_eq!(&m.payload[..], b"error");
}

/// [MQTT-3.1.2-8] The server closing the connection for a protocol error publishes the will.
#[tokio::test]
async fn mqtt_3_1_2_8_will_published_when_the_server_closes_for_an_error() {
    let b = Broker::start().await;
    let mut w = watcher(&b, "will/#").await;
    let mut c = Raw::connect(&b, with_will(v5("c"), "will/c", "bad", 1, false)).await;
    c.send_bytes(&[0xC1, 0]).await;
    c.expect_refused(&[0x81]).await;
    assert_eq!(&w.recv_acked().await.payload[..], b"bad");
}

/// [MQTT-3.1.2-8] With a Will Delay Interval the will is published once the delay has passed,
/// not before.
#[tokio::test]
async fn mqtt_3_1_2_8_will_published_after_the_will_delay() {
    let b = Broker::start().await;
    let mut w = watcher(&b, "will/#").await;
    let mut c = persistent(with_will(v5("c"), "will/c", "late", 1, false), 30);
    c.will
        .as_mut()
        .expect("will")
        .properties
        .will_delay_interval_s = Some(1);
    let c = Raw::connect(&b, c).await;
    let dropped = Instant::now();
    c.drop_tcp().await;
    let m = w.recv_acked().await;
    assert!(
        dropped.elapsed() >= Duration::from_millis(900),
        "{:?}",
        dropped.elapsed()
    );
    assert_eq!(&m.payload[..], b"late");
    assert_eq!(
        m.properties.will_delay_interval_s, None,
        "will delay is not forwarded"
    );
}

/// [MQTT-3.1.2-8] The will is published when the session ends even if the will delay has not
/// passed (session expiry 1 s, will delay 60 s).
#[tokio::test]
async fn mqtt_3_1_2_8_will_published_when_the_session_ends_first() {
    let b = Broker::start().await;
    let mut w = watcher(&b, "will/#").await;
    let mut c = persistent(with_will(v5("c"), "will/c", "session over", 1, false), 1);
    c.will
        .as_mut()
        .expect("will")
        .properties
        .will_delay_interval_s = Some(60);
    let c = Raw::connect(&b, c).await;
    c.drop_tcp().await;
    assert_eq!(&w.recv_acked().await.payload[..], b"session over");
}

/// [MQTT-3.1.2-9] With the Will Flag set, the will properties, topic and payload must be in
/// the payload: a CONNECT that lacks them is Malformed.
#[tokio::test]
async fn mqtt_3_1_2_9_will_flag_without_will_fields_is_malformed() {
    let b = Broker::start().await;
    let bad = raw_connect(b"MQTT", 5, 0x06, Some(&[]), &payload(&[]));
    assert_connect_refused(&b, Protocol::V5, &bad, &[0x81]).await;
}

/// [MQTT-3.1.2-10] Once published, the will is removed from the session: a later connection
/// of the same session (without a will) that is lost publishes nothing.
#[tokio::test]
async fn mqtt_3_1_2_10_will_removed_once_published() {
    let b = Broker::start().await;
    let mut w = watcher(&b, "will/#").await;
    let c = Raw::connect(
        &b,
        persistent(with_will(v5("c"), "will/c", "once", 1, false), 30),
    )
    .await;
    c.drop_tcp().await;
    assert_eq!(&w.recv_acked().await.payload[..], b"once");
    let (c, ack) = Raw::handshake(&b, persistent(v5("c"), 30)).await;
    assert!(ack.session_present);
    c.drop_tcp().await;
    w.expect_silence(QUIET).await;
}

/// [MQTT-3.1.2-11] Will Flag 0 requires Will QoS 0.
#[tokio::test]
async fn mqtt_3_1_2_11_will_qos_without_will_flag_is_malformed() {
    let b = Broker::start().await;
    let bad = raw_connect(b"MQTT", 5, 0x02 | 0x08, Some(&[]), &payload(&[]));
    assert_connect_refused(&b, Protocol::V5, &bad, &[0x81]).await;
}

/// [MQTT-3.1.2-12] Will QoS 3 is a Malformed Packet.
#[tokio::test]
async fn mqtt_3_1_2_12_will_qos_3_is_malformed() {
    let b = Broker::start().await;
    let bad = raw_connect(
        b"MQTT",
        5,
        0x02 | 0x04 | 0x18,
        Some(&[]),
        &payload(&will_fields()),
    );
    assert_connect_refused(&b, Protocol::V5, &bad, &[0x81]).await;
}

/// [MQTT-3.1.2-13] Will Flag 0 requires Will Retain 0.
#[tokio::test]
async fn mqtt_3_1_2_13_will_retain_without_will_flag_is_malformed() {
    let b = Broker::start().await;
    let bad = raw_connect(b"MQTT", 5, 0x02 | 0x20, Some(&[]), &payload(&[]));
    assert_connect_refused(&b, Protocol::V5, &bad, &[0x81]).await;
}

/// [MQTT-3.1.2-14] Will Retain 0: the will is published as a non-retained message (subscribers
/// get it with RETAIN 0; a later subscriber gets nothing).
#[tokio::test]
async fn mqtt_3_1_2_14_will_retain_0_is_not_retained() {
    let b = Broker::start().await;
    let mut w = watcher(&b, "will/#").await;
    let c = Raw::connect(&b, with_will(v5("c"), "will/c", "plain", 0, false)).await;
    c.drop_tcp().await;
    let m = w.recv_acked().await;
    assert!(!m.retain);
    let mut late = Raw::v5(&b, "late").await;
    late.subscribe("will/#", 1).await;
    late.expect_silence(QUIET).await;
}

/// [MQTT-3.1.2-15] Will Retain 1: the will is published as a retained message (a later
/// subscriber gets it with RETAIN 1).
#[tokio::test]
async fn mqtt_3_1_2_15_will_retain_1_is_retained() {
    let b = Broker::start().await;
    let c = Raw::connect(&b, with_will(v5("c"), "will/c", "kept", 1, true)).await;
    c.drop_tcp().await;
    let mut late = Raw::v5(&b, "late").await;
    let deadline = Instant::now() + WAIT;
    loop {
        // The will is published asynchronously once the broker sees the close.
        late.subscribe("will/c", 1).await;
        if let Got::Packet(Packet::Publish(m)) = late.next(Duration::from_millis(100)).await {
            assert!(
                m.retain,
                "a retained message sent on subscribe has RETAIN 1"
            );
            assert_eq!(&m.payload[..], b"kept");
            break;
        }
        assert!(Instant::now() < deadline, "retained will never appeared");
    }
}

/// [MQTT-3.1.2-16] User Name Flag 0: no user name in the payload (extra bytes are Malformed).
#[tokio::test]
async fn mqtt_3_1_2_16_user_name_without_flag_is_malformed() {
    let b = Broker::start().await;
    let bad = raw_connect(b"MQTT", 5, 0x02, Some(&[]), &payload(&field(b"user")));
    assert_connect_refused(&b, Protocol::V5, &bad, &[0x81]).await;
}

/// [MQTT-3.1.2-17] User Name Flag 1: the user name must be present.
#[tokio::test]
async fn mqtt_3_1_2_17_user_name_flag_without_user_name_is_malformed() {
    let b = Broker::start().await;
    let bad = raw_connect(b"MQTT", 5, 0x82, Some(&[]), &payload(&[]));
    assert_connect_refused(&b, Protocol::V5, &bad, &[0x81]).await;
}

/// [MQTT-3.1.2-18] Password Flag 0: no password in the payload.
#[tokio::test]
async fn mqtt_3_1_2_18_password_without_flag_is_malformed() {
    let b = Broker::start().await;
    let mut rest = field(b"user");
    rest.extend(field(b"secret"));
    let bad = raw_connect(b"MQTT", 5, 0x82, Some(&[]), &payload(&rest));
    assert_connect_refused(&b, Protocol::V5, &bad, &[0x81]).await;
}

/// [MQTT-3.1.2-19] Password Flag 1: the password must be present.
#[tokio::test]
async fn mqtt_3_1_2_19_password_flag_without_password_is_malformed() {
    let b = Broker::start().await;
    let bad = raw_connect(b"MQTT", 5, 0xC2, Some(&[]), &payload(&field(b"user")));
    assert_connect_refused(&b, Protocol::V5, &bad, &[0x81]).await;
}

/// 3.1.2.9 (no statement number): MQTT 5 allows a password without a user name.
#[tokio::test]
async fn sec_3_1_2_9_password_without_user_name_is_allowed_in_v5() {
    let b = Broker::start().await;
    let mut c = v5("c");
    c.password = Some(bytes::Bytes::from_static(b"token"));
    Raw::connect(&b, c).await.ping().await;
}

/// [MQTT-3.1.2-22] Keep Alive non-zero: with nothing received for 1.5 × Keep Alive the server
/// closes the connection (v5: DISCONNECT 0x8D) — not before. Without Server Keep Alive the
/// client's value is used [MQTT-3.2.2-22].
#[tokio::test]
async fn mqtt_3_1_2_22_keep_alive_timeout_closes_the_connection() {
    let b = Broker::start().await;
    let mut c = v5("idle");
    c.keep_alive_s = 1;
    let (mut raw, ack) = Raw::handshake(&b, c).await;
    assert_eq!(ack.properties.server_keep_alive_s, None);
    let start = Instant::now();
    raw.expect_refused(&[0x8D]).await;
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1400) && took <= Duration::from_millis(2900),
        "closed after {took:?}, expected about 1.5 s"
    );
}

/// [MQTT-3.1.2-22] Any control packet (here PINGREQ every 0.5 s) resets the keep-alive timer.
#[tokio::test]
async fn mqtt_3_1_2_22_control_packets_keep_the_connection_alive() {
    let b = Broker::start().await;
    let mut c = v5("busy");
    c.keep_alive_s = 1;
    let mut raw = Raw::connect(&b, c).await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        raw.ping().await;
    }
}

/// 3.1.2.10 (no statement number): Keep Alive 0 turns the mechanism off.
#[tokio::test]
async fn sec_3_1_2_10_keep_alive_0_never_times_out() {
    let b = Broker::start().await;
    let mut c = v5("quiet");
    c.keep_alive_s = 0;
    let mut raw = Raw::connect(&b, c).await;
    raw.expect_silence(Duration::from_millis(1700)).await;
    raw.ping().await;
}

/// [MQTT-3.1.2-23] With a Session Expiry Interval > 0 the session state is stored after the
/// connection closes: messages arriving meanwhile are delivered on resume.
#[tokio::test]
async fn mqtt_3_1_2_23_session_stored_when_expiry_is_positive() {
    let b = Broker::start().await;
    let mut s = Raw::connect(&b, persistent(v5("s"), 5)).await;
    s.subscribe("t", 1).await;
    s.drop_tcp().await;
    let mut p = Raw::v5(&b, "p").await;
    p.publish("t", 1, b"one").await;
    p.publish("t", 1, b"two").await;
    let (mut s, ack) = Raw::handshake(&b, persistent(v5("s"), 5)).await;
    assert!(ack.session_present);
    assert_eq!(payloads(&s.recv_n(2).await), ["one", "two"]);
    // Expiry 0 (the default): nothing is kept.
    let mut e = Raw::connect(&b, v5("e")).await;
    e.subscribe("t", 1).await;
    e.disconnect().await;
    let (_e, ack) = Raw::handshake(&b, persistent(v5("e"), 5)).await;
    assert!(!ack.session_present);
}

/// [MQTT-3.1.2-24] The server never sends a packet larger than the client's Maximum Packet
/// Size: a message too big for this subscriber is not sent to it (others still get it).
#[tokio::test]
async fn mqtt_3_1_2_24_nothing_over_the_client_maximum_packet_size() {
    let b = Broker::start().await;
    let mut c = v5("small");
    c.properties.maximum_packet_size = Some(64);
    let mut small = Raw::connect(&b, c).await;
    small.subscribe("t", 1).await;
    let mut big = Raw::v5(&b, "big").await;
    big.subscribe("t", 1).await;
    let mut p = Raw::v5(&b, "p").await;
    p.publish("t", 1, &[b'x'; 200]).await;
    p.publish("t", 1, b"fits").await;
    assert_eq!(big.recv_n(2).await.len(), 2);
    let m = small.recv_acked().await;
    assert_eq!(&m.payload[..], b"fits");
    small.expect_silence(QUIET).await;
}

/// [MQTT-3.1.2-25] A message too large for the client is discarded as if it had been sent: it
/// does not hold a slot of the client's Receive Maximum (1 here), so the next one flows
/// without any acknowledgement.
#[tokio::test]
async fn mqtt_3_1_2_25_oversized_message_is_discarded_as_if_sent() {
    let b = Broker::start().await;
    let mut c = v5("small");
    c.properties.maximum_packet_size = Some(64);
    c.properties.receive_maximum = Some(1);
    let mut small = Raw::connect(&b, c).await;
    small.subscribe("t", 1).await;
    let mut p = Raw::v5(&b, "p").await;
    p.publish("t", 1, &[b'x'; 200]).await;
    p.publish("t", 1, b"next").await;
    let m = small.recv_publish().await;
    assert_eq!(&m.payload[..], b"next");
}

/// [MQTT-3.1.2-26] The server never sends a Topic Alias above the client's Topic Alias Maximum
/// (2 here), and every alias it uses resolves (the raw client checks the mapping).
/// Also [MQTT-3.3.2-11].
#[tokio::test]
async fn mqtt_3_1_2_26_server_topic_aliases_within_the_client_maximum() {
    let b = Broker::with(&["--topic-alias-outbound", "true"]).await;
    let mut c = v5("aliased");
    c.properties.topic_alias_maximum = Some(2);
    let mut s = Raw::connect(&b, c).await;
    s.subscribe("a/#", 0).await;
    let mut p = Raw::v5(&b, "p").await;
    let topics = ["a/1", "a/2", "a/3", "a/4"];
    for round in 0..2 {
        for t in topics {
            p.publish(t, 0, format!("{t}#{round}").as_bytes()).await;
        }
    }
    let mut used = Vec::new();
    for round in 0..2 {
        for t in topics {
            let m = s.recv_publish().await;
            assert_eq!(&m.topic[..], t);
            assert_eq!(m.payload, format!("{t}#{round}").as_bytes());
            if let Some(a) = m.properties.topic_alias {
                used.push(a);
            }
        }
    }
    assert!(
        !used.is_empty(),
        "outbound aliases are on: some should be used"
    );
    assert!(
        used.iter().all(|&a| (1..=2).contains(&a)),
        "aliases {used:?}"
    );
}

/// [MQTT-3.1.2-27] Topic Alias Maximum absent or 0: the server sends no Topic Alias at all.
#[tokio::test]
async fn mqtt_3_1_2_27_no_topic_alias_without_a_client_maximum() {
    let b = Broker::with(&["--topic-alias-outbound", "true"]).await;
    let mut zero = v5("zero");
    zero.properties.topic_alias_maximum = Some(0);
    for c in [v5("absent"), zero] {
        let mut s = Raw::connect(&b, c).await;
        s.subscribe("t", 0).await;
        let mut p = Raw::v5(&b, "p").await;
        for _ in 0..3 {
            p.publish("t", 0, b"x").await;
        }
        for _ in 0..3 {
            let m = s.recv_publish().await;
            assert_eq!((&m.topic[..], m.properties.topic_alias), ("t", None));
        }
    }
}

/// [MQTT-3.1.2-28] Request Response Information 0 (or absent): the server returns no Response
/// Information. With 1, a server configured with one returns it (3.2.2.3.15).
#[tokio::test]
async fn mqtt_3_1_2_28_no_response_information_unless_requested() {
    let b = Broker::with(&["--response-information", "reply/base"]).await;
    let mut zero = v5("zero");
    zero.properties.request_response_information = Some(0);
    for c in [v5("absent"), zero] {
        let (_raw, ack) = Raw::handshake(&b, c).await;
        assert_eq!(ack.properties.response_information, None);
    }
    let mut one = v5("one");
    one.properties.request_response_information = Some(1);
    let (_raw, ack) = Raw::handshake(&b, one).await;
    assert_eq!(
        ack.properties.response_information.as_deref(),
        Some("reply/base")
    );
}

/// [MQTT-3.1.2-29] Request Problem Information 0: no Reason String or User Property on any
/// packet but PUBLISH, CONNACK and DISCONNECT — checked on a failed PUBCOMP (0x92), a failed
/// SUBACK (0x8F) and an UNSUBACK with 0x11.
#[tokio::test]
async fn mqtt_3_1_2_29_no_reason_strings_when_problem_information_is_0() {
    let b = Broker::with(&["--topic-levels-max", "2"]).await;
    let mut c = v5("quiet");
    c.properties.request_problem_information = Some(0);
    let mut raw = Raw::connect(&b, c).await;
    raw.send(Packet::PubRel(ack(77, 0))).await;
    match raw.recv().await {
        Packet::PubComp(a) => {
            assert_eq!(a.reason, 0x92);
            assert!(a.properties.is_empty(), "{a:?}");
        }
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    let s = raw.subscribe_with(subscribe(0, &[("a/b/c", sub(1))])).await;
    assert_eq!(s.codes, [0x8F]);
    assert!(s.properties.is_empty(), "{s:?}");
    let u = raw.unsubscribe(&["nothing"]).await;
    assert_eq!(u.codes, [0x11]);
    assert!(u.properties.is_empty(), "{u:?}");
}

/// [MQTT-3.1.3-1] Payload fields come in the order client id, will properties, will topic,
/// will payload, user name, password: a CONNECT with all of them is read correctly (the will
/// is published with its own topic, payload and properties).
#[tokio::test]
async fn mqtt_3_1_3_1_payload_fields_are_read_in_order() {
    let b = Broker::start().await;
    let mut w = watcher(&b, "will/#").await;
    let mut c = with_will(v5("full"), "will/full", "will payload", 1, false);
    c.will.as_mut().expect("will").properties.content_type = Some("text/plain".into());
    c.username = Some("user".into());
    c.password = Some(bytes::Bytes::from_static(b"pass"));
    Raw::connect(&b, c).await.drop_tcp().await;
    let m = w.recv_acked().await;
    assert_eq!(
        (&m.topic[..], &m.payload[..]),
        ("will/full", &b"will payload"[..])
    );
    assert_eq!(m.properties.content_type.as_deref(), Some("text/plain"));
}

/// [MQTT-3.1.3-2] The client id identifies the session: another id does not see it, the same
/// id resumes it.
#[tokio::test]
async fn mqtt_3_1_3_2_client_id_identifies_the_session() {
    let b = Broker::start().await;
    let mut a = Raw::connect(&b, persistent(v5("client-a"), 60)).await;
    a.subscribe("t", 1).await;
    a.disconnect().await;
    let (_other, ack) = Raw::handshake(&b, persistent(v5("client-b"), 60)).await;
    assert!(!ack.session_present);
    let (_a, ack) = Raw::handshake(&b, persistent(v5("client-a"), 60)).await;
    assert!(ack.session_present);
}

/// [MQTT-3.1.3-3] The client id must be present, first in the payload: a CONNECT with an empty
/// payload is Malformed.
#[tokio::test]
async fn mqtt_3_1_3_3_missing_client_id_is_malformed() {
    let b = Broker::start().await;
    let bad = raw_connect(b"MQTT", 5, 0x02, Some(&[]), &[]);
    assert_connect_refused(&b, Protocol::V5, &bad, &[0x81]).await;
}

/// [MQTT-3.1.3-4] The client id is a UTF-8 Encoded String: ill-formed UTF-8 is Malformed.
#[tokio::test]
async fn mqtt_3_1_3_4_client_id_must_be_utf8() {
    let b = Broker::start().await;
    let bad = raw_connect(b"MQTT", 5, 0x02, Some(&[]), &field(b"id\xC0\xAF"));
    assert_connect_refused(&b, Protocol::V5, &bad, &[0x81]).await;
}

/// [MQTT-3.1.3-5] The server allows client ids of 1 to 23 bytes of [0-9a-zA-Z].
#[tokio::test]
async fn mqtt_3_1_3_5_short_alphanumeric_client_ids_are_allowed() {
    let b = Broker::start().await;
    for id in ["0123456789abcdefghijklm", "Z", "ABCDEFGHIJKLMNOPQRSTUVW"] {
        Raw::v5(&b, id).await.ping().await;
    }
}

/// [MQTT-3.1.3-6] A zero-length client id is a special case: the server assigns a unique one.
/// Also [MQTT-3.2.2-16] (Assigned Client Identifier in CONNACK, not used by another session).
#[tokio::test]
async fn mqtt_3_1_3_6_empty_client_id_gets_a_unique_id() {
    let b = Broker::start().await;
    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..10 {
        let (raw, ack) = Raw::handshake(&b, v5("")).await;
        assert_eq!(ack.code, 0);
        let id = ack
            .properties
            .assigned_client_identifier
            .expect("Assigned Client Identifier in CONNACK");
        assert!(!id.is_empty());
        ids.push(id);
        clients.push(raw);
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "assigned ids are unique: {ids:?}");
    for c in &mut clients {
        c.ping().await;
    }
}

/// [MQTT-3.1.3-7] The CONNECT is processed as if the client had sent the assigned id: the
/// session it created is resumed by connecting with that id.
#[tokio::test]
async fn mqtt_3_1_3_7_assigned_client_id_names_the_session() {
    let b = Broker::start().await;
    let (mut raw, ack) = Raw::handshake(&b, persistent(v5(""), 60)).await;
    let id: ByteString = ack
        .properties
        .assigned_client_identifier
        .expect("assigned id");
    raw.subscribe("t", 1).await;
    raw.disconnect().await;
    Raw::v5(&b, "p").await.publish("t", 1, b"for you").await;
    let (mut raw, ack) = Raw::handshake(&b, persistent(v5(&id), 60)).await;
    assert!(ack.session_present);
    assert_eq!(&raw.recv_acked().await.payload[..], b"for you");
}

/// [MQTT-3.1.3-9] A new connection for the session before the Will Delay Interval has passed:
/// the will is not sent.
#[tokio::test]
async fn mqtt_3_1_3_9_no_will_when_reconnected_within_the_delay() {
    let b = Broker::start().await;
    let mut w = watcher(&b, "will/#").await;
    let mut c = persistent(with_will(v5("c"), "will/c", "never", 1, false), 30);
    c.will
        .as_mut()
        .expect("will")
        .properties
        .will_delay_interval_s = Some(2);
    Raw::connect(&b, c).await.drop_tcp().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut again, ack) = Raw::handshake(&b, persistent(v5("c"), 30)).await;
    assert!(ack.session_present);
    w.expect_silence(Duration::from_millis(2300)).await;
    again.ping().await;
}

/// [MQTT-3.1.3-10] The server keeps the order of the will's User Properties when it publishes
/// it.
#[tokio::test]
async fn mqtt_3_1_3_10_will_user_properties_keep_their_order() {
    let b = Broker::start().await;
    let mut w = watcher(&b, "will/#").await;
    let mut c = with_will(v5("c"), "will/c", "x", 1, false);
    let props = vec![
        ("k".into(), "3".into()),
        ("a".into(), "1".into()),
        ("k".into(), "2".into()),
    ];
    c.will.as_mut().expect("will").properties.user_properties = props.clone();
    Raw::connect(&b, c).await.drop_tcp().await;
    assert_eq!(w.recv_acked().await.properties.user_properties, props);
}

/// [MQTT-3.1.3-11] The will topic is a UTF-8 Encoded String: ill-formed UTF-8 is Malformed.
#[tokio::test]
async fn mqtt_3_1_3_11_will_topic_must_be_utf8() {
    let b = Broker::start().await;
    let mut rest = vec![0];
    rest.extend(field(b"will/\xFF"));
    rest.extend(field(b"x"));
    let bad = raw_connect(b"MQTT", 5, 0x06, Some(&[]), &payload(&rest));
    assert_connect_refused(&b, Protocol::V5, &bad, &[0x81]).await;
}

/// [MQTT-3.1.3-12] The user name is a UTF-8 Encoded String: ill-formed UTF-8 is Malformed.
#[tokio::test]
async fn mqtt_3_1_3_12_user_name_must_be_utf8() {
    let b = Broker::start().await;
    let bad = raw_connect(b"MQTT", 5, 0x82, Some(&[]), &payload(&field(b"\xC3")));
    assert_connect_refused(&b, Protocol::V5, &bad, &[0x81]).await;
}

/// [MQTT-3.1.4-1] A CONNECT that does not match the format (here: bytes after the last field,
/// and a remaining length too short for the fields) is refused and the connection closed.
#[tokio::test]
async fn mqtt_3_1_4_1_connect_not_matching_the_format_is_refused() {
    let b = Broker::start().await;
    let trailing = raw_connect(b"MQTT", 5, 0x02, Some(&[]), &payload(b"\x00"));
    assert_connect_refused(&b, Protocol::V5, &trailing, &[0x81]).await;
    let mut short = wire_connect(&v5("short"));
    short[1] -= 3;
    short.truncate(short.len() - 3);
    assert_connect_refused(&b, Protocol::V5, &short, &[0x81]).await;
}

/// [MQTT-3.1.4-2] When a further check of the CONNECT fails the server closes the connection:
/// a will topic over the configured topic level limit gets CONNACK 0x90 and a close.
#[tokio::test]
async fn mqtt_3_1_4_2_failed_further_checks_close_the_connection() {
    let b = Broker::with(&["--topic-levels-max", "2"]).await;
    let bad = wire_connect(&with_will(v5("c"), "a/b/c", "x", 0, false));
    assert_connect_refused(&b, Protocol::V5, &bad, &[0x90]).await;
}

/// [MQTT-3.1.4-3] A CONNECT for a client id that is connected: the existing connection gets
/// DISCONNECT 0x8E (Session taken over) and is closed; the new one is served.
async fn mqtt_3_1_4_3_takeover_disconnects_the_existing_client(shards: usize) {
    let b = Broker::shards(shards, &[]).await;
    let id = b.id("twice", 1);
    let mut old = Raw::connect(&b, persistent(v5(&id), 60)).await;
    old.subscribe("t", 1).await;
    let (mut new, ack) = Raw::handshake(&b, persistent(v5(&id), 60)).await;
    assert_eq!((ack.code, ack.session_present), (0, true));
    old.expect_refused(&[0x8E]).await;
    let mut p = Raw::v5(&b, &b.id("p", 0)).await;
    p.publish("t", 1, b"to the new connection").await;
    assert_eq!(
        &new.recv_acked().await.payload[..],
        b"to the new connection"
    );
}
shard_tests!(mqtt_3_1_4_3_takeover_disconnects_the_existing_client);

/// [MQTT-3.1.4-5] An accepted CONNECT is acknowledged with CONNACK 0x00 (Success).
#[tokio::test]
async fn mqtt_3_1_4_5_accepted_connect_gets_connack_success() {
    let b = Broker::start().await;
    let (_raw, ack) = Raw::handshake(&b, v5("ok")).await;
    assert_eq!(ack.code, 0x00);
}

/// [MQTT-3.1.4-6] After refusing a CONNECT the server processes nothing the client sent after
/// it: a PUBLISH and a SUBSCRIBE sent in the same write are ignored.
#[tokio::test]
async fn mqtt_3_1_4_6_nothing_processed_after_a_refused_connect() {
    let b = Broker::with(&["--maximum-qos", "1"]).await;
    let mut w = watcher(&b, "leak/#").await;
    let mut bytes = wire_connect(&with_will(v5("c"), "will/c", "x", 2, false));
    bytes.extend(wire(
        &Packet::Publish(publish("leak/x", 0, 0, b"no")),
        Protocol::V5,
    ));
    bytes.extend(wire(
        &Packet::Subscribe(subscribe(1, &[("leak/#", sub(0))])),
        Protocol::V5,
    ));
    let mut raw = Raw::open(&b, Protocol::V5).await;
    raw.send_bytes(&bytes).await;
    let seen = raw.expect_closed().await;
    assert!(
        matches!(seen.as_slice(), [Packet::ConnAck(a)] if a.code == 0x9B),
        "only CONNACK 0x9B, got {seen:?}"
    );
    w.expect_silence(QUIET).await;
}

/// 3.1.2.11 (no statement numbers): these CONNECT property values parse but are not allowed,
/// and the specification calls each a Protocol Error (CONNACK 0x82): Receive Maximum 0,
/// Maximum Packet Size 0, Request Problem / Response Information other than 0 or 1,
/// Authentication Data without Authentication Method, a property given twice.
#[tokio::test]
async fn sec_3_1_2_11_invalid_connect_property_values_are_protocol_errors() {
    let b = Broker::start().await;
    let cases: [(&str, &[u8]); 6] = [
        ("Receive Maximum 0", &[0x21, 0, 0]),
        ("Maximum Packet Size 0", &[0x27, 0, 0, 0, 0]),
        ("Request Problem Information 2", &[0x17, 2]),
        ("Request Response Information 2", &[0x19, 2]),
        ("Authentication Data without Method", &[0x16, 0, 1, b'x']),
        ("Topic Alias Maximum twice", &[0x22, 0, 1, 0x22, 0, 2]),
    ];
    let mut wrong = Vec::new();
    for (what, props) in cases {
        let mut raw = Raw::open(&b, Protocol::V5).await;
        raw.send_bytes(&raw_connect(b"MQTT", 5, 0x02, Some(props), &field(b"c")))
            .await;
        match raw.expect_closed().await.as_slice() {
            [Packet::ConnAck(a)] if a.code == 0x82 => {}
            [Packet::ConnAck(a)] => wrong.push(format!("{what}: CONNACK {:#04x}", a.code)),
            other => wrong.push(format!("{what}: {other:?}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "not refused with CONNACK 0x82:\n{}",
        wrong.join("\n")
    );
}
