//! Per-second counters of a run (`--timeline`, always on for `stalled`): for each publisher
//! group, messages sent, acknowledged and delivered in each second since traffic started, and
//! the end-to-end latency of that second's deliveries; plus bytes waiting unread in stalled
//! subscribers' sockets. Overload shows here as it unfolds (a group's acknowledgements
//! stopping, latency climbing, the broker disconnecting a stalled subscriber), where the
//! run's totals only show its sum.
//!
//! Each I/O thread records into its own [`Recorder`]; the main thread merges them after the
//! run. Seconds count from the start of traffic (warm-up included), at most [`SECONDS_MAX`].

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Longest timeline kept; later seconds are not recorded.
pub const SECONDS_MAX: usize = 3600;
/// Per-second latency: 2 significant digits (1% resolution) keeps each second's histogram
/// small (a few KiB per group).
const SIGFIG: u8 = 2;

#[derive(Debug, Clone)]
struct Slot {
    sent: Vec<u64>,
    acked: Vec<u64>,
    delivered: Vec<u64>,
    latency: Vec<Option<Histogram<u64>>>,
    /// Largest sum, over this thread's stalled subscribers, of bytes queued unread.
    stalled_rx_bytes: u64,
}

impl Slot {
    fn new(groups: usize) -> Slot {
        Slot {
            sent: vec![0; groups],
            acked: vec![0; groups],
            delivered: vec![0; groups],
            latency: vec![None; groups],
            stalled_rx_bytes: 0,
        }
    }
}

/// One thread's per-second counters.
#[derive(Debug, Clone)]
pub struct Recorder {
    start_ns: u64,
    groups: usize,
    slots: Vec<Slot>,
}

impl Recorder {
    pub fn new(groups: usize) -> Recorder {
        Recorder {
            start_ns: 0,
            groups: groups.max(1),
            slots: Vec::new(),
        }
    }

    /// Traffic started at `start_ns`; nothing before it is recorded.
    pub fn set_start(&mut self, start_ns: u64) {
        self.start_ns = start_ns;
    }

    fn slot(&mut self, now_ns: u64) -> Option<&mut Slot> {
        if self.start_ns == 0 || now_ns < self.start_ns {
            return None;
        }
        let i = ((now_ns - self.start_ns) / 1_000_000_000) as usize;
        if i >= SECONDS_MAX {
            return None;
        }
        if i >= self.slots.len() {
            let g = self.groups;
            self.slots.resize_with(i + 1, || Slot::new(g));
        }
        Some(&mut self.slots[i])
    }

    #[inline]
    pub fn sent(&mut self, now_ns: u64, group: u8) {
        if let Some(s) = self.slot(now_ns) {
            s.sent[usize::from(group)] += 1;
        }
    }

    #[inline]
    pub fn acked(&mut self, now_ns: u64, group: u8) {
        if let Some(s) = self.slot(now_ns) {
            s.acked[usize::from(group)] += 1;
        }
    }

    #[inline]
    pub fn delivered(&mut self, now_ns: u64, group: u8, latency_us: u64) {
        if let Some(s) = self.slot(now_ns) {
            let g = usize::from(group);
            s.delivered[g] += 1;
            s.latency[g]
                .get_or_insert_with(|| {
                    Histogram::new_with_bounds(1, crate::engine::HIST_MAX_US, SIGFIG)
                        .expect("valid histogram bounds")
                })
                .saturating_record(latency_us.max(1));
        }
    }

    pub fn stalled_rx(&mut self, now_ns: u64, bytes: u64) {
        if let Some(s) = self.slot(now_ns) {
            s.stalled_rx_bytes = s.stalled_rx_bytes.max(bytes);
        }
    }

    /// Add another thread's counters (stalled bytes add up: different subscribers).
    pub fn merge(&mut self, other: &Recorder) {
        if other.slots.len() > self.slots.len() {
            let g = self.groups;
            self.slots.resize_with(other.slots.len(), || Slot::new(g));
        }
        for (a, b) in self.slots.iter_mut().zip(&other.slots) {
            for g in 0..self.groups.min(other.groups) {
                a.sent[g] += b.sent[g];
                a.acked[g] += b.acked[g];
                a.delivered[g] += b.delivered[g];
                if let Some(h) = &b.latency[g] {
                    match &mut a.latency[g] {
                        Some(x) => x.add(h).expect("same histogram bounds"),
                        None => a.latency[g] = Some(h.clone()),
                    }
                }
            }
            a.stalled_rx_bytes += b.stalled_rx_bytes;
        }
    }

    /// The report's form: one entry per second, one per group inside it.
    pub fn seconds(&self, names: &[String]) -> Vec<Second> {
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| Second {
                t_s: i as u32,
                groups: (0..self.groups)
                    .map(|g| {
                        let l = s.latency[g].as_ref();
                        GroupSecond {
                            group: names.get(g).cloned().unwrap_or_else(|| g.to_string()),
                            sent: s.sent[g],
                            acked: s.acked[g],
                            delivered: s.delivered[g],
                            latency_us_p50: l.map_or(0, |h| h.value_at_quantile(0.5)),
                            latency_us_p99: l.map_or(0, |h| h.value_at_quantile(0.99)),
                            latency_us_max: l.map_or(0, |h| h.max()),
                        }
                    })
                    .collect(),
                stalled_rx_bytes: s.stalled_rx_bytes,
            })
            .collect()
    }
}

/// One second of the run (`t_s` seconds after traffic started, warm-up included).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Second {
    pub t_s: u32,
    pub groups: Vec<GroupSecond>,
    /// Bytes queued unread in stalled subscribers' sockets (largest sample of the second).
    pub stalled_rx_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupSecond {
    pub group: String,
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub latency_us_p50: u64,
    pub latency_us_p99: u64,
    pub latency_us_max: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_per_second_and_merges() {
        let s = 1_000_000_000u64;
        let mut a = Recorder::new(2);
        a.delivered(5, 0, 10); // before start: ignored
        a.set_start(10 * s);
        a.sent(10 * s, 0);
        a.acked(10 * s + 1, 1);
        a.delivered(11 * s + 5, 0, 100);
        a.delivered(11 * s + 6, 0, 300);
        let mut b = Recorder::new(2);
        b.set_start(10 * s);
        b.delivered(13 * s, 1, 50);
        b.stalled_rx(12 * s, 4096);
        a.merge(&b);
        let t = a.seconds(&["h".into(), "x".into()]);
        assert_eq!(t.len(), 4);
        assert_eq!((t[0].groups[0].sent, t[0].groups[1].acked), (1, 1));
        assert_eq!(t[1].groups[0].delivered, 2);
        // 2 significant digits: within 1%.
        assert!((300..=303).contains(&t[1].groups[0].latency_us_max));
        assert_eq!(t[2].stalled_rx_bytes, 4096);
        assert_eq!(t[3].groups[1].group, "x");
        assert_eq!(t[3].groups[1].latency_us_p50, 50);
    }
}
