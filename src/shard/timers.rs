//! One timer structure per shard for session expiry and delayed wills, instead of a sleeping
//! task per disconnected session (a CONNECT/DISCONNECT loop used to leave one task behind per
//! disconnect, each living as long as the session expiry).
//!
//! Owns: deadlines keyed by what they are for; at most one live deadline per key, so memory is
//! bounded by the sessions that can expire, not by how often clients reconnect.
//! Never: reads the clock (the caller passes `now`), sleeps, or runs the work itself; the shard's
//! control task asks for what is due on each tick.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;
use std::time::Instant;

/// Deadlines keyed by `K`. Arming a key again replaces its deadline; cancelled and replaced
/// entries stay in the heap until they surface or a compaction drops them.
#[derive(Debug)]
pub struct Timers<K: Copy + Eq + Hash + Ord> {
    heap: BinaryHeap<Reverse<(Instant, u64, K)>>,
    /// The live deadline (and its arming sequence number) of every key.
    live: HashMap<K, (Instant, u64)>,
    seq: u64,
}

impl<K: Copy + Eq + Hash + Ord> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            live: HashMap::new(),
            seq: 0,
        }
    }
}

impl<K: Copy + Eq + Hash + Ord> Timers<K> {
    /// Fire `key` at `at` (replacing any deadline it had).
    pub fn arm(&mut self, key: K, at: Instant) {
        self.seq += 1;
        self.live.insert(key, (at, self.seq));
        self.heap.push(Reverse((at, self.seq, key)));
        // Stale entries (cancelled or re-armed) never outnumber live ones by much.
        if self.heap.len() > 2 * self.live.len() + 64 {
            self.compact();
        }
    }

    pub fn cancel(&mut self, key: &K) {
        self.live.remove(key);
    }

    pub fn is_armed(&self, key: &K) -> bool {
        self.live.contains_key(key)
    }

    /// Keys whose deadline is at or before `now`, earliest first; each fires once.
    pub fn expired(&mut self, now: Instant) -> Vec<K> {
        let mut due = Vec::new();
        while let Some(Reverse((at, seq, key))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            if self.live.get(&key) == Some(&(at, seq)) {
                self.live.remove(&key);
                due.push(key);
            }
        }
        due
    }

    /// Live deadlines.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Heap entries, live or stale (bounded by about twice [`Timers::len`]).
    pub fn entries(&self) -> usize {
        self.heap.len()
    }

    fn compact(&mut self) {
        self.heap = self
            .live
            .iter()
            .map(|(&k, &(at, seq))| Reverse((at, seq, k)))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_due_keys_in_order_once() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.arm(3u64, t0 + Duration::from_secs(3));
        t.arm(1, t0 + Duration::from_secs(1));
        t.arm(2, t0 + Duration::from_secs(2));
        assert!(t.expired(t0).is_empty());
        assert_eq!(t.expired(t0 + Duration::from_secs(2)), vec![1, 2]);
        assert_eq!(t.expired(t0 + Duration::from_secs(10)), vec![3]);
        assert!(t.expired(t0 + Duration::from_secs(20)).is_empty());
        assert!(t.is_empty());
    }

    #[test]
    fn cancel_and_rearm_replace_the_deadline() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.arm(1u64, t0 + Duration::from_secs(1));
        t.arm(1, t0 + Duration::from_secs(5));
        t.arm(2, t0 + Duration::from_secs(1));
        t.cancel(&2);
        assert!(t.expired(t0 + Duration::from_secs(2)).is_empty());
        assert!(t.is_armed(&1));
        assert_eq!(t.expired(t0 + Duration::from_secs(5)), vec![1]);
    }

    #[test]
    fn a_reconnect_loop_keeps_memory_bounded() {
        // Every disconnect arms the session's expiry a day out, every reconnect cancels it.
        let t0 = Instant::now();
        let mut t = Timers::default();
        for round in 0..100_000u64 {
            t.arm(round % 10, t0 + Duration::from_secs(86_400));
            if round % 2 == 0 {
                t.cancel(&(round % 10));
            }
        }
        assert!(t.len() <= 10);
        assert!(t.entries() <= 2 * 10 + 65, "heap entries {}", t.entries());
    }
}
