//! The shard-local link from a session to its live connection: an output buffer that any task
//! on the shard may append encoded packets to, and the waker of the connection task that
//! drains it into the socket. Many deliveries between two wake-ups become one write.
//!
//! Never shared across threads (`Rc`, `Cell`, `RefCell`): only the home shard touches it.

use super::out::OutQueue;
use crate::codec::{encode, encode_publish_head, Packet, Protocol};
use std::cell::{Cell, RefCell};
use std::task::Waker;

/// From this size on a PUBLISH payload is sent from the shared message buffer (a vectored
/// send) rather than copied behind its header: below it the copy is cheaper than a piece.
pub const SHARED_PAYLOAD_MIN_BYTES: usize = 2048;

#[derive(Debug, Default)]
pub struct ConnLink {
    out: RefCell<OutQueue>,
    waker: WakerSlot,
    /// The stream sends several buffers in one call (plain TCP): large payloads are queued by
    /// reference ([`SHARED_PAYLOAD_MIN_BYTES`]). TLS and WebSocket frame what they are given
    /// per call, so for them one contiguous buffer is cheaper.
    shared_payloads: Cell<bool>,
    /// A request from elsewhere on the shard to close this connection: the v5 reason code to
    /// send in DISCONNECT (e.g. 0x8E on session takeover).
    close_request: Cell<Option<u8>>,
    /// The session has messages queued behind this buffer: once the socket has taken enough of
    /// it, the connection task must refill it ([`crate::session::Session::pump`]) even if the
    /// client sends nothing (a QoS 0 subscriber never does).
    backlog: Cell<bool>,
    /// Keep alive: 1.5 × the negotiated interval in ms (0 = off), and when bytes last arrived
    /// ([`crate::clock`]). The shard's timers compare them; a read only stores the time.
    keep_alive_ms: Cell<u32>,
    last_rx_ms: Cell<u32>,
    /// The output holds an acknowledgement whose promise is not committed yet: nothing in the
    /// buffer leaves until the store's progress covers this (FIFO: later bytes wait too).
    /// `Need::default()` (which any progress covers) is no gate; not an `Option`, which would
    /// take this struct past mimalloc's 128-byte bin.
    gate: Cell<crate::shard::journal::Need>,
    /// What the admin API shows of this connection; set when it is served (and when it
    /// sleeps, `net::dormant`, whose socket is a duplicate).
    info: Cell<ConnInfo>,
    /// Hibernation (`net::dormant`): [`DOZE_CAN`], [`DOZE_ACTIVE`], [`DOZE_ASKED`],
    /// [`DOZE_ASLEEP`].
    doze: Cell<u8>,
}

/// The connection's stream can sleep without its task (plain TCP, hibernation on).
const DOZE_CAN: u8 = 1;
/// Bytes went either way since the last idle sweep.
const DOZE_ACTIVE: u8 = 2;
/// The sweep found it idle and asked its task to sleep.
const DOZE_ASKED: u8 = 4;
/// It sleeps: its waker is a `net::dormant` slot.
const DOZE_ASLEEP: u8 = 8;

/// The connection task's waker: a `Cell` (taken and put back), 8 bytes smaller than a
/// `RefCell`, which keeps [`ConnLink`] in mimalloc's 128-byte bin beside the output queue.
#[derive(Default)]
struct WakerSlot(Cell<Option<Waker>>);

impl std::fmt::Debug for WakerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WakerSlot")
    }
}

/// A connection's facts for the admin API (`GET /api/v1/clients`), 16 bytes per connection:
/// the addresses are not stored but asked of the socket (`getpeername`) when listed.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The socket, while the connection task owns it (-1: none, e.g. in unit tests). Only
    /// read by the shard's own control task, which runs while the connection is attached (the
    /// session drops its link before the task closes the socket).
    pub fd: i32,
    /// The CONNECT's keep alive and clean start flag.
    pub keep_alive_s: u16,
    pub clean_start: bool,
    /// Unix ms.
    pub connected_at_ms: u64,
}

impl Default for ConnInfo {
    fn default() -> Self {
        ConnInfo {
            fd: -1,
            keep_alive_s: 0,
            clean_start: false,
            connected_at_ms: 0,
        }
    }
}

/// What the keep-alive check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// Nothing to watch (keep alive 0).
    Off,
    /// The client is alive: check again at this clock reading.
    Until(u32),
    /// Nothing arrived for 1.5 × keep alive [MQTT-3.1.2-24].
    Expired,
}

impl ConnLink {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append an encoded packet and wake the connection. False if it could not be encoded.
    pub fn write_packet(&self, packet: &Packet, protocol: Protocol) -> bool {
        let ok = encode(packet, protocol, self.out.borrow_mut().tail()).is_ok();
        if ok {
            crate::shard::tally::packet_out();
        }
        self.wake();
        ok
    }

    /// As [`Self::write_packet`], with a PUBLISH's large payload queued by reference. The
    /// packet is passed by reference: a `Publish` by value is a ~500-byte copy per message.
    #[inline]
    pub fn write_publish(&self, packet: &Packet, protocol: Protocol) -> bool {
        let publish = match packet {
            Packet::Publish(p)
                if self.shared_payloads.get() && p.payload.len() >= SHARED_PAYLOAD_MIN_BYTES =>
            {
                p
            }
            _ => return self.write_packet(packet, protocol),
        };
        let mut out = self.out.borrow_mut();
        let ok = encode_publish_head(publish, protocol, out.tail()).is_ok();
        if ok {
            out.push_shared(publish.payload.clone());
            crate::shard::tally::packet_out();
        }
        drop(out);
        self.wake();
        ok
    }

    /// Whether large payloads may be queued by reference (the stream sends vectors).
    pub fn set_shared_payloads(&self, on: bool) {
        self.shared_payloads.set(on);
    }

    pub fn out_len(&self) -> usize {
        self.out.borrow().len()
    }

    /// Run `f` on the output queue (the connection task writes from it).
    pub fn with_out<R>(&self, f: impl FnOnce(&mut OutQueue) -> R) -> R {
        f(&mut self.out.borrow_mut())
    }

    pub fn register(&self, waker: &Waker) {
        let w = match self.waker.0.take() {
            Some(old) if old.will_wake(waker) => old,
            _ => waker.clone(),
        };
        self.waker.0.set(Some(w));
    }

    pub fn wake(&self) {
        if let Some(w) = self.waker.0.take() {
            w.wake_by_ref();
            self.waker.0.set(Some(w));
        }
    }

    /// Hold the output until the store covers `need` (merged with a gate already set).
    pub fn set_gate(&self, need: crate::shard::journal::Need) {
        self.gate.set(self.gate.get().max(need));
    }

    /// Whether the output may leave now; clears a gate `progress` covers, parks `cx` on it
    /// otherwise.
    pub fn gate_open(
        &self,
        progress: Option<&crate::shard::journal::Progress>,
        waker: &Waker,
    ) -> bool {
        let g = self.gate.get();
        if g == crate::shard::journal::Need::default() {
            return true;
        }
        match progress {
            Some(p) if !p.covers(g) => {
                p.park(waker);
                false
            }
            _ => {
                self.gate.set(crate::shard::journal::Need::default());
                true
            }
        }
    }

    pub fn set_info(&self, info: ConnInfo) {
        self.info.set(info);
    }

    pub fn info(&self) -> ConnInfo {
        self.info.get()
    }

    pub fn request_close(&self, reason: u8) {
        if self.close_request.get().is_none() {
            self.close_request.set(Some(reason));
        }
        self.wake();
    }

    pub fn set_backlog(&self, queued: bool) {
        self.backlog.set(queued);
    }

    pub fn has_backlog(&self) -> bool {
        self.backlog.get()
    }

    pub fn close_requested(&self) -> Option<u8> {
        self.close_request.get()
    }

    /// Start watching the keep alive: `timeout` from `now_ms` on.
    pub fn watch_keep_alive(&self, timeout: std::time::Duration, now_ms: u32) {
        self.keep_alive_ms
            .set(timeout.as_millis().clamp(1, u128::from(u32::MAX / 2)) as u32);
        self.last_rx_ms.set(now_ms);
    }

    /// Bytes arrived from the client.
    pub fn touch(&self, now_ms: u32) {
        self.last_rx_ms.set(now_ms);
        self.mark_active();
    }

    /// Bytes went either way (the connection task, per read and per flush that wrote, not per
    /// packet: one store per batch).
    pub fn mark_active(&self) {
        self.doze.set(self.doze.get() | DOZE_ACTIVE);
    }

    /// Whether this connection may sleep when idle (`net::dormant`).
    pub fn set_can_doze(&self, on: bool) {
        let d = self.doze.get() & !DOZE_CAN;
        self.doze.set(if on { d | DOZE_CAN } else { d });
    }

    /// The idle sweep: true if nothing moved since the last sweep and the connection can
    /// sleep, which asks its task to (the caller wakes it). Traffic since then only clears
    /// the mark, so a connection sleeps after one to two sweep periods without traffic.
    pub fn sweep_idle(&self) -> bool {
        let d = self.doze.get();
        if d & DOZE_ACTIVE != 0 {
            self.doze.set(d & !DOZE_ACTIVE);
            return false;
        }
        if d & (DOZE_CAN | DOZE_ASKED | DOZE_ASLEEP) != DOZE_CAN {
            return false;
        }
        self.doze.set(d | DOZE_ASKED);
        true
    }

    /// The connection fell asleep (true) or woke (false). Waking counts as traffic: the next
    /// sweep does not ask it to sleep again at once.
    pub fn set_asleep(&self, asleep: bool) {
        let d = self.doze.get();
        self.doze.set(if asleep {
            (d | DOZE_ASLEEP) & !DOZE_ASKED
        } else {
            (d & !DOZE_ASLEEP) | DOZE_ACTIVE
        });
    }

    pub fn is_asleep(&self) -> bool {
        self.doze.get() & DOZE_ASLEEP != 0
    }

    /// Whether the sweep asked this connection to sleep (and clear the request).
    pub fn take_doze_ask(&self) -> bool {
        let d = self.doze.get();
        if d & DOZE_ASKED == 0 {
            return false; // every wait asks: no store unless there is a request
        }
        self.doze.set(d & !DOZE_ASKED);
        true
    }

    /// No acknowledgement in the output waits for a commit.
    pub fn gate_clear(&self) -> bool {
        self.gate.get() == crate::shard::journal::Need::default()
    }

    pub fn keep_alive(&self, now_ms: u32) -> KeepAlive {
        let timeout = self.keep_alive_ms.get();
        if timeout == 0 {
            return KeepAlive::Off;
        }
        let deadline = self.last_rx_ms.get().wrapping_add(timeout);
        // Wrapping: the deadline has passed when it lies in the half of the clock behind now.
        if now_ms.wrapping_sub(deadline) < u32::MAX / 2 {
            KeepAlive::Expired
        } else {
            KeepAlive::Until(deadline)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection keeps one `Rc<ConnLink>`: with the `Rc`'s two counts it stays in
    /// mimalloc's 128-byte bin (docs/PERFORMANCE.md, memory per idle connection).
    #[test]
    fn a_link_fits_the_128_byte_bin() {
        let rc_counts = 2 * std::mem::size_of::<usize>();
        let size = std::mem::size_of::<ConnLink>() + rc_counts;
        assert!(size <= 128, "Rc<ConnLink> is {size} bytes");
    }

    /// The idle sweep asks a link to sleep only after a whole sweep period without traffic,
    /// once, never a link that cannot sleep or sleeps already, and not right after it woke.
    #[test]
    fn the_sweep_asks_only_links_quiet_for_a_whole_period() {
        let l = ConnLink::new();
        assert!(!l.sweep_idle(), "cannot sleep: never asked");
        l.set_can_doze(true);
        l.touch(1);
        assert!(!l.sweep_idle(), "traffic since the last sweep");
        assert!(l.sweep_idle(), "a whole period quiet");
        assert!(!l.sweep_idle(), "asked once");
        assert!(l.take_doze_ask());
        assert!(!l.take_doze_ask(), "the ask is taken once");
        l.set_asleep(true);
        assert!(l.is_asleep());
        assert!(
            !l.sweep_idle() && !l.sweep_idle(),
            "asleep: not asked again"
        );
        l.set_asleep(false);
        assert!(!l.sweep_idle(), "waking counts as traffic");
        l.mark_active();
        assert!(!l.sweep_idle(), "bytes written count as traffic");
        assert!(l.sweep_idle());
        assert!(l.take_doze_ask());
        l.set_can_doze(false);
        assert!(!l.sweep_idle() && !l.sweep_idle(), "switched off");
    }
}
