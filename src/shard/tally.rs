//! Connection-level counters of the shard thread: bytes and packets in and out, PUBLISHes by
//! QoS. They are counted where the bytes and packets are (the connection's read and write
//! polls, the link's encoder, the session's PUBLISH writer), which have no `Shard` at hand:
//! borrowing the shard's `RefCell` there would cost a borrow check per read and could collide
//! with a borrow already held by a caller.
//!
//! A thread-local with a `const` initialiser is one load and one store at a fixed offset from
//! the thread pointer: shard-local state like the `Shard` itself (one shard per thread), no
//! atomic, no lock, no lazy-init check. The shard's control task copies them into its
//! [`super::Stats`] snapshot.
//!
//! Never: read from another thread (each shard thread has its own set).

use std::cell::Cell;

/// Running totals since the thread started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    pub publish_in_qos: [u64; 3],
    pub publish_out_qos: [u64; 3],
}

struct Cells {
    bytes_in: Cell<u64>,
    bytes_out: Cell<u64>,
    packets_in: Cell<u64>,
    packets_out: Cell<u64>,
    publish_in_qos: [Cell<u64>; 3],
    publish_out_qos: [Cell<u64>; 3],
}

thread_local! {
    static T: Cells = const {
        Cells {
            bytes_in: Cell::new(0),
            bytes_out: Cell::new(0),
            packets_in: Cell::new(0),
            packets_out: Cell::new(0),
            publish_in_qos: [Cell::new(0), Cell::new(0), Cell::new(0)],
            publish_out_qos: [Cell::new(0), Cell::new(0), Cell::new(0)],
        }
    };
}

#[inline]
fn bump(c: &Cell<u64>, n: u64) {
    c.set(c.get().wrapping_add(n));
}

#[inline]
pub fn bytes_in(n: usize) {
    T.with(|t| bump(&t.bytes_in, n as u64));
}

#[inline]
pub fn bytes_out(n: usize) {
    T.with(|t| bump(&t.bytes_out, n as u64));
}

#[inline]
pub fn packet_in() {
    T.with(|t| bump(&t.packets_in, 1));
}

#[inline]
pub fn packet_out() {
    T.with(|t| bump(&t.packets_out, 1));
}

#[inline]
pub fn publish_in(qos: crate::codec::QoS) {
    T.with(|t| bump(&t.publish_in_qos[qos as usize], 1));
}

#[inline]
pub fn publish_out(qos: crate::codec::QoS) {
    T.with(|t| bump(&t.publish_out_qos[qos as usize], 1));
}

/// This thread's totals.
pub fn read() -> Tally {
    T.with(|t| Tally {
        bytes_in: t.bytes_in.get(),
        bytes_out: t.bytes_out.get(),
        packets_in: t.packets_in.get(),
        packets_out: t.packets_out.get(),
        publish_in_qos: [0, 1, 2].map(|q| t.publish_in_qos[q].get()),
        publish_out_qos: [0, 1, 2].map(|q| t.publish_out_qos[q].get()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::QoS;

    #[test]
    fn counts_stay_on_their_thread() {
        let before = read();
        bytes_in(10);
        publish_out(QoS::ExactlyOnce);
        let after = read();
        assert_eq!(after.bytes_in - before.bytes_in, 10);
        assert_eq!(after.publish_out_qos[2] - before.publish_out_qos[2], 1);
        let other = std::thread::spawn(read).join().expect("thread");
        assert_eq!(other, Tally::default());
    }
}
