use super::*;

/// A masked client frame.
pub(crate) fn client_frame(b0: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![b0];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

const M: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Decode `bytes` fed in pieces of `piece` bytes: (data, controls, first error).
fn run(
    dec: &mut Decoder,
    bytes: &[u8],
    piece: usize,
) -> (Vec<u8>, Vec<Control>, Option<Violation>) {
    let mut data = Vec::new();
    let mut controls = Vec::new();
    for chunk in bytes.chunks(piece.max(1)) {
        let mut buf = chunk.to_vec();
        let mut cur = Cursor::default();
        loop {
            match dec.decode(&mut buf, &mut cur) {
                Ok(Some(c)) => controls.push(c),
                Ok(None) => break,
                Err(e) => {
                    data.extend_from_slice(&buf[..cur.data]);
                    return (data, controls, Some(e));
                }
            }
        }
        data.extend_from_slice(&buf[..cur.data]);
    }
    (data, controls, None)
}

#[test]
fn binary_frames_of_every_length_form_unmask_whatever_the_split() {
    let payloads: Vec<Vec<u8>> = [0usize, 1, 7, 125, 126, 300, 65_535, 65_536, 70_000]
        .iter()
        .map(|&n| (0..n).map(|i| (i * 31 % 251) as u8).collect())
        .collect();
    let mut stream = Vec::new();
    let mut want = Vec::new();
    for p in &payloads {
        stream.extend(client_frame(0x82, p, M));
        want.extend_from_slice(p);
    }
    for piece in [1, 2, 3, 13, 14, 15, 1000, stream.len()] {
        let mut dec = Decoder::new(1 << 20);
        let (data, controls, err) = run(&mut dec, &stream, piece);
        assert_eq!(err, None, "piece {piece}");
        assert!(controls.is_empty());
        assert!(data == want, "piece {piece}");
        assert!(dec.is_idle());
    }
}

#[test]
fn fragments_and_interleaved_pings_make_one_stream() {
    let mut s = client_frame(0x02, b"hel", M); // binary, not final
    s.extend(client_frame(0x89, b"are you there", M)); // ping between fragments
    s.extend(client_frame(0x00, b"lo ", M)); // continuation
    s.extend(client_frame(0x80, b"world", M)); // final continuation
    s.extend(client_frame(0x8A, b"", M)); // pong: ignored
    s.extend(client_frame(0x88, &1000u16.to_be_bytes(), M));
    for piece in [1, 5, s.len()] {
        let mut dec = Decoder::new(1024);
        let (data, controls, err) = run(&mut dec, &s, piece);
        assert_eq!(err, None);
        assert_eq!(data, b"hello world");
        assert_eq!(
            controls,
            vec![
                Control::Ping(b"are you there".to_vec()),
                Control::Pong,
                Control::Close(Some(1000))
            ]
        );
    }
}

#[test]
fn violations_carry_their_close_codes() {
    let cases: Vec<(Vec<u8>, Violation, u16)> = vec![
        (client_frame(0x81, b"text", M), Violation::Text, 1003),
        (vec![0x82, 0x04, 1, 2, 3, 4], Violation::Unmasked, 1002),
        (client_frame(0xC2, b"x", M), Violation::Reserved, 1002),
        (client_frame(0x83, b"x", M), Violation::Opcode, 1002),
        (client_frame(0x80, b"x", M), Violation::Fragmentation, 1002),
        (client_frame(0x09, b"", M), Violation::Control, 1002),
        (client_frame(0x89, &[0; 126], M), Violation::Control, 1002),
        (client_frame(0x82, &[0; 101], M), Violation::TooBig, 1009),
        (client_frame(0x88, &[3], M), Violation::ClosePayload, 1002),
        (
            client_frame(0x88, &1005u16.to_be_bytes(), M),
            Violation::ClosePayload,
            1002,
        ),
        (
            [client_frame(0x02, b"a", M), client_frame(0x82, b"b", M)].concat(),
            Violation::Fragmentation,
            1002,
        ),
    ];
    for (bytes, want, code) in cases {
        for piece in [1, bytes.len()] {
            let mut dec = Decoder::new(100);
            let (_, _, err) = run(&mut dec, &bytes, piece);
            assert_eq!(err, Some(want), "{bytes:02x?}");
            assert_eq!(want.close_code(), code);
        }
    }
}

#[test]
fn an_unmasked_frame_is_refused_before_its_length_arrives() {
    let mut dec = Decoder::new(1 << 20);
    let mut buf = vec![0x82, 0x7F];
    let mut cur = Cursor::default();
    assert_eq!(dec.decode(&mut buf, &mut cur), Err(Violation::Unmasked));
}

#[test]
fn a_huge_declared_length_is_refused_from_the_header() {
    let mut dec = Decoder::new(1 << 20);
    let mut buf = vec![0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4];
    let mut cur = Cursor::default();
    assert_eq!(dec.decode(&mut buf, &mut cur), Err(Violation::TooBig));
    let mut buf = vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
    assert!(Decoder::new(u64::MAX)
        .decode(&mut buf, &mut Cursor::default())
        .is_err());
}

#[test]
fn server_frames_are_unmasked_with_minimal_lengths() {
    let head = |len| {
        let mut h = [0; SERVER_HEADER_MAX];
        let n = binary_header(len, &mut h);
        h[..n].to_vec()
    };
    assert_eq!(head(5), [0x82, 5]);
    assert_eq!(head(126), [0x82, 126, 0, 126]);
    assert_eq!(head(65_536), [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    let mut out = Vec::new();
    close_frame(1003, &mut out);
    control_frame(OP_PONG, b"hi", &mut out);
    assert_eq!(out, vec![0x88, 2, 0x03, 0xEB, 0x8A, 2, b'h', b'i']);
}

#[test]
fn unmask_agrees_with_the_byte_at_a_time_definition() {
    for pos in 0..4u8 {
        for len in 0..40 {
            let plain: Vec<u8> = (0..len as u8).collect();
            let mut fast = plain.clone();
            unmask(&mut fast, M, pos);
            let slow: Vec<u8> = plain
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ M[(i + pos as usize) % 4])
                .collect();
            assert_eq!(fast, slow);
        }
    }
}

#[test]
fn the_state_a_connection_carries_stays_small() {
    // Every idle WebSocket connection holds one, and the hand-over moves it.
    assert!(std::mem::size_of::<Decoder>() <= 72);
    assert!(std::mem::size_of::<crate::transport::ws::WsState>() <= 144);
}
