//! State shared between the main thread and the I/O workers: start/end instants, per-thread
//! counters for progress and the drain decision, per-publisher delivery counters for the
//! max-throughput window, and the wakers that interrupt a worker's epoll.

use mio::Waker;
use std::sync::atomic::{AtomicBool, AtomicU64};

#[repr(align(64))]
#[derive(Default)]
pub(crate) struct Padded<T>(pub(crate) T);

/// Per-thread counters the main thread reads for progress and the drain decision. Written by
/// the owning worker once per loop iteration (release), read with acquire.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    /// Deliveries expected so far: Σ over sent messages of their fan-out.
    pub(crate) expected: AtomicU64,
    /// Unique deliveries received.
    pub(crate) delivered: AtomicU64,
    /// QoS 1/2 publishes awaiting acknowledgement.
    pub(crate) inflight: AtomicU64,
    pub(crate) ready: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) pubs_done: AtomicU64,
    pub(crate) setup_done: AtomicBool,
}

pub(crate) struct ThreadShared {
    pub(crate) waker: Waker,
    /// The worker is about to block with publishers waiting on the end-to-end window; whoever
    /// advances a delivery counter of one of its publishers must wake it.
    pub(crate) parked: AtomicBool,
    pub(crate) counters: Padded<Counters>,
}

pub(crate) struct Shared {
    /// 0 until the main thread starts traffic.
    pub(crate) start_ns: AtomicU64,
    pub(crate) warmup_ns: u64,
    /// End of the measured window; lowered by the main thread when `--count` finishes early.
    pub(crate) window_end_ns: AtomicU64,
    pub(crate) stop: AtomicBool,
    /// Unique deliveries per publisher (max-throughput window).
    pub(crate) pub_delivered: Vec<Padded<AtomicU64>>,
    pub(crate) pub_owner: Vec<u32>,
    pub(crate) threads: Vec<ThreadShared>,
}
