//! The shard's read chunk: one buffer per shard thread that connections' sockets are read into,
//! and whose received bytes a connection then keeps *in place*, as a shared view, instead of
//! copying them into a buffer of its own (docs/ARCHITECTURE.md, "Reading: the shard's read
//! chunk, kept in place").
//!
//! Owns: the chunks, their renewal, and the rule for a connection's unfinished packet (the
//! leftover): it moves to the front of the next read, or to a small buffer of its own before
//! the connection waits ([`release`]), so that an idle connection never keeps a chunk alive.
//!
//! Never: hands out room that was not initialised, or reads more than [`READ_CHUNK_BYTES`] in
//! one call.

use crate::limits::READ_CHUNK_BYTES;
use crate::transport::Transport;
use bytes::BytesMut;
use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Twice a read: a read always has `READ_CHUNK_BYTES` of room plus room for a leftover.
const CHUNK_BYTES: usize = 2 * READ_CHUNK_BYTES;

/// A leftover at most this long goes in front of the next read; a longer one (the start of a
/// packet larger than a read) is appended to, as before.
const LEFTOVER_IN_CHUNK_MAX: usize = READ_CHUNK_BYTES / 2;

struct ReadChunk {
    /// The room not yet handed out: `len()` bytes, all initialised.
    buf: BytesMut,
    /// Where the allocation whose every byte was zeroed at creation starts.
    base: *const u8,
}

impl ReadChunk {
    fn new() -> ReadChunk {
        let buf = BytesMut::zeroed(CHUNK_BYTES);
        let base = buf.as_ptr();
        ReadChunk { buf, base }
    }

    /// The first `n` bytes of the room, as a buffer of their own that shares the chunk.
    fn take(&mut self, n: usize) -> BytesMut {
        self.buf.split_to(n)
    }

    /// Start over at the front of the allocation if no part of it is held any more. It is not
    /// zeroed again (that would cost what this module saves): its bytes are still initialised.
    fn reclaim(&mut self) -> bool {
        self.buf.clear();
        let reclaimed = self.buf.try_reclaim(CHUNK_BYTES)
            && std::ptr::eq(self.buf.as_ptr(), self.base)
            && self.buf.capacity() >= CHUNK_BYTES;
        if reclaimed {
            // SAFETY: the view starts at `base` again, in the allocation `new` made with
            // `BytesMut::zeroed(CHUNK_BYTES)`: all of its bytes were initialised then, and
            // neither reading into them nor `bytes`' views de-initialise memory; `try_reclaim`
            // guaranteed the capacity.
            unsafe { self.buf.set_len(CHUNK_BYTES) };
        }
        reclaimed
    }

    /// Whether `b` is a view into this chunk's allocation.
    #[cfg(test)]
    fn holds(&self, b: &BytesMut) -> bool {
        let start = self.base as usize;
        (start..start + CHUNK_BYTES).contains(&(b.as_ptr() as usize))
    }
}

/// The chunk being read into, and a few whose parts were still held when it ran low. A part
/// outlives a read only while its connection is in one of its yields (the fair turns after a
/// hold, the one that lets deliveries go first); such a chunk is usually free again by the next
/// renewal, and reusing it saves zeroing a new one.
struct ReadChunks {
    current: ReadChunk,
    spare: Vec<ReadChunk>,
}

/// Chunks kept aside at most; beyond this a held chunk is left to its holders.
const SPARE_CHUNKS_MAX: usize = 3;

impl ReadChunks {
    fn new() -> ReadChunks {
        ReadChunks {
            current: ReadChunk::new(),
            spare: Vec::new(),
        }
    }

    /// At least `READ_CHUNK_BYTES` of initialised room.
    fn room(&mut self) -> &mut [u8] {
        if self.current.buf.len() < READ_CHUNK_BYTES {
            self.renew();
        }
        &mut self.current.buf[..]
    }

    fn take(&mut self, n: usize) -> BytesMut {
        self.current.take(n)
    }

    fn renew(&mut self) {
        if self.current.reclaim() {
            return;
        }
        let next = match self.spare.iter_mut().position(|c| c.reclaim()) {
            Some(i) => self.spare.swap_remove(i),
            None => ReadChunk::new(),
        };
        let held = std::mem::replace(&mut self.current, next);
        if self.spare.len() < SPARE_CHUNKS_MAX {
            self.spare.push(held);
        }
    }
}

thread_local! {
    static CHUNK: RefCell<ReadChunks> = RefCell::new(ReadChunks::new());
}

/// Read what the socket has into the shard's chunk and leave it there: afterwards `rbuf` is
/// the leftover it held followed by what was read, as a view into the chunk (`*in_chunk` is
/// then true). The caller [`release`]s it before waiting. `Ok(0)` is the peer's end of stream.
pub(crate) fn poll_read_in_chunk<S: Transport>(
    cx: &mut Context<'_>,
    stream: &mut S,
    rbuf: &mut BytesMut,
    in_chunk: &mut bool,
) -> Poll<io::Result<usize>> {
    let kept = rbuf.len();
    if kept > LEFTOVER_IN_CHUNK_MAX {
        // The start of a packet larger than a read: append what is read (one copy of it)
        // rather than move the long leftover in front of every read.
        let r = poll_read_copied(cx, stream, rbuf);
        if let Poll::Ready(Ok(1..)) = r {
            *in_chunk = false;
        }
        return r;
    }
    CHUNK.with(|chunk| {
        let mut chunk = chunk.borrow_mut();
        let room = chunk.room();
        let want = READ_CHUNK_BYTES.min(room.len() - kept);
        let r = Pin::new(&mut *stream).poll_read(cx, &mut room[kept..kept + want]);
        if let Poll::Ready(Ok(n @ 1..)) = r {
            room[..kept].copy_from_slice(rbuf);
            *rbuf = chunk.take(kept + n);
            *in_chunk = true;
            crate::shard::tally::bytes_in(n);
        }
        r
    })
}

/// Before a connection waits: a partial packet it holds in the chunk moves to a buffer of its
/// own, so a connection that stays idle (or held) with it does not keep the chunk alive.
pub(crate) fn release(rbuf: &mut BytesMut, in_chunk: &mut bool) {
    if *in_chunk {
        if !rbuf.is_empty() {
            *rbuf = BytesMut::from(&rbuf[..]);
        }
        *in_chunk = false;
    }
}

/// Read into the chunk and append what was read to `rbuf`, a buffer of the connection's own:
/// for the CONNECT phase, whose packets may be kept by what they authenticate, and for a
/// leftover too long to move.
pub(crate) fn poll_read_copied<S: Transport>(
    cx: &mut Context<'_>,
    stream: &mut S,
    rbuf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    CHUNK.with(|chunk| {
        let mut chunk = chunk.borrow_mut();
        let room = &mut chunk.room()[..READ_CHUNK_BYTES];
        let r = Pin::new(&mut *stream).poll_read(cx, room);
        if let Poll::Ready(Ok(n)) = r {
            rbuf.extend_from_slice(&room[..n]);
            crate::shard::tally::bytes_in(n);
        }
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(c: &mut ReadChunks) -> Vec<BytesMut> {
        let mut parts = Vec::new();
        while c.current.buf.len() >= READ_CHUNK_BYTES {
            let n = c.room().len().min(10_000);
            parts.push(c.take(n));
        }
        parts
    }

    #[test]
    fn a_chunk_nobody_holds_is_reused_from_its_front() {
        let mut c = ReadChunks::new();
        let base = c.current.base;
        let parts = fill(&mut c);
        assert!(parts.iter().all(|p| c.current.holds(p)));
        drop(parts);
        assert!(c.room().len() >= READ_CHUNK_BYTES);
        assert!(
            std::ptr::eq(c.current.base, base),
            "reclaimed, not reallocated"
        );
        assert_eq!(c.current.buf.len(), CHUNK_BYTES);
        assert!(c.spare.is_empty());
    }

    #[test]
    fn a_chunk_still_held_is_set_aside_and_reused_once_free() {
        let mut c = ReadChunks::new();
        let first = c.current.base;
        c.room()[..5].copy_from_slice(b"hello");
        let held = c.take(5);
        drop(fill(&mut c));
        // Less than a read of room is left and a part is held: the next room is another
        // allocation, and the part keeps its bytes.
        assert!(c.room().len() >= READ_CHUNK_BYTES);
        assert!(!c.current.holds(&held));
        assert_eq!(&held[..], b"hello");
        assert_eq!(c.spare.len(), 1);
        // Once the part is gone, the chunk set aside is taken again instead of a new one.
        drop(held);
        drop(fill(&mut c));
        let _ = c.room();
        assert!(
            std::ptr::eq(c.current.base, first)
                || c.spare.iter().any(|s| std::ptr::eq(s.base, first))
        );
        assert!(c.spare.len() <= SPARE_CHUNKS_MAX);
        // Now the current chunk is the held one: the next room comes from the free chunk set
        // aside, not from a new allocation.
        let second = c.current.base;
        let held_again = c.take(1);
        drop(fill(&mut c));
        let _ = c.room();
        assert!(
            std::ptr::eq(c.current.base, first),
            "the chunk set aside is reused once free"
        );
        assert!(c.spare.iter().any(|s| std::ptr::eq(s.base, second)));
        drop(held_again);
    }

    #[test]
    fn held_chunks_set_aside_are_bounded() {
        let mut c = ReadChunks::new();
        let mut held = Vec::new();
        for _ in 0..10 {
            held.push(c.take(1));
            drop(fill(&mut c));
            assert!(c.room().len() >= READ_CHUNK_BYTES);
        }
        assert_eq!(c.spare.len(), SPARE_CHUNKS_MAX);
        assert!(held.iter().all(|h| h.len() == 1));
    }

    #[test]
    fn the_room_is_always_a_whole_read() {
        let mut c = ReadChunks::new();
        for step in [1, 700, READ_CHUNK_BYTES - 1, 64, READ_CHUNK_BYTES, 3] {
            assert!(c.room().len() >= READ_CHUNK_BYTES);
            let n = step.min(c.current.buf.len());
            drop(c.take(n));
        }
    }
}
