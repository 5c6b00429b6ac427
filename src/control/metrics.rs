//! Prometheus text exposition (format 0.0.4) of the shards' statistics, for `GET /metrics`.
//!
//! Every figure is exported twice: `ringmq_<name>` for the whole broker and
//! `ringmq_shard_<name>{shard="N"}` per shard. Two families rather than one with a
//! `shard="total"` series, so `sum(ringmq_shard_x)` never counts a total twice. The commit
//! latency is a histogram in seconds (`_bucket{le}`, `_sum`, `_count`), per-prefix forwarding
//! statistics carry a `prefix` label (escaped: prefixes come from clients).
//!
//! Written directly rather than with `prometheus-client`: that crate's model is registered
//! metric objects updated in place (atomics behind `Arc`s), while our figures are plain
//! snapshots the control thread already holds, so it would mean copying every value into a
//! registry per scrape to get a text format that is a few `writeln!`s.
//!
//! Never: runs on a shard (the HTTP thread calls it with snapshots), or fails.

use crate::shard::prefixes::PrefixRow;
use crate::shard::{Stats, COMMIT_BUCKETS_US};
use std::fmt::Write;

/// What `/metrics` shows besides the shards' snapshots.
#[derive(Debug, Default, Clone)]
pub struct MetricsExtra {
    pub uptime_s: u64,
    /// This broker's `node_name` (a label of `ringmq_build_info`).
    pub node_name: String,
    /// Most clients connected at once (the control thread's `$SYS` tree keeps it).
    pub clients_max: u64,
    /// Forwarding statistics per topic prefix, already merged over shards.
    pub topics: Vec<PrefixRow>,
}

enum Kind {
    Counter,
    Gauge,
}

/// One exported figure: name (without `ringmq_`), type, help, and how to read it.
type Figure = (&'static str, Kind, &'static str, fn(&Stats) -> u64);

const FIGURES: &[Figure] = &[
    (
        "connections_accepted_total",
        Kind::Counter,
        "TCP connections accepted.",
        |s| s.connections,
    ),
    (
        "connections",
        Kind::Gauge,
        "Connections being served.",
        |s| s.connections_current,
    ),
    (
        "connections_asleep",
        Kind::Gauge,
        "Idle connections sleeping without a serving task (hibernate_idle_ms).",
        |s| s.connections_asleep,
    ),
    (
        "sessions",
        Kind::Gauge,
        "Sessions, connected or not.",
        |s| s.sessions,
    ),
    (
        "sessions_connected",
        Kind::Gauge,
        "Sessions with a live connection.",
        |s| s.sessions_connected,
    ),
    (
        "sessions_expired_total",
        Kind::Counter,
        "Sessions that expired offline.",
        |s| s.sessions_expired,
    ),
    (
        "subscriptions",
        Kind::Gauge,
        "Subscriptions of the sessions.",
        |s| s.subscriptions,
    ),
    (
        "retained_messages",
        Kind::Gauge,
        "Retained messages ($SYS excluded).",
        |s| s.retained,
    ),
    (
        "retained_bytes",
        Kind::Gauge,
        "Topic and payload bytes of the retained messages.",
        |s| s.retained_bytes,
    ),
    (
        "inflight_messages",
        Kind::Gauge,
        "QoS 1/2 messages sent and not acknowledged.",
        |s| s.inflight,
    ),
    (
        "queued_messages",
        Kind::Gauge,
        "Messages queued in sessions.",
        |s| s.queued,
    ),
    (
        "outbox_messages",
        Kind::Gauge,
        "Messages waiting to go to peer shards.",
        |s| s.outbox_depth,
    ),
    (
        "packets_received_total",
        Kind::Counter,
        "MQTT packets received.",
        |s| s.packets_in,
    ),
    (
        "packets_sent_total",
        Kind::Counter,
        "MQTT packets sent.",
        |s| s.packets_out,
    ),
    (
        "bytes_received_total",
        Kind::Counter,
        "MQTT bytes received.",
        |s| s.bytes_in,
    ),
    ("bytes_sent_total", Kind::Counter, "MQTT bytes sent.", |s| {
        s.bytes_out
    }),
    (
        "messages_routed_total",
        Kind::Counter,
        "Messages routed (client PUBLISHes and wills).",
        |s| s.publishes_in,
    ),
    (
        "deliveries_total",
        Kind::Counter,
        "Messages handed to subscriber sessions.",
        |s| s.deliveries,
    ),
    (
        "holds_total",
        Kind::Counter,
        "Publishers held back by a congested subscriber.",
        |s| s.holds,
    ),
    (
        "congestions_total",
        Kind::Counter,
        "Sessions that reached their queue bounds while connected.",
        |s| s.congestions,
    ),
    (
        "slow_disconnects_total",
        Kind::Counter,
        "Slow subscribers disconnected.",
        |s| s.slow_disconnects,
    ),
    (
        "sessions_refused_total",
        Kind::Counter,
        "CONNECTs refused at sessions_max.",
        |s| s.sessions_refused,
    ),
    (
        "retained_refused_total",
        Kind::Counter,
        "Retained PUBLISHes refused at the retained bounds.",
        |s| s.retained_refused,
    ),
    (
        "rate_disconnects_total",
        Kind::Counter,
        "Clients disconnected over their publish rate.",
        |s| s.rate_disconnects,
    ),
    (
        "acl_denied_total",
        Kind::Counter,
        "PUBLISHes and SUBSCRIBE filters the ACL refused.",
        |s| s.acl_denied,
    ),
    (
        "auth_failures_total",
        Kind::Counter,
        "CONNECTs refused for their credentials.",
        |s| s.auth_failures,
    ),
    (
        "tls_handshakes_total",
        Kind::Counter,
        "TLS handshakes completed.",
        |s| s.tls_handshakes,
    ),
    (
        "tls_handshake_failures_total",
        Kind::Counter,
        "TLS handshakes that failed.",
        |s| s.tls_handshake_failures,
    ),
    (
        "mesh_messages_sent_total",
        Kind::Counter,
        "Messages sent to peer shards.",
        |s| s.mesh_out,
    ),
    (
        "mesh_messages_received_total",
        Kind::Counter,
        "Messages received from peer shards.",
        |s| s.mesh_in,
    ),
    (
        "mesh_batches_sent_total",
        Kind::Counter,
        "Batches sent to peer shards.",
        |s| s.mesh_batches_out,
    ),
    (
        "mesh_batches_received_total",
        Kind::Counter,
        "Batches received from peer shards.",
        |s| s.mesh_batches_in,
    ),
    (
        "store_commits_total",
        Kind::Counter,
        "Store group commits that wrote something.",
        |s| s.store_commits,
    ),
    (
        "shared_given_back_total",
        Kind::Counter,
        "Shared-group messages a disconnecting member gave back to its group.",
        |s| s.shared_again[0],
    ),
    (
        "shared_member_gone_total",
        Kind::Counter,
        "Shared-group messages that reached a member whose session was gone, and went back to the group.",
        |s| s.shared_again[1],
    ),
    (
        "store_refused_total",
        Kind::Counter,
        "QoS 1/2 PUBLISHes refused while the store could not commit.",
        |s| s.store_refused,
    ),
    (
        "store_messages",
        Kind::Gauge,
        "Messages the store holds.",
        |s| s.store_messages,
    ),
    (
        "store_message_bytes",
        Kind::Gauge,
        "Topic and payload bytes of the stored messages.",
        |s| s.store_bytes,
    ),
];

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// The two families of one figure, with an optional extra label per series.
fn family<const N: usize>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    total: &Stats,
    stats: &[Stats],
    series: impl Fn(&Stats) -> [(Option<(&'static str, &'static str)>, u64); N],
) {
    let line = |out: &mut String, n: &str, shard: Option<usize>, label, v: u64| {
        let mut labels = Vec::new();
        if let Some(i) = shard {
            labels.push(format!("shard=\"{i}\""));
        }
        if let Some((k, val)) = label {
            labels.push(format!("{k}=\"{}\"", escape(val)));
        }
        if labels.is_empty() {
            let _ = writeln!(out, "{n} {v}");
        } else {
            let _ = writeln!(out, "{n}{{{}}} {v}", labels.join(","));
        }
    };
    let broker = format!("ringmq_{name}");
    header(out, &broker, kind, help);
    for (label, v) in series(total) {
        line(out, &broker, None, label, v);
    }
    let per_shard = format!("ringmq_shard_{name}");
    header(out, &per_shard, kind, &format!("{help} Per shard."));
    for (i, s) in stats.iter().enumerate() {
        for (label, v) in series(s) {
            line(out, &per_shard, Some(i), label, v);
        }
    }
}

fn histogram(
    out: &mut String,
    name: &str,
    shard: Option<usize>,
    h: &crate::shard::LatencyHistogram,
) {
    let shard_label = shard.map(|i| format!("shard=\"{i}\",")).unwrap_or_default();
    let mut cumulative = 0;
    for (b, n) in COMMIT_BUCKETS_US.iter().zip(&h.buckets) {
        cumulative += n;
        let le = *b as f64 / 1e6;
        let _ = writeln!(
            out,
            "{name}_bucket{{{shard_label}le=\"{le}\"}} {cumulative}"
        );
    }
    let _ = writeln!(out, "{name}_bucket{{{shard_label}le=\"+Inf\"}} {}", h.count);
    let labels = shard
        .map(|i| format!("{{shard=\"{i}\"}}"))
        .unwrap_or_default();
    let _ = writeln!(out, "{name}_sum{labels} {}", h.sum_us as f64 / 1e6);
    let _ = writeln!(out, "{name}_count{labels} {}", h.count);
}

/// The whole exposition for these snapshots (one per shard, in shard order).
pub fn render(stats: &[Stats], extra: &MetricsExtra) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let total = Stats::total(stats);
    header(
        &mut out,
        "ringmq_build_info",
        "gauge",
        "Version and node name; always 1.",
    );
    let _ = writeln!(
        out,
        "ringmq_build_info{{version=\"{}\",node=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        escape(&extra.node_name)
    );
    header(
        &mut out,
        "ringmq_uptime_seconds",
        "gauge",
        "Seconds since the broker started.",
    );
    let _ = writeln!(out, "ringmq_uptime_seconds {}", extra.uptime_s);
    header(
        &mut out,
        "ringmq_shards",
        "gauge",
        "Shards (one executor thread each).",
    );
    let _ = writeln!(out, "ringmq_shards {}", stats.len());
    header(
        &mut out,
        "ringmq_clients_maximum",
        "gauge",
        "Most clients connected at once since the start.",
    );
    let _ = writeln!(out, "ringmq_clients_maximum {}", extra.clients_max);
    for (name, kind, help, f) in FIGURES {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        family(&mut out, name, kind, help, &total, stats, |s| {
            [(None, f(s))]
        });
    }
    let qos = |v: [u64; 3]| {
        [
            (Some(("qos", "0")), v[0]),
            (Some(("qos", "1")), v[1]),
            (Some(("qos", "2")), v[2]),
        ]
    };
    family(
        &mut out,
        "publish_received_total",
        "counter",
        "PUBLISH packets received from clients, by QoS.",
        &total,
        stats,
        |s| qos(s.publish_in_qos),
    );
    family(
        &mut out,
        "publish_sent_total",
        "counter",
        "PUBLISH packets written to clients, by QoS.",
        &total,
        stats,
        |s| qos(s.publish_out_qos),
    );
    family(
        &mut out,
        "dropped_total",
        "counter",
        "Messages dropped, by reason.",
        &total,
        stats,
        |s| s.drop_reasons().map(|(r, n)| (Some(("reason", r)), n)),
    );
    let name = "ringmq_store_commit_latency_seconds";
    let help = "How long the first record of a store commit waited for it.";
    header(&mut out, name, "histogram", help);
    histogram(&mut out, name, None, &total.commit_latency);
    let name = "ringmq_shard_store_commit_latency_seconds";
    header(&mut out, name, "histogram", &format!("{help} Per shard."));
    for (i, s) in stats.iter().enumerate() {
        histogram(&mut out, name, Some(i), &s.commit_latency);
    }
    type Column = (&'static str, &'static str, fn(&PrefixRow) -> u64);
    let columns: [Column; 3] = [
        (
            "messages_received_total",
            "Messages published, by first topic level.",
            |r| r.messages_in,
        ),
        (
            "bytes_received_total",
            "Payload bytes published, by first topic level.",
            |r| r.bytes_in,
        ),
        (
            "deliveries_total",
            "Deliveries, by first topic level.",
            |r| r.deliveries,
        ),
    ];
    for (suffix, help, f) in columns {
        let name = format!("ringmq_topic_{suffix}");
        header(&mut out, &name, "counter", help);
        for r in &extra.topics {
            let _ = writeln!(out, "{name}{{prefix=\"{}\"}} {}", escape(&r.prefix), f(r));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Vec<Stats>, MetricsExtra) {
        let mut a = Stats {
            connections_current: 3,
            publish_in_qos: [10, 2, 1],
            ..Stats::default()
        };
        a.commit_latency.record(80);
        a.commit_latency.record(3_000);
        let b = Stats {
            connections_current: 4,
            ..Stats::default()
        };
        let extra = MetricsExtra {
            uptime_s: 12,
            node_name: "ringmq@test".into(),
            clients_max: 7,
            topics: vec![PrefixRow {
                prefix: "we\"ird\\".into(),
                messages_in: 5,
                bytes_in: 50,
                deliveries: 9,
            }],
        };
        (vec![a, b], extra)
    }

    /// The exposition's grammar, checked line by line: every sample belongs to a family
    /// declared just before with HELP and TYPE, names and labels are well-formed, values parse.
    #[test]
    fn every_line_is_valid_exposition() {
        let (stats, extra) = sample();
        let text = render(&stats, &extra);
        let mut declared: Option<(String, String)> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().expect("name");
                declared = Some((name.to_string(), String::new()));
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut it = rest.split(' ');
                let (name, kind) = (it.next().expect("name"), it.next().expect("type"));
                let d = declared.as_mut().expect("HELP before TYPE");
                assert_eq!(d.0, name);
                assert!(["counter", "gauge", "histogram"].contains(&kind));
                d.1 = kind.to_string();
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("name and value");
            value.parse::<f64>().expect("a numeric value");
            let name = series.split('{').next().expect("name");
            assert!(name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'));
            let (family, kind) = declared.as_ref().expect("a declared family");
            if kind == "histogram" {
                let suffix = name.strip_prefix(family.as_str()).expect("family prefix");
                assert!(["_bucket", "_sum", "_count"].contains(&suffix), "{line}");
            } else {
                assert_eq!(name, family, "{line}");
            }
            if let Some(labels) = series.strip_prefix(name) {
                if !labels.is_empty() {
                    assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
                }
            }
        }
        assert!(text.contains("ringmq_connections 7\n"));
        assert!(text.contains("ringmq_shard_connections{shard=\"1\"} 4\n"));
        assert!(text.contains("ringmq_publish_received_total{qos=\"0\"} 10\n"));
        assert!(text.contains("ringmq_topic_deliveries_total{prefix=\"we\\\"ird\\\\\"} 9\n"));
    }

    #[test]
    fn the_commit_histogram_is_cumulative_and_ends_at_the_count() {
        let (stats, extra) = sample();
        let text = render(&stats, &extra);
        assert!(text.contains("ringmq_store_commit_latency_seconds_bucket{le=\"0.00005\"} 0\n"));
        assert!(text.contains("ringmq_store_commit_latency_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("ringmq_store_commit_latency_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("ringmq_store_commit_latency_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("ringmq_store_commit_latency_seconds_count 2\n"));
        assert!(text.contains(
            "ringmq_shard_store_commit_latency_seconds_bucket{shard=\"0\",le=\"+Inf\"} 2\n"
        ));
    }

    /// The reference parser (Python's `prometheus_client`, which tests/run-all.sh installs)
    /// reads every family back with the values we wrote.
    #[test]
    fn prometheus_clients_parser_reads_it_back() {
        let (stats, extra) = sample();
        let text = render(&stats, &extra);
        let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
def value(family, name, **labels):
    for s in fams[family].samples:
        if s.name == name and s.labels == labels:
            return s.value
    raise SystemExit("missing %s %s" % (name, labels))
assert value("ringmq_connections", "ringmq_connections") == 7
assert value("ringmq_shard_connections", "ringmq_shard_connections", shard="0") == 3
assert fams["ringmq_store_commit_latency_seconds"].type == "histogram"
assert value("ringmq_store_commit_latency_seconds", "ringmq_store_commit_latency_seconds_count") == 2
assert value("ringmq_topic_deliveries", "ringmq_topic_deliveries_total", prefix='we"ird\\') == 9
print(len(fams))
"#;
        // Debian's interpreter, where apt puts python3-prometheus-client (a pyenv or venv
        // `python3` earlier on PATH would not see it).
        let python = ["/usr/bin/python3", "python3"]
            .into_iter()
            .find(|p| !p.starts_with('/') || std::path::Path::new(p).exists())
            .unwrap_or("python3");
        let mut child = std::process::Command::new(python)
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3 (tests/run-all.sh installs python3-prometheus-client)");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("python ran");
        assert!(
            out.status.success(),
            "prometheus_client rejected the exposition: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let families: usize = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a count");
        assert!(families > 70, "{families} families parsed");
    }
}
