//! Bad input. Each case must close only the offending connection (v5: after a DISCONNECT with
//! the reason code the specification gives), while a [`Witness`] pair on other connections keeps
//! exchanging messages without losing any, and the broker keeps serving.

use crate::common::*;
use ringmq::codec::{Ack, ConnAck, Packet, Properties, Protocol};
use std::time::Instant;

version_tests!(
    mqtt_3_1_0_2_second_connect_is_a_protocol_error,
    mqtt_1_5_5_remaining_length_of_five_bytes_is_malformed,
    mqtt_2_1_3_1_wrong_reserved_flags_are_malformed,
    mqtt_3_3_1_4_publish_with_qos_3_is_malformed,
    mqtt_3_3_1_2_qos0_publish_with_dup_is_malformed,
    mqtt_2_2_1_3_qos1_publish_with_packet_id_0_is_refused,
    mqtt_1_5_4_1_publish_topic_with_invalid_utf8_is_malformed,
    mqtt_1_5_4_2_publish_topic_with_null_character_is_malformed,
    mqtt_3_3_2_2_publish_topic_with_a_wildcard_is_refused,
    client_sending_a_server_packet_is_a_protocol_error,
    mqtt_4_3_3_pubrel_for_an_unknown_packet_id_gets_pubcomp_and_keeps_the_connection,
    truncated_packet_then_silence_is_closed_by_keepalive,
    random_garbage_after_connect_closes_only_that_connection,
);

shard_tests!(
    mqtt_3_1_0_1_publish_before_connect_is_closed_without_connack,
    truncated_connect_then_silence_is_closed_by_the_connect_timeout,
    random_garbage_before_connect_closes_only_that_connection,
    broker_survives_every_bad_input_in_sequence,
);

/// Connect a raw client, send `bytes`, and check the broker closes it with one of `v5_reasons`
/// (v3: closed) while the witness loses nothing.
async fn refused_after_connect(v: Version, shards: usize, bytes: &[u8], v5_reasons: &[u8]) {
    let mut b = Broker::start(shards).await;
    let w = Witness::start(&b).await;
    let mut raw = Raw::connect(&b, v.protocol(), "offender").await;
    raw.send_bytes(bytes).await;
    raw.expect_refused(v5_reasons).await;
    w.finish().await;
    b.assert_serving().await;
}

async fn mqtt_3_1_0_2_second_connect_is_a_protocol_error(v: Version, shards: usize) {
    let connect = encode(
        &Packet::Connect(Box::new(connect_packet(v.protocol(), "offender"))),
        v.protocol(),
    );
    refused_after_connect(v, shards, &connect, &[0x82]).await;
}

async fn mqtt_1_5_5_remaining_length_of_five_bytes_is_malformed(v: Version, shards: usize) {
    refused_after_connect(v, shards, &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], &[0x81]).await;
}

async fn mqtt_2_1_3_1_wrong_reserved_flags_are_malformed(v: Version, shards: usize) {
    // SUBSCRIBE must have flags 0b0010; these have 0b0000.
    let mut subscribe = vec![0x80, 0, 0, 1];
    if v.is_v5() {
        subscribe.push(0);
    }
    subscribe.extend_from_slice(&[0, 1, b'a', 1]);
    subscribe[1] = (subscribe.len() - 2) as u8;
    refused_after_connect(v, shards, &subscribe, &[0x81]).await;
}

async fn mqtt_3_3_1_4_publish_with_qos_3_is_malformed(v: Version, shards: usize) {
    let bytes = publish_bytes(v.is_v5(), 0x36, b"q/3", Some(1), b"x");
    refused_after_connect(v, shards, &bytes, &[0x81]).await;
}

async fn mqtt_3_3_1_2_qos0_publish_with_dup_is_malformed(v: Version, shards: usize) {
    let bytes = publish_bytes(v.is_v5(), 0x38, b"q/0", None, b"x");
    refused_after_connect(v, shards, &bytes, &[0x81]).await;
}

async fn mqtt_2_2_1_3_qos1_publish_with_packet_id_0_is_refused(v: Version, shards: usize) {
    let bytes = publish_bytes(v.is_v5(), 0x32, b"q/1", Some(0), b"x");
    // No reason code is named for this one: Malformed Packet or Protocol Error.
    refused_after_connect(v, shards, &bytes, &[0x81, 0x82]).await;
}

async fn mqtt_1_5_4_1_publish_topic_with_invalid_utf8_is_malformed(v: Version, shards: usize) {
    let bytes = publish_bytes(v.is_v5(), 0x30, &[b'a', 0xC3, 0x28], None, b"x");
    refused_after_connect(v, shards, &bytes, &[0x81]).await;
}

async fn mqtt_1_5_4_2_publish_topic_with_null_character_is_malformed(v: Version, shards: usize) {
    let bytes = publish_bytes(v.is_v5(), 0x30, b"a\0b", None, b"x");
    refused_after_connect(v, shards, &bytes, &[0x81]).await;
}

async fn mqtt_3_3_2_2_publish_topic_with_a_wildcard_is_refused(v: Version, shards: usize) {
    for topic in [&b"a/+"[..], b"a/#"] {
        let bytes = publish_bytes(v.is_v5(), 0x30, topic, None, b"x");
        // Topic Name invalid, or Malformed Packet.
        refused_after_connect(v, shards, &bytes, &[0x90, 0x81]).await;
    }
}

async fn client_sending_a_server_packet_is_a_protocol_error(v: Version, shards: usize) {
    let connack = encode(&Packet::ConnAck(ConnAck::default()), v.protocol());
    refused_after_connect(v, shards, &connack, &[0x82]).await;
}

async fn mqtt_4_3_3_pubrel_for_an_unknown_packet_id_gets_pubcomp_and_keeps_the_connection(
    v: Version,
    shards: usize,
) {
    let b = Broker::start(shards).await;
    let mut raw = Raw::connect(&b, v.protocol(), "confused").await;
    raw.send(&Packet::PubRel(ack(77))).await;
    let reason = if v.is_v5() { 0x92 } else { 0 };
    assert_eq!(
        raw.recv().await,
        Packet::PubComp(Ack {
            packet_id: 77,
            reason,
            properties: Properties::default()
        }),
        "PUBCOMP (v5: 0x92 Packet Identifier not found)"
    );
    raw.ping().await;
}

async fn truncated_packet_then_silence_is_closed_by_keepalive(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let w = Witness::start(&b).await;
    let c = ringmq::codec::Connect {
        keep_alive_s: 1,
        ..connect_packet(v.protocol(), "truncated")
    };
    let (mut raw, _) = Raw::handshake(&b, c).await;
    // A PUBLISH announcing 100 bytes, of which 10 arrive.
    let whole = publish_bytes(v.is_v5(), 0x30, b"t/t", None, &[b'x'; 100]);
    raw.send_bytes(&whole[..10]).await;
    let t0 = Instant::now();
    raw.expect_refused(&[0x8D]).await;
    assert_between(t0.elapsed(), 1000, 3000, "keep alive 1 s");
    w.finish().await;
}

/// A few seeds of garbage, each on its own connection (after CONNECT when `connected`): every
/// connection is closed (keep alive 1 s / connect timeout 300 ms at the latest).
async fn garbage_closes(v: Version, shards: usize, connected: bool) {
    let mut b = Broker::with(shards, &["--connect-timeout-ms", "300"]).await;
    let w = Witness::start(&b).await;
    for seed in 1..=4u64 {
        let mut raw = if connected {
            let c = ringmq::codec::Connect {
                keep_alive_s: 1,
                ..connect_packet(v.protocol(), &format!("garbage-{seed}"))
            };
            Raw::handshake(&b, c).await.0
        } else {
            Raw::open(&b).await
        };
        raw.send_bytes(&garbage(seed, 512)).await;
        // Whatever it may answer first (the garbage can hold a valid packet), it closes.
        raw.expect_close(WAIT).await;
    }
    w.finish().await;
    b.assert_serving().await;
}

async fn random_garbage_after_connect_closes_only_that_connection(v: Version, shards: usize) {
    garbage_closes(v, shards, true).await;
}

async fn random_garbage_before_connect_closes_only_that_connection(shards: usize) {
    garbage_closes(Version::V3, shards, false).await;
}

async fn mqtt_3_1_0_1_publish_before_connect_is_closed_without_connack(shards: usize) {
    let mut b = Broker::start(shards).await;
    let w = Witness::start(&b).await;
    for protocol in [Protocol::V311, Protocol::V5] {
        let mut raw = Raw::open(&b).await;
        raw.protocol = protocol;
        raw.send(&publish_packet("early/t", 1, 1, b"x")).await;
        let answer = raw.expect_close(WAIT).await;
        assert!(answer.is_empty(), "no CONNACK, no PUBACK: {answer:?}");
    }
    w.finish().await;
    b.assert_serving().await;
}

async fn truncated_connect_then_silence_is_closed_by_the_connect_timeout(shards: usize) {
    let b = Broker::with(shards, &["--connect-timeout-ms", "300"]).await;
    let w = Witness::start(&b).await;
    let connect = encode(
        &Packet::Connect(Box::new(connect_packet(Protocol::V311, "half"))),
        Protocol::V311,
    );
    let mut raw = Raw::open(&b).await;
    raw.send_bytes(&connect[..connect.len() / 2]).await;
    let t0 = Instant::now();
    assert!(raw.expect_close(WAIT).await.is_empty());
    assert_between(t0.elapsed(), 250, 2000, "connect timeout 300 ms");
    w.finish().await;
}

/// Every bad input above, one after the other, against one broker.
async fn broker_survives_every_bad_input_in_sequence(shards: usize) {
    let mut b = Broker::with(shards, &["--connect-timeout-ms", "300"]).await;
    let w = Witness::start(&b).await;
    let mut cases: Vec<(Protocol, Vec<u8>)> = Vec::new();
    for (v, protocol) in [(true, Protocol::V5), (false, Protocol::V311)] {
        let connect = encode(
            &Packet::Connect(Box::new(connect_packet(protocol, "again"))),
            protocol,
        );
        cases.push((protocol, connect));
        cases.push((protocol, vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]));
        cases.push((protocol, vec![0x80, 0x02, 0x00, 0x01]));
        cases.push((protocol, publish_bytes(v, 0x36, b"q", Some(1), b"x")));
        cases.push((protocol, publish_bytes(v, 0x32, b"q", Some(0), b"x")));
        cases.push((protocol, publish_bytes(v, 0x30, &[0xC3, 0x28], None, b"x")));
        cases.push((protocol, publish_bytes(v, 0x30, b"a/+", None, b"x")));
        cases.push((protocol, garbage(99, 300)));
    }
    for (i, (protocol, bytes)) in cases.iter().enumerate() {
        let mut raw = Raw::connect(&b, *protocol, &format!("bad-{i}")).await;
        raw.send_bytes(bytes).await;
        raw.expect_close(WAIT).await;
    }
    w.finish().await;
    b.assert_serving().await;
}
