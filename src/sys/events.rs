//! Client online/offline events in EMQX's form: `$SYS/brokers/<node>/clients/<clientid>/
//! connected` and `.../disconnected`, a JSON payload, QoS 0, not retained, published from the
//! shard where the connection lives (its client id's home), so a client's two events leave in
//! order on one shard.
//!
//! Payload fields are EMQX's: `clientid`, `username` (null when none), `ipaddress`, `sockport`
//! (the client's port), `proto_name`, `proto_ver` (3, 4 or 5), `keepalive`, `clean_start`,
//! `connected_at` and `ts` (Unix ms); the disconnect adds `disconnected_at` and `reason`, one of
//! EMQX's names ([`reason_name`]).
//!
//! Never: builds a payload nobody receives (the topic is matched first), or keeps anything per
//! connection: the facts are read from the engine and the link when an event is due, and the
//! address is asked of the socket then.

use crate::codec::{Properties, QoS};
use crate::engine::{Close, Engine};
use crate::session::Message;
use crate::shard::ctx::ShardCtx;
use std::net::SocketAddr;
use std::sync::Arc;

/// What an event says about its connection ([`Engine::presence`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub client_id: String,
    pub username: Option<String>,
    pub peer: Option<SocketAddr>,
    pub proto_ver: u8,
    pub keepalive: u16,
    pub clean_start: bool,
    pub connected_at_ms: u64,
}

impl Presence {
    fn json(&self, now_ms: u64) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::Value;
        let mut m = serde_json::Map::new();
        m.insert("clientid".into(), Value::from(self.client_id.as_str()));
        m.insert(
            "username".into(),
            self.username.as_deref().map_or(Value::Null, Value::from),
        );
        m.insert(
            "ipaddress".into(),
            self.peer
                .map_or(Value::Null, |p| Value::from(p.ip().to_string())),
        );
        m.insert(
            "sockport".into(),
            self.peer.map_or(Value::Null, |p| Value::from(p.port())),
        );
        m.insert("proto_name".into(), Value::from("MQTT"));
        m.insert("proto_ver".into(), Value::from(self.proto_ver));
        m.insert("keepalive".into(), Value::from(self.keepalive));
        m.insert("clean_start".into(), Value::from(self.clean_start));
        m.insert("connected_at".into(), Value::from(self.connected_at_ms));
        m.insert("ts".into(), Value::from(now_ms));
        m
    }

    /// The `connected` payload.
    pub fn connected_payload(&self) -> String {
        serde_json::Value::Object(self.json(self.connected_at_ms)).to_string()
    }

    /// The `disconnected` payload.
    pub fn disconnected_payload(&self, reason: &str, now_ms: u64) -> String {
        let mut m = self.json(now_ms);
        m.insert("disconnected_at".into(), now_ms.into());
        m.insert("reason".into(), reason.into());
        serde_json::Value::Object(m).to_string()
    }
}

/// The event topic for `client_id`, unless the id cannot be one topic level's worth of name
/// (a `+` or `#` would make the topic invalid).
fn topic(node: &str, client_id: &str, event: &str) -> Option<String> {
    if client_id.contains(['+', '#']) || client_id.is_empty() {
        return None;
    }
    Some(format!("$SYS/brokers/{node}/clients/{client_id}/{event}"))
}

/// Publish `payload()` on `topic` from this shard if anyone subscribed to it.
fn publish(ctx: &ShardCtx, topic: &str, payload: impl FnOnce() -> String) {
    let mut shard = ctx.shard.borrow_mut();
    if !shard.matches_any(topic) {
        return;
    }
    let body = payload();
    let msg = Arc::new(Message::owned(
        topic,
        body.as_bytes(),
        QoS::AtMostOnce,
        false,
        Properties::default(),
        0,
    ));
    shard.route_own(msg);
}

/// A client is connected (CONNACK written): its `connected` event, if anyone subscribed.
pub fn connected(ctx: &ShardCtx, conn: &Engine) {
    if !ctx.cfg.sys_events {
        return;
    }
    if let Some(t) = topic(&ctx.cfg.node_name, &conn.client_id, "connected") {
        publish(ctx, &t, || conn.presence().connected_payload());
    }
}

/// The `disconnected` event (topic, payload) of a connection ending for `close`, if anyone
/// subscribed. Built before the engine closes (the reason depends on who holds the session
/// then), published after it with [`publish_event`].
pub fn disconnected(ctx: &ShardCtx, conn: &Engine, close: &Close) -> Option<(String, String)> {
    if !ctx.cfg.sys_events {
        return None;
    }
    let t = topic(&ctx.cfg.node_name, &conn.client_id, "disconnected")?;
    if !ctx.shard.borrow().matches_any(&t) {
        return None;
    }
    let now = crate::shard::journal::unix_ms();
    let payload = conn
        .presence()
        .disconnected_payload(conn.end_reason(close), now);
    Some((t, payload))
}

/// Publish an event [`disconnected`] built.
pub fn publish_event(ctx: &ShardCtx, (topic, payload): (String, String)) {
    publish(ctx, &topic, || payload);
}

/// EMQX's name for why a connection ended (its `reason` field): `normal` for a DISCONNECT,
/// `tcp_closed` for a connection that went away without one, `keepalive_timeout`, `kicked`
/// (administrative action), and for other broker or protocol closes the MQTT 5 reason code's
/// name as EMQX spells it (`protocol_error`, `malformed_packet`, `quota_exceeded`...).
/// Session takeover (`takenover`, `discarded`) is decided by the caller, which knows whether
/// the new connection kept the session.
pub fn reason_name(close: &Close) -> &'static str {
    match close {
        Close::Normal | Close::NormalWithWill => "normal",
        Close::Lost => "tcp_closed",
        Close::KeepAlive => "keepalive_timeout",
        Close::Protocol(code) | Close::Server(code) => code_name(*code),
    }
}

fn code_name(code: u8) -> &'static str {
    match code {
        0x81 => "malformed_packet",
        0x82 => "protocol_error",
        0x83 => "implementation_specific_error",
        0x86 => "bad_username_or_password",
        0x87 => "not_authorized",
        0x89 => "server_busy",
        0x8B => "server_shutting_down",
        0x8C => "bad_authentication_method",
        0x8D => "keepalive_timeout",
        0x8E => "takenover",
        0x90 => "topic_name_invalid",
        0x93 => "receive_maximum_exceeded",
        0x94 => "topic_alias_invalid",
        0x95 => "packet_too_large",
        0x96 => "message_rate_too_high",
        0x97 => "quota_exceeded",
        0x98 => "kicked",
        0x99 => "payload_format_invalid",
        0x9A => "retain_not_supported",
        0x9B => "qos_not_supported",
        0xA0 => "maximum_connect_time",
        _ => "unspecified_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presence() -> Presence {
        Presence {
            client_id: "dev-1".into(),
            username: None,
            peer: Some("127.0.0.1:40000".parse().expect("addr")),
            proto_ver: 5,
            keepalive: 30,
            clean_start: true,
            connected_at_ms: 1000,
        }
    }

    #[test]
    fn payloads_carry_emqx_fields() {
        let p = presence();
        let c: serde_json::Value =
            serde_json::from_str(&p.connected_payload()).expect("connected is JSON");
        assert_eq!(c["clientid"], "dev-1");
        assert!(c["username"].is_null());
        assert_eq!(c["ipaddress"], "127.0.0.1");
        assert_eq!(c["proto_ver"], 5);
        assert_eq!(c["keepalive"], 30);
        assert_eq!(c["clean_start"], true);
        assert_eq!(c["connected_at"], 1000);
        let d: serde_json::Value =
            serde_json::from_str(&p.disconnected_payload("normal", 2000)).expect("JSON");
        assert_eq!(d["reason"], "normal");
        assert_eq!(d["disconnected_at"], 2000);
    }

    #[test]
    fn reasons_use_emqx_names() {
        assert_eq!(reason_name(&Close::Normal), "normal");
        assert_eq!(reason_name(&Close::Lost), "tcp_closed");
        assert_eq!(reason_name(&Close::KeepAlive), "keepalive_timeout");
        assert_eq!(reason_name(&Close::Protocol(0x82)), "protocol_error");
        assert_eq!(reason_name(&Close::Server(0x98)), "kicked");
    }

    #[test]
    fn ids_that_cannot_be_a_topic_level_get_no_event_topic() {
        assert_eq!(
            topic("n", "a", "connected").as_deref(),
            Some("$SYS/brokers/n/clients/a/connected")
        );
        assert_eq!(topic("n", "a+b", "connected"), None);
        assert_eq!(topic("n", "a#", "connected"), None);
    }
}
