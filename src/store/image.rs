//! The image: the state a shard must keep across a restart, rebuilt by applying [`Entry`]s in
//! LSN order, and written back out as a snapshot so older segments can be released.
//!
//! Compaction: [`Image::snapshot`] emits `SnapshotBegin`, every live message once, the
//! retained set, every session (subscriptions, references with their packet ids and QoS 2
//! state, incoming QoS 2 ids, will) and `SnapshotEnd`, all in one synchronous burst of
//! appends, so no other record falls inside it. Once that is committed, every segment wholly
//! below the `SnapshotBegin` LSN can be released ([`super::Log::release_before`]). On replay,
//! `SnapshotBegin` starts a fresh image and `SnapshotEnd` replaces the old one with it; a
//! snapshot cut off by a crash is dropped (the segments before it were not released yet, so
//! the old image is complete). Records before the first complete snapshot may refer to state
//! from released segments; applying them must be harmless, hence every `apply` tolerates a
//! missing session or message.
//!
//! Owns: the stored form of sessions, retained messages and messages (stored once, counted by
//! reference). Never: does I/O (the caller appends what `snapshot` emits), reads a clock
//! (deadlines are stored, the broker compares them), or panics on entries in any order.

use super::entry::{Entry, MsgId, ShareTarget, StoredMessage};
use super::record::{Kind, Lsn};
use super::StoreError;
use crate::codec::QoS;
use crate::session::Subscription;
use bytestring::ByteString;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// Messages stored once, with how many retained entries and session references hold each.
/// A message whose count reaches zero is gone from the image (no record needed).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MsgStore {
    msgs: HashMap<MsgId, (StoredMessage, u32)>,
}

impl MsgStore {
    pub fn get(&self, id: MsgId) -> Option<&StoredMessage> {
        self.msgs.get(&id).map(|(m, _)| m)
    }

    pub fn refs(&self, id: MsgId) -> u32 {
        self.msgs.get(&id).map_or(0, |(_, n)| *n)
    }

    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// A stored message starts with no reference: the `Enqueue`/`RetainSet` that follow add
    /// them (they are logged right after it, in the same commit).
    fn insert(&mut self, id: MsgId, msg: StoredMessage) {
        self.msgs.entry(id).or_insert((msg, 0));
    }

    /// Take a reference; false if the message is unknown (its record was released).
    fn hold(&mut self, id: MsgId) -> bool {
        match self.msgs.get_mut(&id) {
            Some((_, n)) => {
                *n += 1;
                true
            }
            None => false,
        }
    }

    fn release(&mut self, id: MsgId) {
        if let Some((_, n)) = self.msgs.get_mut(&id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.msgs.remove(&id);
            }
        }
    }

    /// Drop messages nobody holds (stored, then never referenced).
    fn sweep(&mut self) {
        self.msgs.retain(|_, (_, n)| *n > 0);
    }
}

/// A session's reference to a stored message it must deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgRef {
    pub msg: MsgId,
    pub qos: QoS,
    /// 0 while queued; the packet id once sent (in flight).
    pub packet_id: u16,
    /// QoS 2 after PUBREC: only PUBREL is resent.
    pub released: bool,
}

/// A will waiting for its delay to pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWill {
    pub deadline_ms: u64,
    pub will: StoredMessage,
}

/// A persistent session as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionImage {
    pub protocol: u8,
    pub expiry_s: u32,
    /// Unix ms when it went offline; 0 while connected.
    pub disconnected_at_ms: u64,
    pub subscriptions: BTreeMap<ByteString, Subscription>,
    /// Queued and in-flight messages, in delivery order.
    pub refs: VecDeque<MsgRef>,
    pub incoming_qos2: BTreeSet<u16>,
    pub will: Option<StoredWill>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Image {
    pub msgs: MsgStore,
    /// Topic → the message it retains.
    pub retained: BTreeMap<ByteString, MsgId>,
    pub sessions: BTreeMap<ByteString, SessionImage>,
    /// QoS 2 forwards not yet confirmed by every peer: the forward's LSN → (message, peers
    /// still to confirm, one bit per shard, and the member when it is a shared group's).
    /// Re-sent after a restart.
    pub forwards: BTreeMap<Lsn, (MsgId, u64, Option<Box<ShareTarget>>)>,
    /// Per peer shard, the highest forward LSN applied here.
    pub peer_marks: BTreeMap<u16, Lsn>,
    /// A snapshot being replayed, until its `SnapshotEnd`.
    building: Option<Box<Image>>,
}

impl Image {
    /// Apply one entry. Entries referring to an unknown session or message are ignored: they
    /// are leftovers from before a snapshot whose earlier records were released.
    pub fn apply(&mut self, e: &Entry) {
        match e {
            Entry::SnapshotBegin => {
                self.building = Some(Box::default());
                return;
            }
            Entry::SnapshotEnd => {
                if let Some(mut b) = self.building.take() {
                    b.msgs.sweep();
                    *self = *b;
                }
                return;
            }
            _ => {}
        }
        let target = match &mut self.building {
            Some(b) => b.as_mut(),
            None => self,
        };
        target.apply_state(e);
    }

    /// The end of a replay: a snapshot without its end marker is dropped.
    pub fn finish_replay(&mut self) {
        self.building = None;
    }

    fn apply_state(&mut self, e: &Entry) {
        match e {
            Entry::MsgStore { id, msg } => self.msgs.insert(*id, msg.clone()),
            Entry::RetainSet { topic, msg } => {
                if self.msgs.hold(*msg) {
                    if let Some(old) = self.retained.insert(topic.clone(), *msg) {
                        self.msgs.release(old);
                    }
                }
            }
            Entry::RetainClear { topic } => {
                if let Some(old) = self.retained.remove(topic) {
                    self.msgs.release(old);
                }
            }
            Entry::SessionUpsert {
                client_id,
                protocol,
                expiry_s,
                disconnected_at_ms,
            } => {
                let s = self.sessions.entry(client_id.clone()).or_default();
                s.protocol = *protocol;
                s.expiry_s = *expiry_s;
                s.disconnected_at_ms = *disconnected_at_ms;
            }
            Entry::SessionDelete { client_id } => {
                if let Some(s) = self.sessions.remove(client_id) {
                    for r in s.refs {
                        self.msgs.release(r.msg);
                    }
                }
            }
            Entry::SubAdd {
                client_id,
                filter,
                options,
                identifier,
            } => {
                if let Some(s) = self.sessions.get_mut(client_id) {
                    let sub = Subscription {
                        options: *options,
                        identifier: *identifier,
                    };
                    s.subscriptions.insert(filter.clone(), sub);
                }
            }
            Entry::SubRemove { client_id, filter } => {
                if let Some(s) = self.sessions.get_mut(client_id) {
                    s.subscriptions.remove(filter);
                }
            }
            Entry::Enqueue {
                client_id,
                msg,
                qos,
            } => {
                if let Some(s) = self.sessions.get_mut(client_id) {
                    if self.msgs.hold(*msg) {
                        s.refs.push_back(MsgRef {
                            msg: *msg,
                            qos: *qos,
                            packet_id: 0,
                            released: false,
                        });
                    }
                }
            }
            Entry::Sent {
                client_id,
                msg,
                packet_id,
            } => {
                let s = self.sessions.get_mut(client_id);
                let r = s.and_then(|s| {
                    s.refs
                        .iter_mut()
                        .find(|r| r.msg == *msg && r.packet_id == 0)
                });
                if let Some(r) = r {
                    r.packet_id = *packet_id;
                }
            }
            Entry::PubRec {
                client_id,
                packet_id,
            } => {
                let s = self.sessions.get_mut(client_id);
                if let Some(r) =
                    s.and_then(|s| s.refs.iter_mut().find(|r| r.packet_id == *packet_id))
                {
                    r.released = true;
                }
            }
            Entry::Done { client_id, msg } => {
                if let Some(s) = self.sessions.get_mut(client_id) {
                    if let Some(i) = s.refs.iter().position(|r| r.msg == *msg) {
                        s.refs.remove(i);
                        self.msgs.release(*msg);
                    }
                }
            }
            Entry::IncomingQos2 {
                client_id,
                packet_id,
                add,
            } => {
                if let Some(s) = self.sessions.get_mut(client_id) {
                    if *add {
                        s.incoming_qos2.insert(*packet_id);
                    } else {
                        s.incoming_qos2.remove(packet_id);
                    }
                }
            }
            Entry::WillSet {
                client_id,
                deadline_ms,
                will,
            } => {
                if let Some(s) = self.sessions.get_mut(client_id) {
                    s.will = Some(StoredWill {
                        deadline_ms: *deadline_ms,
                        will: will.clone(),
                    });
                }
            }
            Entry::WillClear { client_id } => {
                if let Some(s) = self.sessions.get_mut(client_id) {
                    s.will = None;
                }
            }
            Entry::Forward {
                lsn,
                msg,
                peers,
                share,
            } => {
                if self.msgs.hold(*msg) {
                    let open = (*msg, *peers, share.clone());
                    if let Some((old, ..)) = self.forwards.insert(*lsn, open) {
                        self.msgs.release(old);
                    }
                }
            }
            Entry::ForwardDone { lsn } => {
                if let Some((msg, ..)) = self.forwards.remove(lsn) {
                    self.msgs.release(msg);
                }
            }
            Entry::PeerMark { peer, lsn } => {
                let m = self.peer_marks.entry(*peer).or_default();
                *m = (*m).max(*lsn);
            }
            Entry::SnapshotBegin | Entry::SnapshotEnd => {}
        }
    }

    /// Emit the whole live state as entries (see the module doc), through `append` (usually
    /// `|k, p| log.append(k, p)`). Returns the LSN of `SnapshotBegin`: once the snapshot is
    /// committed, segments wholly below it can be released.
    pub fn snapshot(
        &self,
        mut append: impl FnMut(Kind, &[u8]) -> Result<Lsn, StoreError>,
    ) -> Result<Lsn, StoreError> {
        let mut buf = Vec::new();
        let mut emit = |e: &Entry| {
            buf.clear();
            let k = e.encode(&mut buf);
            append(k, &buf)
        };
        let begin = emit(&Entry::SnapshotBegin)?;
        // Messages first (sorted by id: a deterministic snapshot), then what refers to them.
        let mut ids: Vec<MsgId> = self.msgs.msgs.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(msg) = self.msgs.get(id) {
                emit(&Entry::MsgStore {
                    id,
                    msg: msg.clone(),
                })?;
            }
        }
        for (topic, &msg) in &self.retained {
            emit(&Entry::RetainSet {
                topic: topic.clone(),
                msg,
            })?;
        }
        for (cid, s) in &self.sessions {
            let client_id = || cid.clone();
            emit(&Entry::SessionUpsert {
                client_id: client_id(),
                protocol: s.protocol,
                expiry_s: s.expiry_s,
                disconnected_at_ms: s.disconnected_at_ms,
            })?;
            for (filter, sub) in &s.subscriptions {
                emit(&Entry::SubAdd {
                    client_id: client_id(),
                    filter: filter.clone(),
                    options: sub.options,
                    identifier: sub.identifier,
                })?;
            }
            for r in &s.refs {
                emit(&Entry::Enqueue {
                    client_id: client_id(),
                    msg: r.msg,
                    qos: r.qos,
                })?;
                if r.packet_id != 0 {
                    emit(&Entry::Sent {
                        client_id: client_id(),
                        msg: r.msg,
                        packet_id: r.packet_id,
                    })?;
                }
                if r.released {
                    emit(&Entry::PubRec {
                        client_id: client_id(),
                        packet_id: r.packet_id,
                    })?;
                }
            }
            for &packet_id in &s.incoming_qos2 {
                emit(&Entry::IncomingQos2 {
                    client_id: client_id(),
                    packet_id,
                    add: true,
                })?;
            }
            if let Some(w) = &s.will {
                emit(&Entry::WillSet {
                    client_id: client_id(),
                    deadline_ms: w.deadline_ms,
                    will: w.will.clone(),
                })?;
            }
        }
        for (&lsn, (msg, peers, share)) in &self.forwards {
            emit(&Entry::Forward {
                lsn,
                msg: *msg,
                peers: *peers,
                share: share.clone(),
            })?;
        }
        for (&peer, &lsn) in &self.peer_marks {
            emit(&Entry::PeerMark { peer, lsn })?;
        }
        emit(&Entry::SnapshotEnd)?;
        Ok(begin)
    }
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
