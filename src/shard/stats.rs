//! A shard's counters and gauges: what `$SYS`, `/metrics` and the admin API show.
//!
//! Owns: the [`Stats`] value a shard keeps and sends to the control thread about once a second
//! (`Copy`, so the snapshot is a memcpy), and the fixed-bucket [`LatencyHistogram`] of store
//! commits.
//! Never: is shared between threads. Counters are plain `u64` adds on the shard's own value
//! (no atomic, no lock); gauges are filled in when the snapshot is taken, on the shard's
//! control task, never per message.

/// Upper bounds (µs) of the commit latency buckets; a sample above the last lands only in
/// `+Inf` (the count). From a fast `process` commit (~100 µs) to a slow `fdatasync` (~250 ms).
pub const COMMIT_BUCKETS_US: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
];

/// A histogram with fixed buckets: recording is a short scan and an add, no allocation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// Samples per bucket (not cumulative): `buckets[i]` counts samples in
    /// (`COMMIT_BUCKETS_US[i-1]`, `COMMIT_BUCKETS_US[i]`].
    pub buckets: [u64; COMMIT_BUCKETS_US.len()],
    pub sum_us: u64,
    pub count: u64,
}

impl LatencyHistogram {
    pub fn record(&mut self, us: u64) {
        if let Some(i) = COMMIT_BUCKETS_US.iter().position(|&b| us <= b) {
            self.buckets[i] += 1;
        }
        self.sum_us += us;
        self.count += 1;
    }

    pub fn add(&mut self, o: &LatencyHistogram) {
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
        self.sum_us += o.sum_us;
        self.count += o.count;
    }
}

/// Counters of one shard. Plain integers: only this shard writes them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// TCP connections accepted (a counter; `connections_current` is the gauge).
    pub connections: u64,
    /// Messages routed from this shard: PUBLISHes from clients and wills (not `$SYS`).
    pub publishes_in: u64,
    pub deliveries: u64,
    pub mesh_out: u64,
    pub mesh_in: u64,
    /// Messages for a shared group that had no member to take them.
    pub shared_dropped: u64,
    /// Shared-group QoS 1/2 messages given to the group again: `[given back by a member that
    /// disconnected, arrived for a member whose session was gone]`.
    pub shared_again: [u64; 2],
    /// Session drops by reason (see [`crate::session::SessionDrops`]), added when
    /// connections end.
    pub drops: crate::session::SessionDrops,
    /// Sessions that reached their queue bounds while connected (back-pressure episodes).
    pub congestions: u64,
    /// Holds put on publishers, and slow subscribers disconnected by the watchdog.
    pub holds: u64,
    pub slow_disconnects: u64,
    /// Hostile-client limits: CONNECTs refused at `sessions_max`, retained PUBLISHes refused at
    /// the retained bounds, clients disconnected over their publish rate.
    pub sessions_refused: u64,
    pub retained_refused: u64,
    pub rate_disconnects: u64,
    /// PUBLISHes and SUBSCRIBE filters the ACL refused.
    pub acl_denied: u64,
    /// QoS 1/2 PUBLISHes refused while the store could not commit.
    pub store_refused: u64,

    // Issue 10: what `$SYS` and `/metrics` need. Connection-level counters come from the
    // shard thread's [`super::tally`] when the snapshot is taken.
    /// PUBLISH packets received from clients, by QoS (refused ones included).
    pub publish_in_qos: [u64; 3],
    /// PUBLISH packets written to clients, by QoS (retransmissions included).
    pub publish_out_qos: [u64; 3],
    /// MQTT packets of any kind received and written (Mosquitto's `messages/received|sent`).
    pub packets_in: u64,
    pub packets_out: u64,
    /// MQTT bytes read from and written to connections (below TLS and WebSocket framing).
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// CONNECTs refused for their credentials; TLS handshakes completed and failed.
    pub auth_failures: u64,
    pub tls_handshakes: u64,
    pub tls_handshake_failures: u64,
    /// Persistent sessions that expired while offline.
    pub sessions_expired: u64,
    /// Mesh batches sent to and received from peer shards.
    pub mesh_batches_out: u64,
    pub mesh_batches_in: u64,
    /// Store commits that wrote something, and how long appended records waited for them.
    pub store_commits: u64,
    pub commit_latency: LatencyHistogram,
    /// Gauges (taken with the snapshot): connections served here, sessions homed here (and how
    /// many are connected), their subscriptions, QoS 1/2 messages in flight and queued.
    pub connections_current: u64,
    /// Of those, idle ones sleeping without a task (`net::dormant`).
    pub connections_asleep: u64,
    pub sessions: u64,
    pub sessions_connected: u64,
    pub subscriptions: u64,
    pub inflight: u64,
    pub queued: u64,
    /// Messages waiting in the outboxes to peer shards (mesh back-pressure past `OUTBOX_MAX`).
    pub outbox_depth: u64,
    /// Retained messages whose topic's home is this shard (`$SYS` excluded), so the sum over
    /// shards is the broker's count; and their bytes.
    pub retained: u64,
    pub retained_bytes: u64,
    /// Messages the store holds for this shard (distinct messages, topic + payload bytes).
    pub store_messages: u64,
    pub store_bytes: u64,
}

impl Stats {
    pub fn add_drops(&mut self, d: &crate::session::SessionDrops) {
        let t = &mut self.drops;
        t.qos0 += d.qos0;
        t.qos12 += d.qos12;
        t.offline_full += d.offline_full;
        t.offline_qos0 += d.offline_qos0;
        t.too_large += d.too_large;
        t.expired += d.expired;
    }

    /// Every message dropped, whatever the reason (Mosquitto's `publish/messages/dropped`).
    pub fn dropped(&self) -> u64 {
        self.drops.total() + self.shared_dropped
    }

    /// Drop reasons by name, as `$SYS` and `/metrics` label them.
    pub fn drop_reasons(&self) -> [(&'static str, u64); 7] {
        let d = &self.drops;
        [
            ("queue_full_qos0", d.qos0),
            ("queue_full_qos12", d.qos12),
            ("offline_queue_full", d.offline_full),
            ("offline_qos0", d.offline_qos0),
            ("too_large", d.too_large),
            ("expired", d.expired),
            ("shared_no_member", self.shared_dropped),
        ]
    }

    /// The sum of every shard's figures (counters and gauges alike).
    pub fn total(all: &[Stats]) -> Stats {
        let mut t = Stats::default();
        for s in all {
            t.connections += s.connections;
            t.publishes_in += s.publishes_in;
            t.deliveries += s.deliveries;
            t.mesh_out += s.mesh_out;
            t.mesh_in += s.mesh_in;
            t.shared_dropped += s.shared_dropped;
            t.shared_again[0] += s.shared_again[0];
            t.shared_again[1] += s.shared_again[1];
            t.add_drops(&s.drops);
            t.congestions += s.congestions;
            t.holds += s.holds;
            t.slow_disconnects += s.slow_disconnects;
            t.sessions_refused += s.sessions_refused;
            t.retained_refused += s.retained_refused;
            t.rate_disconnects += s.rate_disconnects;
            t.acl_denied += s.acl_denied;
            t.store_refused += s.store_refused;
            for q in 0..3 {
                t.publish_in_qos[q] += s.publish_in_qos[q];
                t.publish_out_qos[q] += s.publish_out_qos[q];
            }
            t.packets_in += s.packets_in;
            t.packets_out += s.packets_out;
            t.bytes_in += s.bytes_in;
            t.bytes_out += s.bytes_out;
            t.auth_failures += s.auth_failures;
            t.tls_handshakes += s.tls_handshakes;
            t.tls_handshake_failures += s.tls_handshake_failures;
            t.sessions_expired += s.sessions_expired;
            t.mesh_batches_out += s.mesh_batches_out;
            t.mesh_batches_in += s.mesh_batches_in;
            t.store_commits += s.store_commits;
            t.commit_latency.add(&s.commit_latency);
            t.connections_current += s.connections_current;
            t.connections_asleep += s.connections_asleep;
            t.sessions += s.sessions;
            t.sessions_connected += s.sessions_connected;
            t.subscriptions += s.subscriptions;
            t.inflight += s.inflight;
            t.queued += s.queued;
            t.outbox_depth += s.outbox_depth;
            t.retained += s.retained;
            t.retained_bytes += s.retained_bytes;
            t.store_messages += s.store_messages;
            t.store_bytes += s.store_bytes;
        }
        t
    }
}

impl super::Shard {
    /// The counters plus the gauges, for the control thread (about once a second, on the
    /// shard's control task). One walk over the sessions homed here (O(sessions) once a
    /// second), which keeps per-subscription and per-queue bookkeeping off the data path.
    pub fn snapshot(&self) -> Stats {
        let mut st = self.stats;
        let t = super::tally::read();
        st.bytes_in = t.bytes_in;
        st.bytes_out = t.bytes_out;
        st.packets_in = t.packets_in;
        st.packets_out = t.packets_out;
        st.publish_in_qos = t.publish_in_qos;
        st.publish_out_qos = t.publish_out_qos;
        st.connections_current = self.live_connections as u64;
        st.connections_asleep = crate::net::dormant::asleep() as u64;
        st.sessions = self.sessions.len() as u64;
        let (mut connected, mut subs, mut inflight, mut queued) = (0u64, 0u64, 0u64, 0u64);
        for s in self.sessions.values() {
            let Ok(s) = s.try_borrow() else { continue };
            connected += u64::from(s.is_connected());
            subs += s.subscriptions.len() as u64;
            inflight += s.inflight_len() as u64;
            queued += s.queued_len() as u64;
        }
        st.sessions_connected = connected;
        st.subscriptions = subs;
        st.inflight = inflight;
        st.queued = queued;
        st.outbox_depth = self.outbox.iter().flatten().map(|q| q.len() as u64).sum();
        (st.retained, st.retained_bytes) = self.retained_home;
        if let Some(j) = &self.journal {
            (st.store_messages, st.store_bytes) = j.stored_messages();
            st.store_commits = j.log.stats().commits;
        }
        st
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_lands_in_the_first_bucket_that_holds_it() {
        let mut h = LatencyHistogram::default();
        h.record(50);
        h.record(51);
        h.record(1_000_000);
        assert_eq!(h.buckets[0], 1);
        assert_eq!(h.buckets[1], 1);
        assert_eq!(
            h.buckets.iter().sum::<u64>(),
            2,
            "over the last bound: only +Inf"
        );
        assert_eq!(h.count, 3);
        assert_eq!(h.sum_us, 1_000_101);
    }

    #[test]
    fn the_total_adds_every_shard() {
        let a = Stats {
            publish_in_qos: [1, 2, 3],
            retained: 4,
            ..Stats::default()
        };
        let t = Stats::total(&[a, a]);
        assert_eq!(t.publish_in_qos, [2, 4, 6]);
        assert_eq!(t.retained, 8);
    }
}
