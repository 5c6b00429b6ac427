//! Section 4.9: flow control — the server's send quota follows the client's Receive Maximum.

use crate::fixture::*;
use ringmq::codec::{Packet, QoS};

/// A subscriber with Receive Maximum `rm` on "t" (QoS 2) and `n` QoS `q` messages published.
async fn quota(b: &Broker, rm: u16, n: usize, q: u8) -> Raw {
    let mut c = v5("s");
    c.properties.receive_maximum = Some(rm);
    let mut s = Raw::connect(b, c).await;
    s.subscribe("t", 2).await;
    let mut p = Raw::v5(b, "p").await;
    for i in 0..n {
        p.publish("t", q, format!("{i}").as_bytes()).await;
    }
    s
}

/// [MQTT-4.9.0-1] The initial send quota is the client's Receive Maximum (3): exactly three
/// unacknowledged QoS 1 PUBLISHes, then nothing. Also [MQTT-3.3.4-9].
#[tokio::test]
async fn mqtt_4_9_0_1_initial_quota_is_the_receive_maximum() {
    let b = Broker::start().await;
    let mut s = quota(&b, 3, 8, 1).await;
    for _ in 0..3 {
        s.recv_publish().await;
    }
    s.expect_silence(QUIET).await;
}

/// [MQTT-4.9.0-2] At quota 0 no QoS > 0 PUBLISH is sent; each PUBACK (QoS 1) or PUBCOMP (QoS 2,
/// not PUBREC) frees one slot. Also [MQTT-3.3.4-9].
#[tokio::test]
async fn mqtt_4_9_0_2_no_publish_at_zero_quota_until_acknowledged() {
    let b = Broker::start().await;
    let mut s = quota(&b, 1, 3, 1).await;
    let m = s.recv_publish().await;
    s.expect_silence(QUIET).await;
    s.ack(&m).await;
    let m = s.recv_publish().await;
    s.expect_silence(QUIET).await;
    s.ack(&m).await;
    assert_eq!(payloads(&[s.recv_acked().await]), ["2"]);

    let b = Broker::start().await;
    let mut s = quota(&b, 1, 2, 2).await;
    let m = s.recv_publish().await;
    assert_eq!(m.qos, QoS::ExactlyOnce);
    s.send(Packet::PubRec(ack(m.packet_id, 0))).await;
    assert_eq!(s.recv().await, Packet::PubRel(ack(m.packet_id, 0)));
    s.expect_silence(QUIET).await;
    s.send(Packet::PubComp(ack(m.packet_id, 0))).await;
    assert_eq!(payloads(&[s.recv_acked().await]), ["1"]);
}

/// [MQTT-4.9.0-3] At quota 0 the server still processes and answers every other packet:
/// PINGREQ, SUBSCRIBE, UNSUBSCRIBE, and the client's own QoS 1 PUBLISH. Also [MQTT-3.3.4-10].
#[tokio::test]
async fn mqtt_4_9_0_3_other_packets_flow_at_zero_quota() {
    let b = Broker::start().await;
    let mut s = quota(&b, 1, 3, 1).await;
    let first = s.recv_publish().await;
    s.ping().await;
    s.subscribe("other", 1).await;
    s.unsubscribe(&["other"]).await;
    s.publish("elsewhere", 1, b"mine").await;
    s.expect_silence(QUIET).await;
    s.ack(&first).await;
    s.recv_publish().await;
}
