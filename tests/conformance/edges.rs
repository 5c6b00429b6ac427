//! Issue 7's protocol edges: what a conformance suite replaying raw packets finds, each case run
//! for every protocol version it applies to (3.1 "MQIsdp" level 3, 3.1.1, 5.0). Mosquitto 2.1
//! behaves as these tests expect except where `docs/CONFORMANCE.md` ("Deviations from
//! Mosquitto") says otherwise.

use crate::fixture::*;
use crate::raw_client::connect_packet;
use bytestring::ByteString;
use ringmq::codec::{Connect, Packet, Protocol, QoS, SubOptions};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

const ALL: [Protocol; 3] = [Protocol::V310, Protocol::V311, Protocol::V5];
const V3: [Protocol; 2] = [Protocol::V310, Protocol::V311];

/// How quickly a close "at once" must come: well under the keep alive (30 s), the connect
/// timeout these tests set (10 s) and [`WAIT`].
const PROMPT: Duration = Duration::from_millis(1000);

/// A CONNECT of `protocol` (3.1 as "MQIsdp" level 3): clean, keep alive 30 s.
fn connect(protocol: Protocol, id: &str) -> Connect {
    connect_packet(protocol, id)
}

/// The bytes the broker sends on `raw` until it closes, within `within`; `Err` with what came
/// if it is still open then.
async fn bytes_until_close(raw: &mut Raw, within: Duration) -> Result<Vec<u8>, Vec<u8>> {
    assert!(raw.pending.is_empty(), "packets pending: {:?}", raw.pending);
    let deadline = tokio::time::Instant::now() + within;
    let c = &mut raw.0;
    loop {
        match tokio::time::timeout_at(deadline, c.stream.read_buf(&mut c.buf)).await {
            Err(_) => return Err(c.buf.to_vec()),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(c.buf.to_vec()),
            Ok(Ok(_)) => {}
        }
    }
}

/// A CONNECT whose encoding the codec would refuse to produce: the payload from raw bytes.
fn raw_v3_connect(protocol: Protocol, flags: u8, payload: &[u8]) -> Vec<u8> {
    let (name, level): (&[u8], u8) = match protocol {
        Protocol::V310 => (b"MQIsdp", 3),
        _ => (b"MQTT", 4),
    };
    raw_connect(name, level, flags, None, payload)
}

// ---------------------------------------------------------------------------------------------
// Edge 1: packets only a server sends
// ---------------------------------------------------------------------------------------------

/// A well-formed CONNACK, SUBACK, UNSUBACK or PINGRESP for `protocol`.
fn server_only_packets(protocol: Protocol) -> Vec<(&'static str, Vec<u8>)> {
    let v5 = protocol.is_v5();
    let props: &[u8] = if v5 { &[0] } else { &[] };
    let mut connack = vec![0, 0];
    connack.extend(props);
    let mut suback = vec![0, 1];
    suback.extend(props);
    suback.push(0);
    let mut unsuback = vec![0, 1];
    if v5 {
        unsuback.extend([0, 0]);
    }
    vec![
        ("CONNACK", frame(0x20, &connack)),
        ("SUBACK", frame(0x90, &suback)),
        ("UNSUBACK", frame(0xB0, &unsuback)),
        ("PINGRESP", vec![0xD0, 0]),
    ]
}

/// MQTT 5.0 §2.1.2 (the direction of each packet type): a client that sends a packet only a
/// server sends (CONNACK, SUBACK, UNSUBACK, PINGRESP) commits a Protocol Error: v5 DISCONNECT
/// 0x82, v3 a close; a bystander loses nothing. Here the packets are well-formed.
#[tokio::test]
async fn sec_2_1_2_server_only_packets_from_a_client_are_a_protocol_error() {
    let b = Broker::start().await;
    for protocol in ALL {
        for (name, bytes) in server_only_packets(protocol) {
            let offender = Raw::connect(&b, connect(protocol, &b.id("offender", 1))).await;
            let d = assert_violation(&b, offender, &bytes, &[0x82]).await;
            assert_eq!(d.is_some(), protocol.is_v5(), "{protocol:?} {name}");
        }
    }
}

/// MQTT 5.0 §2.1.2: a packet only a server sends is a Protocol Error (v5 DISCONNECT 0x82, not
/// 0x81 Malformed) whatever its contents — bytes that would not decode as that packet, or just
/// its first byte — so it is refused from the fixed header's first byte; v3 is closed.
///
/// Needs in `serve_loop` (src/net/connection.rs): `codec::decode_from_client(rbuf,
/// conn.protocol, max)` instead of `codec::decode(...)`.
#[tokio::test]
async fn sec_2_1_2_server_only_packets_are_refused_whatever_their_contents() {
    let b = Broker::start().await;
    let cases: [(&str, &[u8]); 8] = [
        (
            "CONNACK, bad flags and length",
            &[0x20, 5, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
        ),
        ("CONNACK, first byte alone", &[0x20]),
        ("SUBACK, truncated", &[0x90, 1, 0]),
        ("SUBACK with reserved flags", &[0x9F, 3, 0, 1, 0]),
        ("UNSUBACK, truncated", &[0xB0, 1, 1]),
        ("UNSUBACK, first byte alone", &[0xB0]),
        ("PINGRESP with a body", &[0xD0, 2, b'a', b'b']),
        ("PINGRESP, declared 1 MiB", &[0xD0, 0x80, 0x80, 0x40]),
    ];
    for protocol in ALL {
        for (name, bytes) in cases {
            let mut offender = Raw::connect(&b, connect(protocol, &b.id("offender", 1))).await;
            offender.send_bytes(bytes).await;
            let start = Instant::now();
            let d = offender.expect_refused(&[0x82]).await;
            assert_eq!(d.is_some(), protocol.is_v5(), "{protocol:?} {name}");
            assert!(
                start.elapsed() < PROMPT,
                "{protocol:?} {name}: {:?}",
                start.elapsed()
            );
        }
    }
    // Others lose nothing.
    let offender = Raw::connect(&b, v5(&b.id("offender", 1))).await;
    assert_violation(&b, offender, &[0x20, 1, 0xFF], &[0x82]).await;
}

// ---------------------------------------------------------------------------------------------
// Edge 2: the CONNACK form a refused 3.1 / 3.1.1 CONNECT gets
// ---------------------------------------------------------------------------------------------

/// [MQTT-3.1.4-1] (3.1.1), MQTT 3.1 §3.2: a 3.1 or 3.1.1 client whose CONNECT is refused gets a
/// CONNACK in the 3.1.1 form (exactly 0x20 0x02 flags code, code 1–5) or no CONNACK, then the
/// close — never the 5.0 form (remaining length 3 and more, with a property length), which it
/// cannot parse. Malformed CONNECTs of every kind.
#[tokio::test]
async fn mqtt311_3_1_4_1_refused_connect_never_gets_a_v5_connack() {
    let b = Broker::start().await;
    for protocol in V3 {
        let id = field(b"c");
        let mut truncated = field(b"client");
        truncated.truncate(4);
        let mut trailing = field(b"c");
        trailing.push(0);
        let mut with_user = field(b"c");
        with_user.extend(field(b"u\x01"));
        let mut fixed_flags = raw_v3_connect(protocol, 0x02, &id);
        fixed_flags[0] = 0x12;
        let cases: Vec<(&str, Vec<u8>, Option<u8>)> = vec![
            ("reserved flag", raw_v3_connect(protocol, 0x03, &id), None),
            ("will QoS 3", raw_v3_connect(protocol, 0x1E, &id), None),
            (
                "will retain, no will",
                raw_v3_connect(protocol, 0x22, &id),
                None,
            ),
            (
                "password, no user name",
                raw_v3_connect(protocol, 0x42, &id),
                None,
            ),
            (
                "truncated client id",
                raw_v3_connect(protocol, 0x02, &truncated),
                None,
            ),
            (
                "trailing byte",
                raw_v3_connect(protocol, 0x02, &trailing),
                None,
            ),
            (
                "client id not UTF-8",
                raw_v3_connect(protocol, 0x02, &field(b"\xFF")),
                None,
            ),
            ("fixed-header flags", fixed_flags, None),
            (
                "client id with U+0001",
                raw_v3_connect(protocol, 0x02, &field(b"a\x01")),
                Some(2),
            ),
            (
                "user name with U+0001",
                raw_v3_connect(protocol, 0x82, &with_user),
                Some(4),
            ),
        ];
        for (name, bytes, code) in cases {
            let mut raw = Raw::open(&b, protocol).await;
            raw.send_bytes(&bytes).await;
            let got = bytes_until_close(&mut raw, WAIT)
                .await
                .unwrap_or_else(|got| panic!("{protocol:?} {name}: still open, got {got:02x?}"));
            match code {
                Some(c) => assert_eq!(got, [0x20, 2, 0, c], "{protocol:?} {name}"),
                None => assert!(
                    got.is_empty() || (got.len() == 4 && got[..3] == [0x20, 2, 0]),
                    "{protocol:?} {name}: {got:02x?} is not a 3.1.1-form CONNACK"
                ),
            }
        }
    }
    // The same refusals in 5.0 get the 5.0 form with the reason code.
    let mut payload = field(b"c");
    payload.extend(field(b"u\x01"));
    let bad = raw_connect(b"MQTT", 5, 0x82, Some(&[]), &payload);
    let mut raw = Raw::open(&b, Protocol::V5).await;
    raw.send_bytes(&bad).await;
    let got = bytes_until_close(&mut raw, WAIT).await.expect("closed");
    assert_eq!(got, [0x20, 3, 0, 0x86, 0]);
}

// ---------------------------------------------------------------------------------------------
// Edge 3: control characters U+0001–U+001F, U+007F–U+009F
// ---------------------------------------------------------------------------------------------

/// Strings with a control character at the start, middle and end, C0 and C1.
const CONTROL: [&str; 5] = ["\u{1}a", "a\u{1F}b", "a\u{7F}", "a\u{80}b", "\u{9F}"];

/// MQTT 5.0 §1.5.4 (after [MQTT-1.5.4-2]; 3.1.1 §1.5.3): strings "SHOULD NOT include" control
/// characters and a receiver "MAY" refuse them. A client id with one is refused: v5 CONNACK
/// 0x85 (Client Identifier not valid), 3.1 / 3.1.1 return code 2 (identifier rejected).
#[tokio::test]
async fn mqtt_1_5_4_2_control_characters_in_client_ids_are_refused() {
    let b = Broker::start().await;
    for protocol in ALL {
        let code = if protocol.is_v5() { 0x85 } else { 0x02 };
        for id in CONTROL {
            let bytes = wire_connect(&connect(protocol, id));
            let ack = assert_connect_refused(&b, protocol, &bytes, &[code]).await;
            assert!(ack.is_some(), "{protocol:?} {id:?}");
        }
    }
}

/// §1.5.4: a user name with a control character is refused as "the data in the user name or
/// password is malformed": v5 CONNACK 0x86 (Bad User Name or Password), 3.1 / 3.1.1 return
/// code 4. (See "Deviations from Mosquitto".)
#[tokio::test]
async fn mqtt_1_5_4_2_control_characters_in_user_names_are_refused() {
    let b = Broker::start().await;
    for protocol in ALL {
        let code = if protocol.is_v5() { 0x86 } else { 0x04 };
        for name in CONTROL {
            let mut c = connect(protocol, "c");
            c.username = Some(ByteString::from(name));
            let ack = assert_connect_refused(&b, protocol, &wire_connect(&c), &[code]).await;
            assert!(ack.is_some(), "{protocol:?} {name:?}");
        }
    }
}

/// §1.5.4, [MQTT-3.1.3-11]: a will topic is a topic name; one with a control character is
/// refused: v5 CONNACK 0x90 (Topic Name invalid), 3.1 / 3.1.1 closed without CONNACK (no return
/// code fits).
#[tokio::test]
async fn mqtt_1_5_4_2_control_characters_in_will_topics_are_refused() {
    let b = Broker::start().await;
    for protocol in ALL {
        let codes: &[u8] = if protocol.is_v5() { &[0x90] } else { &[] };
        for topic in CONTROL {
            let c = with_will(connect(protocol, "c"), topic, "bye", 1, false);
            assert_connect_refused(&b, protocol, &wire_connect(&c), codes).await;
        }
    }
}

/// §1.5.4: a PUBLISH whose topic name has a control character is refused: v5 DISCONNECT 0x90
/// (Topic Name invalid, the codec's reason for an invalid topic name), v3 closed.
#[tokio::test]
async fn mqtt_1_5_4_2_control_characters_in_topic_names_are_refused() {
    let b = Broker::start().await;
    for protocol in ALL {
        let props: Option<&[u8]> = protocol.is_v5().then_some(&[]);
        for topic in CONTROL {
            let offender = Raw::connect(&b, connect(protocol, &b.id("offender", 1))).await;
            let bad =
                crate::raw_client::publish_frame(0x32, topic.as_bytes(), Some(1), props, b"x");
            assert_violation(&b, offender, &bad, &[0x90]).await;
        }
    }
}

/// §1.5.4: a SUBSCRIBE or UNSUBSCRIBE with a control character in a topic filter (also in a
/// shared subscription's share name) is refused as a Malformed Packet — v5 DISCONNECT 0x81, v3
/// closed — even when its other filters are fine, as Mosquitto does for an invalid filter
/// (see "Deviations from Mosquitto" for why not SUBACK 0x8F).
#[tokio::test]
async fn mqtt_1_5_4_2_control_characters_in_topic_filters_are_refused() {
    let b = Broker::start().await;
    for protocol in ALL {
        let mut filters: Vec<&str> = CONTROL.to_vec();
        filters.push("f/+/\u{7}");
        if protocol.is_v5() {
            filters.push("$share/g\u{1}/f");
        }
        for filter in filters {
            let subscribe_bad =
                Packet::Subscribe(subscribe(1, &[("ok/#", sub(1)), (filter, sub(1))]));
            let offender = Raw::connect(&b, connect(protocol, &b.id("offender", 1))).await;
            assert_violation(&b, offender, &wire(&subscribe_bad, protocol), &[0x81]).await;
            let unsubscribe_bad = unsubscribe_packet(2, &["ok/#", filter]);
            let offender = Raw::connect(&b, connect(protocol, &b.id("offender", 1))).await;
            assert_violation(&b, offender, &wire(&unsubscribe_bad, protocol), &[0x81]).await;
        }
    }
}

/// §1.5.4 leaves other strings to the receiver: ringmq refuses control characters only in the
/// strings above. Payloads, v5 properties, and their non-control neighbours (space, '~',
/// U+00A0, 'é') in topics, ids and user names pass untouched.
#[tokio::test]
async fn mqtt_1_5_4_2_control_characters_elsewhere_are_kept() {
    let b = Broker::start().await;
    for protocol in ALL {
        let mut c = connect(protocol, "id ~\u{A0}é");
        c.username = Some(ByteString::from("user ~\u{A0}é"));
        let mut s = Raw::connect(&b, c).await;
        s.subscribe("a b/~\u{A0}é/+", 1).await;
        let mut p = publish("a b/~\u{A0}é/x", 1, 0, b"\x01\x1F\x7F\xC2\x85");
        if protocol.is_v5() {
            p.properties
                .user_properties
                .push(("k\u{1}".into(), "v\u{9F}".into()));
            p.properties.content_type = Some("t\u{7}".into());
        }
        let mut publisher = Raw::connect(&b, connect(protocol, "pub")).await;
        publisher.publish_packet(p.clone()).await;
        let got = s.recv_acked().await;
        assert_eq!(got.topic, p.topic, "{protocol:?}");
        assert_eq!(got.payload, p.payload, "{protocol:?}");
        assert_eq!(got.properties.user_properties, p.properties.user_properties);
        assert_eq!(got.properties.content_type, p.properties.content_type);
    }
}

// ---------------------------------------------------------------------------------------------
// Edge 4: reserved packet types close at once
// ---------------------------------------------------------------------------------------------

/// MQTT 5.0 §2.1.2 (3.1.1 §2.2.1): packet type 0 is reserved ("Forbidden") in every version, and
/// 15 before 5.0. Its first byte alone closes the connection at once, without waiting for a
/// remaining length: v5 with DISCONNECT 0x82 (0x81 accepted), v3 without one. A bystander loses
/// nothing.
#[tokio::test]
async fn sec_2_1_2_reserved_packet_type_closes_at_once() {
    let b = Broker::with(&["--connect-timeout-ms", "10000"]).await;
    for protocol in ALL {
        let mut firsts = vec![0x00, 0x0F];
        if !protocol.is_v5() {
            firsts.extend([0xF0, 0xF3]);
        }
        for first in firsts {
            let mut c = Raw::connect(&b, connect(protocol, &b.id("offender", 1))).await;
            c.send_bytes(&[first]).await;
            let start = Instant::now();
            let d = c.expect_refused(&[0x81, 0x82]).await;
            assert_eq!(d.is_some(), protocol.is_v5(), "{protocol:?} {first:#04x}");
            let took = start.elapsed();
            assert!(
                took < PROMPT,
                "{protocol:?} {first:#04x}: closed after {took:?}"
            );
        }
    }
    // Before CONNECT too: the connection closes without CONNACK, long before the timeout.
    let mut raw = Raw::open(&b, Protocol::V5).await;
    raw.send_bytes(&[0x00]).await;
    let start = Instant::now();
    assert_eq!(bytes_until_close(&mut raw, PROMPT).await, Ok(vec![]));
    assert!(start.elapsed() < PROMPT);
    let offender = Raw::connect(&b, v3(&b.id("offender", 1))).await;
    assert_violation(&b, offender, &[0xF0], &[]).await;
}

// ---------------------------------------------------------------------------------------------
// Edge 5: MQTT 3.1 client identifiers
// ---------------------------------------------------------------------------------------------

/// MQTT 3.1 §3.1 (Client Identifier): "between 1 and 23 characters long"; a server answers
/// any other with return code 2 (identifier rejected). Empty and 24-character ids are refused,
/// 1 and 23 characters (also 23 two-byte ones) accepted. 3.1.1 accepts the 24-character one.
#[tokio::test]
async fn mqtt31_client_id_must_be_1_to_23_characters() {
    let b = Broker::start().await;
    let long = "abcdefghijklmnopqrstuvwx";
    for id in ["", long] {
        let bytes = wire_connect(&connect(Protocol::V310, id));
        assert_connect_refused(&b, Protocol::V310, &bytes, &[0x02]).await;
    }
    for id in ["a", &long[..23], "ééééééééééééééééééééééé"] {
        let mut c = Raw::connect(&b, connect(Protocol::V310, id)).await;
        c.ping().await;
    }
    Raw::connect(&b, connect(Protocol::V311, long))
        .await
        .ping()
        .await;
}

// ---------------------------------------------------------------------------------------------
// Edges 6–9: fixes in the broker's data path
// ---------------------------------------------------------------------------------------------

/// [MQTT-3.3.1-12]: with Retain As Published 0 the server sets RETAIN 0 when forwarding — also
/// when the subscriber is the publisher itself (No Local 0), at every QoS of the publish and the
/// subscription. A later subscriber still gets the message as retained (RETAIN 1
/// [MQTT-3.3.1-9]).
async fn mqtt_3_3_1_12_retain_as_published_0_clears_retain_for_the_publisher_too(shards: usize) {
    let b = Broker::shards(shards, &[]).await;
    for sub_qos in [0, 1, 2] {
        for pub_qos in [0, 1, 2] {
            let topic = format!("r/{sub_qos}/{pub_qos}");
            let mut c = Raw::v5(&b, &b.id("self", 1)).await;
            c.subscribe(&topic, sub_qos).await;
            c.publish_packet(retained(&topic, pub_qos, 0, b"kept"))
                .await;
            let p = c.recv_acked().await;
            assert_eq!(&p.payload[..], b"kept");
            assert!(
                !p.retain,
                "RETAIN 0 with Retain As Published 0 ({sub_qos}, {pub_qos})"
            );
            let mut other = Raw::v5(&b, &b.id("other", 0)).await;
            other.subscribe(&topic, 1).await;
            let p = other.recv_acked().await;
            assert!(
                p.retain,
                "a retained message sent on subscribe has RETAIN 1"
            );
            c.disconnect().await;
        }
    }
}
shard_tests!(mqtt_3_3_1_12_retain_as_published_0_clears_retain_for_the_publisher_too);

/// The ways a client can acknowledge a broker's PUBLISH with the wrong packet.
#[derive(Debug, Clone, Copy)]
enum WrongAck {
    PubRecForQos1,
    PubCompForQos1,
    PubAckForQos2,
    PubCompBeforePubRec,
}

/// MQTT 5.0 §4.3.2, §4.3.3, §4.13 (3.1.1 §4.3, [MQTT-4.8.0-1]): an acknowledgement that does
/// not belong to the flow of the packet identifier it names — PUBREC or PUBCOMP for a QoS 1
/// message the broker sent, PUBACK for a QoS 2 one, PUBCOMP before PUBREC — is a Protocol
/// Error: v5 DISCONNECT 0x82, v3 a close; a bystander loses nothing.
///
/// Where: src/session/ `on_puback` / `on_pubrec` / `on_pubcomp` say whether the id is in flight
/// in the matching state; `Engine::handle` (src/engine/mod.rs) closes with 0x82 when it is in
/// flight in another one.
#[tokio::test]
async fn sec_4_3_acknowledgement_of_the_wrong_kind_is_a_protocol_error() {
    let b = Broker::start().await;
    for protocol in ALL {
        for wrong in [
            WrongAck::PubRecForQos1,
            WrongAck::PubCompForQos1,
            WrongAck::PubAckForQos2,
            WrongAck::PubCompBeforePubRec,
        ] {
            let q = match wrong {
                WrongAck::PubRecForQos1 | WrongAck::PubCompForQos1 => 1,
                WrongAck::PubAckForQos2 | WrongAck::PubCompBeforePubRec => 2,
            };
            let mut offender = Raw::connect(&b, connect(protocol, &b.id("offender", 1))).await;
            offender.subscribe("w/t", q).await;
            Raw::v5(&b, "p").await.publish("w/t", q, b"m").await;
            let p = offender.recv_publish().await;
            assert_eq!(p.qos as u8, q);
            let id = p.packet_id;
            let bad = match wrong {
                WrongAck::PubRecForQos1 => Packet::PubRec(ack(id, 0)),
                WrongAck::PubCompForQos1 | WrongAck::PubCompBeforePubRec => {
                    Packet::PubComp(ack(id, 0))
                }
                WrongAck::PubAckForQos2 => Packet::PubAck(ack(id, 0)),
            };
            let d = assert_violation(&b, offender, &wire(&bad, protocol), &[0x82]).await;
            assert_eq!(d.is_some(), protocol.is_v5(), "{protocol:?} {wrong:?}");
        }
    }
}

/// [MQTT-4.3.3-8], MQTT 5.0 §4.3.3 (Method A/B: the receiver acknowledges once it owns the
/// message): the broker's PUBREC to a QoS 2 publisher is written before the message is
/// forwarded — including to the publisher itself, when it is subscribed: on its connection the
/// PUBREC comes before the PUBLISH.
///
/// Where: `Engine::on_publish` (src/engine/publish.rs) writes a QoS 2 PUBREC before
/// `shard.route(...)` (its reason then cannot depend on the route's result: 0x00, or 0x10 from
/// a match-only check made first).
#[tokio::test]
async fn mqtt_4_3_3_8_pubrec_is_written_before_the_message_is_forwarded() {
    let b = Broker::start().await;
    for protocol in ALL {
        for sub_qos in [0, 1, 2] {
            let mut c = Raw::connect(&b, connect(protocol, "self")).await;
            c.subscribe("q2/t", sub_qos).await;
            let id = c.take_id();
            c.send(Packet::Publish(publish("q2/t", 2, id, b"m"))).await;
            match c.recv().await {
                Packet::PubRec(a) => assert_eq!(a.packet_id, id),
                other => panic!("{protocol:?} sub QoS {sub_qos}: PUBREC first, got {other:?}"),
            }
            c.send(Packet::PubRel(ack(id, 0))).await;
            let rest = [c.recv().await, c.recv().await];
            assert!(rest
                .iter()
                .any(|p| matches!(p, Packet::PubComp(a) if a.packet_id == id)));
            let Some(Packet::Publish(p)) = rest.iter().find(|p| matches!(p, Packet::Publish(_)))
            else {
                panic!("{protocol:?}: no PUBLISH in {rest:?}");
            };
            assert_eq!(p.qos as u8, sub_qos);
            c.ack(&p.clone()).await;
            c.disconnect().await;
        }
    }
}

/// MQTT 5.0 §3.2.2.3.14 (Server Keep Alive), §3.1.2.10; Mosquitto's `max_keepalive`:
/// `--server-keep-alive-s` caps the keep alive instead of replacing it. A v5 client asking for
/// more than the cap, or for 0 (none), gets Server Keep Alive = cap in CONNACK and is held to
/// it; one asking for less keeps its own (no property). A 3.1 / 3.1.1 client cannot be told, so
/// asking for more than the cap or 0 is refused with return code 2, as Mosquitto does; less is
/// accepted.
///
/// Where: `Engine::open` (src/engine/connect.rs) caps the keep alive with
/// `server_keep_alive_s`.
#[tokio::test]
async fn sec_3_2_2_3_14_server_keep_alive_caps_the_client_keep_alive() {
    let b = Broker::with(&["--server-keep-alive-s", "10"]).await;
    for (asked, announced) in [(20, Some(10)), (0, Some(10)), (10, None), (5, None)] {
        let mut c = v5("ka");
        c.keep_alive_s = asked;
        let (mut raw, ack) = Raw::handshake(&b, c).await;
        assert_eq!(ack.code, 0, "asked {asked}");
        assert_eq!(
            ack.properties.server_keep_alive_s, announced,
            "asked {asked}"
        );
        raw.ping().await;
    }
    for protocol in V3 {
        for (asked, accepted) in [(20, false), (0, false), (10, true), (5, true)] {
            let mut c = connect(protocol, "ka3");
            c.keep_alive_s = asked;
            let (mut raw, ack) = Raw::handshake(&b, c).await;
            if accepted {
                assert_eq!(ack.code, 0, "{protocol:?} asked {asked}");
                raw.ping().await;
            } else {
                assert_eq!(ack.code, 0x02, "{protocol:?} asked {asked}");
                raw.expect_closed().await;
            }
        }
    }
    // Held to the cap: a v5 client that asked for 0 is closed after 1.5 × 1 s of silence.
    let b = Broker::with(&["--server-keep-alive-s", "1"]).await;
    let mut c = v5("idle");
    c.keep_alive_s = 0;
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

/// Subscription options at `q` with Retain As Published 1, for the contrast case of edge 6.
fn rap(q: u8) -> SubOptions {
    SubOptions {
        retain_as_published: true,
        ..sub(q)
    }
}

/// [MQTT-3.3.1-13]: with Retain As Published 1 the RETAIN flag is kept when forwarding, to the
/// publisher's own subscription too (the contrast of edge 6, which holds today).
#[tokio::test]
async fn mqtt_3_3_1_13_retain_as_published_1_keeps_retain_for_the_publisher() {
    let b = Broker::start().await;
    let mut c = Raw::v5(&b, "self").await;
    assert_eq!(c.subscribe_opts("r/t", rap(1)).await, 1);
    c.publish_packet(retained("r/t", 1, 0, b"kept")).await;
    let p = c.recv_acked().await;
    assert!(p.retain);
    assert_eq!(p.qos, QoS::AtLeastOnce);
}
