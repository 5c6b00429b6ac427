//! Routing on one shard: publish → match in this shard's automaton → local deliveries plus one
//! mesh message per interested peer; and the subscription / retained changes that keep every
//! shard's copy of the automaton and retained index in step.
//!
//! The data path here never allocates per match beyond the small target list, never awaits and
//! never locks.

use super::shared::Exclude;
use super::{FilterEntry, LocalSub, MeshMsg, SessionRef, Shard};
use crate::codec::{QoS, SubOptions};
use crate::session::{Admit, Delivery, Message};
use bytestring::ByteString;
use smallvec::SmallVec;
use std::rc::Rc;
use std::sync::Arc;

/// One session a message goes to, with overlapping subscriptions merged.
pub struct Target<'a> {
    key: usize,
    session: &'a SessionRef,
    qos: QoS,
    retain_as_published: bool,
    sub_ids: SmallVec<[u32; 1]>,
}

impl Shard {
    /// Route a message. `from_peer`: it was published on another shard, which already did the
    /// retained update and the forwarding; only local subscribers remain.
    /// Returns whether any subscription (here, on a peer, or a shared group) matched.
    pub fn route(&mut self, msg: Arc<Message>, from_peer: bool) -> bool {
        if !from_peer {
            self.stats.publishes_in += 1;
        }
        self.route_inner(msg, from_peer)
    }

    /// Route a message the broker publishes itself (`$SYS` values, presence events): as a
    /// client's, but not counted as one received.
    pub fn route_own(&mut self, msg: Arc<Message>) -> bool {
        self.route_inner(msg, false)
    }

    fn route_inner(&mut self, msg: Arc<Message>, from_peer: bool) -> bool {
        let prefix = self.prefixes.slot(msg.topic());
        if !from_peer {
            self.prefixes.count_in(prefix, msg.payload().len());
        }
        let mut remote: u64 = 0;
        let mut targets: SmallVec<[Target<'_>; 8]> = SmallVec::new();
        let mut groups: SmallVec<[(ByteString, usize); 2]> = SmallVec::new();
        self.subs.for_each_match(msg.topic(), |e: &FilterEntry| {
            remote |= e.remote;
            if !from_peer {
                // Shared groups are dispatched once, by the publishing shard via the owner.
                groups.extend(e.groups.iter().cloned());
            }
            for l in &e.locals {
                // No Local: never back to the publishing session [MQTT-3.8.3-3].
                if l.options.no_local && l.uid == msg.origin_uid {
                    continue;
                }
                let mut ids = SmallVec::new();
                if let Some(id) = l.identifier {
                    ids.push(id);
                }
                targets.push(Target {
                    key: Rc::as_ptr(&l.session) as usize,
                    session: &l.session,
                    qos: l.options.qos.min(msg.qos),
                    retain_as_published: l.options.retain_as_published,
                    sub_ids: ids,
                });
            }
        });
        // Overlapping subscriptions of one session: one delivery at the highest granted QoS,
        // carrying every matching subscription identifier ([MQTT-3.3.4-2], [MQTT-3.3.4-3]).
        if targets.len() > 1 {
            targets.sort_unstable_by_key(|t| t.key);
            let mut merged: SmallVec<[Target<'_>; 8]> = SmallVec::with_capacity(targets.len());
            for t in targets {
                match merged.last_mut() {
                    Some(last) if last.key == t.key => {
                        last.qos = last.qos.max(t.qos);
                        last.retain_as_published |= t.retain_as_published;
                        last.sub_ids.extend(t.sub_ids);
                    }
                    _ => merged.push(t),
                }
            }
            targets = merged;
        }
        let mut matched = !targets.is_empty() || !groups.is_empty();
        let mut delivered = 0;
        // Sessions that went past their bounds with this message: rare, so the common path
        // neither clones a session reference nor touches the hold bookkeeping.
        let mut held: SmallVec<[(SessionRef, Admit); 2]> = SmallVec::new();
        let origin = msg.origin_uid;
        for t in targets {
            let Ok(mut session) = t.session.try_borrow_mut() else {
                debug_assert!(false, "session borrowed during routing");
                continue;
            };
            if !self.may(&session, msg.topic(), crate::auth::acl::Access::Read) {
                continue; // the ACL does not let this subscriber read it
            }
            let admit = session.deliver(
                Delivery {
                    msg: msg.clone(),
                    qos: t.qos,
                    // Forwarded messages carry RETAIN 0 unless Retain As Published
                    // ([MQTT-3.3.1-12], [MQTT-3.3.1-13]).
                    retain: t.retain_as_published && msg.retain,
                    sub_ids: t.sub_ids,
                    shared: None,
                },
                origin,
            );
            if matches!(admit, Admit::Held { .. }) {
                held.push((t.session.clone(), admit));
            }
            delivered += 1;
        }
        self.stats.deliveries += delivered;
        self.prefixes.count_deliveries(prefix, delivered);
        for (session, admit) in held {
            self.after_admit(&session, admit, origin);
        }
        // QoS 2 from a persistent session reaches other shards by store-then-forward, the
        // groups owned elsewhere too: their owners get the stored forward and dispatch it.
        let durable = !from_peer && self.durable_qos2(&msg);
        let mut via_forward: SmallVec<[(ByteString, usize); 2]> = SmallVec::new();
        for (key, owner) in groups {
            if owner == self.id {
                let store = if durable {
                    super::shared::Store::Qos2
                } else {
                    super::shared::Store::Never
                };
                self.share_dispatch(&key, msg.clone(), Exclude::NONE, store);
            } else if durable {
                via_forward.push((key, owner));
            } else {
                self.share_publish(&key, owner, msg.clone(), Exclude::NONE);
            }
        }
        if !from_peer {
            let peers = remote & !(1u64 << self.id);
            let owners = via_forward.iter().fold(0u64, |m, (_, o)| m | (1u64 << o));
            matched |= peers != 0;
            let stored = (peers | owners) != 0
                && durable
                && self
                    .journal
                    .as_ref()
                    .is_some_and(|j| j.forward_later(&msg, peers | owners, None));
            if stored {
                return matched;
            }
            // Not stored (the store refused it): sent at once, as QoS 1 is.
            for (key, owner) in via_forward {
                self.share_publish(&key, owner, msg.clone(), Exclude::NONE);
            }
            // A QoS 1/2 message a peer may store: the acknowledgement waits for its commit.
            let tag = match &self.journal {
                Some(j) if peers != 0 && msg.qos != QoS::AtMostOnce => j.next_tag(),
                _ => 0,
            };
            for peer in 0..self.shards {
                if peers & (1u64 << peer) != 0 {
                    if let (Some(j), true) = (&self.journal, tag != 0) {
                        j.sent_to(peer, super::Lane::Data, tag);
                    }
                    self.send_to(peer, MeshMsg::Publish(msg.clone(), tag));
                }
            }
        }
        matched
    }

    /// QoS 2 from a persistent session, with a store: it goes to peers only once stored here
    /// (`journal_forward.rs`).
    fn durable_qos2(&self, msg: &Message) -> bool {
        self.journal.is_some()
            && msg.qos == QoS::ExactlyOnce
            && self
                .by_uid
                .get(&msg.origin_uid)
                .is_some_and(|s| s.try_borrow().is_ok_and(|s| s.journal.is_some()))
    }

    /// Send the stored QoS 2 forwards whose records are committed through `committed`.
    pub fn send_forwards(&mut self, committed: crate::store::Lsn) {
        let Some(j) = self.journal.clone() else {
            return;
        };
        let from = self.id;
        for (peers, msg, lsn, tag, share) in j.forwards_due(committed) {
            for peer in 0..self.shards {
                if peers & (1u64 << peer) != 0 {
                    let m = MeshMsg::StoredPublish {
                        msg: msg.clone(),
                        from,
                        lsn,
                        tag,
                        share: share.clone(),
                    };
                    self.send_to(peer, m);
                }
            }
        }
    }

    /// Whether a publish to `topic` would reach anyone (v5 PUBREC's 0x10 is decided before
    /// the message is routed).
    pub fn matches_any(&self, topic: &str) -> bool {
        let me = 1u64 << self.id;
        let mut any = false;
        self.subs.for_each_match(topic, |e: &FilterEntry| {
            any |= !e.locals.is_empty() || e.remote & !me != 0 || !e.groups.is_empty();
        });
        any
    }

    /// Store or clear a retained message here and tell every peer. Returns the peers' count so
    /// the caller can wait for their acks when it asked for a token.
    pub fn set_retained(&mut self, msg: &Arc<Message>, ack: Option<super::AckToken>) {
        let topic = msg.topic_shared();
        // An empty retained payload clears the topic and is not stored [MQTT-3.3.1-10/11].
        let stored = (!msg.payload().is_empty()).then(|| msg.clone());
        self.retain_local(&topic, stored.clone());
        // The topic's home shard stores it: the acknowledgement waits for its commit.
        let home = super::home_shard(&topic, self.shards);
        let peers: Vec<usize> = self.peers().collect();
        for peer in peers {
            let tag = match &self.journal {
                Some(j) if peer == home => {
                    let t = j.next_tag();
                    j.sent_to(peer, super::Lane::Control, t);
                    t
                }
                _ => 0,
            };
            self.send_to(
                peer,
                MeshMsg::Retain {
                    topic: topic.clone(),
                    msg: stored.clone(),
                    ack,
                    tag,
                },
            );
        }
    }

    /// Set or clear `topic` in this shard's retained copy, keeping its byte count.
    pub(super) fn retain_local(&mut self, topic: &str, msg: Option<Arc<Message>>) {
        let sys = crate::sys::is_sys_topic(topic);
        let home = super::home_shard(topic, self.shards) == self.id;
        // `$SYS` values are the broker's own, re-published every `sys_interval_s`: never
        // journaled (the store would write them every refresh for nothing on restart).
        let journal = match &self.journal {
            Some(j) if home && !sys => Some(j.clone()),
            _ => None,
        };
        let logged = journal.as_ref().map(|_| msg.clone());
        let new_bytes = msg.as_ref().map_or(0, |m| m.size_bytes() as u64);
        let old = match msg {
            Some(m) => {
                self.retained_bytes += m.size_bytes();
                self.retained.set(topic, m)
            }
            None => self.retained.remove(topic),
        };
        let old_bytes = old.as_ref().map_or(0, |m| m.size_bytes() as u64);
        let delta = i64::from(new_bytes > 0) - i64::from(old.is_some());
        if sys {
            self.retained_sys = self.retained_sys.saturating_add_signed(delta as isize);
        } else if home {
            let (n, b) = &mut self.retained_home;
            *n = n.saturating_add_signed(delta);
            *b = (*b + new_bytes).saturating_sub(old_bytes);
        }
        if let (Some(j), Some(new)) = (journal, logged) {
            // A clear of a topic that retained nothing needs no record.
            if new.is_some() || old.is_some() {
                j.retain(&ByteString::from(topic), new.as_ref(), old.as_ref());
            }
        }
        if let Some(o) = old {
            self.retained_bytes = self.retained_bytes.saturating_sub(o.size_bytes());
        }
    }

    /// Whether retaining `msg` would go past `retained_messages_max` or `retained_bytes_max`.
    /// Replacing or clearing a topic already retained never does (it does not grow the count,
    /// and a client must always be able to clear what it retained).
    pub fn retained_over_bounds(&self, topic: &str, payload_len: usize) -> bool {
        if payload_len == 0 {
            return false;
        }
        let size = topic.len() + payload_len;
        let old = self.retained.get(topic).map(|m| m.size_bytes());
        let count_max = self.cfg.retained_messages_max;
        let clients = self.retained.len().saturating_sub(self.retained_sys);
        if old.is_none() && count_max > 0 && clients >= count_max {
            return true;
        }
        let bytes_max = self.cfg.retained_bytes_max;
        bytes_max > 0 && self.retained_bytes.saturating_sub(old.unwrap_or(0)) + size > bytes_max
    }

    /// Retained messages matching `filter`, from this shard's own copy.
    pub fn retained_matching(&self, filter: &str) -> Vec<Arc<Message>> {
        let mut out = Vec::new();
        self.retained
            .for_each_match(filter, |_, m| out.push(m.clone()));
        out
    }

    /// Add or replace `session`'s subscription to `filter`. Returns (replaced an existing
    /// subscription, peers must learn of a new local interest).
    pub fn subscribe(
        &mut self,
        session: &SessionRef,
        uid: u64,
        filter: &str,
        options: SubOptions,
        identifier: Option<u32>,
    ) -> (bool, bool) {
        let entry = self.subs.entry(filter);
        let first_local = entry.locals.is_empty();
        let sub = LocalSub {
            session: session.clone(),
            uid,
            options,
            identifier,
        };
        match entry
            .locals
            .iter_mut()
            .find(|l| Rc::ptr_eq(&l.session, session))
        {
            Some(existing) => {
                *existing = sub;
                (true, false)
            }
            None => {
                entry.locals.push(sub);
                (false, first_local && self.shards > 1)
            }
        }
    }

    /// Remove `session`'s subscription to `filter`. Returns (it existed, peers must learn the
    /// last local interest is gone).
    pub fn unsubscribe(&mut self, session: &SessionRef, filter: &str) -> (bool, bool) {
        let Some(entry) = self.subs.get_mut(filter) else {
            return (false, false);
        };
        let before = entry.locals.len();
        entry.locals.retain(|l| !Rc::ptr_eq(&l.session, session));
        let existed = entry.locals.len() != before;
        let now_empty = entry.locals.is_empty();
        if entry.is_unused() {
            self.subs.remove(filter);
        }
        (existed, existed && now_empty && self.shards > 1)
    }

    /// Recovery: put a stored subscription of an offline session back (automaton, peers'
    /// interest, shared-group membership), as its SUBSCRIBE did.
    pub fn restore_subscription(
        &mut self,
        session: &SessionRef,
        uid: u64,
        filter: &ByteString,
        sub: crate::session::Subscription,
    ) {
        if let Some(Ok((_, inner))) = super::shared::parse_shared(filter) {
            let inner = ByteString::from(inner);
            let member = self.member_of(session, sub.options.qos, sub.identifier);
            let _ = self.share_op(
                filter.clone(),
                inner,
                member,
                super::shared::MemberOp::Join,
                None,
            );
            return;
        }
        let (_, tell) = self.subscribe(session, uid, filter, sub.options, sub.identifier);
        if tell {
            self.broadcast_interest(filter, true, None);
        }
    }

    /// Remove one subscription of `session` (plain or shared) and tell whoever must know.
    /// Returns whether it existed.
    pub fn drop_subscription(&mut self, session: &SessionRef, filter: &ByteString) -> bool {
        if let Some(Ok((_, inner))) = super::shared::parse_shared(filter) {
            let member = self.member_of(session, QoS::AtMostOnce, None);
            let inner = ByteString::from(inner);
            let _ = self.share_op(
                filter.clone(),
                inner,
                member,
                super::shared::MemberOp::Leave,
                None,
            );
            return true;
        }
        let (existed, tell) = self.unsubscribe(session, filter);
        if tell {
            self.broadcast_interest(filter, false, None);
        }
        existed
    }

    /// `session` as a shared-group member.
    pub fn member_of(
        &self,
        session: &SessionRef,
        qos: QoS,
        identifier: Option<u32>,
    ) -> super::shared::Member {
        let s = session.borrow();
        super::shared::Member {
            shard: self.id,
            uid: s.uid,
            client_id: s.client_id.clone(),
            qos,
            identifier,
            online: s.is_connected(),
        }
    }

    /// Tell every peer that this shard gained or lost interest in `filter`.
    pub fn broadcast_interest(
        &mut self,
        filter: &ByteString,
        add: bool,
        ack: Option<super::AckToken>,
    ) {
        let peers: Vec<usize> = self.peers().collect();
        let shard = self.id;
        for peer in peers {
            self.send_to(
                peer,
                MeshMsg::Interest {
                    filter: filter.clone(),
                    shard,
                    add,
                    ack,
                },
            );
        }
    }

    pub(super) fn apply_interest(&mut self, filter: &str, shard: usize, add: bool) {
        let bit = 1u64 << shard;
        if add {
            self.subs.entry(filter).remote |= bit;
        } else if let Some(e) = self.subs.get_mut(filter) {
            e.remote &= !bit;
            if e.is_unused() {
                self.subs.remove(filter);
            }
        }
    }

    /// A session ends while it still holds shared groups' QoS 1/2 messages (it expired, or a
    /// clean start took its client id over): each goes to another member of its group, as
    /// [MQTT-4.8.2] asks, rather than ending with the session. Each next holder is on the log
    /// before this session's `Done` and delete, so a crash in between duplicates, never loses.
    /// Then the session is forgotten ([`Shard::remove_session`]).
    pub fn end_session(&mut self, session: &SessionRef) {
        let (given, client_id, uid) = {
            let mut s = session.borrow_mut();
            (s.detach(), s.client_id.clone(), s.uid)
        };
        for d in given {
            if let Some(key) = &d.shared {
                let why = super::shared::Again::GivenBack { persistent: false };
                self.share_again(key, d.msg.clone(), &client_id, uid, why);
            }
            session.borrow().log_done(&d);
        }
        self.remove_session(session);
    }

    /// Forget a session entirely: its subscriptions leave the automaton (telling peers where
    /// this shard's last interest goes) and it leaves the session table.
    pub fn remove_session(&mut self, session: &SessionRef) {
        let (client_id, filters): (ByteString, Vec<ByteString>) = {
            let mut s = session.borrow_mut();
            let filters = s.subscriptions.drain().map(|(f, _)| f).collect();
            (s.client_id.clone(), filters)
        };
        for f in filters {
            self.drop_subscription(session, &f);
        }
        {
            let mut s = session.borrow_mut();
            if let Some(j) = s.journal.take() {
                j.session_delete(&s.client_id, s.held_messages());
            }
        }
        if let Some(current) = self.sessions.get(&client_id) {
            if Rc::ptr_eq(current, session) {
                self.sessions.remove(&client_id);
                self.sessions_total
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let uid = session.borrow().uid;
        if self
            .by_uid
            .get(&uid)
            .is_some_and(|s| Rc::ptr_eq(s, session))
        {
            self.by_uid.remove(&uid);
        }
        session.borrow_mut().end();
        self.release_from(session);
        self.report_drops(session);
    }
}
