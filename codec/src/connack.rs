//! CONNACK [MQTT-3.2]: acknowledge flags (session present), the v3 return code or v5 reason
//! code, and in v5 the server's properties.

use bytes::{BufMut, Bytes, BytesMut};

use crate::primitives::{expect_end, put_fixed_header, read_u8, varint_len};
use crate::properties::PropCtx;
use crate::{ConnAck, DecodeError, EncodeError, Properties, Protocol};

/// v5 CONNACK reason codes (3.2.2.2).
const V5_REASONS: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];

pub fn decode(mut body: Bytes, protocol: Protocol) -> Result<ConnAck, DecodeError> {
    let flags = read_u8(&mut body)?;
    // MQTT 3.1 reserves the whole byte and gives it no meaning, so it is ignored; 3.1.1 and
    // 5.0 keep bits 7-1 reserved [MQTT-3.2.2-1].
    let session_present = match protocol {
        Protocol::V310 => false,
        _ if flags & 0xFE != 0 => return Err(DecodeError::Malformed),
        _ => flags & 0x01 != 0,
    };
    let code = read_u8(&mut body)?;
    let properties = if protocol.is_v5() {
        if !V5_REASONS.contains(&code) {
            return Err(DecodeError::Malformed);
        }
        Properties::decode(&mut body, PropCtx::ConnAck)?
    } else {
        // 3.1.1 table 3.1: return codes 0..=5.
        if code > 5 {
            return Err(DecodeError::Malformed);
        }
        Properties::default()
    };
    // [MQTT-3.2.2-4] / [MQTT-3.2.2-6]: a refused connection has no session.
    if code != 0 && session_present {
        return Err(DecodeError::Malformed);
    }
    expect_end(&body)?;
    Ok(ConnAck {
        session_present,
        code,
        properties,
    })
}

/// MQTT 3.1 has no session-present flag (the byte is reserved), so it is written only for
/// 3.1.1 and 5.0.
pub fn encode(c: &ConnAck, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
    let flags = u8::from(c.session_present && protocol != Protocol::V310);
    if !protocol.is_v5() {
        out.extend_from_slice(&[0x20, 2, flags, c.code]);
        return Ok(());
    }
    let props_len = c.properties.content_len()?;
    put_fixed_header(out, 0x20, 2 + varint_len(props_len) + props_len)?;
    out.put_u8(flags);
    out.put_u8(c.code);
    c.properties.encode(props_len, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode as decode_packet, encode as encode_packet, Packet};

    fn round_trip(c: ConnAck, protocol: Protocol) {
        let p = Packet::ConnAck(c);
        let mut buf = BytesMut::new();
        encode_packet(&p, protocol, &mut buf).expect("encode");
        assert_eq!(buf.len(), crate::encoded_len(&p, protocol));
        assert_eq!(decode_packet(&mut buf, protocol, usize::MAX), Ok(Some(p)));
        assert!(buf.is_empty());
    }

    #[test]
    fn round_trips() {
        for protocol in [Protocol::V310, Protocol::V311, Protocol::V5] {
            round_trip(ConnAck::default(), protocol);
            round_trip(
                ConnAck {
                    code: if protocol.is_v5() { 0x84 } else { 1 },
                    ..ConnAck::default()
                },
                protocol,
            );
        }
        for protocol in [Protocol::V311, Protocol::V5] {
            round_trip(
                ConnAck {
                    session_present: true,
                    ..ConnAck::default()
                },
                protocol,
            );
        }
        let mut c = ConnAck::default();
        let p = &mut c.properties;
        p.session_expiry_interval_s = Some(0);
        p.assigned_client_identifier = Some("auto-1".into());
        p.server_keep_alive_s = Some(30);
        p.receive_maximum = Some(100);
        p.topic_alias_maximum = Some(10);
        p.maximum_qos = Some(1);
        p.retain_available = Some(0);
        p.maximum_packet_size = Some(65_536);
        p.wildcard_subscription_available = Some(1);
        p.subscription_identifier_available = Some(1);
        p.shared_subscription_available = Some(1);
        p.reason_string = Some("ok".into());
        p.response_information = Some("resp".into());
        p.server_reference = Some("other".into());
        p.authentication_method = Some("m".into());
        p.authentication_data = Some(Bytes::from_static(b"d"));
        p.user_properties.push(("k".into(), "v".into()));
        round_trip(c, Protocol::V5);
    }

    #[test]
    fn v310_has_no_session_present() {
        let mut out = BytesMut::new();
        let c = ConnAck {
            session_present: true,
            ..ConnAck::default()
        };
        encode(&c, Protocol::V310, &mut out).expect("encode");
        assert_eq!(&out[..], &[0x20, 2, 0, 0]);
        let c = decode(Bytes::from_static(&[0xFF, 0x00]), Protocol::V310).expect("3.1");
        assert!(!c.session_present);
    }

    #[test]
    fn spec_vectors_and_errors() {
        let d = |b: &'static [u8], p| decode(Bytes::from_static(b), p);
        assert_eq!(
            d(&[0x01, 0x00], Protocol::V311),
            Ok(ConnAck {
                session_present: true,
                ..ConnAck::default()
            })
        );
        assert_eq!(
            d(&[0x02, 0x00], Protocol::V311),
            Err(DecodeError::Malformed)
        );
        assert_eq!(
            d(&[0x00, 0x06], Protocol::V311),
            Err(DecodeError::Malformed)
        );
        assert_eq!(
            d(&[0x01, 0x05], Protocol::V311),
            Err(DecodeError::Malformed)
        );
        assert_eq!(
            d(&[0x00, 0x00, 0x00], Protocol::V311),
            Err(DecodeError::Malformed)
        );
        assert_eq!(d(&[0x00, 0x00], Protocol::V5), Err(DecodeError::Malformed));
        assert_eq!(
            d(&[0x00, 0x01, 0x00], Protocol::V5),
            Err(DecodeError::Malformed)
        );
        assert_eq!(
            d(&[0x00, 0x00, 0x02, 0x24, 0x02], Protocol::V5),
            Err(DecodeError::ProtocolError)
        );
        assert_eq!(
            d(&[0x00, 0x00, 0x02, 0x17, 0x01], Protocol::V5),
            Err(DecodeError::InvalidProperty)
        );
        assert_eq!(
            d(&[0x00, 0x00, 0x04, 0x24, 0x01, 0x24, 0x01], Protocol::V5),
            Err(DecodeError::DuplicateProperty)
        );
        let c = d(
            &[0x00, 0x00, 0x05, 0x27, 0x00, 0x00, 0x10, 0x00],
            Protocol::V5,
        )
        .expect("ok");
        assert_eq!(c.properties.maximum_packet_size, Some(4096));
        assert_eq!(
            d(
                &[0x00, 0x00, 0x05, 0x27, 0x00, 0x00, 0x00, 0x00],
                Protocol::V5
            ),
            Err(DecodeError::ProtocolError)
        );
    }
}
