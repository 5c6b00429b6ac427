use super::*;
use crate::codec::{decode, Properties};
use bytes::BytesMut;
use std::sync::Arc;

fn limits() -> SessionLimits {
    SessionLimits {
        inflight_max: 2,
        queued_messages_max: 3,
        queued_bytes_max: 1 << 20,
        queue_full: QueueFull::Backpressure,
        queue_qos0_offline: false,
        out_buffer_bytes_max: 1 << 20,
        topic_alias_outbound: true,
    }
}

fn delivery(qos: QoS, n: u8) -> Delivery {
    Delivery {
        msg: Arc::new(Message::owned(
            "t",
            &[n],
            qos,
            false,
            Properties::default(),
            0,
        )),
        qos,
        retain: false,
        sub_ids: Default::default(),
        shared: None,
    }
}

/// Decode every packet the link holds.
fn drain(link: &ConnLink) -> Vec<Packet> {
    let mut buf = BytesMut::from(&link.with_out(|o| o.take_all())[..]);
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
    let mut s = Session::new("c".into(), 1, Protocol::V311, limits().into());
    let link = Rc::new(ConnLink::new());
    s.attach(link.clone(), Protocol::V311);
    for n in 0..4 {
        s.deliver(delivery(QoS::AtLeastOnce, n), 0);
    }
    assert_eq!(publishes(&drain(&link)), vec![(1, false, 0), (2, false, 1)]);
    assert_eq!(s.queued_len(), 2);
    s.on_puback(1).expect("a QoS 1 ack");
    assert_eq!(publishes(&drain(&link)), vec![(3, false, 2)]);
    s.on_puback(99).expect("unknown: ignored");
    s.on_puback(2).expect("a QoS 1 ack");
    assert_eq!(publishes(&drain(&link)), vec![(4, false, 3)]);
}

#[test]
fn queue_is_bounded_and_drops_are_counted_by_qos() {
    let mut s = Session::new("c".into(), 1, Protocol::V311, limits().into());
    // Offline: QoS 0 dropped at once, QoS 1 queued up to the bound.
    s.deliver(delivery(QoS::AtMostOnce, 0), 0);
    for n in 0..5 {
        s.deliver(delivery(QoS::AtLeastOnce, n), 0);
    }
    assert_eq!(s.queued_len(), 3);
    assert_eq!(s.drops().offline_qos0, 1);
    assert_eq!(s.drops().offline_full, 2);
}

#[test]
fn reconnect_retransmits_unacked_with_dup_then_drains_queue() {
    let mut s = Session::new("c".into(), 1, Protocol::V311, limits().into());
    let first = Rc::new(ConnLink::new());
    s.attach(first.clone(), Protocol::V311);
    for n in 0..3 {
        s.deliver(delivery(QoS::AtLeastOnce, n), 0);
    }
    drain(&first);
    s.detach();
    let second = Rc::new(ConnLink::new());
    s.attach(second.clone(), Protocol::V311);
    // [MQTT-4.4.0-1]: unacknowledged PUBLISHes again, same ids, DUP set, original order.
    assert_eq!(publishes(&drain(&second)), vec![(1, true, 0), (2, true, 1)]);
    s.on_puback(1).expect("a QoS 1 ack");
    assert_eq!(publishes(&drain(&second)), vec![(3, false, 2)]);
}

#[test]
fn qos2_outgoing_flow_and_pubrel_retransmission() {
    let mut s = Session::new("c".into(), 1, Protocol::V311, limits().into());
    let link = Rc::new(ConnLink::new());
    s.attach(link.clone(), Protocol::V311);
    s.deliver(delivery(QoS::ExactlyOnce, 7), 0);
    assert_eq!(publishes(&drain(&link)), vec![(1, false, 7)]);
    s.on_pubrec(&crate::codec::Ack {
        packet_id: 1,
        ..Default::default()
    })
    .expect("a QoS 2 ack");
    assert!(matches!(drain(&link).as_slice(), [Packet::PubRel(a)] if a.packet_id == 1));
    // Reconnect after PUBREC: only PUBREL is sent again, never the PUBLISH.
    s.detach();
    let again = Rc::new(ConnLink::new());
    s.attach(again.clone(), Protocol::V311);
    assert!(matches!(drain(&again).as_slice(), [Packet::PubRel(a)] if a.packet_id == 1));
    s.on_pubcomp(1).expect("after PUBREC");
    assert_eq!(s.inflight_len(), 0);
}

#[test]
fn outbound_topic_aliases_define_then_reuse_and_stop_when_full() {
    let mut s = Session::new("c".into(), 1, Protocol::V5, limits().into());
    s.set_client_limits(None, None, Some(1));
    let link = Rc::new(ConnLink::new());
    s.attach(link.clone(), Protocol::V5);
    let on = |topic: &str| {
        let mut d = delivery(QoS::AtMostOnce, 0);
        d.msg = Arc::new(Message::owned(
            topic,
            &[0],
            QoS::AtMostOnce,
            false,
            Properties::default(),
            0,
        ));
        d
    };
    s.deliver(on("a/long/topic"), 0);
    s.deliver(on("a/long/topic"), 0);
    s.deliver(on("other"), 0);
    let mut buf = BytesMut::from(&link.with_out(|o| o.take_all())[..]);
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

fn attached(l: SessionLimits) -> (Session, Rc<ConnLink>) {
    let mut s = Session::new("c".into(), 1, Protocol::V311, l.into());
    let link = Rc::new(ConnLink::new());
    s.attach(link.clone(), Protocol::V311);
    (s, link)
}

#[test]
fn connected_subscriber_at_its_bounds_holds_publishers_instead_of_dropping() {
    let (mut s, link) = attached(limits());
    // Window 2 in flight, then 3 queued: the bound.
    for n in 0..5 {
        assert!(!matches!(
            s.deliver(delivery(QoS::AtLeastOnce, n), 7),
            Admit::Held { .. }
        ));
    }
    // Past the bound: still queued, and publishers 7 and 8 are held (each once).
    assert_eq!(
        s.deliver(delivery(QoS::AtLeastOnce, 5), 7),
        Admit::Held {
            new_waiter: true,
            newly_congested: true
        }
    );
    assert_eq!(
        s.deliver(delivery(QoS::AtMostOnce, 6), 7),
        Admit::Held {
            new_waiter: false,
            newly_congested: false
        }
    );
    assert_eq!(
        s.deliver(delivery(QoS::AtLeastOnce, 7), 8),
        Admit::Held {
            new_waiter: true,
            newly_congested: false
        }
    );
    assert_eq!(s.queued_len(), 6);
    assert_eq!(s.drops(), SessionDrops::default(), "nothing dropped");
    assert!(s.congested_since().is_some());
    assert_eq!(s.waiters(), &[7, 8]);
    drain(&link);
    // Acks drain the queue; at half the bound (1 of 3) both publishers are released.
    let mut id = 1;
    while !s.has_released() {
        s.on_puback(id).expect("a QoS 1 ack");
        id += 1;
        drain(&link);
        assert!(id < 10, "released by the time the queue drained");
    }
    assert!(s.queued_len() <= 1);
    assert_eq!(s.take_released(), vec![7, 8]);
    assert!(s.congested_since().is_none());
}

#[test]
fn a_session_never_holds_itself_back() {
    let (mut s, _link) = attached(limits());
    for n in 0..6 {
        s.deliver(delivery(QoS::AtLeastOnce, n), 1);
    }
    assert!(s.waiters().is_empty(), "its own acks are what drains it");
}

#[test]
fn queue_bytes_bound_holds_too() {
    let l = SessionLimits {
        queued_messages_max: 1000,
        queued_bytes_max: 4,
        ..limits()
    };
    let (mut s, _link) = attached(l);
    for n in 0..2 {
        s.deliver(delivery(QoS::AtLeastOnce, n), 9); // the window
    }
    for n in 0..2 {
        assert_eq!(s.deliver(delivery(QoS::AtLeastOnce, n), 9), Admit::Queued);
    }
    assert_eq!(s.queued_bytes(), 4, "topic t + one payload byte each");
    assert!(matches!(
        s.deliver(delivery(QoS::AtLeastOnce, 9), 9),
        Admit::Held { .. }
    ));
}

#[test]
fn drop_policy_drops_and_counts_at_the_bound() {
    let l = SessionLimits {
        queue_full: QueueFull::Drop,
        ..limits()
    };
    let (mut s, _link) = attached(l);
    for n in 0..7 {
        s.deliver(delivery(QoS::AtLeastOnce, n), 9);
    }
    s.deliver(delivery(QoS::AtMostOnce, 0), 9);
    assert_eq!(s.queued_len(), 3);
    assert_eq!(s.drops().qos12, 2);
    assert_eq!(s.drops().qos0, 1);
    assert!(s.waiters().is_empty());
}

#[test]
fn going_offline_releases_every_held_publisher() {
    let (mut s, _link) = attached(limits());
    for n in 0..8 {
        s.deliver(delivery(QoS::AtLeastOnce, n), 40 + u64::from(n));
    }
    assert_eq!(s.waiters().len(), 3);
    s.detach();
    assert_eq!(s.take_released(), vec![45, 46, 47]);
    assert!(s.congested_since().is_none());
    // Offline past the bound: dropped and counted, nobody held.
    assert_eq!(s.deliver(delivery(QoS::AtLeastOnce, 9), 50), Admit::Dropped);
    assert_eq!(s.drops().offline_full, 1);
}

#[test]
fn wrong_ack_kinds_are_protocol_errors() {
    let (mut s, _link) = attached(limits());
    s.deliver(delivery(QoS::AtLeastOnce, 0), 0); // id 1
    s.deliver(delivery(QoS::ExactlyOnce, 1), 0); // id 2
    let rec = |id| crate::codec::Ack {
        packet_id: id,
        ..Default::default()
    };
    assert_eq!(s.on_pubrec(&rec(1)), Err(WrongAck), "PUBREC for QoS 1");
    assert_eq!(s.on_pubcomp(1), Err(WrongAck), "PUBCOMP for QoS 1");
    assert_eq!(s.on_puback(2), Err(WrongAck), "PUBACK for QoS 2");
    assert_eq!(s.on_pubcomp(2), Err(WrongAck), "PUBCOMP before PUBREC");
    assert_eq!(s.on_pubrec(&rec(2)), Ok(()));
    assert_eq!(s.on_pubcomp(2), Ok(()));
    assert_eq!(s.on_puback(1), Ok(()));
}

/// Every session is an `Rc<RefCell<Session>>`: with the `Rc`'s two counts it stays in
/// mimalloc's 256-byte bin, apart from the 320-byte one of glommio's read poll, so the polls
/// that sleeping connections free leave whole pages free (docs/PERFORMANCE.md, memory per idle
/// connection).
#[test]
fn a_session_fits_the_256_byte_bin() {
    let size =
        std::mem::size_of::<std::cell::RefCell<Session>>() + 2 * std::mem::size_of::<usize>();
    assert!(size <= 256, "Rc<RefCell<Session>> is {size} bytes");
}

#[test]
fn a_message_queued_behind_others_after_the_buffer_drained_still_asks_for_a_refill() {
    // The connection refills its buffer from the queue (and stays awake) only while the link
    // says queued messages wait for it. A message queued behind others once the buffer had
    // drained used to clear that flag: the connection then emptied its buffer and waited for
    // its socket, or fell asleep, with the queue unsent (seen as a subscriber stalled 8–21
    // messages short under load with hibernation on).
    let mut l = limits();
    l.out_buffer_bytes_max = 4;
    l.queued_messages_max = 100;
    let (mut s, link) = attached(l);
    s.deliver(delivery(QoS::AtMostOnce, 0), 0);
    s.deliver(delivery(QoS::AtMostOnce, 1), 0);
    assert_eq!(s.queued_len(), 1);
    assert!(link.has_backlog());
    // The socket took everything written so far; a message arrives before the refill.
    assert_eq!(publishes(&drain(&link)), vec![(0, false, 0)]);
    s.deliver(delivery(QoS::AtMostOnce, 2), 0);
    assert_eq!(s.queued_len(), 2);
    assert!(
        link.has_backlog(),
        "queued QoS 0 messages wait for the drain"
    );
    s.pump();
    assert_eq!(publishes(&drain(&link)), vec![(0, false, 1)]);
    s.pump();
    assert_eq!(publishes(&drain(&link)), vec![(0, false, 2)]);
    assert!(!link.has_backlog());
    // A queued QoS 1 message without a window slot waits for an ack, which pumps anyway.
    let (mut s, link) = attached(limits());
    for n in 0..3 {
        s.deliver(delivery(QoS::AtLeastOnce, n), 0);
    }
    assert_eq!(s.queued_len(), 1);
    assert!(!link.has_backlog());
    s.on_puback(1).expect("a QoS 1 ack");
    assert_eq!(
        publishes(&drain(&link)),
        vec![(1, false, 0), (2, false, 1), (3, false, 2)]
    );
}
