//! A connection's output queue: the encoded packets its session wrote and the socket has not
//! taken yet. Mostly one growing buffer; a large PUBLISH payload is not copied into it but
//! queued as a reference to the shared message buffer, so N subscribers of a 16 KB message
//! send it from one copy (the socket gets the pieces in one vectored send).
//!
//! Owns: the bytes and their order. Never: reorders bytes, or keeps a large buffer once drained
//! (an idle connection holds no output buffer).

use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::IoSlice;

/// Above this capacity an empty buffer is released rather than kept for the next packet.
const IDLE_BUFFER_KEEP_BYTES: usize = 16 * 1024;

/// At most this many pieces go to one vectored send (the kernel's own limit is 1024): 256
/// messages of a large payload, as much as a socket buffer takes in one call.
pub const IOV_MAX: usize = 512;

#[derive(Debug, Default)]
pub struct OutQueue {
    /// Frozen pieces that go before `tail`, in order: a large payload and the bytes that were
    /// written before it. `None` until a connection first queues a shared payload, so the
    /// common connection pays one pointer for this.
    pieces: Option<Box<Pieces>>,
    /// Where packets are encoded.
    tail: BytesMut,
}

#[derive(Debug, Default)]
struct Pieces {
    queue: VecDeque<Bytes>,
    len: usize,
}

impl OutQueue {
    pub fn len(&self) -> usize {
        self.tail.len() + self.pieces.as_ref().map_or(0, |p| p.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer packets are encoded into (after everything queued).
    pub fn tail(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    /// Queue `shared` after everything written so far, without copying it.
    pub fn push_shared(&mut self, shared: Bytes) {
        if shared.is_empty() {
            return;
        }
        let p = self.pieces.get_or_insert_with(Box::default);
        if !self.tail.is_empty() {
            let head = self.tail.split().freeze();
            p.len += head.len();
            p.queue.push_back(head);
        }
        p.len += shared.len();
        p.queue.push_back(shared);
    }

    /// Fill `slices` with the bytes to send next, in order; how many were filled.
    pub fn slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        if let Some(p) = &self.pieces {
            for piece in &p.queue {
                if n == slices.len() {
                    return n;
                }
                slices[n] = IoSlice::new(piece);
                n += 1;
            }
        }
        if n < slices.len() && !self.tail.is_empty() {
            slices[n] = IoSlice::new(&self.tail);
            n += 1;
        }
        n
    }

    /// Whether everything queued is in `tail` (one contiguous slice). `pieces` is `Some` only
    /// while it holds a piece: `push_shared` skips empty ones and `advance` drops it emptied.
    pub fn is_contiguous(&self) -> bool {
        self.pieces.is_none()
    }

    /// The socket took `n` bytes from the front.
    pub fn advance(&mut self, mut n: usize) {
        if let Some(p) = &mut self.pieces {
            while n > 0 {
                let Some(front) = p.queue.front_mut() else {
                    break;
                };
                let take = n.min(front.len());
                front.advance(take);
                p.len -= take;
                n -= take;
                if front.is_empty() {
                    p.queue.pop_front();
                }
            }
            if p.queue.is_empty() {
                self.pieces = None;
            }
        }
        self.tail.advance(n);
    }

    /// Drop everything queued.
    pub fn clear(&mut self) {
        self.pieces = None;
        self.tail.clear();
    }

    /// Everything queued as one buffer (a copy only if pieces are queued), leaving this empty.
    pub fn take_all(&mut self) -> Bytes {
        let Some(p) = self.pieces.take() else {
            return self.tail.split().freeze();
        };
        let mut all = BytesMut::with_capacity(p.len + self.tail.len());
        for piece in &p.queue {
            all.extend_from_slice(piece);
        }
        all.extend_from_slice(&self.tail);
        self.tail.clear();
        all.freeze()
    }

    /// Drained: give back a large buffer, so an idle connection keeps none.
    pub fn shrink_if_drained(&mut self) {
        if self.tail.is_empty() && self.tail.capacity() > IDLE_BUFFER_KEEP_BYTES {
            self.tail = BytesMut::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut OutQueue, step: usize) -> Vec<u8> {
        let mut got = Vec::new();
        while !q.is_empty() {
            let mut s = [IoSlice::new(&[]); IOV_MAX];
            let n = q.slices(&mut s);
            let mut budget = step;
            let mut taken = 0;
            for slice in &s[..n] {
                let t = budget.min(slice.len());
                got.extend_from_slice(&slice[..t]);
                budget -= t;
                taken += t;
                if budget == 0 {
                    break;
                }
            }
            q.advance(taken);
        }
        got
    }

    #[test]
    fn pieces_leave_in_the_order_written() {
        let shared = Bytes::from(vec![b'p'; 5000]);
        for step in [1, 7, 100, 4999, 5000, 5003, 100_000] {
            let mut q = OutQueue::default();
            let mut want = Vec::new();
            for i in 0..3u8 {
                q.tail().extend_from_slice(&[i; 3]);
                want.extend_from_slice(&[i; 3]);
                q.push_shared(shared.clone());
                want.extend_from_slice(&shared);
            }
            q.tail().extend_from_slice(b"end");
            want.extend_from_slice(b"end");
            assert_eq!(q.len(), want.len());
            assert!(!q.is_contiguous());
            assert_eq!(drain(&mut q, step), want, "step {step}");
            assert!(q.is_contiguous() && q.is_empty());
        }
    }

    #[test]
    fn take_all_flattens_and_clear_empties() {
        let mut q = OutQueue::default();
        q.tail().extend_from_slice(b"ab");
        q.push_shared(Bytes::from_static(b"cd"));
        q.tail().extend_from_slice(b"ef");
        assert_eq!(&q.take_all()[..], b"abcdef");
        assert!(q.is_empty());
        q.push_shared(Bytes::from_static(b"x"));
        q.clear();
        assert!(q.is_empty() && q.is_contiguous());
    }

    #[test]
    fn more_pieces_than_one_send_takes() {
        let mut q = OutQueue::default();
        let mut want = Vec::new();
        for i in 0..200u8 {
            q.push_shared(Bytes::from(vec![i; 10]));
            want.extend_from_slice(&[i; 10]);
        }
        assert_eq!(drain(&mut q, usize::MAX), want);
    }
}
