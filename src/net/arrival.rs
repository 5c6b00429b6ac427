//! How a connection gets in: read the CONNECT (within the connect timeout), check its
//! credentials, hand the socket to the client id's home shard if it landed elsewhere, and on
//! the home shard open the engine (enhanced authentication, session, CONNACK). Serving it from
//! then on is `connection`'s.
//!
//! Never: panics on peer bytes, or leaves state of the opening phase in the task an idle
//! connection keeps (the opening future is boxed and freed once the client is in).

use super::connection::{flush_link, serve_connected};
use super::handshake::{
    assign_client_id, authenticate, packet_name, read_first, refuse_bad_connect, refuse_connect,
    FirstError,
};
use crate::auth::security::{Authenticated, Refusal};
use crate::codec::{self, Packet, Protocol};
use crate::engine::{Engine, Refused};
use crate::listeners::ListenerConfig;
use crate::net::admission::Ticket;
use crate::session::ConnLink;
use crate::shard::ctx::ShardCtx;
use crate::shard::{home_shard, HandOver, MeshMsg};
use crate::transport::ktls::KtlsStream;
use crate::transport::tls::TlsStream;
use crate::transport::ws::WsStream;
use crate::transport::{Accepted, Detached, Transport};
use bytes::BytesMut;
use glommio::net::TcpStream;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::time::Duration;

/// Read the CONNECT, then serve it here or on its home shard. `rbuf`: input the transport
/// handshake already produced (a kTLS connection's plaintext rustls decrypted; usually empty).
pub(super) async fn serve_new<S: Accepted + 'static>(
    ctx: ShardCtx,
    mut stream: S,
    listener: &ListenerConfig,
    ticket: Ticket,
    mut rbuf: BytesMut,
) {
    let max = ctx.cfg.packet_bytes_max;
    let deadline = Duration::from_millis(ctx.cfg.connect_timeout_ms);
    let first = futures_lite::future::or(read_first(&mut stream, &mut rbuf, max), async {
        glommio::timer::sleep(deadline).await;
        Err(FirstError::Timeout)
    })
    .await;
    let mut connect = match first {
        Ok(Packet::Connect(c)) => {
            crate::shard::tally::packet_in();
            c
        }
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
    let mut identity = None;
    if listener.use_identity_as_username {
        // The certificate speaks for the client, as Mosquitto's use_identity_as_username: no
        // certificate, no user name, not authorized.
        match stream.identity() {
            Some(cn) => {
                connect.username = Some(cn.as_str().into());
                identity = Some(Authenticated {
                    username: Some(cn),
                    verified: true,
                    ..Authenticated::default()
                });
            }
            None => {
                log::info!(
                    "client {}: no client certificate on {} (use_identity_as_username); refused",
                    connect.client_id,
                    listener.bind
                );
                refuse_connect(&mut stream, connect.protocol, 0x87, 0x05).await;
                return;
            }
        }
    }
    if identity.is_none() && connect.properties.authentication_method.is_some() {
        // Enhanced authentication proves itself on the home shard (and refuses there).
        identity = Some(Authenticated {
            username: connect.username.as_deref().map(str::to_owned),
            verified: true,
            ..Authenticated::default()
        });
    }
    let identity = match identity {
        Some(i) => i,
        None => match Box::pin(super::handshake::check_credentials(
            &ctx, listener, &connect,
        ))
        .await
        {
            Ok(i) => i,
            Err(r) => {
                ctx.shard.borrow_mut().stats.auth_failures += 1;
                log::info!(
                    "client {}: {} on {}; refused",
                    connect.client_id,
                    match r {
                        Refusal::BadCredentials => "bad user name or password",
                        Refusal::NotAuthorized =>
                            "not authorized (anonymous clients need allow_anonymous here)",
                    },
                    listener.bind
                );
                refuse_connect(
                    &mut stream,
                    connect.protocol,
                    r.v5_reason(),
                    r.v3_return_code(),
                )
                .await;
                return;
            }
        },
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
        let arrival = Arrival {
            connect,
            rbuf,
            assigned,
            identity,
            ticket,
        };
        spawn_serving(ctx, stream, arrival);
        return;
    }
    // Hand the socket to the home shard with what we read past the CONNECT, and the TLS and
    // WebSocket state (rustls' connection holds any ciphertext and plaintext not read yet; the
    // frame decoder where it is in the current frame).
    let Detached { fd, tls, ws, ktls } = match stream.into_hand_over() {
        Ok(x) => x,
        Err(e) => {
            log::warn!("dup failed during hand-over: {e}");
            return;
        }
    };
    let h = HandOver {
        fd,
        connect,
        rest: rbuf.freeze(),
        assigned_id: assigned,
        tls,
        ws,
        ktls,
        ticket,
        identity: Box::new(identity),
    };
    ctx.shard
        .borrow_mut()
        .send_to(home, MeshMsg::HandOver(Box::new(h)));
}

/// A connection handed over by another shard: this is the client id's home.
pub fn spawn_handed_over(ctx: &ShardCtx, h: HandOver) {
    let ctx = ctx.clone();
    // SAFETY: the HandOver owned this socket; glommio's stream owns it now.
    let stream = unsafe { TcpStream::from_raw_fd(h.fd.into_raw_fd()) };
    let arrival = Arrival {
        rbuf: BytesMut::from(&h.rest[..]),
        connect: h.connect,
        assigned: h.assigned_id,
        identity: *h.identity,
        ticket: h.ticket,
    };
    // A task per stream type (not one task that awaits whichever applies): each is sized for
    // its own transport, so a plain TCP connection does not carry a TLS-sized future.
    match (h.tls, h.ws) {
        (None, None) if h.ktls => spawn_serving(ctx, KtlsStream::from_handed_over(stream), arrival),
        (None, None) => spawn_serving(ctx, stream, arrival),
        (Some(tls), None) => spawn_serving(ctx, TlsStream::from_parts(stream, tls), arrival),
        (None, Some(ws)) => spawn_serving(ctx, WsStream::from_parts(stream, ws), arrival),
        (Some(tls), Some(ws)) => {
            let stream = WsStream::from_parts(TlsStream::from_parts(stream, tls), ws);
            spawn_serving(ctx, stream, arrival)
        }
    }
}

/// The serving task of a connection that is home, detached: it ends with the connection.
fn spawn_serving<S: Transport + 'static>(ctx: ShardCtx, stream: S, arrival: Arrival) {
    glommio::spawn_local(serve_connected(Start::new(ctx, stream, arrival))).detach();
}

/// What `serve_connected` starts from, boxed. An async fn keeps its arguments in a part of its
/// future that later states never reuse; passed as one box (freed on the first poll), they
/// cost every idle connection 8 bytes there instead of about 300.
pub(super) struct Start<S> {
    pub(super) ctx: ShardCtx,
    pub(super) stream: S,
    pub(super) arrival: Arrival,
}

impl<S> Start<S> {
    fn new(ctx: ShardCtx, stream: S, arrival: Arrival) -> Box<Start<S>> {
        Box::new(Start {
            ctx,
            stream,
            arrival,
        })
    }
}

/// Moves the value out of its box and frees the box now, not when the binding goes out of
/// scope (which, in an async fn, is the end of the connection). Taking the box is the point,
/// hence the allowed lint.
#[allow(clippy::boxed_local)]
pub(super) fn unbox<T>(b: Box<T>) -> T {
    *b
}

/// What a connection brings to its home shard besides the stream: the CONNECT, the bytes read
/// after it, whether its client id was assigned, who it authenticated as, and its place in the
/// connection counts.
pub(super) struct Arrival {
    pub(super) connect: Box<codec::Connect>,
    pub(super) rbuf: BytesMut,
    pub(super) assigned: bool,
    pub(super) identity: Authenticated,
    pub(super) ticket: Ticket,
}

/// Counts a connection being served, for the bounded wait at shutdown.
pub(super) struct Live(crate::shard::ctx::ShardRef);

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

/// A client that is in: its engine, its connection link, and its place in the shard's count of
/// served connections.
pub(super) struct Opened {
    pub(super) engine: Engine,
    pub(super) link: Rc<ConnLink>,
    pub(super) live: Live,
}

/// Enhanced authentication (if the CONNECT asks for it), then the engine: its session taken
/// over or created and the CONNACK in the link's buffer. None if the client was refused (the
/// refusal has been sent) or the shard is stopping.
pub(super) async fn open_engine<S: Transport>(
    ctx: ShardCtx,
    stream: &mut S,
    rbuf: &mut BytesMut,
    connect: Box<codec::Connect>,
    assigned: bool,
    identity: Authenticated,
) -> Option<Opened> {
    // TCP_NODELAY was set at accept; a handed-over descriptor is the same socket.
    if ctx.shard.borrow().stopping {
        return None; // shutting down: the client reconnects to the next broker
    }
    let live = Live::new(&ctx);
    let link = Rc::new(ConnLink::new());
    link.set_info(crate::session::ConnInfo {
        fd: stream.socket_fd(),
        keep_alive_s: connect.keep_alive_s,
        clean_start: connect.clean_start,
        connected_at_ms: crate::shard::journal::unix_ms(),
    });
    let mut authenticated = None;
    if connect.properties.authentication_method.is_some() {
        // Boxed here and below: cold paths stay out of the connection task's future, which
        // every idle connection carries.
        match Box::pin(authenticate(&ctx, stream, rbuf, &connect)).await {
            Ok(data) => authenticated = Some(data),
            Err(code) => {
                ctx.shard.borrow_mut().stats.auth_failures += 1;
                // [MQTT-4.12.0-2..4]: a failed exchange ends with CONNACK and the reason code.
                link.write_packet(&refusal_connack(code), Protocol::V5);
                Box::pin(flush_link(stream, &link)).await;
                return None;
            }
        }
    }
    match Engine::open(
        &ctx,
        link.clone(),
        connect,
        assigned,
        authenticated,
        identity,
    ) {
        Ok(engine) => Some(Opened { engine, link, live }),
        Err(Refused) => {
            // CONNACK with a failure code is in the link's buffer: flush it and close.
            Box::pin(flush_link(stream, &link)).await;
            None
        }
    }
}

/// Built in a function of its own so the packet is never held across an await.
fn refusal_connack(code: u8) -> Packet {
    Packet::ConnAck(codec::ConnAck {
        session_present: false,
        code,
        properties: Default::default(),
    })
}
