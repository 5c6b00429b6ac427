//! Routing and delivery on one shard, without sockets: a PUBLISH matched in the automaton and
//! delivered (encoded into each subscriber connection's output buffer). Measures the shard's
//! data path for fan-in (1 subscriber, many topics) and fan-out (1 topic, many subscribers).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringmq::codec::{Properties, Protocol, QoS, SubOptions};
use ringmq::config::Config;
use ringmq::session::{ConnLink, Message, Session};
use ringmq::shard::Shard;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

fn message(topic: &str, qos: QoS) -> Arc<Message> {
    Arc::new(Message::owned(
        topic,
        &[0u8; 64],
        qos,
        false,
        Properties::default(),
        0,
    ))
}

/// A shard with `subscribers` connected sessions, each subscribed to `filter`.
fn shard_with(subscribers: usize, filter: &str, protocol: Protocol) -> (Shard, Vec<Rc<ConnLink>>) {
    let mut shard = Shard::new(0, 1, Rc::new(Config::default()));
    let mut links = Vec::new();
    for i in 0..subscribers {
        let uid = shard.next_uid();
        let session = Rc::new(RefCell::new(Session::new(
            format!("sub-{i}").into(),
            uid,
            protocol,
            shard.session_limits.clone(),
        )));
        let link = Rc::new(ConnLink::new());
        session.borrow_mut().attach(link.clone(), protocol);
        let opts = SubOptions {
            qos: QoS::AtMostOnce,
            ..Default::default()
        };
        shard.subscribe(&session, uid, filter, opts, None);
        links.push(link);
    }
    (shard, links)
}

fn drain(links: &[Rc<ConnLink>]) {
    for l in links {
        l.with_out(|o| o.clear());
    }
}

fn bench_fanin(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_fanin");
    g.throughput(Throughput::Elements(1));
    for protocol in [Protocol::V311, Protocol::V5] {
        let (mut shard, links) = shard_with(1, "bench/+/temp", protocol);
        let msgs: Vec<_> = (0..64)
            .map(|i| message(&format!("bench/{i}/temp"), QoS::AtMostOnce))
            .collect();
        let mut i = 0;
        g.bench_function(BenchmarkId::new("qos0_64B", format!("{protocol:?}")), |b| {
            b.iter(|| {
                shard.route(black_box(msgs[i % msgs.len()].clone()), false);
                i += 1;
                if i % 1024 == 0 {
                    drain(&links);
                }
            })
        });
    }
    // Every message under another first level: the per-prefix counters' worst case (a hash
    // lookup per message instead of the repeat check).
    let (mut shard, links) = shard_with(1, "+/temp", Protocol::V311);
    let msgs: Vec<_> = (0..64)
        .map(|i| message(&format!("site{i}/temp"), QoS::AtMostOnce))
        .collect();
    let mut i = 0;
    g.bench_function(BenchmarkId::new("qos0_64B_prefixes", "V311"), |b| {
        b.iter(|| {
            shard.route(black_box(msgs[i % msgs.len()].clone()), false);
            i += 1;
            if i % 1024 == 0 {
                drain(&links);
            }
        })
    });
    g.finish();
}

fn bench_fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_fanout");
    for subscribers in [10usize, 100, 1000] {
        let (mut shard, links) = shard_with(subscribers, "news/#", Protocol::V311);
        let msg = message("news/today", QoS::AtMostOnce);
        g.throughput(Throughput::Elements(subscribers as u64));
        g.bench_function(BenchmarkId::new("qos0_64B_deliveries", subscribers), |b| {
            b.iter(|| {
                shard.route(black_box(msg.clone()), false);
                drain(&links);
            })
        });
    }
    g.finish();
}

/// `ROUTING_FIXED=N`: route N fan-in messages (64 topics under one prefix, then 64 prefixes)
/// and exit, for an instruction count with `perf stat -e instructions:u` (time is too noisy on
/// a shared machine to see a few nanoseconds; the difference of two N cancels start-up).
fn fixed_iterations() {
    let Some(n) = std::env::var("ROUTING_FIXED")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    else {
        return;
    };
    for (filter, topic) in [("bench/+/temp", "bench/{}/temp"), ("+/temp", "site{}/temp")] {
        let (mut shard, links) = shard_with(1, filter, Protocol::V311);
        let msgs: Vec<_> = (0..64)
            .map(|i| message(&topic.replace("{}", &i.to_string()), QoS::AtMostOnce))
            .collect();
        for i in 0..n {
            shard.route(black_box(msgs[i % msgs.len()].clone()), false);
            if i % 1024 == 0 {
                drain(&links);
            }
        }
    }
    std::process::exit(0);
}

fn benches(c: &mut Criterion) {
    fixed_iterations();
    bench_fanin(c);
    bench_fanout(c);
}

criterion_group!(routing, benches);
criterion_main!(routing);
