//! A hand-written MQTT-over-WebSocket client for tests of framing and refusals: the RFC 6455
//! upgrade, masked client frames built byte by byte, and the server's frames read back (checked
//! unmasked) with the MQTT packets they carry. Included by the broker and conformance suites
//! with `#[path = "../support/ws_raw.rs"]`.

use crate::raw_client::{connect_packet, wire as encode, WAIT};
use bytes::BytesMut;
use ringmq::codec::{self, Packet, Protocol};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const MASK: [u8; 4] = [0xA1, 0x02, 0x7C, 0xE9];

/// A masked client frame (`b0`: FIN bit and opcode).
pub fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
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
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

pub fn binary(payload: &[u8]) -> Vec<u8> {
    frame(0x82, payload)
}

pub struct WsRaw {
    s: TcpStream,
    inbuf: Vec<u8>,
    mqtt: BytesMut,
}

/// Send an Upgrade request for `path` with `extra` header lines (offering subprotocol `mqtt` and
/// version 13 unless `extra` has its own); the status code and the connection. A 101 must carry
/// the key's accept value and the subprotocol `mqtt`.
pub async fn upgrade(port: u16, path: &str, extra: &[&str]) -> (u16, WsRaw) {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    if !extra
        .iter()
        .any(|h| h.starts_with("Sec-WebSocket-Protocol"))
    {
        req.push_str("Sec-WebSocket-Protocol: mqtt\r\n");
    }
    if !extra.iter().any(|h| h.starts_with("Sec-WebSocket-Version")) {
        req.push_str("Sec-WebSocket-Version: 13\r\n");
    }
    for h in extra {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.expect("send request");
    let mut inbuf = Vec::new();
    let end = loop {
        if let Some(i) = inbuf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(WAIT, s.read(&mut chunk))
            .await
            .expect("response in time")
            .expect("read response");
        assert!(n > 0, "closed before a response: {inbuf:?}");
        inbuf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&inbuf[..end]).to_string();
    let status = head[9..12].parse().expect("status code");
    if status == 101 {
        assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(head.contains("Sec-WebSocket-Protocol: mqtt"));
    }
    inbuf.drain(..end);
    let raw = WsRaw {
        s,
        inbuf,
        mqtt: BytesMut::new(),
    };
    (status, raw)
}

impl WsRaw {
    pub async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.expect("send");
    }

    /// The next server frame (FIN/opcode byte, payload), or None at end of stream or after
    /// `within`. Server frames must not be masked.
    pub async fn frame(&mut self, within: Duration) -> Option<(u8, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some((b0, len, at)) = server_header(&self.inbuf) {
                if self.inbuf.len() >= at + len {
                    let payload = self.inbuf[at..at + len].to_vec();
                    self.inbuf.drain(..at + len);
                    return Some((b0, payload));
                }
            }
            let mut chunk = vec![0u8; 64 * 1024];
            let n = tokio::time::timeout_at(deadline, self.s.read(&mut chunk)).await;
            match n {
                Ok(Ok(n)) if n > 0 => self.inbuf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// The next MQTT packet carried in binary frames; control frames on the way are returned
    /// in `controls`.
    pub async fn packet(&mut self, controls: &mut Vec<(u8, Vec<u8>)>) -> Packet {
        loop {
            if let Some(p) = codec::decode(&mut self.mqtt, Protocol::V5, 1 << 20).expect("decode") {
                return p;
            }
            let (b0, payload) = self.frame(WAIT).await.expect("a frame");
            match b0 {
                0x82 => self.mqtt.extend_from_slice(&payload),
                _ => controls.push((b0, payload)),
            }
        }
    }

    /// True if the peer closes (EOF or reset) within `within`, discarding what comes first.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        let mut sink = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(deadline, self.s.read(&mut sink)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }

    pub async fn connect(&mut self, id: &str) {
        let c = connect_packet(Protocol::V5, id);
        self.send(&binary(&encode(
            &Packet::Connect(Box::new(c)),
            Protocol::V5,
        )))
        .await;
        let p = self.packet(&mut Vec::new()).await;
        assert!(matches!(p, Packet::ConnAck(ref a) if a.code == 0), "{p:?}");
    }
}

/// A server frame's header: (b0, payload length, header length), if complete. Panics on a
/// masked server frame (RFC 6455 §5.1).
fn server_header(b: &[u8]) -> Option<(u8, usize, usize)> {
    if b.len() < 2 {
        return None;
    }
    assert_eq!(b[1] & 0x80, 0, "server frames are never masked");
    match b[1] & 0x7F {
        126 if b.len() >= 4 => Some((b[0], u16::from_be_bytes([b[2], b[3]]) as usize, 4)),
        127 if b.len() >= 10 => {
            let mut l = [0; 8];
            l.copy_from_slice(&b[2..10]);
            Some((b[0], u64::from_be_bytes(l) as usize, 10))
        }
        126 | 127 => None,
        n => Some((b[0], n as usize, 2)),
    }
}
