//! The writer of one shard's log: `append` encodes into memory, `commit` writes everything
//! appended since the last commit in one write (group commit), and waiters learn when their
//! LSN is committed.
//!
//! ```text
//!  append ──► pending chunks (one per segment touched) ──commit──► DmaFile::write_at ──► committed
//!                 │ carries the partial last block, rewritten                 (+ fdatasync: power)
//!                 │ with the new bytes (O_DIRECT writes whole blocks)
//!  wait_committed(lsn) ◄── woken by the commit that covers lsn (BTreeMap by LSN, no scan)
//! ```
//!
//! Owns: the pending bytes, the open segment, the segment list, the committed LSN.
//! Never: does I/O in `append` (so the message loop never waits on the disk), reports an LSN
//! committed before its write (and sync) completed, or writes a later segment before an
//! earlier one is complete, so a crash leaves a prefix of the log, never a hole.

use super::record::{self, Kind, Lsn, PAYLOAD_BYTES_MAX};
use super::recover::Recovered;
use super::segment::{self, SegFile, SEGMENT_HEADER_BYTES};
use super::waiters::{AppendedOrClosed, WaitCommitted, Waiters};
use super::{shard_dir, Durability, StoreError};
use std::cell::{RefCell, RefMut};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

/// `process` mode: a commit that carried at least this many records was a full batch (the
/// shard is busy), and the next commit starts [`BUSY_COMMIT_GAP`] after it at the earliest.
/// At 30k msg/s a commit carries about 5 records; at saturation, hundreds.
const BUSY_COMMIT_RECORDS: u64 = 64;
const BUSY_COMMIT_GAP: Duration = Duration::from_micros(250);

/// How a shard's log is set up; `from_config` maps the broker's keys.
#[derive(Debug, Clone)]
pub struct LogOptions {
    pub data_dir: PathBuf,
    pub shard: usize,
    pub durability: Durability,
    /// Rotate to a new segment past this many bytes (each segment is pre-allocated to it).
    pub segment_bytes: u64,
    /// Refuse a new segment that would take the shard's segments past this; 0 = no cap.
    pub max_bytes: u64,
    /// Try O_DIRECT (false: buffered files, what `process` durability uses; tests also use it
    /// to cover the fallback).
    pub direct_io: bool,
}

impl LogOptions {
    pub fn from_config(cfg: &crate::config::Config, shard: usize) -> Self {
        LogOptions {
            data_dir: cfg.data_dir.clone(),
            shard,
            durability: cfg.durability,
            segment_bytes: cfg.store_segment_bytes,
            // The cap is for the whole store; each shard gets an equal share.
            max_bytes: cfg.store_max_bytes / cfg.shard_count().max(1) as u64,
            // `process` needs the bytes in the kernel, not on the device: a buffered write
            // completes in microseconds where an O_DIRECT one waits for the disk (measured
            // ×4 the durable throughput, docs/ARCHITECTURE.md). `power` syncs anyway, and
            // O_DIRECT spares the page cache a second copy of the log.
            direct_io: cfg.durability == Durability::Power,
        }
    }
}

/// A segment file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// LSN of its first record (also its name).
    pub first_lsn: Lsn,
    pub path: PathBuf,
    /// Bytes it occupies (its pre-allocated size).
    pub bytes: u64,
    pub created: SystemTime,
}

/// Appended bytes for one segment not yet (all) on disk. `buf[0]` belongs at `file_off`
/// (block-aligned); its first `on_disk` bytes are already written (the partial block a
/// previous commit left), so O_DIRECT can rewrite that block whole.
struct Chunk {
    seg_first: Lsn,
    /// `None` until a commit creates the segment file.
    file: Option<Rc<SegFile>>,
    file_off: u64,
    buf: Vec<u8>,
    on_disk: usize,
    last_lsn: Lsn,
}

/// One chunk's write in a commit, snapshotted so appends can go on during the write.
struct Planned {
    file: Rc<SegFile>,
    bytes: Vec<u8>,
    file_off: u64,
    on_disk: usize,
    last_lsn: Lsn,
}

struct State {
    next_lsn: Lsn,
    committed: Lsn,
    /// Failed commits so far: a waiter that sees it change learns its commit failed.
    failures: u64,
    committing: bool,
    closed: bool,
    pending: VecDeque<Chunk>,
    segments: VecDeque<SegmentInfo>,
    /// The last segment's file, once it exists.
    current: Option<Rc<SegFile>>,
    /// The segment appends go to (`None`: none yet, the next append starts one).
    seg_first: Option<Lsn>,
    /// End of that segment's data, pending bytes included.
    seg_end: u64,
    /// Committed bytes of its last partial block, for the next chunk to start with.
    tail_block: Vec<u8>,
    /// A segment made ready ahead of rotation (pre-allocated and zero-filled), and whether
    /// one is being made.
    spare: Option<SegFile>,
    preparing: bool,
    /// A segment was created (power mode) and the directory not synced since.
    dir_unsynced: bool,
    /// The segment appends go to was created without a spare (unwritten extents, slow to
    /// write into): the first append after a spare is ready moves to it.
    seg_slow: bool,
    /// The commit loop, parked until something is appended.
    appended: Option<Waker>,
    stats: LogStats,
}

/// Counters of what the log did, for statistics and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LogStats {
    /// Group commits that wrote something.
    pub commits: u64,
    /// Bytes handed to the disk (whole rewritten blocks included).
    pub bytes_written: u64,
    pub syncs: u64,
    pub segments_created: u64,
    pub segments_released: u64,
}

pub struct Log {
    opts: LogOptions,
    dir: PathBuf,
    st: RefCell<State>,
    waiters: RefCell<Waiters>,
}

impl Log {
    /// Open shard `opts.shard`'s log where `recovered` left it (`Recovered::default()` with
    /// `next_lsn: 1` for a new one; with [`Durability::None`] nothing is opened or written).
    pub async fn open(opts: LogOptions, recovered: &Recovered) -> Result<Log, StoreError> {
        let dir = shard_dir(&opts.data_dir, opts.shard);
        let next_lsn = recovered.next_lsn.max(1);
        let mut st = State {
            next_lsn,
            committed: next_lsn - 1,
            failures: 0,
            committing: false,
            closed: false,
            pending: VecDeque::new(),
            segments: recovered.segments.iter().cloned().collect(),
            current: None,
            seg_first: None,
            seg_end: 0,
            tail_block: Vec::new(),
            spare: None,
            preparing: false,
            dir_unsynced: false,
            seg_slow: false,
            appended: None,
            stats: LogStats::default(),
        };
        if opts.durability != Durability::None {
            std::fs::create_dir_all(&dir).map_err(|e| StoreError::io("creating", &dir, e))?;
            if let Some(t) = &recovered.tail {
                let f = SegFile::open(&t.path, false, opts.direct_io).await?;
                st.current = Some(Rc::new(f));
                st.seg_first = Some(t.first_lsn);
                st.seg_end = t.end;
                st.tail_block = t.last_block.clone();
            }
        }
        // No spare is made here: writing a segment of zeros would delay start-up. The commit
        // task prepares one in the background; a segment needed before it is ready is created
        // with fallocate only (correct, slower to write into: see `SegFile::zero_fill`).
        Ok(Log {
            opts,
            dir,
            st: RefCell::new(st),
            waiters: RefCell::new(Waiters::default()),
        })
    }

    /// Buffer one record in memory and return its LSN. No I/O: it is durable once a commit
    /// covering it completes ([`Log::wait_committed`]).
    pub fn append(&self, kind: Kind, payload: &[u8]) -> Result<Lsn, StoreError> {
        if payload.len() > PAYLOAD_BYTES_MAX {
            return Err(StoreError::TooLarge(payload.len()));
        }
        assert!(
            kind != Kind::SEGMENT_HEADER && kind.0 != 0,
            "kind {kind:?} is the log's own"
        );
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let lsn = st.next_lsn;
        st.next_lsn += 1;
        if self.opts.durability == Durability::None {
            st.committed = lsn;
            return Ok(lsn);
        }
        let len = (record::HEADER_BYTES + payload.len()) as u64;
        let rotate = match st.seg_first {
            None => true,
            // A record bigger than a segment gets a segment of its own rather than an error.
            Some(_) => {
                st.seg_end > SEGMENT_HEADER_BYTES as u64
                    && (st.seg_end + len > self.opts.segment_bytes
                        || (st.seg_slow && st.spare.is_some()))
            }
        };
        if rotate {
            let mut buf = Vec::with_capacity(SEGMENT_HEADER_BYTES + payload.len() + 17);
            segment::header(self.opts.shard, lsn, &mut buf);
            st.pending.push_back(Chunk {
                seg_first: lsn,
                file: None,
                file_off: 0,
                buf,
                on_disk: 0,
                last_lsn: lsn - 1,
            });
            st.seg_first = Some(lsn);
            st.seg_end = SEGMENT_HEADER_BYTES as u64;
            st.seg_slow = false;
            st.tail_block.clear();
        } else if st.pending.is_empty() {
            st.pending.push_back(Chunk {
                seg_first: st.seg_first.unwrap_or(lsn),
                file: st.current.clone(),
                file_off: segment::align_down(st.seg_end),
                buf: st.tail_block.clone(),
                on_disk: st.tail_block.len(),
                last_lsn: lsn - 1,
            });
        }
        if let Some(c) = st.pending.back_mut() {
            record::encode(kind, lsn, payload, &mut c.buf);
            c.last_lsn = lsn;
        }
        st.seg_end += len;
        if let Some(w) = st.appended.take() {
            w.wake();
        }
        Ok(lsn)
    }

    /// Highest LSN whose record is durable (as [`Durability`] defines it).
    pub fn committed(&self) -> Lsn {
        self.st.borrow().committed
    }

    /// LSN the next append gets.
    pub fn next_lsn(&self) -> Lsn {
        self.st.borrow().next_lsn
    }

    /// Bytes appended and not yet committed (what the next commit writes, give or take the
    /// partial block it rewrites).
    pub fn pending_bytes(&self) -> usize {
        let st = self.st.borrow();
        st.pending.iter().map(|c| c.buf.len() - c.on_disk).sum()
    }

    pub fn stats(&self) -> LogStats {
        self.st.borrow().stats
    }

    /// Tasks currently parked in [`Log::wait_committed`].
    pub fn waiting(&self) -> usize {
        self.waiters.borrow().len()
    }

    /// Segment files on disk, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.st.borrow().segments.iter().cloned().collect()
    }

    /// Bytes the shard's segments (and a ready spare) occupy on disk.
    pub fn disk_bytes(&self) -> u64 {
        let st = self.st.borrow();
        let spare = if st.spare.is_some() {
            self.opts.segment_bytes
        } else {
            0
        };
        self.segment_bytes_used() + spare
    }

    /// Age of the oldest segment: past `store_max_age_s` the layer above compacts (writes a
    /// snapshot and releases what it no longer needs). The log never drops live data itself.
    pub fn oldest_segment_age(&self) -> Option<Duration> {
        let st = self.st.borrow();
        let s = st.segments.front()?;
        Some(
            SystemTime::now()
                .duration_since(s.created)
                .unwrap_or_default(),
        )
    }

    /// Whether a spare segment is ready for the next rotation.
    pub fn spare_ready(&self) -> bool {
        self.st.borrow().spare.is_some()
    }

    /// Whether the open segment writes with O_DIRECT (false: buffered fallback, or none yet).
    pub fn is_direct(&self) -> bool {
        self.st
            .borrow()
            .current
            .as_ref()
            .is_some_and(|f| f.is_direct())
    }

    /// Completes once `lsn` is committed (at once if it already is), or with
    /// [`StoreError::CommitFailed`] if a commit fails first. Many waiters cost one map entry
    /// each; a commit wakes only those it satisfied.
    pub fn wait_committed(&self, lsn: Lsn) -> WaitCommitted<'_> {
        WaitCommitted {
            log: self,
            lsn,
            key: None,
            failures: self.st.borrow().failures,
        }
    }

    /// Commit everything appended so far; returns the committed LSN. If a commit is already
    /// running, waits for it and then commits whatever it did not cover, so concurrent callers
    /// share writes instead of queueing one each.
    pub async fn commit(&self) -> Result<Lsn, StoreError> {
        let target = self.next_lsn() - 1;
        loop {
            let (committed, busy) = {
                let st = self.st.borrow();
                (st.committed, st.committing)
            };
            if committed >= target {
                return Ok(committed);
            }
            if busy {
                // Our records may be past what the running commit covers: loop and check.
                let _ = self.wait_committed(committed + 1).await;
                continue;
            }
            self.st.borrow_mut().committing = true;
            let r = self.commit_once().await;
            let mut st = self.st.borrow_mut();
            st.committing = false;
            match r {
                Ok(lsn) => {
                    st.committed = lsn;
                    drop(st);
                    self.waiters.borrow_mut().wake_through(lsn);
                }
                Err(e) => {
                    st.failures += 1;
                    drop(st);
                    self.waiters.borrow_mut().wake_all();
                    return Err(e);
                }
            }
        }
    }

    /// One group commit: create any new segment, write each pending chunk in order (syncing
    /// each in `power` mode before the next segment gets a byte), then trim what is on disk.
    async fn commit_once(&self) -> Result<Lsn, StoreError> {
        self.create_segments().await?;
        self.sync_dir_if_needed().await?;
        // Snapshot what to write; appends may continue while the writes are in flight.
        let plan: Vec<Planned> = {
            let st = self.st.borrow();
            st.pending
                .iter()
                .map_while(|c| {
                    Some(Planned {
                        file: c.file.clone()?,
                        bytes: c.buf.clone(),
                        file_off: c.file_off,
                        on_disk: c.on_disk,
                        last_lsn: c.last_lsn,
                    })
                })
                .collect()
        };
        let Some(target) = plan.last().map(|p| p.last_lsn) else {
            return Ok(self.committed());
        };
        let mut written = 0u64;
        for p in &plan {
            written += p.file.write(&p.bytes, p.file_off, p.on_disk).await?;
            if self.opts.durability == Durability::Power {
                p.file.sync().await?;
            }
        }
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        st.stats.commits += 1;
        st.stats.bytes_written += written;
        if self.opts.durability == Durability::Power {
            st.stats.syncs += plan.len() as u64;
        }
        for (c, p) in st.pending.iter_mut().zip(&plan) {
            let written = p.bytes.len();
            // Keep the partial block the next commit must rewrite; drop whole blocks.
            let cut = written / segment::BLOCK * segment::BLOCK;
            c.buf.drain(..cut);
            c.file_off += cut as u64;
            c.on_disk = written - cut;
        }
        // Chunks fully on disk leave; the last segment's remainder becomes the tail block.
        while let Some(c) = st.pending.front() {
            if c.buf.len() > c.on_disk || c.file.is_none() {
                break;
            }
            if st.pending.len() == 1 {
                st.tail_block = c.buf.clone();
            }
            st.pending.pop_front();
        }
        Ok(target)
    }

    /// The shard's commit task: whenever something was appended, yield once (so every task
    /// already runnable adds to the batch), then commit it all in one write. With
    /// [`Durability::Power`] commits are at least `interval` apart (each pays an fdatasync).
    /// Returns after [`Log::close`] once everything appended is committed.
    pub async fn run_committer(self: Rc<Self>, interval: Duration) {
        let mut failed: u64 = 0;
        loop {
            self.spawn_prepare();
            AppendedOrClosed { log: &self }.await;
            let closed = self.st.borrow().closed;
            if closed && self.committed() + 1 >= self.next_lsn() {
                return;
            }
            futures_lite::future::yield_now().await;
            let started = Instant::now();
            let before = self.committed();
            let done = self.commit().await;
            if let Ok(lsn) = done {
                // `process` under load: after a commit that carried a full batch, the next one
                // starts at least BUSY_COMMIT_GAP after this one did. Every commit is a buffered
                // write handed to an io-wq worker (ext4 has no non-blocking buffered write), and
                // the hand-off and its wake-ups cost the shard's core more than the batch's
                // bytes; fewer, larger commits at saturation gave 15% more throughput. Small
                // commits (everyday load) wait for nothing, so their latency is unchanged.
                let carried = lsn.saturating_sub(before);
                if self.opts.durability == Durability::Process && carried >= BUSY_COMMIT_RECORDS {
                    if let Some(left) = BUSY_COMMIT_GAP.checked_sub(started.elapsed()) {
                        glommio::timer::sleep(left).await;
                    }
                }
            }
            if let Err(e) = done {
                failed += 1;
                // A full disk fails every retry: the 1st, 2nd, 4th... failure is logged.
                if crate::shard::worth_logging(failed) {
                    log::error!(
                        "shard {}: commit failed: {e} ({failed} failed attempts so far)",
                        self.opts.shard
                    );
                }
                // Retry soon, but do not spin on a failing disk.
                glommio::timer::sleep(Duration::from_millis(10)).await;
                if closed {
                    return;
                }
            }
            if self.opts.durability == Durability::Power {
                if let Some(left) = interval.checked_sub(started.elapsed()) {
                    glommio::timer::sleep(left).await;
                }
            }
        }
    }

    pub(crate) fn poll_appended(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.st.borrow_mut();
        if st.closed || st.committed + 1 < st.next_lsn {
            return Poll::Ready(());
        }
        st.appended = Some(cx.waker().clone());
        Poll::Pending
    }

    /// (committed LSN, failed commits so far), for [`WaitCommitted`].
    pub(crate) fn commit_state(&self) -> (Lsn, u64) {
        let st = self.st.borrow();
        (st.committed, st.failures)
    }

    pub(crate) fn waiters_mut(&self) -> RefMut<'_, Waiters> {
        self.waiters.borrow_mut()
    }

    /// Ask the commit task to finish: it commits what is pending and returns.
    pub fn close(&self) {
        let mut st = self.st.borrow_mut();
        st.closed = true;
        if let Some(w) = st.appended.take() {
            w.wake();
        }
    }
}

#[path = "log_segments.rs"]
mod segments;

#[cfg(test)]
#[path = "log_tests.rs"]
pub(crate) mod tests;
