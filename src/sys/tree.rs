//! The `$SYS/broker/...` tree, computed on the control thread from the shards' snapshots:
//! Mosquitto's topic names and value formats, the `load/...` moving averages as Mosquitto
//! computes them, and ringmq's own figures (per shard, drop reasons).
//!
//! Owns: the last value published per topic (only changes are sent, as Mosquitto does), the
//! load averages, and the highest number of connected clients seen.
//! Never: touches a shard; it returns values and the control thread sends them.

use super::SysValue;
use crate::shard::Stats;
use std::collections::HashMap;
use std::time::Instant;

/// The counters Mosquitto keeps load averages of, under `$SYS/broker/load/<name>/<window>`.
type Series = (&'static str, fn(&Stats) -> u64);
const LOADS: [Series; 8] = [
    ("messages/received", |s| s.packets_in),
    ("messages/sent", |s| s.packets_out),
    ("publish/received", |s| s.publish_in_qos.iter().sum()),
    ("publish/sent", |s| s.publish_out_qos.iter().sum()),
    ("publish/dropped", |s| s.dropped()),
    ("bytes/received", |s| s.bytes_in),
    ("bytes/sent", |s| s.bytes_out),
    ("connections", |s| s.connections),
];

/// Averaging windows, seconds, and their topic suffixes.
const WINDOWS: [(f64, &str); 3] = [(60.0, "1min"), (300.0, "5min"), (900.0, "15min")];

pub struct Tree {
    started: Instant,
    last: HashMap<String, String>,
    /// Counter values and time of the previous refresh.
    prev: Option<(Instant, [u64; LOADS.len()])>,
    loads: [[f64; WINDOWS.len()]; LOADS.len()],
    /// Most clients connected at once, as seen at the refreshes and snapshots.
    pub clients_max: u64,
}

impl Tree {
    pub fn new(started: Instant) -> Tree {
        Tree {
            started,
            last: HashMap::new(),
            prev: None,
            loads: [[0.0; WINDOWS.len()]; LOADS.len()],
            clients_max: 0,
        }
    }

    /// Keep the maximum current (called with every snapshot, not only at refreshes).
    pub fn observe(&mut self, stats: &[Stats]) {
        let connected: u64 = stats.iter().map(|s| s.sessions_connected).sum();
        self.clients_max = self.clients_max.max(connected);
    }

    /// The values that changed since the last refresh (all of them the first time).
    pub fn refresh(&mut self, stats: &[Stats], now: Instant) -> Vec<SysValue> {
        self.observe(stats);
        let t = Stats::total(stats);
        let mut out = Vec::new();
        let b = "$SYS/broker";
        let mut put = |topic: String, v: String| {
            if self.last.get(&topic) != Some(&v) {
                self.last.insert(topic.clone(), v.clone());
                out.push(SysValue { topic, payload: v });
            }
        };
        put(
            format!("{b}/version"),
            format!("ringmq version {}", env!("CARGO_PKG_VERSION")),
        );
        let up = now.saturating_duration_since(self.started).as_secs();
        put(format!("{b}/uptime"), format!("{up} seconds"));
        let n = |v: u64| v.to_string();
        put(format!("{b}/clients/total"), n(t.sessions));
        put(format!("{b}/clients/connected"), n(t.sessions_connected));
        put(
            format!("{b}/clients/disconnected"),
            n(t.sessions.saturating_sub(t.sessions_connected)),
        );
        put(format!("{b}/clients/maximum"), n(self.clients_max));
        put(format!("{b}/clients/expired"), n(t.sessions_expired));
        put(format!("{b}/messages/received"), n(t.packets_in));
        put(format!("{b}/messages/sent"), n(t.packets_out));
        let (pin, pout) = (LOADS[2].1(&t), LOADS[3].1(&t));
        put(format!("{b}/publish/messages/received"), n(pin));
        put(format!("{b}/publish/messages/sent"), n(pout));
        put(format!("{b}/publish/messages/dropped"), n(t.dropped()));
        for (reason, count) in t.drop_reasons() {
            put(format!("{b}/publish/messages/dropped/{reason}"), n(count));
        }
        put(format!("{b}/bytes/received"), n(t.bytes_in));
        put(format!("{b}/bytes/sent"), n(t.bytes_out));
        put(format!("{b}/subscriptions/count"), n(t.subscriptions));
        put(format!("{b}/retained messages/count"), n(t.retained));
        put(format!("{b}/store/messages/count"), n(t.store_messages));
        put(format!("{b}/store/messages/bytes"), n(t.store_bytes));
        // Mosquitto's load: the per-minute rate over the last interval, smoothed with
        // new = rate + e^(-interval/window) × (old − rate).
        let current = LOADS.map(|(_, f)| f(&t));
        if let Some((at, before)) = self.prev {
            let dt = now.saturating_duration_since(at).as_secs_f64();
            if dt > 0.0 {
                for (i, load) in self.loads.iter_mut().enumerate() {
                    let rate = current[i].saturating_sub(before[i]) as f64 * 60.0 / dt;
                    for (w, (window, _)) in WINDOWS.iter().enumerate() {
                        let e = (-dt / window).exp();
                        load[w] = rate + e * (load[w] - rate);
                    }
                }
            }
        }
        if self.prev.is_none_or(|(at, _)| now > at) {
            self.prev = Some((now, current));
        }
        for (i, (name, _)) in LOADS.iter().enumerate() {
            for (w, (_, suffix)) in WINDOWS.iter().enumerate() {
                put(
                    format!("{b}/load/{name}/{suffix}"),
                    format!("{:.2}", self.loads[i][w]),
                );
            }
        }
        for (id, s) in stats.iter().enumerate() {
            let p = format!("{b}/shard/{id}");
            put(format!("{p}/connections"), n(s.connections_current));
            put(format!("{p}/connections_asleep"), n(s.connections_asleep));
            put(format!("{p}/clients/connected"), n(s.sessions_connected));
            put(format!("{p}/clients/total"), n(s.sessions));
            put(format!("{p}/subscriptions/count"), n(s.subscriptions));
            put(format!("{p}/retained messages/count"), n(s.retained));
            put(format!("{p}/publish/messages/received"), n(LOADS[2].1(s)));
            put(format!("{p}/publish/messages/sent"), n(LOADS[3].1(s)));
            put(format!("{p}/publish/messages/dropped"), n(s.dropped()));
            put(format!("{p}/bytes/received"), n(s.bytes_in));
            put(format!("{p}/bytes/sent"), n(s.bytes_out));
            put(format!("{p}/queued"), n(s.queued));
            put(format!("{p}/inflight"), n(s.inflight));
            put(format!("{p}/mesh/batches/sent"), n(s.mesh_batches_out));
            put(format!("{p}/mesh/batches/received"), n(s.mesh_batches_in));
            put(format!("{p}/store/commits"), n(s.store_commits));
        }
        out
    }

    /// These values did not reach their shard (a full command channel): send them again at
    /// the next refresh even if they do not change.
    pub fn forget(&mut self, values: &[SysValue]) {
        for v in values {
            self.last.remove(&v.topic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn value<'a>(vs: &'a [SysValue], topic: &str) -> Option<&'a str> {
        vs.iter()
            .find(|v| v.topic == topic)
            .map(|v| v.payload.as_str())
    }

    #[test]
    fn the_first_refresh_sends_everything_then_only_changes() {
        let t0 = Instant::now();
        let mut tree = Tree::new(t0);
        let s = Stats {
            sessions: 3,
            sessions_connected: 2,
            publish_in_qos: [5, 1, 0],
            retained: 4,
            ..Stats::default()
        };
        let first = tree.refresh(&[s, Stats::default()], t0 + Duration::from_secs(1));
        assert_eq!(value(&first, "$SYS/broker/clients/connected"), Some("2"));
        assert_eq!(value(&first, "$SYS/broker/clients/disconnected"), Some("1"));
        assert_eq!(
            value(&first, "$SYS/broker/publish/messages/received"),
            Some("6")
        );
        assert_eq!(
            value(&first, "$SYS/broker/retained messages/count"),
            Some("4")
        );
        assert_eq!(value(&first, "$SYS/broker/uptime"), Some("1 seconds"));
        assert_eq!(
            value(&first, "$SYS/broker/shard/1/clients/total"),
            Some("0")
        );
        let again = tree.refresh(&[s, Stats::default()], t0 + Duration::from_secs(1));
        assert!(again.is_empty(), "nothing changed: {again:?}");
        let fewer = Stats {
            sessions_connected: 1,
            ..s
        };
        let next = tree.refresh(&[fewer, Stats::default()], t0 + Duration::from_secs(1));
        assert_eq!(value(&next, "$SYS/broker/clients/connected"), Some("1"));
        assert_eq!(
            value(&next, "$SYS/broker/clients/maximum"),
            None,
            "the maximum stays 2 (unchanged, not sent)"
        );
        assert_eq!(tree.clients_max, 2);
    }

    #[test]
    fn load_is_mosquittos_moving_average_of_the_per_minute_rate() {
        let t0 = Instant::now();
        let mut tree = Tree::new(t0);
        let at = |n: u64| Stats {
            publish_in_qos: [n, 0, 0],
            ..Stats::default()
        };
        tree.refresh(&[at(0)], t0);
        // 600 messages in 10 s: 3600 per minute.
        let v = tree.refresh(&[at(600)], t0 + Duration::from_secs(10));
        let e = (-10.0f64 / 60.0).exp();
        let want = 3600.0 * (1.0 - e);
        let got: f64 = value(&v, "$SYS/broker/load/publish/received/1min")
            .expect("published")
            .parse()
            .expect("a number");
        assert!((got - want).abs() < 0.01, "{got} vs {want}");
        let fifteen: f64 = value(&v, "$SYS/broker/load/publish/received/15min")
            .expect("published")
            .parse()
            .expect("a number");
        assert!(fifteen < got, "a longer window moves more slowly");
    }
}
