//! The `ringmq` process every integration suite runs against: started on a free loopback port,
//! ready once it accepts TCP, killed when dropped (and with the test process, whatever happens).
//! Included by each suite with `#[path = "../support/broker_process.rs"]`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// A `ringmq` process on a free loopback port, killed when dropped.
pub struct Broker {
    child: Child,
    pub port: u16,
    pub shards: usize,
}

/// A loopback port nothing listens on right now. The broker binds one SO_REUSEPORT socket per
/// shard, so it cannot be given port 0; a port taken in between makes the broker exit, which
/// [`Broker::launch`] detects and retries.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe listener");
    l.local_addr().expect("probe address").port()
}

impl Broker {
    /// `shards` shards with extra flags, e.g. `&["--queued-messages-max", "10"]`.
    /// `RINGMQ_TEST_LOG=debug` shows the broker's log on stderr.
    pub async fn launch(shards: usize, args: &[&str]) -> Broker {
        let log = std::env::var("RINGMQ_TEST_LOG").ok();
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringmq"));
            cmd.arg("--bind")
                .arg(format!("127.0.0.1:{port}"))
                .args(["--shards", &shards.to_string(), "--pin", "false"])
                .args(["--log-level", log.as_deref().unwrap_or("error")])
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(if log.is_some() {
                    Stdio::inherit()
                } else {
                    Stdio::null()
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

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
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
    }
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
