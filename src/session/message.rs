//! A routed application message and one delivery of it to one session.
//!
//! A [`Message`] is built once per PUBLISH and shared (`Arc`) by every session and every shard
//! it reaches: the payload is never copied.

use crate::codec::{Properties, Protocol, Publish, QoS};
use bytes::Bytes;
use bytestring::ByteString;
use smallvec::SmallVec;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Message {
    pub topic: ByteString,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// Application properties forwarded unchanged to v5 subscribers (Topic Alias and
    /// Subscription Identifiers removed: those are per hop).
    pub properties: Properties,
    /// Session uid of the publisher, for No Local; 0 for wills and the broker itself.
    pub origin_uid: u64,
    /// When the Message Expiry Interval ends, if the publisher set one. Computed once on
    /// arrival, so a message without expiry never reads the clock on its way out.
    pub expires_at: Option<Instant>,
}

/// The end of a Message Expiry Interval counted from now, if `properties` set one.
pub fn expiry_from(properties: &Properties) -> Option<Instant> {
    properties
        .message_expiry_interval_s
        .map(|s| Instant::now() + Duration::from_secs(u64::from(s)))
}

/// One message on its way to one session, at the QoS granted by the matching subscription(s).
#[derive(Debug, Clone)]
pub struct Delivery {
    pub msg: Arc<Message>,
    pub qos: QoS,
    pub retain: bool,
    /// Identifiers of every matching subscription that carried one (v5).
    pub sub_ids: SmallVec<[u32; 1]>,
    /// The shared group this came through: if the member goes away before acknowledging it,
    /// the group gets it back for another member.
    pub shared: Option<ByteString>,
}

impl Delivery {
    pub fn is_expired(&self) -> bool {
        self.msg.expires_at.is_some_and(|t| Instant::now() >= t)
    }

    /// The PUBLISH to send. v3 peers get no properties; v5 peers get the publisher's
    /// properties with the remaining expiry interval [MQTT-3.3.2-6] and the matching
    /// subscription identifiers.
    pub fn to_publish(&self, packet_id: u16, dup: bool, protocol: Protocol) -> Publish {
        let properties = if protocol.is_v5() {
            let mut p = self.msg.properties.clone();
            if let Some(at) = self.msg.expires_at {
                let left = at.saturating_duration_since(Instant::now()).as_secs();
                p.message_expiry_interval_s = Some(left.max(1).min(u64::from(u32::MAX)) as u32);
            }
            p.subscription_identifiers = self.sub_ids.clone();
            p
        } else {
            Properties::default()
        };
        Publish {
            dup,
            qos: self.qos,
            retain: self.retain,
            topic: self.msg.topic.clone(),
            packet_id,
            properties,
            payload: self.msg.payload.clone(),
        }
    }
}
