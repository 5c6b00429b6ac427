//! The shared clock and the per-thread precise timer.
//!
//! Every timestamp in the generator is raw `CLOCK_MONOTONIC` nanoseconds. All clients live in
//! this one process, so a publisher's send stamp and a subscriber's receive stamp come from the
//! same clock and their difference is a true end-to-end latency. Using the raw clock (rather
//! than `Instant`) lets the same numbers arm a `timerfd` with an absolute deadline.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Nanoseconds of `CLOCK_MONOTONIC` (vDSO: tens of nanoseconds, no syscall).
#[inline]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Ask the kernel for 1 ns of timer slack on the calling thread. The default 50 µs slack would
/// add up to 50 µs to every open-loop send, which is latency the broker did not cause.
pub fn tighten_timer_slack() {
    // SAFETY: prctl(PR_SET_TIMERSLACK) takes an integer and affects only this thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
}

/// A `timerfd` armed with absolute monotonic deadlines, registered in the worker's poll set.
///
/// epoll's own timeout has millisecond granularity (mio rounds up), which would make an
/// open-loop publisher send up to 1 ms late; a timerfd wakes the loop within microseconds.
pub struct Timer {
    fd: OwnedFd,
    armed_at: u64,
}

impl Timer {
    pub fn new() -> io::Result<Timer> {
        // SAFETY: plain syscall; the returned descriptor is checked and then owned.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Timer { fd, armed_at: 0 })
    }

    /// Arm for `deadline_ns` (absolute), unless already armed for that same instant.
    pub fn arm(&mut self, deadline_ns: u64) {
        if deadline_ns == self.armed_at {
            return;
        }
        self.armed_at = deadline_ns;
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            // A zero it_value would disarm the timer; deadlines are never at time 0.
            it_value: libc::timespec {
                tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (deadline_ns % 1_000_000_000).max(1) as libc::c_long,
            },
        };
        // SAFETY: valid fd and a fully initialised itimerspec.
        unsafe {
            libc::timerfd_settime(
                self.fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
    }

    /// Consume the expiration count so the (edge-triggered) fd can fire again.
    pub fn clear(&mut self) {
        let mut buf = [0u8; 8];
        // SAFETY: reading 8 bytes into an 8-byte buffer from our own non-blocking fd.
        unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
        self.armed_at = 0;
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Parse a duration such as `10`, `10s`, `1.5s`, `500ms`, `250us`, `2m` (bare numbers are
/// seconds).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (examples: 10, 10s, 500ms, 2m)"))?;
    if !(v >= 0.0 && v.is_finite()) {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(std::time::Duration::from_secs_f64(v * mult))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn clock_is_monotonic() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn timer_fires() {
        let mut t = Timer::new().unwrap();
        t.arm(now_ns() + 1_000_000);
        std::thread::sleep(Duration::from_millis(3));
        let mut buf = [0u8; 8];
        let n = unsafe { libc::read(t.raw_fd(), buf.as_mut_ptr().cast(), 8) };
        assert_eq!(n, 8, "timerfd expired");
    }
}
