//! The run engine: I/O worker threads, each driving many client connections, and the main
//! thread's orchestration of a run's phases.
//!
//! Threads: `--threads` workers (default: the CPUs this process may use). Each owns a mio
//! `Poll`, a `timerfd` for microsecond-precise open-loop sends, and a share of the clients
//! (client g → thread g mod T). Nothing on the data path is shared between threads except one
//! per-publisher delivery counter used by the max-throughput window, bumped in batches.
//!
//! Phases: **setup** (connect with bounded concurrency, CONNACK, SUBSCRIBE/SUBACK) →
//! **settle** → **warm-up** (traffic, nothing recorded) → **measure** → **drain** (publishers
//! stopped; wait until every expected delivery and every QoS 1/2 acknowledgement has arrived,
//! or `--drain` expires) → **stop** (DISCONNECT, close). The main thread owns phase changes
//! and the progress line; the workers only read the shared start/end instants.
//!
//! Sending: a publisher encodes as many PUBLISHes as it may into its connection's write buffer
//! and the buffer leaves in one `write()` per loop iteration (batched writes). In open-loop
//! mode message k of a publisher is *intended* at `start + phase + k·interval`; it is stamped
//! with that instant even if it leaves late (socket full, QoS window closed), so a stall shows
//! up as latency of every message it delayed (no coordinated omission). In max-throughput mode
//! a message is stamped when encoded and sent as soon as the window allows.
//!
//! Modules: [`shared`] (what threads share), [`session`] (one connection's protocol handling),
//! [`publisher`] (when and what to publish), [`worker`] (the event loop); this file holds the
//! settings, the main thread's orchestration and the aggregated [`RunOutcome`].

mod conn_io;
mod publisher;
mod session;
mod shared;
mod worker;

use crate::client::{Client, Role};
use crate::clock::{now_ns, Timer};
use crate::payload;
use crate::scenario::Plan;
use crate::stats::{self, Accounting, SubTracker};
use crate::sysinfo;
use bytes::Bytes;
use bytestring::ByteString;
use hdrhistogram::Histogram;
use mio::unix::SourceFd;
use mio::{Interest, Poll, Token, Waker};
use ringmq_codec::{self as codec, Packet, Protocol, QoS};
use session::{Conn, Ctx, PubState, SubState, ThreadResult};
use shared::{Padded, Shared, ThreadShared};
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use worker::Worker;

/// A deadline closer than this is polled for without sleeping (sleep/wake costs about as much).
pub(crate) const SPIN_NS: u64 = 15_000;
/// The loop wakes at least this often (keep-alive, phase changes).
pub(crate) const TICK_NS: u64 = 100_000_000;
/// A max-throughput publisher whose window made no progress for this long forgets what is
/// outstanding (lost QoS 0 messages would otherwise block it forever) and counts a reset.
pub(crate) const STALL_NS: u64 = 1_000_000_000;
/// Latency histogram range: 1 µs .. 1 h, 3 significant digits.
pub(crate) const HIST_MAX_US: u64 = 3_600_000_000;

pub(crate) const WAKER: Token = Token(usize::MAX);
pub(crate) const TIMER: Token = Token(usize::MAX - 1);

/// Everything a run needs to know, resolved from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub broker: SocketAddr,
    pub protocol: Protocol,
    pub username: Option<ByteString>,
    pub password: Option<Bytes>,
    pub keepalive_s: u16,
    /// Persistent sessions instead of clean ones (`--persistent`).
    pub persistent: bool,
    pub qos: QoS,
    pub payload_bytes: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub drain: Duration,
    /// Open-loop total rate (msgs/s over all publishers); `None` = max throughput.
    pub rate: Option<f64>,
    pub inflight: u32,
    /// Max-throughput publishers also keep an end-to-end window (sent but not yet received,
    /// `inflight` × fan-out). Off: only the MQTT window (broker acknowledgements) paces them,
    /// so a subscriber slower than its publishers makes the broker queue, push back or drop.
    pub e2e_window: bool,
    /// Record per-second counters ([`crate::timeline`]).
    pub timeline: bool,
    pub count: Option<u64>,
    pub threads: usize,
    pub connect_concurrency: usize,
    pub settle: Duration,
    pub setup_timeout: Duration,
    /// Source addresses to bind client sockets to (round-robin); empty = kernel's choice.
    pub sources: Vec<IpAddr>,
    pub sub_batch: usize,
    /// Busy-poll: never block in epoll (lowest wake-up latency, burns the generator's CPUs).
    pub spin: bool,
    /// Run a jHiccup-style meter thread (sleep 1 ms, record oversleep) during the window.
    pub hiccups: bool,
    pub max_packet: usize,
    /// Progress line interval; `None` = no progress line.
    pub progress: Option<Duration>,
    pub broker_pid: Option<u32>,
    pub run_id: String,
    /// `Some`: every connection speaks TLS (`--tls`).
    pub tls: Option<crate::tls::TlsClient>,
    /// `Some`: every connection speaks MQTT over WebSocket (`--ws`).
    pub ws: Option<crate::ws::WsClient>,
}

/// Packet identifiers a publisher cycles through: a few times its window (at least 1024), so
/// its identifier → message table stays small while identifiers are rarely reused soon after
/// their acknowledgement.
fn pid_max(inflight: u32) -> u16 {
    (inflight.clamp(1, 65_000) * 4).clamp(1024, 65_535) as u16
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("valid histogram bounds")
}

/// The result of a run, before formatting.
pub struct RunOutcome {
    pub settings: Arc<Settings>,
    pub plan: Arc<Plan>,
    pub threads: usize,
    /// End-to-end latency, µs (measured window only).
    pub latency: Histogram<u64>,
    /// TCP connect → CONNACK, µs.
    pub connect_latency: Histogram<u64>,
    pub accounting: Accounting,
    pub sent_total: u64,
    pub sent_in_window: u64,
    pub forwarded_in_window: u64,
    pub delivered_total: u64,
    pub window_ns: u64,
    pub gen_cpu_pct: f64,
    pub gen_cpu_user_pct: f64,
    pub gen_cpu_sys_pct: f64,
    pub gen_thread_cpu_pct: Vec<f64>,
    /// CPUs the generator and the broker may run on (their affinity masks).
    pub gen_cpus: Vec<usize>,
    pub broker_cpu_pct: Option<f64>,
    pub broker_cpus: Vec<usize>,
    /// How late messages left relative to their schedule, µs (open loop; measured window).
    pub send_lag: Histogram<u64>,
    /// Platform hiccups (oversleep of a 1 ms sleep), µs, when `--hiccups`.
    pub hiccups: Option<Histogram<u64>>,
    pub broker_rss_before: Option<u64>,
    pub broker_rss_after: Option<u64>,
    pub clients: usize,
    pub ready: u64,
    pub failed_setup: u64,
    pub failed_during_run: u64,
    pub errors: BTreeMap<String, u64>,
    /// First connect started → last client ready.
    pub setup_ns: u64,
    pub setup_cpu_pct: f64,
    /// The broker's CPU time (`--broker-pid`) from before the first connect to the end of
    /// setup: what accepting the connections (and their TLS handshakes) cost it.
    pub broker_setup_cpu_ns: Option<u64>,
    /// First SUBSCRIBE sent → last SUBACK.
    pub subscribe_ns: u64,
    pub filters_granted: u64,
    pub filters_refused: u64,
    pub acked: u64,
    pub rejected: u64,
    pub unsent: u64,
    pub max_send_lag_ns: u64,
    pub stall_resets: u64,
    pub drain_ns: u64,
    pub drained: bool,
    pub protocol_errors: u64,
    pub inflight_left: u64,
    /// Per-publisher delivery accounts (index = publisher).
    pub publishers: Vec<stats::PublisherTally>,
    /// Messages sent in the window by open-loop publishers (the ones `--rate` paces).
    pub sent_in_window_open_loop: u64,
    /// Per-second counters when `--timeline` (or the scenario) asked for them.
    pub timeline: Option<Vec<crate::timeline::Second>>,
    /// What became of each stalled subscriber (`stalled`).
    pub stalled: Vec<StalledOutcome>,
}

/// A subscriber that stopped reading after SUBACK, as seen from its side of the socket.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct StalledOutcome {
    pub subscriber: u32,
    /// When the broker's close was seen, seconds after traffic started (negative: during
    /// setup). Only a reset (RST), or a FIN the broker could still send, is visible while the
    /// socket is not read: a FIN queued behind unread data waits for the receive window.
    pub closed_at_s: Option<f64>,
    /// "reset", "fin", "closed-after-queued-data" (found only by reading at the end), "open"
    /// (still connected at the end) or "failed" (never got to stall).
    pub state: String,
    /// Most bytes waiting unread in its socket at any sample.
    pub rx_queue_bytes_max: u64,
    /// Bytes read from it at the end of the run, after the drain, looking for the close.
    pub bytes_read_at_end: u64,
}

/// Totals over all threads' counters.
#[derive(Default, Clone, Copy)]
struct Totals {
    sent: u64,
    expected: u64,
    delivered: u64,
    inflight: u64,
    ready: u64,
    failed: u64,
    pubs_done: u64,
    setup_done: usize,
}

fn totals(shared: &Shared) -> Totals {
    let mut t = Totals::default();
    for th in &shared.threads {
        let c = &th.counters.0;
        // pubs_done first (acquire) so the other counters are at least as new.
        t.pubs_done += c.pubs_done.load(Ordering::Acquire);
        t.sent += c.sent.load(Ordering::Acquire);
        t.expected += c.expected.load(Ordering::Acquire);
        t.delivered += c.delivered.load(Ordering::Acquire);
        t.inflight += c.inflight.load(Ordering::Acquire);
        t.ready += c.ready.load(Ordering::Acquire);
        t.failed += c.failed.load(Ordering::Acquire);
        t.setup_done += usize::from(c.setup_done.load(Ordering::Acquire));
    }
    t
}

fn human_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

/// The progress line on stderr.
struct Progress {
    every_ns: u64,
    next_ns: u64,
    last: Totals,
    last_ns: u64,
    tty: bool,
    printed: bool,
}

impl Progress {
    fn new(every: Option<Duration>) -> Progress {
        use std::io::IsTerminal;
        let now = now_ns();
        let every_ns = every.map(|d| d.as_nanos() as u64).unwrap_or(0);
        Progress {
            every_ns,
            next_ns: now + every_ns,
            last: Totals::default(),
            last_ns: now,
            tty: io::stderr().is_terminal(),
            printed: false,
        }
    }

    fn tick(&mut self, shared: &Shared, phase: &str, t0: u64, clients: usize) {
        if self.every_ns == 0 {
            return;
        }
        let now = now_ns();
        if now < self.next_ns {
            return;
        }
        let t = totals(shared);
        let dt = (now - self.last_ns) as f64 / 1e9;
        let line = format!(
            "[{:>7.1}s {:<8}] sent {:>8}/s  fwd {:>8}/s  in-flight {:>6}  conns {}/{}  failed {}",
            (now - t0) as f64 / 1e9,
            phase,
            human_rate((t.sent - self.last.sent) as f64 / dt),
            human_rate((t.delivered - self.last.delivered) as f64 / dt),
            t.expected.saturating_sub(t.delivered).max(t.inflight),
            t.ready,
            clients,
            t.failed,
        );
        if self.tty {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
        self.printed = true;
        self.last = t;
        self.last_ns = now;
        self.next_ns = now + self.every_ns;
    }

    fn done(&mut self) {
        if self.tty && self.printed {
            eprintln!();
        }
        self.printed = false;
    }
}

fn sleep_until(deadline: u64, mut each: impl FnMut()) {
    loop {
        let now = now_ns();
        if now >= deadline {
            return;
        }
        each();
        std::thread::sleep(Duration::from_nanos((deadline - now).min(5_000_000)));
    }
}

/// jHiccup's idea: a thread that only sleeps 1 ms at a time. Whatever it oversleeps is time
/// the platform (scheduler, hypervisor, power management) took away; every thread of the
/// generator and the broker is exposed to the same stalls, so they bound what latency tails
/// can mean on this machine. Records during the measured window only.
fn hiccup_meter(shared: &Shared) -> Histogram<u64> {
    crate::clock::tighten_timer_slack();
    let mut h = new_histogram();
    while !shared.stop.load(Ordering::Acquire) {
        let t = now_ns();
        std::thread::sleep(Duration::from_millis(1));
        let after = now_ns();
        let start = shared.start_ns.load(Ordering::Acquire);
        let warm_end = start + (shared.warmup_ns);
        let end = shared.window_end_ns.load(Ordering::Acquire);
        if start != 0 && t >= warm_end && after <= end {
            h.saturating_record((after - t).saturating_sub(1_000_000) / 1000);
        }
    }
    h
}

/// Run a plan to completion.
pub fn run(settings: Settings, plan: Plan) -> Result<RunOutcome, String> {
    if settings.payload_bytes < payload::HEADER_BYTES {
        return Err(format!(
            "--payload-bytes must be at least {}",
            payload::HEADER_BYTES
        ));
    }
    if let Some(r) = settings.rate {
        if !(r > 0.0 && r.is_finite()) {
            return Err("--rate must be positive".into());
        }
    }
    if settings.inflight == 0 {
        return Err("--inflight must be at least 1".into());
    }
    let settings = Arc::new(settings);
    let plan = Arc::new(plan);
    let total = plan.clients();
    let nthreads = settings.threads.clamp(1, total.max(1));
    let n_subs = plan.subscribers.len();
    let n_pubs = plan.publishers.len();

    // Client g → thread g mod T. Subscribers first so they are connected early.
    let mut assignment: Vec<Vec<(usize, Role)>> = vec![Vec::new(); nthreads];
    let mut pub_owner = vec![0u32; n_pubs];
    for g in 0..total {
        let role = if g < n_subs {
            Role::Sub(g as u32)
        } else if g < n_subs + n_pubs {
            let pi = g - n_subs;
            pub_owner[pi] = (g % nthreads) as u32;
            Role::Pub(pi as u32)
        } else {
            Role::Idle((g - n_subs - n_pubs) as u32)
        };
        assignment[g % nthreads].push((g, role));
    }

    let mut polls = Vec::with_capacity(nthreads);
    let mut thread_shared = Vec::with_capacity(nthreads);
    for _ in 0..nthreads {
        let poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
        let waker = Waker::new(poll.registry(), WAKER).map_err(|e| format!("eventfd: {e}"))?;
        thread_shared.push(ThreadShared {
            waker,
            parked: AtomicBool::new(false),
            counters: Padded::default(),
        });
        polls.push(poll);
    }
    let warmup_ns = settings.warmup.as_nanos() as u64;
    let duration_ns = settings.duration.as_nanos() as u64;
    let shared = Arc::new(Shared {
        start_ns: AtomicU64::new(0),
        warmup_ns,
        window_end_ns: AtomicU64::new(u64::MAX),
        stop: AtomicBool::new(false),
        pub_delivered: (0..n_pubs).map(|_| Padded::default()).collect(),
        pub_owner,
        threads: thread_shared,
    });

    // Some publishers send as fast as their window allows (no --rate, or closed-loop ones).
    let max_mode = settings.rate.is_none() || plan.publishers.iter().any(|p| p.closed_loop);
    let rss_before = settings.broker_pid.and_then(sysinfo::proc_rss_bytes);
    let t0 = now_ns();
    let cpu0 = sysinfo::cpu_self_ns();
    let broker_cpu0 = settings.broker_pid.and_then(sysinfo::proc_cpu_ns);

    let mut handles = Vec::with_capacity(nthreads);
    for (id, (poll, clients)) in polls.into_iter().zip(assignment).enumerate() {
        let timer = Timer::new().map_err(|e| format!("timerfd: {e}"))?;
        poll.registry()
            .register(&mut SourceFd(&timer.raw_fd()), TIMER, Interest::READABLE)
            .map_err(|e| format!("register timerfd: {e}"))?;
        let registry = poll
            .registry()
            .try_clone()
            .map_err(|e| format!("epoll: {e}"))?;
        let payload = Bytes::from(vec![0u8; settings.payload_bytes]);
        let mut conns = Vec::with_capacity(clients.len());
        let mut pub_conns = Vec::new();
        let mut stalled_subs = Vec::new();
        for (ci, (gidx, role)) in clients.into_iter().enumerate() {
            let tag = match role {
                Role::Pub(i) => format!("p{i}"),
                Role::Sub(i) => format!("s{i}"),
                Role::Idle(i) => format!("c{i}"),
            };
            let mut c = Client::new(role, format!("rb{}{tag}", settings.run_id));
            let pubs = match role {
                Role::Pub(i) => {
                    pub_conns.push(ci);
                    if settings.qos != QoS::AtMostOnce {
                        c.pid_max = pid_max(settings.inflight);
                    }
                    Some(Box::new(PubState {
                        idx: i,
                        template: Packet::Publish(codec::Publish {
                            qos: settings.qos,
                            payload: payload.clone(),
                            ..Default::default()
                        }),
                        target_cursor: 0,
                        miss_cursor: 0,
                        miss_acc: 0.0,
                        seq: vec![0; plan.streams_per_pub as usize],
                        interval_ns: 0.0,
                        phase_ns: 0,
                        k: 0,
                        sent_total: 0,
                        sent_hits: 0,
                        sent_in_window: 0,
                        acked: 0,
                        rejected: 0,
                        unacked: 0,
                        inflight_limit: settings.inflight.clamp(1, 65_000),
                        window_closed: false,
                        done: false,
                        credit: 0,
                        last_delivered: 0,
                        last_progress_ns: 0,
                        stall_resets: 0,
                        max_lag_ns: 0,
                        unsent: 0,
                        group: plan.publishers[i as usize].group,
                        closed_loop: plan.publishers[i as usize].closed_loop,
                        pid_seq: Vec::new(),
                        not_acked: Vec::new(),
                        acked_in_window: 0,
                        progress_ns: 0,
                        ack_wait_max_ns: 0,
                    }))
                }
                _ => None,
            };
            let subs = match role {
                Role::Sub(i) => Some(Box::new(SubState {
                    idx: i,
                    tracker: SubTracker::new(plan.subscribers[i as usize].streams),
                    stall: plan.subscribers[i as usize].stalled.then(|| {
                        stalled_subs.push(ci);
                        session::Stall::default()
                    }),
                })),
                _ => None,
            };
            conns.push(Conn {
                gidx,
                c,
                pubs,
                subs,
            });
        }
        let ctx = Ctx {
            id,
            settings: settings.clone(),
            plan: plan.clone(),
            shared: shared.clone(),
            registry,
            protocol: settings.protocol,
            qos: settings.qos as u8,
            max_mode,
            payload_bytes: settings.payload_bytes,
            hist: new_histogram(),
            connect_hist: new_histogram(),
            lag_hist: new_histogram(),
            start: 0,
            warm_end: u64::MAX,
            window_end: u64::MAX,
            dirty: Vec::new(),
            pending: if max_mode {
                vec![0; n_pubs]
            } else {
                Vec::new()
            },
            pending_dirty: Vec::new(),
            sent: 0,
            expected: 0,
            delivered: 0,
            inflight: 0,
            ready: 0,
            failed: 0,
            pubs_done: 0,
            in_setup: 0,
            forwarded_in_window: 0,
            errors: BTreeMap::new(),
            failed_after_setup: 0,
            setup_complete: false,
            first_connect_ns: 0,
            last_ready_ns: 0,
            sub_first_ns: 0,
            sub_last_ns: 0,
            filters_granted: 0,
            filters_refused: 0,
            protocol_errors: 0,
            stopping: false,
            timeline: settings
                .timeline
                .then(|| crate::timeline::Recorder::new(plan.groups.len())),
        };
        let mut ctx = ctx;
        // Connection slots are shared out between threads.
        ctx.settings = Arc::new(Settings {
            connect_concurrency: settings.connect_concurrency.div_ceil(nthreads).max(1),
            ..(*settings).clone()
        });
        let worker = Worker {
            poll,
            timer,
            conns,
            pub_conns,
            stalled_subs,
            ctx,
        };
        let h = std::thread::Builder::new()
            .name(format!("io-{id}"))
            .spawn(move || worker.run())
            .map_err(|e| format!("spawn: {e}"))?;
        handles.push(h);
    }

    let wake_all = |shared: &Shared| {
        for t in &shared.threads {
            let _ = t.waker.wake();
        }
    };
    let stop_and_join =
        |shared: &Arc<Shared>, handles: Vec<std::thread::JoinHandle<ThreadResult>>| {
            shared.stop.store(true, Ordering::Release);
            wake_all(shared);
            handles
                .into_iter()
                .map(|h| h.join().expect("I/O thread panicked"))
                .collect::<Vec<_>>()
        };

    let mut progress = Progress::new(settings.progress);
    let hiccup_meter = settings.hiccups.then(|| {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("hiccup".into())
            .spawn(move || hiccup_meter(&shared))
            .expect("spawn hiccup meter")
    });

    // Setup phase.
    let setup_deadline = t0 + settings.setup_timeout.as_nanos() as u64;
    loop {
        let t = totals(&shared);
        if t.setup_done == nthreads {
            break;
        }
        if now_ns() > setup_deadline {
            let _ = stop_and_join(&shared, handles);
            progress.done();
            return Err(format!(
                "setup timed out after {:?}: {} of {} clients ready, {} failed",
                settings.setup_timeout, t.ready, total, t.failed
            ));
        }
        progress.tick(&shared, "setup", t0, total);
        std::thread::sleep(Duration::from_millis(2));
    }
    let setup_end = now_ns();
    let setup_cpu_ns = sysinfo::cpu_self_ns() - cpu0;
    let broker_setup_cpu_ns = match (
        broker_cpu0,
        settings.broker_pid.and_then(sysinfo::proc_cpu_ns),
    ) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let t = totals(&shared);
    if t.failed > 0 && n_pubs + n_subs > 0 {
        let results = stop_and_join(&shared, handles);
        progress.done();
        let mut errors: BTreeMap<String, u64> = BTreeMap::new();
        for r in &results {
            for (k, v) in &r.errors {
                *errors.entry(k.clone()).or_default() += v;
            }
        }
        let list: Vec<String> = errors.iter().map(|(k, v)| format!("{v}× {k}")).collect();
        return Err(format!(
            "{} of {} clients failed to connect/subscribe to {}: {}",
            t.failed,
            total,
            settings.broker,
            list.join("; ")
        ));
    }

    // Traffic.
    std::thread::sleep(settings.settle);
    let start = now_ns() + 2_000_000;
    let warm_end = start + warmup_ns;
    let stop_at = warm_end + duration_ns;
    shared.window_end_ns.store(stop_at, Ordering::Release);
    shared.start_ns.store(start, Ordering::Release);
    wake_all(&shared);

    let broker_cpu = |pid: Option<u32>| pid.and_then(sysinfo::proc_cpu_ns);
    sleep_until(warm_end, || progress.tick(&shared, "warm-up", t0, total));
    let gen_cpus = sysinfo::affinity(0);
    let broker_cpus = settings
        .broker_pid
        .map(sysinfo::affinity)
        .unwrap_or_default();
    let cpu_warm = sysinfo::cpu_self_split_ns();
    let broker_cpu_warm = broker_cpu(settings.broker_pid);
    let warm_at = now_ns();
    // Measure, ending early if every publisher is done (--count).
    let mut window_end = stop_at;
    loop {
        let now = now_ns();
        if now >= stop_at {
            break;
        }
        if n_pubs > 0 && totals(&shared).pubs_done == n_pubs as u64 {
            window_end = now.max(warm_end + 1);
            shared.window_end_ns.store(window_end, Ordering::Release);
            break;
        }
        progress.tick(&shared, "measure", t0, total);
        std::thread::sleep(Duration::from_nanos((stop_at - now).min(2_000_000)));
    }
    let cpu_end = sysinfo::cpu_self_split_ns();
    let broker_cpu_end = broker_cpu(settings.broker_pid);
    let end_at = now_ns();

    // Drain: wait for every expected delivery and acknowledgement.
    let drain_deadline = end_at + settings.drain.as_nanos() as u64;
    let mut drained = false;
    loop {
        let t = totals(&shared);
        if t.pubs_done == n_pubs as u64 && t.delivered >= t.expected && t.inflight == 0 {
            drained = true;
            break;
        }
        if now_ns() >= drain_deadline {
            break;
        }
        progress.tick(&shared, "drain", t0, total);
        std::thread::sleep(Duration::from_millis(1));
    }
    let drain_ns = now_ns() - end_at;
    let rss_after = settings.broker_pid.and_then(sysinfo::proc_rss_bytes);
    let results = stop_and_join(&shared, handles);
    progress.done();

    // Aggregate.
    let window_ns = window_end - warm_end;
    let wall_ns = end_at.saturating_sub(warm_at).max(1);
    let mut latency = new_histogram();
    let mut connect_latency = new_histogram();
    let mut subs: Vec<(u32, SubTracker)> = Vec::new();
    let mut sent_per_stream: Vec<u64> = vec![0; n_pubs * plan.streams_per_pub as usize];
    let mut pub_sent: Vec<stats::PublisherSent> = vec![Default::default(); n_pubs];
    // (per_s basis count, ack wait) per publisher, filled from the threads' results.
    let mut pub_extra: Vec<(u64, u64)> = vec![(0, 0); n_pubs];
    let mut timeline: Option<crate::timeline::Recorder> = None;
    let mut stalled: Vec<StalledOutcome> = Vec::new();
    let mut out = RunOutcome {
        settings: settings.clone(),
        plan: plan.clone(),
        threads: nthreads,
        latency: new_histogram(),
        connect_latency: new_histogram(),
        accounting: Accounting::default(),
        sent_total: 0,
        sent_in_window: 0,
        forwarded_in_window: 0,
        delivered_total: 0,
        window_ns,
        gen_cpu_pct: sysinfo::pct_of_core(
            (cpu_end.0 + cpu_end.1).saturating_sub(cpu_warm.0 + cpu_warm.1),
            wall_ns,
        ),
        gen_cpu_user_pct: sysinfo::pct_of_core(cpu_end.0.saturating_sub(cpu_warm.0), wall_ns),
        gen_cpu_sys_pct: sysinfo::pct_of_core(cpu_end.1.saturating_sub(cpu_warm.1), wall_ns),
        gen_thread_cpu_pct: Vec::new(),
        gen_cpus,
        broker_cpu_pct: match (broker_cpu_warm, broker_cpu_end) {
            (Some(a), Some(b)) => Some(sysinfo::pct_of_core(b.saturating_sub(a), wall_ns)),
            _ => None,
        },
        broker_cpus,
        send_lag: new_histogram(),
        hiccups: hiccup_meter.map(|h| h.join().expect("hiccup meter panicked")),
        broker_rss_before: rss_before,
        broker_rss_after: rss_after,
        clients: total,
        ready: t.ready,
        failed_setup: t.failed,
        failed_during_run: 0,
        errors: BTreeMap::new(),
        setup_ns: 0,
        setup_cpu_pct: sysinfo::pct_of_core(setup_cpu_ns, setup_end - t0),
        broker_setup_cpu_ns,
        subscribe_ns: 0,
        filters_granted: 0,
        filters_refused: 0,
        acked: 0,
        rejected: 0,
        unsent: 0,
        max_send_lag_ns: 0,
        stall_resets: 0,
        drain_ns,
        drained,
        protocol_errors: 0,
        inflight_left: 0,
        publishers: Vec::new(),
        sent_in_window_open_loop: 0,
        timeline: None,
        stalled: Vec::new(),
    };
    let (mut first_connect, mut last_ready, mut sub_first, mut sub_last) =
        (u64::MAX, 0, u64::MAX, 0);
    for r in results {
        latency.add(&r.hist).expect("same histogram bounds");
        connect_latency
            .add(&r.connect_hist)
            .expect("same histogram bounds");
        out.send_lag
            .add(&r.lag_hist)
            .expect("same histogram bounds");
        out.forwarded_in_window += r.forwarded_in_window;
        out.delivered_total += r.delivered;
        for (k, v) in r.errors {
            *out.errors.entry(k).or_default() += v;
        }
        out.failed_during_run += r.failed_after_setup;
        out.gen_thread_cpu_pct
            .push(sysinfo::pct_of_core(r.cpu_window_ns, wall_ns));
        if r.first_connect_ns != 0 {
            first_connect = first_connect.min(r.first_connect_ns);
        }
        last_ready = last_ready.max(r.last_ready_ns);
        if r.sub_first_ns != 0 {
            sub_first = sub_first.min(r.sub_first_ns);
        }
        sub_last = sub_last.max(r.sub_last_ns);
        out.filters_granted += r.filters_granted;
        out.filters_refused += r.filters_refused;
        out.protocol_errors += r.protocol_errors;
        out.inflight_left += r.inflight_left;
        for p in r.pubs {
            out.sent_total += p.sent_total;
            out.sent_in_window += p.sent_in_window;
            out.acked += p.acked;
            out.rejected += p.rejected;
            out.unsent += p.unsent;
            out.stall_resets += p.stall_resets;
            out.max_send_lag_ns = out.max_send_lag_ns.max(p.max_lag_ns);
            let base = p.idx as usize * plan.streams_per_pub as usize;
            sent_per_stream[base..base + p.seq.len()].copy_from_slice(&p.seq);
            if !plan.publishers[p.idx as usize].closed_loop {
                out.sent_in_window_open_loop += p.sent_in_window;
            }
            let basis = if settings.qos == QoS::AtMostOnce {
                p.sent_in_window
            } else {
                p.acked_in_window
            };
            pub_extra[p.idx as usize] = (basis, p.ack_wait_max_ns);
            pub_sent[p.idx as usize] = stats::PublisherSent {
                sent: p.seq,
                acked: p.acked - p.rejected,
                not_acked: p.not_acked,
            };
        }
        subs.extend(r.subs);
        if let Some(t) = r.timeline {
            match &mut timeline {
                Some(all) => all.merge(&t),
                None => timeline = Some(t),
            }
        }
        stalled.extend(r.stalled);
    }
    stalled.sort_by_key(|s| s.subscriber);
    out.stalled = stalled;
    out.timeline = timeline.map(|t| t.seconds(&plan.groups));
    subs.sort_by_key(|(i, _)| *i);
    let trackers: Vec<SubTracker> = subs.into_iter().map(|(_, t)| t).collect();
    out.accounting = stats::settle(&trackers, |s| {
        sent_per_stream.get(s as usize).copied().unwrap_or(0)
    });
    let window_s = (window_ns as f64 / 1e9).max(1e-9);
    out.publishers = stats::tally_publishers(
        &trackers,
        &pub_sent,
        plan.streams_per_pub,
        settings.qos != QoS::AtMostOnce,
    );
    for (i, t) in out.publishers.iter_mut().enumerate() {
        let spec = &plan.publishers[i];
        t.group = plan
            .groups
            .get(usize::from(spec.group))
            .cloned()
            .unwrap_or_default();
        t.per_s = pub_extra[i].0 as f64 / window_s;
        t.ack_wait_ms_max = pub_extra[i].1 as f64 / 1e6;
    }
    out.latency = latency;
    out.connect_latency = connect_latency;
    if first_connect != u64::MAX && last_ready > first_connect {
        out.setup_ns = last_ready - first_connect;
    }
    if sub_first != u64::MAX && sub_last > sub_first {
        out.subscribe_ns = sub_last - sub_first;
    }
    Ok(out)
}
