//! Topic trees.
//!
//! Owns: the per-shard subscription [`Automaton`] — its data plane (match a PUBLISH topic to
//! the values of every matching filter) and its control plane (insert and remove filters,
//! pruning what churn leaves behind) — and the [`RetainedIndex`] (topic name → retained message,
//! walked by a filter on SUBSCRIBE). Syntax rules for names and filters live in the codec
//! ([`crate::codec::topic`]) and are checked before anything reaches these trees.
//!
//! Never: does I/O, takes a lock (each shard owns its trees outright, in the thread-per-core
//! model), or allocates per topic level while matching: level strings are interned once, edges
//! are integer-keyed, and the match walks an inline stack.

mod automaton;
mod interner;
mod retained;

pub use automaton::Automaton;
pub use retained::RetainedIndex;

/// Reference matcher for tests: the codec's level-by-level matcher straight from [MQTT-4.7].
#[cfg(test)]
pub(crate) use crate::codec::topic::matches as naive_match;
