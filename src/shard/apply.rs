//! Applying what peers send over the mesh: one [`MeshMsg`] at a time, on this shard's thread.
//!
//! Owns: the meaning of each mesh message on arrival. Never: blocks, takes a lock, or awaits
//! (what needs a task is returned as [`Deferred`] for the runtime to spawn).

use super::{Deferred, MeshMsg, Shard};

impl Shard {
    /// Apply one message from a peer. Returns what needs a task for the runtime to do.
    pub fn apply(&mut self, msg: MeshMsg) -> Option<Deferred> {
        self.stats.mesh_in += 1;
        match msg {
            MeshMsg::Publish(m, _) => {
                self.route(m, true);
            }
            MeshMsg::StoredPublish {
                msg,
                from,
                lsn,
                share,
                ..
            } => {
                // A re-forward after a crash of what was applied before is dropped (and still
                // confirmed, so its shard releases it).
                let journal = self.journal.clone();
                if journal.as_ref().is_none_or(|j| j.accept_forward(from, lsn)) {
                    match share {
                        Some(t) => self.deliver_stored_share(msg, *t),
                        None => {
                            self.route(msg.clone(), true);
                            // The publisher's shard sent it here, not to this shard's groups.
                            self.dispatch_owned_groups(&msg);
                        }
                    }
                    if let Some(j) = &journal {
                        j.mark_forward(from, lsn);
                    }
                }
            }
            MeshMsg::Committed { from, lane, tag } => {
                if let Some(j) = self.journal.clone() {
                    j.confirmed(from, lane, tag);
                    // Confirmations that waited for a relay to `from` may leave now.
                    let me = self.id;
                    for (peer, lane, tag) in j.take_due() {
                        self.send_to(
                            peer,
                            MeshMsg::Committed {
                                from: me,
                                lane,
                                tag,
                            },
                        );
                    }
                }
            }
            MeshMsg::Interest {
                filter,
                shard,
                add,
                ack,
            } => {
                self.apply_interest(&filter, shard, add);
                self.reply_ack(ack);
            }
            MeshMsg::Retain {
                topic, msg, ack, ..
            } => {
                // The publishing shard checked the retained bounds; every copy follows it.
                self.retain_local(&topic, msg);
                self.reply_ack(ack);
            }
            MeshMsg::Ack(token) => self.on_ack(token),
            MeshMsg::Restored { from, phase } => {
                let p = usize::from(phase.clamp(1, 2)) - 1;
                self.peers_restored[p] |= 1u64 << from;
                if p == 0 && self.all_peers_at(0) {
                    self.send_restored(2);
                }
                if self.all_peers_restored() {
                    self.restored.notify();
                }
            }
            MeshMsg::Hold(uid) => self.hold_local(uid),
            MeshMsg::Release(uid) => self.release_local(uid),
            MeshMsg::HandOver(h) => return Some(Deferred::HandOver(h)),
            MeshMsg::ShareGroup {
                key,
                filter,
                owner,
                add,
                ack,
            } => {
                self.group_ref(&key, &filter, owner, add);
                self.reply_ack(ack);
            }
            MeshMsg::ShareMember {
                key,
                filter,
                member,
                op,
                reply,
            } => {
                if let Some((own, reply)) = self.share_op(key, filter, *member, op, reply) {
                    return Some(Deferred::AckAfter(own, reply));
                }
            }
            MeshMsg::SharePublish {
                key, msg, exclude, ..
            } => self.share_dispatch(&key, msg, exclude, super::shared::Store::Never),
            MeshMsg::ShareDeliver {
                client_id,
                uid,
                msg,
                qos,
                identifier,
                key,
                ..
            } => self.deliver_shared(&client_id, uid, msg, qos, identifier, &key),
        }
        None
    }
}
