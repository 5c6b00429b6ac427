//! Shared-group messages given back through kill -9. A member that disconnects with QoS 1
//! messages it never acknowledged (in flight, or queued behind its window) gives them back to
//! its group, and another member gets them. The broker is killed a few milliseconds after
//! the giver leaves, at a different point each round: every acknowledged message must reach
//! a member, either the one that took it over or, after the restart, the giver's own stored
//! session.

use super::t16_durable::{client, connected, group_on, launch, subscribed};
use crate::broker_process::fresh_data_dir;
use rumqttc::{Event, Packet, QoS};
use std::collections::BTreeSet;
use std::time::Duration;

fn seq(p: &rumqttc::Publish) -> Option<usize> {
    std::str::from_utf8(&p.payload).ok()?.parse().ok()
}

/// Wait for the publisher's CONNACK, publish `0..n` at QoS 1 on `topic`, and wait until the
/// broker acknowledged all of them.
async fn publish_acked(
    p: &rumqttc::AsyncClient,
    pev: &mut rumqttc::EventLoop,
    topic: &str,
    n: usize,
    what: &str,
) {
    connected(pev).await;
    let feeder = {
        let (p, topic) = (p.clone(), topic.to_owned());
        tokio::spawn(async move {
            for i in 0..n {
                if p.publish(&topic, QoS::AtLeastOnce, false, i.to_string())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        })
    };
    let mut acks = 0;
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while acks < n {
        match tokio::time::timeout_at(until, pev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acks += 1,
            Ok(Ok(_)) => {}
            other => panic!("{what}: publisher after {acks} acks: {other:?}"),
        }
    }
    feeder.abort();
}

/// Take `n` PUBLISHes on a manual-ack client without acknowledging them.
async fn hold_unacked(ev: &mut rumqttc::EventLoop, n: usize, what: &str) {
    let mut held = 0;
    while held < n {
        match tokio::time::timeout(Duration::from_secs(5), ev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(_)))) => held += 1,
            Ok(Ok(_)) => {}
            other => panic!("{what}: giver after {held}: {other:?}"),
        }
    }
}

/// `shards` shards; the giver's home is shard 1 (0 with one shard), the taker's `taker`, the group's `owner`.
async fn given_back_messages_survive_kill_9(shards: usize, owner: usize, taker: usize) {
    let dir = fresh_data_dir();
    // The kill lands this long after the giver's socket closes.
    for (round, delay_us) in [0u64, 300, 800, 1500, 3000].into_iter().enumerate() {
        let mut b = launch(shards, &dir).await;
        // A group of its own each round: earlier rounds' members stay in theirs.
        let filter = group_on(&format!("gb{round}/#"), owner, shards);
        let topic = format!("gb{round}/t");
        let giver_id = b.id(&format!("giver{round}"), 1);
        let taker_id = b.id(&format!("taker{round}"), taker);
        // The giver takes its share and never acknowledges: rumqttc with manual acks.
        let mut o = client(&b, &giver_id, false, 100).1.mqtt_options;
        o.set_manual_acks(true);
        let (g, mut gev) = rumqttc::AsyncClient::new(o, 1024);
        connected(&mut gev).await;
        subscribed(&g, &mut gev, &filter, QoS::AtLeastOnce).await;
        let (t, mut tev) = client(&b, &taker_id, false, 100);
        connected(&mut tev).await;
        subscribed(&t, &mut tev, &filter, QoS::AtLeastOnce).await;
        // The taker acknowledges what it gets (rumqttc does so on poll): all of that is
        // delivered, whatever happens next.
        let taken = tokio::spawn(async move {
            let mut got = BTreeSet::new();
            while let Ok(e) = tev.poll().await {
                if let Event::Incoming(Packet::Publish(p)) = e {
                    got.extend(seq(&p));
                }
            }
            (t, got)
        });
        // 400 QoS 1 messages, all acknowledged: half are the giver's, up to the broker's in-flight
        // window (64 by default) sent to it and the rest queued behind that window.
        let n = 400;
        let (p, mut pev) = client(&b, &format!("gb-pub{round}"), true, 100);
        publish_acked(&p, &mut pev, &topic, n, &format!("round {round}")).await;
        // The giver holds its in-flight share unacknowledged.
        hold_unacked(&mut gev, 50, &format!("round {round}")).await;
        // The giver's socket closes (no DISCONNECT), then the kill.
        drop((g, gev));
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_micros(delay_us) {
            std::hint::spin_loop();
        }
        b.kill9();
        let (t, mut got) = taken.await.expect("taker task");
        drop(t);
        // Restart: both members come back without subscribing; each gets what it holds.
        let b = launch(shards, &dir).await;
        for id in [&giver_id, &taker_id] {
            let (c, mut ev) = client(&b, id, false, 100);
            assert!(connected(&mut ev).await, "round {round}: {id}'s session");
            let until = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                match tokio::time::timeout(Duration::from_millis(1000), ev.poll()).await {
                    Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                        got.extend(seq(&p));
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => panic!("round {round}: {id}: {e}"),
                    Err(_) => break,
                }
                assert!(tokio::time::Instant::now() < until, "round {round}: no end");
            }
            c.disconnect().await.expect("disconnect");
            let _ = tokio::time::timeout(Duration::from_millis(200), ev.poll()).await;
        }
        let lost: Vec<usize> = (0..n).filter(|s| !got.contains(s)).collect();
        assert!(
            lost.is_empty(),
            "round {round} ({shards} shards, owner {owner}, taker on {taker}, kill {delay_us} µs \
             after the giver left): {} acknowledged messages lost, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(10)]
        );
        drop(b);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// (shards, owner shard, taker's shard); the giver is on shard 1.
mod shared_give_back {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_1shard() {
        super::given_back_messages_survive_kill_9(1, 0, 0).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn owned_by_the_givers_shard_taker_elsewhere() {
        super::given_back_messages_survive_kill_9(2, 1, 0).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn owned_by_the_takers_shard() {
        super::given_back_messages_survive_kill_9(2, 0, 0).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn owned_by_a_third_shard() {
        super::given_back_messages_survive_kill_9(3, 2, 0).await;
    }
}

/// A persistent session that is the only member of its group (on the shard that owns the
/// group) disconnects holding unacknowledged messages: nobody can take them over, so they stay
/// in its session, through kill -9, and reach it when it comes back. Giving them back dropped
/// them ("no other member to take it").
async fn sole_member_keeps_what_it_holds(shards: usize) {
    let dir = fresh_data_dir();
    let home = shards - 1;
    let mut b = launch(shards, &dir).await;
    let filter = group_on("solo/#", home, shards);
    let giver_id = b.id("solo-giver", home);
    let mut o = client(&b, &giver_id, false, 100).1.mqtt_options;
    o.set_manual_acks(true);
    let (g, mut gev) = rumqttc::AsyncClient::new(o, 1024);
    connected(&mut gev).await;
    subscribed(&g, &mut gev, &filter, QoS::AtLeastOnce).await;
    let n = 200;
    let (p, mut pev) = client(&b, "solo-pub", true, 100);
    publish_acked(&p, &mut pev, "solo/t", n, "sole member").await;
    // The giver holds its in-flight window unacknowledged, the rest queued behind it.
    hold_unacked(&mut gev, 50, "sole member").await;
    drop((g, gev));
    // Let the broker see the close and commit what it does about it, then crash it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.kill9();
    let b = launch(shards, &dir).await;
    let (c, mut ev) = client(&b, &giver_id, false, 100);
    assert!(connected(&mut ev).await, "the giver's session");
    let mut got = BTreeSet::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    while got.len() < n {
        match tokio::time::timeout_at(until, ev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                got.extend(seq(&p));
            }
            Ok(Ok(_)) => {}
            other => panic!("{shards} shards: after {} of {n}: {other:?}", got.len()),
        }
    }
    c.disconnect().await.expect("disconnect");
    let _ = tokio::time::timeout(Duration::from_millis(200), ev.poll()).await;
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
}

mod sole_member {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_1shard() {
        super::sole_member_keeps_what_it_holds(1).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn owned_by_its_shard_of_2() {
        super::sole_member_keeps_what_it_holds(2).await;
    }
}
