//! Shared-group messages given back through kill -9. A member that disconnects with QoS 1
//! messages it never acknowledged (in flight, or queued behind its window) gives them back to
//! its group, and another member gets them. The broker is killed a few milliseconds after
//! the giver leaves, at a different point each round: every acknowledged message must reach
//! a member, either the one that took it over or, after the restart, the giver's own stored
//! session.

use super::t16_durable::{client, connected, group_on, launch, subscribed};
use crate::broker_process::{fresh_data_dir, Broker, PortLease};
use rumqttc::{Event, Outgoing, Packet, QoS};
use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn seq(p: &rumqttc::Publish) -> Option<usize> {
    std::str::from_utf8(&p.payload).ok()?.parse().ok()
}

/// A task publishing `0..n` at QoS 1 on `topic` through `p` (its event loop polled elsewhere).
fn feed(p: &rumqttc::AsyncClient, topic: &str, n: usize) -> tokio::task::JoinHandle<()> {
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
    let feeder = feed(p, topic, n);
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

/// A persistent session that is the only member of its group disconnects holding
/// unacknowledged messages: nobody can take them over, so they stay with its session, through
/// kill -9, and reach it when it comes back. Giving them back dropped them ("no other member
/// to take it"). The giver's home is the last shard; the group's owner is `owner`. Where the
/// owner is another shard, the giver gives them back, and the owner, finding no one else,
/// sends them back to the giver's stored session.
async fn sole_member_keeps_what_it_holds(shards: usize, owner: usize) {
    let dir = fresh_data_dir();
    let home = shards - 1;
    let mut b = launch(shards, &dir).await;
    let filter = group_on("solo/#", owner, shards);
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
        super::sole_member_keeps_what_it_holds(1, 0).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn owned_by_its_shard_of_2() {
        super::sole_member_keeps_what_it_holds(2, 1).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn owned_by_the_other_shard_of_2() {
        super::sole_member_keeps_what_it_holds(2, 0).await;
    }
}

/// `ringmq_<name>` from the broker's `/metrics` on `http` (a plain HTTP/1.0 GET).
fn metric(http: u16, name: &str) -> u64 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", http)).expect("connect to /metrics");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("send the request");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("read /metrics");
    let key = format!("ringmq_{name} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {key} in /metrics")) as u64
}

/// A group's messages relayed to members whose sessions end while the relays are on their way.
/// Sixteen persistent members on shard 1 and a persistent taker on shard 0, which owns the
/// group; a publisher on shard 0 keeps publishing while a clean-start connection takes over
/// each of the sixteen client ids at once, ending their sessions. What those sessions held goes
/// back to the group, and relays still on their way to shard 1 find their member gone: shard 1
/// stores each as a repick for the owner before it confirms the relay (and so before the
/// publisher's PUBACK). The broker is killed at a different point after the first takeover
/// each round. Every acknowledged message must have reached a member that took it, or reach
/// the taker (or a member's old session, where the takeover's delete was not committed) after
/// the restart. Rounds without the kill read `/metrics` until relays did
/// bounce, to show that the path this test is for was taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_to_a_gone_member_survive_kill_9() {
    let shards = 2;
    let dir = fresh_data_dir();
    let data = dir.to_string_lossy().to_string();
    let lease = PortLease::acquire();
    let http = format!("127.0.0.1:{}", lease.port);
    let args = ["--data-dir", data.as_str(), "--http-bind", http.as_str()];
    let kills = [0u64, 500, 1500, 3000, 6000].map(Some);
    let mut bounced = 0;
    for (round, kill_us) in kills.into_iter().chain([None; 8]).enumerate() {
        if kill_us.is_none() && bounced > 0 {
            break;
        }
        let b = Broker::launch(shards, &args).await;
        let what = format!("round {round} (kill {kill_us:?} µs after the first takeover)");
        let (acked, mut got, b) = relay_round(b, round, kill_us, &what).await;
        match kill_us {
            Some(_) => {
                drop(b);
                // Restart: the taker's session comes back and gets what it holds. So do the
                // members' old sessions where the kill came before their takeover's delete was
                // committed: what they held is still theirs (a duplicate at worst, never a loss).
                let b = Broker::launch(shards, &args).await;
                let taker_id = b.id(&format!("rb-taker{round}"), 0);
                let givers = (0..16).map(|i| b.id(&format!("rb-g{round}-{i}"), 1));
                for id in std::iter::once(taker_id).chain(givers) {
                    let (c, mut ev) = client(&b, &id, false, 100);
                    if connected(&mut ev).await {
                        loop {
                            let next = tokio::time::timeout(Duration::from_millis(500), ev.poll());
                            match next.await {
                                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => got.extend(seq(&p)),
                                Ok(Ok(_)) => {}
                                Ok(Err(e)) => panic!("{what}: {id} after the restart: {e}"),
                                Err(_) => break,
                            }
                        }
                    }
                    c.disconnect().await.expect("disconnect");
                    let _ = tokio::time::timeout(Duration::from_millis(200), ev.poll()).await;
                }
            }
            None => {
                // The broker's periodic statistics, once they cover every delivery.
                let until = tokio::time::Instant::now() + Duration::from_secs(10);
                while metric(lease.port, "deliveries_total") < acked.len() as u64 {
                    assert!(tokio::time::Instant::now() < until, "{what}: no statistics");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                bounced = metric(lease.port, "shared_member_gone_total");
                eprintln!(
                    "{what}: {bounced} relays found their member gone, {} messages given back",
                    metric(lease.port, "shared_given_back_total")
                );
                drop(b);
            }
        }
        let lost: Vec<usize> = acked.iter().copied().filter(|s| !got.contains(s)).collect();
        assert!(
            lost.is_empty(),
            "{what}: {} of {} acknowledged messages lost, e.g. {:?}",
            lost.len(),
            acked.len(),
            &lost[..lost.len().min(10)]
        );
        eprintln!("{what}: {} acknowledged, none lost", acked.len());
    }
    // Without a bounce this test would not reach the path it is for.
    assert!(bounced > 0, "no relay found its member gone in 8 rounds");
    let _ = std::fs::remove_dir_all(&dir);
}

/// One round of [`relays_to_a_gone_member_survive_kill_9`] on `b`: the sequence numbers the
/// publisher got a PUBACK for, those some member received, and the broker (killed `kill_us`
/// after the first takeover's CONNACK, or left running once every message was acknowledged).
async fn relay_round(
    mut b: Broker,
    round: usize,
    kill_us: Option<u64>,
    what: &str,
) -> (BTreeSet<usize>, BTreeSet<usize>, Broker) {
    let filter = group_on(&format!("rb{round}/#"), 0, b.shards);
    let topic = format!("rb{round}/t");
    let taker_id = b.id(&format!("rb-taker{round}"), 0);
    // What the members received (and acknowledged, as rumqttc does on poll).
    let got = Arc::new(Mutex::new(BTreeSet::new()));
    let member = |c: rumqttc::AsyncClient, mut ev: rumqttc::EventLoop| {
        let got = got.clone();
        tokio::spawn(async move {
            while let Ok(e) = ev.poll().await {
                if let Event::Incoming(Packet::Publish(p)) = e {
                    got.lock().expect("set").extend(seq(&p));
                }
            }
            drop(c);
        })
    };
    let mut tasks = Vec::new();
    let mut giver_ids = Vec::new();
    for id in std::iter::once(taker_id).chain((0..16).map(|i| b.id(&format!("rb-g{round}-{i}"), 1)))
    {
        let (c, mut ev) = client(&b, &id, false, 100);
        connected(&mut ev).await;
        subscribed(&c, &mut ev, &filter, QoS::AtLeastOnce).await;
        tasks.push(member(c, ev));
        giver_ids.push(id);
    }
    giver_ids.remove(0); // the taker
    let n = 4000;
    let (p, mut pev) = client(&b, &format!("rb-pub{round}"), true, 100);
    connected(&mut pev).await;
    let feeder = feed(&p, &topic, n);
    // The publisher: the sequence number of each packet id in flight, and what was acknowledged.
    let mut sent: HashMap<u16, usize> = HashMap::new();
    let mut next = 0;
    let mut acked = BTreeSet::new();
    let (took_tx, mut took) = tokio::sync::mpsc::unbounded_channel();
    let mut takeovers = None;
    let mut first = None;
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if takeovers.is_none() && acked.len() >= n / 4 {
            // A clean start on each member's client id, all at once: the old sessions end.
            let tasks: Vec<_> = giver_ids
                .iter()
                .map(|id| {
                    let (c, mut ev) = client(&b, id, true, 100);
                    let took = took_tx.clone();
                    tokio::spawn(async move {
                        if let Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) =
                            tokio::time::timeout(Duration::from_secs(5), ev.poll()).await
                        {
                            let _ = took.send(());
                        }
                        drop((c, ev));
                    })
                })
                .collect();
            takeovers = Some(tasks);
        }
        if first.is_none() && took.try_recv().is_ok() {
            first = Some(std::time::Instant::now());
        }
        if let (Some(at), Some(us)) = (first, kill_us) {
            if at.elapsed() >= Duration::from_micros(us) {
                break;
            }
        }
        if acked.len() == n {
            break;
        }
        match tokio::time::timeout(Duration::from_micros(200), pev.poll()).await {
            Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                sent.insert(pkid, next);
                next += 1;
            }
            Ok(Ok(Event::Incoming(Packet::PubAck(a)))) => {
                acked.extend(sent.get(&a.pkid).copied());
            }
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => panic!("{what}: publisher after {} acks: {e}", acked.len()),
        }
        assert!(
            tokio::time::Instant::now() < until,
            "{what}: publisher stuck"
        );
    }
    feeder.abort();
    if kill_us.is_some() {
        b.kill9();
    } else {
        // Let the taker drain what was given back.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for t in tasks.into_iter().chain(takeovers.into_iter().flatten()) {
        t.abort();
        let _ = t.await;
    }
    let got = got.lock().expect("set").clone();
    (acked, got, b)
}
