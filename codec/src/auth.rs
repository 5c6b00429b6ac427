//! AUTH [MQTT-3.15] (v5 only): a reason code and properties, both omitted for Success without
//! properties (3.15.2.1).

use bytes::{BufMut, Bytes, BytesMut};

use crate::primitives::{expect_end, put_fixed_header, read_u8, varint_len};
use crate::properties::PropCtx;
use crate::{Auth, DecodeError, EncodeError, Properties, Protocol};

/// 3.15.2.1: Success, Continue authentication, Re-authenticate.
const REASONS: &[u8] = &[0x00, 0x18, 0x19];

pub fn decode(mut body: Bytes) -> Result<Auth, DecodeError> {
    if body.is_empty() {
        return Ok(Auth::default());
    }
    let reason = read_u8(&mut body)?;
    if !REASONS.contains(&reason) {
        return Err(DecodeError::Malformed);
    }
    let properties = if body.is_empty() {
        Properties::default()
    } else {
        Properties::decode(&mut body, PropCtx::Auth)?
    };
    expect_end(&body)?;
    Ok(Auth { reason, properties })
}

/// AUTH does not exist before v5: encoding it for a v3 peer is refused.
pub fn encode(a: &Auth, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
    if !protocol.is_v5() {
        return Err(EncodeError::InvalidValue);
    }
    if a.reason == 0 && a.properties.is_empty() {
        out.extend_from_slice(&[0xF0, 0]);
        return Ok(());
    }
    let props_len = a.properties.content_len()?;
    put_fixed_header(out, 0xF0, 1 + varint_len(props_len) + props_len)?;
    out.put_u8(a.reason);
    a.properties.encode(props_len, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode as decode_packet, encode as encode_packet, Packet};

    fn round_trip(a: Auth) -> usize {
        let p = Packet::Auth(a);
        let mut buf = BytesMut::new();
        encode_packet(&p, Protocol::V5, &mut buf).expect("encode");
        let len = buf.len();
        assert_eq!(len, crate::encoded_len(&p, Protocol::V5));
        assert_eq!(
            decode_packet(&mut buf, Protocol::V5, usize::MAX),
            Ok(Some(p))
        );
        len
    }

    #[test]
    fn round_trips() {
        assert_eq!(round_trip(Auth::default()), 2);
        let mut a = Auth {
            reason: 0x18,
            properties: Properties::default(),
        };
        a.properties.authentication_method = Some("SCRAM-SHA-1".into());
        a.properties.authentication_data = Some(Bytes::from_static(b"client-first"));
        a.properties.reason_string = Some("more".into());
        round_trip(a);
        // Reason without properties: the property length must still be written.
        round_trip(Auth {
            reason: 0x19,
            properties: Properties::default(),
        });
    }

    #[test]
    fn vectors_and_errors() {
        let d = |b: &'static [u8]| decode(Bytes::from_static(b));
        assert_eq!(d(&[]), Ok(Auth::default()));
        assert_eq!(d(&[0x18, 0x00]).map(|a| a.reason), Ok(0x18));
        assert_eq!(d(&[0x18]).map(|a| a.reason), Ok(0x18));
        assert_eq!(d(&[0x01, 0x00]), Err(DecodeError::Malformed));
        assert_eq!(d(&[0x18, 0x00, 0x00]), Err(DecodeError::Malformed));
        assert_eq!(
            d(&[0x18, 0x02, 0x11, 0x00]),
            Err(DecodeError::InvalidProperty)
        );
        let mut b = BytesMut::from(&[0xF0, 0x00][..]);
        assert_eq!(
            decode_packet(&mut b, Protocol::V311, 100),
            Err(DecodeError::UnknownPacketType)
        );
        let mut out = BytesMut::new();
        assert_eq!(
            encode(&Auth::default(), Protocol::V311, &mut out),
            Err(EncodeError::InvalidValue)
        );
    }
}
