//! The compiled form of one set of ACL rules (one user's, the anonymous ones, or the patterns):
//! a topic trie whose nodes carry the allow/deny marks of the rules ending there, so a check is
//! one walk over the topic's levels, like the subscription automaton, instead of a scan of rules.
//!
//! Owns: rule compilation, topic matching (PUBLISH write check, delivery read check) and filter
//! matching (SUBSCRIBE). Never: allocates or hashes more than one level at a time during a
//! check, or panics on rule text (the parser in `acl.rs` validated it).
//!
//! Within one set, Mosquitto's order does not matter: it puts every `deny` rule first, and the
//! first allow rule that matches *with the requested access* wins; so the verdict is "denied if
//! any deny rule matches, else allowed if any rule with that access matches". The trie computes
//! exactly that.

use ahash::AHashMap;

pub(crate) const READ: u8 = 1;
pub(crate) const WRITE: u8 = 2;

/// Who is asking: the values `%u` and `%c` stand for.
#[derive(Clone, Copy)]
pub(crate) struct Who<'a> {
    pub user: Option<&'a str>,
    pub client_id: &'a str,
}

/// A piece of a `pattern` level: Mosquitto 2.0 substitutes `%c`/`%u` anywhere in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Lit(Box<str>),
    ClientId,
    Username,
}

/// One level of a rule's topic filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Level {
    Lit(Box<str>),
    Plus,
    Hash,
    Template(Box<[Piece]>),
}

/// Does `level` equal the template with `who` substituted? No allocation: the pieces are
/// stripped off the front of `level` one by one. `None` when the template needs a user name
/// the client does not have (Mosquitto skips such a rule).
fn template_eq(pieces: &[Piece], level: &str, who: Who) -> Option<bool> {
    let mut rest = level;
    for p in pieces {
        let s = match p {
            Piece::Lit(s) => s,
            Piece::ClientId => who.client_id,
            Piece::Username => who.user?,
        };
        match rest.strip_prefix(s) {
            Some(r) => rest = r,
            None => return Some(false),
        }
    }
    Some(rest.is_empty())
}

#[derive(Default, Debug)]
struct Node {
    exact: AHashMap<Box<str>, u32>,
    plus: Option<u32>,
    templates: Vec<(Box<[Piece]>, u32)>,
    /// Access of the allow rules ending exactly here.
    end_allow: u8,
    end_deny: bool,
    /// Access of the allow rules ending in `#` here (they match this level and everything below).
    hash_allow: u8,
    hash_deny: bool,
    /// Union of every allow mark in this subtree (SUBSCRIBE to `#`-filters without a walk).
    subtree_allow: u8,
}

/// The verdict of one set: did a deny rule match, did an allow rule with the access match.
#[derive(Default, Clone, Copy)]
pub(crate) struct Verdict {
    pub deny: bool,
    pub allow: bool,
}

/// One compiled rule set.
#[derive(Debug)]
pub(crate) struct Trie {
    nodes: Vec<Node>,
    /// Any deny rule in the set? Without one, the first allow found settles a check.
    any_deny: bool,
}

fn split(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    }
}

impl Default for Trie {
    fn default() -> Self {
        Trie {
            nodes: vec![Node::default()],
            any_deny: false,
        }
    }
}

impl Trie {
    /// Add a rule: `allow` is READ|WRITE bits, 0 for `deny`.
    pub fn add(&mut self, levels: &[Level], allow: u8) {
        self.any_deny |= allow == 0;
        let mut n = 0usize;
        for level in levels {
            let next = match level {
                Level::Hash => {
                    // The parser guarantees `#` is last.
                    let node = &mut self.nodes[n];
                    if allow == 0 {
                        node.hash_deny = true;
                    } else {
                        node.hash_allow |= allow;
                    }
                    return;
                }
                Level::Lit(s) => self.nodes[n].exact.get(s).copied(),
                Level::Plus => self.nodes[n].plus,
                Level::Template(t) => self.nodes[n]
                    .templates
                    .iter()
                    .find(|(p, _)| p == t)
                    .map(|(_, c)| *c),
            };
            let child = match next {
                Some(c) => c as usize,
                None => {
                    let c = self.nodes.len();
                    self.nodes.push(Node::default());
                    let id = c as u32;
                    let node = &mut self.nodes[n];
                    match level {
                        Level::Lit(s) => {
                            node.exact.insert(s.clone(), id);
                        }
                        Level::Plus => node.plus = Some(id),
                        Level::Template(t) => node.templates.push((t.clone(), id)),
                        Level::Hash => {}
                    }
                    c
                }
            };
            n = child;
        }
        let node = &mut self.nodes[n];
        if allow == 0 {
            node.end_deny = true;
        } else {
            node.end_allow |= allow;
        }
    }

    /// Compute `subtree_allow` bottom-up; call once after the last `add`. Children are always
    /// pushed after their parent, so a reverse scan sees every child first.
    pub fn finish(&mut self) {
        for i in (0..self.nodes.len()).rev() {
            let node = &self.nodes[i];
            let mut acc = node.end_allow | node.hash_allow;
            let children = node
                .exact
                .values()
                .copied()
                .chain(node.plus)
                .chain(node.templates.iter().map(|(_, c)| *c));
            for c in children {
                acc |= self.nodes[c as usize].subtree_allow;
            }
            self.nodes[i].subtree_allow = acc;
        }
    }

    /// Match a topic name (no wildcards) for `need` (READ or WRITE).
    pub fn check_topic(&self, topic: &str, who: Who, need: u8) -> Verdict {
        let mut v = Verdict::default();
        let dollar = topic.starts_with('$');
        self.walk(0, Some(topic), true, dollar, who, need, &mut v);
        v
    }

    /// Nothing further can change the verdict: a deny was found, or an allow in a set
    /// without denies.
    fn settled(&self, v: &Verdict) -> bool {
        v.deny || (v.allow && !self.any_deny)
    }

    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        n: u32,
        rest: Option<&str>,
        first: bool,
        dollar: bool,
        who: Who,
        need: u8,
        v: &mut Verdict,
    ) {
        let node = &self.nodes[n as usize];
        // Mosquitto: a `$` topic is matched only by rules that start with `$`, so the root's
        // `#` and `+` never match it.
        let wild_ok = !(first && dollar);
        if wild_ok {
            if node.hash_deny {
                v.deny = true;
                return;
            }
            v.allow |= node.hash_allow & need != 0;
        }
        if self.settled(v) {
            return;
        }
        let Some(rest) = rest else {
            v.deny |= node.end_deny;
            v.allow |= node.end_allow & need != 0;
            return;
        };
        let (level, next) = split(rest);
        if let Some(&c) = node.exact.get(level) {
            self.walk(c, next, false, dollar, who, need, v);
            if self.settled(v) {
                return;
            }
        }
        if let (Some(c), true) = (node.plus, wild_ok) {
            self.walk(c, next, false, dollar, who, need, v);
        }
        for (t, c) in &node.templates {
            if self.settled(v) {
                return;
            }
            if template_eq(t, level, who) == Some(true) {
                self.walk(*c, next, false, dollar, who, need, v);
            }
        }
    }

    /// Could some topic matching `filter` be allowed `need` by a rule here? (Ignores denies.)
    pub fn intersects_allow(&self, filter: &str, who: Who, need: u8) -> bool {
        let dollar = filter.starts_with('$');
        self.meet(0, Some(filter), true, dollar, who, need)
    }

    fn meet(
        &self,
        n: u32,
        rest: Option<&str>,
        first: bool,
        dollar: bool,
        who: Who,
        need: u8,
    ) -> bool {
        let node = &self.nodes[n as usize];
        let wild_ok = !(first && dollar);
        if wild_ok && node.hash_allow & need != 0 {
            return true;
        }
        let Some(rest) = rest else {
            return node.end_allow & need != 0;
        };
        let (level, next) = split(rest);
        match level {
            // The filter matches this node's own topic ("a/#" matches "a") and all below; at the
            // root it matches no `$` topic, so `$`-children are skipped.
            "#" => {
                node.end_allow & need != 0
                    || node
                        .exact
                        .iter()
                        .filter(|(k, _)| !(first && k.starts_with('$')))
                        .any(|(_, &c)| self.nodes[c as usize].subtree_allow & need != 0)
                    || node
                        .plus
                        .is_some_and(|c| self.nodes[c as usize].subtree_allow & need != 0)
                    || node
                        .templates
                        .iter()
                        .any(|(_, c)| self.nodes[*c as usize].subtree_allow & need != 0)
            }
            "+" => {
                node.exact
                    .iter()
                    .filter(|(k, _)| !(first && k.starts_with('$')))
                    .any(|(_, &c)| self.meet(c, next, false, dollar, who, need))
                    || node
                        .plus
                        .is_some_and(|c| self.meet(c, next, false, dollar, who, need))
                    // Some client's substitution may produce the level; stay permissive.
                    || node
                        .templates
                        .iter()
                        .any(|(_, c)| self.meet(*c, next, false, dollar, who, need))
            }
            lit => {
                node.exact
                    .get(lit)
                    .is_some_and(|&c| self.meet(c, next, false, dollar, who, need))
                    || (wild_ok
                        && node
                            .plus
                            .is_some_and(|c| self.meet(c, next, false, dollar, who, need)))
                    || node.templates.iter().any(|(t, c)| {
                        template_eq(t, lit, who) == Some(true)
                            && self.meet(*c, next, false, dollar, who, need)
                    })
            }
        }
    }

    /// Is every topic matching `filter` matched by one deny rule here?
    pub fn covered_by_deny(&self, filter: &str, who: Who) -> bool {
        let dollar = filter.starts_with('$');
        self.cover(0, Some(filter), true, dollar, who)
    }

    fn cover(&self, n: u32, rest: Option<&str>, first: bool, dollar: bool, who: Who) -> bool {
        let node = &self.nodes[n as usize];
        let wild_ok = !(first && dollar);
        if wild_ok && node.hash_deny {
            return true;
        }
        let Some(rest) = rest else {
            return node.end_deny;
        };
        let (level, next) = split(rest);
        match level {
            // Only a `#` rule covers a `#` filter, and that was checked above.
            "#" => false,
            "+" => node
                .plus
                .is_some_and(|c| self.cover(c, next, false, dollar, who)),
            lit => {
                node.exact
                    .get(lit)
                    .is_some_and(|&c| self.cover(c, next, false, dollar, who))
                    || (wild_ok
                        && node
                            .plus
                            .is_some_and(|c| self.cover(c, next, false, dollar, who)))
                    || node.templates.iter().any(|(t, c)| {
                        template_eq(t, lit, who) == Some(true)
                            && self.cover(*c, next, false, dollar, who)
                    })
            }
        }
    }
}
