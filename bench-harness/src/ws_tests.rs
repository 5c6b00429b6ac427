use super::*;

fn client() -> WsClient {
    WsClient {
        path: "/mqtt".into(),
        host: "127.0.0.1:1883".into(),
    }
}

/// The key the request in `out` carries.
fn key_of(out: &[u8]) -> String {
    let text = std::str::from_utf8(out).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("Sec-WebSocket-Key: "))
        .unwrap();
    line["Sec-WebSocket-Key: ".len()..].to_string()
}

fn response(accept: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
    )
    .into_bytes()
}

/// An unmasked server frame.
fn server_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![b0];
    if payload.len() < 126 {
        f.push(payload.len() as u8);
    } else {
        f.push(126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    f.extend_from_slice(payload);
    f
}

/// Parse our masked frames: (opcode, unmasked payload) each.
fn parse_client_frames(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut v = Vec::new();
    while !b.is_empty() {
        assert_eq!(b[0] & 0xF0, 0x80, "FIN, no reserved bits");
        assert_eq!(b[1] & 0x80, 0x80, "client frames are masked");
        let (len, at) = match b[1] & 0x7F {
            126 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (usize::from(n), 2),
        };
        let mask = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        let p: Vec<u8> = b[at + 4..at + 4 + len]
            .iter()
            .enumerate()
            .map(|(i, x)| x ^ mask[i % 4])
            .collect();
        v.push((b[0] & 0x0F, p));
        b = &b[at + 4 + len..];
    }
    v
}

/// A connection past the handshake, its request taken out of `out`.
fn opened() -> WsConn {
    let mut c = client().connection(7);
    let accept = accept_for(&key_of(&c.out));
    c.out.clear();
    let mut rbuf = BytesMut::new();
    let r = c.receive(&response(&accept), &mut rbuf).unwrap();
    assert!(r.wants_flush && c.is_open());
    c
}

#[test]
fn accept_matches_rfc_example() {
    // RFC 6455 §1.3.
    assert_eq!(
        accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn request_then_nothing_until_101() {
    let mut c = client().connection(1);
    let req = std::str::from_utf8(&c.out).unwrap().to_string();
    assert!(req.starts_with("GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:1883\r\n"));
    assert!(req.contains("Sec-WebSocket-Protocol: mqtt\r\n") && req.ends_with("\r\n\r\n"));
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(key_of(&c.out))
            .unwrap()
            .len(),
        16
    );
    assert_ne!(key_of(&c.out), key_of(&client().connection(2).out));
    let mut wbuf = BytesMut::from(&b"\x10\x02xx"[..]);
    let before = c.out.len();
    c.frame(&mut wbuf);
    assert_eq!(wbuf.len(), 4, "held until the upgrade completes");
    assert_eq!(c.out.len(), before);
}

#[test]
fn response_split_anywhere_with_frames_behind_it() {
    let base = client().connection(3);
    let accept = accept_for(&key_of(&base.out));
    let mut bytes = response(&accept);
    bytes.extend(server_frame(0x82, b"\x20\x02\x00\x00"));
    for cut in 1..bytes.len() {
        let mut c = client().connection(3);
        let mut rbuf = BytesMut::new();
        let a = c.receive(&bytes[..cut], &mut rbuf).unwrap();
        let b = c.receive(&bytes[cut..], &mut rbuf).unwrap();
        assert!(a.wants_flush || b.wants_flush, "cut {cut}");
        assert_eq!(&rbuf[..], b"\x20\x02\x00\x00", "cut {cut}");
    }
}

#[test]
fn bad_responses_are_errors() {
    let mut c = client().connection(4);
    let mut rbuf = BytesMut::new();
    let e = c
        .receive(b"HTTP/1.1 404 Not Found\r\n\r\n", &mut rbuf)
        .unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");
    let mut c = client().connection(4);
    let e = c.receive(&response("wrong"), &mut rbuf).unwrap_err();
    assert!(e.to_string().contains("Sec-WebSocket-Accept"), "{e}");
    let mut c = client().connection(4);
    let accept = accept_for(&key_of(&c.out));
    let no_proto = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    let e = c.receive(no_proto.as_bytes(), &mut rbuf).unwrap_err();
    assert!(e.to_string().contains("subprotocol"), "{e}");
    let mut c = client().connection(4);
    let e = c.receive(&vec![b'a'; 9000], &mut rbuf).unwrap_err();
    assert!(e.to_string().contains("too long"), "{e}");
}

#[test]
fn frames_split_byte_by_byte_and_packets_across_frames() {
    // Three packets: the first two in one frame, the third split over a continuation (one
    // message in two fragments), a long frame with a 16-bit length, then a ping.
    let long = vec![0x30; 300];
    let mut bytes = server_frame(0x02, b"\x20\x02\x00\x00\x90\x03\x00");
    bytes.extend(server_frame(0x80, b"\x01\x00"));
    bytes.extend(server_frame(0x82, &long));
    bytes.extend(server_frame(0x89, b"hi"));
    let mut want = b"\x20\x02\x00\x00\x90\x03\x00\x01\x00".to_vec();
    want.extend(&long);
    let mut c = opened();
    let mut rbuf = BytesMut::new();
    let mut pong = false;
    for b in &bytes {
        pong |= c
            .receive(std::slice::from_ref(b), &mut rbuf)
            .unwrap()
            .wants_flush;
    }
    assert_eq!(&rbuf[..], &want[..]);
    assert!(pong);
    assert_eq!(parse_client_frames(&c.out), vec![(OP_PONG, b"hi".to_vec())]);
    // All at once gives the same.
    let mut c = opened();
    let mut rbuf = BytesMut::new();
    assert!(c.receive(&bytes, &mut rbuf).unwrap().wants_flush);
    assert_eq!(&rbuf[..], &want[..]);
}

#[test]
fn close_ends_the_stream() {
    let mut c = opened();
    let mut rbuf = BytesMut::new();
    let mut bytes = server_frame(0x82, b"\xd0\x00");
    bytes.extend(server_frame(0x88, &1001u16.to_be_bytes()));
    bytes.extend(server_frame(0x82, b"ignored"));
    let r = c.receive(&bytes, &mut rbuf).unwrap();
    assert_eq!(r.closed, Some(1001));
    assert_eq!(&rbuf[..], b"\xd0\x00");
    let mut c = opened();
    assert_eq!(
        c.receive(&server_frame(0x88, b""), &mut rbuf)
            .unwrap()
            .closed,
        Some(1005)
    );
}

#[test]
fn protocol_violations_are_errors() {
    let cases: [(&[u8], &str); 5] = [
        (b"\x82\x81abcd\x00", "masked"),
        (b"\x81\x00", "text"),
        (b"\xc2\x00", "reserved"),
        (b"\x09\x00", "fragmented control"),
        (b"\x83\x00", "unknown opcode"),
    ];
    for (bytes, what) in cases {
        let mut c = opened();
        let e = c.receive(bytes, &mut BytesMut::new()).unwrap_err();
        assert!(e.to_string().contains(what), "{what}: {e}");
    }
    let mut long_ping = vec![0x89, 126, 0, 126];
    long_ping.extend([0; 126]);
    let e = opened()
        .receive(&long_ping, &mut BytesMut::new())
        .unwrap_err();
    assert!(e.to_string().contains("125"), "{e}");
}

#[test]
fn our_frames_are_masked_and_split_at_the_frame_limit() {
    let mut c = opened();
    let data: Vec<u8> = (0..FRAME_PAYLOAD_MAX * 2 + 77).map(|i| i as u8).collect();
    let mut wbuf = BytesMut::from(&data[..]);
    c.frame(&mut wbuf);
    assert!(wbuf.is_empty());
    let small = BytesMut::from(&b"\xe0\x00"[..]);
    let mut small_buf = small.clone();
    c.frame(&mut small_buf);
    c.close();
    let frames = parse_client_frames(&c.out);
    let lens: Vec<usize> = frames.iter().map(|f| f.1.len()).collect();
    assert_eq!(lens, vec![FRAME_PAYLOAD_MAX, FRAME_PAYLOAD_MAX, 77, 2, 2]);
    let joined: Vec<u8> = frames[..3].iter().flat_map(|f| f.1.clone()).collect();
    assert_eq!(joined, data);
    assert_eq!(frames[3], (OP_BINARY, small.to_vec()));
    assert_eq!(frames[4], (OP_CLOSE, 1000u16.to_be_bytes().to_vec()));
}

#[test]
fn mask_matches_bytewise() {
    for len in 0..40 {
        let mut a: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let b: Vec<u8> = a
            .iter()
            .enumerate()
            .map(|(i, x)| x ^ [1, 2, 3, 250][i % 4])
            .collect();
        apply_mask(&mut a, [1, 2, 3, 250]);
        assert_eq!(a, b);
    }
}
