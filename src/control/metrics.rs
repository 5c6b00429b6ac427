//! Prometheus text exposition of the shards' counters (`GET /metrics`).
//!
//! Minimal version made by the admin branch so that `/metrics` compiles and answers; the sys
//! branch owns this file and its full version replaces this one at merge.

use crate::shard::Stats;
use std::fmt::Write;

/// What the metrics show besides the shards' counters.
#[derive(Debug, Default, Clone)]
pub struct MetricsExtra {
    pub uptime_s: u64,
}

/// Name, help text and the value of one shard.
type Family = (&'static str, &'static str, fn(&Stats) -> u64);

/// The text exposition format (version 0.0.4) of `stats` (one entry per shard) and `extra`.
pub fn render(stats: &[Stats], extra: &MetricsExtra) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP ringmq_uptime_seconds Seconds since the broker started."
    );
    let _ = writeln!(out, "# TYPE ringmq_uptime_seconds gauge");
    let _ = writeln!(out, "ringmq_uptime_seconds {}", extra.uptime_s);
    let families: [Family; 4] = [
        (
            "ringmq_connections_accepted_total",
            "Connections accepted.",
            |s| s.connections,
        ),
        (
            "ringmq_messages_received_total",
            "PUBLISH packets received.",
            |s| s.publishes_in,
        ),
        (
            "ringmq_messages_sent_total",
            "Messages delivered to sessions.",
            |s| s.deliveries,
        ),
        ("ringmq_messages_dropped_total", "Messages dropped.", |s| {
            s.drops.total() + s.shared_dropped
        }),
    ];
    for (name, help, get) in families {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        for (i, s) in stats.iter().enumerate() {
            let _ = writeln!(out, "{name}{{shard=\"{i}\"}} {}", get(s));
        }
    }
    out
}
