//! The parts of a [`Session`] that few sessions ever use: drop counters, outbound topic
//! aliases, incoming QoS 2 ids and the back-pressure bookkeeping. They live in one box that is
//! allocated on first use, so an idle connection's session carries a null pointer for all of
//! them (about 200 bytes less per idle connection: see docs/ARCHITECTURE.md, "Idle connections
//! carry only their serving task").
//!
//! Owns: allocation on first write; reads of an absent box answer as if it were empty.
//! Never: allocates on a read, or on the path of a session that drops nothing, congests
//! nothing, uses no outbound alias and receives no QoS 2.

use super::{Session, SessionDrops};
use bytestring::ByteString;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

#[derive(Debug, Default)]
pub(super) struct Rare {
    pub(super) drops: SessionDrops,
    /// Topic → alias defined on the current connection (reset on every connect).
    pub(super) out_aliases: HashMap<ByteString, u16>,
    /// Incoming QoS 2 ids that got PUBREC and await PUBREL: a repeated PUBLISH with one of
    /// these ids is a retransmission and is not routed again [MQTT-4.3.3-10].
    pub(super) incoming_qos2: HashSet<u16>,
    /// Publishers (session uids) held back because this session's queue is past its bounds;
    /// released together once it drains to half its bounds, goes offline or ends.
    pub(super) waiters: Vec<u64>,
    /// Publishers to release, filled by whatever drained the queue; the caller hands them to
    /// the shard ([`Session::take_released`]).
    pub(super) released: Vec<u64>,
    /// While past its bounds: when the queue last made progress. The slow-subscriber watchdog
    /// disconnects a session whose progress is older than `slow_subscriber_timeout_s`.
    pub(super) congested_since: Option<Instant>,
}

/// The rare parts in `slot`, allocated now if this is their first use (a free function, for
/// callers that hold a borrow of another field of the session).
pub(super) fn of(slot: &mut Option<Box<Rare>>) -> &mut Rare {
    slot.get_or_insert_with(Box::default)
}

impl Session {
    /// The rare parts, allocated now if this is their first use.
    pub(super) fn rare(&mut self) -> &mut Rare {
        of(&mut self.rare)
    }

    /// Messages this session dropped since the last [`Session::take_drops`], by reason.
    pub fn drops(&self) -> SessionDrops {
        self.rare
            .as_ref()
            .map_or_else(SessionDrops::default, |r| r.drops)
    }

    /// The drop counts, reset to zero (the shard adds them to its statistics).
    pub fn take_drops(&mut self) -> SessionDrops {
        self.rare
            .as_mut()
            .map_or_else(SessionDrops::default, |r| std::mem::take(&mut r.drops))
    }

    /// Publishers this session holds back.
    pub fn waiters(&self) -> &[u64] {
        self.rare.as_ref().map_or(&[], |r| &r.waiters)
    }

    /// While past its bounds: when the queue last made progress.
    pub fn congested_since(&self) -> Option<Instant> {
        self.rare.as_ref().and_then(|r| r.congested_since)
    }

    pub(super) fn set_congested_since(&mut self, at: Option<Instant>) {
        if at.is_some() || self.rare.is_some() {
            self.rare().congested_since = at;
        }
    }

    /// Publishers this session stopped holding back since the last call.
    pub fn take_released(&mut self) -> Vec<u64> {
        self.rare
            .as_mut()
            .map_or_else(Vec::new, |r| std::mem::take(&mut r.released))
    }

    pub fn has_released(&self) -> bool {
        self.rare.as_ref().is_some_and(|r| !r.released.is_empty())
    }

    /// An incoming QoS 2 id got PUBREC: true if it was not awaiting PUBREL already.
    pub fn incoming_qos2_insert(&mut self, packet_id: u16) -> bool {
        self.rare().incoming_qos2.insert(packet_id)
    }

    /// PUBREL for an incoming QoS 2 id: true if it was awaited.
    pub fn incoming_qos2_remove(&mut self, packet_id: u16) -> bool {
        self.rare
            .as_mut()
            .is_some_and(|r| r.incoming_qos2.remove(&packet_id))
    }

    pub fn incoming_qos2_contains(&self, packet_id: u16) -> bool {
        self.rare
            .as_ref()
            .is_some_and(|r| r.incoming_qos2.contains(&packet_id))
    }

    pub fn incoming_qos2_len(&self) -> usize {
        self.rare.as_ref().map_or(0, |r| r.incoming_qos2.len())
    }

    /// The incoming QoS 2 ids awaiting PUBREL, in no order.
    pub fn incoming_qos2_ids(&self) -> impl Iterator<Item = u16> + '_ {
        self.rare
            .as_ref()
            .into_iter()
            .flat_map(|r| r.incoming_qos2.iter().copied())
    }

    /// Replace the incoming QoS 2 ids (restoring a stored session).
    pub fn set_incoming_qos2(&mut self, ids: impl IntoIterator<Item = u16>) {
        let ids: HashSet<u16> = ids.into_iter().collect();
        if !ids.is_empty() || self.rare.is_some() {
            self.rare().incoming_qos2 = ids;
        }
    }
}
