//! Property tests of the codec as a whole: every valid packet of every version survives
//! encode → decode unchanged, arbitrary bytes never panic the decoder, and feeding bytes in
//! arbitrary pieces decodes exactly like feeding them at once.

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use ringmq_codec::{
    decode, encode, encoded_len, Ack, Auth, ConnAck, Connect, DecodeError, Disconnect, Packet,
    Properties, Protocol, Publish, QoS, SubAck, SubOptions, Subscribe, UnsubAck, Unsubscribe, Will,
};

const MAX: usize = 1 << 20;
const PROTOCOLS: [Protocol; 3] = [Protocol::V310, Protocol::V311, Protocol::V5];

// ---------------------------------------------------------------- leaf strategies

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![
        Just(Protocol::V310),
        Just(Protocol::V311),
        Just(Protocol::V5)
    ]
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

/// Any MQTT string: arbitrary Unicode without U+0000.
fn string() -> impl Strategy<Value = ByteString> {
    "[^\u{0}]{0,12}".prop_map(ByteString::from)
}

/// A client id or user name: no control character U+0001–U+001F, U+007F–U+009F (§1.5.4; the
/// codec refuses them there), at least `min` characters (MQTT 3.1 client ids: 1–23).
fn name(min: usize) -> impl Strategy<Value = ByteString> {
    "[^\u{0}-\u{1F}\u{7F}-\u{9F}]{0,12}"
        .prop_filter("long enough", move |s: &String| s.chars().count() >= min)
        .prop_map(ByteString::from)
}

fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn packet_id() -> impl Strategy<Value = u16> {
    1..=u16::MAX
}

fn topic_name() -> impl Strategy<Value = ByteString> {
    "[^\u{0}-\u{1F}\u{7F}-\u{9F}+#]{1,16}".prop_map(ByteString::from)
}

fn topic_filter() -> impl Strategy<Value = String> {
    let level = prop_oneof![
        Just("+".to_string()),
        "[^\u{0}-\u{1F}\u{7F}-\u{9F}+#/]{0,6}"
    ];
    (vec(level, 1..5), any::<bool>()).prop_map(|(levels, hash)| {
        let mut f = levels.join("/");
        if f.is_empty() {
            // A single empty level would be an empty filter [MQTT-4.7.3-1].
            f.push('+');
        }
        if hash {
            f.push_str("/#");
        }
        f
    })
}

/// A filter valid for `protocol`; v5 also gets shared subscriptions. Returns whether shared.
fn filter_for(protocol: Protocol) -> BoxedStrategy<(ByteString, bool)> {
    let plain = prop_oneof![
        Just("#".to_string()),
        topic_filter(),
        // `$share/...` without a filter is an ordinary filter before v5.
        "[a-z]{1,4}".prop_map(|g| format!("$share/{g}")),
    ];
    if protocol.is_v5() {
        prop_oneof![
            3 => topic_filter()
                .prop_filter("not shared", |f| !f.starts_with("$share/"))
                .prop_map(|f| (ByteString::from(f), false)),
            1 => ("[a-z0-9]{1,4}", topic_filter())
                .prop_map(|(g, f)| (ByteString::from(format!("$share/{g}/{f}")), true)),
        ]
        .boxed()
    } else {
        plain.prop_map(|f| (ByteString::from(f), false)).boxed()
    }
}

fn flag() -> impl Strategy<Value = Option<u8>> {
    option::of(0u8..=1)
}

fn nonzero_u16() -> impl Strategy<Value = Option<u16>> {
    option::of(1..=u16::MAX)
}

fn sub_id() -> impl Strategy<Value = u32> {
    1u32..=268_435_455
}

// ---------------------------------------------------------------- properties

/// Where a property list sits (mirrors the crate's private table 2.4).
#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Connect,
    Will,
    ConnAck,
    Publish,
    Ack,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

/// Every property set to a random in-range value (or left out).
fn all_properties() -> impl Strategy<Value = Properties> {
    let a = (
        flag(),
        option::of(any::<u32>()),
        option::of(string()),
        option::of(topic_name()),
        option::of(binary()),
        vec(sub_id(), 0..3),
        option::of(any::<u32>()),
        option::of(string()),
        option::of(any::<u16>()),
    );
    let b = (
        option::of(string()),
        option::of(binary()),
        flag(),
        option::of(any::<u32>()),
        flag(),
        option::of(string()),
        option::of(string()),
        option::of(string()),
        nonzero_u16(),
    );
    let c = (
        option::of(any::<u16>()),
        nonzero_u16(),
        flag(),
        flag(),
        vec((string(), string()), 0..3),
        option::of(1..=u32::MAX),
        flag(),
        flag(),
        flag(),
    );
    (a, b, c).prop_map(|(a, b, c)| Properties {
        payload_format_indicator: a.0,
        message_expiry_interval_s: a.1,
        content_type: a.2,
        response_topic: a.3,
        correlation_data: a.4,
        subscription_identifiers: a.5.into_iter().collect(),
        session_expiry_interval_s: a.6,
        assigned_client_identifier: a.7,
        server_keep_alive_s: a.8,
        authentication_method: b.0,
        authentication_data: b.1,
        request_problem_information: b.2,
        will_delay_interval_s: b.3,
        request_response_information: b.4,
        response_information: b.5,
        server_reference: b.6,
        reason_string: b.7,
        receive_maximum: b.8,
        topic_alias_maximum: c.0,
        topic_alias: c.1,
        maximum_qos: c.2,
        retain_available: c.3,
        user_properties: c.4,
        maximum_packet_size: c.5,
        wildcard_subscription_available: c.6,
        subscription_identifier_available: c.7,
        shared_subscription_available: c.8,
    })
}

/// Keep only what MQTT 5 table 2.4 allows in `ctx`.
fn mask(p: Properties, ctx: Ctx) -> Properties {
    use Ctx::*;
    let on = |ctxs: &[Ctx]| ctxs.contains(&ctx);
    let msg = on(&[Will, Publish]);
    let conn = on(&[Connect, ConnAck]);
    let auth = on(&[Connect, ConnAck, Auth]);
    let reason = on(&[ConnAck, Ack, SubAck, UnsubAck, Disconnect, Auth]);
    let mut subs: smallvec::SmallVec<[u32; 1]> = p.subscription_identifiers;
    match ctx {
        Publish => {}
        Subscribe => subs.truncate(1),
        _ => subs.clear(),
    }
    Properties {
        payload_format_indicator: p.payload_format_indicator.filter(|_| msg),
        message_expiry_interval_s: p.message_expiry_interval_s.filter(|_| msg),
        content_type: p.content_type.filter(|_| msg),
        response_topic: p.response_topic.filter(|_| msg),
        correlation_data: p.correlation_data.filter(|_| msg),
        subscription_identifiers: subs,
        session_expiry_interval_s: p
            .session_expiry_interval_s
            .filter(|_| on(&[Connect, ConnAck, Disconnect])),
        assigned_client_identifier: p.assigned_client_identifier.filter(|_| ctx == ConnAck),
        server_keep_alive_s: p.server_keep_alive_s.filter(|_| ctx == ConnAck),
        authentication_method: p.authentication_method.filter(|_| auth),
        authentication_data: p.authentication_data.filter(|_| auth),
        request_problem_information: p.request_problem_information.filter(|_| ctx == Connect),
        will_delay_interval_s: p.will_delay_interval_s.filter(|_| ctx == Will),
        request_response_information: p.request_response_information.filter(|_| ctx == Connect),
        response_information: p.response_information.filter(|_| ctx == ConnAck),
        server_reference: p.server_reference.filter(|_| on(&[ConnAck, Disconnect])),
        reason_string: p.reason_string.filter(|_| reason),
        receive_maximum: p.receive_maximum.filter(|_| conn),
        topic_alias_maximum: p.topic_alias_maximum.filter(|_| conn),
        topic_alias: p.topic_alias.filter(|_| ctx == Publish),
        maximum_qos: p.maximum_qos.filter(|_| ctx == ConnAck),
        retain_available: p.retain_available.filter(|_| ctx == ConnAck),
        user_properties: p.user_properties,
        maximum_packet_size: p.maximum_packet_size.filter(|_| conn),
        wildcard_subscription_available: p
            .wildcard_subscription_available
            .filter(|_| ctx == ConnAck),
        subscription_identifier_available: p
            .subscription_identifier_available
            .filter(|_| ctx == ConnAck),
        shared_subscription_available: p.shared_subscription_available.filter(|_| ctx == ConnAck),
    }
}

/// Properties valid in `ctx` for `protocol`; always empty before v5.
fn props(protocol: Protocol, ctx: Ctx) -> BoxedStrategy<Properties> {
    if protocol.is_v5() {
        all_properties().prop_map(move |p| mask(p, ctx)).boxed()
    } else {
        Just(Properties::default()).boxed()
    }
}

/// A UTF-8 payload when the properties claim one.
fn fix_payload_format(p: &mut Properties, payload: &Bytes) {
    if p.payload_format_indicator == Some(1) && std::str::from_utf8(payload).is_err() {
        p.payload_format_indicator = Some(0);
    }
}

// ---------------------------------------------------------------- packets

fn connect(protocol: Protocol) -> impl Strategy<Value = Packet> {
    let v5 = protocol.is_v5();
    let will = (
        qos(),
        any::<bool>(),
        topic_name(),
        binary(),
        props(protocol, Ctx::Will),
    )
        .prop_map(|(qos, retain, topic, payload, mut properties)| {
            fix_payload_format(&mut properties, &payload);
            Will {
                qos,
                retain,
                topic,
                payload,
                properties,
            }
        });
    (
        any::<bool>(),
        any::<u16>(),
        props(protocol, Ctx::Connect),
        name(usize::from(protocol == Protocol::V310)),
        option::of(will),
        option::of(name(0)),
        option::of(binary()),
    )
        .prop_map(
            move |(
                clean_start,
                keep_alive_s,
                mut properties,
                client_id,
                will,
                username,
                password,
            )| {
                // Authentication Data needs a method (3.1.2.11.10).
                if properties.authentication_data.is_some()
                    && properties.authentication_method.is_none()
                {
                    properties.authentication_method = Some(ByteString::from_static("m"));
                }
                // v3: no password without a username [MQTT-3.1.2-22].
                let password = if v5 || username.is_some() {
                    password
                } else {
                    None
                };
                Packet::Connect(Box::new(Connect {
                    protocol,
                    clean_start,
                    keep_alive_s,
                    properties,
                    client_id,
                    will,
                    username,
                    password,
                }))
            },
        )
}

const CONNACK_V5: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
const PUBACK_V5: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL_V5: &[u8] = &[0x00, 0x92];
const SUBACK_V3: &[u8] = &[0x00, 0x01, 0x02, 0x80];
const SUBACK_V5: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
const UNSUBACK_V5: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
const DISCONNECT_V5: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
const AUTH_V5: &[u8] = &[0x00, 0x18, 0x19];

fn code(codes: &'static [u8]) -> impl Strategy<Value = u8> {
    proptest::sample::select(codes)
}

fn connack(protocol: Protocol) -> impl Strategy<Value = Packet> {
    let c = if protocol.is_v5() {
        code(CONNACK_V5).boxed()
    } else {
        (0u8..=5).boxed()
    };
    (any::<bool>(), c, props(protocol, Ctx::ConnAck)).prop_map(move |(sp, code, properties)| {
        Packet::ConnAck(ConnAck {
            // No session on refusal [MQTT-3.2.2-4]; 3.1 has no such flag.
            session_present: sp && code == 0 && protocol != Protocol::V310,
            code,
            properties,
        })
    })
}

fn publish(protocol: Protocol) -> impl Strategy<Value = Packet> {
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic_name(),
        any::<bool>(),
        packet_id(),
        props(protocol, Ctx::Publish),
        vec(any::<u8>(), 0..64),
    )
        .prop_map(
            move |(qos, dup, retain, topic, empty_topic, id, mut properties, payload)| {
                let payload = Bytes::from(payload);
                fix_payload_format(&mut properties, &payload);
                // v5: a topic alias may stand in for the topic.
                let topic = if empty_topic && properties.topic_alias.is_some() {
                    ByteString::new()
                } else {
                    topic
                };
                let q0 = qos == QoS::AtMostOnce;
                Packet::Publish(Publish {
                    dup: dup && !q0,
                    qos,
                    retain,
                    topic,
                    packet_id: if q0 { 0 } else { id },
                    properties,
                    payload,
                })
            },
        )
}

fn ack(protocol: Protocol) -> impl Strategy<Value = Packet> {
    (
        0..4usize,
        packet_id(),
        any::<prop::sample::Index>(),
        props(protocol, Ctx::Ack),
    )
        .prop_map(move |(kind, packet_id, idx, properties)| {
            let codes = if kind >= 2 { PUBREL_V5 } else { PUBACK_V5 };
            let reason = if protocol.is_v5() { *idx.get(codes) } else { 0 };
            let a = Ack {
                packet_id,
                reason,
                properties,
            };
            match kind {
                0 => Packet::PubAck(a),
                1 => Packet::PubRec(a),
                2 => Packet::PubRel(a),
                _ => Packet::PubComp(a),
            }
        })
}

fn sub_options(protocol: Protocol) -> BoxedStrategy<SubOptions> {
    if protocol.is_v5() {
        (qos(), any::<bool>(), any::<bool>(), 0u8..=2)
            .prop_map(|(qos, nl, rap, rh)| SubOptions {
                qos,
                no_local: nl,
                retain_as_published: rap,
                retain_handling: rh,
            })
            .boxed()
    } else {
        qos()
            .prop_map(|qos| SubOptions {
                qos,
                ..SubOptions::default()
            })
            .boxed()
    }
}

fn subscribe(protocol: Protocol) -> impl Strategy<Value = Packet> {
    let entry = (filter_for(protocol), sub_options(protocol)).prop_map(|((f, shared), mut o)| {
        // [MQTT-3.8.3-4]: no No Local on a shared subscription.
        if shared {
            o.no_local = false;
        }
        (f, o)
    });
    (
        packet_id(),
        props(protocol, Ctx::Subscribe),
        vec(entry, 1..5),
    )
        .prop_map(|(packet_id, properties, filters)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                properties,
                filters,
            })
        })
}

fn suback(protocol: Protocol) -> impl Strategy<Value = Packet> {
    let codes = if protocol.is_v5() {
        SUBACK_V5
    } else {
        SUBACK_V3
    };
    (
        packet_id(),
        props(protocol, Ctx::SubAck),
        vec(code(codes), 1..6),
    )
        .prop_map(|(packet_id, properties, codes)| {
            Packet::SubAck(SubAck {
                packet_id,
                properties,
                codes,
            })
        })
}

fn unsubscribe(protocol: Protocol) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        props(protocol, Ctx::Unsubscribe),
        vec(filter_for(protocol).prop_map(|(f, _)| f), 1..5),
    )
        .prop_map(|(packet_id, properties, filters)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties,
                filters,
            })
        })
}

fn unsuback(protocol: Protocol) -> impl Strategy<Value = Packet> {
    let n = if protocol.is_v5() { 1..6 } else { 0..1 };
    (
        packet_id(),
        props(protocol, Ctx::UnsubAck),
        vec(code(UNSUBACK_V5), n),
    )
        .prop_map(|(packet_id, properties, codes)| {
            Packet::UnsubAck(UnsubAck {
                packet_id,
                properties,
                codes,
            })
        })
}

fn disconnect(protocol: Protocol) -> BoxedStrategy<Packet> {
    if !protocol.is_v5() {
        return Just(Packet::Disconnect(Disconnect::default())).boxed();
    }
    (code(DISCONNECT_V5), props(protocol, Ctx::Disconnect))
        .prop_map(|(reason, properties)| Packet::Disconnect(Disconnect { reason, properties }))
        .boxed()
}

fn auth() -> impl Strategy<Value = Packet> {
    (code(AUTH_V5), props(Protocol::V5, Ctx::Auth))
        .prop_map(|(reason, properties)| Packet::Auth(Auth { reason, properties }))
}

/// Any valid packet for a connection speaking `protocol`.
fn packet(protocol: Protocol) -> BoxedStrategy<Packet> {
    let common = prop_oneof![
        1 => connect(protocol).boxed(),
        1 => connack(protocol).boxed(),
        4 => publish(protocol).boxed(),
        2 => ack(protocol).boxed(),
        1 => subscribe(protocol).boxed(),
        1 => suback(protocol).boxed(),
        1 => unsubscribe(protocol).boxed(),
        1 => unsuback(protocol).boxed(),
        1 => Just(Packet::PingReq).boxed(),
        1 => Just(Packet::PingResp).boxed(),
        1 => disconnect(protocol),
    ];
    if protocol.is_v5() {
        prop_oneof![10 => common, 1 => auth()].boxed()
    } else {
        common.boxed()
    }
}

fn protocol_and_packet() -> impl Strategy<Value = (Protocol, Packet)> {
    protocol().prop_flat_map(|p| (Just(p), packet(p)))
}

// ---------------------------------------------------------------- helpers

/// Decode everything `buf` holds: the packets, then the error or `None` that stopped it.
fn drain(buf: &mut BytesMut, protocol: Protocol) -> (Vec<Packet>, Option<DecodeError>) {
    let mut out = Vec::new();
    loop {
        match decode(buf, protocol, MAX) {
            Ok(Some(p)) => out.push(p),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

/// Same, but feeding the bytes in pieces cut at `cuts`.
fn drain_split(
    bytes: &[u8],
    cuts: &[prop::sample::Index],
    protocol: Protocol,
) -> (Vec<Packet>, Option<DecodeError>) {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
    points.push(bytes.len());
    points.sort_unstable();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut start = 0;
    for end in points {
        buf.extend_from_slice(&bytes[start..end]);
        start = end;
        let (ps, err) = drain(&mut buf, protocol);
        out.extend(ps);
        if err.is_some() {
            return (out, err);
        }
    }
    (out, None)
}

fn encode_all(packets: &[Packet], protocol: Protocol) -> BytesMut {
    let mut buf = BytesMut::new();
    for p in packets {
        encode(p, protocol, &mut buf).expect("valid packet encodes");
    }
    buf
}

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        // Integration tests have no lib.rs beside them for `WithSource`; cargo runs tests from
        // the package root, so name the regressions file directly.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest_roundtrip.proptest-regressions",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn round_trip((protocol, p) in protocol_and_packet()) {
        let mut buf = BytesMut::new();
        encode(&p, protocol, &mut buf).expect("valid packet encodes");
        prop_assert_eq!(buf.len(), encoded_len(&p, protocol));
        let got = decode(&mut buf, protocol, MAX);
        prop_assert_eq!(got, Ok(Some(p)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn stream_of_packets_split_anywhere(
        (protocol, packets) in protocol().prop_flat_map(|p| (Just(p), vec(packet(p), 1..6))),
        cuts in vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let bytes = encode_all(&packets, protocol);
        let (got, err) = drain_split(&bytes, &cuts, protocol);
        prop_assert_eq!(err, None);
        prop_assert_eq!(got, packets);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_split_agrees(
        bytes in vec(any::<u8>(), 0..256),
        cuts in vec(any::<prop::sample::Index>(), 0..8),
    ) {
        for protocol in PROTOCOLS {
            let whole = drain(&mut BytesMut::from(&bytes[..]), protocol);
            let split = drain_split(&bytes, &cuts, protocol);
            prop_assert_eq!(&whole, &split);
            // Whatever decodes re-encodes to something that decodes to the same packet.
            for p in &whole.0 {
                let mut buf = BytesMut::new();
                encode(p, protocol, &mut buf).expect("decoded packet re-encodes");
                prop_assert_eq!(decode(&mut buf, protocol, MAX), Ok(Some(p.clone())));
            }
        }
    }

    /// Valid packets with one byte changed: the hard cases for the validator.
    #[test]
    fn mutated_packets_never_panic_and_split_agrees(
        (protocol, p) in protocol_and_packet(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cuts in vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let mut bytes = encode_all(&[p], protocol);
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let whole = drain(&mut bytes.clone(), protocol);
        let split = drain_split(&bytes, &cuts, protocol);
        prop_assert_eq!(&whole, &split);
        for p in &whole.0 {
            let mut buf = BytesMut::new();
            encode(p, protocol, &mut buf).expect("decoded packet re-encodes");
            prop_assert_eq!(decode(&mut buf, protocol, MAX), Ok(Some(p.clone())));
        }
    }
}
