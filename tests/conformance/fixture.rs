//! The conformance suite's fixtures: the broker process ([`Broker`]), a raw-packet client
//! ([`Raw`]) that encodes and decodes through the codec (or sends literal bytes), packet
//! builders, and a [`Bystander`] pair of clients that proves the broker closes only the
//! offending connection and loses nothing queued for anyone else.
//!
//! Every wait is bounded ([`WAIT`] for what must happen, [`QUIET`] for what must not), so a
//! broken broker fails a test instead of hanging it.

use bytes::Bytes;
use bytestring::ByteString;
use ringmq::codec::{
    self, ConnAck, Connect, Disconnect, Packet, Properties, Protocol, Publish, QoS, SubAck,
    SubOptions, Subscribe, UnsubAck, Unsubscribe, Will,
};
use std::time::Duration;
use tokio::io::AsyncReadExt;

use crate::raw_client::connect_packet;

pub use crate::raw_client::{
    ack, field, frame, garbage, publish, qos, sub, subscribe, wire, Got, Raw, RawConn, QUIET, WAIT,
};

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

/// A v5 CONNECT: clean start, keep alive 30 s, no properties.
pub fn v5(id: &str) -> Connect {
    connect_packet(Protocol::V5, id)
}

/// A v3.1.1 CONNECT: clean session, keep alive 30 s.
pub fn v3(id: &str) -> Connect {
    connect_packet(Protocol::V311, id)
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

pub fn retained(topic: &str, q: u8, packet_id: u16, payload: &[u8]) -> Publish {
    Publish {
        retain: true,
        ..publish(topic, q, packet_id, payload)
    }
}

pub fn unsubscribe_packet(packet_id: u16, filters: &[&str]) -> Packet {
    Packet::Unsubscribe(Unsubscribe {
        packet_id,
        properties: Properties::default(),
        filters: filters.iter().map(|f| ByteString::from(*f)).collect(),
    })
}

pub fn wire_connect(c: &Connect) -> Vec<u8> {
    wire(&Packet::Connect(Box::new(c.clone())), c.protocol)
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
    crate::raw_client::publish_frame(first, topic, id, Some(props), payload)
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

/// This suite's API of the raw client [`Raw`], which writes and reads MQTT packets itself.
/// Packets that arrive while a helper waits for something else are kept, in order, for the next
/// read. The connection, `send`, `next`, `recv`, `expect_silence`, `expect_close` and `take_id`
/// are [`RawConn`]'s.
impl Raw {
    /// A TCP connection and nothing else; decodes what it reads as `protocol`.
    pub async fn open(b: &Broker, protocol: Protocol) -> Raw {
        Raw(RawConn::open(b, protocol).await)
    }

    /// Send `c` and read the CONNACK, whatever its code.
    pub async fn handshake(b: &Broker, c: Connect) -> (Raw, ConnAck) {
        let (raw, ack) = RawConn::handshake(b, c).await;
        (Raw(raw), ack)
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

    /// The next whole frame as raw bytes, straight from the socket (nothing may be pending).
    pub async fn next_frame(&mut self, within: Duration) -> Result<Vec<u8>, Got> {
        assert!(
            self.pending.is_empty(),
            "packets pending: {:?}",
            self.pending
        );
        let deadline = tokio::time::Instant::now() + within;
        let c = &mut self.0;
        loop {
            if let Ok(Some(f)) = codec::frame(&c.buf, usize::MAX) {
                if c.buf.len() >= f.total_len() {
                    return Ok(c.buf.split_to(f.total_len()).to_vec());
                }
            }
            match tokio::time::timeout_at(deadline, c.stream.read_buf(&mut c.buf)).await {
                Err(_) => return Err(Got::Timeout),
                Ok(Ok(0)) | Ok(Err(_)) => return Err(Got::Closed),
                Ok(Ok(_)) => {}
            }
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

    /// Read until the broker closes the connection, within [`WAIT`]; returns the packets
    /// before the close.
    pub async fn expect_closed(&mut self) -> Vec<Packet> {
        self.expect_close(WAIT).await
    }

    /// The broker ends this connection for a protocol error: a v5 client gets a DISCONNECT with
    /// one of `reasons` as the last packet before the close (nothing after it
    /// [MQTT-3.14.4-1]); a v3 client is closed without DISCONNECT. Returns the DISCONNECT. See
    /// [`RawConn::expect_refused`].
    pub async fn expect_refused(&mut self, reasons: &[u8]) -> Option<Disconnect> {
        self.0.expect_refused(reasons).await.1
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
        self.shutdown().await;
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
