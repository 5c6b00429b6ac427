//! The segment side of the log: making a spare segment ready ahead of rotation, creating
//! segments when a commit needs one, releasing the ones the caller no longer needs, and the
//! size cap. A child module of `log` so it shares the writer's state without widening it.
//!
//! Never: releases the open segment or one with bytes not yet on disk, or creates a segment
//! past `max_bytes`.

use super::{Log, SegmentInfo};
use crate::store::record::Lsn;
use crate::store::segment::{self, SegFile};
use crate::store::{segment_name, Durability, StoreError};
use std::rc::Rc;
use std::time::SystemTime;

/// Only O_DIRECT segments are slow to write into unwritten extents; buffered ones are not
/// zero-filled at all, so there is nothing better to move to.
fn f_is_direct(st: &super::State) -> bool {
    st.current.as_ref().is_some_and(|f| f.is_direct())
}

impl Log {
    pub(super) fn segment_bytes_used(&self) -> u64 {
        self.st.borrow().segments.iter().map(|s| s.bytes).sum()
    }

    /// Whether one more segment stays within `max_bytes`.
    pub(super) fn room_for_segment(&self) -> Result<(), StoreError> {
        let used = self.segment_bytes_used();
        let max = self.opts.max_bytes;
        if max > 0 && used + self.opts.segment_bytes > max {
            return Err(StoreError::Full {
                used_bytes: used,
                max_bytes: max,
            });
        }
        Ok(())
    }

    /// Make the next segment ready ahead of rotation: create the spare, pre-allocate and
    /// zero-fill it (see `SegFile::zero_fill` for why). The commit task runs this in the
    /// background; a rotation that finds no spare creates its segment the slow way.
    pub async fn prepare_segment(&self) -> Result<(), StoreError> {
        {
            let mut st = self.st.borrow_mut();
            if self.opts.durability == Durability::None || st.spare.is_some() || st.preparing {
                return Ok(());
            }
            drop(st);
            if self.room_for_segment().is_err() {
                return Ok(());
            }
            st = self.st.borrow_mut();
            st.preparing = true;
        }
        let path = self.dir.join(segment::SPARE_NAME);
        let made = async {
            let _ = std::fs::remove_file(&path);
            let f = SegFile::open(&path, true, self.opts.direct_io).await?;
            let filled = async {
                f.pre_allocate(self.opts.segment_bytes).await?;
                f.zero_fill(self.opts.segment_bytes).await
            };
            match filled.await {
                Ok(()) => Ok(f),
                Err(e) => {
                    f.close().await;
                    let _ = std::fs::remove_file(&path);
                    Err(e)
                }
            }
        };
        let made = made.await;
        let mut st = self.st.borrow_mut();
        st.preparing = false;
        st.spare = Some(made?);
        Ok(())
    }

    /// Start [`Log::prepare_segment`] in the background unless a spare is ready or coming.
    pub(super) fn spawn_prepare(self: &Rc<Self>) {
        {
            let st = self.st.borrow();
            let none = self.opts.durability == Durability::None;
            if none || st.spare.is_some() || st.preparing || st.closed {
                return;
            }
            // Not before the segment in use is half full: zero-filling a whole segment at
            // start-up would cost every start (and every test broker) its size in writes.
            if st.seg_first.is_none() || st.seg_end < self.opts.segment_bytes / 2 {
                return;
            }
        }
        let log = self.clone();
        glommio::spawn_local(async move {
            if let Err(e) = log.prepare_segment().await {
                log::warn!("shard {}: preparing the next segment: {e}", log.opts.shard);
            }
        })
        .detach();
    }

    /// Create (and pre-allocate) the files of pending chunks that start a new segment,
    /// refusing one past `max_bytes`.
    pub(super) async fn create_segments(&self) -> Result<(), StoreError> {
        loop {
            let next = {
                let st = self.st.borrow();
                st.pending
                    .iter()
                    .find(|c| c.file.is_none())
                    .map(|c| c.seg_first)
            };
            let Some(first) = next else { return Ok(()) };
            self.room_for_segment()?;
            let path = self.dir.join(segment_name(first));
            let spare = self.st.borrow_mut().spare.take();
            let slow = spare.is_none();
            let f = match spare {
                Some(mut f) => {
                    f.rename(&path)?;
                    f
                }
                None => {
                    let f = SegFile::open(&path, true, self.opts.direct_io).await?;
                    if let Err(e) = f.pre_allocate(self.opts.segment_bytes).await {
                        // Leave no half-made segment behind; the next commit tries again.
                        f.close().await;
                        let _ = std::fs::remove_file(&path);
                        return Err(e);
                    }
                    f
                }
            };
            let f = Rc::new(f);
            self.register_segment(first, path, f);
            {
                // A segment made the slow way is left as soon as a spare is ready.
                let mut st = self.st.borrow_mut();
                if st.seg_first == Some(first) {
                    st.seg_slow = slow && f_is_direct(&st);
                }
            }
            self.sync_dir_if_needed().await?;
        }
    }

    /// Record a new segment as the open one. Registered before the directory sync, so a failed
    /// sync leaves a segment the next commit writes into (and syncs the directory for), not a
    /// file in the way.
    fn register_segment(&self, first: Lsn, path: std::path::PathBuf, f: Rc<SegFile>) {
        let mut st = self.st.borrow_mut();
        st.stats.segments_created += 1;
        st.dir_unsynced = self.opts.durability == Durability::Power;
        if let Some(c) = st.pending.iter_mut().find(|c| c.seg_first == first) {
            c.file = Some(f.clone());
        }
        st.segments.push_back(SegmentInfo {
            first_lsn: first,
            path,
            bytes: self.opts.segment_bytes,
            created: SystemTime::now(),
        });
        // The sealed segment's file stays open while its chunk (if still pending) holds it.
        st.current = Some(f);
    }

    /// With `power`, make new directory entries durable before any record depends on them.
    pub(super) async fn sync_dir_if_needed(&self) -> Result<(), StoreError> {
        if !self.st.borrow().dir_unsynced {
            return Ok(());
        }
        self.sync_dir().await?;
        self.st.borrow_mut().dir_unsynced = false;
        Ok(())
    }

    /// Make a new or removed directory entry durable (power mode).
    pub(super) async fn sync_dir(&self) -> Result<(), StoreError> {
        let d = glommio::io::Directory::open(&self.dir)
            .await
            .map_err(|e| StoreError::io("opening", &self.dir, e))?;
        d.sync()
            .await
            .map_err(|e| StoreError::io("syncing", &self.dir, e))?;
        let _ = d.close().await;
        Ok(())
    }

    /// Delete every segment that holds only records below `lsn` (the caller no longer needs
    /// them: a snapshot committed at or after `lsn` replaced them). The open segment and any
    /// segment with uncommitted bytes are kept. Returns how many files were removed.
    pub async fn release_before(&self, lsn: Lsn) -> Result<usize, StoreError> {
        let mut removed = 0;
        loop {
            let victim = {
                let st = self.st.borrow();
                let limit = lsn.min(st.committed + 1);
                match (st.segments.front(), st.segments.get(1)) {
                    (Some(s), Some(next))
                        if next.first_lsn <= limit
                            && !st.pending.iter().any(|c| c.seg_first == s.first_lsn) =>
                    {
                        Some(s.path.clone())
                    }
                    _ => None,
                }
            };
            let Some(path) = victim else { break };
            // Unlink is a quick metadata operation; done inline on the control path.
            std::fs::remove_file(&path).map_err(|e| StoreError::io("removing", &path, e))?;
            let mut st = self.st.borrow_mut();
            st.segments.pop_front();
            st.stats.segments_released += 1;
            removed += 1;
        }
        if removed > 0 && self.opts.durability == Durability::Power {
            self.sync_dir().await?;
        }
        Ok(removed)
    }
}
