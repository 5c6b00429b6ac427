//! Area 14: hostile clients. Each limit refuses the abuser and only the abuser: a witness pair
//! (numbered QoS 1 messages between two other clients) loses nothing meanwhile. Abusers come
//! from other loopback addresses (127.0.0.2, ...: all of 127.0.0.0/8 is local on Linux), so
//! per-address limits are tested without touching the witness's address.

use crate::broker_process::PortLease;
use crate::common::*;
use crate::raw_client::connect_packet;
use ringmq::codec::{self, Packet, Properties, Protocol, Publish, QoS};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

shard_tests!(
    slowloris_connects_are_closed_at_the_connect_timeout,
    a_tls_handshake_flood_is_cut_at_the_deadline_while_tls_clients_connect,
    max_connections_per_address_caps_one_address_only,
    max_connection_rate_per_address_refuses_a_burst_past_the_rate,
    banned_addresses_are_closed_at_accept,
    max_connections_caps_the_broker,
    a_client_over_its_publish_rate_is_disconnected_with_0x96,
    sessions_max_refuses_new_sessions_but_not_returning_ones,
    retained_messages_max_refuses_new_retained_topics_with_0x97,
);

/// A TCP connection to the broker from `127.0.0.<host>`.
async fn connect_from(host: u8, port: u16) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)),
        0,
    ))?;
    s.connect(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
        .await
}

/// A 3.1.1 CONNECT, clean session.
fn connect_bytes(id: &str) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    codec::encode(
        &Packet::Connect(Box::new(connect_packet(Protocol::V311, id))),
        Protocol::V311,
        &mut out,
    )
    .expect("encode CONNECT");
    out.to_vec()
}

/// CONNECT from `127.0.0.<host>`: the CONNACK return code, or `None` if the broker closed the
/// connection without one.
async fn try_mqtt(host: u8, port: u16, id: &str) -> (Option<u8>, Option<TcpStream>) {
    let Ok(mut s) = connect_from(host, port).await else {
        return (None, None);
    };
    if s.write_all(&connect_bytes(id)).await.is_err() {
        return (None, None);
    }
    let mut ack = [0u8; 4];
    match tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut ack)).await {
        Ok(Ok(_)) if ack[0] == 0x20 => (Some(ack[3]), Some(s)),
        _ => (None, None),
    }
}

/// True once the peer closed `s` (EOF or reset) within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

async fn slowloris_connects_are_closed_at_the_connect_timeout(shards: usize) {
    let b = Broker::with(shards, &["--connect-timeout-ms", "500"]).await;
    let w = Witness::start(&b).await;
    let connect = connect_bytes("slow");
    let mut slow = Vec::new();
    for _ in 0..100 {
        let mut s = connect_from(2, b.port).await.expect("connect");
        s.write_all(&connect[..1]).await.expect("first byte");
        slow.push(s);
    }
    // One more byte every 100 ms: never a whole CONNECT in time.
    let t0 = Instant::now();
    let mut sent = 1;
    while t0.elapsed() < Duration::from_millis(1500) && sent < connect.len() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for s in &mut slow {
            let _ = s.write_all(&connect[sent..sent + 1]).await;
        }
        sent += 1;
    }
    for s in &mut slow {
        assert!(
            closed_within(s, Duration::from_secs(2)).await,
            "a slowloris connection lived on"
        );
    }
    w.finish().await;
}

async fn a_tls_handshake_flood_is_cut_at_the_deadline_while_tls_clients_connect(shards: usize) {
    // A TLS listener with a self-made certificate (the TLS tests cover the certificate side).
    let tls = PortLease::acquire();
    let dir = std::env::temp_dir().join(format!("ringmq-flood-{}-{shards}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    std::fs::write(dir.join("c.pem"), cert.pem()).expect("write");
    std::fs::write(dir.join("k.pem"), key.serialize_pem()).expect("write");
    let cfg = dir.join("r.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[listener]]\nbind = \"127.0.0.1:{}\"\nprotocol = \"mqtts\"\ncertfile = \"{}\"\nkeyfile = \"{}\"\n",
            tls.port,
            dir.join("c.pem").display(),
            dir.join("k.pem").display()
        ),
    )
    .expect("config");
    let b = Broker::with(
        shards,
        &[
            "--config",
            cfg.to_str().expect("utf-8"),
            "--connect-timeout-ms",
            "500",
        ],
    )
    .await;
    let w = Witness::start(&b).await;
    // 200 connections that start a TLS record and never finish the handshake.
    let mut flood = Vec::new();
    for _ in 0..200 {
        let mut s = connect_from(3, tls.port).await.expect("connect");
        let _ = s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await;
        flood.push(s);
    }
    // A real TLS client still gets through during the flood.
    let ok = tokio::process::Command::new("mosquitto_pub")
        .args([
            "-h",
            "localhost",
            "-p",
            &tls.port.to_string(),
            "--insecure",
            "--cafile",
        ])
        .arg(dir.join("c.pem"))
        .args(["-t", "flood/ok", "-m", "x", "-i", "tls-during-flood"])
        .kill_on_drop(true)
        .status();
    let ok = tokio::time::timeout(Duration::from_secs(10), ok).await;
    assert!(
        matches!(ok, Ok(Ok(s)) if s.success()),
        "a TLS client could not connect: {ok:?}"
    );
    for s in &mut flood {
        assert!(
            closed_within(s, Duration::from_secs(3)).await,
            "a stalled handshake lived on"
        );
    }
    w.finish().await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn max_connections_per_address_caps_one_address_only(shards: usize) {
    let b = Broker::with(shards, &["--max-connections-per-address", "5"]).await;
    let w = Witness::start(&b).await;
    let mut held = Vec::new();
    for i in 0..5 {
        let (code, s) = try_mqtt(4, b.port, &format!("cap-{i}")).await;
        assert_eq!(code, Some(0), "connection {i} is under the cap");
        held.push(s);
    }
    let (code, _) = try_mqtt(4, b.port, "cap-5").await;
    assert_eq!(code, None, "the 6th connection from one address was served");
    // Another address is not affected; and a closed connection gives its place back.
    assert_eq!(try_mqtt(5, b.port, "other-address").await.0, Some(0));
    held.pop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(try_mqtt(4, b.port, "cap-again").await.0, Some(0));
    w.finish().await;
}

async fn max_connection_rate_per_address_refuses_a_burst_past_the_rate(shards: usize) {
    let b = Broker::with(shards, &["--max-connection-rate-per-address", "20"]).await;
    let w = Witness::start(&b).await;
    let mut admitted = 0;
    for i in 0..60 {
        if try_mqtt(6, b.port, &format!("burst-{i}")).await.0 == Some(0) {
            admitted += 1;
        }
    }
    // A burst of 20, plus what refills while the 60 attempts run.
    assert!(
        (20..60).contains(&admitted),
        "{admitted} of 60 admitted at 20/s"
    );
    assert_eq!(try_mqtt(7, b.port, "other-address").await.0, Some(0));
    w.finish().await;
}

async fn banned_addresses_are_closed_at_accept(shards: usize) {
    let b = Broker::with(shards, &["--ban", "127.0.0.8", "--ban", "127.0.1.0/24"]).await;
    let w = Witness::start(&b).await;
    assert_eq!(try_mqtt(8, b.port, "banned").await.0, None);
    let s = TcpSocket::new_v4().expect("socket");
    s.bind("127.0.1.9:0".parse().expect("addr")).expect("bind");
    let mut s = s
        .connect(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), b.port))
        .await
        .expect("TCP connect");
    assert!(
        closed_within(&mut s, Duration::from_secs(2)).await,
        "a banned network was served"
    );
    assert_eq!(try_mqtt(9, b.port, "not-banned").await.0, Some(0));
    w.finish().await;
}

async fn max_connections_caps_the_broker(shards: usize) {
    // The witness holds two connections.
    let b = Broker::with(shards, &["--max-connections", "4"]).await;
    let w = Witness::start(&b).await;
    let (c1, _s1) = try_mqtt(10, b.port, "total-1").await;
    let (c2, _s2) = try_mqtt(11, b.port, "total-2").await;
    assert_eq!((c1, c2), (Some(0), Some(0)));
    assert_eq!(
        try_mqtt(12, b.port, "total-3").await.0,
        None,
        "a 5th connection was served"
    );
    w.finish().await;
}

async fn a_client_over_its_publish_rate_is_disconnected_with_0x96(shards: usize) {
    let b = Broker::with(shards, &["--max-publish-rate-per-client", "200"]).await;
    let w = Witness::start(&b).await; // ~100 messages/s: under the rate
    for protocol in [Protocol::V5, Protocol::V311] {
        let mut raw = Raw::connect(&b, protocol, &b.id("flooder", 1)).await;
        for i in 0..1000u32 {
            raw.0
                .send(Packet::Publish(Publish {
                    dup: false,
                    qos: QoS::AtMostOnce,
                    retain: false,
                    topic: "flood/t".into(),
                    packet_id: 0,
                    properties: Properties::default(),
                    payload: i.to_be_bytes().to_vec().into(),
                }))
                .await;
        }
        raw.expect_refused(&[0x96]).await;
    }
    w.finish().await;
}

async fn sessions_max_refuses_new_sessions_but_not_returning_ones(shards: usize) {
    // The witness holds two sessions.
    let b = Broker::with(shards, &["--sessions-max", "3"]).await;
    let w = Witness::start(&b).await;
    let id = b.id("third", 0);
    let third = Raw::connect(&b, Protocol::V5, &id).await;
    let (_r, ack) = Raw::handshake(&b, connect_packet(Protocol::V5, &b.id("fourth", 1))).await;
    assert_eq!(ack.code, 0x97, "v5: quota exceeded");
    let (_r, ack) = Raw::handshake(&b, connect_packet(Protocol::V311, &b.id("fifth", 1))).await;
    assert_eq!(ack.code, 3, "v3: server unavailable");
    // The third client reconnecting takes its own session over: not a new one.
    let (_again, ack) = Raw::handshake(&b, connect_packet(Protocol::V5, &id)).await;
    assert_eq!(ack.code, 0);
    drop(third);
    w.finish().await;
}

async fn puback(p: &mut Raw, packet: Packet) -> u8 {
    p.0.send(packet).await;
    match p.0.recv().await {
        Packet::PubAck(a) => a.reason,
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

async fn retained_messages_max_refuses_new_retained_topics_with_0x97(shards: usize) {
    let b = Broker::with(shards, &["--retained-messages-max", "2"]).await;
    let w = Witness::start(&b).await;
    let mut p = Raw::connect(&b, Protocol::V5, &b.id("retainer", 1)).await;
    let retained = |topic: &str, payload: &'static [u8], id: u16| {
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: true,
            topic: topic.into(),
            packet_id: id,
            properties: Properties::default(),
            payload: payload.into(),
        })
    };
    assert_eq!(puback(&mut p, retained("r/1", b"a", 1)).await, 0x10);
    assert_eq!(puback(&mut p, retained("r/2", b"b", 2)).await, 0x10);
    assert_eq!(
        puback(&mut p, retained("r/3", b"c", 3)).await,
        0x97,
        "a third topic"
    );
    // Replacing and clearing what is retained still works, and clearing makes room.
    assert_eq!(puback(&mut p, retained("r/1", b"a2", 4)).await, 0x10);
    assert_eq!(puback(&mut p, retained("r/2", b"", 5)).await, 0x10);
    assert_eq!(puback(&mut p, retained("r/3", b"c", 6)).await, 0x10);
    let mut s = Raw::connect(&b, Protocol::V5, &b.id("reader", 0)).await;
    s.subscribe("r/#", 0).await;
    let got = s.recv_n(2).await;
    let mut topics: Vec<String> = got
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(m) => Some(m.topic.to_string()),
            _ => None,
        })
        .collect();
    topics.sort();
    assert_eq!(topics, ["r/1", "r/3"]);
    w.finish().await;
}
