//! A connection just accepted, before its CONNECT: the transport handshakes its listener asks
//! for (TLS for `mqtts`, the WebSocket upgrade for `ws`, both for `wss`), all within one deadline
//! (`connect_timeout_ms`; the CONNECT then gets its own), and the stream they produce handed to
//! `arrival::serve_new`.
//!
//! Owns: the order of the layers and the handshake deadline (a slowloris that dribbles a TLS
//! hello or an HTTP request is closed at it). Never: parses MQTT, or answers a failed handshake
//! with more than its own layer's refusal (a TLS alert, an HTTP status). The one exception to
//! "a handshake or nothing": a WebSocket listener answers a plain GET under `/chat` with the
//! embedded chat demo page, written within its own deadline, then closes.

use super::arrival::serve_new;
use super::connection::{close_gracefully, CLOSE_DRAIN};
use super::listener::{Listener, WsPolicy};
use crate::net::admission::Ticket;
use crate::shard::ctx::ShardCtx;
use crate::transport::tls::TlsStream;
use crate::transport::ws::{self, WsState, WsStream};
use crate::transport::Transport;
use bytes::BytesMut;
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A connection just accepted on `listener`: its transport handshakes, then its CONNECT.
pub async fn accept(ctx: ShardCtx, listener: Rc<Listener>, stream: TcpStream, ticket: Ticket) {
    let _ = stream.set_nodelay(true);
    let deadline = Instant::now() + Duration::from_millis(ctx.cfg.connect_timeout_ms);
    let cfg = &listener.cfg;
    match (listener.tls(), &listener.ws) {
        (None, None) => serve_new(ctx, stream, cfg, ticket, BytesMut::new()).await,
        (Some(tls), None) => {
            let ktls = listener.ktls.prepare(&stream, &cfg.bind);
            let stream = tls_handshake(stream, tls, deadline, &cfg.bind, ktls).await;
            count_tls(&ctx, stream.is_some());
            let Some(stream) = stream else {
                return;
            };
            if !ktls {
                Box::pin(serve_new(ctx, stream, cfg, ticket, BytesMut::new())).await;
                return;
            }
            match listener
                .ktls
                .engage(stream, &cfg.bind, cfg.use_identity_as_username)
            {
                Ok((stream, early)) => Box::pin(serve_new(ctx, stream, cfg, ticket, early)).await,
                Err(e) => log::warn!("kTLS on {}: {e}; connection closed", cfg.bind),
            }
        }
        (None, Some(policy)) => {
            let Some(stream) = ws_handshake(&ctx, stream, policy, deadline, &cfg.bind).await else {
                return;
            };
            Box::pin(serve_new(ctx, stream, cfg, ticket, BytesMut::new())).await;
        }
        (Some(tls), Some(policy)) => {
            let stream = tls_handshake(stream, tls, deadline, &cfg.bind, false).await;
            count_tls(&ctx, stream.is_some());
            let Some(stream) = stream else {
                return;
            };
            let Some(stream) =
                Box::pin(ws_handshake(&ctx, stream, policy, deadline, &cfg.bind)).await
            else {
                return;
            };
            Box::pin(serve_new(ctx, stream, cfg, ticket, BytesMut::new())).await;
        }
    }
}

fn count_tls(ctx: &ShardCtx, done: bool) {
    let mut s = ctx.shard.borrow_mut();
    if done {
        s.stats.tls_handshakes += 1;
    } else {
        s.stats.tls_handshake_failures += 1;
    }
}

/// `work`, or `TimedOut` at `deadline`.
async fn until<T>(deadline: Instant, work: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    futures_lite::future::or(work, async {
        glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
        Err(io::ErrorKind::TimedOut.into())
    })
    .await
}

/// `whole_records`: the socket carries the kernel's `tls` layer and the handshake must not read
/// past its last record (kTLS).
async fn tls_handshake(
    stream: TcpStream,
    tls: Arc<rustls::ServerConfig>,
    deadline: Instant,
    bind: &str,
    whole_records: bool,
) -> Option<TlsStream<TcpStream>> {
    let conn = match rustls::ServerConnection::new(tls) {
        Ok(c) => c,
        Err(e) => {
            log::warn!("TLS on {bind}: {e}");
            return None;
        }
    };
    let mut stream = TlsStream::new(stream, conn);
    if whole_records {
        stream.read_whole_records();
    }
    if let Err(e) = until(deadline, stream.handshake()).await {
        // rustls queued an alert saying why; the socket gets it if it takes it now.
        log::debug!("TLS handshake on {bind} failed: {e}");
        let _ = futures_lite::future::or(stream.flush(), async {
            glommio::timer::sleep(CLOSE_DRAIN).await;
            Ok(())
        })
        .await;
        return None;
    }
    Some(stream)
}

/// The WebSocket upgrade; a refused request gets its HTTP status, then a graceful close.
async fn ws_handshake<S: Transport>(
    ctx: &ShardCtx,
    mut stream: S,
    policy: &WsPolicy,
    deadline: Instant,
    bind: &str,
) -> Option<WsStream<S>> {
    let shaken = until(deadline, async {
        Ok(ws::handshake(&mut stream, &policy.handshake).await)
    })
    .await;
    match shaken {
        Ok(Ok(rest)) => Some(WsStream::from_parts(
            stream,
            Box::new(WsState::new(policy.frame_payload_max, rest)),
        )),
        Ok(Err(ws::Refused::Http(r))) => {
            log::debug!("WebSocket handshake on {bind} refused: {r}");
            close_gracefully(&mut stream, r.response()).await;
            None
        }
        Ok(Err(ws::Refused::Page(page))) => {
            // The body (up to a few hundred KiB) gets a deadline of its own, as long as the
            // request's: a reader too slow for it is dropped like a slow handshake.
            let (head, body) = page.response(&policy.handshake);
            let write = Duration::from_millis(ctx.cfg.connect_timeout_ms);
            let sent = until(Instant::now() + write, async {
                super::connection::write_all(&mut stream, &head).await?;
                super::connection::write_all(&mut stream, &body).await?;
                stream.flush().await
            })
            .await;
            match sent {
                Ok(()) => close_gracefully(&mut stream, &[]).await,
                Err(e) => log::debug!("chat page on {bind} not sent: {e}"),
            }
            None
        }
        Ok(Err(ws::Refused::Io(e))) | Err(e) => {
            log::debug!("WebSocket handshake on {bind} failed: {e}");
            None
        }
    }
}
