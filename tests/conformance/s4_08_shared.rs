//! Section 4.8.2: shared subscriptions — syntax, one member per message, granted QoS, what
//! happens to messages in flight when a member goes away, and ringmq's `$queue/` prefix and
//! member-selection policies. Every test runs with 1 and 2 shards (members on different
//! shards with 2).

use crate::fixture::*;
use ringmq::codec::{Packet, QoS};
use std::time::Duration;

/// A v5 member `name` (homed on `shard`) of `filter` at QoS `q`.
async fn member(b: &Broker, name: &str, shard: usize, filter: &str, q: u8) -> Raw {
    let mut m = Raw::v5(b, &b.id(name, shard)).await;
    m.subscribe(filter, q).await;
    m
}

/// Drain what `c` receives for a short while, acknowledging it; returns the payloads.
async fn drain(c: &mut Raw) -> Vec<String> {
    let mut out = Vec::new();
    while let Got::Packet(Packet::Publish(m)) = c.next(QUIET).await {
        c.ack(&m).await;
        out.push(String::from_utf8_lossy(&m.payload).into_owned());
    }
    out
}

/// [MQTT-4.8.2-1] A shared filter starts with "$share/" and a share name of at least one
/// character: "$share//t" and "$share/g" are refused.
async fn mqtt_4_8_2_1_share_name_must_be_present(shards: usize) {
    let b = Broker::shards(shards, &[]).await;
    for bad in ["$share//t", "$share/g", "$share/"] {
        assert_filter_refused(&b, bad).await;
    }
}
shard_tests!(mqtt_4_8_2_1_share_name_must_be_present);

/// [MQTT-4.8.2-2] The share name has no '/', '+' or '#' and is followed by '/' and a topic
/// filter.
async fn mqtt_4_8_2_2_share_name_syntax(shards: usize) {
    let b = Broker::shards(shards, &[]).await;
    for bad in ["$share/g+/t", "$share/g#/t", "$share/g/", "$share/g/a/#/b"] {
        assert_filter_refused(&b, bad).await;
    }
    let mut ok = Raw::v5(&b, "ok").await;
    ok.subscribe("$share/g/a/#", 1).await;
}
shard_tests!(mqtt_4_8_2_2_share_name_syntax);

/// [MQTT-4.8.2-3] The server respects the QoS granted to each member's subscription.
async fn mqtt_4_8_2_3_granted_qos_is_respected(shards: usize) {
    let b = Broker::shards(shards, &[]).await;
    let mut m0 = member(&b, "m0", 0, "$share/g/t", 0).await;
    let mut p = Raw::v5(&b, &b.id("pub", 1)).await;
    p.publish("t", 2, b"x").await;
    assert_eq!(m0.recv_acked().await.qos, QoS::AtMostOnce);
    let mut m1 = member(&b, "m1", 1, "$share/h/t", 1).await;
    p.publish("t", 2, b"y").await;
    assert_eq!(m1.recv_acked().await.qos, QoS::AtLeastOnce);
    assert_eq!(m0.recv_acked().await.qos, QoS::AtMostOnce);
}
shard_tests!(mqtt_4_8_2_3_granted_qos_is_respected);

/// Member "a" (persistent or not) of $share/g/t at QoS 2 receives one QoS 2 message and does
/// not acknowledge it; then member "b" joins. Returns (a's message, b).
async fn qos2_in_flight_to_a(b: &Broker, a_expiry: u32) -> (ringmq::codec::Publish, Raw, Raw) {
    let mut a = Raw::connect(b, persistent(v5(&b.id("a", 0)), a_expiry)).await;
    a.subscribe("$share/g/t", 2).await;
    let mut p = Raw::v5(b, &b.id("pub", 1)).await;
    p.publish("t", 2, b"in flight").await;
    let m = a.recv_publish().await;
    let other = member(b, "b", 1, "$share/g/t", 2).await;
    (m, a, other)
}

/// [MQTT-4.8.2-4] A QoS 2 message in flight to a member whose connection breaks is completed
/// with that member when it reconnects — not given to another member.
async fn mqtt_4_8_2_4_inflight_qos2_completes_with_the_same_member(shards: usize) {
    let b = Broker::shards(shards, &[]).await;
    let (m, a, mut other) = qos2_in_flight_to_a(&b, 60).await;
    a.drop_tcp().await;
    other.expect_silence(Duration::from_millis(500)).await;
    let (mut a, ack) = Raw::handshake(&b, persistent(v5(&b.id("a", 0)), 60)).await;
    assert!(ack.session_present);
    let again = a.recv_publish().await;
    assert_eq!(
        (again.dup, again.packet_id, &again.payload[..]),
        (true, m.packet_id, &b"in flight"[..])
    );
}
shard_tests!(mqtt_4_8_2_4_inflight_qos2_completes_with_the_same_member);

/// [MQTT-4.8.2-5] If that member's session ends before it reconnects, the QoS 2 message is not
/// sent to any other member.
async fn mqtt_4_8_2_5_inflight_qos2_not_sent_elsewhere_when_the_session_ends(shards: usize) {
    let b = Broker::shards(shards, &[]).await;
    let (_m, a, mut other) = qos2_in_flight_to_a(&b, 0).await;
    a.drop_tcp().await;
    other.expect_silence(Duration::from_millis(500)).await;
}
shard_tests!(mqtt_4_8_2_5_inflight_qos2_not_sent_elsewhere_when_the_session_ends);

/// [MQTT-4.8.2-6] A member answering PUBACK / PUBREC with a reason of 0x80 or more: the server
/// discards the message and gives it to no other member (not even when that member leaves).
async fn mqtt_4_8_2_6_refused_message_is_not_given_to_another_member(shards: usize) {
    let b = Broker::shards(shards, &[]).await;
    let mut a = member(&b, "a", 0, "$share/g/t", 2).await;
    let mut p = Raw::v5(&b, &b.id("pub", 1)).await;
    p.publish("t", 1, b"refused 1").await;
    p.publish("t", 2, b"refused 2").await;
    let m1 = a.recv_publish().await;
    let m2 = a.recv_publish().await;
    let mut other = member(&b, "b", 1, "$share/g/t", 2).await;
    a.send(Packet::PubAck(ack(m1.packet_id, 0x80))).await;
    a.send(Packet::PubRec(ack(m2.packet_id, 0x80))).await;
    a.ping().await;
    a.drop_tcp().await;
    other.expect_silence(Duration::from_millis(500)).await;
}
shard_tests!(mqtt_4_8_2_6_refused_message_is_not_given_to_another_member);

/// 4.8.2 (no statement number): each message goes to exactly one member of a group; with the
/// default round-robin policy every member gets some.
async fn sec_4_8_2_each_message_goes_to_one_member(shards: usize) {
    let b = Broker::shards(shards, &[]).await;
    let mut a = member(&b, "a", 0, "$share/g/t/#", 1).await;
    let mut c = member(&b, "c", 1, "$share/g/t/#", 1).await;
    let mut p = Raw::v5(&b, &b.id("pub", 1)).await;
    for i in 0..20 {
        p.publish(&format!("t/{}", i % 2), 1, format!("{i:02}").as_bytes())
            .await;
    }
    let (mut ga, mut gc) = (drain(&mut a).await, drain(&mut c).await);
    assert!(!ga.is_empty() && !gc.is_empty(), "a {ga:?}, c {gc:?}");
    ga.append(&mut gc);
    ga.sort();
    let want: Vec<String> = (0..20).map(|i| format!("{i:02}")).collect();
    assert_eq!(ga, want, "every message exactly once");
}
shard_tests!(sec_4_8_2_each_message_goes_to_one_member);

/// 4.8.2 (no statement number): a shared subscription gets no retained messages on subscribe;
/// plain subscribers and other groups each get their own copy of live messages.
async fn sec_4_8_2_groups_and_plain_subscribers_each_get_a_copy(shards: usize) {
    let b = Broker::shards(shards, &[]).await;
    let mut p = Raw::v5(&b, &b.id("pub", 1)).await;
    p.publish_packet(retained("t", 1, 0, b"retained")).await;
    let mut g = member(&b, "g", 0, "$share/g/t", 1).await;
    let mut h = member(&b, "h", 1, "$share/h/t", 1).await;
    let mut plain = member(&b, "plain", 0, "t", 1).await;
    assert!(plain.recv_acked().await.retain);
    g.expect_silence(QUIET).await;
    h.expect_silence(QUIET).await;
    p.publish("t", 1, b"live").await;
    for c in [&mut g, &mut h, &mut plain] {
        assert_eq!(&c.recv_acked().await.payload[..], b"live");
    }
}
shard_tests!(sec_4_8_2_groups_and_plain_subscribers_each_get_a_copy);

/// 4.8.2 (no statement number; SHOULD/MAY): a QoS 1 message a member did not acknowledge
/// before its session ended goes to another member.
async fn sec_4_8_2_unacknowledged_qos1_goes_to_another_member(shards: usize) {
    let b = Broker::shards(shards, &[]).await;
    let mut a = member(&b, "a", 0, "$share/g/t", 1).await;
    Raw::v5(&b, &b.id("pub", 1))
        .await
        .publish("t", 1, b"again")
        .await;
    a.recv_publish().await;
    let mut other = member(&b, "b", 1, "$share/g/t", 1).await;
    a.drop_tcp().await;
    assert_eq!(&other.recv_acked().await.payload[..], b"again");
}
shard_tests!(sec_4_8_2_unacknowledged_qos1_goes_to_another_member);

/// ringmq extension: `$queue/{filter}` is a shared subscription of one implicit group.
async fn sec_4_8_2_queue_prefix_is_a_shared_subscription(shards: usize) {
    let b = Broker::shards(shards, &[]).await;
    let mut a = member(&b, "a", 0, "$queue/q", 1).await;
    let mut c = member(&b, "c", 1, "$queue/q", 1).await;
    let mut p = Raw::v5(&b, &b.id("pub", 1)).await;
    for i in 0..10 {
        p.publish("q", 1, format!("{i}").as_bytes()).await;
    }
    let total = drain(&mut a).await.len() + drain(&mut c).await.len();
    assert_eq!(total, 10);
}
shard_tests!(sec_4_8_2_queue_prefix_is_a_shared_subscription);

/// ringmq extension: the member-selection policies. Every policy delivers each message once;
/// sticky and hash-client keep one publisher's messages on one member.
async fn sec_4_8_2_shared_subscription_policies(shards: usize) {
    for (policy, one_member) in [
        ("round-robin", false),
        ("random", false),
        ("sticky", true),
        ("hash-client", true),
    ] {
        let b = Broker::shards(shards, &["--shared-subscription-policy", policy]).await;
        let mut a = member(&b, "a", 0, "$share/g/t", 1).await;
        let mut c = member(&b, "c", 1, "$share/g/t", 1).await;
        let mut p = Raw::v5(&b, &b.id("pub", 1)).await;
        for i in 0..12 {
            p.publish("t", 1, format!("{i:02}").as_bytes()).await;
        }
        let (ga, gc) = (drain(&mut a).await, drain(&mut c).await);
        assert_eq!(ga.len() + gc.len(), 12, "{policy}: {ga:?} {gc:?}");
        if one_member {
            assert!(ga.is_empty() || gc.is_empty(), "{policy}: {ga:?} {gc:?}");
        }
        if policy == "round-robin" {
            assert_eq!((ga.len(), gc.len()), (6, 6), "{policy}");
        }
    }
}
shard_tests!(sec_4_8_2_shared_subscription_policies);
