//! What a persistent session tells its journal, and how a recovered one is put back.
//!
//! Only QoS 1/2 deliveries are journaled: QoS 0 promises nothing across a crash. Every
//! journaled delivery is closed by exactly one `done` (acknowledged, expired, too large, or
//! handed back to a shared group), or by the session's deletion, so the log's holder counts
//! and the session's memory agree.
//!
//! Never: journals anything for a session without a journal (clean sessions, `durability =
//! "none"`), or writes to the connection.

use super::{Delivery, Inflight, Message, Session};
use crate::codec::QoS;
use std::sync::Arc;

impl Session {
    fn journaled(&self, d: &Delivery) -> Option<&crate::shard::journal::Journal> {
        match &self.journal {
            Some(j) if d.qos != QoS::AtMostOnce => Some(j),
            _ => None,
        }
    }

    pub(super) fn log_enqueue(&self, d: &Delivery) {
        if let Some(j) = self.journaled(d) {
            j.enqueue(&self.client_id, &d.msg, d.qos);
        }
    }

    pub(super) fn log_sent(&self, d: &Delivery, packet_id: u16) {
        if let Some(j) = self.journaled(d) {
            j.sent(&self.client_id, &d.msg, packet_id);
        }
    }

    /// A QoS 2 PUBLISH must not reach the client before its `Sent` (and the message) is
    /// committed: a crash in between would restore it unsent, and it would go out again under
    /// another packet id, a second delivery the client cannot recognise. QoS 1 needs no gate
    /// (a redelivery is allowed), and neither does a session without a journal.
    pub(super) fn gate_until_logged(&self) {
        if let (Some(j), Some(conn)) = (&self.journal, &self.conn) {
            conn.set_gate(j.need_local());
        }
    }

    pub(crate) fn log_done(&self, d: &Delivery) {
        if let Some(j) = self.journaled(d) {
            j.done(&self.client_id, &d.msg);
        }
    }

    pub(super) fn log_pubrec(&self, packet_id: u16) {
        if let Some(j) = &self.journal {
            j.pubrec(&self.client_id, packet_id);
        }
    }

    /// The messages the journal counts this session as holding (QoS 1/2, in flight or queued).
    pub fn held_messages(&self) -> impl Iterator<Item = &Arc<Message>> {
        self.inflight
            .iter()
            .map(|f| &f.delivery)
            .chain(self.queue.iter())
            .filter(|d| d.qos != QoS::AtMostOnce)
            .map(|d| &d.msg)
    }

    /// What the journal holds for this session, in delivery order: (message, QoS, packet id or
    /// 0 while queued, PUBREC received).
    pub fn journal_refs(&self) -> impl Iterator<Item = (&Arc<Message>, QoS, u16, bool)> {
        let inflight = self
            .inflight
            .iter()
            .map(|f| (&f.delivery.msg, f.delivery.qos, f.packet_id, f.released));
        let queued = self
            .queue
            .iter()
            .filter(|d| d.qos != QoS::AtMostOnce)
            .map(|d| (&d.msg, d.qos, 0, false));
        inflight.chain(queued)
    }

    /// Recovery: a message that was queued (not sent yet).
    pub fn restore_queued(&mut self, d: Delivery) {
        self.push_queue(d);
    }

    /// Recovery: a message that was sent with `packet_id` and not completed; `released`: QoS 2
    /// after PUBREC (only PUBREL is resent).
    pub fn restore_inflight(&mut self, d: Delivery, packet_id: u16, released: bool) {
        if packet_id >= self.next_packet_id {
            self.next_packet_id = packet_id.checked_add(1).unwrap_or(1);
        }
        self.inflight.push_back(Inflight {
            packet_id,
            delivery: d,
            released,
        });
    }
}
