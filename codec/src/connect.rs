//! CONNECT [MQTT-3.1]: protocol name and level, connect flags, keep alive, v5 properties, and
//! the payload (client id, will, username, password). The protocol level is decoded first so the
//! broker can answer an unsupported version with the right CONNACK (0x01 / 0x84).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::primitives::{
    expect_end, put_binary, put_fixed_header, put_str, read_binary, read_string, read_u16, read_u8,
    str_wire_len,
};
use crate::properties::PropCtx;
use crate::topic::{has_control_chars, is_valid_topic_name};
use crate::{Connect, DecodeError, EncodeError, Properties, Protocol, QoS, Will};

const FLAG_RESERVED: u8 = 0x01;
const FLAG_CLEAN: u8 = 0x02;
const FLAG_WILL: u8 = 0x04;
const FLAG_WILL_RETAIN: u8 = 0x20;
const FLAG_PASSWORD: u8 = 0x40;
const FLAG_USERNAME: u8 = 0x80;

/// Read protocol name and level from the start of a CONNECT body; returns the version and the
/// number of bytes they took. A known name with the wrong level is an unsupported version
/// (CONNACK 0x01 / 0x84), an unknown name is [`DecodeError::InvalidProtocolName`].
fn protocol_of(body: &[u8]) -> Result<(Protocol, usize), DecodeError> {
    let [hi, lo, rest @ ..] = body else {
        return Err(DecodeError::Malformed);
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    let (Some(name), Some(&level)) = (rest.get(..len), rest.get(len)) else {
        return Err(DecodeError::Malformed);
    };
    let protocol = match (name, level) {
        (b"MQTT", 4) => Protocol::V311,
        (b"MQTT", 5) => Protocol::V5,
        (b"MQIsdp", 3) => Protocol::V310,
        // [MQTT-3.1.2-2]: known protocol, level we do not speak.
        (b"MQTT" | b"MQIsdp", _) => return Err(DecodeError::UnsupportedProtocolVersion),
        // [MQTT-3.1.2-1]
        _ => return Err(DecodeError::InvalidProtocolName),
    };
    Ok((protocol, 2 + len + 1))
}

/// The protocol a CONNECT body (the bytes after the fixed header) asks for, without decoding
/// the rest. Lets the broker answer a CONNECT that fails to decode in the client's own version
/// (a v5 CONNACK with a reason code, or a v3 return code).
pub fn peek_connect_protocol(body: &[u8]) -> Result<Protocol, DecodeError> {
    protocol_of(body).map(|(p, _)| p)
}

/// Longest MQTT 3.1 client identifier: "between 1 and 23 characters long" (MQTT 3.1 §3.1,
/// Client Identifier). 3.1.1 and 5.0 let the server accept longer ones [MQTT-3.1.3-5].
const V310_CLIENT_ID_CHARS_MAX: usize = 23;

/// A client identifier with a control character (§1.5.4), or an MQTT 3.1 one that is empty or
/// longer than 23 characters, is refused with CONNACK 0x85 / return code 2 ("identifier
/// rejected"). An empty 3.1.1 / 5.0 id is the broker's to accept or refuse [MQTT-3.1.3-6..8].
fn check_client_id(id: &str, protocol: Protocol) -> Result<(), DecodeError> {
    let v310_length_ok = || (1..=V310_CLIENT_ID_CHARS_MAX).contains(&id.chars().count());
    if has_control_chars(id) || (protocol == Protocol::V310 && !v310_length_ok()) {
        return Err(DecodeError::ClientIdNotValid);
    }
    Ok(())
}

pub fn decode(mut body: Bytes) -> Result<Connect, DecodeError> {
    let (protocol, used) = protocol_of(&body)?;
    body.advance(used);
    let v5 = protocol.is_v5();

    let flags = read_u8(&mut body)?;
    // [MQTT-3.1.2-3]: the reserved flag must be 0.
    if flags & FLAG_RESERVED != 0 {
        return Err(DecodeError::InvalidConnectFlags);
    }
    let will_flag = flags & FLAG_WILL != 0;
    let will_qos_bits = (flags >> 3) & 0x03;
    let will_retain = flags & FLAG_WILL_RETAIN != 0;
    // [MQTT-3.1.2-11], [MQTT-3.1.2-13], [MQTT-3.1.2-15]: no will, so no will QoS or retain.
    if !will_flag && (will_qos_bits != 0 || will_retain) {
        return Err(DecodeError::InvalidConnectFlags);
    }
    // [MQTT-3.1.2-12]: will QoS 3 is invalid.
    let will_qos = QoS::from_u8(will_qos_bits).ok_or(DecodeError::InvalidQoS)?;
    let has_username = flags & FLAG_USERNAME != 0;
    let has_password = flags & FLAG_PASSWORD != 0;
    // [MQTT-3.1.2-22]: v3 forbids a password without a username; v5 allows it (3.1.2.9).
    if !v5 && has_password && !has_username {
        return Err(DecodeError::InvalidConnectFlags);
    }
    let keep_alive_s = read_u16(&mut body)?;
    let properties = if v5 {
        let p = Properties::decode(&mut body, PropCtx::Connect)?;
        // 3.1.2.11.10: Authentication Data without an Authentication Method is a Protocol
        // Error.
        if p.authentication_data.is_some() && p.authentication_method.is_none() {
            return Err(DecodeError::ProtocolError);
        }
        p
    } else {
        Properties::default()
    };

    // Payload [MQTT-3.1.3-1]: client id, will properties, will topic, will payload, username,
    // password, in that order.
    let client_id = read_string(&mut body)?;
    let will = if will_flag {
        let properties = if v5 {
            Properties::decode(&mut body, PropCtx::Will)?
        } else {
            Properties::default()
        };
        let topic = read_string(&mut body)?;
        if !is_valid_topic_name(&topic) {
            return Err(DecodeError::InvalidTopicName);
        }
        let payload = read_binary(&mut body)?;
        // 3.1.3.2.3: the server MAY check a will that claims to be UTF-8 (CONNACK 0x99).
        if properties.payload_format_indicator == Some(1) && std::str::from_utf8(&payload).is_err()
        {
            return Err(DecodeError::PayloadFormatInvalid);
        }
        Some(Will {
            qos: will_qos,
            retain: will_retain,
            topic,
            payload,
            properties,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(read_string(&mut body)?)
    } else {
        None
    };
    let password = if has_password {
        Some(read_binary(&mut body)?)
    } else {
        None
    };
    expect_end(&body)?;
    // Values that parse but that the server refuses with a CONNACK code, checked only once the
    // whole packet is known to be well-formed (a Malformed Packet takes precedence).
    check_client_id(&client_id, protocol)?;
    if username.as_deref().is_some_and(has_control_chars) {
        return Err(DecodeError::BadUserName);
    }
    Ok(Connect {
        protocol,
        clean_start: flags & FLAG_CLEAN != 0,
        keep_alive_s,
        properties,
        client_id,
        will,
        username,
        password,
    })
}

pub fn encode(c: &Connect, out: &mut BytesMut) -> Result<(), EncodeError> {
    let v5 = c.protocol.is_v5();
    let name: &[u8] = match c.protocol {
        Protocol::V310 => b"MQIsdp",
        Protocol::V311 | Protocol::V5 => b"MQTT",
    };
    if !v5 && c.password.is_some() && c.username.is_none() {
        return Err(EncodeError::InvalidValue);
    }
    let props_len = if v5 { c.properties.content_len()? } else { 0 };
    let mut remaining = 2 + name.len() + 1 + 1 + 2 + str_wire_len(c.client_id.len())?;
    if v5 {
        remaining += crate::varint_len(props_len) + props_len;
    }
    let mut flags = 0u8;
    if c.clean_start {
        flags |= FLAG_CLEAN;
    }
    let mut will_props_len = 0;
    if let Some(w) = &c.will {
        flags |= FLAG_WILL | ((w.qos as u8) << 3);
        if w.retain {
            flags |= FLAG_WILL_RETAIN;
        }
        if v5 {
            will_props_len = w.properties.content_len()?;
            remaining += crate::varint_len(will_props_len) + will_props_len;
        }
        remaining += str_wire_len(w.topic.len())? + str_wire_len(w.payload.len())?;
    }
    if let Some(u) = &c.username {
        flags |= FLAG_USERNAME;
        remaining += str_wire_len(u.len())?;
    }
    if let Some(p) = &c.password {
        flags |= FLAG_PASSWORD;
        remaining += str_wire_len(p.len())?;
    }

    put_fixed_header(out, 0x10, remaining)?;
    put_binary(out, name);
    out.put_u8(c.protocol.level());
    out.put_u8(flags);
    out.put_u16(c.keep_alive_s);
    if v5 {
        c.properties.encode(props_len, out);
    }
    put_str(out, &c.client_id);
    if let Some(w) = &c.will {
        if v5 {
            w.properties.encode(will_props_len, out);
        }
        put_str(out, &w.topic);
        put_binary(out, &w.payload);
    }
    if let Some(u) = &c.username {
        put_str(out, u);
    }
    if let Some(p) = &c.password {
        put_binary(out, p);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode as decode_packet, encode as encode_packet, Packet};
    use bytestring::ByteString;

    fn round_trip(c: Connect) {
        let p = Packet::Connect(Box::new(c));
        let mut buf = BytesMut::new();
        encode_packet(&p, Protocol::V311, &mut buf).expect("encode");
        assert_eq!(buf.len(), crate::encoded_len(&p, Protocol::V311));
        // The connection's protocol is irrelevant: CONNECT carries its own.
        let got = decode_packet(&mut buf, Protocol::V311, usize::MAX).expect("decode");
        assert_eq!(got, Some(p));
        assert!(buf.is_empty());
    }

    fn base(protocol: Protocol) -> Connect {
        Connect {
            protocol,
            clean_start: true,
            keep_alive_s: 60,
            properties: Properties::default(),
            client_id: ByteString::from_static("client-1"),
            will: None,
            username: None,
            password: None,
        }
    }

    fn body(bytes: &[u8]) -> Result<Connect, DecodeError> {
        decode(Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn round_trips() {
        for protocol in [Protocol::V310, Protocol::V311, Protocol::V5] {
            round_trip(base(protocol));
            let mut c = base(protocol);
            c.clean_start = false;
            // An empty id where the version allows one (3.1 needs 1–23 characters).
            if protocol != Protocol::V310 {
                c.client_id = ByteString::new();
            }
            c.username = Some(ByteString::from_static("user"));
            c.password = Some(Bytes::from_static(b"\x00\xffsecret"));
            c.will = Some(Will {
                qos: QoS::ExactlyOnce,
                retain: true,
                topic: ByteString::from_static("last/will"),
                payload: Bytes::from_static(b"bye"),
                properties: Properties::default(),
            });
            if protocol.is_v5() {
                c.properties.session_expiry_interval_s = Some(3600);
                c.properties.receive_maximum = Some(10);
                c.properties.maximum_packet_size = Some(1 << 20);
                c.properties.request_problem_information = Some(0);
                c.properties.authentication_method = Some(ByteString::from_static("SCRAM"));
                c.properties.authentication_data = Some(Bytes::from_static(b"xyz"));
                c.properties.user_properties.push(("k".into(), "v".into()));
                if let Some(w) = &mut c.will {
                    w.properties.will_delay_interval_s = Some(5);
                    w.properties.payload_format_indicator = Some(1);
                    w.properties.response_topic = Some("resp/t".into());
                    w.properties.correlation_data = Some(Bytes::from_static(b"\x01"));
                }
            }
            round_trip(c);
        }
        // v5 allows a password without a username.
        let mut c = base(Protocol::V5);
        c.password = Some(Bytes::from_static(b"pw"));
        round_trip(c);
    }

    #[test]
    fn v311_spec_vector() {
        let bytes = [
            0x00,
            0x04,
            b'M',
            b'Q',
            b'T',
            b'T',
            0x04,
            0b1100_1110,
            0x00,
            0x0A, // header
            0x00,
            0x01,
            b'c', // client id
            0x00,
            0x01,
            b't',
            0x00,
            0x02,
            b'h',
            b'i', // will
            0x00,
            0x01,
            b'u',
            0x00,
            0x01,
            b'p', // username, password
        ];
        let c = body(&bytes).expect("decode");
        assert_eq!(c.protocol, Protocol::V311);
        assert!(c.clean_start);
        assert_eq!(c.keep_alive_s, 10);
        assert_eq!(&c.client_id[..], "c");
        let w = c.will.expect("will");
        assert_eq!(w.qos, QoS::AtLeastOnce);
        assert!(!w.retain);
        assert_eq!(&w.topic[..], "t");
        assert_eq!(&w.payload[..], b"hi");
        assert_eq!(c.username.as_deref(), Some("u"));
        assert_eq!(c.password.as_deref(), Some(&b"p"[..]));
    }

    #[test]
    fn v5_spec_vector() {
        let bytes = [
            0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C, // header
            0x05, 0x11, 0x00, 0x00, 0x00, 0x0A, // session expiry 10
            0x00, 0x00, // empty client id
        ];
        let c = body(&bytes).expect("decode");
        assert_eq!(c.protocol, Protocol::V5);
        assert_eq!(c.properties.session_expiry_interval_s, Some(10));
        assert!(c.client_id.is_empty());
    }

    #[test]
    fn protocol_errors() {
        // Unknown name.
        assert_eq!(
            body(&[0x00, 0x04, b'M', b'Q', b'T', b'X', 0x04, 0x02, 0x00, 0x00, 0x00, 0x00]),
            Err(DecodeError::InvalidProtocolName)
        );
        // Known name, unknown level: decided before the (broken) flags are looked at.
        assert_eq!(
            body(&[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x06, 0xFF]),
            Err(DecodeError::UnsupportedProtocolVersion)
        );
        assert_eq!(
            body(&[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x03, 0x02, 0x00, 0x00, 0x00, 0x00]),
            Err(DecodeError::UnsupportedProtocolVersion)
        );
        assert_eq!(
            body(&[0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x04, 0x02]),
            Err(DecodeError::UnsupportedProtocolVersion)
        );
        assert_eq!(
            peek_connect_protocol(&[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0xFF]),
            Ok(Protocol::V5)
        );
        assert_eq!(body(&[0x00, 0x04, b'M']), Err(DecodeError::Malformed));
        // MQIsdp level 3.
        let c = body(&[
            0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x02, 0x00, 0x00, 0x00, 0x01,
            b'x',
        ])
        .expect("3.1");
        assert_eq!(c.protocol, Protocol::V310);
    }

    /// Encode `c`, then decode its body as the broker would.
    fn decode_encoded(c: Connect) -> Result<Connect, DecodeError> {
        let mut buf = BytesMut::new();
        encode(&c, &mut buf).expect("encode");
        // One byte of type, one of remaining length: these CONNECTs are short.
        assert!(buf.len() < 130);
        decode(buf.freeze().slice(2..))
    }

    #[test]
    fn client_ids_and_user_names_with_control_characters_are_refused() {
        for protocol in [Protocol::V310, Protocol::V311, Protocol::V5] {
            for bad in ["a\u{1}", "\u{1F}b", "a\u{7F}", "a\u{80}", "\u{9F}"] {
                let mut c = base(protocol);
                c.client_id = bad.into();
                assert_eq!(
                    decode_encoded(c),
                    Err(DecodeError::ClientIdNotValid),
                    "{protocol:?} {bad:?}"
                );
                let mut c = base(protocol);
                c.username = Some(bad.into());
                assert_eq!(
                    decode_encoded(c),
                    Err(DecodeError::BadUserName),
                    "{protocol:?} {bad:?}"
                );
            }
            let mut c = base(protocol);
            c.username = Some("user \u{A0}é".into());
            assert!(decode_encoded(c).is_ok(), "{protocol:?}");
        }
        // A malformed packet is Malformed even when its client id is also refused.
        assert_eq!(
            body(&[
                0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00
            ]),
            Err(DecodeError::Malformed)
        );
    }

    #[test]
    fn mqtt31_client_ids_are_1_to_23_characters() {
        for (id, ok) in [
            ("", false),
            ("a", true),
            ("abcdefghijklmnopqrstuvw", true),
            ("abcdefghijklmnopqrstuvwx", false),
            // Characters, not bytes: 23 two-byte characters are allowed.
            ("ééééééééééééééééééééééé", true),
        ] {
            let mut c = base(Protocol::V310);
            c.client_id = id.into();
            let got = decode_encoded(c.clone());
            if ok {
                assert_eq!(got, Ok(c), "{id:?}");
            } else {
                assert_eq!(got, Err(DecodeError::ClientIdNotValid), "{id:?}");
            }
            // 3.1.1 and 5.0 have no such limit (an empty id is the broker's decision).
            for protocol in [Protocol::V311, Protocol::V5] {
                let mut c = base(protocol);
                c.client_id = id.into();
                assert!(decode_encoded(c).is_ok(), "{protocol:?} {id:?}");
            }
        }
    }

    fn with_flags(flags: u8) -> Result<Connect, DecodeError> {
        body(&[
            0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, flags, 0x00, 0x00, 0x00, 0x01, b'x',
        ])
    }

    #[test]
    fn flag_errors() {
        assert!(with_flags(0x02).is_ok());
        // [MQTT-3.1.2-3] reserved bit.
        assert_eq!(with_flags(0x03), Err(DecodeError::InvalidConnectFlags));
        // Will QoS / retain without a will.
        assert_eq!(with_flags(0x08), Err(DecodeError::InvalidConnectFlags));
        assert_eq!(with_flags(0x20), Err(DecodeError::InvalidConnectFlags));
        // Will QoS 3.
        assert_eq!(with_flags(0x1C), Err(DecodeError::InvalidQoS));
        // Password without username in 3.1.1.
        assert_eq!(with_flags(0x40), Err(DecodeError::InvalidConnectFlags));
        // Username flag but no username: truncated.
        assert_eq!(with_flags(0x80), Err(DecodeError::Malformed));
    }

    #[test]
    fn payload_errors() {
        // Trailing byte.
        assert_eq!(
            body(&[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00]),
            Err(DecodeError::Malformed)
        );
        // Client id with U+0000.
        assert_eq!(
            body(&[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00]),
            Err(DecodeError::InvalidUtf8)
        );
        // Will topic with a wildcard.
        assert_eq!(
            body(&[
                0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
                b'#', 0x00, 0x00,
            ]),
            Err(DecodeError::InvalidTopicName)
        );
        // v5: property not allowed on CONNECT (topic alias 0x23).
        assert_eq!(
            body(&[
                0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01,
                0x00, 0x00,
            ]),
            Err(DecodeError::InvalidProperty)
        );
        // v5: duplicate session expiry.
        assert_eq!(
            body(&[
                0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x00, 0x0A, 0x11, 0, 0, 0, 1,
                0x11, 0, 0, 0, 2, 0x00, 0x00,
            ]),
            Err(DecodeError::DuplicateProperty)
        );
        // v5: receive maximum 0.
        assert_eq!(
            body(&[
                0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x00, 0x03, 0x21, 0, 0, 0x00,
                0x00,
            ]),
            Err(DecodeError::ProtocolError)
        );
        // v5: request problem information 2.
        assert_eq!(
            body(&[
                0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x00, 0x02, 0x17, 2, 0x00,
                0x00,
            ]),
            Err(DecodeError::ProtocolError)
        );
        // v5: authentication data without a method.
        assert_eq!(
            body(&[
                0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x00, 0x03, 0x16, 0, 0, 0x00,
                0x00,
            ]),
            Err(DecodeError::ProtocolError)
        );
        // v5 will: a PUBLISH-only property (subscription identifier) is refused in will props.
        assert_eq!(
            body(&[
                0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
                0x0B, 0x01, 0x00, 0x01, b't', 0x00, 0x00,
            ]),
            Err(DecodeError::InvalidProperty)
        );
        // v5 will: payload format indicator 1 with a non-UTF-8 payload.
        assert_eq!(
            body(&[
                0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
                0x01, 0x01, 0x00, 0x01, b't', 0x00, 0x01, 0xFF,
            ]),
            Err(DecodeError::PayloadFormatInvalid)
        );
    }

    #[test]
    fn encode_errors() {
        let mut c = base(Protocol::V311);
        c.password = Some(Bytes::from_static(b"pw"));
        let mut out = BytesMut::new();
        assert_eq!(encode(&c, &mut out), Err(EncodeError::InvalidValue));
        let mut c = base(Protocol::V311);
        c.client_id = ByteString::from("x".repeat(65_536));
        assert_eq!(encode(&c, &mut out), Err(EncodeError::FieldTooLong));
        assert!(out.is_empty());
    }
}
