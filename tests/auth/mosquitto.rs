//! A real Mosquitto broker on a leased loopback port, for interoperability tests of ringmq's
//! auth files: started with a generated config, killed (by its own PID) when dropped, and with
//! the test process whatever happens. Every client run is bounded in time.

use crate::broker_process::PortLease;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";
pub const MOSQUITTO_PUB: &str = "/usr/bin/mosquitto_pub";
pub const MOSQUITTO_SUB: &str = "/usr/bin/mosquitto_sub";

/// `None` (with a message saying why) when Mosquitto or its clients are not installed.
pub fn available() -> bool {
    let ok = [MOSQUITTO, MOSQUITTO_PUB, MOSQUITTO_SUB]
        .iter()
        .all(|p| Path::new(p).exists());
    if !ok {
        eprintln!(
            "skipped: Mosquitto not installed (Debian packages mosquitto, mosquitto-clients)"
        );
    }
    ok
}

pub struct Mosquitto {
    child: Child,
    pub port: u16,
    _lease: PortLease,
    _dir: tempfile::TempDir,
}

fn pdeathsig(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; the child dies with the test process.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

impl Mosquitto {
    /// Start Mosquitto with `extra` config lines (password_file, acl_file, allow_anonymous...).
    pub fn start(extra: &str) -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        let lease = PortLease::acquire();
        let port = lease.port;
        let conf: PathBuf = dir.path().join("mosquitto.conf");
        // `user root`: run as root, Mosquitto would otherwise drop to the mosquitto user, which
        // cannot read a 0600 file in our temporary directory. Ignored when not root.
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nuser root\npersistence false\n{extra}\n"),
        )
        .expect("write mosquitto.conf");
        let mut cmd = Command::new(MOSQUITTO);
        cmd.arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        pdeathsig(&mut cmd);
        let child = cmd.spawn().expect("start mosquitto");
        let mut m = Mosquitto {
            child,
            port,
            _lease: lease,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(st)) = m.child.try_wait() {
                panic!("mosquitto exited at start: {st} (config: {extra})");
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }

    pub fn port_arg(&self) -> String {
        self.port.to_string()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run a client for at most `limit`; killed (by PID) past it. Returns its output and whether it
/// finished by itself.
pub fn run_bounded(program: &str, args: &[&str], limit: Duration) -> (Output, bool) {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    pdeathsig(&mut cmd);
    let mut child = cmd.spawn().expect("start client");
    let deadline = Instant::now() + limit;
    let finished = loop {
        match child.try_wait() {
            Ok(Some(_)) => break true,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                break false;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break false,
        }
    };
    let out = child.wait_with_output().expect("client output");
    (out, finished)
}
