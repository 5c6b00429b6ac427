//! Per-stream sequence accounting: what each subscriber received, lost, got twice or got late.
//!
//! A stream is one gap-free sequence of messages a subscriber must receive in full (see
//! [`crate::payload`]). Each subscriber keeps one [`SeqTracker`] per stream it expects; the
//! stream set of a subscriber is always an arithmetic progression (`first`, `stride`, `count`)
//! so lookup is a division instead of a hash.
//!
//! Rules, per (subscriber, stream):
//! - the next expected sequence → in order;
//! - higher than expected → the skipped range is remembered as *missing*;
//! - lower than expected and inside a missing range → *out of order* (late, not lost);
//! - lower than expected otherwise → *duplicate*.
//!
//! Lost is settled at the end, after the drain: `sent(stream) − unique received`, which also
//! counts a tail that never arrived (no later message exposes it as a gap).

use std::collections::VecDeque;

/// Missing ranges remembered per stream before the oldest is forgotten (bounds memory when a
/// QoS 0 run loses a lot). A late arrival into a forgotten range is then counted a duplicate,
/// and the report flags the run.
const MAX_GAP_RANGES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    InOrder,
    /// Arrived after a later sequence; `missing` shrank by one.
    Late,
    Duplicate,
    /// Skipped this many sequences (provisionally missing).
    Gap(u64),
}

#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    /// One past the highest sequence seen (sequences start at 0).
    next: u64,
    /// Unique sequences received (in order + late).
    pub received: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// Missing ranges `[lo, hi)`, ascending.
    gaps: VecDeque<(u64, u64)>,
    pub gaps_forgotten: u64,
}

impl SeqTracker {
    pub fn record(&mut self, seq: u64) -> Outcome {
        if seq == self.next {
            self.next += 1;
            self.received += 1;
            return Outcome::InOrder;
        }
        if seq > self.next {
            let skipped = seq - self.next;
            if self.gaps.len() == MAX_GAP_RANGES {
                self.gaps.pop_front();
                self.gaps_forgotten += 1;
            }
            self.gaps.push_back((self.next, seq));
            self.next = seq + 1;
            self.received += 1;
            return Outcome::Gap(skipped);
        }
        // seq < next: late (fills a gap) or a duplicate. Find the last range starting ≤ seq.
        let idx = self.gaps.partition_point(|&(lo, _)| lo <= seq);
        if idx > 0 {
            let i = idx - 1;
            let (lo, hi) = self.gaps[i];
            if seq < hi {
                match (seq == lo, seq + 1 == hi) {
                    (true, true) => {
                        self.gaps.remove(i);
                    }
                    (true, false) => self.gaps[i].0 = seq + 1,
                    (false, true) => self.gaps[i].1 = seq,
                    (false, false) => {
                        self.gaps[i].1 = seq;
                        self.gaps.insert(i + 1, (seq + 1, hi));
                    }
                }
                self.out_of_order += 1;
                self.received += 1;
                return Outcome::Late;
            }
        }
        self.duplicates += 1;
        Outcome::Duplicate
    }

    /// Sequences currently known missing (gaps not yet filled), not counting an unseen tail.
    pub fn missing(&self) -> u64 {
        self.gaps.iter().map(|&(lo, hi)| hi - lo).sum()
    }

    /// One past the highest sequence seen.
    pub fn next_expected(&self) -> u64 {
        self.next
    }

    /// `seq` arrived: it is below the highest sequence seen and in no missing range. (A
    /// sequence in a forgotten range reads as received; the report flags that run.)
    pub fn is_received(&self, seq: u64) -> bool {
        if seq >= self.next {
            return false;
        }
        let idx = self.gaps.partition_point(|&(lo, _)| lo <= seq);
        !(idx > 0 && seq < self.gaps[idx - 1].1)
    }
}

/// The streams one subscriber must receive: `first, first + stride, ...` (`count` of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSet {
    pub first: u32,
    pub stride: u32,
    pub count: u32,
}

impl StreamSet {
    pub fn single(stream: u32) -> StreamSet {
        StreamSet {
            first: stream,
            stride: 1,
            count: 1,
        }
    }

    #[inline]
    pub fn index(&self, stream: u32) -> Option<usize> {
        let off = stream.checked_sub(self.first)?;
        let stride = self.stride.max(1);
        if off % stride != 0 {
            return None;
        }
        let i = off / stride;
        (i < self.count).then_some(i as usize)
    }

    pub fn stream(&self, index: usize) -> u32 {
        self.first + self.stride.max(1) * index as u32
    }

    pub fn contains(&self, stream: u32) -> bool {
        self.index(stream).is_some()
    }
}

/// Everything one subscriber knows about what it received.
#[derive(Debug, Clone)]
pub struct SubTracker {
    pub set: StreamSet,
    pub trackers: Vec<SeqTracker>,
    /// Messages whose stream this subscriber does not expect (or with a foreign payload).
    pub unexpected: u64,
}

impl SubTracker {
    pub fn new(set: StreamSet) -> SubTracker {
        SubTracker {
            set,
            trackers: vec![SeqTracker::default(); set.count as usize],
            unexpected: 0,
        }
    }

    /// `None` when the stream is not one this subscriber expects.
    #[inline]
    pub fn record(&mut self, stream: u32, seq: u64) -> Option<Outcome> {
        match self.set.index(stream) {
            Some(i) => Some(self.trackers[i].record(seq)),
            None => {
                self.unexpected += 1;
                None
            }
        }
    }
}

/// Totals over all subscribers, settled against what publishers sent. Flattened into the
/// report's JSON line under these same key names.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Accounting {
    /// Σ over (subscriber, expected stream) of messages sent on that stream.
    pub expected: u64,
    /// Unique messages received (in order + late).
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub unexpected: u64,
    /// Missing ranges dropped from memory (late arrivals into them were counted duplicates).
    pub gaps_forgotten: u64,
    /// Streams with any loss, duplicate or reordering, worst first (at most 10):
    /// (stream, lost, duplicates, out_of_order).
    pub worst_streams: Vec<(u32, u64, u64, u64)>,
}

/// Settle loss: `sent(stream)` is how many sequence numbers the stream's publisher used.
pub fn settle(subs: &[SubTracker], sent: impl Fn(u32) -> u64) -> Accounting {
    let mut a = Accounting::default();
    let mut bad: Vec<(u32, u64, u64, u64)> = Vec::new();
    for sub in subs {
        a.unexpected += sub.unexpected;
        for (i, t) in sub.trackers.iter().enumerate() {
            let stream = sub.set.stream(i);
            let s = sent(stream);
            a.expected += s;
            a.received += t.received;
            let lost = s.saturating_sub(t.received);
            a.lost += lost;
            a.duplicates += t.duplicates;
            a.out_of_order += t.out_of_order;
            a.gaps_forgotten += t.gaps_forgotten;
            if lost + t.duplicates + t.out_of_order > 0 {
                bad.push((stream, lost, t.duplicates, t.out_of_order));
            }
        }
    }
    bad.sort_by_key(|&(s, l, d, o)| (std::cmp::Reverse(l + d + o), std::cmp::Reverse(l), s));
    bad.truncate(10);
    a.worst_streams = bad;
    a
}

/// What one publisher sent, and which of its messages the broker did not acknowledge.
#[derive(Debug, Clone, Default)]
pub struct PublisherSent {
    /// Messages sent per stream offset (each offset's next sequence number).
    pub sent: Vec<u64>,
    /// PUBACK (QoS 1) or PUBCOMP (QoS 2) received with a success code.
    pub acked: u64,
    /// (stream offset, sequence) of messages not acknowledged: still in flight at the end
    /// (connection lost, drain timed out) or acknowledged with an error reason code.
    pub not_acked: Vec<(u32, u64)>,
}

/// One publisher's delivery account, summed over every subscriber expecting its streams.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct PublisherTally {
    pub publisher: u32,
    /// The plan's group name (`stalled`: "healthy" or "stalled-topic").
    pub group: String,
    pub sent: u64,
    /// Acknowledged by the broker (QoS 1/2).
    pub acked: u64,
    /// Σ over expecting subscribers of the messages sent (sent × fan-out).
    pub expected: u64,
    /// Unique messages received, over all expecting subscribers.
    pub received: u64,
    /// expected − received: sent but never received.
    pub lost: u64,
    /// Acknowledged by the broker but never received (QoS 1/2): the broker accepted
    /// responsibility for the message and dropped it. Counted per (subscriber, message), so
    /// for one subscriber it is acked − received when every unacknowledged message was lost
    /// too, and never less than that.
    pub lost_acked: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// Throughput in the measured window, msgs/s: acknowledged (QoS 1/2) or sent (QoS 0).
    pub per_s: f64,
    /// Longest wait for the next acknowledgement while messages were in flight, ms (QoS 1/2;
    /// an open wait at the end counts until the end).
    pub ack_wait_ms_max: f64,
}

/// Per-publisher accounting. `pubs[i]` is publisher i; stream `i × streams_per_pub + offset`
/// carries its messages for `offset`. With `acknowledged` false (QoS 0) `lost_acked` stays 0.
pub fn tally_publishers(
    subs: &[SubTracker],
    pubs: &[PublisherSent],
    streams_per_pub: u32,
    acknowledged: bool,
) -> Vec<PublisherTally> {
    let spp = streams_per_pub.max(1);
    let mut out: Vec<PublisherTally> = pubs
        .iter()
        .enumerate()
        .map(|(i, p)| PublisherTally {
            publisher: i as u32,
            sent: p.sent.iter().sum(),
            acked: p.acked,
            ..Default::default()
        })
        .collect();
    // Unacknowledged sequences per stream, sorted.
    let mut not_acked: std::collections::HashMap<u32, Vec<u64>> = Default::default();
    for (i, p) in pubs.iter().enumerate() {
        for &(off, seq) in p.not_acked.iter().filter(|(off, _)| *off < spp) {
            not_acked.entry(i as u32 * spp + off).or_default().push(seq);
        }
    }
    for v in not_acked.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    for sub in subs {
        for (i, t) in sub.trackers.iter().enumerate() {
            let stream = sub.set.stream(i);
            let (pi, off) = ((stream / spp) as usize, (stream % spp) as usize);
            let Some(p) = pubs.get(pi) else { continue };
            let sent = p.sent.get(off).copied().unwrap_or(0);
            let missing = sent.saturating_sub(t.received);
            let o = &mut out[pi];
            o.expected += sent;
            o.received += t.received;
            o.lost += missing;
            o.duplicates += t.duplicates;
            o.out_of_order += t.out_of_order;
            if acknowledged {
                let unacked_missing = not_acked.get(&stream).map_or(0, |v| {
                    v.iter().filter(|&&q| q < sent && !t.is_received(q)).count() as u64
                });
                o.lost_acked += missing.saturating_sub(unacked_missing);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_has_no_anomalies() {
        let mut t = SeqTracker::default();
        for s in 0..1000 {
            assert_eq!(t.record(s), Outcome::InOrder);
        }
        assert_eq!(t.received, 1000);
        assert_eq!((t.duplicates, t.out_of_order, t.missing()), (0, 0, 0));
    }

    #[test]
    fn gaps_late_arrivals_and_duplicates() {
        let mut t = SeqTracker::default();
        assert_eq!(t.record(0), Outcome::InOrder);
        assert_eq!(t.record(1), Outcome::InOrder);
        assert_eq!(t.record(5), Outcome::Gap(3)); // 2,3,4 missing
        assert_eq!(t.missing(), 3);
        assert_eq!(t.record(3), Outcome::Late); // splits the range
        assert_eq!(t.missing(), 2);
        assert_eq!(t.record(3), Outcome::Duplicate);
        assert_eq!(t.record(2), Outcome::Late);
        assert_eq!(t.record(4), Outcome::Late);
        assert_eq!(t.missing(), 0);
        assert_eq!(t.record(1), Outcome::Duplicate);
        assert_eq!(t.record(5), Outcome::Duplicate);
        assert_eq!(t.record(6), Outcome::InOrder);
        assert_eq!(t.received, 7);
        assert_eq!(t.duplicates, 3);
        assert_eq!(t.out_of_order, 3);
    }

    #[test]
    fn range_edges() {
        let mut t = SeqTracker::default();
        t.record(10); // 0..10 missing
        assert_eq!(t.record(0), Outcome::Late);
        assert_eq!(t.record(9), Outcome::Late);
        assert_eq!(t.missing(), 8);
        assert_eq!(t.record(0), Outcome::Duplicate);
        assert_eq!(t.record(10), Outcome::Duplicate);
    }

    #[test]
    fn stream_sets() {
        let s = StreamSet {
            first: 3,
            stride: 4,
            count: 5,
        };
        assert_eq!(s.index(3), Some(0));
        assert_eq!(s.index(7), Some(1));
        assert_eq!(s.index(19), Some(4));
        assert_eq!(s.index(23), None);
        assert_eq!(s.index(4), None);
        assert_eq!(s.index(0), None);
        assert_eq!(s.stream(2), 11);
        assert!(StreamSet::single(9).contains(9));
    }

    #[test]
    fn settle_counts_loss_tail_dups_and_reordering() {
        // Two subscribers expecting streams 0 and 1 (fan-in to two wildcard subscribers).
        let set = StreamSet {
            first: 0,
            stride: 1,
            count: 2,
        };
        let mut a = SubTracker::new(set);
        let mut b = SubTracker::new(set);
        // Stream 0 sent 10; stream 1 sent 5.
        for s in 0..10 {
            a.record(0, s);
        }
        for s in [0, 2, 1, 3] {
            a.record(1, s); // one reordered, tail seq 4 never arrives
        }
        for s in [0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9] {
            b.record(0, s); // one duplicate
        }
        for s in [0, 1, 4] {
            b.record(1, s); // 2, 3 lost in a gap
        }
        b.record(77, 0); // unexpected stream
        let acc = settle(&[a, b], |s| if s == 0 { 10 } else { 5 });
        assert_eq!(acc.expected, 30);
        assert_eq!(acc.received, 10 + 4 + 10 + 3);
        assert_eq!(acc.lost, 1 + 2);
        assert_eq!(acc.duplicates, 1);
        assert_eq!(acc.out_of_order, 1);
        assert_eq!(acc.unexpected, 1);
        assert_eq!(acc.worst_streams[0], (1, 2, 0, 0));
    }

    #[test]
    fn is_received_follows_gaps() {
        let mut t = SeqTracker::default();
        for s in [0, 1, 4, 2, 7] {
            t.record(s);
        }
        let got: Vec<u64> = (0..9).filter(|&s| t.is_received(s)).collect();
        assert_eq!(got, vec![0, 1, 2, 4, 7]);
    }

    #[test]
    fn per_publisher_tally_counts_only_acknowledged_loss() {
        // Publisher 0 sent 10, all acknowledged; 3 and 4 never arrive, 9 (the tail) neither:
        // 3 acknowledged messages lost.
        // Publisher 1 sent 6; 4 and 5 were never acknowledged (in flight when the connection
        // died) and never arrived; 1 was acknowledged and is lost; 2 arrives twice.
        // Publisher 2 sent 4, rejected seq 0 with an error code (not acknowledged), and it did
        // arrive anyway; nothing lost.
        let set = StreamSet {
            first: 0,
            stride: 1,
            count: 3,
        };
        let mut a = SubTracker::new(set);
        for s in [0, 1, 2, 5, 6, 7, 8] {
            a.record(0, s);
        }
        for s in [0, 2, 2, 3] {
            a.record(1, s);
        }
        for s in [0, 1, 2, 3] {
            a.record(2, s);
        }
        let pubs = vec![
            PublisherSent {
                sent: vec![10],
                acked: 10,
                not_acked: vec![],
            },
            PublisherSent {
                sent: vec![6],
                acked: 4,
                not_acked: vec![(0, 4), (0, 5)],
            },
            PublisherSent {
                sent: vec![4],
                acked: 3,
                not_acked: vec![(0, 0)],
            },
        ];
        let t = tally_publishers(&[a.clone()], &pubs, 1, true);
        assert_eq!(
            (
                t[0].sent,
                t[0].acked,
                t[0].received,
                t[0].lost,
                t[0].lost_acked
            ),
            (10, 10, 7, 3, 3)
        );
        assert_eq!((t[1].received, t[1].lost, t[1].lost_acked), (3, 3, 1));
        assert_eq!(t[1].duplicates, 1);
        assert_eq!((t[2].lost, t[2].lost_acked), (0, 0));
        // Two subscribers (fan-in to two wildcard subscribers) double the expectation; the
        // second lost nothing.
        let mut b = SubTracker::new(set);
        for (stream, n) in [(0u32, 10u64), (1, 6), (2, 4)] {
            for s in 0..n {
                b.record(stream, s);
            }
        }
        let t = tally_publishers(&[a.clone(), b], &pubs, 1, true);
        assert_eq!((t[0].expected, t[0].received, t[0].lost_acked), (20, 17, 3));
        assert_eq!((t[1].expected, t[1].lost, t[1].lost_acked), (12, 3, 1));
        // QoS 0: no acknowledgements, so nothing is "acknowledged and lost".
        let t = tally_publishers(&[a], &pubs, 1, false);
        assert_eq!((t[0].lost, t[0].lost_acked), (3, 0));
    }

    #[test]
    fn gap_memory_is_bounded() {
        let mut t = SeqTracker::default();
        for i in 0..(MAX_GAP_RANGES as u64 + 10) {
            t.record(i * 2 + 1); // every even sequence missing
        }
        assert_eq!(t.gaps_forgotten, 10);
        assert!(t.gaps.len() <= MAX_GAP_RANGES);
    }
}
