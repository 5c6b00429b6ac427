//! WebSocket frames (RFC 6455 §5), sans-IO: a decoder that unmasks client frames in place in the
//! caller's read buffer and moves their payload to its front, so the connection gets a plain
//! MQTT byte stream; and the few encoders a server needs (a binary frame's header, ping/pong and
//! close frames).
//!
//! Owns: the frame state between two reads (a partial header, the current frame's remaining
//! length and mask position, whether a fragmented message is open, a control frame's payload so
//! far): a few dozen bytes, so it can move with a hand-over to the home shard.
//! Never: does I/O, allocates for data frames, buffers a whole message, or panics on peer
//! bytes; every violation is a [`Violation`] carrying the close code to answer with.

/// Opcodes (RFC 6455 §5.2).
pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Close status codes (RFC 6455 §7.4.1).
pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
pub const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
pub const CLOSE_TOO_BIG: u16 = 1009;

/// A control frame's payload is at most 125 bytes (§5.5).
const CONTROL_PAYLOAD_MAX: usize = 125;
/// Fixed header, 8-byte extended length, 4-byte mask: the longest client frame header.
const HEADER_MAX: usize = 14;
/// The longest server frame header (no mask).
pub const SERVER_HEADER_MAX: usize = 10;

/// Why a client's frame ends the connection, and with which close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// A text frame: MQTT is carried in binary frames only [MQTT-6.0.0-1].
    Text,
    /// A client frame without a mask (§5.1).
    Unmasked,
    /// RSV bits set without a negotiated extension (§5.2).
    Reserved,
    /// An opcode RFC 6455 does not define.
    Opcode,
    /// A continuation with no message open, or a new message while one is open (§5.4).
    Fragmentation,
    /// A fragmented control frame, or one with more than 125 bytes of payload (§5.5).
    Control,
    /// A data frame larger than the listener allows.
    TooBig,
    /// A close frame with a one-byte payload or a status code that may not be sent (§7.4).
    ClosePayload,
}

impl Violation {
    pub fn close_code(self) -> u16 {
        match self {
            Violation::Text => CLOSE_UNSUPPORTED_DATA,
            Violation::TooBig => CLOSE_TOO_BIG,
            _ => CLOSE_PROTOCOL_ERROR,
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Violation::Text => "text frame (MQTT needs binary frames) [MQTT-6.0.0-1]",
            Violation::Unmasked => "unmasked client frame (RFC 6455 5.1)",
            Violation::Reserved => "reserved bits set (RFC 6455 5.2)",
            Violation::Opcode => "unknown opcode (RFC 6455 5.2)",
            Violation::Fragmentation => "bad fragmentation (RFC 6455 5.4)",
            Violation::Control => "fragmented or oversized control frame (RFC 6455 5.5)",
            Violation::TooBig => "frame larger than the maximum packet size",
            Violation::ClosePayload => "malformed close frame (RFC 6455 7.4)",
        })
    }
}

impl std::error::Error for Violation {}

/// A complete control frame from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Answer with a pong carrying the same payload.
    Ping(Vec<u8>),
    Pong,
    /// The client's close, with its status code if it sent one.
    Close(Option<u16>),
}

/// Where a decode step is in the caller's buffer: bytes before `read` have been decoded; the
/// unmasked payload of data frames is `buf[..data]` (`data <= read` always).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub read: usize,
    pub data: usize,
}

/// The frame decoder's state between reads.
#[derive(Debug, Clone)]
pub struct Decoder {
    /// Largest data frame payload accepted.
    payload_max: u64,
    /// A header being assembled across reads.
    head: [u8; HEADER_MAX],
    head_len: u8,
    /// Payload bytes of the current frame not yet read (0 between frames).
    remaining: u64,
    mask: [u8; 4],
    /// Offset into the mask of the next payload byte.
    mask_pos: u8,
    /// Opcode of the current frame.
    opcode: u8,
    /// A payload is being read (the header is complete).
    in_payload: bool,
    /// A fragmented binary message is open (continuations expected).
    in_message: bool,
    /// The current control frame's payload so far (allocated only while one is read).
    control: Vec<u8>,
}

impl Decoder {
    pub fn new(payload_max: u64) -> Decoder {
        Decoder {
            payload_max,
            head: [0; HEADER_MAX],
            head_len: 0,
            remaining: 0,
            mask: [0; 4],
            mask_pos: 0,
            opcode: 0,
            in_payload: false,
            in_message: false,
            control: Vec::new(),
        }
    }

    /// Decode `buf` from `cur.read` on: data frame payload is unmasked and moved to
    /// `buf[cur.data..]`. Returns at the end of `buf` (`Ok(None)`: anything partial is kept in
    /// the decoder) or right after a complete control frame (`Ok(Some(..))`: call again for the
    /// rest of `buf`).
    pub fn decode(
        &mut self,
        buf: &mut [u8],
        cur: &mut Cursor,
    ) -> Result<Option<Control>, Violation> {
        debug_assert!(cur.data <= cur.read && cur.read <= buf.len());
        while cur.read < buf.len() {
            if !self.in_payload {
                if !self.take_header(buf, cur)? {
                    return Ok(None);
                }
                if self.remaining == 0 {
                    if let Some(c) = self.end_of_frame()? {
                        return Ok(Some(c));
                    }
                }
                continue;
            }
            let avail = buf.len() - cur.read;
            let take = usize::try_from(self.remaining).map_or(avail, |r| r.min(avail));
            let chunk = &mut buf[cur.read..cur.read + take];
            unmask(chunk, self.mask, self.mask_pos);
            if is_control(self.opcode) {
                self.control.extend_from_slice(chunk);
            } else {
                buf.copy_within(cur.read..cur.read + take, cur.data);
                cur.data += take;
            }
            cur.read += take;
            self.remaining -= take as u64;
            self.mask_pos = ((self.mask_pos as usize + take) % 4) as u8;
            if self.remaining == 0 {
                if let Some(c) = self.end_of_frame()? {
                    return Ok(Some(c));
                }
            }
        }
        Ok(None)
    }

    /// Whether the decoder sits between frames with nothing partial (a clean point to stop).
    pub fn is_idle(&self) -> bool {
        !self.in_payload && self.head_len == 0 && !self.in_message
    }

    /// Take header bytes; true once the header is complete and checked.
    fn take_header(&mut self, buf: &[u8], cur: &mut Cursor) -> Result<bool, Violation> {
        loop {
            let need = header_len(&self.head[..self.head_len as usize]);
            let have = self.head_len as usize;
            if have == need {
                break;
            }
            let want = if have < 2 { 2 - have } else { need - have };
            let n = want.min(buf.len() - cur.read);
            self.head[have..have + n].copy_from_slice(&buf[cur.read..cur.read + n]);
            self.head_len += n as u8;
            cur.read += n;
            if self.head_len >= 2 {
                // Checked as soon as the first two bytes are here: a bad frame is refused
                // before its length is even read.
                self.check_start()?;
            }
            if n < want {
                return Ok(false);
            }
        }
        let h = &self.head[..self.head_len as usize];
        let (len, at) = match h[1] & 0x7F {
            126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), 4),
            127 => {
                let mut b = [0; 8];
                b.copy_from_slice(&h[2..10]);
                (u64::from_be_bytes(b), 10)
            }
            n => (u64::from(n), 2),
        };
        if len >> 63 != 0 {
            return Err(Violation::Reserved); // the most significant bit must be 0 (§5.2)
        }
        if is_control(self.opcode) {
            if len as usize > CONTROL_PAYLOAD_MAX {
                return Err(Violation::Control);
            }
        } else if len > self.payload_max {
            return Err(Violation::TooBig);
        }
        self.mask.copy_from_slice(&h[at..at + 4]);
        self.mask_pos = 0;
        self.remaining = len;
        self.head_len = 0;
        self.in_payload = true;
        Ok(true)
    }

    /// Check the first two header bytes: bits, opcode, mask, fragmentation.
    fn check_start(&mut self) -> Result<(), Violation> {
        let (b0, b1) = (self.head[0], self.head[1]);
        if b0 & 0x70 != 0 {
            return Err(Violation::Reserved);
        }
        if b1 & 0x80 == 0 {
            return Err(Violation::Unmasked);
        }
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0F;
        match opcode {
            OP_TEXT => return Err(Violation::Text),
            OP_BINARY if self.in_message => return Err(Violation::Fragmentation),
            OP_CONTINUATION if !self.in_message => return Err(Violation::Fragmentation),
            OP_BINARY | OP_CONTINUATION => {}
            OP_CLOSE | OP_PING | OP_PONG if !fin => return Err(Violation::Control),
            OP_CLOSE | OP_PING | OP_PONG => {}
            _ => return Err(Violation::Opcode),
        }
        self.opcode = opcode;
        Ok(())
    }

    /// The current frame's payload is complete.
    fn end_of_frame(&mut self) -> Result<Option<Control>, Violation> {
        self.in_payload = false;
        let fin = self.head[0] & 0x80 != 0;
        match self.opcode {
            OP_BINARY | OP_CONTINUATION => {
                self.in_message = !fin;
                Ok(None)
            }
            OP_PING => Ok(Some(Control::Ping(std::mem::take(&mut self.control)))),
            OP_PONG => {
                self.control = Vec::new();
                Ok(Some(Control::Pong))
            }
            _ => {
                let p = std::mem::take(&mut self.control);
                match p.len() {
                    0 => Ok(Some(Control::Close(None))),
                    1 => Err(Violation::ClosePayload),
                    _ => {
                        let code = u16::from_be_bytes([p[0], p[1]]);
                        if !close_code_valid(code) {
                            return Err(Violation::ClosePayload);
                        }
                        Ok(Some(Control::Close(Some(code))))
                    }
                }
            }
        }
    }
}

fn is_control(opcode: u8) -> bool {
    opcode & 0x8 != 0
}

/// The length of a client frame header from what is known of it (2 until the length byte).
fn header_len(head: &[u8]) -> usize {
    if head.len() < 2 {
        return 2;
    }
    2 + match head[1] & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    } + 4
}

/// Codes a peer may send in a close frame (§7.4.1, §7.4.2).
fn close_code_valid(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// XOR `bytes` with `mask`, starting at mask offset `pos`: eight bytes at a time.
fn unmask(bytes: &mut [u8], mask: [u8; 4], pos: u8) {
    let mut m = [0u8; 4];
    for (i, b) in m.iter_mut().enumerate() {
        *b = mask[(i + pos as usize) % 4];
    }
    let wide = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut chunks = bytes.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ wide).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= m[i % 4];
    }
}

/// The header of one unmasked, final binary frame of `len` payload bytes, into `out`; returns
/// its length.
pub fn binary_header(len: usize, out: &mut [u8; SERVER_HEADER_MAX]) -> usize {
    header(0x80 | OP_BINARY, len, out)
}

fn header(b0: u8, len: usize, out: &mut [u8; SERVER_HEADER_MAX]) -> usize {
    out[0] = b0;
    if len < 126 {
        out[1] = len as u8;
        2
    } else if len <= usize::from(u16::MAX) {
        out[1] = 126;
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// Append a control frame (ping, pong, close) to `out`; the payload is cut at 125 bytes.
pub fn control_frame(opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    debug_assert!(is_control(opcode));
    let payload = &payload[..payload.len().min(CONTROL_PAYLOAD_MAX)];
    let mut h = [0; SERVER_HEADER_MAX];
    let n = header(0x80 | opcode, payload.len(), &mut h);
    out.extend_from_slice(&h[..n]);
    out.extend_from_slice(payload);
}

/// Append a close frame with `code` to `out`.
pub fn close_frame(code: u16, out: &mut Vec<u8>) {
    control_frame(OP_CLOSE, &code.to_be_bytes(), out);
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
