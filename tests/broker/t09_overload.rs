//! Area 09: overload. A subscriber slower than its publishers, a stalled one beside healthy
//! traffic, large QoS 0 messages into subscribers that keep reading, and the `drop` policy.
//! Publishers and subscribers are rumqttc clients with deep windows (the regime where a broker
//! that drops at its queue bound loses acknowledged messages); the queue bound is set low so
//! every run is far past it.

use crate::common::*;
use ringmq::codec::{Packet, Protocol};
use std::collections::HashMap;
use std::time::Duration;
use tokio::task::JoinHandle;

version_tests!(
    slow_subscriber_holds_publishers_back_and_loses_nothing,
    qos2_fan_in_past_the_queue_bound_loses_nothing,
);
shard_tests!(
    stalled_subscriber_is_disconnected_and_other_traffic_keeps_flowing,
    qos0_large_messages_to_reading_subscribers_lose_nothing,
    drop_policy_drops_past_the_bound_and_counts,
);

/// Payload `"<publisher>:<seq>:"` padded to `len` bytes.
fn payload(publisher: usize, seq: usize, len: usize) -> Vec<u8> {
    let mut p = format!("{publisher}:{seq}:").into_bytes();
    p.resize(len.max(p.len()), b'.');
    p
}

fn parse(p: &[u8]) -> (usize, usize) {
    let s = String::from_utf8_lossy(p);
    let mut it = s.split(':');
    let a = it.next().and_then(|x| x.parse().ok()).expect("publisher");
    let b = it.next().and_then(|x| x.parse().ok()).expect("seq");
    (a, b)
}

/// The publishing loop, the same for rumqttc's v3.1.1 and v5 clients: `Event`, `P` (the
/// packet enum) and `Outgoing` must be in scope where it expands.
macro_rules! publish_and_count {
    ($c:ident, $el:ident, $qos:expr, $qos1:expr, $topic:ident, ($index:ident, $n:ident, $q:ident, $len:ident)) => {{
        let (c, qos) = ($c, $qos);
        tokio::spawn(async move {
            for seq in 0..$n {
                let p = payload($index, seq, $len);
                if c.publish($topic.clone(), qos, false, p).await.is_err() {
                    return;
                }
            }
            if $q == 0 {
                // QoS 0 has no ack: a final QoS 1 message's PUBACK says the broker took
                // everything before it.
                let _ = c
                    .publish($topic, $qos1, false, payload($index, $n, $len))
                    .await;
            }
        });
        let (mut done, mut end) = (0, $q > 0);
        while done < $n || !end {
            match $el.poll().await {
                Ok(Event::Incoming(P::PubAck(_))) if $q == 0 => end = true,
                Ok(Event::Incoming(P::PubAck(_) | P::PubComp(_))) => done += 1,
                Ok(Event::Outgoing(Outgoing::Publish(_))) if $q == 0 => done += 1,
                Ok(_) => {}
                Err(e) => panic!("publisher {}: {e}", $index),
            }
        }
        done.min($n)
    }};
}

/// A rumqttc publisher of `n` messages at QoS `q` with a window of `inflight`; resolves to the
/// number of them the broker acknowledged (PUBACK / PUBCOMP) within `within`. At QoS 0 it
/// sends one more, at QoS 1 (seq `n`), and counts the n only once that one is acknowledged.
fn publisher(
    b: &Broker,
    v: Version,
    id: String,
    topic: String,
    (index, n, q, len): (usize, usize, u8, usize),
    inflight: u16,
    within: Duration,
) -> JoinHandle<usize> {
    let port = b.port;
    tokio::spawn(async move {
        let work = async {
            match v {
                Version::V3 => {
                    use rumqttc::{Event, Outgoing, Packet as P};
                    let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
                    o.set_inflight(inflight)
                        .set_keep_alive(Duration::from_secs(30))
                        .set_max_packet_size(1 << 20, 1 << 20);
                    let (c, mut el) = rumqttc::AsyncClient::new(o, 64);
                    let qos = rumqttc::qos(q).expect("qos");
                    let qos1 = rumqttc::QoS::AtLeastOnce;
                    publish_and_count!(c, el, qos, qos1, topic, (index, n, q, len))
                }
                Version::V5 => {
                    use rumqttc::v5::mqttbytes::v5::Packet as P;
                    use rumqttc::v5::Event;
                    use rumqttc::Outgoing;
                    let mut o = rumqttc::v5::MqttOptions::new(id, "127.0.0.1", port);
                    o.set_keep_alive(Duration::from_secs(30))
                        .set_outgoing_inflight_upper_limit(inflight);
                    let (c, mut el) = rumqttc::v5::AsyncClient::new(o, 64);
                    let qos = rumqttc::v5::mqttbytes::qos(q).expect("qos");
                    let qos1 = rumqttc::v5::mqttbytes::QoS::AtLeastOnce;
                    publish_and_count!(c, el, qos, qos1, topic, (index, n, q, len))
                }
            }
        };
        tokio::time::timeout(within, work).await.unwrap_or(0)
    })
}

/// The subscriber's reading loop, the same for both rumqttc clients (`Event` and `P` in scope).
macro_rules! read_slowly {
    ($el:ident, $got:ident, $ready:ident, ($expect:ident, $every:ident, $pause:ident)) => {
        while $got.len() < $expect {
            match $el.poll().await {
                Ok(Event::Incoming(P::SubAck(_))) => {
                    $ready.take().map(|t| t.send(()));
                }
                Ok(Event::Incoming(P::Publish(p))) => {
                    $got.push(parse(&p.payload));
                    if $got.len() % $every == 0 {
                        tokio::time::sleep($pause).await;
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("subscriber: {e}"),
            }
        }
    };
}

/// A rumqttc subscriber of `filter` at QoS `q` that reads `expect` messages, pausing `pause`
/// after every `every` of them (a slow consumer); resolves to (publisher, seq) of each message
/// in arrival order.
async fn subscriber(
    b: &Broker,
    v: Version,
    id: &str,
    filter: &str,
    q: u8,
    (expect, every, pause): (usize, usize, Duration),
    within: Duration,
) -> JoinHandle<Vec<(usize, usize)>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (port, id, filter) = (b.port, id.to_string(), filter.to_string());
    let task = tokio::spawn(async move {
        let mut got = Vec::with_capacity(expect);
        let mut ready = Some(tx);
        let work = async {
            match v {
                Version::V3 => {
                    use rumqttc::{Event, Packet as P};
                    let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
                    o.set_keep_alive(Duration::from_secs(30))
                        .set_max_packet_size(1 << 20, 1 << 20);
                    let (c, mut el) = rumqttc::AsyncClient::new(o, 64);
                    c.subscribe(filter, rumqttc::qos(q).expect("qos"))
                        .await
                        .expect("subscribe");
                    read_slowly!(el, got, ready, (expect, every, pause));
                }
                Version::V5 => {
                    use rumqttc::v5::mqttbytes::v5::Packet as P;
                    use rumqttc::v5::Event;
                    let mut o = rumqttc::v5::MqttOptions::new(id, "127.0.0.1", port);
                    o.set_keep_alive(Duration::from_secs(30))
                        .set_max_packet_size(Some(1 << 20));
                    let (c, mut el) = rumqttc::v5::AsyncClient::new(o, 64);
                    c.subscribe(filter, rumqttc::v5::mqttbytes::qos(q).expect("qos"))
                        .await
                        .expect("subscribe");
                    read_slowly!(el, got, ready, (expect, every, pause));
                }
            }
        };
        let _ = tokio::time::timeout(within, work).await;
        got
    });
    rx.await.expect("subscribed");
    task
}

/// Every publisher's messages arrived, each once, in its own order.
fn assert_complete(got: &[(usize, usize)], publishers: usize, n: usize) {
    let mut next: HashMap<usize, usize> = HashMap::new();
    for &(p, seq) in got {
        let want = next.entry(p).or_insert(0);
        assert_eq!(
            seq, *want,
            "publisher {p}: message {seq} out of order or duplicated"
        );
        *want += 1;
    }
    for p in 0..publishers {
        let count = next.get(&p).copied().unwrap_or(0);
        assert_eq!(count, n, "publisher {p}: {count} of {n} messages arrived");
    }
}

const RUN: Duration = Duration::from_secs(15);

async fn fan_in_into_a_slow_subscriber(v: Version, shards: usize, q: u8) {
    // 4 publishers × 1000 in flight into one subscriber whose queue holds 50: without
    // back-pressure most of these would be dropped after their PUBACK.
    let b = Broker::with(
        shards,
        &["--queued-messages-max", "50", "--inflight-max", "20"],
    )
    .await;
    let (publishers, n) = (4, 1500);
    let sub = subscriber(
        &b,
        v,
        &b.id("slow-sub", 0),
        "ov/+",
        q,
        (publishers * n, 200, Duration::from_millis(20)),
        RUN,
    )
    .await;
    let pubs: Vec<_> = (0..publishers)
        .map(|i| {
            let id = b.id(&format!("fast-pub-{i}"), i + 1);
            publisher(&b, v, id, format!("ov/{i}"), (i, n, q, 64), 1000, RUN)
        })
        .collect();
    for (i, p) in pubs.into_iter().enumerate() {
        assert_eq!(
            p.await.expect("publisher task"),
            n,
            "publisher {i}: all acknowledged"
        );
    }
    let got = sub.await.expect("subscriber task");
    assert_complete(&got, publishers, n);
}

async fn slow_subscriber_holds_publishers_back_and_loses_nothing(v: Version, shards: usize) {
    fan_in_into_a_slow_subscriber(v, shards, 1).await;
}

async fn qos2_fan_in_past_the_queue_bound_loses_nothing(v: Version, shards: usize) {
    fan_in_into_a_slow_subscriber(v, shards, 2).await;
}

/// Messages of 1 KiB to the stalled subscriber: 20 MB, well past what loopback socket buffers
/// (several MB each way with autotuning), the 1 MiB output buffer and the 100-message queue hold
/// together, so its publisher must be held.
const STALLED_N: usize = 20_000;

async fn stalled_subscriber_is_disconnected_and_other_traffic_keeps_flowing(shards: usize) {
    let b = Broker::with(
        shards,
        &[
            "--queued-messages-max",
            "100",
            "--slow-subscriber-timeout-s",
            "4",
        ],
    )
    .await;
    // A v5 subscriber that subscribes and then never reads again.
    let (mut stalled, ack) =
        Raw::handshake(&b, connect_packet(Protocol::V5, &b.id("stalled", 0))).await;
    assert_eq!(ack.code, 0);
    assert_eq!(stalled.subscribe("st/slow", 1).await, [1]);
    let started = tokio::time::Instant::now();
    // Its publisher: far more than the socket buffers, the output buffer and the queue hold.
    let held = publisher(
        &b,
        Version::V3,
        b.id("held-pub", 1),
        "st/slow".into(),
        (0, STALLED_N, 1, 1024),
        1000,
        RUN,
    );
    // Beside it, a healthy pair on another topic must not notice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n = 2000;
    let healthy_sub = subscriber(
        &b,
        Version::V3,
        &b.id("ok-sub", 1),
        "st/ok",
        1,
        (n, usize::MAX, Duration::ZERO),
        RUN,
    )
    .await;
    let t0 = tokio::time::Instant::now();
    let healthy = publisher(
        &b,
        Version::V3,
        b.id("ok-pub", 0),
        "st/ok".into(),
        (7, n, 1, 64),
        100,
        RUN,
    );
    assert_eq!(healthy.await.expect("healthy publisher"), n);
    let healthy_took = t0.elapsed();
    let got = healthy_sub.await.expect("healthy subscriber");
    assert_eq!(got.len(), n, "the healthy pair lost nothing");
    assert!(
        healthy_took < Duration::from_millis(3500),
        "healthy traffic was not held up by the stalled subscriber (took {healthy_took:?})"
    );
    // The stalled subscriber is cut off after about 4 s without progress (0x97), which lets
    // its publisher finish.
    assert_eq!(
        held.await.expect("held publisher"),
        STALLED_N,
        "held publisher finished"
    );
    let freed = started.elapsed();
    assert!(
        freed >= Duration::from_secs(4),
        "the held publisher waited for the timeout ({freed:?})"
    );
    // Its connection is closed. The DISCONNECT 0x97 goes out behind megabytes the client never
    // read, so the broker gives up on it after its 1 s drain: if it arrived, it says 0x97.
    let seen = stalled.expect_close(Duration::from_secs(10)).await;
    assert!(
        !seen.is_empty(),
        "it had been sent messages before it stalled"
    );
    for p in &seen {
        match p {
            Packet::Publish(_) => {}
            Packet::Disconnect(d) => assert_eq!(d.reason, 0x97, "quota exceeded"),
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn qos0_large_messages_to_reading_subscribers_lose_nothing(shards: usize) {
    // 4 pairs of 16 KiB QoS 0 messages as fast as the publishers can write: 300 each is 4.8 MB
    // per subscriber, several times the 1 MiB output buffer.
    let b = Broker::start(shards).await;
    let (pairs, n) = (4, 300);
    let mut subs = Vec::new();
    for i in 0..pairs {
        let id = b.id(&format!("big-sub-{i}"), i);
        let topic = format!("big/{i}");
        subs.push(
            subscriber(
                &b,
                Version::V3,
                &id,
                &topic,
                0,
                (n + 1, 50, Duration::from_millis(5)),
                RUN,
            )
            .await,
        );
    }
    let pubs: Vec<_> = (0..pairs)
        .map(|i| {
            let id = b.id(&format!("big-pub-{i}"), i + 1);
            publisher(
                &b,
                Version::V3,
                id,
                format!("big/{i}"),
                (i, n, 0, 16 * 1024),
                1000,
                RUN,
            )
        })
        .collect();
    for p in pubs {
        assert_eq!(p.await.expect("publisher"), n);
    }
    for (i, s) in subs.into_iter().enumerate() {
        let got = s.await.expect("subscriber");
        let mine: Vec<_> = got.iter().map(|&(p, _)| p).collect();
        assert!(mine.iter().all(|&p| p == i));
        assert!(
            mine.len() == n + 1,
            "subscriber {i}: {} of {n} + 1",
            got.len()
        );
        let mut by_publisher = got.clone();
        by_publisher.iter_mut().for_each(|m| m.0 = 0);
        assert_complete(&by_publisher, 1, n + 1);
    }
}

async fn drop_policy_drops_past_the_bound_and_counts(shards: usize) {
    // The old behaviour on request: publishers are never held, the subscriber loses messages
    // at its bound, and the broker goes on serving.
    let b = Broker::with(
        shards,
        &[
            "--queued-messages-max",
            "20",
            "--inflight-max",
            "10",
            "--queue-full",
            "drop",
        ],
    )
    .await;
    let n = 2000;
    let sub = subscriber(
        &b,
        Version::V3,
        &b.id("drop-sub", 0),
        "dp/t",
        1,
        (n, 100, Duration::from_millis(50)),
        Duration::from_secs(4),
    )
    .await;
    let p = publisher(
        &b,
        Version::V3,
        b.id("drop-pub", 1),
        "dp/t".into(),
        (0, n, 1, 64),
        1000,
        RUN,
    );
    assert_eq!(p.await.expect("publisher"), n, "never held back");
    let got = sub.await.expect("subscriber");
    assert!(
        got.len() < n,
        "with queue_full = drop a slow subscriber loses messages ({} of {n})",
        got.len()
    );
    let mut b = b;
    b.assert_serving().await;
}
