//! One segment file as the writer sees it: glommio's DMA file (O_DIRECT, whole aligned blocks
//! from registered memory) where the filesystem allows it, a buffered file where it does not.
//!
//! Owns: the choice between the two and the block arithmetic of a write. Never: holds a DMA
//! buffer past one write (registered memory is a few hundred KiB per shard, shared with every
//! other file read) or writes anything but whole blocks through O_DIRECT.

use super::record::{self, Kind, Lsn};
use super::StoreError;
use glommio::io::{BufferedFile, DmaFile, OpenOptions};
use std::cell::Cell;
use std::path::{Path, PathBuf};

/// Write granularity and alignment: the page size, which is also a multiple of every logical
/// block size O_DIRECT asks for on common devices (512 or 4096).
pub(crate) const BLOCK: usize = 4096;

/// Largest single write. Each comes from glommio's registered pool
/// ([`crate::limits::IO_MEMORY_BYTES`], 512 KiB per shard), so one write never takes more than
/// half of it; a commit larger than this is several consecutive writes. 256 KiB is past the
/// size where an SSD reaches its sequential bandwidth.
pub(crate) const WRITE_BYTES_MAX: usize = 256 * 1024;

const _: () = assert!(WRITE_BYTES_MAX.is_multiple_of(BLOCK));
const _: () = assert!(WRITE_BYTES_MAX <= crate::limits::IO_MEMORY_BYTES / 2);

/// The spare segment being made ready ahead of the next rotation; renamed to its segment name
/// when it is used, removed by recovery (it may not be fully zeroed).
pub(crate) const SPARE_NAME: &str = "spare.seg.tmp";

/// One zero buffer, written again and again to fill a spare segment: a quarter of the
/// registered pool, taken only while a spare is being made.
const ZERO_FILL_BYTES: usize = 128 * 1024;

/// Magic and format version in every segment's header record.
const MAGIC: &[u8; 8] = b"RINGMQLG";
const VERSION: u16 = 1;
pub(crate) const HEADER_PAYLOAD_BYTES: usize = 12;
/// Bytes the header record takes at the front of a segment.
pub(crate) const SEGMENT_HEADER_BYTES: usize = record::HEADER_BYTES + HEADER_PAYLOAD_BYTES;

pub(crate) fn align_down(v: u64) -> u64 {
    v & !(BLOCK as u64 - 1)
}

pub(crate) fn align_up(v: usize) -> usize {
    (v + BLOCK - 1) & !(BLOCK - 1)
}

/// The encoded header record of a segment whose first LSN is `first_lsn`.
pub(crate) fn header(shard: usize, first_lsn: Lsn, out: &mut Vec<u8>) {
    let mut p = [0u8; HEADER_PAYLOAD_BYTES];
    p[..8].copy_from_slice(MAGIC);
    p[8..10].copy_from_slice(&VERSION.to_le_bytes());
    p[10..12].copy_from_slice(&(shard as u16).to_le_bytes());
    record::encode(Kind::SEGMENT_HEADER, first_lsn, &p, out);
}

/// Check a header record's payload: our magic, a version we read, the expected shard.
pub(crate) fn check_header(payload: &[u8], shard: usize) -> Result<(), String> {
    if payload.len() != HEADER_PAYLOAD_BYTES || &payload[..8] != MAGIC {
        return Err("not a ringmq log segment (bad magic)".into());
    }
    let version = u16::from_le_bytes([payload[8], payload[9]]);
    if version != VERSION {
        return Err(format!(
            "segment format version {version}, expected {VERSION}"
        ));
    }
    let owner = u16::from_le_bytes([payload[10], payload[11]]);
    if usize::from(owner) != shard {
        return Err(format!("segment belongs to shard {owner}, not {shard}"));
    }
    Ok(())
}

enum Handle {
    Dma(DmaFile),
    Buffered(BufferedFile),
}

pub(crate) struct SegFile {
    handle: Handle,
    path: PathBuf,
    /// Filesystems without `fallocate` get one warning per file, not one per rotation attempt.
    warned_prealloc: Cell<bool>,
}

fn is_direct_unsupported(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL) | Some(libc::EOPNOTSUPP)
    )
}

impl SegFile {
    /// Open (or with `create`, create new) a segment for writing. With `direct`, try O_DIRECT
    /// first; a filesystem that refuses it gets a buffered file and a warning.
    pub(crate) async fn open(path: &Path, create: bool, direct: bool) -> Result<Self, StoreError> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create_new(create);
        let op = if create { "creating" } else { "opening" };
        // Whether the file exists by now (a refused O_DIRECT open may have created it).
        let mut exists = false;
        if direct {
            match opts.dma_open(path).await.map_err(std::io::Error::from) {
                Ok(f) if f.alignment() as usize <= BLOCK => {
                    return Ok(Self::new(Handle::Dma(f), path))
                }
                Ok(f) => {
                    log::warn!(
                        "{}: the device needs {}-byte alignment for O_DIRECT (we write {BLOCK}); \
                         using buffered I/O",
                        path.display(),
                        f.alignment()
                    );
                    let _ = f.close().await;
                    exists = create;
                }
                Err(e) if is_direct_unsupported(&e) => {
                    log::warn!(
                        "{}: the filesystem does not support O_DIRECT ({e}); using buffered I/O \
                         (same durability, one more copy through the page cache)",
                        path.display()
                    );
                    // The open may have created the file before O_DIRECT was refused.
                    exists = create && path.exists();
                }
                Err(e) => return Err(StoreError::io(op, path, e)),
            }
        }
        if exists {
            opts.create_new(false);
        }
        let f = opts
            .buffered_open(path)
            .await
            .map_err(|e| StoreError::io(op, path, e))?;
        Ok(Self::new(Handle::Buffered(f), path))
    }

    fn new(handle: Handle, path: &Path) -> Self {
        SegFile {
            handle,
            path: path.to_path_buf(),
            warned_prealloc: Cell::new(false),
        }
    }

    /// Write zeros over `[0, bytes)` (O_DIRECT files only), so every block of the segment is
    /// an allocated, *written* extent. On ext4 an O_DIRECT write into fallocate's
    /// unwritten extents converts them in the write path: measured here, an 8 KiB commit that
    /// rewrites the partial block and starts a new one took 2.4 ms into an unwritten extent and
    /// 0.1 ms into a written one, and its fdatasync 0.7 ms against 0.16 ms.
    pub(crate) async fn zero_fill(&self, bytes: u64) -> Result<(), StoreError> {
        let Handle::Dma(f) = &self.handle else {
            return Ok(());
        };
        let mut zeros = f.alloc_dma_buffer(ZERO_FILL_BYTES);
        zeros.as_bytes_mut().fill(0);
        let zeros = std::rc::Rc::new(zeros);
        let full = bytes / ZERO_FILL_BYTES as u64 * ZERO_FILL_BYTES as u64;
        let mut at = 0;
        while at < full {
            let wrote = f
                .write_rc_at(zeros.clone(), at)
                .await
                .map_err(|e| StoreError::io("zero-filling", &self.path, e))?;
            if wrote != ZERO_FILL_BYTES {
                return Err(short_write(&self.path, at, wrote, ZERO_FILL_BYTES));
            }
            at += ZERO_FILL_BYTES as u64;
        }
        if at < bytes {
            let rest = align_up((bytes - at) as usize);
            let mut b = f.alloc_dma_buffer(rest);
            b.as_bytes_mut().fill(0);
            f.write_at(b, at)
                .await
                .map_err(|e| StoreError::io("zero-filling", &self.path, e))?;
        }
        // No fdatasync: it would wait behind every other file's dirty data in the journal
        // (ext4 data=ordered), and nothing needs it. If a crash loses the extent conversion,
        // the blocks read as zeros all the same; `power` commits sync what they write.
        Ok(())
    }

    /// Give the (not yet shared) file its segment name.
    pub(crate) fn rename(&mut self, to: &Path) -> Result<(), StoreError> {
        std::fs::rename(&self.path, to).map_err(|e| StoreError::io("renaming", &self.path, e))?;
        self.path = to.to_path_buf();
        Ok(())
    }

    pub(crate) fn is_direct(&self) -> bool {
        matches!(self.handle, Handle::Dma(_))
    }

    /// Reserve `bytes` for the segment (zeros until written) so appends never allocate blocks
    /// mid-commit and a full disk shows up at rotation, before records are waiting on it.
    /// A filesystem without `fallocate` is warned about and written unallocated.
    pub(crate) async fn pre_allocate(&self, bytes: u64) -> Result<(), StoreError> {
        let r = match &self.handle {
            Handle::Dma(f) => f.pre_allocate(bytes, false).await,
            Handle::Buffered(f) => f.pre_allocate(bytes, false).await,
        };
        match r.map_err(std::io::Error::from) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                if !self.warned_prealloc.replace(true) {
                    log::warn!("{}: fallocate not supported: {e}", self.path.display());
                }
                Ok(())
            }
            Err(e) => Err(StoreError::io("pre-allocating", &self.path, e)),
        }
    }

    /// Write `data`, which belongs at `file_off` (block-aligned), of which the first
    /// `on_disk` bytes are already there. O_DIRECT rewrites whole blocks from `file_off`
    /// (the partial block before the new bytes included), zero-padded to the block end; a
    /// buffered file gets just the new bytes.
    pub(crate) async fn write(
        &self,
        data: &[u8],
        file_off: u64,
        on_disk: usize,
    ) -> Result<u64, StoreError> {
        let mut total = 0u64;
        debug_assert_eq!(file_off % BLOCK as u64, 0);
        debug_assert!(on_disk <= data.len());
        match &self.handle {
            Handle::Dma(f) => {
                // Skip whole blocks already on disk; the block holding `on_disk` is rewritten.
                let mut at = on_disk / BLOCK * BLOCK;
                while at < data.len() {
                    let n = (data.len() - at).min(WRITE_BYTES_MAX);
                    let size = align_up(n);
                    let mut buf = f.alloc_dma_buffer(size);
                    let b = buf.as_bytes_mut();
                    b[..n].copy_from_slice(&data[at..at + n]);
                    b[n..].fill(0);
                    let pos = file_off + at as u64;
                    let wrote = f
                        .write_at(buf, pos)
                        .await
                        .map_err(|e| StoreError::io("writing", &self.path, e))?;
                    if wrote != size {
                        return Err(short_write(&self.path, pos, wrote, size));
                    }
                    total += size as u64;
                    at += n;
                }
            }
            Handle::Buffered(f) => {
                let mut at = on_disk;
                while at < data.len() {
                    let n = (data.len() - at).min(WRITE_BYTES_MAX);
                    let pos = file_off + at as u64;
                    let wrote = f
                        .write_at(data[at..at + n].to_vec(), pos)
                        .await
                        .map_err(|e| StoreError::io("writing", &self.path, e))?;
                    if wrote == 0 {
                        return Err(short_write(&self.path, pos, wrote, n));
                    }
                    // A short buffered write is legal; continue from where it stopped.
                    at += wrote;
                    total += wrote as u64;
                }
            }
        }
        Ok(total)
    }

    pub(crate) async fn sync(&self) -> Result<(), StoreError> {
        let r = match &self.handle {
            Handle::Dma(f) => f.fdatasync().await,
            Handle::Buffered(f) => f.fdatasync().await,
        };
        r.map_err(|e| StoreError::io("fdatasync", &self.path, e))
    }

    pub(crate) async fn close(self) {
        let r = match self.handle {
            Handle::Dma(f) => f.close().await,
            Handle::Buffered(f) => f.close().await,
        };
        if let Err(e) = r {
            log::warn!("closing {}: {e}", self.path.display());
        }
    }
}

fn short_write(path: &Path, pos: u64, wrote: usize, want: usize) -> StoreError {
    StoreError::io(
        "writing",
        path,
        std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            format!("short write at {pos}: {wrote} of {want} bytes"),
        ),
    )
}
