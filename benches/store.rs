//! The store's log: append + group commit throughput of 100-byte records in batches of 1, 64
//! and 1024 records per commit, with `process` durability (O_DIRECT write completed) and
//! `power` (plus fdatasync); and recovery of a shard log of 1M 100-byte records.
//!
//! Each measurement runs on its own glommio executor sized like a shard's (512 KiB registered
//! pool), in a temporary directory on the disk the working directory is on (tmpfs would not
//! measure a disk). Old segments are released as the run goes, so disk use stays bounded.
//! Throughput is records per second; MB/s is that times 100 payload bytes (117 framed).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use glommio::{LocalExecutorBuilder, Placement};
use ringmq::store::{self, Durability, Kind, Log, LogOptions, Recovered};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

const RECORD_BYTES: usize = 100;

fn bench_dir() -> tempfile::TempDir {
    // Under target/ (the worktree's disk), not /tmp, which may be tmpfs.
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tempfile::tempdir_in(base).expect("bench dir")
}

/// 8 MiB segments: every sample starts a new log whose spare segment is zero-filled before the
/// clock starts; at the default 64 MiB that would write gigabytes of zeros per benchmark.
/// Rotation still happens during the longer runs, as it would every 64 MiB in use.
const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

fn options(dir: &Path, durability: Durability) -> LogOptions {
    LogOptions {
        data_dir: dir.to_path_buf(),
        shard: 0,
        durability,
        segment_bytes: SEGMENT_BYTES,
        max_bytes: 0,
        direct_io: true,
    }
}

/// `iters` commits of `batch` records each, as the broker drives them: the shard's commit
/// task commits in the background (and prepares the next segment), the producer appends a
/// batch and waits for its last LSN. Returns the time they took.
fn run_batches(durability: Durability, batch: u64, iters: u64) -> Duration {
    let dir = bench_dir();
    let opts = options(dir.path(), durability);
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(ringmq::limits::IO_MEMORY_BYTES)
        .spawn(move || async move {
            let log = Rc::new(Log::open(opts, &Recovered::default()).await.expect("open"));
            // Raw device speed: no minimum spacing between power commits.
            let committer = glommio::spawn_local(log.clone().run_committer(Duration::ZERO));
            let rec = [0x5au8; RECORD_BYTES];
            // The first segment is created, and the next one prepared (zero-filled in the
            // background, once per segment in real use), before the clock starts.
            let lsn = log.append(Kind(16), &rec).expect("append");
            log.wait_committed(lsn).await.expect("commit");
            while !log.spare_ready() {
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
            let start = Instant::now();
            for i in 0..iters {
                let mut last = 0;
                for _ in 0..batch {
                    last = log.append(Kind(16), &rec).expect("append");
                }
                log.wait_committed(last).await.expect("commit");
                // Compaction stand-in: keep the directory small on long runs.
                if i % 4096 == 4095 {
                    log.release_before(log.committed()).await.expect("release");
                }
            }
            let took = start.elapsed();
            log.close();
            committer.await;
            took
        })
        .expect("executor")
        .join()
        .expect("bench body")
}

fn bench_commit(c: &mut Criterion) {
    for (name, durability) in [
        ("commit_process", Durability::Process),
        ("commit_power", Durability::Power),
    ] {
        let mut g = c.benchmark_group(name);
        g.sample_size(20);
        g.measurement_time(Duration::from_secs(4));
        g.warm_up_time(Duration::from_secs(1));
        for batch in [1u64, 64, 1024] {
            g.throughput(Throughput::Elements(batch));
            g.bench_with_input(BenchmarkId::new("records_100B", batch), &batch, |b, &n| {
                b.iter_custom(|iters| run_batches(durability, n, iters))
            });
        }
        g.finish();
    }
}

/// Write `n` 100-byte records once (1024 per commit), for recovery to read back.
fn write_log(dir: &Path, n: u64) {
    let opts = options(dir, Durability::Process);
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(ringmq::limits::IO_MEMORY_BYTES)
        .spawn(move || async move {
            let log = Log::open(opts, &Recovered::default()).await.expect("open");
            let rec = [0x5au8; RECORD_BYTES];
            for i in 0..n {
                log.append(Kind(16), &rec).expect("append");
                if i % 1024 == 1023 {
                    log.commit().await.expect("commit");
                }
            }
            log.commit().await.expect("commit");
        })
        .expect("executor")
        .join()
        .expect("write");
}

fn bench_recover(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    let dir = bench_dir();
    write_log(dir.path(), N);
    let mut g = c.benchmark_group("recover");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(N));
    g.bench_function("1M_records_100B", |b| {
        b.iter(|| {
            let r = store::recover(dir.path(), 0).expect("recover");
            assert_eq!(r.records.len() as u64, N);
            r
        })
    });
    g.bench_function("1M_records_100B_streamed", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            let r = store::recover_each(dir.path(), 0, |rec| bytes += rec.payload.len())
                .expect("recover");
            assert_eq!(r.count, N);
            bytes
        })
    });
    g.finish();
}

criterion_group!(benches, bench_commit, bench_recover);
criterion_main!(benches);
