//! Record framing: how one log record is laid out in a segment, and the decoder that recovery
//! trusts with whatever bytes a crash, a torn write or a bad disk left behind.
//!
//! ```text
//! offset 0      4         8      9        17
//!        [len u32][crc u32][kind u8][lsn u64][payload: len bytes]   all little-endian
//! ```
//! `crc` is CRC-32C over `len`, `kind`, `lsn` and the payload: everything but itself, so a
//! flipped bit in the length is caught as surely as one in the payload.
//!
//! Owns: the byte layout and its checks. Never: panics or allocates on what it decodes (a
//! decoded record borrows the input), or trusts a length before bounds-checking it.

use std::fmt;

/// Log sequence number: the position of a record in a shard's log, dense from 1. 0 means "none
/// yet" (nothing committed, an empty log).
pub type Lsn = u64;

/// Bytes before the payload.
pub const HEADER_BYTES: usize = 17;

/// Largest payload a record may carry. An MQTT packet is at most 256 MiB; a record holds one
/// message plus a few bytes of bookkeeping. A bigger length in a header is corruption, caught
/// before anything is read or allocated from it.
pub const PAYLOAD_BYTES_MAX: usize = 256 * 1024 * 1024 + 64 * 1024;

/// What a record is. The log itself knows only [`Kind::SEGMENT_HEADER`]; every other value
/// belongs to the layer above (the image's record types), which is why this is an open newtype
/// rather than an enum. 0 is reserved: an all-zero header is the end of the written data (the
/// pre-allocated, zeroed rest of a segment), never a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind(pub u8);

impl Kind {
    /// First record of every segment: format magic and version, the shard, and the segment's
    /// first LSN (its own `lsn` field). It does not consume an LSN.
    pub const SEGMENT_HEADER: Kind = Kind(1);
    /// First kind value the layers above may use.
    pub const FIRST_USER: u8 = 16;
}

/// One decoded record, borrowing its payload from the buffer it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub kind: Kind,
    pub lsn: Lsn,
    pub payload: &'a [u8],
}

impl RecordRef<'_> {
    /// Bytes this record occupies in a segment.
    pub fn encoded_len(&self) -> usize {
        HEADER_BYTES + self.payload.len()
    }
}

/// Why decoding stopped before a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// Fewer bytes left than a header, or than the header's length says: a write that did not
    /// finish (or the buffer simply ends there).
    Truncated,
    /// The length field is larger than [`PAYLOAD_BYTES_MAX`].
    BadLength(u32),
    /// The checksum does not match the bytes.
    BadCrc,
    /// A checksummed header with kind 0 (reserved): written by something that is not us.
    BadKind,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Truncated => f.write_str("record cut short (torn write)"),
            Damage::BadLength(n) => write!(f, "record length {n} exceeds the maximum"),
            Damage::BadCrc => f.write_str("record checksum mismatch"),
            Damage::BadKind => f.write_str("record of reserved kind 0"),
        }
    }
}

/// The outcome of decoding at one position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole, checksummed record.
    Record(RecordRef<'a>),
    /// A zero header (or no bytes at all): the clean end of written data.
    End,
    /// Something that is neither a record nor the end.
    Damaged(Damage),
}

fn crc(header_fields: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(header_fields), payload)
}

/// The checksummed fields of a header (len, kind, lsn) in wire order.
fn crc_fields(len: u32, kind: Kind, lsn: Lsn) -> [u8; 13] {
    let mut f = [0u8; 13];
    f[0..4].copy_from_slice(&len.to_le_bytes());
    f[4] = kind.0;
    f[5..13].copy_from_slice(&lsn.to_le_bytes());
    f
}

/// Append one record to `out`. Panics only on a caller bug: kind 0 or an oversized payload
/// (the log checks both before calling).
pub fn encode(kind: Kind, lsn: Lsn, payload: &[u8], out: &mut Vec<u8>) {
    assert!(kind.0 != 0, "record kind 0 is reserved");
    assert!(
        payload.len() <= PAYLOAD_BYTES_MAX,
        "record payload too large"
    );
    let len = payload.len() as u32;
    let fields = crc_fields(len, kind, lsn);
    let sum = crc(&fields, payload);
    out.reserve(HEADER_BYTES + payload.len());
    out.extend_from_slice(&fields[0..4]);
    out.extend_from_slice(&sum.to_le_bytes());
    out.extend_from_slice(&fields[4..13]);
    out.extend_from_slice(payload);
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Decode the record at the start of `buf`. Never panics, whatever `buf` holds.
pub fn decode(buf: &[u8]) -> Decoded<'_> {
    if buf.len() < HEADER_BYTES {
        // Zeros to the end of the buffer are padding; anything else is a torn header.
        return if buf.iter().all(|&b| b == 0) {
            Decoded::End
        } else {
            Decoded::Damaged(Damage::Truncated)
        };
    }
    let header = &buf[..HEADER_BYTES];
    if header.iter().all(|&b| b == 0) {
        return Decoded::End;
    }
    let len = u32_at(header, 0);
    let sum = u32_at(header, 4);
    let kind = Kind(header[8]);
    let lsn = u64_at(header, 9);
    if len as usize > PAYLOAD_BYTES_MAX {
        return Decoded::Damaged(Damage::BadLength(len));
    }
    let Some(payload) = buf.get(HEADER_BYTES..HEADER_BYTES + len as usize) else {
        return Decoded::Damaged(Damage::Truncated);
    };
    if crc(&crc_fields(len, kind, lsn), payload) != sum {
        return Decoded::Damaged(Damage::BadCrc);
    }
    if kind.0 == 0 {
        return Decoded::Damaged(Damage::BadKind);
    }
    Decoded::Record(RecordRef { kind, lsn, payload })
}

/// Where a scan over a buffer of records stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    /// Offset of the first byte that is not part of a good record.
    pub offset: usize,
    /// `None` for a clean end (zeros or the end of the buffer).
    pub damage: Option<Damage>,
}

/// Decode records from the start of `buf` until the end or the first damage, calling `each`
/// for every good record. Never panics.
pub fn scan<'a>(buf: &'a [u8], mut each: impl FnMut(usize, RecordRef<'a>)) -> Stop {
    let mut at = 0;
    loop {
        match decode(&buf[at..]) {
            Decoded::Record(r) => {
                each(at, r);
                at += r.encoded_len();
            }
            Decoded::End => {
                return Stop {
                    offset: at,
                    damage: None,
                }
            }
            Decoded::Damaged(d) => {
                return Stop {
                    offset: at,
                    damage: Some(d),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encoded(records: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (k, p)) in records.iter().enumerate() {
            encode(Kind(*k), i as u64 + 1, p, &mut out);
        }
        out
    }

    #[test]
    fn round_trip_and_layout() {
        let mut out = Vec::new();
        encode(Kind(20), 0x0102_0304_0506_0708, b"hello", &mut out);
        assert_eq!(out.len(), HEADER_BYTES + 5);
        assert_eq!(&out[0..4], &5u32.to_le_bytes());
        assert_eq!(out[8], 20);
        assert_eq!(&out[9..17], &0x0102_0304_0506_0708u64.to_le_bytes());
        match decode(&out) {
            Decoded::Record(r) => {
                assert_eq!(r.kind, Kind(20));
                assert_eq!(r.lsn, 0x0102_0304_0506_0708);
                assert_eq!(r.payload, b"hello");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn zeros_and_empty_are_a_clean_end() {
        assert_eq!(decode(&[]), Decoded::End);
        assert_eq!(decode(&[0; 5]), Decoded::End);
        assert_eq!(decode(&[0; 4096]), Decoded::End);
        assert_eq!(decode(&[0, 0, 1]), Decoded::Damaged(Damage::Truncated));
    }

    #[test]
    fn an_empty_payload_is_a_record_not_the_end() {
        let mut out = Vec::new();
        encode(Kind(16), 0, b"", &mut out);
        assert!(matches!(decode(&out), Decoded::Record(r) if r.payload.is_empty()));
    }

    #[test]
    fn oversized_length_is_refused_before_reading() {
        let mut out = Vec::new();
        encode(Kind(16), 1, b"x", &mut out);
        out[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&out), Decoded::Damaged(Damage::BadLength(u32::MAX)));
    }

    #[test]
    fn a_flip_in_the_length_is_a_crc_error_not_a_misparse() {
        let mut out = encoded(&[(16, vec![7; 40]), (16, vec![8; 40])]);
        out[0] ^= 0x01; // 40 → 41: still in bounds
        assert_eq!(scan(&out, |_, _| {}).damage, Some(Damage::BadCrc));
    }

    proptest! {
        /// Any bytes at all: decode and scan never panic, and a scan's good records tile the
        /// buffer up to where it stopped.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
            let mut end = 0;
            let stop = scan(&bytes, |at, r| { assert_eq!(at, end); end = at + r.encoded_len(); });
            prop_assert_eq!(stop.offset, end);
        }

        /// Random corruption of a valid stream: every record before the damaged one is
        /// returned intact, none after it, and the scan stops at or before the damage.
        #[test]
        fn corruption_keeps_the_intact_prefix(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..20),
            pos in any::<prop::sample::Index>(),
            mask in 1u8..=255,
            cut in any::<bool>(),
        ) {
            let records: Vec<(u8, Vec<u8>)> = payloads.into_iter().map(|p| (16, p)).collect();
            let clean = encoded(&records);
            let at = pos.index(clean.len());
            let mut bad = clean.clone();
            if cut { bad.truncate(at); } else { bad[at] ^= mask; }
            // Offsets where each record starts; the damaged record is the one holding `at`.
            let mut starts = Vec::new();
            scan(&clean, |o, _| starts.push(o));
            let damaged = starts.iter().rposition(|&s| s <= at).unwrap_or(0);
            let mut got = Vec::new();
            let stop = scan(&bad, |_, r| got.push((r.kind.0, r.lsn, r.payload.to_vec())));
            prop_assert_eq!(stop.offset, starts[damaged]);
            prop_assert_eq!(got.len(), damaged);
            for (i, (k, lsn, p)) in got.iter().enumerate() {
                prop_assert_eq!(*k, records[i].0);
                prop_assert_eq!(*lsn, i as u64 + 1);
                prop_assert_eq!(p, &records[i].1);
            }
            // A cut that leaves only zero bytes of the damaged record is indistinguishable from
            // padding: a clean end at the right offset is then the correct answer.
            if !cut || bad[starts[damaged]..].iter().any(|&b| b != 0) {
                prop_assert!(stop.damage.is_some(), "damage at {} reported as a clean end", at);
            }
        }
    }
}
