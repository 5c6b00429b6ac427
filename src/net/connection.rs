//! One task per TCP connection: read the CONNECT (within the connect timeout), hand the socket to
//! the client id's home shard if it landed elsewhere, then loop: read → decode → handle, and
//! write whatever sessions put in the connection's output buffer, coalesced into one send.
//!
//! Never: panics on peer bytes, lets one connection's error touch another, or keeps an idle
//! connection's buffers large (they shrink back when drained).

use super::handler::{Close, Conn};
use crate::auth::AuthStep;
use crate::codec::{self, DecodeError, Packet, Protocol};
use crate::limits;
use crate::session::ConnLink;
use crate::shard::runtime::ShardCtx;
use crate::shard::{home_shard, HandOver, MeshMsg};
use bytes::{Buf, BytesMut};
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Above this capacity an empty buffer is released rather than kept for the next packet.
const IDLE_BUFFER_KEEP_BYTES: usize = 16 * 1024;

enum Io {
    Read,
    Eof,
    Error(io::Error),
    CloseRequested(u8),
}

/// A freshly accepted connection: read its CONNECT, then serve it here or on its home shard.
pub async fn serve_new(ctx: ShardCtx, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let max = ctx.cfg.packet_bytes_max;
    let mut rbuf = BytesMut::new();
    let deadline = Duration::from_millis(ctx.cfg.connect_timeout_ms);
    let first = futures_lite::future::or(read_first(&mut stream, &mut rbuf, max), async {
        glommio::timer::sleep(deadline).await;
        Err(FirstError::Timeout)
    })
    .await;
    let mut connect = match first {
        Ok(Packet::Connect(c)) => c,
        Ok(other) => {
            // [MQTT-3.1.0-1]: the first packet must be CONNECT.
            log::debug!("first packet was not CONNECT: {:?}", packet_name(&other));
            return;
        }
        Err(FirstError::Decode(e, version)) => {
            refuse_bad_connect(&mut stream, e, version).await;
            return;
        }
        Err(FirstError::Timeout) => {
            log::debug!("no CONNECT within {deadline:?}; closing");
            return;
        }
        Err(FirstError::Io) => return,
    };
    let mut assigned = false;
    if connect.client_id.is_empty() {
        // Assigned here so the home shard can be chosen; refused later if the version and
        // clean flag don't allow it [MQTT-3.1.3-8].
        connect.client_id = assign_client_id(ctx.shard.borrow().id).into();
        assigned = true;
    }
    let (me, shards) = {
        let s = ctx.shard.borrow();
        (s.id, s.shards)
    };
    let home = home_shard(&connect.client_id, shards);
    if home == me {
        // A task of its own, so this one (and the CONNECT-reading state it carries) ends and
        // frees its memory: an idle connection keeps only the serving task.
        glommio::spawn_local(serve_connected(ctx, stream, connect, rbuf, assigned)).detach();
        return;
    }
    // Hand the socket to the home shard with what we read past the CONNECT. dup() so that
    // dropping glommio's stream here does not close the socket.
    // SAFETY: dup of an fd we own; the new fd is owned by the HandOver.
    let fd = unsafe { libc::dup(stream.as_raw_fd()) };
    drop(stream);
    if fd < 0 {
        log::warn!(
            "dup failed during hand-over: {}",
            io::Error::last_os_error()
        );
        return;
    }
    // SAFETY: `fd` is a fresh descriptor we own.
    let h = unsafe { HandOver::new(fd, connect, rbuf.freeze(), assigned) };
    ctx.shard
        .borrow_mut()
        .send_to(home, MeshMsg::HandOver(Box::new(h)));
}

/// A connection handed over by another shard: this is the client id's home.
pub fn spawn_handed_over(ctx: &ShardCtx, h: HandOver) {
    let ctx = ctx.clone();
    glommio::spawn_local(async move {
        // SAFETY: the HandOver owned this socket; glommio's stream owns it now.
        let stream = unsafe { TcpStream::from_raw_fd(h.fd.into_raw_fd()) };
        let rbuf = BytesMut::from(&h.rest[..]);
        serve_connected(ctx, stream, h.connect, rbuf, h.assigned_id).await;
    })
    .detach();
}

enum FirstError {
    /// With the CONNECT's version when the packet was a complete CONNECT.
    Decode(DecodeError, Option<Result<Protocol, DecodeError>>),
    Timeout,
    Io,
}

async fn read_first(
    stream: &mut TcpStream,
    rbuf: &mut BytesMut,
    max: usize,
) -> Result<Packet, FirstError> {
    loop {
        // The server's side of framing: a reserved type or a packet only a server sends is
        // refused from its first byte.
        let frame = codec::frame_from_client(rbuf, max).map_err(|e| FirstError::Decode(e, None))?;
        if let Some(f) = frame.filter(|f| rbuf.len() >= f.total_len()) {
            // Peek the version before decoding (which consumes the bytes) so a bad CONNECT can
            // be answered in the client's own version.
            let version = (f.header >> 4 == 1)
                .then(|| codec::peek_connect_protocol(&rbuf[f.header_len..f.total_len()]));
            return match codec::decode_from_client(rbuf, Protocol::V5, max) {
                Ok(Some(p)) => Ok(p),
                Ok(None) => Err(FirstError::Io),
                Err(e) => Err(FirstError::Decode(e, version)),
            };
        }
        let n = poll_fn(|cx| poll_read_into(cx, stream, rbuf)).await;
        match n {
            Ok(0) | Err(_) => return Err(FirstError::Io),
            Ok(_) => {}
        }
    }
}

/// Answer a CONNECT we could not accept with the CONNACK its version expects, then close.
/// The form follows the version the CONNECT asked for, never the error: a 5.0 client gets the
/// 5.0 form with a reason code; a 3.1 / 3.1.1 client, and one whose level we do not speak,
/// gets the 3.1.1 form (4 bytes) when its version has a return code for the error, and is
/// otherwise just closed [MQTT-3.1.4-1].
async fn refuse_bad_connect(
    stream: &mut TcpStream,
    e: DecodeError,
    version: Option<Result<Protocol, DecodeError>>,
) {
    log::debug!("bad CONNECT: {e}");
    let v3_form = |code: Option<u8>| code.map(|c| vec![0x20, 2, 0, c]);
    let bytes = match version {
        // [MQTT-3.1.4-1] v5: CONNACK with the reason code (no properties), then close.
        Some(Ok(Protocol::V5)) => Some(vec![0x20, 3, 0, e.reason_code(), 0]),
        // 3.1 / 3.1.1: a return code if one exists (identifier rejected, bad user name).
        Some(Ok(Protocol::V310 | Protocol::V311)) => v3_form(e.v3_connack_code()),
        // [MQTT-3.1.2-2]: an unsupported level gets return code 0x01 in the 3.1.1 form, the
        // only one a client of an unknown version can be expected to read.
        Some(Err(DecodeError::UnsupportedProtocolVersion)) => v3_form(Some(0x01)),
        // Not a CONNECT, or no protocol name and level to go by: close.
        Some(Err(_)) | None => None,
    };
    if let Some(bytes) = bytes {
        let _ = write_all(stream, &bytes).await;
    }
}

fn assign_client_id(shard: usize) -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen();
    format!("ringmq-{shard}-{n:016x}")
}

fn packet_name(p: &Packet) -> &'static str {
    match p {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect(_) => "DISCONNECT",
        Packet::Auth(_) => "AUTH",
    }
}

/// Serve a connection on its home shard, from CONNECT to close.
async fn serve_connected(
    ctx: ShardCtx,
    mut stream: TcpStream,
    connect: Box<codec::Connect>,
    mut rbuf: BytesMut,
    assigned: bool,
) {
    let _ = stream.set_nodelay(true);
    let link = Rc::new(ConnLink::new());
    let mut authenticated = None;
    if connect.properties.authentication_method.is_some() {
        // Boxed here and below: cold paths stay out of the connection task's future, which
        // every idle connection carries.
        match Box::pin(authenticate(&ctx, &mut stream, &mut rbuf, &connect)).await {
            Ok(data) => authenticated = Some(data),
            Err(code) => {
                // [MQTT-4.12.0-2..4]: a failed exchange ends with CONNACK and the reason code.
                let refusal = Packet::ConnAck(codec::ConnAck {
                    session_present: false,
                    code,
                    properties: Default::default(),
                });
                link.write_packet(&refusal, Protocol::V5);
                Box::pin(flush_link(&mut stream, &link)).await;
                return;
            }
        }
    }
    let mut conn = match Box::pin(Conn::open(
        &ctx,
        link.clone(),
        connect,
        assigned,
        authenticated,
    ))
    .await
    {
        Ok(c) => c,
        Err(()) => {
            // CONNACK with a failure code is in the link's buffer: flush it and close.
            Box::pin(flush_link(&mut stream, &link)).await;
            return;
        }
    };
    if let Some(ka) = conn.keep_alive_timeout() {
        let _ = stream.set_read_timeout(Some(ka));
    }
    let close = serve_loop(&mut conn, &mut stream, &link, &mut rbuf).await;
    if let Some(packet) = conn.disconnect_packet(&close) {
        link.write_packet(&packet, conn.protocol);
    }
    conn.close(close);
    Box::pin(flush_link(&mut stream, &link)).await;
}

async fn serve_loop(
    conn: &mut Conn,
    stream: &mut TcpStream,
    link: &Rc<ConnLink>,
    rbuf: &mut BytesMut,
) -> Close {
    let max = conn.ctx.cfg.packet_bytes_max;
    loop {
        // Handle every complete packet already buffered before reading more.
        loop {
            match codec::decode(rbuf, conn.protocol, max) {
                Ok(Some(Packet::Subscribe(s))) => {
                    // Boxed: SUBSCRIBE may wait for peers; keep that state out of the future
                    // every idle connection carries.
                    if let Err(close) = Box::pin(conn.on_subscribe(s)).await {
                        return close;
                    }
                }
                Ok(Some(packet)) => {
                    if let Err(close) = conn.handle(packet) {
                        return close;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    log::debug!("client {}: {e}", conn.client_id);
                    return Close::Protocol(e.reason_code());
                }
            }
        }
        if rbuf.is_empty() {
            // Nothing partial is waiting: give the buffer back, so an idle connection holds no
            // read buffer at all (payloads already decoded keep their own share alive).
            *rbuf = BytesMut::new();
        }
        conn.after_batch().await;
        let ev = poll_fn(|cx| poll_io(cx, stream, link, rbuf)).await;
        match ev {
            Io::Read => {}
            Io::Eof => return Close::Lost,
            Io::Error(e) if e.kind() == io::ErrorKind::TimedOut => return Close::KeepAlive,
            Io::Error(_) => return Close::Lost,
            Io::CloseRequested(reason) => return Close::TakenOver(reason),
        }
        conn.pump_if_drained();
    }
}

/// Poll writing (first) and reading on one socket from one task: no split, no lock, one
/// descriptor. Ready when bytes were read, the peer went away, or a close was requested;
/// writes happen along the way.
fn poll_io(
    cx: &mut Context<'_>,
    stream: &mut TcpStream,
    link: &ConnLink,
    rbuf: &mut BytesMut,
) -> Poll<Io> {
    if let Some(reason) = link.close_requested() {
        return Poll::Ready(Io::CloseRequested(reason));
    }
    link.register(cx.waker());
    if let Err(e) = poll_flush(cx, stream, link) {
        return Poll::Ready(Io::Error(e));
    }
    match poll_read_into(cx, stream, rbuf) {
        Poll::Ready(Ok(0)) => Poll::Ready(Io::Eof),
        Poll::Ready(Ok(_)) => Poll::Ready(Io::Read),
        Poll::Ready(Err(e)) => Poll::Ready(Io::Error(e)),
        Poll::Pending => Poll::Pending,
    }
}

/// Write as much of the link's buffer as the socket takes now.
fn poll_flush(cx: &mut Context<'_>, stream: &mut TcpStream, link: &ConnLink) -> io::Result<()> {
    link.with_out(|out| {
        while !out.is_empty() {
            match Pin::new(&mut *stream).poll_write(cx, out) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => out.advance(n),
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(()),
            }
        }
        if out.capacity() > IDLE_BUFFER_KEEP_BYTES {
            *out = BytesMut::new();
        }
        Ok(())
    })
}

thread_local! {
    /// One read buffer per shard thread: sockets are read into it and only the bytes received
    /// are copied into the connection's own buffer. An idle connection then holds no read
    /// buffer, and one recv can take many packets at once.
    static SCRATCH: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(vec![0; limits::READ_CHUNK_BYTES]);
}

fn poll_read_into(
    cx: &mut Context<'_>,
    stream: &mut TcpStream,
    rbuf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let r = Pin::new(&mut *stream).poll_read(cx, &mut scratch[..]);
        if let Poll::Ready(Ok(n)) = r {
            rbuf.extend_from_slice(&scratch[..n]);
        }
        r
    })
}

/// The CONNECT-time enhanced authentication exchange [MQTT-4.12]: AUTH 0x18 back and forth
/// until the method succeeds (its final data goes in CONNACK) or fails (the reason code).
async fn authenticate(
    ctx: &ShardCtx,
    stream: &mut TcpStream,
    rbuf: &mut BytesMut,
    c: &codec::Connect,
) -> Result<Option<bytes::Bytes>, u8> {
    let method = c
        .properties
        .authentication_method
        .clone()
        .unwrap_or_default();
    let Some(auth) = ctx.auth.get(&method) else {
        return Err(0x8C); // Bad authentication method
    };
    let (mut exchange, mut step) = auth.start(c.properties.authentication_data.as_deref());
    let deadline = Duration::from_millis(ctx.cfg.connect_timeout_ms);
    loop {
        let data = match step {
            AuthStep::Success(data) => return Ok(data),
            AuthStep::Fail(code) => return Err(code),
            AuthStep::Continue(data) => data,
        };
        let Some(ex) = exchange.as_mut() else {
            return Err(0x87);
        };
        let challenge = Packet::Auth(codec::Auth {
            reason: 0x18,
            properties: codec::Properties {
                authentication_method: Some(method.clone()),
                authentication_data: Some(data),
                ..Default::default()
            },
        });
        let mut out = BytesMut::new();
        if codec::encode(&challenge, Protocol::V5, &mut out).is_err()
            || write_all(stream, &out).await.is_err()
        {
            return Err(0x87);
        }
        let max = ctx.cfg.packet_bytes_max;
        let reply = futures_lite::future::or(read_first(stream, rbuf, max), async {
            glommio::timer::sleep(deadline).await;
            Err(FirstError::Timeout)
        })
        .await;
        step = match reply {
            Ok(Packet::Auth(a))
                if a.reason == 0x18
                    && a.properties.authentication_method.as_ref() == Some(&method) =>
            {
                ex.step(a.properties.authentication_data.as_deref())
            }
            // Anything else mid-exchange is a protocol error [MQTT-4.12.0-5].
            Ok(_) => return Err(0x82),
            Err(FirstError::Decode(e, _)) => return Err(e.reason_code()),
            Err(_) => return Err(0x87),
        };
    }
}

/// Best-effort final write (CONNACK refusal, DISCONNECT) before the socket closes.
async fn flush_link(stream: &mut TcpStream, link: &ConnLink) {
    let bytes = link.with_out(|out| out.split().freeze());
    if !bytes.is_empty() {
        let _ = futures_lite::future::or(write_all(stream, &bytes), async {
            glommio::timer::sleep(Duration::from_secs(1)).await;
            Ok(())
        })
        .await;
    }
}

async fn write_all(stream: &mut TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = poll_fn(|cx| Pin::new(&mut *stream).poll_write(cx, bytes)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
    }
    Ok(())
}
