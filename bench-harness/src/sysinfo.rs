//! Readings of this process and of the broker: CPU time, resident memory, limits.
//!
//! (Per-CPU busy time from /proc/stat is deliberately not used: on tickless VMs it is sampled
//! at the 100 Hz tick and was seen reporting a core 1% busy while a process pinned to it used
//! 30%. Process CPU from getrusage and /proc/PID/stat is exact, but excludes softirq time,
//! where much of loopback TCP's work happens.)
//!
//! The generator's own CPU use is part of every report ("is the generator the bottleneck?"):
//! process-wide via `getrusage(RUSAGE_SELF)` and per I/O thread via `RUSAGE_THREAD` (one
//! thread at ~100% means that thread, not the broker, set the pace). The broker is observed
//! through `/proc/PID/stat` (CPU) and `/proc/PID/status` (VmRSS) when its pid is given.

use std::fs;

/// (user, system) CPU nanoseconds.
fn rusage(who: libc::c_int) -> (u64, u64) {
    // SAFETY: zeroed rusage is a valid out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer; RUSAGE_SELF/RUSAGE_THREAD are valid selectors.
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// User + system CPU nanoseconds consumed by this whole process so far.
pub fn cpu_self_ns() -> u64 {
    let (u, s) = rusage(libc::RUSAGE_SELF);
    u + s
}

/// (user, system) CPU nanoseconds of this whole process so far.
pub fn cpu_self_split_ns() -> (u64, u64) {
    rusage(libc::RUSAGE_SELF)
}

/// User + system CPU nanoseconds consumed by the calling thread so far.
pub fn cpu_thread_ns() -> u64 {
    let (u, s) = rusage(libc::RUSAGE_THREAD);
    u + s
}

/// CPUs process `pid` may run on (0 = this process).
pub fn affinity(pid: u32) -> Vec<usize> {
    // SAFETY: zeroed cpu_set_t is valid; sched_getaffinity writes at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let ok = unsafe {
        libc::sched_getaffinity(
            pid as libc::pid_t,
            std::mem::size_of::<libc::cpu_set_t>(),
            &mut set,
        )
    } == 0;
    if !ok {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: index below CPU_SETSIZE.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// User + system CPU nanoseconds of process `pid` (all its threads), from /proc/PID/stat.
pub fn proc_cpu_ns(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields resume after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at offsets 11 and 12.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf is always safe to call.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some((utime + stime) * 1_000_000_000 / hz)
}

/// Resident set size of process `pid` in bytes (VmRSS).
pub fn proc_rss_bytes(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Raise the soft open-files limit to the hard limit; returns the resulting soft limit.
pub fn raise_nofile_limit() -> u64 {
    // SAFETY: zeroed rlimit is a valid out-parameter; RLIMIT_NOFILE is a valid resource.
    let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 1024;
        }
        if rl.rlim_cur < rl.rlim_max {
            let want = libc::rlimit {
                rlim_cur: rl.rlim_max,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                rl.rlim_cur = rl.rlim_max;
            }
        }
    }
    rl.rlim_cur as u64
}

/// CPUs this process may run on (honours `taskset`).
pub fn available_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`).
pub fn ephemeral_ports() -> (u16, u16) {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|x| x.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// Percent of one core used over an interval.
pub fn pct_of_core(cpu_ns: u64, wall_ns: u64) -> f64 {
    if wall_ns == 0 {
        0.0
    } else {
        cpu_ns as f64 * 100.0 / wall_ns as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(proc_rss_bytes(pid).unwrap() > 0);
        // Burn a little CPU so the tick-based counter moves.
        let t0 = std::time::Instant::now();
        let mut x = 0u64;
        while t0.elapsed().as_millis() < 30 {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(proc_cpu_ns(pid).is_some());
        assert!(cpu_self_ns() > 0);
        assert!(cpu_thread_ns() > 0);
        let mine = affinity(0);
        assert!(!mine.is_empty());
        assert!(raise_nofile_limit() >= 256);
        let (lo, hi) = ephemeral_ports();
        assert!(lo < hi);
        assert_eq!(pct_of_core(500, 1000), 50.0);
    }
}
