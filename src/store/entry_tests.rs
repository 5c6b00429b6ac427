use super::*;
use proptest::prelude::*;

pub(crate) fn message(topic: &str, payload: &[u8], qos: QoS) -> StoredMessage {
    StoredMessage {
        topic: topic.into(),
        payload: Bytes::copy_from_slice(payload),
        qos,
        retain: false,
        properties: Properties::default(),
        expires_at_ms: 0,
    }
}

fn rich_message() -> StoredMessage {
    let mut properties = Properties {
        payload_format_indicator: Some(1),
        message_expiry_interval_s: Some(30),
        content_type: Some("text/plain".into()),
        response_topic: Some("reply/here".into()),
        correlation_data: Some(Bytes::from_static(b"\x00\x01corr")),
        user_properties: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
        ..Properties::default()
    };
    properties.subscription_identifiers.clear();
    StoredMessage {
        topic: "a/b/c".into(),
        payload: Bytes::from_static(b"hello"),
        qos: QoS::ExactlyOnce,
        retain: true,
        properties,
        expires_at_ms: 1_800_000_000_123,
    }
}

pub(crate) fn every_entry() -> Vec<Entry> {
    let c = || ByteString::from("client-1");
    vec![
        Entry::MsgStore {
            id: 7,
            msg: rich_message(),
        },
        Entry::MsgStore {
            id: 8,
            msg: message("t", b"", QoS::AtMostOnce),
        },
        Entry::RetainSet {
            topic: "a/b/c".into(),
            msg: 7,
        },
        Entry::RetainClear {
            topic: "a/b/c".into(),
        },
        Entry::SessionUpsert {
            client_id: c(),
            protocol: 5,
            expiry_s: 3600,
            disconnected_at_ms: 42,
        },
        Entry::SubAdd {
            client_id: c(),
            filter: "$share/g/x/#".into(),
            options: SubOptions {
                qos: QoS::AtLeastOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: 2,
            },
            identifier: Some(268_435_455),
        },
        Entry::SubAdd {
            client_id: c(),
            filter: "y".into(),
            options: SubOptions::default(),
            identifier: None,
        },
        Entry::SubRemove {
            client_id: c(),
            filter: "y".into(),
        },
        Entry::Enqueue {
            client_id: c(),
            msg: 7,
            qos: QoS::ExactlyOnce,
        },
        Entry::Sent {
            client_id: c(),
            msg: 7,
            packet_id: 65535,
        },
        Entry::PubRec {
            client_id: c(),
            packet_id: 65535,
        },
        Entry::Done {
            client_id: c(),
            msg: 7,
        },
        Entry::IncomingQos2 {
            client_id: c(),
            packet_id: 9,
            add: true,
        },
        Entry::IncomingQos2 {
            client_id: c(),
            packet_id: 9,
            add: false,
        },
        Entry::WillSet {
            client_id: c(),
            deadline_ms: 99,
            will: rich_message(),
        },
        Entry::WillClear { client_id: c() },
        Entry::SessionDelete { client_id: c() },
        Entry::SnapshotBegin,
        Entry::SnapshotEnd,
        Entry::Forward {
            lsn: 77,
            msg: 12,
            peers: 0b110,
            share: None,
        },
        Entry::Forward {
            lsn: 78,
            msg: 13,
            peers: 0b10,
            share: Some(Box::new(ShareTarget {
                key: "$share/g/a/#".into(),
                client_id: c(),
                qos: QoS::ExactlyOnce,
                identifier: 7,
                hop: ShareHop::Member,
            })),
        },
        Entry::Forward {
            lsn: 79,
            msg: 14,
            peers: 0b1,
            share: Some(Box::new(ShareTarget {
                key: "$share/g/a/#".into(),
                client_id: c(),
                qos: QoS::AtLeastOnce,
                identifier: 0,
                hop: ShareHop::Repick,
            })),
        },
        Entry::Forward {
            lsn: 80,
            msg: 15,
            peers: 0b1,
            share: Some(Box::new(ShareTarget {
                key: "$queue/a/#".into(),
                client_id: c(),
                qos: QoS::AtLeastOnce,
                identifier: 0,
                hop: ShareHop::GiveBack,
            })),
        },
        Entry::ForwardDone { lsn: 77 },
        Entry::PeerMark { peer: 3, lsn: 1234 },
    ]
}

#[test]
fn every_entry_round_trips() {
    for e in every_entry() {
        let mut buf = Vec::new();
        let k = e.encode(&mut buf);
        assert!(k.0 >= Kind::FIRST_USER, "{e:?}");
        let back = Entry::decode(k, &Bytes::from(buf)).expect("decodes");
        assert_eq!(back, e);
    }
}

#[test]
fn truncated_or_padded_payloads_are_malformed() {
    for e in every_entry() {
        let mut buf = Vec::new();
        let k = e.encode(&mut buf);
        for cut in 0..buf.len() {
            let r = Entry::decode(k, &Bytes::copy_from_slice(&buf[..cut]));
            assert!(r.is_err(), "{e:?} cut at {cut} decoded as {r:?}");
        }
        buf.push(0);
        assert_eq!(
            Entry::decode(k, &Bytes::from(buf)),
            Err(EntryError::Malformed(k))
        );
    }
    assert_eq!(
        Entry::decode(Kind(99), &Bytes::new()),
        Err(EntryError::UnknownKind(99))
    );
}

proptest! {
    #[test]
    fn arbitrary_payloads_never_panic(kind in 16u8..40, bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Entry::decode(Kind(kind), &Bytes::from(bytes));
    }
}
