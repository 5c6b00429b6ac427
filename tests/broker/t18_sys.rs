//! Area 18: the broker's own topics. The retained `$SYS/broker/...` tree (Mosquitto's names)
//! must say what clients did; the EMQX-form online/offline events
//! (`$SYS/brokers/<node>/clients/<id>/connected|disconnected`) must fire for a connect, a clean
//! disconnect, a lost connection, a keep-alive timeout and both kinds of takeover, with EMQX's
//! reason names; reading them goes through the ACL; both can be switched off; and `#` never
//! matches them. Third-party client (rumqttc) for normal flows, the raw client where a
//! connection must stay silent (keep alive).

use crate::common::*;
use ringmq::codec::Protocol;
use std::collections::HashMap;
use std::time::{Duration, Instant};

shard_tests!(
    sys_values_match_what_clients_did,
    a_late_subscriber_gets_the_tree_as_retained_messages,
    sys_subscriptions_go_through_the_acl,
    sys_tree_and_events_can_be_switched_off,
);

version_tests!(presence_events_fire_with_emqx_reasons);

/// A broker refreshing `$SYS` every second.
async fn sys_broker(shards: usize, extra: &[&str]) -> Broker {
    let mut args = vec!["--sys-interval-s", "1", "--node-name", "testnode"];
    args.extend_from_slice(extra);
    Broker::with(shards, &args).await
}

/// Receive `$SYS` values into `seen` until `done(seen)` holds; panics with what was seen on
/// timeout.
async fn until_values(
    c: &mut Client,
    seen: &mut HashMap<String, String>,
    within: Duration,
    what: &str,
    done: impl Fn(&HashMap<String, String>) -> bool,
) {
    let deadline = Instant::now() + within;
    while !done(seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "{what}: not within {within:?}; saw {seen:#?}"
        );
        if let Some(m) = c.try_recv(left.min(Duration::from_millis(500))).await {
            seen.insert(m.topic.clone(), m.text());
        }
    }
    // The rest of the same refresh (its topics live on different shards, so they may arrive
    // in any order).
    for m in c.drain(Duration::from_millis(400)).await {
        seen.insert(m.topic.clone(), m.text());
    }
}

fn num(seen: &HashMap<String, String>, topic: &str) -> Option<u64> {
    seen.get(&format!("$SYS/broker/{topic}"))?.parse().ok()
}

async fn sys_values_match_what_clients_did(shards: usize) {
    let b = sys_broker(shards, &[]).await;
    let mut watch = Client::connect(&b, Version::V5, &b.id("sys-watch", 0)).await;
    assert_eq!(watch.subscribe("$SYS/broker/#", 0).await, 0);
    // Three more clients (on both shards when there are two), two more subscriptions, one of
    // them to everything: `#` must not see `$SYS`.
    let mut all = Client::connect(&b, Version::V5, &b.id("sys-all", 1)).await;
    all.subscribe("#", 1).await;
    let mut data = Client::connect(&b, Version::V3, &b.id("sys-data", 0)).await;
    data.subscribe("data/+", 1).await;
    let mut publ = Client::connect(&b, Version::V5, &b.id("sys-pub", 1)).await;
    for i in 0..5 {
        publ.publish_settled("data/x", 1, format!("m{i}"), false)
            .await;
    }
    publ.publish_settled("keep/1", 0, "r1", true).await;
    publ.publish_settled("keep/2", 1, "r2", true).await;
    assert_eq!(data.recv_n(5, WAIT).await.len(), 5);

    let mut seen = HashMap::new();
    until_values(
        &mut watch,
        &mut seen,
        Duration::from_secs(10),
        "the tree",
        |s| {
            num(s, "clients/connected") == Some(4)
            && num(s, "clients/total") == Some(4)
            && num(s, "subscriptions/count") == Some(3)
            && num(s, "publish/messages/received") == Some(7)
            && num(s, "retained messages/count") == Some(2)
            // 5 to `data/+`, 7 to `#` (the retained ones as normal forwards), plus `$SYS`
            // values to the watcher.
            && num(s, "publish/messages/sent").is_some_and(|n| n >= 12)
            && num(s, "bytes/received").is_some_and(|n| n > 0)
            && num(s, "messages/received").is_some_and(|n| n >= 7 + 4 + 3)
        },
    )
    .await;
    assert!(num(&seen, "clients/maximum").is_some_and(|n| n >= 4));
    assert_eq!(num(&seen, "clients/disconnected"), Some(0));
    assert_eq!(num(&seen, "publish/messages/dropped"), Some(0));
    assert!(seen["$SYS/broker/version"].starts_with("ringmq version "));
    assert!(seen["$SYS/broker/uptime"].ends_with(" seconds"));
    assert!(seen.contains_key("$SYS/broker/load/publish/received/1min"));
    assert!(seen.contains_key(&format!(
        "$SYS/broker/shard/{}/clients/connected",
        shards - 1
    )));
    // Per shard figures add up to the total.
    let per_shard: u64 = (0..shards)
        .map(|i| num(&seen, &format!("shard/{i}/clients/connected")).unwrap_or(0))
        .sum();
    assert_eq!(per_shard, 4);

    // Two leave: connected and total follow, the maximum stays.
    data.disconnect().await;
    publ.disconnect().await;
    until_values(
        &mut watch,
        &mut seen,
        Duration::from_secs(10),
        "after leaving",
        |s| {
            num(s, "clients/connected") == Some(2)
                && num(s, "clients/total") == Some(2)
                && num(s, "subscriptions/count") == Some(2)
        },
    )
    .await;
    assert!(num(&seen, "clients/maximum").is_some_and(|n| n >= 4));
    // `#` got the data and retained forwards but no `$SYS` message [MQTT-4.7.2-1].
    let got = all.drain(Duration::from_millis(300)).await;
    assert!(got.iter().any(|m| m.topic == "data/x"));
    assert!(
        got.iter().all(|m| !m.topic.starts_with('$')),
        "`#` matched a $ topic: {:?}",
        got.iter().map(|m| &m.topic).collect::<Vec<_>>()
    );
}

async fn a_late_subscriber_gets_the_tree_as_retained_messages(shards: usize) {
    let b = sys_broker(shards, &[]).await;
    // Let at least one refresh pass with nobody subscribed.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut late = Client::connect(&b, Version::V5, &b.id("sys-late", 1)).await;
    late.subscribe("$SYS/broker/version", 0).await;
    let m = late.recv().await;
    assert_eq!(m.topic, "$SYS/broker/version");
    assert!(m.retain, "sent as a retained message on subscribe");
    assert!(m.text().starts_with("ringmq version "));
    late.subscribe("$SYS/broker/+/count", 0).await;
    let got = late.recv_n(2, WAIT).await;
    let mut topics: Vec<_> = got.iter().map(|m| m.topic.as_str()).collect();
    topics.sort();
    assert_eq!(
        topics,
        [
            "$SYS/broker/retained messages/count",
            "$SYS/broker/subscriptions/count"
        ]
    );
}

async fn sys_subscriptions_go_through_the_acl(shards: usize) {
    let dir = std::env::temp_dir().join(format!("ringmq-sys-acl-{}-{shards}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let acl = dir.join("acl");
    // Everything but `$` topics (Mosquitto's `#` never grants `$SYS`), and for every client
    // the uptime alone.
    std::fs::write(&acl, "topic readwrite #\npattern read $SYS/broker/uptime\n").expect("acl");
    let b = sys_broker(shards, &["--acl-file", acl.to_str().expect("utf-8")]).await;
    for (protocol, refused) in [(Protocol::V5, 0x87), (Protocol::V311, 0x80)] {
        let mut c = Raw::connect(&b, protocol, &b.id("sys-acl", 1)).await;
        assert_eq!(
            c.subscribe("$SYS/brokers/+/clients/+/connected", 0).await,
            [refused],
            "{protocol:?}: events are $SYS too"
        );
        assert_eq!(
            c.subscribe("$SYS/broker/clients/#", 0).await,
            [refused],
            "{protocol:?}"
        );
        // A wildcard that covers the uptime is granted, and delivers only what may be read,
        // retained and live alike.
        assert_eq!(c.subscribe("$SYS/#", 0).await, [0], "{protocol:?}");
        let deadline = Instant::now() + Duration::from_millis(2500);
        let mut got = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match c.0.next(left).await {
                Got::Packet(ringmq::codec::Packet::Publish(p)) => got.push(p.topic.to_string()),
                Got::Packet(other) => panic!("{protocol:?}: unexpected {other:?}"),
                Got::Closed => panic!("{protocol:?}: closed"),
                Got::Timeout => break,
            }
        }
        assert!(!got.is_empty(), "{protocol:?}: the uptime arrives");
        assert!(
            got.iter().all(|t| t == "$SYS/broker/uptime"),
            "{protocol:?}: only the uptime may be read: {got:?}"
        );
    }
    // Writing under $SYS is refused whatever the ACL says.
    let mut w = Raw::connect(&b, Protocol::V5, &b.id("sys-writer", 0)).await;
    w.0.send(publish_packet("$SYS/broker/uptime", 1, 9, b"forged"))
        .await;
    match w.0.recv().await {
        ringmq::codec::Packet::PubAck(a) => assert_eq!(a.reason, 0x87),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn sys_tree_and_events_can_be_switched_off(shards: usize) {
    let b = Broker::with(shards, &["--sys-interval-s", "0", "--sys-events", "false"]).await;
    let mut watch = Client::connect(&b, Version::V5, &b.id("off-watch", 0)).await;
    watch.subscribe("$SYS/#", 0).await;
    let other = Client::connect(&b, Version::V5, &b.id("off-other", 1)).await;
    other.disconnect().await;
    watch.expect_nothing(Duration::from_millis(2500)).await;
}

/// The next event for `id`: (connected or disconnected, its JSON).
async fn event(c: &mut Client, id: &str) -> (String, serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = c
            .try_recv(left)
            .await
            .unwrap_or_else(|| panic!("no event for {id}"));
        let prefix = format!("$SYS/brokers/testnode/clients/{id}/");
        if let Some(kind) = m.topic.strip_prefix(&prefix) {
            assert!(!m.retain, "events are not retained");
            assert_eq!(m.qos, 0, "events are QoS 0");
            let json: serde_json::Value = serde_json::from_slice(&m.payload).expect("JSON");
            assert_eq!(json["clientid"], id);
            return (kind.to_string(), json);
        }
    }
}

async fn disconnected_reason(c: &mut Client, id: &str) -> String {
    let (kind, json) = event(c, id).await;
    assert_eq!(kind, "disconnected", "{json}");
    assert!(json["disconnected_at"].as_u64().is_some_and(|t| t > 0));
    json["reason"].as_str().expect("reason").to_string()
}

async fn presence_events_fire_with_emqx_reasons(v: Version, shards: usize) {
    let b = sys_broker(shards, &[]).await;
    let mut watch = Client::connect(&b, Version::V5, &b.id("ev-watch", 0)).await;
    watch.subscribe("$SYS/brokers/testnode/clients/#", 0).await;
    let proto_ver = if v.is_v5() { 5 } else { 4 };

    // Connect, then a clean DISCONNECT: "normal".
    let id = b.id("ev-a", 1);
    let a = Client::connect(&b, v, &id).await;
    let (kind, json) = event(&mut watch, &id).await;
    assert_eq!(kind, "connected");
    assert_eq!(json["proto_ver"], proto_ver);
    assert_eq!(json["clean_start"], true);
    assert_eq!(json["ipaddress"], "127.0.0.1");
    assert!(json["keepalive"].as_u64().is_some());
    assert!(json["username"].is_null());
    assert!(json["connected_at"]
        .as_u64()
        .is_some_and(|t| t > 1_600_000_000_000));
    a.disconnect().await;
    assert_eq!(disconnected_reason(&mut watch, &id).await, "normal");

    // The connection is dropped without DISCONNECT: "tcp_closed".
    let id = b.id("ev-b", 0);
    let c = Client::connect(&b, v, &id).await;
    assert_eq!(event(&mut watch, &id).await.0, "connected");
    c.kill().await;
    assert_eq!(disconnected_reason(&mut watch, &id).await, "tcp_closed");

    // Silent for 1.5 × keep alive: "keepalive_timeout".
    let id = b.id("ev-c", 1);
    let mut connect = connect_packet(v.protocol(), &id);
    connect.keep_alive_s = 1;
    let (_silent, ack) = Raw::handshake(&b, connect).await;
    assert_eq!(ack.code, 0);
    let (kind, json) = event(&mut watch, &id).await;
    assert_eq!(
        (kind.as_str(), json["keepalive"].as_u64()),
        ("connected", Some(1))
    );
    let started = Instant::now();
    assert_eq!(
        disconnected_reason(&mut watch, &id).await,
        "keepalive_timeout"
    );
    assert!(started.elapsed() < Duration::from_secs(4));

    // The same client id again with clean start: the old session is discarded.
    let id = b.id("ev-d", 0);
    let _d1 = Client::connect(&b, v, &id).await;
    assert_eq!(event(&mut watch, &id).await.0, "connected");
    let _d2 = Client::connect(&b, v, &id).await;
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let (kind, json) = event(&mut watch, &id).await;
        kinds.push(format!("{kind} {}", json["reason"].as_str().unwrap_or("")));
    }
    kinds.sort();
    assert_eq!(kinds, ["connected ", "disconnected discarded"]);

    // ... and without clean start: the session is taken over.
    let id = b.id("ev-e", 1);
    let _e1 = Client::connect_with(&b, v, &id, Opts::persistent()).await;
    assert_eq!(event(&mut watch, &id).await.0, "connected");
    let _e2 = Client::connect_with(&b, v, &id, Opts::persistent()).await;
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let (kind, json) = event(&mut watch, &id).await;
        kinds.push(format!("{kind} {}", json["reason"].as_str().unwrap_or("")));
        if kind == "connected" {
            assert_eq!(json["clean_start"], false);
        }
    }
    kinds.sort();
    assert_eq!(kinds, ["connected ", "disconnected takenover"]);
}
