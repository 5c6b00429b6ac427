//! Area 19: idle connections sleep without a task (`hibernate_idle_ms`, src/net/dormant.rs),
//! and a sleeping connection behaves as an awake one: deliveries, pings, acknowledgement flows
//! under way, keep alive, takeover, a lost socket (its will) and shutdown. The broker's
//! `connections_asleep` gauge (`/metrics`) shows they really slept. Brokers here sleep idle
//! connections after 200–400 ms (one to two sweeps of 200 ms).

use crate::broker_process::PortLease;
use crate::common::*;
use ringmq::codec::{Packet, Properties, Protocol, QoS, Will};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

shard_tests!(
    idle_subscribers_sleep_and_wake_for_deliveries_and_pings,
    qos2_flows_under_way_carry_on_across_sleep,
    a_sleeping_client_is_closed_by_keep_alive_and_its_will_goes_out,
    a_sleeping_client_is_taken_over_with_0x8e,
    a_sleeping_client_that_goes_away_publishes_its_will,
    sigterm_wakes_sleeping_v5_clients_with_0x8b,
    hibernation_off_keeps_every_connection_awake,
);

/// A broker with the metrics endpoint on a leased port and `hibernate_idle_ms` = `idle_ms`.
struct Sleepy {
    b: Broker,
    http: u16,
    _lease: PortLease,
    _dir: tempfile::TempDir,
}

impl Sleepy {
    async fn start(shards: usize, idle_ms: &str) -> Sleepy {
        let lease = PortLease::acquire();
        let dir = tempfile::tempdir().expect("scratch dir");
        let bind = format!("127.0.0.1:{}", lease.port);
        let users = dir.path().join("admin-users");
        let users = users.to_string_lossy().into_owned();
        let args = [
            "--http-bind",
            &bind,
            "--admin-users-file",
            &users,
            "--hibernate-idle-ms",
            idle_ms,
        ];
        let b = Broker::with(shards, &args).await;
        Sleepy {
            b,
            http: lease.port,
            _lease: lease,
            _dir: dir,
        }
    }

    /// `ringmq_connections_asleep` from `/metrics` (None until the HTTP side answers).
    async fn asleep(&self) -> Option<u64> {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.http))
            .await
            .ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .await
            .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).await.ok()?;
        body.lines()
            .find_map(|l| l.strip_prefix("ringmq_connections_asleep "))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Wait until exactly `n` connections sleep (the gauge is reported about once a second).
    async fn wait_asleep(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(6);
        let mut last = None;
        while Instant::now() < deadline {
            last = self.asleep().await;
            if last == Some(n) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("expected {n} connections asleep, the gauge said {last:?}");
    }
}

const IDLE_MS: &str = "400";

async fn idle_subscribers_sleep_and_wake_for_deliveries_and_pings(shards: usize) {
    let s = Sleepy::start(shards, IDLE_MS).await;
    let b = &s.b;
    let mut subs = Vec::new();
    for i in 0..8 {
        let v = if i % 2 == 0 { Version::V3 } else { Version::V5 };
        let mut c = Client::connect(b, v, &b.id(&format!("zz-sub{i}"), i)).await;
        assert_eq!(c.subscribe(&format!("zz/{i}"), 1).await, 1);
        subs.push(c);
    }
    s.wait_asleep(8).await;
    // A publisher on the other shard wakes each subscriber with a delivery.
    let mut p = Client::connect(b, Version::V5, &b.id("zz-pub", 1)).await;
    for round in 0..2 {
        for i in 0..8 {
            p.publish(&format!("zz/{i}"), 1, format!("m{round}-{i}"), false)
                .await;
        }
        p.settle().await;
        for (i, c) in subs.iter_mut().enumerate() {
            let m = c.recv().await;
            assert_eq!(m.text(), format!("m{round}-{i}"), "delivered to a sleeper");
            assert_eq!(m.qos, 1);
        }
        // Everybody (the publisher too) falls asleep again, and the next round wakes them.
        s.wait_asleep(9).await;
    }
    // A sleeping raw client's PINGREQ wakes it and is answered.
    let mut raw = Raw::connect(b, Protocol::V5, &b.id("zz-raw", 0)).await;
    s.wait_asleep(10).await;
    raw.ping().await;
    raw.ping().await;
    for c in subs.iter_mut() {
        c.expect_nothing(Duration::from_millis(50)).await;
    }
}

async fn qos2_flows_under_way_carry_on_across_sleep(shards: usize) {
    let s = Sleepy::start(shards, IDLE_MS).await;
    let b = &s.b;
    let mut sub = Raw::connect(b, Protocol::V5, &b.id("zq-sub", 0)).await;
    assert_eq!(sub.subscribe("zq/t", 2).await, [2]);
    let mut publ = Raw::connect(b, Protocol::V5, &b.id("zq-pub", 1)).await;
    // Incoming QoS 2: PUBLISH answered PUBREC, then both sleep before the PUBREL.
    publ.send(publish_packet("zq/t", 2, 7, b"two")).await;
    match success(publ.recv().await) {
        Packet::PubRec(a) => assert_eq!((a.packet_id, a.reason), (7, 0)),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    // Outgoing QoS 2: the subscriber has the PUBLISH and answers nothing yet.
    let d = sub.recv_publish().await;
    assert_eq!(&d.payload[..], b"two");
    s.wait_asleep(2).await;
    publ.send(Packet::PubRel(ack(7))).await;
    match publ.recv().await {
        Packet::PubComp(a) => assert_eq!(a.packet_id, 7),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    s.wait_asleep(2).await;
    sub.send(Packet::PubRec(ack(d.packet_id))).await;
    match sub.recv().await {
        Packet::PubRel(a) => assert_eq!(a.packet_id, d.packet_id),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    s.wait_asleep(2).await;
    sub.send(Packet::PubComp(ack(d.packet_id))).await;
    // Delivered exactly once: the same id is free for the next message.
    publ.send(publish_packet("zq/t", 2, 7, b"again")).await;
    assert!(matches!(success(publ.recv().await), Packet::PubRec(_)));
    publ.send(Packet::PubRel(ack(7))).await;
    assert!(matches!(publ.recv().await, Packet::PubComp(_)));
    let d2 = sub.recv_publish().await;
    assert_eq!(&d2.payload[..], b"again");
    sub.expect_silence(QUIET).await;
}

/// A v5 client on `shard` with keep alive `keep_alive_s` and a QoS 1 will on `zw/<name>`.
async fn with_will(b: &Broker, name: &str, shard: usize, keep_alive_s: u16) -> Raw {
    let mut c = connect_packet(Protocol::V5, &b.id(name, shard));
    c.keep_alive_s = keep_alive_s;
    c.will = Some(Will {
        topic: format!("zw/{name}").as_str().into(),
        payload: "gone".into(),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Properties::default(),
    });
    let (raw, ack) = Raw::handshake(b, c).await;
    assert_eq!(ack.code, 0);
    raw
}

async fn a_sleeping_client_is_closed_by_keep_alive_and_its_will_goes_out(shards: usize) {
    let s = Sleepy::start(shards, IDLE_MS).await;
    let b = &s.b;
    let mut w = Client::connect(b, Version::V5, &b.id("zw-watch", 1)).await;
    assert_eq!(w.subscribe("zw/#", 1).await, 1);
    let t0 = Instant::now();
    let mut quiet = with_will(b, "quiet", 0, 3).await;
    // Asleep long before its keep alive (4.5 s) runs out; the watcher sleeps too.
    s.wait_asleep(2).await;
    assert!(t0.elapsed() < Duration::from_millis(4000), "slept first");
    let seen = quiet.expect_close(Duration::from_secs(6)).await;
    match seen.last() {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, 0x8D, "keep alive timeout"),
        other => panic!("expected DISCONNECT 0x8D, got {other:?}"),
    }
    assert_between(t0.elapsed(), 4000, 6500, "closed at 1.5 x keep alive");
    let m = w.recv().await;
    assert_eq!((m.topic.as_str(), m.text().as_str()), ("zw/quiet", "gone"));
}

async fn a_sleeping_client_is_taken_over_with_0x8e(shards: usize) {
    let s = Sleepy::start(shards, IDLE_MS).await;
    let b = &s.b;
    let id = b.id("zt", 0);
    let (mut old, _) = Raw::handshake(b, connect_packet(Protocol::V5, &id)).await;
    s.wait_asleep(1).await;
    let mut new = Raw::connect(b, Protocol::V5, &id).await;
    let seen = old.expect_close(WAIT).await;
    match seen.last() {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, 0x8E, "session taken over"),
        other => panic!("expected DISCONNECT 0x8E, got {other:?}"),
    }
    new.ping().await;
    s.wait_asleep(1).await;
    new.ping().await;
}

async fn a_sleeping_client_that_goes_away_publishes_its_will(shards: usize) {
    let s = Sleepy::start(shards, IDLE_MS).await;
    let b = &s.b;
    let mut w = Client::connect(b, Version::V3, &b.id("zg-watch", 1)).await;
    assert_eq!(w.subscribe("zw/#", 1).await, 1);
    let gone = with_will(b, "vanished", 0, 30).await;
    s.wait_asleep(2).await;
    gone.drop_connection().await;
    let m = w.recv().await;
    assert_eq!(
        (m.topic.as_str(), m.text().as_str()),
        ("zw/vanished", "gone")
    );
    s.wait_asleep(1).await;
    let mut probe = Raw::connect(b, Protocol::V311, &b.id("zg-probe", 0)).await;
    probe.ping().await;
}

async fn sigterm_wakes_sleeping_v5_clients_with_0x8b(shards: usize) {
    let mut s = Sleepy::start(shards, IDLE_MS).await;
    let mut sleepers = Vec::new();
    for i in 0..4 {
        let (r, _) = Raw::handshake(
            &s.b,
            connect_packet(Protocol::V5, &s.b.id(&format!("zs{i}"), i)),
        )
        .await;
        sleepers.push(r);
    }
    s.wait_asleep(4).await;
    let status = s.b.terminate(Duration::from_secs(8)).await;
    assert!(status.is_some_and(|st| st.success()), "exits 0: {status:?}");
    for r in sleepers.iter_mut() {
        let seen = r.expect_close(WAIT).await;
        match seen.last() {
            Some(Packet::Disconnect(d)) => assert_eq!(d.reason, 0x8B, "server shutting down"),
            other => panic!("expected DISCONNECT 0x8B, got {other:?}"),
        }
    }
}

async fn hibernation_off_keeps_every_connection_awake(shards: usize) {
    let s = Sleepy::start(shards, "0").await;
    let b = &s.b;
    let mut c = Raw::connect(b, Protocol::V311, &b.id("zoff", 0)).await;
    // Two seconds: the gauge has been reported and any sweep would have run many times.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s.asleep().await, Some(0));
    c.ping().await;
}
