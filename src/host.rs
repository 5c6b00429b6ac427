//! Start-up report: listeners, shards and limits, and warnings when the host's limits are too
//! low for the configuration (each warning points at `tuning/`).

use crate::config::Config;

fn rlimit(resource: libc::__rlimit_resource_t) -> Option<(u64, u64)> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let ok = unsafe { libc::getrlimit(resource, &mut r) } == 0;
    ok.then_some((r.rlim_cur, r.rlim_max))
}

/// Transparent huge pages off for this process, unless `MIMALLOC_ALLOW_THP` is set (then
/// mimalloc decides, as it documents). mimalloc marks its arenas `MADV_HUGEPAGE`; with the
/// kernel's default `defrag = madvise` a fault there zeroes, and may first compact, 2 MiB at
/// once, synchronously, in whichever shard touches the page. That made connection setup cost
/// about 16% more CPU and gave the heap 2 MiB RSS steps, and measured nothing back on the data path
/// (docs/PERFORMANCE.md, "Connection setup without transparent huge pages"). Call before the
/// shards start: the flag is the process's, and the kernel reads it at each fault. `None`: left
/// to mimalloc; otherwise whether the kernel took the flag.
pub fn no_huge_pages_unless_asked() -> Option<bool> {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return None;
    }
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and touches no memory of ours.
    Some(unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } == 0)
}

/// Raise the soft open-files limit to the hard one: every connection is a descriptor.
pub fn raise_nofile() -> Option<u64> {
    let (cur, max) = rlimit(libc::RLIMIT_NOFILE)?;
    if cur < max {
        let r = libc::rlimit {
            rlim_cur: max,
            rlim_max: max,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } == 0 {
            return Some(max);
        }
    }
    Some(cur)
}

/// Log what the broker is about to serve and warn about host limits.
pub fn report(cfg: &Config) {
    let shards = cfg.shard_count();
    log::info!(
        "ringmq {} (MQTT 3.1, 3.1.1, 5.0) with {} shard(s){}",
        env!("CARGO_PKG_VERSION"),
        shards,
        if cfg.pin { ", pinned" } else { "" }
    );
    log::info!(
        "limits: packet_bytes_max={} inflight_max={} receive_maximum={} queued_messages_max={} \
         out_buffer_bytes_max={} topic_bytes_max={} topic_levels_max={} \
         subscriptions_per_session_max={} connect_timeout_ms={} maximum_qos={}",
        cfg.packet_bytes_max,
        cfg.inflight_max,
        cfg.receive_maximum,
        cfg.queued_messages_max,
        cfg.out_buffer_bytes_max,
        cfg.topic_bytes_max,
        cfg.topic_levels_max,
        cfg.subscriptions_per_session_max,
        cfg.connect_timeout_ms,
        cfg.maximum_qos
    );
    match raise_nofile() {
        Some(n) if n < 65_536 => log::warn!(
            "open files limit is {n}: at most about {n} connections (raise LimitNOFILE; see tuning/)"
        ),
        Some(_) => {}
        None => log::warn!("could not read the open files limit"),
    }
    if let Some((cur, _)) = rlimit(libc::RLIMIT_MEMLOCK) {
        let need = (shards * crate::limits::IO_MEMORY_BYTES) as u64 + (shards as u64) * 1024 * 1024;
        if cur != libc::RLIM_INFINITY && cur < need {
            log::warn!(
                "locked-memory limit is {} KiB; io_uring with {shards} shards wants about {} KiB \
                 (raise LimitMEMLOCK; see tuning/)",
                cur / 1024,
                need / 1024
            );
        }
    }
    if let Ok(s) = std::fs::read_to_string("/proc/sys/net/core/somaxconn") {
        if let Ok(n) = s.trim().parse::<u32>() {
            if n < cfg.listen_backlog {
                log::warn!(
                    "net.core.somaxconn is {n}, below listen_backlog {}: connection bursts may be \
                     refused (see tuning/sysctl.conf)",
                    cfg.listen_backlog
                );
            }
        }
    }
}

/// SIGTERM and SIGINT, as a channel: the first one asks the control thread for a graceful
/// shutdown, a second one exits at once. SIGHUP goes the same way and asks for a reload of the
/// configuration files (certificates, passwords, ACLs); any number of them. The signals are blocked before the shard threads start
/// (they inherit the mask), and one plain thread waits for them: an executor thread parked in
/// io_uring never has to handle a signal.
pub fn stop_signals() -> crossbeam_channel::Receiver<i32> {
    let (tx, rx) = crossbeam_channel::bounded(8);
    // SAFETY: sigset operations on a local set; pthread_sigmask on the calling thread.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::Builder::new()
        .name("ringmq-signals".into())
        .spawn(move || {
            let mut first = true;
            loop {
                let mut sig: libc::c_int = 0;
                // SAFETY: waits on the set built above; writes the signal number into `sig`.
                if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                    return;
                }
                if sig == libc::SIGHUP {
                    let _ = tx.try_send(sig);
                    continue;
                }
                if !first {
                    log::warn!("signal {sig} again: exiting now");
                    std::process::exit(1);
                }
                first = false;
                let _ = tx.try_send(sig);
            }
        })
        .map(|_| ())
        .unwrap_or_else(|e| {
            log::warn!("no signal thread ({e}): SIGTERM will not stop ringmq cleanly")
        });
    rx
}
