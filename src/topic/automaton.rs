//! The per-shard subscription automaton: topic filters → a value `T`, matched by topic name.
//!
//! Layout ("compiled" trie): nodes live in one flat `Vec` and are named by `u32` index; level
//! strings are interned to ids; exact edges sit in a single hash map keyed by
//! `(parent node, level id)`, while the `+` and `#` edges are direct slots on the node. Matching
//! a topic therefore costs one interner probe per topic level plus one edge probe per live
//! branch: it grows with topic depth and with the number of matching filters, not with the
//! number of subscriptions. A topic level unknown to the interner cannot follow any exact edge,
//! so it is skipped without touching the edge map.
//!
//! Mutation (control plane) keeps the structure tight: removing a filter prunes the nodes that
//! no longer lead to a value and releases their interned levels; freed node slots are recycled.

use smallvec::SmallVec;

use super::interner::{edge_key, FastMap, Interner, LevelId};

type NodeId = u32;

const ROOT: NodeId = 0;

/// Stands for a topic level that is not interned, hence matches no exact edge.
const UNKNOWN_LEVEL: LevelId = LevelId::MAX;

/// How a node hangs from its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edge {
    Root,
    Exact(LevelId),
    Plus,
    Hash,
}

#[derive(Debug)]
struct Node<T> {
    value: Option<T>,
    parent: NodeId,
    edge: Edge,
    plus: Option<NodeId>,
    hash: Option<NodeId>,
    /// Number of exact children (they live in the automaton's edge map), so that pruning can
    /// tell a leaf without scanning the map.
    exact_children: u32,
}

impl<T> Node<T> {
    fn new(parent: NodeId, edge: Edge) -> Self {
        Node {
            value: None,
            parent,
            edge,
            plus: None,
            hash: None,
            exact_children: 0,
        }
    }

    /// A node that holds no value and leads nowhere serves no filter.
    fn is_dead(&self) -> bool {
        self.value.is_none()
            && self.plus.is_none()
            && self.hash.is_none()
            && self.exact_children == 0
    }
}

/// Topic filters mapped to a value `T` (on a shard: its local subscribers and the set of
/// interested remote shards), matched by topic name.
///
/// Filters handed to [`entry`](Self::entry) must be valid
/// ([`is_valid_topic_filter`](crate::codec::topic::is_valid_topic_filter)); the automaton does
/// not re-validate on the data path. An invalid filter is still handled without panic in release
/// builds (a level such as `a+` is then a plain literal), but never matches as intended.
#[derive(Debug)]
pub struct Automaton<T> {
    nodes: Vec<Node<T>>,
    /// Slots of pruned nodes, reused before the `Vec` grows.
    free: Vec<NodeId>,
    /// Exact edges: `edge_key(parent, level)` → child.
    children: FastMap<u64, NodeId>,
    levels: Interner,
    /// Number of nodes holding a value.
    len: usize,
}

impl<T> Default for Automaton<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Automaton<T> {
    pub fn new() -> Self {
        Automaton {
            nodes: vec![Node::new(ROOT, Edge::Root)],
            free: Vec::new(),
            children: FastMap::default(),
            levels: Interner::default(),
            len: 0,
        }
    }

    /// Number of filters holding a value.
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

    /// The value of `filter`, created with `T::default()` if the filter has none yet.
    pub fn entry(&mut self, filter: &str) -> &mut T
    where
        T: Default,
    {
        debug_assert!(
            crate::codec::topic::is_valid_topic_filter(filter),
            "invalid topic filter {filter:?}"
        );
        let mut n = ROOT;
        for level in filter.split('/') {
            n = self.child_or_insert(n, level);
        }
        let slot = &mut self.nodes[n as usize].value;
        if slot.is_none() {
            self.len += 1;
        }
        slot.get_or_insert_with(T::default)
    }

    pub fn get(&self, filter: &str) -> Option<&T> {
        let n = self.find(filter)?;
        self.nodes[n as usize].value.as_ref()
    }

    pub fn get_mut(&mut self, filter: &str) -> Option<&mut T> {
        let n = self.find(filter)?;
        self.nodes[n as usize].value.as_mut()
    }

    /// Remove the value of `filter`, pruning the nodes and levels that only it used.
    pub fn remove(&mut self, filter: &str) -> Option<T> {
        // Nodes along the filter, root excluded; inline up to 16 levels (control plane anyway).
        let mut path: SmallVec<[NodeId; 16]> = SmallVec::new();
        let mut n = ROOT;
        for level in filter.split('/') {
            n = self.child(n, level)?;
            path.push(n);
        }
        let value = self.nodes[n as usize].value.take()?;
        self.len -= 1;
        // Walk back up, the filter's levels in reverse matching the path in reverse.
        for (&n, level) in path.iter().rev().zip(filter.rsplit('/')) {
            if !self.nodes[n as usize].is_dead() {
                break;
            }
            self.unlink(n, level);
        }
        Some(value)
    }

    /// Call `f` once for the value of every filter matching `topic` (in no particular order).
    ///
    /// Rules [MQTT-4.7]: `+` matches exactly one level, possibly empty; `#` matches its parent
    /// level and any number of levels below (`a/#` matches `a`); a topic whose first level
    /// starts with `$` is not matched by a filter starting with a wildcard [MQTT-4.7.2-1].
    ///
    /// Does not allocate unless the walk goes deeper than 16 levels (the inline capacity of
    /// its stacks).
    pub fn for_each_match<'a>(&'a self, topic: &str, mut f: impl FnMut(&'a T)) {
        let dollar = topic.starts_with('$');
        let mut levels = TopicLevels::new(topic);
        // Depth-first walk. Each pop pushes at most two entries (the exact and the `+` child, one
        // level deeper), so the stack never holds more than depth + 1 entries.
        let mut stack: SmallVec<[(NodeId, usize); 16]> = SmallVec::new();
        stack.push((ROOT, 0));
        while let Some((n, depth)) = stack.pop() {
            let node = &self.nodes[n as usize];
            // Wildcards at the root are hidden from `$` topics.
            let wildcards = depth > 0 || !dollar;
            if let (Some(h), true) = (node.hash, wildcards) {
                // `#` covers this level (the parent) and everything below it.
                if let Some(v) = &self.nodes[h as usize].value {
                    f(v);
                }
            }
            let Some(level) = levels.get(depth, &self.levels) else {
                // Topic exhausted: this node's own filter matches exactly.
                if let Some(v) = &node.value {
                    f(v);
                }
                continue;
            };
            if let (Some(p), true) = (node.plus, wildcards) {
                stack.push((p, depth + 1));
            }
            if level != UNKNOWN_LEVEL {
                if let Some(&c) = self.children.get(&edge_key(n, level)) {
                    stack.push((c, depth + 1));
                }
            }
        }
    }

    /// The child of `n` along filter level `level`, if any.
    fn child(&self, n: NodeId, level: &str) -> Option<NodeId> {
        let node = &self.nodes[n as usize];
        match level {
            "+" => node.plus,
            "#" => node.hash,
            _ => {
                let id = self.levels.get(level)?;
                self.children.get(&edge_key(n, id)).copied()
            }
        }
    }

    fn find(&self, filter: &str) -> Option<NodeId> {
        filter
            .split('/')
            .try_fold(ROOT, |n, level| self.child(n, level))
    }

    fn child_or_insert(&mut self, n: NodeId, level: &str) -> NodeId {
        if let Some(c) = self.child(n, level) {
            return c;
        }
        let edge = match level {
            "+" => Edge::Plus,
            "#" => Edge::Hash,
            _ => Edge::Exact(self.levels.acquire(level)),
        };
        let c = self.alloc(Node::new(n, edge));
        let parent = &mut self.nodes[n as usize];
        match edge {
            Edge::Plus => parent.plus = Some(c),
            Edge::Hash => parent.hash = Some(c),
            Edge::Exact(id) => {
                parent.exact_children += 1;
                let previous = self.children.insert(edge_key(n, id), c);
                debug_assert!(previous.is_none());
            }
            Edge::Root => unreachable!("a child is never the root"),
        }
        c
    }

    fn alloc(&mut self, node: Node<T>) -> NodeId {
        match self.free.pop() {
            Some(n) => {
                self.nodes[n as usize] = node;
                n
            }
            None => {
                let n = NodeId::try_from(self.nodes.len()).expect("more than 2^32 topic nodes");
                self.nodes.push(node);
                n
            }
        }
    }

    /// Detach dead node `n`, reached from its parent by filter level `level`, and free it.
    fn unlink(&mut self, n: NodeId, level: &str) {
        let node = &self.nodes[n as usize];
        debug_assert!(node.is_dead() && n != ROOT);
        let (parent, edge) = (node.parent, node.edge);
        let p = &mut self.nodes[parent as usize];
        match edge {
            Edge::Plus => p.plus = None,
            Edge::Hash => p.hash = None,
            Edge::Exact(id) => {
                p.exact_children -= 1;
                let removed = self.children.remove(&edge_key(parent, id));
                debug_assert_eq!(removed, Some(n));
                self.levels.release(id, level);
            }
            Edge::Root => unreachable!("the root is never unlinked"),
        }
        self.free.push(n);
    }
}

/// The levels of a topic, resolved to interned ids lazily and at most once each, so that the
/// `+` branches of a match reuse the ids resolved by its exact branches.
struct TopicLevels<'t> {
    /// What is left of the topic after the levels resolved so far; `None` once past the last.
    /// (A byte scan for `/`: markedly cheaper than `str::split` on short levels.)
    rest: Option<&'t str>,
    ids: SmallVec<[LevelId; 16]>,
}

impl<'t> TopicLevels<'t> {
    fn new(topic: &'t str) -> Self {
        TopicLevels {
            rest: Some(topic),
            ids: SmallVec::new(),
        }
    }

    /// Id of level `depth` (`UNKNOWN_LEVEL` if not interned), or `None` past the last level.
    /// The walk reaches depth `d + 1` only through a node at depth `d`, so `depth` is at most
    /// one past the levels resolved so far.
    #[inline]
    fn get(&mut self, depth: usize, interner: &Interner) -> Option<LevelId> {
        if let Some(&id) = self.ids.get(depth) {
            return Some(id);
        }
        debug_assert_eq!(depth, self.ids.len());
        let rest = self.rest?;
        let level = match rest.bytes().position(|b| b == b'/') {
            Some(i) => {
                // `/` is ASCII, so both `i` and `i + 1` are char boundaries.
                self.rest = rest.get(i + 1..);
                rest.get(..i).unwrap_or_default()
            }
            None => {
                self.rest = None;
                rest
            }
        };
        let id = interner.get(level).unwrap_or(UNKNOWN_LEVEL);
        self.ids.push(id);
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::super::naive_match as oracle;
    use super::*;
    use proptest::prelude::*;
    use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
    use std::collections::BTreeSet;

    /// Filters matching `topic`, sorted; the automaton's values are the filters themselves.
    fn matches(a: &Automaton<String>, topic: &str) -> Vec<String> {
        let mut out = Vec::new();
        a.for_each_match(topic, |f| out.push(f.clone()));
        out.sort();
        out
    }

    fn build(filters: &[&str]) -> Automaton<String> {
        let mut a = Automaton::new();
        for f in filters {
            *a.entry(f) = f.to_string();
        }
        a
    }

    fn check(filters: &[&str], topic: &str, want: &[&str]) {
        let a = build(filters);
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(matches(&a, topic), want, "topic {topic:?}");
        for f in filters {
            assert_eq!(
                oracle(f, topic),
                want.contains(&f.to_string()),
                "oracle {f:?} {topic:?}"
            );
        }
    }

    #[test]
    fn exact_levels() {
        let fs = ["a/b", "a", "a/b/c", "b"];
        check(&fs, "a/b", &["a/b"]);
        check(&fs, "a", &["a"]);
        check(&fs, "a/b/c/d", &[]);
        check(&fs, "c", &[]);
    }

    #[test]
    fn plus_matches_one_level_even_empty() {
        let fs = ["a/+", "+/b", "+", "a/+/c", "+/+"];
        check(&fs, "a/x", &["a/+", "+/+"]);
        check(&fs, "a/", &["a/+", "+/+"]);
        check(&fs, "a", &["+"]);
        check(&fs, "", &["+"]);
        check(&fs, "a//c", &["a/+/c"]);
        check(&fs, "/b", &["+/b", "+/+"]);
        check(&fs, "a/b", &["a/+", "+/b", "+/+"]);
    }

    #[test]
    fn hash_matches_parent_and_below() {
        let fs = ["a/#", "#", "a/b/#", "+/#"];
        check(&fs, "a", &["a/#", "#", "+/#"]);
        check(&fs, "a/b", &["a/#", "#", "a/b/#", "+/#"]);
        check(&fs, "a/b/c/d", &["a/#", "#", "a/b/#", "+/#"]);
        check(&fs, "x", &["#", "+/#"]);
        check(&fs, "/", &["#", "+/#"]);
    }

    #[test]
    fn dollar_topics_hide_root_wildcards() {
        let fs = [
            "#",
            "+/monitor",
            "$SYS/#",
            "$SYS/+",
            "+",
            "$SYS/monitor/+",
            "+/#",
        ];
        check(&fs, "$SYS/monitor", &["$SYS/#", "$SYS/+"]);
        check(&fs, "$SYS", &["$SYS/#"]);
        check(&fs, "$SYS/monitor/x", &["$SYS/#", "$SYS/monitor/+"]);
        check(&fs, "$", &[]);
        // `$` only matters as the first character of the topic.
        check(&fs, "a/$SYS", &["#", "+/#"]);
        check(&fs, "x/monitor", &["#", "+/monitor", "+/#"]);
    }

    #[test]
    fn slash_edge_cases() {
        let fs = ["/", "/a", "a/", "a//b", "//", "+/+", "/+", "+//+"];
        check(&fs, "/", &["/", "+/+", "/+"]);
        check(&fs, "/a", &["/a", "+/+", "/+"]);
        check(&fs, "a/", &["a/", "+/+"]);
        check(&fs, "a//b", &["a//b", "+//+"]);
        check(&fs, "//", &["//", "+//+"]);
        check(&fs, "a", &[]);
    }

    #[test]
    fn each_filter_reported_once() {
        let a = build(&["a/+/c", "a/b/c", "+/b/+", "#", "a/#", "a/b/#", "+/+/+"]);
        assert_eq!(matches(&a, "a/b/c").len(), 7);
    }

    #[test]
    fn entry_get_remove() {
        let mut a: Automaton<u32> = Automaton::new();
        assert!(a.is_empty());
        *a.entry("a/b") += 1;
        *a.entry("a/b") += 1;
        *a.entry("a/+") += 5;
        assert_eq!(a.len(), 2);
        assert_eq!(a.get("a/b"), Some(&2));
        assert_eq!(a.get("a"), None, "an inner node holds no value");
        assert_eq!(a.get("a/c"), None);
        *a.get_mut("a/+").unwrap() = 7;
        assert_eq!(a.remove("a/+"), Some(7));
        assert_eq!(a.remove("a/+"), None);
        assert_eq!(a.remove("a"), None);
        assert_eq!(a.remove("x/y"), None);
        assert_eq!(a.len(), 1);
        assert_eq!(a.remove("a/b"), Some(2));
        assert!(a.is_empty());
        assert_eq!((a.node_count(), a.level_count()), (1, 0));
    }

    #[test]
    fn remove_prunes_only_dead_nodes() {
        let mut a = build(&["a/b/c", "a", "a/+/#", "x/y"]);
        assert_eq!(a.node_count(), 1 + 3 + 2 + 2);
        a.remove("a/b/c");
        // `a/b` led only to `a/b/c`; `a` still holds a value and a `+` child.
        assert_eq!(a.node_count(), 1 + 1 + 2 + 2);
        assert_eq!(a.get("a").map(String::as_str), Some("a"));
        assert_eq!(matches(&a, "a/q/r"), ["a/+/#"]);
        a.remove("a/+/#");
        assert_eq!(a.node_count(), 1 + 1 + 2);
        a.remove("a");
        assert_eq!(a.node_count(), 1 + 2);
        assert_eq!(a.level_count(), 2);
        assert_eq!(matches(&a, "x/y"), ["x/y"]);
        a.remove("x/y");
        assert_eq!((a.node_count(), a.level_count(), a.len()), (1, 0, 0));
        // Recycled slots and ids work as new ones.
        let a2 = {
            for f in ["b/#", "x/y"] {
                *a.entry(f) = f.to_string();
            }
            a
        };
        assert_eq!(matches(&a2, "b"), ["b/#"]);
        assert_eq!(matches(&a2, "x/y"), ["x/y"]);
    }

    #[test]
    fn shared_levels_survive_partial_removal() {
        // The level `b` is used by two nodes; removing one filter must keep the other working.
        let mut a = build(&["a/b", "b"]);
        assert_eq!(a.level_count(), 2);
        a.remove("a/b");
        assert_eq!(a.level_count(), 1);
        assert_eq!(matches(&a, "b"), ["b"]);
    }

    #[test]
    fn deep_topics_beyond_inline_capacity() {
        let deep: Vec<String> = (0..40).map(|i| format!("l{i}")).collect();
        let topic = deep.join("/");
        let f_plus = {
            let mut d = deep.clone();
            d[30] = "+".into();
            d.join("/")
        };
        let f_hash = format!("{}/#", deep[..20].join("/"));
        let a = build(&[&topic, &f_plus, &f_hash, "#"]);
        let mut want = vec![topic.clone(), f_plus, f_hash, "#".to_string()];
        want.sort();
        assert_eq!(matches(&a, &topic), want);
    }

    #[test]
    fn churn_returns_to_empty() {
        let mut rng = StdRng::seed_from_u64(7);
        let words = ["site", "dev", "temp", "", "$SYS", "x", "y", "z"];
        let mut filters: Vec<String> = (0..10_000)
            .map(|i| {
                let depth = rng.gen_range(1..=6);
                let mut levels: Vec<String> = (0..depth)
                    .map(|_| match rng.gen_range(0..10) {
                        0 => "+".to_string(),
                        1..=3 => format!("{}", rng.gen_range(0..1000)),
                        _ => words[rng.gen_range(0..words.len())].to_string(),
                    })
                    .collect();
                levels.push(format!("u{i}"));
                if rng.gen_bool(0.1) {
                    levels.push("#".into());
                }
                levels.join("/")
            })
            .collect();
        let mut a: Automaton<u32> = Automaton::new();
        for f in &filters {
            *a.entry(f) += 1;
        }
        assert_eq!(a.len(), filters.len());
        let peak_nodes = a.node_count();
        filters.shuffle(&mut rng);
        // Remove half, re-add them, then remove everything: slots are recycled, not leaked.
        for f in &filters[..5_000] {
            assert_eq!(a.remove(f), Some(1));
        }
        for f in &filters[..5_000] {
            *a.entry(f) += 1;
        }
        assert_eq!(a.node_count(), peak_nodes);
        assert!(a.nodes.len() <= peak_nodes);
        for f in &filters {
            assert_eq!(a.remove(f), Some(1), "{f}");
        }
        assert_eq!((a.len(), a.node_count(), a.level_count()), (0, 1, 0));
        assert!(a.children.is_empty());
    }

    // ---- property tests against the oracle ----

    const LEVELS: &[&str] = &["a", "b", "", "$s"];

    fn topic_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(LEVELS), 1..5)
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

    #[derive(Debug, Clone)]
    enum Op {
        Insert(String),
        Remove(String),
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => filter_strategy().prop_map(Op::Insert),
            2 => filter_strategy().prop_map(Op::Remove),
        ]
    }

    proptest! {
        #[test]
        fn matches_like_oracle(
            ops in prop::collection::vec(op_strategy(), 0..60),
            topics in prop::collection::vec(topic_strategy(), 1..20),
        ) {
            let mut a: Automaton<String> = Automaton::new();
            let mut model: BTreeSet<String> = BTreeSet::new();
            for op in &ops {
                match op {
                    Op::Insert(f) => {
                        *a.entry(f) = f.clone();
                        model.insert(f.clone());
                    }
                    Op::Remove(f) => {
                        prop_assert_eq!(a.remove(f).is_some(), model.remove(f));
                    }
                }
            }
            prop_assert_eq!(a.len(), model.len());
            for f in model.iter() {
                prop_assert_eq!(a.get(f), Some(f));
            }
            for t in &topics {
                let want: Vec<String> =
                    model.iter().filter(|f| oracle(f, t)).cloned().collect();
                prop_assert_eq!(matches(&a, t), want, "topic {:?}", t);
            }
            for f in model.iter() {
                prop_assert!(a.remove(f).is_some());
            }
            prop_assert_eq!((a.len(), a.node_count(), a.level_count()), (0, 1, 0));
        }
    }
}
