//! The engine's side of the durable store: which sessions are journaled, the incoming QoS 2
//! state it records, and the gate that keeps acknowledgements in the connection's output until
//! what they promise is committed ([`Need`], [`crate::shard::journal::Progress`]).
//!
//! Never: waits (the connection task does, on the link's gate), or journals a clean session.

use super::Engine;
use crate::session::Session;
use crate::shard::journal::{Journal, Need};
use std::rc::Rc;

/// A (re)connected session: journaled from now on if it persists (expiry > 0) and the broker
/// has a store; a session that no longer persists leaves the store.
pub(super) fn journal_connect(se: &mut Session, journal: Option<&Rc<Journal>>, level: u8) {
    let Some(journal) = journal else { return };
    if se.expiry_s == 0 {
        if let Some(j) = se.journal.take() {
            j.session_delete(&se.client_id, se.held_messages());
        }
        return;
    }
    if se.journal.is_none() {
        se.journal = Some(journal.clone());
    }
    se.offline_since_ms = 0;
    journal.session_upsert(&se.client_id, level, se.expiry_s, 0);
}

impl Engine {
    /// Everything appended and tagged on this shard so far.
    pub(super) fn journal_need(&self) -> Need {
        match &self.ctx.shard.borrow().journal {
            Some(j) => j.need(),
            None => Need::default(),
        }
    }

    /// After a step that may have written acknowledgements: what it stored (if anything)
    /// joins what this connection's output waits for, and the gate is set while that is not
    /// committed.
    pub(super) fn after_step(&mut self, before: Need) {
        let now = self.journal_need();
        if now != before {
            self.need = self.need.max(now);
        }
        self.gate_output();
    }

    pub(super) fn gate_output(&self) {
        if let Some(p) = &self.progress {
            if !p.covers(self.need) {
                self.link.set_gate(self.need);
            }
        }
    }

    /// The store's progress, for the connection task's wait on the gate.
    pub fn progress(&self) -> Option<Rc<crate::shard::journal::Progress>> {
        self.progress.clone()
    }

    /// The store cannot commit right now (disk full, I/O error): new QoS 1/2 work is refused.
    pub(super) fn store_failing(&self) -> bool {
        self.progress.as_ref().is_some_and(|p| p.failing.get())
    }

    pub(super) fn qos2_insert(&self, packet_id: u16) {
        let mut s = self.session.borrow_mut();
        if s.incoming_qos2_insert(packet_id) {
            if let Some(j) = &s.journal {
                j.incoming_qos2(&s.client_id, packet_id, true);
            }
        }
    }

    pub(super) fn qos2_remove(&self, packet_id: u16) -> bool {
        let mut s = self.session.borrow_mut();
        let known = s.incoming_qos2_remove(packet_id);
        if known {
            if let Some(j) = &s.journal {
                j.incoming_qos2(&s.client_id, packet_id, false);
            }
        }
        known
    }
}
