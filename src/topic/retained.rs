//! The retained-message index: topic name → value `T` (the retained message), walked by a topic
//! filter when a subscription asks for the retained messages it matches.
//!
//! Same layout as the [`Automaton`](super::Automaton) (flat node `Vec`, interned levels, exact
//! edges in one map keyed by `(parent, level id)`), turned around: the stored keys are plain
//! names and the query holds the wildcards. A `+` or `#` in the query must visit every child of
//! a node, so each node also lists its children; a child knows its slot in that list, which makes
//! unlinking O(1) however wide the parent.

use smallvec::SmallVec;

use super::interner::{edge_key, FastMap, Interner, LevelId};

type NodeId = u32;

const ROOT: NodeId = 0;

/// Stack depth marking "inside a `#`": every node reached is reported, whatever its depth.
const BELOW_HASH: usize = usize::MAX;

#[derive(Debug)]
struct Node<T> {
    /// The full topic (so that a match can report it) and its retained value.
    entry: Option<(Box<str>, T)>,
    parent: NodeId,
    level: LevelId,
    /// Children in no particular order, for wildcard walks.
    kids: Vec<NodeId>,
    /// This node's index in its parent's `kids`.
    slot: u32,
    /// The level starts with `$`: such a first level is hidden from root wildcards
    /// [MQTT-4.7.2-1].
    dollar: bool,
}

/// Retained messages by topic name.
///
/// Names handed to [`set`](Self::set) must be valid
/// ([`is_valid_topic_name`](crate::codec::topic::is_valid_topic_name)): without wildcards.
#[derive(Debug)]
pub struct RetainedIndex<T> {
    nodes: Vec<Node<T>>,
    free: Vec<NodeId>,
    children: FastMap<u64, NodeId>,
    levels: Interner,
    len: usize,
}

impl<T> Default for RetainedIndex<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> RetainedIndex<T> {
    pub fn new() -> Self {
        let root = Node {
            entry: None,
            parent: ROOT,
            level: LevelId::MAX,
            kids: Vec::new(),
            slot: 0,
            dollar: false,
        };
        RetainedIndex {
            nodes: vec![root],
            free: Vec::new(),
            children: FastMap::default(),
            levels: Interner::default(),
            len: 0,
        }
    }

    /// Every retained topic and its value, in no particular order, `$` topics included (the
    /// admin API's listing and the store's compaction snapshot; never per message).
    pub fn for_each<'a>(&'a self, mut f: impl FnMut(&'a str, &'a T)) {
        for n in &self.nodes {
            if let Some((topic, v)) = &n.entry {
                f(topic, v);
            }
        }
    }

    /// Number of retained topics.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Live nodes, the root included (diagnostics and memory accounting).
    pub fn node_count(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    /// Distinct level strings currently interned (diagnostics and memory accounting).
    pub fn level_count(&self) -> usize {
        self.levels.len()
    }

    /// Store `value` under `topic`, returning the value it replaces.
    pub fn set(&mut self, topic: &str, value: T) -> Option<T> {
        debug_assert!(
            crate::codec::topic::is_valid_topic_name(topic),
            "invalid topic name {topic:?}"
        );
        let mut n = ROOT;
        for level in topic.split('/') {
            n = self.child_or_insert(n, level);
        }
        match &mut self.nodes[n as usize].entry {
            Some((_, old)) => Some(std::mem::replace(old, value)),
            slot @ None => {
                *slot = Some((topic.into(), value));
                self.len += 1;
                None
            }
        }
    }

    pub fn get(&self, topic: &str) -> Option<&T> {
        let n = self.find(topic)?;
        self.nodes[n as usize].entry.as_ref().map(|(_, v)| v)
    }

    /// Remove the value of `topic`, pruning the nodes and levels that only it used.
    pub fn remove(&mut self, topic: &str) -> Option<T> {
        let mut path: SmallVec<[NodeId; 16]> = SmallVec::new();
        let mut n = ROOT;
        for level in topic.split('/') {
            n = self.child(n, level)?;
            path.push(n);
        }
        let (_, value) = self.nodes[n as usize].entry.take()?;
        self.len -= 1;
        for (&n, level) in path.iter().rev().zip(topic.rsplit('/')) {
            let node = &self.nodes[n as usize];
            if node.entry.is_some() || !node.kids.is_empty() {
                break;
            }
            self.unlink(n, level);
        }
        Some(value)
    }

    /// Call `f(topic, value)` once for every retained topic matching `filter` (in no particular
    /// order). Same rules as [`Automaton::for_each_match`](super::Automaton::for_each_match):
    /// `+` one level, `#` the parent level and everything below, and a filter starting with a
    /// wildcard does not return topics starting with `$` [MQTT-4.7.2-1].
    ///
    /// Runs on SUBSCRIBE (control plane): its stack may spill to the heap for wide subtrees.
    pub fn for_each_match<'a>(&'a self, filter: &str, mut f: impl FnMut(&'a str, &'a T)) {
        let mut report = |n: NodeId| {
            if let Some((topic, v)) = &self.nodes[n as usize].entry {
                f(topic, v);
            }
        };
        let levels: SmallVec<[&str; 16]> = filter.split('/').collect();
        // Depth-first; entries are (node, filter levels consumed) or (node, BELOW_HASH).
        let mut stack: SmallVec<[(NodeId, usize); 16]> = SmallVec::new();
        stack.push((ROOT, 0));
        while let Some((n, depth)) = stack.pop() {
            let node = &self.nodes[n as usize];
            if depth == BELOW_HASH {
                report(n);
                stack.extend(node.kids.iter().map(|&c| (c, BELOW_HASH)));
                continue;
            }
            let Some(&level) = levels.get(depth) else {
                report(n);
                continue;
            };
            // At the root a wildcard skips `$` levels.
            let visible = |c: &&NodeId| depth > 0 || !self.nodes[**c as usize].dollar;
            match level {
                "#" => {
                    // The parent level (`a/#` matches `a`), then the whole subtree.
                    report(n);
                    let kids = node.kids.iter().filter(visible);
                    stack.extend(kids.map(|&c| (c, BELOW_HASH)));
                }
                "+" => {
                    let kids = node.kids.iter().filter(visible);
                    stack.extend(kids.map(|&c| (c, depth + 1)));
                }
                _ => {
                    if let Some(c) = self.exact_child(n, level) {
                        stack.push((c, depth + 1));
                    }
                }
            }
        }
    }

    fn exact_child(&self, n: NodeId, level: &str) -> Option<NodeId> {
        let id = self.levels.get(level)?;
        self.children.get(&edge_key(n, id)).copied()
    }

    /// Names hold no wildcard, so every level is an exact edge.
    fn child(&self, n: NodeId, level: &str) -> Option<NodeId> {
        self.exact_child(n, level)
    }

    fn find(&self, topic: &str) -> Option<NodeId> {
        topic
            .split('/')
            .try_fold(ROOT, |n, level| self.child(n, level))
    }

    fn child_or_insert(&mut self, n: NodeId, level: &str) -> NodeId {
        if let Some(c) = self.child(n, level) {
            return c;
        }
        let id = self.levels.acquire(level);
        let slot = u32::try_from(self.nodes[n as usize].kids.len()).expect("2^32 children");
        let node = Node {
            entry: None,
            parent: n,
            level: id,
            kids: Vec::new(),
            slot,
            dollar: level.starts_with('$'),
        };
        let c = match self.free.pop() {
            Some(c) => {
                self.nodes[c as usize] = node;
                c
            }
            None => {
                let c = NodeId::try_from(self.nodes.len()).expect("more than 2^32 topic nodes");
                self.nodes.push(node);
                c
            }
        };
        self.nodes[n as usize].kids.push(c);
        let previous = self.children.insert(edge_key(n, id), c);
        debug_assert!(previous.is_none());
        c
    }

    /// Detach empty leaf `n`, reached from its parent by `level`, and free it.
    fn unlink(&mut self, n: NodeId, level: &str) {
        let node = &mut self.nodes[n as usize];
        debug_assert!(n != ROOT && node.entry.is_none() && node.kids.is_empty());
        let (parent, id, slot) = (node.parent, node.level, node.slot);
        // Release the (empty) list's buffer: a recycled slot starts from nothing.
        node.kids = Vec::new();
        let kids = &mut self.nodes[parent as usize].kids;
        debug_assert_eq!(kids[slot as usize], n);
        kids.swap_remove(slot as usize);
        if let Some(&moved) = kids.get(slot as usize) {
            self.nodes[moved as usize].slot = slot;
        }
        let removed = self.children.remove(&edge_key(parent, id));
        debug_assert_eq!(removed, Some(n));
        self.levels.release(id, level);
        self.free.push(n);
    }
}

#[cfg(test)]
mod tests {
    use super::super::naive_match as oracle;
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Topics matching `filter`, sorted, checked against the values (each topic's value is the
    /// topic itself).
    fn matches(r: &RetainedIndex<String>, filter: &str) -> Vec<String> {
        let mut out = Vec::new();
        r.for_each_match(filter, |t, v| {
            assert_eq!(t, v);
            out.push(t.to_string());
        });
        out.sort();
        out
    }

    fn build(topics: &[&str]) -> RetainedIndex<String> {
        let mut r = RetainedIndex::new();
        for t in topics {
            r.set(t, t.to_string());
        }
        r
    }

    fn check(topics: &[&str], filter: &str, want: &[&str]) {
        let r = build(topics);
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(matches(&r, filter), want, "filter {filter:?}");
        for t in topics {
            assert_eq!(
                oracle(filter, t),
                want.contains(&t.to_string()),
                "{filter:?} {t:?}"
            );
        }
    }

    const TOPICS: &[&str] = &[
        "a", "a/b", "a/b/c", "a/", "/a", "/", "a//c", "b", "$SYS/x", "$SYS", "x/$y",
    ];

    #[test]
    fn exact() {
        check(TOPICS, "a/b", &["a/b"]);
        check(TOPICS, "a/", &["a/"]);
        check(TOPICS, "a/b/c/d", &[]);
        check(TOPICS, "$SYS", &["$SYS"]);
    }

    #[test]
    fn plus() {
        check(TOPICS, "a/+", &["a/b", "a/"]);
        check(TOPICS, "+", &["a", "b"]);
        check(TOPICS, "+/+", &["a/b", "a/", "/a", "/", "x/$y"]);
        check(TOPICS, "a/+/c", &["a/b/c", "a//c"]);
        check(TOPICS, "/+", &["/a", "/"]);
        check(TOPICS, "$SYS/+", &["$SYS/x"]);
    }

    #[test]
    fn hash() {
        check(TOPICS, "a/#", &["a", "a/b", "a/b/c", "a/", "a//c"]);
        check(TOPICS, "a/b/#", &["a/b", "a/b/c"]);
        check(TOPICS, "/#", &["/a", "/"]);
        check(TOPICS, "$SYS/#", &["$SYS/x", "$SYS"]);
        check(
            TOPICS,
            "+/#",
            &TOPICS[..8]
                .iter()
                .chain(&["x/$y"])
                .copied()
                .collect::<Vec<_>>(),
        );
        check(
            TOPICS,
            "#",
            &TOPICS[..8]
                .iter()
                .chain(&["x/$y"])
                .copied()
                .collect::<Vec<_>>(),
        );
        check(TOPICS, "nothing/#", &[]);
    }

    #[test]
    fn set_replace_get_remove_prune() {
        let mut r: RetainedIndex<u32> = RetainedIndex::new();
        assert_eq!(r.set("a/b/c", 1), None);
        assert_eq!(r.set("a/b/c", 2), Some(1));
        assert_eq!(r.set("a/x", 3), None);
        assert_eq!(r.set("a", 4), None);
        assert_eq!((r.len(), r.node_count(), r.level_count()), (3, 5, 4));
        assert_eq!(r.get("a/b/c"), Some(&2));
        assert_eq!(r.get("a/b"), None);
        assert_eq!(r.remove("a/b"), None);
        assert_eq!(r.remove("a/b/c"), Some(2));
        // `a/b` went with it; `a` holds a value and a child.
        assert_eq!((r.len(), r.node_count(), r.level_count()), (2, 3, 2));
        assert_eq!(r.remove("a"), Some(4));
        assert_eq!(r.node_count(), 3);
        assert_eq!(r.remove("a/x"), Some(3));
        assert_eq!((r.len(), r.node_count(), r.level_count()), (0, 1, 0));
        assert!(r.is_empty() && r.children.is_empty());
    }

    #[test]
    fn wide_parent_unlinks_in_any_order() {
        let topics: Vec<String> = (0..100).map(|i| format!("w/{i}")).collect();
        let mut r = RetainedIndex::new();
        for t in &topics {
            r.set(t, t.clone());
        }
        // Remove from the middle so that swap_remove moves siblings around.
        for t in topics.iter().skip(1).step_by(2) {
            assert!(r.remove(t).is_some());
        }
        let want: Vec<String> = {
            let mut w: Vec<String> = topics.iter().step_by(2).cloned().collect();
            w.sort();
            w
        };
        assert_eq!(matches(&r, "w/+"), want);
        for t in topics.iter().step_by(2) {
            assert!(r.remove(t).is_some());
        }
        assert_eq!((r.len(), r.node_count(), r.level_count()), (0, 1, 0));
    }

    // ---- property tests against the oracle ----

    fn topic_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(&["a", "b", "", "$s"][..]), 1..5)
            .prop_filter_map("empty topic", |l| {
                Some(l.join("/")).filter(|t| !t.is_empty())
            })
    }

    fn filter_strategy() -> impl Strategy<Value = String> {
        let level = prop::sample::select(&["a", "b", "", "$s", "+", "+"][..]);
        (prop::collection::vec(level, 0..4), any::<bool>()).prop_filter_map(
            "empty filter",
            |(mut l, hash)| {
                if hash {
                    l.push("#");
                }
                Some(l.join("/")).filter(|f| !f.is_empty())
            },
        )
    }

    proptest! {
        #[test]
        fn matches_like_oracle(
            ops in prop::collection::vec((any::<bool>(), topic_strategy()), 0..60),
            filters in prop::collection::vec(filter_strategy(), 1..20),
        ) {
            let mut r: RetainedIndex<String> = RetainedIndex::new();
            let mut model: BTreeMap<String, ()> = BTreeMap::new();
            for (set, t) in &ops {
                if *set {
                    let replaced = r.set(t, t.clone()).is_some();
                    prop_assert_eq!(replaced, model.insert(t.clone(), ()).is_some());
                } else {
                    prop_assert_eq!(r.remove(t).is_some(), model.remove(t).is_some());
                }
            }
            prop_assert_eq!(r.len(), model.len());
            for f in &filters {
                let want: Vec<String> = model.keys().filter(|t| oracle(f, t)).cloned().collect();
                prop_assert_eq!(matches(&r, f), want, "filter {:?}", f);
            }
            for t in model.keys() {
                prop_assert_eq!(r.get(t), Some(t));
                prop_assert!(r.remove(t).is_some());
            }
            prop_assert_eq!((r.len(), r.node_count(), r.level_count()), (0, 1, 0));
        }
    }
}
