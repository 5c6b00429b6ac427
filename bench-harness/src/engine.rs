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

use crate::client::{self, Client, Role, State};
use crate::clock::{self, now_ns, Timer};
use crate::net;
use crate::payload::{self, Header, MISS_STREAM};
use crate::scenario::Plan;
use crate::stats::{self, Accounting, Outcome, SubTracker};
use crate::sysinfo;
use bytes::Bytes;
use bytestring::ByteString;
use hdrhistogram::Histogram;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use ringmq_codec::{self as codec, Packet, Protocol, QoS};
use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Stop encoding into a connection's buffer past this many unwritten bytes.
const WBUF_HIGH: usize = 256 * 1024;
/// Bytes per read() call.
const READ_CHUNK: usize = 256 * 1024;
/// Messages one publisher encodes per loop iteration before others get a turn.
const MAX_BATCH: u32 = 512;
/// A deadline closer than this is polled for without sleeping (sleep/wake costs about as much).
const SPIN_NS: u64 = 15_000;
/// The loop wakes at least this often (keep-alive, phase changes).
const TICK_NS: u64 = 100_000_000;
/// A max-throughput publisher whose window made no progress for this long forgets what is
/// outstanding (lost QoS 0 messages would otherwise block it forever) and counts a reset.
const STALL_NS: u64 = 1_000_000_000;
/// Latency histogram range: 1 µs .. 1 h, 3 significant digits.
const HIST_MAX_US: u64 = 3_600_000_000;

const WAKER: Token = Token(usize::MAX);
const TIMER: Token = Token(usize::MAX - 1);

/// Everything a run needs to know, resolved from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub broker: SocketAddr,
    pub protocol: Protocol,
    pub username: Option<ByteString>,
    pub password: Option<Bytes>,
    pub keepalive_s: u16,
    pub qos: QoS,
    pub payload_bytes: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub drain: Duration,
    /// Open-loop total rate (msgs/s over all publishers); `None` = max throughput.
    pub rate: Option<f64>,
    pub inflight: u32,
    pub count: Option<u64>,
    pub threads: usize,
    pub connect_concurrency: usize,
    pub settle: Duration,
    pub setup_timeout: Duration,
    /// Source addresses to bind client sockets to (round-robin); empty = kernel's choice.
    pub sources: Vec<IpAddr>,
    pub sub_batch: usize,
    pub max_packet: usize,
    /// Progress line interval; `None` = no progress line.
    pub progress: Option<Duration>,
    pub broker_pid: Option<u32>,
    pub run_id: String,
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("valid histogram bounds")
}

#[repr(align(64))]
#[derive(Default)]
struct Padded<T>(T);

/// Per-thread counters the main thread reads for progress and the drain decision. Written by
/// the owning worker once per loop iteration (release), read with acquire.
#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    /// Deliveries expected so far: Σ over sent messages of their fan-out.
    expected: AtomicU64,
    /// Unique deliveries received.
    delivered: AtomicU64,
    /// QoS 1/2 publishes awaiting acknowledgement.
    inflight: AtomicU64,
    ready: AtomicU64,
    failed: AtomicU64,
    pubs_done: AtomicU64,
    setup_done: AtomicBool,
}

struct ThreadShared {
    waker: Waker,
    /// The worker is about to block with publishers waiting on the end-to-end window; whoever
    /// advances a delivery counter of one of its publishers must wake it.
    parked: AtomicBool,
    counters: Padded<Counters>,
}

struct Shared {
    /// 0 until the main thread starts traffic.
    start_ns: AtomicU64,
    /// End of the measured window; lowered by the main thread when `--count` finishes early.
    window_end_ns: AtomicU64,
    stop: AtomicBool,
    /// Unique deliveries per publisher (max-throughput window).
    pub_delivered: Vec<Padded<AtomicU64>>,
    pub_owner: Vec<u32>,
    threads: Vec<ThreadShared>,
}

struct PubState {
    idx: u32,
    template: Packet,
    target_cursor: usize,
    miss_cursor: usize,
    miss_acc: f64,
    /// Next sequence per stream offset.
    seq: Vec<u64>,
    interval_ns: f64,
    phase_ns: u64,
    /// Messages produced so far (also the index of the next scheduled message).
    k: u64,
    sent_total: u64,
    sent_hits: u64,
    sent_in_window: u64,
    acked: u64,
    rejected: u64,
    unacked: u32,
    inflight_limit: u32,
    done: bool,
    credit: u64,
    last_delivered: u64,
    last_progress_ns: u64,
    stall_resets: u64,
    max_lag_ns: u64,
    unsent: u64,
}

struct SubState {
    idx: u32,
    tracker: SubTracker,
}

struct Conn {
    gidx: usize,
    c: Client,
    pubs: Option<Box<PubState>>,
    subs: Option<Box<SubState>>,
}

/// What the publisher loop needs next.
enum Wake {
    Never,
    At(u64),
    Now,
    Window,
}

/// Worker state other than the connections (split so handlers can borrow both).
struct Ctx {
    id: usize,
    settings: Arc<Settings>,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    registry: Registry,
    protocol: Protocol,
    qos: u8,
    max_mode: bool,
    payload_bytes: usize,
    hist: Histogram<u64>,
    connect_hist: Histogram<u64>,
    start: u64,
    warm_end: u64,
    window_end: u64,
    dirty: Vec<usize>,
    pending: Vec<u64>,
    pending_dirty: Vec<u32>,
    sent: u64,
    expected: u64,
    delivered: u64,
    inflight: u64,
    ready: u64,
    failed: u64,
    pubs_done: u64,
    in_setup: usize,
    forwarded_in_window: u64,
    errors: BTreeMap<String, u64>,
    failed_after_setup: u64,
    setup_complete: bool,
    first_connect_ns: u64,
    last_ready_ns: u64,
    sub_first_ns: u64,
    sub_last_ns: u64,
    filters_granted: u64,
    filters_refused: u64,
    protocol_errors: u64,
    stopping: bool,
}

/// What one worker hands back.
struct ThreadResult {
    hist: Histogram<u64>,
    connect_hist: Histogram<u64>,
    subs: Vec<(u32, SubTracker)>,
    pubs: Vec<PubResult>,
    forwarded_in_window: u64,
    delivered: u64,
    errors: BTreeMap<String, u64>,
    failed_after_setup: u64,
    cpu_window_ns: u64,
    first_connect_ns: u64,
    last_ready_ns: u64,
    sub_first_ns: u64,
    sub_last_ns: u64,
    filters_granted: u64,
    filters_refused: u64,
    protocol_errors: u64,
    inflight_left: u64,
}

struct PubResult {
    idx: u32,
    seq: Vec<u64>,
    sent_total: u64,
    sent_in_window: u64,
    acked: u64,
    rejected: u64,
    stall_resets: u64,
    max_lag_ns: u64,
    unsent: u64,
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
    pub gen_thread_cpu_pct: Vec<f64>,
    pub broker_cpu_pct: Option<f64>,
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
}

fn error_key(what: &str, e: &dyn std::fmt::Display) -> String {
    format!("{what}: {e}")
}

fn mark_dirty(c: &mut Client, ci: usize, dirty: &mut Vec<usize>) {
    if !c.dirty {
        c.dirty = true;
        dirty.push(ci);
    }
}

/// Take a connection out of service, recording why.
fn fail(conn: &mut Conn, ctx: &mut Ctx, why: String) {
    let c = &mut conn.c;
    if matches!(c.state, State::Failed | State::Closed) {
        return;
    }
    if matches!(c.state, State::Connecting | State::Subscribing(_)) {
        ctx.in_setup -= 1;
    }
    if c.state == State::Ready {
        ctx.ready -= 1;
    }
    c.state = State::Failed;
    if let Some(mut sock) = c.sock.take() {
        let _ = ctx.registry.deregister(&mut sock);
    }
    c.wbuf.clear();
    *ctx.errors.entry(why.clone()).or_default() += 1;
    c.error = Some(why);
    ctx.failed += 1;
    if ctx.setup_complete {
        ctx.failed_after_setup += 1;
    }
    if let Some(ps) = conn.pubs.as_mut() {
        ctx.inflight -= u64::from(ps.unacked);
        ps.unacked = 0;
        if !ps.done {
            ps.done = true;
            ctx.pubs_done += 1;
        }
    }
}

fn become_ready(c: &mut Client, ctx: &mut Ctx, now: u64) {
    c.state = State::Ready;
    ctx.ready += 1;
    ctx.in_setup -= 1;
    ctx.last_ready_ns = ctx.last_ready_ns.max(now);
}

fn start_connect(conn: &mut Conn, ci: usize, ctx: &mut Ctx, now: u64) {
    let s = &ctx.settings;
    let src = if s.sources.is_empty() {
        None
    } else {
        Some(s.sources[conn.gidx % s.sources.len()])
    };
    match net::start_connect(s.broker, src) {
        Ok(mut sock) => {
            if let Err(e) =
                ctx.registry
                    .register(&mut sock, Token(ci), Interest::READABLE | Interest::WRITABLE)
            {
                *ctx.errors.entry(error_key("register", &e)).or_default() += 1;
                conn.c.state = State::Failed;
                ctx.failed += 1;
                return;
            }
            let c = &mut conn.c;
            c.sock = Some(sock);
            c.state = State::Connecting;
            c.connect_start_ns = now;
            ctx.in_setup += 1;
            if ctx.first_connect_ns == 0 {
                ctx.first_connect_ns = now;
            }
            let pkt = client::connect_packet(
                &c.client_id,
                ctx.protocol,
                s.keepalive_s,
                s.username.as_ref(),
                s.password.as_ref(),
            );
            c.queue(&pkt, ctx.protocol, now);
            mark_dirty(c, ci, &mut ctx.dirty);
        }
        Err(e) => {
            // Not yet in setup: count it directly.
            conn.c.state = State::Failed;
            *ctx.errors.entry(error_key("connect", &e)).or_default() += 1;
            conn.c.error = Some(e.to_string());
            ctx.failed += 1;
        }
    }
}

fn send_subscribes(conn: &mut Conn, ci: usize, ctx: &mut Ctx, now: u64) {
    let si = match conn.c.role {
        Role::Sub(si) => si as usize,
        _ => return,
    };
    let filters = &ctx.plan.subscribers[si].filters;
    let opts = codec::SubOptions {
        qos: ctx.settings.qos,
        ..Default::default()
    };
    let c = &mut conn.c;
    let mut n = 0;
    for chunk in filters.chunks(ctx.settings.sub_batch.max(1)) {
        let pid = c.alloc_pid();
        c.outstanding.insert(pid);
        let pkt = Packet::Subscribe(codec::Subscribe {
            packet_id: pid,
            properties: Default::default(),
            filters: chunk.iter().map(|f| (f.clone(), opts)).collect(),
        });
        c.queue(&pkt, ctx.protocol, now);
        n += 1;
    }
    if ctx.sub_first_ns == 0 || now < ctx.sub_first_ns {
        ctx.sub_first_ns = now;
    }
    if n == 0 {
        become_ready(c, ctx, now);
    } else {
        c.state = State::Subscribing(n);
        mark_dirty(c, ci, &mut ctx.dirty);
    }
}

fn pub_acked(conn: &mut Conn, ctx: &mut Ctx, pid: u16, reason: u8) {
    if !conn.c.outstanding.remove(pid) {
        ctx.protocol_errors += 1;
        return;
    }
    if let Some(ps) = conn.pubs.as_mut() {
        ps.unacked -= 1;
        ctx.inflight -= 1;
        ps.acked += 1;
        if reason >= 0x80 {
            ps.rejected += 1;
        }
    }
}

/// A PUBLISH reached a subscriber at `now`.
fn deliver(conn: &mut Conn, ci: usize, ctx: &mut Ctx, p: &codec::Publish, now: u64) {
    if let Some(ss) = conn.subs.as_mut() {
        match payload::read(&p.payload) {
            Some(h) => match ss.tracker.record(h.stream, h.seq) {
                None | Some(Outcome::Duplicate) => {}
                Some(_) => {
                    ctx.delivered += 1;
                    if ctx.max_mode {
                        let pi = h.stream / ctx.plan.streams_per_pub;
                        if let Some(slot) = ctx.pending.get_mut(pi as usize) {
                            if *slot == 0 {
                                ctx.pending_dirty.push(pi);
                            }
                            *slot += 1;
                        }
                    }
                    if h.ts_ns >= ctx.warm_end && h.ts_ns < ctx.window_end {
                        let us = (now.saturating_sub(h.ts_ns) + 500) / 1000;
                        ctx.hist.saturating_record(us);
                    }
                    if now >= ctx.warm_end && now < ctx.window_end {
                        ctx.forwarded_in_window += 1;
                    }
                }
            },
            None => ss.tracker.unexpected += 1,
        }
    } else {
        ctx.protocol_errors += 1;
    }
    let c = &mut conn.c;
    match p.qos {
        QoS::AtMostOnce => return,
        QoS::AtLeastOnce => c.queue(&Packet::PubAck(client::ack(p.packet_id)), ctx.protocol, now),
        QoS::ExactlyOnce => c.queue(&Packet::PubRec(client::ack(p.packet_id)), ctx.protocol, now),
    }
    mark_dirty(c, ci, &mut ctx.dirty);
}

fn handle(conn: &mut Conn, ci: usize, ctx: &mut Ctx, pkt: Packet, now: u64) {
    match pkt {
        Packet::Publish(p) => deliver(conn, ci, ctx, &p, now),
        Packet::PubAck(a) => pub_acked(conn, ctx, a.packet_id, a.reason),
        Packet::PubRec(a) => {
            if a.reason >= 0x80 {
                pub_acked(conn, ctx, a.packet_id, a.reason);
            } else {
                let c = &mut conn.c;
                c.queue(&Packet::PubRel(client::ack(a.packet_id)), ctx.protocol, now);
                mark_dirty(c, ci, &mut ctx.dirty);
            }
        }
        Packet::PubComp(a) => pub_acked(conn, ctx, a.packet_id, a.reason),
        Packet::PubRel(a) => {
            let c = &mut conn.c;
            c.queue(&Packet::PubComp(client::ack(a.packet_id)), ctx.protocol, now);
            mark_dirty(c, ci, &mut ctx.dirty);
        }
        Packet::ConnAck(ca) => {
            if conn.c.state != State::Connecting {
                ctx.protocol_errors += 1;
                return;
            }
            if ca.code != 0 {
                fail(conn, ctx, format!("CONNACK refused with code 0x{:02x}", ca.code));
                return;
            }
            ctx.connect_hist
                .saturating_record((now.saturating_sub(conn.c.connect_start_ns) + 500) / 1000);
            if let Some(rm) = ca.properties.receive_maximum {
                conn.c.server_receive_max = rm.max(1);
            }
            if let Some(ps) = conn.pubs.as_mut() {
                ps.inflight_limit = ctx
                    .settings
                    .inflight
                    .min(u32::from(conn.c.server_receive_max))
                    .clamp(1, 65_000);
            }
            if matches!(conn.c.role, Role::Sub(_)) {
                send_subscribes(conn, ci, ctx, now);
            } else {
                become_ready(&mut conn.c, ctx, now);
            }
        }
        Packet::SubAck(sa) => {
            let State::Subscribing(n) = conn.c.state else {
                ctx.protocol_errors += 1;
                return;
            };
            if !conn.c.outstanding.remove(sa.packet_id) {
                ctx.protocol_errors += 1;
                return;
            }
            for code in &sa.codes {
                if *code >= 0x80 {
                    ctx.filters_refused += 1;
                } else {
                    ctx.filters_granted += 1;
                }
            }
            if n <= 1 {
                ctx.sub_last_ns = ctx.sub_last_ns.max(now);
                become_ready(&mut conn.c, ctx, now);
            } else {
                conn.c.state = State::Subscribing(n - 1);
            }
        }
        Packet::PingResp => {}
        Packet::Disconnect(d) => fail(
            conn,
            ctx,
            format!("DISCONNECT from broker, reason 0x{:02x}", d.reason),
        ),
        _ => ctx.protocol_errors += 1,
    }
}

fn on_readable(conn: &mut Conn, ci: usize, ctx: &mut Ctx, scratch: &mut [u8]) {
    loop {
        let Some(sock) = conn.c.sock.as_mut() else {
            return;
        };
        match sock.read(scratch) {
            Ok(0) => {
                let why = if ctx.stopping {
                    return;
                } else {
                    "connection closed by broker".to_string()
                };
                fail(conn, ctx, why);
                return;
            }
            Ok(n) => {
                // One timestamp per read: the moment these bytes reached user space.
                let now = now_ns();
                conn.c.rbuf.extend_from_slice(&scratch[..n]);
                loop {
                    match codec::decode(&mut conn.c.rbuf, ctx.protocol, ctx.settings.max_packet) {
                        Ok(Some(pkt)) => handle(conn, ci, ctx, pkt, now),
                        Ok(None) => break,
                        Err(e) => {
                            fail(conn, ctx, error_key("decode", &e));
                            return;
                        }
                    }
                    if !conn.c.is_live() {
                        return;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                if !ctx.stopping {
                    fail(conn, ctx, error_key("read", &e));
                }
                return;
            }
        }
    }
}

fn flush_conn(conn: &mut Conn, ctx: &mut Ctx) {
    if conn.c.write_blocked {
        return;
    }
    if let Err(e) = conn.c.flush() {
        if !ctx.stopping {
            fail(conn, ctx, error_key("write", &e));
        }
    }
}

/// Is this max-throughput publisher's end-to-end window full? (Also handles stall resets.)
fn window_full(ps: &mut PubState, fanout: u64, ctx: &Ctx, now: u64) -> bool {
    let delivered = ctx.shared.pub_delivered[ps.idx as usize].0.load(Ordering::SeqCst);
    if delivered != ps.last_delivered {
        ps.last_delivered = delivered;
        ps.last_progress_ns = now;
    }
    let outstanding = (ps.sent_hits * fanout).saturating_sub(delivered + ps.credit);
    let full = outstanding >= u64::from(ctx.settings.inflight) * fanout;
    if full && now.saturating_sub(ps.last_progress_ns) > STALL_NS {
        ps.credit += outstanding;
        ps.stall_resets += 1;
        ps.last_progress_ns = now;
        return false;
    }
    full
}

fn finish_publisher(ps: &mut PubState, ctx: &mut Ctx) {
    if ps.done {
        return;
    }
    ps.done = true;
    ctx.pubs_done += 1;
    if ps.interval_ns > 0.0 && ctx.settings.count.is_none() {
        // Messages whose intended time fell inside the run but were never sent: the target
        // rate was not sustained.
        let span = ctx.window_end.saturating_sub(ctx.start + ps.phase_ns) as f64;
        let scheduled = (span / ps.interval_ns).ceil() as u64;
        ps.unsent = scheduled.saturating_sub(ps.k);
    }
}

fn produce(conn: &mut Conn, ci: usize, ctx: &mut Ctx, now: u64) -> Wake {
    let Some(ps) = conn.pubs.as_mut() else {
        return Wake::Never;
    };
    let c = &mut conn.c;
    if ps.done || c.state != State::Ready || c.write_blocked {
        return Wake::Never;
    }
    let spec = &ctx.plan.publishers[ps.idx as usize];
    let fanout = u64::from(spec.fanout.max(1));
    let mut batch = 0;
    loop {
        if c.wbuf.len() >= WBUF_HIGH {
            return Wake::Now;
        }
        let ts = if ps.interval_ns > 0.0 {
            let due = ctx.start + ps.phase_ns + (ps.k as f64 * ps.interval_ns) as u64;
            if due > now && due < ctx.window_end {
                return Wake::At(due);
            }
            due
        } else {
            now
        };
        if now >= ctx.window_end
            || ts >= ctx.window_end
            || ctx.settings.count.is_some_and(|n| ps.sent_total >= n)
        {
            finish_publisher(ps, ctx);
            return Wake::Never;
        }
        if ctx.qos > 0 && ps.unacked >= ps.inflight_limit {
            return Wake::Never; // the next acknowledgement (a read event) reopens it
        }
        if ctx.max_mode && window_full(ps, fanout, ctx, now) {
            return Wake::Window;
        }
        if batch >= MAX_BATCH {
            return Wake::Now;
        }
        batch += 1;
        // Pick the destination: a target (a stream someone must receive) or a miss topic.
        let miss = spec.miss_ratio > 0.0 && {
            ps.miss_acc += spec.miss_ratio;
            ps.miss_acc >= 1.0
        };
        let (topic, stream, seq) = if miss {
            ps.miss_acc -= 1.0;
            let t = spec.miss_topics[ps.miss_cursor % spec.miss_topics.len()].clone();
            ps.miss_cursor += 1;
            (t, MISS_STREAM, 0)
        } else {
            let t = &spec.targets[ps.target_cursor];
            ps.target_cursor = (ps.target_cursor + 1) % spec.targets.len();
            let off = t.stream_offset as usize;
            let seq = ps.seq[off];
            ps.seq[off] += 1;
            (
                t.topic.clone(),
                ps.idx * ctx.plan.streams_per_pub + t.stream_offset,
                seq,
            )
        };
        let pid = if ctx.qos > 0 {
            let pid = c.alloc_pid();
            c.outstanding.insert(pid);
            ps.unacked += 1;
            ctx.inflight += 1;
            pid
        } else {
            0
        };
        if let Packet::Publish(p) = &mut ps.template {
            p.topic = topic;
            p.packet_id = pid;
        }
        c.queue(&ps.template, ctx.protocol, now);
        let end = c.wbuf.len();
        // The payload is the last thing in the packet: stamp its header in place.
        payload::write(
            &mut c.wbuf[end - ctx.payload_bytes..],
            Header {
                stream,
                seq,
                ts_ns: ts,
            },
        );
        ps.k += 1;
        ps.sent_total += 1;
        ctx.sent += 1;
        if ts >= ctx.warm_end {
            ps.sent_in_window += 1;
        }
        if !miss {
            ps.sent_hits += 1;
            ctx.expected += fanout;
        }
        ps.max_lag_ns = ps.max_lag_ns.max(now.saturating_sub(ts));
        mark_dirty(c, ci, &mut ctx.dirty);
    }
}

struct Worker {
    poll: Poll,
    timer: Timer,
    conns: Vec<Conn>,
    pub_conns: Vec<usize>,
    ctx: Ctx,
}

impl Worker {
    fn publish_counters(&self) {
        let c = &self.ctx.shared.threads[self.ctx.id].counters.0;
        let x = &self.ctx;
        c.sent.store(x.sent, Ordering::Release);
        c.expected.store(x.expected, Ordering::Release);
        c.delivered.store(x.delivered, Ordering::Release);
        c.inflight.store(x.inflight, Ordering::Release);
        c.ready.store(x.ready, Ordering::Release);
        c.failed.store(x.failed, Ordering::Release);
        // Last: the main thread trusts `expected` once every publisher reports done.
        c.pubs_done.store(x.pubs_done, Ordering::Release);
    }

    /// Push batched delivery counts to the publishers' shared counters; wake parked owners.
    fn flush_deliveries(&mut self) {
        let ctx = &mut self.ctx;
        for &pi in &ctx.pending_dirty {
            let n = std::mem::take(&mut ctx.pending[pi as usize]);
            ctx.shared.pub_delivered[pi as usize]
                .0
                .fetch_add(n, Ordering::SeqCst);
            let owner = ctx.shared.pub_owner[pi as usize] as usize;
            if owner != ctx.id {
                let t = &ctx.shared.threads[owner];
                if t.parked.load(Ordering::SeqCst) && t.parked.swap(false, Ordering::SeqCst) {
                    let _ = t.waker.wake();
                }
            }
        }
        ctx.pending_dirty.clear();
    }

    fn flush_dirty(&mut self) {
        let dirty = std::mem::take(&mut self.ctx.dirty);
        for &ci in &dirty {
            let conn = &mut self.conns[ci];
            conn.c.dirty = false;
            flush_conn(conn, &mut self.ctx);
        }
        let mut dirty = dirty;
        dirty.clear();
        // Keep the allocation unless handlers queued new work meanwhile (they cannot here).
        if self.ctx.dirty.is_empty() {
            self.ctx.dirty = dirty;
        }
    }

    fn keepalive(&mut self, now: u64) {
        let ka = u64::from(self.ctx.settings.keepalive_s) * 1_000_000_000;
        if ka == 0 {
            return;
        }
        for ci in 0..self.conns.len() {
            let conn = &mut self.conns[ci];
            if conn.c.is_live()
                && conn.c.state != State::Connecting
                && now.saturating_sub(conn.c.last_tx_ns) > ka / 2
            {
                conn.c.queue(&Packet::PingReq, self.ctx.protocol, now);
                mark_dirty(&mut conn.c, ci, &mut self.ctx.dirty);
            }
        }
    }

    fn start_traffic(&mut self, start: u64) {
        let s = &self.ctx.settings;
        self.ctx.start = start;
        self.ctx.warm_end = start + s.warmup.as_nanos() as u64;
        self.ctx.window_end = self.ctx.shared.window_end_ns.load(Ordering::Acquire);
        let pubs_total = self.ctx.plan.publishers.len().max(1) as f64;
        let interval = s.rate.map(|r| pubs_total * 1e9 / r).unwrap_or(0.0);
        for &ci in &self.pub_conns {
            if let Some(ps) = self.conns[ci].pubs.as_mut() {
                ps.interval_ns = interval;
                // Spread publishers' schedules evenly over one interval so open-loop sends are
                // not synchronised bursts.
                ps.phase_ns = (interval * f64::from(ps.idx) / pubs_total) as u64;
                ps.last_progress_ns = start;
            }
        }
    }

    fn run(mut self) -> ThreadResult {
        clock::tighten_timer_slack();
        let mut events = Events::with_capacity(1024);
        let mut scratch = vec![0u8; READ_CHUNK];
        let mut to_connect: VecDeque<usize> = (0..self.conns.len()).collect();
        let conc = self.ctx.settings.connect_concurrency.max(1);
        let mut started = false;
        let mut cpu_at_warm: Option<u64> = None;
        let mut cpu_at_end: Option<u64> = None;
        let mut next_keepalive = now_ns() + 1_000_000_000;
        let me = self.ctx.id;
        loop {
            let now = now_ns();
            if self.ctx.shared.stop.load(Ordering::Acquire) {
                break;
            }
            // Setup: keep `conc` connections in the handshake at once.
            while self.ctx.in_setup < conc {
                let Some(ci) = to_connect.pop_front() else {
                    break;
                };
                start_connect(&mut self.conns[ci], ci, &mut self.ctx, now);
            }
            if !self.ctx.setup_complete && to_connect.is_empty() && self.ctx.in_setup == 0 {
                self.ctx.setup_complete = true;
                self.publish_counters();
                self.ctx.shared.threads[me]
                    .counters
                    .0
                    .setup_done
                    .store(true, Ordering::Release);
            }
            let mut next_wake = now + TICK_NS;
            let mut window_blocked = false;
            let start = self.ctx.shared.start_ns.load(Ordering::Acquire);
            if start != 0 && now >= start {
                if !started {
                    started = true;
                    self.start_traffic(start);
                }
                self.ctx.window_end = self.ctx.shared.window_end_ns.load(Ordering::Acquire);
                if cpu_at_warm.is_none() && now >= self.ctx.warm_end {
                    cpu_at_warm = Some(sysinfo::cpu_thread_ns());
                }
                if cpu_at_end.is_none() && now >= self.ctx.window_end {
                    cpu_at_end = Some(sysinfo::cpu_thread_ns());
                }
                for i in 0..self.pub_conns.len() {
                    let ci = self.pub_conns[i];
                    match produce(&mut self.conns[ci], ci, &mut self.ctx, now) {
                        Wake::Never => {}
                        Wake::At(t) => next_wake = next_wake.min(t),
                        Wake::Now => next_wake = now,
                        Wake::Window => window_blocked = true,
                    }
                }
                for t in [self.ctx.warm_end, self.ctx.window_end] {
                    if t > now {
                        next_wake = next_wake.min(t);
                    }
                }
            } else if start != 0 {
                next_wake = next_wake.min(start);
            }
            self.flush_dirty();
            self.flush_deliveries();
            self.publish_counters();
            if now >= next_keepalive {
                self.keepalive(now);
                next_keepalive = now + 1_000_000_000;
            }

            // Decide how long to sleep.
            let mut timeout = if next_wake <= now + SPIN_NS {
                Some(Duration::ZERO)
            } else {
                self.timer.arm(next_wake);
                Some(Duration::from_nanos(TICK_NS))
            };
            if window_blocked && timeout != Some(Duration::ZERO) {
                // Park, then re-check: a subscriber thread may have delivered in between.
                let t = &self.ctx.shared.threads[me];
                t.parked.store(true, Ordering::SeqCst);
                let now2 = now_ns();
                let reopened = self.pub_conns.iter().any(|&ci| {
                    let conn = &mut self.conns[ci];
                    match conn.pubs.as_mut() {
                        Some(ps) if !ps.done && conn.c.state == State::Ready => {
                            let fanout =
                                u64::from(self.ctx.plan.publishers[ps.idx as usize].fanout.max(1));
                            !window_full(ps, fanout, &self.ctx, now2)
                        }
                        _ => false,
                    }
                });
                if reopened {
                    t.parked.store(false, Ordering::SeqCst);
                    timeout = Some(Duration::ZERO);
                } else {
                    // The stall detector needs a wake-up even if nothing arrives.
                    timeout = Some(Duration::from_millis(50));
                }
            }
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    *self
                        .ctx
                        .errors
                        .entry(error_key("poll", &e))
                        .or_default() += 1;
                }
            }
            self.ctx.shared.threads[me]
                .parked
                .store(false, Ordering::SeqCst);
            for ev in events.iter() {
                match ev.token() {
                    WAKER => {}
                    TIMER => self.timer.clear(),
                    Token(ci) => {
                        let conn = &mut self.conns[ci];
                        if ev.is_writable() && conn.c.write_blocked {
                            conn.c.write_blocked = false;
                            flush_conn(conn, &mut self.ctx);
                        }
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            on_readable(conn, ci, &mut self.ctx, &mut scratch);
                        }
                    }
                }
            }
        }

        // Stop: say goodbye politely so the broker does not log abnormal disconnects.
        self.ctx.stopping = true;
        let now = now_ns();
        for conn in &mut self.conns {
            if conn.c.is_live() {
                let d = Packet::Disconnect(codec::Disconnect::default());
                conn.c.queue(&d, self.ctx.protocol, now);
                let _ = conn.c.flush();
                conn.c.state = State::Closed;
                if let Some(s) = conn.c.sock.as_ref() {
                    let _ = s.shutdown(std::net::Shutdown::Write);
                }
            }
        }
        let cpu_end = cpu_at_end.unwrap_or_else(sysinfo::cpu_thread_ns);
        let cpu_window_ns = cpu_at_warm.map(|w| cpu_end.saturating_sub(w)).unwrap_or(0);
        let mut subs = Vec::new();
        let mut pubs = Vec::new();
        for conn in self.conns {
            if let Some(ss) = conn.subs {
                subs.push((ss.idx, ss.tracker));
            }
            if let Some(ps) = conn.pubs {
                pubs.push(PubResult {
                    idx: ps.idx,
                    seq: ps.seq,
                    sent_total: ps.sent_total,
                    sent_in_window: ps.sent_in_window,
                    acked: ps.acked,
                    rejected: ps.rejected,
                    stall_resets: ps.stall_resets,
                    max_lag_ns: ps.max_lag_ns,
                    unsent: ps.unsent,
                });
            }
        }
        let x = self.ctx;
        ThreadResult {
            hist: x.hist,
            connect_hist: x.connect_hist,
            subs,
            pubs,
            forwarded_in_window: x.forwarded_in_window,
            delivered: x.delivered,
            errors: x.errors,
            failed_after_setup: x.failed_after_setup,
            cpu_window_ns,
            first_connect_ns: x.first_connect_ns,
            last_ready_ns: x.last_ready_ns,
            sub_first_ns: x.sub_first_ns,
            sub_last_ns: x.sub_last_ns,
            filters_granted: x.filters_granted,
            filters_refused: x.filters_refused,
            protocol_errors: x.protocol_errors,
            inflight_left: x.inflight,
        }
    }
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
        window_end_ns: AtomicU64::new(u64::MAX),
        stop: AtomicBool::new(false),
        pub_delivered: (0..n_pubs).map(|_| Padded::default()).collect(),
        pub_owner,
        threads: thread_shared,
    });

    let rss_before = settings.broker_pid.and_then(sysinfo::proc_rss_bytes);
    let t0 = now_ns();
    let cpu0 = sysinfo::cpu_self_ns();

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
        for (ci, (gidx, role)) in clients.into_iter().enumerate() {
            let tag = match role {
                Role::Pub(i) => format!("p{i}"),
                Role::Sub(i) => format!("s{i}"),
                Role::Idle(i) => format!("c{i}"),
            };
            let c = Client::new(role, format!("rb{}{tag}", settings.run_id));
            let pubs = match role {
                Role::Pub(i) => {
                    pub_conns.push(ci);
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
                        done: false,
                        credit: 0,
                        last_delivered: 0,
                        last_progress_ns: 0,
                        stall_resets: 0,
                        max_lag_ns: 0,
                        unsent: 0,
                    }))
                }
                _ => None,
            };
            let subs = match role {
                Role::Sub(i) => Some(Box::new(SubState {
                    idx: i,
                    tracker: SubTracker::new(plan.subscribers[i as usize].streams),
                })),
                _ => None,
            };
            conns.push(Conn { gidx, c, pubs, subs });
        }
        let ctx = Ctx {
            id,
            settings: settings.clone(),
            plan: plan.clone(),
            shared: shared.clone(),
            registry,
            protocol: settings.protocol,
            qos: settings.qos as u8,
            max_mode: settings.rate.is_none(),
            payload_bytes: settings.payload_bytes,
            hist: new_histogram(),
            connect_hist: new_histogram(),
            start: 0,
            warm_end: u64::MAX,
            window_end: u64::MAX,
            dirty: Vec::new(),
            pending: if settings.rate.is_none() {
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
    let stop_and_join = |shared: &Arc<Shared>, handles: Vec<std::thread::JoinHandle<ThreadResult>>| {
        shared.stop.store(true, Ordering::Release);
        wake_all(shared);
        handles
            .into_iter()
            .map(|h| h.join().expect("I/O thread panicked"))
            .collect::<Vec<_>>()
    };

    let mut progress = Progress::new(settings.progress);

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
    let cpu_warm = sysinfo::cpu_self_ns();
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
    let cpu_end = sysinfo::cpu_self_ns();
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
    let mut sent_per_stream: Vec<u64> =
        vec![0; n_pubs * plan.streams_per_pub as usize];
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
        gen_cpu_pct: sysinfo::pct_of_core(cpu_end - cpu_warm, wall_ns),
        gen_thread_cpu_pct: Vec::new(),
        broker_cpu_pct: match (broker_cpu_warm, broker_cpu_end) {
            (Some(a), Some(b)) => Some(sysinfo::pct_of_core(b.saturating_sub(a), wall_ns)),
            _ => None,
        },
        broker_rss_before: rss_before,
        broker_rss_after: rss_after,
        clients: total,
        ready: t.ready,
        failed_setup: t.failed,
        failed_during_run: 0,
        errors: BTreeMap::new(),
        setup_ns: 0,
        setup_cpu_pct: sysinfo::pct_of_core(setup_cpu_ns, setup_end - t0),
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
    };
    let (mut first_connect, mut last_ready, mut sub_first, mut sub_last) = (u64::MAX, 0, u64::MAX, 0);
    for r in results {
        latency.add(&r.hist).expect("same histogram bounds");
        connect_latency
            .add(&r.connect_hist)
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
        }
        subs.extend(r.subs);
    }
    subs.sort_by_key(|(i, _)| *i);
    let trackers: Vec<SubTracker> = subs.into_iter().map(|(_, t)| t).collect();
    out.accounting = stats::settle(&trackers, |s| {
        sent_per_stream.get(s as usize).copied().unwrap_or(0)
    });
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
