//! UNSUBSCRIBE [MQTT-3.10] and UNSUBACK [MQTT-3.11]: a packet identifier, v5 properties, and
//! the filters to drop or (v5 only) one reason code per filter.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::primitives::{
    expect_end, put_fixed_header, put_str, read_packet_id, read_string, str_wire_len, varint_len,
};
use crate::properties::PropCtx;
use crate::subscribe::check_filter;
use crate::{DecodeError, EncodeError, Properties, Protocol, UnsubAck, Unsubscribe};

/// 3.11.3 (5.0) UNSUBACK reason codes.
const V5_CODES: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];

pub fn decode_unsubscribe(mut body: Bytes, protocol: Protocol) -> Result<Unsubscribe, DecodeError> {
    let packet_id = read_packet_id(&mut body)?;
    let properties = if protocol.is_v5() {
        Properties::decode(&mut body, PropCtx::Unsubscribe)?
    } else {
        Properties::default()
    };
    let mut filters: Vec<ByteString> = Vec::new();
    while !body.is_empty() {
        let filter = read_string(&mut body)?;
        check_filter(&filter, protocol)?;
        filters.push(filter);
    }
    // [MQTT-3.10.3-2]: at least one topic filter.
    if filters.is_empty() {
        return Err(DecodeError::NoTopicFilters);
    }
    Ok(Unsubscribe {
        packet_id,
        properties,
        filters,
    })
}

pub fn encode_unsubscribe(
    u: &Unsubscribe,
    protocol: Protocol,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    if u.packet_id == 0 || u.filters.is_empty() {
        return Err(EncodeError::InvalidValue);
    }
    let mut remaining = 2;
    let mut props_len = 0;
    if protocol.is_v5() {
        props_len = u.properties.content_len()?;
        remaining += varint_len(props_len) + props_len;
    }
    for f in &u.filters {
        remaining += str_wire_len(f.len())?;
    }
    // [MQTT-3.10.1-1]: UNSUBSCRIBE's fixed-header flags are 0b0010.
    put_fixed_header(out, 0xA2, remaining)?;
    out.put_u16(u.packet_id);
    if protocol.is_v5() {
        u.properties.encode(props_len, out);
    }
    for f in &u.filters {
        put_str(out, f);
    }
    Ok(())
}

pub fn decode_unsuback(mut body: Bytes, protocol: Protocol) -> Result<UnsubAck, DecodeError> {
    let packet_id = read_packet_id(&mut body)?;
    if !protocol.is_v5() {
        // 3.11 (3.1.1): remaining length is exactly 2, no payload.
        expect_end(&body)?;
        return Ok(UnsubAck {
            packet_id,
            ..UnsubAck::default()
        });
    }
    let properties = Properties::decode(&mut body, PropCtx::UnsubAck)?;
    // [MQTT-3.11.3-1]: one reason code per filter of the UNSUBSCRIBE, so at least one.
    if body.is_empty() || body.iter().any(|c| !V5_CODES.contains(c)) {
        return Err(DecodeError::Malformed);
    }
    Ok(UnsubAck {
        packet_id,
        properties,
        codes: body.to_vec(),
    })
}

/// v3 UNSUBACK carries no codes: they are silently dropped, like properties.
pub fn encode_unsuback(
    u: &UnsubAck,
    protocol: Protocol,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    if u.packet_id == 0 {
        return Err(EncodeError::InvalidValue);
    }
    if !protocol.is_v5() {
        out.extend_from_slice(&[0xB0, 2]);
        out.put_u16(u.packet_id);
        return Ok(());
    }
    if u.codes.is_empty() {
        return Err(EncodeError::InvalidValue);
    }
    let props_len = u.properties.content_len()?;
    let remaining = 2 + varint_len(props_len) + props_len + u.codes.len();
    put_fixed_header(out, 0xB0, remaining)?;
    out.put_u16(u.packet_id);
    u.properties.encode(props_len, out);
    out.put_slice(&u.codes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode as decode_packet, encode as encode_packet, Packet};

    fn round_trip(p: Packet, protocol: Protocol) {
        let mut buf = BytesMut::new();
        encode_packet(&p, protocol, &mut buf).expect("encode");
        assert_eq!(buf.len(), crate::encoded_len(&p, protocol));
        assert_eq!(decode_packet(&mut buf, protocol, usize::MAX), Ok(Some(p)));
        assert!(buf.is_empty());
    }

    #[test]
    fn round_trips() {
        for protocol in [Protocol::V310, Protocol::V311, Protocol::V5] {
            let mut u = Unsubscribe {
                packet_id: 2,
                properties: Properties::default(),
                filters: vec!["a/+".into(), "#".into(), "$share/g/x".into()],
            };
            if protocol.is_v5() {
                u.properties.user_properties.push(("k".into(), "v".into()));
            }
            round_trip(Packet::Unsubscribe(u), protocol);
            let mut a = UnsubAck {
                packet_id: 2,
                ..UnsubAck::default()
            };
            if protocol.is_v5() {
                a.codes = vec![0x00, 0x11, 0x87];
                a.properties.reason_string = Some("r".into());
            }
            round_trip(Packet::UnsubAck(a), protocol);
        }
    }

    #[test]
    fn vectors_and_errors() {
        let du = |b: &'static [u8], p| decode_unsubscribe(Bytes::from_static(b), p);
        let da = |b: &'static [u8], p| decode_unsuback(Bytes::from_static(b), p);
        let (v3, v5) = (Protocol::V311, Protocol::V5);
        assert_eq!(
            du(&[0, 1, 0, 1, b'a'], v3),
            Ok(Unsubscribe {
                packet_id: 1,
                properties: Properties::default(),
                filters: vec!["a".into()]
            })
        );
        assert_eq!(du(&[0, 1], v3), Err(DecodeError::NoTopicFilters));
        assert_eq!(du(&[0, 1, 0], v5), Err(DecodeError::NoTopicFilters));
        assert_eq!(du(&[0, 0, 0, 1, b'a'], v3), Err(DecodeError::ZeroPacketId));
        assert_eq!(
            du(&[0, 1, 0, 2, b'a', b'+'], v3),
            Err(DecodeError::InvalidTopicFilter)
        );
        assert_eq!(du(&[0, 1, 0, 1], v3), Err(DecodeError::Malformed));
        assert_eq!(
            du(&[0, 1, 2, 0x0B, 1, 0, 1, b'a'], v5),
            Err(DecodeError::InvalidProperty)
        );
        let mut b = BytesMut::from(&[0xA0, 0x05, 0, 1, 0, 1, b'a'][..]);
        assert_eq!(
            decode_packet(&mut b, v3, 100),
            Err(DecodeError::ReservedFlags)
        );

        assert_eq!(
            da(&[0, 1], v3),
            Ok(UnsubAck {
                packet_id: 1,
                ..UnsubAck::default()
            })
        );
        assert_eq!(da(&[0, 1, 0], v3), Err(DecodeError::Malformed));
        assert_eq!(da(&[0, 1, 0], v5), Err(DecodeError::Malformed));
        assert_eq!(da(&[0, 1, 0, 0x12], v5), Err(DecodeError::Malformed));
        assert_eq!(
            da(&[0, 1, 0, 0x11], v5),
            Ok(UnsubAck {
                packet_id: 1,
                properties: Properties::default(),
                codes: vec![0x11]
            })
        );
    }
}
