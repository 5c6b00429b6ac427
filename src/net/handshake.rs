//! The start of a connection, before the protocol engine has a session: read the first packet
//! (it must be CONNECT), refuse a bad one in the form its version expects, and run the
//! CONNECT-time enhanced authentication exchange [MQTT-4.12].
//!
//! Never: reads past what the CONNECT phase needs without keeping it (bytes after the CONNECT
//! stay in the read buffer for the engine, or travel with a hand-over).

use super::connection::{close_gracefully, write_all};
use super::read_chunk::poll_read_copied;
use crate::auth::AuthStep;
use crate::codec::{self, DecodeError, Packet, Protocol};
use crate::shard::ctx::ShardCtx;
use crate::transport::Transport;
use bytes::BytesMut;
use std::future::poll_fn;
use std::time::Duration;

pub(super) enum FirstError {
    /// With the CONNECT's version when the packet was a complete CONNECT.
    Decode(DecodeError, Option<Result<Protocol, DecodeError>>),
    Timeout,
    Io,
}

pub(super) async fn read_first<S: Transport>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    max: usize,
) -> Result<Packet, FirstError> {
    loop {
        // The server's side of framing: a reserved type or a packet only a server sends is
        // refused from its first byte.
        let frame = codec::frame_from_client(rbuf, max).map_err(|e| FirstError::Decode(e, None))?;
        if let Some(f) = frame.filter(|f| rbuf.len() >= f.total_len()) {
            // Peek the version before decoding (which consumes the bytes) so a bad CONNECT can
            // be answered in the client's own version.
            let version = (f.header >> 4 == 1)
                .then(|| codec::peek_connect_protocol(&rbuf[f.header_len..f.total_len()]));
            return match codec::decode_from_client(rbuf, Protocol::V5, max) {
                Ok(Some(p)) => Ok(p),
                Ok(None) => Err(FirstError::Io),
                Err(e) => Err(FirstError::Decode(e, version)),
            };
        }
        let n = poll_fn(|cx| poll_read_copied(cx, stream, rbuf)).await;
        match n {
            Ok(0) | Err(_) => return Err(FirstError::Io),
            Ok(_) => {}
        }
    }
}

/// Answer a CONNECT we could not accept with the CONNACK its version expects, then close.
/// The form follows the version the CONNECT asked for, never the error: a 5.0 client gets the
/// 5.0 form with a reason code; a 3.1 / 3.1.1 client, and one whose level we do not speak,
/// gets the 3.1.1 form (4 bytes) when its version has a return code for the error, and is
/// otherwise just closed [MQTT-3.1.4-1].
pub(super) async fn refuse_bad_connect<S: Transport>(
    stream: &mut S,
    e: DecodeError,
    version: Option<Result<Protocol, DecodeError>>,
) {
    log::debug!("bad CONNECT: {e}");
    let v3_form = |code: Option<u8>| code.map(|c| vec![0x20, 2, 0, c]);
    let bytes = match version {
        // [MQTT-3.1.4-1] v5: CONNACK with the reason code (no properties), then close.
        Some(Ok(Protocol::V5)) => Some(vec![0x20, 3, 0, e.reason_code(), 0]),
        // 3.1 / 3.1.1: a return code if one exists (identifier rejected, bad user name).
        Some(Ok(Protocol::V310 | Protocol::V311)) => v3_form(e.v3_connack_code()),
        // [MQTT-3.1.2-2]: an unsupported level gets return code 0x01 in the 3.1.1 form, the
        // only one a client of an unknown version can be expected to read.
        Some(Err(DecodeError::UnsupportedProtocolVersion)) => v3_form(Some(0x01)),
        // Not a CONNECT, or no protocol name and level to go by: close.
        Some(Err(_)) | None => None,
    };
    if let Some(bytes) = bytes {
        close_gracefully(stream, &bytes).await;
    }
}

/// Refuse a CONNECT that decoded fine: CONNACK with `v5_code` (or the v3 return code) in the
/// form the client's version reads, then the graceful close.
pub(super) async fn refuse_connect<S: Transport>(
    stream: &mut S,
    protocol: Protocol,
    v5_code: u8,
    v3_code: u8,
) {
    let bytes = if protocol.is_v5() {
        vec![0x20, 3, 0, v5_code, 0]
    } else {
        vec![0x20, 2, 0, v3_code]
    };
    close_gracefully(stream, &bytes).await;
}

pub(super) fn assign_client_id(shard: usize) -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen();
    format!("ringmq-{shard}-{n:016x}")
}

pub(super) fn packet_name(p: &Packet) -> &'static str {
    match p {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect(_) => "DISCONNECT",
        Packet::Auth(_) => "AUTH",
    }
}

/// The CONNECT-time enhanced authentication exchange [MQTT-4.12]: AUTH 0x18 back and forth
/// until the method succeeds (its final data goes in CONNACK) or fails (the reason code).
pub(super) async fn authenticate<S: Transport>(
    ctx: &ShardCtx,
    stream: &mut S,
    rbuf: &mut BytesMut,
    c: &codec::Connect,
) -> Result<Option<bytes::Bytes>, u8> {
    let method = c
        .properties
        .authentication_method
        .clone()
        .unwrap_or_default();
    let Some(auth) = ctx.auth.get(&method) else {
        return Err(0x8C); // Bad authentication method
    };
    let (mut exchange, mut step) = auth.start(c.properties.authentication_data.as_deref());
    let deadline = Duration::from_millis(ctx.cfg.connect_timeout_ms);
    loop {
        let data = match step {
            AuthStep::Success(data) => return Ok(data),
            AuthStep::Fail(code) => return Err(code),
            AuthStep::Continue(data) => data,
        };
        let Some(ex) = exchange.as_mut() else {
            return Err(0x87);
        };
        let challenge = Packet::Auth(codec::Auth {
            reason: 0x18,
            properties: codec::Properties {
                authentication_method: Some(method.clone()),
                authentication_data: Some(data),
                ..Default::default()
            },
        });
        let mut out = BytesMut::new();
        if codec::encode(&challenge, Protocol::V5, &mut out).is_err()
            || write_all(stream, &out).await.is_err()
        {
            return Err(0x87);
        }
        let max = ctx.cfg.packet_bytes_max;
        let reply = futures_lite::future::or(read_first(stream, rbuf, max), async {
            glommio::timer::sleep(deadline).await;
            Err(FirstError::Timeout)
        })
        .await;
        step = match reply {
            Ok(Packet::Auth(a))
                if a.reason == 0x18
                    && a.properties.authentication_method.as_ref() == Some(&method) =>
            {
                ex.step(a.properties.authentication_data.as_deref())
            }
            // Anything else mid-exchange is a protocol error [MQTT-4.12.0-5].
            Ok(_) => return Err(0x82),
            Err(FirstError::Decode(e, _)) => return Err(e.reason_code()),
            Err(_) => return Err(0x87),
        };
    }
}

/// Passwords, tokens and anonymous access for a CONNECT, decided on the accepting shard before
/// any hand-over. A password that is not in the cache is derived on glommio's blocking thread,
/// never on the reactor (PBKDF2 and argon2 take milliseconds by design).
pub(super) async fn check_credentials(
    ctx: &ShardCtx,
    listener: &crate::listeners::ListenerConfig,
    c: &codec::Connect,
) -> Result<crate::auth::security::Authenticated, crate::auth::security::Refusal> {
    use crate::auth::security::{ConnectAuth, ConnectCheck};
    let security = ctx.shard.borrow().security.clone();
    let auth = ConnectAuth {
        username: c.username.as_deref(),
        password: c.password.as_deref(),
        client_id: &c.client_id,
        loopback_listener: listener.is_loopback(),
        listener_allow_anonymous: listener.allow_anonymous,
    };
    let check = security.check_connect(&mut ctx.shard.borrow_mut().verify_cache, auth);
    match check {
        ConnectCheck::Done(r) => r,
        ConnectCheck::Derive(job) => {
            let (job, ok) = glommio::executor()
                .spawn_blocking(move || {
                    let ok = job.run();
                    (job, ok)
                })
                .await;
            job.finish(ok, &mut ctx.shard.borrow_mut().verify_cache)
        }
    }
}
