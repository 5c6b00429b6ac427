//! Start-up of a shard's durable store: recover its log (on the shard's own thread, so shards
//! recover in parallel), quarantine a damaged sealed segment instead of stopping, open the
//! writer, and put the recovered image back into the shard as live sessions, subscriptions,
//! queued and in-flight messages, delayed wills and retained messages. Also the commit pump,
//! which tells connections and peers what each commit covered.
//!
//! Never: serves a client before the image is back, re-journals what it restores (the log
//! already holds it), or panics on what the files contain.

use super::journal::{instant_of_ms, unix_ms, Journal};
use super::{ctx::ShardRef, MeshMsg, Shard};
use crate::codec::{Properties, Protocol, QoS, Will};
use crate::session::{Delivery, Message, Session};
use crate::store::{
    recover_each_opts, Durability, Entry, Image, Log, LogOptions, MsgId, StoreError, StoredMessage,
};
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

/// Damaged sealed segments set aside before giving up.
const QUARANTINE_MAX: usize = 16;

/// The data directory belongs to a broker with `shards` shards: refuse a different count
/// (sessions live on their client id's home shard, which depends on it). Writes the marker for a
/// new directory. Runs once, before the shards start.
pub fn check_layout(data_dir: &Path, shards: usize) -> Result<(), String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("creating data_dir {}: {e}", data_dir.display()))?;
    let marker = data_dir.join("shards");
    match std::fs::read_to_string(&marker) {
        Ok(s) => match s.trim().parse::<usize>() {
            Ok(n) if n == shards => Ok(()),
            Ok(n) => Err(format!(
                "data_dir {} was written by {n} shards, this broker runs {shards}: start with \
                 --shards {n}, or point data_dir elsewhere (sessions are kept on the shard their \
                 client id hashes to)",
                data_dir.display()
            )),
            Err(_) => Err(format!(
                "{}: not a shard count; remove it only if the directory holds no data",
                marker.display()
            )),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&marker, format!("{shards}\n"))
                .map_err(|e| format!("writing {}: {e}", marker.display()))
        }
        Err(e) => Err(format!("reading {}: {e}", marker.display())),
    }
}

/// Recover and open shard `s`'s log; `None` with `durability = "none"`.
pub async fn open_store(s: &mut Shard) -> Result<Option<Image>, String> {
    let cfg = s.cfg.clone();
    if cfg.durability == Durability::None {
        return Ok(None);
    }
    let started = Instant::now();
    let mut quarantined = 0;
    let (image, rec, undecodable) = loop {
        let mut image = Image::default();
        let mut undecodable = 0u64;
        let r = recover_each_opts(
            &cfg.data_dir,
            s.id,
            quarantined > 0,
            |r| match Entry::decode(r.kind, &r.payload) {
                Ok(e) => image.apply(&e),
                Err(e) => {
                    undecodable += 1;
                    log::warn!("shard {}: record {} skipped: {e}", s.id, r.lsn);
                }
            },
        );
        match r {
            Ok(rec) => break (image, rec, undecodable),
            Err(StoreError::Corrupt { path, offset, why }) if quarantined < QUARANTINE_MAX => {
                let to = path.with_extension("log.corrupt");
                log::error!(
                    "shard {}: {} is damaged at offset {offset} ({why}); moved to {} and \
                     recovering without it: records in it are missing from the state",
                    s.id,
                    path.display(),
                    to.display()
                );
                std::fs::rename(&path, &to)
                    .map_err(|e| format!("quarantining {}: {e}", path.display()))?;
                quarantined += 1;
            }
            Err(e) => return Err(format!("recovering the store: {e}")),
        }
    };
    let mut image = image;
    image.finish_replay();
    if let Some(sk) = &rec.skipped {
        log::warn!(
            "shard {}: cut a torn tail of {} at offset {} ({} bytes): {}",
            s.id,
            sk.path.display(),
            sk.offset,
            sk.bytes,
            sk.why
        );
    }
    let opts = LogOptions::from_config(&cfg, s.id);
    let log = Log::open(opts, &rec)
        .await
        .map_err(|e| format!("opening the store: {e}"))?;
    // A filesystem without O_DIRECT is reported by the segment that falls back.
    log::info!(
        "shard {}: store recovered in {:?}: {} records ({undecodable} undecodable), {} \
         sessions, {} retained, {} messages",
        s.id,
        started.elapsed(),
        rec.count,
        image.sessions.len(),
        image.retained.len(),
        image.msgs.len()
    );
    s.journal = Some(Rc::new(Journal::new(Rc::new(log), s.shards)));
    Ok(Some(image))
}

fn protocol_of(level: u8) -> Protocol {
    match level {
        3 => Protocol::V310,
        4 => Protocol::V311,
        _ => Protocol::V5,
    }
}

fn message_of(m: &StoredMessage) -> Arc<Message> {
    let mut msg = Message::owned(
        &m.topic,
        &m.payload,
        m.qos,
        m.retain,
        m.properties.clone(),
        0,
    );
    // The stored wall-clock deadline, not a fresh interval from now.
    msg.expires_at = instant_of_ms(m.expires_at_ms);
    Arc::new(msg)
}

fn will_of(m: &StoredMessage) -> Box<Will> {
    Box::new(Will {
        qos: m.qos,
        retain: m.retain,
        topic: m.topic.clone(),
        payload: m.payload.clone(),
        properties: Properties {
            // Already delayed: it is published at its stored deadline.
            will_delay_interval_s: None,
            ..m.properties.clone()
        },
    })
}

/// Put the recovered state into the shard.
pub fn restore(shard: &ShardRef, image: Image) {
    let mut s = shard.borrow_mut();
    let Some(journal) = s.journal.clone() else {
        return;
    };
    // Each stored message once, shared by everything that holds it.
    let mut msgs: HashMap<MsgId, Arc<Message>> = HashMap::new();
    let mut get = |id: MsgId, image: &Image| -> Option<Arc<Message>> {
        if let Some(m) = msgs.get(&id) {
            return Some(m.clone());
        }
        let m = message_of(image.msgs.get(id)?);
        msgs.insert(id, m.clone());
        Some(m)
    };
    for (topic, &id) in &image.retained {
        let Some(m) = get(id, &image) else { continue };
        journal.adopt(id, &m, 1);
        s.retained_bytes += m.size_bytes();
        s.retained_home.0 += 1;
        s.retained_home.1 += m.size_bytes() as u64;
        s.retained.set(topic, m.clone());
        let peers: Vec<usize> = s.peers().collect();
        for peer in peers {
            s.send_to(
                peer,
                MeshMsg::Retain {
                    topic: topic.clone(),
                    msg: Some(m.clone()),
                    ack: None,
                    tag: 0,
                },
            );
        }
    }
    let now_ms = unix_ms();
    let mut expired = Vec::new();
    for (client_id, si) in &image.sessions {
        log::debug!(
            "shard {}: session {client_id}: expiry {} s, {} subscriptions, {} messages",
            s.id,
            si.expiry_s,
            si.subscriptions.len(),
            si.refs.len()
        );
        let uid = s.next_uid();
        let mut session = Session::new(
            client_id.clone(),
            uid,
            protocol_of(si.protocol),
            s.session_limits.clone(),
        );
        session.expiry_s = si.expiry_s;
        session.offline_since_ms = if si.disconnected_at_ms == 0 {
            now_ms
        } else {
            si.disconnected_at_ms
        };
        session.journal = Some(journal.clone());
        session.set_incoming_qos2(si.incoming_qos2.iter().copied());
        for r in &si.refs {
            let Some(m) = get(r.msg, &image) else {
                continue;
            };
            journal.adopt(r.msg, &m, 1);
            let d = Delivery {
                msg: m,
                qos: r.qos,
                retain: false,
                sub_ids: Default::default(),
                shared: None,
            };
            if r.packet_id != 0 {
                session.restore_inflight(d, r.packet_id, r.released && r.qos == QoS::ExactlyOnce);
            } else {
                session.restore_queued(d);
            }
        }
        let session = Rc::new(std::cell::RefCell::new(session));
        s.insert_session(session.clone());
        for (filter, sub) in &si.subscriptions {
            session
                .borrow_mut()
                .subscriptions
                .insert(filter.clone(), *sub);
            s.restore_subscription(&session, uid, filter, *sub);
        }
        if let Some(w) = &si.will {
            s.delay_will_until(uid, will_of(&w.will), w.deadline_ms);
        }
        // Offline since the crash if it was connected then: its expiry starts now.
        let off = if si.disconnected_at_ms == 0 {
            now_ms
        } else {
            si.disconnected_at_ms
        };
        if si.expiry_s != u32::MAX {
            let end = off + u64::from(si.expiry_s) * 1000;
            if end <= now_ms {
                expired.push(session);
            } else {
                let left = ((end - now_ms) / 1000).max(1);
                s.expire_later(uid, left.min(u64::from(u32::MAX)) as u32);
            }
        }
    }
    for session in expired {
        s.remove_session(&session);
    }
    // QoS 2 forwards not confirmed by every peer go again (peers drop what they applied).
    for (&lsn, (id, peers, share)) in &image.forwards {
        let Some(m) = get(*id, &image) else { continue };
        journal.adopt(*id, &m, 1);
        journal.restore_forward(lsn, m, *peers, share.clone());
    }
    for (&peer, &lsn) in &image.peer_marks {
        journal.restore_mark(usize::from(peer), lsn);
    }
    let committed = journal.log.committed();
    s.send_forwards(committed);
}

/// After each commit: confirm to peers what it covered and wake the connections whose
/// acknowledgements wait for it. Ends when the log is closed and everything is committed.
pub async fn commit_pump(shard: ShardRef, journal: Rc<Journal>) {
    loop {
        let target = journal.progress.committed() + 1;
        match journal.log.wait_committed(target).await {
            Ok(lsn) => {
                journal.progress.failing.set(false);
                let waited = journal.commit_waited(lsn);
                let due = journal.committed(lsn);
                let mut s = shard.borrow_mut();
                if let Some(us) = waited {
                    s.stats.commit_latency.record(us);
                }
                let from = s.id;
                for (peer, lane, tag) in due {
                    s.send_to(peer, MeshMsg::Committed { from, lane, tag });
                }
                s.send_forwards(lsn);
            }
            Err(_) => {
                // The log retries the commit; acknowledgements keep waiting, new work that
                // needs storage is refused meanwhile.
                journal.progress.failing.set(true);
                // Connections whose acknowledgements wait learn it (and close with 0x97).
                journal.progress.wake_all();
                glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    }
}
