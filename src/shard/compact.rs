//! Compaction of a shard's log: a snapshot of the live state the store must keep (messages
//! held by persistent sessions and retained entries, the retained topics this shard is home to,
//! persistent sessions with their subscriptions, queued and in-flight messages, incoming QoS 2
//! ids and delayed wills, QoS 2 forwards not yet confirmed and the peers' forward marks), appended in one synchronous burst from the shard's own memory; once
//! it is committed, every segment wholly before it is released.
//!
//! When: sealed segments hold more than twice the last snapshot's bytes (so the rewriting is
//! amortised over at least as much new data), or the oldest segment is past `store_max_age_s`.
//!
//! Never: awaits between the first and the last record of a snapshot (no other record may fall
//! inside it), leaves a snapshot without its end marker, or releases a segment before the
//! snapshot is committed.

use super::journal::{stored, Journal};
use super::{ctx::ShardRef, home_shard, Shard};
use crate::store::{Entry, Lsn, MsgId};
use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

impl Shard {
    /// Append a snapshot of the live state; returns the LSN of its first record and its bytes.
    pub fn snapshot_live(&self, j: &Journal) -> (Lsn, u64) {
        let mut bytes = 0u64;
        let mut buf = Vec::new();
        let mut emit = |e: &Entry| -> Lsn {
            buf.clear();
            let kind = e.encode(&mut buf);
            bytes += buf.len() as u64;
            // A record too large to keep is skipped (it was refused when first written too);
            // the end marker is always written.
            j.log.append(kind, &buf).unwrap_or(0)
        };
        let begin = emit(&Entry::SnapshotBegin);
        let mut retained = Vec::new();
        // Every retained topic, `$` ones too (a `#` match skips them and lost them here);
        // `$SYS` values are never journaled, so they are not part of the snapshot.
        self.retained.for_each(|topic, m| {
            if home_shard(topic, self.shards) == self.id && !crate::sys::is_sys_topic(topic) {
                retained.push((topic.to_string(), m.clone()));
            }
        });
        let sessions: Vec<_> = self
            .sessions
            .values()
            .filter(|s| s.borrow().journal.is_some())
            .cloned()
            .collect();
        // Every message once, before anything refers to it.
        let mut seen: HashSet<MsgId> = HashSet::new();
        let mut store = |m: &std::sync::Arc<crate::session::Message>,
                         emit: &mut dyn FnMut(&Entry) -> Lsn| {
            if let Some(id) = j.id(m) {
                if seen.insert(id) {
                    emit(&Entry::MsgStore { id, msg: stored(m) });
                }
            }
        };
        let (forwards, marks) = j.forward_state();
        for (_, m) in &retained {
            store(m, &mut emit);
        }
        for (_, m, ..) in &forwards {
            store(m, &mut emit);
        }
        for s in &sessions {
            for (m, ..) in s.borrow().journal_refs() {
                store(m, &mut emit);
            }
        }
        for (topic, m) in &retained {
            if let Some(id) = j.id(m) {
                emit(&Entry::RetainSet {
                    topic: topic.as_str().into(),
                    msg: id,
                });
            }
        }
        for s in &sessions {
            let s = s.borrow();
            let cid = || s.client_id.clone();
            emit(&Entry::SessionUpsert {
                client_id: cid(),
                protocol: s.protocol.level(),
                expiry_s: s.expiry_s,
                disconnected_at_ms: if s.is_connected() {
                    0
                } else {
                    s.offline_since_ms
                },
            });
            for (filter, sub) in &s.subscriptions {
                emit(&Entry::SubAdd {
                    client_id: cid(),
                    filter: filter.clone(),
                    options: sub.options,
                    identifier: sub.identifier,
                });
            }
            for (m, qos, packet_id, released) in s.journal_refs() {
                let Some(id) = j.id(m) else { continue };
                emit(&Entry::Enqueue {
                    client_id: cid(),
                    msg: id,
                    qos,
                });
                if packet_id != 0 {
                    emit(&Entry::Sent {
                        client_id: cid(),
                        msg: id,
                        packet_id,
                    });
                }
                if released {
                    emit(&Entry::PubRec {
                        client_id: cid(),
                        packet_id,
                    });
                }
            }
            for packet_id in s.incoming_qos2_ids() {
                emit(&Entry::IncomingQos2 {
                    client_id: cid(),
                    packet_id,
                    add: true,
                });
            }
            if let Some((w, deadline_ms)) = self.delayed_wills.get(&s.uid) {
                emit(&Entry::WillSet {
                    client_id: cid(),
                    deadline_ms: *deadline_ms,
                    will: super::journal::stored_will(w),
                });
            }
        }
        for (lsn, m, peers, share) in &forwards {
            if let Some(id) = j.id(m) {
                emit(&Entry::Forward {
                    lsn: *lsn,
                    msg: id,
                    peers: *peers,
                    share: share.clone(),
                });
            }
        }
        for (peer, lsn) in marks {
            emit(&Entry::PeerMark { peer, lsn });
        }
        emit(&Entry::SnapshotEnd);
        (begin, bytes)
    }
}

/// The shard's compaction task: checks once a second, snapshots when due, and releases what the
/// committed snapshot makes obsolete.
pub async fn compactor(shard: ShardRef, j: Rc<Journal>) {
    let (max_age, segment_bytes) = {
        let s = shard.borrow();
        (
            Duration::from_secs(s.cfg.store_max_age_s),
            s.cfg.store_segment_bytes,
        )
    };
    let mut last_snapshot = segment_bytes / 4;
    loop {
        glommio::timer::sleep(Duration::from_secs(1)).await;
        let segs = j.log.segments();
        if segs.len() < 2 {
            continue;
        }
        let sealed: u64 = segs[..segs.len() - 1].iter().map(|s| s.bytes).sum();
        let old = !max_age.is_zero() && j.log.oldest_segment_age().is_some_and(|a| a > max_age);
        if sealed <= 2 * last_snapshot && !old {
            continue;
        }
        let started = std::time::Instant::now();
        let (begin, bytes) = shard.borrow().snapshot_live(&j);
        last_snapshot = bytes.max(segment_bytes / 4);
        let end = j.log.next_lsn() - 1;
        if j.log.wait_committed(end).await.is_err() {
            continue; // not committed: nothing is released; the next check tries again
        }
        match j.log.release_before(begin).await {
            Ok(n) => log::info!(
                "shard {}: compacted the store: a {bytes}-byte snapshot, {n} segment(s) \
                 released, in {:?}",
                shard.borrow().id,
                started.elapsed()
            ),
            Err(e) => log::error!("shard {}: releasing segments: {e}", shard.borrow().id),
        }
    }
}
