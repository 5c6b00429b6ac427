//! The framing contract of `decode`: incomplete input is left untouched, sizes are refused
//! before the body arrives, and packets are consumed one at a time.

use bytes::BytesMut;
use ringmq_codec::{
    decode, encode, encoded_len, frame, peek_connect_protocol, DecodeError, Packet, Protocol,
};

fn buf(b: &[u8]) -> BytesMut {
    BytesMut::from(b)
}

#[test]
fn partial_input_is_not_consumed() {
    let whole = [0x30, 0x05, 0x00, 0x01, b't', b'h', b'i'];
    for n in 0..whole.len() {
        let mut b = buf(&whole[..n]);
        assert_eq!(decode(&mut b, Protocol::V311, 1024), Ok(None), "{n} bytes");
        assert_eq!(b.len(), n);
    }
    let mut b = buf(&whole);
    assert!(matches!(
        decode(&mut b, Protocol::V311, 1024),
        Ok(Some(Packet::Publish(_)))
    ));
    assert!(b.is_empty());
}

#[test]
fn packets_are_consumed_one_at_a_time() {
    let mut b = buf(&[0xC0, 0x00, 0xD0, 0x00, 0xE0]);
    assert_eq!(
        decode(&mut b, Protocol::V311, 16),
        Ok(Some(Packet::PingReq))
    );
    assert_eq!(
        decode(&mut b, Protocol::V311, 16),
        Ok(Some(Packet::PingResp))
    );
    assert_eq!(decode(&mut b, Protocol::V311, 16), Ok(None));
    assert_eq!(&b[..], &[0xE0]);
}

#[test]
fn length_errors_come_before_the_body() {
    // Declared 200 bytes against a 100-byte maximum: refused with only the header present.
    let mut b = buf(&[0x30, 0xC8, 0x01]);
    assert_eq!(
        decode(&mut b, Protocol::V5, 100),
        Err(DecodeError::PacketTooLarge)
    );
    // The limit counts the whole packet, fixed header included.
    assert_eq!(frame(&[0x30, 0x62], 99), Err(DecodeError::PacketTooLarge));
    assert!(frame(&[0x30, 0x62], 100).is_ok());
    // Fourth length byte with its continuation bit set.
    let mut b = buf(&[0x30, 0x80, 0x80, 0x80, 0x80]);
    assert_eq!(
        decode(&mut b, Protocol::V5, usize::MAX),
        Err(DecodeError::MalformedLength)
    );
}

#[test]
fn fixed_header_checks() {
    for (bytes, err) in [
        (&[0x00, 0x00][..], DecodeError::UnknownPacketType),
        (&[0xC1, 0x00][..], DecodeError::ReservedFlags),
        (&[0x11, 0x00][..], DecodeError::ReservedFlags),
        (&[0xC0, 0x01, 0x00][..], DecodeError::Malformed),
        (&[0xD0, 0x01, 0x00][..], DecodeError::Malformed),
    ] {
        assert_eq!(
            decode(&mut buf(bytes), Protocol::V5, 64),
            Err(err),
            "{bytes:?}"
        );
    }
}

#[test]
fn pings_round_trip() {
    for protocol in [Protocol::V310, Protocol::V311, Protocol::V5] {
        for p in [Packet::PingReq, Packet::PingResp] {
            let mut b = BytesMut::new();
            encode(&p, protocol, &mut b).expect("encode");
            assert_eq!(b.len(), 2);
            assert_eq!(encoded_len(&p, protocol), 2);
            assert_eq!(decode(&mut b, protocol, 2), Ok(Some(p)));
        }
    }
}

#[test]
fn connect_protocol_can_be_peeked_after_a_failed_decode() {
    // v5 CONNECT whose properties are broken (topic alias is not a CONNECT property).
    let wire = [
        0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x00, 0x03, 0x23, 0x00,
        0x01, 0x00, 0x00,
    ];
    let f = frame(&wire, 1024).expect("frame").expect("complete");
    assert_eq!(
        peek_connect_protocol(&wire[f.header_len..]),
        Ok(Protocol::V5)
    );
    assert_eq!(
        decode(&mut buf(&wire), Protocol::V311, 1024),
        Err(DecodeError::InvalidProperty)
    );
}

#[test]
fn reserved_types_are_refused_from_the_first_byte() {
    for protocol in [Protocol::V310, Protocol::V311, Protocol::V5] {
        // Type 0, in every version, with nothing after the first byte.
        let mut b = buf(&[0x00]);
        assert_eq!(
            decode(&mut b, protocol, 1024),
            Err(DecodeError::UnknownPacketType)
        );
        assert_eq!(frame(&[0x00], 1024), Err(DecodeError::UnknownPacketType));
    }
    // Type 15 is AUTH in 5.0 and reserved before.
    for protocol in [Protocol::V310, Protocol::V311] {
        let mut b = buf(&[0xF0]);
        assert_eq!(
            decode(&mut b, protocol, 1024),
            Err(DecodeError::UnknownPacketType)
        );
    }
    let mut b = buf(&[0xF0]);
    assert_eq!(decode(&mut b, Protocol::V5, 1024), Ok(None));
}

#[test]
fn server_only_packets_are_a_protocol_error_from_a_client() {
    use ringmq_codec::{decode_from_client, frame_from_client};
    // CONNACK, SUBACK, UNSUBACK, PINGRESP: well-formed, malformed, or just the first byte.
    for first in [0x20, 0x90, 0xB0, 0xD0] {
        for bytes in [
            &[first][..],
            &[first, 0x00],
            &[first, 0x03, 0xFF, 0xFF, 0xFF],
        ] {
            for protocol in [Protocol::V310, Protocol::V311, Protocol::V5] {
                let mut b = buf(bytes);
                let e = decode_from_client(&mut b, protocol, 1024);
                assert_eq!(e, Err(DecodeError::ServerOnlyPacket), "{bytes:02x?}");
                assert_eq!(DecodeError::ServerOnlyPacket.reason_code(), 0x82);
            }
            assert_eq!(
                frame_from_client(bytes, 1024),
                Err(DecodeError::ServerOnlyPacket)
            );
        }
    }
    // The client's side still decodes them.
    let mut b = buf(&[0xD0, 0x00]);
    assert_eq!(decode(&mut b, Protocol::V5, 16), Ok(Some(Packet::PingResp)));
    // And a client's own packets pass.
    let mut b = buf(&[0xC0, 0x00]);
    assert_eq!(
        ringmq_codec::decode_from_client(&mut b, Protocol::V5, 16),
        Ok(Some(Packet::PingReq))
    );
}
