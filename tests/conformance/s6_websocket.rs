//! Chapter 6: MQTT over WebSocket, on a `protocol = "ws"` listener, with hand-written frames
//! (`tests/support/ws_raw.rs`). The broker suite's area 16 runs real WebSocket clients.

use crate::broker_process::PortLease;
use crate::fixture::*;
use crate::ws_raw::{binary, frame, upgrade};
use ringmq::codec::{Packet, Protocol};

/// A 1-shard broker with a WebSocket listener on the returned port (and its config file's
/// directory, removed when dropped).
async fn ws_broker() -> (Broker, PortLease, Scratch) {
    let ws = PortLease::acquire();
    let dir =
        std::env::temp_dir().join(format!("ringmq-conf-ws-{}-{}", std::process::id(), ws.port));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let file = dir.join("ringmq.toml");
    let cfg = format!(
        "[[listener]]\nbind = \"127.0.0.1:{}\"\nprotocol = \"ws\"\n",
        ws.port
    );
    std::fs::write(&file, cfg).expect("config file");
    let b = Broker::with(&["--config", file.to_str().expect("utf-8 path")]).await;
    (b, ws, Scratch(dir))
}

struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// [MQTT-6.0.0-1] MQTT travels in binary frames; a text frame closes the connection (close
/// code 1003, unsupported data), before and after CONNECT.
#[tokio::test]
async fn mqtt_6_0_0_1_a_text_frame_closes_the_connection() {
    let (_b, ws, _d) = ws_broker().await;
    for connected in [false, true] {
        let (status, mut c) = upgrade(ws.port, "/mqtt", &[]).await;
        assert_eq!(status, 101);
        if connected {
            c.connect("ws-text").await;
        }
        c.send(&frame(0x81, b"\x10\x00")).await;
        assert_eq!(
            c.frame(WAIT).await,
            Some((0x88, 1003u16.to_be_bytes().to_vec()))
        );
        assert!(c.closed_within(WAIT).await);
    }
}

/// [MQTT-6.0.0-2] Packets are not aligned with frames: a CONNECT in two frames, then one frame
/// holding a SUBSCRIBE, a PUBLISH and a PINGREQ and ending inside a second PUBLISH, which the
/// next frame completes.
#[tokio::test]
async fn mqtt_6_0_0_2_packets_need_not_align_with_frames() {
    let (_b, ws, _d) = ws_broker().await;
    let (status, mut c) = upgrade(ws.port, "/mqtt", &[]).await;
    assert_eq!(status, 101);
    let connect = wire_connect(&v5("ws-align"));
    let mut stream = connect.clone();
    stream.extend(wire(
        &Packet::Subscribe(subscribe(1, &[("a/#", sub(0))])),
        Protocol::V5,
    ));
    for payload in [&b"one"[..], b"two"] {
        stream.extend(wire(
            &Packet::Publish(publish("a/b", 0, 0, payload)),
            Protocol::V5,
        ));
        if payload == b"one" {
            stream.extend([0xC0, 0x00]);
        }
    }
    let cuts = [3, connect.len(), stream.len() - 4, stream.len()];
    let mut at = 0;
    for cut in cuts {
        c.send(&binary(&stream[at..cut])).await;
        at = cut;
    }
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(c.packet(&mut Vec::new()).await);
    }
    assert!(
        matches!(got[0], Packet::ConnAck(ref a) if a.code == 0),
        "{got:?}"
    );
    assert!(matches!(got[1], Packet::SubAck(_)), "{got:?}");
    assert!(
        matches!(got[2], Packet::Publish(ref p) if &p.payload[..] == b"one"),
        "{got:?}"
    );
    assert!(matches!(got[3], Packet::PingResp), "{got:?}");
    assert!(
        matches!(got[4], Packet::Publish(ref p) if &p.payload[..] == b"two"),
        "{got:?}"
    );
}

/// [MQTT-6.0.0-3] The client must offer "mqtt": the broker's side of that is refusing (400) a
/// handshake that offers only other subprotocols, and admitting the legacy "mqttv3.1".
#[tokio::test]
async fn mqtt_6_0_0_3_a_client_offering_only_other_subprotocols_is_refused() {
    let (_b, ws, _d) = ws_broker().await;
    let (status, _) = upgrade(ws.port, "/mqtt", &["Sec-WebSocket-Protocol: chat"]).await;
    assert_eq!(status, 400);
    let (status, _) = upgrade(ws.port, "/mqtt", &["Sec-WebSocket-Protocol: mqttv3.1"]).await;
    assert_eq!(status, 101);
}

/// [MQTT-6.0.0-4] The server selects "mqtt" when the client offers it (among others);
/// `upgrade` checks the 101's Sec-WebSocket-Protocol and Sec-WebSocket-Accept.
#[tokio::test]
async fn mqtt_6_0_0_4_the_server_selects_mqtt() {
    let (_b, ws, _d) = ws_broker().await;
    let (status, mut c) = upgrade(
        ws.port,
        "/mqtt",
        &["Sec-WebSocket-Protocol: chat, mqtt, mqttv3.1"],
    )
    .await;
    assert_eq!(status, 101);
    c.connect("ws-select").await;
}
