//! What the end-to-end tests share: finding the brokers' binaries, free ports, and running the
//! real `ringmq-bench` binary with a deadline. Each test file uses part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BENCH: &str = env!("CARGO_BIN_EXE_ringmq-bench");

/// `$VAR`, else the first of `candidates` that exists.
pub fn find(var: &str, candidates: Vec<PathBuf>) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(var) {
        return Some(PathBuf::from(p));
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// The ringmq binary: `$RINGMQ`, else beside this test's `ringmq-bench` (same profile), else the
/// release build of the same target directory. ringmq is another package of the workspace, so
/// Cargo does not build it for these tests.
pub fn find_ringmq() -> Option<PathBuf> {
    let dir = Path::new(BENCH).parent()?;
    let release = dir.parent()?.join("release").join("ringmq");
    find("RINGMQ", vec![dir.join("ringmq"), release])
}

/// Mosquitto: `$MOSQUITTO`, else on PATH, else where Debian puts it.
pub fn find_mosquitto() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from));
    find(
        "MOSQUITTO",
        dirs.into_iter().map(|d| d.join("mosquitto")).collect(),
    )
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Run ringmq-bench, killing it if it takes longer than `secs`.
pub fn bench(args: &[&str], secs: u64) -> Output {
    let mut child = Command::new(BENCH)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "ringmq-bench {args:?} still running after {secs} s: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A broker process a test started and its scratch directory: killed (by its own handle, never
/// by name) and removed when dropped, even if the test panics.
pub struct Started {
    pub child: std::process::Child,
    pub dir: PathBuf,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
