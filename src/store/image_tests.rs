use super::*;
use crate::codec::SubOptions;
use crate::store::entry::tests::{every_entry, message};
use bytes::Bytes;

fn cid(s: &str) -> ByteString {
    s.into()
}

fn replay(entries: &[Entry]) -> Image {
    let mut img = Image::default();
    for e in entries {
        img.apply(e);
    }
    img.finish_replay();
    img
}

/// Entries as the broker would log them: two persistent sessions sharing one message, a
/// retained message, QoS 2 state in both directions, a will.
fn history() -> Vec<Entry> {
    let sub = SubOptions {
        qos: QoS::ExactlyOnce,
        ..SubOptions::default()
    };
    vec![
        Entry::SessionUpsert {
            client_id: cid("a"),
            protocol: 5,
            expiry_s: 60,
            disconnected_at_ms: 0,
        },
        Entry::SessionUpsert {
            client_id: cid("b"),
            protocol: 4,
            expiry_s: u32::MAX,
            disconnected_at_ms: 0,
        },
        Entry::SubAdd {
            client_id: cid("a"),
            filter: "t/#".into(),
            options: sub,
            identifier: Some(3),
        },
        Entry::SubAdd {
            client_id: cid("b"),
            filter: "t/+".into(),
            options: sub,
            identifier: None,
        },
        Entry::MsgStore {
            id: 100,
            msg: message("t/1", b"one", QoS::ExactlyOnce),
        },
        Entry::Enqueue {
            client_id: cid("a"),
            msg: 100,
            qos: QoS::ExactlyOnce,
        },
        Entry::Enqueue {
            client_id: cid("b"),
            msg: 100,
            qos: QoS::AtLeastOnce,
        },
        Entry::RetainSet {
            topic: "t/1".into(),
            msg: 100,
        },
        Entry::MsgStore {
            id: 101,
            msg: message("t/2", b"two", QoS::AtLeastOnce),
        },
        Entry::Enqueue {
            client_id: cid("a"),
            msg: 101,
            qos: QoS::AtLeastOnce,
        },
        Entry::Sent {
            client_id: cid("a"),
            msg: 100,
            packet_id: 1,
        },
        Entry::PubRec {
            client_id: cid("a"),
            packet_id: 1,
        },
        Entry::Sent {
            client_id: cid("b"),
            msg: 100,
            packet_id: 1,
        },
        Entry::Done {
            client_id: cid("b"),
            msg: 100,
        },
        Entry::IncomingQos2 {
            client_id: cid("b"),
            packet_id: 77,
            add: true,
        },
        Entry::WillSet {
            client_id: cid("b"),
            deadline_ms: 5_000,
            will: message("will", b"bye", QoS::AtLeastOnce),
        },
        Entry::SessionUpsert {
            client_id: cid("b"),
            protocol: 4,
            expiry_s: u32::MAX,
            disconnected_at_ms: 1_000,
        },
        Entry::MsgStore {
            id: 102,
            msg: message("x", b"gone", QoS::AtLeastOnce),
        },
        Entry::RetainSet {
            topic: "x".into(),
            msg: 102,
        },
        Entry::RetainClear { topic: "x".into() },
    ]
}

#[test]
fn applying_a_history_gives_the_expected_image() {
    let img = replay(&history());
    assert_eq!(img.sessions.len(), 2);
    let a = &img.sessions[&cid("a")];
    assert_eq!(
        a.subscriptions[&ByteString::from("t/#")].identifier,
        Some(3)
    );
    assert_eq!(
        a.refs.iter().copied().collect::<Vec<_>>(),
        vec![
            MsgRef {
                msg: 100,
                qos: QoS::ExactlyOnce,
                packet_id: 1,
                released: true
            },
            MsgRef {
                msg: 101,
                qos: QoS::AtLeastOnce,
                packet_id: 0,
                released: false
            },
        ]
    );
    let b = &img.sessions[&cid("b")];
    assert!(b.refs.is_empty(), "b acknowledged its message");
    assert_eq!(
        b.incoming_qos2.iter().copied().collect::<Vec<_>>(),
        vec![77]
    );
    assert_eq!(b.disconnected_at_ms, 1_000);
    assert_eq!(b.will.as_ref().map(|w| w.deadline_ms), Some(5_000));
    // 100: a's reference and the retained entry; 101: a's; 102: cleared and freed.
    assert_eq!(img.msgs.refs(100), 2);
    assert_eq!(img.msgs.refs(101), 1);
    assert!(img.msgs.get(102).is_none());
    assert_eq!(img.msgs.len(), 2);
    assert_eq!(img.retained.len(), 1);
}

#[test]
fn deleting_a_session_releases_its_references() {
    let mut h = history();
    h.push(Entry::SessionDelete {
        client_id: cid("a"),
    });
    let img = replay(&h);
    assert!(!img.sessions.contains_key(&cid("a")));
    assert_eq!(img.msgs.refs(100), 1, "the retained entry still holds it");
    assert!(img.msgs.get(101).is_none());
}

fn snapshot_entries(img: &Image) -> Vec<Entry> {
    let mut out = Vec::new();
    let begin = img
        .snapshot(|k, p| {
            out.push(Entry::decode(k, &Bytes::copy_from_slice(p)).expect("own encoding"));
            Ok(out.len() as u64)
        })
        .expect("snapshot");
    assert_eq!(begin, 1);
    assert_eq!(out.first(), Some(&Entry::SnapshotBegin));
    assert_eq!(out.last(), Some(&Entry::SnapshotEnd));
    out
}

#[test]
fn snapshot_then_replay_is_the_same_image() {
    let img = replay(&history());
    assert_eq!(replay(&snapshot_entries(&img)), img);
    // A snapshot replayed after stale leftovers (records of released segments) replaces them.
    let mut tail = history()[8..].to_vec();
    tail.extend(snapshot_entries(&img));
    assert_eq!(replay(&tail), img);
    // And what comes after the snapshot applies on top of it.
    let mut more = snapshot_entries(&img);
    more.push(Entry::Done {
        client_id: cid("a"),
        msg: 101,
    });
    let mut expected = history();
    expected.push(Entry::Done {
        client_id: cid("a"),
        msg: 101,
    });
    assert_eq!(replay(&more), replay(&expected));
}

/// QoS 2 store-then-forward: a forward holds its message until `ForwardDone`, the highest
/// mark per peer wins, and both survive a snapshot.
#[test]
fn forwards_hold_their_message_and_marks_keep_the_highest() {
    let mut h = vec![
        Entry::MsgStore {
            id: 7,
            msg: message("x/1", b"fwd", QoS::ExactlyOnce),
        },
        Entry::Forward {
            lsn: 8,
            msg: 7,
            peers: 0b10,
            share: None,
        },
        Entry::MsgStore {
            id: 9,
            msg: message("x/2", b"fwd2", QoS::ExactlyOnce),
        },
        Entry::Forward {
            lsn: 10,
            msg: 9,
            peers: 0b110,
            share: Some(Box::new(crate::store::ShareTarget {
                key: "$share/g/x/#".into(),
                client_id: "member".into(),
                qos: QoS::ExactlyOnce,
                identifier: 0,
                // kept through a snapshot like a member's forward
                hop: crate::store::ShareHop::GiveBack,
            })),
        },
        Entry::PeerMark { peer: 1, lsn: 500 },
        Entry::PeerMark { peer: 1, lsn: 400 },
        Entry::PeerMark { peer: 2, lsn: 30 },
    ];
    let img = replay(&h);
    assert_eq!(img.forwards.len(), 2);
    assert_eq!(img.msgs.refs(7), 1);
    assert_eq!(
        img.peer_marks.get(&1),
        Some(&500),
        "a lower mark never lowers it"
    );
    assert_eq!(replay(&snapshot_entries(&img)), img);
    h.push(Entry::ForwardDone { lsn: 8 });
    let img = replay(&h);
    assert_eq!(img.forwards.keys().copied().collect::<Vec<_>>(), vec![10]);
    assert!(img.msgs.get(7).is_none(), "released with its forward");
    assert_eq!(replay(&snapshot_entries(&img)), img);
}

#[test]
fn a_snapshot_cut_by_a_crash_is_dropped() {
    let img = replay(&history());
    let mut h = history();
    let snap = snapshot_entries(&img);
    h.extend_from_slice(&snap[..snap.len() / 2]);
    assert_eq!(replay(&h), img);
}

#[test]
fn entries_in_any_order_never_panic() {
    let mut all = every_entry();
    all.extend(history());
    for rot in 0..all.len() {
        all.rotate_left(1);
        let _ = replay(&all[..rot]);
        let _ = replay(&all);
    }
}

/// Through real files: log a history, snapshot, release what the snapshot replaced, log more;
/// recovery + replay gives the image the broker had.
#[test]
fn compaction_through_the_log_keeps_the_image() {
    use crate::store::log::tests::on_executor;
    use crate::store::{recover, Durability, Log, LogOptions, Recovered};
    let tmp = tempfile::tempdir().expect("tmp");
    let opts = LogOptions {
        data_dir: tmp.path().to_path_buf(),
        shard: 0,
        durability: Durability::Process,
        segment_bytes: 64 * 1024,
        max_bytes: 0,
        direct_io: true,
    };
    let mut expected = Image::default();
    let mut buf = Vec::new();
    // Enough churn for several segments: retained topics overwritten again and again.
    let mut entries = history();
    for i in 0..3000u64 {
        let id = 1000 + i;
        entries.push(Entry::MsgStore {
            id,
            msg: message(&format!("r/{}", i % 50), &[i as u8; 40], QoS::AtLeastOnce),
        });
        entries.push(Entry::RetainSet {
            topic: format!("r/{}", i % 50).into(),
            msg: id,
        });
    }
    for e in &entries {
        expected.apply(e);
    }
    let image = expected.clone();
    let after = Entry::Done {
        client_id: cid("a"),
        msg: 101,
    };
    expected.apply(&after);
    on_executor(move || async move {
        let log = Log::open(opts, &Recovered::default()).await.expect("open");
        for e in &entries {
            buf.clear();
            let k = e.encode(&mut buf);
            log.append(k, &buf).expect("append");
        }
        log.commit().await.expect("commit");
        let before = log.segments().len();
        let begin = image.snapshot(|k, p| log.append(k, p)).expect("snapshot");
        log.commit().await.expect("commit snapshot");
        let n = log.release_before(begin).await.expect("release");
        assert!(n + 1 >= before, "released {n} of {before} segments");
        buf.clear();
        let k = after.encode(&mut buf);
        log.append(k, &buf).expect("append");
        log.commit().await.expect("commit");
    });
    let rec = recover(tmp.path(), 0).expect("recover");
    assert!(rec.records[0].lsn > 1, "old segments were released");
    let mut img = Image::default();
    for r in &rec.records {
        img.apply(&Entry::decode(r.kind, &r.payload).expect("decodes"));
    }
    img.finish_replay();
    assert_eq!(img, expected);
    assert_eq!(img.retained.len(), 51);
}
