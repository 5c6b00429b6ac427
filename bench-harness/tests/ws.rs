//! `--ws` end to end: the real `ringmq-bench` binary over MQTT-over-WebSocket against the real
//! ringmq binary (a `protocol = "ws"` listener) and against a private Mosquitto (its
//! websockets listener), on loopback. Each broker's tests are skipped, with a message, when
//! its binary is absent (ringmq: `cargo build --release -p ringmq`, or `RINGMQ=/path`;
//! Mosquitto: `apt-get install mosquitto`, or `MOSQUITTO=/path`). Every child runs under a
//! deadline and is killed (by its own handle) when the test ends.

mod common;
use common::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A broker we started; killed when dropped, even if the test panics.
struct Broker {
    _run: Started,
    ws: u16,
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringmq-bench-ws-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Wait until the broker answers CONNACK over WebSocket.
fn wait_up(b: Broker, what: &str) -> Broker {
    let up = bench(
        &[
            "probe",
            "--ws",
            "--port",
            &b.ws.to_string(),
            "--wait",
            "10s",
        ],
        15,
    );
    assert!(
        up.status.success(),
        "{what} did not come up over WebSocket: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    b
}

fn start_ringmq(name: &str) -> Option<Broker> {
    let Some(bin) = find_ringmq() else {
        eprintln!("SKIPPED: no ringmq binary (cargo build --release -p ringmq, or RINGMQ=path)");
        return None;
    };
    let dir = temp_dir(name);
    let (plain, ws) = (free_port(), free_port());
    let conf = dir.join("ringmq.toml");
    std::fs::write(
        &conf,
        format!(
            "shards = 1\npin = false\nlog_level = \"warn\"\ndata_dir = \"{}\"\n\
             [[listener]]\nbind = \"127.0.0.1:{plain}\"\n\
             [[listener]]\nbind = \"127.0.0.1:{ws}\"\nprotocol = \"ws\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .arg("--config")
        .arg(&conf)
        // No admin HTTP API: its fixed default port would collide with other brokers.
        .args(["--http-enabled", "false"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ringmq");
    Some(wait_up(
        Broker {
            _run: Started { child, dir },
            ws,
        },
        "ringmq",
    ))
}

/// Mosquitto 2.0 opens no websockets listener unless a plain one exists too, and its
/// libwebsockets binds the address given only with `socket_domain ipv4` (else it listens on
/// every address).
fn start_mosquitto(name: &str) -> Option<Broker> {
    let Some(bin) = find_mosquitto() else {
        eprintln!("SKIPPED: mosquitto is not installed (apt-get install mosquitto)");
        return None;
    };
    let dir = temp_dir(name);
    let (plain, ws) = (free_port(), free_port());
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "allow_anonymous true\nset_tcp_nodelay true\npersistence false\nlog_type error\n\
             max_queued_messages 0\n\
             listener {plain} 127.0.0.1\n\
             listener {ws} 127.0.0.1\nprotocol websockets\nsocket_domain ipv4\n"
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mosquitto");
    Some(wait_up(
        Broker {
            _run: Started { child, dir },
            ws,
        },
        "mosquitto",
    ))
}

/// A scenario over `--ws` against `b`; its JSON report, after checking it succeeded.
fn run_ws(b: &Broker, args: &[&str]) -> serde_json::Value {
    let port = b.ws.to_string();
    let mut all = args.to_vec();
    all.extend(["--ws", "--port", &port, "--threads", "1"]);
    let out = bench(&all, 60);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ringmq-bench {all:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("over WebSocket"), "{stdout}");
    let line = stdout.lines().last().unwrap();
    let r: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(r["transport"], "ws", "{line}");
    assert_eq!(r["clients_failed"], 0, "{line}");
    r
}

/// Every message arrived once: nothing lost, duplicated or out of order.
fn assert_whole(r: &serde_json::Value) {
    let line = r.to_string();
    assert!(r["sent"].as_u64().unwrap() > 0, "{line}");
    assert_eq!(r["received"], r["expected"], "{line}");
    for k in ["lost", "duplicates", "out_of_order", "protocol_errors"] {
        assert_eq!(r[k], 0, "{k}: {line}");
    }
    assert!(r["errors"].as_object().unwrap().is_empty(), "{line}");
}

/// What every broker must pass over WebSocket.
fn whole_over_ws(b: &Broker, large: bool) {
    // QoS 1, small packets: many PUBLISH/PUBACK per frame, both ways.
    let r = run_ws(
        b,
        &["pairs", "--pairs", "4", "-q", "1", "-d", "2s", "-w", "0.5s"],
    );
    assert_whole(&r);
    assert_eq!(r["acked"], r["sent"], "{r}");
    // 20 kB payloads: a packet spans two of our 16 KiB frames and several reads. Not against
    // Mosquitto: its 2.0.11 websockets listener trickles its last deliveries of large messages
    // out one every second or two once the publishers stop (paho sees the same), and on a
    // loaded machine that outlasted the drain once.
    if large {
        let r = run_ws(
            b,
            &[
                "pairs", "--pairs", "2", "-q", "1", "-s", "20000", "-d", "1s", "-w", "0.5s",
                "--drain", "20s",
            ],
        );
        assert_whole(&r);
    }
    // QoS 0 in open loop: paced, so nothing may be dropped on loopback either.
    let r = run_ws(
        b,
        &[
            "pairs", "--pairs", "4", "--rate", "2000", "-d", "2s", "-w", "0.5s",
        ],
    );
    assert_whole(&r);
    // Idle connections: every upgrade and CONNECT succeeds.
    let r = run_ws(b, &["conns", "--connections", "50", "--hold", "0.5s"]);
    assert_eq!(r["conns"]["succeeded"], 50, "{r}");
}

#[test]
fn ringmq_over_ws_loses_nothing() {
    let Some(b) = start_ringmq("r") else { return };
    whole_over_ws(&b, true);
}

#[test]
fn mosquitto_over_ws_loses_nothing() {
    let Some(b) = start_mosquitto("m") else {
        return;
    };
    whole_over_ws(&b, false);
}

#[test]
fn ringmq_over_ws_large_packets() {
    let Some(b) = start_ringmq("l") else { return };
    // 300 kB packets: each spans 19 of our frames one way and many reads both ways.
    let r = run_ws(
        &b,
        &[
            "pairs", "--pairs", "2", "-q", "1", "-s", "300000", "-d", "1s", "-w", "0.5s",
        ],
    );
    assert_whole(&r);
}

#[test]
fn wrong_path_is_refused_by_ringmq() {
    let Some(b) = start_ringmq("p") else { return };
    let out = bench(
        &[
            "probe",
            "--ws",
            "--ws-path",
            "/nope",
            "--port",
            &b.ws.to_string(),
            "--wait",
            "0s",
        ],
        10,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("WebSocket handshake: refused"), "{err}");
}

#[test]
fn ws_with_tls_is_refused() {
    let out = bench(
        &["probe", "--ws", "--tls", "--port", "1", "--wait", "0s"],
        10,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not supported"), "{err}");
}
