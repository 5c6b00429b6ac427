//! Area 16: MQTT over WebSocket (`protocol = "ws"` and `"wss"`). Normal flows use a real
//! third-party client, Eclipse paho for Python over `transport="websockets"` (`ws_paho.py`
//! beside this file; Python's ssl, i.e. OpenSSL, for wss), also talking to a TCP client through
//! the broker. Framing edge cases and refusals are hand-written frames over a plain socket.

use crate::broker_process::PortLease;
use crate::common::*;
use crate::t11_tls::{pki, Dir};
use crate::ws_raw::{binary, frame, upgrade};
use ringmq::codec::{self, Packet, Protocol};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

version_tests!(paho_publishes_and_subscribes_over_websocket);

shard_tests!(
    a_websocket_and_a_tcp_client_exchange_messages_across_shards,
    paho_over_wss_with_openssl_publishes_and_subscribes,
    packets_split_across_frames_and_packed_in_one_frame_survive_the_hand_over,
    ping_is_answered_and_close_is_echoed_then_the_connection_ends,
    text_unmasked_and_oversize_frames_are_closed_with_their_codes,
    bad_path_gets_404_bad_origin_403_and_bad_version_426,
    a_handshake_dribbled_slowly_is_closed_at_the_deadline,
    the_chat_page_is_served_within_the_handshake_bounds,
);

/// A broker with a plain listener (the harness's `--bind`) and one WebSocket listener.
struct WsBroker {
    b: Broker,
    ws: PortLease,
    _dir: Dir,
}

/// `protocol` is "ws" or "wss"; `extra` goes into the listener's table.
async fn ws_broker(shards: usize, protocol: &str, extra: &str, flags: &[&str]) -> WsBroker {
    let dir = Dir::new();
    let ws = PortLease::acquire();
    let cfg = format!(
        "[[listener]]\nbind = \"127.0.0.1:{}\"\nprotocol = \"{protocol}\"\n{extra}\n",
        ws.port
    );
    let file = dir.write("ringmq.toml", &cfg);
    let mut args = vec!["--config", file.to_str().expect("utf-8 path")];
    args.extend_from_slice(flags);
    let b = Broker::with(shards, &args).await;
    WsBroker { b, ws, _dir: dir }
}

// ---------------------------------------------------------------------------------------------
// paho over WebSocket
// ---------------------------------------------------------------------------------------------

fn paho(args: &[&str]) -> Child {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/broker/ws_paho.py");
    // Debian's interpreter, where apt puts python3-paho-mqtt: a pyenv or venv `python3`
    // earlier on PATH would not see it (CI failed on exactly that).
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    Command::new(python)
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 with paho-mqtt (tests/run-all.sh installs it)")
}

/// A paho subscriber, returned once it printed "ready" (subscribed).
async fn paho_sub(
    args: &[&str],
) -> (
    Child,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) {
    let mut child = paho(&[&["sub"], args].concat());
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await;
    assert!(
        matches!(&first, Ok(Ok(Some(l))) if l == "ready"),
        "paho subscriber did not subscribe: {first:?}"
    );
    (child, lines)
}

async fn paho_pub(args: &[&str]) {
    let mut child = paho(&[&["pub"], args].concat());
    let status = tokio::time::timeout(Duration::from_secs(12), child.wait()).await;
    assert!(
        matches!(status, Ok(Ok(s)) if s.success()),
        "paho publisher failed: {status:?}"
    );
}

async fn collect(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    n: usize,
) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await {
            Ok(Ok(Some(l))) => got.push(l),
            _ => break,
        }
    }
    got
}

async fn paho_publishes_and_subscribes_over_websocket(v: Version, shards: usize) {
    let w = ws_broker(shards, "ws", "", &[]).await;
    let port = w.ws.port.to_string();
    let v5 = if v.is_v5() { "--v5" } else { "--v3" };
    // Subscriber homed on the last shard, publishers on each: with two shards some connections
    // are accepted on one shard and handed over to the other, frame state and all.
    let sub_id = w.b.id("ws-sub", shards - 1);
    let (_sub, mut lines) = paho_sub(&[&port, &sub_id, "ws/t/#", "7", v5]).await;
    for (shard, qos) in [(0, "0"), (1, "1"), (0, "2")] {
        let id = w.b.id(&format!("ws-pub-q{qos}"), shard);
        let q = format!("--qos={qos}");
        paho_pub(&[
            &port,
            &id,
            "ws/t/a",
            &format!("m{qos}a"),
            &format!("m{qos}b"),
            &q,
            v5,
        ])
        .await;
    }
    // One packet bigger than a read chunk (64 KiB): it spans several reads and frames' worth.
    let id = w.b.id("ws-pub-big", 1);
    paho_pub(&[&port, &id, "ws/t/big", "--big=200000", v5]).await;
    let got = collect(&mut lines, 7).await;
    assert_eq!(
        got,
        ["m0a", "m0b", "m1a", "m1b", "m2a", "m2b", "big:200000"]
    );
}

async fn a_websocket_and_a_tcp_client_exchange_messages_across_shards(shards: usize) {
    let w = ws_broker(shards, "ws", "", &[]).await;
    let port = w.ws.port.to_string();
    // The WebSocket client lives on the last shard, the TCP client on shard 0.
    let ws_id = w.b.id("ws-side", shards - 1);
    let mut tcp = Client::connect(&w.b, Version::V5, &w.b.id("tcp-side", 0)).await;
    tcp.subscribe("from/ws", 1).await;
    let (_sub, mut lines) = paho_sub(&[&port, &ws_id, "from/tcp", "2", "--v5"]).await;
    tcp.publish("from/tcp", 1, "over tcp 1", false).await;
    tcp.publish("from/tcp", 0, "over tcp 2", false).await;
    assert_eq!(collect(&mut lines, 2).await, ["over tcp 1", "over tcp 2"]);
    let pub_id = w.b.id("ws-pub", shards - 1);
    paho_pub(&[&port, &pub_id, "from/ws", "over ws"]).await;
    assert_eq!(tcp.recv().await.text(), "over ws");
}

async fn paho_over_wss_with_openssl_publishes_and_subscribes(shards: usize) {
    let pki = pki();
    let d = &pki.dir.0;
    let keys = format!(
        "certfile = \"{}\"\nkeyfile = \"{}\"",
        d.join("server.pem").display(),
        d.join("server.key").display()
    );
    let w = ws_broker(shards, "wss", &keys, &[]).await;
    let port = w.ws.port.to_string();
    let ca = format!("--cafile={}", pki.ca.display());
    let sub_id = w.b.id("wss-sub", shards - 1);
    let (_sub, mut lines) = paho_sub(&[&port, &sub_id, "wss/#", "3", &ca, "--v5"]).await;
    for shard in 0..2 {
        let id = w.b.id(&format!("wss-pub{shard}"), shard);
        paho_pub(&[&port, &id, "wss/x", &format!("secret {shard}"), &ca]).await;
    }
    let id = w.b.id("wss-pub-big", 0);
    paho_pub(&[&port, &id, "wss/big", "--big=100000", &ca, "--v5"]).await;
    assert_eq!(
        collect(&mut lines, 3).await,
        ["secret 0", "secret 1", "big:100000"]
    );
}

// ---------------------------------------------------------------------------------------------
// Hand-written frames (`tests/support/ws_raw.rs`)
// ---------------------------------------------------------------------------------------------

async fn packets_split_across_frames_and_packed_in_one_frame_survive_the_hand_over(shards: usize) {
    let w = ws_broker(shards, "ws", "", &[]).await;
    // Several connections, homed on each shard: the kernel accepts some on the other shard,
    // which hands them over in the middle of a frame.
    for round in 0..4 {
        let id = w.b.id(&format!("ws-split-{round}"), round);
        let (status, mut c) = upgrade(w.ws.port, "/mqtt", &[]).await;
        assert_eq!(status, 101);
        let topic = format!("ws/split/{round}");
        let connect = encode(
            &Packet::Connect(Box::new(connect_packet(Protocol::V5, &id))),
            Protocol::V5,
        );
        let sub = encode(&Packet::Subscribe(raw_subscribe(1, &topic)), Protocol::V5);
        let publish = encode(
            &Packet::Publish(crate::raw_client::publish(&topic, 0, 0, b"hello")),
            Protocol::V5,
        );
        // The CONNECT in a fragmented message with a ping between its fragments; its last
        // fragment also carries a SUBSCRIBE, a PUBLISH and a PINGREQ, and is sent in two writes
        // split inside the SUBSCRIBE, after the CONNECT is complete.
        let mut last = connect[5..].to_vec();
        last.extend_from_slice(&sub);
        last.extend_from_slice(&publish);
        last.extend_from_slice(&[0xC0, 0x00]);
        let mut bytes = frame(0x02, &connect[..5]);
        bytes.extend(frame(0x89, b"p1"));
        let tail = frame(0x80, &last);
        let cut = bytes.len() + (tail.len() - last.len()) + (connect.len() - 5) + 3;
        bytes.extend(tail);
        c.send(&bytes[..cut]).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        c.send(&bytes[cut..]).await;
        let mut controls = Vec::new();
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(c.packet(&mut controls).await);
        }
        assert!(
            matches!(got[0], Packet::ConnAck(ref a) if a.code == 0),
            "{got:?}"
        );
        assert!(matches!(got[1], Packet::SubAck(_)), "{got:?}");
        assert!(
            matches!(got[2], Packet::Publish(ref p) if &p.payload[..] == b"hello"),
            "{got:?}"
        );
        assert!(matches!(got[3], Packet::PingResp), "{got:?}");
        assert_eq!(
            controls,
            vec![(0x8A, b"p1".to_vec())],
            "the ping is answered"
        );
    }
}

fn raw_subscribe(packet_id: u16, filter: &str) -> codec::Subscribe {
    crate::raw_client::subscribe(packet_id, &[(filter, crate::raw_client::sub(0))])
}

async fn ping_is_answered_and_close_is_echoed_then_the_connection_ends(shards: usize) {
    let w = ws_broker(shards, "ws", "", &[]).await;
    let (status, mut c) = upgrade(w.ws.port, "/mqtt", &[]).await;
    assert_eq!(status, 101);
    c.connect(&w.b.id("ws-close", 0)).await;
    c.send(&frame(0x89, b"still there?")).await;
    assert_eq!(c.frame(WAIT).await, Some((0x8A, b"still there?".to_vec())));
    c.send(&frame(0x88, &1000u16.to_be_bytes())).await;
    assert_eq!(
        c.frame(WAIT).await,
        Some((0x88, 1000u16.to_be_bytes().to_vec()))
    );
    assert!(
        c.closed_within(WAIT).await,
        "the broker closes after the close handshake"
    );
}

async fn text_unmasked_and_oversize_frames_are_closed_with_their_codes(shards: usize) {
    let w = ws_broker(shards, "ws", "", &["--packet-bytes-max", "1024"]).await;
    let bad: [(&str, Vec<u8>, u16); 4] = [
        ("text", frame(0x81, b"hello"), 1003),
        ("unmasked", vec![0x82, 0x02, 0xC0, 0x00], 1002),
        ("oversize", binary(&[0; 1025]), 1009),
        ("reserved opcode", frame(0x83, b""), 1002),
    ];
    for (i, (what, bytes, code)) in bad.into_iter().enumerate() {
        for connected in [false, true] {
            let (status, mut c) = upgrade(w.ws.port, "/mqtt", &[]).await;
            assert_eq!(status, 101);
            if connected {
                c.connect(&w.b.id(&format!("ws-bad-{i}"), i)).await;
            }
            c.send(&bytes).await;
            assert_eq!(
                c.frame(WAIT).await,
                Some((0x88, code.to_be_bytes().to_vec())),
                "{what} frame (connected: {connected})"
            );
            assert!(c.closed_within(WAIT).await, "{what}: closed");
        }
    }
    let mut b = w.b;
    b.assert_serving().await;
}

async fn bad_path_gets_404_bad_origin_403_and_bad_version_426(shards: usize) {
    let origins = "origins = [\"https://app.example\"]\npath = \"/ws\"";
    let w = ws_broker(shards, "ws", origins, &[]).await;
    let port = w.ws.port;
    let status = |path: &'static str, extra: &'static [&'static str]| async move {
        let (status, mut c) = upgrade(port, path, extra).await;
        if status != 101 {
            assert!(c.closed_within(WAIT).await, "closed after {status}");
        }
        status
    };
    assert_eq!(status("/mqtt", &[]).await, 404);
    assert_eq!(status("/ws", &["Origin: https://evil.example"]).await, 403);
    assert_eq!(status("/ws", &["Sec-WebSocket-Version: 8"]).await, 426);
    assert_eq!(status("/ws", &["Origin: https://app.example"]).await, 101);
    assert_eq!(
        status("/ws?client=1", &[]).await,
        101,
        "no Origin: not a browser"
    );
    // paho sends Origin http://127.0.0.1:PORT, which this listener does not allow.
    let refused = paho(&[
        "pub",
        &port.to_string(),
        "ws-origin",
        "t",
        "x",
        "--path=/ws",
        "--within=5",
    ]);
    let out = tokio::time::timeout(Duration::from_secs(8), refused.wait_with_output())
        .await
        .expect("paho ends")
        .expect("paho output");
    assert!(
        !out.status.success(),
        "paho from a foreign origin is refused"
    );
}

async fn a_handshake_dribbled_slowly_is_closed_at_the_deadline(shards: usize) {
    let w = ws_broker(shards, "ws", "", &["--connect-timeout-ms", "800"]).await;
    let mut s = TcpStream::connect(("127.0.0.1", w.ws.port))
        .await
        .expect("connect");
    let start = Instant::now();
    s.write_all(b"GET /mqtt HTTP/1.1\r\n").await.expect("send");
    let mut closed = false;
    for i in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if s.write_all(format!("X-{i}: y\r\n").as_bytes())
            .await
            .is_err()
        {
            closed = true;
            break;
        }
        let mut b = [0u8; 64];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "a dribbling handshake is closed");
    assert_between(start.elapsed(), 700, 2500, "handshake deadline");
}

/// Send `request` and read the whole answer until the broker closes.
async fn http_exchange(port: u16, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(request).await.expect("send");
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("the broker closes after answering")
        .expect("read");
    out
}

/// (status, headers, body) of an HTTP/1.1 answer.
fn split_http(answer: &[u8]) -> (u16, String, Vec<u8>) {
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8(answer[..end].to_vec()).expect("ASCII head");
    let status = head[9..12].parse().expect("status");
    (status, head, answer[end + 4..].to_vec())
}

async fn the_chat_page_is_served_within_the_handshake_bounds(shards: usize) {
    let w = ws_broker(shards, "ws", "", &["--connect-timeout-ms", "800"]).await;
    let port = w.ws.port;
    // The page, then its script, each on a connection of its own that the broker closes.
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let (status, head, body) = split_http(&http_exchange(port, get("/chat").as_bytes()).await);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("Content-Type: text/html"), "{head}");
    assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
    assert_eq!(
        Some(&body[..]),
        ringmq::web::chat_asset("/chat").map(|a| a.1)
    );
    let html = String::from_utf8(body).expect("UTF-8 page");
    let at = html
        .find("/chat/assets/")
        .expect("the page names its files");
    let script = &html[at..at + html[at..].find('"').expect("quoted")];
    let (status, head, body) = split_http(&http_exchange(port, get(script).as_bytes()).await);
    assert_eq!(status, 200, "{script}: {head}");
    assert_eq!(
        Some(&body[..]),
        ringmq::web::chat_asset(script).map(|a| a.1)
    );
    let (_, _, cfg) = split_http(&http_exchange(port, get("/chat/config.json").as_bytes()).await);
    assert_eq!(cfg, br#"{"mqtt_path":"/mqtt"}"#);
    // No other file, no page for an upgrade, the 8 KiB bound as for upgrades.
    let (status, _, _) = split_http(&http_exchange(port, get("/chat/x.js").as_bytes()).await);
    assert_eq!(status, 404);
    assert_eq!(upgrade(port, "/chat", &[]).await.0, 404);
    let mut long = b"GET /chat HTTP/1.1\r\nX: ".to_vec();
    long.resize(9 * 1024, b'a');
    assert_eq!(split_http(&http_exchange(port, &long).await).0, 431);
    // A page request dribbled slowly is closed at the handshake deadline like an upgrade.
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let start = Instant::now();
    s.write_all(b"GET /chat HTTP/1.1\r\n").await.expect("send");
    let mut closed = false;
    for i in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut b = [0u8; 64];
        if s.write_all(format!("X-{i}: y\r\n").as_bytes())
            .await
            .is_err()
            || matches!(
                tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await,
                Ok(Ok(0) | Err(_))
            )
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "a dribbling page request is closed");
    assert_between(start.elapsed(), 700, 2500, "handshake deadline");
}
