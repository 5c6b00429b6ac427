//! The broker's own topics: the retained `$SYS/broker/...` tree (Mosquitto's names, refreshed
//! every `sys_interval_s`) and the client online/offline events (EMQX's
//! `$SYS/brokers/<node>/clients/<clientid>/connected|disconnected`).
//!
//! How the tree gets to subscribers: the control thread aggregates the shards' statistics
//! ([`tree::Tree`]), keeps the values that changed, and sends each shard
//! ([`crate::control::Command::Sys`]) the topics whose home shard it is. The shard sets them
//! through the broker's normal retained path ([`crate::shard::Shard::set_retained`]: its own
//! copy, every peer's copy, and the routing to current subscribers), so a `$SYS` subscriber gets
//! them like any retained message, through the ACL's read check. `$SYS` retained messages are
//! never journaled (`retain_local` skips them): they are rebuilt within one interval of a start.
//!
//! Events are published from the shard where the connection lives, QoS 0, not retained
//! ([`events`]).
//!
//! Never: runs on the data path per message. Events cost a topic format and a match check per
//! connect and disconnect, and a JSON payload only when someone subscribed.

pub mod events;
pub mod tree;

use crate::codec::{Properties, QoS};
use crate::session::Message;
use crate::shard::Shard;
use std::sync::Arc;

/// `sys_interval_s` by default: Mosquitto's.
pub const INTERVAL_S_DEFAULT: u64 = 10;

/// One retained `$SYS` value to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysValue {
    pub topic: String,
    pub payload: String,
}

/// A topic under `$SYS` (Mosquitto compares the prefix without a level boundary).
pub fn is_sys_topic(topic: &str) -> bool {
    topic.starts_with("$SYS")
}

/// `ringmq@<hostname>`, EMQX's `name@host` form.
pub fn default_node_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let host = if rc == 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    // A host name is one topic level; anything that would not be becomes '_'.
    let host: String = host
        .chars()
        .map(|c| if matches!(c, '/' | '+' | '#') { '_' } else { c })
        .collect();
    format!(
        "ringmq@{}",
        if host.is_empty() { "localhost" } else { &host }
    )
}

impl Shard {
    /// Set `$SYS` values on this shard (their home): retained everywhere, and sent to current
    /// subscribers. QoS 0, origin 0 (holds nobody back), not counted as received messages.
    pub fn publish_sys(&mut self, values: &[SysValue]) {
        for v in values {
            if v.payload.is_empty() {
                continue; // an empty retained payload would clear the topic
            }
            let msg = Arc::new(Message::owned(
                &v.topic,
                v.payload.as_bytes(),
                QoS::AtMostOnce,
                true,
                Properties::default(),
                0,
            ));
            self.set_retained(&msg, None);
            self.route_own(msg);
        }
    }
}
