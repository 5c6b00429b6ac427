//! Sans-IO MQTT 3.1 / 3.1.1 / 5.0 codec: bytes ⇄ [`Packet`].
//!
//! Owns: the wire format of every control packet of all three protocol versions, every MQTT 5
//! property, and the strict validation the specification asks of a receiver.
//! Never: touches a socket, allocates for a payload (payloads are `Bytes` slices of the read
//! buffer), or panics on peer input. The protocol version is a parameter, not a second tree,
//! because every version shares one port.
//!
//! Framing runs in two phases ([`frame`] then decode): a cheap header check answers "incomplete"
//! or the frame length, and a declared length over the maximum packet size is refused before any
//! byte of the body is buffered.

mod ack;
mod auth;
mod connack;
mod connect;
mod disconnect;
mod error;
mod primitives;
mod properties;
mod publish;
mod suback;
mod subscribe;
pub mod topic;
mod unsubscribe;

pub use connect::peek_connect_protocol;
pub use error::{DecodeError, EncodeError};
pub use primitives::{validate_utf8_str, varint_len};
pub use properties::Properties;
/// The PUBLISH fast path: encode / size a [`Publish`] without wrapping it in a [`Packet`].
pub use publish::{
    encode as encode_publish, encode_head as encode_publish_head,
    encoded_len as publish_encoded_len,
};

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

/// Protocol level byte of CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// MQTT 3.1 (protocol name "MQIsdp", level 3).
    V310,
    /// MQTT 3.1.1 (level 4).
    V311,
    /// MQTT 5.0 (level 5).
    V5,
}

impl Protocol {
    pub fn level(self) -> u8 {
        match self {
            Protocol::V310 => 3,
            Protocol::V311 => 4,
            Protocol::V5 => 5,
        }
    }
    pub fn is_v5(self) -> bool {
        self == Protocol::V5
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QoS {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// Control packet type, the high nibble of the fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    Connect = 1,
    ConnAck = 2,
    Publish = 3,
    PubAck = 4,
    PubRec = 5,
    PubRel = 6,
    PubComp = 7,
    Subscribe = 8,
    SubAck = 9,
    Unsubscribe = 10,
    UnsubAck = 11,
    PingReq = 12,
    PingResp = 13,
    Disconnect = 14,
    Auth = 15,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(Ack),
    PubRec(Ack),
    PubRel(Ack),
    PubComp(Ack),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Auth),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub protocol: Protocol,
    pub clean_start: bool,
    pub keep_alive_s: u16,
    pub properties: Properties,
    /// May be empty: the broker then assigns one (or refuses, per version and clean flag).
    pub client_id: ByteString,
    pub will: Option<Will>,
    pub username: Option<ByteString>,
    pub password: Option<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    pub qos: QoS,
    pub retain: bool,
    pub topic: ByteString,
    pub payload: Bytes,
    /// Will properties (v5): will delay interval, message expiry, content type, etc.
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAck {
    pub session_present: bool,
    /// v3 return code (0..=5) or v5 reason code, as the connection's version says.
    pub code: u8,
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Empty only in v5 when a Topic Alias property stands for it.
    pub topic: ByteString,
    /// 0 for QoS 0 (no packet identifier on the wire).
    pub packet_id: u16,
    pub properties: Properties,
    pub payload: Bytes,
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP share one shape.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ack {
    pub packet_id: u16,
    /// v5 reason code; 0 (success) for v3 and when omitted on the wire.
    pub reason: u8,
    pub properties: Properties,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// 0: send retained on subscribe; 1: only if the subscription is new; 2: never.
    pub retain_handling: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscribe {
    pub packet_id: u16,
    pub properties: Properties,
    pub filters: Vec<(ByteString, SubOptions)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubAck {
    pub packet_id: u16,
    pub properties: Properties,
    /// Granted QoS (0..=2) or failure (0x80, v5 reason codes) per filter.
    pub codes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unsubscribe {
    pub packet_id: u16,
    pub properties: Properties,
    pub filters: Vec<ByteString>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnsubAck {
    pub packet_id: u16,
    pub properties: Properties,
    /// v5 reason code per filter; empty for v3 (the packet carries none).
    pub codes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    pub reason: u8,
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    pub reason: u8,
    pub properties: Properties,
}

/// Result of the cheap first phase of framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// First byte of the fixed header (type and flags).
    pub header: u8,
    /// Bytes of fixed header (1 + varint length).
    pub header_len: usize,
    /// Remaining length.
    pub body_len: usize,
}

impl Frame {
    pub fn total_len(&self) -> usize {
        self.header_len + self.body_len
    }
}

/// Phase one: look at the fixed header only. `Ok(None)` means more bytes are needed; a remaining
/// length over `max_packet_bytes` (whole packet) or a varint longer than four bytes is an error
/// at once, before the body is buffered.
pub fn frame(buf: &[u8], max_packet_bytes: usize) -> Result<Option<Frame>, DecodeError> {
    primitives::frame(buf, max_packet_bytes)
}

/// Decode one packet from the front of `buf`, consuming it. `Ok(None)` when `buf` does not yet
/// hold a whole packet (nothing is consumed). `protocol` is the connection's negotiated version;
/// a CONNECT carries its own and ignores it. Either side's packets decode: a server reading
/// what a client sent uses [`decode_from_client`].
pub fn decode(
    buf: &mut BytesMut,
    protocol: Protocol,
    max_packet_bytes: usize,
) -> Result<Option<Packet>, DecodeError> {
    // Type 15 is reserved before 5.0 (3.1.1 §2.2.1): refused from the first byte, like type 0
    // in `frame`.
    if !protocol.is_v5() && buf.first().is_some_and(|&b| b >> 4 == 15) {
        return Err(DecodeError::UnknownPacketType);
    }
    let Some(f) = frame(buf, max_packet_bytes)? else {
        return Ok(None);
    };
    if buf.len() < f.total_len() {
        return Ok(None);
    }
    let mut whole = buf.split_to(f.total_len());
    let _ = whole.split_to(f.header_len);
    decode_body(f.header, whole.freeze(), protocol).map(Some)
}

/// Whether a packet of this first byte is one only a server sends: CONNACK, SUBACK, UNSUBACK,
/// PINGRESP (the direction column of [MQTT-2.1.2]'s table).
fn server_only(header: u8) -> bool {
    matches!(header >> 4, 2 | 9 | 11 | 13)
}

/// Phase one on the server's side: [`frame`], and a packet only a server sends
/// ([`DecodeError::ServerOnlyPacket`], a Protocol Error) refused from its first byte, whatever
/// its remaining length and body would have been.
pub fn frame_from_client(
    buf: &[u8],
    max_packet_bytes: usize,
) -> Result<Option<Frame>, DecodeError> {
    if buf.first().is_some_and(|&b| server_only(b)) {
        return Err(DecodeError::ServerOnlyPacket);
    }
    frame(buf, max_packet_bytes)
}

/// [`decode`] on the server's side: a client's packet. A packet only a server sends is a
/// Protocol Error (v5 DISCONNECT 0x82) from its first byte, even when its body would not decode
/// as that packet; everything else is [`decode`]'s.
pub fn decode_from_client(
    buf: &mut BytesMut,
    protocol: Protocol,
    max_packet_bytes: usize,
) -> Result<Option<Packet>, DecodeError> {
    if buf.first().is_some_and(|&b| server_only(b)) {
        return Err(DecodeError::ServerOnlyPacket);
    }
    decode(buf, protocol, max_packet_bytes)
}

/// Decode one packet body whose fixed header byte is `header`.
pub fn decode_body(header: u8, body: Bytes, protocol: Protocol) -> Result<Packet, DecodeError> {
    let flags = header & 0x0F;
    let fixed_flags = |want: u8| -> Result<(), DecodeError> {
        if flags == want {
            Ok(())
        } else {
            Err(DecodeError::ReservedFlags)
        }
    };
    match header >> 4 {
        1 => {
            fixed_flags(0)?;
            connect::decode(body).map(|c| Packet::Connect(Box::new(c)))
        }
        2 => {
            fixed_flags(0)?;
            connack::decode(body, protocol).map(Packet::ConnAck)
        }
        3 => publish::decode(flags, body, protocol).map(Packet::Publish),
        4 => {
            fixed_flags(0)?;
            ack::decode(PacketType::PubAck, body, protocol).map(Packet::PubAck)
        }
        5 => {
            fixed_flags(0)?;
            ack::decode(PacketType::PubRec, body, protocol).map(Packet::PubRec)
        }
        6 => {
            fixed_flags(0b0010)?;
            ack::decode(PacketType::PubRel, body, protocol).map(Packet::PubRel)
        }
        7 => {
            fixed_flags(0)?;
            ack::decode(PacketType::PubComp, body, protocol).map(Packet::PubComp)
        }
        8 => {
            fixed_flags(0b0010)?;
            subscribe::decode(body, protocol).map(Packet::Subscribe)
        }
        9 => {
            fixed_flags(0)?;
            suback::decode(body, protocol).map(Packet::SubAck)
        }
        10 => {
            fixed_flags(0b0010)?;
            unsubscribe::decode_unsubscribe(body, protocol).map(Packet::Unsubscribe)
        }
        11 => {
            fixed_flags(0)?;
            unsubscribe::decode_unsuback(body, protocol).map(Packet::UnsubAck)
        }
        12 => {
            fixed_flags(0)?;
            empty(body).map(|_| Packet::PingReq)
        }
        13 => {
            fixed_flags(0)?;
            empty(body).map(|_| Packet::PingResp)
        }
        14 => {
            fixed_flags(0)?;
            disconnect::decode(body, protocol).map(Packet::Disconnect)
        }
        15 => {
            fixed_flags(0)?;
            if !protocol.is_v5() {
                return Err(DecodeError::UnknownPacketType);
            }
            auth::decode(body).map(Packet::Auth)
        }
        _ => Err(DecodeError::UnknownPacketType),
    }
}

fn empty(body: Bytes) -> Result<(), DecodeError> {
    if body.is_empty() {
        Ok(())
    } else {
        Err(DecodeError::Malformed)
    }
}

/// Encode `packet` for a peer speaking `protocol`, appending to `out`. Properties are written
/// only for v5; v3 peers get the v3 shape of the same packet.
pub fn encode(packet: &Packet, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
    match packet {
        Packet::Connect(c) => connect::encode(c, out),
        Packet::ConnAck(c) => connack::encode(c, protocol, out),
        Packet::Publish(p) => publish::encode(p, protocol, out),
        Packet::PubAck(a) => ack::encode(PacketType::PubAck, a, protocol, out),
        Packet::PubRec(a) => ack::encode(PacketType::PubRec, a, protocol, out),
        Packet::PubRel(a) => ack::encode(PacketType::PubRel, a, protocol, out),
        Packet::PubComp(a) => ack::encode(PacketType::PubComp, a, protocol, out),
        Packet::Subscribe(s) => subscribe::encode(s, protocol, out),
        Packet::SubAck(s) => suback::encode(s, protocol, out),
        Packet::Unsubscribe(u) => unsubscribe::encode_unsubscribe(u, protocol, out),
        Packet::UnsubAck(u) => unsubscribe::encode_unsuback(u, protocol, out),
        Packet::PingReq => {
            out.extend_from_slice(&[0xC0, 0]);
            Ok(())
        }
        Packet::PingResp => {
            out.extend_from_slice(&[0xD0, 0]);
            Ok(())
        }
        Packet::Disconnect(d) => disconnect::encode(d, protocol, out),
        Packet::Auth(a) => auth::encode(a, protocol, out),
    }
}

/// Bytes `packet` takes on the wire for `protocol` (to honour a peer's Maximum Packet Size
/// before encoding).
pub fn encoded_len(packet: &Packet, protocol: Protocol) -> usize {
    match packet {
        Packet::Publish(p) => publish::encoded_len(p, protocol),
        other => {
            let mut b = BytesMut::new();
            match encode(other, protocol, &mut b) {
                Ok(()) => b.len(),
                Err(_) => usize::MAX,
            }
        }
    }
}
