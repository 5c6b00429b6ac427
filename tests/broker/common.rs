//! Fixtures shared by every area: the broker process ([`Broker`]), a third-party client wrapper
//! over rumqttc for normal flows ([`Client`], v3.1.1 and v5 behind one API), a raw-packet client
//! for packet-level checks and bad input ([`Raw`]), and a [`Witness`] pair of clients that proves
//! other connections lose nothing while one misbehaves.

use crate::raw_client;
use ringmq::codec::{self, Ack, ConnAck, Connect, Packet, Protocol, Publish};
use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;

pub use crate::raw_client::{garbage, qos, QUIET, WAIT};

/// Upper bound of any single test: a hung test fails instead of stalling the suite.
const TEST_BOUND: Duration = Duration::from_secs(20);

/// Run one test body with the suite-wide time bound.
pub async fn bounded<F: Future<Output = ()>>(body: F) {
    tokio::time::timeout(TEST_BOUND, body)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {TEST_BOUND:?}"));
}

// ---------------------------------------------------------------------------------------------
// The broker process
// ---------------------------------------------------------------------------------------------

pub use crate::broker_process::Broker;

impl Broker {
    /// A broker with default configuration.
    pub async fn start(shards: usize) -> Broker {
        Broker::launch(shards, &[]).await
    }

    /// A broker with extra flags, e.g. `&["--queued-messages-max", "10"]`.
    pub async fn with(shards: usize, args: &[&str]) -> Broker {
        Broker::launch(shards, args).await
    }

    /// The process is alive and a new MQTT connection is accepted.
    pub async fn assert_serving(&mut self) {
        self.assert_alive();
        let (_raw, ack) = Raw::handshake(self, connect_packet(Protocol::V311, "alive-probe")).await;
        assert_eq!(ack.code, 0, "a fresh CONNECT is accepted");
    }
}

// ---------------------------------------------------------------------------------------------
// Protocol versions
// ---------------------------------------------------------------------------------------------

/// The protocol a test variant speaks: MQTT 3.1.1 or 5.0 (3.1 is only reachable raw).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V3,
    V5,
}

impl Version {
    pub fn protocol(self) -> Protocol {
        match self {
            Version::V3 => Protocol::V311,
            Version::V5 => Protocol::V5,
        }
    }
    pub fn is_v5(self) -> bool {
        self == Version::V5
    }
}

// ---------------------------------------------------------------------------------------------
// Third-party client (rumqttc), one API for v3.1.1 and v5
// ---------------------------------------------------------------------------------------------

/// An application message as a subscriber received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    pub dup: bool,
    pub pkid: u16,
    /// v5 Subscription Identifiers (sorted).
    pub sub_ids: Vec<usize>,
    /// v5 User Properties.
    pub user_props: Vec<(String, String)>,
}

impl Msg {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// The payloads of `msgs` as text, in order.
pub fn texts(msgs: &[Msg]) -> Vec<String> {
    msgs.iter().map(|m| m.text()).collect()
}

/// Assert that a measured delay lies between `lo_ms` and `hi_ms`.
pub fn assert_between(elapsed: Duration, lo_ms: u64, hi_ms: u64, what: &str) {
    assert!(
        elapsed >= Duration::from_millis(lo_ms) && elapsed <= Duration::from_millis(hi_ms),
        "{what}: after {elapsed:?}, expected {lo_ms}..{hi_ms} ms"
    );
}

/// What CONNACK said (the v5 properties are `None` for v3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnInfo {
    pub session_present: bool,
    pub assigned_id: Option<String>,
    pub receive_max: Option<u16>,
    pub max_packet_size: Option<u32>,
    pub server_keep_alive: Option<u16>,
    pub max_qos: Option<u8>,
    pub retain_available: Option<u8>,
}

/// Why a client's connection ended.
#[derive(Debug, Clone)]
pub struct Closed {
    /// v5: the reason code of the server's DISCONNECT or refusing CONNACK, if there was one.
    pub reason: Option<u8>,
    pub error: String,
}

/// A last will, for either version.
#[derive(Debug, Clone)]
pub struct WillSpec {
    pub topic: String,
    pub payload: String,
    pub qos: u8,
    pub retain: bool,
    /// v5 Will Delay Interval.
    pub delay_s: Option<u32>,
}

/// Connection options for [`Client::connect_with`].
#[derive(Debug, Clone)]
pub struct Opts {
    pub clean: bool,
    /// v5 Session Expiry Interval (ignored by v3).
    pub expiry_s: Option<u32>,
    pub will: Option<WillSpec>,
    /// User name and password.
    pub credentials: Option<(String, String)>,
}

impl Opts {
    /// Clean session / clean start, no expiry.
    pub fn clean() -> Opts {
        Opts {
            clean: true,
            expiry_s: None,
            will: None,
            credentials: None,
        }
    }
    pub fn credentials(mut self, user: &str, password: &str) -> Opts {
        self.credentials = Some((user.into(), password.into()));
        self
    }
    /// v3 clean_session=0; v5 clean_start=0 with a 300 s session expiry.
    pub fn persistent() -> Opts {
        Opts {
            clean: false,
            expiry_s: Some(300),
            ..Opts::clean()
        }
    }
    pub fn expiry(mut self, s: u32) -> Opts {
        self.expiry_s = Some(s);
        self
    }
    pub fn will(mut self, topic: &str, payload: &str, qos: u8, retain: bool) -> Opts {
        self.will = Some(WillSpec {
            topic: topic.into(),
            payload: payload.into(),
            qos,
            retain,
            delay_s: None,
        });
        self
    }
    pub fn will_delay(mut self, s: u32) -> Opts {
        if let Some(w) = &mut self.will {
            w.delay_s = Some(s);
        }
        self
    }
}

/// v5 subscription options for [`Client::subscribe_v5`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SubOpts {
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: u8,
    pub id: Option<usize>,
}

enum Api {
    V3(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// Events the event-loop task forwards to the test.
enum Ev {
    ConnAck(ConnInfo),
    Publish(Msg),
    SubAck(Vec<u8>),
    UnsubAck,
    /// PUBACK or PUBCOMP: one of our QoS 1/2 publishes is complete.
    Acked,
    /// One of our publishes went out on the socket.
    Sent,
    Closed(Closed),
}

/// A rumqttc client (v3.1.1 or v5) whose event loop runs in a task; events are consumed by the
/// methods below. Dropping it kills the connection without DISCONNECT.
pub struct Client {
    pub version: Version,
    pub id: String,
    pub connack: ConnInfo,
    api: Api,
    rx: mpsc::UnboundedReceiver<Ev>,
    task: tokio::task::JoinHandle<()>,
    inbox: VecDeque<Msg>,
    subacks: VecDeque<Vec<u8>>,
    unsubacks: usize,
    requested: usize,
    sent: usize,
    acks_expected: usize,
    acked: usize,
    closed: Option<Closed>,
}

fn v3_event(ev: rumqttc::Event) -> Option<Ev> {
    use rumqttc::{Event, Outgoing, Packet as P, SubscribeReasonCode as R};
    Some(match ev {
        Event::Incoming(P::ConnAck(a)) => Ev::ConnAck(ConnInfo {
            session_present: a.session_present,
            ..ConnInfo::default()
        }),
        Event::Incoming(P::Publish(p)) => Ev::Publish(Msg {
            topic: p.topic,
            payload: p.payload.to_vec(),
            qos: p.qos as u8,
            retain: p.retain,
            dup: p.dup,
            pkid: p.pkid,
            sub_ids: vec![],
            user_props: vec![],
        }),
        Event::Incoming(P::SubAck(s)) => Ev::SubAck(
            s.return_codes
                .iter()
                .map(|c| match c {
                    R::Success(q) => *q as u8,
                    R::Failure => 0x80,
                })
                .collect(),
        ),
        Event::Incoming(P::UnsubAck(_)) => Ev::UnsubAck,
        Event::Incoming(P::PubAck(_) | P::PubComp(_)) => Ev::Acked,
        Event::Outgoing(Outgoing::Publish(_)) => Ev::Sent,
        _ => return None,
    })
}

fn v5_event(ev: rumqttc::v5::Event) -> Option<Ev> {
    use rumqttc::v5::mqttbytes::v5::{Packet as P, SubscribeReasonCode as R};
    use rumqttc::v5::Event;
    use rumqttc::Outgoing;
    Some(match ev {
        Event::Incoming(P::ConnAck(a)) => {
            let p = a.properties;
            Ev::ConnAck(ConnInfo {
                session_present: a.session_present,
                assigned_id: p
                    .as_ref()
                    .and_then(|p| p.assigned_client_identifier.clone()),
                receive_max: p.as_ref().and_then(|p| p.receive_max),
                max_packet_size: p.as_ref().and_then(|p| p.max_packet_size),
                server_keep_alive: p.as_ref().and_then(|p| p.server_keep_alive),
                max_qos: p.as_ref().and_then(|p| p.max_qos),
                retain_available: p.as_ref().and_then(|p| p.retain_available),
            })
        }
        Event::Incoming(P::Publish(p)) => {
            let props = p.properties.unwrap_or_default();
            let mut sub_ids = props.subscription_identifiers;
            sub_ids.sort_unstable();
            Ev::Publish(Msg {
                topic: String::from_utf8_lossy(&p.topic).into_owned(),
                payload: p.payload.to_vec(),
                qos: p.qos as u8,
                retain: p.retain,
                dup: p.dup,
                pkid: p.pkid,
                sub_ids,
                user_props: props.user_properties,
            })
        }
        Event::Incoming(P::SubAck(s)) => Ev::SubAck(
            s.return_codes
                .iter()
                .map(|c| match c {
                    R::Success(q) => *q as u8,
                    _ => 0x80,
                })
                .collect(),
        ),
        Event::Incoming(P::UnsubAck(_)) => Ev::UnsubAck,
        Event::Incoming(P::PubAck(_) | P::PubComp(_)) => Ev::Acked,
        Event::Outgoing(Outgoing::Publish(_)) => Ev::Sent,
        _ => return None,
    })
}

fn v3_closed(e: rumqttc::ConnectionError) -> Closed {
    Closed {
        reason: None,
        error: e.to_string(),
    }
}

fn v5_closed(e: rumqttc::v5::ConnectionError) -> Closed {
    use rumqttc::v5::{ConnectionError as E, StateError as S};
    let reason = match &e {
        E::MqttState(S::ServerDisconnect { reason_code, .. }) => Some(*reason_code as u8),
        _ => None,
    };
    Closed {
        reason,
        error: e.to_string(),
    }
}

/// Forward every event of a rumqttc event loop until its first error (no reconnection: a
/// reconnect would fight the test over the session).
macro_rules! pump_events {
    ($eventloop:expr, $tx:expr, $map:ident, $closed:ident) => {{
        let mut eventloop = $eventloop;
        let tx: mpsc::UnboundedSender<Ev> = $tx;
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(ev) => {
                        if let Some(ev) = $map(ev) {
                            if tx.send(ev).is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Ev::Closed($closed(e)));
                        return;
                    }
                }
            }
        })
    }};
}

fn v3_options(b: &Broker, id: &str, o: &Opts) -> rumqttc::MqttOptions {
    let mut m = rumqttc::MqttOptions::new(id, "127.0.0.1", b.port);
    if let Some((u, p)) = &o.credentials {
        m.set_credentials(u, p);
    }
    m.set_clean_session(o.clean)
        .set_max_packet_size(1 << 20, 1 << 20);
    if let Some(w) = &o.will {
        m.set_last_will(rumqttc::LastWill::new(
            &w.topic,
            w.payload.clone(),
            qos3(w.qos),
            w.retain,
        ));
    }
    m
}

fn v5_options(b: &Broker, id: &str, o: &Opts) -> rumqttc::v5::MqttOptions {
    use rumqttc::v5::mqttbytes::v5::{ConnectProperties, LastWill, LastWillProperties};
    let mut m = rumqttc::v5::MqttOptions::new(id, "127.0.0.1", b.port);
    if let Some((u, p)) = &o.credentials {
        m.set_credentials(u, p);
    }
    let mut props = ConnectProperties::new();
    props.session_expiry_interval = o.expiry_s;
    props.max_packet_size = Some(1 << 20);
    m.set_clean_start(o.clean).set_connect_properties(props);
    if let Some(w) = &o.will {
        let wp = w.delay_s.map(|d| LastWillProperties {
            delay_interval: Some(d),
            payload_format_indicator: None,
            message_expiry_interval: None,
            content_type: None,
            response_topic: None,
            correlation_data: None,
            user_properties: vec![],
        });
        m.set_last_will(LastWill::new(
            &w.topic,
            w.payload.clone(),
            qos5(w.qos),
            w.retain,
            wp,
        ));
    }
    m
}

fn qos3(q: u8) -> rumqttc::QoS {
    rumqttc::qos(q).expect("QoS 0, 1 or 2")
}

fn qos5(q: u8) -> rumqttc::v5::mqttbytes::QoS {
    rumqttc::v5::mqttbytes::qos(q).expect("QoS 0, 1 or 2")
}

impl Client {
    /// Clean-session client; panics unless CONNACK accepts it.
    pub async fn connect(b: &Broker, v: Version, id: &str) -> Client {
        Client::connect_with(b, v, id, Opts::clean()).await
    }

    /// Panics unless CONNACK accepts the connection.
    pub async fn connect_with(b: &Broker, v: Version, id: &str, o: Opts) -> Client {
        match Client::try_connect(b, v, id, o).await {
            Ok(c) => c,
            Err(e) => panic!("{v:?} client {id:?} could not connect: {}", e.error),
        }
    }

    pub async fn try_connect(b: &Broker, v: Version, id: &str, o: Opts) -> Result<Client, Closed> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (api, task) = match v {
            Version::V3 => {
                let (c, el) = rumqttc::AsyncClient::new(v3_options(b, id, &o), 100);
                (Api::V3(c), pump_events!(el, tx, v3_event, v3_closed))
            }
            Version::V5 => {
                let (c, el) = rumqttc::v5::AsyncClient::new(v5_options(b, id, &o), 100);
                (Api::V5(c), pump_events!(el, tx, v5_event, v5_closed))
            }
        };
        let mut c = Client {
            version: v,
            id: id.to_string(),
            connack: ConnInfo::default(),
            api,
            rx,
            task,
            inbox: VecDeque::new(),
            subacks: VecDeque::new(),
            unsubacks: 0,
            requested: 0,
            sent: 0,
            acks_expected: 0,
            acked: 0,
            closed: None,
        };
        let first = tokio::time::timeout(WAIT, c.rx.recv()).await;
        match first {
            Ok(Some(Ev::ConnAck(info))) => {
                c.connack = info;
                Ok(c)
            }
            Ok(Some(Ev::Closed(e))) => Err(e),
            _ => Err(Closed {
                reason: None,
                error: "no CONNACK".into(),
            }),
        }
    }

    /// Take one event into the client's state; false when none came before `deadline`.
    async fn step(&mut self, deadline: tokio::time::Instant) -> bool {
        if self.closed.is_some() {
            tokio::time::sleep_until(deadline).await;
            return false;
        }
        let ev = match tokio::time::timeout_at(deadline, self.rx.recv()).await {
            Ok(Some(ev)) => ev,
            Ok(None) => Ev::Closed(Closed {
                reason: None,
                error: "event loop ended".into(),
            }),
            Err(_) => return false,
        };
        match ev {
            Ev::ConnAck(info) => self.connack = info,
            Ev::Publish(m) => self.inbox.push_back(m),
            Ev::SubAck(codes) => self.subacks.push_back(codes),
            Ev::UnsubAck => self.unsubacks += 1,
            Ev::Acked => self.acked += 1,
            Ev::Sent => self.sent += 1,
            Ev::Closed(c) => self.closed = Some(c),
        }
        true
    }

    /// Process events until `done` holds; false on timeout.
    async fn until(&mut self, within: Duration, done: impl Fn(&Client) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while !done(self) {
            if !self.step(deadline).await {
                return done(self);
            }
        }
        true
    }

    fn check_open(&self, what: &str) {
        if let Some(c) = &self.closed {
            panic!("{}: connection closed while {what}: {c:?}", self.id);
        }
    }

    /// Subscribe one filter; returns the SUBACK code (granted QoS or a failure code).
    pub async fn subscribe(&mut self, filter: &str, q: u8) -> u8 {
        match &self.api {
            Api::V3(c) => c
                .subscribe(filter, qos3(q))
                .await
                .expect("request subscribe"),
            Api::V5(c) => c
                .subscribe(filter, qos5(q))
                .await
                .expect("request subscribe"),
        }
        self.suback(filter).await
    }

    /// v5 subscribe with options and an optional Subscription Identifier.
    pub async fn subscribe_v5(&mut self, filter: &str, q: u8, o: SubOpts) -> u8 {
        use rumqttc::v5::mqttbytes::v5::{Filter, RetainForwardRule, SubscribeProperties};
        let Api::V5(c) = &self.api else {
            panic!("subscription options are v5 only")
        };
        let mut f = Filter::new(filter, qos5(q));
        f.nolocal = o.no_local;
        f.preserve_retain = o.retain_as_published;
        f.retain_forward_rule = match o.retain_handling {
            0 => RetainForwardRule::OnEverySubscribe,
            1 => RetainForwardRule::OnNewSubscribe,
            _ => RetainForwardRule::Never,
        };
        let props = SubscribeProperties {
            id: o.id,
            user_properties: vec![],
        };
        c.subscribe_many_with_properties([f], props)
            .await
            .expect("request subscribe");
        self.suback(filter).await
    }

    async fn suback(&mut self, filter: &str) -> u8 {
        let ok = self
            .until(WAIT, |c| !c.subacks.is_empty() || c.closed.is_some())
            .await;
        self.check_open(&format!("subscribing to {filter}"));
        assert!(ok, "{}: no SUBACK for {filter}", self.id);
        self.subacks.pop_front().expect("a SUBACK")[0]
    }

    pub async fn unsubscribe(&mut self, filter: &str) {
        match &self.api {
            Api::V3(c) => c.unsubscribe(filter).await.expect("request unsubscribe"),
            Api::V5(c) => c.unsubscribe(filter).await.expect("request unsubscribe"),
        }
        let want = self.unsubacks + 1;
        let ok = self
            .until(WAIT, |c| c.unsubacks >= want || c.closed.is_some())
            .await;
        self.check_open("unsubscribing");
        assert!(ok, "{}: no UNSUBACK for {filter}", self.id);
    }

    /// Queue a publish (see [`Client::settle`] to wait until it is sent and acknowledged).
    pub async fn publish(&mut self, topic: &str, q: u8, payload: impl Into<Vec<u8>>, retain: bool) {
        let payload: Vec<u8> = payload.into();
        match &self.api {
            Api::V3(c) => c
                .publish(topic, qos3(q), retain, payload)
                .await
                .expect("publish"),
            Api::V5(c) => c
                .publish(topic, qos5(q), retain, payload)
                .await
                .expect("publish"),
        }
        self.requested += 1;
        if q > 0 {
            self.acks_expected += 1;
        }
    }

    /// v5 publish with User Properties and a Content Type.
    pub async fn publish_v5_props(
        &mut self,
        topic: &str,
        q: u8,
        payload: &str,
        user: (&str, &str),
    ) {
        use rumqttc::v5::mqttbytes::v5::PublishProperties;
        let Api::V5(c) = &self.api else {
            panic!("properties are v5 only")
        };
        let props = PublishProperties {
            user_properties: vec![(user.0.into(), user.1.into())],
            content_type: Some("text/plain".into()),
            ..PublishProperties::default()
        };
        c.publish_with_properties(topic, qos5(q), false, payload.to_string(), props)
            .await
            .expect("request publish");
        self.requested += 1;
        if q > 0 {
            self.acks_expected += 1;
        }
    }

    /// Publish and wait until it is on the wire and, for QoS 1/2, acknowledged by the broker.
    pub async fn publish_settled(
        &mut self,
        topic: &str,
        q: u8,
        payload: impl Into<Vec<u8>>,
        retain: bool,
    ) {
        self.publish(topic, q, payload, retain).await;
        self.settle().await;
    }

    /// Wait until every publish so far was sent and every QoS 1/2 one acknowledged.
    pub async fn settle(&mut self) {
        let ok = self
            .until(Duration::from_secs(8), |c| {
                (c.sent >= c.requested && c.acked >= c.acks_expected) || c.closed.is_some()
            })
            .await;
        self.check_open("waiting for publish acknowledgements");
        assert!(
            ok,
            "{}: {} of {} publishes sent, {} of {} acknowledged",
            self.id, self.sent, self.requested, self.acked, self.acks_expected
        );
    }

    /// The next application message, within [`WAIT`].
    pub async fn recv(&mut self) -> Msg {
        self.try_recv(WAIT).await.unwrap_or_else(|| {
            panic!(
                "{}: expected a message within {WAIT:?} (closed: {:?})",
                self.id, self.closed
            )
        })
    }

    pub async fn try_recv(&mut self, within: Duration) -> Option<Msg> {
        self.until(within, |c| !c.inbox.is_empty() || c.closed.is_some())
            .await;
        self.inbox.pop_front()
    }

    /// `n` messages, in arrival order.
    pub async fn recv_n(&mut self, n: usize, within: Duration) -> Vec<Msg> {
        self.until(within, |c| c.inbox.len() >= n || c.closed.is_some())
            .await;
        let got = self.inbox.len();
        assert!(
            got >= n,
            "{}: {got} of {n} messages within {within:?} (closed: {:?})",
            self.id,
            self.closed
        );
        self.inbox.drain(..n).collect()
    }

    /// Every message that arrives within `within`.
    pub async fn drain(&mut self, within: Duration) -> Vec<Msg> {
        self.until(within, |_| false).await;
        self.inbox.drain(..).collect()
    }

    /// Assert that no application message arrives within `within`.
    pub async fn expect_nothing(&mut self, within: Duration) {
        let got = self.drain(within).await;
        assert!(got.is_empty(), "{}: unexpected messages {got:?}", self.id);
    }

    /// Wait for the connection to end; returns why.
    pub async fn closed(&mut self, within: Duration) -> Option<Closed> {
        self.until(within, |c| c.closed.is_some()).await;
        self.closed.clone()
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Send DISCONNECT and wait until the broker closed the connection.
    pub async fn disconnect(mut self) {
        match &self.api {
            Api::V3(c) => c.disconnect().await.expect("request disconnect"),
            Api::V5(c) => c.disconnect().await.expect("request disconnect"),
        }
        assert!(
            self.closed(WAIT).await.is_some(),
            "{}: the broker did not close the connection after DISCONNECT",
            self.id
        );
        let _ = (&mut self.task).await;
    }

    /// Drop the TCP connection without DISCONNECT (an abnormal loss for the broker).
    pub async fn kill(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// Raw packet client (the shared core is `tests/support/raw_client.rs`)
// ---------------------------------------------------------------------------------------------

pub use crate::raw_client::{connect_packet, fixed_header, wire as encode, Got, Raw, RawConn};

pub fn publish_packet(topic: &str, q: u8, packet_id: u16, payload: &[u8]) -> Packet {
    Packet::Publish(Publish {
        packet_id,
        ..raw_client::publish(topic, q, packet_id, payload)
    })
}

pub fn ack(packet_id: u16) -> Ack {
    raw_client::ack(packet_id, 0)
}

/// A v5 PUBACK or PUBREC with reason 0x10 (No matching subscribers) is a success as much as
/// 0x00: map it to 0x00 so that one expected packet covers both.
pub fn success(p: Packet) -> Packet {
    match p {
        Packet::PubAck(a) if a.reason == 0x10 => Packet::PubAck(Ack { reason: 0, ..a }),
        Packet::PubRec(a) if a.reason == 0x10 => Packet::PubRec(Ack { reason: 0, ..a }),
        other => other,
    }
}

/// This suite's API of the raw client [`Raw`], which writes and reads MQTT packets (or any
/// bytes) itself, through the codec. The connection, `send`, `next`, `recv`, `expect_silence`,
/// `expect_close` and `take_id` are [`RawConn`]'s.
impl Raw {
    /// A TCP connection and nothing else (decodes what it reads as v3.1.1 until told otherwise).
    pub async fn open(b: &Broker) -> Raw {
        Raw(RawConn::open(b, Protocol::V311).await)
    }

    /// Send `connect` and read the CONNACK (whatever its code).
    pub async fn handshake(b: &Broker, connect: Connect) -> (Raw, ConnAck) {
        let (raw, ack) = RawConn::handshake(b, connect).await;
        (Raw(raw), ack)
    }

    /// Connected with clean start and the default keep alive; panics unless accepted.
    pub async fn connect(b: &Broker, protocol: Protocol, id: &str) -> Raw {
        let (raw, ack) = Raw::handshake(b, connect_packet(protocol, id)).await;
        assert_eq!(ack.code, 0, "CONNACK accepts {id}");
        raw
    }

    /// The next `n` packets, in arrival order.
    pub async fn recv_n(&mut self, n: usize) -> Vec<Packet> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.recv().await);
        }
        out
    }

    pub async fn recv_publish(&mut self) -> Publish {
        match self.recv().await {
            Packet::Publish(p) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// The broker ends this connection as a protocol violation: a v5 connection gets a
    /// DISCONNECT with one of `v5_reasons` as its last packet, a v3 connection is just closed
    /// (see [`RawConn::expect_refused`]). Returns the packets that came before.
    pub async fn expect_refused(&mut self, v5_reasons: &[u8]) -> Vec<Packet> {
        self.0.expect_refused(v5_reasons).await.0
    }

    /// SUBSCRIBE one filter with options; returns the SUBACK codes.
    pub async fn subscribe_opts(&mut self, filter: &str, opts: codec::SubOptions) -> Vec<u8> {
        let packet_id = self.take_id();
        let s = raw_client::subscribe(packet_id, &[(filter, opts)]);
        self.send(Packet::Subscribe(s)).await;
        match self.recv().await {
            Packet::SubAck(s) => {
                assert_eq!(s.packet_id, packet_id, "SUBACK echoes the packet id");
                s.codes
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    pub async fn subscribe(&mut self, filter: &str, q: u8) -> Vec<u8> {
        self.subscribe_opts(filter, raw_client::sub(q)).await
    }

    /// PINGREQ answered by PINGRESP: the connection is alive.
    pub async fn ping(&mut self) {
        self.send(Packet::PingReq).await;
        match self.recv().await {
            Packet::PingResp => {}
            other => panic!("expected PINGRESP, got {other:?}"),
        }
    }

    /// Close the socket without DISCONNECT.
    pub async fn drop_connection(mut self) {
        self.shutdown().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Raw bytes for bad input
// ---------------------------------------------------------------------------------------------

/// A PUBLISH built byte by byte (so that it may be invalid): `first` byte (type, flags), topic
/// bytes, packet id if any, an empty v5 property list, payload.
pub fn publish_bytes(
    v5: bool,
    first: u8,
    topic: &[u8],
    packet_id: Option<u16>,
    payload: &[u8],
) -> Vec<u8> {
    raw_client::publish_frame(first, topic, packet_id, v5.then_some(&[][..]), payload)
}

// ---------------------------------------------------------------------------------------------
// Witness: other clients must lose nothing
// ---------------------------------------------------------------------------------------------

const WITNESS_TOPIC: &str = "witness/seq";

/// A subscriber and a publisher (on different shards when there are two) exchanging numbered
/// QoS 1 messages while a test misbehaves on another connection.
pub struct Witness {
    sub: Client,
    stop: tokio::sync::watch::Sender<bool>,
    publisher: tokio::task::JoinHandle<(Client, usize)>,
}

impl Witness {
    pub async fn start(b: &Broker) -> Witness {
        Witness::start_with(b, Opts::clean()).await
    }

    /// A witness pair that logs in as `user`.
    #[allow(dead_code)] // the auth tests' witness
    pub async fn start_as(b: &Broker, user: &str, password: &str) -> Witness {
        Witness::start_with(b, Opts::clean().credentials(user, password)).await
    }

    async fn start_with(b: &Broker, o: Opts) -> Witness {
        let mut sub =
            Client::connect_with(b, Version::V3, &b.id("witness-sub", 0), o.clone()).await;
        assert_eq!(sub.subscribe(WITNESS_TOPIC, 1).await, 1);
        let mut publisher = Client::connect_with(b, Version::V5, &b.id("witness-pub", 1), o).await;
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let publisher = tokio::spawn(async move {
            let mut n = 0usize;
            // At least 20 messages, and on until told to stop.
            while n < 20 || !*stopped.borrow() {
                publisher
                    .publish(WITNESS_TOPIC, 1, n.to_string(), false)
                    .await;
                n += 1;
                let _ = tokio::time::timeout(Duration::from_millis(10), stopped.changed()).await;
            }
            publisher.settle().await;
            (publisher, n)
        });
        Witness {
            sub,
            stop,
            publisher,
        }
    }

    /// Stop publishing and check the subscriber got every message, in order, exactly once.
    pub async fn finish(mut self) {
        let _ = self.stop.send(true);
        let (_publisher, n) = self.publisher.await.expect("witness publisher task");
        assert!(n > 0, "the witness published nothing");
        let got = self.sub.recv_n(n, WAIT).await;
        let seq: Vec<usize> = got
            .iter()
            .map(|m| m.text().parse().expect("a number"))
            .collect();
        assert_eq!(
            seq,
            (0..n).collect::<Vec<_>>(),
            "the witness subscriber lost or reordered messages"
        );
        assert!(
            !self.sub.is_closed(),
            "the witness subscriber was disconnected"
        );
    }
}
