//! SUBSCRIBE [MQTT-3.8]: packet identifier, v5 properties, and a non-empty list of topic
//! filters each followed by a subscription options byte.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::primitives::{
    put_fixed_header, put_str, read_packet_id, read_string, read_u8, str_wire_len, varint_len,
};
use crate::properties::PropCtx;
use crate::topic::{is_valid_topic_filter, split_shared};
use crate::{DecodeError, EncodeError, Properties, Protocol, QoS, SubOptions, Subscribe};

/// Check a topic filter of a (UN)SUBSCRIBE [MQTT-4.7.1-1..3]. In v5 a `$share/` filter must be a
/// well-formed shared subscription [MQTT-4.8.2-1..2]; v3 has no shared subscriptions, so there
/// it is an ordinary filter. Returns whether the filter is shared.
pub(crate) fn check_filter(filter: &str, protocol: Protocol) -> Result<bool, DecodeError> {
    if protocol.is_v5() {
        match split_shared(filter) {
            Some(Ok(_)) => return Ok(true),
            Some(Err(())) => return Err(DecodeError::InvalidTopicFilter),
            None => {}
        }
    }
    if is_valid_topic_filter(filter) {
        Ok(false)
    } else {
        Err(DecodeError::InvalidTopicFilter)
    }
}

fn decode_options(byte: u8, protocol: Protocol) -> Result<SubOptions, DecodeError> {
    // [MQTT-3-8.3-4] (3.1.1): the upper six bits are reserved; [MQTT-3.8.3-5] (5.0): bits 6-7.
    let reserved = if protocol.is_v5() { 0xC0 } else { 0xFC };
    if byte & reserved != 0 {
        return Err(DecodeError::InvalidSubscriptionOptions);
    }
    // [MQTT-3.8.3-4] (5.0) / [MQTT-3-8.3-4]: QoS 3 is malformed.
    let qos = QoS::from_u8(byte & 0x03).ok_or(DecodeError::InvalidQoS)?;
    let retain_handling = (byte >> 4) & 0x03;
    // 3.8.3.1: Retain Handling 3 is a Protocol Error.
    if retain_handling == 3 {
        return Err(DecodeError::ProtocolError);
    }
    Ok(SubOptions {
        qos,
        no_local: byte & 0x04 != 0,
        retain_as_published: byte & 0x08 != 0,
        retain_handling,
    })
}

fn encode_options(o: &SubOptions, protocol: Protocol) -> Result<u8, EncodeError> {
    if !protocol.is_v5() {
        return Ok(o.qos as u8);
    }
    if o.retain_handling > 2 {
        return Err(EncodeError::InvalidValue);
    }
    Ok(o.qos as u8
        | (u8::from(o.no_local) << 2)
        | (u8::from(o.retain_as_published) << 3)
        | (o.retain_handling << 4))
}

pub fn decode(mut body: Bytes, protocol: Protocol) -> Result<Subscribe, DecodeError> {
    let packet_id = read_packet_id(&mut body)?;
    let properties = if protocol.is_v5() {
        Properties::decode(&mut body, PropCtx::Subscribe)?
    } else {
        Properties::default()
    };
    let mut filters: Vec<(ByteString, SubOptions)> = Vec::new();
    while !body.is_empty() {
        let filter = read_string(&mut body)?;
        let options = decode_options(read_u8(&mut body)?, protocol)?;
        let shared = check_filter(&filter, protocol)?;
        // [MQTT-3.8.3-4]: No Local on a shared subscription is a Protocol Error.
        if shared && options.no_local {
            return Err(DecodeError::ProtocolError);
        }
        filters.push((filter, options));
    }
    // [MQTT-3.8.3-3]: at least one topic filter.
    if filters.is_empty() {
        return Err(DecodeError::NoTopicFilters);
    }
    Ok(Subscribe {
        packet_id,
        properties,
        filters,
    })
}

pub fn encode(s: &Subscribe, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
    if s.packet_id == 0 || s.filters.is_empty() {
        return Err(EncodeError::InvalidValue);
    }
    let mut remaining = 2;
    let mut props_len = 0;
    if protocol.is_v5() {
        props_len = s.properties.content_len()?;
        remaining += varint_len(props_len) + props_len;
    }
    for (f, o) in &s.filters {
        encode_options(o, protocol)?;
        remaining += str_wire_len(f.len())? + 1;
    }
    // [MQTT-3.8.1-1]: SUBSCRIBE's fixed-header flags are 0b0010.
    put_fixed_header(out, 0x82, remaining)?;
    out.put_u16(s.packet_id);
    if protocol.is_v5() {
        s.properties.encode(props_len, out);
    }
    for (f, o) in &s.filters {
        put_str(out, f);
        out.put_u8(encode_options(o, protocol)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode as decode_packet, encode as encode_packet, Packet};

    fn round_trip(s: Subscribe, protocol: Protocol) {
        let p = Packet::Subscribe(s);
        let mut buf = BytesMut::new();
        encode_packet(&p, protocol, &mut buf).expect("encode");
        assert_eq!(buf.len(), crate::encoded_len(&p, protocol));
        assert_eq!(decode_packet(&mut buf, protocol, usize::MAX), Ok(Some(p)));
        assert!(buf.is_empty());
    }

    fn opts(qos: QoS) -> SubOptions {
        SubOptions {
            qos,
            ..SubOptions::default()
        }
    }

    #[test]
    fn round_trips() {
        for protocol in [Protocol::V310, Protocol::V311, Protocol::V5] {
            round_trip(
                Subscribe {
                    packet_id: 1,
                    properties: Properties::default(),
                    filters: vec![
                        ("a/+/c".into(), opts(QoS::AtMostOnce)),
                        ("#".into(), opts(QoS::AtLeastOnce)),
                        (
                            // A shared subscription in v5, a plain filter in v3.
                            if protocol.is_v5() {
                                "$share/g/x"
                            } else {
                                "$share/x"
                            }
                            .into(),
                            opts(QoS::ExactlyOnce),
                        ),
                    ],
                },
                protocol,
            );
        }
        let mut s = Subscribe {
            packet_id: 9,
            properties: Properties::default(),
            filters: vec![
                (
                    "a/b".into(),
                    SubOptions {
                        qos: QoS::AtLeastOnce,
                        no_local: true,
                        retain_as_published: true,
                        retain_handling: 2,
                    },
                ),
                (
                    "$share/g/a/#".into(),
                    SubOptions {
                        retain_handling: 1,
                        ..opts(QoS::ExactlyOnce)
                    },
                ),
            ],
        };
        s.properties.subscription_identifiers.push(77);
        s.properties.user_properties.push(("k".into(), "v".into()));
        round_trip(s, Protocol::V5);
    }

    #[test]
    fn spec_vector() {
        let b = Bytes::from_static(&[0x00, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x01]);
        let s = decode(b, Protocol::V311).expect("decode");
        assert_eq!(s.packet_id, 10);
        assert_eq!(s.filters, vec![("a/b".into(), opts(QoS::AtLeastOnce))]);
    }

    #[test]
    fn errors() {
        let d = |b: &'static [u8], p| decode(Bytes::from_static(b), p);
        let (v3, v5) = (Protocol::V311, Protocol::V5);
        assert_eq!(
            d(&[0, 0, 0, 1, b'a', 0], v3),
            Err(DecodeError::ZeroPacketId)
        );
        assert_eq!(d(&[0, 1], v3), Err(DecodeError::NoTopicFilters));
        assert_eq!(d(&[0, 1, 0], v5), Err(DecodeError::NoTopicFilters));
        assert_eq!(d(&[0, 1, 0, 1, b'a'], v3), Err(DecodeError::Malformed));
        assert_eq!(d(&[0, 1, 0, 1, b'a', 3], v3), Err(DecodeError::InvalidQoS));
        assert_eq!(
            d(&[0, 1, 0, 1, b'a', 4], v3),
            Err(DecodeError::InvalidSubscriptionOptions)
        );
        assert_eq!(
            d(&[0, 1, 0, 0, 1, b'a', 3], v5),
            Err(DecodeError::InvalidQoS)
        );
        assert_eq!(
            d(&[0, 1, 0, 0, 1, b'a', 0x40], v5),
            Err(DecodeError::InvalidSubscriptionOptions)
        );
        assert_eq!(
            d(&[0, 1, 0, 0, 1, b'a', 0x30], v5),
            Err(DecodeError::ProtocolError)
        );
        assert!(d(&[0, 1, 0, 0, 1, b'a', 0x2C], v5).is_ok());
        assert_eq!(
            d(&[0, 1, 0, 2, b'a', b'#', 0], v3),
            Err(DecodeError::InvalidTopicFilter)
        );
        assert_eq!(
            d(&[0, 1, 0, 0, 0], v3),
            Err(DecodeError::InvalidTopicFilter)
        );
        assert_eq!(d(&[0, 1, 0, 1, 0, 0], v3), Err(DecodeError::InvalidUtf8));
        // "$share/g": malformed shared subscription in v5, an ordinary filter in v3.
        let share: &'static [u8] = &[
            0, 1, 0, 0, 8, b'$', b's', b'h', b'a', b'r', b'e', b'/', b'g', 0,
        ];
        assert_eq!(d(share, v5), Err(DecodeError::InvalidTopicFilter));
        let share3: &'static [u8] = &[
            0, 1, 0, 8, b'$', b's', b'h', b'a', b'r', b'e', b'/', b'g', 0,
        ];
        assert!(d(share3, v3).is_ok());
        // No Local on a shared subscription.
        let nl: &'static [u8] = &[
            0, 1, 0, 0, 10, b'$', b's', b'h', b'a', b'r', b'e', b'/', b'g', b'/', b'a', 4,
        ];
        assert_eq!(d(nl, v5), Err(DecodeError::ProtocolError));
        // Two subscription identifiers, or subscription identifier 0.
        assert_eq!(
            d(&[0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, b'a', 0], v5),
            Err(DecodeError::DuplicateProperty)
        );
        assert_eq!(
            d(&[0, 1, 2, 0x0B, 0, 0, 1, b'a', 0], v5),
            Err(DecodeError::ProtocolError)
        );
        assert_eq!(
            d(&[0, 1, 2, 0x1F, 0, 0, 1, b'a', 0], v5),
            Err(DecodeError::InvalidProperty)
        );
        // Wrong fixed-header flags.
        let mut b = BytesMut::from(&[0x80, 0x06, 0, 1, 0, 1, b'a', 0][..]);
        assert_eq!(
            decode_packet(&mut b, v3, 100),
            Err(DecodeError::ReservedFlags)
        );
    }
}
