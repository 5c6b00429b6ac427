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
use crate::shard::ctx::ShardCtx;
use crate::shard::{home_shard, HandOver, MeshMsg};
use crate::transport::Transport;
use bytes::{Buf, BytesMut};
use glommio::net::TcpStream;
use std::future::{poll_fn, Future};
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
    /// The hold on this session ended: parked packets can go.
    Unheld,
    /// The socket took enough of the output buffer to refill it from the session's queue.
    Drained,
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

async fn read_first<S: Transport>(
    stream: &mut S,
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
async fn refuse_bad_connect<S: Transport>(
    stream: &mut S,
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
        close_gracefully(stream, &bytes).await;
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

/// Counts a connection being served, for the bounded wait at shutdown.
struct Live(crate::shard::ctx::ShardRef);

impl Live {
    fn new(ctx: &ShardCtx) -> Live {
        ctx.shard.borrow_mut().live_connections += 1;
        Live(ctx.shard.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let mut s = self.0.borrow_mut();
        s.live_connections = s.live_connections.saturating_sub(1);
    }
}

/// Serve a connection on its home shard, from CONNECT to close.
async fn serve_connected<S: Transport>(
    ctx: ShardCtx,
    mut stream: S,
    connect: Box<codec::Connect>,
    mut rbuf: BytesMut,
    assigned: bool,
) {
    // TCP_NODELAY was set at accept; a handed-over descriptor is the same socket.
    if ctx.shard.borrow().stopping {
        return; // shutting down: the client reconnects to the next broker
    }
    let _live = Live::new(&ctx);
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

/// After a hold ends, a connection yields to the other runnable connections every
/// `FAIR_TURN_PUBLISHES` PUBLISHes, for `FAIR_TURNS_AFTER_HOLD` of them (see `process`): about
/// what a subscriber's drain to half its queue bound lets several publishers send. Measured with
/// 8 publishers into one subscriber: one yield per PUBLISH shares evenly but costs a third of the
/// throughput; without yields one publisher took everything and the others starved.
const FAIR_TURNS_AFTER_HOLD: u32 = 256;
const FAIR_TURN_PUBLISHES: u32 = 8;

/// While the session is held back, packets other than acknowledgements and pings wait here,
/// raw and in arrival order; past this many bytes the socket is not read until the hold ends.
const PARKED_BYTES_MAX: usize = 64 * 1024;

async fn serve_loop<S: Transport>(
    conn: &mut Conn,
    stream: &mut S,
    link: &Rc<ConnLink>,
    rbuf: &mut BytesMut,
) -> Close {
    let max = conn.ctx.cfg.packet_bytes_max;
    let refill_below = conn.ctx.cfg.out_buffer_bytes_max / 2;
    let mut parked = BytesMut::new();
    loop {
        if let Err(close) = process(conn, rbuf, &mut parked, max, false).await {
            return close;
        }
        if rbuf.is_empty() {
            // Nothing partial is waiting: give the buffer back, so an idle connection holds no
            // read buffer at all.
            *rbuf = BytesMut::new();
        }
        let held = conn.is_held();
        let drained = if held { conn.outbox_held() } else { None };
        let mut drained_wait = drained.as_ref().map(|e| e.wait());
        let read = !held || parked.len() < PARKED_BYTES_MAX;
        let ev = poll_fn(|cx| {
            if held {
                // A session hold ends with a wake through the link; a mesh hold with the
                // outbox's drain event.
                let drained = drained_wait
                    .as_mut()
                    .is_some_and(|w| Pin::new(w).poll(cx).is_ready());
                if drained || !conn.is_held() {
                    return Poll::Ready(Io::Unheld);
                }
            }
            poll_io(cx, stream, link, rbuf, read, refill_below)
        })
        .await;
        match ev {
            Io::Unheld => conn.fair_turns = FAIR_TURNS_AFTER_HOLD,
            Io::Read | Io::Drained => {}
            Io::Eof => {
                // The client is done sending: what it sent still counts, hold or not (bounded by
                // PARKED_BYTES_MAX), and a DISCONNECT among it decides how this ends.
                if let Err(close) = process(conn, rbuf, &mut parked, max, true).await {
                    return close;
                }
                return Close::Lost;
            }
            Io::Error(e) if e.kind() == io::ErrorKind::TimedOut => return Close::KeepAlive,
            Io::Error(_) => return Close::Lost,
            Io::CloseRequested(reason) => return Close::Server(reason),
        }
        conn.pump_if_drained();
    }
}

/// Handle every complete packet buffered. While the session is held (and not `force`d), only
/// acknowledgements and pings are handled; everything else is parked for when the hold ends.
async fn process(
    conn: &mut Conn,
    rbuf: &mut BytesMut,
    parked: &mut BytesMut,
    max: usize,
    force: bool,
) -> Result<(), Close> {
    loop {
        let held = !force && conn.is_held();
        if !held {
            conn.resume();
            if !parked.is_empty() {
                let mut merged = std::mem::take(parked);
                merged.extend_from_slice(rbuf);
                *rbuf = merged;
            }
        } else {
            let frame = codec::frame_from_client(rbuf, max)
                .map_err(|e| Close::Protocol(e.reason_code()))?;
            let Some(f) = frame.filter(|f| rbuf.len() >= f.total_len()) else {
                return Ok(());
            };
            if !goes_ahead_of_parked(f.header) {
                parked.extend_from_slice(&rbuf[..f.total_len()]);
                rbuf.advance(f.total_len());
                continue;
            }
        }
        match codec::decode_from_client(rbuf, conn.protocol, max) {
            Ok(Some(Packet::Subscribe(s))) => {
                // Boxed: SUBSCRIBE may wait for peers; keep that state out of the future every
                // idle connection carries.
                Box::pin(conn.on_subscribe(s)).await?;
            }
            Ok(Some(packet)) => {
                let publish = matches!(packet, Packet::Publish(_));
                conn.handle(packet)?;
                if publish && conn.fair_turns > 0 {
                    // Just released from a hold, with the other released publishers: a few
                    // PUBLISHes per scheduler turn, so the room the subscriber made is shared
                    // instead of going to whichever publisher the scheduler runs first.
                    conn.fair_turns -= 1;
                    if conn.fair_turns.is_multiple_of(FAIR_TURN_PUBLISHES) {
                        futures_lite::future::yield_now().await;
                    }
                }
            }
            Ok(None) => return Ok(()),
            Err(e) => {
                log::debug!("client {}: {e}", conn.client_id);
                return Err(Close::Protocol(e.reason_code()));
            }
        }
    }
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP and PINGREQ: they complete flows that are already under
/// way (so a held client that is also a subscriber keeps draining) and keep the client alive.
fn goes_ahead_of_parked(header: u8) -> bool {
    matches!(header >> 4, 4..=7 | 12)
}

/// Poll writing (first) and reading (when `read`) on one socket from one task: no split, no
/// lock, one descriptor. Ready when bytes were read, the peer went away, or a close was
/// requested; writes happen along the way.
fn poll_io<S: Transport>(
    cx: &mut Context<'_>,
    stream: &mut S,
    link: &ConnLink,
    rbuf: &mut BytesMut,
    read: bool,
    refill_below: usize,
) -> Poll<Io> {
    if let Some(reason) = link.close_requested() {
        return Poll::Ready(Io::CloseRequested(reason));
    }
    link.register(cx.waker());
    if let Err(e) = poll_flush(cx, stream, link) {
        return Poll::Ready(Io::Error(e));
    }
    if link.has_backlog() && link.out_len() < refill_below {
        return Poll::Ready(Io::Drained);
    }
    if !read {
        return Poll::Pending;
    }
    match poll_read_into(cx, stream, rbuf) {
        Poll::Ready(Ok(0)) => Poll::Ready(Io::Eof),
        Poll::Ready(Ok(_)) => Poll::Ready(Io::Read),
        Poll::Ready(Err(e)) => Poll::Ready(Io::Error(e)),
        Poll::Pending => Poll::Pending,
    }
}

/// Write as much of the link's buffer as the socket takes now.
fn poll_flush<S: Transport>(
    cx: &mut Context<'_>,
    stream: &mut S,
    link: &ConnLink,
) -> io::Result<()> {
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

fn poll_read_into<S: Transport>(
    cx: &mut Context<'_>,
    stream: &mut S,
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
async fn authenticate<S: Transport>(
    ctx: &ShardCtx,
    stream: &mut S,
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
async fn flush_link<S: Transport>(stream: &mut S, link: &ConnLink) {
    let bytes = link.with_out(|out| out.split().freeze());
    close_gracefully(stream, &bytes).await;
}

/// The last bytes of a connection (a refusal CONNACK, a DISCONNECT), then a half-close, then up
/// to [`CLOSE_DRAIN`] of reading and discarding until the peer closes too. Closing a socket
/// with unread input makes the kernel send a reset, which can destroy the reason on its way
/// (the peer gets ECONNRESET or EPIPE instead of reading it).
pub(super) async fn close_gracefully<S: Transport>(stream: &mut S, last: &[u8]) {
    let work = async {
        if !last.is_empty() {
            write_all(stream, last).await?;
        }
        stream.shutdown_write().await?;
        let mut sink = [0u8; 512];
        while poll_fn(|cx| Pin::new(&mut *stream).poll_read(cx, &mut sink)).await? > 0 {}
        Ok::<(), io::Error>(())
    };
    let _ = futures_lite::future::or(work, async {
        glommio::timer::sleep(CLOSE_DRAIN).await;
        Ok(())
    })
    .await;
}

/// How long a closing connection waits for its peer to read the last packet and close.
const CLOSE_DRAIN: Duration = Duration::from_secs(1);

async fn write_all<S: Transport>(stream: &mut S, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = poll_fn(|cx| Pin::new(&mut *stream).poll_write(cx, bytes)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
    }
    Ok(())
}
