//! The protocol handler of one connected client on its home shard: each packet after CONNECT,
//! matched on the session state first (CONNECT is [`super::open`], SUBSCRIBE and UNSUBSCRIBE
//! [`super::subscribe`], the end of a connection [`super::close`]). Every refusal maps to
//! exactly one close reason, and [`Conn::disconnect_packet`] turns it into the v5 DISCONNECT
//! reason code.
//!
//! Back-pressure: while the session is held (a congested subscriber queued one of its
//! messages past its bounds, or a peer shard's data outbox is full), [`Conn::is_held`] is true,
//! the PUBACK of the message that caused it is withheld and the connection processes no further
//! PUBLISH; acknowledgements and pings still flow so nobody deadlocks.
//!
//! Never: holds the shard's or a session's `RefCell` borrow across an `.await`, or routes while
//! its own session is borrowed (a client may subscribe to what it publishes).

use crate::codec::{self, Ack, Disconnect, Packet, Properties, Protocol, Publish, QoS};
use crate::session::{ConnLink, Message, WrongAck};
use crate::shard::ctx::ShardCtx;
use crate::shard::SessionRef;
use bytestring::ByteString;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Why a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// DISCONNECT with reason 0x00 (or any v3 DISCONNECT): the will is discarded.
    Normal,
    /// v5 DISCONNECT 0x04: "disconnect with will message".
    NormalWithWill,
    /// The client broke the protocol: v5 DISCONNECT with this reason code, will published.
    Protocol(u8),
    /// The network connection was lost or closed without DISCONNECT: will published.
    Lost,
    /// Nothing received for 1.5 × keep alive [MQTT-3.1.2-24]: v5 reason 0x8D, will published.
    KeepAlive,
    /// The broker closes the connection with this v5 reason code: 0x8E another connection
    /// took the session over, 0x97 slow subscriber, 0x8B shutting down. Will published.
    Server(u8),
}

pub struct Conn {
    pub ctx: ShardCtx,
    pub protocol: Protocol,
    pub client_id: ByteString,
    pub(super) session: SessionRef,
    pub(super) link: Rc<ConnLink>,
    pub(super) uid: u64,
    pub(super) keep_alive_s: u16,
    /// The Session Expiry Interval of CONNECT was 0: a DISCONNECT may not raise it
    /// [MQTT-3.14.2-2].
    pub(super) connect_expiry_zero: bool,
    /// Topic aliases the client defined on this connection (index = alias - 1).
    pub(super) aliases_in: Vec<Option<ByteString>>,
    /// The enhanced authentication method of CONNECT; re-authentication must use it.
    pub(super) auth_method: Option<ByteString>,
    /// A re-authentication in progress [MQTT-4.12.1].
    pub(super) reauth: Option<Box<dyn crate::auth::AuthExchange>>,
    /// The PUBACK of the PUBLISH that got this session held back (packet id, reason code),
    /// sent once the hold ends. Not a `Packet`: that is ~500 bytes every idle connection's
    /// future would carry.
    pub(super) withheld_ack: Option<(u16, u8)>,
    /// After a hold: PUBLISHes still to be taken one per scheduler turn (fair sharing).
    pub fair_turns: u32,
}

impl Conn {
    /// 1.5 × keep alive, or `None` when keep alive is 0 (disabled) [MQTT-3.1.2-24].
    pub fn keep_alive_timeout(&self) -> Option<Duration> {
        (self.keep_alive_s > 0).then(|| Duration::from_millis(u64::from(self.keep_alive_s) * 1500))
    }

    pub(super) fn write(&self, p: Packet) {
        self.link.write_packet(&p, self.protocol);
    }

    /// One packet from the client. State first: only what a connected client may send.
    /// Every packet but SUBSCRIBE (see [`Conn::on_subscribe`], which may wait for peers).
    pub fn handle(&mut self, packet: Packet) -> Result<(), Close> {
        match packet {
            Packet::Publish(p) => {
                if let Some((packet_id, reason)) = self.on_publish(p)? {
                    if self.is_held() {
                        self.withheld_ack = Some((packet_id, reason));
                    } else {
                        self.write(ack_packet(QoS::AtLeastOnce, packet_id, reason));
                    }
                }
                Ok(())
            }
            Packet::PubAck(a) => {
                let r = self.session.borrow_mut().on_puback(a.packet_id);
                self.after_ack(r)
            }
            Packet::PubRec(a) => {
                let r = self.session.borrow_mut().on_pubrec(&a);
                self.after_ack(r)
            }
            Packet::PubRel(a) => {
                // [MQTT-4.3.3-11]: answer PUBCOMP; an unknown id gets 0x92 in v5.
                let known = self.session.borrow_mut().incoming_qos2.remove(&a.packet_id);
                self.write(Packet::PubComp(Ack {
                    packet_id: a.packet_id,
                    reason: if known { 0 } else { 0x92 },
                    properties: Properties::default(),
                }));
                Ok(())
            }
            Packet::PubComp(a) => {
                let r = self.session.borrow_mut().on_pubcomp(a.packet_id);
                self.after_ack(r)
            }
            Packet::Subscribe(_) => {
                debug_assert!(false, "SUBSCRIBE goes to on_subscribe");
                Ok(())
            }
            Packet::Unsubscribe(u) => {
                self.on_unsubscribe(u);
                Ok(())
            }
            Packet::PingReq => {
                self.write(Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(d) => Err(self.on_disconnect(d)),
            // A second CONNECT is a protocol violation [MQTT-3.1.0-2]; so are packets only a
            // server sends, and AUTH without an authentication method [MQTT-4.12.0-1].
            Packet::Connect(_)
            | Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp => Err(Close::Protocol(0x82)),
            Packet::Auth(a) => self.on_auth(a),
        }
    }

    /// Re-authentication [MQTT-4.12.1]: AUTH 0x19 starts it with the CONNECT's method, AUTH
    /// 0x18 continues it; failure disconnects.
    fn on_auth(&mut self, a: codec::Auth) -> Result<(), Close> {
        let Some(method) = self.auth_method.clone() else {
            return Err(Close::Protocol(0x82)); // AUTH without a method in CONNECT [MQTT-4.12.0-7]
        };
        if a.properties.authentication_method.as_ref() != Some(&method) {
            return Err(Close::Protocol(0x82)); // [MQTT-4.12.1-1]
        }
        let data = a.properties.authentication_data.as_deref();
        let step = match (a.reason, self.reauth.as_mut()) {
            (0x19, None) => {
                let Some(auth) = self.ctx.auth.get(&method) else {
                    return Err(Close::Protocol(0x8C));
                };
                let (ex, step) = auth.start(data);
                self.reauth = ex;
                step
            }
            (0x18, Some(ex)) => ex.step(data),
            _ => return Err(Close::Protocol(0x82)),
        };
        let (reason, data) = match step {
            crate::auth::AuthStep::Continue(d) => (0x18, Some(d)),
            crate::auth::AuthStep::Success(d) => {
                self.reauth = None;
                (0x00, d)
            }
            // DISCONNECT has no 0x86 or 0x8C: a failed re-authentication is 0x87 Not
            // authorized [MQTT-4.12.1-2].
            crate::auth::AuthStep::Fail(_) => return Err(Close::Protocol(0x87)),
        };
        self.write(Packet::Auth(codec::Auth {
            reason,
            properties: Properties {
                authentication_method: Some(method),
                authentication_data: data,
                ..Properties::default()
            },
        }));
        Ok(())
    }

    /// Resolve or define a client topic alias [MQTT-3.3.2-8..12].
    fn resolve_alias(&mut self, p: &mut Publish) -> Result<(), Close> {
        let Some(alias) = p.properties.topic_alias.take() else {
            return Ok(());
        };
        let max = self.ctx.cfg.topic_alias_maximum;
        if alias == 0 || alias > max {
            return Err(Close::Protocol(0x94)); // [MQTT-3.3.2-9], [MQTT-3.3.2-10]
        }
        let slot = usize::from(alias - 1);
        if p.topic.is_empty() {
            match self.aliases_in.get(slot).and_then(|t| t.clone()) {
                Some(topic) => p.topic = topic,
                // An alias never defined on this connection is a Protocol Error.
                None => return Err(Close::Protocol(0x82)),
            }
        } else {
            if self.aliases_in.len() <= slot {
                self.aliases_in.resize(slot + 1, None);
            }
            // A copy: the alias outlives the read buffer the topic was decoded from.
            self.aliases_in[slot] = Some(ByteString::from(&*p.topic));
        }
        Ok(())
    }

    /// A PUBLISH: checked, routed, and its PUBACK (packet id, reason) returned for the caller to
    /// send or withhold (QoS 2's PUBREC is written here, before the message is forwarded, so even a
    /// publisher subscribed to its own topic sees PUBREC first).
    fn on_publish(&mut self, mut p: Publish) -> Result<Option<(u16, u8)>, Close> {
        let cfg = self.ctx.cfg.clone();
        self.resolve_alias(&mut p)?;
        if !topic_within_limits(&p.topic, &cfg) {
            return Err(Close::Protocol(0x90));
        }
        if !p.properties.subscription_identifiers.is_empty() {
            // Only the server sends Subscription Identifiers [MQTT-3.3.4-6].
            return Err(Close::Protocol(0x82));
        }
        if p.qos as u8 > cfg.maximum_qos {
            return Err(Close::Protocol(0x9B)); // [MQTT-3.2.2-11]
        }
        if p.retain && !cfg.retain_available {
            return Err(Close::Protocol(0x9A)); // [MQTT-3.2.2-14]
        }
        let v5 = self.protocol.is_v5();
        if p.qos == QoS::ExactlyOnce {
            let mut s = self.session.borrow_mut();
            if s.incoming_qos2.contains(&p.packet_id) {
                // A retransmission of a message we already own: acknowledge, don't route twice.
                drop(s);
                self.write(ack_packet(QoS::ExactlyOnce, p.packet_id, 0));
                return Ok(None);
            }
            if s.incoming_qos2.len() >= cfg.receive_maximum as usize {
                return Err(Close::Protocol(0x93)); // [MQTT-3.3.4-9]
            }
            s.incoming_qos2.insert(p.packet_id);
            drop(s);
            let matched = !v5 || self.ctx.shard.borrow().matches_any(&p.topic);
            self.write(ack_packet(
                p.qos,
                p.packet_id,
                if matched { 0 } else { 0x10 },
            ));
        }
        let (qos, packet_id, retain) = (p.qos, p.packet_id, p.retain);
        let msg = Arc::new(Message::owned(
            &p.topic,
            &p.payload,
            p.qos,
            p.retain,
            p.properties,
            self.uid,
        ));
        let matched = {
            let mut shard = self.ctx.shard.borrow_mut();
            if retain {
                shard.set_retained(&msg, None);
            }
            shard.route(msg, false)
        };
        if qos != QoS::AtLeastOnce {
            return Ok(None);
        }
        // v5: 0x10 "No matching subscribers" is still a success [MQTT-3.4.2.1].
        let reason = if matched || !v5 { 0x00 } else { 0x10 };
        Ok(Some((packet_id, reason)))
    }

    fn on_disconnect(&mut self, d: Disconnect) -> Close {
        if self.protocol.is_v5() {
            if let Some(e) = d.properties.session_expiry_interval_s {
                if self.connect_expiry_zero && e != 0 {
                    return Close::Protocol(0x82); // [MQTT-3.14.2-2]
                }
                let capped = super::open::cap_expiry(e, &self.ctx.cfg);
                self.session.borrow_mut().expiry_s = capped;
            }
            // 0x04 asks for the will; so does any error reason: only a normal disconnect
            // discards it [MQTT-3.1.2-8], [MQTT-3.14.4-3].
            if d.reason == 0x04 || d.reason >= 0x80 {
                return Close::NormalWithWill;
            }
        }
        Close::Normal
    }

    /// True while this session must not publish: some congested subscriber holds it back, or
    /// a peer shard's data outbox is full.
    pub fn is_held(&self) -> bool {
        self.session.borrow().holds > 0 || self.ctx.shard.borrow().outbox_congested()
    }

    /// Whether a hold comes from the mesh (the connection then also waits on the outbox's
    /// drain event; a session hold wakes it through its link).
    pub fn outbox_held(&self) -> Option<Rc<crate::shard::event::Event>> {
        let s = self.ctx.shard.borrow();
        s.outbox_congested().then(|| s.outbox_drained.clone())
    }

    /// The hold ended: send the acknowledgement that waited for it.
    pub fn resume(&mut self) {
        if let Some((packet_id, reason)) = self.withheld_ack.take() {
            self.write(ack_packet(QoS::AtLeastOnce, packet_id, reason));
        }
    }

    /// After an acknowledgement from the client: a wrong kind for the flow is a protocol
    /// error; otherwise publishers this session stopped holding back go on.
    fn after_ack(&mut self, r: Result<(), WrongAck>) -> Result<(), Close> {
        if r.is_err() {
            return Err(Close::Protocol(0x82));
        }
        self.ctx.shard.borrow_mut().release_from(&self.session);
        Ok(())
    }

    /// After the socket took bytes: refill the output buffer from the session queue.
    pub fn pump_if_drained(&mut self) {
        let half = self.ctx.cfg.out_buffer_bytes_max / 2;
        if self.link.out_len() < half {
            if let Ok(mut s) = self.session.try_borrow_mut() {
                if s.queued_len() > 0 {
                    s.pump();
                }
            }
            self.ctx.shard.borrow_mut().release_from(&self.session);
        }
    }
}

/// PUBACK (QoS 1) or PUBREC (QoS 2) for an incoming PUBLISH.
fn ack_packet(qos: QoS, packet_id: u16, reason: u8) -> Packet {
    let ack = Ack {
        packet_id,
        reason,
        properties: Properties::default(),
    };
    if qos == QoS::ExactlyOnce {
        Packet::PubRec(ack)
    } else {
        Packet::PubAck(ack)
    }
}

pub(super) fn topic_within_limits(topic: &str, cfg: &crate::config::Config) -> bool {
    // A topic of n bytes has at most n + 1 levels: the common short topic skips the count,
    // which would be a second scan of every PUBLISH's topic.
    topic.len() <= cfg.topic_bytes_max
        && (topic.len() < cfg.topic_levels_max
            || topic.bytes().filter(|&b| b == b'/').count() < cfg.topic_levels_max)
}
