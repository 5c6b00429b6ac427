//! One task per awake connection, once it is in (`arrival`; an idle one may sleep without it,
//! `dormant`): loop read → decode → handle, and write
//! whatever sessions put in the connection's output buffer, coalesced into one send; then the
//! close (the commit gate, DISCONNECT, the session detached).
//!
//! Never: panics on peer bytes, lets one connection's error touch another, or keeps an idle
//! connection's buffers large (they shrink back when drained).

use super::admission::Ticket;
use super::arrival::{open_engine, unbox, Arrival, Live, Opened, Start};
use super::dormant::{self, Dormant};
use super::read_chunk::{self, poll_read_in_chunk};
use crate::codec::{self, Packet};
use crate::engine::{Close, Engine, PendingSubscribe, Step};
use crate::session::out::IOV_MAX;
use crate::session::ConnLink;
use crate::shard::ctx::{spawn_ack_after, wait_acks_bounded, ShardCtx};
use crate::shard::journal::Progress;
use crate::transport::Transport;
use bytes::{Buf, BytesMut};
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

enum Io {
    Read,
    /// The hold on this session ended: parked packets can go.
    Unheld,
    /// The socket took enough of the output buffer to refill it from the session's queue.
    Drained,
    Eof,
    Error(io::Error),
    CloseRequested(u8),
    /// Idle and asked to sleep by the shard's sweep (`dormant`).
    Doze,
}

/// How a serve loop ended.
enum Ended {
    Closed(Close),
    /// The connection is idle: it may sleep without its task (`dormant`).
    Doze,
}

/// What a connection holds for as long as it is open, awake or asleep: its admission
/// ticket (the connection caps) and its place in the shard's live count.
pub(super) struct Guards {
    _ticket: Ticket,
    _live: Live,
}

/// Serve a connection on its home shard, from CONNECT to close.
pub(super) async fn serve_connected<S: Transport + 'static>(start: Box<Start<S>>) {
    let Start {
        ctx,
        mut stream,
        arrival:
            Arrival {
                connect,
                mut rbuf,
                assigned,
                identity,
                ticket,
            },
    } = unbox(start);
    // Opening is a boxed future of its own: what only it needs (the CONNECT, the identity,
    // the authentication state, the engine being built) is freed once the client is in, and
    // takes no room in the task that every idle connection keeps. The shard context moves in
    // too (the engine keeps a copy, `conn.ctx`): borrowed here, it would keep its own room.
    let opened = open_engine(ctx, &mut stream, &mut rbuf, connect, assigned, identity);
    let Some(Opened {
        engine: conn,
        link,
        live,
    }) = Box::pin(opened).await
    else {
        return;
    };
    crate::sys::events::connected(&conn.ctx, &conn);
    link.set_shared_payloads(S::VECTORED);
    link.set_can_doze(S::DOZES && conn.ctx.cfg.hibernate_idle_ms > 0);
    let guards = Guards {
        _ticket: ticket,
        _live: live,
    };
    // Serving is a task of its own, the same a sleeping connection gets when it wakes: this
    // future's room for the opening (the stream and buffer it borrowed, `start`) is freed
    // rather than kept beside the serving state for the connection's life.
    glommio::spawn_local(serve_attached(conn, stream, link, rbuf, guards)).detach();
}

/// Serve a connection that is in (just opened, or woken from sleep) until it closes or
/// sleeps. A plain function returning an `async move` block, not an `async fn`: an async fn
/// keeps its arguments twice (as arguments, and as the locals they are moved into), which
/// for these is about 400 bytes of every awake connection's task.
#[allow(clippy::manual_async_fn)] // on purpose, see above
pub(super) fn serve_attached<S: Transport>(
    mut conn: Engine,
    mut stream: S,
    link: Rc<ConnLink>,
    mut rbuf: BytesMut,
    guards: Guards,
) -> impl Future<Output = ()> {
    async move {
        let close = loop {
            match serve_loop(&mut conn, &mut stream, &link, &mut rbuf).await {
                Ended::Closed(close) => break close,
                Ended::Doze => match stream.into_dormant() {
                    Ok(fd) => {
                        let d = Dormant {
                            conn,
                            link,
                            guards,
                            fd,
                        };
                        dormant::sleep(Box::new(d));
                        return;
                    }
                    // No descriptor for the duplicate (the open-files limit): stay awake.
                    Err(s) => stream = s,
                },
            }
        };
        // The gate first (unconfirmed acknowledgements are dropped, never sent early), then the
        // DISCONNECT a v5 client is owed.
        let progress = conn.progress();
        Box::pin(settle_gate(&link, progress.as_deref())).await;
        if let Some(packet) = conn.disconnect_packet(&close) {
            link.write_packet(&packet, conn.protocol);
        }
        let ctx = conn.ctx.clone();
        let event = crate::sys::events::disconnected(&ctx, &conn, &close);
        conn.close(close);
        if let Some(e) = event {
            crate::sys::events::publish_event(&ctx, e);
        }
        Box::pin(flush_link(&mut stream, &link)).await;
    }
}

/// Before the last write: wait (bounded) until the store committed what the buffered
/// acknowledgements promise. If it cannot (or the store is failing), they are not sent: the
/// client resends what it did not see acknowledged.
async fn settle_gate(link: &ConnLink, progress: Option<&Progress>) {
    let failing = || progress.is_some_and(|p| p.failing.get());
    let wait = poll_fn(|cx| {
        if link.gate_open(progress, cx.waker()) {
            Poll::Ready(true)
        } else if failing() {
            Poll::Ready(false)
        } else {
            Poll::Pending
        }
    });
    let done = futures_lite::future::or(wait, async {
        glommio::timer::sleep(GATE_SETTLE).await;
        false
    })
    .await;
    if !done {
        link.with_out(|out| out.clear());
    }
}

/// After a hold ends, a connection yields to the other runnable connections every
/// `FAIR_TURN_PUBLISHES` PUBLISHes, for `FAIR_TURNS_AFTER_HOLD` of them (see `process`): about
/// what a subscriber's drain to half its queue bound lets several publishers send. Measured with
/// 8 publishers into one subscriber: one yield per PUBLISH shares evenly but costs a third of the
/// throughput; without yields one publisher took everything and the others starved.
const FAIR_TURNS_AFTER_HOLD: u32 = 256;
const FAIR_TURN_PUBLISHES: u32 = 8;

thread_local! {
    /// `RINGMQ_DELIVER_FIRST=0` sends a client's acknowledgements before the deliveries its
    /// packets caused (the order before stop 24), to compare.
    static DELIVER_FIRST: bool =
        std::env::var_os("RINGMQ_DELIVER_FIRST").is_none_or(|v| v != "0");
}

fn deliver_first() -> bool {
    DELIVER_FIRST.with(|d| *d)
}

/// While the session is held back, packets other than acknowledgements and pings wait here,
/// raw and in arrival order; past this many bytes the socket is not read until the hold ends.
const PARKED_BYTES_MAX: usize = 64 * 1024;

/// What the serve loop keeps about its reading between calls to `process`.
#[derive(Default)]
struct Intake {
    /// Packets held back while the session is held, raw and in arrival order.
    parked: BytesMut,
    /// Whether the connection's read buffer is a view into the shard's read chunk.
    in_chunk: bool,
    /// After a hold: PUBLISHes still to be taken a few per scheduler turn (fair sharing).
    fair_turns: u32,
    /// Whether this connection waited since it last let deliveries go first: once per wake-up.
    waited: bool,
}

async fn serve_loop<S: Transport>(
    conn: &mut Engine,
    stream: &mut S,
    link: &Rc<ConnLink>,
    rbuf: &mut BytesMut,
) -> Ended {
    let max = conn.ctx.cfg.packet_bytes_max;
    let refill_below = conn.ctx.cfg.out_buffer_bytes_max / 2;
    let progress = conn.progress();
    let mut st = Intake::default();
    loop {
        let woken = glommio::others_woken();
        let published = match process(conn, rbuf, &mut st, max, false).await {
            Ok(published) => published,
            Err(close) => return Ended::Closed(close),
        };
        if published
            && st.waited
            && glommio::others_woken() != woken
            && link.out_len() > 0
            && deliver_first()
        {
            // The PUBLISHes read woke other connections (subscribers they were routed to, or
            // a mesh flusher) and left acknowledgements to send: let those write first, as a
            // readiness loop would, so a delivery does not wait for this client's PUBACK. This
            // task was woken by its own writes already, so the yield costs no extra run of it.
            // - Only after a PUBLISH: a subscriber whose PUBACKs released a held publisher has
            //   deliveries of its own, which should not wait for that publisher.
            // - Once per wake-up: what is read after that in the same run is a backlog, whose
            //   deliveries batch better when it is read at once (a yield after every read cost
            //   13% at 16 KB QoS 1).
            // - The read chunk stays held, as across the fair-turn yield: this task is runnable
            //   and resumes within the turn, and releasing would copy a long leftover twice
            //   (out, then back in front of the next read).
            st.waited = false;
            futures_lite::future::yield_now().await;
        }
        if rbuf.is_empty() {
            // Nothing partial is waiting: give the buffer back, so an idle connection holds no
            // read buffer at all.
            *rbuf = BytesMut::new();
            st.in_chunk = false;
        }
        // In a block of its own: the wait's state and its event end before the awaits below,
        // so the future keeps no room for them there.
        let eof = {
            let held = conn.is_held();
            let drained = if held { conn.outbox_held() } else { None };
            let mut drained_wait = drained.as_ref().map(|e| e.wait());
            let read = !held || st.parked.len() < PARKED_BYTES_MAX;
            let ev = poll_fn(|cx| {
                let ev = 'ev: {
                    if held {
                        // A session hold ends with a wake through the link; a mesh hold with
                        // the outbox's drain event.
                        let drained = drained_wait
                            .as_mut()
                            .is_some_and(|w| Pin::new(w).poll(cx).is_ready());
                        if drained || !conn.is_held() {
                            break 'ev Poll::Ready(Io::Unheld);
                        }
                    }
                    poll_io(
                        cx,
                        stream,
                        link,
                        progress.as_deref(),
                        rbuf,
                        read.then_some(&mut st.in_chunk),
                        refill_below,
                    )
                };
                if ev.is_pending() {
                    // Waiting, perhaps for long: a partial packet must not keep the shard's
                    // read chunk alive meanwhile.
                    read_chunk::release(rbuf, &mut st.in_chunk);
                    st.waited = true;
                    if link.take_doze_ask() && idle(conn, link, rbuf, &st.parked, st.fair_turns) {
                        return Poll::Ready(Io::Doze);
                    }
                }
                ev
            })
            .await;
            match ev {
                Io::Unheld => {
                    st.fair_turns = FAIR_TURNS_AFTER_HOLD;
                    false
                }
                Io::Read | Io::Drained => false,
                Io::Eof => true,
                Io::Error(e) => {
                    log::debug!("client {}: {e}", conn.client_id);
                    return Ended::Closed(Close::Lost);
                }
                Io::CloseRequested(reason) => return Ended::Closed(Close::requested(reason)),
                Io::Doze => return Ended::Doze,
            }
        };
        if eof {
            // The client is done sending: what it sent still counts, hold or not (bounded by
            // PARKED_BYTES_MAX), and a DISCONNECT among it decides how this ends.
            if let Err(close) = process(conn, rbuf, &mut st, max, true).await {
                return Ended::Closed(close);
            }
            return Ended::Closed(Close::Lost);
        }
        conn.pump_if_drained();
    }
}

/// Whether a waiting connection has nothing in progress but what its socket and its link
/// would wake it for: no partial or parked packet, no output, no queue behind it, no
/// acknowledgement waiting for a commit or a hold.
fn idle(conn: &Engine, link: &ConnLink, rbuf: &BytesMut, parked: &BytesMut, fair: u32) -> bool {
    rbuf.is_empty()
        && parked.is_empty()
        && fair == 0
        && link.out_len() == 0
        && !link.has_backlog()
        && link.gate_clear()
        && link.close_requested().is_none()
        && conn.can_doze()
}

/// Handle every complete packet buffered. While the session is held (and not `force`d), only
/// acknowledgements and pings are handled; everything else is parked for when the hold ends.
/// True if it handled a PUBLISH (so the tasks it woke got deliveries).
async fn process(
    conn: &mut Engine,
    rbuf: &mut BytesMut,
    st: &mut Intake,
    max: usize,
    force: bool,
) -> Result<bool, Close> {
    let Intake {
        parked,
        in_chunk,
        fair_turns,
        waited: _,
    } = st;
    let mut published = false;
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
                return Ok(published);
            };
            if !goes_ahead_of_parked(f.header) {
                parked.extend_from_slice(&rbuf[..f.total_len()]);
                rbuf.advance(f.total_len());
                continue;
            }
        }
        // The packet is decoded and handled in a plain function: held across this future's
        // awaits, the ~470-byte decode result would sit in every idle connection's task.
        let Some((step, publish)) = handle_next(conn, rbuf, max)? else {
            return Ok(published);
        };
        published |= publish;
        if let Step::AwaitMesh(pending) = step {
            // The wait can be long: what is still buffered must not keep the read chunk alive.
            read_chunk::release(rbuf, in_chunk);
            // Boxed: keep the wait's state out of the future every idle connection carries.
            let confirmed = Box::pin(await_mesh(&conn.ctx, &pending)).await;
            conn.finish_subscribe(*pending, confirmed);
        }
        if publish && *fair_turns > 0 {
            // Just released from a hold, with the other released publishers: a few PUBLISHes
            // per scheduler turn, so the room the subscriber made is shared instead of going to
            // whichever publisher the scheduler runs first.
            *fair_turns -= 1;
            if fair_turns.is_multiple_of(FAIR_TURN_PUBLISHES) {
                futures_lite::future::yield_now().await;
            }
        }
    }
}

/// Decode and handle the next complete packet, if one is buffered: what the engine asks for
/// next, and whether it was a PUBLISH.
fn handle_next(
    conn: &mut Engine,
    rbuf: &mut BytesMut,
    max: usize,
) -> Result<Option<(Step, bool)>, Close> {
    match codec::decode_from_client(rbuf, conn.protocol, max) {
        Ok(Some(packet)) => {
            crate::shard::tally::packet_in();
            let publish = matches!(packet, Packet::Publish(_));
            Ok(Some((conn.handle(packet)?, publish)))
        }
        Ok(None) => Ok(None),
        Err(e) => {
            log::debug!("client {}: {e}", conn.client_id);
            Err(Close::Protocol(e.reason_code()))
        }
    }
}

/// The mesh waits of a SUBSCRIBE: answer the shared-group joins this shard owns once their
/// peers confirm, and wait (bounded) for every token. False if some wait ran out.
async fn await_mesh(ctx: &ShardCtx, p: &PendingSubscribe) -> bool {
    for &(own, reply) in &p.forwards {
        spawn_ack_after(&ctx.shard, own, reply);
    }
    let mut confirmed = true;
    for &token in &p.tokens {
        confirmed &= wait_acks_bounded(&ctx.shard, token).await;
    }
    confirmed
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
    progress: Option<&Progress>,
    rbuf: &mut BytesMut,
    read: Option<&mut bool>,
    refill_below: usize,
) -> Poll<Io> {
    if let Some(reason) = link.close_requested() {
        return Poll::Ready(Io::CloseRequested(reason));
    }
    link.register(cx.waker());
    // An acknowledgement waiting for its commit holds the output back (woken by the commit).
    if link.gate_open(progress, cx.waker()) {
        if let Err(e) = poll_flush(cx, stream, link) {
            return Poll::Ready(Io::Error(e));
        }
    } else if progress.is_some_and(|p| p.failing.get()) {
        // Its acknowledgements wait for a store that cannot commit (disk full, I/O error):
        // close (v5 0x97) so the client resends on a new connection, where new work is refused
        // at once instead of waiting behind them. Nothing unconfirmed is sent.
        return Poll::Ready(Io::CloseRequested(0x97));
    }
    if link.has_backlog() && link.out_len() < refill_below {
        return Poll::Ready(Io::Drained);
    }
    // `read` carries whether `rbuf` is a view into the read chunk.
    let Some(in_chunk) = read else {
        return Poll::Pending;
    };
    match poll_read_in_chunk(cx, stream, rbuf, in_chunk) {
        Poll::Ready(Ok(0)) => Poll::Ready(Io::Eof),
        Poll::Ready(Ok(_)) => {
            // Keep alive: the shard's timers read this; no per-read timer [MQTT-3.1.2-24].
            link.touch(crate::clock::now_ms());
            Poll::Ready(Io::Read)
        }
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
    let mut wrote = false;
    let r = link.with_out(|out| {
        while !out.is_empty() {
            let r = if out.is_contiguous() {
                Pin::new(&mut *stream).poll_write(cx, out.tail())
            } else {
                // Shared payloads are queued: headers and payloads in one vectored send.
                let mut slices = [io::IoSlice::new(&[]); IOV_MAX];
                let n = out.slices(&mut slices);
                Pin::new(&mut *stream).poll_write_vectored(cx, &slices[..n])
            };
            match r {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    crate::shard::tally::bytes_out(n);
                    out.advance(n);
                    wrote = true;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(()),
            }
        }
        out.shrink_if_drained();
        // A layer that encrypts (TLS) may still hold bytes the socket did not take: a flush
        // sends them or registers for the socket's writability. TCP's is a no-op.
        match Pin::new(&mut *stream).poll_flush(cx) {
            Poll::Ready(Err(e)) => Err(e),
            _ => Ok(()),
        }
    });
    if wrote {
        // For the idle sweep (`dormant`): once per flush, not per packet written.
        link.mark_active();
    }
    r
}

/// How long a closing connection waits for the commit its last acknowledgements promise.
const GATE_SETTLE: Duration = Duration::from_secs(5);

/// Best-effort final write (CONNACK refusal, DISCONNECT) before the socket closes.
pub(super) async fn flush_link<S: Transport>(stream: &mut S, link: &ConnLink) {
    let bytes = link.with_out(|out| out.take_all());
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
pub(super) const CLOSE_DRAIN: Duration = Duration::from_secs(1);

pub(super) async fn write_all<S: Transport>(stream: &mut S, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = poll_fn(|cx| Pin::new(&mut *stream).poll_write(cx, bytes)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        crate::shard::tally::bytes_out(n);
        bytes = &bytes[n..];
    }
    Ok(())
}
