//! MQTT 5 properties: one struct for every packet, with decode checking which identifiers each
//! packet allows and refusing duplicates.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use smallvec::SmallVec;

use crate::primitives::{
    put_binary, put_str, put_varint, read_binary, read_string, read_u16, read_u32, read_u8,
    read_varint, str_wire_len, varint_len, MAX_VARINT,
};
use crate::topic::is_valid_topic_name;
use crate::{DecodeError, EncodeError};

/// Every MQTT 5 property. Absent ones are `None` / empty; v3 packets always carry the default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Properties {
    pub payload_format_indicator: Option<u8>,   // 0x01
    pub message_expiry_interval_s: Option<u32>, // 0x02
    pub content_type: Option<ByteString>,       // 0x03
    pub response_topic: Option<ByteString>,     // 0x08
    pub correlation_data: Option<Bytes>,        // 0x09
    /// 0x0B; a PUBLISH may carry several (one per matching subscription).
    pub subscription_identifiers: SmallVec<[u32; 1]>,
    pub session_expiry_interval_s: Option<u32>, // 0x11
    pub assigned_client_identifier: Option<ByteString>, // 0x12
    pub server_keep_alive_s: Option<u16>,       // 0x13
    pub authentication_method: Option<ByteString>, // 0x15
    pub authentication_data: Option<Bytes>,     // 0x16
    pub request_problem_information: Option<u8>, // 0x17
    pub will_delay_interval_s: Option<u32>,     // 0x18
    pub request_response_information: Option<u8>, // 0x19
    pub response_information: Option<ByteString>, // 0x1A
    pub server_reference: Option<ByteString>,   // 0x1C
    pub reason_string: Option<ByteString>,      // 0x1F
    pub receive_maximum: Option<u16>,           // 0x21
    pub topic_alias_maximum: Option<u16>,       // 0x22
    pub topic_alias: Option<u16>,               // 0x23
    pub maximum_qos: Option<u8>,                // 0x24
    pub retain_available: Option<u8>,           // 0x25
    /// 0x26; order preserved, duplicates allowed [MQTT-3.3.2-18].
    pub user_properties: Vec<(ByteString, ByteString)>,
    pub maximum_packet_size: Option<u32>,              // 0x27
    pub wildcard_subscription_available: Option<u8>,   // 0x28
    pub subscription_identifier_available: Option<u8>, // 0x29
    pub shared_subscription_available: Option<u8>,     // 0x2A
}

/// Where a property list sits; each place allows a different set of identifiers (MQTT 5
/// table 2.4, "Properties").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PropCtx {
    Connect,
    /// The will properties inside the CONNECT payload [MQTT-3.1.3.2].
    Will,
    ConnAck,
    Publish,
    /// PUBACK, PUBREC, PUBREL and PUBCOMP.
    Ack,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

const fn bits(ids: &[u8]) -> u64 {
    let mut m = 0u64;
    let mut i = 0;
    while i < ids.len() {
        m |= 1 << ids[i];
        i += 1;
    }
    m
}

const USER_PROPERTY: usize = 0x26;
const SUBSCRIPTION_IDENTIFIER: usize = 0x0B;

impl PropCtx {
    /// Bit `id` set when property `id` may appear here (table 2.4; user property everywhere).
    const fn allowed(self) -> u64 {
        match self {
            PropCtx::Connect => bits(&[0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27]),
            PropCtx::Will => bits(&[0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26]),
            PropCtx::ConnAck => bits(&[
                0x11, 0x12, 0x13, 0x15, 0x16, 0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x24, 0x25, 0x26, 0x27,
                0x28, 0x29, 0x2A,
            ]),
            PropCtx::Publish => bits(&[0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26]),
            PropCtx::Ack | PropCtx::SubAck | PropCtx::UnsubAck => bits(&[0x1F, 0x26]),
            PropCtx::Subscribe => bits(&[0x0B, 0x26]),
            PropCtx::Unsubscribe => bits(&[0x26]),
            PropCtx::Disconnect => bits(&[0x11, 0x1C, 0x1F, 0x26]),
            PropCtx::Auth => bits(&[0x15, 0x16, 0x1F, 0x26]),
        }
    }
}

/// A byte property that is a boolean on the wire: any value but 0 or 1 is a Protocol Error
/// (e.g. [MQTT-3.1.2.11.6] for Request Problem Information, [MQTT-2.2.2] payload format).
fn read_flag(buf: &mut Bytes) -> Result<u8, DecodeError> {
    match read_u8(buf)? {
        v @ (0 | 1) => Ok(v),
        _ => Err(DecodeError::ProtocolError),
    }
}

/// A two-byte property for which 0 is a Protocol Error (Receive Maximum, Topic Alias).
fn read_nonzero_u16(buf: &mut Bytes) -> Result<u16, DecodeError> {
    match read_u16(buf)? {
        0 => Err(DecodeError::ProtocolError),
        v => Ok(v),
    }
}

impl Properties {
    /// True when no property is set: the v5 encoding is then a single 0x00 length byte.
    pub fn is_empty(&self) -> bool {
        *self == Properties::default()
    }

    /// Read a property length and the list it covers from the front of `buf`, refusing
    /// identifiers not allowed in `ctx` and duplicates [MQTT-2.2.2-2].
    pub(crate) fn decode(buf: &mut Bytes, ctx: PropCtx) -> Result<Properties, DecodeError> {
        let len = read_varint(buf)?;
        if len > buf.len() {
            return Err(DecodeError::Malformed);
        }
        let mut p = buf.split_to(len);
        let mut props = Properties::default();
        if p.is_empty() {
            return Ok(props);
        }
        let allowed = ctx.allowed();
        let mut seen = 0u64;
        while !p.is_empty() {
            let id = read_varint(&mut p)?;
            if id >= 64 || allowed & (1u64 << id) == 0 {
                return Err(DecodeError::InvalidProperty);
            }
            let bit = 1u64 << id;
            // Only User Property may repeat anywhere; Subscription Identifier may repeat in a
            // PUBLISH (one per matching subscription, [MQTT-3.3.4-4]) but not in a SUBSCRIBE.
            let may_repeat =
                id == USER_PROPERTY || (id == SUBSCRIPTION_IDENTIFIER && ctx == PropCtx::Publish);
            if seen & bit != 0 && !may_repeat {
                return Err(DecodeError::DuplicateProperty);
            }
            seen |= bit;
            match id {
                0x01 => props.payload_format_indicator = Some(read_flag(&mut p)?),
                0x02 => props.message_expiry_interval_s = Some(read_u32(&mut p)?),
                0x03 => props.content_type = Some(read_string(&mut p)?),
                0x08 => {
                    let t = read_string(&mut p)?;
                    // [MQTT-3.3.2-14]: a Response Topic is a topic name, no wildcards.
                    if !is_valid_topic_name(&t) {
                        return Err(DecodeError::InvalidTopicName);
                    }
                    props.response_topic = Some(t);
                }
                0x09 => props.correlation_data = Some(read_binary(&mut p)?),
                0x0B => {
                    // 0 is a Protocol Error [MQTT-3.8.2.1.2]; four bytes cap it at 268,435,455.
                    let v = read_varint(&mut p)?;
                    if v == 0 {
                        return Err(DecodeError::ProtocolError);
                    }
                    props.subscription_identifiers.push(v as u32);
                }
                0x11 => props.session_expiry_interval_s = Some(read_u32(&mut p)?),
                0x12 => props.assigned_client_identifier = Some(read_string(&mut p)?),
                0x13 => props.server_keep_alive_s = Some(read_u16(&mut p)?),
                0x15 => props.authentication_method = Some(read_string(&mut p)?),
                0x16 => props.authentication_data = Some(read_binary(&mut p)?),
                0x17 => props.request_problem_information = Some(read_flag(&mut p)?),
                0x18 => props.will_delay_interval_s = Some(read_u32(&mut p)?),
                0x19 => props.request_response_information = Some(read_flag(&mut p)?),
                0x1A => props.response_information = Some(read_string(&mut p)?),
                0x1C => props.server_reference = Some(read_string(&mut p)?),
                0x1F => props.reason_string = Some(read_string(&mut p)?),
                // [MQTT-3.1.2.11.3] / [MQTT-3.2.2.3.3]: Receive Maximum 0 is a Protocol Error.
                0x21 => props.receive_maximum = Some(read_nonzero_u16(&mut p)?),
                0x22 => props.topic_alias_maximum = Some(read_u16(&mut p)?),
                // [MQTT-3.3.2-8]: Topic Alias 0 is not permitted.
                0x23 => {
                    props.topic_alias = Some(match read_u16(&mut p)? {
                        0 => return Err(DecodeError::TopicAliasInvalid),
                        v => v,
                    })
                }
                // Maximum QoS is 0 or 1 [MQTT-3.2.2.3.4].
                0x24 => props.maximum_qos = Some(read_flag(&mut p)?),
                0x25 => props.retain_available = Some(read_flag(&mut p)?),
                0x26 => {
                    let k = read_string(&mut p)?;
                    let v = read_string(&mut p)?;
                    props.user_properties.push((k, v));
                }
                0x27 => {
                    // Maximum Packet Size 0 is a Protocol Error [MQTT-3.1.2.11.4].
                    let v = read_u32(&mut p)?;
                    if v == 0 {
                        return Err(DecodeError::ProtocolError);
                    }
                    props.maximum_packet_size = Some(v);
                }
                0x28 => props.wildcard_subscription_available = Some(read_flag(&mut p)?),
                0x29 => props.subscription_identifier_available = Some(read_flag(&mut p)?),
                0x2A => props.shared_subscription_available = Some(read_flag(&mut p)?),
                _ => return Err(DecodeError::InvalidProperty),
            }
        }
        Ok(props)
    }

    /// Bytes of the property list itself (without its length prefix). Fails on a string or
    /// binary value over 65,535 bytes or a subscription identifier out of 1..=268,435,455.
    pub fn content_len(&self) -> Result<usize, EncodeError> {
        fn s(v: &Option<ByteString>) -> Result<usize, EncodeError> {
            match v {
                Some(v) => Ok(1 + str_wire_len(v.len())?),
                None => Ok(0),
            }
        }
        fn b(v: &Option<Bytes>) -> Result<usize, EncodeError> {
            match v {
                Some(v) => Ok(1 + str_wire_len(v.len())?),
                None => Ok(0),
            }
        }
        fn n<T>(v: &Option<T>, size: usize) -> usize {
            if v.is_some() {
                1 + size
            } else {
                0
            }
        }
        let mut len = n(&self.payload_format_indicator, 1)
            + n(&self.message_expiry_interval_s, 4)
            + s(&self.content_type)?
            + s(&self.response_topic)?
            + b(&self.correlation_data)?
            + n(&self.session_expiry_interval_s, 4)
            + s(&self.assigned_client_identifier)?
            + n(&self.server_keep_alive_s, 2)
            + s(&self.authentication_method)?
            + b(&self.authentication_data)?
            + n(&self.request_problem_information, 1)
            + n(&self.will_delay_interval_s, 4)
            + n(&self.request_response_information, 1)
            + s(&self.response_information)?
            + s(&self.server_reference)?
            + s(&self.reason_string)?
            + n(&self.receive_maximum, 2)
            + n(&self.topic_alias_maximum, 2)
            + n(&self.topic_alias, 2)
            + n(&self.maximum_qos, 1)
            + n(&self.retain_available, 1)
            + n(&self.maximum_packet_size, 4)
            + n(&self.wildcard_subscription_available, 1)
            + n(&self.subscription_identifier_available, 1)
            + n(&self.shared_subscription_available, 1);
        for &id in &self.subscription_identifiers {
            let id = id as usize;
            if id == 0 || id > MAX_VARINT {
                return Err(EncodeError::InvalidValue);
            }
            len += 1 + varint_len(id);
        }
        for (k, v) in &self.user_properties {
            len += 1 + str_wire_len(k.len())? + str_wire_len(v.len())?;
        }
        Ok(len)
    }

    /// Bytes the property list takes on the wire, length prefix included.
    pub fn wire_len(&self) -> Result<usize, EncodeError> {
        let c = self.content_len()?;
        Ok(varint_len(c) + c)
    }

    /// Write the length prefix and the properties. `content_len` must come from
    /// [`Properties::content_len`] on the same value (which also validated field lengths).
    pub(crate) fn encode(&self, content_len: usize, out: &mut BytesMut) {
        put_varint(out, content_len);
        if content_len == 0 {
            return;
        }
        let start = out.len();
        if let Some(v) = self.payload_format_indicator {
            out.put_u8(0x01);
            out.put_u8(v);
        }
        if let Some(v) = self.message_expiry_interval_s {
            out.put_u8(0x02);
            out.put_u32(v);
        }
        if let Some(v) = &self.content_type {
            out.put_u8(0x03);
            put_str(out, v);
        }
        if let Some(v) = &self.response_topic {
            out.put_u8(0x08);
            put_str(out, v);
        }
        if let Some(v) = &self.correlation_data {
            out.put_u8(0x09);
            put_binary(out, v);
        }
        for &id in &self.subscription_identifiers {
            out.put_u8(0x0B);
            put_varint(out, id as usize);
        }
        if let Some(v) = self.session_expiry_interval_s {
            out.put_u8(0x11);
            out.put_u32(v);
        }
        if let Some(v) = &self.assigned_client_identifier {
            out.put_u8(0x12);
            put_str(out, v);
        }
        if let Some(v) = self.server_keep_alive_s {
            out.put_u8(0x13);
            out.put_u16(v);
        }
        if let Some(v) = &self.authentication_method {
            out.put_u8(0x15);
            put_str(out, v);
        }
        if let Some(v) = &self.authentication_data {
            out.put_u8(0x16);
            put_binary(out, v);
        }
        if let Some(v) = self.request_problem_information {
            out.put_u8(0x17);
            out.put_u8(v);
        }
        if let Some(v) = self.will_delay_interval_s {
            out.put_u8(0x18);
            out.put_u32(v);
        }
        if let Some(v) = self.request_response_information {
            out.put_u8(0x19);
            out.put_u8(v);
        }
        if let Some(v) = &self.response_information {
            out.put_u8(0x1A);
            put_str(out, v);
        }
        if let Some(v) = &self.server_reference {
            out.put_u8(0x1C);
            put_str(out, v);
        }
        if let Some(v) = &self.reason_string {
            out.put_u8(0x1F);
            put_str(out, v);
        }
        if let Some(v) = self.receive_maximum {
            out.put_u8(0x21);
            out.put_u16(v);
        }
        if let Some(v) = self.topic_alias_maximum {
            out.put_u8(0x22);
            out.put_u16(v);
        }
        if let Some(v) = self.topic_alias {
            out.put_u8(0x23);
            out.put_u16(v);
        }
        if let Some(v) = self.maximum_qos {
            out.put_u8(0x24);
            out.put_u8(v);
        }
        if let Some(v) = self.retain_available {
            out.put_u8(0x25);
            out.put_u8(v);
        }
        for (k, v) in &self.user_properties {
            out.put_u8(0x26);
            put_str(out, k);
            put_str(out, v);
        }
        if let Some(v) = self.maximum_packet_size {
            out.put_u8(0x27);
            out.put_u32(v);
        }
        if let Some(v) = self.wildcard_subscription_available {
            out.put_u8(0x28);
            out.put_u8(v);
        }
        if let Some(v) = self.subscription_identifier_available {
            out.put_u8(0x29);
            out.put_u8(v);
        }
        if let Some(v) = self.shared_subscription_available {
            out.put_u8(0x2A);
            out.put_u8(v);
        }
        debug_assert_eq!(out.len() - start, content_len);
    }
}
