//! A shard: everything one core owns. Sessions homed here, this shard's compiled copy of the
//! subscription automaton, its copy of the retained index, and the outboxes towards the other
//! shards.
//!
//! Owns: routing a publish to local sessions and to interested shards; applying subscription
//! and retained changes that peers broadcast.
//! Never: takes a lock, blocks, or is touched from another thread. Cross-shard effects are
//! [`MeshMsg`]s put in an outbox; the runtime's flusher tasks send them in batches.

mod apply;
mod compact;
pub mod ctx;
pub mod event;
pub mod journal;
pub mod mesh;
pub mod prefixes;
pub mod pressure;
pub mod query;
pub mod restore;
mod route;
pub mod runtime;
pub mod shared;
mod stats;
pub mod tally;
pub mod timers;

pub use mesh::{home_shard, AckToken, HandOver, MeshMsg};
pub use route::Target;
pub use stats::{LatencyHistogram, Stats, COMMIT_BUCKETS_US};

use crate::config::Config;
use crate::session::{Message, Session, SessionLimits};
use crate::topic::{Automaton, RetainedIndex};
use bytestring::ByteString;
use event::Event;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::Waker;

pub type SessionRef = Rc<RefCell<Session>>;

/// One local subscription in an automaton entry.
#[derive(Debug, Clone)]
pub struct LocalSub {
    pub session: SessionRef,
    pub uid: u64,
    pub options: crate::codec::SubOptions,
    pub identifier: Option<u32>,
}

/// What the automaton stores per filter on one shard.
#[derive(Debug, Default)]
pub struct FilterEntry {
    pub locals: Vec<LocalSub>,
    /// Bit i set: shard i has at least one local subscriber of this filter.
    pub remote: u64,
    /// Shared subscription groups on this filter: (group key, owner shard).
    pub groups: Vec<(ByteString, usize)>,
}

impl FilterEntry {
    /// Nothing routes through this entry any more: it can leave the automaton.
    pub fn is_unused(&self) -> bool {
        self.locals.is_empty() && self.remote == 0 && self.groups.is_empty()
    }
}

/// Work a mesh message leaves for the runtime (it needs a task or a socket).
pub enum Deferred {
    /// Serve a connection handed over by another shard.
    HandOver(Box<HandOver>),
    /// Wait for the peers to acknowledge `own`, then acknowledge `reply`.
    AckAfter(u64, AckToken),
}

/// Log the 1st, 2nd, 4th, 8th... occurrence of something a flood could repeat: a line for the
/// operator without a line per packet, and no clock read.
pub fn worth_logging(count: u64) -> bool {
    count.is_power_of_two()
}

/// The lanes of the mesh: control messages (interest, acks, hand-overs, retained changes,
/// holds) never wait behind a backlog of publishes. Shared-group deliveries from a group's owner
/// to its member's shard have a lane of their own, so that their confirmations, which only need
/// the member shard's commit, never wait behind a data-lane message whose confirmation waits
/// for such a delivery elsewhere (a cycle: see `journal.rs`, `Confirm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Data = 0,
    Control = 1,
    Relay = 2,
}

impl Lane {
    pub const ALL: [Lane; 3] = [Lane::Data, Lane::Control, Lane::Relay];

    /// Lanes that carry messages, bounded together by [`OUTBOX_MAX`].
    fn bulk(self) -> bool {
        self != Lane::Control
    }
}

struct PendingAck {
    remaining: usize,
    waker: Option<Waker>,
}

pub struct Shard {
    pub id: usize,
    pub shards: usize,
    pub cfg: Rc<Config>,
    pub session_limits: Rc<SessionLimits>,
    /// Sessions homed on this shard, by client id.
    pub sessions: HashMap<ByteString, SessionRef>,
    /// The same sessions by uid: where holds and releases for a publisher land.
    pub(crate) by_uid: HashMap<u64, SessionRef>,
    /// Sessions past their queue bounds, watched for the slow-subscriber timeout.
    pub(crate) congested: Vec<Weak<RefCell<Session>>>,
    pub(crate) subs: Automaton<FilterEntry>,
    pub(crate) retained: RetainedIndex<Arc<Message>>,
    /// Shared subscription groups this shard owns.
    groups: HashMap<ByteString, shared::Group>,
    /// Per lane and peer shard: messages waiting for that peer's flusher.
    /// A deque: a burst (a restored retained set, a backlog) leaves in batches from the front
    /// without moving the rest, and each batch is sized to what it holds.
    outbox: [Vec<std::collections::VecDeque<MeshMsg>>; 3],
    /// Per lane and peer shard: wakes its flusher when its outbox becomes non-empty.
    pub outbox_ready: [Vec<Rc<Event>>; 3],
    /// Some data outbox is past [`OUTBOX_MAX`]: publishers wait for a drain. Updated where
    /// messages are enqueued and taken, so a check costs a load.
    data_congested: bool,
    /// Per `Restored` phase (1, 2): the peers whose marker arrived (see [`MeshMsg::Restored`]).
    peers_restored: [u64; 2],
    /// Notified once every peer is restored: data from peers waits for it (see `Restored`).
    pub restored: Rc<event::Event>,
    /// Notified whenever a flusher sent a batch (publishers waiting on back-pressure).
    pub outbox_drained: Rc<Event>,
    uid_next: u64,
    acks: HashMap<u64, PendingAck>,
    ack_next: u64,
    pub stats: Stats,
    /// Connections being served on this shard (after CONNECT), for a bounded shutdown.
    pub live_connections: usize,
    /// Shutting down: hand-overs are refused and a closed mesh channel is expected.
    pub stopping: bool,
    /// Session expiries and delayed wills of sessions homed here, by session uid.
    timers: timers::Timers<(u64, TimerKind)>,
    /// With their wall-clock deadline (Unix ms), for the store's snapshot.
    delayed_wills: HashMap<u64, (Box<crate::codec::Will>, u64)>,
    /// Sessions on every shard (one counter the runtime shares between them; touched when a
    /// session is created or ends, never per message), for `sessions_max`.
    pub sessions_total: Arc<std::sync::atomic::AtomicUsize>,
    /// Bytes (topic + payload) of this shard's copy of the retained messages.
    pub retained_bytes: usize,
    /// Passwords, ACL and JWT keys: immutable, replaced whole on reload.
    pub security: Arc<crate::auth::security::Security>,
    /// Successful password verifications, so a reconnect storm skips key derivation.
    pub verify_cache: crate::auth::password::VerifyCache,
    /// The durable store's side of this shard; `None` with `durability = "none"`.
    pub journal: Option<Rc<journal::Journal>>,
    /// Forwarding statistics per topic prefix (bounded; see [`prefixes`]).
    pub prefixes: prefixes::Prefixes,
    /// Retained messages (and bytes) whose topic's home is this shard, `$SYS` excluded: the
    /// sum over shards is the broker's count, though every shard holds every message.
    pub(crate) retained_home: (u64, u64),
    /// `$SYS` retained messages in this shard's copy: not the clients', so not counted against
    /// `retained_messages_max`.
    pub(crate) retained_sys: usize,
}

/// What a shard timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKind {
    Will,
    Expiry,
    /// The connected session's keep alive: on firing, the link's last receive time decides
    /// between closing (0x8D) and firing again later. A read never touches the timers.
    KeepAlive,
    /// The JWT the client connected with expires: disconnect it (v5 0xA0).
    TokenExpiry,
}

fn cfg_cache_users(cfg: &Config) -> usize {
    cfg.password_cache_users_max.max(1)
}

/// Messages waiting for one peer before a publisher on this shard waits for the flusher
/// (back-pressure instead of unbounded outboxes).
pub const OUTBOX_MAX: usize = 64 * crate::limits::MESH_BATCH_MAX;

impl Shard {
    pub fn new(id: usize, shards: usize, cfg: Rc<Config>) -> Shard {
        let cfg_for_cache = cfg.clone();
        let session_limits = Rc::new(SessionLimits {
            inflight_max: cfg.inflight_max,
            queued_messages_max: cfg.queued_messages_max,
            queued_bytes_max: cfg.queued_bytes_max,
            queue_full: cfg.queue_full,
            queue_qos0_offline: cfg.queue_qos0_offline,
            out_buffer_bytes_max: cfg.out_buffer_bytes_max,
            topic_alias_outbound: cfg.topic_alias_outbound,
        });
        Shard {
            id,
            shards,
            cfg,
            session_limits,
            sessions: HashMap::new(),
            by_uid: HashMap::new(),
            congested: Vec::new(),
            subs: Automaton::new(),
            retained: RetainedIndex::new(),
            groups: HashMap::new(),
            outbox: Lane::ALL.map(|_| (0..shards).map(|_| Default::default()).collect()),
            outbox_ready: Lane::ALL
                .map(|_| (0..shards).map(|_| Rc::new(Event::default())).collect()),
            data_congested: false,
            peers_restored: [0; 2],
            restored: Rc::default(),
            outbox_drained: Rc::new(Event::default()),
            uid_next: 1,
            acks: HashMap::new(),
            ack_next: 1,
            stats: Stats::default(),
            live_connections: 0,
            stopping: false,
            timers: timers::Timers::default(),
            delayed_wills: HashMap::new(),
            sessions_total: Default::default(),
            retained_bytes: 0,
            security: Arc::new(crate::auth::security::Security::open()),
            verify_cache: crate::auth::password::VerifyCache::new(cfg_cache_users(&cfg_for_cache)),
            journal: None,
            prefixes: Default::default(),
            retained_home: (0, 0),
            retained_sys: 0,
        }
    }

    /// A session uid unique across shards: shard id in the top byte.
    pub fn next_uid(&mut self) -> u64 {
        let uid = ((self.id as u64) << 56) | self.uid_next;
        self.uid_next += 1;
        uid
    }

    /// Queue `msg` for shard `peer` on its lane; wakes that lane's flusher.
    pub fn send_to(&mut self, peer: usize, msg: MeshMsg) {
        debug_assert!(peer != self.id && peer < self.shards);
        let l = msg.lane();
        let lane = l as usize;
        let q = &mut self.outbox[lane][peer];
        q.push_back(msg);
        if q.len() == 1 {
            self.outbox_ready[lane][peer].notify();
        }
        if l.bulk() && q.len() > OUTBOX_MAX {
            self.data_congested = true;
        }
        self.stats.mesh_out += 1;
    }

    /// Take up to `max` queued messages for `peer` on `lane`, oldest first.
    pub fn take_outbox(&mut self, lane: Lane, peer: usize, max: usize) -> Vec<MeshMsg> {
        let q = &mut self.outbox[lane as usize][peer];
        let n = q.len().min(max);
        let batch: Vec<MeshMsg> = q.drain(..n).collect();
        if q.is_empty() && q.capacity() > 4 * max {
            // After a burst: do not keep its memory for the quiet times.
            *q = Default::default();
        }
        if self.data_congested && lane.bulk() {
            self.data_congested = Lane::ALL
                .iter()
                .filter(|l| l.bulk())
                .any(|&l| self.outbox[l as usize].iter().any(|q| q.len() > OUTBOX_MAX));
        }
        batch
    }

    /// True when some data outbox is over [`OUTBOX_MAX`]: publishers should wait for a drain.
    pub fn outbox_congested(&self) -> bool {
        self.data_congested
    }

    /// Publish `uid`'s will after `delay_s` unless the session reconnects first.
    pub fn delay_will(&mut self, uid: u64, will: Box<crate::codec::Will>, delay_s: u32) {
        let at = std::time::Instant::now() + std::time::Duration::from_secs(u64::from(delay_s));
        let deadline = journal::unix_ms() + u64::from(delay_s) * 1000;
        self.delayed_wills.insert(uid, (will, deadline));
        self.timers.arm((uid, TimerKind::Will), at);
    }

    /// End `uid`'s session after `expiry_s` unless it reconnects first.
    pub fn expire_later(&mut self, uid: u64, expiry_s: u32) {
        let at = std::time::Instant::now() + std::time::Duration::from_secs(u64::from(expiry_s));
        self.timers.arm((uid, TimerKind::Expiry), at);
    }

    /// Watch the keep alive of `uid`'s connection (its link records when bytes arrive).
    pub fn watch_keep_alive(&mut self, uid: u64, timeout: std::time::Duration) {
        self.timers.arm(
            (uid, TimerKind::KeepAlive),
            std::time::Instant::now() + timeout,
        );
    }

    pub fn unwatch_keep_alive(&mut self, uid: u64) {
        self.timers.cancel(&(uid, TimerKind::KeepAlive));
        self.timers.cancel(&(uid, TimerKind::TokenExpiry));
    }

    /// Disconnect `uid`'s connection when its token expires.
    pub fn watch_token_expiry(&mut self, uid: u64, at: std::time::Instant) {
        self.timers.arm((uid, TimerKind::TokenExpiry), at);
    }

    /// The ACL lets `session` `access` `topic` (checked per PUBLISH and per delivery; free
    /// without an ACL file or token rules, but for `$` topics, which clients never write).
    pub fn may(&self, session: &Session, topic: &str, access: crate::auth::acl::Access) -> bool {
        let acl = &self.security.acl;
        let id = session.identity.as_deref();
        let claims = id.and_then(|a| a.claim_acl.as_ref());
        if !acl.is_enforcing() && claims.is_none() && !topic.starts_with('$') {
            return true;
        }
        let user = id.and_then(|a| a.username.as_deref());
        acl.check_with_claims(claims, user, &session.client_id, topic, access)
    }

    /// Timer heap entries, live or stale: bounded by the sessions, not by reconnects.
    pub fn timer_entries(&self) -> usize {
        self.timers.entries()
    }

    /// The session reconnected (or was replaced): its delayed will and expiry are off.
    pub fn cancel_timers(&mut self, uid: u64) {
        self.timers.cancel(&(uid, TimerKind::Will));
        self.timers.cancel(&(uid, TimerKind::Expiry));
        if self.delayed_wills.remove(&uid).is_some() {
            self.journal_will_clear(uid);
        }
    }

    /// A stored delayed will of session `uid` is gone (published or cancelled).
    fn journal_will_clear(&self, uid: u64) {
        if let Some(s) = self.by_uid.get(&uid) {
            let s = s.borrow();
            if let Some(j) = &s.journal {
                j.will_clear(&s.client_id);
            }
        }
    }

    /// Publish `uid`'s will at the wall-clock `deadline_ms` (a recovered delayed will).
    pub fn delay_will_until(&mut self, uid: u64, will: Box<crate::codec::Will>, deadline_ms: u64) {
        let at = journal::instant_of_ms(deadline_ms).unwrap_or_else(std::time::Instant::now);
        self.delayed_wills.insert(uid, (will, deadline_ms));
        self.timers.arm((uid, TimerKind::Will), at);
    }

    /// Confirm `peer`'s `tag` on `lane` once what this shard stored for it is committed.
    pub fn confirm_to(&mut self, peer: usize, lane: Lane, tag: u64) {
        let now = match &self.journal {
            Some(j) => j.confirm_after_commit(peer, lane, tag),
            None => true,
        };
        if now {
            let from = self.id;
            self.send_to(peer, MeshMsg::Committed { from, lane, tag });
        }
    }

    /// Run what is due: delayed wills, then expired sessions (called on the control tick).
    pub fn fire_timers(&mut self, now: std::time::Instant) {
        for (uid, kind) in self.timers.expired(now) {
            match kind {
                TimerKind::Will => {
                    if let Some((w, _)) = self.delayed_wills.remove(&uid) {
                        self.journal_will_clear(uid);
                        self.publish_will(w);
                    }
                }
                TimerKind::Expiry => {
                    let session = self.by_uid.get(&uid).cloned();
                    if let Some(s) = session {
                        if !s.borrow().is_connected() {
                            self.stats.sessions_expired += 1;
                            self.end_session(&s);
                        }
                    }
                }
                TimerKind::KeepAlive => self.check_keep_alive(uid, now),
                TimerKind::TokenExpiry => {
                    let link = self.by_uid.get(&uid).and_then(|s| s.borrow().conn.clone());
                    if let Some(link) = link {
                        // 0xA0 Maximum connect time: the credentials' lifetime is over.
                        link.request_close(0xA0);
                    }
                }
            }
        }
    }

    fn check_keep_alive(&mut self, uid: u64, now: std::time::Instant) {
        use crate::session::KeepAlive;
        let Some(link) = self.by_uid.get(&uid).and_then(|s| s.borrow().conn.clone()) else {
            return; // offline: the close that detached it ended the watch
        };
        match link.keep_alive(crate::clock::ms_at(now)) {
            KeepAlive::Off => {}
            KeepAlive::Expired => link.request_close(0x8D),
            KeepAlive::Until(ms) => {
                let at = crate::clock::instant_of(ms, now);
                // `at` may be a little behind `now` from rounding: never re-arm in the past.
                let at = at.max(now + std::time::Duration::from_millis(1));
                self.timers.arm((uid, TimerKind::KeepAlive), at);
            }
        }
    }

    /// Publish a will message as if its client had sent it (origin 0: it holds nobody back).
    pub fn publish_will(&mut self, w: Box<crate::codec::Will>) {
        let w = *w;
        let mut properties = w.properties;
        properties.will_delay_interval_s = None;
        let msg = Arc::new(Message::owned(
            &w.topic, &w.payload, w.qos, w.retain, properties, 0,
        ));
        if msg.retain {
            self.set_retained(&msg, None);
        }
        self.route(msg, false);
    }

    /// Register a session created on this shard.
    pub fn insert_session(&mut self, session: SessionRef) {
        let (id, uid) = {
            let s = session.borrow();
            (s.client_id.clone(), s.uid)
        };
        self.by_uid.insert(uid, session.clone());
        if self.sessions.insert(id, session).is_none() {
            self.sessions_total
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Start waiting for `count` peers to acknowledge; returns the token to put in messages.
    pub fn begin_ack(&mut self, count: usize) -> AckToken {
        let token = self.ack_next;
        self.ack_next += 1;
        self.acks.insert(
            token,
            PendingAck {
                remaining: count,
                waker: None,
            },
        );
        AckToken {
            shard: self.id,
            token,
        }
    }

    pub fn on_ack(&mut self, token: u64) {
        if let Some(p) = self.acks.get_mut(&token) {
            p.remaining = p.remaining.saturating_sub(1);
            if p.remaining == 0 {
                if let Some(w) = p.waker.take() {
                    w.wake();
                }
            }
        }
    }

    /// True (and forgotten) when every peer already acknowledged `token`: no wait needed.
    pub fn take_ack_done(&mut self, token: u64) -> bool {
        match self.acks.get(&token) {
            Some(p) if p.remaining > 0 => false,
            _ => {
                self.acks.remove(&token);
                true
            }
        }
    }

    /// A wait for `token` gave up: late acks for it are ignored.
    pub fn forget_ack(&mut self, token: u64) {
        self.acks.remove(&token);
    }

    /// Poll helper for [`ctx::wait_acks_bounded`]: true (and forgotten) once every peer acked.
    pub fn poll_ack(&mut self, token: u64, waker: &Waker) -> bool {
        match self.acks.get_mut(&token) {
            None => true,
            Some(p) if p.remaining == 0 => {
                self.acks.remove(&token);
                true
            }
            Some(p) => {
                p.waker = Some(waker.clone());
                false
            }
        }
    }

    fn all_peers_at(&self, phase: usize) -> bool {
        self.peers()
            .all(|p| self.peers_restored[phase] & (1u64 << p) != 0)
    }

    /// Whether every peer's restore and what it caused (groups announced by their owners)
    /// were applied here: peers' data and clients may come in.
    pub fn all_peers_restored(&self) -> bool {
        self.all_peers_at(1)
    }

    /// Tell every peer this shard reached `phase` of the restore barrier.
    pub fn send_restored(&mut self, phase: u8) {
        let from = self.id;
        let peers: Vec<usize> = self.peers().collect();
        for peer in peers {
            self.send_to(peer, MeshMsg::Restored { from, phase });
        }
    }

    /// Every shard but this one.
    pub fn peers(&self) -> impl Iterator<Item = usize> {
        let me = self.id;
        (0..self.shards).filter(move |&s| s != me)
    }

    pub fn reply_ack(&mut self, ack: Option<AckToken>) {
        if let Some(a) = ack {
            if a.shard == self.id {
                self.on_ack(a.token);
            } else {
                self.send_to(a.shard, MeshMsg::Ack(a.token));
            }
        }
    }
}
