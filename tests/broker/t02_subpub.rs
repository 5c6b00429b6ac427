//! Publish / subscribe: topic matching (`+`, `#`, `$` topics), granted QoS, overlapping
//! subscriptions, subscription identifiers, No Local, message order, unsubscribe, and v3.1.1 and
//! v5 clients talking to each other.

use crate::common::*;
use ringmq::codec::{Packet, Protocol};
use std::collections::BTreeSet;
use std::time::Duration;

version_tests!(
    mqtt_4_7_1_3_single_level_wildcard_matches_exactly_one_level,
    mqtt_4_7_1_2_multi_level_wildcard_matches_the_parent_and_every_descendant,
    mqtt_4_7_2_1_dollar_topics_are_not_matched_by_leading_wildcards,
    mqtt_3_8_4_delivery_qos_is_the_minimum_of_published_and_granted,
    mqtt_3_3_5_1_overlapping_subscriptions_deliver_once_at_the_highest_qos,
    mqtt_4_6_0_messages_of_one_publisher_arrive_in_order,
    mqtt_3_10_4_unsubscribe_stops_delivery,
    large_and_small_payloads_reach_every_subscriber_intact_and_in_order,
);

shard_tests!(
    packets_dribbled_in_pieces_beside_a_streaming_publisher_arrive_intact,
    v311_and_v5_clients_exchange_messages_both_ways,
    mqtt_3_3_4_3_v5_delivery_carries_every_matching_subscription_identifier,
    mqtt_3_8_3_3_v5_no_local_suppresses_the_clients_own_messages,
);

fn set(topics: &[&str]) -> BTreeSet<String> {
    topics.iter().map(|t| t.to_string()).collect()
}

/// A subscriber of `filter` (on shard 0) and a publisher (on shard 1) that publishes once to
/// each of `topics`: the topics the subscriber received (each at most once).
async fn delivered(b: &Broker, v: Version, filter: &str, topics: &[&str]) -> BTreeSet<String> {
    let mut sub = Client::connect(b, v, &b.id(&format!("sub {filter}"), 0)).await;
    assert_eq!(sub.subscribe(filter, 1).await, 1, "SUBACK grants QoS 1");
    let mut publisher = Client::connect(b, v, &b.id(&format!("pub {filter}"), 1)).await;
    for t in topics {
        publisher.publish(t, 1, *t, false).await;
    }
    publisher.settle().await;
    let got: Vec<String> = sub
        .drain(QUIET)
        .await
        .into_iter()
        .map(|m| m.topic)
        .collect();
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        got.len(),
        "{filter}: duplicate deliveries {got:?}"
    );
    unique
}

async fn mqtt_4_7_1_3_single_level_wildcard_matches_exactly_one_level(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let topics = ["a/b/c", "a//c", "a/b/c/d", "a/c", "a/b/d", "b/b/c", "a/b"];
    assert_eq!(
        delivered(&b, v, "a/+/c", &topics).await,
        set(&["a/b/c", "a//c"])
    );
    assert_eq!(
        delivered(&b, v, "+", &["x", "x/y", "/x"]).await,
        set(&["x"])
    );
    assert_eq!(
        delivered(&b, v, "+/+", &["x", "x/y", "/x", "x/y/z"]).await,
        set(&["x/y", "/x"])
    );
}

async fn mqtt_4_7_1_2_multi_level_wildcard_matches_the_parent_and_every_descendant(
    v: Version,
    shards: usize,
) {
    let b = Broker::start(shards).await;
    let topics = ["a", "a/b", "a/b/c", "a/", "b", "ab", "b/a"];
    assert_eq!(
        delivered(&b, v, "a/#", &topics).await,
        set(&["a", "a/b", "a/b/c", "a/"]),
        "`a/#` matches `a` itself [MQTT-4.7.1-2]"
    );
    assert_eq!(
        delivered(&b, v, "#", &["x", "x/y", "/"]).await,
        set(&["x", "x/y", "/"])
    );
}

async fn mqtt_4_7_2_1_dollar_topics_are_not_matched_by_leading_wildcards(
    v: Version,
    shards: usize,
) {
    let b = Broker::start(shards).await;
    let topics = ["$foo/bar", "foo/bar"];
    assert_eq!(delivered(&b, v, "#", &topics).await, set(&["foo/bar"]));
    assert_eq!(delivered(&b, v, "+/bar", &topics).await, set(&["foo/bar"]));
    assert_eq!(
        delivered(&b, v, "$foo/#", &topics).await,
        set(&["$foo/bar"])
    );
    assert_eq!(
        delivered(&b, v, "$foo/+", &topics).await,
        set(&["$foo/bar"])
    );
}

async fn mqtt_3_8_4_delivery_qos_is_the_minimum_of_published_and_granted(
    v: Version,
    shards: usize,
) {
    let b = Broker::start(shards).await;
    let mut sub = Client::connect(&b, v, &b.id("qos-sub", 0)).await;
    for granted in 0..3u8 {
        assert_eq!(
            sub.subscribe(&format!("q/{granted}"), granted).await,
            granted
        );
    }
    let mut publisher = Client::connect(&b, v, &b.id("qos-pub", 1)).await;
    for granted in 0..3u8 {
        for published in 0..3u8 {
            let topic = format!("q/{granted}");
            publisher
                .publish(&topic, published, format!("{granted}{published}"), false)
                .await;
        }
    }
    publisher.settle().await;
    let mut got = sub.recv_n(9, WAIT).await;
    got.sort_by_key(|m| m.text());
    for (i, m) in got.iter().enumerate() {
        let (granted, published) = (i as u8 / 3, i as u8 % 3);
        assert_eq!(m.text(), format!("{granted}{published}"));
        assert_eq!(
            m.qos,
            granted.min(published),
            "published at QoS {published}, granted {granted}"
        );
    }
    sub.expect_nothing(QUIET).await;
}

async fn mqtt_3_3_5_1_overlapping_subscriptions_deliver_once_at_the_highest_qos(
    v: Version,
    shards: usize,
) {
    let b = Broker::start(shards).await;
    let mut sub = Client::connect(&b, v, &b.id("overlap-sub", 0)).await;
    assert_eq!(sub.subscribe("o/#", 0).await, 0);
    assert_eq!(sub.subscribe("o/+", 1).await, 1);
    assert_eq!(sub.subscribe("o/x", 2).await, 2);
    let mut publisher = Client::connect(&b, v, &b.id("overlap-pub", 1)).await;
    publisher.publish("o/x", 2, "three-filters", false).await;
    publisher.publish("o/y", 2, "two-filters", false).await;
    publisher.publish("o/y/z", 2, "one-filter", false).await;
    publisher.settle().await;
    let mut got: Vec<(String, u8)> = sub
        .drain(QUIET)
        .await
        .iter()
        .map(|m| (m.text(), m.qos))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("one-filter".to_string(), 0),
            ("three-filters".to_string(), 2),
            ("two-filters".to_string(), 1),
        ],
        "one delivery per message, at the highest QoS granted by a matching subscription"
    );
}

async fn mqtt_4_6_0_messages_of_one_publisher_arrive_in_order(v: Version, shards: usize) {
    const N: usize = 1000;
    let b = Broker::start(shards).await;
    let mut sub = Client::connect(&b, v, &b.id("order-sub", 0)).await;
    assert_eq!(sub.subscribe("order/t", 1).await, 1);
    let mut publisher = Client::connect(&b, v, &b.id("order-pub", 1)).await;
    for i in 0..N {
        publisher.publish("order/t", 1, i.to_string(), false).await;
    }
    publisher.settle().await;
    let got: Vec<usize> = sub
        .recv_n(N, std::time::Duration::from_secs(8))
        .await
        .iter()
        .map(|m| m.text().parse().expect("a number"))
        .collect();
    assert_eq!(
        got,
        (0..N).collect::<Vec<_>>(),
        "[MQTT-4.6.0-6] ordered topic"
    );
}

async fn mqtt_3_10_4_unsubscribe_stops_delivery(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let mut sub = Client::connect(&b, v, &b.id("unsub-sub", 0)).await;
    assert_eq!(sub.subscribe("u/#", 1).await, 1);
    let mut publisher = Client::connect(&b, v, &b.id("unsub-pub", 1)).await;
    publisher.publish_settled("u/a", 1, "before", false).await;
    assert_eq!(sub.recv().await.text(), "before");
    sub.unsubscribe("u/#").await;
    publisher.publish_settled("u/a", 1, "after", false).await;
    sub.expect_nothing(QUIET).await;
}

async fn v311_and_v5_clients_exchange_messages_both_ways(shards: usize) {
    let b = Broker::start(shards).await;
    let mut sub3 = Client::connect(&b, Version::V3, &b.id("mix-sub3", 0)).await;
    let mut sub5 = Client::connect(&b, Version::V5, &b.id("mix-sub5", 1)).await;
    assert_eq!(sub3.subscribe("mix/#", 1).await, 1);
    assert_eq!(sub5.subscribe("mix/#", 1).await, 1);
    let mut pub3 = Client::connect(&b, Version::V3, &b.id("mix-pub3", 1)).await;
    let mut pub5 = Client::connect(&b, Version::V5, &b.id("mix-pub5", 0)).await;
    pub3.publish_settled("mix/3", 1, "from-v3", false).await;
    pub5.publish_v5_props("mix/5", 1, "from-v5", ("k", "v"))
        .await;
    pub5.settle().await;
    let want = [
        ("mix/3".to_string(), "from-v3".to_string()),
        ("mix/5".to_string(), "from-v5".to_string()),
    ];
    for sub in [&mut sub3, &mut sub5] {
        let mut got = sub.recv_n(2, WAIT).await;
        got.sort_by_key(|m| m.topic.clone());
        let pairs: Vec<(String, String)> =
            got.iter().map(|m| (m.topic.clone(), m.text())).collect();
        assert_eq!(pairs, want, "{} got both", sub.id);
        if sub.version.is_v5() {
            assert!(
                got[0].user_props.is_empty(),
                "a v3 publisher sends no properties"
            );
            assert_eq!(
                got[1].user_props,
                [("k".to_string(), "v".to_string())],
                "User Properties are forwarded unchanged [MQTT-3.3.2-17]"
            );
        }
    }
}

async fn mqtt_3_3_4_3_v5_delivery_carries_every_matching_subscription_identifier(shards: usize) {
    let b = Broker::start(shards).await;
    let mut sub = Client::connect(&b, Version::V5, &b.id("subid-sub", 0)).await;
    let with_id = |id| SubOpts {
        id: Some(id),
        ..SubOpts::default()
    };
    assert_eq!(sub.subscribe_v5("s/+", 1, with_id(1)).await, 1);
    assert_eq!(sub.subscribe_v5("s/#", 1, with_id(2)).await, 1);
    assert_eq!(sub.subscribe("s/x/y", 1).await, 1);
    let mut publisher = Client::connect(&b, Version::V5, &b.id("subid-pub", 1)).await;
    publisher.publish("s/x", 1, "two-ids", false).await;
    publisher.publish("s/x/y", 1, "one-id", false).await;
    publisher.settle().await;
    let got: Vec<(String, Vec<usize>)> = sub
        .drain(QUIET)
        .await
        .into_iter()
        .map(|m| (m.text(), m.sub_ids))
        .collect();
    assert_eq!(
        got,
        [
            ("two-ids".to_string(), vec![1, 2]),
            ("one-id".to_string(), vec![2])
        ]
    );
}

async fn mqtt_3_8_3_3_v5_no_local_suppresses_the_clients_own_messages(shards: usize) {
    let b = Broker::start(shards).await;
    let mut me = Client::connect(&b, Version::V5, &b.id("nolocal-me", 0)).await;
    let no_local = SubOpts {
        no_local: true,
        ..SubOpts::default()
    };
    assert_eq!(me.subscribe_v5("nl/t", 1, no_local).await, 1);
    assert_eq!(me.subscribe("nl/u", 1).await, 1);
    let mut other = Client::connect(&b, Version::V5, &b.id("nolocal-other", 1)).await;
    assert_eq!(other.subscribe("nl/t", 1).await, 1);
    me.publish("nl/t", 1, "not-to-me", false).await;
    me.publish("nl/u", 1, "to-me", false).await;
    me.settle().await;
    assert_eq!(other.recv().await.text(), "not-to-me");
    let mine: Vec<String> = me.drain(QUIET).await.iter().map(|m| m.text()).collect();
    assert_eq!(
        mine,
        ["to-me"],
        "No Local only applies to its own subscription"
    );
}

/// Payloads from 2 KiB up leave from the shared message buffer in vectored sends, the rest is
/// copied behind its header (`session::out`): mixed sizes, around that boundary and well past
/// a socket buffer, reach three subscribers (both shards) byte for byte and in order, at QoS 0
/// and 1.
async fn large_and_small_payloads_reach_every_subscriber_intact_and_in_order(
    v: Version,
    shards: usize,
) {
    let b = Broker::start(shards).await;
    let mut subs = Vec::new();
    for i in 0..3 {
        let mut s = Client::connect(&b, v, &b.id(&format!("big sub {i}"), i % 2)).await;
        assert_eq!(s.subscribe("big/+", 1).await, 1);
        subs.push(s);
    }
    let mut publisher = Client::connect(&b, v, &b.id("big pub", 1)).await;
    let sizes = [
        10, 2047, 2048, 2049, 16_384, 3, 100_000, 0, 65_536, 5000, 1, 300_000,
    ];
    let payload =
        |n: usize, size: usize| -> Vec<u8> { (0..size).map(|i| (i * 31 + n * 7) as u8).collect() };
    let mut sent = Vec::new();
    for round in 0..2 {
        for (i, &size) in sizes.iter().enumerate() {
            let n = round * sizes.len() + i;
            let p = payload(n, size);
            let qos = (n % 2) as u8;
            publisher
                .publish(&format!("big/{n}"), qos, p.clone(), false)
                .await;
            sent.push((format!("big/{n}"), p));
        }
    }
    publisher.settle().await;
    for s in &mut subs {
        let got = s.recv_n(sent.len(), WAIT * 3).await;
        for (m, (topic, p)) in got.iter().zip(&sent) {
            assert_eq!(&m.topic, topic, "in publish order");
            assert!(
                m.payload == *p,
                "{topic}: {} bytes arrived for {}, or different bytes",
                m.payload.len(),
                p.len()
            );
        }
    }
}

/// The shard reads into one shared chunk and connections keep their bytes there
/// (`net::read_chunk`): a packet whose start waits in the chunk while its socket is quiet moves
/// to a buffer of its own, and back in front of the next read. A raw publisher sends each PUBLISH
/// in pieces with pauses between them (so the broker's read finds nothing mid-packet), sizes
/// from empty to past a whole chunk, while a rumqttc publisher streams enough to wear through
/// many chunks. Both streams reach a rumqttc subscriber byte for byte and in order.
async fn packets_dribbled_in_pieces_beside_a_streaming_publisher_arrive_intact(shards: usize) {
    let b = Broker::start(shards).await;
    let mut sub = Client::connect(&b, Version::V5, &b.id("dribble sub", 0)).await;
    assert_eq!(sub.subscribe("split/#", 1).await, 1);

    const STREAMED: usize = 400;
    let body =
        |n: usize, size: usize| -> Vec<u8> { (0..size).map(|i| (i * 13 + n) as u8).collect() };
    let mut streamer = Client::connect(&b, Version::V3, &b.id("dribble streamer", 1)).await;
    let stream = tokio::spawn(async move {
        for n in 0..STREAMED {
            streamer
                .publish("split/stream", 1, body(n, 1500), false)
                .await;
        }
        streamer.settle().await;
        streamer
    });

    let mut raw = Raw::connect(&b, Protocol::V311, &b.id("dribble raw", 0)).await;
    let sizes = [0, 10, 700, 5000, 40_000, 70_000, 150_000];
    for (i, &size) in sizes.iter().enumerate() {
        let frame = encode(
            &publish_packet(&format!("split/raw/{i}"), 1, i as u16 + 1, &body(i, size)),
            Protocol::V311,
        );
        let mut cuts = vec![1, 3, frame.len() / 2, frame.len() - 1];
        cuts.retain(|&c| c > 0 && c < frame.len());
        cuts.dedup();
        let mut from = 0;
        for to in cuts.into_iter().chain([frame.len()]) {
            if to <= from {
                continue;
            }
            raw.send_bytes(&frame[from..to]).await;
            from = to;
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }
    for (i, p) in raw.recv_n(sizes.len()).await.into_iter().enumerate() {
        assert!(
            matches!(&p, Packet::PubAck(a) if a.packet_id == i as u16 + 1),
            "PUBACK {} for the dribbled PUBLISH, got {p:?}",
            i + 1
        );
    }
    let _streamer = stream.await.expect("the streaming publisher");

    let got = sub.recv_n(STREAMED + sizes.len(), WAIT * 5).await;
    let raw_got: Vec<_> = got
        .iter()
        .filter(|m| m.topic.starts_with("split/raw/"))
        .collect();
    assert_eq!(raw_got.len(), sizes.len(), "every dribbled PUBLISH arrived");
    for (i, m) in raw_got.iter().enumerate() {
        assert_eq!(m.topic, format!("split/raw/{i}"), "in order");
        assert!(
            m.payload == body(i, sizes[i]),
            "split/raw/{i}: {} bytes arrived for {}, or different bytes",
            m.payload.len(),
            sizes[i]
        );
    }
    let streamed: Vec<_> = got.iter().filter(|m| m.topic == "split/stream").collect();
    assert_eq!(streamed.len(), STREAMED, "every streamed message arrived");
    for (n, m) in streamed.iter().enumerate() {
        assert!(
            m.payload == body(n, 1500),
            "streamed message {n} intact and in order"
        );
    }
}
