//! Behaviour that depends on shards: fan-out across shards, takeover of one client id from many
//! connections (whatever shard accepted them), a subscription active on every shard when its
//! SUBACK arrives, and persistent sessions resumed through hand-over.

use crate::common::*;
use bytestring::ByteString;
use ringmq::codec::{Packet, Properties, Protocol, SubOptions, Subscribe};
use std::time::Duration;

shard_tests!(
    cross_shard_fan_out_reaches_every_subscriber,
    takeover_of_one_client_id_from_several_connections,
    subscription_is_active_on_every_shard_when_its_suback_arrives,
    persistent_session_resumes_whichever_shard_accepts_the_connection,
    packets_pipelined_after_connect_survive_the_hand_over,
    unsubscribing_on_one_shard_keeps_delivery_to_the_other,
);

async fn cross_shard_fan_out_reaches_every_subscriber(shards: usize) {
    const CLIENTS: usize = 20;
    const EACH: usize = 5;
    let b = Broker::start(shards).await;
    let mut subs = Vec::new();
    for i in 0..CLIENTS {
        let v = if i % 2 == 0 { Version::V3 } else { Version::V5 };
        let mut s = Client::connect(&b, v, &b.id(&format!("fan-sub-{i}"), i)).await;
        assert_eq!(s.subscribe("fan/#", 1).await, 1);
        subs.push(s);
    }
    let mut pubs = Vec::new();
    for i in 0..CLIENTS {
        let v = if i % 2 == 0 { Version::V5 } else { Version::V3 };
        pubs.push(Client::connect(&b, v, &b.id(&format!("fan-pub-{i}"), i + 1)).await);
    }
    for n in 0..EACH {
        for (i, p) in pubs.iter_mut().enumerate() {
            p.publish(&format!("fan/{i}"), 1, format!("{i}:{n}"), false)
                .await;
        }
    }
    for p in &mut pubs {
        p.settle().await;
    }
    for s in &mut subs {
        let got = s.recv_n(CLIENTS * EACH, Duration::from_secs(5)).await;
        // Every message once, and each publisher's messages in order.
        let mut next = vec![0usize; CLIENTS];
        for m in &got {
            let (i, n) = m
                .text()
                .split_once(':')
                .map(|(i, n)| {
                    (
                        i.parse::<usize>().expect("publisher"),
                        n.parse::<usize>().expect("seq"),
                    )
                })
                .expect("i:n");
            assert_eq!(
                n, next[i],
                "{}: publisher {i} out of order or duplicated",
                s.id
            );
            next[i] += 1;
        }
        assert!(next.iter().all(|&n| n == EACH), "{}: {next:?}", s.id);
        s.expect_nothing(Duration::from_millis(100)).await;
    }
}

async fn takeover_of_one_client_id_from_several_connections(shards: usize) {
    const CONNECTIONS: usize = 6;
    let b = Broker::start(shards).await;
    // One after the other: each new connection closes the previous one (v5: 0x8E).
    let mut previous: Option<Client> = None;
    for i in 0..CONNECTIONS {
        let v = if i % 2 == 0 { Version::V5 } else { Version::V3 };
        let c = Client::connect(&b, v, "contested").await;
        if let Some(mut old) = previous.take() {
            let closed = old
                .closed(WAIT)
                .await
                .expect("the older connection is closed");
            if old.version.is_v5() {
                assert_eq!(closed.reason, Some(0x8E), "{closed:?}");
            }
        }
        previous = Some(c);
    }
    let mut last = previous.expect("a last connection");
    assert_eq!(last.subscribe("contested/t", 1).await, 1);

    // All at once: exactly one connection survives, and it serves.
    let mut raws = Vec::new();
    for _ in 0..CONNECTIONS {
        raws.push(Raw::open(&b).await);
    }
    let connect = encode(
        &Packet::Connect(Box::new(connect_packet(Protocol::V5, "stampede"))),
        Protocol::V5,
    );
    for r in &mut raws {
        r.protocol = Protocol::V5;
        r.send_bytes(&connect).await;
    }
    let mut alive = Vec::new();
    for mut r in raws {
        assert!(matches!(r.recv().await, Packet::ConnAck(a) if a.code == 0));
        match r.next(Duration::from_millis(500)).await {
            Got::Timeout => alive.push(r),
            Got::Packet(Packet::Disconnect(d)) => assert_eq!(d.reason, 0x8E),
            other => panic!("expected DISCONNECT 0x8E or nothing, got {other:?}"),
        }
    }
    assert_eq!(alive.len(), 1, "exactly one connection keeps the client id");
    alive[0].ping().await;
}

async fn subscription_is_active_on_every_shard_when_its_suback_arrives(shards: usize) {
    let b = Broker::start(shards).await;
    let mut pubs = Vec::new();
    for shard in 0..2 {
        pubs.push(
            Client::connect(&b, Version::V5, &b.id(&format!("quick-pub{shard}"), shard)).await,
        );
    }
    for round in 0..10 {
        let topic = format!("quick/{round}");
        let mut sub =
            Client::connect(&b, Version::V3, &b.id(&format!("quick-sub{round}"), round)).await;
        assert_eq!(sub.subscribe(&topic, 1).await, 1);
        // Published the moment SUBACK arrives, from the other shard (and from the same one).
        for p in &mut pubs {
            p.publish(&topic, 1, "now", false).await;
        }
        let got = sub.recv_n(2, WAIT).await;
        assert!(got.iter().all(|m| m.text() == "now"), "round {round}");
    }
}

async fn persistent_session_resumes_whichever_shard_accepts_the_connection(shards: usize) {
    let b = Broker::start(shards).await;
    let mut p = Client::connect(&b, Version::V3, &b.id("resume-pub", 1)).await;
    let id = b.id("wanderer", 0);
    let mut c = Client::connect_with(&b, Version::V5, &id, Opts::persistent()).await;
    assert_eq!(c.subscribe("wander/t", 1).await, 1);
    // Reconnect repeatedly: the kernel accepts on either shard, the home shard resumes.
    for round in 0..6 {
        c.kill().await;
        p.publish_settled("wander/t", 1, format!("m{round}"), false)
            .await;
        c = Client::connect_with(&b, Version::V5, &id, Opts::persistent()).await;
        assert!(c.connack.session_present, "round {round}");
        assert_eq!(c.recv().await.text(), format!("m{round}"));
    }
}

async fn packets_pipelined_after_connect_survive_the_hand_over(shards: usize) {
    let b = Broker::start(shards).await;
    // CONNECT, SUBSCRIBE and PUBLISH in one write: when the kernel accepts the connection on a
    // shard other than the client id's home, the bytes read past the CONNECT travel with it.
    for i in 0..8 {
        let protocol = if i % 2 == 0 {
            Protocol::V311
        } else {
            Protocol::V5
        };
        let topic = format!("pipe/{i}");
        let subscribe = Packet::Subscribe(Subscribe {
            packet_id: 1,
            properties: Properties::default(),
            filters: vec![(
                ByteString::from(topic.as_str()),
                SubOptions {
                    qos: qos(1),
                    ..SubOptions::default()
                },
            )],
        });
        let connect = Packet::Connect(Box::new(connect_packet(
            protocol,
            &format!("pipelined-{i}"),
        )));
        let mut bytes = Vec::new();
        for p in [connect, subscribe, publish_packet(&topic, 1, 2, b"self")] {
            bytes.extend(encode(&p, protocol));
        }
        let mut raw = Raw::open(&b).await;
        raw.protocol = protocol;
        raw.send_bytes(&bytes).await;
        assert!(matches!(raw.recv().await, Packet::ConnAck(a) if a.code == 0));
        assert!(matches!(raw.recv().await, Packet::SubAck(s) if s.codes == [1]));
        let mut rest = raw
            .recv_n(2)
            .await
            .into_iter()
            .map(success)
            .collect::<Vec<_>>();
        rest.sort_by_key(|p| matches!(p, Packet::Publish(_)));
        assert_eq!(rest[0], Packet::PubAck(ack(2)), "connection {i}");
        assert!(
            matches!(&rest[1], Packet::Publish(p) if &p.payload[..] == b"self"),
            "connection {i}: {:?}",
            rest[1]
        );
    }
}

async fn unsubscribing_on_one_shard_keeps_delivery_to_the_other(shards: usize) {
    let b = Broker::start(shards).await;
    let mut subs = [
        Client::connect(&b, Version::V3, &b.id("both-a", 0)).await,
        Client::connect(&b, Version::V5, &b.id("both-b", 1)).await,
    ];
    let mut pubs = [
        Client::connect(&b, Version::V5, &b.id("both-p0", 0)).await,
        Client::connect(&b, Version::V3, &b.id("both-p1", 1)).await,
    ];
    for s in &mut subs {
        assert_eq!(s.subscribe("both/t", 1).await, 1);
    }
    // Each subscriber in turn is the only one left.
    for leaving in 0..2 {
        let staying = 1 - leaving;
        subs[leaving].unsubscribe("both/t").await;
        for (i, p) in pubs.iter_mut().enumerate() {
            p.publish_settled("both/t", 1, format!("{leaving}-from{i}"), false)
                .await;
        }
        let mut got = texts(&subs[staying].recv_n(2, WAIT).await);
        got.sort();
        assert_eq!(
            got,
            [format!("{leaving}-from0"), format!("{leaving}-from1")]
        );
        subs[leaving].expect_nothing(QUIET).await;
        assert_eq!(subs[leaving].subscribe("both/t", 1).await, 1);
    }
}
