//! Acknowledgements of incoming PUBLISHes that cannot go out yet. A PUBACK waits while its
//! publisher is held back (the subscriber it filled must drain first); with a durable store, a
//! PUBACK or PUBREC also waits until the log position that holds its message is committed
//! (the promise an acknowledgement makes must survive a crash).
//!
//! Owns: the order acknowledgements leave in. MQTT requires PUBACKs in the order their
//! PUBLISHes arrived [MQTT-4.6.0-2], so a ready acknowledgement still waits behind an earlier
//! one that is not.
//! Never: decides whether something is held or committed; the engine passes that in.

use crate::codec::{Ack, Packet, Properties, QoS};
use std::collections::VecDeque;

/// What an acknowledgement waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// The end of the hold on this session (back-pressure).
    Hold,
    /// The store committing this log position.
    Commit(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingAck {
    pub packet_id: u16,
    pub reason: u8,
    /// QoS 1 → PUBACK, QoS 2 → PUBREC.
    pub qos: QoS,
    pub gate: Gate,
}

impl PendingAck {
    pub fn packet(&self) -> Packet {
        ack_packet(self.qos, self.packet_id, self.reason)
    }

    fn ready(&self, held: bool, committed: u64) -> bool {
        match self.gate {
            Gate::Hold => !held,
            Gate::Commit(lsn) => lsn <= committed,
        }
    }
}

/// Empty (no allocation) on every connection that is not held or waiting for a commit.
#[derive(Debug, Default)]
pub struct AckQueue {
    q: VecDeque<PendingAck>,
}

impl AckQueue {
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    pub fn len(&self) -> usize {
        self.q.len()
    }

    pub fn push(&mut self, ack: PendingAck) {
        self.q.push_back(ack);
    }

    /// The oldest acknowledgement if its gate is open (and so every earlier one's was).
    pub fn pop_ready(&mut self, held: bool, committed: u64) -> Option<PendingAck> {
        if self.q.front()?.ready(held, committed) {
            self.q.pop_front()
        } else {
            None
        }
    }
}

/// PUBACK (QoS 1) or PUBREC (QoS 2) for an incoming PUBLISH.
pub fn ack_packet(qos: QoS, packet_id: u16, reason: u8) -> Packet {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(packet_id: u16, gate: Gate) -> PendingAck {
        PendingAck {
            packet_id,
            reason: 0,
            qos: QoS::AtLeastOnce,
            gate,
        }
    }

    #[test]
    fn a_ready_ack_waits_behind_an_earlier_one() {
        let mut q = AckQueue::default();
        q.push(ack(1, Gate::Commit(10)));
        q.push(ack(2, Gate::Commit(5)));
        // 2's commit is done but 1's is not: PUBACKs leave in arrival order [MQTT-4.6.0-2].
        assert_eq!(q.pop_ready(false, 7), None);
        assert_eq!(q.pop_ready(false, 10).map(|a| a.packet_id), Some(1));
        assert_eq!(q.pop_ready(false, 10).map(|a| a.packet_id), Some(2));
        assert!(q.is_empty());
    }

    #[test]
    fn a_hold_gate_opens_when_the_hold_ends() {
        let mut q = AckQueue::default();
        q.push(ack(3, Gate::Hold));
        assert_eq!(q.pop_ready(true, u64::MAX), None);
        assert_eq!(q.pop_ready(false, 0).map(|a| a.packet_id), Some(3));
    }

    #[test]
    fn qos_picks_the_packet() {
        let mut a = ack(4, Gate::Hold);
        assert!(matches!(a.packet(), Packet::PubAck(_)));
        a.qos = QoS::ExactlyOnce;
        assert!(matches!(a.packet(), Packet::PubRec(_)));
    }
}
