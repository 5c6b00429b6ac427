//! Questions the admin API asks the shards, and their answers: plain `Send` values that cross
//! from the HTTP thread to a shard inside a [`super::Command::Query`] and back through the
//! reply channel it carries.
//!
//! Owns: the vocabulary (what can be asked, what an answer holds) and the paging rule every
//! listing follows (each shard returns its `window` smallest keys and its count of matches; the
//! HTTP side merges and cuts the page). Never: touches a shard's state (that is
//! `shard::query`), or blocks a shard: a shard answers with `try_send` on a channel sized so
//! that it never is full.

use std::net::SocketAddr;

/// What to list, and how much of it: each shard answers with at most `window` entries (the
/// page's end: `page × limit`), the smallest by key, and the count of every match.
#[derive(Debug, Clone)]
pub struct Window {
    /// Substring the key must contain (client id for clients and sessions, topic for
    /// retained messages); empty matches everything.
    pub like: String,
    pub window: usize,
}

#[derive(Debug, Clone)]
pub enum Query {
    /// Connected clients.
    Clients(Window),
    /// One connected client by id (asked of its home shard only).
    Client(String),
    /// Disconnect a client with v5 reason 0x98 (Administrative action); asked of its home
    /// shard. Answers `Done(true)` if it was connected.
    Kick(String),
    /// Sessions, connected or not.
    Sessions(Window),
    /// Subscriptions; `like` is an exact client id when `exact` (asked of its home shard).
    Subscriptions { window: Window, exact: bool },
    /// Retained messages (every shard holds the whole index, so one shard is asked).
    Retained(Window),
    /// Clear a retained topic as a client's empty retained PUBLISH does (journaled by the
    /// topic's home shard). Answers `Done(true)` if something was retained there.
    RetainedDelete(String),
    /// Answers `Done(true)`: a shard answering has applied every command sent before (a
    /// reload waits for this, so a user added through the API can connect once it returns).
    Ping,
}

/// One connected client (`GET /api/v1/clients`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientInfo {
    pub clientid: String,
    pub username: Option<String>,
    pub peer: Option<SocketAddr>,
    /// The local address of the connection: the listener it came in on.
    pub local: Option<SocketAddr>,
    /// 3 (MQTT 3.1), 4 (3.1.1) or 5.
    pub proto_ver: u8,
    pub keepalive: u16,
    pub clean_start: bool,
    /// Unix milliseconds.
    pub connected_at: u64,
    pub shard: usize,
    pub inflight: usize,
    pub queued: usize,
    pub subscriptions: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    pub clientid: String,
    pub connected: bool,
    pub expiry_s: u32,
    pub subscriptions: usize,
    pub queued: usize,
    pub inflight: usize,
    pub shard: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionInfo {
    pub clientid: String,
    pub topic: String,
    pub qos: u8,
    pub shard: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetainedInfo {
    pub topic: String,
    pub qos: u8,
    pub payload_size: usize,
    /// At most [`RETAINED_PAYLOAD_SHOWN_MAX`] bytes of it.
    pub payload: Vec<u8>,
}

/// Bytes of a retained payload a listing carries: a page of 1,000 messages of up to 1 MiB
/// each must not become a gigabyte of JSON. The full size is in `payload_size`.
pub const RETAINED_PAYLOAD_SHOWN_MAX: usize = 16 * 1024;

/// Entries one page may hold, and the furthest a listing may page (`page × limit`): each shard
/// sorts at most this many entries for one request.
pub const PAGE_LIMIT_MAX: usize = 1000;
pub const WINDOW_MAX: usize = 100_000;

#[derive(Debug, Clone)]
pub enum Answer {
    Clients {
        count: usize,
        items: Vec<ClientInfo>,
    },
    Client(Option<ClientInfo>),
    Sessions {
        count: usize,
        items: Vec<SessionInfo>,
    },
    Subscriptions {
        count: usize,
        items: Vec<SubscriptionInfo>,
    },
    Retained {
        count: usize,
        items: Vec<RetainedInfo>,
    },
    Done(bool),
}

/// A shard's answer, tagged with the shard.
#[derive(Debug)]
pub struct Reply {
    pub shard: usize,
    pub answer: Answer,
}

/// Where a shard sends its answer: tokio's channel, so the HTTP thread awaits it; shards only
/// `try_send`, which never blocks (the channel has room for one answer per shard asked).
pub type ReplyTo = tokio::sync::mpsc::Sender<Reply>;

/// Keep the `window` smallest entries by `key` (sorted), from `items` in any order: a
/// selection then a sort of the kept part, so a shard with a million sessions does not sort
/// them all for one page.
pub fn smallest<T>(mut items: Vec<T>, window: usize, key: impl Fn(&T) -> &str) -> Vec<T> {
    if items.len() > window && window > 0 {
        items.select_nth_unstable_by(window - 1, |a, b| key(a).cmp(key(b)));
    }
    items.truncate(window);
    items.sort_unstable_by(|a, b| key(a).cmp(key(b)));
    items
}

/// The page `page` (from 1) of `limit` entries from every shard's window: merged, sorted by
/// `key`, cut.
pub fn page_of<T>(
    per_shard: Vec<Vec<T>>,
    page: usize,
    limit: usize,
    key: impl Fn(&T) -> &str,
) -> Vec<T> {
    let mut all: Vec<T> = per_shard.into_iter().flatten().collect();
    all.sort_by(|a, b| key(a).cmp(key(b)));
    all.into_iter()
        .skip(page.saturating_sub(1) * limit)
        .take(limit)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_merge_into_the_global_page() {
        let a = vec!["d", "a", "f", "b"];
        let b = vec!["c", "e", "g"];
        let wa = smallest(a.clone(), 4, |s| s);
        assert_eq!(wa, vec!["a", "b", "d", "f"]);
        let w = 2 * 2; // page 2 of 2
        let p = page_of(
            vec![smallest(a, w, |s| s), smallest(b, w, |s| s)],
            2,
            2,
            |s| s,
        );
        assert_eq!(p, vec!["c", "d"]);
        assert!(page_of(vec![smallest(vec!["x"], 2, |s| s)], 3, 2, |s| s).is_empty());
        assert_eq!(smallest(vec!["b", "a"], 0, |s| s), Vec::<&str>::new());
    }
}
