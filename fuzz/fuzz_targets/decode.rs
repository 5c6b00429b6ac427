//! Fuzz the decoder: arbitrary bytes for each protocol version must never panic; decoding them
//! fed in pieces must agree with decoding them at once; and every packet that decodes must
//! re-encode to bytes that decode to the same packet.
//!
//! Input layout: byte 0 picks split points (its bits seed the piece sizes), the rest is the
//! stream.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringmq_codec::{decode, encode, DecodeError, Packet, Protocol};

const MAX: usize = 1 << 20;

fn drain(buf: &mut BytesMut, protocol: Protocol) -> (Vec<Packet>, Option<DecodeError>) {
    let mut out = Vec::new();
    loop {
        match decode(buf, protocol, MAX) {
            Ok(Some(p)) => out.push(p),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

fn drain_split(bytes: &[u8], seed: u8, protocol: Protocol) -> (Vec<Packet>, Option<DecodeError>) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut start = 0;
    let mut step = usize::from(seed % 7) + 1;
    while start < bytes.len() {
        let end = (start + step).min(bytes.len());
        buf.extend_from_slice(&bytes[start..end]);
        start = end;
        // Vary the piece size: 1..=7 bytes, cycling from the seed.
        step = step % 7 + 1;
        let (ps, err) = drain(&mut buf, protocol);
        out.extend(ps);
        if err.is_some() {
            return (out, err);
        }
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, bytes)) = data.split_first() else {
        return;
    };
    for protocol in [Protocol::V310, Protocol::V311, Protocol::V5] {
        let whole = drain(&mut BytesMut::from(bytes), protocol);
        let split = drain_split(bytes, seed, protocol);
        assert_eq!(whole, split, "split decoding disagrees ({protocol:?})");
        for p in &whole.0 {
            let mut out = BytesMut::new();
            encode(p, protocol, &mut out).expect("a decoded packet re-encodes");
            let again = decode(&mut out, protocol, MAX).expect("re-encoded packet decodes");
            assert_eq!(again.as_ref(), Some(p), "round trip changed the packet");
            assert!(out.is_empty(), "re-encoded packet has trailing bytes");
        }
    }
});
