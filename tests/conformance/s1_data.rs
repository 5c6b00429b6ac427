//! Section 1.5: data representation — UTF-8 strings, variable byte integers, string pairs.

use crate::fixture::*;
use ringmq::codec::{self, varint_len, Packet, Protocol};

/// [MQTT-1.5.4-1] A UTF-8 Encoded String must be well-formed UTF-8; a packet holding ill-formed
/// UTF-8 is a Malformed Packet (0x81).
#[tokio::test]
async fn mqtt_1_5_4_1_ill_formed_utf8_is_malformed() {
    let b = Broker::start().await;
    // "a" followed by 0xC3 0x28: a two-byte lead byte with an invalid continuation.
    let bad = raw_publish(0x30, b"a\xC3\x28", None, &[], b"x");
    assert_v5_violation(&b, &bad, &[0x81]).await;
}

/// [MQTT-1.5.4-1] In particular a string must not encode a UTF-16 surrogate (U+D800..U+DFFF):
/// here in a SUBSCRIBE topic filter.
#[tokio::test]
async fn mqtt_1_5_4_1_encoded_surrogate_is_malformed() {
    let b = Broker::start().await;
    let mut body = vec![0, 1, 0];
    body.extend(field(b"a/\xED\xA0\x80"));
    body.push(1);
    assert_v5_violation(&b, &frame(0x82, &body), &[0x81]).await;
}

/// [MQTT-1.5.4-2] A UTF-8 Encoded String must not include U+0000: a Malformed Packet.
#[tokio::test]
async fn mqtt_1_5_4_2_null_character_is_malformed() {
    let b = Broker::start().await;
    let bad = raw_publish(0x30, b"a\0b", None, &[], b"x");
    assert_v5_violation(&b, &bad, &[0x81]).await;
}

/// [MQTT-1.5.4-3] The sequence 0xEF 0xBB 0xBF is U+FEFF wherever it appears and must not be
/// skipped or stripped by a receiver: a topic that starts with it is another topic than the one
/// without, and subscribers get it intact.
#[tokio::test]
async fn mqtt_1_5_4_3_byte_order_mark_is_kept() {
    let b = Broker::start().await;
    let mut with = Raw::v5(&b, "with-bom").await;
    with.subscribe("\u{FEFF}bom/t", 1).await;
    let mut without = Raw::v5(&b, "without-bom").await;
    without.subscribe("bom/t", 1).await;
    let mut p = Raw::v5(&b, "pub").await;
    p.publish("\u{FEFF}bom/t", 1, b"marked").await;
    let got = with.recv_acked().await;
    assert_eq!(got.topic.as_bytes()[..], b"\xEF\xBB\xBFbom/t"[..]);
    without.expect_silence(QUIET).await;
    p.publish("bom/t", 1, b"plain").await;
    assert_eq!(&without.recv_acked().await.topic[..], "bom/t");
    with.expect_silence(QUIET).await;
}

/// [MQTT-1.5.5-1] A Variable Byte Integer uses the minimum number of bytes: checked on the
/// remaining length of PUBLISH packets the broker sends across each encoding-size boundary.
#[tokio::test]
async fn mqtt_1_5_5_1_broker_sends_minimal_variable_byte_integers() {
    let b = Broker::start().await;
    let mut s = Raw::v5(&b, "sub").await;
    s.subscribe("t", 0).await;
    let mut p = Raw::v5(&b, "pub").await;
    // Remaining length of a v5 QoS 0 PUBLISH of topic "t": 3 + 1 + payload.
    for remaining in [127usize, 128, 16_383, 16_384] {
        p.publish("t", 0, &vec![b'x'; remaining - 4]).await;
        let bytes = s.next_frame(WAIT).await.expect("a PUBLISH frame");
        let f = codec::frame(&bytes, usize::MAX)
            .expect("frame")
            .expect("whole");
        assert_eq!(f.body_len, remaining);
        assert_eq!(
            f.header_len,
            1 + varint_len(remaining),
            "remaining length {remaining} encoded in {} bytes",
            f.header_len - 1
        );
    }
}

/// [MQTT-1.5.5-1] Receiver side: a remaining length encoded in more bytes than needed
/// (0x80 0x00 for 0) is not a valid encoding, and five length bytes never are: Malformed.
#[tokio::test]
async fn mqtt_1_5_5_1_non_minimal_or_overlong_length_is_malformed() {
    let b = Broker::start().await;
    assert_v5_violation(&b, &[0xC0, 0x80, 0x00], &[0x81]).await;
    assert_v5_violation(&b, &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], &[0x81]).await;
}

/// [MQTT-1.5.7-1] Both strings of a UTF-8 String Pair (a User Property) must be valid UTF-8
/// strings, else the packet is Malformed.
#[tokio::test]
async fn mqtt_1_5_7_1_ill_formed_string_pair_is_malformed() {
    let b = Broker::start().await;
    let mut prop = vec![0x26];
    prop.extend(field(b"key"));
    prop.extend(field(b"\xFF\xFE"));
    let bad = raw_publish(0x30, b"t", None, &prop, b"x");
    assert_v5_violation(&b, &bad, &[0x81]).await;
}

/// A sanity check of the helpers themselves: the codec decodes what the fixture builds.
#[test]
fn fixture_builds_what_the_codec_reads() {
    let mut buf = bytes::BytesMut::from(&raw_publish(0x30, b"t", None, &[], b"x")[..]);
    let p = codec::decode(&mut buf, Protocol::V5, usize::MAX).expect("decodes");
    assert!(matches!(p, Some(Packet::Publish(ref x)) if &x.topic[..] == "t"));
}
