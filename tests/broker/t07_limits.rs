//! Limits: maximum packet size (and the declared length checked before the body), the bounded
//! session queue, the outgoing inflight window (v5 Receive Maximum), the broker's Receive
//! Maximum, topic length and levels, subscriptions per session, maximum QoS, retain available,
//! and the client's Maximum Packet Size.

use crate::common::*;
use ringmq::codec::{Connect, Packet, Properties, Protocol, SubOptions};
use std::time::Duration;

version_tests!(
    mqtt_3_2_2_15_publish_over_the_maximum_packet_size_closes_only_that_connection,
    mqtt_3_2_2_15_declared_length_over_the_maximum_is_refused_before_the_body,
    session_queue_keeps_at_most_queued_messages_max,
    inflight_window_bounds_unacknowledged_deliveries,
    topic_bytes_max_refuses_longer_topic_names_and_filters,
    topic_levels_max_refuses_deeper_topic_names_and_filters,
    subscriptions_per_session_max_refuses_further_filters,
    maximum_qos_caps_the_granted_qos,
);

shard_tests!(
    mqtt_3_3_4_9_v5_client_receive_maximum_bounds_unacknowledged_deliveries,
    mqtt_3_3_4_9_v5_qos2_delivery_counts_against_receive_maximum_until_pubcomp,
    mqtt_3_3_4_9_v5_client_exceeding_the_receive_maximum_gets_disconnect_0x93,
    mqtt_3_1_2_25_v5_messages_over_the_client_maximum_packet_size_are_not_sent,
    mqtt_3_2_2_11_v5_publish_above_maximum_qos_gets_disconnect_0x9b,
    mqtt_3_2_2_14_v5_retained_publish_when_unavailable_gets_disconnect_0x9a,
    the_heap_runs_without_transparent_huge_pages,
);

async fn mqtt_3_2_2_15_publish_over_the_maximum_packet_size_closes_only_that_connection(
    v: Version,
    shards: usize,
) {
    let b = Broker::with(shards, &["--packet-bytes-max", "1024"]).await;
    let w = Witness::start(&b).await;
    let mut raw = Raw::connect(&b, v.protocol(), "big").await;
    raw.send(&publish_packet("big/t", 1, 1, b"small")).await;
    assert_eq!(
        success(raw.recv().await),
        Packet::PubAck(ack(1)),
        "a small PUBLISH is fine"
    );
    raw.send(&publish_packet("big/t", 1, 2, &[b'x'; 2000]))
        .await;
    raw.expect_refused(&[0x95]).await;
    w.finish().await;
}

async fn mqtt_3_2_2_15_declared_length_over_the_maximum_is_refused_before_the_body(
    v: Version,
    shards: usize,
) {
    let b = Broker::with(shards, &["--packet-bytes-max", "1024"]).await;
    let w = Witness::start(&b).await;
    let mut raw = Raw::connect(&b, v.protocol(), "declares-big").await;
    // Only the fixed header of a 100 kB PUBLISH: refused without waiting for the body.
    raw.send_bytes(&fixed_header(0x32, 100_000)).await;
    raw.expect_refused(&[0x95]).await;
    w.finish().await;
}

async fn session_queue_keeps_at_most_queued_messages_max(v: Version, shards: usize) {
    let b = Broker::with(
        shards,
        &["--queued-messages-max", "10", "--inflight-max", "5"],
    )
    .await;
    let id = b.id("bounded", 0);
    let mut c = Client::connect_with(&b, v, &id, Opts::persistent()).await;
    assert_eq!(c.subscribe("bq/t", 1).await, 1);
    c.disconnect().await;
    let mut p = Client::connect(&b, v, &b.id("bq-pub", 1)).await;
    for i in 0..50 {
        p.publish("bq/t", 1, i.to_string(), false).await;
    }
    p.settle().await;
    let mut c = Client::connect_with(&b, v, &id, Opts::persistent()).await;
    assert!(c.connack.session_present);
    let got: Vec<usize> = c
        .drain(Duration::from_millis(700))
        .await
        .iter()
        .map(|m| m.text().parse().expect("a number"))
        .collect();
    assert!(
        (10..=15).contains(&got.len()),
        "queued-messages-max 10 (+ inflight 5): got {} messages {got:?}",
        got.len()
    );
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order: {got:?}");
    // The session still works normally afterwards.
    p.publish_settled("bq/t", 1, "after", false).await;
    assert_eq!(c.recv().await.text(), "after");
}

/// A raw subscriber of "win/t" at QoS 1 that acknowledges nothing, and 6 QoS 1 messages
/// published to it: returns it after checking it got exactly `window` of them.
async fn unacked_window(b: &Broker, v: Version, c: Connect, window: usize) -> (Raw, Vec<u16>) {
    let (mut raw, ack0) = Raw::handshake(b, c).await;
    assert_eq!(ack0.code, 0);
    assert_eq!(raw.subscribe("win/t", 1).await, [1]);
    let mut p = Client::connect(b, v, &b.id("win-pub", 1)).await;
    for i in 0..6 {
        p.publish("win/t", 1, i.to_string(), false).await;
    }
    p.settle().await;
    let mut ids = Vec::new();
    for i in 0..window {
        let m = raw.recv_publish().await;
        assert_eq!(&m.payload[..], i.to_string().as_bytes());
        ids.push(m.packet_id);
    }
    raw.expect_silence(QUIET).await;
    (raw, ids)
}

/// Acknowledging one message lets exactly one more through; acknowledging all, the rest.
async fn window_slides(raw: &mut Raw, ids: &[u16], window: usize) {
    raw.send(&Packet::PubAck(ack(ids[0]))).await;
    let next = raw.recv_publish().await;
    assert_eq!(&next.payload[..], window.to_string().as_bytes());
    raw.expect_silence(QUIET).await;
    for id in ids[1..].iter().chain([&next.packet_id]) {
        raw.send(&Packet::PubAck(ack(*id))).await;
    }
    for i in window + 1..6 {
        let m = raw.recv_publish().await;
        assert_eq!(&m.payload[..], i.to_string().as_bytes());
        raw.send(&Packet::PubAck(ack(m.packet_id))).await;
    }
}

async fn inflight_window_bounds_unacknowledged_deliveries(v: Version, shards: usize) {
    let b = Broker::with(shards, &["--inflight-max", "3"]).await;
    let c = connect_packet(v.protocol(), &b.id("window", 0));
    let (mut raw, ids) = unacked_window(&b, v, c, 3).await;
    window_slides(&mut raw, &ids, 3).await;
}

/// A v5 CONNECT (client homed on shard 0) with Receive Maximum `rm`.
fn with_receive_maximum(b: &Broker, name: &str, rm: u16) -> Connect {
    Connect {
        properties: Properties {
            receive_maximum: Some(rm),
            ..Properties::default()
        },
        ..connect_packet(Protocol::V5, &b.id(name, 0))
    }
}

async fn mqtt_3_3_4_9_v5_client_receive_maximum_bounds_unacknowledged_deliveries(shards: usize) {
    let b = Broker::start(shards).await;
    let c = with_receive_maximum(&b, "rm2", 2);
    let (mut raw, ids) = unacked_window(&b, Version::V5, c, 2).await;
    window_slides(&mut raw, &ids, 2).await;
}

async fn mqtt_3_3_4_9_v5_qos2_delivery_counts_against_receive_maximum_until_pubcomp(shards: usize) {
    let b = Broker::start(shards).await;
    let (mut raw, _) = Raw::handshake(&b, with_receive_maximum(&b, "rm1", 1)).await;
    assert_eq!(raw.subscribe("rm1/t", 2).await, [2]);
    let mut p = Client::connect(&b, Version::V5, &b.id("rm1-pub", 1)).await;
    p.publish("rm1/t", 2, "first", false).await;
    p.publish("rm1/t", 2, "second", false).await;
    p.settle().await;
    let first = raw.recv_publish().await;
    assert_eq!(&first.payload[..], b"first");
    raw.expect_silence(QUIET).await;
    // PUBREC does not free the slot; PUBCOMP does.
    raw.send(&Packet::PubRec(ack(first.packet_id))).await;
    assert_eq!(raw.recv().await, Packet::PubRel(ack(first.packet_id)));
    raw.expect_silence(QUIET).await;
    raw.send(&Packet::PubComp(ack(first.packet_id))).await;
    assert_eq!(&raw.recv_publish().await.payload[..], b"second");
}

async fn mqtt_3_3_4_9_v5_client_exceeding_the_receive_maximum_gets_disconnect_0x93(shards: usize) {
    let b = Broker::with(shards, &["--receive-maximum", "2"]).await;
    let w = Witness::start(&b).await;
    let mut raw = Raw::connect(&b, Protocol::V5, "greedy").await;
    for id in 1..=3 {
        raw.send(&publish_packet("rm/t", 2, id, b"x")).await;
    }
    let before: Vec<Packet> = raw
        .expect_refused(&[0x93])
        .await
        .into_iter()
        .map(success)
        .collect();
    assert_eq!(
        before,
        [Packet::PubRec(ack(1)), Packet::PubRec(ack(2))],
        "two exchanges accepted, the third one over the Receive Maximum of 2"
    );
    w.finish().await;
}

/// v5 refuses with `v5_code`, v3.1.1 with 0x80.
fn failure(v: Version, v5_code: u8) -> u8 {
    if v.is_v5() {
        v5_code
    } else {
        0x80
    }
}

/// A subscriber (raw, so that refused filters are visible) and a publish over the limit.
async fn topic_limit(v: Version, shards: usize, flag: &str, value: &str, ok: &str, over: &str) {
    let b = Broker::with(shards, &[flag, value]).await;
    let mut sub = Raw::connect(&b, v.protocol(), &b.id("limited-sub", 0)).await;
    assert_eq!(
        sub.subscribe(over, 1).await,
        [failure(v, 0x8F)],
        "filter {over}"
    );
    assert_eq!(sub.subscribe(ok, 1).await, [1], "filter {ok}");
    let w = Witness::start(&b).await;
    let mut p = Raw::connect(&b, v.protocol(), &b.id("limited-pub", 1)).await;
    p.send(&publish_packet(ok, 1, 1, b"fits")).await;
    assert_eq!(p.recv().await, Packet::PubAck(ack(1)));
    assert_eq!(&sub.recv_publish().await.payload[..], b"fits");
    p.send(&publish_packet(over, 1, 2, b"too-long")).await;
    p.expect_refused(&[0x90]).await;
    sub.ping().await;
    w.finish().await;
}

async fn topic_bytes_max_refuses_longer_topic_names_and_filters(v: Version, shards: usize) {
    topic_limit(
        v,
        shards,
        "--topic-bytes-max",
        "16",
        "sixteen/bytes/ok",
        "seventeen/bytes/x",
    )
    .await;
}

async fn topic_levels_max_refuses_deeper_topic_names_and_filters(v: Version, shards: usize) {
    topic_limit(v, shards, "--topic-levels-max", "3", "a/b/c", "a/b/c/d").await;
}

async fn subscriptions_per_session_max_refuses_further_filters(v: Version, shards: usize) {
    let b = Broker::with(shards, &["--subscriptions-per-session-max", "2"]).await;
    let mut raw = Raw::connect(&b, v.protocol(), "collector").await;
    assert_eq!(raw.subscribe("one", 1).await, [1]);
    assert_eq!(raw.subscribe("two", 1).await, [1]);
    assert_eq!(raw.subscribe("three", 1).await, [failure(v, 0x97)]);
    assert_eq!(
        raw.subscribe("two", 0).await,
        [0],
        "replacing an existing one is fine"
    );
    raw.ping().await;
}

async fn maximum_qos_caps_the_granted_qos(v: Version, shards: usize) {
    let b = Broker::with(shards, &["--maximum-qos", "1"]).await;
    let mut sub = Client::connect(&b, v, &b.id("capped", 0)).await;
    assert_eq!(sub.subscribe("mq/t", 2).await, 1, "granted QoS 1, not 2");
    let mut p = Client::connect(&b, v, &b.id("capped-pub", 1)).await;
    p.publish_settled("mq/t", 1, "x", false).await;
    assert_eq!(sub.recv().await.qos, 1);
}

async fn mqtt_3_1_2_25_v5_messages_over_the_client_maximum_packet_size_are_not_sent(shards: usize) {
    let b = Broker::start(shards).await;
    let c = Connect {
        properties: Properties {
            maximum_packet_size: Some(100),
            ..Properties::default()
        },
        ..connect_packet(Protocol::V5, &b.id("small-client", 0))
    };
    let (mut raw, _) = Raw::handshake(&b, c).await;
    let opts = SubOptions {
        qos: qos(1),
        ..SubOptions::default()
    };
    assert_eq!(raw.subscribe_opts("mps/t", opts).await, [1]);
    let mut p = Client::connect(&b, Version::V5, &b.id("mps-pub", 1)).await;
    p.publish("mps/t", 1, vec![b'x'; 200], false).await;
    p.publish("mps/t", 1, "small", false).await;
    p.settle().await;
    let m = raw.recv_publish().await;
    assert_eq!(
        &m.payload[..],
        b"small",
        "the 200-byte message is dropped, not sent"
    );
    raw.send(&Packet::PubAck(ack(m.packet_id))).await;
    raw.expect_silence(QUIET).await;
}

/// A raw v5 client whose `publish` is refused with `reason` on a broker started with `args`.
async fn v5_publish_refused(shards: usize, args: &[&str], publish: Packet, reason: u8) {
    let b = Broker::with(shards, args).await;
    let w = Witness::start(&b).await;
    let mut raw = Raw::connect(&b, Protocol::V5, "refused").await;
    raw.send(&publish).await;
    raw.expect_refused(&[reason]).await;
    w.finish().await;
}

async fn mqtt_3_2_2_11_v5_publish_above_maximum_qos_gets_disconnect_0x9b(shards: usize) {
    let publish = publish_packet("mq/t", 2, 1, b"x");
    v5_publish_refused(shards, &["--maximum-qos", "1"], publish, 0x9B).await;
}

async fn mqtt_3_2_2_14_v5_retained_publish_when_unavailable_gets_disconnect_0x9a(shards: usize) {
    let mut publish = publish_packet("ra/t", 1, 1, b"x");
    if let Packet::Publish(p) = &mut publish {
        p.retain = true;
    }
    v5_publish_refused(shards, &["--retain-available", "false"], publish, 0x9A).await;
}

/// `THP_enabled` in `/proc/PID/status` (the kernel's PR_SET_THP_DISABLE flag, inverted).
fn thp_enabled(pid: &str) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("THP_enabled:"))?;
    Some(line.split_whitespace().nth(1)? == "1")
}

/// A 2 MiB huge page faulted in by a shard stalls it while the kernel zeroes (and with the
/// default `defrag = madvise` first compacts) it; the broker turns them off for its heap
/// (src/host.rs) unless `MIMALLOC_ALLOW_THP` asks for them.
async fn the_heap_runs_without_transparent_huge_pages(shards: usize) {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        eprintln!("MIMALLOC_ALLOW_THP is set for the tests: the broker leaves pages to mimalloc");
        return;
    }
    // The flag is inherited, and a kernel without THP reports 0 for everyone: then there is
    // nothing to tell apart (the check would pass vacuously), so say so instead.
    if thp_enabled("self") != Some(true) {
        eprintln!("the test process itself has THP off (kernel or parent): nothing to compare");
        return;
    }
    let mut b = Broker::start(shards).await;
    b.assert_serving().await;
    assert_eq!(thp_enabled(&b.pid().to_string()), Some(false));
}
