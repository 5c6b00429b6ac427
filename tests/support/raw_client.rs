//! The raw-packet MQTT client every integration suite uses for packet-level checks and bad
//! input: a TCP connection to the broker that writes packets through the codec (or literal
//! bytes) and strictly decodes everything the broker sends, plus the packet builders the suites
//! share. Included by each suite with `#[path = "../support/raw_client.rs"]`. Tests use [`Raw`],
//! which derefs to the shared connection [`RawConn`]; each suite adds its own API to [`Raw`] in
//! an `impl Raw` block of its fixture (the suites differ, e.g. in what `open` takes or whether
//! `recv_publish` skips other packets), and those methods take precedence over [`RawConn`]'s.
//!
//! Every wait is bounded ([`WAIT`] for what must happen, [`QUIET`] for what must not), so a
//! broken broker fails a test instead of hanging it.

use crate::broker_process::Broker;
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use ringmq::codec::{
    self, Ack, ConnAck, Connect, Disconnect, Packet, Properties, Protocol, Publish, QoS,
    SubOptions, Subscribe,
};
use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long something that must happen may take (a delivery, an ack, a close).
pub const WAIT: Duration = Duration::from_secs(3);
/// A window in which something must NOT happen (no delivery, no close).
pub const QUIET: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------------------
// Packet builders
// ---------------------------------------------------------------------------------------------

pub fn qos(q: u8) -> QoS {
    QoS::from_u8(q).expect("QoS 0, 1 or 2")
}

/// A CONNECT with clean start, keep alive 30 s and no properties.
pub fn connect_packet(protocol: Protocol, id: &str) -> Connect {
    Connect {
        protocol,
        clean_start: true,
        keep_alive_s: 30,
        properties: Properties::default(),
        client_id: ByteString::from(id),
        will: None,
        username: None,
        password: None,
    }
}

/// A PUBLISH; `packet_id` is ignored (0) for QoS 0.
pub fn publish(topic: &str, q: u8, packet_id: u16, payload: &[u8]) -> Publish {
    Publish {
        dup: false,
        qos: qos(q),
        retain: false,
        topic: ByteString::from(topic),
        packet_id: if q == 0 { 0 } else { packet_id },
        properties: Properties::default(),
        payload: Bytes::copy_from_slice(payload),
    }
}

/// Subscription options with this QoS and every other option at its default.
pub fn sub(q: u8) -> SubOptions {
    SubOptions {
        qos: qos(q),
        ..SubOptions::default()
    }
}

pub fn subscribe(packet_id: u16, filters: &[(&str, SubOptions)]) -> Subscribe {
    Subscribe {
        packet_id,
        properties: Properties::default(),
        filters: filters
            .iter()
            .map(|(f, o)| (ByteString::from(*f), *o))
            .collect(),
    }
}

pub fn ack(packet_id: u16, reason: u8) -> Ack {
    Ack {
        packet_id,
        reason,
        properties: Properties::default(),
    }
}

/// `p` encoded for a peer speaking `protocol`.
pub fn wire(p: &Packet, protocol: Protocol) -> Vec<u8> {
    let mut out = BytesMut::new();
    codec::encode(p, protocol, &mut out).expect("encodable packet");
    out.to_vec()
}

// ---------------------------------------------------------------------------------------------
// Raw bytes, for packets the codec would refuse to encode
// ---------------------------------------------------------------------------------------------

/// The fixed header: `first` byte and the remaining length as a variable byte integer.
pub fn fixed_header(first: u8, mut len: usize) -> Vec<u8> {
    let mut out = vec![first];
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            return out;
        }
    }
}

/// A packet from its first byte and body, with the remaining length encoded here.
pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = fixed_header(first, body.len());
    out.extend_from_slice(body);
    out
}

/// A length-prefixed string or binary field from raw bytes (which may be invalid UTF-8).
pub fn field(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// A PUBLISH built byte by byte (so that it may be invalid): `first` byte (type, flags), topic
/// bytes, packet id if any, v5 property bytes without their length (`None` for v3), payload.
pub fn publish_frame(
    first: u8,
    topic: &[u8],
    packet_id: Option<u16>,
    props: Option<&[u8]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut body = field(topic);
    if let Some(id) = packet_id {
        body.extend_from_slice(&id.to_be_bytes());
    }
    if let Some(p) = props {
        body.push(p.len() as u8);
        body.extend_from_slice(p);
    }
    body.extend_from_slice(payload);
    frame(first, &body)
}

// ---------------------------------------------------------------------------------------------
// The connection
// ---------------------------------------------------------------------------------------------

/// What the next read produced. (Test code: the size of a packet by value does not matter.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Got {
    Packet(Packet),
    Closed,
    Timeout,
}

/// A client that writes and reads MQTT packets itself. Packets a suite's helper set aside in
/// [`RawConn::pending`] while it waited for something else come first, in order, on the next
/// read.
pub struct RawConn {
    pub stream: TcpStream,
    pub buf: BytesMut,
    pub pending: VecDeque<Packet>,
    pub protocol: Protocol,
    next_id: u16,
    /// Topic aliases the broker defined on this connection (to resolve alias-only PUBLISHes).
    aliases: HashMap<u16, ByteString>,
}

impl RawConn {
    /// A TCP connection and nothing else; decodes what it reads as `protocol`.
    pub async fn open(b: &Broker, protocol: Protocol) -> RawConn {
        let stream = TcpStream::connect(b.addr()).await.expect("TCP connect");
        stream.set_nodelay(true).expect("nodelay");
        RawConn {
            stream,
            buf: BytesMut::new(),
            pending: VecDeque::new(),
            protocol,
            next_id: 1,
            aliases: HashMap::new(),
        }
    }

    /// Send `c` and read the CONNACK, whatever its code.
    pub async fn handshake(b: &Broker, c: Connect) -> (RawConn, ConnAck) {
        let mut raw = RawConn::open(b, c.protocol).await;
        raw.send(Packet::Connect(Box::new(c))).await;
        match raw.recv().await {
            Packet::ConnAck(a) => (raw, a),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Encode `p` for this connection's protocol and write it.
    pub async fn send(&mut self, p: impl Borrow<Packet>) {
        let bytes = wire(p.borrow(), self.protocol);
        self.send_bytes(&bytes).await;
    }

    /// Write bytes; a write error (the broker already closed) is ignored: reads report it.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// The next packet (pending ones first), a close, or a timeout. The broker's bytes must
    /// decode: every packet it sends is checked against the codec's strict rules.
    pub async fn next(&mut self, within: Duration) -> Got {
        if let Some(p) = self.pending.pop_front() {
            return Got::Packet(p);
        }
        self.read_packet(within).await
    }

    /// The next packet from the socket, ignoring [`RawConn::pending`].
    pub async fn read_packet(&mut self, within: Duration) -> Got {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match codec::decode(&mut self.buf, self.protocol, usize::MAX) {
                Ok(Some(p)) => return Got::Packet(self.resolve(p)),
                Ok(None) => {}
                Err(e) => panic!("the broker sent bytes that do not decode: {e}"),
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Got::Timeout,
                Ok(Ok(0)) | Ok(Err(_)) => return Got::Closed,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Record or apply a topic alias the broker sent. The alias property stays on the packet so
    /// tests can see it; an alias-only PUBLISH gets its topic back.
    fn resolve(&mut self, p: Packet) -> Packet {
        let Packet::Publish(mut p) = p else { return p };
        if let Some(alias) = p.properties.topic_alias {
            if p.topic.is_empty() {
                p.topic = self
                    .aliases
                    .get(&alias)
                    .unwrap_or_else(|| panic!("broker used topic alias {alias} it never defined"))
                    .clone();
            } else {
                self.aliases.insert(alias, p.topic.clone());
            }
        }
        Packet::Publish(p)
    }

    /// The next packet within [`WAIT`]; panics on close or timeout.
    pub async fn recv(&mut self) -> Packet {
        match self.next(WAIT).await {
            Got::Packet(p) => p,
            other => panic!("expected a packet from the broker, got {other:?}"),
        }
    }

    /// Assert that nothing arrives (and the connection stays open) for `within`.
    pub async fn expect_silence(&mut self, within: Duration) {
        match self.next(within).await {
            Got::Timeout => {}
            other => panic!("expected silence for {within:?}, got {other:?}"),
        }
    }

    /// Read until the broker closes the connection; returns the packets before the close.
    pub async fn expect_close(&mut self, within: Duration) -> Vec<Packet> {
        let deadline = tokio::time::Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Got::Packet(p) => seen.push(p),
                Got::Closed => return seen,
                Got::Timeout => panic!("connection still open after {within:?}; got {seen:?}"),
            }
        }
    }

    /// The broker ends this connection for a protocol error, within [`WAIT`]: a v5 client gets
    /// a DISCONNECT with one of `reasons` as the last packet before the close (nothing after it
    /// [MQTT-3.14.4-1], and no Session Expiry Interval on it [MQTT-3.14.2-2]); a v3 client is
    /// closed without DISCONNECT. Returns the packets before the DISCONNECT (v3: before the
    /// close) and the DISCONNECT.
    pub async fn expect_refused(&mut self, reasons: &[u8]) -> (Vec<Packet>, Option<Disconnect>) {
        let mut seen = self.expect_close(WAIT).await;
        let last = seen.pop();
        if !self.protocol.is_v5() {
            if let Some(p) = last {
                assert!(
                    !matches!(p, Packet::Disconnect(_)),
                    "a v3 client never gets DISCONNECT"
                );
                seen.push(p);
            }
            return (seen, None);
        }
        match last {
            Some(Packet::Disconnect(d)) => {
                assert!(
                    reasons.contains(&d.reason),
                    "DISCONNECT reason {:#04x}, expected one of {reasons:02x?}",
                    d.reason
                );
                assert_eq!(
                    d.properties.session_expiry_interval_s, None,
                    "a server never sends Session Expiry Interval on DISCONNECT [MQTT-3.14.2-2]"
                );
                (seen, Some(d))
            }
            other => panic!("expected DISCONNECT {reasons:02x?} then close, got {other:?}"),
        }
    }

    /// A fresh non-zero packet identifier.
    pub fn take_id(&mut self) -> u16 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// Close the socket without DISCONNECT (a network failure, for the broker).
    pub async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}

/// The raw client tests use: the shared [`RawConn`], plus what each suite's fixture adds in its
/// own `impl Raw` block.
pub struct Raw(pub RawConn);

impl std::ops::Deref for Raw {
    type Target = RawConn;
    fn deref(&self) -> &RawConn {
        &self.0
    }
}

impl std::ops::DerefMut for Raw {
    fn deref_mut(&mut self) -> &mut RawConn {
        &mut self.0
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), so a failing case can be replayed.
pub fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}
