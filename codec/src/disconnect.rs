//! DISCONNECT [MQTT-3.14]: empty in v3; in v5 a reason code and properties, both omitted when
//! the reason is Normal disconnection (0x00) without properties (3.14.2.1).

use bytes::{BufMut, Bytes, BytesMut};

use crate::primitives::{expect_end, put_fixed_header, read_u8, varint_len};
use crate::properties::PropCtx;
use crate::{DecodeError, Disconnect, EncodeError, Properties, Protocol};

/// 3.14.2.1 reason codes.
const REASONS: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];

pub fn decode(mut body: Bytes, protocol: Protocol) -> Result<Disconnect, DecodeError> {
    // v3: remaining length 0 [MQTT-3.14.1-1 is about flags; 3.14.2: no variable header].
    // v5: remaining length 0 means reason 0x00, 1 means a reason without properties.
    if !protocol.is_v5() || body.is_empty() {
        expect_end(&body)?;
        return Ok(Disconnect::default());
    }
    let reason = read_u8(&mut body)?;
    if !REASONS.contains(&reason) {
        return Err(DecodeError::Malformed);
    }
    let properties = if body.is_empty() {
        Properties::default()
    } else {
        Properties::decode(&mut body, PropCtx::Disconnect)?
    };
    expect_end(&body)?;
    Ok(Disconnect { reason, properties })
}

pub fn encode(d: &Disconnect, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
    if !protocol.is_v5() || (d.reason == 0 && d.properties.is_empty()) {
        out.extend_from_slice(&[0xE0, 0]);
        return Ok(());
    }
    if d.properties.is_empty() {
        out.extend_from_slice(&[0xE0, 1, d.reason]);
        return Ok(());
    }
    let props_len = d.properties.content_len()?;
    put_fixed_header(out, 0xE0, 1 + varint_len(props_len) + props_len)?;
    out.put_u8(d.reason);
    d.properties.encode(props_len, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode as decode_packet, encode as encode_packet, Packet};

    fn round_trip(d: Disconnect, protocol: Protocol) -> usize {
        let p = Packet::Disconnect(d);
        let mut buf = BytesMut::new();
        encode_packet(&p, protocol, &mut buf).expect("encode");
        let len = buf.len();
        assert_eq!(len, crate::encoded_len(&p, protocol));
        assert_eq!(decode_packet(&mut buf, protocol, usize::MAX), Ok(Some(p)));
        len
    }

    #[test]
    fn round_trips() {
        for protocol in [Protocol::V310, Protocol::V311, Protocol::V5] {
            assert_eq!(round_trip(Disconnect::default(), protocol), 2);
        }
        let d = Disconnect {
            reason: 0x04,
            properties: Properties::default(),
        };
        assert_eq!(round_trip(d.clone(), Protocol::V5), 3);
        let mut d = d;
        d.properties.session_expiry_interval_s = Some(0);
        d.properties.reason_string = Some("bye".into());
        d.properties.server_reference = Some("elsewhere".into());
        round_trip(d, Protocol::V5);
    }

    #[test]
    fn vectors_and_errors() {
        let d = |b: &'static [u8], p| decode(Bytes::from_static(b), p);
        assert_eq!(d(&[], Protocol::V311), Ok(Disconnect::default()));
        assert_eq!(d(&[0], Protocol::V311), Err(DecodeError::Malformed));
        assert_eq!(
            d(&[0x8E], Protocol::V5),
            Ok(Disconnect {
                reason: 0x8E,
                properties: Properties::default()
            })
        );
        assert_eq!(d(&[0x01], Protocol::V5), Err(DecodeError::Malformed));
        assert_eq!(d(&[0, 0, 0], Protocol::V5), Err(DecodeError::Malformed));
        assert_eq!(
            d(&[0, 2, 0x21, 0], Protocol::V5),
            Err(DecodeError::InvalidProperty)
        );
        let mut b = BytesMut::from(&[0xE1, 0x00][..]);
        assert_eq!(
            decode_packet(&mut b, Protocol::V5, 100),
            Err(DecodeError::ReservedFlags)
        );
    }
}
