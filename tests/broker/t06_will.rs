//! Will messages: published when the connection is lost (socket closed, keep alive, takeover),
//! not on a normal DISCONNECT; v5 DISCONNECT 0x04, Will Delay Interval and its cancellation.

use crate::common::*;
use ringmq::codec::{Connect, Disconnect, Packet, Properties, Protocol, QoS, Will};
use std::time::{Duration, Instant};

version_tests!(
    mqtt_3_1_2_8_will_is_published_when_the_connection_is_lost,
    mqtt_3_1_2_10_will_is_discarded_on_a_normal_disconnect,
    will_is_published_when_keepalive_expires,
    will_is_published_when_the_session_is_taken_over,
    mqtt_3_1_2_17_will_with_retain_is_stored_as_retained,
);

shard_tests!(
    mqtt_3_14_4_3_v5_disconnect_with_will_message_publishes_the_will,
    mqtt_3_1_3_9_v5_will_delay_interval_is_honoured,
    mqtt_3_1_3_9_v5_reconnect_within_the_will_delay_cancels_the_will,
    mqtt_3_1_3_9_v5_will_is_published_when_the_session_ends_before_the_delay,
);

/// A subscriber of `will/#` at QoS 2 on shard 1.
async fn watcher(b: &Broker, v: Version) -> Client {
    let mut w = Client::connect(b, v, &b.id("will-watcher", 1)).await;
    assert_eq!(w.subscribe("will/#", 2).await, 2);
    w
}

/// A client homed on shard 0 with a QoS 1 will "gone" on `will/<name>`.
async fn with_will(b: &Broker, v: Version, name: &str, opts: Opts) -> Client {
    let opts = opts.will(&format!("will/{name}"), "gone", 1, false);
    Client::connect_with(b, v, &b.id(name, 0), opts).await
}

async fn expect_will(w: &mut Client, name: &str) {
    let m = w.recv().await;
    assert_eq!(
        (m.topic.as_str(), m.text().as_str()),
        (format!("will/{name}").as_str(), "gone")
    );
    assert_eq!(m.qos, 1, "delivered at the will's QoS");
}

async fn mqtt_3_1_2_8_will_is_published_when_the_connection_is_lost(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let mut w = watcher(&b, v).await;
    let c = with_will(&b, v, "lost", Opts::clean()).await;
    c.kill().await;
    expect_will(&mut w, "lost").await;
    w.expect_nothing(QUIET).await;
}

async fn mqtt_3_1_2_10_will_is_discarded_on_a_normal_disconnect(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let mut w = watcher(&b, v).await;
    let c = with_will(&b, v, "polite", Opts::clean()).await;
    c.disconnect().await;
    w.expect_nothing(Duration::from_millis(500)).await;
}

async fn will_is_published_when_keepalive_expires(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let mut w = watcher(&b, v).await;
    let c = Connect {
        keep_alive_s: 1,
        will: Some(Will {
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "will/silent".into(),
            payload: "gone".into(),
            properties: Properties::default(),
        }),
        ..connect_packet(v.protocol(), &b.id("silent", 0))
    };
    let (mut raw, _) = Raw::handshake(&b, c).await;
    raw.expect_refused(&[0x8D]).await;
    expect_will(&mut w, "silent").await;
}

async fn will_is_published_when_the_session_is_taken_over(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let mut w = watcher(&b, v).await;
    let mut old = with_will(&b, v, "usurped", Opts::clean()).await;
    let _new = Client::connect(&b, v, &old.id.clone()).await;
    assert!(old.closed(WAIT).await.is_some());
    expect_will(&mut w, "usurped").await;
}

async fn mqtt_3_1_2_17_will_with_retain_is_stored_as_retained(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let opts = Opts::clean().will("will/kept", "gone", 1, true);
    let c = Client::connect_with(&b, v, &b.id("retained-will", 0), opts).await;
    c.kill().await;
    // Subscribing after the will was published still gets it, as a retained message.
    let mut later = Client::connect(&b, v, &b.id("later", 1)).await;
    let deadline = Instant::now() + WAIT;
    loop {
        assert_eq!(later.subscribe("will/kept", 1).await, 1);
        // Subscribed before the will fired, the copy it gets live carries RETAIN 0
        // [MQTT-3.3.1-12]; the next SUBSCRIBE then gets the stored one with RETAIN 1.
        if let Some(m) = later.try_recv(QUIET).await {
            assert_eq!(m.text().as_str(), "gone");
            if m.retain {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the retained will never appeared"
        );
    }
}

async fn mqtt_3_14_4_3_v5_disconnect_with_will_message_publishes_the_will(shards: usize) {
    let b = Broker::start(shards).await;
    let mut w = watcher(&b, Version::V5).await;
    let c = Connect {
        will: Some(Will {
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "will/asked".into(),
            payload: "gone".into(),
            properties: Properties::default(),
        }),
        ..connect_packet(Protocol::V5, &b.id("asked", 0))
    };
    let (mut raw, _) = Raw::handshake(&b, c).await;
    raw.send(&Packet::Disconnect(Disconnect {
        reason: 0x04,
        properties: Properties::default(),
    }))
    .await;
    assert!(raw.expect_close(WAIT).await.is_empty());
    expect_will(&mut w, "asked").await;
}

/// A v5 client with a 1 s will delay (session expiry 30 s) whose connection is lost; returns
/// when it was lost.
async fn lose_delayed(b: &Broker, name: &str, delay_s: u32, expiry_s: u32) -> Instant {
    let opts = Opts::persistent().expiry(expiry_s);
    let opts = opts
        .will(&format!("will/{name}"), "gone", 1, false)
        .will_delay(delay_s);
    let c = Client::connect_with(b, Version::V5, &b.id(name, 0), opts).await;
    c.kill().await;
    Instant::now()
}

async fn mqtt_3_1_3_9_v5_will_delay_interval_is_honoured(shards: usize) {
    let b = Broker::start(shards).await;
    let mut w = watcher(&b, Version::V5).await;
    let lost = lose_delayed(&b, "delayed", 1, 30).await;
    w.expect_nothing(Duration::from_millis(700)).await;
    expect_will(&mut w, "delayed").await;
    assert_between(lost.elapsed(), 900, 3500, "will delay 1 s");
}

async fn mqtt_3_1_3_9_v5_reconnect_within_the_will_delay_cancels_the_will(shards: usize) {
    let b = Broker::start(shards).await;
    let mut w = watcher(&b, Version::V5).await;
    lose_delayed(&b, "returning", 1, 30).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let back =
        Client::connect_with(&b, Version::V5, &b.id("returning", 0), Opts::persistent()).await;
    assert!(back.connack.session_present);
    w.expect_nothing(Duration::from_millis(1800)).await;
}

async fn mqtt_3_1_3_9_v5_will_is_published_when_the_session_ends_before_the_delay(shards: usize) {
    let b = Broker::start(shards).await;
    let mut w = watcher(&b, Version::V5).await;
    // Will delay 10 s but session expiry 1 s: the session ends first, and the will goes then.
    let lost = lose_delayed(&b, "expired", 10, 1).await;
    w.expect_nothing(Duration::from_millis(700)).await;
    expect_will(&mut w, "expired").await;
    assert_between(lost.elapsed(), 900, 3500, "session expiry 1 s");
}
