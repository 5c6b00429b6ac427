//! The conformance suite's fixtures: the broker process ([`Broker`]), a raw-packet client
//! ([`Raw`]) that encodes and decodes through the codec (or sends literal bytes), packet
//! builders, and a [`Bystander`] pair of clients that proves the broker closes only the
//! offending connection and loses nothing queued for anyone else.
//!
//! Every wait is bounded ([`WAIT`] for what must happen, [`QUIET`] for what must not), so a
//! broken broker fails a test instead of hanging it.

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use ringmq::codec::{
    self, Ack, ConnAck, Connect, Disconnect, Packet, Properties, Protocol, Publish, QoS, SubAck,
    SubOptions, Subscribe, UnsubAck, Unsubscribe, Will,
};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long something that must happen may take (a delivery, an ack, a close).
pub const WAIT: Duration = Duration::from_secs(3);
/// A window in which something must NOT happen (no delivery, no close).
pub const QUIET: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------------------
// The broker process
// ---------------------------------------------------------------------------------------------

pub use crate::broker_process::Broker;

impl Broker {
    /// One shard, default configuration.
    pub async fn start() -> Broker {
        Broker::launch(1, &[]).await
    }

    /// One shard with extra flags, e.g. `&["--maximum-qos", "1"]`.
    pub async fn with(args: &[&str]) -> Broker {
        Broker::launch(1, args).await
    }

    /// `shards` shards with extra flags.
    pub async fn shards(shards: usize, args: &[&str]) -> Broker {
        Broker::launch(shards, args).await
    }
}

// ---------------------------------------------------------------------------------------------
// Packet builders
// ---------------------------------------------------------------------------------------------

pub fn qos(q: u8) -> QoS {
    QoS::from_u8(q).expect("QoS 0, 1 or 2")
}

/// A v5 CONNECT: clean start, keep alive 30 s, no properties.
pub fn v5(id: &str) -> Connect {
    Connect {
        protocol: Protocol::V5,
        clean_start: true,
        keep_alive_s: 30,
        properties: Properties::default(),
        client_id: ByteString::from(id),
        will: None,
        username: None,
        password: None,
    }
}

/// A v3.1.1 CONNECT: clean session, keep alive 30 s.
pub fn v3(id: &str) -> Connect {
    Connect {
        protocol: Protocol::V311,
        ..v5(id)
    }
}

/// `c` asking for a persistent session: clean start 0 and (v5) this Session Expiry Interval.
pub fn persistent(mut c: Connect, expiry_s: u32) -> Connect {
    c.clean_start = false;
    if c.protocol.is_v5() {
        c.properties.session_expiry_interval_s = Some(expiry_s);
    }
    c
}

/// `c` with a will message.
pub fn with_will(mut c: Connect, topic: &str, payload: &str, q: u8, retain: bool) -> Connect {
    c.will = Some(Will {
        qos: qos(q),
        retain,
        topic: ByteString::from(topic),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        properties: Properties::default(),
    });
    c
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

pub fn retained(topic: &str, q: u8, packet_id: u16, payload: &[u8]) -> Publish {
    Publish {
        retain: true,
        ..publish(topic, q, packet_id, payload)
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

pub fn unsubscribe_packet(packet_id: u16, filters: &[&str]) -> Packet {
    Packet::Unsubscribe(Unsubscribe {
        packet_id,
        properties: Properties::default(),
        filters: filters.iter().map(|f| ByteString::from(*f)).collect(),
    })
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

pub fn wire_connect(c: &Connect) -> Vec<u8> {
    wire(&Packet::Connect(Box::new(c.clone())), c.protocol)
}

/// A packet from its first byte and body, with the remaining length encoded here: for
/// packets the codec would refuse to encode.
pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// A length-prefixed string or binary field from raw bytes (which may be invalid UTF-8).
pub fn field(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// A v5 PUBLISH from raw parts: `first` byte, topic bytes, packet id, raw property bytes
/// (without their length), payload.
pub fn raw_publish(
    first: u8,
    topic: &[u8],
    id: Option<u16>,
    props: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut body = field(topic);
    if let Some(id) = id {
        body.extend_from_slice(&id.to_be_bytes());
    }
    body.push(props.len() as u8);
    body.extend_from_slice(props);
    body.extend_from_slice(payload);
    frame(first, &body)
}

/// A CONNECT body built byte by byte: protocol name, level, flags, keep alive 30, raw property
/// bytes (v5 only, `None` for v3), then the raw payload.
pub fn raw_connect(
    name: &[u8],
    level: u8,
    flags: u8,
    props: Option<&[u8]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut body = field(name);
    body.push(level);
    body.push(flags);
    body.extend_from_slice(&30u16.to_be_bytes());
    if let Some(p) = props {
        body.push(p.len() as u8);
        body.extend_from_slice(p);
    }
    body.extend_from_slice(payload);
    frame(0x10, &body)
}

// ---------------------------------------------------------------------------------------------
// The raw client
// ---------------------------------------------------------------------------------------------

/// What the next read produced. (Test code: the size of a packet by value does not matter.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Got {
    Packet(Packet),
    Closed,
    Timeout,
}

/// A client that writes and reads MQTT packets itself. Packets that arrive while a helper waits
/// for something else are kept, in order, for the next read.
pub struct Raw {
    stream: TcpStream,
    buf: BytesMut,
    pending: VecDeque<Packet>,
    pub protocol: Protocol,
    next_id: u16,
    /// Topic aliases the broker defined on this connection (to resolve alias-only PUBLISHes).
    aliases: HashMap<u16, ByteString>,
}

impl Raw {
    /// A TCP connection and nothing else; decodes what it reads as `protocol`.
    pub async fn open(b: &Broker, protocol: Protocol) -> Raw {
        let stream = TcpStream::connect(b.addr()).await.expect("TCP connect");
        stream.set_nodelay(true).expect("nodelay");
        Raw {
            stream,
            buf: BytesMut::new(),
            pending: VecDeque::new(),
            protocol,
            next_id: 1,
            aliases: HashMap::new(),
        }
    }

    /// Send `c` and read the CONNACK, whatever its code.
    pub async fn handshake(b: &Broker, c: Connect) -> (Raw, ConnAck) {
        let mut raw = Raw::open(b, c.protocol).await;
        raw.send_bytes(&wire_connect(&c)).await;
        match raw.recv().await {
            Packet::ConnAck(a) => (raw, a),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Connected with `c`; panics unless the CONNACK accepts it.
    pub async fn connect(b: &Broker, c: Connect) -> Raw {
        let id = c.client_id.clone();
        let (raw, ack) = Raw::handshake(b, c).await;
        assert_eq!(ack.code, 0, "CONNACK accepts {id}: {ack:?}");
        raw
    }

    /// A v5 client with clean start and no properties.
    pub async fn v5(b: &Broker, id: &str) -> Raw {
        Raw::connect(b, v5(id)).await
    }

    /// A v3.1.1 client with clean session.
    pub async fn v3(b: &Broker, id: &str) -> Raw {
        Raw::connect(b, v3(id)).await
    }

    pub async fn send(&mut self, p: Packet) {
        let bytes = wire(&p, self.protocol);
        self.send_bytes(&bytes).await;
    }

    /// Write bytes; a write error (the broker already closed) is ignored: reads report it.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// The next whole frame as raw bytes, straight from the socket (nothing may be pending).
    pub async fn next_frame(&mut self, within: Duration) -> Result<Vec<u8>, Got> {
        assert!(
            self.pending.is_empty(),
            "packets pending: {:?}",
            self.pending
        );
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Ok(Some(f)) = codec::frame(&self.buf, usize::MAX) {
                if self.buf.len() >= f.total_len() {
                    return Ok(self.buf.split_to(f.total_len()).to_vec());
                }
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Err(Got::Timeout),
                Ok(Ok(0)) | Ok(Err(_)) => return Err(Got::Closed),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The next packet (pending ones first), a close, or a timeout. The broker's bytes must
    /// decode: every packet it sends is checked against the codec's strict rules.
    pub async fn next(&mut self, within: Duration) -> Got {
        if let Some(p) = self.pending.pop_front() {
            return Got::Packet(p);
        }
        self.read_packet(within).await
    }

    async fn read_packet(&mut self, within: Duration) -> Got {
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

    /// The first packet `want` accepts, within [`WAIT`]; packets before it are kept for later.
    pub async fn wait_for(&mut self, what: &str, want: impl Fn(&Packet) -> bool) -> Packet {
        if let Some(i) = self.pending.iter().position(&want) {
            return self.pending.remove(i).expect("index in range");
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read_packet(left).await {
                Got::Packet(p) if want(&p) => return p,
                Got::Packet(p) => self.pending.push_back(p),
                other => panic!("waiting for {what}: {other:?} (pending {:?})", self.pending),
            }
        }
    }

    pub async fn recv_publish(&mut self) -> Publish {
        match self
            .wait_for("PUBLISH", |p| matches!(p, Packet::Publish(_)))
            .await
        {
            Packet::Publish(p) => p,
            _ => unreachable!(),
        }
    }

    /// The next PUBLISH, acknowledged as its QoS requires.
    pub async fn recv_acked(&mut self) -> Publish {
        let p = self.recv_publish().await;
        self.ack(&p).await;
        p
    }

    /// `n` PUBLISHes, each acknowledged.
    pub async fn recv_n(&mut self, n: usize) -> Vec<Publish> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.recv_acked().await);
        }
        out
    }

    /// Acknowledge a received PUBLISH: PUBACK, or PUBREC → PUBREL → PUBCOMP.
    pub async fn ack(&mut self, p: &Publish) {
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send(Packet::PubAck(ack(p.packet_id, 0))).await,
            QoS::ExactlyOnce => {
                self.send(Packet::PubRec(ack(p.packet_id, 0))).await;
                let id = p.packet_id;
                let rel = self
                    .wait_for(
                        "PUBREL",
                        |x| matches!(x, Packet::PubRel(a) if a.packet_id == id),
                    )
                    .await;
                let Packet::PubRel(rel) = rel else {
                    unreachable!()
                };
                assert_eq!(rel.reason, 0, "PUBREL for a PUBREC'd message succeeds");
                self.send(Packet::PubComp(ack(id, 0))).await;
            }
        }
    }

    /// Nothing arrives (and the connection stays open) for `within`.
    pub async fn expect_silence(&mut self, within: Duration) {
        match self.next(within).await {
            Got::Timeout => {}
            other => panic!("expected silence for {within:?}, got {other:?}"),
        }
    }

    /// Read until the broker closes the connection; returns the packets before the close.
    pub async fn expect_closed(&mut self) -> Vec<Packet> {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Got::Packet(p) => seen.push(p),
                Got::Closed => return seen,
                Got::Timeout => panic!("connection still open after {WAIT:?}; got {seen:?}"),
            }
        }
    }

    /// The broker ends this connection for a protocol error: a v5 client gets a DISCONNECT with
    /// one of `reasons` as the last packet before the close (nothing after it
    /// [MQTT-3.14.4-1]); a v3 client is closed without DISCONNECT. Returns the DISCONNECT.
    pub async fn expect_refused(&mut self, reasons: &[u8]) -> Option<Disconnect> {
        let mut seen = self.expect_closed().await;
        let last = seen.pop();
        if !self.protocol.is_v5() {
            assert!(
                !matches!(last, Some(Packet::Disconnect(_))),
                "a v3 client never gets DISCONNECT"
            );
            return None;
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
                Some(d)
            }
            other => panic!("expected DISCONNECT {reasons:02x?} then close, got {other:?}"),
        }
    }

    fn take_id(&mut self) -> u16 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// SUBSCRIBE (packet id chosen here) and return the SUBACK.
    pub async fn subscribe_with(&mut self, mut s: Subscribe) -> SubAck {
        s.packet_id = self.take_id();
        let id = s.packet_id;
        self.send(Packet::Subscribe(s)).await;
        match self
            .wait_for("SUBACK", |p| matches!(p, Packet::SubAck(_)))
            .await
        {
            Packet::SubAck(a) => {
                assert_eq!(
                    a.packet_id, id,
                    "SUBACK echoes the packet id [MQTT-3.8.4-2]"
                );
                a
            }
            _ => unreachable!(),
        }
    }

    /// Subscribe one filter with options; returns its SUBACK code.
    pub async fn subscribe_opts(&mut self, filter: &str, o: SubOptions) -> u8 {
        let a = self.subscribe_with(subscribe(0, &[(filter, o)])).await;
        assert_eq!(a.codes.len(), 1, "one code per filter");
        a.codes[0]
    }

    /// Subscribe one filter at `q` and check it is granted as asked.
    pub async fn subscribe(&mut self, filter: &str, q: u8) {
        let code = self.subscribe_opts(filter, sub(q)).await;
        assert_eq!(code, q, "SUBACK grants QoS {q} for {filter}");
    }

    /// Subscribe one filter at `q` with a Subscription Identifier.
    pub async fn subscribe_id(&mut self, filter: &str, q: u8, id: u32) {
        let mut s = subscribe(0, &[(filter, sub(q))]);
        s.properties.subscription_identifiers.push(id);
        let a = self.subscribe_with(s).await;
        assert_eq!(a.codes, vec![q], "SUBACK grants QoS {q} for {filter}");
    }

    pub async fn unsubscribe(&mut self, filters: &[&str]) -> UnsubAck {
        let id = self.take_id();
        self.send(unsubscribe_packet(id, filters)).await;
        match self
            .wait_for("UNSUBACK", |p| matches!(p, Packet::UnsubAck(_)))
            .await
        {
            Packet::UnsubAck(a) => {
                assert_eq!(
                    a.packet_id, id,
                    "UNSUBACK echoes the packet id [MQTT-3.10.4-5]"
                );
                a
            }
            _ => unreachable!(),
        }
    }

    /// Publish and complete the QoS flow (PUBACK, or PUBREC → PUBREL → PUBCOMP). A packet id
    /// of 0 in `p` is replaced by a fresh one. Returns the packet id used.
    pub async fn publish_packet(&mut self, mut p: Publish) -> u16 {
        if p.qos != QoS::AtMostOnce && p.packet_id == 0 {
            p.packet_id = self.take_id();
        }
        let (id, q) = (p.packet_id, p.qos);
        self.send(Packet::Publish(p)).await;
        match q {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                let a = self
                    .wait_for(
                        "PUBACK",
                        |x| matches!(x, Packet::PubAck(a) if a.packet_id == id),
                    )
                    .await;
                assert!(matches!(&a, Packet::PubAck(x) if x.reason < 0x80), "{a:?}");
            }
            QoS::ExactlyOnce => {
                let r = self
                    .wait_for(
                        "PUBREC",
                        |x| matches!(x, Packet::PubRec(a) if a.packet_id == id),
                    )
                    .await;
                assert!(matches!(&r, Packet::PubRec(x) if x.reason < 0x80), "{r:?}");
                self.send(Packet::PubRel(ack(id, 0))).await;
                let c = self
                    .wait_for(
                        "PUBCOMP",
                        |x| matches!(x, Packet::PubComp(a) if a.packet_id == id),
                    )
                    .await;
                assert!(matches!(&c, Packet::PubComp(x) if x.reason == 0), "{c:?}");
            }
        }
        id
    }

    pub async fn publish(&mut self, topic: &str, q: u8, payload: &[u8]) -> u16 {
        self.publish_packet(publish(topic, q, 0, payload)).await
    }

    /// PINGREQ answered by PINGRESP: the connection is alive and served.
    pub async fn ping(&mut self) {
        self.send(Packet::PingReq).await;
        self.wait_for("PINGRESP", |p| matches!(p, Packet::PingResp))
            .await;
    }

    /// DISCONNECT (normal) and wait for the broker to close.
    pub async fn disconnect(mut self) {
        self.send(Packet::Disconnect(Disconnect::default())).await;
        self.expect_closed().await;
    }

    /// Close the socket without DISCONNECT (a network failure, for the broker).
    pub async fn drop_tcp(mut self) {
        let _ = self.stream.shutdown().await;
    }
}

/// Payloads of `ps`, as strings, in order.
pub fn payloads(ps: &[Publish]) -> Vec<String> {
    ps.iter()
        .map(|p| String::from_utf8_lossy(&p.payload).into_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Bystander: other clients must lose nothing
// ---------------------------------------------------------------------------------------------

pub const BYSTANDER_TOPIC: &str = "bystander/offender";

/// A subscriber and a publisher (on different shards when there are two) that are not part of a
/// test's misbehaviour: when it is over, both are still connected and the subscriber got every
/// message published for it, including those the offender published before it misbehaved.
pub struct Bystander {
    sub: Raw,
    publisher: Raw,
    expected: Vec<String>,
}

impl Bystander {
    pub async fn start(b: &Broker) -> Bystander {
        let mut sub = Raw::v5(b, &b.id("bystander-sub", 0)).await;
        sub.subscribe("bystander/+", 1).await;
        let mut publisher = Raw::v3(b, &b.id("bystander-pub", 1)).await;
        publisher.publish("bystander/pub", 1, b"before").await;
        Bystander {
            sub,
            publisher,
            expected: vec!["before".into()],
        }
    }

    /// The subscriber must also get `payload` (published on [`BYSTANDER_TOPIC`] by someone).
    pub fn expect(&mut self, payload: &str) {
        self.expected.push(payload.into());
    }

    /// Publish once more, then check the subscriber got everything, the bystander publisher's
    /// messages in order, and both connections still work.
    pub async fn finish(mut self) {
        self.publisher.publish("bystander/pub", 1, b"after").await;
        self.expected.push("after".into());
        let got = self.sub.recv_n(self.expected.len()).await;
        let mut all = payloads(&got);
        let own: Vec<String> = got
            .iter()
            .filter(|p| &p.topic[..] == "bystander/pub")
            .map(|p| String::from_utf8_lossy(&p.payload).into_owned())
            .collect();
        assert_eq!(own, vec!["before", "after"], "bystander publisher's order");
        all.sort();
        self.expected.sort();
        assert_eq!(all, self.expected, "the bystander subscriber lost messages");
        self.sub.expect_silence(Duration::from_millis(50)).await;
        self.sub.ping().await;
        self.publisher.ping().await;
    }
}

/// The standard bad-input check. A connected `offender` first publishes a QoS 1 message for the
/// bystander (the broker owns it once acknowledged), then sends `bad`. The broker must close the
/// offender only — v5: with a DISCONNECT whose reason is one of `reasons`; v3: without one —
/// and the bystander must get every message. Returns the offender's DISCONNECT (v5).
pub async fn assert_violation(
    b: &Broker,
    mut offender: Raw,
    bad: &[u8],
    reasons: &[u8],
) -> Option<Disconnect> {
    let mut by = Bystander::start(b).await;
    offender
        .publish(BYSTANDER_TOPIC, 1, b"offender, before")
        .await;
    by.expect("offender, before");
    offender.send_bytes(bad).await;
    let d = offender.expect_refused(reasons).await;
    by.finish().await;
    d
}

/// [`assert_violation`] for a fresh v5 offender with no special configuration.
pub async fn assert_v5_violation(b: &Broker, bad: &[u8], reasons: &[u8]) -> Option<Disconnect> {
    let offender = Raw::v5(b, &b.id("offender", 1)).await;
    assert_violation(b, offender, bad, reasons).await
}

/// A CONNECT the broker must refuse: sent on a fresh connection, answered with a CONNACK whose
/// code is one of `codes` (`&[]`: no CONNACK at all) and then closed, while a bystander loses
/// nothing. Returns the CONNACK, if any.
pub async fn assert_connect_refused(
    b: &Broker,
    protocol: Protocol,
    bytes: &[u8],
    codes: &[u8],
) -> Option<ConnAck> {
    let by = Bystander::start(b).await;
    let mut raw = Raw::open(b, protocol).await;
    raw.send_bytes(bytes).await;
    let seen = raw.expect_closed().await;
    let ack = match seen.as_slice() {
        [] => {
            assert!(
                codes.is_empty(),
                "closed without CONNACK, expected {codes:02x?}"
            );
            None
        }
        [Packet::ConnAck(a)] => {
            assert!(
                codes.contains(&a.code),
                "CONNACK code {:#04x}, expected one of {codes:02x?}",
                a.code
            );
            assert!(
                !a.session_present,
                "a refusal has Session Present 0 [MQTT-3.2.2-6]"
            );
            Some(a.clone())
        }
        other => panic!("expected at most a CONNACK before the close, got {other:?}"),
    };
    by.finish().await;
    ack
}

/// A filter the broker must refuse in SUBSCRIBE: either the whole packet (v5 DISCONNECT 0x81 or
/// 0x82) or that filter (SUBACK 0x8F Topic Filter invalid, the connection staying up). The
/// specification names no single code for a filter that breaks the wildcard or shared
/// subscription syntax. A bystander loses nothing either way.
pub async fn assert_filter_refused(b: &Broker, filter: &str) {
    let by = Bystander::start(b).await;
    let mut c = Raw::v5(b, &b.id("offender", 1)).await;
    c.send(Packet::Subscribe(subscribe(1, &[(filter, sub(1))])))
        .await;
    match c.next(WAIT).await {
        Got::Packet(Packet::SubAck(a)) => {
            assert_eq!(a.codes, [0x8F], "SUBACK for {filter:?}");
            c.ping().await;
        }
        Got::Packet(Packet::Disconnect(d)) => {
            assert!(matches!(d.reason, 0x81 | 0x82), "{filter:?}: {d:?}");
            c.expect_closed().await;
        }
        other => panic!("{filter:?} was not refused: {other:?}"),
    }
    by.finish().await;
}
