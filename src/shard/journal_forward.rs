//! QoS 2 across shards, exactly once through a crash: store-then-forward with a per-peer
//! watermark (docs/ARCHITECTURE.md, "QoS 2 across shards").
//!
//! A QoS 2 message published by a persistent session is stored on its publisher's shard with a
//! `Forward` record. Only once that record is committed is it sent to the interested peers,
//! keyed by the record's LSN. The publisher's PUBREC waits for this shard's commit alone. A peer
//! applies a forward only if its LSN is above the highest one it applied from that shard (the
//! `PeerMark`, journaled with what applying it stored), and confirms it after its own commit.
//! When every peer has confirmed, `ForwardDone` releases the message. After a crash, the forwards
//! not done are sent again; a peer that had already applied them drops them by the mark.
//!
//! Why the mark is enough: forwards leave in LSN order, on one FIFO lane per peer, and only once
//! committed. So their LSNs never change and never repeat. If a peer has a forward's `PeerMark`
//! committed, it also has every earlier forward from that shard committed.
//!
//! Owns: the forwards waiting for their commit and for their peers' confirmations, and the marks
//! of forwards applied here. Never: sends anything itself (the shard does), or sends a forward
//! before its record is committed.

use super::Journal;
use crate::session::Message;
use crate::shard::Lane;
use crate::store::{Entry, Lsn, ShareTarget};
use std::collections::VecDeque;
use std::sync::Arc;

struct PendingForward {
    lsn: Lsn,
    msg: Arc<Message>,
    /// Peers that have not confirmed yet (one bit per shard).
    waiting: u64,
    /// The confirmation tag it was sent with; 0 while unsent.
    tag: u64,
    /// A shared group's message for one member on the (single) peer.
    share: Option<Box<ShareTarget>>,
}

/// A forward ready to go: (peers, message, key LSN, tag, shared group member).
pub type DueForward = (u64, Arc<Message>, Lsn, u64, Option<Box<ShareTarget>>);

/// A forward not done, for a snapshot: (key LSN, message, peers still to confirm, member).
pub type OpenForward = (Lsn, Arc<Message>, u64, Option<Box<ShareTarget>>);

#[derive(Default)]
pub(super) struct Forwards {
    /// Stored, waiting for their commit; in LSN order.
    unsent: VecDeque<PendingForward>,
    /// Sent, waiting for confirmations; in LSN (and tag) order.
    sent: VecDeque<PendingForward>,
    /// Per peer shard: the highest forward LSN applied here.
    marks: Vec<Lsn>,
}

fn bits(mask: u64) -> impl Iterator<Item = usize> {
    (0..64).filter(move |b| mask & (1u64 << b) != 0)
}

impl Journal {
    /// Store `msg` here, to forward it to `peers` once committed (with `share`, to that
    /// group member on the one peer). False when the store refused the records; the caller
    /// then forwards it at once, as it does QoS 1.
    pub fn forward_later(
        &self,
        msg: &Arc<Message>,
        peers: u64,
        share: Option<Box<ShareTarget>>,
    ) -> bool {
        let mut st = self.st.borrow_mut();
        self.hold(&mut st, msg);
        let lsn = self.log.next_lsn();
        let id = Self::id_of(&st, msg).unwrap_or(0);
        let kept = id != 0 && {
            let e = Entry::Forward {
                lsn,
                msg: id,
                peers,
                share: share.clone(),
            };
            self.append(&mut st, &e) != 0
        };
        if !kept {
            Self::release(&mut st, msg);
            return false;
        }
        drop(st);
        self.fwd.borrow_mut().unsent.push_back(PendingForward {
            lsn,
            msg: msg.clone(),
            waiting: peers,
            tag: 0,
            share,
        });
        true
    }

    /// The forwards whose records are committed through `committed`, each given a tag: the
    /// caller sends them to every peer in their mask, in this order.
    pub fn forwards_due(&self, committed: Lsn) -> Vec<DueForward> {
        let mut due = Vec::new();
        loop {
            let mut f = self.fwd.borrow_mut();
            if f.unsent.front().is_none_or(|p| p.lsn > committed) {
                break;
            }
            let Some(mut p) = f.unsent.pop_front() else {
                break;
            };
            drop(f);
            let tag = self.next_tag();
            for peer in bits(p.waiting) {
                self.sent_to(peer, Lane::Data, tag);
            }
            p.tag = tag;
            due.push((p.waiting, p.msg.clone(), p.lsn, tag, p.share.clone()));
            self.fwd.borrow_mut().sent.push_back(p);
        }
        due
    }

    /// `peer` confirmed its data lane through `tag`: forwards every peer has confirmed are done.
    pub(super) fn settle_forwards(&self, peer: usize, tag: u64) {
        let finished: Vec<PendingForward> = {
            let mut f = self.fwd.borrow_mut();
            let mut any = false;
            for p in f.sent.iter_mut() {
                if p.tag > tag {
                    break;
                }
                p.waiting &= !(1u64 << peer);
                any |= p.waiting == 0;
            }
            if !any {
                return;
            }
            let (done, open): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut f.sent)
                .into_iter()
                .partition(|p| p.waiting == 0);
            f.sent = open;
            done.into()
        };
        let mut st = self.st.borrow_mut();
        for p in finished {
            self.append(&mut st, &Entry::ForwardDone { lsn: p.lsn });
            Self::release(&mut st, &p.msg);
        }
    }

    /// A forward from `peer` keyed `lsn`: false when it was applied before (re-sent after a
    /// crash). Otherwise the caller applies it, then journals [`Journal::mark_forward`].
    pub fn accept_forward(&self, peer: usize, lsn: Lsn) -> bool {
        let mut f = self.fwd.borrow_mut();
        if f.marks.len() <= peer {
            f.marks.resize(peer + 1, 0);
        }
        if lsn <= f.marks[peer] {
            return false;
        }
        f.marks[peer] = lsn;
        true
    }

    /// Journal the mark of an applied forward after what applying it stored, in the same
    /// commit: a commit torn between them keeps the stored part and not the mark, so the
    /// re-sent forward is applied again (a duplicate at worst) rather than dropped (a loss).
    pub fn mark_forward(&self, peer: usize, lsn: Lsn) {
        self.put(Entry::PeerMark {
            peer: peer as u16,
            lsn,
        });
    }

    /// Recovery: a forward not every peer confirmed; sent again by the next `forwards_due`.
    /// The caller has adopted its message's holder.
    pub fn restore_forward(
        &self,
        lsn: Lsn,
        msg: Arc<Message>,
        peers: u64,
        share: Option<Box<ShareTarget>>,
    ) {
        self.fwd.borrow_mut().unsent.push_back(PendingForward {
            lsn,
            msg,
            waiting: peers,
            tag: 0,
            share,
        });
    }

    /// Recovery: forwards from `peer` through `lsn` were applied here.
    pub fn restore_mark(&self, peer: usize, lsn: Lsn) {
        let mut f = self.fwd.borrow_mut();
        if f.marks.len() <= peer {
            f.marks.resize(peer + 1, 0);
        }
        f.marks[peer] = f.marks[peer].max(lsn);
    }

    /// For a snapshot: every forward not done (key LSN, message, peers still to confirm), in
    /// LSN order, and every peer's mark.
    pub fn forward_state(&self) -> (Vec<OpenForward>, Vec<(u16, Lsn)>) {
        let f = self.fwd.borrow();
        let mut pending: Vec<_> = f
            .sent
            .iter()
            .chain(&f.unsent)
            .map(|p| (p.lsn, p.msg.clone(), p.waiting, p.share.clone()))
            .collect();
        pending.sort_unstable_by_key(|p| p.0);
        let marks = f
            .marks
            .iter()
            .enumerate()
            .filter(|(_, &l)| l > 0)
            .map(|(p, &l)| (p as u16, l))
            .collect();
        (pending, marks)
    }
}
