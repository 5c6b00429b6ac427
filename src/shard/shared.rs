//! Shared subscriptions (`$share/{group}/{filter}`, and `$queue/{filter}` as EMQX spells a
//! group of its own): each message matching the filter goes to one member of the group.
//!
//! Every group has one owner shard (a hash of its key, like a client id's home). The owner keeps
//! the member list and picks the member; members live on their own home shards. Every shard's
//! automaton knows which groups hang off a filter and who owns them, so the publishing shard
//! sends the message straight to the owner (or picks itself when it is the owner).
//!
//! Never: holds a member's session here (members are named by shard, client id and uid), or
//! picks on a shard other than the owner (two pickers would break round-robin and stickiness).

use super::{home_shard, AckToken, MeshMsg, Shard};
use crate::codec::QoS;
use crate::session::{Delivery, Message};
use crate::store::{ShareHop, ShareTarget};
use bytestring::ByteString;
use smallvec::SmallVec;
use std::sync::Arc;

/// How a group's owner picks the member for each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "snake_case")]
pub enum SharePolicy {
    /// Each member in turn (the default, as in EMQX and Mosquitto).
    #[default]
    RoundRobin,
    /// A random member.
    Random,
    /// The same member until it leaves or goes offline.
    Sticky,
    /// A member chosen by a hash of the publishing session, so one publisher's messages keep
    /// going to one member (and stay in order).
    HashClient,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub shard: usize,
    pub uid: u64,
    pub client_id: ByteString,
    pub qos: QoS,
    pub identifier: Option<u32>,
    pub online: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberOp {
    Join,
    Leave,
    /// The member's session lost (false) or regained (true) its connection.
    Online(bool),
}

/// The member a group's message must not go to: the one that could not take it. `takes_back`:
/// that member, a persistent session, gave the message back as it disconnected, so when no
/// other member is left it gets the message again, to wait in its session, rather than the
/// message being dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exclude {
    pub uid: u64,
    pub takes_back: bool,
}

impl Exclude {
    /// Nobody: any member may take it.
    pub const NONE: Exclude = Exclude {
        uid: 0,
        takes_back: false,
    };
}

/// Why a group's message goes to the group again ([`Shard::share_again`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Again {
    /// Its member gave it back as it disconnected. A `persistent` member takes it back when
    /// nobody else can; a clean one is ending, so then the message is dropped.
    GivenBack { persistent: bool },
    /// It reached a member whose session was gone.
    MemberGone,
}

#[derive(Debug)]
pub(super) struct Group {
    members: Vec<Member>,
    next: usize,
    sticky: Option<u64>,
}

/// `Some((group, filter))` for a shared subscription filter; `Some(Err)` when malformed.
pub fn parse_shared(filter: &str) -> Option<Result<(&str, &str), ()>> {
    if let Some(inner) = filter.strip_prefix("$queue/") {
        return Some(if crate::codec::topic::is_valid_topic_filter(inner) {
            Ok(("$queue", inner))
        } else {
            Err(())
        });
    }
    crate::codec::topic::split_shared(filter)
}

impl Shard {
    /// The shard that owns the group `key` (the shared filter as subscribed).
    pub fn share_owner(&self, key: &str) -> usize {
        home_shard(key, self.shards)
    }

    /// This shard owns group `key` and the session `uid` is its only member: what that member
    /// gives back would find no one to take it.
    pub fn sole_member_here(&self, key: &str, uid: u64) -> bool {
        self.share_owner(key) == self.id
            && self
                .groups
                .get(key)
                .is_some_and(|g| g.members.iter().all(|m| m.uid == uid))
    }

    /// Apply a member change here if this shard owns the group, else send it to the owner.
    /// Returns `Some((own, reply))` when a new group was announced to the peers: the caller
    /// must wait for `own`, then acknowledge `reply` (so a SUBACK follows only once every shard
    /// routes the group).
    pub fn share_op(
        &mut self,
        key: ByteString,
        filter: ByteString,
        member: Member,
        op: MemberOp,
        reply: Option<AckToken>,
    ) -> Option<(u64, AckToken)> {
        let owner = self.share_owner(&key);
        if owner != self.id {
            self.send_to(
                owner,
                MeshMsg::ShareMember {
                    key,
                    filter,
                    member: Box::new(member),
                    op,
                    reply,
                },
            );
            return None;
        }
        let announce = self.apply_member(&key, &filter, member, op);
        match (announce, reply) {
            (Some(add), reply) if self.shards > 1 => {
                let peers = self.shards - 1;
                let own = self.begin_ack(peers);
                self.broadcast_group(&key, &filter, add, Some(own));
                match reply {
                    Some(r) if add => Some((own.token, r)),
                    Some(r) => {
                        self.reply_ack(Some(r));
                        None
                    }
                    None => None,
                }
            }
            (_, reply) => {
                self.reply_ack(reply);
                None
            }
        }
    }

    /// Owner side. Returns `Some(add)` when the group appeared or vanished.
    fn apply_member(
        &mut self,
        key: &ByteString,
        filter: &ByteString,
        member: Member,
        op: MemberOp,
    ) -> Option<bool> {
        match op {
            MemberOp::Join => {
                let created = !self.groups.contains_key(key);
                let g = self.groups.entry(key.clone()).or_insert_with(|| Group {
                    members: Vec::new(),
                    next: 0,
                    sticky: None,
                });
                match g.members.iter_mut().find(|m| m.uid == member.uid) {
                    Some(m) => *m = member,
                    None => g.members.push(member),
                }
                if created {
                    self.group_ref(key, filter, self.id, true);
                }
                created.then_some(true)
            }
            MemberOp::Leave => {
                let g = self.groups.get_mut(key)?;
                g.members.retain(|m| m.uid != member.uid);
                if g.sticky == Some(member.uid) {
                    g.sticky = None;
                }
                if !g.members.is_empty() {
                    return None;
                }
                self.groups.remove(key);
                self.group_ref(key, filter, self.id, false);
                Some(false)
            }
            MemberOp::Online(online) => {
                let g = self.groups.get_mut(key)?;
                if let Some(m) = g.members.iter_mut().find(|m| m.uid == member.uid) {
                    m.online = online;
                }
                if !online && g.sticky == Some(member.uid) {
                    g.sticky = None;
                }
                None
            }
        }
    }

    fn broadcast_group(
        &mut self,
        key: &ByteString,
        filter: &ByteString,
        add: bool,
        ack: Option<AckToken>,
    ) {
        let peers: Vec<usize> = self.peers().collect();
        let owner = self.id;
        for peer in peers {
            self.send_to(
                peer,
                MeshMsg::ShareGroup {
                    key: key.clone(),
                    filter: filter.clone(),
                    owner,
                    add,
                    ack,
                },
            );
        }
    }

    /// Record (or forget) in this shard's automaton that group `key` hangs off `filter`.
    pub(super) fn group_ref(&mut self, key: &ByteString, filter: &str, owner: usize, add: bool) {
        if add {
            let e = self.subs.entry(filter);
            if !e.groups.iter().any(|(k, _)| k == key) {
                e.groups.push((key.clone(), owner));
            }
        } else if let Some(e) = self.subs.get_mut(filter) {
            e.groups.retain(|(k, _)| k != key);
            if e.is_unused() {
                self.subs.remove(filter);
            }
        }
    }

    /// Send `msg` to the group's owner, or pick a member here when this shard owns it.
    pub fn share_publish(
        &mut self,
        key: &ByteString,
        owner: usize,
        msg: Arc<Message>,
        exclude: Exclude,
    ) {
        if owner == self.id {
            self.share_dispatch(key, msg, exclude, Store::Never);
        } else {
            let tag = self.relay_tag(owner, &msg, false);
            self.send_to(
                owner,
                MeshMsg::SharePublish {
                    key: key.clone(),
                    msg,
                    exclude,
                    tag,
                },
            );
        }
    }

    /// A confirmation tag for a QoS 1/2 group message going to `peer` (0 without a store or
    /// for QoS 0): the acknowledgement to its publisher waits until `peer` stored it. A relay
    /// (owner → member's shard, on the relay lane) also holds back this shard's data-lane
    /// confirmations ([`crate::shard::journal`]).
    fn relay_tag(&self, peer: usize, msg: &Message, relay: bool) -> u64 {
        match &self.journal {
            Some(j) if msg.qos != QoS::AtMostOnce => {
                let tag = j.next_tag();
                if relay {
                    j.relayed_to(peer, tag);
                } else {
                    j.sent_to(peer, super::Lane::Data, tag);
                }
                tag
            }
            _ => 0,
        }
    }

    /// A group message nobody can take: counted, and logged (a QoS 1/2 message was
    /// acknowledged to its publisher, so losing it is worth a warning).
    fn shared_drop(&mut self, key: &str, msg: &Message, why: &str) {
        self.stats.shared_dropped += 1;
        if msg.qos == QoS::AtMostOnce {
            log::debug!(
                "shared group {key}: dropped a QoS 0 message on {}: {why}",
                msg.topic()
            );
        } else {
            log::warn!(
                "shared group {key}: dropped a QoS {} message on {}: {why}",
                msg.qos as u8,
                msg.topic()
            );
        }
    }

    /// Owner side: pick one member and deliver (locally or on the member's shard). `store`:
    /// when the hop to a member on another shard is store-then-forward (`journal_forward.rs`):
    /// this shard stores the message with its pick, and sends it once that is committed.
    /// QoS 2 from a persistent session needs it to reach the member exactly once through a
    /// crash; a message given to the group again needs it so the holder it leaves can let go.
    pub(super) fn share_dispatch(
        &mut self,
        key: &ByteString,
        msg: Arc<Message>,
        exclude: Exclude,
        store: Store,
    ) {
        let policy = self.cfg.shared_subscription_policy;
        let Some(g) = self.groups.get_mut(key) else {
            self.shared_drop(key, &msg, "the group has no members left");
            return;
        };
        let picked = match pick(g, policy, &msg, exclude.uid) {
            Some(m) => Some(m.clone()),
            // Nobody else: the giver itself (it is all that is left) takes it back.
            None if exclude.takes_back => g.members.iter().find(|m| m.uid == exclude.uid).cloned(),
            None => None,
        };
        let Some(m) = picked else {
            self.shared_drop(key, &msg, "no other member to take it");
            return;
        };
        let qos = m.qos.min(msg.qos);
        if m.shard == self.id {
            self.deliver_shared(&m.client_id, m.uid, msg, qos, m.identifier, key);
            return;
        }
        let stored = match store {
            Store::Never => false,
            Store::Qos2 => qos == QoS::ExactlyOnce,
            Store::Always => qos != QoS::AtMostOnce,
        };
        if stored {
            let target = ShareTarget {
                key: key.clone(),
                client_id: m.client_id.clone(),
                qos,
                identifier: m.identifier.unwrap_or(0),
                hop: ShareHop::Member,
            };
            let stored = self
                .journal
                .as_ref()
                .is_some_and(|j| j.forward_later(&msg, 1u64 << m.shard, Some(Box::new(target))));
            if stored {
                return; // the commit pump sends it
            }
        }
        let tag = self.relay_tag(m.shard, &msg, true);
        self.send_to(
            m.shard,
            MeshMsg::ShareDeliver {
                client_id: m.client_id.clone(),
                uid: m.uid,
                msg,
                qos,
                identifier: m.identifier,
                key: key.clone(),
                tag,
            },
        );
    }

    /// A stored forward of a group's message: from its owner for one member here (its session
    /// may have been restored since the owner picked it, so any session of that client id
    /// still in the group takes it), or, for [`ShareHop::Repick`] and [`ShareHop::GiveBack`],
    /// to this shard as the owner, to pick a member other than the one that could not take it.
    pub(crate) fn deliver_stored_share(&mut self, msg: Arc<Message>, t: ShareTarget) {
        if t.hop == ShareHop::Member {
            let identifier = (t.identifier != 0).then_some(t.identifier);
            self.deliver_shared(&t.client_id, 0, msg, t.qos, identifier, &t.key);
            return;
        }
        // The stored record names the member by client id (uids do not survive a restart).
        let uid = self
            .groups
            .get(&t.key)
            .and_then(|g| g.members.iter().find(|m| m.client_id == t.client_id))
            .map_or(0, |m| m.uid);
        let exclude = Exclude {
            uid,
            takes_back: t.hop == ShareHop::GiveBack && uid != 0,
        };
        self.share_dispatch(&t.key, msg, exclude, Store::Always);
    }

    /// A group's QoS 1/2 message that member `client_id` (`uid`) cannot take, for the reason
    /// `why`. The owner picks another member; a persistent session that gave it back takes it
    /// again when there is none. With a store, every hop the message makes from here is
    /// store-then-forward, so what appended it here (the next member's `Enqueue`, or a forward
    /// to the owner or the member's shard) precedes, in this log, the caller's `Done` for the
    /// old holder or the commit its confirmation of the relay waits for: no crash in between
    /// loses it.
    pub fn share_again(
        &mut self,
        key: &ByteString,
        msg: Arc<Message>,
        client_id: &str,
        uid: u64,
        why: Again,
    ) {
        let takes_back = matches!(why, Again::GivenBack { persistent: true });
        self.stats.shared_again[usize::from(why == Again::MemberGone)] += 1;
        let owner = self.share_owner(key);
        let exclude = Exclude { uid, takes_back };
        if owner == self.id {
            self.share_dispatch(key, msg, exclude, Store::Always);
            return;
        }
        if let Some(j) = &self.journal {
            let target = ShareTarget {
                key: key.clone(),
                client_id: client_id.into(),
                qos: msg.qos,
                identifier: 0,
                hop: if takes_back {
                    ShareHop::GiveBack
                } else {
                    ShareHop::Repick
                },
            };
            if j.forward_later(&msg, 1u64 << owner, Some(Box::new(target))) {
                return; // the commit pump sends it to the owner
            }
        }
        self.share_publish(key, owner, msg, exclude);
    }

    /// A QoS 2 message forwarded here by its publisher's shard (store-then-forward): the
    /// groups this shard owns get it from here, as the publisher's shard did not send it to
    /// them.
    pub(super) fn dispatch_owned_groups(&mut self, msg: &Arc<Message>) {
        let me = self.id;
        let mut owned: SmallVec<[ByteString; 2]> = SmallVec::new();
        self.subs.for_each_match(msg.topic(), |e| {
            owned.extend(
                e.groups
                    .iter()
                    .filter(|(_, o)| *o == me)
                    .map(|(k, _)| k.clone()),
            );
        });
        for key in owned {
            self.share_dispatch(&key, msg.clone(), Exclude::NONE, Store::Qos2);
        }
    }

    /// Member side: hand a group's message to the member session. If the session is gone, the
    /// owner picks again without it.
    pub(super) fn deliver_shared(
        &mut self,
        client_id: &str,
        uid: u64,
        msg: Arc<Message>,
        qos: QoS,
        identifier: Option<u32>,
        key: &ByteString,
    ) {
        // uid 0: whichever session the client id has (a stored forward outlives uids), if it
        // is still in the group. A clean start that took the client id over since the owner's
        // pick is a new session outside the group: taking the message, it would hold it only
        // in memory while this shard confirms the forward, so a crash would lose it.
        let session = self
            .sessions
            .get(client_id)
            .filter(|s| {
                let s = s.borrow();
                if uid == 0 {
                    s.subscriptions.contains_key(key)
                } else {
                    s.uid == uid
                }
            })
            .cloned();
        match session {
            Some(s) if !self.may(&s.borrow(), msg.topic(), crate::auth::acl::Access::Read) => {
                // The ACL keeps this member from reading it: the group's message stops here,
                // as a plain subscription's would.
                self.stats.acl_denied += 1;
            }
            Some(s) => {
                let origin = msg.origin_uid;
                let admit = s.borrow_mut().deliver(
                    Delivery {
                        msg,
                        qos,
                        retain: false,
                        sub_ids: identifier.into_iter().collect(),
                        shared: Some(Box::new(key.clone())),
                    },
                    origin,
                );
                self.after_admit(&s, admit, origin);
                self.stats.deliveries += 1;
            }
            // Stored here before the relay that brought it is confirmed: that confirmation
            // waits for this shard's commit and nothing else, which keeps the waits acyclic.
            // Gone, so it cannot take the message back: at most one bounce.
            None if msg.qos != QoS::AtMostOnce => {
                self.share_again(key, msg, client_id, uid, Again::MemberGone)
            }
            None => self.shared_drop(key, &msg, "its member is gone"),
        }
    }
}

/// When a group's owner stores its pick of a member on another shard before sending it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// Never: sent at once (QoS 0 and 1, QoS 2 from clean sessions).
    Never,
    /// When delivered at QoS 2 (QoS 2 from a persistent session).
    Qos2,
    /// When delivered at QoS 1 or 2 (a message given to the group again).
    Always,
}

/// Online members first (a message for an offline member would wait in its queue), never the
/// excluded one; `None` when nobody is left.
fn pick<'a>(
    g: &'a mut Group,
    policy: SharePolicy,
    msg: &Message,
    exclude_uid: u64,
) -> Option<&'a Member> {
    let eligible =
        |m: &Member, need_online: bool| m.uid != exclude_uid && (m.online || !need_online);
    let need_online = g.members.iter().any(|m| eligible(m, true));
    let candidates: Vec<usize> = (0..g.members.len())
        .filter(|&i| eligible(&g.members[i], need_online))
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let chosen = match policy {
        SharePolicy::RoundRobin => {
            let i = candidates[g.next % candidates.len()];
            g.next = g.next.wrapping_add(1);
            i
        }
        SharePolicy::Random => candidates[rand::random::<usize>() % candidates.len()],
        SharePolicy::Sticky => {
            let current = g.sticky.and_then(|uid| {
                candidates
                    .iter()
                    .copied()
                    .find(|&i| g.members[i].uid == uid)
            });
            let i = current.unwrap_or(candidates[0]);
            g.sticky = Some(g.members[i].uid);
            i
        }
        SharePolicy::HashClient => {
            let h = msg.origin_uid.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            candidates[(h >> 32) as usize % candidates.len()]
        }
    };
    g.members.get(chosen)
}

#[cfg(test)]
#[path = "shared_tests.rs"]
mod tests;
