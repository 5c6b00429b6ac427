//! End-to-end: run the real `ringmq-bench` binary against a private Eclipse Mosquitto on a
//! loopback port. Skipped (with a message) when mosquitto is not installed.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const BENCH: &str = env!("CARGO_BIN_EXE_ringmq-bench");

fn find_mosquitto() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("MOSQUITTO") {
        return Some(PathBuf::from(p));
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file())
}

/// A mosquitto we started; killed (by its own handle) when dropped, even if the test panics.
struct Broker {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_broker(name: &str) -> Option<Broker> {
    let Some(bin) = find_mosquitto() else {
        eprintln!("SKIPPED: mosquitto is not installed (apt-get install mosquitto)");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("ringmq-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n\
             max_queued_messages 0\nmax_inflight_messages 0\npersistence false\nlog_type error\n"
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
    let b = Broker { child, port, dir };
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
    let out = Command::new(BENCH).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ringmq-bench {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().expect("a JSON line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON line {line}: {e}"))
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
    let dir = b.dir.clone();
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
    // 600 msg/s for 1.2 s, each delivered to 2 subscribers.
    assert_eq!(u(&r, "sent"), 720, "{r}");
    assert_eq!(u(&r, "received"), 1440, "{r}");
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
    let pid = b.child.id().to_string();
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
