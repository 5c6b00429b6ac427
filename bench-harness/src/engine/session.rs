//! What happens on one connection: connect, CONNACK, SUBSCRIBE/SUBACK, incoming packets
//! (deliveries with their sequence and latency accounting, acknowledgements of our own
//! publishes); the socket reads and writes are in [`super::conn_io`]. Functions take the
//! connection and the worker context separately so a handler can update both without fighting
//! the borrow checker.

use super::shared::Shared;
use super::Settings;
use crate::client::{self, Client, Role, State};
use crate::net;
use crate::payload;
use crate::scenario::Plan;
use crate::stats::{Outcome, SubTracker};
use hdrhistogram::Histogram;
use mio::{Interest, Registry, Token};
use ringmq_codec::{self as codec, Packet, Protocol, QoS};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) struct PubState {
    pub(crate) idx: u32,
    pub(crate) template: Packet,
    pub(crate) target_cursor: usize,
    pub(crate) miss_cursor: usize,
    pub(crate) miss_acc: f64,
    /// Next sequence per stream offset.
    pub(crate) seq: Vec<u64>,
    pub(crate) interval_ns: f64,
    pub(crate) phase_ns: u64,
    /// Messages produced so far (also the index of the next scheduled message).
    pub(crate) k: u64,
    pub(crate) sent_total: u64,
    pub(crate) sent_hits: u64,
    pub(crate) sent_in_window: u64,
    pub(crate) acked: u64,
    pub(crate) rejected: u64,
    pub(crate) unacked: u32,
    pub(crate) inflight_limit: u32,
    /// End-to-end window is closed until a quarter of it frees up.
    pub(crate) window_closed: bool,
    pub(crate) done: bool,
    pub(crate) credit: u64,
    pub(crate) last_delivered: u64,
    pub(crate) last_progress_ns: u64,
    pub(crate) stall_resets: u64,
    pub(crate) max_lag_ns: u64,
    pub(crate) unsent: u64,
    /// The plan's group of this publisher (timeline, report).
    pub(crate) group: u8,
    /// Paced by its MQTT window only, even with `--rate`.
    pub(crate) closed_loop: bool,
    /// QoS 1/2: packet identifier → `offset << 40 | seq` of the PUBLISH it carries, so the
    /// end of the run knows which sequences were never acknowledged (sized `pid_max + 1`).
    pub(crate) pid_seq: Vec<u64>,
    /// (offset, seq) acknowledged with an error reason code.
    pub(crate) not_acked: Vec<(u32, u64)>,
    pub(crate) acked_in_window: u64,
    /// Last acknowledgement, or when the window last went from empty to non-empty.
    pub(crate) progress_ns: u64,
    /// Longest wait for an acknowledgement with messages in flight.
    pub(crate) ack_wait_max_ns: u64,
}

impl PubState {
    /// Remember which message `pid` carries.
    #[inline]
    pub(crate) fn bind_pid(&mut self, pid: u16, offset: u32, seq: u64, now: u64) {
        let i = usize::from(pid);
        if i >= self.pid_seq.len() {
            self.pid_seq.resize((i + 1).next_power_of_two(), 0);
        }
        self.pid_seq[i] = (u64::from(offset) << payload::SEQ_BITS) | (seq & payload::SEQ_MASK);
        if self.unacked == 0 {
            self.progress_ns = now;
        }
    }

    /// The (offset, seq) `pid` carries.
    pub(crate) fn pid_message(&self, pid: u16) -> (u32, u64) {
        let v = self.pid_seq.get(usize::from(pid)).copied().unwrap_or(0);
        ((v >> payload::SEQ_BITS) as u32, v & payload::SEQ_MASK)
    }
}

/// A subscriber that stopped reading its socket after SUBACK (`stalled`).
#[derive(Debug, Default)]
pub(crate) struct Stall {
    /// It has stopped reading (SUBACK received; the socket is out of epoll).
    pub(crate) stopped: bool,
    pub(crate) closed_at_ns: Option<u64>,
    pub(crate) how: Option<&'static str>,
    pub(crate) rx_queue_bytes_max: u64,
}

pub(crate) struct SubState {
    pub(crate) idx: u32,
    pub(crate) tracker: SubTracker,
    /// `Some` for a stalled subscriber.
    pub(crate) stall: Option<Stall>,
}

pub(crate) struct Conn {
    pub(crate) gidx: usize,
    pub(crate) c: Client,
    pub(crate) pubs: Option<Box<PubState>>,
    pub(crate) subs: Option<Box<SubState>>,
}

/// Worker state other than the connections (split so handlers can borrow both).
pub(crate) struct Ctx {
    pub(crate) id: usize,
    pub(crate) settings: Arc<Settings>,
    pub(crate) plan: Arc<Plan>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) registry: Registry,
    pub(crate) protocol: Protocol,
    pub(crate) qos: u8,
    pub(crate) max_mode: bool,
    pub(crate) payload_bytes: usize,
    pub(crate) hist: Histogram<u64>,
    pub(crate) connect_hist: Histogram<u64>,
    pub(crate) lag_hist: Histogram<u64>,
    pub(crate) start: u64,
    pub(crate) warm_end: u64,
    pub(crate) window_end: u64,
    pub(crate) dirty: Vec<usize>,
    pub(crate) pending: Vec<u64>,
    pub(crate) pending_dirty: Vec<u32>,
    pub(crate) sent: u64,
    pub(crate) expected: u64,
    pub(crate) delivered: u64,
    pub(crate) inflight: u64,
    pub(crate) ready: u64,
    pub(crate) failed: u64,
    pub(crate) pubs_done: u64,
    pub(crate) in_setup: usize,
    pub(crate) forwarded_in_window: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) failed_after_setup: u64,
    pub(crate) setup_complete: bool,
    pub(crate) first_connect_ns: u64,
    pub(crate) last_ready_ns: u64,
    pub(crate) sub_first_ns: u64,
    pub(crate) sub_last_ns: u64,
    pub(crate) filters_granted: u64,
    pub(crate) filters_refused: u64,
    pub(crate) protocol_errors: u64,
    pub(crate) stopping: bool,
    pub(crate) timeline: Option<crate::timeline::Recorder>,
}

/// What one worker hands back.
pub(crate) struct ThreadResult {
    pub(crate) hist: Histogram<u64>,
    pub(crate) connect_hist: Histogram<u64>,
    pub(crate) lag_hist: Histogram<u64>,
    pub(crate) subs: Vec<(u32, SubTracker)>,
    pub(crate) pubs: Vec<PubResult>,
    pub(crate) forwarded_in_window: u64,
    pub(crate) delivered: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) failed_after_setup: u64,
    pub(crate) cpu_window_ns: u64,
    pub(crate) first_connect_ns: u64,
    pub(crate) last_ready_ns: u64,
    pub(crate) sub_first_ns: u64,
    pub(crate) sub_last_ns: u64,
    pub(crate) filters_granted: u64,
    pub(crate) filters_refused: u64,
    pub(crate) protocol_errors: u64,
    pub(crate) inflight_left: u64,
    pub(crate) timeline: Option<crate::timeline::Recorder>,
    pub(crate) stalled: Vec<super::StalledOutcome>,
}

pub(crate) struct PubResult {
    pub(crate) idx: u32,
    pub(crate) seq: Vec<u64>,
    pub(crate) sent_total: u64,
    pub(crate) sent_in_window: u64,
    pub(crate) acked: u64,
    pub(crate) rejected: u64,
    pub(crate) stall_resets: u64,
    pub(crate) max_lag_ns: u64,
    pub(crate) unsent: u64,
    pub(crate) acked_in_window: u64,
    pub(crate) ack_wait_max_ns: u64,
    /// Rejected, plus those still in flight at the end.
    pub(crate) not_acked: Vec<(u32, u64)>,
}

pub(crate) fn error_key(what: &str, e: &dyn std::fmt::Display) -> String {
    format!("{what}: {e}")
}

pub(crate) fn mark_dirty(c: &mut Client, ci: usize, dirty: &mut Vec<usize>) {
    if !c.dirty {
        c.dirty = true;
        dirty.push(ci);
    }
}

/// Take a connection out of service, recording why.
pub(crate) fn fail(conn: &mut Conn, ctx: &mut Ctx, why: String) {
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
    c.tls = None;
    c.ws = None;
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

pub(crate) fn become_ready(c: &mut Client, ctx: &mut Ctx, now: u64) {
    c.state = State::Ready;
    ctx.ready += 1;
    ctx.in_setup -= 1;
    ctx.last_ready_ns = ctx.last_ready_ns.max(now);
}

pub(crate) fn start_connect(conn: &mut Conn, ci: usize, ctx: &mut Ctx, now: u64) {
    let s = &ctx.settings;
    let src = if s.sources.is_empty() {
        None
    } else {
        Some(s.sources[conn.gidx % s.sources.len()])
    };
    let tls = match s.tls.as_ref().map(|t| t.connection()).transpose() {
        Ok(t) => t.map(Box::new),
        Err(e) => {
            conn.c.state = State::Failed;
            *ctx.errors.entry(error_key("tls", &e)).or_default() += 1;
            ctx.failed += 1;
            return;
        }
    };
    match net::start_connect(s.broker, src) {
        Ok(mut sock) => {
            if let Err(e) = ctx.registry.register(
                &mut sock,
                Token(ci),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                *ctx.errors.entry(error_key("register", &e)).or_default() += 1;
                conn.c.state = State::Failed;
                ctx.failed += 1;
                return;
            }
            let c = &mut conn.c;
            c.sock = Some(sock);
            c.tls = tls;
            c.ws =
                s.ws.as_ref()
                    .map(|w| Box::new(w.connection((conn.gidx as u64) << 32 ^ now)));
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
            let pkt = if s.persistent {
                client::persistent(pkt)
            } else {
                pkt
            };
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

pub(crate) fn send_subscribes(conn: &mut Conn, ci: usize, ctx: &mut Ctx, now: u64) {
    let si = match conn.c.role {
        Role::Sub(si) => si as usize,
        _ => return,
    };
    let spec = &ctx.plan.subscribers[si];
    let filters = &spec.filters;
    let opts = codec::SubOptions {
        qos: spec.qos.and_then(QoS::from_u8).unwrap_or(ctx.settings.qos),
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

pub(crate) fn pub_acked(conn: &mut Conn, ctx: &mut Ctx, pid: u16, reason: u8, now: u64) {
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
            let m = ps.pid_message(pid);
            ps.not_acked.push(m);
        } else {
            if now >= ctx.warm_end && now < ctx.window_end {
                ps.acked_in_window += 1;
            }
            if let Some(t) = ctx.timeline.as_mut() {
                t.acked(now, ps.group);
            }
        }
        ps.ack_wait_max_ns = ps.ack_wait_max_ns.max(now.saturating_sub(ps.progress_ns));
        ps.progress_ns = now;
    }
}

/// A PUBLISH reached a subscriber at `now`.
pub(crate) fn deliver(conn: &mut Conn, ci: usize, ctx: &mut Ctx, p: &codec::Publish, now: u64) {
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
                    let us = (now.saturating_sub(h.ts_ns) + 500) / 1000;
                    if h.ts_ns >= ctx.warm_end && h.ts_ns < ctx.window_end {
                        ctx.hist.saturating_record(us);
                    }
                    if let Some(t) = ctx.timeline.as_mut() {
                        let pi = (h.stream / ctx.plan.streams_per_pub.max(1)) as usize;
                        if let Some(spec) = ctx.plan.publishers.get(pi) {
                            t.delivered(now, spec.group, us);
                        }
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

pub(crate) fn handle(conn: &mut Conn, ci: usize, ctx: &mut Ctx, pkt: Packet, now: u64) {
    match pkt {
        Packet::Publish(p) => deliver(conn, ci, ctx, &p, now),
        Packet::PubAck(a) => pub_acked(conn, ctx, a.packet_id, a.reason, now),
        Packet::PubRec(a) => {
            if a.reason >= 0x80 {
                pub_acked(conn, ctx, a.packet_id, a.reason, now);
            } else {
                let c = &mut conn.c;
                c.queue(&Packet::PubRel(client::ack(a.packet_id)), ctx.protocol, now);
                mark_dirty(c, ci, &mut ctx.dirty);
            }
        }
        Packet::PubComp(a) => pub_acked(conn, ctx, a.packet_id, a.reason, now),
        Packet::PubRel(a) => {
            let c = &mut conn.c;
            c.queue(
                &Packet::PubComp(client::ack(a.packet_id)),
                ctx.protocol,
                now,
            );
            mark_dirty(c, ci, &mut ctx.dirty);
        }
        Packet::ConnAck(ca) => {
            if conn.c.state != State::Connecting {
                ctx.protocol_errors += 1;
                return;
            }
            if ca.code != 0 {
                fail(
                    conn,
                    ctx,
                    format!("CONNACK refused with code 0x{:02x}", ca.code),
                );
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
                stop_reading_if_stalled(conn, ctx);
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

/// A stalled subscriber, once subscribed, never reads again: its socket leaves epoll (so
/// arriving data wakes nobody) and what is already buffered stays unread.
fn stop_reading_if_stalled(conn: &mut Conn, ctx: &mut Ctx) {
    let Some(stall) = conn.subs.as_mut().and_then(|s| s.stall.as_mut()) else {
        return;
    };
    stall.stopped = true;
    if let Some(sock) = conn.c.sock.as_mut() {
        let _ = ctx.registry.deregister(sock);
    }
}
