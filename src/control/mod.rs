//! The control plane: one plain thread outside the shards, joined to each shard by a pair of
//! `crossbeam-channel`s. Shards send it statistics snapshots and lifecycle events; it sends them
//! commands (shut down, reload, `$SYS` values to set). Later the admin API, metrics export,
//! bridges and clustering run here too.
//!
//! Owns: the latest statistics snapshot of every shard, and the decision to stop.
//! Never: is called from the data path. A shard only `try_send`s a snapshot from a low-priority
//! task and `try_recv`s commands on a timer; nothing here takes a lock a shard waits on.

pub mod metrics;
pub mod query;

use crate::shard::Stats;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the control thread tells a shard.
#[derive(Debug, Clone)]
pub enum Command {
    /// Stop accepting, tell v5 clients DISCONNECT 0x8B, flush every connection and stop.
    Shutdown,
    /// SIGHUP: configuration re-read from its files, ready to use.
    Reload(Arc<Reload>),
    /// Retained `$SYS` values whose topics' home is this shard, to set (see `crate::sys`).
    Sys(Vec<crate::sys::SysValue>),
    /// The admin API asks (see [`query`]); the shard answers on `reply` without blocking.
    Query {
        query: Arc<query::Query>,
        reply: query::ReplyTo,
    },
}

/// What SIGHUP re-reads, built on the control thread so shards never read a file.
#[derive(Debug, Default)]
pub struct Reload {
    /// Per listener (in the order they were opened): the new TLS configuration, `None` for
    /// plain listeners.
    pub tls: Vec<Option<Arc<rustls::ServerConfig>>>,
    /// Passwords, ACL and JWT keys, when they changed.
    pub security: Option<Arc<crate::auth::security::Security>>,
    /// Files that failed to load (their previous version stays), for the admin API's answer.
    pub errors: Vec<String>,
}

/// What the HTTP thread asks of the control thread itself.
#[derive(Debug)]
pub enum Request {
    /// Reload as SIGHUP does; the answer is the files that failed (empty: all loaded), or
    /// `Err` when nothing could be reloaded.
    Reload(tokio::sync::oneshot::Sender<Result<Vec<String>, String>>),
}

/// What the HTTP thread holds of the control plane: the latest statistics (a lock no shard
/// ever takes: the control thread writes it when a snapshot arrives), the shards' command
/// channels (for [`Command::Query`]) and the control thread's request channel.
#[derive(Clone)]
pub struct Handle {
    pub stats: Arc<Mutex<Vec<Stats>>>,
    /// What `/metrics` shows besides the counters (node name, clients maximum, per-prefix
    /// forwarding statistics merged over shards), kept by the control thread.
    pub extra: Arc<Mutex<metrics::MetricsExtra>>,
    pub shards: Vec<Sender<Command>>,
    pub requests: Sender<Request>,
    pub started: Instant,
}

/// Builds a [`Reload`] from the files, or says why it cannot (the old configuration stays).
pub type Reloader = Box<dyn Fn() -> Result<Reload, String> + Send>;

/// What a shard tells the control thread.
// `Stats` is ~500 bytes and goes by value: a report a second per shard through a bounded
// channel, where a box would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Report {
    /// The shard's counters, about once a second.
    Stats { shard: usize, stats: Stats },
    /// The shard's forwarding statistics per topic prefix, with each `Stats`.
    Topics {
        shard: usize,
        rows: Vec<crate::shard::prefixes::PrefixRow>,
    },
    /// The shard finished its shutdown.
    Stopped { shard: usize },
    /// The shard cannot go on (a mesh channel to a peer closed while serving): stop the broker.
    Fatal { shard: usize, why: String },
}

/// A shard's end of the control plane.
pub struct ShardPort {
    pub commands: Receiver<Command>,
    reports: Sender<Report>,
}

impl ShardPort {
    /// Send without ever blocking the shard: a full channel drops this snapshot (the next one
    /// supersedes it), and a closed one means the process is ending anyway.
    pub fn report(&self, r: Report) {
        if let Err(TrySendError::Full(r)) = self.reports.try_send(r) {
            log::debug!("control channel full; dropped {r:?}");
        }
    }
}

/// The control thread's end.
pub struct Control {
    commands: Vec<Sender<Command>>,
    reports: Receiver<Report>,
    /// Latest snapshot per shard.
    pub stats: Vec<Stats>,
    /// Latest forwarding statistics per topic prefix, per shard.
    pub topics: Vec<Vec<crate::shard::prefixes::PrefixRow>>,
    /// The `$SYS` tree and its refresh interval, when `sys_interval_s` > 0.
    sys: Option<(crate::sys::tree::Tree, Duration)>,
    /// When the control thread started (uptime).
    pub started: Instant,
    reloader: Option<Reloader>,
    /// Run every [`POLL_EVERY`]: picks up changed JWT key files (one `stat` each).
    poller: Option<Box<dyn Fn() -> Option<Reload> + Send>>,
    /// The copy of `stats` the HTTP thread reads.
    shared_stats: Arc<Mutex<Vec<Stats>>>,
    shared_extra: Arc<Mutex<metrics::MetricsExtra>>,
    requests: Receiver<Request>,
    requests_tx: Sender<Request>,
}

/// How often the control thread looks for changed key files.
const POLL_EVERY: Duration = Duration::from_secs(2);

/// Reports in flight from all shards before a shard's snapshot is dropped: a few seconds of
/// snapshots, far more than lifecycle events ever need.
const REPORTS_CAPACITY: usize = 1024;

/// Requests from the HTTP thread waiting for the control thread (reloads are rare; a full
/// channel answers the API call 503).
const REQUESTS_CAPACITY: usize = 16;

/// The control plane for `shards` shards: the control side and one port per shard.
pub fn plane(shards: usize) -> (Control, Vec<ShardPort>) {
    let (rtx, rrx) = crossbeam_channel::bounded(REPORTS_CAPACITY);
    let mut commands = Vec::with_capacity(shards);
    let mut ports = Vec::with_capacity(shards);
    for _ in 0..shards {
        let (ctx, crx) = crossbeam_channel::bounded(16);
        commands.push(ctx);
        ports.push(ShardPort {
            commands: crx,
            reports: rtx.clone(),
        });
    }
    let (qtx, qrx) = crossbeam_channel::bounded(REQUESTS_CAPACITY);
    let control = Control {
        commands,
        reports: rrx,
        stats: vec![Stats::default(); shards],
        topics: vec![Vec::new(); shards],
        sys: None,
        started: Instant::now(),
        reloader: None,
        poller: None,
        shared_stats: Arc::new(Mutex::new(vec![Stats::default(); shards])),
        shared_extra: Arc::default(),
        requests: qrx,
        requests_tx: qtx,
    };
    (control, ports)
}

impl Control {
    /// Publish the `$SYS` tree every `interval` (the first refresh comes one second after
    /// start, so version and uptime are there early).
    pub fn enable_sys(&mut self, interval: Duration) {
        self.sys = Some((crate::sys::tree::Tree::new(self.started), interval));
    }

    /// The highest number of clients connected at once (0 without a `$SYS` tree).
    pub fn clients_max(&self) -> u64 {
        self.sys.as_ref().map_or(0, |(t, _)| t.clients_max)
    }

    /// Refresh the `$SYS` tree: each changed value goes to its topic's home shard.
    fn refresh_sys(&mut self, now: Instant) {
        let Some((tree, _)) = self.sys.as_mut() else {
            return;
        };
        let shards = self.commands.len();
        let mut per_shard: Vec<Vec<crate::sys::SysValue>> = vec![Vec::new(); shards];
        for v in tree.refresh(&self.stats, now) {
            per_shard[crate::shard::home_shard(&v.topic, shards)].push(v);
        }
        for (tx, values) in self.commands.iter().zip(per_shard) {
            if values.is_empty() {
                continue;
            }
            if let Err(e) = tx.try_send(Command::Sys(values)) {
                if let Command::Sys(lost) = e.into_inner() {
                    tree.forget(&lost);
                }
            }
        }
    }

    /// What SIGHUP does.
    pub fn on_reload(&mut self, f: Reloader) {
        self.reloader = Some(f);
    }

    /// What to look at every few seconds.
    pub fn on_poll(&mut self, f: Box<dyn Fn() -> Option<Reload> + Send>) {
        self.poller = Some(f);
    }

    /// The node name `/metrics` labels its build info with.
    pub fn set_node_name(&self, name: &str) {
        if let Ok(mut e) = self.shared_extra.lock() {
            e.node_name = name.to_string();
        }
    }

    /// The handle the HTTP thread serves from.
    pub fn handle(&self) -> Handle {
        Handle {
            stats: self.shared_stats.clone(),
            extra: self.shared_extra.clone(),
            shards: self.commands.clone(),
            requests: self.requests_tx.clone(),
            started: self.started,
        }
    }

    /// Reload the files; the ones that failed, or why nothing could be reloaded.
    fn reload(&self) -> Result<Vec<String>, String> {
        let Some(f) = &self.reloader else {
            log::info!("SIGHUP: nothing to reload");
            return Ok(Vec::new());
        };
        match f() {
            Ok(r) => {
                log::info!("SIGHUP: configuration files reloaded");
                let errors = r.errors.clone();
                self.broadcast(Command::Reload(Arc::new(r)));
                Ok(errors)
            }
            Err(e) => {
                log::error!("SIGHUP: reload failed, keeping the current files: {e}");
                Err(e)
            }
        }
    }

    fn broadcast(&self, c: Command) {
        for tx in &self.commands {
            let _ = tx.try_send(c.clone());
        }
    }

    /// Serve until a stop is asked for (`stop` yields a signal number, or a shard reports a
    /// fatal error), then shut every shard down and wait up to `grace` for them. Returns the
    /// process exit code: 0 for a requested stop, 1 after a fatal error.
    pub fn run(mut self, stop: Receiver<i32>, grace: Duration) -> i32 {
        // Timed work runs on deadlines, not on a quiet channel: shards report every second,
        // so a select's `default(timeout)` alone would never fire.
        let mut next_poll = Instant::now() + POLL_EVERY;
        let mut next_sys = self.started + Duration::from_secs(1);
        let code = loop {
            let now = Instant::now();
            if now >= next_poll {
                next_poll = now + POLL_EVERY;
                if let Some(r) = self.poller.as_ref().and_then(|f| f()) {
                    log::info!("key files changed: reloaded");
                    self.broadcast(Command::Reload(Arc::new(r)));
                }
            }
            if let Some((_, interval)) = &self.sys {
                if now >= next_sys {
                    next_sys = now + *interval;
                    self.refresh_sys(now);
                }
            }
            let due = if self.sys.is_some() {
                next_poll.min(next_sys)
            } else {
                next_poll
            };
            let wait = due.saturating_duration_since(Instant::now());
            crossbeam_channel::select! {
                recv(stop) -> sig => {
                    match sig {
                        Ok(libc::SIGHUP) => {
                            let _ = self.reload();
                            continue;
                        }
                        Ok(sig) => log::info!("signal {sig} received: shutting down"),
                        Err(_) => log::info!("shutting down"),
                    }
                    break 0;
                }
                default(wait) => continue,
                recv(self.requests) -> r => {
                    if let Ok(Request::Reload(answer)) = r {
                        let _ = answer.send(self.reload());
                    }
                    continue;
                }
                recv(self.reports) -> r => match r {
                    Ok(Report::Stats { shard, stats }) => {
                        if let Some(slot) = self.stats.get_mut(shard) {
                            *slot = stats;
                        }
                        if let Some((tree, _)) = self.sys.as_mut() {
                            tree.observe(&self.stats);
                        }
                        if let Ok(mut shared) = self.shared_stats.lock() {
                            if let Some(slot) = shared.get_mut(shard) {
                                *slot = stats;
                            }
                        }
                    }
                    Ok(Report::Topics { shard, rows }) => {
                        if let Some(slot) = self.topics.get_mut(shard) {
                            *slot = rows;
                        }
                        let merged = crate::shard::prefixes::merge(&self.topics);
                        let clients_max = self.clients_max();
                        if let Ok(mut e) = self.shared_extra.lock() {
                            e.topics = merged;
                            e.clients_max = clients_max;
                        }
                    }
                    Ok(Report::Stopped { shard }) => {
                        log::error!("shard {shard} stopped unexpectedly: shutting down");
                        break 1;
                    }
                    Ok(Report::Fatal { shard, why }) => {
                        log::error!("shard {shard}: {why}: shutting down");
                        break 1;
                    }
                    Err(_) => break 1,
                },
            }
        };
        self.broadcast(Command::Shutdown);
        let deadline = Instant::now() + grace;
        let mut stopped = vec![false; self.commands.len()];
        while stopped.iter().any(|s| !s) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.reports.recv_timeout(left) {
                Ok(Report::Stopped { shard }) => {
                    if let Some(s) = stopped.get_mut(shard) {
                        *s = true;
                    }
                }
                Ok(Report::Stats { shard, stats }) => {
                    if let Some(slot) = self.stats.get_mut(shard) {
                        *slot = stats;
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    log::warn!("shards did not stop within {grace:?}; exiting anyway");
                    break;
                }
            }
        }
        let total = self.stats.iter().fold(0u64, |n, s| n + s.publishes_in);
        log::info!("stopped after {total} publishes");
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_shuts_every_shard_down_and_waits_for_them() {
        let (control, ports) = plane(2);
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
        let shards: Vec<_> = ports
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                std::thread::spawn(move || {
                    let s = Stats {
                        publishes_in: 10,
                        ..Stats::default()
                    };
                    p.report(Report::Stats { shard: i, stats: s });
                    assert!(matches!(p.commands.recv(), Ok(Command::Shutdown)));
                    p.report(Report::Stopped { shard: i });
                })
            })
            .collect();
        stop_tx.send(15).expect("control listens");
        let started = Instant::now();
        assert_eq!(control.run(stop_rx, Duration::from_secs(5)), 0);
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "did not wait for the grace"
        );
        for s in shards {
            s.join().expect("shard thread");
        }
    }

    #[test]
    fn sighup_reloads_without_stopping() {
        let (mut control, ports) = plane(1);
        control.on_reload(Box::new(|| Ok(Reload::default())));
        let (sig_tx, sig_rx) = crossbeam_channel::bounded(4);
        sig_tx.send(libc::SIGHUP).expect("queued");
        sig_tx.send(libc::SIGTERM).expect("queued");
        let port = ports.into_iter().next().expect("one port");
        let shard = std::thread::spawn(move || {
            assert!(matches!(port.commands.recv(), Ok(Command::Reload(_))));
            assert!(matches!(port.commands.recv(), Ok(Command::Shutdown)));
            port.report(Report::Stopped { shard: 0 });
        });
        assert_eq!(control.run(sig_rx, Duration::from_secs(5)), 0);
        shard.join().expect("shard thread");
    }

    #[test]
    fn a_fatal_report_stops_with_an_error_code() {
        let (control, ports) = plane(1);
        let (_stop_tx, stop_rx) = crossbeam_channel::bounded::<i32>(1);
        ports[0].report(Report::Fatal {
            shard: 0,
            why: "mesh closed".into(),
        });
        assert_eq!(control.run(stop_rx, Duration::from_millis(50)), 1);
    }
}
