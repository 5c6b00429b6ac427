//! SUBSCRIBE and UNSUBSCRIBE on the home shard: grant or refuse each filter, record it in the
//! session and this shard's automaton, and, once every peer shard routes the new interest here,
//! answer and send the retained messages Retain Handling asks for.
//!
//! Two steps, because the peers answer through the mesh: [`Engine::on_subscribe`] does the
//! work and returns the mesh tokens to wait for ([`super::Step::AwaitMesh`]) unless they are
//! already confirmed; [`Engine::finish_subscribe`] sends SUBACK and the retained messages.
//!
//! Never: waits (the connection task does, bounded), or keeps a filter that aliases the read
//! buffer (filters are copied before they are stored).

use super::{topic_within_limits, Close, Engine, Step};
use crate::codec::{self, Packet, Properties, QoS, SubAck, Subscribe, UnsubAck, Unsubscribe};
use crate::session::{Delivery, Subscription};
use crate::shard::shared::MemberOp;
use crate::shard::AckToken;
use bytestring::ByteString;

/// A SUBSCRIBE whose SUBACK waits for peer shards.
pub struct PendingSubscribe {
    pub packet_id: u16,
    codes: Vec<u8>,
    identifier: Option<u32>,
    /// (filter, granted options, subscription existed before): retained candidates.
    granted: Vec<(ByteString, codec::SubOptions, bool)>,
    /// Mesh acknowledgements to wait for: new interest at every peer, shared-group joins at
    /// their owners.
    pub tokens: Vec<u64>,
    /// Joins this shard owns whose answer waits for the peers' acknowledgement of `own`: the
    /// connection task acknowledges `reply` once `own` is (see `shard::ctx::spawn_ack_after`).
    pub forwards: Vec<(u64, AckToken)>,
}

impl Engine {
    pub(super) fn on_subscribe(&mut self, s: Subscribe) -> Result<Step, Close> {
        let cfg = self.ctx.cfg.clone();
        let v5 = self.protocol.is_v5();
        let identifier = s.properties.subscription_identifiers.first().copied();
        let mut codes = Vec::with_capacity(s.filters.len());
        let mut announce: Vec<ByteString> = Vec::new();
        // Acks to wait for before SUBACK: shared-group joins at their owners.
        let mut joins: Vec<u64> = Vec::new();
        let mut forwards = Vec::new();
        // (filter, granted options, subscription existed before): retained candidates.
        let mut granted: Vec<(ByteString, codec::SubOptions, bool)> = Vec::new();
        for (filter, mut opts) in s.filters {
            // A copy: the filter outlives the read buffer it was decoded from.
            let filter = ByteString::from(&*filter);
            let shared = crate::shard::shared::parse_shared(&filter);
            if !topic_within_limits(&filter, &cfg) || matches!(shared, Some(Err(()))) {
                codes.push(if v5 { 0x8F } else { 0x80 });
                continue;
            }
            let (count, known) = {
                let se = self.session.borrow();
                (
                    se.subscriptions.len(),
                    se.subscriptions.contains_key(&filter),
                )
            };
            if !self.may_subscribe(&filter) {
                // [MQTT-3.9.3]: 0x87 Not authorized (v5), 0x80 Failure (v3).
                log::info!(
                    "client {}: SUBSCRIBE {} denied by the ACL",
                    self.client_id,
                    filter
                );
                self.ctx.shard.borrow_mut().stats.acl_denied += 1;
                codes.push(if v5 { 0x87 } else { 0x80 });
                continue;
            }
            if !known && count >= cfg.subscriptions_per_session_max {
                codes.push(if v5 { 0x97 } else { 0x80 });
                continue;
            }
            if opts.qos as u8 > cfg.maximum_qos {
                opts.qos = QoS::from_u8(cfg.maximum_qos).unwrap_or(QoS::AtMostOnce);
            }
            if !v5 {
                opts = codec::SubOptions {
                    qos: opts.qos,
                    ..Default::default()
                };
            }
            let sub = Subscription {
                options: opts,
                identifier,
            };
            {
                let mut se = self.session.borrow_mut();
                if let Some(j) = &se.journal {
                    j.sub_add(&se.client_id, &filter, &sub);
                }
                se.subscriptions.insert(filter.clone(), sub);
            }
            codes.push(opts.qos as u8);
            if let Some(Ok((_, inner))) = shared {
                // A shared subscription: join the group at its owner; no retained messages
                // [MQTT-4.8.2-?: shared subscriptions get no retained messages on subscribe].
                joins.push(self.join_group(&filter, inner, opts.qos, identifier, &mut forwards));
                continue;
            }
            let (existed, tell) = self.ctx.shard.borrow_mut().subscribe(
                &self.session,
                self.uid,
                &filter,
                opts,
                identifier,
            );
            if tell {
                announce.push(filter.clone());
            }
            granted.push((filter, opts, existed));
        }
        if !announce.is_empty() {
            // SUBACK only once every shard routes this filter here, so a publish made after
            // the SUBACK reaches the subscriber whatever shard it arrives on.
            let token = {
                let mut shard = self.ctx.shard.borrow_mut();
                let peers = shard.shards - 1;
                let token = shard.begin_ack(peers * announce.len());
                for f in &announce {
                    shard.broadcast_interest(f, true, Some(token));
                }
                token
            };
            joins.push(token.token);
        }
        let pending = Box::new(PendingSubscribe {
            packet_id: s.packet_id,
            codes,
            identifier,
            granted,
            tokens: joins,
            forwards,
        });
        let confirmed = {
            let mut shard = self.ctx.shard.borrow_mut();
            pending.tokens.iter().all(|t| shard.take_ack_done(*t))
        };
        if confirmed && pending.forwards.is_empty() {
            self.finish_subscribe(*pending, true);
            return Ok(Step::Done);
        }
        Ok(Step::AwaitMesh(pending))
    }

    /// The peers confirmed (or `confirmed` is false: the bounded wait ran out): SUBACK, then
    /// the retained messages.
    pub fn finish_subscribe(&mut self, p: PendingSubscribe, confirmed: bool) {
        if !confirmed {
            log::warn!(
                "client {}: a peer shard did not confirm a new subscription within {:?}; \
                 sending SUBACK anyway",
                self.client_id,
                crate::limits::MESH_ACK_WAIT
            );
        }
        let PendingSubscribe {
            packet_id,
            codes,
            identifier,
            granted,
            ..
        } = p;
        self.write(Packet::SubAck(SubAck {
            packet_id,
            properties: Properties::default(),
            codes,
        }));
        // Retained messages after the SUBACK, per Retain Handling [MQTT-3.3.1-9..11].
        for (filter, opts, existed) in granted {
            let send = match opts.retain_handling {
                0 => true,
                1 => !existed,
                _ => false,
            };
            if !send {
                continue;
            }
            let retained = self.ctx.shard.borrow().retained_matching(&filter);
            for m in retained {
                if !self.may(m.topic(), crate::auth::acl::Access::Read) {
                    continue; // the ACL does not let this client read it
                }
                let qos = opts.qos.min(m.qos);
                // Origin 0: a retained message holds back no publisher; past the bounds it
                // still queues (at most the retained index's size) and is watched as usual.
                let admit = self.session.borrow_mut().deliver(
                    Delivery {
                        msg: m,
                        qos,
                        retain: true,
                        sub_ids: identifier.into_iter().collect(),
                        shared: None,
                    },
                    0,
                );
                self.ctx
                    .shard
                    .borrow_mut()
                    .after_admit(&self.session, admit, 0);
            }
        }
    }

    /// Join (or update membership of) the shared group `key`; returns the ack token to wait
    /// for before SUBACK.
    pub(super) fn join_group(
        &mut self,
        key: &ByteString,
        inner: &str,
        qos: QoS,
        identifier: Option<u32>,
        forwards: &mut Vec<(u64, AckToken)>,
    ) -> u64 {
        let mut shard = self.ctx.shard.borrow_mut();
        let member = shard.member_of(&self.session, qos, identifier);
        let reply = shard.begin_ack(1);
        let pending = shard.share_op(
            key.clone(),
            inner.into(),
            member,
            MemberOp::Join,
            Some(reply),
        );
        drop(shard);
        forwards.extend(pending);
        reply.token
    }

    pub(super) fn on_unsubscribe(&mut self, u: Unsubscribe) {
        let mut codes = Vec::with_capacity(u.filters.len());
        for filter in u.filters {
            let had = {
                let mut se = self.session.borrow_mut();
                let had = se.subscriptions.remove(&filter).is_some();
                if let (Some(j), true) = (&se.journal, had) {
                    j.sub_remove(&se.client_id, &filter);
                }
                had
            };
            let existed = self
                .ctx
                .shard
                .borrow_mut()
                .drop_subscription(&self.session, &filter);
            // 0x11: no subscription existed [MQTT-3.11.3-1] (v5 only; v3 UNSUBACK has no codes).
            codes.push(if existed && had { 0x00 } else { 0x11 });
        }
        if !self.protocol.is_v5() {
            codes.clear();
        }
        self.write(Packet::UnsubAck(UnsubAck {
            packet_id: u.packet_id,
            properties: Properties::default(),
            codes,
        }));
    }
}
