//! PUBACK, PUBREC, PUBREL and PUBCOMP [MQTT-3.4..3.7]: a packet identifier and, in v5, a reason
//! code and properties that may both be left off the wire (3.4.2.1).

use bytes::{BufMut, Bytes, BytesMut};

use crate::primitives::{expect_end, put_fixed_header, read_packet_id, read_u8, varint_len};
use crate::properties::PropCtx;
use crate::{Ack, DecodeError, EncodeError, PacketType, Properties, Protocol};

/// Reason codes a PUBACK / PUBREC may carry (3.4.2.1, 3.5.2.1).
const PUBACK_REASONS: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
/// Reason codes a PUBREL / PUBCOMP may carry (3.6.2.1, 3.7.2.1).
const PUBREL_REASONS: &[u8] = &[0x00, 0x92];

fn reasons(kind: PacketType) -> &'static [u8] {
    match kind {
        PacketType::PubRel | PacketType::PubComp => PUBREL_REASONS,
        _ => PUBACK_REASONS,
    }
}

fn header(kind: PacketType) -> u8 {
    match kind {
        PacketType::PubAck => 0x40,
        PacketType::PubRec => 0x50,
        // [MQTT-3.6.1-1]: PUBREL's fixed-header flags are 0b0010.
        PacketType::PubRel => 0x62,
        _ => 0x70,
    }
}

pub fn decode(kind: PacketType, mut body: Bytes, protocol: Protocol) -> Result<Ack, DecodeError> {
    // [MQTT-2.2.1-3]: non-zero packet identifier.
    let packet_id = read_packet_id(&mut body)?;
    if !protocol.is_v5() {
        expect_end(&body)?;
        return Ok(Ack {
            packet_id,
            ..Ack::default()
        });
    }
    // 3.4.2.1: remaining length 2 means reason 0x00 and no properties; remaining length 3
    // means a reason code and no properties.
    if body.is_empty() {
        return Ok(Ack {
            packet_id,
            ..Ack::default()
        });
    }
    let reason = read_u8(&mut body)?;
    if !reasons(kind).contains(&reason) {
        return Err(DecodeError::Malformed);
    }
    let properties = if body.is_empty() {
        Properties::default()
    } else {
        Properties::decode(&mut body, PropCtx::Ack)?
    };
    expect_end(&body)?;
    Ok(Ack {
        packet_id,
        reason,
        properties,
    })
}

/// Encode in the shortest legal form: v3 and v5 success-without-properties take two bytes, a v5
/// reason without properties three.
pub fn encode(
    kind: PacketType,
    a: &Ack,
    protocol: Protocol,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    if a.packet_id == 0 {
        return Err(EncodeError::InvalidValue);
    }
    let h = header(kind);
    if !protocol.is_v5() || (a.reason == 0 && a.properties.is_empty()) {
        out.extend_from_slice(&[h, 2]);
        out.put_u16(a.packet_id);
        return Ok(());
    }
    if a.properties.is_empty() {
        out.extend_from_slice(&[h, 3]);
        out.put_u16(a.packet_id);
        out.put_u8(a.reason);
        return Ok(());
    }
    let props_len = a.properties.content_len()?;
    let remaining = 3 + varint_len(props_len) + props_len;
    put_fixed_header(out, h, remaining)?;
    out.put_u16(a.packet_id);
    out.put_u8(a.reason);
    a.properties.encode(props_len, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode as decode_packet, encode as encode_packet, Packet};

    const KINDS: [PacketType; 4] = [
        PacketType::PubAck,
        PacketType::PubRec,
        PacketType::PubRel,
        PacketType::PubComp,
    ];

    fn wrap(kind: PacketType, a: Ack) -> Packet {
        match kind {
            PacketType::PubAck => Packet::PubAck(a),
            PacketType::PubRec => Packet::PubRec(a),
            PacketType::PubRel => Packet::PubRel(a),
            _ => Packet::PubComp(a),
        }
    }

    fn round_trip(p: Packet, protocol: Protocol) -> usize {
        let mut buf = BytesMut::new();
        encode_packet(&p, protocol, &mut buf).expect("encode");
        let len = buf.len();
        assert_eq!(len, crate::encoded_len(&p, protocol));
        assert_eq!(decode_packet(&mut buf, protocol, usize::MAX), Ok(Some(p)));
        assert!(buf.is_empty());
        len
    }

    #[test]
    fn round_trips() {
        for kind in KINDS {
            for protocol in [Protocol::V310, Protocol::V311, Protocol::V5] {
                let a = Ack {
                    packet_id: 7,
                    ..Ack::default()
                };
                assert_eq!(round_trip(wrap(kind, a), protocol), 4);
            }
            let reason = reasons(kind)[1];
            let a = Ack {
                packet_id: 65_535,
                reason,
                properties: Properties::default(),
            };
            assert_eq!(round_trip(wrap(kind, a.clone()), Protocol::V5), 5);
            let mut a = a;
            a.properties.reason_string = Some("because".into());
            a.properties.user_properties.push(("k".into(), "v".into()));
            round_trip(wrap(kind, a), Protocol::V5);
        }
    }

    #[test]
    fn spec_vectors() {
        let mut b = BytesMut::from(&[0x62, 0x02, 0x00, 0x05][..]);
        assert_eq!(
            decode_packet(&mut b, Protocol::V311, 100),
            Ok(Some(Packet::PubRel(Ack {
                packet_id: 5,
                ..Ack::default()
            })))
        );
        // v5 PUBACK with reason 0x10 and an empty property list.
        let a = decode(
            PacketType::PubAck,
            Bytes::from_static(&[0, 1, 0x10, 0x00]),
            Protocol::V5,
        );
        assert_eq!(
            a,
            Ok(Ack {
                packet_id: 1,
                reason: 0x10,
                properties: Properties::default()
            })
        );
    }

    #[test]
    fn errors() {
        let d = |kind, b: &'static [u8], p| decode(kind, Bytes::from_static(b), p);
        assert_eq!(
            d(PacketType::PubAck, &[0, 0], Protocol::V311),
            Err(DecodeError::ZeroPacketId)
        );
        assert_eq!(
            d(PacketType::PubAck, &[0], Protocol::V311),
            Err(DecodeError::Malformed)
        );
        assert_eq!(
            d(PacketType::PubAck, &[0, 1, 0], Protocol::V311),
            Err(DecodeError::Malformed)
        );
        assert_eq!(
            d(PacketType::PubAck, &[0, 1, 0x92], Protocol::V5),
            Err(DecodeError::Malformed)
        );
        assert_eq!(
            d(PacketType::PubRel, &[0, 1, 0x10], Protocol::V5),
            Err(DecodeError::Malformed)
        );
        assert_eq!(
            d(PacketType::PubAck, &[0, 1, 0, 0, 0], Protocol::V5),
            Err(DecodeError::Malformed)
        );
        assert_eq!(
            d(PacketType::PubAck, &[0, 1, 0, 2, 0x23, 0], Protocol::V5),
            Err(DecodeError::InvalidProperty)
        );
        // Reserved flags are checked by the dispatcher.
        let mut b = BytesMut::from(&[0x60, 0x02, 0x00, 0x05][..]);
        assert_eq!(
            decode_packet(&mut b, Protocol::V311, 100),
            Err(DecodeError::ReservedFlags)
        );
        let mut b = BytesMut::from(&[0x42, 0x02, 0x00, 0x05][..]);
        assert_eq!(
            decode_packet(&mut b, Protocol::V311, 100),
            Err(DecodeError::ReservedFlags)
        );
        let mut out = BytesMut::new();
        assert_eq!(
            encode(PacketType::PubAck, &Ack::default(), Protocol::V5, &mut out),
            Err(EncodeError::InvalidValue)
        );
    }
}
