//! The sans-IO MQTT protocol engine of one connected client on its home shard: `(state, input)
//! → actions`. State is this connection's protocol state ([`Engine`]) and the shard it lives
//! on; inputs are decoded packets, the end of a hold, the mesh's confirmation of a
//! subscription and (with a store) a commit; actions are packets put in the connection's output
//! buffer, messages routed through the shard, acknowledgements sent now or gated
//! ([`acks::Gate`]), timers armed on the shard's timer structure, and a [`Close`] with its
//! reason. The connection task in `net::connection` only moves bytes and waits.
//!
//! CONNECT is [`connect`], PUBLISH [`publish`], SUBSCRIBE and UNSUBSCRIBE [`subscribe`],
//! re-authentication [`reauth`], the end of a connection [`close`]. Every refusal maps to
//! exactly one close reason, and [`Engine::disconnect_packet`] turns it into the v5 DISCONNECT
//! reason code.
//!
//! Back-pressure: while the session is held (a congested subscriber queued one of its messages
//! past its bounds, or a peer shard's data outbox is full), [`Engine::is_held`] is true, the
//! PUBACK of the message that caused it waits in the ack queue and the connection processes no
//! further PUBLISH; acknowledgements and pings still flow so nobody deadlocks.
//!
//! Never: does I/O, sleeps, spawns a task, reads the clock for a decision a test cannot set, or
//! routes while its own session is borrowed (a client may subscribe to what it publishes).

pub mod acks;
mod close;
mod connect;
mod persist;
mod publish;
mod reauth;
mod subscribe;
#[cfg(test)]
mod tests;

pub use close::reason_string;
pub use subscribe::PendingSubscribe;

use crate::codec::{Ack, Packet, Properties, Protocol};
use crate::session::{ConnLink, WrongAck};
use crate::shard::ctx::ShardCtx;
use crate::shard::SessionRef;
use bytestring::ByteString;
use std::rc::Rc;
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

impl Close {
    /// A close the shard asked for through the connection's link (takeover, watchdog, keep
    /// alive, shutdown).
    pub fn requested(reason: u8) -> Close {
        if reason == 0x8D {
            Close::KeepAlive
        } else {
            Close::Server(reason)
        }
    }
}

/// CONNECT was refused: the failure CONNACK is in the link's output buffer, and the connection
/// must flush it and close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// What the connection task must do after a packet beyond writing what is in the output buffer.
pub enum Step {
    Done,
    /// A SUBSCRIBE waits for peer shards to confirm its new interest (bounded); then call
    /// [`Engine::finish_subscribe`].
    AwaitMesh(Box<PendingSubscribe>),
}

pub struct Engine {
    pub ctx: ShardCtx,
    pub protocol: Protocol,
    pub client_id: ByteString,
    session: SessionRef,
    link: Rc<ConnLink>,
    uid: u64,
    keep_alive_s: u16,
    /// The Session Expiry Interval of CONNECT was 0: a DISCONNECT may not raise it
    /// [MQTT-3.14.2-2].
    connect_expiry_zero: bool,
    /// Topic aliases the client defined on this connection (index = alias - 1).
    aliases_in: Vec<Option<ByteString>>,
    /// Enhanced authentication, when CONNECT used it. Boxed: most clients don't, and every
    /// idle connection carries the engine.
    auth: Option<Box<reauth::EnhancedAuth>>,
    /// PUBACKs and PUBRECs not sent yet: behind a hold, or (with a store) a commit.
    acks: acks::AckQueue,
    /// `max_publish_rate_per_client` / `max_publish_bytes_per_client`, when set.
    budget: Option<Box<publish::PublishBudget>>,
    /// What the acknowledgements written so far wait for (the highest need of any of them).
    need: crate::shard::journal::Need,
    /// The shard store's progress; `None` without a store.
    progress: Option<Rc<crate::shard::journal::Progress>>,
}

impl Engine {
    /// 1.5 × keep alive, or `None` when keep alive is 0 (disabled) [MQTT-3.1.2-24].
    pub fn keep_alive_timeout(&self) -> Option<Duration> {
        keep_alive_timeout(self.keep_alive_s)
    }

    fn write(&self, p: Packet) {
        self.link.write_packet(&p, self.protocol);
    }

    /// One packet from the client. What it stored gates the acknowledgements it wrote.
    ///
    /// PUBACK and PUBCOMP end a delivery: their `Done` record promises the client nothing, so
    /// the step does not gate. A crash that loses it redelivers a QoS 1 message (DUP, allowed)
    /// or resends PUBREL for a QoS 2 one (answered PUBCOMP, no second delivery). Gating them
    /// held the subscriber's next deliveries behind a commit for every batch of
    /// acknowledgements (not measured apart: the A/B in docs/ARCHITECTURE.md changed this and
    /// buffered writes together). The QoS 2 deliveries such a
    /// step may send gate the link themselves ([`crate::session::Session`]'s `send`).
    pub fn handle(&mut self, packet: Packet) -> Result<Step, Close> {
        let ends_delivery = matches!(packet, Packet::PubAck(_) | Packet::PubComp(_));
        let before = self.journal_need();
        let r = self.handle_packet(packet);
        if !ends_delivery {
            self.after_step(before);
        }
        r
    }

    /// State first: only what a connected client may send.
    fn handle_packet(&mut self, packet: Packet) -> Result<Step, Close> {
        match packet {
            Packet::Publish(p) => {
                self.on_publish(p)?;
                Ok(Step::Done)
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
                let known = self.qos2_remove(a.packet_id);
                self.write(Packet::PubComp(Ack {
                    packet_id: a.packet_id,
                    reason: if known { 0 } else { 0x92 },
                    properties: Properties::default(),
                }));
                Ok(Step::Done)
            }
            Packet::PubComp(a) => {
                let r = self.session.borrow_mut().on_pubcomp(a.packet_id);
                self.after_ack(r)
            }
            Packet::Subscribe(s) => self.on_subscribe(s),
            Packet::Unsubscribe(u) => {
                self.on_unsubscribe(u);
                Ok(Step::Done)
            }
            Packet::PingReq => {
                self.write(Packet::PingResp);
                Ok(Step::Done)
            }
            Packet::Disconnect(d) => Err(self.on_disconnect(d)),
            // A second CONNECT is a protocol violation [MQTT-3.1.0-2]; so are packets only a
            // server sends, and AUTH without an authentication method [MQTT-4.12.0-1].
            Packet::Connect(_)
            | Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp => Err(Close::Protocol(0x82)),
            Packet::Auth(a) => {
                self.on_auth(a)?;
                Ok(Step::Done)
            }
        }
    }

    /// True while this session must not publish: some congested subscriber holds it back, or
    /// a peer shard's data outbox is full.
    pub fn is_held(&self) -> bool {
        self.session.borrow().holds > 0 || self.ctx.shard.borrow().outbox_congested()
    }

    /// Nothing of this connection's waits on anything but its socket and its link: no
    /// acknowledgement withheld (behind a hold or a commit), no hold. It may sleep
    /// (`net::dormant`).
    pub fn can_doze(&self) -> bool {
        self.acks.is_empty() && !self.is_held()
    }

    /// Whether a hold comes from the mesh (the connection then also waits on the outbox's
    /// drain event; a session hold wakes it through its link).
    pub fn outbox_held(&self) -> Option<Rc<crate::shard::event::Event>> {
        let s = self.ctx.shard.borrow();
        s.outbox_congested().then(|| s.outbox_drained.clone())
    }

    /// Send the acknowledgements whose gate is open now (the hold ended, or their commit
    /// completed), in the order their PUBLISHes arrived [MQTT-4.6.0-2].
    pub fn resume(&mut self) {
        if self.acks.is_empty() {
            return;
        }
        let held = self.is_held();
        let committed = self.committed();
        while let Some(ack) = self.acks.pop_ready(held, committed) {
            self.write(ack.packet());
        }
        self.gate_output();
    }

    /// The highest log position the shard's store has committed. No store yet: everything
    /// routed is as durable as it will get, so nothing waits.
    fn committed(&self) -> u64 {
        u64::MAX
    }

    /// After an acknowledgement from the client: a wrong kind for the flow is a protocol
    /// error; otherwise publishers this session stopped holding back go on.
    fn after_ack(&mut self, r: Result<(), WrongAck>) -> Result<Step, Close> {
        if r.is_err() {
            return Err(Close::Protocol(0x82));
        }
        self.ctx.shard.borrow_mut().release_from(&self.session);
        Ok(Step::Done)
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

/// 1.5 × `keep_alive_s`, or `None` for 0 (disabled) [MQTT-3.1.2-24].
pub fn keep_alive_timeout(keep_alive_s: u16) -> Option<Duration> {
    (keep_alive_s > 0).then(|| Duration::from_millis(u64::from(keep_alive_s) * 1500))
}

pub(crate) fn topic_within_limits(topic: &str, cfg: &crate::config::Config) -> bool {
    // A topic of n bytes has at most n + 1 levels: the common short topic skips the count,
    // which would be a second scan of every PUBLISH's topic.
    topic.len() <= cfg.topic_bytes_max
        && (topic.len() < cfg.topic_levels_max
            || topic.bytes().filter(|&b| b == b'/').count() < cfg.topic_levels_max)
}
