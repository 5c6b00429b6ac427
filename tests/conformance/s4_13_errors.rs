//! Section 4.13: handling errors — a Malformed Packet or Protocol Error closes the offending
//! connection (v5: after a DISCONNECT with the reason code), and only that one.

use crate::fixture::*;

/// [MQTT-4.13.1-1] Each malformed packet or protocol error below closes the connection that
/// sent it, with the reason code the specification gives (0x81 Malformed, 0x82 Protocol
/// Error); the bystander loses nothing and the broker keeps serving.
#[tokio::test]
async fn mqtt_4_13_1_1_errors_close_only_the_offending_connection() {
    let mut b = Broker::start().await;
    let mut bad_prop = vec![0x7F];
    bad_prop.extend([0, 1]);
    let cases: Vec<(&str, Vec<u8>, &[u8])> = vec![
        ("packet type 0 (reserved)", vec![0x00, 0], &[0x81, 0x82]),
        ("CONNACK from a client", vec![0x20, 3, 0, 0, 0], &[0x82]),
        ("SUBACK from a client", vec![0x90, 4, 0, 1, 0, 0], &[0x82]),
        ("UNSUBACK from a client", vec![0xB0, 4, 0, 1, 0, 0], &[0x82]),
        ("PINGRESP from a client", vec![0xD0, 0], &[0x82]),
        (
            "PUBLISH shorter than its topic",
            vec![0x30, 3, 0, 5, b'a'],
            &[0x81],
        ),
        (
            "unknown property identifier",
            raw_publish(0x30, b"t", None, &bad_prop, b"x"),
            &[0x81],
        ),
        (
            "property not allowed in PUBLISH (Session Expiry Interval)",
            raw_publish(0x30, b"t", None, &[0x11, 0, 0, 0, 1], b"x"),
            &[0x81, 0x82],
        ),
        (
            "property given twice (Content Type)",
            raw_publish(
                0x30,
                b"t",
                None,
                &[0x03, 0, 1, b'a', 0x03, 0, 1, b'b'],
                b"x",
            ),
            &[0x82],
        ),
        (
            "PUBACK with an unknown reason code",
            vec![0x40, 3, 0, 1, 0x05],
            &[0x81, 0x82],
        ),
        (
            "property length past the packet",
            raw_publish(0x30, b"t", None, &[0x01], b""),
            &[0x81],
        ),
    ];
    for (what, bytes, reasons) in cases {
        eprintln!("case: {what}");
        assert_v5_violation(&b, &bytes, reasons).await;
    }
    b.assert_alive();
    Raw::v5(&b, "after").await.ping().await;
}

/// [MQTT-4.13.2-1] A CONNACK or DISCONNECT with a reason of 0x80 or more is followed by the
/// close of the connection (checked for 0x8E takeover, 0x93 and a refused CONNECT 0x84/0x01).
#[tokio::test]
async fn mqtt_4_13_2_1_reason_0x80_or_more_closes_the_connection() {
    let b = Broker::with(&["--receive-maximum", "1"]).await;
    let mut old = Raw::v5(&b, "dup").await;
    let mut new = Raw::v5(&b, "dup").await;
    old.expect_refused(&[0x8E]).await;
    new.send(ringmq::codec::Packet::Publish(publish("t", 2, 1, b"x")))
        .await;
    new.send(ringmq::codec::Packet::Publish(publish("t", 2, 2, b"x")))
        .await;
    new.expect_refused(&[0x93]).await;
    let mut raw = Raw::open(&b, ringmq::codec::Protocol::V5).await;
    raw.send_bytes(&raw_connect(b"MQTT", 7, 0x02, Some(&[]), &field(b"c")))
        .await;
    let f = raw.next_frame(WAIT).await.expect("CONNACK");
    assert_eq!(f[0], 0x20);
    assert!(matches!(raw.next_frame(WAIT).await, Err(Got::Closed)));
}

/// 4.13 (robustness): connections sending random bytes after CONNECT, and before it, are closed
/// (at once, or by the keep-alive or connect timeout when the bytes look like the start of a
/// long packet) without disturbing anyone else.
#[tokio::test]
async fn sec_4_13_random_bytes_only_affect_their_connection() {
    let b = Broker::with(&["--connect-timeout-ms", "500"]).await;
    let by = Bystander::start(&b).await;
    let mut conns = Vec::new();
    for seed in 1..=20u64 {
        let mut c = if seed % 2 == 0 {
            // Keep alive 1 s: bytes that look like the start of a long packet are waited for
            // at most 1.5 s.
            let mut c = v5(&format!("noise{seed}"));
            c.keep_alive_s = 1;
            Raw::connect(&b, c).await
        } else {
            Raw::open(&b, ringmq::codec::Protocol::V5).await
        };
        c.send_bytes(&garbage(seed, 64 + seed as usize * 13)).await;
        conns.push(c);
    }
    for mut c in conns {
        // Closed (bytes that happen to decode as valid packets would get answers first; the
        // raw client checks that whatever the broker sends decodes).
        c.expect_closed().await;
    }
    by.finish().await;
    Raw::v5(&b, "after").await.ping().await;
}
