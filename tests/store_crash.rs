//! Crash test of the store's log: a child process (this test binary, re-invoked with
//! `RINGMQ_STORE_CRASH_CHILD` set) appends and commits records as fast as it can and prints
//! every LSN once `wait_committed` says it is committed; the parent `kill -9`s it at a random
//! moment once it is committing, and recovers the directory. Every LSN the child printed must come back intact, the
//! records must be exactly 1..=n with the contents the child wrote, and nothing damaged may be
//! returned. Several rounds on the same directory, so each child also recovers what the
//! previous one's death left (a cut tail) and appends after it; rounds alternate O_DIRECT and
//! the buffered fallback, and the last two use `power` durability.

use glommio::{LocalExecutorBuilder, Placement};
use rand::Rng;
use ringmq::store::{self, Durability, Kind, Log, LogOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "RINGMQ_STORE_CRASH_CHILD";
const DIRECT_ENV: &str = "RINGMQ_STORE_CRASH_DIRECT";
const POWER_ENV: &str = "RINGMQ_STORE_CRASH_POWER";
const SHARD: usize = 0;
/// Small segments, so rotations (and spare preparation) happen under the knife too.
const SEGMENT_BYTES: u64 = 1024 * 1024;
const PRODUCERS: u64 = 16;

/// The record the child writes at `lsn`: its size and bytes are a function of the LSN alone,
/// so the parent can check every recovered record without being told what was written.
fn payload(lsn: u64) -> Vec<u8> {
    let len = (lsn.wrapping_mul(2_654_435_761) % 700) as usize;
    (0..len)
        .map(|i| (lsn as usize).wrapping_mul(31).wrapping_add(i) as u8)
        .collect()
}

fn kind(lsn: u64) -> Kind {
    Kind(16 + (lsn % 7) as u8)
}

fn options(dir: &Path, direct_io: bool) -> LogOptions {
    let power = std::env::var(POWER_ENV).is_ok_and(|v| v == "1");
    LogOptions {
        data_dir: dir.to_path_buf(),
        shard: SHARD,
        durability: if power {
            Durability::Power
        } else {
            Durability::Process
        },
        segment_bytes: SEGMENT_BYTES,
        max_bytes: 0,
        direct_io,
    }
}

/// The child: recover, then append and commit until killed.
fn child(dir: &Path, direct_io: bool) {
    let rec = store::recover(dir, SHARD).expect("child recovers");
    let opts = options(dir, direct_io);
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(ringmq::limits::IO_MEMORY_BYTES)
        .spawn(move || async move {
            let log = Rc::new(Log::open(opts, &rec).await.expect("child opens the log"));
            glommio::spawn_local(log.clone().run_committer(Duration::ZERO)).detach();
            let mut tasks = Vec::new();
            for p in 0..PRODUCERS {
                let log = log.clone();
                tasks.push(glommio::spawn_local(async move {
                    loop {
                        // A few records per round trip, like a connection's read batch.
                        let mut last = 0;
                        for _ in 0..(1 + p % 4) {
                            let lsn = log.next_lsn();
                            last = log.append(kind(lsn), &payload(lsn)).expect("append");
                            assert_eq!(last, lsn);
                        }
                        log.wait_committed(last).await.expect("commit");
                        let mut out = std::io::stdout().lock();
                        // Only what the log reported committed is printed.
                        let _ = writeln!(out, "committed {last}");
                        let _ = out.flush();
                    }
                }));
            }
            for t in tasks {
                t.await;
            }
        })
        .expect("child executor")
        .join()
        .expect("child runs");
}

#[test]
fn crash_child() {
    // Only does something when re-invoked by `kill_9_loses_nothing_committed`.
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let direct = std::env::var(DIRECT_ENV).map_or(true, |v| v == "1");
        child(Path::new(&dir), direct);
    }
}

/// Run one child until it has printed a few committed LSNs, then for `run_for` more, SIGKILL
/// it, and return the highest LSN it printed. Waiting for progress first keeps the test honest
/// on a busy machine (a slow disk must not turn into "killed before it started").
fn run_and_kill(dir: &Path, direct: bool, power: bool, run_for: Duration) -> u64 {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env(DIRECT_ENV, if direct { "1" } else { "0" })
        .env(POWER_ENV, if power { "1" } else { "0" })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped");
    let (progress, seen) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut max = 0u64;
        let mut lines = 0u64;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // A line cut by the kill does not parse and is ignored (under-reporting is safe).
            if let Some(n) = line.strip_prefix("committed ").and_then(|n| n.parse().ok()) {
                max = max.max(n);
                lines += 1;
                if lines == 20 {
                    let _ = progress.send(());
                }
            }
        }
        (max, lines)
    });
    let started = Instant::now();
    let progressed = seen.recv_timeout(Duration::from_secs(5)).is_ok();
    if progressed {
        std::thread::sleep(run_for);
    }
    child.kill().expect("kill -9");
    let status = child.wait().expect("reap");
    assert!(!status.success(), "the child was killed, not finished");
    let (max, lines) = reader.join().expect("reader");
    assert!(progressed, "the child committed nothing within 5 s");
    eprintln!(
        "round: direct={direct} power={power} ran {:?}, {lines} commit lines, highest committed LSN {max}",
        started.elapsed()
    );
    max
}

fn verify(dir: &Path, committed: u64) -> u64 {
    let rec = store::recover(dir, SHARD).expect("recovery after kill -9");
    let last = rec.records.last().map_or(0, |r| r.lsn);
    assert!(
        last >= committed,
        "LSN {committed} was reported committed but recovery ends at {last}"
    );
    for (i, r) in rec.records.iter().enumerate() {
        let lsn = i as u64 + 1;
        assert_eq!(r.lsn, lsn, "records are 1..=n with no gap");
        assert_eq!(r.kind, kind(lsn), "kind of {lsn}");
        assert_eq!(&r.payload[..], &payload(lsn)[..], "payload of {lsn}");
    }
    if let Some(s) = &rec.skipped {
        eprintln!("recovery cut a torn tail: {s:?}");
    }
    assert_eq!(rec.next_lsn, last + 1);
    last
}

#[test]
fn kill_9_loses_nothing_committed() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let started = Instant::now();
    let mut rng = rand::thread_rng();
    let mut prev_last = 0;
    for round in 0..6 {
        let direct = round % 2 == 0;
        // Rounds 4 and 5 sync every commit (durability = power): same promise, other path.
        let power = round >= 4;
        let run_for = Duration::from_millis(rng.gen_range(0..600));
        let committed = run_and_kill(tmp.path(), direct, power, run_for);
        assert!(
            committed > prev_last,
            "round {round}: the child made progress"
        );
        prev_last = verify(tmp.path(), committed);
    }
    let segments = store::recover(tmp.path(), SHARD)
        .expect("final")
        .segments
        .len();
    eprintln!(
        "6 rounds in {:?}, {prev_last} records in {segments} segments",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}
