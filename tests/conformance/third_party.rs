//! A third-party client (rumqttc) for normal flows: its v5 client and its v3.1.1 client behind
//! one small API, so that the broker is checked against an implementation that is not ours.
//! Every wait is bounded by [`WAIT`].

use crate::fixture::{Broker, WAIT};
use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Packet as P5, PublishProperties};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::mpsc;

/// An application message as a rumqttc subscriber received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    /// v5 only: the PUBLISH properties, `None` for a v3.1.1 subscriber or when absent.
    pub properties: Option<PublishProperties>,
}

#[allow(clippy::large_enum_variant)] // Test code: one packet at a time.
enum In {
    V5(P5),
    V3(rumqttc::Packet),
}

/// A connected rumqttc client, v5 or v3.1.1.
pub struct Client {
    v5: Option<rumqttc::v5::AsyncClient>,
    v3: Option<rumqttc::AsyncClient>,
    rx: mpsc::UnboundedReceiver<In>,
    pending: VecDeque<Msg>,
}

fn q5(q: u8) -> rumqttc::v5::mqttbytes::QoS {
    match q {
        0 => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        1 => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        _ => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

fn q3(q: u8) -> rumqttc::QoS {
    match q {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

impl Client {
    /// A v5 client with clean start; waits for a successful CONNACK.
    pub async fn v5(b: &Broker, id: &str) -> Client {
        let mut o = rumqttc::v5::MqttOptions::new(id, "127.0.0.1", b.port);
        o.set_keep_alive(Duration::from_secs(30));
        let (client, mut el) = rumqttc::v5::AsyncClient::new(o, 64);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(ev) = el.poll().await {
                if let rumqttc::v5::Event::Incoming(p) = ev {
                    if tx.send(In::V5(p)).is_err() {
                        break;
                    }
                }
            }
        });
        let mut c = Client {
            v5: Some(client),
            v3: None,
            rx,
            pending: VecDeque::new(),
        };
        c.wait("CONNACK", |p| {
            matches!(p, In::V5(P5::ConnAck(a))
                if a.code == rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success)
        })
        .await;
        c
    }

    /// A v3.1.1 client with clean session; waits for a successful CONNACK.
    pub async fn v3(b: &Broker, id: &str) -> Client {
        let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", b.port);
        o.set_keep_alive(Duration::from_secs(30));
        let (client, mut el) = rumqttc::AsyncClient::new(o, 64);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(ev) = el.poll().await {
                if let rumqttc::Event::Incoming(p) = ev {
                    if tx.send(In::V3(p)).is_err() {
                        break;
                    }
                }
            }
        });
        let mut c = Client {
            v5: None,
            v3: Some(client),
            rx,
            pending: VecDeque::new(),
        };
        c.wait("CONNACK", |p| {
            matches!(p, In::V3(rumqttc::Packet::ConnAck(a))
                if a.code == rumqttc::ConnectReturnCode::Success)
        })
        .await;
        c
    }

    /// The first incoming packet `want` accepts; PUBLISHes before it are kept for `recv`.
    async fn wait(&mut self, what: &str, want: impl Fn(&In) -> bool) -> In {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let p = match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(p)) => p,
                Ok(None) => panic!("rumqttc connection ended while waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what}"),
            };
            if want(&p) {
                return p;
            }
            if let Some(m) = to_msg(&p) {
                self.pending.push_back(m);
            }
        }
    }

    /// Subscribe and return the granted QoS (or 0x80+ failure code as rumqttc reports it).
    pub async fn subscribe(&mut self, filter: &str, q: u8) -> u8 {
        if let Some(c) = &self.v5 {
            c.subscribe(filter, q5(q)).await.expect("queue SUBSCRIBE");
            let In::V5(P5::SubAck(a)) = self
                .wait("SUBACK", |p| matches!(p, In::V5(P5::SubAck(_))))
                .await
            else {
                unreachable!()
            };
            use rumqttc::v5::mqttbytes::v5::SubscribeReasonCode as R;
            match a.return_codes[0] {
                R::Success(q) => q as u8,
                _ => 0x80,
            }
        } else {
            let c = self.v3.as_ref().expect("a client");
            c.subscribe(filter, q3(q)).await.expect("queue SUBSCRIBE");
            let In::V3(rumqttc::Packet::SubAck(a)) = self
                .wait("SUBACK", |p| {
                    matches!(p, In::V3(rumqttc::Packet::SubAck(_)))
                })
                .await
            else {
                unreachable!()
            };
            match a.return_codes[0] {
                rumqttc::SubscribeReasonCode::Success(q) => q as u8,
                rumqttc::SubscribeReasonCode::Failure => 0x80,
            }
        }
    }

    /// Publish and wait until the QoS flow is complete (PUBACK / PUBCOMP).
    pub async fn publish(&mut self, topic: &str, q: u8, payload: &[u8], retain: bool) {
        self.publish_with(topic, q, payload, retain, None).await
    }

    /// Publish with v5 properties (ignored by a v3.1.1 client).
    pub async fn publish_with(
        &mut self,
        topic: &str,
        q: u8,
        payload: &[u8],
        retain: bool,
        props: Option<PublishProperties>,
    ) {
        let payload = Bytes::copy_from_slice(payload);
        if let Some(c) = &self.v5 {
            match props {
                Some(p) => c
                    .publish_with_properties(topic, q5(q), retain, payload, p)
                    .await
                    .expect("queue PUBLISH"),
                None => c
                    .publish(topic, q5(q), retain, payload)
                    .await
                    .expect("queue PUBLISH"),
            }
            match q {
                1 => drop(
                    self.wait("PUBACK", |p| matches!(p, In::V5(P5::PubAck(_))))
                        .await,
                ),
                2 => drop(
                    self.wait("PUBCOMP", |p| matches!(p, In::V5(P5::PubComp(_))))
                        .await,
                ),
                _ => {}
            }
        } else {
            let c = self.v3.as_ref().expect("a client");
            c.publish(topic, q3(q), retain, payload)
                .await
                .expect("queue PUBLISH");
            match q {
                1 => drop(
                    self.wait("PUBACK", |p| {
                        matches!(p, In::V3(rumqttc::Packet::PubAck(_)))
                    })
                    .await,
                ),
                2 => drop(
                    self.wait("PUBCOMP", |p| {
                        matches!(p, In::V3(rumqttc::Packet::PubComp(_)))
                    })
                    .await,
                ),
                _ => {}
            }
        }
    }

    /// The next application message (rumqttc acknowledges it itself).
    pub async fn recv(&mut self) -> Msg {
        if let Some(m) = self.pending.pop_front() {
            return m;
        }
        let p = self
            .wait("PUBLISH", |p| {
                matches!(
                    p,
                    In::V5(P5::Publish(_)) | In::V3(rumqttc::Packet::Publish(_))
                )
            })
            .await;
        to_msg(&p).expect("a publish")
    }

    /// No application message arrives for `within`.
    pub async fn expect_nothing(&mut self, within: Duration) {
        assert!(self.pending.is_empty(), "got {:?}", self.pending);
        let deadline = tokio::time::Instant::now() + within;
        while let Ok(Some(p)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            assert!(to_msg(&p).is_none(), "unexpected message {:?}", to_msg(&p));
        }
    }

    pub async fn disconnect(self) {
        if let Some(c) = &self.v5 {
            let _ = c.disconnect().await;
        }
        if let Some(c) = &self.v3 {
            let _ = c.disconnect().await;
        }
    }
}

fn to_msg(p: &In) -> Option<Msg> {
    match p {
        In::V5(P5::Publish(p)) => Some(Msg {
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            payload: p.payload.to_vec(),
            qos: p.qos as u8,
            retain: p.retain,
            properties: p.properties.clone(),
        }),
        In::V3(rumqttc::Packet::Publish(p)) => Some(Msg {
            topic: p.topic.clone(),
            payload: p.payload.to_vec(),
            qos: p.qos as u8,
            retain: p.retain,
            properties: None,
        }),
        _ => None,
    }
}
