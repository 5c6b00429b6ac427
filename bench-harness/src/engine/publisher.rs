//! Publishing: when a publisher may send (schedule, QoS window, end-to-end window) and how a
//! message is built (template PUBLISH, header stamped in place in the write buffer).

use super::session::{mark_dirty, Conn, Ctx, PubState};
use super::STALL_NS;
use crate::client::State;
use crate::payload::{self, Header, MISS_STREAM};
use ringmq_codec::Packet;
use std::sync::atomic::Ordering;

/// Stop encoding into a connection's buffer past this many unwritten bytes.
pub(crate) const WBUF_HIGH: usize = 256 * 1024;
/// Messages one publisher encodes per loop iteration before others get a turn.
const MAX_BATCH: u32 = 512;

/// What the publisher loop needs next.
pub(crate) enum Wake {
    Never,
    At(u64),
    Now,
    Window,
}

/// Stream offset recorded for a PUBLISH to a miss topic (no stream): beyond any real offset,
/// so the end-of-run accounting ignores it.
pub(crate) const MISS_OFFSET: u32 = 0xFF_FFFF;

/// Does this publisher keep an end-to-end window? Only in max-throughput mode (no schedule),
/// with `--e2e-window` on, and when some subscriber is expected to receive its messages.
pub(crate) fn uses_e2e_window(ps: &PubState, fanout: u64, ctx: &Ctx) -> bool {
    ps.interval_ns == 0.0 && fanout > 0 && ctx.settings.e2e_window
}

/// Is this max-throughput publisher's end-to-end window full? (Also handles stall resets.)
pub(crate) fn window_full(ps: &mut PubState, fanout: u64, ctx: &Ctx, now: u64) -> bool {
    let delivered = ctx.shared.pub_delivered[ps.idx as usize]
        .0
        .load(Ordering::SeqCst);
    if delivered != ps.last_delivered {
        ps.last_delivered = delivered;
        ps.last_progress_ns = now;
    }
    let outstanding = (ps.sent_hits * fanout).saturating_sub(delivered + ps.credit);
    let limit = u64::from(ctx.settings.inflight) * fanout;
    // Hysteresis: once full, resume only when a quarter of the window is free, so refills
    // leave in batches (fewer, larger writes for the broker too) rather than one by one.
    let full = if ps.window_closed {
        outstanding + (u64::from(ctx.settings.inflight) / 4).max(1) * fanout > limit
    } else {
        outstanding >= limit
    };
    ps.window_closed = full;
    if full && now.saturating_sub(ps.last_progress_ns) > STALL_NS {
        ps.credit += outstanding;
        ps.stall_resets += 1;
        ps.last_progress_ns = now;
        ps.window_closed = false;
        return false;
    }
    full
}

pub(crate) fn finish_publisher(ps: &mut PubState, ctx: &mut Ctx) {
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

pub(crate) fn produce(conn: &mut Conn, ci: usize, ctx: &mut Ctx, now: u64) -> Wake {
    let Some(ps) = conn.pubs.as_mut() else {
        return Wake::Never;
    };
    let c = &mut conn.c;
    if ps.done || c.state != State::Ready || c.write_blocked {
        return Wake::Never;
    }
    let spec = &ctx.plan.publishers[ps.idx as usize];
    let fanout = u64::from(spec.fanout);
    let windowed = uses_e2e_window(ps, fanout, ctx);
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
        if windowed && window_full(ps, fanout, ctx, now) {
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
        let (topic, stream, seq, offset) = if miss {
            ps.miss_acc -= 1.0;
            let t = spec.miss_topics[ps.miss_cursor % spec.miss_topics.len()].clone();
            ps.miss_cursor += 1;
            (t, MISS_STREAM, 0, MISS_OFFSET)
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
                t.stream_offset,
            )
        };
        let pid = if ctx.qos > 0 {
            let pid = c.alloc_pid();
            c.outstanding.insert(pid);
            ps.bind_pid(pid, offset, seq, now);
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
        if let Some(t) = ctx.timeline.as_mut() {
            t.sent(now, ps.group);
        }
        if ts >= ctx.warm_end {
            ps.sent_in_window += 1;
            if ps.interval_ns > 0.0 {
                ctx.lag_hist
                    .saturating_record((now.saturating_sub(ts) + 500) / 1000);
            }
        }
        if !miss {
            ps.sent_hits += 1;
            ctx.expected += fanout;
        }
        ps.max_lag_ns = ps.max_lag_ns.max(now.saturating_sub(ts));
        mark_dirty(c, ci, &mut ctx.dirty);
    }
}
