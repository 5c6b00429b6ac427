//! Access control in Mosquitto's `acl_file` format, read unchanged, compiled for cheap checks.
//!
//! Owns: parsing an ACL file, the compiled rules (an immutable [`Acl`], shared by every shard
//! as an `Arc` and swapped whole on reload), and the three decisions the broker asks for: may
//! this client PUBLISH to a topic ([`Access::Write`]), may a message on a topic be delivered to
//! it ([`Access::Read`]), may it SUBSCRIBE to a filter ([`Acl::check_subscribe`]). Never: takes a
//! lock, allocates or re-parses during a check, does I/O after loading, or panics on file input
//! (every bad line is an [`AclError`] with its line number).
//!
//! Semantics are Mosquitto 2.0's `acl_file` (read from its `security_default.c`):
//! - `topic [read|write|readwrite|deny] TOPIC` (access defaults to `readwrite`); lines before
//!   the first `user NAME` line are the anonymous client's rules; `pattern [..] TOPIC` rules
//!   apply to every client, with `%c` (client id) and `%u` (user name) substituted anywhere in
//!   the topic; a pattern with `%u` does not apply to a client without a user name.
//! - The client's own rules are checked first: any matching `deny` refuses; otherwise any
//!   matching rule carrying the access allows. Then the patterns, the same way. Nothing matched:
//!   refused. A user name not in the file has only the patterns.
//! - A `$` topic (e.g. `$SYS/...`) is matched only by rules that start with `$`: `#` and `+/..`
//!   do not grant it.
//! - With patterns in the file, a client whose user name or client id contains `+` or `#` is
//!   refused once its own rules did not decide (it could otherwise widen a pattern). ringmq also
//!   refuses `/`, as Mosquitto 1.x did: a client id `alice/x` would turn `%c/#` into a piece of
//!   someone else's tree (Mosquitto 2.1 confines `%c` to one level for the same reason).
//! - Whatever the file says: nobody writes under `$SYS` (Mosquitto allows only its own bridge
//!   status topics there), and nobody publishes to or receives from a `$share/...` topic name.
//! - No ACL file: everything is allowed except those two `$` rules ([`Acl::allow_all`]).
//!
//! SUBSCRIBE: Mosquitto's acl_file grants every subscription and only filters deliveries (read
//! access is checked per message). ringmq checks deliveries the same way, and additionally
//! refuses a SUBSCRIBE (v3 0x80, v5 0x87) when no message could ever be delivered to it: when
//! one deny rule covers the whole filter, or no rule grants read on any topic the filter can
//! match. So what a client receives is exactly what Mosquitto would deliver, and a filter it can
//! never receive on is refused honestly instead of granted and silent.

use super::acl_trie::{Level, Piece, Trie, Verdict, Who, READ, WRITE};
use super::jwt_acl::ClaimAcl;
use ahash::AHashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a topic check asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A message on this topic may be delivered to the client (delivery, retained on
    /// subscribe, shared-subscription dispatch).
    Read,
    /// The client may publish to this topic (PUBLISH, and its will at CONNECT and at
    /// publication).
    Write,
}

impl Access {
    fn bit(self) -> u8 {
        match self {
            Access::Read => READ,
            Access::Write => WRITE,
        }
    }
}

/// A line of an ACL file that cannot be used (see [`super::FileError`]).
pub type AclError = super::FileError;

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Compiled ACL. Immutable and `Send + Sync`: each shard holds an `Arc<Acl>` and replaces it on
/// reload; a check borrows it and touches nothing shared.
#[derive(Debug)]
pub struct Acl {
    /// `None`: no ACL file configured.
    rules: Option<Rules>,
    generation: u64,
}

#[derive(Debug, Default)]
struct Rules {
    anonymous: Option<Trie>,
    users: AHashMap<Box<str>, Trie>,
    patterns: Option<Trie>,
    rule_count: usize,
}

/// Characters that refuse a client pattern rules would apply to (see the module doc).
fn dangerous(s: &str) -> bool {
    s.bytes().any(|b| matches!(b, b'+' | b'#' | b'/'))
}

/// Mosquitto's `$` rules, applied with or without an ACL file. `true` = refused.
fn dollar_refused(topic: &str, access: Access) -> bool {
    // Mosquitto compares these prefixes without a level boundary ("$SYSTEM" is "$SYS" too).
    topic.starts_with("$share") || (access == Access::Write && topic.starts_with("$SYS"))
}

/// `$share/GROUP/FILTER` and `$queue/FILTER` subscribe to FILTER.
fn inner_filter(filter: &str) -> &str {
    if let Some(rest) = filter.strip_prefix("$share/") {
        return rest.split_once('/').map_or("", |(_, f)| f);
    }
    filter.strip_prefix("$queue/").unwrap_or(filter)
}

impl Acl {
    /// No ACL file: allow everything but writes under `$SYS` and `$share` topic names.
    pub fn allow_all() -> Acl {
        Acl {
            rules: None,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Read and compile `path`; errors name the file and line.
    pub fn load(path: &Path) -> Result<Acl, AclError> {
        let text = std::fs::read_to_string(path).map_err(|e| AclError {
            path: Some(path.to_path_buf()),
            line: 0,
            reason: format!("cannot read ACL file: {e}"),
        })?;
        Acl::parse(&text).map_err(|mut e| {
            e.path = Some(path.to_path_buf());
            e
        })
    }

    /// Compile the text of an ACL file. An empty file refuses everything (as Mosquitto's does).
    pub fn parse(text: &str) -> Result<Acl, AclError> {
        let mut rules = Rules::default();
        let mut user: Option<Box<str>> = None;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let err = |reason: String| AclError {
                path: None,
                line: n,
                reason,
            };
            let Some(line) = parse_line(raw).map_err(err)? else {
                continue;
            };
            match line {
                Line::User(name) => user = Some(name.into()),
                Line::Rule {
                    pattern,
                    allow,
                    topic,
                } => {
                    let levels = compile_topic(topic, pattern).map_err(err)?;
                    let trie = if pattern {
                        rules.patterns.get_or_insert_with(Trie::default)
                    } else {
                        match &user {
                            None => rules.anonymous.get_or_insert_with(Trie::default),
                            Some(u) => rules.users.entry(u.clone()).or_default(),
                        }
                    };
                    trie.add(&levels, allow);
                    rules.rule_count += 1;
                }
            }
        }
        for t in rules
            .anonymous
            .iter_mut()
            .chain(rules.patterns.iter_mut())
            .chain(rules.users.values_mut())
        {
            t.finish();
        }
        Ok(Acl {
            rules: Some(rules),
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Is an ACL file in force (`false` for [`Acl::allow_all`])?
    pub fn is_enforcing(&self) -> bool {
        self.rules.is_some()
    }

    /// Rules compiled (0 without a file).
    pub fn rule_count(&self) -> usize {
        self.rules.as_ref().map_or(0, |r| r.rule_count)
    }

    /// Which load this is; changes on every reload.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// May the client publish to (`Write`) or receive from (`Read`) the topic name `topic`?
    /// `user` is the authenticated user name (`None` for anonymous clients). Costs one hash of
    /// the user name plus one walk of the topic's levels; allocates nothing.
    pub fn check(&self, user: Option<&str>, client_id: &str, topic: &str, access: Access) -> bool {
        if dollar_refused(topic, access) {
            return false;
        }
        let Some(rules) = &self.rules else {
            return true;
        };
        let who = Who { user, client_id };
        let need = access.bit();
        let own = match user {
            Some(u) => rules.users.get(u),
            None => rules.anonymous.as_ref(),
        };
        if let Some(t) = own {
            let v: Verdict = t.check_topic(topic, who, need);
            if v.deny {
                return false;
            }
            if v.allow {
                return true;
            }
        }
        let Some(p) = &rules.patterns else {
            return false;
        };
        if user.is_some_and(dangerous) || dangerous(client_id) {
            return false;
        }
        let v = p.check_topic(topic, who, need);
        !v.deny && v.allow
    }

    /// May the client SUBSCRIBE to `filter` (a valid filter; `$share/G/F` and `$queue/F` are
    /// checked as F)? Refuses only when no delivery on it could ever pass [`Acl::check`] with
    /// [`Access::Read`]; deliveries must still be checked one by one.
    pub fn check_subscribe(&self, user: Option<&str>, client_id: &str, filter: &str) -> bool {
        let Some(rules) = &self.rules else {
            return true;
        };
        let filter = inner_filter(filter);
        if filter.is_empty() {
            return false;
        }
        let who = Who { user, client_id };
        let own = match user {
            Some(u) => rules.users.get(u),
            None => rules.anonymous.as_ref(),
        };
        if let Some(t) = own {
            if t.covered_by_deny(filter, who) {
                return false;
            }
            if t.intersects_allow(filter, who, READ) {
                return true;
            }
        }
        let Some(p) = &rules.patterns else {
            return false;
        };
        if user.is_some_and(dangerous) || dangerous(client_id) {
            return false;
        }
        !p.covered_by_deny(filter, who) && p.intersects_allow(filter, who, READ)
    }
}

impl Acl {
    /// [`Acl::check`] for a client that may carry token rules (JWT ACL claim): Mosquitto's `$`
    /// rules first (a token cannot grant `$SYS` writes), then the token's rules (first match),
    /// then this file ACL when no token rule matched.
    pub fn check_with_claims(
        &self,
        claims: Option<&ClaimAcl>,
        user: Option<&str>,
        client_id: &str,
        topic: &str,
        access: Access,
    ) -> bool {
        if dollar_refused(topic, access) {
            return false;
        }
        match claims.and_then(|c| c.check(topic, access)) {
            Some(verdict) => verdict,
            None => self.check(user, client_id, topic, access),
        }
    }

    /// [`Acl::check_subscribe`] for a client that may carry token rules: the token's rules on
    /// the filter (the inner one for `$share`/`$queue`) first, then this file ACL.
    pub fn check_subscribe_with_claims(
        &self,
        claims: Option<&ClaimAcl>,
        user: Option<&str>,
        client_id: &str,
        filter: &str,
    ) -> bool {
        match claims.and_then(|c| c.check_subscribe(inner_filter(filter))) {
            Some(verdict) => verdict,
            None => self.check_subscribe(user, client_id, filter),
        }
    }
}

enum Line<'a> {
    User(&'a str),
    Rule {
        pattern: bool,
        allow: u8,
        topic: &'a str,
    },
}

/// Blanks Mosquitto trims around a user name or topic.
fn trim_blanks(s: &str) -> &str {
    s.trim_matches(|c: char| c == ' ' || c == '\t')
}

/// One line, tokenised as Mosquitto does: fields split on spaces, the topic (or user name) is
/// the rest of the line, so it may contain spaces. Leading blanks and indented `#` comments are
/// accepted too (Mosquitto would call them invalid lines; nothing it accepts reads differently).
fn parse_line(raw: &str) -> Result<Option<Line<'_>>, String> {
    let line = raw.trim_end().trim_start_matches([' ', '\t']);
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (keyword, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim_start_matches(' ');
    match keyword {
        "user" => {
            let name = trim_blanks(rest);
            if name.is_empty() {
                return Err("`user` needs a user name".into());
            }
            Ok(Some(Line::User(name)))
        }
        "topic" | "pattern" => {
            if rest.is_empty() {
                return Err(format!("`{keyword}` needs a topic"));
            }
            let (access, topic) = match rest.split_once(' ') {
                Some((a, t)) if !trim_blanks(t).is_empty() => (Some(a), trim_blanks(t)),
                // One word: it is the topic, access readwrite ("topic read" is the topic "read").
                _ => (None, trim_blanks(rest)),
            };
            let allow = match access {
                None | Some("readwrite") => READ | WRITE,
                Some("read") => READ,
                Some("write") => WRITE,
                Some("deny") => 0,
                Some(other) => {
                    return Err(format!(
                        "access {other:?} is not read, write, readwrite or deny"
                    ))
                }
            };
            Ok(Some(Line::Rule {
                pattern: keyword == "pattern",
                allow,
                topic,
            }))
        }
        other => Err(format!(
            "unknown keyword {other:?} (expected user, topic or pattern)"
        )),
    }
}

/// Validate a rule's topic filter as Mosquitto's `mosquitto_sub_topic_check` does (`+` and `#`
/// only as whole levels, `#` last) and split it into levels; `%c`/`%u` become templates in
/// `pattern` rules only.
fn compile_topic(topic: &str, pattern: bool) -> Result<Vec<Level>, String> {
    if topic.len() > 65_535 {
        return Err("topic longer than 65535 bytes".into());
    }
    let parts: Vec<&str> = topic.split('/').collect();
    let mut levels = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let level = match *part {
            "+" => Level::Plus,
            "#" if i + 1 == parts.len() => Level::Hash,
            "#" => {
                return Err(format!(
                    "invalid topic {topic:?}: '#' must be the last level"
                ))
            }
            p if p.contains(['+', '#']) => {
                return Err(format!(
                    "invalid topic {topic:?}: '+' and '#' must be whole levels"
                ))
            }
            p if pattern && (p.contains("%c") || p.contains("%u")) => {
                Level::Template(template(p).into())
            }
            p => Level::Lit(p.into()),
        };
        levels.push(level);
    }
    Ok(levels)
}

fn template(level: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut chars = level.chars().peekable();
    while let Some(c) = chars.next() {
        let sub = match (c, chars.peek()) {
            ('%', Some('c')) => Some(Piece::ClientId),
            ('%', Some('u')) => Some(Piece::Username),
            _ => None,
        };
        match sub {
            Some(p) => {
                chars.next();
                if !lit.is_empty() {
                    pieces.push(Piece::Lit(std::mem::take(&mut lit).into()));
                }
                pieces.push(p);
            }
            None => lit.push(c),
        }
    }
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit.into()));
    }
    pieces
}

#[cfg(test)]
#[path = "acl_tests.rs"]
mod tests;
