//! QoS flows at the packet level, in both directions: PUBLISH/PUBACK and
//! PUBLISH/PUBREC/PUBREL/PUBCOMP, duplicate suppression, and packet identifiers.

use crate::common::*;
use ringmq::codec::{Packet, Protocol, Publish};
use std::collections::BTreeSet;

version_tests!(
    mqtt_4_3_2_qos1_publish_is_acknowledged_with_puback,
    mqtt_4_3_3_qos2_publish_completes_with_pubrec_pubrel_pubcomp_and_is_delivered_once,
    mqtt_4_3_2_qos1_delivery_has_a_packet_id_and_completes_with_puback,
    mqtt_4_3_3_qos2_delivery_completes_with_pubrec_pubrel_pubcomp,
    mqtt_2_2_1_client_and_server_packet_ids_are_independent,
    mqtt_2_2_1_packet_ids_are_unique_per_session_and_allocated_per_session,
);

/// A rumqttc subscriber of `filter` on shard 0 and a raw client on shard 1.
async fn raw_publisher_and_subscriber(b: &Broker, v: Version, filter: &str) -> (Raw, Client) {
    let mut sub = Client::connect(b, v, &b.id("flow-sub", 0)).await;
    assert_eq!(sub.subscribe(filter, 2).await, 2);
    let raw = Raw::connect(b, v.protocol(), &b.id("flow-raw-pub", 1)).await;
    (raw, sub)
}

/// A raw subscriber of `filter` at `q` on shard 0 and a rumqttc publisher on shard 1.
async fn raw_subscriber_and_publisher(
    b: &Broker,
    v: Version,
    filter: &str,
    q: u8,
) -> (Raw, Client) {
    let mut raw = Raw::connect(b, v.protocol(), &b.id("flow-raw-sub", 0)).await;
    assert_eq!(raw.subscribe(filter, q).await, [q]);
    let publisher = Client::connect(b, v, &b.id("flow-pub", 1)).await;
    (raw, publisher)
}

async fn mqtt_4_3_2_qos1_publish_is_acknowledged_with_puback(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let (mut raw, mut sub) = raw_publisher_and_subscriber(&b, v, "f/1").await;
    raw.send(&publish_packet("f/1", 1, 10, b"one")).await;
    assert_eq!(
        raw.recv().await,
        Packet::PubAck(ack(10)),
        "PUBACK echoes the packet id"
    );
    let m = sub.recv().await;
    assert_eq!((m.text().as_str(), m.qos), ("one", 1));
    sub.expect_nothing(QUIET).await;
}

async fn mqtt_4_3_3_qos2_publish_completes_with_pubrec_pubrel_pubcomp_and_is_delivered_once(
    v: Version,
    shards: usize,
) {
    let b = Broker::start(shards).await;
    let (mut raw, mut sub) = raw_publisher_and_subscriber(&b, v, "f/2").await;
    raw.send(&publish_packet("f/2", 2, 11, b"two")).await;
    assert_eq!(raw.recv().await, Packet::PubRec(ack(11)));
    // Until PUBREL, a PUBLISH with the same id is acknowledged again but not delivered again
    // [MQTT-4.3.3-10] (v5) / [MQTT-4.3.3-2] (v3.1.1).
    let mut again = publish_packet("f/2", 2, 11, b"two");
    if let Packet::Publish(p) = &mut again {
        p.dup = true;
    }
    raw.send(&again).await;
    assert_eq!(raw.recv().await, Packet::PubRec(ack(11)));
    raw.send(&Packet::PubRel(ack(11))).await;
    assert_eq!(raw.recv().await, Packet::PubComp(ack(11)));
    let m = sub.recv().await;
    assert_eq!((m.text().as_str(), m.qos), ("two", 2));
    sub.expect_nothing(QUIET).await;
    // After PUBCOMP the id is free: the same id now carries a new message.
    raw.send(&publish_packet("f/2", 2, 11, b"three")).await;
    assert_eq!(raw.recv().await, Packet::PubRec(ack(11)));
    raw.send(&Packet::PubRel(ack(11))).await;
    assert_eq!(raw.recv().await, Packet::PubComp(ack(11)));
    assert_eq!(sub.recv().await.text(), "three");
}

fn assert_fresh_delivery(p: &Publish, q: u8, payload: &str) {
    assert_eq!(p.qos as u8, q);
    assert_ne!(
        p.packet_id, 0,
        "QoS > 0 carries a non-zero packet id [MQTT-2.2.1-3]"
    );
    assert!(!p.dup, "a first delivery has DUP 0 [MQTT-3.3.1-1]");
    assert_eq!(&p.payload[..], payload.as_bytes());
}

async fn mqtt_4_3_2_qos1_delivery_has_a_packet_id_and_completes_with_puback(
    v: Version,
    shards: usize,
) {
    let b = Broker::start(shards).await;
    let (mut raw, mut publisher) = raw_subscriber_and_publisher(&b, v, "d/1", 1).await;
    publisher.publish("d/1", 1, "first", false).await;
    publisher.publish("d/1", 1, "second", false).await;
    publisher.settle().await;
    let p1 = raw.recv_publish().await;
    let p2 = raw.recv_publish().await;
    assert_fresh_delivery(&p1, 1, "first");
    assert_fresh_delivery(&p2, 1, "second");
    assert_ne!(
        p1.packet_id, p2.packet_id,
        "two unacknowledged messages, two ids"
    );
    raw.send(&Packet::PubAck(ack(p1.packet_id))).await;
    raw.send(&Packet::PubAck(ack(p2.packet_id))).await;
    // Acknowledged: nothing is sent again.
    raw.expect_silence(QUIET).await;
}

async fn mqtt_4_3_3_qos2_delivery_completes_with_pubrec_pubrel_pubcomp(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let (mut raw, mut publisher) = raw_subscriber_and_publisher(&b, v, "d/2", 2).await;
    for text in ["x", "y"] {
        publisher.publish_settled("d/2", 2, text, false).await;
        let p = raw.recv_publish().await;
        assert_fresh_delivery(&p, 2, text);
        raw.send(&Packet::PubRec(ack(p.packet_id))).await;
        assert_eq!(raw.recv().await, Packet::PubRel(ack(p.packet_id)));
        raw.send(&Packet::PubComp(ack(p.packet_id))).await;
    }
    raw.expect_silence(QUIET).await;
}

async fn mqtt_2_2_1_client_and_server_packet_ids_are_independent(v: Version, shards: usize) {
    let b = Broker::start(shards).await;
    let mut raw = Raw::connect(&b, v.protocol(), "echo").await;
    assert_eq!(raw.subscribe("ids/t", 2).await, [2]);
    // Our QoS 2 publish with id 1 comes back to us as the broker's own QoS 2 delivery, whose id
    // the broker picks from its own set (often 1 as well): both exchanges complete.
    raw.send(&publish_packet("ids/t", 2, 1, b"echo")).await;
    let mut delivery = None;
    let mut pubrec = false;
    for p in raw.recv_n(2).await {
        match p {
            Packet::PubRec(a) if a.packet_id == 1 => pubrec = true,
            Packet::Publish(p) => delivery = Some(p),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pubrec, "PUBREC for our publish");
    let delivery = delivery.expect("the broker's delivery to us");
    assert_fresh_delivery(&delivery, 2, "echo");
    let theirs = delivery.packet_id;
    raw.send(&Packet::PubRel(ack(1))).await;
    raw.send(&Packet::PubRec(ack(theirs))).await;
    let mut answers = raw.recv_n(2).await;
    answers.sort_by_key(|p| matches!(p, Packet::PubRel(_)));
    assert_eq!(
        answers,
        [Packet::PubComp(ack(1)), Packet::PubRel(ack(theirs))]
    );
    raw.send(&Packet::PubComp(ack(theirs))).await;
    raw.expect_silence(QUIET).await;
}

async fn mqtt_2_2_1_packet_ids_are_unique_per_session_and_allocated_per_session(
    v: Version,
    shards: usize,
) {
    let b = Broker::start(shards).await;
    let mut a = Raw::connect(&b, v.protocol(), &b.id("ids-a", 0)).await;
    assert_eq!(a.subscribe("ps/#", 1).await, [1]);
    let mut publisher = Client::connect(&b, v, &b.id("ids-pub", 1)).await;
    for i in 0..5 {
        publisher.publish("ps/a", 1, format!("a{i}"), false).await;
    }
    publisher.settle().await;
    let mut ids_a_seen = BTreeSet::new();
    for _ in 0..5 {
        let p = a.recv_publish().await;
        assert!(
            ids_a_seen.insert(p.packet_id),
            "id {} reused while unacknowledged",
            p.packet_id
        );
    }
    // A second session's numbering does not continue the first one's: ids are per session.
    let mut other = Raw::connect(&b, v.protocol(), &b.id("ids-b", 1)).await;
    assert_eq!(other.subscribe("ps/b", 1).await, [1]);
    publisher.publish_settled("ps/b", 1, "b0", false).await;
    let first_b = other.recv_publish().await.packet_id;
    assert!(
        ids_a_seen.contains(&first_b),
        "session B's first id {first_b} is one session A also uses ({ids_a_seen:?})"
    );
    // A gets the message too, with an id distinct from its five unacknowledged ones.
    let sixth = a.recv_publish().await.packet_id;
    assert!(
        !ids_a_seen.contains(&sixth),
        "id {sixth} is still in flight"
    );
}

shard_tests!(a_delivery_is_written_before_the_puback_of_the_publish_that_caused_it);

/// Read what the socket holds, with the time the kernel queued it (`SO_TIMESTAMPNS`).
/// Loopback stamps a segment as the sender's `send` queues it, so two sockets' stamps give the
/// order in which the broker wrote to them.
fn recvmsg_stamped(
    fd: std::os::fd::RawFd,
    data: &mut [u8],
) -> std::io::Result<(usize, (i64, i64))> {
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut control = [0u64; 16];
    // SAFETY: every pointer refers to a live local buffer of the stated length, and the
    // control messages are read within the length the kernel returned.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        let n = libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT);
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut stamp = None;
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let t = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                stamp = Some((t.tv_sec, t.tv_nsec));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        let stamp = stamp.ok_or_else(|| std::io::Error::other("a read without a stamp"))?;
        Ok((n as usize, stamp))
    }
}

/// The next packet and the kernel's stamp of its bytes (it must arrive in one read).
async fn recv_stamped(raw: &mut Raw) -> (Packet, (i64, i64)) {
    use std::os::fd::AsRawFd;
    let fd = raw.stream.as_raw_fd();
    let mut data = [0u8; 4096];
    let read = async {
        loop {
            raw.stream.readable().await.expect("readable");
            let r = raw.stream.try_io(tokio::io::Interest::READABLE, || {
                recvmsg_stamped(fd, &mut data)
            });
            match r {
                Ok(got) => return got,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("recvmsg: {e}"),
            }
        }
    };
    let (n, stamp) = tokio::time::timeout(WAIT, read)
        .await
        .expect("a packet within WAIT");
    assert!(n > 0, "the broker closed the connection");
    raw.buf.extend_from_slice(&data[..n]);
    let p = raw.recv().await;
    assert!(raw.buf.is_empty(), "one packet per read here");
    (p, stamp)
}

fn stamp_every_read(raw: &Raw) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and a c_int option value.
    let r = unsafe {
        libc::setsockopt(
            raw.stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_TIMESTAMPNS");
}

/// A QoS 1 PUBLISH makes the broker write twice: the delivery to the subscriber and the PUBACK
/// to the publisher. Mosquitto writes the delivery first; so does ringmq (docs/ARCHITECTURE.md,
/// "Deliveries go out before the publisher's acknowledgement"), so a subscriber's latency does
/// not include the PUBACK's send. Both clients are on one shard, where the order is the
/// broker's to choose (across shards the delivery crosses the mesh first).
async fn a_delivery_is_written_before_the_puback_of_the_publish_that_caused_it(shards: usize) {
    let b = Broker::start(shards).await;
    let mut sub = Raw::connect(&b, Protocol::V311, &b.id("order-sub", 0)).await;
    assert_eq!(sub.subscribe("order/t", 1).await, [1]);
    let mut publisher = Raw::connect(&b, Protocol::V311, &b.id("order-pub", 0)).await;
    stamp_every_read(&sub);
    stamp_every_read(&publisher);
    for id in 1..=20u16 {
        publisher
            .send(&publish_packet(
                "order/t",
                1,
                id,
                format!("m{id}").as_bytes(),
            ))
            .await;
        let (ack_packet, acked_at) = recv_stamped(&mut publisher).await;
        assert_eq!(ack_packet, Packet::PubAck(ack(id)));
        let (delivery, delivered_at) = recv_stamped(&mut sub).await;
        let Packet::Publish(p) = delivery else {
            panic!("expected the delivery, got {delivery:?}");
        };
        assert_eq!(&p.payload[..], format!("m{id}").as_bytes());
        assert!(
            delivered_at <= acked_at,
            "message {id}: the delivery was written at {delivered_at:?}, after the PUBACK at \
             {acked_at:?}"
        );
        assert_eq!(p.qos, qos(1));
        sub.send(&Packet::PubAck(ack(p.packet_id))).await;
    }
}
