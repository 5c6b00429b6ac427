//! Sections 3.8 and 3.9: SUBSCRIBE and SUBACK — flags, filters, subscription options, the
//! server's actions and the reason codes it answers with.

use crate::fixture::*;
use ringmq::codec::{Packet, Protocol, QoS, SubOptions};

/// A SUBSCRIBE body: packet id 1, raw property bytes, then raw (filter, options) pairs.
fn raw_subscribe(props: &[u8], pairs: &[(&[u8], u8)]) -> Vec<u8> {
    let mut body = vec![0, 1, props.len() as u8];
    body.extend_from_slice(props);
    for (f, o) in pairs {
        body.extend(field(f));
        body.push(*o);
    }
    frame(0x82, &body)
}

/// [MQTT-3.8.1-1] SUBSCRIBE's fixed-header flags are 0010; anything else is Malformed.
#[tokio::test]
async fn mqtt_3_8_1_1_subscribe_with_wrong_flags_is_malformed() {
    let b = Broker::start().await;
    let mut bad = raw_subscribe(&[], &[(b"t", 1)]);
    bad[0] = 0x80;
    assert_v5_violation(&b, &bad, &[0x81]).await;
}

/// [MQTT-3.8.3-1] Topic filters are UTF-8 Encoded Strings: ill-formed UTF-8 is Malformed.
#[tokio::test]
async fn mqtt_3_8_3_1_topic_filter_must_be_utf8() {
    let b = Broker::start().await;
    assert_v5_violation(&b, &raw_subscribe(&[], &[(b"a/\xFF", 1)]), &[0x81]).await;
}

/// [MQTT-3.8.3-2] The payload holds at least one filter; a SUBSCRIBE with none is a Protocol
/// Error (3.8.3).
#[tokio::test]
async fn mqtt_3_8_3_2_subscribe_without_filters_is_a_protocol_error() {
    let b = Broker::start().await;
    assert_v5_violation(&b, &raw_subscribe(&[], &[]), &[0x82]).await;
}

/// [MQTT-3.8.3-3] No Local: messages are not forwarded to the connection that published them
/// (other subscribers, and the same client without No Local, still get them).
#[tokio::test]
async fn mqtt_3_8_3_3_no_local_is_not_sent_back_to_the_publisher() {
    let b = Broker::start().await;
    let mut me = Raw::v5(&b, "me").await;
    let o = SubOptions {
        no_local: true,
        ..sub(1)
    };
    assert_eq!(me.subscribe_opts("nl/#", o).await, 1);
    me.subscribe("loop/#", 1).await;
    let mut other = Raw::v5(&b, "other").await;
    other.subscribe("nl/#", 1).await;
    me.publish("nl/x", 1, b"not for me").await;
    assert_eq!(&other.recv_acked().await.payload[..], b"not for me");
    me.publish("loop/x", 1, b"for me").await;
    assert_eq!(&me.recv_acked().await.payload[..], b"for me");
    me.expect_silence(QUIET).await;
}

/// [MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error.
#[tokio::test]
async fn mqtt_3_8_3_4_no_local_on_a_shared_subscription_is_a_protocol_error() {
    let b = Broker::start().await;
    let bad = raw_subscribe(&[], &[(b"$share/g/t", 0x04 | 1)]);
    assert_v5_violation(&b, &bad, &[0x82]).await;
}

/// [MQTT-3.8.3-5] Reserved bits (7-6) of the subscription options must be 0: Malformed.
#[tokio::test]
async fn mqtt_3_8_3_5_reserved_option_bits_are_malformed() {
    let b = Broker::start().await;
    assert_v5_violation(&b, &raw_subscribe(&[], &[(b"t", 0x40 | 1)]), &[0x81]).await;
}

/// 3.8.3.1 (no statement number): Retain Handling 3 is a Protocol Error.
#[tokio::test]
async fn sec_3_8_3_1_retain_handling_3_is_a_protocol_error() {
    let b = Broker::start().await;
    assert_v5_violation(&b, &raw_subscribe(&[], &[(b"t", 0x30 | 1)]), &[0x82]).await;
}

/// 3.8.2.1.2 (no statement number): a Subscription Identifier of 0 is a Protocol Error.
#[tokio::test]
async fn sec_3_8_2_1_2_subscription_identifier_0_is_a_protocol_error() {
    let b = Broker::start().await;
    assert_v5_violation(&b, &raw_subscribe(&[0x0B, 0], &[(b"t", 1)]), &[0x82]).await;
}

/// 3.8.2.1.2 (no statement number): more than one Subscription Identifier is a Protocol Error.
#[tokio::test]
async fn sec_3_8_2_1_2_two_subscription_identifiers_are_a_protocol_error() {
    let b = Broker::start().await;
    let bad = raw_subscribe(&[0x0B, 1, 0x0B, 2], &[(b"t", 1)]);
    assert_v5_violation(&b, &bad, &[0x82]).await;
}

/// [MQTT-3.8.4-1], [MQTT-3.8.4-2] Every SUBSCRIBE gets a SUBACK with its packet id, in order,
/// even when several are in flight.
#[tokio::test]
async fn mqtt_3_8_4_1_every_subscribe_gets_its_suback() {
    let b = Broker::start().await;
    let mut c = Raw::v5(&b, "c").await;
    let ids = [10u16, 11, 65_535, 3];
    for (i, id) in ids.iter().enumerate() {
        let f = format!("f/{i}");
        c.send(Packet::Subscribe(subscribe(*id, &[(&f, sub(1))])))
            .await;
    }
    for id in ids {
        match c.recv().await {
            Packet::SubAck(a) => assert_eq!((a.packet_id, a.codes), (id, vec![1])),
            other => panic!("expected SUBACK {id}, got {other:?}"),
        }
    }
}

/// [MQTT-3.8.4-3] A SUBSCRIBE with a filter identical to an existing non-shared subscription
/// replaces it: one subscription, with the new options.
#[tokio::test]
async fn mqtt_3_8_4_3_same_filter_replaces_the_subscription() {
    let b = Broker::start().await;
    let mut s = Raw::v5(&b, "s").await;
    s.subscribe("r", 0).await;
    s.subscribe("r", 2).await;
    let mut p = Raw::v5(&b, "p").await;
    p.publish("r", 2, b"x").await;
    assert_eq!(s.recv_acked().await.qos, QoS::ExactlyOnce);
    s.expect_silence(QUIET).await;
    s.subscribe("r", 1).await;
    p.publish("r", 2, b"y").await;
    assert_eq!(s.recv_acked().await.qos, QoS::AtLeastOnce);
    s.expect_silence(QUIET).await;
}

/// [MQTT-3.8.4-4] Replacing a subscription with Retain Handling 0 re-sends the retained
/// messages, and no message is lost while it is replaced.
#[tokio::test]
async fn mqtt_3_8_4_4_replacing_resends_retained_and_loses_nothing() {
    let b = Broker::start().await;
    let mut p = Raw::v5(&b, "p").await;
    p.publish_packet(retained("r", 1, 0, b"retained")).await;
    let mut s = Raw::v5(&b, "s").await;
    s.subscribe("r", 1).await;
    assert!(s.recv_acked().await.retain);
    let stream = tokio::spawn(async move {
        for i in 0..50u32 {
            p.publish("r", 1, &i.to_be_bytes()).await;
        }
        p
    });
    for id in 100..105 {
        s.send(Packet::Subscribe(subscribe(id, &[("r", sub(1))])))
            .await;
    }
    let _p = stream.await.expect("publisher");
    let mut live = Vec::new();
    let mut retained_copies = 0;
    let mut subacks = 0;
    while live.len() < 50 || retained_copies < 5 || subacks < 5 {
        match s.recv().await {
            Packet::Publish(m) if m.retain => {
                retained_copies += 1;
                s.ack(&m).await;
            }
            Packet::Publish(m) => {
                live.push(u32::from_be_bytes(
                    m.payload[..].try_into().expect("4 bytes"),
                ));
                s.ack(&m).await;
            }
            Packet::SubAck(_) => subacks += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        live,
        (0..50).collect::<Vec<_>>(),
        "no message lost or duplicated"
    );
    assert_eq!(retained_copies, 5, "one retained copy per SUBSCRIBE");
}

/// [MQTT-3.8.4-5] A SUBSCRIBE with several filters is handled like one SUBSCRIBE per filter,
/// in order (a repeated filter replaces the earlier one), with a single SUBACK.
#[tokio::test]
async fn mqtt_3_8_4_5_several_filters_are_handled_in_sequence() {
    let b = Broker::start().await;
    let mut s = Raw::v5(&b, "s").await;
    let a = s
        .subscribe_with(subscribe(0, &[("a", sub(0)), ("b", sub(1)), ("a", sub(2))]))
        .await;
    assert_eq!(a.codes, [0, 1, 2]);
    s.expect_silence(QUIET).await;
    let mut p = Raw::v5(&b, "p").await;
    p.publish("a", 2, b"x").await;
    assert_eq!(s.recv_acked().await.qos, QoS::ExactlyOnce);
    p.publish("b", 2, b"y").await;
    assert_eq!(s.recv_acked().await.qos, QoS::AtLeastOnce);
    s.expect_silence(QUIET).await;
}

/// [MQTT-3.9.3-1] SUBACK reason codes are in the order of the filters. Also [MQTT-3.8.4-6]
/// (one code per filter) and [MQTT-3.9.3-2] (codes from the SUBACK list; 0x8F for a filter
/// over the configured level limit).
#[tokio::test]
async fn mqtt_3_9_3_1_suback_codes_follow_the_filter_order() {
    let b = Broker::with(&["--topic-levels-max", "3"]).await;
    let mut s = Raw::v5(&b, "s").await;
    let a = s
        .subscribe_with(subscribe(
            0,
            &[
                ("x", sub(2)),
                ("y/y/y/y", sub(1)),
                ("z", sub(0)),
                ("w", sub(1)),
            ],
        ))
        .await;
    assert_eq!(a.codes, [2, 0x8F, 0, 1]);
    const SUBACK_CODES: &[u8] = &[
        0, 1, 2, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
    ];
    assert!(a.codes.iter().all(|c| SUBACK_CODES.contains(c)));
}

/// [MQTT-3.8.4-7] Each code is the maximum QoS granted (never above what was asked, nor above
/// the server's maximum) or a failure.
#[tokio::test]
async fn mqtt_3_8_4_7_code_is_the_granted_qos_or_a_failure() {
    let b = Broker::with(&["--maximum-qos", "1"]).await;
    let mut s = Raw::v5(&b, "s").await;
    let a = s
        .subscribe_with(subscribe(0, &[("a", sub(2)), ("b", sub(1)), ("c", sub(0))]))
        .await;
    assert_eq!(a.codes, [1, 1, 0]);
}

/// [MQTT-3.8.4-8] A message is delivered at the minimum of its published QoS and the granted
/// QoS.
#[tokio::test]
async fn mqtt_3_8_4_8_delivery_qos_is_the_minimum_of_published_and_granted() {
    let b = Broker::start().await;
    let mut s = Raw::v5(&b, "s").await;
    s.subscribe("g1", 1).await;
    s.subscribe("g2", 2).await;
    let mut p = Raw::v5(&b, "p").await;
    for (topic, published, delivered) in [("g1", 2, 1), ("g1", 0, 0), ("g2", 1, 1), ("g2", 2, 2)] {
        p.publish(topic, published, b"x").await;
        assert_eq!(
            s.recv_acked().await.qos,
            qos(delivered),
            "{topic} at {published}"
        );
    }
}

/// 3.9.3 (no statement number): a subscription refused because a quota is exhausted gets
/// 0x97 (Quota exceeded); the others in the same SUBSCRIBE are granted.
#[tokio::test]
async fn sec_3_9_3_subscription_quota_exceeded_is_0x97() {
    let b = Broker::with(&["--subscriptions-per-session-max", "2"]).await;
    let mut s = Raw::v5(&b, "s").await;
    let a = s
        .subscribe_with(subscribe(
            0,
            &[("a", sub(1)), ("b", sub(1)), ("c", sub(1)), ("a", sub(0))],
        ))
        .await;
    assert_eq!(a.codes, [1, 1, 0x97, 0]);
    s.ping().await;
}

/// [MQTT-3.8.3-2] and friends for v3.1.1 framing: the same SUBSCRIBE as bytes decodes on the
/// broker; a sanity check that the raw builder matches the codec.
#[test]
fn raw_subscribe_matches_the_codec() {
    let ours = raw_subscribe(&[], &[(b"t", 1)]);
    let codec = wire(
        &Packet::Subscribe(subscribe(1, &[("t", sub(1))])),
        Protocol::V5,
    );
    assert_eq!(ours, codec);
}
