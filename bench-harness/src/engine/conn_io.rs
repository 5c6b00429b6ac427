//! Socket reads and writes of one connection: bytes from the socket (through TLS when the run
//! uses it) into the read buffer, complete packets out of it to [`super::session::handle`], and
//! the write buffer back to the socket. Kept apart from the session logic so each transport adds
//! its path here without touching what packets mean.

use super::session::{error_key, fail, handle, mark_dirty, Conn, Ctx};
use crate::clock::now_ns;
use ringmq_codec as codec;
use std::io::{self, Read};

pub(crate) fn reading_stopped(conn: &Conn) -> bool {
    conn.subs
        .as_ref()
        .and_then(|s| s.stall.as_ref())
        .is_some_and(|s| s.stopped)
}

pub(crate) fn on_readable(conn: &mut Conn, ci: usize, ctx: &mut Ctx, scratch: &mut [u8]) {
    if conn.c.tls.is_some() {
        return on_readable_tls(conn, ci, ctx, scratch);
    }
    loop {
        if reading_stopped(conn) {
            return;
        }
        let Some(sock) = conn.c.sock.as_mut() else {
            return;
        };
        match sock.read(scratch) {
            Ok(0) => {
                let why = if ctx.stopping {
                    return;
                } else {
                    "connection closed by broker".to_string()
                };
                fail(conn, ctx, why);
                return;
            }
            Ok(n) => {
                // One timestamp per read: the moment these bytes reached user space.
                let now = now_ns();
                let mut closed = None;
                let c = &mut conn.c;
                match c.ws.as_mut() {
                    None => c.rbuf.extend_from_slice(&scratch[..n]),
                    // Frames in, their payload into `rbuf`: the rest is the plain path.
                    Some(ws) => match ws.receive(&scratch[..n], &mut c.rbuf) {
                        Ok(r) => {
                            if r.wants_flush {
                                mark_dirty(c, ci, &mut ctx.dirty);
                            }
                            closed = r.closed;
                        }
                        Err(e) => {
                            fail(conn, ctx, e.to_string());
                            return;
                        }
                    },
                }
                if !handle_buffered(conn, ci, ctx, now) {
                    return;
                }
                if let Some(code) = closed {
                    // The packets before the close were handled (a DISCONNECT among them
                    // already failed the connection with its reason).
                    if !ctx.stopping {
                        fail(
                            conn,
                            ctx,
                            format!("WebSocket close from broker, status {code}"),
                        );
                    }
                    return;
                }
                // A short read emptied the socket; anything arriving later raises a new
                // (edge-triggered) event, so the EAGAIN-confirming read would be wasted.
                if n < scratch.len() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                if !ctx.stopping {
                    fail(conn, ctx, error_key("read", &e));
                }
                return;
            }
        }
    }
}

/// Decode and handle every complete packet in the read buffer, stamped `now`. False when the
/// connection must not be read any further (failed, closed, or a stalled subscriber).
fn handle_buffered(conn: &mut Conn, ci: usize, ctx: &mut Ctx, now: u64) -> bool {
    loop {
        match codec::decode(&mut conn.c.rbuf, ctx.protocol, ctx.settings.max_packet) {
            Ok(Some(pkt)) => {
                handle(conn, ci, ctx, pkt, now);
                if reading_stopped(conn) {
                    return false;
                }
            }
            Ok(None) => return true,
            Err(e) => {
                fail(conn, ctx, error_key("decode", &e));
                return false;
            }
        }
        if !conn.c.is_live() {
            return false;
        }
    }
}

/// `on_readable` for a TLS connection: socket → rustls (records) → plaintext → `rbuf`, until
/// the socket would block (mio is edge-triggered). A handshake message, alert or the CONNECT
/// that waited for the handshake may then want writing, so the connection is marked dirty.
fn on_readable_tls(conn: &mut Conn, ci: usize, ctx: &mut Ctx, scratch: &mut [u8]) {
    loop {
        if reading_stopped(conn) {
            return;
        }
        let c = &mut conn.c;
        let (Some(sock), Some(tls)) = (c.sock.as_mut(), c.tls.as_mut()) else {
            return;
        };
        let eof = match tls.read_tls(sock) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if !ctx.stopping {
                    fail(conn, ctx, error_key("read", &e));
                }
                return;
            }
        };
        let now = now_ns();
        if let Err(e) = tls.process_new_packets() {
            // Best effort: tell the broker why (the alert rustls queued).
            let _ = tls.write_tls(sock);
            if !ctx.stopping {
                fail(conn, ctx, error_key("tls", &e));
            }
            return;
        }
        let mut closed = eof;
        loop {
            match tls.reader().read(scratch) {
                Ok(0) => {
                    // close_notify: the broker closed the TLS session.
                    closed = true;
                    break;
                }
                Ok(n) => c.rbuf.extend_from_slice(&scratch[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // EOF without close_notify: handled as a close below.
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        if c.wants_flush() {
            mark_dirty(c, ci, &mut ctx.dirty);
        }
        if !handle_buffered(conn, ci, ctx, now) {
            return;
        }
        if closed {
            if !ctx.stopping {
                fail(conn, ctx, "connection closed by broker".to_string());
            }
            return;
        }
    }
}

pub(crate) fn flush_conn(conn: &mut Conn, ctx: &mut Ctx) {
    if conn.c.write_blocked {
        return;
    }
    if let Err(e) = conn.c.flush() {
        if !ctx.stopping {
            fail(conn, ctx, error_key("write", &e));
        }
    }
}
