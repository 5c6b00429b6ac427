//! MQTT over WebSocket for benchmark clients (`--ws`, `--ws-path`): the client side of RFC 6455,
//! sans-IO, between the client's MQTT buffers and its socket.
//!
//! Owns: the opening handshake (GET with a fresh `Sec-WebSocket-Key`, `Sec-WebSocket-Protocol:
//! mqtt`; the 101, the `Sec-WebSocket-Accept` and the subprotocol are checked), framing our
//! bytes into masked binary frames, and a streaming decoder for the broker's frames that copies
//! data payload straight into the MQTT read buffer (a packet may span frames, a frame may hold
//! several packets), answers pings and reports a close.
//!
//! Written here rather than taken from a crate (or from the broker's `src/transport/ws/`): the
//! harness must not share the broker's framing, or a bug in it would pass both sides unseen; and
//! the WebSocket crates buffer whole messages and own the socket, where the generator needs
//! every batch of packets to stay one `write()` and every read to be timestamped once.
//!
//! Costs on the load path: a write copies the batched packets once into the frame buffer,
//! masking as it copies (8 bytes at a time); a read copies frame payload into the read buffer,
//! as the plain path copies what it read. Never: sends data before the 101 (RFC 6455 §4.1), or
//! panics on the broker's bytes (a violation is an error that fails the connection).

use base64::Engine as _;
use bytes::BytesMut;
use sha1::{Digest, Sha1};
use std::fmt;

/// Largest payload of one frame we send. A batch above it leaves as several frames in the same
/// write. Far below any broker's frame limit (ringmq refuses frames above its maximum packet
/// size, 1 MiB by default), and big enough that the 4-byte header is noise.
const FRAME_PAYLOAD_MAX: usize = 16 * 1024;
/// Largest upgrade response we wait for (headers and all).
const RESPONSE_BYTES_MAX: usize = 8 * 1024;
/// RFC 6455 §1.3: the GUID appended to the key before hashing.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// What the broker sent that ends the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsError {
    /// The upgrade was refused or its answer is wrong (what, and the status line or header).
    Handshake(String),
    /// A frame breaks RFC 6455 (or MQTT's use of it: [MQTT-6.0.0-1] binary frames only).
    Frame(&'static str),
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::Handshake(s) => write!(f, "WebSocket handshake: {s}"),
            WsError::Frame(s) => write!(f, "WebSocket frame: {s}"),
        }
    }
}

/// The settings every WebSocket connection of a run shares.
#[derive(Debug, Clone)]
pub struct WsClient {
    /// The request target, e.g. `/mqtt`.
    pub path: String,
    /// The `Host` header: `host:port` of the broker.
    pub host: String,
}

impl WsClient {
    /// A fresh connection state whose upgrade request waits in `out`. `seed` makes the key and
    /// the masks differ between connections.
    pub fn connection(&self, seed: u64) -> WsConn {
        let mut rng = XorShift::new(seed);
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&rng.next().to_le_bytes());
        key[8..].copy_from_slice(&rng.next().to_le_bytes());
        let key = base64::engine::general_purpose::STANDARD.encode(key);
        let mut out = BytesMut::new();
        out.extend_from_slice(
            format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Protocol: mqtt\r\n\r\n",
                self.path, self.host
            )
            .as_bytes(),
        );
        WsConn {
            accept: accept_for(&key),
            response: Some(Vec::new()),
            out,
            rng,
            decoder: Decoder::default(),
        }
    }
}

/// `Sec-WebSocket-Accept` for a key (RFC 6455 §4.2.2): base64(SHA-1(key + GUID)).
pub fn accept_for(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// What a call to [`WsConn::receive`] found, beyond the MQTT bytes it added.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// `out` has bytes to send (the handshake completed, so held MQTT may go; or a pong).
    pub wants_flush: bool,
    /// The broker sent a close frame: the stream has ended (its status code, if any).
    pub closed: Option<u16>,
}

/// One connection's WebSocket state.
pub struct WsConn {
    /// The `Sec-WebSocket-Accept` the broker must answer with.
    accept: String,
    /// `Some` until the upgrade response is complete: its bytes so far.
    response: Option<Vec<u8>>,
    /// Bytes ready for the socket: the request, then whole frames (so a pong can be appended
    /// at any time without splitting a data frame).
    pub out: BytesMut,
    rng: XorShift,
    decoder: Decoder,
}

impl WsConn {
    /// The upgrade completed: MQTT bytes may be framed.
    pub fn is_open(&self) -> bool {
        self.response.is_none()
    }

    /// Move the MQTT bytes of `wbuf` into `out` as masked binary frames. Until the upgrade
    /// completes they stay in `wbuf` (RFC 6455 §4.1: nothing before the 101).
    pub fn frame(&mut self, wbuf: &mut BytesMut) {
        if !self.is_open() {
            return;
        }
        let mut data: &[u8] = wbuf;
        while !data.is_empty() {
            let n = data.len().min(FRAME_PAYLOAD_MAX);
            self.push_frame(OP_BINARY, &data[..n]);
            data = &data[n..];
        }
        wbuf.clear();
    }

    /// Queue a close frame (status 1000, normal closure) after whatever is framed already.
    pub fn close(&mut self) {
        if self.is_open() {
            self.push_frame(OP_CLOSE, &1000u16.to_be_bytes());
        }
    }

    /// One masked frame (FIN set) into `out`: header, key, payload masked as it is copied.
    fn push_frame(&mut self, opcode: u8, payload: &[u8]) {
        let mask = (self.rng.next() as u32).to_ne_bytes();
        let len = payload.len();
        self.out.reserve(14 + len);
        self.out.extend_from_slice(&[0x80 | opcode]);
        if len < 126 {
            self.out.extend_from_slice(&[0x80 | len as u8]);
        } else if len <= usize::from(u16::MAX) {
            self.out.extend_from_slice(&[0x80 | 126]);
            self.out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            self.out.extend_from_slice(&[0x80 | 127]);
            self.out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        self.out.extend_from_slice(&mask);
        let at = self.out.len();
        self.out.extend_from_slice(payload);
        apply_mask(&mut self.out[at..], mask);
    }

    /// Bytes read from the socket: the rest of the upgrade response, then frames, whose data
    /// payload is appended to `rbuf`. Stops at a close frame (what follows it is ignored).
    pub fn receive(&mut self, mut input: &[u8], rbuf: &mut BytesMut) -> Result<Received, WsError> {
        let mut r = Received::default();
        if let Some(resp) = self.response.as_mut() {
            // Append only up to the end of the headers: frames may follow in the same read.
            let before = resp.len();
            resp.extend_from_slice(&input[..input.len().min(RESPONSE_BYTES_MAX)]);
            let Some(end) = find(resp, b"\r\n\r\n") else {
                if resp.len() >= RESPONSE_BYTES_MAX {
                    return Err(WsError::Handshake("response headers too long".into()));
                }
                return Ok(r);
            };
            let head_end = end + 4;
            check_response(&resp[..head_end], &self.accept)?;
            input = &input[head_end - before..];
            self.response = None;
            r.wants_flush = true;
        }
        while !input.is_empty() {
            let (used, event) = self.decoder.decode(input, rbuf)?;
            input = &input[used..];
            match event {
                None => {}
                Some(Control::Ping(payload)) => {
                    self.push_frame(OP_PONG, &payload);
                    r.wants_flush = true;
                }
                Some(Control::Close(code)) => {
                    r.closed = Some(code.unwrap_or(1005));
                    return Ok(r);
                }
            }
        }
        Ok(r)
    }
}

/// Check the upgrade response (status line and headers, up to the blank line).
fn check_response(head: &[u8], accept: &str) -> Result<(), WsError> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let mut parts = status.split(' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") || parts.next() != Some("101") {
        return Err(WsError::Handshake(format!("refused: {status:?}")));
    }
    let (mut upgrade, mut got_accept, mut protocol) = (false, None, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "upgrade" => upgrade = value.eq_ignore_ascii_case("websocket"),
            "sec-websocket-accept" => got_accept = Some(value.to_string()),
            "sec-websocket-protocol" => protocol = Some(value.to_string()),
            _ => {}
        }
    }
    if !upgrade {
        return Err(WsError::Handshake("no Upgrade: websocket".into()));
    }
    if got_accept.as_deref() != Some(accept) {
        return Err(WsError::Handshake(format!(
            "Sec-WebSocket-Accept {got_accept:?}, expected {accept:?}"
        )));
    }
    if !protocol
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case("mqtt"))
    {
        return Err(WsError::Handshake(format!(
            "subprotocol {protocol:?}, expected \"mqtt\" [MQTT-6.0.0-3]"
        )));
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// XOR `buf` with the 4-byte `mask` (starting at its first byte), 8 bytes at a time.
fn apply_mask(buf: &mut [u8], mask: [u8; 4]) {
    let m = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ m).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

/// A control frame the decoder finished.
#[derive(Debug, PartialEq, Eq)]
enum Control {
    Ping(Vec<u8>),
    /// The status code, if the close frame carried one.
    Close(Option<u16>),
}

/// The broker's frames, decoded as they stream in: a header may arrive a byte at a time and a
/// payload over many reads, so the state between reads is the header so far or the payload
/// bytes left.
#[derive(Default)]
struct Decoder {
    head: [u8; 10],
    head_len: usize,
    /// A payload is being read (its header is complete).
    in_payload: bool,
    remaining: u64,
    opcode: u8,
    /// A control frame's payload so far (at most 125 bytes).
    control: Vec<u8>,
}

impl Decoder {
    /// Decode from `input`; data payload goes to `rbuf`. Returns how many bytes were used:
    /// all of them, or fewer right after a control frame the caller must act on.
    fn decode(
        &mut self,
        input: &[u8],
        rbuf: &mut BytesMut,
    ) -> Result<(usize, Option<Control>), WsError> {
        let mut i = 0;
        while i < input.len() {
            if !self.in_payload {
                i += self.take_header(&input[i..])?;
                if !self.in_payload {
                    break; // header incomplete: wait for more
                }
            } else {
                let take = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(input.len() - i);
                let chunk = &input[i..i + take];
                if self.opcode >= OP_CLOSE {
                    self.control.extend_from_slice(chunk);
                } else {
                    rbuf.extend_from_slice(chunk);
                }
                i += take;
                self.remaining -= take as u64;
            }
            if self.in_payload && self.remaining == 0 {
                self.in_payload = false;
                if let Some(c) = self.end_of_frame() {
                    return Ok((i, Some(c)));
                }
            }
        }
        Ok((i, None))
    }

    /// Take header bytes from `input`; returns how many were used. Sets `in_payload` once the
    /// header is complete and valid.
    fn take_header(&mut self, input: &[u8]) -> Result<usize, WsError> {
        let mut used = 0;
        loop {
            let need = match self.head_len {
                0 | 1 => 2,
                _ => match self.head[1] & 0x7F {
                    126 => 4,
                    127 => 10,
                    _ => 2,
                },
            };
            if self.head_len == need {
                break;
            }
            let n = (need - self.head_len).min(input.len() - used);
            if n == 0 {
                return Ok(used);
            }
            self.head[self.head_len..self.head_len + n].copy_from_slice(&input[used..used + n]);
            self.head_len += n;
            used += n;
            if self.head_len == 2 {
                self.check_start()?;
            }
        }
        let h = &self.head;
        let len = match h[1] & 0x7F {
            126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            127 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
            n => u64::from(n),
        };
        if self.opcode >= OP_CLOSE && len > 125 {
            return Err(WsError::Frame("control frame payload over 125 bytes"));
        }
        self.remaining = len;
        self.head_len = 0;
        self.in_payload = true;
        self.control.clear();
        Ok(used)
    }

    /// The first two header bytes: no extension bits, a known opcode, unmasked, control
    /// frames unfragmented.
    fn check_start(&mut self) -> Result<(), WsError> {
        let (b0, b1) = (self.head[0], self.head[1]);
        if b0 & 0x70 != 0 {
            return Err(WsError::Frame(
                "reserved bits set (no extension was negotiated)",
            ));
        }
        if b1 & 0x80 != 0 {
            return Err(WsError::Frame(
                "masked frame from the server (RFC 6455 §5.1)",
            ));
        }
        let opcode = b0 & 0x0F;
        match opcode {
            OP_CONTINUATION | OP_BINARY => {}
            OP_TEXT => return Err(WsError::Frame("text frame [MQTT-6.0.0-1]")),
            OP_CLOSE | OP_PING | OP_PONG if b0 & 0x80 == 0 => {
                return Err(WsError::Frame("fragmented control frame"))
            }
            OP_CLOSE | OP_PING | OP_PONG => {}
            _ => return Err(WsError::Frame("unknown opcode")),
        }
        self.opcode = opcode;
        Ok(())
    }

    fn end_of_frame(&mut self) -> Option<Control> {
        match self.opcode {
            OP_PING => Some(Control::Ping(std::mem::take(&mut self.control))),
            OP_CLOSE => {
                let c = &self.control;
                Some(Control::Close(
                    (c.len() >= 2).then(|| u16::from_be_bytes([c[0], c[1]])),
                ))
            }
            _ => None,
        }
    }
}

/// xorshift64*: masks need only differ per frame here (RFC 6455 §5.3 asks for unpredictable
/// keys to protect proxies from a hostile script; a load generator on loopback has no such
/// script, and a CSPRNG per frame would cost more than the masking).
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        // Never zero (a zero state stays zero); mix so nearby seeds give unrelated keys.
        XorShift((seed ^ 0x9E37_79B9_7F4A_7C15).wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The client settings from the broker flags, if `--ws`.
pub fn from_args(b: &crate::cli::BrokerArgs) -> Result<Option<WsClient>, String> {
    if !b.ws {
        return Ok(None);
    }
    if b.tls || b.tls_ca.is_some() {
        return Err("--ws with --tls (wss) is not supported".into());
    }
    if !b.ws_path.starts_with('/') {
        return Err(format!("--ws-path {:?} must start with /", b.ws_path));
    }
    Ok(Some(WsClient {
        path: b.ws_path.clone(),
        host: format!("{}:{}", b.host, b.port),
    }))
}

#[cfg(test)]
#[path = "ws_tests.rs"]
mod tests;
