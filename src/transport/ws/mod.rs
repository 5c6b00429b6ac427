//! MQTT over WebSocket: a [`Transport`] that turns binary WebSocket frames into the MQTT byte
//! stream the connection loop reads, and back. Our own sans-IO codec ([`frame`], [`handshake`])
//! driven by a small adapter, for the same reason as TLS's: the frame state must move to the
//! client id's home shard after the CONNECT ([`WsStream::into_parts`] / [`WsStream::from_parts`]),
//! and WebSocket crates keep it inside their stream type and buffer whole messages.
//!
//! Reads: the inner stream is read straight into the caller's buffer (the shard's read chunk,
//! `net::read_chunk`); frames are unmasked there in place and their payload moved to its front, so a
//! frame may hold several MQTT packets and a packet may span frames at no cost. Pings are
//! answered, a client's close is answered and ends the stream. Writes: each chunk the connection
//! flushes becomes one unmasked binary frame; the header and the first bytes of payload leave
//! in one write through a per-thread buffer, the rest of a large frame straight from the
//! caller's bytes.
//!
//! Never: panics on peer bytes (a violation sends its close code, best effort, and is an I/O
//! error), interleaves a control frame into an unfinished data frame, or holds peer bytes that
//! a hand-over would lose (the bytes read past the handshake and the frame state move with it).

pub mod frame;
pub mod handshake;

use super::Transport;
use frame::{Control, Cursor, Decoder};
use futures_lite::{AsyncRead, AsyncWrite};
use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// Bytes of a frame's start (header + payload) copied to leave in one write.
const WRITE_CHUNK: usize = 16 * 1024;

thread_local! {
    /// A frame header and the start of its payload, assembled for one write.
    static OUT: RefCell<Vec<u8>> = RefCell::new(vec![0; WRITE_CHUNK]);
}

/// The WebSocket state of a connection, without its stream: what a hand-over carries.
#[derive(Debug)]
pub struct WsState {
    decoder: Decoder,
    /// Bytes read from the socket but not yet decoded (what followed the handshake request).
    stash: Vec<u8>,
    /// Control frames (pong, close) waiting for the end of the current data frame.
    control_out: Vec<u8>,
    /// Header bytes of the current outgoing frame not yet written, and how many.
    head: [u8; frame::SERVER_HEADER_MAX],
    head_len: u8,
    head_sent: u8,
    /// Payload bytes of the current outgoing frame not yet written.
    payload_left: usize,
    /// We sent (or queued) a close frame: no new data frames.
    close_sent: bool,
    /// The client sent a close frame: the stream has ended.
    close_received: bool,
}

impl WsState {
    /// A fresh state after the handshake; `stash` is what was read past the request.
    pub fn new(frame_payload_max: u64, stash: Vec<u8>) -> WsState {
        WsState {
            decoder: Decoder::new(frame_payload_max),
            stash,
            control_out: Vec::new(),
            head: [0; frame::SERVER_HEADER_MAX],
            head_len: 0,
            head_sent: 0,
            payload_left: 0,
            close_sent: false,
            close_received: false,
        }
    }

    fn mid_frame(&self) -> bool {
        self.head_sent < self.head_len || self.payload_left > 0
    }

    fn queue_close(&mut self, code: u16) {
        if !self.close_sent {
            self.close_sent = true;
            frame::close_frame(code, &mut self.control_out);
        }
    }
}

pub struct WsStream<S> {
    io: S,
    ws: Box<WsState>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsStream<S> {
    pub fn from_parts(io: S, ws: Box<WsState>) -> Self {
        WsStream { io, ws }
    }

    pub fn into_parts(self) -> (S, Box<WsState>) {
        (self.io, self.ws)
    }

    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// Write queued control frames if no data frame is unfinished. Ready(Ok) when none wait.
    fn poll_control(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.ws.mid_frame() {
            return Poll::Ready(Ok(()));
        }
        while !self.ws.control_out.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.ws.control_out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.ws.control_out.drain(..n);
        }
        self.ws.control_out = Vec::new();
        Poll::Ready(Ok(()))
    }

    /// Answer a control frame from the client.
    fn on_control(&mut self, c: Control) {
        match c {
            Control::Ping(payload) => {
                if !self.ws.close_sent {
                    frame::control_frame(frame::OP_PONG, &payload, &mut self.ws.control_out);
                }
            }
            Control::Pong => {}
            Control::Close(code) => {
                self.ws.close_received = true;
                // Echo the client's code (§5.5.1); a close without one gets a plain close.
                self.ws.queue_close(code.unwrap_or(frame::CLOSE_NORMAL));
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            if this.ws.close_received || buf.is_empty() {
                // Our answer goes out with the next flush or close.
                let _ = this.poll_control(cx);
                return Poll::Ready(Ok(0));
            }
            let n = if this.ws.stash.is_empty() {
                ready!(Pin::new(&mut this.io).poll_read(cx, buf))?
            } else {
                let n = this.ws.stash.len().min(buf.len());
                buf[..n].copy_from_slice(&this.ws.stash[..n]);
                this.ws.stash.drain(..n);
                if this.ws.stash.is_empty() {
                    this.ws.stash = Vec::new();
                }
                n
            };
            if n == 0 {
                return Poll::Ready(Ok(0)); // the socket ended without a close frame
            }
            // Data after our close frame is discarded; data before the client's is the stream's.
            let discarding = this.ws.close_sent;
            let mut cur = Cursor::default();
            while cur.read < n && !this.ws.close_received {
                match this.ws.decoder.decode(&mut buf[..n], &mut cur) {
                    Ok(None) => {}
                    Ok(Some(c)) => this.on_control(c),
                    Err(v) => {
                        this.ws.queue_close(v.close_code());
                        // Best effort now: a connection that never got to be served (still
                        // reading its CONNECT) is dropped without a graceful close.
                        let _ = this.poll_control(cx);
                        return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, v)));
                    }
                }
            }
            if let Poll::Ready(Err(e)) = this.poll_control(cx) {
                return Poll::Ready(Err(e));
            }
            if cur.data > 0 && !discarding {
                return Poll::Ready(Ok(cur.data));
            }
            // Only control frames (or data after our close, discarded): read on.
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            ready!(this.poll_control(cx))?;
            let ws = &mut *this.ws;
            if !ws.mid_frame() {
                if ws.close_sent {
                    // After a close frame nothing more may be sent: the bytes are dropped as
                    // a closed socket would drop them.
                    return Poll::Ready(Ok(buf.len()));
                }
                ws.head_len = frame::binary_header(buf.len(), &mut ws.head) as u8;
                ws.head_sent = 0;
                ws.payload_left = buf.len();
            }
            let body = &buf[..buf.len().min(ws.payload_left)];
            if ws.head_sent == ws.head_len {
                // Past the header: straight from the caller's bytes.
                let n = ready!(Pin::new(&mut this.io).poll_write(cx, body))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                ws.payload_left -= n;
                return Poll::Ready(Ok(n));
            }
            // The header's rest and the start of the payload in one write.
            let head = &ws.head[ws.head_sent as usize..ws.head_len as usize];
            let written = OUT.with(|out| {
                let mut out = out.borrow_mut();
                let take = body.len().min(WRITE_CHUNK - head.len());
                out[..head.len()].copy_from_slice(head);
                out[head.len()..head.len() + take].copy_from_slice(&body[..take]);
                Pin::new(&mut this.io).poll_write(cx, &out[..head.len() + take])
            });
            let n = ready!(written)?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let h = n.min(head.len());
            ws.head_sent += h as u8;
            let p = n - h;
            ws.payload_left -= p;
            if p > 0 {
                return Poll::Ready(Ok(p));
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_control(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.ws.mid_frame() {
            this.ws.queue_close(frame::CLOSE_NORMAL);
        }
        ready!(this.poll_control(cx))?;
        Pin::new(&mut this.io).poll_close(cx)
    }
}

impl<S: Transport> Transport for WsStream<S> {
    async fn shutdown_write(&mut self) -> io::Result<()> {
        // A close frame first (unless a data frame was left unfinished, which only a failing
        // socket does), so the client sees a clean WebSocket close, then the inner half-close.
        if !self.ws.mid_frame() {
            self.ws.queue_close(frame::CLOSE_NORMAL);
        }
        poll_fn(|cx| self.poll_control(cx)).await?;
        self.io.shutdown_write().await
    }

    fn socket_fd(&self) -> std::os::fd::RawFd {
        self.io.socket_fd()
    }
}

/// Why a handshake did not produce a WebSocket stream.
#[derive(Debug)]
pub enum Refused {
    /// Answer with this HTTP response, then close.
    Http(handshake::Reject),
    /// Not an upgrade: a chat demo page to answer with, then close.
    Page(handshake::Page),
    Io(io::Error),
}

/// The opening handshake on `io`: read the request (bounded by
/// [`crate::limits::WS_HANDSHAKE_BYTES_MAX`]; the caller bounds the time), check it against
/// `policy`, answer 101. Returns the bytes read past the request.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    policy: &handshake::Policy,
) -> Result<Vec<u8>, Refused> {
    let mut req = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        // `parse` refuses a request that outgrows the bound, so `req` stays within a chunk of it.
        let n = poll_fn(|cx| Pin::new(&mut *io).poll_read(cx, &mut chunk))
            .await
            .map_err(Refused::Io)?;
        if n == 0 {
            return Err(Refused::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        req.extend_from_slice(&chunk[..n]);
        match handshake::parse_request(&req, policy) {
            Ok(None) => continue,
            Ok(Some((handshake::Request::Page(page), _))) => return Err(Refused::Page(page)),
            Ok(Some((handshake::Request::Upgrade(upgrade), len))) => {
                let resp = handshake::response(&upgrade);
                let mut sent = 0;
                while sent < resp.len() {
                    let n = poll_fn(|cx| Pin::new(&mut *io).poll_write(cx, &resp[sent..]))
                        .await
                        .map_err(Refused::Io)?;
                    if n == 0 {
                        return Err(Refused::Io(io::ErrorKind::WriteZero.into()));
                    }
                    sent += n;
                }
                poll_fn(|cx| Pin::new(&mut *io).poll_flush(cx))
                    .await
                    .map_err(Refused::Io)?;
                req.drain(..len);
                req.shrink_to_fit();
                return Ok(req);
            }
            Err(r) => return Err(Refused::Http(r)),
        }
    }
}
