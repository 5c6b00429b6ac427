//! The per-client MQTT session: subscriptions, outgoing QoS 1/2 state (packet ids, inflight
//! window, retransmission), the bounded offline/slow-consumer queue, incoming QoS 2 state, and
//! the back-pressure bookkeeping of both sides (the publishers a congested session holds back,
//! and how many sessions hold this one back as a publisher).
//!
//! Owns: everything the protocol says survives a reconnect of a persistent session.
//! Never: touches a socket or a lock, or drops a message for a connected subscriber under the
//! default `queue_full = "backpressure"`. A live connection is reached only through its
//! [`ConnLink`], a shard-local output buffer the connection task drains.

mod durable;
mod link;
mod message;
pub mod out;
mod rare;

pub use link::{ConnInfo, ConnLink, KeepAlive};

pub use message::{expiry_from, own_properties, Delivery, Message};

use std::time::Instant;

use crate::codec::{Ack, Packet, Properties, Protocol, QoS, SubOptions, Will};
use bytestring::ByteString;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

/// One subscription as the session remembers it (to rebuild or remove automaton entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    pub options: SubOptions,
    pub identifier: Option<u32>,
}

/// An outgoing QoS 1/2 message the client has not finished acknowledging.
#[derive(Debug)]
struct Inflight {
    packet_id: u16,
    delivery: Delivery,
    /// QoS 2 after PUBREC: only PUBREL is retransmitted, never the PUBLISH.
    released: bool,
}

/// Counters a session adds to, one per reason a message may be dropped; the shard sums them
/// into its statistics and the connection logs them when it ends.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SessionDrops {
    /// Connected, queue full, `queue_full = "drop"`: QoS 0 messages.
    pub qos0: u64,
    /// Connected, queue full, `queue_full = "drop"`: QoS 1/2 messages.
    pub qos12: u64,
    /// Offline session past its queue bounds (QoS 1/2, and QoS 0 when queued offline).
    pub offline_full: u64,
    /// QoS 0 for an offline session that does not queue QoS 0 (`queue_qos0_offline = false`).
    pub offline_qos0: u64,
    /// Messages not sent because they exceed the client's Maximum Packet Size (v5).
    pub too_large: u64,
    /// Messages whose Message Expiry Interval elapsed while queued.
    pub expired: u64,
}

impl SessionDrops {
    pub fn total(&self) -> u64 {
        self.qos0
            + self.qos12
            + self.offline_full
            + self.offline_qos0
            + self.too_large
            + self.expired
    }
}

/// What a connected session does with a message when its queue is at its bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum QueueFull {
    /// Queue it anyway and hold back the publisher (no PUBACK/PUBREC, no further reads) until
    /// the queue drains: nothing acknowledged is lost while the subscriber is connected.
    #[default]
    Backpressure,
    /// Drop it and count it (the behaviour of most brokers' bounded queues).
    Drop,
}

/// Limits a session enforces, copied from the configuration at creation.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub inflight_max: u16,
    pub queued_messages_max: usize,
    pub queued_bytes_max: usize,
    pub queue_full: QueueFull,
    pub queue_qos0_offline: bool,
    pub out_buffer_bytes_max: usize,
    /// Send topic aliases to v5 clients that accept them.
    pub topic_alias_outbound: bool,
}

/// What [`Session::deliver`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Encoded into the connection's output buffer.
    Sent,
    /// Queued within the bounds.
    Queued,
    /// Queued past the bounds (back-pressure): the publisher `origin` must be held until this
    /// session drains. `new_waiter`: this session did not hold that publisher yet (the caller
    /// adds one hold); `newly_congested`: the session just reached its bounds (the caller starts
    /// watching it for the slow-subscriber timeout).
    Held {
        new_waiter: bool,
        newly_congested: bool,
    },
    /// Dropped and counted in [`Session::drops`].
    Dropped,
}

/// A wrong acknowledgement for an outgoing flow: the client broke the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongAck;

/// The subscription map's hasher: ahash keyed once per process (filters come from clients, so
/// the keys must be secret), held in no map. `std`'s `RandomState` is 16 bytes in every
/// session; without them `Rc<RefCell<Session>>` fits mimalloc's 256-byte bin (idle memory,
/// docs/PERFORMANCE.md).
#[derive(Debug, Clone, Copy, Default)]
pub struct SeededHasher;

impl std::hash::BuildHasher for SeededHasher {
    type Hasher = ahash::AHasher;

    fn build_hasher(&self) -> ahash::AHasher {
        static KEYS: std::sync::OnceLock<ahash::RandomState> = std::sync::OnceLock::new();
        KEYS.get_or_init(ahash::RandomState::new).build_hasher()
    }
}

#[derive(Debug)]
pub struct Session {
    pub client_id: ByteString,
    /// Unique across shards and time: the shard id in the top byte. Used for No Local and to
    /// address back-pressure to the publisher's shard.
    pub uid: u64,
    pub protocol: Protocol,
    /// Session Expiry Interval in force (v3 persistent sessions: `u32::MAX`, never).
    pub expiry_s: u32,
    pub subscriptions: HashMap<ByteString, Subscription, SeededHasher>,
    /// The will of the current connection; taken when published or discarded. Boxed: most
    /// sessions have none, and a `Will` carries a whole property set.
    pub will: Option<Box<Will>>,
    /// The shard's, shared: one pointer, where a copy per session was 32 bytes.
    limits: Rc<SessionLimits>,
    /// Outgoing window: the client's Receive Maximum capped by `inflight_max`.
    window: u16,
    /// Client's Maximum Packet Size (v5), `u32::MAX` when absent.
    pub client_packet_bytes_max: u32,
    /// Client's Topic Alias Maximum (v5): aliases we may define towards it.
    client_alias_max: u16,
    next_packet_id: u16,
    inflight: VecDeque<Inflight>,
    queue: VecDeque<Delivery>,
    /// Message bytes (topic + payload) in `queue`, bounded by `queued_bytes_max`.
    queued_bytes: usize,
    /// As a publisher: how many congested subscriber sessions hold this session back. While
    /// non-zero its connection processes no PUBLISH (only acknowledgements and pings).
    pub holds: u32,
    pub conn: Option<Rc<ConnLink>>,
    /// Who the client authenticated as (user name, token ACL rules), for the ACL's checks;
    /// `None` for an anonymous client.
    pub identity: Option<Box<crate::auth::security::Authenticated>>,
    /// A persistent session with a durable store: what it must keep goes to this journal
    /// ([`durable`]); `None` for clean sessions and with `durability = "none"`.
    pub journal: Option<Rc<crate::shard::journal::Journal>>,
    /// When it went offline (Unix ms; 0 while connected), kept for the store's snapshot.
    pub offline_since_ms: u64,
    /// Drop counters, outbound aliases, incoming QoS 2 ids, back-pressure bookkeeping:
    /// allocated on first use ([`rare`]).
    rare: Option<Box<rare::Rare>>,
}

impl Session {
    pub fn new(
        client_id: ByteString,
        uid: u64,
        protocol: Protocol,
        limits: Rc<SessionLimits>,
    ) -> Self {
        Session {
            // An exact-size copy: the id may be a slice of a read buffer.
            client_id: ByteString::from(&*client_id),
            uid,
            protocol,
            expiry_s: 0,
            subscriptions: HashMap::default(),
            will: None,
            window: limits.inflight_max,
            limits,
            client_packet_bytes_max: u32::MAX,
            client_alias_max: 0,
            next_packet_id: 1,
            inflight: VecDeque::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            holds: 0,
            conn: None,
            identity: None,
            journal: None,
            offline_since_ms: 0,
            rare: None,
        }
    }

    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Set the per-connection parameters a (re)connecting client declared.
    pub fn set_client_limits(
        &mut self,
        receive_maximum: Option<u16>,
        packet_bytes_max: Option<u32>,
        topic_alias_maximum: Option<u16>,
    ) {
        let rm = receive_maximum.unwrap_or(u16::MAX).max(1);
        self.window = rm.min(self.limits.inflight_max);
        self.client_packet_bytes_max = packet_bytes_max.unwrap_or(u32::MAX);
        self.client_alias_max = if self.limits.topic_alias_outbound {
            topic_alias_maximum.unwrap_or(0)
        } else {
            0
        };
    }

    pub fn queued_len(&self) -> usize {
        self.queue.len()
    }

    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    fn at_bounds(&self) -> bool {
        self.queue.len() >= self.limits.queued_messages_max
            || self.queued_bytes >= self.limits.queued_bytes_max
    }

    /// Drained to half the bounds: held publishers may go on. Half, not just under, so a
    /// release lets a burst through instead of one message per hold/release round trip.
    fn below_low_water(&self) -> bool {
        self.queue.len() <= self.limits.queued_messages_max / 2
            && self.queued_bytes <= self.limits.queued_bytes_max / 2
    }

    /// Hand a matched message from publisher `origin` (a session uid, 0 for none) to this
    /// session: sent now when the connection and window allow, queued otherwise. Past the
    /// queue's bounds a connected session queues anyway and holds `origin` back
    /// (`queue_full = "backpressure"`), or drops (`"drop"`); an offline one drops.
    pub fn deliver(&mut self, delivery: Delivery, origin: u64) -> Admit {
        if self.conn.is_none() {
            if delivery.qos == QoS::AtMostOnce && !self.limits.queue_qos0_offline {
                self.rare().drops.offline_qos0 += 1;
                return Admit::Dropped;
            }
            if self.at_bounds() {
                self.rare().drops.offline_full += 1;
                return Admit::Dropped;
            }
            self.log_enqueue(&delivery);
            self.push_queue(delivery);
            return Admit::Queued;
        }
        if self.queue.is_empty() && self.can_send_now(delivery.qos) {
            self.log_enqueue(&delivery);
            self.send(delivery);
            return Admit::Sent;
        }
        if !self.at_bounds() {
            self.log_enqueue(&delivery);
            self.push_queue(delivery);
            return Admit::Queued;
        }
        match self.limits.queue_full {
            QueueFull::Drop => {
                if delivery.qos == QoS::AtMostOnce {
                    self.rare().drops.qos0 += 1;
                } else {
                    self.rare().drops.qos12 += 1;
                }
                Admit::Dropped
            }
            QueueFull::Backpressure => {
                self.log_enqueue(&delivery);
                self.push_queue(delivery);
                let uid = self.uid;
                let r = self.rare();
                let newly_congested = r.congested_since.is_none();
                if newly_congested {
                    r.congested_since = Some(Instant::now());
                }
                // Never itself: a session that publishes to its own subscription is drained by
                // its own acks, which a hold would stop reading.
                let new_waiter = origin != 0 && origin != uid && !r.waiters.contains(&origin);
                if new_waiter {
                    r.waiters.push(origin);
                }
                Admit::Held {
                    new_waiter,
                    newly_congested,
                }
            }
        }
    }

    fn push_queue(&mut self, delivery: Delivery) {
        self.queued_bytes += delivery.msg.size_bytes();
        self.queue.push_back(delivery);
        self.update_backlog();
    }

    /// Tell the connection whether queued messages wait for its output buffer to drain (and
    /// not for acks, which refill it through [`Session::pump`] anyway): the front is QoS 0 or
    /// has a window slot. Not "the buffer is full now": a message queued behind others while
    /// the buffer was below its bound (but not yet below the refill mark) waits for the drain
    /// just the same, and with the flag clear the connection would empty its buffer and then
    /// wait for its socket, or fall asleep, with the queue left unsent.
    fn update_backlog(&self) {
        if let Some(conn) = &self.conn {
            let waiting = self.queue.front().is_some_and(|d| {
                d.qos == QoS::AtMostOnce || self.inflight.len() < self.window as usize
            });
            conn.set_backlog(waiting);
        }
    }

    fn pop_queue(&mut self) -> Option<Delivery> {
        let d = self.queue.pop_front()?;
        self.queued_bytes -= d.msg.size_bytes();
        Some(d)
    }

    fn can_send_now(&self, qos: QoS) -> bool {
        let Some(conn) = &self.conn else { return false };
        if conn.out_len() >= self.limits.out_buffer_bytes_max {
            return false;
        }
        qos == QoS::AtMostOnce || self.inflight.len() < self.window as usize
    }

    /// Move queued messages to the connection while the window and output buffer allow.
    /// Called after acks free window slots and after the socket drains.
    pub fn pump(&mut self) {
        let mut moved = false;
        while let Some(front) = self.queue.front() {
            if !self.can_send_now(front.qos) {
                break;
            }
            if let Some(d) = self.pop_queue() {
                self.send(d);
                moved = true;
            }
        }
        self.update_backlog();
        if self.congested_since().is_some() {
            if self.below_low_water() {
                self.release_waiters();
            } else if moved {
                self.set_congested_since(Some(Instant::now()));
            }
        }
    }

    fn release_waiters(&mut self) {
        if let Some(r) = &mut self.rare {
            r.congested_since = None;
            r.released.append(&mut r.waiters);
        }
    }

    fn alloc_packet_id(&mut self) -> u16 {
        // Skip ids still in flight: with a window far below 65,535 this loop runs once.
        loop {
            let id = self.next_packet_id;
            self.next_packet_id = if id == u16::MAX { 1 } else { id + 1 };
            if !self.inflight.iter().any(|f| f.packet_id == id) {
                return id;
            }
        }
    }

    fn send(&mut self, delivery: Delivery) {
        if delivery.is_expired() {
            self.rare().drops.expired += 1;
            self.log_done(&delivery);
            return;
        }
        let packet_id = if delivery.qos == QoS::AtMostOnce {
            0
        } else {
            self.alloc_packet_id()
        };
        if !self.write_publish(&delivery, packet_id, false) {
            self.log_done(&delivery); // too large for the client: dropped and counted
        } else if packet_id != 0 {
            self.log_sent(&delivery, packet_id);
            if delivery.qos == QoS::ExactlyOnce {
                self.gate_until_logged();
            }
            self.inflight.push_back(Inflight {
                packet_id,
                delivery,
                released: false,
            });
        }
    }

    /// Encode one PUBLISH into the connection's buffer. False when it was not written (no
    /// connection, or larger than the client accepts: dropped and counted [MQTT-3.1.2-25]).
    fn write_publish(&mut self, d: &Delivery, packet_id: u16, dup: bool) -> bool {
        let Some(conn) = &self.conn else { return false };
        let mut publish = d.to_publish(packet_id, dup, self.protocol);
        if self.protocol.is_v5() {
            // Checked with the full topic: an alias only ever makes the packet smaller.
            if crate::codec::publish_encoded_len(&publish, self.protocol)
                > self.client_packet_bytes_max as usize
            {
                rare::of(&mut self.rare).drops.too_large += 1;
                return false;
            }
            if self.client_alias_max > 0 {
                let aliases = &mut rare::of(&mut self.rare).out_aliases;
                apply_outbound_alias(aliases, self.client_alias_max, &mut publish);
            }
        }
        let written = conn.write_publish(&Packet::Publish(publish), self.protocol);
        if written {
            crate::shard::tally::publish_out(d.qos);
        }
        written
    }

    /// The in-flight entry for `packet_id`, if any, with its QoS and release state.
    fn find_inflight(&self, packet_id: u16) -> Option<usize> {
        // Acks usually come in order: the front is the common hit.
        self.inflight.iter().position(|f| f.packet_id == packet_id)
    }

    fn complete(&mut self, pos: usize) {
        if let Some(f) = self.inflight.remove(pos) {
            self.log_done(&f.delivery);
        }
        self.pump();
    }

    /// PUBACK (QoS 1 done) from the client. Unknown ids are ignored, as Mosquitto does; a
    /// PUBACK for a QoS 2 message is a protocol error [MQTT-4.3.3].
    pub fn on_puback(&mut self, packet_id: u16) -> Result<(), WrongAck> {
        match self.find_inflight(packet_id) {
            Some(pos) if self.inflight[pos].delivery.qos == QoS::AtLeastOnce => {
                self.complete(pos);
                Ok(())
            }
            Some(_) => Err(WrongAck),
            None => Ok(()),
        }
    }

    /// PUBREC: the client has the QoS 2 message; answer PUBREL (also for an unknown id, so a
    /// confused client still completes; v5 answers 0x92). PUBREC for a QoS 1 message is a
    /// protocol error.
    pub fn on_pubrec(&mut self, ack: &Ack) -> Result<(), WrongAck> {
        let found = self.find_inflight(ack.packet_id);
        if let Some(pos) = found {
            if self.inflight[pos].delivery.qos != QoS::ExactlyOnce {
                return Err(WrongAck);
            }
        }
        if ack.reason >= 0x80 {
            // v5: a failed PUBREC ends the exchange [MQTT-4.3.3-4].
            if let Some(pos) = found {
                self.complete(pos);
            }
            return Ok(());
        }
        let reason = match found {
            Some(pos) => {
                self.inflight[pos].released = true;
                self.log_pubrec(ack.packet_id);
                0
            }
            None => 0x92,
        };
        self.write_ack(Packet::PubRel(Ack {
            packet_id: ack.packet_id,
            reason,
            properties: Properties::default(),
        }));
        Ok(())
    }

    /// PUBCOMP: QoS 2 finished. For a QoS 1 message, or a QoS 2 one before its PUBREC, it is a
    /// protocol error; an unknown id is ignored.
    pub fn on_pubcomp(&mut self, packet_id: u16) -> Result<(), WrongAck> {
        match self.find_inflight(packet_id) {
            Some(pos) if self.inflight[pos].released => {
                self.complete(pos);
                Ok(())
            }
            Some(_) => Err(WrongAck),
            None => Ok(()),
        }
    }

    pub fn write_ack(&self, packet: Packet) {
        if let Some(conn) = &self.conn {
            conn.write_packet(&packet, self.protocol);
        }
    }

    /// Attach a new connection: retransmit every unacknowledged message with DUP set (PUBREL
    /// for released QoS 2) in the original order [MQTT-4.4.0-1], then drain the queue.
    pub fn attach(&mut self, conn: Rc<ConnLink>, protocol: Protocol) {
        self.protocol = protocol;
        self.conn = Some(conn);
        // Topic aliases live as long as one network connection [MQTT-3.3.2-7].
        if let Some(r) = &mut self.rare {
            r.out_aliases.clear();
        }
        let inflight = std::mem::take(&mut self.inflight);
        let mut kept = VecDeque::with_capacity(inflight.len());
        for f in inflight {
            if f.released {
                self.write_ack(Packet::PubRel(Ack {
                    packet_id: f.packet_id,
                    reason: 0,
                    properties: Properties::default(),
                }));
                kept.push_back(f);
            } else if self.write_publish(&f.delivery, f.packet_id, true) {
                // Even past its expiry: a message already sent must be completed
                // [MQTT-4.3.3-7]; expiry only stops messages not yet sent.
                kept.push_back(f);
            } else {
                self.log_done(&f.delivery);
            }
        }
        self.inflight = kept;
        self.pump();
    }

    /// Detach the connection; unacknowledged state stays for a later resume, and every held
    /// publisher is released (an offline session drops past its bounds instead).
    /// Returns the messages that came through a shared subscription and that the group should
    /// give to another member: QoS 1 ones not acknowledged, and queued QoS 1/2 ones never sent.
    /// A QoS 2 message already sent stays with this session, to be completed when it reconnects
    /// or dropped with it [MQTT-4.8.2-4], [MQTT-4.8.2-5].
    /// The journal still counts this session as holding what it returns: the caller logs
    /// [`Session::log_done`] for each once the group's next holder is on the log.
    pub fn detach(&mut self) -> Vec<Delivery> {
        self.detach_keeping(|_| false)
    }

    /// As [`Session::detach`], but shared-group messages of the groups `keep` names stay with
    /// this session (in flight, to be resent with DUP, or queued) instead of being given back:
    /// for a persistent session that is its group's only member, giving back would drop them.
    pub fn detach_keeping(&mut self, keep: impl Fn(&ByteString) -> bool) -> Vec<Delivery> {
        self.conn = None;
        self.release_waiters();
        let given = |d: &Delivery| d.shared.as_deref().is_some_and(|k| !keep(k));
        let mut give_back = Vec::new();
        let mut kept = VecDeque::with_capacity(self.inflight.len());
        for f in std::mem::take(&mut self.inflight) {
            if given(&f.delivery) && f.delivery.qos == QoS::AtLeastOnce {
                give_back.push(f.delivery);
            } else {
                kept.push_back(f);
            }
        }
        self.inflight = kept;
        let (shared, mut rest): (VecDeque<Delivery>, VecDeque<Delivery>) =
            std::mem::take(&mut self.queue)
                .into_iter()
                .partition(|d| given(d) && d.qos != QoS::AtMostOnce);
        give_back.extend(shared);
        // QoS 0 messages are not kept for an offline session unless configured.
        if !self.limits.queue_qos0_offline {
            let before = rest.len();
            rest.retain(|d| d.qos != QoS::AtMostOnce);
            self.rare().drops.offline_qos0 += (before - rest.len()) as u64;
        }
        self.queued_bytes = rest.iter().map(|d| d.msg.size_bytes()).sum();
        self.queue = rest;
        give_back
    }

    /// The session ends: every publisher it holds is released.
    pub fn end(&mut self) {
        self.release_waiters();
    }
}

/// Use (or define, while the client's table has room) a topic alias for `publish`. Once the
/// table is full, topics without an alias go out in full: re-assigning aliases would cost the
/// client a table update per message for no saving.
fn apply_outbound_alias(
    aliases: &mut HashMap<ByteString, u16>,
    max: u16,
    publish: &mut crate::codec::Publish,
) {
    match aliases.get(&publish.topic) {
        Some(&alias) => {
            publish.properties.topic_alias = Some(alias);
            publish.topic = ByteString::new();
        }
        None if aliases.len() < max as usize => {
            let alias = aliases.len() as u16 + 1;
            aliases.insert(publish.topic.clone(), alias);
            publish.properties.topic_alias = Some(alias);
        }
        None => {}
    }
}

#[cfg(test)]
mod tests;
