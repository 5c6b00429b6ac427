//! A routed application message and one delivery of it to one session.
//!
//! A [`Message`] is built once per PUBLISH and shared (`Arc`) by every session and every shard
//! it reaches. It owns its bytes: topic and payload are one exact-size copy, never a slice of a
//! connection's read buffer, so a queued message pins nothing but itself (a 64-byte message
//! held for an offline session must not keep a 64 KiB read chunk alive).

use crate::codec::{Properties, Protocol, Publish, QoS};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use smallvec::SmallVec;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Message {
    /// Topic then payload, one exact-size allocation (topic and payload as two `Bytes` would
    /// be 32 bytes more per message and a second allocation).
    data: Bytes,
    /// Length of the topic at the front of `data`: an MQTT string, at most 65,535 bytes.
    topic_len: u16,
    pub qos: QoS,
    pub retain: bool,
    /// Application properties forwarded unchanged to v5 subscribers (Topic Alias and
    /// Subscription Identifiers removed: those are per hop). Boxed and absent when empty: a
    /// `Properties` is ~400 bytes and most messages (all v3 ones) carry none.
    pub properties: Option<Box<Properties>>,
    /// Session uid of the publisher, for No Local and back-pressure; 0 for wills and the broker
    /// itself (never held back).
    pub origin_uid: u64,
    /// When the Message Expiry Interval ends, if the publisher set one. Computed once on
    /// arrival, so a message without expiry never reads the clock on its way out.
    pub expires_at: Option<Instant>,
}

impl Message {
    /// A message owning exact-size copies of `topic`, `payload` and every byte string of
    /// `properties` (one allocation for topic and payload together).
    pub fn owned(
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        mut properties: Properties,
        origin_uid: u64,
    ) -> Message {
        // Per-hop properties are not forwarded [MQTT-3.3.2-7], [MQTT-3.3.4-6].
        properties.topic_alias = None;
        properties.subscription_identifiers.clear();
        let expires_at = expiry_from(&properties);
        // An MQTT string: the codec never yields a longer topic.
        let topic_len = u16::try_from(topic.len()).unwrap_or(u16::MAX);
        let topic = &topic.as_bytes()[..usize::from(topic_len)];
        let mut buf = BytesMut::with_capacity(topic.len() + payload.len());
        buf.extend_from_slice(topic);
        buf.extend_from_slice(payload);
        let properties = (!properties.is_empty()).then(|| Box::new(own_properties(properties)));
        Message {
            data: buf.freeze(),
            topic_len,
            qos,
            retain,
            properties,
            origin_uid,
            expires_at,
        }
    }

    pub fn topic(&self) -> &str {
        let t = &self.data[..usize::from(self.topic_len)];
        // SAFETY: `owned` copied these bytes from a `&str`, cut at a length the codec's string
        // limit guarantees is the whole string (a char boundary).
        unsafe { std::str::from_utf8_unchecked(t) }
    }

    /// The topic as a shared string (no copy).
    pub fn topic_shared(&self) -> ByteString {
        let t = self.data.slice(..usize::from(self.topic_len));
        // SAFETY: as in `topic`.
        unsafe { ByteString::from_bytes_unchecked(t) }
    }

    pub fn payload(&self) -> &[u8] {
        &self.data[usize::from(self.topic_len)..]
    }

    /// The payload as shared bytes (no copy).
    pub fn payload_bytes(&self) -> Bytes {
        self.data.slice(usize::from(self.topic_len)..)
    }

    /// Topic and payload bytes: what a queue counts against `queued_bytes_max`.
    pub fn size_bytes(&self) -> usize {
        self.data.len()
    }
}

fn own_str(s: &mut ByteString) {
    *s = ByteString::from(&**s);
}

fn own_bytes(b: &mut Bytes) {
    *b = Bytes::copy_from_slice(b);
}

/// The same properties with every string and binary value copied out of whatever buffer it
/// was decoded from.
pub fn own_properties(mut p: Properties) -> Properties {
    for s in [&mut p.content_type, &mut p.response_topic]
        .into_iter()
        .flatten()
    {
        own_str(s);
    }
    if let Some(b) = &mut p.correlation_data {
        own_bytes(b);
    }
    for (k, v) in &mut p.user_properties {
        own_str(k);
        own_str(v);
    }
    p.user_properties.shrink_to_fit();
    p
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
    /// Boxed: rare, and the box keeps every other delivery 24 bytes smaller.
    pub shared: Option<Box<ByteString>>,
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
            let mut p = self.msg.properties.as_deref().cloned().unwrap_or_default();
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
            topic: self.msg.topic_shared(),
            packet_id,
            properties,
            payload: self.msg.data.slice(usize::from(self.msg.topic_len)..),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_message_copies_out_of_the_read_buffer() {
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let payload = chunk.slice(10..74);
        let mut props = Properties {
            user_properties: vec![("k".into(), "v".into())],
            topic_alias: Some(3),
            ..Properties::default()
        };
        props.subscription_identifiers.push(7);
        let m = Message::owned("a/b", &payload, QoS::AtLeastOnce, false, props, 9);
        assert_eq!(m.topic(), "a/b");
        assert_eq!(m.payload(), &payload[..]);
        assert_ne!(
            m.payload().as_ptr(),
            payload.as_ptr(),
            "a copy, not a slice"
        );
        let p = m.properties.as_deref().expect("user property kept");
        assert_eq!(p.topic_alias, None, "per-hop alias removed");
        assert!(p.subscription_identifiers.is_empty());
        assert_eq!(m.size_bytes(), 67);
        let bare = Message::owned("t", b"", QoS::AtMostOnce, false, Properties::default(), 0);
        assert!(bare.properties.is_none(), "no box for empty properties");
    }

    /// The sizes docs/PERFORMANCE.md counts per queued message.
    #[test]
    fn a_queued_delivery_and_its_message_stay_small() {
        assert!(
            std::mem::size_of::<Delivery>() <= 48,
            "{}",
            std::mem::size_of::<Delivery>()
        );
        assert!(
            std::mem::size_of::<Message>() <= 80,
            "{}",
            std::mem::size_of::<Message>()
        );
    }
}
