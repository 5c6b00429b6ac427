//! The engine without sockets: a shard built in memory, connections that are only links, and
//! a clock the tests set. What a client would read is the link's output buffer, decoded.

use super::*;
use crate::codec::{decode, Connect, Publish, QoS, SubOptions, Subscribe, Will};
use crate::config::Config;
use crate::session::ConnLink;
use crate::shard::Shard;
use bytes::{Bytes, BytesMut};
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

fn ctx_with(shards: usize, tune: impl FnOnce(&mut Config)) -> ShardCtx {
    let mut cfg = Config::default();
    tune(&mut cfg);
    let cfg = Rc::new(cfg);
    ShardCtx {
        shard: Rc::new(RefCell::new(Shard::new(0, shards, cfg.clone()))),
        cfg,
        auth: Arc::new(crate::auth::Registry::default()),
        admission: Arc::new(crate::net::admission::Admission::open_door()),
    }
}

fn ctx() -> ShardCtx {
    ctx_with(1, |_| {})
}

fn connect_packet(id: &str, protocol: Protocol, keep_alive_s: u16) -> Box<Connect> {
    Box::new(Connect {
        protocol,
        clean_start: true,
        keep_alive_s,
        properties: Properties::default(),
        client_id: id.into(),
        will: None,
        username: None,
        password: None,
    })
}

fn open(ctx: &ShardCtx, c: Box<Connect>) -> (Engine, Rc<ConnLink>) {
    let link = Rc::new(ConnLink::new());
    let e = match Engine::open(ctx, link.clone(), c, false, None, Default::default()) {
        Ok(e) => e,
        Err(Refused) => panic!("CONNECT refused: {:?}", drain(&link, Protocol::V5)),
    };
    (e, link)
}

fn client(ctx: &ShardCtx, id: &str) -> (Engine, Rc<ConnLink>) {
    let (e, link) = open(ctx, connect_packet(id, Protocol::V5, 0));
    assert!(matches!(
        drain(&link, Protocol::V5)[..],
        [Packet::ConnAck(_)]
    ));
    (e, link)
}

/// Every packet the client would read now.
fn drain(link: &ConnLink, protocol: Protocol) -> Vec<Packet> {
    let mut buf = BytesMut::from(&link.with_out(|o| o.take_all())[..]);
    let mut out = Vec::new();
    while let Ok(Some(p)) = decode(&mut buf, protocol, 1 << 20) {
        out.push(p);
    }
    assert!(
        buf.is_empty(),
        "undecodable bytes left in the output buffer"
    );
    out
}

fn subscribe(e: &mut Engine, filter: &str, qos: QoS) -> Step {
    e.handle(Packet::Subscribe(Subscribe {
        packet_id: 1,
        properties: Properties::default(),
        filters: vec![(
            filter.into(),
            SubOptions {
                qos,
                ..Default::default()
            },
        )],
    }))
    .expect("SUBSCRIBE accepted")
}

fn publish(topic: &str, qos: QoS, packet_id: u16) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        packet_id,
        properties: Properties::default(),
        payload: Bytes::from_static(b"x"),
    })
}

fn ack(packet_id: u16) -> Ack {
    Ack {
        packet_id,
        reason: 0,
        properties: Properties::default(),
    }
}

fn puback_ids(packets: &[Packet]) -> Vec<u16> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::PubAck(a) => Some(a.packet_id),
            _ => None,
        })
        .collect()
}

#[test]
fn qos1_publish_is_routed_then_acknowledged() {
    let ctx = ctx();
    let (mut sub, sub_link) = client(&ctx, "sub");
    assert!(matches!(
        subscribe(&mut sub, "t/#", QoS::AtLeastOnce),
        Step::Done
    ));
    assert!(matches!(&drain(&sub_link, Protocol::V5)[..], [Packet::SubAck(s)] if s.codes == [1]));
    let (mut publ, pub_link) = client(&ctx, "pub");
    assert!(matches!(
        publ.handle(publish("t/a", QoS::AtLeastOnce, 7)),
        Ok(Step::Done)
    ));
    assert_eq!(puback_ids(&drain(&pub_link, Protocol::V5)), [7]);
    let got = drain(&sub_link, Protocol::V5);
    assert!(
        matches!(&got[..], [Packet::Publish(p)] if &*p.topic == "t/a" && p.qos == QoS::AtLeastOnce)
    );
}

#[test]
fn a_congested_subscriber_holds_the_puback_until_it_drains() {
    let ctx = ctx_with(1, |c| {
        c.inflight_max = 1;
        c.queued_messages_max = 4;
    });
    let (mut sub, sub_link) = client(&ctx, "sub");
    subscribe(&mut sub, "t", QoS::AtLeastOnce);
    drain(&sub_link, Protocol::V5);
    let (mut publ, pub_link) = client(&ctx, "pub");
    let mut sent = 0u16;
    while !publ.is_held() {
        sent += 1;
        assert!(sent < 20, "never held back");
        publ.handle(publish("t", QoS::AtLeastOnce, sent))
            .expect("PUBLISH");
    }
    // Every PUBACK but the one whose message filled the queue.
    let acked = puback_ids(&drain(&pub_link, Protocol::V5));
    assert_eq!(acked, (1..sent).collect::<Vec<_>>());
    publ.resume();
    assert!(
        drain(&pub_link, Protocol::V5).is_empty(),
        "PUBACK sent while held"
    );
    // The subscriber acknowledges what it gets until the hold ends.
    let mut rounds = 0;
    while publ.is_held() {
        rounds += 1;
        assert!(rounds < 20, "the hold never ended");
        for p in drain(&sub_link, Protocol::V5) {
            if let Packet::Publish(m) = p {
                sub.handle(Packet::PubAck(ack(m.packet_id)))
                    .expect("PUBACK");
            }
        }
        sub.pump_if_drained();
    }
    publ.resume();
    assert_eq!(puback_ids(&drain(&pub_link, Protocol::V5)), [sent]);
}

#[test]
fn qos2_pubrec_goes_before_the_message_reaches_its_own_publisher() {
    let ctx = ctx();
    let (mut c, link) = client(&ctx, "self");
    subscribe(&mut c, "t", QoS::ExactlyOnce);
    drain(&link, Protocol::V5);
    c.handle(publish("t", QoS::ExactlyOnce, 9))
        .expect("PUBLISH");
    let got = drain(&link, Protocol::V5);
    assert!(
        matches!(&got[..], [Packet::PubRec(r), Packet::Publish(_)] if r.packet_id == 9),
        "{got:?}"
    );
    // A retransmission is acknowledged and not routed twice.
    c.handle(publish("t", QoS::ExactlyOnce, 9))
        .expect("PUBLISH again");
    assert!(matches!(
        &drain(&link, Protocol::V5)[..],
        [Packet::PubRec(_)]
    ));
    c.handle(Packet::PubRel(ack(9))).expect("PUBREL");
    assert!(matches!(&drain(&link, Protocol::V5)[..], [Packet::PubComp(a)] if a.reason == 0));
}

#[test]
fn an_ack_of_the_wrong_kind_is_a_protocol_error() {
    let ctx = ctx();
    let (mut sub, sub_link) = client(&ctx, "sub");
    subscribe(&mut sub, "t", QoS::AtLeastOnce);
    let (mut publ, _) = client(&ctx, "pub");
    publ.handle(publish("t", QoS::AtLeastOnce, 1))
        .expect("PUBLISH");
    let id = drain(&sub_link, Protocol::V5)
        .into_iter()
        .find_map(|p| match p {
            Packet::Publish(m) => Some(m.packet_id),
            _ => None,
        })
        .expect("delivered");
    // PUBCOMP for a QoS 1 delivery.
    assert!(matches!(
        sub.handle(Packet::PubComp(ack(id))),
        Err(Close::Protocol(0x82))
    ));
}

#[test]
fn server_only_packets_from_a_client_are_protocol_errors() {
    let ctx = ctx();
    let (mut c, _) = client(&ctx, "c");
    assert!(matches!(
        c.handle(Packet::PingResp),
        Err(Close::Protocol(0x82))
    ));
    let again = connect_packet("c", Protocol::V5, 0);
    assert!(matches!(
        c.handle(Packet::Connect(again)),
        Err(Close::Protocol(0x82))
    ));
}

#[test]
fn a_second_connect_takes_the_session_over() {
    let ctx = ctx();
    let (_old, old_link) = client(&ctx, "same");
    let (_new, _) = client(&ctx, "same");
    assert_eq!(old_link.close_requested(), Some(0x8E));
}

#[test]
fn keep_alive_is_decided_on_the_shards_timers_with_the_links_last_read() {
    let ctx = ctx();
    // Keep alive 1 s: closed after 1.5 s without a byte [MQTT-3.1.2-24].
    let (_c, link) = open(&ctx, connect_packet("ka", Protocol::V5, 1));
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    ctx.shard.borrow_mut().fire_timers(at(1000));
    assert_eq!(link.close_requested(), None);
    // Bytes at 1.2 s move the deadline to 2.7 s: the timer that fires at 1.5 s re-arms.
    link.touch(crate::clock::ms_at(at(1200)));
    ctx.shard.borrow_mut().fire_timers(at(1600));
    ctx.shard.borrow_mut().fire_timers(at(2500));
    assert_eq!(link.close_requested(), None);
    ctx.shard.borrow_mut().fire_timers(at(2800));
    assert_eq!(link.close_requested(), Some(0x8D));
    assert_eq!(Close::requested(0x8D), Close::KeepAlive);
}

#[test]
fn keep_alive_zero_is_never_watched() {
    let ctx = ctx();
    let (_c, link) = client(&ctx, "none");
    ctx.shard
        .borrow_mut()
        .fire_timers(Instant::now() + Duration::from_secs(3600));
    assert_eq!(link.close_requested(), None);
}

#[test]
fn a_lost_connection_publishes_its_will_and_a_normal_one_does_not() {
    for (close, expected) in [(Close::Lost, 1), (Close::Normal, 0)] {
        let ctx = ctx();
        let (mut watcher, wlink) = client(&ctx, "watcher");
        subscribe(&mut watcher, "will/#", QoS::AtMostOnce);
        drain(&wlink, Protocol::V5);
        let mut c = connect_packet("dying", Protocol::V5, 0);
        c.will = Some(Will {
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "will/dying".into(),
            payload: Bytes::from_static(b"gone"),
            properties: Properties::default(),
        });
        let (dying, _) = open(&ctx, c);
        dying.close(close);
        let wills = drain(&wlink, Protocol::V5)
            .into_iter()
            .filter(|p| matches!(p, Packet::Publish(m) if &*m.topic == "will/dying"))
            .count();
        assert_eq!(wills, expected, "{close:?}");
    }
}

#[test]
fn with_peers_suback_waits_for_their_confirmation() {
    let ctx = ctx_with(2, |_| {});
    let (mut c, link) = client(&ctx, "two-shards");
    let Step::AwaitMesh(pending) = subscribe(&mut c, "a/b", QoS::AtMostOnce) else {
        panic!("a new filter must wait for the peer shard");
    };
    assert!(
        drain(&link, Protocol::V5).is_empty(),
        "SUBACK before the peers confirmed"
    );
    for &t in &pending.tokens {
        ctx.shard.borrow_mut().on_ack(t);
        assert!(ctx.shard.borrow_mut().take_ack_done(t));
    }
    c.finish_subscribe(*pending, true);
    assert!(matches!(&drain(&link, Protocol::V5)[..], [Packet::SubAck(s)] if s.codes == [0]));
}

#[test]
fn a_connect_disconnect_loop_keeps_one_timer_per_session() {
    let ctx = ctx_with(1, |c| c.session_expiry_max_s = 0);
    for _ in 0..500 {
        let mut c = connect_packet("loop", Protocol::V5, 30);
        c.clean_start = false;
        c.properties.session_expiry_interval_s = Some(3600);
        let (e, _) = open(&ctx, c);
        e.close(Close::Normal);
    }
    let shard = ctx.shard.borrow();
    assert_eq!(shard.sessions.len(), 1);
    assert!(
        shard.timer_entries() <= 200,
        "{} timer entries",
        shard.timer_entries()
    );
}

/// A group's stored forward names its member by client id alone (uids do not survive a
/// restart). A clean start that took that client id over since the owner's pick is a new
/// session outside the group: the message must go to a member, not into that session, where
/// it would sit only in memory while the forward is confirmed (and a crash would lose it).
#[test]
fn a_stored_share_skips_a_session_outside_the_group() {
    let ctx = ctx();
    let (mut member, member_link) = client(&ctx, "member");
    subscribe(&mut member, "$share/g/t/#", QoS::AtLeastOnce);
    drain(&member_link, Protocol::V5);
    // "taken" was a member once; its session now is a clean start with no subscription.
    let (_taken, taken_link) = client(&ctx, "taken");
    let msg = Arc::new(crate::session::Message::owned(
        "t/a",
        b"x",
        QoS::AtLeastOnce,
        false,
        Properties::default(),
        0,
    ));
    let target = crate::store::ShareTarget {
        key: "$share/g/t/#".into(),
        client_id: "taken".into(),
        qos: QoS::AtLeastOnce,
        identifier: 0,
        hop: crate::store::ShareHop::Member,
    };
    ctx.shard.borrow_mut().deliver_stored_share(msg, target);
    assert!(drain(&taken_link, Protocol::V5).is_empty());
    let got = drain(&member_link, Protocol::V5);
    assert!(
        matches!(&got[..], [Packet::Publish(p)] if &*p.topic == "t/a"),
        "the member got {got:?}"
    );
}
