//! End-to-end: run the real `ringmq-bench` binary against a private Eclipse Mosquitto on a
//! loopback port. Skipped (with a message) when mosquitto is not installed.

mod common;
use common::*;
use std::process::{Command, Stdio};

/// A mosquitto we started; killed (by its own handle) when dropped, even if the test panics.
struct Broker {
    run: Started,
    port: u16,
}

fn start_broker(name: &str) -> Option<Broker> {
    start_broker_with(name, 0, 0)
}

/// A private Mosquitto whose sessions have at most `inflight` QoS 1/2 deliveries outstanding
/// and queue at most `queued` more (0 = unlimited). With finite limits Mosquitto drops QoS 1
/// messages it has already acknowledged once a subscriber's queue is full: the overload loss
/// the harness must catch.
fn start_broker_with(name: &str, queued: u32, inflight: u32) -> Option<Broker> {
    let Some(bin) = find_mosquitto() else {
        eprintln!("SKIPPED: mosquitto is not installed (apt-get install mosquitto)");
        return None;
    };
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("ringmq-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n\
             max_queued_messages {queued}\nmax_inflight_messages {inflight}\npersistence false\nlog_type error\n"
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
    let b = Broker {
        run: Started { child, dir },
        port,
    };
    let ok = Command::new(BENCH)
        .args(["probe", "--port", &port.to_string(), "--wait", "10s"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "mosquitto did not come up: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    Some(b)
}

fn run_json(args: &[&str]) -> serde_json::Value {
    let (code, _, r) = run_full(args);
    assert_eq!(code, 0, "ringmq-bench {args:?} failed: {r}");
    r
}

/// Exit status, human summary (stdout without the JSON line) and the JSON line.
fn run_full(args: &[&str]) -> (i32, String, serde_json::Value) {
    let out = Command::new(BENCH).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "ringmq-bench {args:?} printed nothing: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let json = serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON line {line}: {e}"));
    let human = stdout[..stdout.len() - line.len()].to_string();
    (out.status.code().unwrap_or(-1), human, json)
}

/// Σ of `key` over the per-publisher rows.
fn per_pub_sum(r: &serde_json::Value, key: &str) -> u64 {
    r["per_publisher"]
        .as_array()
        .unwrap_or_else(|| panic!("per_publisher missing in {r}"))
        .iter()
        .map(|p| u(p, key))
        .sum()
}

fn u(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

#[test]
fn pairs_qos1_forwards_everything_without_loss() {
    let Some(b) = start_broker("pairs") else {
        return;
    };
    let dir = b.run.dir.clone();
    let hgrm = dir.join("run.hgrm");
    let json = dir.join("runs.json");
    let port = b.port.to_string();
    let r = run_json(&[
        "pairs",
        "--port",
        &port,
        "--pairs",
        "4",
        "--qos",
        "1",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--label",
        "mosquitto",
        "--hgrm",
        hgrm.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(r["scenario"], "pairs");
    assert!(u(&r, "forwarded_in_window") > 0, "{r}");
    assert!(u(&r, "sent") > 0);
    assert_eq!(u(&r, "lost"), 0, "QoS 1 must not lose: {r}");
    assert_eq!(u(&r, "duplicates"), 0, "{r}");
    assert_eq!(u(&r, "received"), u(&r, "expected"), "{r}");
    assert_eq!(
        u(&r, "acked"),
        u(&r, "sent"),
        "every PUBLISH acknowledged: {r}"
    );
    assert_eq!(r["drained"], true);
    assert!(u(&r["latency_us"], "count") > 0);
    assert!(u(&r["latency_us"], "p99") >= u(&r["latency_us"], "p50"));

    // The histogram file parses and `compare` draws it; `summarize` reads the JSON file.
    let text = std::fs::read_to_string(&hgrm).unwrap();
    let d = ringmq_bench::hgrm::parse(&text).unwrap();
    assert_eq!(d.count(), u(&r["latency_us"], "count"));
    let svg = dir.join("cmp.svg");
    let out = Command::new(BENCH)
        .args(["compare", hgrm.to_str().unwrap(), hgrm.to_str().unwrap()])
        .args(["--labels", "a,b", "-o", svg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("p99"));
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<polyline"));
    let out = Command::new(BENCH)
        .args(["summarize", json.to_str().unwrap(), "--median-hgrm"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("mosquitto\t"));
}

#[test]
fn qos2_v5_open_loop_is_exactly_once() {
    let Some(b) = start_broker("qos2") else {
        return;
    };
    let port = b.port.to_string();
    let r = run_json(&[
        "fanin",
        "--port",
        &port,
        "--publishers",
        "3",
        "--subscribers",
        "2",
        "--qos",
        "2",
        "--protocol",
        "5",
        "--rate",
        "600",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--quiet",
    ]);
    assert_eq!(u(&r, "lost"), 0, "{r}");
    assert_eq!(u(&r, "duplicates"), 0, "{r}");
    assert_eq!(u(&r, "out_of_order"), 0, "{r}");
    // 600 msg/s for 1.2 s, each delivered to 2 subscribers. On a loaded machine the generator
    // may miss a few sends at the schedule's end; it counts them, and nothing else may be
    // missing.
    let sent = u(&r, "sent");
    assert_eq!(sent + u(&r, "unsent_behind_schedule"), 720, "{r}");
    assert!(sent >= 700, "{r}");
    assert_eq!(u(&r, "received"), 2 * sent, "{r}");
    // Deliveries received inside the 1 s window: 1200 give or take the few in flight at its
    // edges.
    let fwd = u(&r, "forwarded_in_window");
    assert!((1180..=1220).contains(&fwd), "{r}");
}

#[test]
fn conns_and_wildcard_scenarios_run() {
    let Some(b) = start_broker("conns") else {
        return;
    };
    let port = b.port.to_string();
    let pid = b.run.child.id().to_string();
    let r = run_json(&[
        "conns",
        "--port",
        &port,
        "-c",
        "300",
        "--hold",
        "200ms",
        "--source-ips",
        "3",
        "--broker-pid",
        &pid,
        "--quiet",
    ]);
    assert_eq!(u(&r["conns"], "succeeded"), 300, "{r}");
    assert_eq!(u(&r["conns"], "source_ips"), 3);
    assert!(r["conns"]["broker_rss_after"].as_u64().is_some());
    let r = run_json(&[
        "wildcard",
        "--port",
        &port,
        "--filters",
        "3000",
        "--subscribers",
        "3",
        "--publishers",
        "2",
        "--hit-fraction",
        "0.2",
        "--miss-ratio",
        "0.25",
        "--qos",
        "1",
        "--duration",
        "500ms",
        "--warmup",
        "100ms",
        "--quiet",
    ]);
    assert_eq!(u(&r, "filters_granted"), 3000, "{r}");
    assert_eq!(u(&r, "lost"), 0, "{r}");
    assert_eq!(u(&r, "unexpected"), 0, "misses must reach nobody: {r}");
    assert_eq!(r["details"]["filters_hit"], 600);
    assert!(u(&r, "received") > 0);
    // A quarter of the messages went to topics matching no filter.
    let hits = u(&r, "expected") as f64;
    let sent = u(&r, "sent") as f64;
    assert!((hits / sent - 0.75).abs() < 0.02, "hits {hits} of {sent}");
}

#[test]
fn fanin_overload_accounts_per_publisher_without_loss_on_unlimited_queues() {
    let Some(b) = start_broker("fanin-ok") else {
        return;
    };
    let port = b.port.to_string();
    let (code, human, r) = run_full(&[
        "fanin",
        "--port",
        &port,
        "--publishers",
        "4",
        "--inflight",
        "200",
        "--qos",
        "1",
        "--filter",
        "rbt/{run}/+",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--timeline",
        "--fail-on-loss",
    ]);
    assert_eq!(code, 0, "{human}");
    assert_eq!(u(&r, "lost_acked"), 0, "{r}");
    let rows = r["per_publisher"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for p in rows {
        assert_eq!(u(p, "acked"), u(p, "sent"), "{p}");
        assert_eq!(
            u(p, "received"),
            u(p, "sent"),
            "one subscriber gets everything: {p}"
        );
        assert_eq!(u(p, "lost"), 0);
        assert!(
            p["per_s"].as_f64().unwrap() > 0.0,
            "every publisher progressed: {p}"
        );
    }
    // The rows add up to the run's totals.
    assert_eq!(per_pub_sum(&r, "sent"), u(&r, "sent"));
    assert_eq!(per_pub_sum(&r, "acked"), u(&r, "acked"));
    assert_eq!(per_pub_sum(&r, "received"), u(&r, "received"));
    let g = &r["groups"][0];
    assert_eq!(g["group"], "all");
    assert!(g["per_s_min"].as_f64().unwrap() <= g["per_s_max"].as_f64().unwrap());
    assert!(!r["timeline"].as_array().unwrap().is_empty(), "{r}");
    assert!(human.contains("per publisher"), "{human}");
    assert!(!human.contains("LOSS"), "{human}");
}

#[test]
fn fanin_loss_after_acknowledgement_is_flagged_and_fails_the_run() {
    // Mosquitto with 10 messages in flight and 10 queued per session: 4 publishers × 200 in flight, no end-to-end window,
    // into one subscriber. Mosquitto acknowledges every PUBLISH and drops what its full queue
    // cannot take.
    let Some(b) = start_broker_with("fanin-loss", 10, 10) else {
        return;
    };
    let port = b.port.to_string();
    let dir = b.run.dir.clone();
    let json = dir.join("runs.json");
    let (code, human, r) = run_full(&[
        "fanin",
        "--port",
        &port,
        "--publishers",
        "4",
        "--inflight",
        "200",
        "--qos",
        "1",
        "--no-e2e-window",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--drain",
        "1s",
        "--fail-on-loss",
        "--label",
        "mosquitto",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "--fail-on-loss exits 3 on loss: {human}");
    let lost = u(&r, "lost_acked");
    assert!(lost > 0, "{r}");
    assert_eq!(per_pub_sum(&r, "lost_acked"), lost);
    assert!(per_pub_sum(&r, "acked") >= per_pub_sum(&r, "received"));
    assert_eq!(r["e2e_window"], false);
    assert!(human.contains("LOSS"), "{human}");
    assert!(r["warnings"].to_string().contains("LOSS"), "{r}");
    // summarize carries the loss and per-publisher spread.
    let out = Command::new(BENCH)
        .args(["summarize", json.to_str().unwrap()])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("LOSS"), "{table}");
    let out = Command::new(BENCH)
        .args(["summarize", json.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(u(&v["groups"][0], "lost_acked"), lost);
}

#[test]
fn stalled_subscriber_beside_healthy_pairs() {
    let Some(b) = start_broker_with("stalled", 1000, 64) else {
        return;
    };
    let port = b.port.to_string();
    let (code, human, r) = run_full(&[
        "stalled",
        "--port",
        &port,
        "--pairs",
        "2",
        "--stalled-publishers",
        "2",
        "--inflight",
        "100",
        "--qos",
        "1",
        "--rate",
        "1000",
        "--duration",
        "2s",
        "--warmup",
        "200ms",
        "--drain",
        "1s",
        "--progress",
        "0",
        "--fail-on-loss",
    ]);
    assert_eq!(code, 0, "{human}");
    assert_eq!(r["scenario"], "stalled");
    let groups = r["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{r}");
    let (healthy, stalled) = (&groups[0], &groups[1]);
    assert_eq!(healthy["group"], "healthy");
    assert_eq!(u(healthy, "lost"), 0, "healthy pairs lose nothing: {r}");
    assert_eq!(u(healthy, "received"), u(healthy, "sent"), "{r}");
    assert_eq!(stalled["group"], "stalled-topic");
    assert!(u(stalled, "acked") > 0, "{r}");
    assert_eq!(
        u(stalled, "expected"),
        0,
        "nobody can receive the stalled topic"
    );
    // Mosquitto has no slow-subscriber timeout: the subscriber stays connected, with the
    // first in-flight window of deliveries waiting unread in its socket.
    let st = &r["stalled"][0];
    assert_eq!(st["state"], "open", "{st}");
    assert!(u(st, "rx_queue_bytes_max") > 0, "{st}");
    assert!(st["closed_at_s"].is_null());
    // The timeline covers the run, per group.
    let t = r["timeline"].as_array().unwrap();
    assert!(t.len() >= 2, "{r}");
    assert!(t.iter().any(|s| u(&s["groups"][0], "delivered") > 0));
    assert!(t.iter().any(|s| u(&s["groups"][1], "acked") > 0));
    assert!(human.contains("timeline"), "{human}");
    assert!(human.contains("still connected at the end"), "{human}");
}
