//! Section 4.6: message ordering — per publisher, per topic and QoS, across shards.

use crate::fixture::*;
use ringmq::codec::Packet;

/// Publish `n` numbered messages at `q` on `topic_of(i)`, pipelined (acks collected at the end).
async fn burst(p: &mut Raw, n: u32, q: u8, topic_of: impl Fn(u32) -> String) {
    for i in 0..n {
        let m = publish(&topic_of(i), q, (i + 1) as u16, &i.to_be_bytes());
        p.send(Packet::Publish(m)).await;
    }
    if q == 1 {
        for _ in 0..n {
            p.wait_for("PUBACK", |x| matches!(x, Packet::PubAck(_)))
                .await;
        }
    }
}

fn number(m: &ringmq::codec::Publish) -> u32 {
    u32::from_be_bytes(m.payload[..].try_into().expect("4 bytes"))
}

/// [MQTT-4.6.0-5] Messages of one publisher on one (ordered) topic reach each subscriber in the
/// order they were received, for the same QoS — QoS 0 and QoS 1, across shards.
async fn mqtt_4_6_0_5_one_topic_keeps_the_publisher_order(shards: usize) {
    let b = Broker::shards(shards, &[]).await;
    let mut s = Raw::v5(&b, &b.id("sub", 0)).await;
    s.subscribe("ordered", 1).await;
    let mut p = Raw::v5(&b, &b.id("pub", 1)).await;
    for q in [0, 1] {
        burst(&mut p, 200, q, |_| "ordered".into()).await;
        let got: Vec<u32> = s.recv_n(200).await.iter().map(number).collect();
        assert_eq!(got, (0..200).collect::<Vec<_>>(), "QoS {q}");
    }
}
shard_tests!(mqtt_4_6_0_5_one_topic_keeps_the_publisher_order);

/// [MQTT-4.6.0-6] Every topic is ordered for non-shared subscriptions: interleaved topics under
/// one wildcard subscription each keep the publisher's order.
async fn mqtt_4_6_0_6_every_topic_is_ordered(shards: usize) {
    let b = Broker::shards(shards, &[]).await;
    let mut s = Raw::v5(&b, &b.id("sub", 0)).await;
    s.subscribe("o/+", 1).await;
    let mut p = Raw::v5(&b, &b.id("pub", 1)).await;
    burst(&mut p, 300, 1, |i| format!("o/{}", i % 3)).await;
    let got = s.recv_n(300).await;
    for t in 0..3u32 {
        let topic = format!("o/{t}");
        let seq: Vec<u32> = got
            .iter()
            .filter(|m| m.topic == topic)
            .map(number)
            .collect();
        let want: Vec<u32> = (0..300).filter(|i| i % 3 == t).collect();
        assert_eq!(seq, want, "{topic}");
    }
}
shard_tests!(mqtt_4_6_0_6_every_topic_is_ordered);
