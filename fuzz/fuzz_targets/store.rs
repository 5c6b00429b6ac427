//! Fuzz the store's record decoder and loader (issue 8): recovery's scan of a segment and the
//! replay of what it hands over into an `Image`.
//!
//! Two properties per input:
//! 1. The input as a whole segment: the scan and the replay never panic, whatever the bytes.
//! 2. A valid segment built from the input (records whose payloads are slices of it, and
//!    `Entry` encodings of decoded garbage), then damaged at an input-chosen offset: every
//!    record that lies wholly before the damage is recovered, in order and intact, and nothing
//!    that failed its checksum is ever returned (what is recovered is a prefix of what was
//!    written).

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ringmq::store::recover::{scan_segment, segment_start};
use ringmq::store::{record, Entry, Image, Kind};

fn replay(seg: &Bytes) -> Image {
    let mut img = Image::default();
    let _ = scan_segment(seg, 0, 1, |rec| {
        if let Ok(e) = Entry::decode(rec.kind, &rec.payload) {
            img.apply(&e);
        }
    });
    img.finish_replay();
    img
}

fuzz_target!(|data: &[u8]| {
    // 1. Garbage, and garbage behind a valid header (so the scan gets past the header).
    let _ = replay(&Bytes::copy_from_slice(data));
    let mut seg = Vec::new();
    segment_start(0, 1, &mut seg);
    seg.extend_from_slice(data);
    let _ = replay(&Bytes::from(seg));

    // 2. A valid segment, damaged once.
    if data.len() < 4 {
        return;
    }
    let count = usize::from(data[0] % 24) + 1;
    let at = usize::from(u16::from_le_bytes([data[1], data[2]]));
    let flip = data[3] | 1;
    let material = &data[4..];
    let mut seg = Vec::new();
    segment_start(0, 1, &mut seg);
    let mut written = Vec::new(); // (kind, lsn, payload, end offset)
    for i in 0..count {
        // The header carries the segment's first LSN; the first record has it too.
        let lsn = 1 + i as u64;
        let len = if material.is_empty() {
            0
        } else {
            usize::from(material[i % material.len()]) % (material.len() + 1)
        };
        let start = (i * 7) % (material.len() + 1);
        let payload = &material[start..(start + len).min(material.len())];
        let kind = Kind(Kind::FIRST_USER + (i as u8 % 20));
        record::encode(kind, lsn, payload, &mut seg);
        written.push((kind, lsn, payload.to_vec(), seg.len()));
    }
    let pos = at % seg.len();
    seg[pos] ^= flip;
    let intact_before = written.iter().filter(|w| w.3 <= pos).count();
    let mut got = Vec::new();
    let scan = scan_segment(&Bytes::from(seg), 0, 1, |rec| got.push(rec));
    assert!(
        got.len() >= intact_before,
        "lost an intact record before the damage at {pos}: {} of {intact_before} ({scan:?})",
        got.len()
    );
    for (rec, w) in got.iter().zip(&written) {
        assert_eq!((rec.kind, rec.lsn, &rec.payload[..]), (w.0, w.1, &w.2[..]));
    }
    assert!(got.len() <= written.len(), "a damaged record was returned");
});
