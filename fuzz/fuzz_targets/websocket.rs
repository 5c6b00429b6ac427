//! Fuzz the WebSocket layer's sans-IO parts: arbitrary bytes as an opening handshake request
//! and as a stream of client frames must never panic; decoding the frames in small pieces must
//! give the same payload, the same control frames and the same violation as decoding them at
//! once; the data never exceeds the input; and an accepted request's length is within it.
//!
//! Input layout: byte 0 seeds the piece sizes, byte 1 the frame size limit, the rest is the
//! stream (also parsed as a handshake request against a policy with an Origin allow-list).

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringmq::transport::ws::frame::{Control, Cursor, Decoder, Violation};
use ringmq::transport::ws::handshake::{parse, Policy};

type Outcome = (Vec<u8>, Vec<Control>, Option<Violation>);

fn run(bytes: &[u8], max: u64, seed: u8) -> Outcome {
    let mut dec = Decoder::new(max);
    let (mut data, mut controls) = (Vec::new(), Vec::new());
    let mut start = 0;
    let mut s = seed as usize;
    while start < bytes.len() {
        let piece = if seed == 0 { bytes.len() } else { 1 + s % 17 };
        s = s.wrapping_mul(31).wrapping_add(7);
        let end = (start + piece).min(bytes.len());
        let mut buf = bytes[start..end].to_vec();
        start = end;
        let mut cur = Cursor::default();
        loop {
            let r = dec.decode(&mut buf, &mut cur);
            assert!(cur.data <= cur.read && cur.read <= buf.len());
            match r {
                Ok(Some(Control::Close(c))) => {
                    data.extend_from_slice(&buf[..cur.data]);
                    controls.push(Control::Close(c));
                    return (data, controls, None);
                }
                Ok(Some(c)) => controls.push(c),
                Ok(None) => break,
                Err(v) => {
                    data.extend_from_slice(&buf[..cur.data]);
                    return (data, controls, Some(v));
                }
            }
        }
        data.extend_from_slice(&buf[..cur.data]);
    }
    (data, controls, None)
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 2 {
        return;
    }
    let (seed, max, stream) = (input[0], u64::from(input[1]) * 64, &input[2..]);
    let whole = run(stream, max, 0);
    let pieces = run(stream, max, seed | 1);
    assert_eq!(whole, pieces, "split decoding differs");
    assert!(whole.0.len() <= stream.len());

    let policy = Policy {
        path: "/mqtt".into(),
        origins: vec!["https://app.example".into()],
    };
    if let Ok(Some((_, n))) = parse(stream, &policy) {
        assert!(n <= stream.len());
    }
});
