//! The I/O worker: one thread, one epoll, a timerfd, and a share of the connections. Each loop
//! iteration connects (bounded concurrency), lets publishers produce, flushes every dirty
//! connection once, publishes counters, then sleeps until the next send deadline or event.

use super::conn_io::{flush_conn, on_readable};
use super::publisher::{produce, uses_e2e_window, window_full, Wake};
use super::session::{error_key, mark_dirty, start_connect, Conn, Ctx, PubResult, ThreadResult};
use super::{StalledOutcome, SPIN_NS, TICK_NS, TIMER, WAKER};
use crate::client::State;
use crate::clock::{self, now_ns, Timer};
use crate::sysinfo;
use mio::{Events, Poll, Token};
use ringmq_codec::{self as codec, Packet};
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Bytes per read() call.
const READ_CHUNK: usize = 256 * 1024;
/// How often stalled subscribers' sockets are looked at (close seen? bytes queued?).
const STALL_SAMPLE_NS: u64 = 100_000_000;
/// At the end, a stalled subscriber's socket is read for at most this long to find out whether
/// the broker closed it behind the unread data...
const FINAL_READ_NS: u64 = 2_000_000_000;
/// ...and it counts as still open once no byte arrived for this long.
const FINAL_READ_QUIET_MS: i32 = 300;

pub(crate) struct Worker {
    pub(crate) poll: Poll,
    pub(crate) timer: Timer,
    pub(crate) conns: Vec<Conn>,
    pub(crate) pub_conns: Vec<usize>,
    /// Subscribers that stop reading after SUBACK (`stalled`).
    pub(crate) stalled_subs: Vec<usize>,
    pub(crate) ctx: Ctx,
}

/// Has the peer closed `fd`, looked at without reading it? `Some("reset")` for an RST (or any
/// socket error), `Some("fin")` for a FIN.
fn peer_closed(sock: &mio::net::TcpStream) -> Option<&'static str> {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    if n <= 0 || p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) == 0 {
        return None;
    }
    match sock.take_error() {
        Ok(Some(_)) => Some("reset"),
        _ if p.revents & (libc::POLLHUP | libc::POLLERR) != 0 => Some("reset"),
        _ => Some("fin"),
    }
}

/// Bytes received on `sock` and not yet read (FIONREAD).
fn rx_queued(sock: &mio::net::TcpStream) -> u64 {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::FIONREAD, &mut n) } != 0 {
        return 0;
    }
    n.max(0) as u64
}

/// Read whatever a stalled socket holds, for at most `FINAL_READ_NS`: returns the bytes read
/// and whether the broker's close (EOF or reset) came after them.
fn read_to_close(sock: &mut mio::net::TcpStream, scratch: &mut [u8]) -> (u64, bool) {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let deadline = now_ns() + FINAL_READ_NS;
    let mut total = 0u64;
    while now_ns() < deadline {
        match sock.read(scratch) {
            Ok(0) => return (total, true),
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut p = libc::pollfd {
                    fd: sock.as_raw_fd(),
                    events: libc::POLLIN | libc::POLLRDHUP,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                if unsafe { libc::poll(&mut p, 1, FINAL_READ_QUIET_MS) } == 0 {
                    return (total, false);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return (total, true),
        }
    }
    (total, false)
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
        // --rate is shared by the open-loop publishers; closed-loop ones go as fast as their
        // window allows.
        let open_loop = self.ctx.plan.publishers.iter().filter(|p| !p.closed_loop);
        let pubs_total = open_loop.count().max(1) as f64;
        let interval = s.rate.map(|r| pubs_total * 1e9 / r).unwrap_or(0.0);
        if let Some(t) = self.ctx.timeline.as_mut() {
            t.set_start(start);
        }
        for &ci in &self.pub_conns {
            if let Some(ps) = self.conns[ci].pubs.as_mut() {
                ps.interval_ns = if ps.closed_loop { 0.0 } else { interval };
                // Spread publishers' schedules evenly over one interval so open-loop sends are
                // not synchronised bursts.
                ps.phase_ns = (interval * f64::from(ps.idx) / pubs_total) as u64;
                ps.last_progress_ns = start;
            }
        }
    }

    pub(crate) fn run(mut self) -> ThreadResult {
        clock::tighten_timer_slack();
        let mut events = Events::with_capacity(1024);
        let mut scratch = vec![0u8; READ_CHUNK];
        let mut to_connect: VecDeque<usize> = (0..self.conns.len()).collect();
        let conc = self.ctx.settings.connect_concurrency.max(1);
        let mut started = false;
        let mut cpu_at_warm: Option<u64> = None;
        let mut cpu_at_end: Option<u64> = None;
        let mut next_keepalive = now_ns() + 1_000_000_000;
        let mut next_stall_sample = 0;
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
            // Deliveries counted while handling the last events open publishers' windows.
            self.flush_deliveries();
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
            if !self.stalled_subs.is_empty() && now >= next_stall_sample {
                self.sample_stalled(now);
                next_stall_sample = now + STALL_SAMPLE_NS;
            }

            // Decide how long to sleep.
            let mut timeout = if self.ctx.settings.spin || next_wake <= now + SPIN_NS {
                Some(Duration::ZERO)
            } else if next_wake < now + TICK_NS {
                // A real deadline (open-loop send, phase change): wake precisely.
                self.timer.arm(next_wake);
                Some(Duration::from_nanos(TICK_NS))
            } else {
                Some(Duration::from_nanos(TICK_NS))
            };
            if window_blocked && timeout != Some(Duration::ZERO) && !self.ctx.settings.spin {
                // Park, then re-check: a subscriber thread may have delivered in between.
                let t = &self.ctx.shared.threads[me];
                t.parked.store(true, Ordering::SeqCst);
                let now2 = now_ns();
                let reopened = self.pub_conns.iter().any(|&ci| {
                    let conn = &mut self.conns[ci];
                    match conn.pubs.as_mut() {
                        Some(ps) if !ps.done && conn.c.state == State::Ready => {
                            let fanout =
                                u64::from(self.ctx.plan.publishers[ps.idx as usize].fanout);
                            uses_e2e_window(ps, fanout, &self.ctx)
                                && !window_full(ps, fanout, &self.ctx, now2)
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
                    *self.ctx.errors.entry(error_key("poll", &e)).or_default() += 1;
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

        // Stop. First find out what became of the stalled subscribers, then say goodbye
        // politely so the broker does not log abnormal disconnects.
        self.ctx.stopping = true;
        let stalled = self.finish_stalled(&mut scratch);
        let now = now_ns();
        for &ci in &self.pub_conns {
            let conn = &mut self.conns[ci];
            if let Some(ps) = conn.pubs.as_mut() {
                if ps.unacked > 0 {
                    ps.ack_wait_max_ns = ps.ack_wait_max_ns.max(now.saturating_sub(ps.progress_ns));
                }
                // Whatever is still in flight was never acknowledged.
                for pid in conn.c.outstanding.iter() {
                    let m = ps.pid_message(pid);
                    ps.not_acked.push(m);
                }
            }
        }
        for conn in &mut self.conns {
            if conn.c.is_live() {
                let d = Packet::Disconnect(codec::Disconnect::default());
                conn.c.queue(&d, self.ctx.protocol, now);
                let _ = conn.c.flush();
                if let Some(tls) = conn.c.tls.as_mut() {
                    // After the DISCONNECT's record, so the broker reads it first.
                    tls.send_close_notify();
                    let _ = conn.c.flush();
                }
                if let Some(ws) = conn.c.ws.as_mut() {
                    // The same for WebSocket: a close frame after the DISCONNECT's frame.
                    ws.close();
                    let _ = conn.c.flush();
                }
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
                    acked_in_window: ps.acked_in_window,
                    ack_wait_max_ns: ps.ack_wait_max_ns,
                    not_acked: ps.not_acked,
                });
            }
        }
        let x = self.ctx;
        ThreadResult {
            hist: x.hist,
            connect_hist: x.connect_hist,
            lag_hist: x.lag_hist,
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
            timeline: x.timeline,
            stalled,
        }
    }

    /// Look at each stalled subscriber's socket without reading it: closed by the broker yet,
    /// and how many bytes wait unread.
    fn sample_stalled(&mut self, now: u64) {
        let mut queued = 0;
        for &ci in &self.stalled_subs {
            let conn = &mut self.conns[ci];
            let Some(stall) = conn.subs.as_mut().and_then(|s| s.stall.as_mut()) else {
                continue;
            };
            let Some(sock) = conn.c.sock.as_ref() else {
                continue;
            };
            if !stall.stopped || stall.closed_at_ns.is_some() {
                continue;
            }
            let q = rx_queued(sock);
            queued += q;
            stall.rx_queue_bytes_max = stall.rx_queue_bytes_max.max(q);
            if let Some(how) = peer_closed(sock) {
                stall.closed_at_ns = Some(now);
                stall.how = Some(how);
            }
        }
        if let Some(t) = self.ctx.timeline.as_mut() {
            t.stalled_rx(now, queued);
        }
    }

    /// The end of the run for stalled subscribers: one last look, then read what they hold to
    /// find a close queued behind the data.
    fn finish_stalled(&mut self, scratch: &mut [u8]) -> Vec<StalledOutcome> {
        let now = now_ns();
        self.sample_stalled(now);
        let start = self.ctx.start;
        let mut out = Vec::new();
        for &ci in &self.stalled_subs {
            let conn = &mut self.conns[ci];
            let Some(ss) = conn.subs.as_mut() else {
                continue;
            };
            let Some(stall) = ss.stall.as_mut() else {
                continue;
            };
            let mut o = StalledOutcome {
                subscriber: ss.idx,
                rx_queue_bytes_max: stall.rx_queue_bytes_max,
                ..Default::default()
            };
            o.closed_at_s = stall.closed_at_ns.map(|t| (t as f64 - start as f64) / 1e9);
            o.state = match (stall.stopped, stall.how, conn.c.sock.as_mut()) {
                (false, _, _) | (_, _, None) => "failed".into(),
                (true, Some(how), _) => how.into(),
                (true, None, Some(sock)) => {
                    let (n, closed) = read_to_close(sock, scratch);
                    o.bytes_read_at_end = n;
                    if closed {
                        "closed-after-queued-data".into()
                    } else {
                        "open".into()
                    }
                }
            };
            out.push(o);
        }
        out
    }
}
