//! Retained messages: stored, replaced, cleared, sent on subscribe (exact and wildcard filters,
//! on every shard), the RETAIN flag of live forwards, and v5 Retain As Published / Retain
//! Handling.

use crate::common::*;

version_tests!(
    mqtt_3_3_1_6_retained_message_is_sent_on_subscribe_with_retain_set,
    mqtt_3_3_1_5_new_retained_message_replaces_the_old_one,
    mqtt_3_3_1_10_empty_retained_payload_clears_the_topic,
    mqtt_3_3_1_9_live_forward_of_a_retained_publish_has_retain_0,
    retained_message_is_sent_at_the_lower_of_its_qos_and_the_granted_qos,
    retained_message_is_visible_on_every_shard_once_acknowledged,
    mqtt_4_7_2_1_retained_dollar_topics_are_not_sent_for_leading_wildcards,
);

shard_tests!(
    mqtt_3_3_1_13_v5_retain_as_published_keeps_the_retain_flag,
    mqtt_3_3_1_10_v5_retain_handling_1_sends_only_for_a_new_subscription,
    mqtt_3_3_1_11_v5_retain_handling_2_never_sends_retained_messages,
);

/// Publish a retained message from a publisher on shard 1 and wait for its PUBACK.
async fn retain(b: &Broker, v: Version, topic: &str, payload: &str) {
    let mut p = Client::connect(b, v, &b.id("retainer", 1)).await;
    p.publish_settled(topic, 1, payload, true).await;
    p.disconnect().await;
}

/// What a new subscriber of `filter` (QoS 1, on shard `shard`) receives within [`QUIET`].
async fn on_subscribe(b: &Broker, v: Version, name: &str, shard: usize, filter: &str) -> Vec<Msg> {
    let mut sub = Client::connect(b, v, &b.id(name, shard)).await;
    assert_eq!(sub.subscribe(filter, 1).await, 1);
    sub.drain(QUIET).await
}

async fn mqtt_3_3_1_6_retained_message_is_sent_on_subscribe_with_retain_set(
    v: Version,
    shards: usize,
) {
    let b = Broker::start(shards).await;
    retain(&b, v, "r/a", "kept").await;
    for (i, filter) in ["r/a", "r/#", "r/+", "#"].iter().enumerate() {
        let got = on_subscribe(&b, v, &format!("rsub{i}"), i, filter).await;
        assert_eq!(texts(&got), ["kept"], "{filter}");
        assert!(
            got[0].retain,
            "{filter}: RETAIN 1 for a retained message [MQTT-3.3.1-6]"
        );
        assert_eq!(got[0].topic, "r/a");
    }
    assert!(on_subscribe(&b, v, "rsub-none", 0, "s/#").await.is_empty());
}

async fn mqtt_3_3_1_5_new_retained_message_replaces_the_old_one(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    retain(&b, v, "r/t", "old").await;
    retain(&b, v, "r/t", "new").await;
    for shard in 0..2 {
        let got = on_subscribe(&b, v, "replaced", shard, "r/t").await;
        assert_eq!(texts(&got), ["new"], "only the latest retained message");
    }
}

async fn mqtt_3_3_1_10_empty_retained_payload_clears_the_topic(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    retain(&b, v, "r/gone", "x").await;
    retain(&b, v, "r/stays", "y").await;
    retain(&b, v, "r/gone", "").await;
    for shard in 0..2 {
        let got = on_subscribe(&b, v, "cleared", shard, "r/#").await;
        assert_eq!(
            texts(&got),
            ["y"],
            "the empty payload removed r/gone and was not stored itself [MQTT-3.3.1-11]"
        );
    }
}

async fn mqtt_3_3_1_9_live_forward_of_a_retained_publish_has_retain_0(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let mut sub = Client::connect(&b, v, &b.id("live", 0)).await;
    assert_eq!(sub.subscribe("r/live", 1).await, 1);
    retain(&b, v, "r/live", "now").await;
    let m = sub.recv().await;
    assert_eq!(m.text(), "now");
    assert!(
        !m.retain,
        "an established subscription gets RETAIN 0 ([MQTT-3.3.1-9] v3.1.1, [MQTT-3.3.1-12] v5)"
    );
}

async fn retained_message_is_sent_at_the_lower_of_its_qos_and_the_granted_qos(
    v: Version,
    shards: usize,
) {
    let b = Broker::start(shards).await;
    let mut p = Client::connect(&b, v, &b.id("retainer-q", 1)).await;
    p.publish_settled("r/q1", 1, "q1", true).await;
    for (granted, want) in [(0u8, 0u8), (1, 1), (2, 1)] {
        let mut sub = Client::connect(&b, v, &b.id(&format!("rq{granted}"), 0)).await;
        assert_eq!(sub.subscribe("r/q1", granted).await, granted);
        let m = sub.recv().await;
        assert_eq!((m.text().as_str(), m.qos, m.retain), ("q1", want, true));
    }
}

async fn retained_message_is_visible_on_every_shard_once_acknowledged(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let mut p = Client::connect(&b, v, &b.id("retainer-fast", 0)).await;
    // Subscribe right after the PUBACK, from sessions homed on every shard.
    for round in 0..5 {
        let topic = format!("r/fast/{round}");
        p.publish_settled(&topic, 1, format!("v{round}"), true)
            .await;
        for shard in 0..2 {
            let mut sub = Client::connect(&b, v, &b.id(&format!("fast{round}"), shard)).await;
            assert_eq!(sub.subscribe(&topic, 1).await, 1);
            let m = sub.try_recv(WAIT).await;
            assert_eq!(
                m.map(|m| (m.text(), m.retain)),
                Some((format!("v{round}"), true)),
                "round {round}: a subscriber homed on shard {} missed the retained message",
                shard % shards
            );
        }
    }
}

async fn mqtt_4_7_2_1_retained_dollar_topics_are_not_sent_for_leading_wildcards(
    v: Version,
    shards: usize,
) {
    let b = Broker::start(shards).await;
    retain(&b, v, "$foo/bar", "dollar").await;
    retain(&b, v, "foo/bar", "plain").await;
    for (i, (filter, want)) in [
        ("#", "plain"),
        ("+/bar", "plain"),
        ("$foo/#", "dollar"),
        ("$foo/+", "dollar"),
    ]
    .iter()
    .enumerate()
    {
        let got = on_subscribe(&b, v, &format!("dollar{i}"), i, filter).await;
        assert_eq!(texts(&got), [*want], "{filter}");
    }
}

async fn mqtt_3_3_1_13_v5_retain_as_published_keeps_the_retain_flag(shards: usize) {
    let b = Broker::start(shards).await;
    let mut sub = Client::connect(&b, Version::V5, &b.id("rap", 0)).await;
    let rap = SubOpts {
        retain_as_published: true,
        ..SubOpts::default()
    };
    assert_eq!(sub.subscribe_v5("rap/#", 1, rap).await, 1);
    assert_eq!(sub.subscribe("plain/#", 1).await, 1);
    let mut p = Client::connect(&b, Version::V5, &b.id("rap-pub", 1)).await;
    p.publish("rap/t", 1, "retained", true).await;
    p.publish("rap/t", 1, "not-retained", false).await;
    p.publish("plain/t", 1, "retained-plain", true).await;
    p.settle().await;
    let got: Vec<(String, bool)> = sub
        .recv_n(3, WAIT)
        .await
        .iter()
        .map(|m| (m.text(), m.retain))
        .collect();
    assert_eq!(
        got,
        [
            ("retained".to_string(), true),
            ("not-retained".to_string(), false),
            ("retained-plain".to_string(), false)
        ],
        "RETAIN as published with RAP 1, always 0 without"
    );
}

async fn mqtt_3_3_1_10_v5_retain_handling_1_sends_only_for_a_new_subscription(shards: usize) {
    let b = Broker::start(shards).await;
    retain(&b, Version::V5, "rh/t", "kept").await;
    let mut sub = Client::connect(&b, Version::V5, &b.id("rh1", 0)).await;
    let rh1 = SubOpts {
        retain_handling: 1,
        ..SubOpts::default()
    };
    assert_eq!(sub.subscribe_v5("rh/t", 1, rh1).await, 1);
    assert_eq!(
        texts(&sub.drain(QUIET).await),
        ["kept"],
        "a new subscription"
    );
    assert_eq!(sub.subscribe_v5("rh/t", 1, rh1).await, 1);
    sub.expect_nothing(QUIET).await;
    // Retain Handling 0 sends them on every subscribe, also when replacing.
    assert_eq!(sub.subscribe("rh/t", 1).await, 1);
    assert_eq!(
        texts(&sub.drain(QUIET).await),
        ["kept"],
        "Retain Handling 0"
    );
}

async fn mqtt_3_3_1_11_v5_retain_handling_2_never_sends_retained_messages(shards: usize) {
    let b = Broker::start(shards).await;
    retain(&b, Version::V5, "rh/t", "kept").await;
    let mut sub = Client::connect(&b, Version::V5, &b.id("rh2", 0)).await;
    let rh2 = SubOpts {
        retain_handling: 2,
        ..SubOpts::default()
    };
    assert_eq!(sub.subscribe_v5("rh/#", 1, rh2).await, 1);
    sub.expect_nothing(QUIET).await;
    // The subscription itself works.
    let mut p = Client::connect(&b, Version::V5, &b.id("rh2-pub", 1)).await;
    p.publish_settled("rh/t", 1, "live", false).await;
    assert_eq!(sub.recv().await.text(), "live");
}
