//! SUBACK [MQTT-3.9]: packet identifier, v5 properties, and one return / reason code per
//! filter of the SUBSCRIBE it answers.

use bytes::{BufMut, Bytes, BytesMut};

use crate::primitives::{put_fixed_header, read_packet_id, varint_len};
use crate::properties::PropCtx;
use crate::{DecodeError, EncodeError, Properties, Protocol, SubAck};

/// [MQTT-3.9.3-2] (3.1.1): granted QoS 0..=2 or 0x80 failure.
const V3_CODES: &[u8] = &[0x00, 0x01, 0x02, 0x80];
/// 3.9.3 (5.0) reason codes.
const V5_CODES: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];

pub fn decode(mut body: Bytes, protocol: Protocol) -> Result<SubAck, DecodeError> {
    let packet_id = read_packet_id(&mut body)?;
    let (properties, valid) = if protocol.is_v5() {
        (Properties::decode(&mut body, PropCtx::SubAck)?, V5_CODES)
    } else {
        (Properties::default(), V3_CODES)
    };
    // One code per filter, and a SUBSCRIBE has at least one filter.
    if body.is_empty() || body.iter().any(|c| !valid.contains(c)) {
        return Err(DecodeError::Malformed);
    }
    Ok(SubAck {
        packet_id,
        properties,
        codes: body.to_vec(),
    })
}

pub fn encode(s: &SubAck, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
    if s.packet_id == 0 || s.codes.is_empty() {
        return Err(EncodeError::InvalidValue);
    }
    let mut remaining = 2 + s.codes.len();
    let mut props_len = 0;
    if protocol.is_v5() {
        props_len = s.properties.content_len()?;
        remaining += varint_len(props_len) + props_len;
    }
    put_fixed_header(out, 0x90, remaining)?;
    out.put_u16(s.packet_id);
    if protocol.is_v5() {
        s.properties.encode(props_len, out);
    }
    out.put_slice(&s.codes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode as decode_packet, encode as encode_packet, Packet};

    fn round_trip(s: SubAck, protocol: Protocol) {
        let p = Packet::SubAck(s);
        let mut buf = BytesMut::new();
        encode_packet(&p, protocol, &mut buf).expect("encode");
        assert_eq!(buf.len(), crate::encoded_len(&p, protocol));
        assert_eq!(decode_packet(&mut buf, protocol, usize::MAX), Ok(Some(p)));
        assert!(buf.is_empty());
    }

    #[test]
    fn round_trips() {
        for protocol in [Protocol::V310, Protocol::V311, Protocol::V5] {
            round_trip(
                SubAck {
                    packet_id: 3,
                    properties: Properties::default(),
                    codes: vec![0, 1, 2, 0x80],
                },
                protocol,
            );
        }
        let mut s = SubAck {
            packet_id: 3,
            properties: Properties::default(),
            codes: vec![0x97, 0xA2, 0x01],
        };
        s.properties.reason_string = Some("quota".into());
        round_trip(s, Protocol::V5);
    }

    #[test]
    fn vectors_and_errors() {
        let d = |b: &'static [u8], p| decode(Bytes::from_static(b), p);
        assert_eq!(
            d(&[0, 5, 0x00, 0x80], Protocol::V311),
            Ok(SubAck {
                packet_id: 5,
                properties: Properties::default(),
                codes: vec![0, 0x80]
            })
        );
        assert_eq!(d(&[0, 5], Protocol::V311), Err(DecodeError::Malformed));
        assert_eq!(d(&[0, 5, 3], Protocol::V311), Err(DecodeError::Malformed));
        assert_eq!(
            d(&[0, 5, 0x97], Protocol::V311),
            Err(DecodeError::Malformed)
        );
        assert!(d(&[0, 5, 0, 0x97], Protocol::V5).is_ok());
        assert_eq!(
            d(&[0, 5, 0, 0x04], Protocol::V5),
            Err(DecodeError::Malformed)
        );
        assert_eq!(
            d(&[0, 0, 0], Protocol::V311),
            Err(DecodeError::ZeroPacketId)
        );
        assert_eq!(
            d(&[0, 5, 2, 0x0B, 1, 0], Protocol::V5),
            Err(DecodeError::InvalidProperty)
        );
    }
}
