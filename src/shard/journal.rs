//! The shard's journal: what sessions, subscriptions and retained messages do, turned into
//! store entries on this shard's log, and what an acknowledgement must wait for before it may
//! leave ([`Need`]): a local log position, and the confirmation of every peer shard a message
//! went to that the peer committed what it did with it.
//!
//! ```text
//!  route ─► Session::deliver ─► Journal::enqueue ─► Log::append (memory)      commit task
//!     └──► peer shard (Publish, tag) ─► peer's journal ─► peer commit ─► Committed{tag}
//!     └──► QoS 2 of a persistent session: Forward record ─► commit ─► peer (StoredPublish)
//!  connection: PUBACK written ─► link gate = Need{lsn, mark} ─► leaves once Progress covers it
//! ```
//!
//! Messages are stored once per shard ([`crate::store::Entry::MsgStore`]) however many
//! sessions and retained entries hold them; the journal counts the holders by the message's
//! address (stable while someone holds the `Arc`), and a message nobody holds is forgotten.
//!
//! Cross-shard marks: every publish that must be confirmed gets a tag from one counter; per peer
//! and lane the journal remembers the last tag sent and the last one confirmed. A peer confirms
//! "everything up to tag T on this lane is committed" (lanes are FIFO), so a mark is covered once
//! every peer either confirmed a tag at least that high or has nothing outstanding.
//!
//! Owns: the message ids and holder counts, the tags, the peers' confirmations waiting for a
//! commit. Never: does I/O (appends are memory; the commit task writes), waits, or holds a borrow
//! across a call out (sessions call in while the shard is borrowed).

use crate::codec::{QoS, Will};
use crate::session::{Message, Subscription};
use crate::shard::Lane;
use crate::store::{Entry, Log, Lsn, MsgId, StoredMessage};
use bytestring::ByteString;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// What an acknowledgement waits for: this shard's log committed through `lsn`, and peers
/// confirmed every tag up to `mark`. `Need::default()` waits for nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Need {
    pub lsn: Lsn,
    pub mark: u64,
}

impl Need {
    pub fn max(self, o: Need) -> Need {
        Need {
            lsn: self.lsn.max(o.lsn),
            mark: self.mark.max(o.mark),
        }
    }
}

/// How far durability has come on this shard, seen by connection tasks (which hold acks back
/// until it covers their [`Need`]) and advanced by the commit pump and peers' confirmations.
#[derive(Debug, Default)]
pub struct Progress {
    committed: Cell<Lsn>,
    /// Every tag up to this is confirmed by every peer it went to (`u64::MAX`: none pending).
    cross: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
    /// The last commit failed (disk full, I/O error): new work that needs storage is refused.
    pub failing: Cell<bool>,
}

impl Progress {
    pub fn covers(&self, n: Need) -> bool {
        n.lsn <= self.committed.get() && n.mark <= self.cross.get()
    }

    /// Wake `w` at the next advance.
    pub fn park(&self, w: &Waker) {
        let mut ws = self.wakers.borrow_mut();
        if !ws.iter().any(|x| x.will_wake(w)) {
            ws.push(w.clone());
        }
    }

    pub(crate) fn wake_all(&self) {
        let ws = std::mem::take(&mut *self.wakers.borrow_mut());
        for w in ws {
            w.wake();
        }
    }

    pub fn committed(&self) -> Lsn {
        self.committed.get()
    }
}

struct State {
    /// Message address → (its id in this log, holders).
    ids: HashMap<usize, (MsgId, u32)>,
    buf: Vec<u8>,
    tag: u64,
    /// Per lane, per peer: last tag sent, last tag confirmed.
    sent: [Vec<u64>; 3],
    conf: [Vec<u64>; 3],
    /// Peers' tags to confirm once this log commits through the LSN and the relays sent before
    /// are confirmed (see [`Confirm`]).
    confirms: VecDeque<Confirm>,
    /// Records that could not be appended (too large): reported, counted.
    refused: u64,
    /// Topic + payload bytes of the messages in `ids` (the store's `$SYS` figure).
    msg_bytes: u64,
    /// The first record appended since the last commit, and when: a commit covering it records
    /// how long it waited (the commit latency histogram). One clock read per commit, not per
    /// record.
    pending_since: Option<(Lsn, Instant)>,
}

/// A peer's tag this shard confirms once its log committed through `lsn`, and once every
/// shared-group relay sent before the confirmation was due is confirmed (`relays`: peer, tag).
/// A relay carries a message this shard acknowledged to no one but will have confirmed to its
/// sender: a group's owner stores nothing when the member lives on another shard, so its
/// confirmation must wait for the member's shard.
struct Confirm {
    lsn: Lsn,
    relays: smallvec::SmallVec<[(usize, u64); 2]>,
    peer: usize,
    lane: Lane,
    tag: u64,
}

pub struct Journal {
    pub log: Rc<Log>,
    pub progress: Rc<Progress>,
    st: RefCell<State>,
    /// QoS 2 store-then-forward ([`forward`]).
    fwd: RefCell<forward::Forwards>,
}

#[path = "journal_forward.rs"]
mod forward;
pub use forward::DueForward;

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Journal")
    }
}

/// Wall-clock milliseconds since the Unix epoch (what stored deadlines are in).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The wall-clock deadline of an `Instant` (0 for none).
pub fn deadline_ms(at: Option<Instant>) -> u64 {
    match at {
        None => 0,
        Some(t) => unix_ms() + t.saturating_duration_since(Instant::now()).as_millis() as u64,
    }
}

/// The `Instant` of a stored wall-clock deadline (`None` for 0).
pub fn instant_of_ms(ms: u64) -> Option<Instant> {
    (ms != 0).then(|| {
        let now = unix_ms();
        Instant::now() + std::time::Duration::from_millis(ms.saturating_sub(now))
    })
}

/// A message as stored: topic and payload share the message's bytes.
pub fn stored(msg: &Message) -> StoredMessage {
    StoredMessage {
        topic: msg.topic_shared(),
        payload: msg.payload_bytes(),
        qos: msg.qos,
        retain: msg.retain,
        properties: msg.properties.as_deref().cloned().unwrap_or_default(),
        expires_at_ms: deadline_ms(msg.expires_at),
    }
}

/// A delayed will as stored (published at its stored deadline, so without its delay).
pub fn stored_will(w: &Will) -> StoredMessage {
    let mut properties = w.properties.clone();
    properties.will_delay_interval_s = None;
    StoredMessage {
        topic: w.topic.clone(),
        payload: w.payload.clone(),
        qos: w.qos,
        retain: w.retain,
        properties,
        expires_at_ms: 0,
    }
}

fn key(msg: &Arc<Message>) -> usize {
    Arc::as_ptr(msg) as usize
}

impl Journal {
    pub fn new(log: Rc<Log>, shards: usize) -> Journal {
        let progress = Rc::new(Progress::default());
        progress.committed.set(log.committed());
        progress.cross.set(u64::MAX);
        Journal {
            log,
            progress,
            st: RefCell::new(State {
                ids: HashMap::new(),
                buf: Vec::with_capacity(256),
                tag: 0,
                sent: Lane::ALL.map(|_| vec![0; shards]),
                conf: Lane::ALL.map(|_| vec![0; shards]),
                confirms: VecDeque::new(),
                refused: 0,
                msg_bytes: 0,
                pending_since: None,
            }),
            fwd: RefCell::default(),
        }
    }

    fn append(&self, st: &mut State, e: &Entry) -> Lsn {
        st.buf.clear();
        let kind = e.encode(&mut st.buf);
        match self.log.append(kind, &st.buf) {
            Ok(lsn) => {
                if st.pending_since.is_none() && lsn > self.log.committed() {
                    st.pending_since = Some((lsn, Instant::now()));
                }
                lsn
            }
            Err(err) => {
                st.refused += 1;
                if crate::shard::worth_logging(st.refused) {
                    log::error!("store: record not kept: {err} ({} so far)", st.refused);
                }
                0
            }
        }
    }

    fn put(&self, e: Entry) {
        let mut st = self.st.borrow_mut();
        self.append(&mut st, &e);
    }

    /// The message's id, storing it first if this log does not hold it; one more holder.
    fn hold(&self, st: &mut State, msg: &Arc<Message>) -> MsgId {
        if let Some((id, n)) = st.ids.get_mut(&key(msg)) {
            *n += 1;
            return *id;
        }
        // The id is the LSN of its own record: unique in this log, and known before appending.
        let id = self.log.next_lsn();
        let got = self.append(
            st,
            &Entry::MsgStore {
                id,
                msg: stored(msg),
            },
        );
        st.ids.insert(key(msg), (if got == 0 { 0 } else { id }, 1));
        st.msg_bytes += msg.size_bytes() as u64;
        id
    }

    fn id_of(st: &State, msg: &Arc<Message>) -> Option<MsgId> {
        st.ids.get(&key(msg)).map(|(id, _)| *id)
    }

    fn release(st: &mut State, msg: &Arc<Message>) {
        if let Some((_, n)) = st.ids.get_mut(&key(msg)) {
            *n -= 1;
            if *n == 0 {
                st.ids.remove(&key(msg));
                st.msg_bytes = st.msg_bytes.saturating_sub(msg.size_bytes() as u64);
            }
        }
    }

    /// Recovery: `msg` (rebuilt from record `id`) has `holders` more holders.
    pub fn adopt(&self, id: MsgId, msg: &Arc<Message>, holders: u32) {
        let mut st = self.st.borrow_mut();
        let fresh = !st.ids.contains_key(&key(msg));
        st.ids.entry(key(msg)).or_insert((id, 0)).1 += holders;
        if fresh {
            st.msg_bytes += msg.size_bytes() as u64;
        }
    }

    /// Distinct messages this log holds, and their topic + payload bytes.
    pub fn stored_messages(&self) -> (u64, u64) {
        let st = self.st.borrow();
        (st.ids.len() as u64, st.msg_bytes)
    }

    /// The commit through `lsn` completed: how long (µs) the oldest record it covered waited,
    /// if it covered one this journal appended. Records appended while that commit was being
    /// written are timed from now on (a slight underestimate for them).
    pub fn commit_waited(&self, lsn: Lsn) -> Option<u64> {
        let mut st = self.st.borrow_mut();
        let (first, at) = st.pending_since?;
        if first > lsn {
            return None;
        }
        let now = Instant::now();
        st.pending_since = (self.log.next_lsn() - 1 > lsn).then_some((lsn + 1, now));
        Some(now.saturating_duration_since(at).as_micros() as u64)
    }

    pub fn enqueue(&self, client_id: &ByteString, msg: &Arc<Message>, qos: QoS) {
        let mut st = self.st.borrow_mut();
        let id = self.hold(&mut st, msg);
        let e = Entry::Enqueue {
            client_id: client_id.clone(),
            msg: id,
            qos,
        };
        self.append(&mut st, &e);
    }

    pub fn sent(&self, client_id: &ByteString, msg: &Arc<Message>, packet_id: u16) {
        let mut st = self.st.borrow_mut();
        if let Some(id) = Self::id_of(&st, msg) {
            let e = Entry::Sent {
                client_id: client_id.clone(),
                msg: id,
                packet_id,
            };
            self.append(&mut st, &e);
        }
    }

    pub fn pubrec(&self, client_id: &ByteString, packet_id: u16) {
        self.put(Entry::PubRec {
            client_id: client_id.clone(),
            packet_id,
        });
    }

    pub fn done(&self, client_id: &ByteString, msg: &Arc<Message>) {
        let mut st = self.st.borrow_mut();
        if let Some(id) = Self::id_of(&st, msg) {
            let e = Entry::Done {
                client_id: client_id.clone(),
                msg: id,
            };
            self.append(&mut st, &e);
            Self::release(&mut st, msg);
        }
    }

    pub fn session_upsert(&self, client_id: &ByteString, protocol: u8, expiry_s: u32, off_ms: u64) {
        self.put(Entry::SessionUpsert {
            client_id: client_id.clone(),
            protocol,
            expiry_s,
            disconnected_at_ms: off_ms,
        });
    }

    /// The session ended; `held` are the messages it still held (each released once).
    pub fn session_delete<'a>(
        &self,
        client_id: &ByteString,
        held: impl Iterator<Item = &'a Arc<Message>>,
    ) {
        let mut st = self.st.borrow_mut();
        let e = Entry::SessionDelete {
            client_id: client_id.clone(),
        };
        self.append(&mut st, &e);
        for m in held {
            Self::release(&mut st, m);
        }
    }

    pub fn sub_add(&self, client_id: &ByteString, filter: &ByteString, sub: &Subscription) {
        self.put(Entry::SubAdd {
            client_id: client_id.clone(),
            filter: filter.clone(),
            options: sub.options,
            identifier: sub.identifier,
        });
    }

    pub fn sub_remove(&self, client_id: &ByteString, filter: &ByteString) {
        self.put(Entry::SubRemove {
            client_id: client_id.clone(),
            filter: filter.clone(),
        });
    }

    pub fn incoming_qos2(&self, client_id: &ByteString, packet_id: u16, add: bool) {
        self.put(Entry::IncomingQos2 {
            client_id: client_id.clone(),
            packet_id,
            add,
        });
    }

    pub fn will_set(&self, client_id: &ByteString, deadline_ms: u64, w: &Will) {
        self.put(Entry::WillSet {
            client_id: client_id.clone(),
            deadline_ms,
            will: stored_will(w),
        });
    }

    pub fn will_clear(&self, client_id: &ByteString) {
        self.put(Entry::WillClear {
            client_id: client_id.clone(),
        });
    }

    /// `topic` now retains `msg` (`None`: cleared); `old` is what it retained before.
    pub fn retain(
        &self,
        topic: &ByteString,
        msg: Option<&Arc<Message>>,
        old: Option<&Arc<Message>>,
    ) {
        let mut st = self.st.borrow_mut();
        let e = match msg {
            Some(m) => {
                let id = self.hold(&mut st, m);
                Entry::RetainSet {
                    topic: topic.clone(),
                    msg: id,
                }
            }
            None => Entry::RetainClear {
                topic: topic.clone(),
            },
        };
        self.append(&mut st, &e);
        if let Some(o) = old {
            Self::release(&mut st, o);
        }
    }

    /// What an acknowledgement given now must wait for: everything appended so far, and every
    /// tag handed out so far.
    pub fn need(&self) -> Need {
        Need {
            lsn: self.log.next_lsn() - 1,
            mark: self.st.borrow().tag,
        }
    }

    /// Everything appended on this shard so far, without the tags peers must confirm: what
    /// a delivery written here waits for.
    pub fn need_local(&self) -> Need {
        Need {
            lsn: self.log.next_lsn() - 1,
            mark: 0,
        }
    }

    /// A tag for a message that peers must confirm.
    pub fn next_tag(&self) -> u64 {
        let mut st = self.st.borrow_mut();
        st.tag += 1;
        st.tag
    }

    /// `tag` goes to `peer` on `lane`.
    pub fn sent_to(&self, peer: usize, lane: Lane, tag: u64) {
        let mut st = self.st.borrow_mut();
        let l = lane as usize;
        st.sent[l][peer] = tag;
        let conf = st.conf[l][peer];
        if conf < self.progress.cross.get() {
            self.progress.cross.set(conf);
        }
    }

    /// `peer` committed everything up to `tag` that it got on `lane`.
    pub fn confirmed(&self, peer: usize, lane: Lane, tag: u64) {
        let mut st = self.st.borrow_mut();
        let l = lane as usize;
        if let Some(c) = st.conf[l].get_mut(peer) {
            *c = (*c).max(tag);
        }
        let mut cross = u64::MAX;
        for l in 0..Lane::ALL.len() {
            for (sent, conf) in st.sent[l].iter().zip(&st.conf[l]) {
                if conf < sent {
                    cross = cross.min(*conf);
                }
            }
        }
        drop(st);
        self.progress.cross.set(cross);
        self.progress.wake_all();
        if lane == Lane::Data {
            self.settle_forwards(peer, tag);
        }
    }

    /// `tag` goes to `peer` on the relay lane (a shared group's message for a member there):
    /// data-lane confirmations this shard gives from now on wait for it ([`Confirm`]).
    pub fn relayed_to(&self, peer: usize, tag: u64) {
        self.sent_to(peer, Lane::Relay, tag);
    }

    /// Confirm `peer`'s `tag` once this log has committed what is appended now and the relays
    /// sent so far are confirmed; true when that is already so (send the confirmation now).
    pub fn confirm_after_commit(&self, peer: usize, lane: Lane, tag: u64) -> bool {
        let lsn = self.log.next_lsn() - 1;
        let mut st = self.st.borrow_mut();
        // Only what arrives on the data lane can have caused a relay (a group's owner got it).
        // Relay-lane confirmations need the commit alone: that keeps the waits acyclic.
        // The relay lane's last tag sent to each peer is the highest relay it got (tags grow).
        let relays: smallvec::SmallVec<[(usize, u64); 2]> = if lane == Lane::Data {
            let relay = Lane::Relay as usize;
            st.sent[relay]
                .iter()
                .zip(&st.conf[relay])
                .enumerate()
                .filter(|(_, (r, c))| r > c)
                .map(|(p, (r, _))| (p, *r))
                .collect()
        } else {
            Default::default()
        };
        // Behind an earlier confirmation to the same peer and lane: they leave in order.
        let queued = st.confirms.iter().any(|c| c.peer == peer && c.lane == lane);
        if lsn <= self.progress.committed.get() && relays.is_empty() && !queued {
            return true;
        }
        st.confirms.push_back(Confirm {
            lsn,
            relays,
            peer,
            lane,
            tag,
        });
        false
    }

    /// The log committed through `lsn`: returns the peers' confirmations now due, and wakes
    /// the connections waiting on it.
    pub fn committed(&self, lsn: Lsn) -> Vec<(usize, Lane, u64)> {
        self.progress.committed.set(lsn);
        let due = self.take_due();
        self.progress.wake_all();
        due
    }

    /// The confirmations whose commit and relays are done. Per peer and lane they leave in
    /// order; one waiting on a relay never holds back another peer's (that peer's own
    /// confirmation may be what the relay waits for).
    pub fn take_due(&self) -> Vec<(usize, Lane, u64)> {
        let committed = self.progress.committed.get();
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        if st.confirms.is_empty() {
            return Vec::new();
        }
        let mut blocked: smallvec::SmallVec<[(usize, Lane); 4]> = smallvec::SmallVec::new();
        let mut due = Vec::new();
        let conf = &st.conf[Lane::Relay as usize];
        st.confirms.retain(|c| {
            if blocked.contains(&(c.peer, c.lane)) {
                return true;
            }
            let ready =
                c.lsn <= committed && c.relays.iter().all(|&(p, t)| conf.get(p) >= Some(&t));
            if ready {
                due.push((c.peer, c.lane, c.tag));
            } else {
                blocked.push((c.peer, c.lane));
            }
            !ready
        });
        due
    }

    /// The id this log knows `msg` by.
    pub fn id(&self, msg: &Arc<Message>) -> Option<MsgId> {
        Self::id_of(&self.st.borrow(), msg)
    }
}
