//! Section 3.3: PUBLISH — fixed-header flags (DUP, QoS, RETAIN), retained messages and the
//! subscription options that govern them, the topic name, properties the server forwards or
//! interprets (expiry, topic alias, response topic, correlation data, user properties, content
//! type, subscription identifiers), and the response a PUBLISH gets.

use crate::fixture::*;
use bytes::Bytes;
use ringmq::codec::{Packet, Properties, Protocol, Publish, QoS, SubOptions};
use std::time::Duration;

/// A v5 subscriber `name` on `filter` (QoS `q`) and a v5 publisher, on different shards when
/// there are two.
async fn pair(b: &Broker, filter: &str, q: u8) -> (Raw, Raw) {
    let mut s = Raw::v5(b, &b.id("sub", 0)).await;
    s.subscribe(filter, q).await;
    let p = Raw::v5(b, &b.id("pub", 1)).await;
    (s, p)
}

/// Publish `p` from `publisher` and return what `subscriber` receives (acknowledged).
async fn through(publisher: &mut Raw, subscriber: &mut Raw, p: Publish) -> Publish {
    publisher.publish_packet(p).await;
    subscriber.recv_acked().await
}

/// [MQTT-3.3.1-1] A re-delivered PUBLISH has DUP 1 (and the same packet id): an unacknowledged
/// QoS 1 message resent when the session resumes.
#[tokio::test]
async fn mqtt_3_3_1_1_dup_set_on_redelivery() {
    let b = Broker::start().await;
    let mut s = Raw::connect(&b, persistent(v5("s"), 60)).await;
    s.subscribe("t", 1).await;
    Raw::v5(&b, "p").await.publish("t", 1, b"x").await;
    let first = s.recv_publish().await;
    assert!(!first.dup);
    s.drop_tcp().await;
    let (mut s, ack) = Raw::handshake(&b, persistent(v5("s"), 60)).await;
    assert!(ack.session_present);
    let again = s.recv_publish().await;
    assert!(again.dup, "redelivery has DUP 1");
    assert_eq!(
        (again.packet_id, &again.payload[..]),
        (first.packet_id, &b"x"[..])
    );
}

/// [MQTT-3.3.1-2] DUP must be 0 for QoS 0: a QoS 0 PUBLISH with DUP 1 is Malformed.
#[tokio::test]
async fn mqtt_3_3_1_2_dup_with_qos_0_is_malformed() {
    let b = Broker::start().await;
    assert_v5_violation(&b, &raw_publish(0x38, b"t", None, &[], b"x"), &[0x81]).await;
}

/// [MQTT-3.3.1-3] The outgoing DUP flag depends only on whether the outgoing PUBLISH is a
/// retransmission: a DUP 1 PUBLISH from the publisher is forwarded with DUP 0.
#[tokio::test]
async fn mqtt_3_3_1_3_outgoing_dup_is_independent_of_incoming() {
    let b = Broker::start().await;
    let (mut s, mut p) = pair(&b, "t", 1).await;
    let mut m = publish("t", 1, 5, b"x");
    m.dup = true;
    let got = through(&mut p, &mut s, m).await;
    assert!(!got.dup);
}

/// [MQTT-3.3.1-4] A PUBLISH must not have both QoS bits set: QoS 3 is Malformed.
#[tokio::test]
async fn mqtt_3_3_1_4_qos3_publish_is_malformed() {
    let b = Broker::start().await;
    assert_v5_violation(&b, &raw_publish(0x36, b"t", Some(1), &[], b"x"), &[0x81]).await;
}

/// [MQTT-3.3.1-5] RETAIN 1: the server replaces any retained message of the topic with this
/// one (a later subscriber, possibly on another shard, gets only the newest).
async fn mqtt_3_3_1_5_retained_message_is_replaced(shards: usize) {
    let b = Broker::shards(shards, &[]).await;
    let mut p = Raw::v5(&b, &b.id("pub", 1)).await;
    p.publish_packet(retained("r", 1, 0, b"old")).await;
    p.publish_packet(retained("r", 1, 0, b"new")).await;
    let mut s = Raw::v5(&b, &b.id("sub", 0)).await;
    s.subscribe("r", 1).await;
    let m = s.recv_acked().await;
    assert_eq!((&m.payload[..], m.retain), (&b"new"[..], true));
    s.expect_silence(QUIET).await;
}
shard_tests!(mqtt_3_3_1_5_retained_message_is_replaced);

/// [MQTT-3.3.1-6] A retained PUBLISH with an empty payload is delivered normally to current
/// subscribers and removes the retained message: later subscribers get none.
async fn mqtt_3_3_1_6_empty_retained_payload_clears_the_topic(shards: usize) {
    let b = Broker::shards(shards, &[]).await;
    let (mut s, mut p) = pair(&b, "r", 1).await;
    let m = through(&mut p, &mut s, retained("r", 1, 0, b"kept")).await;
    assert_eq!(&m.payload[..], b"kept");
    let m = through(&mut p, &mut s, retained("r", 1, 0, b"")).await;
    assert!(m.payload.is_empty(), "the empty message is delivered");
    let mut late = Raw::v5(&b, &b.id("late", 0)).await;
    late.subscribe("r", 1).await;
    late.expect_silence(QUIET).await;
}
shard_tests!(mqtt_3_3_1_6_empty_retained_payload_clears_the_topic);

/// [MQTT-3.3.1-7] A retained message with an empty payload is never stored.
#[tokio::test]
async fn mqtt_3_3_1_7_empty_retained_payload_is_not_stored() {
    let b = Broker::start().await;
    Raw::v5(&b, "p")
        .await
        .publish_packet(retained("r", 0, 0, b""))
        .await;
    let mut s = Raw::v5(&b, "s").await;
    s.subscribe("r", 1).await;
    s.expect_silence(QUIET).await;
}

/// [MQTT-3.3.1-8] RETAIN 0: the message is not stored and the existing retained message is
/// neither removed nor replaced.
#[tokio::test]
async fn mqtt_3_3_1_8_non_retained_publish_leaves_the_retained_message() {
    let b = Broker::start().await;
    let mut p = Raw::v5(&b, "p").await;
    p.publish_packet(retained("r", 1, 0, b"retained")).await;
    p.publish("r", 1, b"plain").await;
    p.publish("r", 1, b"").await;
    let mut s = Raw::v5(&b, "s").await;
    s.subscribe("r", 1).await;
    let m = s.recv_acked().await;
    assert_eq!((&m.payload[..], m.retain), (&b"retained"[..], true));
    s.expect_silence(QUIET).await;
}

/// Subscribe `filter` with Retain Handling `rh` and return how many retained messages came.
async fn retained_on_subscribe(c: &mut Raw, filter: &str, rh: u8) -> usize {
    let o = SubOptions {
        retain_handling: rh,
        ..sub(1)
    };
    assert_eq!(c.subscribe_opts(filter, o).await, 1);
    let mut n = 0;
    while let Got::Packet(Packet::Publish(m)) = c.next(QUIET).await {
        assert!(m.retain);
        c.ack(&m).await;
        n += 1;
    }
    n
}

/// Retained messages on "r/1" and "r/2".
async fn two_retained(b: &Broker) {
    let mut p = Raw::v5(b, "p").await;
    p.publish_packet(retained("r/1", 1, 0, b"1")).await;
    p.publish_packet(retained("r/2", 1, 0, b"2")).await;
}

/// [MQTT-3.3.1-9] Retain Handling 0: the retained messages matching the filter are sent on
/// every SUBSCRIBE, new or repeated.
#[tokio::test]
async fn mqtt_3_3_1_9_retain_handling_0_sends_retained_messages() {
    let b = Broker::start().await;
    two_retained(&b).await;
    let mut c = Raw::v5(&b, "c").await;
    assert_eq!(retained_on_subscribe(&mut c, "r/+", 0).await, 2);
    assert_eq!(retained_on_subscribe(&mut c, "r/+", 0).await, 2);
}

/// [MQTT-3.3.1-10] Retain Handling 1: retained messages only if the subscription did not exist.
#[tokio::test]
async fn mqtt_3_3_1_10_retain_handling_1_only_for_a_new_subscription() {
    let b = Broker::start().await;
    two_retained(&b).await;
    let mut c = Raw::v5(&b, "c").await;
    assert_eq!(retained_on_subscribe(&mut c, "r/+", 1).await, 2);
    assert_eq!(retained_on_subscribe(&mut c, "r/+", 1).await, 0);
}

/// [MQTT-3.3.1-11] Retain Handling 2: retained messages are never sent on subscribe.
#[tokio::test]
async fn mqtt_3_3_1_11_retain_handling_2_sends_none() {
    let b = Broker::start().await;
    two_retained(&b).await;
    let mut c = Raw::v5(&b, "c").await;
    assert_eq!(retained_on_subscribe(&mut c, "r/+", 2).await, 0);
}

/// [MQTT-3.3.1-12] Retain As Published 0: forwarded messages carry RETAIN 0 whatever the
/// publisher set.
#[tokio::test]
async fn mqtt_3_3_1_12_retain_as_published_0_clears_retain() {
    let b = Broker::start().await;
    let (mut s, mut p) = pair(&b, "r", 1).await;
    let m = through(&mut p, &mut s, retained("r", 1, 0, b"x")).await;
    assert!(!m.retain);
}

/// [MQTT-3.3.1-13] Retain As Published 1: forwarded messages keep the publisher's RETAIN flag.
#[tokio::test]
async fn mqtt_3_3_1_13_retain_as_published_1_keeps_retain() {
    let b = Broker::start().await;
    let mut s = Raw::v5(&b, "s").await;
    let o = SubOptions {
        retain_as_published: true,
        ..sub(1)
    };
    assert_eq!(s.subscribe_opts("r", o).await, 1);
    let mut p = Raw::v5(&b, "p").await;
    assert!(
        through(&mut p, &mut s, retained("r", 1, 0, b"x"))
            .await
            .retain
    );
    assert!(
        !through(&mut p, &mut s, publish("r", 1, 0, b"y"))
            .await
            .retain
    );
}

/// [MQTT-3.3.2-1] The topic name is a UTF-8 Encoded String: ill-formed UTF-8 is Malformed.
#[tokio::test]
async fn mqtt_3_3_2_1_topic_name_must_be_utf8() {
    let b = Broker::start().await;
    assert_v5_violation(&b, &raw_publish(0x30, b"t/\x80", None, &[], b"x"), &[0x81]).await;
}

/// [MQTT-3.3.2-2] The topic name must not contain wildcards. The specification names no
/// reason code; Malformed, Protocol Error or Topic Name invalid (0x90) are all accepted here.
#[tokio::test]
async fn mqtt_3_3_2_2_wildcard_in_topic_name_is_refused() {
    let b = Broker::start().await;
    let bad = raw_publish(0x30, b"a/+", None, &[], b"x");
    assert_v5_violation(&b, &bad, &[0x81, 0x82, 0x90]).await;
}

/// [MQTT-3.3.2-3] The topic name the server sends matches the subscription's filter: it is the
/// publisher's topic name, unchanged.
#[tokio::test]
async fn mqtt_3_3_2_3_delivered_topic_name_matches_the_filter() {
    let b = Broker::start().await;
    let (mut s, mut p) = pair(&b, "s/+/t/#", 1).await;
    for topic in ["s/a/t", "s/a/t/b/c", "s//t/"] {
        let m = through(&mut p, &mut s, publish(topic, 1, 0, b"x")).await;
        assert_eq!(&m.topic[..], topic);
    }
}

/// Publish `props` on "t" and return the properties the subscriber receives.
async fn forwarded(shards: usize, props: Properties, payload: &[u8]) -> Properties {
    let b = Broker::shards(shards, &[]).await;
    let (mut s, mut p) = pair(&b, "t", 1).await;
    let mut m = publish("t", 1, 0, payload);
    m.properties = props;
    through(&mut p, &mut s, m).await.properties
}

/// [MQTT-3.3.2-4] The server forwards the Payload Format Indicator unaltered.
async fn mqtt_3_3_2_4_payload_format_indicator_is_forwarded(shards: usize) {
    for v in [0, 1] {
        let props = Properties {
            payload_format_indicator: Some(v),
            ..Properties::default()
        };
        let got = forwarded(shards, props, "text ✓".as_bytes()).await;
        assert_eq!(got.payload_format_indicator, Some(v));
    }
}
shard_tests!(mqtt_3_3_2_4_payload_format_indicator_is_forwarded);

/// 3.3.2.3.2 (no statement number): a payload that is not UTF-8 although the Payload Format
/// Indicator says it is: the server may check it, and refuses it with 0x99.
#[tokio::test]
async fn sec_3_3_2_3_2_payload_not_matching_its_format_is_refused_0x99() {
    let b = Broker::start().await;
    let bad = raw_publish(0x30, b"t", None, &[0x01, 1], b"\xFF\xFE");
    assert_v5_violation(&b, &bad, &[0x99]).await;
}

/// A persistent subscriber "s" on "t" (QoS 1), disconnected.
async fn offline_subscriber(b: &Broker) {
    let mut s = Raw::connect(b, persistent(v5("s"), 60)).await;
    s.subscribe("t", 1).await;
    s.disconnect().await;
}

fn expiring(payload: &[u8], expiry_s: u32) -> Publish {
    let mut m = publish("t", 1, 0, payload);
    m.properties.message_expiry_interval_s = Some(expiry_s);
    m
}

/// [MQTT-3.3.2-5] A message whose expiry interval passes before onward delivery starts is
/// deleted for that subscriber; one without expiry is kept.
#[tokio::test]
async fn mqtt_3_3_2_5_expired_message_is_not_delivered() {
    let b = Broker::start().await;
    offline_subscriber(&b).await;
    let mut p = Raw::v5(&b, "p").await;
    p.publish_packet(expiring(b"short", 1)).await;
    p.publish("t", 1, b"forever").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (mut s, _) = Raw::handshake(&b, persistent(v5("s"), 60)).await;
    assert_eq!(payloads(&[s.recv_acked().await]), ["forever"]);
    s.expect_silence(QUIET).await;
}

/// [MQTT-3.3.2-6] The Message Expiry Interval the subscriber gets is the publisher's value
/// minus the time the message waited in the server.
#[tokio::test]
async fn mqtt_3_3_2_6_expiry_interval_is_reduced_by_the_wait() {
    let b = Broker::start().await;
    offline_subscriber(&b).await;
    let mut p = Raw::v5(&b, "p").await;
    p.publish_packet(expiring(b"x", 30)).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (mut s, _) = Raw::handshake(&b, persistent(v5("s"), 60)).await;
    let left = s.recv_acked().await.properties.message_expiry_interval_s;
    let left = left.expect("the expiry interval is forwarded");
    assert!(
        (20..=28).contains(&left),
        "30 s minus at least 2 s, got {left}"
    );
    // Forwarded at once: (almost) nothing is taken off.
    p.publish_packet(expiring(b"y", 30)).await;
    let left = s.recv_acked().await.properties.message_expiry_interval_s;
    assert!(matches!(left, Some(29..=30)), "{left:?}");
}

/// Publish "t" defining (topic non-empty) or using (topic empty) topic alias `alias`.
fn aliased(topic: &str, alias: u16, payload: &[u8]) -> Publish {
    let mut m = publish(topic, 0, 0, payload);
    m.properties.topic_alias = Some(alias);
    m
}

/// [MQTT-3.3.2-7] Topic alias mappings do not carry over to a new connection: an alias the
/// client defined on its previous connection is unknown (Protocol Error 0x82).
#[tokio::test]
async fn mqtt_3_3_2_7_client_aliases_do_not_survive_the_connection() {
    let b = Broker::start().await;
    let mut c = Raw::connect(&b, persistent(v5("offender"), 60)).await;
    c.publish_packet(aliased("t", 1, b"defines")).await;
    c.disconnect().await;
    let again = Raw::connect(&b, persistent(v5("offender"), 60)).await;
    let bad = wire(&Packet::Publish(aliased("", 1, b"uses")), Protocol::V5);
    assert_violation(&b, again, &bad, &[0x82]).await;
}

/// [MQTT-3.3.2-7] Server side: after a reconnect the server defines its aliases anew (the raw
/// client starts with an empty table and fails on an alias it was never given).
#[tokio::test]
async fn mqtt_3_3_2_7_server_aliases_do_not_survive_the_connection() {
    let b = Broker::with(&["--topic-alias-outbound", "true"]).await;
    let connect = || {
        let mut c = persistent(v5("s"), 60);
        c.properties.topic_alias_maximum = Some(4);
        c
    };
    let mut s = Raw::connect(&b, connect()).await;
    s.subscribe("t", 1).await;
    let mut p = Raw::v5(&b, "p").await;
    p.publish("t", 1, b"1").await;
    p.publish("t", 1, b"2").await;
    let m = s.recv_n(2).await;
    assert!(m[1].properties.topic_alias.is_some(), "aliases in use");
    s.disconnect().await;
    let mut s = Raw::connect(&b, connect()).await;
    p.publish("t", 1, b"3").await;
    let m = s.recv_acked().await;
    assert_eq!((&m.topic[..], &m.payload[..]), ("t", &b"3"[..]));
}

/// [MQTT-3.3.2-8] Topic Alias 0 is not permitted. It parses, so it is a Protocol Error (or
/// Topic Alias invalid, 0x94), not a Malformed Packet.
#[tokio::test]
async fn mqtt_3_3_2_8_topic_alias_0_is_refused() {
    let b = Broker::start().await;
    let bad = raw_publish(0x30, b"t", None, &[0x23, 0, 0], b"x");
    assert_v5_violation(&b, &bad, &[0x94, 0x82]).await;
}

/// [MQTT-3.3.2-12] The server accepts every Topic Alias from 1 to the maximum it announced
/// (64 by default): defined, then used alone.
#[tokio::test]
async fn mqtt_3_3_2_12_every_alias_up_to_the_maximum_is_accepted() {
    let b = Broker::start().await;
    let (mut s, _) = pair(&b, "a/#", 0).await;
    let (mut p, ack) = Raw::handshake(&b, v5("aliasing")).await;
    let max = ack.properties.topic_alias_maximum.expect("announced");
    for alias in [1, max / 2, max] {
        let topic = format!("a/{alias}");
        p.publish_packet(aliased(&topic, alias, b"define")).await;
        p.publish_packet(aliased("", alias, b"use")).await;
        for want in ["define", "use"] {
            let m = s.recv_publish().await;
            assert_eq!(
                (&m.topic[..], &m.payload[..]),
                (&topic[..], want.as_bytes())
            );
        }
    }
}

/// 3.3.2.3.4 (no statement number): an alias-only PUBLISH (empty topic) whose alias was never
/// defined is a Protocol Error.
#[tokio::test]
async fn sec_3_3_2_3_4_undefined_topic_alias_is_a_protocol_error() {
    let b = Broker::start().await;
    let bad = raw_publish(0x30, b"", None, &[0x23, 0, 5], b"x");
    assert_v5_violation(&b, &bad, &[0x82]).await;
}

/// 3.3.2.3.4 (no statement number): a PUBLISH with a topic and an alias redefines the alias.
#[tokio::test]
async fn sec_3_3_2_3_4_topic_alias_can_be_redefined() {
    let b = Broker::start().await;
    let (mut s, mut p) = pair(&b, "#", 0).await;
    p.publish_packet(aliased("first", 1, b"1")).await;
    p.publish_packet(aliased("second", 1, b"2")).await;
    p.publish_packet(aliased("", 1, b"3")).await;
    let mut topics = Vec::new();
    for _ in 0..3 {
        topics.push(s.recv_publish().await.topic.to_string());
    }
    assert_eq!(topics, ["first", "second", "second"]);
}

/// [MQTT-3.3.2-13] The Response Topic is a UTF-8 Encoded String: ill-formed UTF-8 is
/// Malformed.
#[tokio::test]
async fn mqtt_3_3_2_13_response_topic_must_be_utf8() {
    let b = Broker::start().await;
    let mut prop = vec![0x08];
    prop.extend(field(b"reply/\xC0"));
    assert_v5_violation(&b, &raw_publish(0x30, b"t", None, &prop, b"x"), &[0x81]).await;
}

/// [MQTT-3.3.2-14] The Response Topic must not contain wildcards (no reason code is named;
/// Malformed, Protocol Error or Topic Name invalid are accepted).
#[tokio::test]
async fn mqtt_3_3_2_14_response_topic_with_wildcard_is_refused() {
    let b = Broker::start().await;
    let mut prop = vec![0x08];
    prop.extend(field(b"reply/#"));
    let bad = raw_publish(0x30, b"t", None, &prop, b"x");
    assert_v5_violation(&b, &bad, &[0x81, 0x82, 0x90]).await;
}

/// [MQTT-3.3.2-15] The server forwards the Response Topic unaltered.
async fn mqtt_3_3_2_15_response_topic_is_forwarded(shards: usize) {
    let props = Properties {
        response_topic: Some("reply/to/me ✓".into()),
        ..Properties::default()
    };
    let got = forwarded(shards, props, b"request").await;
    assert_eq!(got.response_topic.as_deref(), Some("reply/to/me ✓"));
}
shard_tests!(mqtt_3_3_2_15_response_topic_is_forwarded);

/// [MQTT-3.3.2-16] The server forwards the Correlation Data unaltered (binary, any bytes).
async fn mqtt_3_3_2_16_correlation_data_is_forwarded(shards: usize) {
    let data = Bytes::from_static(b"\x00\xFF\x10corr");
    let props = Properties {
        correlation_data: Some(data.clone()),
        ..Properties::default()
    };
    assert_eq!(
        forwarded(shards, props, b"x").await.correlation_data,
        Some(data)
    );
}
shard_tests!(mqtt_3_3_2_16_correlation_data_is_forwarded);

/// [MQTT-3.3.2-17] The server forwards all User Properties unaltered (checked with rumqttc on
/// both ends, the third-party client).
async fn mqtt_3_3_2_17_user_properties_are_forwarded(shards: usize) {
    use crate::third_party::Client;
    let b = Broker::shards(shards, &[]).await;
    let mut s = Client::v5(&b, &b.id("sub", 0)).await;
    assert_eq!(s.subscribe("t", 1).await, 1);
    let mut p = Client::v5(&b, &b.id("pub", 1)).await;
    let props = rumqttc::v5::mqttbytes::v5::PublishProperties {
        user_properties: vec![("region".into(), "eu".into()), ("empty".into(), "".into())],
        ..Default::default()
    };
    p.publish_with("t", 1, b"x", false, Some(props.clone()))
        .await;
    let m = s.recv().await;
    let got = m.properties.expect("properties forwarded");
    assert_eq!(got.user_properties, props.user_properties);
}
shard_tests!(mqtt_3_3_2_17_user_properties_are_forwarded);

/// [MQTT-3.3.2-18] The server keeps the order of User Properties, repeated keys included.
async fn mqtt_3_3_2_18_user_property_order_is_kept(shards: usize) {
    let list: Vec<(bytestring::ByteString, bytestring::ByteString)> =
        [("z", "1"), ("a", "2"), ("z", "3"), ("a", "2"), ("m", "ü")]
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
    let props = Properties {
        user_properties: list.clone(),
        ..Properties::default()
    };
    assert_eq!(forwarded(shards, props, b"x").await.user_properties, list);
}
shard_tests!(mqtt_3_3_2_18_user_property_order_is_kept);

/// [MQTT-3.3.2-19] The Content Type is a UTF-8 Encoded String: ill-formed UTF-8 is Malformed.
#[tokio::test]
async fn mqtt_3_3_2_19_content_type_must_be_utf8() {
    let b = Broker::start().await;
    let mut prop = vec![0x03];
    prop.extend(field(b"text/\xED\xBF\xBF"));
    assert_v5_violation(&b, &raw_publish(0x30, b"t", None, &prop, b"x"), &[0x81]).await;
}

/// [MQTT-3.3.2-20] The server forwards the Content Type unaltered.
async fn mqtt_3_3_2_20_content_type_is_forwarded(shards: usize) {
    let props = Properties {
        content_type: Some("application/x-thing; v=2".into()),
        ..Properties::default()
    };
    let got = forwarded(shards, props, b"x").await;
    assert_eq!(
        got.content_type.as_deref(),
        Some("application/x-thing; v=2")
    );
}
shard_tests!(mqtt_3_3_2_20_content_type_is_forwarded);

/// [MQTT-3.3.4-1] The receiver answers a PUBLISH as its QoS says: nothing for QoS 0, PUBACK
/// for QoS 1, PUBREC for QoS 2.
#[tokio::test]
async fn mqtt_3_3_4_1_publish_is_answered_according_to_qos() {
    let b = Broker::start().await;
    let mut c = Raw::v5(&b, "c").await;
    c.send(Packet::Publish(publish("t", 0, 0, b"0"))).await;
    c.expect_silence(QUIET).await;
    // Nobody subscribes: the reason may be 0x10 (No matching subscribers), still a success.
    c.send(Packet::Publish(publish("t", 1, 11, b"1"))).await;
    let a = c.recv().await;
    assert!(
        matches!(&a, Packet::PubAck(x) if x.packet_id == 11 && x.reason < 0x80),
        "{a:?}"
    );
    c.send(Packet::Publish(publish("t", 2, 12, b"2"))).await;
    let r = c.recv().await;
    assert!(
        matches!(&r, Packet::PubRec(x) if x.packet_id == 12 && x.reason < 0x80),
        "{r:?}"
    );
}

/// [MQTT-3.3.4-2] Overlapping subscriptions of one client: the message is delivered at the
/// highest QoS of the matching subscriptions (ringmq sends one copy).
#[tokio::test]
async fn mqtt_3_3_4_2_overlapping_subscriptions_use_the_highest_qos() {
    let b = Broker::start().await;
    let mut s = Raw::v5(&b, "s").await;
    s.subscribe("a/#", 1).await;
    s.subscribe("a/b", 2).await;
    s.subscribe("+/b", 0).await;
    Raw::v5(&b, "p").await.publish("a/b", 2, b"x").await;
    assert_eq!(s.recv_acked().await.qos, QoS::ExactlyOnce);
    s.expect_silence(QUIET).await;
}

/// [MQTT-3.3.4-3], [MQTT-3.3.4-4] Overlapping subscriptions with Subscription Identifiers: the
/// single copy carries the identifiers of every matching subscription that has one.
#[tokio::test]
async fn mqtt_3_3_4_4_single_copy_carries_every_subscription_identifier() {
    let b = Broker::start().await;
    let mut s = Raw::v5(&b, "s").await;
    s.subscribe_id("a/#", 1, 7).await;
    s.subscribe_id("a/+", 1, 268_435_455).await;
    s.subscribe("+/b", 1).await;
    s.subscribe_id("x/#", 1, 9).await;
    Raw::v5(&b, "p").await.publish("a/b", 1, b"x").await;
    let mut ids = s
        .recv_acked()
        .await
        .properties
        .subscription_identifiers
        .to_vec();
    ids.sort();
    assert_eq!(ids, [7, 268_435_455]);
    s.expect_silence(QUIET).await;
}

/// [MQTT-3.3.4-6] A PUBLISH from a client must not contain a Subscription Identifier: a
/// Protocol Error.
#[tokio::test]
async fn mqtt_3_3_4_6_subscription_identifier_from_a_client_is_refused() {
    let b = Broker::start().await;
    let bad = raw_publish(0x30, b"t", None, &[0x0B, 3], b"x");
    assert_v5_violation(&b, &bad, &[0x82]).await;
}

/// [MQTT-3.3.4-7] A client must not have more unacknowledged QoS 2 PUBLISHes than the
/// server's Receive Maximum (2 here): the third gets DISCONNECT 0x93.
#[tokio::test]
async fn mqtt_3_3_4_7_receive_maximum_exceeded_is_refused_0x93() {
    let b = Broker::with(&["--receive-maximum", "2"]).await;
    let mut offender = Raw::v5(&b, &b.id("offender", 1)).await;
    for id in [1, 2] {
        offender
            .send(Packet::Publish(publish("q2", 2, id, b"x")))
            .await;
        let r = offender.recv().await;
        assert!(
            matches!(&r, Packet::PubRec(x) if x.packet_id == id && x.reason < 0x80),
            "{r:?}"
        );
    }
    let bad = wire(&Packet::Publish(publish("q2", 2, 3, b"x")), Protocol::V5);
    assert_violation(&b, offender, &bad, &[0x93]).await;
}
