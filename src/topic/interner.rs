//! Level interner shared by the topic trees: each distinct level string gets a small integer id,
//! so that a tree edge is keyed by `(node, level id)` and a topic level is hashed once per match
//! rather than once per node visited.
//!
//! Ids are reference counted by the tree nodes that carry them and recycled when the count drops
//! to zero, so memory follows the live set of levels under subscribe/unsubscribe churn. The
//! reverse mapping (id → string) is deliberately not kept: a caller releasing an id always holds
//! the string it came from (the filter or topic being removed), which saves a second copy of
//! every level.

use std::collections::HashMap;

use ahash::RandomState;

/// Interned id of one topic level.
pub(crate) type LevelId = u32;

/// Key of an exact edge in a tree's global child map: the parent node and the level id, packed
/// into one word so that the lookup hashes a single `u64`.
#[inline]
pub(crate) fn edge_key(parent: u32, level: LevelId) -> u64 {
    (u64::from(parent) << 32) | u64::from(level)
}

/// `HashMap` with `ahash`: fast on short keys, and randomly keyed per process, which matters
/// because level strings come from clients (a fixed-key hash would invite collision floods).
pub(crate) type FastMap<K, V> = HashMap<K, V, RandomState>;

#[derive(Debug, Default)]
pub(crate) struct Interner {
    ids: FastMap<Box<str>, LevelId>,
    /// Reference count per id; 0 marks a free id (also listed in `free`).
    refs: Vec<u32>,
    free: Vec<LevelId>,
}

impl Interner {
    /// The id of `level`, if any live node uses it. A miss means no exact edge can match.
    #[inline]
    pub(crate) fn get(&self, level: &str) -> Option<LevelId> {
        self.ids.get(level).copied()
    }

    /// Take one reference on `level`, interning it if new.
    pub(crate) fn acquire(&mut self, level: &str) -> LevelId {
        if let Some(&id) = self.ids.get(level) {
            self.refs[id as usize] += 1;
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                debug_assert_eq!(self.refs[id as usize], 0);
                self.refs[id as usize] = 1;
                id
            }
            None => {
                let id = LevelId::try_from(self.refs.len()).expect("more than 2^32 topic levels");
                self.refs.push(1);
                id
            }
        };
        self.ids.insert(level.into(), id);
        id
    }

    /// Drop one reference on `id`, which must be the id of `level`; the level is forgotten when
    /// no reference is left.
    pub(crate) fn release(&mut self, id: LevelId, level: &str) {
        debug_assert_eq!(
            self.get(level),
            Some(id),
            "released level {level:?} under a wrong id"
        );
        let refs = &mut self.refs[id as usize];
        debug_assert!(
            *refs > 0,
            "level {level:?} released more often than acquired"
        );
        *refs -= 1;
        if *refs == 0 {
            self.ids.remove(level);
            self.free.push(id);
        }
    }

    /// Number of distinct levels currently interned.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refcounts_and_recycling() {
        let mut i = Interner::default();
        let a = i.acquire("a");
        assert_eq!(i.acquire("a"), a);
        let b = i.acquire("b");
        assert_ne!(a, b);
        assert_eq!(i.len(), 2);
        i.release(a, "a");
        assert_eq!(i.get("a"), Some(a));
        i.release(a, "a");
        assert_eq!(i.get("a"), None);
        assert_eq!(i.len(), 1);
        // The freed id is reused for the next new level.
        assert_eq!(i.acquire("c"), a);
        i.release(b, "b");
        i.release(a, "c");
        assert_eq!(i.len(), 0);
    }
}
