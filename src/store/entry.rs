//! The typed records the broker logs, and their payload encoding. One [`Entry`] is one log
//! record; its [`Kind`] is the variant, its payload the fields.
//!
//! Fields are little-endian integers and length-prefixed bytes (u16 for MQTT strings, u32 for
//! binary). A message (topic, payload, QoS, retain, properties) is encoded as the v5 PUBLISH
//! the codec writes, so every MQTT 5 property round-trips through code the conformance suite
//! already covers, and a new property needs no change here.
//!
//! Owns: the payload layout of every kind. Never: panics on a payload read back from disk
//! (a record that passed its CRC but does not decode is an [`EntryError`], reported by the
//! caller), or gives meaning to the order of entries (that is [`super::image`]'s).

use super::record::{Kind, Lsn};
use crate::codec::{self, Packet, Properties, Protocol, Publish, QoS, SubOptions};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

/// Id of a stored message, unique within a shard's log (the LSN of its `MsgStore` record is
/// a natural choice).
pub type MsgId = u64;

/// A message as stored: what is needed to deliver it again after a restart. The expiry is a
/// wall-clock deadline, so it keeps running while the broker is down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub topic: ByteString,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// Properties as forwarded (v5); per-hop ones (topic alias, subscription ids) excluded.
    pub properties: Properties,
    /// Unix time in milliseconds when the Message Expiry Interval ends; 0 = never.
    pub expires_at_ms: u64,
}

/// One thing that happened to the state a shard must keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A message stored once, however many sessions and retained entries refer to it.
    MsgStore {
        id: MsgId,
        msg: StoredMessage,
    },
    /// `topic` now retains message `msg` (which holds a reference for it).
    RetainSet {
        topic: ByteString,
        msg: MsgId,
    },
    RetainClear {
        topic: ByteString,
    },
    /// A persistent session exists (or changed): protocol level, Session Expiry Interval, and
    /// when it went offline (Unix ms; 0 while connected), so expiry resumes after a restart.
    SessionUpsert {
        client_id: ByteString,
        protocol: u8,
        expiry_s: u32,
        disconnected_at_ms: u64,
    },
    /// The session ended: its subscriptions, references, will and QoS 2 state go with it.
    SessionDelete {
        client_id: ByteString,
    },
    SubAdd {
        client_id: ByteString,
        filter: ByteString,
        options: SubOptions,
        identifier: Option<u32>,
    },
    SubRemove {
        client_id: ByteString,
        filter: ByteString,
    },
    /// The session must deliver message `msg` at `qos` (queued, no packet id yet).
    Enqueue {
        client_id: ByteString,
        msg: MsgId,
        qos: QoS,
    },
    /// The session's first unsent reference to `msg` was sent with `packet_id` (in flight).
    Sent {
        client_id: ByteString,
        msg: MsgId,
        packet_id: u16,
    },
    /// QoS 2: PUBREC received for `packet_id`; only PUBREL is resent from now on.
    PubRec {
        client_id: ByteString,
        packet_id: u16,
    },
    /// The session is done with its (first) reference to `msg`: acknowledged (PUBACK /
    /// PUBCOMP), dropped or expired. The message's reference count drops by one.
    Done {
        client_id: ByteString,
        msg: MsgId,
    },
    /// An incoming QoS 2 packet id answered with PUBREC (`add`) or released by PUBREL.
    IncomingQos2 {
        client_id: ByteString,
        packet_id: u16,
        add: bool,
    },
    /// A will to publish at `deadline_ms` (Unix ms) unless the session reconnects first.
    WillSet {
        client_id: ByteString,
        deadline_ms: u64,
        will: StoredMessage,
    },
    WillClear {
        client_id: ByteString,
    },
    /// What follows, up to [`Entry::SnapshotEnd`], is the whole live state (compaction).
    SnapshotBegin,
    SnapshotEnd,
    /// QoS 2 store-then-forward: message `msg`, published on this shard by a persistent
    /// session, goes to the peer shards in `peers` (one bit each) once this record is
    /// committed. `lsn` is this record's own LSN (kept through snapshots): the key peers
    /// deduplicate re-forwards by ([`Entry::PeerMark`]).
    /// With `share`, a shared group's message for one member on the peer (the group's owner
    /// picked it): the peer hands it to that member instead of its own subscribers.
    Forward {
        lsn: Lsn,
        msg: MsgId,
        peers: u64,
        share: Option<Box<ShareTarget>>,
    },
    /// Every peer of forward `lsn` committed what it did with it: the message is released.
    ForwardDone {
        lsn: Lsn,
    },
    /// Forwards from shard `peer` up to its `lsn` are applied here; one at or below it again
    /// (re-sent after a crash) is a duplicate.
    PeerMark {
        peer: u16,
        lsn: Lsn,
    },
}

/// The member a shared group's stored forward is for ([`Entry::Forward`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareTarget {
    /// The group (the shared filter as subscribed).
    pub key: ByteString,
    pub client_id: ByteString,
    /// The QoS it is delivered at (the member's granted QoS, at most the message's).
    pub qos: QoS,
    /// The member's subscription identifier; 0 for none (identifiers start at 1).
    pub identifier: u32,
    /// Who takes it where it arrives: the member, or the owner picking again.
    pub hop: ShareHop,
}

/// Where a shared group's stored forward goes, and what the receiver does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareHop {
    /// To the member `client_id`'s shard, for its session.
    Member,
    /// To the group's owner: `client_id` is gone, so the owner picks another member, and
    /// drops the message when there is none.
    Repick,
    /// To the group's owner: `client_id`, a persistent session, gave it back as it
    /// disconnected. The owner picks another member; when there is none, it sends it back to
    /// `client_id` as a [`ShareHop::Member`] forward, to wait in its session. That forward
    /// can come back only as a `Repick` (the session is gone), so a message bounces at most
    /// once.
    GiveBack,
}

/// A record that passed its checksum but does not decode as its kind: written by a newer or
/// broken version. Reported with the record's LSN by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryError {
    UnknownKind(u8),
    /// Payload too short, a bad string or an embedded PUBLISH that does not decode.
    Malformed(Kind),
}

impl std::fmt::Display for EntryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntryError::UnknownKind(k) => write!(f, "unknown record kind {k}"),
            EntryError::Malformed(k) => write!(f, "malformed record of kind {}", k.0),
        }
    }
}

impl std::error::Error for EntryError {}

mod kinds {
    pub const MSG_STORE: u8 = 16;
    pub const RETAIN_SET: u8 = 17;
    pub const RETAIN_CLEAR: u8 = 18;
    pub const SESSION_UPSERT: u8 = 19;
    pub const SESSION_DELETE: u8 = 20;
    pub const SUB_ADD: u8 = 21;
    pub const SUB_REMOVE: u8 = 22;
    pub const ENQUEUE: u8 = 23;
    pub const SENT: u8 = 24;
    pub const PUBREC: u8 = 25;
    pub const DONE: u8 = 26;
    pub const INCOMING_QOS2: u8 = 27;
    pub const WILL_SET: u8 = 28;
    pub const WILL_CLEAR: u8 = 29;
    pub const SNAPSHOT_BEGIN: u8 = 30;
    pub const SNAPSHOT_END: u8 = 31;
    pub const FORWARD: u8 = 32;
    pub const FORWARD_DONE: u8 = 33;
    pub const PEER_MARK: u8 = 34;
    pub const SHARE_FORWARD: u8 = 35;
    pub const SHARE_REPICK: u8 = 36;
    pub const SHARE_GIVE_BACK: u8 = 37;
}

const _: () = assert!(kinds::MSG_STORE >= Kind::FIRST_USER);

fn put_str(out: &mut Vec<u8>, s: &str) {
    // MQTT strings are at most 65,535 bytes; the codec never yields a longer one.
    let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn put_message(out: &mut Vec<u8>, m: &StoredMessage) {
    out.extend_from_slice(&m.expires_at_ms.to_le_bytes());
    let p = Publish {
        dup: false,
        qos: m.qos,
        retain: m.retain,
        topic: m.topic.clone(),
        // Any non-zero id: the codec wants one for QoS > 0; it is not the session's.
        packet_id: u16::from(m.qos != QoS::AtMostOnce),
        properties: m.properties.clone(),
        payload: m.payload.clone(),
    };
    let mut buf =
        BytesMut::with_capacity(codec::publish_encoded_len(&p, Protocol::V5).min(1 << 20));
    // A message the broker accepted was decoded from this very encoding; if it still cannot be
    // encoded, store it without properties rather than lose it.
    if codec::encode_publish(&p, Protocol::V5, &mut buf).is_err() {
        buf.clear();
        let bare = Publish {
            properties: Properties::default(),
            ..p
        };
        let _ = codec::encode_publish(&bare, Protocol::V5, &mut buf);
    }
    put_bytes(out, &buf);
}

impl Entry {
    /// The record kind and payload of this entry.
    pub fn encode(&self, out: &mut Vec<u8>) -> Kind {
        use kinds::*;
        let (k, cid): (u8, Option<&ByteString>) = match self {
            Entry::MsgStore { id, msg } => {
                out.extend_from_slice(&id.to_le_bytes());
                put_message(out, msg);
                (MSG_STORE, None)
            }
            Entry::RetainSet { topic, msg } => {
                put_str(out, topic);
                out.extend_from_slice(&msg.to_le_bytes());
                (RETAIN_SET, None)
            }
            Entry::RetainClear { topic } => {
                put_str(out, topic);
                (RETAIN_CLEAR, None)
            }
            Entry::SnapshotBegin => (SNAPSHOT_BEGIN, None),
            Entry::SnapshotEnd => (SNAPSHOT_END, None),
            Entry::Forward {
                lsn,
                msg,
                peers,
                share,
            } => {
                out.extend_from_slice(&lsn.to_le_bytes());
                out.extend_from_slice(&msg.to_le_bytes());
                out.extend_from_slice(&peers.to_le_bytes());
                match share {
                    None => (FORWARD, None),
                    Some(t) => {
                        put_str(out, &t.key);
                        put_str(out, &t.client_id);
                        out.push(t.qos as u8);
                        out.extend_from_slice(&t.identifier.to_le_bytes());
                        let kind = match t.hop {
                            ShareHop::Member => SHARE_FORWARD,
                            ShareHop::Repick => SHARE_REPICK,
                            ShareHop::GiveBack => SHARE_GIVE_BACK,
                        };
                        (kind, None)
                    }
                }
            }
            Entry::ForwardDone { lsn } => {
                out.extend_from_slice(&lsn.to_le_bytes());
                (FORWARD_DONE, None)
            }
            Entry::PeerMark { peer, lsn } => {
                out.extend_from_slice(&peer.to_le_bytes());
                out.extend_from_slice(&lsn.to_le_bytes());
                (PEER_MARK, None)
            }
            Entry::SessionUpsert { client_id, .. } => (SESSION_UPSERT, Some(client_id)),
            Entry::SessionDelete { client_id } => (SESSION_DELETE, Some(client_id)),
            Entry::SubAdd { client_id, .. } => (SUB_ADD, Some(client_id)),
            Entry::SubRemove { client_id, .. } => (SUB_REMOVE, Some(client_id)),
            Entry::Enqueue { client_id, .. } => (ENQUEUE, Some(client_id)),
            Entry::Sent { client_id, .. } => (SENT, Some(client_id)),
            Entry::PubRec { client_id, .. } => (PUBREC, Some(client_id)),
            Entry::Done { client_id, .. } => (DONE, Some(client_id)),
            Entry::IncomingQos2 { client_id, .. } => (INCOMING_QOS2, Some(client_id)),
            Entry::WillSet { client_id, .. } => (WILL_SET, Some(client_id)),
            Entry::WillClear { client_id } => (WILL_CLEAR, Some(client_id)),
        };
        // Session entries: the client id first, then the fields.
        if let Some(cid) = cid {
            put_str(out, cid);
            match self {
                Entry::SessionUpsert {
                    protocol,
                    expiry_s,
                    disconnected_at_ms,
                    ..
                } => {
                    out.push(*protocol);
                    out.extend_from_slice(&expiry_s.to_le_bytes());
                    out.extend_from_slice(&disconnected_at_ms.to_le_bytes());
                }
                Entry::SubAdd {
                    filter,
                    options,
                    identifier,
                    ..
                } => {
                    put_str(out, filter);
                    out.push(pack_options(options));
                    out.extend_from_slice(&identifier.unwrap_or(0).to_le_bytes());
                }
                Entry::SubRemove { filter, .. } => put_str(out, filter),
                Entry::Enqueue { msg, qos, .. } => {
                    out.extend_from_slice(&msg.to_le_bytes());
                    out.push(*qos as u8);
                }
                Entry::Sent { msg, packet_id, .. } => {
                    out.extend_from_slice(&msg.to_le_bytes());
                    out.extend_from_slice(&packet_id.to_le_bytes());
                }
                Entry::PubRec { packet_id, .. } => out.extend_from_slice(&packet_id.to_le_bytes()),
                Entry::Done { msg, .. } => out.extend_from_slice(&msg.to_le_bytes()),
                Entry::IncomingQos2 { packet_id, add, .. } => {
                    out.extend_from_slice(&packet_id.to_le_bytes());
                    out.push(u8::from(*add));
                }
                Entry::WillSet {
                    deadline_ms, will, ..
                } => {
                    out.extend_from_slice(&deadline_ms.to_le_bytes());
                    put_message(out, will);
                }
                _ => {}
            }
        }
        Kind(k)
    }

    /// Decode a record's payload. `payload` is the `Bytes` recovery returned: strings and
    /// payloads are slices of it, not copies.
    pub fn decode(kind: Kind, payload: &Bytes) -> Result<Entry, EntryError> {
        use kinds::*;
        let mut r = Reader {
            buf: payload.clone(),
            kind,
        };
        let e = match kind.0 {
            MSG_STORE => Entry::MsgStore {
                id: r.u64()?,
                msg: r.message()?,
            },
            RETAIN_SET => Entry::RetainSet {
                topic: r.str()?,
                msg: r.u64()?,
            },
            RETAIN_CLEAR => Entry::RetainClear { topic: r.str()? },
            SNAPSHOT_BEGIN => Entry::SnapshotBegin,
            SNAPSHOT_END => Entry::SnapshotEnd,
            FORWARD => Entry::Forward {
                lsn: r.u64()?,
                msg: r.u64()?,
                peers: r.u64()?,
                share: None,
            },
            k @ (SHARE_FORWARD | SHARE_REPICK | SHARE_GIVE_BACK) => Entry::Forward {
                lsn: r.u64()?,
                msg: r.u64()?,
                peers: r.u64()?,
                share: Some(Box::new(ShareTarget {
                    key: r.str()?,
                    client_id: r.str()?,
                    qos: r.qos()?,
                    identifier: r.u32()?,
                    hop: match k {
                        SHARE_REPICK => ShareHop::Repick,
                        SHARE_GIVE_BACK => ShareHop::GiveBack,
                        _ => ShareHop::Member,
                    },
                })),
            },
            FORWARD_DONE => Entry::ForwardDone { lsn: r.u64()? },
            PEER_MARK => Entry::PeerMark {
                peer: r.u16()?,
                lsn: r.u64()?,
            },
            k @ SESSION_UPSERT..=WILL_CLEAR => {
                let client_id = r.str()?;
                match k {
                    SESSION_UPSERT => Entry::SessionUpsert {
                        client_id,
                        protocol: r.u8()?,
                        expiry_s: r.u32()?,
                        disconnected_at_ms: r.u64()?,
                    },
                    SESSION_DELETE => Entry::SessionDelete { client_id },
                    SUB_ADD => Entry::SubAdd {
                        client_id,
                        filter: r.str()?,
                        options: r.options()?,
                        identifier: Some(r.u32()?).filter(|&i| i != 0),
                    },
                    SUB_REMOVE => Entry::SubRemove {
                        client_id,
                        filter: r.str()?,
                    },
                    ENQUEUE => Entry::Enqueue {
                        client_id,
                        msg: r.u64()?,
                        qos: r.qos()?,
                    },
                    SENT => Entry::Sent {
                        client_id,
                        msg: r.u64()?,
                        packet_id: r.u16()?,
                    },
                    PUBREC => Entry::PubRec {
                        client_id,
                        packet_id: r.u16()?,
                    },
                    DONE => Entry::Done {
                        client_id,
                        msg: r.u64()?,
                    },
                    INCOMING_QOS2 => Entry::IncomingQos2 {
                        client_id,
                        packet_id: r.u16()?,
                        add: r.u8()? != 0,
                    },
                    WILL_SET => Entry::WillSet {
                        client_id,
                        deadline_ms: r.u64()?,
                        will: r.message()?,
                    },
                    _ => Entry::WillClear { client_id },
                }
            }
            other => return Err(EntryError::UnknownKind(other)),
        };
        if !r.buf.is_empty() {
            return Err(EntryError::Malformed(kind));
        }
        Ok(e)
    }
}

/// QoS in bits 0-1, No Local bit 2, Retain As Published bit 3, Retain Handling bits 4-5: the
/// v5 SUBSCRIBE options byte.
fn pack_options(o: &SubOptions) -> u8 {
    (o.qos as u8)
        | (u8::from(o.no_local) << 2)
        | (u8::from(o.retain_as_published) << 3)
        | ((o.retain_handling & 0x03) << 4)
}

struct Reader {
    buf: Bytes,
    kind: Kind,
}

impl Reader {
    fn take(&mut self, n: usize) -> Result<Bytes, EntryError> {
        if self.buf.len() < n {
            return Err(EntryError::Malformed(self.kind));
        }
        Ok(self.buf.split_to(n))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EntryError> {
        let b = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(&b);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, EntryError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, EntryError> {
        self.array().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Result<u32, EntryError> {
        self.array().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, EntryError> {
        self.array().map(u64::from_le_bytes)
    }

    fn qos(&mut self) -> Result<QoS, EntryError> {
        QoS::from_u8(self.u8()?).ok_or(EntryError::Malformed(self.kind))
    }

    fn str(&mut self) -> Result<ByteString, EntryError> {
        let n = usize::from(self.u16()?);
        let b = self.take(n)?;
        ByteString::try_from(b).map_err(|_| EntryError::Malformed(self.kind))
    }

    fn options(&mut self) -> Result<SubOptions, EntryError> {
        let b = self.u8()?;
        Ok(SubOptions {
            qos: QoS::from_u8(b & 0x03).ok_or(EntryError::Malformed(self.kind))?,
            no_local: b & 0x04 != 0,
            retain_as_published: b & 0x08 != 0,
            retain_handling: (b >> 4) & 0x03,
        })
    }

    fn message(&mut self) -> Result<StoredMessage, EntryError> {
        let expires_at_ms = self.u64()?;
        let n = self.u32()? as usize;
        let packet = self.take(n)?;
        let bad = EntryError::Malformed(self.kind);
        let Ok(Some(f)) = codec::frame(&packet, usize::MAX) else {
            return Err(bad);
        };
        if f.total_len() != packet.len() {
            return Err(bad);
        }
        let body = packet.slice(f.header_len..);
        match codec::decode_body(f.header, body, Protocol::V5) {
            Ok(Packet::Publish(p)) => Ok(StoredMessage {
                topic: p.topic,
                payload: p.payload,
                qos: p.qos,
                retain: p.retain,
                properties: p.properties,
                expires_at_ms,
            }),
            _ => Err(bad),
        }
    }
}

#[cfg(test)]
#[path = "entry_tests.rs"]
pub(crate) mod tests;
