//! Wire primitives shared by every packet: the fixed-header framing ([`frame`]), variable byte
//! integers, two- and four-byte integers, UTF-8 strings and binary data [MQTT-1.5].
//!
//! Readers take a `&mut Bytes` and advance it; strings and binary data are returned as slices of
//! that same buffer (no copy). Writers assume the caller validated lengths first (see
//! [`str_wire_len`]) so that a failed encode never leaves half a packet in the output buffer.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::{DecodeError, EncodeError, Frame};

/// Largest value a variable byte integer can carry (four bytes) [MQTT-1.5.5].
pub const MAX_VARINT: usize = 268_435_455;

/// Phase one of framing: see [`crate::frame`].
pub fn frame(buf: &[u8], max_packet_bytes: usize) -> Result<Option<Frame>, DecodeError> {
    let Some(&header) = buf.first() else {
        return Ok(None);
    };
    // Type 0 is reserved in every version [MQTT-2.1.2]: refused from this byte alone, without
    // waiting for a remaining length that may never come.
    if header >> 4 == 0 {
        return Err(DecodeError::UnknownPacketType);
    }
    let mut value: usize = 0;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(None);
        };
        value |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            // [MQTT-1.5.5-1]: the minimum number of bytes must be used, so a trailing 0x00
            // continuation is not a valid encoding.
            if i > 0 && b == 0 {
                return Err(DecodeError::MalformedLength);
            }
            let f = Frame {
                header,
                header_len: 2 + i,
                body_len: value,
            };
            if f.total_len() > max_packet_bytes {
                return Err(DecodeError::PacketTooLarge);
            }
            return Ok(Some(f));
        }
    }
    // The fourth byte still had its continuation bit set: a fifth byte is never legal, so
    // there is no point waiting for it.
    Err(DecodeError::MalformedLength)
}

/// Number of bytes the variable byte integer encoding of `v` takes (1..=4; values above
/// [`MAX_VARINT`] report 5 so that length sums exceed any legal packet).
#[inline]
pub fn varint_len(v: usize) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        2_097_152..=MAX_VARINT => 4,
        _ => 5,
    }
}

/// Check that `b` is a well-formed MQTT UTF-8 string [MQTT-1.5.4-1..2]: valid UTF-8 (which
/// already excludes the surrogate encodings ED A0..BF) and no U+0000.
#[inline]
pub fn validate_utf8_str(b: &[u8]) -> Result<&str, DecodeError> {
    let s = std::str::from_utf8(b).map_err(|_| DecodeError::InvalidUtf8)?;
    if b.contains(&0) {
        return Err(DecodeError::InvalidUtf8);
    }
    Ok(s)
}

#[inline]
pub(crate) fn read_u8(buf: &mut Bytes) -> Result<u8, DecodeError> {
    if buf.is_empty() {
        return Err(DecodeError::Malformed);
    }
    Ok(buf.get_u8())
}

#[inline]
pub(crate) fn read_u16(buf: &mut Bytes) -> Result<u16, DecodeError> {
    if buf.len() < 2 {
        return Err(DecodeError::Malformed);
    }
    Ok(buf.get_u16())
}

#[inline]
pub(crate) fn read_u32(buf: &mut Bytes) -> Result<u32, DecodeError> {
    if buf.len() < 4 {
        return Err(DecodeError::Malformed);
    }
    Ok(buf.get_u32())
}

/// A packet identifier, which must be non-zero wherever it appears [MQTT-2.2.1-3].
#[inline]
pub(crate) fn read_packet_id(buf: &mut Bytes) -> Result<u16, DecodeError> {
    match read_u16(buf)? {
        0 => Err(DecodeError::ZeroPacketId),
        id => Ok(id),
    }
}

/// Variable byte integer inside a packet body (property length, subscription identifier).
pub(crate) fn read_varint(buf: &mut Bytes) -> Result<usize, DecodeError> {
    let mut value: usize = 0;
    for i in 0..4 {
        let b = read_u8(buf)?;
        value |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            // Non-minimal encodings are malformed [MQTT-1.5.5-1].
            if i > 0 && b == 0 {
                return Err(DecodeError::Malformed);
            }
            return Ok(value);
        }
    }
    Err(DecodeError::Malformed)
}

/// Binary data: two-byte length then that many bytes [MQTT-1.5.6]. Zero-copy slice.
#[inline]
pub(crate) fn read_binary(buf: &mut Bytes) -> Result<Bytes, DecodeError> {
    let len = usize::from(read_u16(buf)?);
    if buf.len() < len {
        return Err(DecodeError::Malformed);
    }
    Ok(buf.split_to(len))
}

/// UTF-8 string [MQTT-1.5.4]: binary data that must also pass [`validate_utf8_str`].
#[inline]
pub(crate) fn read_string(buf: &mut Bytes) -> Result<ByteString, DecodeError> {
    let raw = read_binary(buf)?;
    validate_utf8_str(&raw)?;
    // SAFETY: `validate_utf8_str` just checked that `raw` is valid UTF-8; skipping
    // `ByteString::try_from` avoids validating the same bytes twice on the hot path.
    Ok(unsafe { ByteString::from_bytes_unchecked(raw) })
}

/// Wire size of a string or binary field (2-byte length prefix + data), refusing fields a
/// two-byte length cannot express.
#[inline]
pub(crate) fn str_wire_len(len: usize) -> Result<usize, EncodeError> {
    if len > usize::from(u16::MAX) {
        Err(EncodeError::FieldTooLong)
    } else {
        Ok(2 + len)
    }
}

/// Write a variable byte integer; `v` must be at most [`MAX_VARINT`] (callers check via
/// [`check_remaining`] or the property length bound).
#[inline]
pub(crate) fn put_varint(out: &mut BytesMut, mut v: usize) {
    loop {
        let mut b = (v & 0x7F) as u8;
        v >>= 7;
        if v > 0 {
            b |= 0x80;
        }
        out.put_u8(b);
        if v == 0 {
            break;
        }
    }
}

/// Write a length-prefixed field; the length was validated by [`str_wire_len`] beforehand.
#[inline]
pub(crate) fn put_binary(out: &mut BytesMut, b: &[u8]) {
    debug_assert!(b.len() <= usize::from(u16::MAX));
    out.put_u16(b.len() as u16);
    out.put_slice(b);
}

#[inline]
pub(crate) fn put_str(out: &mut BytesMut, s: &str) {
    put_binary(out, s.as_bytes());
}

/// Refuse a remaining length a four-byte varint cannot express.
#[inline]
pub(crate) fn check_remaining(remaining: usize) -> Result<(), EncodeError> {
    if remaining > MAX_VARINT {
        Err(EncodeError::PacketTooLarge)
    } else {
        Ok(())
    }
}

/// Reserve room for the whole packet once and write its fixed header.
#[inline]
pub(crate) fn put_fixed_header(
    out: &mut BytesMut,
    header: u8,
    remaining: usize,
) -> Result<(), EncodeError> {
    put_fixed_header_reserving(out, header, remaining, remaining)
}

/// As [`put_fixed_header`], reserving room for only `body` more bytes after the header (a
/// PUBLISH head whose payload is sent from elsewhere).
#[inline]
pub(crate) fn put_fixed_header_reserving(
    out: &mut BytesMut,
    header: u8,
    remaining: usize,
    body: usize,
) -> Result<(), EncodeError> {
    check_remaining(remaining)?;
    out.reserve(1 + varint_len(remaining) + body);
    out.put_u8(header);
    put_varint(out, remaining);
    Ok(())
}

/// Error unless the body was consumed exactly: trailing bytes make a packet malformed.
#[inline]
pub(crate) fn expect_end(buf: &Bytes) -> Result<(), DecodeError> {
    if buf.is_empty() {
        Ok(())
    } else {
        Err(DecodeError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip() {
        for v in [
            0usize, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, MAX_VARINT,
        ] {
            let mut out = BytesMut::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            let mut b = out.freeze();
            assert_eq!(read_varint(&mut b), Ok(v));
            assert!(b.is_empty());
        }
        assert_eq!(varint_len(MAX_VARINT + 1), 5);
    }

    #[test]
    fn varint_spec_vectors() {
        // Table 1.5.5 boundaries.
        let cases: [(&[u8], usize); 6] = [
            (&[0x00], 0),
            (&[0x7F], 127),
            (&[0x80, 0x01], 128),
            (&[0xFF, 0x7F], 16_383),
            (&[0x80, 0x80, 0x01], 16_384),
            (&[0xFF, 0xFF, 0xFF, 0x7F], MAX_VARINT),
        ];
        for (bytes, v) in cases {
            let mut b = Bytes::copy_from_slice(bytes);
            assert_eq!(read_varint(&mut b), Ok(v));
        }
        let mut five = Bytes::from_static(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
        assert_eq!(read_varint(&mut five), Err(DecodeError::Malformed));
        let mut non_minimal = Bytes::from_static(&[0x80, 0x00]);
        assert_eq!(read_varint(&mut non_minimal), Err(DecodeError::Malformed));
        let mut truncated = Bytes::from_static(&[0x80]);
        assert_eq!(read_varint(&mut truncated), Err(DecodeError::Malformed));
    }

    #[test]
    fn frame_cases() {
        assert_eq!(frame(&[], 100), Ok(None));
        assert_eq!(frame(&[0x30], 100), Ok(None));
        assert_eq!(frame(&[0x30, 0x80], 100), Ok(None));
        assert_eq!(
            frame(&[0x30, 0x05], 100),
            Ok(Some(Frame {
                header: 0x30,
                header_len: 2,
                body_len: 5
            }))
        );
        assert_eq!(
            frame(&[0x30, 0x80, 0x01], 1000),
            Ok(Some(Frame {
                header: 0x30,
                header_len: 3,
                body_len: 128
            }))
        );
        // Four continuation bytes: refused without waiting for a fifth.
        assert_eq!(
            frame(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF], usize::MAX),
            Err(DecodeError::MalformedLength)
        );
        assert_eq!(
            frame(&[0x30, 0x80, 0x00], 100),
            Err(DecodeError::MalformedLength)
        );
        // Too large as soon as the length is readable, before any body byte.
        assert_eq!(
            frame(&[0x30, 0x80, 0x01], 130),
            Err(DecodeError::PacketTooLarge)
        );
        assert!(frame(&[0x30, 0x80, 0x01], 131).is_ok());
        // Reserved type 0: refused from the first byte.
        for first in [0x00, 0x0F] {
            assert_eq!(frame(&[first], 100), Err(DecodeError::UnknownPacketType));
        }
    }

    #[test]
    fn strings() {
        let mut b = Bytes::from_static(&[0x00, 0x03, b'a', b'/', b'b', 0xAA]);
        assert_eq!(read_string(&mut b).as_deref(), Ok("a/b"));
        assert_eq!(&b[..], &[0xAA]);
        let mut nul = Bytes::from_static(&[0x00, 0x02, b'a', 0x00]);
        assert_eq!(read_string(&mut nul), Err(DecodeError::InvalidUtf8));
        // U+D800 encoded as ED A0 80.
        let mut surrogate = Bytes::from_static(&[0x00, 0x03, 0xED, 0xA0, 0x80]);
        assert_eq!(read_string(&mut surrogate), Err(DecodeError::InvalidUtf8));
        let mut bad = Bytes::from_static(&[0x00, 0x01, 0xFF]);
        assert_eq!(read_string(&mut bad), Err(DecodeError::InvalidUtf8));
        let mut short = Bytes::from_static(&[0x00, 0x05, b'a']);
        assert_eq!(read_string(&mut short), Err(DecodeError::Malformed));
        assert_eq!(str_wire_len(65_535), Ok(65_537));
        assert_eq!(str_wire_len(65_536), Err(EncodeError::FieldTooLong));
    }
}
