//! CONNECT and CONNACK, session present, takeover, keep alive, DISCONNECT, the connect timeout and
//! MQTT 3.1 ("MQIsdp").

use crate::common::*;
use ringmq::codec::{Disconnect, Packet, Protocol};
use std::time::{Duration, Instant};

version_tests!(
    mqtt_3_2_2_connack_accepts_a_valid_connect,
    mqtt_3_2_2_1_session_present_reflects_the_stored_session,
    mqtt_3_1_3_6_empty_client_id_with_clean_start_is_accepted,
    mqtt_3_1_4_3_session_takeover_closes_the_old_connection,
    mqtt_3_1_2_24_keepalive_closes_after_one_and_a_half_times,
    mqtt_3_1_2_24_pingreq_keeps_the_connection_alive,
    mqtt_3_14_4_disconnect_closes_the_connection,
);

shard_tests!(
    mqtt_3_1_2_2_unsupported_protocol_level_gets_return_code_1,
    mqtt_3_1_3_8_empty_client_id_without_clean_session_is_rejected,
    mqtt_3_1_2_3_connect_with_reserved_flag_is_refused,
    mqtt_3_2_2_3_v5_connack_carries_the_server_limits,
    mqtt_3_2_2_21_v5_server_keep_alive_is_returned_and_enforced,
    connect_timeout_closes_a_connection_that_sends_no_connect,
    mqtt_3_1_mqisdp_client_connects_and_exchanges_messages,
);

async fn mqtt_3_2_2_connack_accepts_a_valid_connect(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    // Several clients, so that with 2 shards some are accepted on the other shard and handed
    // over to their home shard before CONNACK.
    for i in 0..4 {
        let c = Client::connect(&b, v, &format!("accept-{i}")).await;
        assert!(!c.connack.session_present, "a clean session is new");
    }
    let (_raw, ack) = Raw::handshake(&b, connect_packet(v.protocol(), "accept-raw")).await;
    assert_eq!(ack.code, 0);
    assert!(!ack.session_present);
}

async fn mqtt_3_2_2_1_session_present_reflects_the_stored_session(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let connect = |o: Opts| Client::connect_with(&b, v, "present", o);
    let c = connect(Opts::persistent()).await;
    assert!(!c.connack.session_present, "no session stored yet");
    c.disconnect().await;
    for _ in 0..3 {
        let c = connect(Opts::persistent()).await;
        assert!(c.connack.session_present, "the persistent session was kept");
        c.disconnect().await;
    }
    let c = connect(Opts::clean()).await;
    assert!(
        !c.connack.session_present,
        "clean start never resumes [MQTT-3.2.2-2]"
    );
    c.disconnect().await;
    let c = connect(Opts::persistent()).await;
    assert!(
        !c.connack.session_present,
        "the clean connection discarded the stored session"
    );
}

async fn mqtt_3_1_3_6_empty_client_id_with_clean_start_is_accepted(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let mut a = Client::connect(&b, v, "").await;
    let mut other = Client::connect(&b, v, "").await;
    if v.is_v5() {
        let ida = a
            .connack
            .assigned_id
            .clone()
            .expect("Assigned Client Identifier [MQTT-3.2.2-16]");
        let idb = other
            .connack
            .assigned_id
            .clone()
            .expect("Assigned Client Identifier");
        assert!(!ida.is_empty());
        assert_ne!(ida, idb, "each connection gets its own identifier");
    } else {
        assert_eq!(a.connack.assigned_id, None);
    }
    // Both connections are distinct sessions: neither took the other over, both work.
    assert_eq!(a.subscribe("anon/t", 1).await, 1);
    other.publish_settled("anon/t", 1, "hi", false).await;
    assert_eq!(a.recv().await.text(), "hi");
    assert!(!other.is_closed());
}

async fn mqtt_3_1_4_3_session_takeover_closes_the_old_connection(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let mut old = Client::connect(&b, v, "taken").await;
    let mut new = Client::connect(&b, v, "taken").await;
    let closed = old
        .closed(WAIT)
        .await
        .expect("the old connection is closed");
    if v.is_v5() {
        assert_eq!(
            closed.reason,
            Some(0x8E),
            "v5: DISCONNECT Session taken over: {closed:?}"
        );
    }
    // The new connection is the session now.
    assert_eq!(new.subscribe("takeover/t", 1).await, 1);
    let mut p = Client::connect(&b, v, &b.id("takeover-pub", 1)).await;
    p.publish_settled("takeover/t", 1, "to-new", false).await;
    assert_eq!(new.recv().await.text(), "to-new");
    assert!(!new.is_closed());
}

/// Raw client `c` with keep alive 1 s that then goes silent: closed between 1 s and 3 s
/// later; v5 gets DISCONNECT 0x8D first.
async fn silent_client_is_closed_by_keepalive(b: &Broker, mut c: ringmq::codec::Connect) {
    c.keep_alive_s = 1;
    let (mut raw, ack) = Raw::handshake(b, c).await;
    assert_eq!(ack.code, 0);
    let t0 = Instant::now();
    let before = raw.expect_refused(&[0x8D]).await;
    assert!(before.is_empty(), "nothing but the DISCONNECT: {before:?}");
    assert_between(t0.elapsed(), 1000, 3000, "keep alive 1 s: closed at 1.5 s");
}

async fn mqtt_3_1_2_24_keepalive_closes_after_one_and_a_half_times(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    silent_client_is_closed_by_keepalive(&b, connect_packet(v.protocol(), "silent")).await;
}

async fn mqtt_3_1_2_24_pingreq_keeps_the_connection_alive(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let mut c = connect_packet(v.protocol(), "pinger");
    c.keep_alive_s = 1;
    let (mut raw, _) = Raw::handshake(&b, c).await;
    // 2.5 s in all, well past 1.5 x keep alive, with a PINGREQ every 0.5 s.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        raw.ping().await;
    }
}

async fn mqtt_3_14_4_disconnect_closes_the_connection(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let mut raw = Raw::connect(&b, v.protocol(), "leaver").await;
    raw.send(&Packet::Disconnect(Disconnect::default())).await;
    let after = raw.expect_close(WAIT).await;
    assert!(
        after.is_empty(),
        "the server sends nothing after DISCONNECT: {after:?}"
    );
}

/// CONNECT with protocol `name` and `level` (v3.1.1 layout), client id "lvl".
fn connect_with_level(name: &[u8], level: u8) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(name.len() as u16).to_be_bytes());
    body.extend_from_slice(name);
    body.extend_from_slice(&[level, 0x02, 0, 30, 0, 3]);
    body.extend_from_slice(b"lvl");
    let mut out = fixed_header(0x10, body.len());
    out.extend_from_slice(&body);
    out
}

/// Everything the broker sends before it closes the connection.
async fn bytes_until_close(raw: &mut Raw) -> Vec<u8> {
    raw.expect_close(WAIT)
        .await
        .iter()
        .flat_map(|p| encode(p, raw.protocol))
        .collect()
}

async fn mqtt_3_1_2_2_unsupported_protocol_level_gets_return_code_1(shards: usize) {
    let b = Broker::start(shards).await;
    for (name, level) in [
        (&b"MQTT"[..], 6u8),
        (b"MQTT", 2),
        (b"MQTT", 0),
        (b"MQIsdp", 4),
    ] {
        let mut raw = Raw::open(&b).await;
        raw.send_bytes(&connect_with_level(name, level)).await;
        assert_eq!(
            bytes_until_close(&mut raw).await,
            [0x20, 2, 0, 0x01],
            "CONNACK 0x01 (unacceptable protocol level) then close, for level {level}"
        );
    }
}

async fn mqtt_3_1_3_8_empty_client_id_without_clean_session_is_rejected(shards: usize) {
    let b = Broker::start(shards).await;
    let mut c = connect_packet(Protocol::V311, "");
    c.clean_start = false;
    let (mut raw, ack) = Raw::handshake(&b, c).await;
    assert_eq!(ack.code, 0x02, "identifier rejected");
    assert!(!ack.session_present, "[MQTT-3.2.2-4]");
    assert!(raw.expect_close(WAIT).await.is_empty());
}

async fn mqtt_3_1_2_3_connect_with_reserved_flag_is_refused(shards: usize) {
    let b = Broker::start(shards).await;
    for protocol in [Protocol::V311, Protocol::V5] {
        let mut bytes = encode(
            &Packet::Connect(Box::new(connect_packet(protocol, "rsv"))),
            protocol,
        );
        // Fixed header (2) + "MQTT" (6) + level (1): the connect flags.
        bytes[9] |= 0x01;
        let mut raw = Raw::open(&b).await;
        raw.protocol = protocol;
        raw.send_bytes(&bytes).await;
        let answer = bytes_until_close(&mut raw).await;
        if protocol.is_v5() {
            assert_eq!(
                answer,
                [0x20, 3, 0, 0x81, 0],
                "v5: CONNACK 0x81 Malformed Packet"
            );
        } else {
            assert!(
                answer.is_empty(),
                "v3.1.1: closed without CONNACK [MQTT-3.1.2-3]"
            );
        }
    }
}

async fn mqtt_3_2_2_3_v5_connack_carries_the_server_limits(shards: usize) {
    let b = Broker::with(
        shards,
        &[
            "--receive-maximum",
            "7",
            "--packet-bytes-max",
            "4096",
            "--maximum-qos",
            "1",
            "--retain-available",
            "false",
        ],
    )
    .await;
    let c = Client::connect(&b, Version::V5, "limits").await;
    let info = &c.connack;
    assert_eq!(info.receive_max, Some(7), "Receive Maximum");
    assert_eq!(info.max_packet_size, Some(4096), "Maximum Packet Size");
    assert_eq!(info.max_qos, Some(1), "Maximum QoS");
    assert_eq!(info.retain_available, Some(0), "Retain Available");
    assert_eq!(info.assigned_id, None, "the client named itself");
    drop(b);

    let b = Broker::start(shards).await;
    let c = Client::connect(&b, Version::V5, "defaults").await;
    let info = &c.connack;
    assert_eq!(info.receive_max, Some(1024));
    assert_eq!(info.max_packet_size, Some(1024 * 1024));
    assert_eq!(info.max_qos, None, "absent means QoS 2");
    assert_eq!(info.retain_available, None, "absent means available");
}

async fn mqtt_3_2_2_21_v5_server_keep_alive_is_returned_and_enforced(shards: usize) {
    let b = Broker::with(shards, &["--server-keep-alive-s", "1"]).await;
    let (mut raw, ack) = Raw::handshake(&b, connect_packet(Protocol::V5, "ska")).await;
    assert_eq!(ack.code, 0);
    assert_eq!(
        ack.properties.server_keep_alive_s,
        Some(1),
        "Server Keep Alive"
    );
    let t0 = Instant::now();
    raw.expect_refused(&[0x8D]).await;
    assert_between(
        t0.elapsed(),
        1000,
        3000,
        "the server's 1 s keep alive, not the client's 30 s",
    );
    // The setting caps, it does not replace: a v5 client asking for less keeps its own (no
    // Server Keep Alive in CONNACK) ...
    let b = Broker::with(shards, &["--server-keep-alive-s", "60"]).await;
    let mut short = connect_packet(Protocol::V5, "ska-short");
    short.keep_alive_s = 5;
    let (_raw, ack) = Raw::handshake(&b, short).await;
    assert_eq!((ack.code, ack.properties.server_keep_alive_s), (0, None));
    // ... a v3.1.1 client asking for more (which it cannot be told) is refused with return code
    // 2, as Mosquitto's max_keepalive refuses it, and one within the cap is served.
    let mut long = connect_packet(Protocol::V311, "ska-v3-long");
    long.keep_alive_s = 61;
    let (_raw, ack) = Raw::handshake(&b, long).await;
    assert_eq!(ack.code, 2, "identifier rejected");
    let mut v3 = Raw::connect(&b, Protocol::V311, "ska-v3").await;
    v3.expect_silence(Duration::from_millis(500)).await;
    v3.ping().await;
}

async fn connect_timeout_closes_a_connection_that_sends_no_connect(shards: usize) {
    let b = Broker::with(shards, &["--connect-timeout-ms", "300"]).await;
    let mut raw = Raw::open(&b).await;
    let t0 = Instant::now();
    assert!(raw.expect_close(WAIT).await.is_empty());
    assert_between(t0.elapsed(), 250, 2000, "connect timeout 300 ms");
}

async fn mqtt_3_1_mqisdp_client_connects_and_exchanges_messages(shards: usize) {
    let b = Broker::start(shards).await;
    let mut old = Raw::connect(&b, Protocol::V310, &b.id("legacy-sub", 0)).await;
    assert_eq!(old.subscribe("legacy/#", 1).await, [1]);
    // 3.1.1 publisher → 3.1 subscriber.
    let mut p = Client::connect(&b, Version::V3, &b.id("modern-pub", 1)).await;
    p.publish_settled("legacy/a", 1, "to-3.1", false).await;
    let m = old.recv_publish().await;
    assert_eq!((&m.topic[..], &m.payload[..]), ("legacy/a", &b"to-3.1"[..]));
    assert_eq!(m.qos as u8, 1);
    old.send(&Packet::PubAck(ack(m.packet_id))).await;
    // 3.1 publisher → v5 subscriber.
    let mut v5 = Client::connect(&b, Version::V5, &b.id("modern-sub", 1)).await;
    assert_eq!(v5.subscribe("legacy/#", 1).await, 1);
    let mut old_pub = Raw::connect(&b, Protocol::V310, &b.id("legacy-pub", 0)).await;
    old_pub
        .send(&publish_packet("legacy/b", 1, 5, b"from-3.1"))
        .await;
    match old_pub.recv().await {
        Packet::PubAck(a) => assert_eq!(a.packet_id, 5),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    let m = v5.recv().await;
    assert_eq!(
        (m.topic.as_str(), m.text().as_str()),
        ("legacy/b", "from-3.1")
    );
    // The 3.1 subscriber got it too.
    assert_eq!(&old.recv_publish().await.payload[..], b"from-3.1");
}
