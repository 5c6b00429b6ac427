//! The per-client MQTT session: subscriptions, outgoing QoS 1/2 state (packet ids, inflight
//! window, retransmission), the bounded offline/slow-consumer queue, and incoming QoS 2 state.
//!
//! Owns: everything the protocol says survives a reconnect of a persistent session.
//! Never: touches a socket or a lock. A live connection is reached only through its
//! [`ConnLink`], a shard-local output buffer the connection task drains.

mod link;
mod message;

pub use link::ConnLink;

pub use message::{expiry_from, Delivery, Message};

use crate::codec::{Ack, Packet, Properties, Protocol, QoS, SubOptions, Will};
use bytestring::ByteString;
use std::collections::{HashMap, HashSet, VecDeque};
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

/// Counters a session adds to; the shard sums them into its statistics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SessionDrops {
    /// QoS 0 messages dropped because the queue was full (or the client offline).
    pub qos0: u64,
    /// QoS 1/2 messages dropped because the queue was full.
    pub qos12: u64,
    /// Messages not sent because they exceed the client's Maximum Packet Size (v5).
    pub too_large: u64,
    /// Messages whose Message Expiry Interval elapsed while queued.
    pub expired: u64,
}

/// Limits a session enforces, copied from the configuration at creation.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub inflight_max: u16,
    pub queued_messages_max: usize,
    pub queue_qos0_offline: bool,
    pub out_buffer_bytes_max: usize,
    /// Send topic aliases to v5 clients that accept them.
    pub topic_alias_outbound: bool,
}

#[derive(Debug)]
pub struct Session {
    pub client_id: ByteString,
    /// Unique across shards and time: the shard id in the top byte. Used for No Local.
    pub uid: u64,
    pub protocol: Protocol,
    /// Session Expiry Interval in force (v3 persistent sessions: `u32::MAX`, never).
    pub expiry_s: u32,
    pub subscriptions: HashMap<ByteString, Subscription>,
    /// The will of the current connection; taken when published or discarded. Boxed: most
    /// sessions have none, and a `Will` carries a whole property set.
    pub will: Option<Box<Will>>,
    /// Bumped on every (re)connect so timers armed for an older connection do nothing.
    pub generation: u64,
    pub drops: SessionDrops,
    limits: SessionLimits,
    /// Outgoing window: the client's Receive Maximum capped by `inflight_max`.
    window: u16,
    /// Client's Maximum Packet Size (v5), `u32::MAX` when absent.
    pub client_packet_bytes_max: u32,
    /// Client's Topic Alias Maximum (v5): aliases we may define towards it.
    client_alias_max: u16,
    /// Topic → alias defined on the current connection (reset on every connect).
    out_aliases: HashMap<ByteString, u16>,
    next_packet_id: u16,
    inflight: VecDeque<Inflight>,
    queue: VecDeque<Delivery>,
    /// Incoming QoS 2 ids that got PUBREC and await PUBREL: a repeated PUBLISH with one of
    /// these ids is a retransmission and is not routed again [MQTT-4.3.3-10].
    pub incoming_qos2: HashSet<u16>,
    pub conn: Option<Rc<ConnLink>>,
}

impl Session {
    pub fn new(client_id: ByteString, uid: u64, protocol: Protocol, limits: SessionLimits) -> Self {
        Session {
            client_id,
            uid,
            protocol,
            expiry_s: 0,
            subscriptions: HashMap::new(),
            will: None,
            generation: 0,
            drops: SessionDrops::default(),
            limits,
            window: limits.inflight_max,
            client_packet_bytes_max: u32::MAX,
            client_alias_max: 0,
            out_aliases: HashMap::new(),
            next_packet_id: 1,
            inflight: VecDeque::new(),
            queue: VecDeque::new(),
            incoming_qos2: HashSet::new(),
            conn: None,
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

    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    /// Hand a matched message to this session: sent now when the connection and window allow,
    /// queued otherwise (bounded), dropped and counted past the bound.
    pub fn deliver(&mut self, delivery: Delivery) {
        if self.conn.is_none() {
            let keep = delivery.qos != QoS::AtMostOnce || self.limits.queue_qos0_offline;
            if !keep {
                self.drops.qos0 += 1;
                return;
            }
            self.enqueue(delivery);
            return;
        }
        if self.queue.is_empty() && self.can_send_now(delivery.qos) {
            self.send(delivery);
        } else {
            self.enqueue(delivery);
        }
    }

    fn enqueue(&mut self, delivery: Delivery) {
        if self.queue.len() >= self.limits.queued_messages_max {
            if delivery.qos == QoS::AtMostOnce {
                self.drops.qos0 += 1;
            } else {
                self.drops.qos12 += 1;
            }
            return;
        }
        self.queue.push_back(delivery);
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
        while let Some(front) = self.queue.front() {
            if !self.can_send_now(front.qos) {
                break;
            }
            if let Some(d) = self.queue.pop_front() {
                self.send(d);
            }
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
            self.drops.expired += 1;
            return;
        }
        let packet_id = if delivery.qos == QoS::AtMostOnce {
            0
        } else {
            self.alloc_packet_id()
        };
        if self.write_publish(&delivery, packet_id, false) && packet_id != 0 {
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
                self.drops.too_large += 1;
                return false;
            }
            if self.client_alias_max > 0 {
                apply_outbound_alias(&mut self.out_aliases, self.client_alias_max, &mut publish);
            }
        }
        conn.write_packet(&Packet::Publish(publish), self.protocol)
    }

    /// PUBACK (QoS 1 done) from the client. Unknown ids are ignored, as Mosquitto does.
    pub fn on_puback(&mut self, packet_id: u16) {
        if let Some(pos) = self.find_inflight(packet_id, false) {
            self.inflight.remove(pos);
            self.pump();
        }
    }

    /// PUBREC: the client has the QoS 2 message; answer PUBREL (also for an unknown id in v3,
    /// so a confused client still completes; v5 answers 0x92).
    pub fn on_pubrec(&mut self, ack: &Ack) {
        let found = self.find_inflight(ack.packet_id, false);
        if ack.reason >= 0x80 {
            // v5: a failed PUBREC ends the exchange [MQTT-4.3.3-4].
            if let Some(pos) = found {
                self.inflight.remove(pos);
                self.pump();
            }
            return;
        }
        let reason = match found {
            Some(pos) => {
                self.inflight[pos].released = true;
                0
            }
            None => 0x92,
        };
        self.write_ack(Packet::PubRel(Ack {
            packet_id: ack.packet_id,
            reason,
            properties: Properties::default(),
        }));
    }

    /// PUBCOMP: QoS 2 finished.
    pub fn on_pubcomp(&mut self, packet_id: u16) {
        if let Some(pos) = self.find_inflight(packet_id, true) {
            self.inflight.remove(pos);
            self.pump();
        }
    }

    fn find_inflight(&self, packet_id: u16, released: bool) -> Option<usize> {
        // Acks usually come in order: the front is the common hit.
        self.inflight
            .iter()
            .position(|f| f.packet_id == packet_id && f.released == released)
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
        self.generation += 1;
        // Topic aliases live as long as one network connection [MQTT-3.3.2-7].
        self.out_aliases.clear();
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
            }
        }
        self.inflight = kept;
        self.pump();
    }

    /// Detach the connection; unacknowledged state stays for a later resume.
    /// Returns the messages that came through a shared subscription and that the group should
    /// give to another member: QoS 1 ones not acknowledged, and queued QoS 1/2 ones never sent.
    /// A QoS 2 message already sent stays with this session, to be completed when it reconnects
    /// or dropped with it [MQTT-4.8.2-4], [MQTT-4.8.2-5].
    pub fn detach(&mut self) -> Vec<Delivery> {
        self.conn = None;
        let mut give_back = Vec::new();
        let mut kept = VecDeque::with_capacity(self.inflight.len());
        for f in std::mem::take(&mut self.inflight) {
            if f.delivery.shared.is_some() && f.delivery.qos == QoS::AtLeastOnce {
                give_back.push(f.delivery);
            } else {
                kept.push_back(f);
            }
        }
        self.inflight = kept;
        let (shared, rest): (VecDeque<Delivery>, VecDeque<Delivery>) =
            std::mem::take(&mut self.queue)
                .into_iter()
                .partition(|d| d.shared.is_some() && d.qos != QoS::AtMostOnce);
        self.queue = rest;
        give_back.extend(shared);
        // QoS 0 messages are not kept for an offline session unless configured.
        if !self.limits.queue_qos0_offline {
            let before = self.queue.len();
            self.queue.retain(|d| d.qos != QoS::AtMostOnce);
            self.drops.qos0 += (before - self.queue.len()) as u64;
        }
        give_back
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
