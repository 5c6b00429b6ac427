//! Decode and encode errors: small `Copy` enums whose messages cite the specification, and the
//! one place that maps them to MQTT 5 reason codes.

use std::fmt;

/// Why a peer's bytes were refused. Each variant maps to exactly one MQTT 5 reason code
/// ([`DecodeError::reason_code`]); a v3 connection is simply closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Remaining length varint longer than four bytes [MQTT-1.5.5-1] / [MQTT-2.2.3].
    MalformedLength,
    /// Declared packet size over the receiver's maximum [MQTT-3.2.2-15] (0x95).
    PacketTooLarge,
    /// Reserved flag bits in the fixed header have the wrong value [MQTT-2.1.3-1].
    ReservedFlags,
    /// Packet type 0 (reserved in every version), or 15 (AUTH) on a v3 connection, where it is
    /// reserved too (MQTT 3.1.1 §2.2.1). Refused from the first byte of the fixed header.
    UnknownPacketType,
    /// A client sent a packet only a server sends (CONNACK, SUBACK, UNSUBACK, PINGRESP): a
    /// Protocol Error (0x82) whatever follows its first byte, decided before its body is read.
    ServerOnlyPacket,
    /// The body is shorter or longer than its fields say, or a field is out of range.
    Malformed,
    /// QoS 3 in a PUBLISH, will or subscription option [MQTT-3.3.1-4].
    InvalidQoS,
    /// Packet identifier 0 where one is required [MQTT-2.2.1-3].
    ZeroPacketId,
    /// A string is not well-formed UTF-8, holds U+0000 or a surrogate [MQTT-1.5.4-1..2].
    InvalidUtf8,
    /// Topic name has wildcards or is empty [MQTT-3.3.2-1..2] / [MQTT-4.7.3-1].
    InvalidTopicName,
    /// Topic filter breaks the wildcard rules [MQTT-4.7.1-1..3].
    InvalidTopicFilter,
    /// A property appears twice where only one is allowed [MQTT-2.2.2-2].
    DuplicateProperty,
    /// A property identifier unknown or not allowed on this packet.
    InvalidProperty,
    /// Protocol name not "MQTT"/"MQIsdp" [MQTT-3.1.2-1].
    InvalidProtocolName,
    /// Protocol level not 3, 4 or 5 [MQTT-3.1.2-2] (v3 return code 1, v5 0x84).
    UnsupportedProtocolVersion,
    /// A client identifier the server does not allow (v3 return code 2, v5 0x85): one with a
    /// control character (§1.5.4), or an MQTT 3.1 one that is not 1–23 characters long (MQTT
    /// 3.1 §3.1, "Client Identifier").
    ClientIdNotValid,
    /// A user name with a control character (§1.5.4): "the data in the user name or password is
    /// malformed" (v3 return code 4, v5 0x86).
    BadUserName,
    /// CONNECT reserved flag set, or will flags inconsistent [MQTT-3.1.2-3], [MQTT-3.1.2-11..15].
    InvalidConnectFlags,
    /// SUBSCRIBE or UNSUBSCRIBE with no filter [MQTT-3.8.3-3] / [MQTT-3.10.3-2].
    NoTopicFilters,
    /// Reserved bits in subscription options set [MQTT-3.8.3-5].
    InvalidSubscriptionOptions,
    /// Payload Format Indicator says UTF-8 but the payload is not (0x99).
    PayloadFormatInvalid,
    /// Well-formed but not allowed: a property value the specification calls a Protocol
    /// Error (Receive Maximum 0, a flag of 2, ...), Retain Handling 3, No Local on a shared
    /// subscription, an empty topic without alias, (UN)SUBSCRIBE without filters (0x82).
    ProtocolError,
    /// Topic Alias 0 [MQTT-3.3.2-8] (0x94).
    TopicAliasInvalid,
}

impl DecodeError {
    /// MQTT 5 reason code for a DISCONNECT (or CONNACK before the session exists).
    pub fn reason_code(self) -> u8 {
        match self {
            DecodeError::PacketTooLarge => 0x95,
            DecodeError::UnsupportedProtocolVersion => 0x84,
            DecodeError::PayloadFormatInvalid => 0x99,
            DecodeError::InvalidTopicName => 0x90,
            DecodeError::TopicAliasInvalid => 0x94,
            DecodeError::ClientIdNotValid => 0x85,
            DecodeError::BadUserName => 0x86,
            DecodeError::ProtocolError
            | DecodeError::ServerOnlyPacket
            | DecodeError::NoTopicFilters
            | DecodeError::UnknownPacketType
            | DecodeError::InvalidProtocolName
            | DecodeError::DuplicateProperty => 0x82,
            _ => 0x81,
        }
    }

    /// The MQTT 3.1 / 3.1.1 CONNACK return code for a CONNECT refused with this error, if that
    /// version has one; `None` means the connection is just closed (3.1.1 [MQTT-3.1.4-1]:
    /// a non-conforming CONNECT closes the connection, and return codes exist only for these).
    pub fn v3_connack_code(self) -> Option<u8> {
        match self {
            DecodeError::UnsupportedProtocolVersion => Some(0x01),
            DecodeError::ClientIdNotValid => Some(0x02),
            DecodeError::BadUserName => Some(0x04),
            _ => None,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            DecodeError::MalformedLength => "remaining length longer than 4 bytes [MQTT-1.5.5-1]",
            DecodeError::PacketTooLarge => {
                "packet larger than the maximum packet size [MQTT-3.2.2-15]"
            }
            DecodeError::ReservedFlags => "reserved fixed-header flags are wrong [MQTT-2.1.3-1]",
            DecodeError::UnknownPacketType => "reserved packet type [MQTT-2.1.2]",
            DecodeError::ServerOnlyPacket => {
                "a packet only a server sends (CONNACK, SUBACK, UNSUBACK, PINGRESP) [MQTT-2.1.2]"
            }
            DecodeError::Malformed => "malformed packet: fields disagree with the length",
            DecodeError::InvalidQoS => "QoS 3 is reserved [MQTT-3.3.1-4]",
            DecodeError::ZeroPacketId => "packet identifier must be non-zero [MQTT-2.2.1-3]",
            DecodeError::InvalidUtf8 => "ill-formed UTF-8 string [MQTT-1.5.4-1]",
            DecodeError::InvalidTopicName => "invalid topic name [MQTT-3.3.2-2]",
            DecodeError::InvalidTopicFilter => "invalid topic filter [MQTT-4.7.1-1]",
            DecodeError::DuplicateProperty => "property included more than once [MQTT-2.2.2-2]",
            DecodeError::InvalidProperty => "property not allowed on this packet [MQTT-2.2.2-2]",
            DecodeError::InvalidProtocolName => "protocol name is not MQTT [MQTT-3.1.2-1]",
            DecodeError::UnsupportedProtocolVersion => "unsupported protocol level [MQTT-3.1.2-2]",
            DecodeError::ClientIdNotValid => {
                "client identifier not allowed: a control character, or not 1-23 characters in \
                 MQTT 3.1 [MQTT-1.5.4-2] [MQTT-3.1.3-5]"
            }
            DecodeError::BadUserName => "user name holds a control character [MQTT-1.5.4-2]",
            DecodeError::InvalidConnectFlags => "invalid CONNECT flags [MQTT-3.1.2-3]",
            DecodeError::NoTopicFilters => "no topic filter in (UN)SUBSCRIBE [MQTT-3.8.3-3]",
            DecodeError::InvalidSubscriptionOptions => {
                "reserved subscription option bits set [MQTT-3.8.3-5]"
            }
            DecodeError::PayloadFormatInvalid => {
                "payload is not UTF-8 as its format indicator says [MQTT-3.3.2-4]"
            }
            DecodeError::ProtocolError => "protocol error: a value the specification forbids",
            DecodeError::TopicAliasInvalid => "topic alias 0 is not permitted [MQTT-3.3.2-8]",
        };
        f.write_str(s)
    }
}

impl std::error::Error for DecodeError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// A string or binary field longer than 65,535 bytes.
    FieldTooLong,
    /// The packet is longer than the 268,435,455 bytes a remaining length can express.
    PacketTooLarge,
    /// A QoS > 0 publish with packet id 0, or a similar impossible value.
    InvalidValue,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            EncodeError::FieldTooLong => "field longer than 65535 bytes",
            EncodeError::PacketTooLarge => "packet longer than 268435455 bytes",
            EncodeError::InvalidValue => "value not encodable",
        };
        f.write_str(s)
    }
}

impl std::error::Error for EncodeError {}
