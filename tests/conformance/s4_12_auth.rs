//! Section 4.12: enhanced authentication (and the AUTH packet of 3.15), against ringmq's
//! SCRAM-SHA-256 method with a user configured by `--user`. The client side of SCRAM
//! (RFC 5802 / RFC 7677) is implemented here, independently of the broker's.

use crate::fixture::*;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use ringmq::codec::{Auth, ConnAck, Packet, Properties, Protocol};
use sha2::{Digest, Sha256};

const METHOD: &str = "SCRAM-SHA-256";
const USER: &str = "alice";
const PASSWORD: &str = "correct horse";

async fn broker() -> Broker {
    Broker::with(&["--user", &format!("{USER}:{PASSWORD}")]).await
}

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    m.update(msg);
    m.finalize().into_bytes().into()
}

/// The client side of one SCRAM-SHA-256 exchange.
struct Scram {
    password: String,
    nonce: String,
    first_bare: String,
    server_key: [u8; 32],
    auth_message: String,
}

impl Scram {
    fn new(user: &str, password: &str) -> Scram {
        let nonce = B64.encode(rand::random::<[u8; 12]>());
        Scram {
            password: password.into(),
            first_bare: format!("n={user},r={nonce}"),
            nonce,
            server_key: [0; 32],
            auth_message: String::new(),
        }
    }

    fn client_first(&self) -> Bytes {
        Bytes::from(format!("n,,{}", self.first_bare))
    }

    /// The client-final message for the server-first message `server_first`.
    fn client_final(&mut self, server_first: &[u8]) -> Bytes {
        let sf = std::str::from_utf8(server_first).expect("server-first is text");
        let attr = |k: &str| {
            sf.split(',')
                .find_map(|a| a.strip_prefix(k))
                .unwrap_or_else(|| panic!("{k} in {sf}"))
        };
        let (r, s, i) = (attr("r="), attr("s="), attr("i="));
        assert!(
            r.starts_with(&self.nonce),
            "server nonce extends ours: {sf}"
        );
        let salt = B64.decode(s).expect("base64 salt");
        let rounds: u32 = i.parse().expect("iteration count");
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(self.password.as_bytes(), &salt, rounds, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        self.server_key = hmac(&salted, b"Server Key");
        let without_proof = format!("c=biws,r={r}");
        self.auth_message = format!("{},{sf},{without_proof}", self.first_bare);
        let signature = hmac(&stored_key, self.auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(k, s)| k ^ s)
            .collect();
        Bytes::from(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// The server-final message proves the server knew our key.
    fn verify(&self, server_final: &[u8]) {
        let want = format!(
            "v={}",
            B64.encode(hmac(&self.server_key, self.auth_message.as_bytes()))
        );
        assert_eq!(std::str::from_utf8(server_final).ok(), Some(want.as_str()));
    }
}

fn auth(reason: u8, method: &str, data: Bytes) -> Packet {
    Packet::Auth(Auth {
        reason,
        properties: Properties {
            authentication_method: Some(method.into()),
            authentication_data: Some(data),
            ..Properties::default()
        },
    })
}

/// The next packet must be AUTH 0x18 (Continue authentication) for `METHOD`; returns its data.
async fn expect_continue(c: &mut Raw) -> Bytes {
    match c.recv().await {
        Packet::Auth(a) => {
            assert_eq!(
                a.reason, 0x18,
                "AUTH 0x18 (Continue authentication) [MQTT-4.12.0-2]"
            );
            assert_eq!(a.properties.authentication_method.as_deref(), Some(METHOD));
            assert_eq!(a.properties.reason_string, None);
            assert!(a.properties.user_properties.is_empty());
            a.properties.authentication_data.expect("server-first data")
        }
        other => panic!("expected AUTH 0x18, got {other:?}"),
    }
}

/// CONNECT with SCRAM as `user` / `password`, through the whole exchange; returns the
/// connection and the CONNACK, whatever its code.
async fn scram_connect(b: &Broker, id: &str, user: &str, password: &str) -> (Raw, ConnAck, Scram) {
    let mut scram = Scram::new(user, password);
    let mut c = v5(id);
    c.properties.authentication_method = Some(METHOD.into());
    c.properties.authentication_data = Some(scram.client_first());
    let mut raw = Raw::open(b, Protocol::V5).await;
    raw.send_bytes(&wire_connect(&c)).await;
    match raw.recv().await {
        Packet::Auth(a) => {
            assert_eq!(a.reason, 0x18);
            assert_eq!(a.properties.authentication_method.as_deref(), Some(METHOD));
            let server_first = a.properties.authentication_data.expect("server-first");
            let fin = scram.client_final(&server_first);
            raw.send(auth(0x18, METHOD, fin)).await;
            match raw.recv().await {
                Packet::ConnAck(ack) => (raw, ack, scram),
                other => panic!("expected CONNACK, got {other:?}"),
            }
        }
        Packet::ConnAck(ack) => (raw, ack, scram),
        other => panic!("expected AUTH or CONNACK, got {other:?}"),
    }
}

/// CONNECT with SCRAM as the configured user, up to the server's first AUTH 0x18: returns
/// the connection, the client's state and the server-first data.
async fn start_exchange(b: &Broker, id: &str) -> (Raw, Scram, Bytes) {
    let scram = Scram::new(USER, PASSWORD);
    let mut c = v5(id);
    c.properties.authentication_method = Some(METHOD.into());
    c.properties.authentication_data = Some(scram.client_first());
    let mut raw = Raw::open(b, Protocol::V5).await;
    raw.send_bytes(&wire_connect(&c)).await;
    let server_first = expect_continue(&mut raw).await;
    (raw, scram, server_first)
}

/// The exchange ends with a refusing CONNACK (0x80 or more) and the close.
async fn expect_refusing_connack(raw: &mut Raw) {
    match raw.expect_closed().await.as_slice() {
        [Packet::ConnAck(a)] => assert!(a.code >= 0x80, "{a:?}"),
        other => panic!("expected a refusing CONNACK, got {other:?}"),
    }
}

/// [MQTT-4.12.0-1] An authentication method the server does not support: CONNACK 0x8C (Bad
/// authentication method) or 0x87 (Not authorized), then close — with and without SCRAM users.
#[tokio::test]
async fn mqtt_4_12_0_1_unsupported_method_is_refused() {
    let with_method = |method: &str| {
        let mut c = v5("c");
        c.properties.authentication_method = Some(method.into());
        c.properties.authentication_data = Some(Bytes::from_static(b"n,,n=alice,r=abc"));
        wire_connect(&c)
    };
    // A broker offering SCRAM-SHA-256: other methods (names are case-sensitive) are refused.
    let b = broker().await;
    for method in ["SCRAM-SHA-1", "scram-sha-256", "PLAIN"] {
        assert_connect_refused(&b, Protocol::V5, &with_method(method), &[0x8C, 0x87]).await;
    }
    // A broker without users offers no method at all.
    let b = Broker::start().await;
    assert_connect_refused(&b, Protocol::V5, &with_method(METHOD), &[0x8C, 0x87]).await;
}

/// [MQTT-4.12.0-2] When it needs more, the server sends AUTH with reason 0x18; the exchange
/// then succeeds (CONNACK 0x00) and the server's final message proves it knew the key.
#[tokio::test]
async fn mqtt_4_12_0_2_server_continues_with_auth_0x18() {
    let b = broker().await;
    let (mut raw, ack, scram) = scram_connect(&b, "c", USER, PASSWORD).await;
    assert_eq!(ack.code, 0);
    scram.verify(
        ack.properties
            .authentication_data
            .as_deref()
            .expect("server-final"),
    );
    raw.ping().await;
}

/// [MQTT-4.12.0-3] The client answers the server's AUTH with AUTH 0x18; any other packet (here
/// an AUTH 0x19, and a SUBSCRIBE) ends the exchange with a refusal and a close.
/// Also [MQTT-3.1.2-30]: nothing but AUTH or DISCONNECT before CONNACK.
#[tokio::test]
async fn mqtt_4_12_0_3_client_must_continue_with_auth_0x18() {
    let b = broker().await;
    let wrong: [Packet; 2] = [
        auth(0x19, METHOD, Bytes::from_static(b"x")),
        Packet::Subscribe(subscribe(1, &[("t", sub(0))])),
    ];
    for p in wrong {
        let (mut raw, _, _) = start_exchange(&b, "c").await;
        raw.send(p).await;
        expect_refusing_connack(&mut raw).await;
    }
}

/// [MQTT-4.12.0-4] The server may reject the authentication at any point: a wrong password or
/// an unknown user gets CONNACK with a reason of 0x80 or more (0x86 Bad user name or password)
/// and a close.
#[tokio::test]
async fn mqtt_4_12_0_4_bad_credentials_are_refused() {
    let b = broker().await;
    for (user, password) in [(USER, "wrong"), ("mallory", PASSWORD)] {
        let (mut raw, ack, _) = scram_connect(&b, "c", user, password).await;
        assert!(ack.code >= 0x80, "{user}: {ack:?}");
        assert_eq!(ack.code, 0x86, "{user}");
        assert!(!ack.session_present);
        raw.expect_closed().await;
    }
}

/// [MQTT-4.12.0-5] Every AUTH and the successful CONNACK carry the CONNECT's Authentication
/// Method; a client AUTH naming another method mid-exchange is refused.
#[tokio::test]
async fn mqtt_4_12_0_5_same_method_throughout_the_exchange() {
    let b = broker().await;
    let (_raw, ack, _) = scram_connect(&b, "c", USER, PASSWORD).await;
    assert_eq!(
        ack.properties.authentication_method.as_deref(),
        Some(METHOD)
    );
    let (mut raw, mut scram, server_first) = start_exchange(&b, "d").await;
    let fin = scram.client_final(&server_first);
    raw.send(auth(0x18, "SCRAM-SHA-512", fin)).await;
    expect_refusing_connack(&mut raw).await;
}

/// [MQTT-4.12.0-6] Without an Authentication Method in CONNECT the server sends no AUTH and no
/// Authentication Method in CONNACK.
#[tokio::test]
async fn mqtt_4_12_0_6_no_auth_without_a_method() {
    let b = broker().await;
    let (mut raw, ack) = Raw::handshake(&b, v5("plain")).await;
    assert_eq!(ack.code, 0);
    assert_eq!(ack.properties.authentication_method, None);
    assert_eq!(ack.properties.authentication_data, None);
    raw.subscribe("t", 1).await;
    raw.publish("t", 1, b"x").await;
    assert!(matches!(raw.recv().await, Packet::Publish(_)));
    raw.expect_silence(QUIET).await;
}

/// [MQTT-4.12.0-7] A client that sent no Authentication Method must not send AUTH: the server
/// treats it as a Protocol Error.
#[tokio::test]
async fn mqtt_4_12_0_7_auth_without_a_method_is_a_protocol_error() {
    let b = broker().await;
    let bad = wire(
        &auth(0x19, METHOD, Bytes::from_static(b"n,,n=alice,r=x")),
        Protocol::V5,
    );
    assert_v5_violation(&b, &bad, &[0x82]).await;
}

/// [MQTT-4.12.1-1] Re-authentication: AUTH 0x19 with the same method runs a new exchange that
/// ends with AUTH 0x00, and the connection keeps working. Another method is a Protocol Error.
/// Also [MQTT-3.15.2-1] (the server's AUTH reason codes are 0x00 / 0x18) and
/// [MQTT-3.15.2-2], [MQTT-3.15.2-3] (no Reason String or User Property on them).
#[tokio::test]
async fn mqtt_4_12_1_1_reauthentication_uses_the_same_method() {
    let b = broker().await;
    let (mut raw, ack, _) = scram_connect(&b, "c", USER, PASSWORD).await;
    assert_eq!(ack.code, 0);
    raw.subscribe("t", 1).await;
    let mut scram = Scram::new(USER, PASSWORD);
    raw.send(auth(0x19, METHOD, scram.client_first())).await;
    let server_first = expect_continue(&mut raw).await;
    raw.send(auth(0x18, METHOD, scram.client_final(&server_first)))
        .await;
    match raw.recv().await {
        Packet::Auth(a) => {
            assert_eq!(a.reason, 0x00, "AUTH 0x00 (Success)");
            assert_eq!(a.properties.authentication_method.as_deref(), Some(METHOD));
            assert_eq!(a.properties.reason_string, None);
            scram.verify(
                a.properties
                    .authentication_data
                    .as_deref()
                    .expect("server-final"),
            );
        }
        other => panic!("expected AUTH 0x00, got {other:?}"),
    }
    raw.publish("t", 1, b"still connected").await;
    assert_eq!(&raw.recv_acked().await.payload[..], b"still connected");
    let bad = auth(
        0x19,
        "SCRAM-SHA-512",
        Scram::new(USER, PASSWORD).client_first(),
    );
    raw.send(bad).await;
    raw.expect_refused(&[0x82]).await;
}

/// A re-authentication with a wrong password, up to the server's answer: returns the raw
/// frame it sends and whether the connection is closed after it.
async fn failed_reauthentication() -> (Vec<u8>, bool) {
    let b = broker().await;
    let (mut raw, ack, _) = scram_connect(&b, "c", USER, PASSWORD).await;
    assert_eq!(ack.code, 0);
    let mut scram = Scram::new(USER, "wrong");
    raw.send(auth(0x19, METHOD, scram.client_first())).await;
    let server_first = expect_continue(&mut raw).await;
    raw.send(auth(0x18, METHOD, scram.client_final(&server_first)))
        .await;
    // Raw bytes: a DISCONNECT with an invalid reason code would not decode.
    let f = raw.next_frame(WAIT).await.expect("DISCONNECT");
    let closed = matches!(raw.next_frame(WAIT).await, Err(Got::Closed));
    (f, closed)
}

/// [MQTT-4.12.1-2] A failed re-authentication ends with DISCONNECT (reason 0x80 or more) and
/// the close of the connection.
#[tokio::test]
async fn mqtt_4_12_1_2_failed_reauthentication_disconnects() {
    let (f, closed) = failed_reauthentication().await;
    assert_eq!(f[0], 0xE0, "DISCONNECT: {f:?}");
    assert!(f[2] >= 0x80, "reason {:#04x}", f[2]);
    assert!(closed);
}

/// [MQTT-3.14.2-1] The DISCONNECT after a failed re-authentication uses a DISCONNECT reason
/// code (0x87 Not authorized is one; 0x86 and 0x8C are CONNACK-only codes).
#[tokio::test]
async fn mqtt_3_14_2_1_failed_reauthentication_uses_a_disconnect_reason_code() {
    const DISCONNECT_CODES: &[u8] = &[
        0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96,
        0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
    ];
    let (f, _) = failed_reauthentication().await;
    assert_eq!(f[0], 0xE0, "DISCONNECT: {f:?}");
    assert!(
        DISCONNECT_CODES.contains(&f[2]),
        "DISCONNECT reason {:#04x}",
        f[2]
    );
}
