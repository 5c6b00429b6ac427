//! What crosses between shards. Everything here is `Send`: payloads travel as `Arc<Message>`
//! (the bytes are shared, never copied), sockets as raw file descriptors.
//!
//! Channels carry batches (`Vec<MeshMsg>`): one channel operation per batch, not per message.

use super::shared::{Member, MemberOp};
use crate::codec::{Connect, QoS};
use crate::session::Message;
use bytes::Bytes;
use bytestring::ByteString;
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// A token the origin shard waits on until every peer has applied a change (so a SUBACK is sent
/// only once publishes on every shard see the new subscription).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckToken {
    pub shard: usize,
    pub token: u64,
}

#[derive(Debug)]
pub enum MeshMsg {
    /// A message published on the sending shard that matches a filter some session on the
    /// receiving shard holds. The receiver matches it against its local subscribers only.
    /// The tag, when not 0, asks the receiver to confirm once it committed what it stored for
    /// the message ([`MeshMsg::Committed`]): the publisher's acknowledgement waits for it.
    Publish(Arc<Message>, u64),
    /// A QoS 2 message stored on shard `from` before it was sent (store-then-forward,
    /// `journal_forward.rs`): applied only if `lsn`, its key, is above the mark of what was
    /// applied from `from`; confirmed by `tag` like a `Publish`.
    /// With `share`, it is a shared group's message for that member (picked by the group's
    /// owner, the sender) rather than for the receiver's subscribers.
    StoredPublish {
        msg: Arc<Message>,
        from: usize,
        lsn: crate::store::Lsn,
        tag: u64,
        share: Option<Box<crate::store::ShareTarget>>,
    },
    /// Shard `shard` gained (`add`) or lost its first/last local subscriber of `filter`.
    Interest {
        filter: ByteString,
        shard: usize,
        add: bool,
        ack: Option<AckToken>,
    },
    /// A retained message was set (`Some`) or cleared (`None`) for `topic`.
    Retain {
        topic: ByteString,
        msg: Option<Arc<Message>>,
        ack: Option<AckToken>,
        /// As for `Publish`: non-zero to the topic's home shard, which stores it.
        tag: u64,
    },
    /// Shard `from` committed everything up to `tag` that it got from the receiver on `lane`.
    Committed {
        from: usize,
        lane: super::Lane,
        tag: u64,
    },
    /// The receiver applied a change that carried this token.
    Ack(u64),
    /// The restore barrier, on the FIFO control lanes. Phase 1: shard `from` restored its
    /// store and sent, before this, everything peers must learn of it (group memberships to
    /// their owners, retained messages, interests). A shard with every peer's phase 1 has
    /// applied all of that, and announced the groups it owns as a result: it sends phase 2.
    /// Until every peer's phase 2 arrived, a shard applies nothing from the data lanes and
    /// accepts no client: a re-sent QoS 2 forward, or a resent PUBLISH, would otherwise meet a
    /// shared group without its restored members and be lost.
    Restored { from: usize, phase: u8 },
    /// A subscriber session on the sending shard queued a message of publisher `uid` (a
    /// session homed on the receiver) past its bounds: hold that publisher back.
    Hold(u64),
    /// That subscriber drained, went offline or ended: one hold on publisher `uid` less.
    Release(u64),
    /// A connection whose CONNECT names a client id homed on the receiving shard.
    HandOver(Box<HandOver>),
    /// Owner `owner` created (`add`) or dropped shared group `key` on `filter`: every shard
    /// records it in its automaton so publishes find the owner.
    ShareGroup {
        key: ByteString,
        filter: ByteString,
        owner: usize,
        add: bool,
        ack: Option<AckToken>,
    },
    /// To the group's owner: a member joined, left, or went on/offline.
    ShareMember {
        key: ByteString,
        filter: ByteString,
        member: Box<Member>,
        op: MemberOp,
        reply: Option<AckToken>,
    },
    /// To the group's owner: pick a member for `msg` (never `exclude_uid`, a member that just
    /// gave the message back). Confirmed by `tag` like a `Publish`, once the member stored it.
    SharePublish {
        key: ByteString,
        msg: Arc<Message>,
        exclude: super::shared::Exclude,
        tag: u64,
    },
    /// To a member's shard: deliver `msg` to that member session.
    ShareDeliver {
        client_id: ByteString,
        uid: u64,
        msg: Arc<Message>,
        qos: QoS,
        identifier: Option<u32>,
        key: ByteString,
        /// As for `Publish`: the owner's confirmation to the publisher's shard waits for it.
        tag: u64,
    },
}

impl MeshMsg {
    /// Publishes travel on the data lane; everything that changes state or acknowledges on the
    /// control lane, so a backlog of publishes never delays an interest change, a SUBACK's
    /// acknowledgement, a hand-over or a release.
    pub fn lane(&self) -> super::Lane {
        match self {
            MeshMsg::Publish(..) | MeshMsg::StoredPublish { .. } | MeshMsg::SharePublish { .. } => {
                super::Lane::Data
            }
            MeshMsg::ShareDeliver { .. } => super::Lane::Relay,
            _ => super::Lane::Control,
        }
    }
}

impl MeshMsg {
    /// The confirmation tag this message asks for (0: none).
    pub fn confirm_tag(&self) -> u64 {
        match self {
            MeshMsg::Publish(_, tag)
            | MeshMsg::StoredPublish { tag, .. }
            | MeshMsg::SharePublish { tag, .. }
            | MeshMsg::ShareDeliver { tag, .. }
            | MeshMsg::Retain { tag, .. } => *tag,
            _ => 0,
        }
    }
}

/// A connection in transit to its home shard: the socket, the CONNECT already read and checked,
/// and any bytes read after it.
#[derive(Debug)]
pub struct HandOver {
    /// Owned: if the hand-over is dropped on the way (shutdown), the socket is closed.
    pub fd: OwnedFd,
    pub connect: Box<Connect>,
    pub rest: Bytes,
    /// A client id the accepting shard assigned (empty CONNECT client id).
    pub assigned_id: bool,
    /// A TLS connection's state (rustls' `ServerConnection` is `Send`).
    pub tls: Option<crate::transport::tls::TlsState>,
    /// A WebSocket connection's frame state (and bytes read but not decoded yet).
    pub ws: Option<Box<crate::transport::ws::WsState>>,
    /// A kTLS connection: its keys are in the socket.
    pub ktls: bool,
    /// Its place in the connection counts, given back when it ends on the home shard.
    pub ticket: crate::net::admission::Ticket,
    /// Who it authenticated as on the accepting shard.
    pub identity: Box<crate::auth::security::Authenticated>,
}

/// The home shard of a client id: FNV-1a, stable across runs and shards (every shard must agree
/// without talking).
pub fn home_shard(client_id: &str, shards: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in client_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % shards.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_shard_is_stable_and_in_range() {
        for n in 1..8 {
            for id in ["a", "client-1", "", "sensor/42"] {
                let h = home_shard(id, n);
                assert!(h < n);
                assert_eq!(h, home_shard(id, n));
            }
        }
        let spread: std::collections::HashSet<usize> =
            (0..100).map(|i| home_shard(&format!("c{i}"), 4)).collect();
        assert_eq!(spread.len(), 4, "ids spread over every shard");
    }
}
