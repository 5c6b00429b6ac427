//! The mesh between two shards: messages per second from one glommio executor to another over
//! the channel mesh the broker uses (`MeshBuilder::full`, the default channel capacity), in
//! batches of 1 to 256 `MeshMsg::Publish`es (`limits::MESH_BATCH_MAX` is 256). Each element is
//! what a cross-shard PUBLISH costs the mesh: an `Arc<Message>` clone, the batch's share of one
//! channel operation, and the receiver's drop of it. Routing on either side is measured by the
//! `routing` benchmark, not here.
//!
//! The two executors are pinned to CPUs 0 and 1 when the machine has two (as two shards are),
//! and are started for each sample; only the transfer is timed: from the first send, after
//! both have joined the mesh, to the last batch received.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use glommio::channels::channel_mesh::{Full, MeshBuilder};
use glommio::{LocalExecutorBuilder, Placement};
use ringmq::codec::{Properties, QoS};
use ringmq::limits;
use ringmq::session::Message;
use ringmq::shard::mesh::MeshMsg;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn message() -> Arc<Message> {
    Arc::new(Message::owned(
        "bench/mesh/topic",
        &[0u8; 64],
        QoS::AtLeastOnce,
        false,
        Properties::default(),
        0,
    ))
}

fn placement(cpu: usize) -> Placement {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus >= 2 {
        Placement::Fixed(cpu)
    } else {
        Placement::Unbound
    }
}

/// Send `n` messages from shard 0 to shard 1 in batches of `batch`; the transfer's duration.
fn transfer(n: u64, batch: usize) -> Duration {
    let mesh: MeshBuilder<Vec<MeshMsg>, Full> =
        MeshBuilder::full(2, limits::MESH_CHANNEL_CAPACITY_DEFAULT);
    let start = Arc::new(Barrier::new(2));
    let msg = message();
    let sender = {
        let (mesh, start) = (mesh.clone(), start.clone());
        LocalExecutorBuilder::new(placement(0))
            .name("mesh-bench-0")
            .io_memory(limits::IO_MEMORY_BYTES)
            .spawn(move || async move {
                let (senders, _receivers) = mesh.join().await.expect("join");
                start.wait();
                let t0 = Instant::now();
                let mut left = n;
                while left > 0 {
                    let k = left.min(batch as u64);
                    let b: Vec<MeshMsg> =
                        (0..k).map(|_| MeshMsg::Publish(msg.clone(), 0)).collect();
                    if senders.send_to(1, b).await.is_err() {
                        break;
                    }
                    left -= k;
                }
                t0
            })
            .expect("executor 0")
    };
    let receiver = LocalExecutorBuilder::new(placement(1))
        .name("mesh-bench-1")
        .io_memory(limits::IO_MEMORY_BYTES)
        .spawn(move || async move {
            let (_senders, receivers) = mesh.join().await.expect("join");
            start.wait();
            let mut got = 0u64;
            while got < n {
                match receivers.recv_from(0).await {
                    Ok(Some(b)) => got += b.len() as u64,
                    _ => break,
                }
            }
            Instant::now()
        })
        .expect("executor 1");
    let t0 = sender.join().expect("sender");
    let t1 = receiver.join().expect("receiver");
    t1.saturating_duration_since(t0)
}

fn bench_mesh(c: &mut Criterion) {
    let mut g = c.benchmark_group("mesh_two_shards");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    for batch in [1usize, 16, 64, 256] {
        g.bench_with_input(BenchmarkId::new("batch", batch), &batch, |b, &batch| {
            // At least 100k messages per sample, so executor start-up is far from the timing.
            b.iter_custom(|iters| {
                let n = iters.max(100_000);
                transfer(n, batch).mul_f64(iters as f64 / n as f64)
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench_mesh);
criterion_main!(benches);
