//! PUBLISH [MQTT-3.3]: the broker's hottest path. Decode slices topic and payload out of the
//! frame without copying; encode computes the exact size, reserves once and writes header,
//! topic, packet identifier, properties and payload in one pass.

use bytes::{BufMut, Bytes, BytesMut};

use crate::primitives::{
    put_fixed_header_reserving, put_str, read_packet_id, read_string, str_wire_len, varint_len,
};
use crate::properties::PropCtx;
use crate::topic::is_valid_topic_name;
use crate::{DecodeError, EncodeError, Properties, Protocol, Publish, QoS};

pub fn decode(flags: u8, mut body: Bytes, protocol: Protocol) -> Result<Publish, DecodeError> {
    // [MQTT-3.3.1-4]: QoS 3 is reserved.
    let qos = QoS::from_u8((flags >> 1) & 0x03).ok_or(DecodeError::InvalidQoS)?;
    let dup = flags & 0x08 != 0;
    // [MQTT-3.3.1-2]: DUP must be 0 for QoS 0 messages.
    if dup && qos == QoS::AtMostOnce {
        return Err(DecodeError::Malformed);
    }
    let retain = flags & 0x01 != 0;
    let topic = read_string(&mut body)?;
    let packet_id = if qos == QoS::AtMostOnce {
        0
    } else {
        read_packet_id(&mut body)?
    };
    let properties = if protocol.is_v5() {
        Properties::decode(&mut body, PropCtx::Publish)?
    } else {
        Properties::default()
    };
    // [MQTT-3.3.2-1..2]: a topic name, no wildcards. v5 allows a zero-length topic when a
    // Topic Alias stands for it (3.3.2.3.4); v3 never does [MQTT-4.7.3-1].
    if topic.is_empty() {
        if properties.topic_alias.is_none() {
            // v5: a Protocol Error (no alias stands for it); v3: an invalid topic name.
            return Err(if protocol.is_v5() {
                DecodeError::ProtocolError
            } else {
                DecodeError::InvalidTopicName
            });
        }
    } else if !is_valid_topic_name(&topic) {
        return Err(DecodeError::InvalidTopicName);
    }
    // The rest of the frame is the payload, possibly empty; a slice, not a copy.
    let payload = body;
    // [MQTT-3.3.2-4] allows the receiver to check a payload declared as UTF-8 (0x99).
    if properties.payload_format_indicator == Some(1) && std::str::from_utf8(&payload).is_err() {
        return Err(DecodeError::PayloadFormatInvalid);
    }
    Ok(Publish {
        dup,
        qos,
        retain,
        topic,
        packet_id,
        properties,
        payload,
    })
}

/// Remaining length and property-list length of `p` for `protocol`.
#[inline]
fn lengths(p: &Publish, protocol: Protocol) -> Result<(usize, usize), EncodeError> {
    let mut remaining = str_wire_len(p.topic.len())? + p.payload.len();
    if p.qos != QoS::AtMostOnce {
        remaining += 2;
    }
    let mut props_len = 0;
    if protocol.is_v5() {
        props_len = p.properties.content_len()?;
        remaining += varint_len(props_len) + props_len;
    }
    Ok((remaining, props_len))
}

/// Encode a PUBLISH, appending to `out` with a single reservation. v3 peers never see the
/// properties. A QoS > 0 message needs a non-zero packet identifier, DUP is only legal with
/// QoS > 0 ([MQTT-2.2.1-2], [MQTT-3.3.1-2]), and an empty topic only in v5 with a Topic Alias
/// (so an alias-only message is never sent to a v3 peer by mistake).
pub fn encode(p: &Publish, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
    put_head(p, protocol, out, true)?;
    out.put_slice(&p.payload);
    Ok(())
}

/// Everything of [`encode`] but the payload, which the caller sends right after these bytes
/// (a large payload leaves from the shared message buffer instead of being copied here).
pub fn encode_head(p: &Publish, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
    put_head(p, protocol, out, false)
}

/// The checks and the bytes before the payload; the reservation covers the payload too when
/// `with_payload` (one allocation for the whole packet).
#[inline]
fn put_head(
    p: &Publish,
    protocol: Protocol,
    out: &mut BytesMut,
    with_payload: bool,
) -> Result<(), EncodeError> {
    if (p.qos != QoS::AtMostOnce && p.packet_id == 0)
        || (p.dup && p.qos == QoS::AtMostOnce)
        || (p.topic.is_empty() && !(protocol.is_v5() && p.properties.topic_alias.is_some()))
    {
        return Err(EncodeError::InvalidValue);
    }
    let (remaining, props_len) = lengths(p, protocol)?;
    let header = 0x30 | (u8::from(p.dup) << 3) | ((p.qos as u8) << 1) | u8::from(p.retain);
    let body = if with_payload {
        remaining
    } else {
        remaining - p.payload.len()
    };
    put_fixed_header_reserving(out, header, remaining, body)?;
    put_str(out, &p.topic);
    if p.qos != QoS::AtMostOnce {
        out.put_u16(p.packet_id);
    }
    if protocol.is_v5() {
        p.properties.encode(props_len, out);
    }
    Ok(())
}

/// Bytes `p` takes on the wire for `protocol`, computed without allocating; `usize::MAX` when
/// it cannot be encoded at all.
pub fn encoded_len(p: &Publish, protocol: Protocol) -> usize {
    match lengths(p, protocol) {
        Ok((remaining, _)) => 1 + varint_len(remaining) + remaining,
        Err(_) => usize::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode as decode_packet, encode as encode_packet, Packet};
    use bytestring::ByteString;

    fn round_trip(p: Publish, protocol: Protocol) {
        let packet = Packet::Publish(p);
        let mut buf = BytesMut::new();
        encode_packet(&packet, protocol, &mut buf).expect("encode");
        assert_eq!(buf.len(), crate::encoded_len(&packet, protocol));
        let got = decode_packet(&mut buf, protocol, usize::MAX).expect("decode");
        assert_eq!(got, Some(packet));
        assert!(buf.is_empty());
    }

    fn sample(qos: QoS) -> Publish {
        Publish {
            dup: qos != QoS::AtMostOnce,
            qos,
            retain: true,
            topic: ByteString::from_static("a/b/c"),
            packet_id: if qos == QoS::AtMostOnce { 0 } else { 42 },
            properties: Properties::default(),
            payload: Bytes::from_static(b"hello world"),
        }
    }

    fn dec(header: u8, body: &[u8], protocol: Protocol) -> Result<Publish, DecodeError> {
        decode(header & 0x0F, Bytes::copy_from_slice(body), protocol)
    }

    #[test]
    fn head_then_payload_is_the_whole_packet() {
        for protocol in [Protocol::V311, Protocol::V5] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                let mut p = sample(qos);
                p.payload = Bytes::from(vec![7u8; 20_000]);
                let mut whole = BytesMut::new();
                encode(&p, protocol, &mut whole).expect("encode");
                let mut head = BytesMut::new();
                encode_head(&p, protocol, &mut head).expect("head");
                // Only the head is reserved, not the payload's room.
                assert!(head.capacity() < 1024, "{}", head.capacity());
                head.extend_from_slice(&p.payload);
                assert_eq!(head, whole);
            }
        }
    }

    #[test]
    fn round_trips() {
        for protocol in [Protocol::V310, Protocol::V311, Protocol::V5] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                round_trip(sample(qos), protocol);
                let mut p = sample(qos);
                p.payload = Bytes::new();
                p.retain = false;
                round_trip(p, protocol);
            }
        }
        let mut p = sample(QoS::AtLeastOnce);
        p.properties.payload_format_indicator = Some(1);
        p.properties.message_expiry_interval_s = Some(30);
        p.properties.content_type = Some("text/plain".into());
        p.properties.response_topic = Some("reply/here".into());
        p.properties.correlation_data = Some(Bytes::from_static(b"\x00\x01"));
        p.properties.subscription_identifiers.push(1);
        p.properties.subscription_identifiers.push(268_435_455);
        p.properties.topic_alias = Some(3);
        p.properties.user_properties.push(("a".into(), "1".into()));
        p.properties.user_properties.push(("a".into(), "2".into()));
        round_trip(p.clone(), Protocol::V5);
        // Topic alias standing in for an empty topic.
        p.topic = ByteString::new();
        round_trip(p, Protocol::V5);
    }

    #[test]
    fn v3_omits_properties() {
        let mut p = sample(QoS::AtLeastOnce);
        p.properties.message_expiry_interval_s = Some(30);
        let mut buf = BytesMut::new();
        encode(&p, Protocol::V311, &mut buf).expect("encode");
        assert_eq!(buf.len(), encoded_len(&p, Protocol::V311));
        let got = decode_packet(&mut buf, Protocol::V311, usize::MAX).expect("decode");
        p.properties = Properties::default();
        assert_eq!(got, Some(Packet::Publish(p)));
    }

    #[test]
    fn spec_vectors() {
        // QoS 1, topic "a/b", id 10, payload "x".
        let mut buf =
            BytesMut::from(&[0x32, 0x08, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0A, b'x'][..]);
        let Some(Packet::Publish(p)) = decode_packet(&mut buf, Protocol::V311, 1024).expect("ok")
        else {
            panic!("not a publish")
        };
        assert_eq!(
            (p.qos, p.packet_id, &p.topic[..], &p.payload[..]),
            (QoS::AtLeastOnce, 10, "a/b", &b"x"[..])
        );
        // v5 QoS 0 with an empty property list and empty payload.
        let p = dec(0x30, &[0x00, 0x01, b't', 0x00], Protocol::V5).expect("v5");
        assert_eq!(&p.topic[..], "t");
        assert!(p.payload.is_empty());
    }

    #[test]
    fn errors() {
        let v = Protocol::V311;
        assert_eq!(
            dec(0x36, &[0x00, 0x01, b't', 0, 1], v),
            Err(DecodeError::InvalidQoS)
        );
        assert_eq!(
            dec(0x38, &[0x00, 0x01, b't'], v),
            Err(DecodeError::Malformed)
        );
        assert_eq!(
            dec(0x32, &[0x00, 0x01, b't', 0, 0], v),
            Err(DecodeError::ZeroPacketId)
        );
        assert_eq!(
            dec(0x32, &[0x00, 0x01, b't', 0], v),
            Err(DecodeError::Malformed)
        );
        assert_eq!(
            dec(0x30, &[0x00, 0x01, b'#'], v),
            Err(DecodeError::InvalidTopicName)
        );
        assert_eq!(
            dec(0x30, &[0x00, 0x03, b'a', b'/', b'+'], v),
            Err(DecodeError::InvalidTopicName)
        );
        assert_eq!(
            dec(0x30, &[0x00, 0x00], v),
            Err(DecodeError::InvalidTopicName)
        );
        assert_eq!(
            dec(0x30, &[0x00, 0x01, 0x00], v),
            Err(DecodeError::InvalidUtf8)
        );
        assert_eq!(
            dec(0x30, &[0x00, 0x03, 0xED, 0xA0, 0x80], v),
            Err(DecodeError::InvalidUtf8)
        );
        assert_eq!(
            dec(0x30, &[0x00, 0x05, b't'], v),
            Err(DecodeError::Malformed)
        );
        let v5 = Protocol::V5;
        // Empty topic without a topic alias.
        assert_eq!(
            dec(0x30, &[0x00, 0x00, 0x00], v5),
            Err(DecodeError::ProtocolError)
        );
        // Empty topic with topic alias 1: fine.
        assert!(dec(0x30, &[0x00, 0x00, 0x03, 0x23, 0x00, 0x01], v5).is_ok());
        // Topic alias 0.
        assert_eq!(
            dec(0x30, &[0x00, 0x00, 0x03, 0x23, 0x00, 0x00], v5),
            Err(DecodeError::TopicAliasInvalid)
        );
        // Property list longer than the body.
        assert_eq!(
            dec(0x30, &[0x00, 0x01, b't', 0x05, 0x01], v5),
            Err(DecodeError::Malformed)
        );
        // Payload format indicator 2.
        assert_eq!(
            dec(0x30, &[0x00, 0x01, b't', 0x02, 0x01, 0x02], v5),
            Err(DecodeError::ProtocolError)
        );
        // Payload format 1 (UTF-8) with a non-UTF-8 payload.
        assert_eq!(
            dec(0x30, &[0x00, 0x01, b't', 0x02, 0x01, 0x01, 0xC3], v5),
            Err(DecodeError::PayloadFormatInvalid)
        );
        assert!(dec(0x30, &[0x00, 0x01, b't', 0x02, 0x01, 0x01, 0xC3, 0xA9], v5).is_ok());
        // Duplicate message expiry.
        assert_eq!(
            dec(
                0x30,
                &[0x00, 0x01, b't', 0x0A, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 1],
                v5
            ),
            Err(DecodeError::DuplicateProperty)
        );
        // Session expiry is not a PUBLISH property.
        assert_eq!(
            dec(0x30, &[0x00, 0x01, b't', 0x05, 0x11, 0, 0, 0, 1], v5),
            Err(DecodeError::InvalidProperty)
        );
        // Subscription identifier 0.
        assert_eq!(
            dec(0x30, &[0x00, 0x01, b't', 0x02, 0x0B, 0x00], v5),
            Err(DecodeError::ProtocolError)
        );
        // Response topic with a wildcard.
        assert_eq!(
            dec(0x30, &[0x00, 0x01, b't', 0x04, 0x08, 0x00, 0x01, b'+'], v5),
            Err(DecodeError::InvalidTopicName)
        );
        // Unknown property identifier.
        assert_eq!(
            dec(0x30, &[0x00, 0x01, b't', 0x02, 0x7F, 0x00], v5),
            Err(DecodeError::InvalidProperty)
        );
    }

    #[test]
    fn encode_errors() {
        let mut out = BytesMut::new();
        let mut p = sample(QoS::AtLeastOnce);
        p.packet_id = 0;
        assert_eq!(
            encode(&p, Protocol::V311, &mut out),
            Err(EncodeError::InvalidValue)
        );
        let mut p = sample(QoS::AtMostOnce);
        p.dup = true;
        assert_eq!(
            encode(&p, Protocol::V311, &mut out),
            Err(EncodeError::InvalidValue)
        );
        let mut p = sample(QoS::AtMostOnce);
        p.topic = ByteString::new();
        p.properties.topic_alias = Some(1);
        assert_eq!(
            encode(&p, Protocol::V311, &mut out),
            Err(EncodeError::InvalidValue)
        );
        p.properties.topic_alias = None;
        assert_eq!(
            encode(&p, Protocol::V5, &mut out),
            Err(EncodeError::InvalidValue)
        );
        let mut p = sample(QoS::AtMostOnce);
        p.topic = ByteString::from("t".repeat(70_000));
        assert_eq!(
            encode(&p, Protocol::V311, &mut out),
            Err(EncodeError::FieldTooLong)
        );
        assert_eq!(encoded_len(&p, Protocol::V311), usize::MAX);
        assert!(out.is_empty());
    }
}
