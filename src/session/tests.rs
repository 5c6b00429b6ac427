use super::*;
use crate::codec::{decode, Properties};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;

fn limits() -> SessionLimits {
    SessionLimits {
        inflight_max: 2,
        queued_messages_max: 3,
        queue_qos0_offline: false,
        out_buffer_bytes_max: 1 << 20,
        topic_alias_outbound: true,
    }
}

fn delivery(qos: QoS, n: u8) -> Delivery {
    Delivery {
        msg: Arc::new(Message {
            topic: "t".into(),
            payload: Bytes::from(vec![n]),
            qos,
            retain: false,
            properties: Properties::default(),
            origin_uid: 0,
            expires_at: None,
        }),
        qos,
        retain: false,
        sub_ids: Default::default(),
        shared: None,
    }
}

/// Decode every packet the link holds.
fn drain(link: &ConnLink) -> Vec<Packet> {
    let mut buf: BytesMut = link.with_out(|o| o.split());
    let mut out = Vec::new();
    while let Ok(Some(p)) = decode(&mut buf, Protocol::V311, 1 << 20) {
        out.push(p);
    }
    out
}

fn publishes(ps: &[Packet]) -> Vec<(u16, bool, u8)> {
    ps.iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some((p.packet_id, p.dup, p.payload[0])),
            _ => None,
        })
        .collect()
}

#[test]
fn inflight_window_holds_back_and_acks_release_in_order() {
    let mut s = Session::new("c".into(), 1, Protocol::V311, limits());
    let link = Rc::new(ConnLink::new());
    s.attach(link.clone(), Protocol::V311);
    for n in 0..4 {
        s.deliver(delivery(QoS::AtLeastOnce, n));
    }
    assert_eq!(publishes(&drain(&link)), vec![(1, false, 0), (2, false, 1)]);
    assert_eq!(s.queued_len(), 2);
    s.on_puback(1);
    assert_eq!(publishes(&drain(&link)), vec![(3, false, 2)]);
    s.on_puback(99); // unknown: ignored
    s.on_puback(2);
    assert_eq!(publishes(&drain(&link)), vec![(4, false, 3)]);
}

#[test]
fn queue_is_bounded_and_drops_are_counted_by_qos() {
    let mut s = Session::new("c".into(), 1, Protocol::V311, limits());
    // Offline: QoS 0 dropped at once, QoS 1 queued up to the bound.
    s.deliver(delivery(QoS::AtMostOnce, 0));
    for n in 0..5 {
        s.deliver(delivery(QoS::AtLeastOnce, n));
    }
    assert_eq!(s.queued_len(), 3);
    assert_eq!(s.drops.qos0, 1);
    assert_eq!(s.drops.qos12, 2);
}

#[test]
fn reconnect_retransmits_unacked_with_dup_then_drains_queue() {
    let mut s = Session::new("c".into(), 1, Protocol::V311, limits());
    let first = Rc::new(ConnLink::new());
    s.attach(first.clone(), Protocol::V311);
    for n in 0..3 {
        s.deliver(delivery(QoS::AtLeastOnce, n));
    }
    drain(&first);
    s.detach();
    let second = Rc::new(ConnLink::new());
    s.attach(second.clone(), Protocol::V311);
    // [MQTT-4.4.0-1]: unacknowledged PUBLISHes again, same ids, DUP set, original order.
    assert_eq!(publishes(&drain(&second)), vec![(1, true, 0), (2, true, 1)]);
    s.on_puback(1);
    assert_eq!(publishes(&drain(&second)), vec![(3, false, 2)]);
}

#[test]
fn qos2_outgoing_flow_and_pubrel_retransmission() {
    let mut s = Session::new("c".into(), 1, Protocol::V311, limits());
    let link = Rc::new(ConnLink::new());
    s.attach(link.clone(), Protocol::V311);
    s.deliver(delivery(QoS::ExactlyOnce, 7));
    assert_eq!(publishes(&drain(&link)), vec![(1, false, 7)]);
    s.on_pubrec(&crate::codec::Ack {
        packet_id: 1,
        ..Default::default()
    });
    assert!(matches!(drain(&link).as_slice(), [Packet::PubRel(a)] if a.packet_id == 1));
    // Reconnect after PUBREC: only PUBREL is sent again, never the PUBLISH.
    s.detach();
    let again = Rc::new(ConnLink::new());
    s.attach(again.clone(), Protocol::V311);
    assert!(matches!(drain(&again).as_slice(), [Packet::PubRel(a)] if a.packet_id == 1));
    s.on_pubcomp(1);
    assert_eq!(s.inflight_len(), 0);
}

#[test]
fn outbound_topic_aliases_define_then_reuse_and_stop_when_full() {
    let mut s = Session::new("c".into(), 1, Protocol::V5, limits());
    s.set_client_limits(None, None, Some(1));
    let link = Rc::new(ConnLink::new());
    s.attach(link.clone(), Protocol::V5);
    let on = |topic: &str| {
        let mut d = delivery(QoS::AtMostOnce, 0);
        Arc::make_mut(&mut d.msg).topic = topic.into();
        d
    };
    s.deliver(on("a/long/topic"));
    s.deliver(on("a/long/topic"));
    s.deliver(on("other"));
    let mut buf: BytesMut = link.with_out(|o| o.split());
    let mut seen = Vec::new();
    while let Ok(Some(Packet::Publish(p))) = decode(&mut buf, Protocol::V5, 1 << 20) {
        seen.push((p.topic.to_string(), p.properties.topic_alias));
    }
    assert_eq!(
        seen,
        vec![
            ("a/long/topic".to_string(), Some(1)),
            (String::new(), Some(1)),
            ("other".to_string(), None),
        ]
    );
}
