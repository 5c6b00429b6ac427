//! Forwarding statistics per topic prefix (the first topic level), for the dashboard's
//! "forwarding statistics" and `/api/v1/stats/topics`: messages published, their payload
//! bytes, and deliveries, per shard.
//!
//! Bounded so a hostile client cannot grow it: at most [`PREFIXES_MAX`] distinct prefixes of
//! at most [`PREFIX_BYTES_MAX`] bytes per shard; anything else is counted under [`OTHER`].
//!
//! Data path: [`Prefixes::slot`] compares the topic's first level with the prefix hit last
//! (fan-in and steady streams repeat it: no hash), else one hash lookup; it allocates only for
//! a new prefix, at most [`PREFIXES_MAX`] times in the shard's life. Counting is a plain add.
//! Never: allocates per message, or is touched from another thread.

use std::collections::HashMap;

/// Distinct first levels counted on their own, per shard.
pub const PREFIXES_MAX: usize = 256;
/// Longer first levels are counted under [`OTHER`] (keeps the table's memory bounded).
pub const PREFIX_BYTES_MAX: usize = 64;
/// Where prefixes past the bounds are counted.
pub const OTHER: &str = "(other)";

/// One prefix's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefixRow {
    pub prefix: String,
    pub messages_in: u64,
    /// Payload bytes of those messages.
    pub bytes_in: u64,
    pub deliveries: u64,
}

pub struct Prefixes {
    index: HashMap<Box<str>, usize, ahash::RandomState>,
    /// `rows[0]` is [`OTHER`].
    rows: Vec<PrefixRow>,
    last: usize,
}

impl Default for Prefixes {
    fn default() -> Self {
        Prefixes {
            index: HashMap::default(),
            rows: vec![PrefixRow {
                prefix: OTHER.into(),
                ..PrefixRow::default()
            }],
            last: 0,
        }
    }
}

/// The first level of a topic.
fn first_level(topic: &str) -> &str {
    match memchr_slash(topic.as_bytes()) {
        Some(i) => &topic[..i],
        None => topic,
    }
}

#[inline]
fn memchr_slash(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'/')
}

impl Prefixes {
    /// The row `topic` counts in.
    #[inline]
    pub fn slot(&mut self, topic: &str) -> usize {
        let first = first_level(topic);
        if self.rows[self.last].prefix == first {
            return self.last;
        }
        let i = match self.index.get(first) {
            Some(&i) => i,
            None => self.insert(first),
        };
        self.last = i;
        i
    }

    #[cold]
    fn insert(&mut self, first: &str) -> usize {
        if first.len() > PREFIX_BYTES_MAX || self.rows.len() > PREFIXES_MAX || first == OTHER {
            return 0;
        }
        let i = self.rows.len();
        self.rows.push(PrefixRow {
            prefix: first.to_owned(),
            ..PrefixRow::default()
        });
        self.index.insert(first.into(), i);
        i
    }

    /// A message published on this shard.
    #[inline]
    pub fn count_in(&mut self, slot: usize, payload_bytes: usize) {
        if let Some(r) = self.rows.get_mut(slot) {
            r.messages_in += 1;
            r.bytes_in += payload_bytes as u64;
        }
    }

    #[inline]
    pub fn count_deliveries(&mut self, slot: usize, n: u64) {
        if let Some(r) = self.rows.get_mut(slot) {
            r.deliveries += n;
        }
    }

    /// The rows that counted something (for the control thread; allocates, off the data path).
    pub fn snapshot(&self) -> Vec<PrefixRow> {
        self.rows
            .iter()
            .filter(|r| r.messages_in + r.deliveries > 0)
            .cloned()
            .collect()
    }
}

/// Every shard's rows added up per prefix, busiest (most messages in, then deliveries) first.
pub fn merge(per_shard: &[Vec<PrefixRow>]) -> Vec<PrefixRow> {
    let mut by: HashMap<&str, PrefixRow> = HashMap::new();
    for rows in per_shard {
        for r in rows {
            let t = by.entry(&r.prefix).or_insert_with(|| PrefixRow {
                prefix: r.prefix.clone(),
                ..PrefixRow::default()
            });
            t.messages_in += r.messages_in;
            t.bytes_in += r.bytes_in;
            t.deliveries += r.deliveries;
        }
    }
    let mut out: Vec<PrefixRow> = by.into_values().collect();
    out.sort_by(|a, b| {
        (b.messages_in, b.deliveries, &a.prefix).cmp(&(a.messages_in, a.deliveries, &b.prefix))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_first_levels_and_bounded() {
        let mut p = Prefixes::default();
        let a = p.slot("sensors/1/temp");
        p.count_in(a, 10);
        let b = p.slot("sensors");
        assert_eq!(a, b, "a topic of one level is its own prefix");
        p.count_deliveries(b, 3);
        for i in 0..1000 {
            let s = p.slot(&format!("hostile{i}/x"));
            p.count_in(s, 1);
        }
        let long = "x".repeat(PREFIX_BYTES_MAX + 1);
        assert_eq!(p.slot(&long), 0, "a long first level counts under (other)");
        let rows = p.snapshot();
        assert_eq!(rows.len(), PREFIXES_MAX + 1, "256 prefixes and (other)");
        let other = rows.iter().find(|r| r.prefix == OTHER).expect("other");
        assert_eq!(other.messages_in, 1000 - (PREFIXES_MAX as u64 - 1));
        let s = rows
            .iter()
            .find(|r| r.prefix == "sensors")
            .expect("sensors");
        assert_eq!((s.messages_in, s.bytes_in, s.deliveries), (1, 10, 3));
    }

    #[test]
    fn merge_adds_shards_per_prefix() {
        let row = |p: &str, n| PrefixRow {
            prefix: p.into(),
            messages_in: n,
            bytes_in: n * 2,
            deliveries: n * 3,
        };
        let m = merge(&[vec![row("a", 1), row("b", 5)], vec![row("a", 10)]]);
        assert_eq!(m[0], row("a", 11));
        assert_eq!(m[1], row("b", 5));
    }
}
