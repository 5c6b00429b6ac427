//! `ringmq-relay`: a trivial single-threaded MQTT forwarding relay, the ceiling the broker's
//! large-payload throughput is compared to (issue 11: "what does a minimal forwarding server
//! reach on one core with 16 KB payloads?").
//!
//! It is NOT a broker. It speaks just enough MQTT 3.1 / 3.1.1 / 5 for `ringmq-bench pairs
//! --qos 0` (and simple third-party clients) to run against it:
//!
//! - CONNECT → CONNACK (accepted, no session, no properties). Nothing past the protocol level is
//!   read: no authentication, no will, keep alive not enforced.
//! - SUBSCRIBE → SUBACK granting QoS 0 to every exact filter; a wildcard filter (`+`, `#`) is
//!   refused (0x80), wildcards are not supported. UNSUBSCRIBE → UNSUBACK.
//! - PINGREQ → PINGRESP; DISCONNECT → close.
//! - PUBLISH QoS 0: the topic is looked up in a `HashMap<topic, subscribers>` (exact match) and
//!   the received packet bytes are appended unchanged to each subscriber's write buffer (one
//!   user-space copy per subscriber), written once per event-loop iteration. Because bytes are
//!   forwarded unchanged, every client must speak the same PUBLISH format: 3.1/3.1.1 with
//!   3.1/3.1.1, 5 with 5 (ringmq-bench uses one version for all its clients); a PUBLISH that
//!   would cross versions closes the publisher. The retain flag and v5 properties travel as
//!   sent; v5 topic aliases (empty topic) are not supported (close).
//! - PUBLISH QoS 1/2 and every other packet: close the connection. Malformed input closes that
//!   connection only; nothing a peer sends can panic the relay.
//!
//! Back-pressure, not loss: before a PUBLISH is forwarded, every subscriber it goes to must have
//! less than `HIGH_WATER` (4 MiB) unsent. If one has more, the publisher's connection stops being
//! parsed and read (the PUBLISH stays in its read buffer, TCP pushes back on the publisher) and
//! it waits on that subscriber; once the subscriber's backlog falls to `LOW_WATER` (1 MiB) the
//! waiting publishers resume. A subscriber's write buffer is thus bounded by 4 MiB plus one
//! packet; QoS 0 loses nothing here by design. The same rule applies to a connection's own
//! replies (CONNACK, SUBACK, PINGRESP), so a client that sends but never reads is paused too.
//!
//! I/O: one thread, mio (edge-triggered epoll), non-blocking sockets with TCP_NODELAY. A
//! readable connection is read into its 256 KiB buffer (grown to fit a larger packet) and
//! parsed, repeatedly until `WouldBlock`, at most `READS_PER_TURN` reads per turn before other
//! connections get theirs (it is queued to continue on the next iteration). Writes are tried at
//! the end of each iteration for every connection given data; WRITABLE interest is registered
//! only while a write buffer is non-empty after that attempt.

use clap::Parser;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

/// Trivial single-threaded MQTT QoS 0 forwarding relay (exact topics only): the "minimal
/// forwarding server on one core" baseline for ringmq-bench.
#[derive(Debug, Parser)]
#[command(name = "ringmq-relay", version, about, long_about = None)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:1885")]
    bind: SocketAddr,
}

const LISTENER: Token = Token(usize::MAX);
/// Initial (and usual) read buffer per connection.
const READ_BUF: usize = 256 * 1024;
/// A subscriber with this much unsent stops its publishers...
const HIGH_WATER: usize = 4 * 1024 * 1024;
/// ...until it is down to this much.
const LOW_WATER: usize = 1024 * 1024;
/// Reads per connection per event-loop turn (fairness between busy publishers).
const READS_PER_TURN: usize = 16;
/// Compact the read buffer when less than this is free at its end.
const MIN_READ: usize = 16 * 1024;
/// MQTT's largest remaining length (4-byte varint).
const MAX_REMAINING: usize = 268_435_455;

/// Protocol family of a connection: what its PUBLISH packets look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// Before CONNECT.
    None,
    /// 3.1 (level 3) or 3.1.1 (level 4): same PUBLISH format.
    V3,
    V5,
}

struct Conn {
    sock: TcpStream,
    version: Version,
    /// `rbuf[rstart..rend]` is received but not yet handled (at most a partial packet, unless
    /// the connection is paused).
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    /// `wbuf[wpos..]` is waiting to be written.
    wbuf: Vec<u8>,
    wpos: usize,
    /// Registered for WRITABLE as well as READABLE.
    want_write: bool,
    /// Already in this iteration's flush list.
    dirty: bool,
    /// Paused by back-pressure: waiting in some connection's `waiters`.
    paused: bool,
    /// Connections paused because this one's write buffer is full.
    waiters: Vec<usize>,
    /// Topics this connection is subscribed to (to clean the table at close).
    topics: Vec<Vec<u8>>,
}

impl Conn {
    fn pending(&self) -> usize {
        self.wbuf.len() - self.wpos
    }
}

/// What handling the buffered input ended with.
enum Parsed {
    /// Need more bytes.
    More,
    /// Paused by back-pressure.
    Paused,
    /// Close the connection (the reason, for the log).
    Close(&'static str),
}

struct Relay {
    poll: Poll,
    listener: TcpListener,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    subs: HashMap<Vec<u8>, Vec<usize>>,
    /// Connections to service (read/parse) on the next turn: resumed from a pause or out of
    /// read budget.
    runnable: Vec<usize>,
    /// Connections given output this turn, to flush at its end.
    dirty: Vec<usize>,
    /// One warning per kind of refused input, not one per connection.
    warned_qos: bool,
    warned_mismatch: bool,
}

/// Remaining-length varint at `b[1..]`: `Ok(Some((remaining, header_len)))`, `Ok(None)` if
/// incomplete, `Err` if malformed.
fn fixed_header(b: &[u8]) -> Result<Option<(usize, usize)>, &'static str> {
    let mut value = 0usize;
    for i in 0..4 {
        let Some(&byte) = b.get(1 + i) else {
            return Ok(None);
        };
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, 2 + i)));
        }
    }
    Err("remaining length longer than 4 bytes")
}

/// Variable byte integer at `b[*pos..]` (v5 property lengths), advancing `pos`.
fn varint(b: &[u8], pos: &mut usize) -> Option<usize> {
    let mut value = 0usize;
    for i in 0..4 {
        let byte = *b.get(*pos)?;
        *pos += 1;
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn u16_at(b: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(pos)?, *b.get(pos + 1)?]))
}

/// A length-prefixed string at `b[*pos..]`, advancing `pos`.
fn string<'a>(b: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let n = usize::from(u16_at(b, *pos)?);
    let s = b.get(*pos + 2..*pos + 2 + n)?;
    *pos += 2 + n;
    Some(s)
}

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// SUBACK / UNSUBACK: `kind` byte, packet id, (v5) empty properties, one code per filter.
fn ack_with_codes(out: &mut Vec<u8>, kind: u8, v5: bool, pid: u16, codes: &[u8]) {
    out.push(kind);
    put_varint(out, 2 + usize::from(v5) + codes.len());
    out.extend_from_slice(&pid.to_be_bytes());
    if v5 {
        out.push(0);
    }
    out.extend_from_slice(codes);
}

fn is_wildcard(filter: &[u8]) -> bool {
    filter.iter().any(|&c| c == b'+' || c == b'#')
}

impl Relay {
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = if self.runnable.is_empty() {
                None
            } else {
                Some(std::time::Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for ev in events.iter() {
                let t = ev.token();
                if t == LISTENER {
                    self.accept();
                    continue;
                }
                let t = t.0;
                if ev.is_writable() {
                    self.flush(t);
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    let paused = matches!(self.conns.get(t), Some(Some(c)) if c.paused);
                    if !paused {
                        self.service(t);
                    }
                }
            }
            for t in std::mem::take(&mut self.runnable) {
                self.service(t);
            }
            // Flushing can resume paused publishers (into `runnable`) but adds no output, so
            // one pass empties the list.
            let mut dirty = std::mem::take(&mut self.dirty);
            for &t in &dirty {
                if let Some(Some(c)) = self.conns.get_mut(t) {
                    c.dirty = false;
                }
                self.flush(t);
            }
            dirty.clear();
            self.dirty = dirty;
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut sock, _peer)) => {
                    if let Err(e) = sock.set_nodelay(true) {
                        eprintln!("ringmq-relay: TCP_NODELAY: {e}");
                    }
                    let t = self.free.pop().unwrap_or(self.conns.len());
                    if let Err(e) =
                        self.poll
                            .registry()
                            .register(&mut sock, Token(t), Interest::READABLE)
                    {
                        eprintln!("ringmq-relay: register: {e}");
                        self.free.push(t);
                        continue;
                    }
                    let c = Conn {
                        sock,
                        version: Version::None,
                        rbuf: vec![0; READ_BUF],
                        rstart: 0,
                        rend: 0,
                        wbuf: Vec::new(),
                        wpos: 0,
                        want_write: false,
                        dirty: false,
                        paused: false,
                        waiters: Vec::new(),
                        topics: Vec::new(),
                    };
                    if t == self.conns.len() {
                        self.conns.push(Some(c));
                    } else {
                        self.conns[t] = Some(c);
                    }
                    // Data may already be there (edge-triggered: no event for it otherwise).
                    self.runnable.push(t);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: retry on the next connection attempt.
                    eprintln!("ringmq-relay: accept: {e}");
                    return;
                }
            }
        }
    }

    /// Handle what is buffered, then read and handle more, until the socket is empty, the
    /// connection is paused or closed, or its read budget for this turn is spent.
    fn service(&mut self, t: usize) {
        let mut reads = 0;
        loop {
            let Some(Some(c)) = self.conns.get_mut(t) else {
                return;
            };
            c.paused = false;
            // Handle with the read buffer taken out, so subscribers' write buffers (possibly
            // this connection's own) can be borrowed meanwhile.
            let rbuf = std::mem::take(&mut c.rbuf);
            let (mut start, end) = (c.rstart, c.rend);
            let r = self.handle(t, &rbuf, &mut start, end);
            let Some(Some(c)) = self.conns.get_mut(t) else {
                return;
            };
            c.rbuf = rbuf;
            c.rstart = start;
            match r {
                Parsed::More => {}
                Parsed::Paused => return,
                Parsed::Close(why) => return self.close(t, why),
            }
            if reads == READS_PER_TURN {
                self.runnable.push(t);
                return;
            }
            reads += 1;
            if let Err(why) = make_room(c) {
                return self.close(t, why);
            }
            let (rend, len) = (c.rend, c.rbuf.len());
            match c.sock.read(&mut c.rbuf[rend..len]) {
                Ok(0) => return self.close(t, ""),
                Ok(n) => c.rend += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.close(t, ""),
            }
        }
    }

    /// Handle every complete packet in `rbuf[*start..end]`, advancing `start` past each.
    fn handle(&mut self, t: usize, rbuf: &[u8], start: &mut usize, end: usize) -> Parsed {
        loop {
            let b = &rbuf[*start..end];
            if b.first().is_some_and(|&f| f != 0x10)
                && matches!(self.conns.get(t), Some(Some(c)) if c.version == Version::None)
            {
                // Refuse a non-MQTT peer at once, not after the length its first bytes announce.
                return Parsed::Close("first packet is not CONNECT");
            }
            let (remaining, hlen) = match fixed_header(b) {
                Ok(Some(h)) => h,
                Ok(None) => return Parsed::More,
                Err(why) => return Parsed::Close(why),
            };
            let total = hlen + remaining;
            if b.len() < total {
                return Parsed::More;
            }
            let pkt = &b[..total];
            let body = &pkt[hlen..];
            match self.packet(t, pkt[0], pkt, body) {
                Ok(true) => *start += total,
                Ok(false) => {
                    let Some(Some(c)) = self.conns.get_mut(t) else {
                        return Parsed::Close("gone");
                    };
                    c.paused = true;
                    return Parsed::Paused;
                }
                Err(why) => return Parsed::Close(why),
            }
            if *start == end {
                return Parsed::More;
            }
        }
    }

    /// If `target`'s backlog is over the high-water mark, register `t` as waiting on it and
    /// return true (the caller stops handling `t`'s input).
    fn must_wait(&mut self, t: usize, target: usize) -> bool {
        match self.conns.get_mut(target) {
            Some(Some(c)) if c.pending() >= HIGH_WATER => {
                c.waiters.push(t);
                true
            }
            _ => false,
        }
    }

    /// Append a reply to `t`'s own write buffer.
    fn reply(&mut self, t: usize, f: impl FnOnce(&mut Vec<u8>)) {
        if let Some(Some(c)) = self.conns.get_mut(t) {
            f(&mut c.wbuf);
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(t);
            }
        }
    }

    /// One complete packet. `Ok(true)`: handled; `Ok(false)`: not handled, pause `t`.
    fn packet(
        &mut self,
        t: usize,
        first: u8,
        pkt: &[u8],
        body: &[u8],
    ) -> Result<bool, &'static str> {
        let version = match self.conns.get(t) {
            Some(Some(c)) => c.version,
            _ => return Err("gone"),
        };
        let v5 = version == Version::V5;
        if version == Version::None && first != 0x10 {
            return Err("first packet is not CONNECT");
        }
        if first & 0xf0 != 0x30 && self.must_wait(t, t) {
            // A reply would go to our own full write buffer.
            return Ok(false);
        }
        match first {
            // PUBLISH
            0x30..=0x3f => {
                if (first >> 1) & 3 != 0 {
                    if !self.warned_qos {
                        self.warned_qos = true;
                        eprintln!(
                            "ringmq-relay: PUBLISH QoS 1/2 unsupported, closing (QoS 0 only)"
                        );
                    }
                    return Err("PUBLISH QoS > 0");
                }
                let mut pos = 0;
                let topic = string(body, &mut pos).ok_or("PUBLISH topic truncated")?;
                if topic.is_empty() {
                    return Err("PUBLISH with empty topic (topic alias unsupported)");
                }
                let Some(targets) = self.subs.get(topic) else {
                    return Ok(true);
                };
                // All or nothing: the packet is forwarded only once no subscriber is full.
                for &s in targets {
                    if let Some(Some(c)) = self.conns.get_mut(s) {
                        if c.version != version {
                            if !self.warned_mismatch {
                                self.warned_mismatch = true;
                                eprintln!(
                                    "ringmq-relay: PUBLISH between MQTT 3.x and 5 clients \
                                     unsupported (bytes are forwarded unchanged), closing the \
                                     publisher"
                                );
                            }
                            return Err("protocol version mismatch");
                        }
                        if c.pending() >= HIGH_WATER {
                            c.waiters.push(t);
                            return Ok(false);
                        }
                    }
                }
                for &s in targets {
                    if let Some(Some(c)) = self.conns.get_mut(s) {
                        c.wbuf.extend_from_slice(pkt);
                        if !c.dirty {
                            c.dirty = true;
                            self.dirty.push(s);
                        }
                    }
                }
                Ok(true)
            }
            // CONNECT
            0x10 => {
                if version != Version::None {
                    return Err("second CONNECT");
                }
                let mut pos = 0;
                let name = string(body, &mut pos).ok_or("CONNECT truncated")?;
                let level = *body.get(pos).ok_or("CONNECT truncated")?;
                let v = match (name, level) {
                    (b"MQIsdp", 3) | (b"MQTT", 4) => Version::V3,
                    (b"MQTT", 5) => Version::V5,
                    _ => return Err("unsupported protocol name or level"),
                };
                if let Some(Some(c)) = self.conns.get_mut(t) {
                    c.version = v;
                }
                self.reply(t, |w| {
                    if v == Version::V5 {
                        w.extend_from_slice(&[0x20, 0x03, 0x00, 0x00, 0x00]);
                    } else {
                        w.extend_from_slice(&[0x20, 0x02, 0x00, 0x00]);
                    }
                });
                Ok(true)
            }
            // SUBSCRIBE / UNSUBSCRIBE
            0x82 | 0xa2 => {
                let subscribe = first == 0x82;
                let pid = u16_at(body, 0).ok_or("SUBSCRIBE truncated")?;
                let mut pos = 2;
                if v5 {
                    let n = varint(body, &mut pos).ok_or("SUBSCRIBE properties malformed")?;
                    pos = pos
                        .checked_add(n)
                        .filter(|&p| p <= body.len())
                        .ok_or("SUBSCRIBE properties truncated")?;
                }
                let mut codes = Vec::new();
                while pos < body.len() {
                    let filter = string(body, &mut pos).ok_or("SUBSCRIBE filter truncated")?;
                    if subscribe {
                        body.get(pos).ok_or("SUBSCRIBE options missing")?;
                        pos += 1;
                        if filter.is_empty() || is_wildcard(filter) {
                            codes.push(0x80);
                        } else {
                            self.subscribe(t, filter);
                            codes.push(0x00);
                        }
                    } else {
                        let had = self.unsubscribe(t, filter);
                        // v5 reason codes: 0x00 success, 0x11 no subscription existed.
                        codes.push(if had || !v5 { 0x00 } else { 0x11 });
                    }
                }
                if codes.is_empty() {
                    return Err("SUBSCRIBE without filters");
                }
                self.reply(t, |w| {
                    if subscribe {
                        ack_with_codes(w, 0x90, v5, pid, &codes);
                    } else if v5 {
                        ack_with_codes(w, 0xb0, true, pid, &codes);
                    } else {
                        ack_with_codes(w, 0xb0, false, pid, &[]);
                    }
                });
                Ok(true)
            }
            // PINGREQ
            0xc0 => {
                self.reply(t, |w| w.extend_from_slice(&[0xd0, 0x00]));
                Ok(true)
            }
            // DISCONNECT
            0xe0 => Err(""),
            _ => Err("unsupported packet type"),
        }
    }

    fn subscribe(&mut self, t: usize, filter: &[u8]) {
        let list = self.subs.entry(filter.to_vec()).or_default();
        if !list.contains(&t) {
            list.push(t);
            if let Some(Some(c)) = self.conns.get_mut(t) {
                c.topics.push(filter.to_vec());
            }
        }
    }

    fn unsubscribe(&mut self, t: usize, filter: &[u8]) -> bool {
        let Some(list) = self.subs.get_mut(filter) else {
            return false;
        };
        let Some(i) = list.iter().position(|&x| x == t) else {
            return false;
        };
        list.swap_remove(i);
        if list.is_empty() {
            self.subs.remove(filter);
        }
        if let Some(Some(c)) = self.conns.get_mut(t) {
            c.topics.retain(|f| f.as_slice() != filter);
        }
        true
    }

    /// Write as much of `t`'s backlog as the socket takes; WRITABLE interest only while some
    /// is left; resume publishers waiting on it once it is low enough.
    fn flush(&mut self, t: usize) {
        let Some(Some(c)) = self.conns.get_mut(t) else {
            return;
        };
        while c.wpos < c.wbuf.len() {
            match c.sock.write(&c.wbuf[c.wpos..]) {
                Ok(0) => return self.close(t, ""),
                Ok(n) => c.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.close(t, ""),
            }
        }
        if c.wpos == c.wbuf.len() {
            c.wbuf.clear();
            c.wpos = 0;
        } else if c.wpos > c.wbuf.len() / 2 {
            // Keep the unsent tail at the front so the buffer does not creep.
            c.wbuf.drain(..c.wpos);
            c.wpos = 0;
        }
        let want_write = c.pending() > 0;
        if want_write != c.want_write {
            c.want_write = want_write;
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(&mut c.sock, Token(t), interest)
                .is_err()
            {
                return self.close(t, "reregister failed");
            }
        }
        if c.pending() <= LOW_WATER && !c.waiters.is_empty() {
            self.runnable.append(&mut c.waiters);
        }
    }

    fn close(&mut self, t: usize, why: &str) {
        let Some(c) = self.conns.get_mut(t).and_then(Option::take) else {
            return;
        };
        if !why.is_empty() {
            eprintln!("ringmq-relay: closing connection {t}: {why}");
        }
        for f in &c.topics {
            if let Some(list) = self.subs.get_mut(f.as_slice()) {
                list.retain(|&x| x != t);
                if list.is_empty() {
                    self.subs.remove(f.as_slice());
                }
            }
        }
        // Publishers waiting on it can go on (their packets now go elsewhere or nowhere).
        self.runnable.extend_from_slice(&c.waiters);
        // Dropping the socket closes it and removes it from epoll. Stale tokens left in
        // `runnable` / `dirty` / other waiters lists are harmless: a missing slot is skipped,
        // a reused one just gets an extra service or flush attempt.
        drop(c);
        self.free.push(t);
    }
}

/// Make room in the read buffer for more input: move a partial packet to the front, grow the
/// buffer when the packet being received is larger than it.
fn make_room(c: &mut Conn) -> Result<(), &'static str> {
    if c.rstart == c.rend {
        c.rstart = 0;
        c.rend = 0;
    }
    let need = match fixed_header(&c.rbuf[c.rstart..c.rend]) {
        Ok(Some((remaining, hlen))) if remaining <= MAX_REMAINING => remaining + hlen,
        Ok(Some(_)) => return Err("packet too large"),
        Ok(None) => 5,
        Err(why) => return Err(why),
    };
    // Compact when the tail is nearly full (so reads stay large) or the packet would not fit.
    if c.rbuf.len() - c.rend < MIN_READ || need > c.rbuf.len() - c.rstart {
        c.rbuf.copy_within(c.rstart..c.rend, 0);
        c.rend -= c.rstart;
        c.rstart = 0;
        if need > c.rbuf.len() {
            c.rbuf.resize(need.next_power_of_two(), 0);
        }
    }
    if c.rend == c.rbuf.len() {
        // Only a complete, unhandled packet could fill it, and `service` handles those first.
        return Err("read buffer full");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let run = || -> io::Result<()> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(args.bind)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        eprintln!(
            "ringmq-relay: listening on {} (single thread, QoS 0, exact topics)",
            listener.local_addr()?
        );
        Relay {
            poll,
            listener,
            conns: Vec::new(),
            free: Vec::new(),
            subs: HashMap::new(),
            runnable: Vec::new(),
            dirty: Vec::new(),
            warned_qos: false,
            warned_mismatch: false,
        }
        .run()
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringmq-relay: {}: {e}", args.bind);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_varints() {
        assert_eq!(fixed_header(&[0x30]), Ok(None));
        assert_eq!(fixed_header(&[0x30, 0x05]), Ok(Some((5, 2))));
        assert_eq!(fixed_header(&[0x30, 0x80, 0x01]), Ok(Some((128, 3))));
        assert_eq!(fixed_header(&[0x30, 0x80]), Ok(None));
        assert!(fixed_header(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
        assert_eq!(
            fixed_header(&[0x30, 0xff, 0xff, 0xff, 0x7f]),
            Ok(Some((MAX_REMAINING, 5)))
        );
        let mut v = Vec::new();
        put_varint(&mut v, 16_400);
        let mut pos = 0;
        assert_eq!(varint(&v, &mut pos), Some(16_400));
        assert_eq!(pos, v.len());
        let mut pos = 0;
        assert_eq!(string(&[0, 3, b'a', b'b'], &mut pos), None);
        assert_eq!(string(&[0, 2, b'a', b'b'], &mut pos), Some(&b"ab"[..]));
    }

    #[test]
    fn acks() {
        let mut w = Vec::new();
        ack_with_codes(&mut w, 0x90, false, 7, &[0]);
        assert_eq!(w, [0x90, 3, 0, 7, 0]);
        w.clear();
        ack_with_codes(&mut w, 0x90, true, 7, &[0, 0x80]);
        assert_eq!(w, [0x90, 5, 0, 7, 0, 0, 0x80]);
    }
}
