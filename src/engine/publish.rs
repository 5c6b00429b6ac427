//! PUBLISH from the client: topic alias resolution, the checks the CONNACK promised (maximum
//! QoS, retain available, topic limits), QoS 2 duplicate detection, routing, and the
//! acknowledgement, sent now or queued behind a hold ([`super::acks`]). Also DISCONNECT, whose
//! expiry rule lives beside the session state it changes.
//!
//! Never: keeps a slice of the read buffer past the call (topics and aliases are copied), or
//! routes while the publisher's session is borrowed.

use super::acks::{Gate, PendingAck};
use super::{topic_within_limits, Close, Engine};
use crate::auth::acl::Access;
use crate::codec::{Disconnect, Publish, QoS};
use crate::session::Message;
use bytestring::ByteString;
use std::sync::Arc;

impl Engine {
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

    /// A PUBLISH: checked, routed, and acknowledged. QoS 2's PUBREC is written before the
    /// message is forwarded, so even a publisher subscribed to its own topic sees PUBREC first;
    /// QoS 1's PUBACK after routing, or queued if routing got this session held back.
    pub(super) fn on_publish(&mut self, mut p: Publish) -> Result<(), Close> {
        crate::shard::tally::publish_in(p.qos);
        let cfg = self.ctx.cfg.clone();
        if let Some(budget) = self.budget.as_mut() {
            if !budget.take(crate::clock::now_ms(), p.payload.len()) {
                let n = {
                    let mut shard = self.ctx.shard.borrow_mut();
                    shard.stats.rate_disconnects += 1;
                    shard.stats.rate_disconnects
                };
                if crate::shard::worth_logging(n) {
                    log::warn!(
                        "client {}: over max_publish_rate_per_client / max_publish_bytes_per_client; \
                         disconnecting ({n} such disconnects so far)",
                        self.client_id
                    );
                }
                return Err(Close::Server(0x96)); // Message rate too high
            }
        }
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
        if !self.may(&p.topic, Access::Write) {
            // v5 learns why (0x87, which ends a QoS 2 flow at PUBREC); a v3 client is
            // acknowledged and the message dropped, as Mosquitto does.
            let n = self.count(|s| &mut s.acl_denied);
            if crate::shard::worth_logging(n) {
                log::info!(
                    "client {}: PUBLISH to {} denied by the ACL ({n} denials so far)",
                    self.client_id,
                    p.topic
                );
            }
            self.refuse(&p, 0x87);
            return Ok(());
        }
        if p.qos != QoS::AtMostOnce && self.store_failing() {
            // The store cannot commit: what needs it is refused, the rest keeps running. v5
            // learns why (0x97); v3 cannot be told, so it is disconnected and resends later.
            let n = self.count(|s| &mut s.store_refused);
            if crate::shard::worth_logging(n) {
                log::warn!(
                    "client {}: QoS {} PUBLISH refused, the store cannot commit ({n} so far)",
                    self.client_id,
                    p.qos as u8
                );
            }
            if !v5 {
                return Err(Close::Server(0x97));
            }
            self.ack_in_order(p.qos, p.packet_id, 0x97);
            return Ok(());
        }
        if p.retain
            && self
                .ctx
                .shard
                .borrow()
                .retained_over_bounds(&p.topic, p.payload.len())
        {
            // Not accepted at all (neither retained nor forwarded), as an ACL denial is: v5
            // learns why from 0x97 Quota exceeded (which ends a QoS 2 flow at PUBREC), v3
            // cannot be told and gets the usual acknowledgement.
            self.refuse_retained(&p.topic);
            self.refuse(&p, 0x97);
            return Ok(());
        }
        if p.qos == QoS::ExactlyOnce {
            let s = self.session.borrow();
            if s.incoming_qos2_contains(p.packet_id) {
                // A retransmission of a message we already own: acknowledge, don't route twice.
                drop(s);
                self.ack_in_order(QoS::ExactlyOnce, p.packet_id, 0);
                return Ok(());
            }
            if s.incoming_qos2_len() >= cfg.receive_maximum as usize {
                return Err(Close::Protocol(0x93)); // [MQTT-3.3.4-9]
            }
            drop(s);
            self.qos2_insert(p.packet_id);
            let matched = !v5 || self.ctx.shard.borrow().matches_any(&p.topic);
            self.ack_in_order(p.qos, p.packet_id, if matched { 0 } else { 0x10 });
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
        if qos == QoS::AtLeastOnce {
            // v5: 0x10 "No matching subscribers" is still a success [MQTT-3.4.2.1].
            let reason = if matched || !v5 { 0x00 } else { 0x10 };
            self.ack_in_order(qos, packet_id, reason);
        }
        Ok(())
    }

    /// The ACL (file and token rules) allows this client `access` to `topic`. Free when there
    /// is neither an ACL file nor token rules, but for `$` topics (never writable).
    pub(super) fn may(&self, topic: &str, access: Access) -> bool {
        self.ctx
            .shard
            .borrow()
            .may(&self.session.borrow(), topic, access)
    }

    /// The ACL allows this client to subscribe to `filter`.
    pub(super) fn may_subscribe(&self, filter: &str) -> bool {
        let shard = self.ctx.shard.borrow();
        let session = self.session.borrow();
        let id = session.identity.as_deref();
        shard.security.acl.check_subscribe_with_claims(
            id.and_then(|a| a.claim_acl.as_ref()),
            id.and_then(|a| a.username.as_deref()),
            &self.client_id,
            filter,
        )
    }

    /// Add one to a shard counter; returns the new count (for [`crate::shard::worth_logging`]).
    fn count(&self, counter: impl FnOnce(&mut crate::shard::Stats) -> &mut u64) -> u64 {
        let mut shard = self.ctx.shard.borrow_mut();
        let c = counter(&mut shard.stats);
        *c += 1;
        *c
    }

    /// A PUBLISH not accepted: v5 learns `v5_reason` (which ends a QoS 2 flow at PUBREC); a v3
    /// client cannot be told, so it is acknowledged as usual (and a QoS 2 id remembered, so
    /// its PUBREL completes) while the message is dropped, as Mosquitto does.
    fn refuse(&mut self, p: &Publish, v5_reason: u8) {
        if p.qos == QoS::AtMostOnce {
            return;
        }
        let v5 = self.protocol.is_v5();
        if p.qos == QoS::ExactlyOnce && !v5 {
            self.qos2_insert(p.packet_id);
        }
        self.ack_in_order(p.qos, p.packet_id, if v5 { v5_reason } else { 0 });
    }

    fn refuse_retained(&mut self, topic: &str) {
        let n = self.count(|s| &mut s.retained_refused);
        if crate::shard::worth_logging(n) {
            log::warn!(
                "client {}: retained message on {} refused at retained_messages_max / \
                 retained_bytes_max ({n} refused so far)",
                self.client_id,
                topic
            );
        }
    }

    /// Acknowledge now, or behind the hold (or earlier acknowledgements still waiting).
    fn ack_in_order(&mut self, qos: QoS, packet_id: u16, reason: u8) {
        let ack = PendingAck {
            packet_id,
            reason,
            qos,
            // QoS 2's PUBREC does not wait for a hold: the PUBLISH after it is what waits.
            gate: if qos == QoS::AtLeastOnce {
                Gate::Hold
            } else {
                Gate::Commit(0)
            },
        };
        if self.acks.is_empty() && (qos == QoS::ExactlyOnce || !self.is_held()) {
            self.write(ack.packet());
        } else {
            self.acks.push(ack);
            self.resume();
        }
    }

    pub(super) fn on_disconnect(&mut self, d: Disconnect) -> Close {
        if self.protocol.is_v5() {
            if let Some(e) = d.properties.session_expiry_interval_s {
                if self.connect_expiry_zero && e != 0 {
                    return Close::Protocol(0x82); // [MQTT-3.14.2-2]
                }
                let capped = super::connect::cap_expiry(e, &self.ctx.cfg);
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
}

/// A client's publish allowance: token buckets of messages and payload bytes per second, each
/// holding up to one second's worth (the burst). Only clients of a broker with a rate limit
/// have one.
#[derive(Debug)]
pub(super) struct PublishBudget {
    msgs: f64,
    bytes: f64,
    at_ms: u32,
    msg_rate: f64,
    byte_rate: f64,
}

impl PublishBudget {
    pub(super) fn new(msg_rate: u32, byte_rate: u64, now_ms: u32) -> Option<Box<PublishBudget>> {
        (msg_rate > 0 || byte_rate > 0).then(|| {
            Box::new(PublishBudget {
                msgs: f64::from(msg_rate),
                bytes: byte_rate as f64,
                at_ms: now_ms,
                msg_rate: f64::from(msg_rate),
                byte_rate: byte_rate as f64,
            })
        })
    }

    /// Spend one message of `bytes` payload at `now_ms`; false when over either rate.
    pub(super) fn take(&mut self, now_ms: u32, bytes: usize) -> bool {
        let dt = f64::from(now_ms.wrapping_sub(self.at_ms)) / 1000.0;
        self.at_ms = now_ms;
        if self.msg_rate > 0.0 {
            self.msgs = (self.msgs + dt * self.msg_rate).min(self.msg_rate);
            if self.msgs < 1.0 {
                return false;
            }
            self.msgs -= 1.0;
        }
        if self.byte_rate > 0.0 {
            self.bytes = (self.bytes + dt * self.byte_rate).min(self.byte_rate);
            if self.bytes < bytes as f64 {
                return false;
            }
            self.bytes -= bytes as f64;
        }
        true
    }
}
