//! The `ringmq` process every integration suite runs against: started on a loopback port no
//! other test broker can be given, ready once it accepts TCP, killed when dropped (and with the
//! test process, whatever happens). Included by each suite with
//! `#[path = "../support/broker_process.rs"]`.
//!
//! Why ports need care: the broker binds one SO_REUSEPORT socket per shard, so it cannot be
//! given port 0, and two brokers given the same port *both* bind it and split its connections
//! between them, silently. "Bind port 0, read the port, close, start the broker" therefore races:
//! two tests (threads of one test binary, or two test binaries run at once) can be handed the
//! same port. A port is instead reserved in three steps, see [`PortLease`].

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// A `ringmq` process on a loopback port reserved for it, killed when dropped.
pub struct Broker {
    child: Child,
    pub port: u16,
    pub shards: usize,
    /// The data directory made for this broker (removed when it is dropped).
    data_dir: Option<PathBuf>,
    /// Held for the process's lifetime; dropped (unlocking the port) after `Drop` has killed and
    /// reaped the broker, since fields drop after `Drop::drop` runs.
    _lease: PortLease,
}

/// Test brokers take ports from this range: below Linux's default ephemeral range
/// (32768–60999), so ports the kernel hands out for outgoing connections and `bind(0)`
/// (Mosquitto in the load-generator tests, clients) do not collide with it.
const PORT_FIRST: u16 = 20_000;
const PORT_COUNT: u32 = 12_000;

/// Candidates handed out by this process, so threads start from different ports.
static NEXT_CANDIDATE: AtomicU32 = AtomicU32::new(0);

/// An exclusive claim on one loopback port among every process using this file:
/// 1. a process-wide counter (offset by the pid, so processes start apart) proposes a port;
/// 2. an exclusive, non-blocking `flock` on `<tmp>/ringmq-test-ports/<port>.lock` claims it
///    among all threads and processes: each attempt opens the file afresh, and flock locks
///    belong to the open file description, so two threads of one process exclude each other as
///    two processes do. The kernel drops the lock when the process dies, even by SIGKILL, so a
///    crashed test leaves nothing stale;
/// 3. a probe bind (no SO_REUSEPORT) checks nothing else (another program) listens there.
///
/// The claim lasts as long as the value, i.e. as long as the broker using the port. A program
/// outside this scheme could still take the port between the probe and the broker's bind; the
/// broker then fails to bind and exits, or (another SO_REUSEPORT user) the probe fails first.
pub struct PortLease {
    pub port: u16,
    _lock: File,
}

fn lock_dir() -> PathBuf {
    std::env::temp_dir().join("ringmq-test-ports")
}

impl PortLease {
    /// Claim a port; panics if none of the whole range could be claimed.
    pub fn acquire() -> PortLease {
        let dir = lock_dir();
        std::fs::create_dir_all(&dir).expect("create the port lock directory");
        let base = std::process::id().wrapping_mul(7919);
        for _ in 0..PORT_COUNT {
            let n = NEXT_CANDIDATE.fetch_add(1, Ordering::Relaxed);
            let port = PORT_FIRST + (base.wrapping_add(n) % PORT_COUNT) as u16;
            if let Some(lease) = PortLease::try_port(&dir, port) {
                return lease;
            }
        }
        panic!(
            "no free test port in {PORT_FIRST}..{}",
            u32::from(PORT_FIRST) + PORT_COUNT
        );
    }

    fn try_port(dir: &std::path::Path, port: u16) -> Option<PortLease> {
        let file = PortLease::lock(dir, port)?;
        // Something outside the scheme may listen there; the probe is closed at once.
        std::net::TcpListener::bind(("127.0.0.1", port)).ok()?;
        Some(PortLease { port, _lock: file })
    }

    /// The exclusive lock on `port`'s lease file, if no thread or process holds it.
    fn lock(dir: &std::path::Path, port: u16) -> Option<std::fs::File> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{port}.lock")))
            .ok()?;
        // SAFETY: flock on a valid, owned descriptor.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return None; // another thread or process holds this port
        }
        Some(file)
    }
}

impl Broker {
    /// `shards` shards with extra flags, e.g. `&["--queued-messages-max", "10"]`.
    /// `RINGMQ_TEST_LOG=debug` shows the broker's log on stderr.
    pub async fn launch(shards: usize, args: &[&str]) -> Broker {
        Broker::launch_logging(shards, args, None).await
    }

    /// As [`launch`](Self::launch), with the broker's log at `level` appended to `file` (for
    /// tests that check what the broker logs).
    pub async fn launch_logging(
        shards: usize,
        args: &[&str],
        to_file: Option<(&str, &std::path::Path)>,
    ) -> Broker {
        let log = to_file
            .map(|(level, _)| level.to_owned())
            .or_else(|| std::env::var("RINGMQ_TEST_LOG").ok());
        for _ in 0..5 {
            let lease = PortLease::acquire();
            let port = lease.port;
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringmq"));
            // The default durability with a directory of its own, removed with the broker; a
            // test that restarts a broker on its data passes `--data-dir` itself.
            let data_dir = (!args.contains(&"--data-dir")).then(fresh_data_dir);
            if let Some(d) = &data_dir {
                cmd.arg("--data-dir").arg(d);
            }
            // The admin HTTP API's default port is fixed: test brokers leave it off unless a test
            // gives it a leased port of its own.
            if !args.iter().any(|a| a.starts_with("--http-")) {
                cmd.args(["--http-enabled", "false"]);
            }
            // `RINGMQ_TEST_HIBERNATE_IDLE_MS=1` runs a suite with idle connections put to sleep
            // after 100-200 ms (one or two control ticks): every wait of a test then also tests
            // waking (src/net/dormant.rs).
            if let Ok(ms) = std::env::var("RINGMQ_TEST_HIBERNATE_IDLE_MS") {
                if !args.contains(&"--hibernate-idle-ms") {
                    cmd.args(["--hibernate-idle-ms", &ms]);
                }
            }
            cmd.arg("--bind")
                .arg(format!("127.0.0.1:{port}"))
                .args(["--shards", &shards.to_string(), "--pin", "false"])
                .args(["--log-level", log.as_deref().unwrap_or("error")])
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(match (to_file, &log) {
                    (Some((_, file)), _) => std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(file)
                        .expect("broker log file")
                        .into(),
                    (None, Some(_)) => Stdio::inherit(),
                    (None, None) => Stdio::null(),
                });
            // SAFETY: prctl is async-signal-safe; the broker dies with the test process even if
            // the test runner kills it before Drop runs.
            unsafe {
                use std::os::unix::process::CommandExt;
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let child = cmd.spawn().expect("spawn the ringmq binary");
            let mut broker = Broker {
                child,
                port,
                shards,
                data_dir,
                _lease: lease,
            };
            if broker.wait_ready().await {
                return broker;
            }
        }
        panic!("ringmq did not start listening (5 attempts)");
    }

    /// True once a TCP connect succeeds; false if the process exited (port taken) or 5 s passed.
    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if TcpStream::connect(self.addr()).await.is_ok() {
                return matches!(self.child.try_wait(), Ok(None));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// The broker's process id, to signal it (SIGHUP in the broker tests; the conformance
    /// suite shares this file and never signals).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL (no chance to flush anything), and reap it.
    #[allow(dead_code)]
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    #[allow(dead_code)]
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process is still running.
    pub fn assert_alive(&mut self) {
        assert!(
            matches!(self.child.try_wait(), Ok(None)),
            "the broker process exited"
        );
    }

    /// A client id homed on shard `shard % shards`: with 2 shards, clients named with different
    /// `shard` values live on different shards.
    pub fn id(&self, name: &str, shard: usize) -> String {
        id_on(name, shard % self.shards, self.shards)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(d) = &self.data_dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// A new, empty data directory under the target directory (a real disk, as users run it; not
/// a tmpfs, where O_DIRECT is not available).
#[allow(dead_code)]
pub fn fresh_data_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "ringmq-data-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The first id `name`, `name-1`, `name-2`, ... homed on `shard`.
pub fn id_on(name: &str, shard: usize, shards: usize) -> String {
    (0..)
        .map(|n| {
            if n == 0 {
                name.to_string()
            } else {
                format!("{name}-{n}")
            }
        })
        .find(|id| ringmq::shard::home_shard(id, shards) == shard)
        .expect("some id lands on every shard")
}

impl Broker {
    /// SIGTERM the broker and wait up to `within` for it to exit; its exit status, or `None` if
    /// it is still running (it is killed when dropped).
    #[allow(dead_code)] // only the broker suite stops brokers this way
    pub async fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY: kill(2) on the pid of the child this struct owns (it has not been reaped).
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

/// Regression: parallel tests once started two brokers on one port, each binding it with
/// SO_REUSEPORT, and connections went to whichever the kernel picked.
#[cfg(test)]
mod port_race {
    use super::{Broker, PortLease};
    use ringmq::codec::{self, Packet, Protocol};
    use std::collections::HashSet;
    use std::sync::{mpsc, Arc, Barrier};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Brokers started at the same instant (threads released together by a barrier).
    const BROKERS: usize = 6;
    /// Connections checked per broker: with two brokers on one port, at least one of them would
    /// very likely reach the other one.
    const PROBES: usize = 8;

    /// The Server Keep Alive of a v5 CONNACK: each broker is started with its own value, so
    /// a CONNACK names the broker that sent it.
    async fn server_keep_alive(port: u16) -> u16 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("the broker answers on its port");
        let mut c = crate::raw_client::connect_packet(Protocol::V5, "port-race-probe");
        c.client_id = bytestring::ByteString::new(); // v5: the broker assigns one
        c.keep_alive_s = 0; // none asked: the broker's cap comes back as Server Keep Alive
        let mut out = bytes::BytesMut::new();
        codec::encode(&Packet::Connect(Box::new(c)), Protocol::V5, &mut out).expect("encode");
        s.write_all(&out).await.expect("send CONNECT");
        let mut buf = bytes::BytesMut::new();
        loop {
            if let Some(p) = codec::decode(&mut buf, Protocol::V5, 1 << 20).expect("decode") {
                let Packet::ConnAck(a) = p else {
                    panic!("expected CONNACK, got {p:?}")
                };
                assert_eq!(a.code, 0);
                return a.properties.server_keep_alive_s.expect("Server Keep Alive");
            }
            let mut chunk = [0u8; 512];
            let n = s.read(&mut chunk).await.expect("read CONNACK");
            assert!(n > 0, "closed before CONNACK");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    #[test]
    fn concurrently_launched_brokers_get_distinct_ports_and_answer_on_them() {
        // Each launching thread stays alive until the end: the broker's PR_SET_PDEATHSIG is
        // tied to the thread that spawned it.
        let barrier = Arc::new(Barrier::new(BROKERS));
        let (launched_tx, launched) = mpsc::channel();
        let mut exits = Vec::new();
        let threads: Vec<_> = (0..BROKERS)
            .map(|i| {
                let barrier = barrier.clone();
                let launched_tx = launched_tx.clone();
                let (exit_tx, exit_rx) = mpsc::channel::<()>();
                exits.push(exit_tx);
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    barrier.wait();
                    let keep_alive = (100 + i).to_string();
                    let b = rt.block_on(Broker::launch(1, &["--server-keep-alive-s", &keep_alive]));
                    launched_tx.send((i, b.port)).expect("report the port");
                    let _ = exit_rx.recv(); // until the checks are done (or failed)
                    drop(b);
                })
            })
            .collect();
        drop(launched_tx);
        let ports: Vec<(usize, u16)> = (0..BROKERS)
            .map(|_| {
                launched
                    .recv_timeout(Duration::from_secs(60))
                    .expect("every broker launched within 60 s")
            })
            .collect();
        let distinct: HashSet<u16> = ports.iter().map(|&(_, p)| p).collect();
        assert_eq!(distinct.len(), BROKERS, "ports handed out twice: {ports:?}");
        // All brokers are up now; each port must reach its own broker, every time.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        for &(i, port) in &ports {
            for _ in 0..PROBES {
                let ka = rt.block_on(async {
                    tokio::time::timeout(Duration::from_secs(5), server_keep_alive(port))
                        .await
                        .expect("CONNACK within 5 s")
                });
                assert_eq!(
                    usize::from(ka),
                    100 + i,
                    "port {port} is served by another test's broker"
                );
            }
        }
        drop(exits);
        for t in threads {
            t.join().expect("launch thread");
        }
    }

    #[test]
    fn a_leased_port_is_not_leased_again_until_released() {
        let a = PortLease::acquire();
        let b = PortLease::acquire();
        assert_ne!(a.port, b.port);
        // Claiming the same port through a fresh descriptor fails while `a` holds it, exactly as
        // it would from another process.
        assert!(PortLease::lock(&super::lock_dir(), a.port).is_none());
        let port = a.port;
        drop(a);
        // The lock itself (not the probe bind, which a socket lingering on the port from an
        // earlier run may refuse) is free again. A broker another test forks at this moment
        // shares the descriptor until its exec closes it (O_CLOEXEC), hence the short retry.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while PortLease::lock(&super::lock_dir(), port).is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "port {port} still locked"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
