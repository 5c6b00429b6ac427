//! One MQTT client connection as the generator drives it: socket, buffers, state, packet ids.
//!
//! Owns: the connection state machine (connect → CONNACK → SUBSCRIBE/SUBACK → ready), the
//! write buffer that batches many packets into one `write()`, packet-identifier allocation and
//! the set of identifiers in flight. What a PUBLISH *means* (sequence accounting, latency) is the
//! engine's business; this module only moves packets.

use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;
use mio::net::TcpStream;
use ringmq_codec::{self as codec, Packet, Protocol};
use std::io::{self, Write};

/// What a connection is for. The index is the publisher / subscriber / idle client number in
/// the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Pub(u32),
    Sub(u32),
    Idle(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not connected yet (waiting for a connect slot).
    Waiting,
    /// TCP connect started and CONNECT queued; waiting for CONNACK.
    Connecting,
    /// CONNACK received; SUBSCRIBEs sent, waiting for this many SUBACKs.
    Subscribing(u32),
    Ready,
    Failed,
    Closed,
}

/// A set of 16-bit packet identifiers (8 KiB bitmap), allocated only for clients that need it.
pub struct PidSet {
    bits: Box<[u64; 1024]>,
    len: u32,
}

impl Default for PidSet {
    fn default() -> Self {
        PidSet {
            bits: Box::new([0; 1024]),
            len: 0,
        }
    }
}

impl PidSet {
    #[inline]
    pub fn contains(&self, pid: u16) -> bool {
        self.bits[usize::from(pid >> 6)] & (1 << (pid & 63)) != 0
    }
    /// Returns false if already present.
    #[inline]
    pub fn insert(&mut self, pid: u16) -> bool {
        let w = &mut self.bits[usize::from(pid >> 6)];
        let m = 1u64 << (pid & 63);
        if *w & m != 0 {
            return false;
        }
        *w |= m;
        self.len += 1;
        true
    }
    /// Returns false if absent.
    #[inline]
    pub fn remove(&mut self, pid: u16) -> bool {
        let w = &mut self.bits[usize::from(pid >> 6)];
        let m = 1u64 << (pid & 63);
        if *w & m == 0 {
            return false;
        }
        *w &= !m;
        self.len -= 1;
        true
    }
    pub fn len(&self) -> u32 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The identifiers present, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.bits.iter().enumerate().flat_map(|(w, &bits)| {
            (0..64u16)
                .filter(move |b| bits & (1u64 << b) != 0)
                .map(move |b| (w as u16) << 6 | b)
        })
    }
}

pub struct Client {
    pub role: Role,
    pub client_id: ByteString,
    pub sock: Option<TcpStream>,
    /// `--tls`: the TLS session between `wbuf`/`rbuf` (plaintext MQTT) and the socket. Boxed:
    /// most of a `ClientConnection` is its buffers, and plain clients pay one pointer.
    pub tls: Option<Box<rustls::ClientConnection>>,
    /// `--ws`: the WebSocket state between `wbuf`/`rbuf` (MQTT bytes) and the socket. Boxed for
    /// the same reason as `tls`.
    pub ws: Option<Box<crate::ws::WsConn>>,
    pub state: State,
    /// Bytes read but not yet decoded (a partial packet at most, between reads).
    pub rbuf: BytesMut,
    /// Encoded packets not yet written. Many PUBLISHes accumulate here and leave in one write.
    pub wbuf: BytesMut,
    /// The last write hit EAGAIN: wait for a writable event before writing again.
    pub write_blocked: bool,
    /// Already queued in the worker's list of clients to flush.
    pub dirty: bool,
    pub last_tx_ns: u64,
    pub connect_start_ns: u64,
    next_pid: u16,
    /// Highest identifier handed out before wrapping to 1. Publishers lower it to a few times
    /// their window so a table indexed by identifier (message of each in-flight PUBLISH) stays
    /// small; identifiers still in flight are always skipped.
    pub pid_max: u16,
    /// Identifiers of our own packets awaiting an acknowledgement (PUBLISH QoS 1/2, SUBSCRIBE).
    pub outstanding: PidSet,
    /// The broker's Receive Maximum (v5 CONNACK), capping our QoS 1/2 window.
    pub server_receive_max: u16,
    pub error: Option<String>,
}

impl Client {
    pub fn new(role: Role, client_id: String) -> Client {
        Client {
            role,
            client_id: ByteString::from(client_id),
            sock: None,
            tls: None,
            ws: None,
            state: State::Waiting,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            write_blocked: false,
            dirty: false,
            last_tx_ns: 0,
            connect_start_ns: 0,
            next_pid: 0,
            pid_max: u16::MAX,
            outstanding: PidSet::default(),
            server_receive_max: u16::MAX,
            error: None,
        }
    }

    /// Encode `p` into the write buffer (written by the next flush).
    pub fn queue(&mut self, p: &Packet, protocol: Protocol, now_ns: u64) {
        if let Err(e) = codec::encode(p, protocol, &mut self.wbuf) {
            // Only reachable with absurd user input (65 KiB topics); make it visible.
            self.error.get_or_insert_with(|| format!("encode: {e}"));
        }
        self.last_tx_ns = now_ns;
    }

    /// Next free packet identifier (1..=`pid_max`, skipping those still in flight). The caller
    /// keeps the in-flight count below `pid_max` so this always terminates.
    pub fn alloc_pid(&mut self) -> u16 {
        loop {
            self.next_pid = if self.next_pid >= self.pid_max.max(1) {
                1
            } else {
                self.next_pid + 1
            };
            if !self.outstanding.contains(self.next_pid) {
                return self.next_pid;
            }
        }
    }

    /// Write as much of the buffer as the socket takes. `Ok` also when it would block (then
    /// `write_blocked` is set and a writable event resumes).
    pub fn flush(&mut self) -> io::Result<()> {
        if self.tls.is_some() {
            return self.flush_tls();
        }
        let Some(sock) = self.sock.as_mut() else {
            self.wbuf.clear();
            return Ok(());
        };
        // Over WebSocket what leaves is the frame buffer: everything batched in `wbuf` becomes
        // frames there first (once the upgrade completed), so a batch is still one write.
        let out = match self.ws.as_mut() {
            Some(ws) => {
                ws.frame(&mut self.wbuf);
                &mut ws.out
            }
            None => &mut self.wbuf,
        };
        while !out.is_empty() {
            match sock.write(out) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0")),
                Ok(n) => out.advance(n),
                Err(e) if must_wait(&e) => {
                    self.write_blocked = true;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        out.clear();
        Ok(())
    }

    /// `flush` over TLS: hand the plaintext to rustls (it seals it into records, as much as its
    /// buffer limit takes), write the records, repeat until both are empty or the socket is
    /// full. Before the handshake completes rustls holds the plaintext (CONNECT) until it can
    /// send it; the read path calls `flush` again when the handshake makes progress.
    fn flush_tls(&mut self) -> io::Result<()> {
        let (Some(sock), Some(tls)) = (self.sock.as_mut(), self.tls.as_mut()) else {
            self.wbuf.clear();
            return Ok(());
        };
        loop {
            if !self.wbuf.is_empty() {
                let n = tls.writer().write(&self.wbuf)?;
                self.wbuf.advance(n);
            }
            if !tls.wants_write() {
                // Either everything left, or rustls takes no more plaintext until the
                // handshake completes.
                break;
            }
            match tls.write_tls(sock) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0")),
                Ok(_) => {}
                Err(e) if must_wait(&e) => {
                    self.write_blocked = true;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.wbuf.is_empty() {
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Something is waiting to be written: plaintext not yet sealed, TLS records (handshake,
    /// alerts) or WebSocket frames (request, pong) not yet sent.
    pub fn wants_flush(&self) -> bool {
        !self.wbuf.is_empty()
            || self.tls.as_ref().is_some_and(|t| t.wants_write())
            || self.ws.as_ref().is_some_and(|w| !w.out.is_empty())
    }

    pub fn is_live(&self) -> bool {
        matches!(
            self.state,
            State::Connecting | State::Subscribing(_) | State::Ready
        )
    }
}

/// A write that must wait for the socket: full (`WouldBlock`), or connect() still in progress
/// (`NotConnected`).
fn must_wait(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::NotConnected
    )
}

/// The CONNECT every benchmark client sends: clean session, no will.
pub fn connect_packet(
    client_id: &ByteString,
    protocol: Protocol,
    keep_alive_s: u16,
    username: Option<&ByteString>,
    password: Option<&Bytes>,
) -> Packet {
    let mut properties = codec::Properties::default();
    if protocol.is_v5() {
        // We acknowledge every QoS 1/2 delivery at once; let the broker send as much as it
        // wants so the broker's own window, not ours, is what gets measured.
        properties.receive_maximum = Some(u16::MAX);
    }
    Packet::Connect(Box::new(codec::Connect {
        protocol,
        clean_start: true,
        keep_alive_s,
        properties,
        client_id: client_id.clone(),
        will: None,
        username: username.cloned(),
        password: password.cloned(),
    }))
}

/// The same CONNECT asking for a persistent session (v5: kept 300 s after a disconnect).
pub fn persistent(pkt: Packet) -> Packet {
    match pkt {
        Packet::Connect(mut c) => {
            c.clean_start = false;
            if c.protocol.is_v5() {
                c.properties.session_expiry_interval_s = Some(300);
            }
            Packet::Connect(c)
        }
        other => other,
    }
}

/// An acknowledgement (PUBACK / PUBREC / PUBREL / PUBCOMP share one shape).
pub fn ack(packet_id: u16) -> codec::Ack {
    codec::Ack {
        packet_id,
        reason: 0,
        properties: codec::Properties::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_set_and_allocation() {
        let mut c = Client::new(Role::Pub(0), "x".into());
        let a = c.alloc_pid();
        assert_eq!(a, 1);
        assert!(c.outstanding.insert(a));
        assert!(!c.outstanding.insert(a));
        assert!(c.outstanding.insert(2));
        assert_eq!(c.alloc_pid(), 3, "skips 2 which is in flight");
        assert!(c.outstanding.remove(1));
        assert!(!c.outstanding.remove(1));
        assert_eq!(c.outstanding.len(), 1);
        // Wraps past 65535 to 1, never 0.
        let mut c = Client::new(Role::Pub(0), "y".into());
        for _ in 0..65535 {
            assert_ne!(c.alloc_pid(), 0);
        }
        assert_eq!(c.alloc_pid(), 1);
        // A lowered pid_max wraps early; iter lists what is in flight.
        let mut c = Client::new(Role::Pub(0), "z".into());
        c.pid_max = 3;
        let ids: Vec<u16> = (0..4).map(|_| c.alloc_pid()).collect();
        assert_eq!(ids, vec![1, 2, 3, 1]);
        c.outstanding.insert(2);
        c.outstanding.insert(700);
        assert_eq!(c.alloc_pid(), 3, "skips 2");
        assert_eq!(c.outstanding.iter().collect::<Vec<_>>(), vec![2, 700]);
    }
}
