//! Interoperation between protocol versions, and normal flows with a third-party client
//! (rumqttc v5 and v3.1.1) on both ends. Run with 1 and 2 shards.

use crate::fixture::*;
use crate::third_party::Client;
use rumqttc::v5::mqttbytes::v5::PublishProperties;

/// A v3.1.1 subscriber receives what a v5 publisher sends — without the v5 properties.
async fn interop_v311_subscriber_gets_v5_messages(shards: usize) {
    let b = Broker::shards(shards, &[]).await;
    let mut s = Client::v3(&b, &b.id("v3-sub", 0)).await;
    assert_eq!(s.subscribe("i/#", 2).await, 2);
    let mut raw = Raw::v3(&b, &b.id("v3-raw", 1)).await;
    raw.subscribe("i/raw", 0).await;
    let mut p = Client::v5(&b, &b.id("v5-pub", 1)).await;
    let props = PublishProperties {
        user_properties: vec![("k".into(), "v".into())],
        message_expiry_interval: Some(60),
        content_type: Some("text/plain".into()),
        ..Default::default()
    };
    for q in [0, 1, 2] {
        p.publish_with(
            "i/x",
            q,
            format!("q{q}").as_bytes(),
            false,
            Some(props.clone()),
        )
        .await;
        let m = s.recv().await;
        assert_eq!(
            (m.topic.as_str(), m.payload, m.qos),
            ("i/x", format!("q{q}").into_bytes(), q)
        );
    }
    // On the wire: a 3.1.1 PUBLISH has no property length at all.
    p.publish_with("i/raw", 0, b"x", false, Some(props)).await;
    let publish = [0x30, 8, 0, 5, b'i', b'/', b'r', b'a', b'w', b'x'];
    assert_eq!(raw.next_frame(WAIT).await.expect("PUBLISH"), publish);
}
shard_tests!(interop_v311_subscriber_gets_v5_messages);

/// A v5 subscriber receives what a v3.1.1 publisher sends, with no properties.
async fn interop_v5_subscriber_gets_v311_messages(shards: usize) {
    let b = Broker::shards(shards, &[]).await;
    let mut s = Client::v5(&b, &b.id("v5-sub", 0)).await;
    assert_eq!(s.subscribe("i/#", 2).await, 2);
    let mut p = Client::v3(&b, &b.id("v3-pub", 1)).await;
    for q in [0, 1, 2] {
        p.publish("i/y", q, format!("q{q}").as_bytes(), false).await;
        let m = s.recv().await;
        assert_eq!(
            (m.topic.as_str(), m.payload, m.qos),
            ("i/y", format!("q{q}").into_bytes(), q)
        );
        let no_props = m
            .properties
            .is_none_or(|p| p == PublishProperties::default());
        assert!(no_props, "a 3.1.1 message has no properties");
    }
}
shard_tests!(interop_v5_subscriber_gets_v311_messages);

/// Normal flow with the third-party v5 client on both ends: QoS 0, 1 and 2, retained.
async fn interop_rumqttc_v5_round_trip(shards: usize) {
    let b = Broker::shards(shards, &[]).await;
    let mut p = Client::v5(&b, &b.id("pub", 1)).await;
    p.publish("r/kept", 1, b"retained", true).await;
    let mut s = Client::v5(&b, &b.id("sub", 0)).await;
    assert_eq!(s.subscribe("r/#", 2).await, 2);
    let m = s.recv().await;
    assert_eq!((m.payload.as_slice(), m.retain), (&b"retained"[..], true));
    for q in [0, 1, 2] {
        p.publish("r/live", q, &[q; 3], false).await;
        let m = s.recv().await;
        assert_eq!((m.payload, m.qos, m.retain), (vec![q; 3], q, false));
    }
    s.expect_nothing(QUIET).await;
    p.disconnect().await;
    s.disconnect().await;
}
shard_tests!(interop_rumqttc_v5_round_trip);

/// Retained messages and wills cross versions: a v3.1.1 will reaches a v5 subscriber; a v5
/// retained message reaches a late v3.1.1 subscriber with RETAIN 1.
async fn interop_wills_and_retained_across_versions(shards: usize) {
    let b = Broker::shards(shards, &[]).await;
    let mut w = Raw::v5(&b, &b.id("v5-watch", 0)).await;
    w.subscribe("will/#", 1).await;
    let c = Raw::connect(
        &b,
        with_will(v3(&b.id("v3-dies", 1)), "will/v3", "bye", 1, false),
    )
    .await;
    c.drop_tcp().await;
    let m = w.recv_acked().await;
    assert_eq!((&m.topic[..], &m.payload[..]), ("will/v3", &b"bye"[..]));
    assert!(
        m.properties.is_empty(),
        "a 3.1.1 will has no properties: {:?}",
        m.properties
    );
    let mut p = Raw::v5(&b, &b.id("v5-pub", 1)).await;
    let mut r = retained("kept", 1, 0, b"for later");
    r.properties.user_properties.push(("k".into(), "v".into()));
    p.publish_packet(r).await;
    let mut late = Raw::v3(&b, &b.id("v3-late", 0)).await;
    late.subscribe("kept", 1).await;
    let m = late.recv_acked().await;
    assert_eq!((&m.payload[..], m.retain), (&b"for later"[..], true));
}
shard_tests!(interop_wills_and_retained_across_versions);
