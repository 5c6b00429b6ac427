//! Start-up recovery of one shard's log: read every segment in LSN order, hand each intact
//! record to the caller, and leave the last segment ready for appends.
//!
//! Rules, from what a crash can leave behind:
//! - The last segment may end in a torn or half-written commit. Recovery stops at the first
//!   record that is damaged, out of LSN sequence or missing, reports what it skipped
//!   ([`Skipped`]), and zeroes the file from there on, so new appends follow good data and a
//!   stale record beyond the cut can never be read as if it followed them.
//! - A sealed segment (any but the last) was complete before the next one got a byte, so
//!   damage there is not a crash artefact: it is [`StoreError::Corrupt`] with the file and
//!   offset, and recovery stops rather than silently lose what follows.
//! - A last segment whose header never reached the disk holds nothing; it is removed and the
//!   writer recreates it.
//!
//! Plain blocking `std::fs` reads: recovery runs on each shard's thread before it serves, all
//! shards in parallel, and a sequential read of whole segments is what the disk does best.
//!
//! Never: panics on file contents, returns a record that failed its checksum, or modifies a
//! sealed segment.

use super::log::SegmentInfo;
use super::record::{self, Damage, Decoded, Kind, Lsn};
use super::segment::{self, BLOCK};
use super::{parse_segment_name, shard_dir, StoreError};
use bytes::Bytes;
use std::path::{Path, PathBuf};

/// A recovered record; the payload shares its segment's buffer (no copy per record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: Kind,
    pub lsn: Lsn,
    pub payload: Bytes,
}

/// The damaged tail recovery cut off the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub offset: u64,
    /// Bytes from `offset` to the end of the file's data that were discarded (an upper bound:
    /// it counts up to the last non-zero byte).
    pub bytes: u64,
    pub why: String,
}

/// Where the writer continues: the last segment, its data end, and the partial block that
/// O_DIRECT must rewrite with the next commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    pub first_lsn: Lsn,
    pub path: PathBuf,
    pub end: u64,
    pub last_block: Vec<u8>,
}

/// What recovery found. [`recover`] fills `records`; [`recover_each`] leaves it empty.
#[derive(Debug, Default)]
pub struct Recovered {
    pub records: Vec<Record>,
    /// Records handed over (the same as `records.len()` for [`recover`]).
    pub count: u64,
    /// The LSN the next append gets: one past the last intact record (1 for an empty log).
    pub next_lsn: Lsn,
    /// Segments on disk after recovery, oldest first.
    pub segments: Vec<SegmentInfo>,
    pub tail: Option<Tail>,
    pub skipped: Option<Skipped>,
}

/// Recover shard `shard` of `data_dir`, collecting every record. The directory is created if
/// missing (an empty log).
pub fn recover(data_dir: &Path, shard: usize) -> Result<Recovered, StoreError> {
    let mut records = Vec::new();
    let mut r = recover_each(data_dir, shard, |rec| records.push(rec))?;
    r.records = records;
    Ok(r)
}

/// Recover shard `shard` of `data_dir`, calling `each` for every intact record in LSN order.
/// Memory stays at one segment plus what `each` keeps.
pub fn recover_each(
    data_dir: &Path,
    shard: usize,
    each: impl FnMut(Record),
) -> Result<Recovered, StoreError> {
    recover_each_opts(data_dir, shard, false, each)
}

/// [`recover_each`]; with `allow_gaps`, a segment that does not start where the previous one
/// ended is read anyway (after a damaged segment was quarantined), with a warning.
pub fn recover_each_opts(
    data_dir: &Path,
    shard: usize,
    allow_gaps: bool,
    mut each: impl FnMut(Record),
) -> Result<Recovered, StoreError> {
    let dir = shard_dir(data_dir, shard);
    std::fs::create_dir_all(&dir).map_err(|e| StoreError::io("creating", &dir, e))?;
    // A spare segment may be half zero-filled; the writer makes a new one.
    let spare = dir.join(segment::SPARE_NAME);
    if spare.exists() {
        remove(&spare)?;
    }
    let mut files = list_segments(&dir)?;
    let mut out = Recovered {
        next_lsn: 1,
        ..Recovered::default()
    };
    let last = files.len().saturating_sub(1);
    let mut expected: Option<Lsn> = None;
    for (i, (first_lsn, path)) in files.drain(..).enumerate() {
        let is_last = i == last;
        let (data, file_bytes) = read_segment(&path)?;
        let data = Bytes::from(data);
        let scan = scan_segment(&data, shard, first_lsn, |rec| {
            out.count += 1;
            each(rec)
        });
        let created = created_time(&path);
        if scan.end == 0 && scan.problem.is_none() && is_last {
            // Created and pre-allocated, header never written: holds nothing. (The previous
            // segment's last commit may not have completed either, so its name need not
            // follow on; the writer recreates it at the right LSN.)
            remove(&path)?;
            expected.get_or_insert(first_lsn);
            continue;
        }
        if let Some(e) = expected {
            if first_lsn != e && !(is_last && scan.end == 0) && allow_gaps {
                log::warn!(
                    "{}: starts at LSN {first_lsn}, expected {e} (a quarantined segment's \
                     records are missing)",
                    path.display()
                );
            } else if first_lsn != e && !(is_last && scan.end == 0) {
                return Err(corrupt(
                    &path,
                    0,
                    format!("starts at LSN {first_lsn}, expected {e}"),
                ));
            }
        }
        match scan.problem {
            None => {}
            Some(why) if !is_last => return Err(corrupt(&path, scan.end as u64, why)),
            Some(why) => {
                let bytes = last_nonzero(&data[scan.end..]) as u64;
                log::warn!(
                    "{} at offset {}: {why}; cutting the tail ({bytes} bytes) and keeping the {} \
                     records before it",
                    path.display(),
                    scan.end,
                    scan.next_lsn - first_lsn
                );
                out.skipped = Some(Skipped {
                    path: path.clone(),
                    offset: scan.end as u64,
                    bytes,
                    why,
                });
                if scan.end == 0 {
                    // Not even the header survived: the segment held nothing.
                    remove(&path)?;
                    expected.get_or_insert(first_lsn);
                    continue;
                }
            }
        }
        if is_last {
            // Zero everything after the last intact record (damage or stale bytes of a
            // commit that never completed), so nothing old can follow new appends.
            let stale = last_nonzero(&data[scan.end..]);
            if stale > 0 {
                zero_range(&path, scan.end as u64, stale)?;
            }
            let block = segment::align_down(scan.end as u64) as usize;
            out.tail = Some(Tail {
                first_lsn,
                path: path.clone(),
                end: scan.end as u64,
                last_block: data[block..scan.end].to_vec(),
            });
        }
        out.segments.push(SegmentInfo {
            first_lsn,
            path,
            bytes: file_bytes.max(scan.end as u64),
            created,
        });
        expected = Some(scan.next_lsn);
    }
    out.next_lsn = expected.unwrap_or(1);
    Ok(out)
}

/// Bytes past the end of the records that are read and checked for leftovers: the only write
/// that can have been in flight at a crash (one at a time, at most `WRITE_BYTES_MAX`, starting
/// at or before the block holding the end) lies within it. Everything after it was zeroed by
/// the segment's preparation or by an earlier recovery.
const STALE_WINDOW: usize = segment::WRITE_BYTES_MAX + BLOCK;

/// Read a segment up to its end of data (found by walking the record lengths, no checksums
/// yet) plus [`STALE_WINDOW`], not the zero-filled rest: a 64 MiB segment holding 100 KiB costs
/// a 4 MiB read. Returns the bytes and the file's size.
fn read_segment(path: &Path) -> Result<(Vec<u8>, u64), StoreError> {
    use std::io::Read;
    const CHUNK: usize = 4 * 1024 * 1024;
    let err = |e| StoreError::io("reading", path, e);
    let mut f = std::fs::File::open(path).map_err(err)?;
    let size = f.metadata().map_err(err)?.len();
    // The whole file when it is small; grown a chunk at a time otherwise.
    let mut data = Vec::with_capacity((size as usize).min(CHUNK));
    let mut probe = 0usize;
    let mut end: Option<usize> = None;
    loop {
        // `take` + `read_to_end` reads into spare capacity: no zero-filling of the buffer.
        let got = (&mut f)
            .take(CHUNK as u64)
            .read_to_end(&mut data)
            .map_err(err)?;
        let eof = got < CHUNK;
        while end.is_none() && probe + record::HEADER_BYTES <= data.len() {
            let h = &data[probe..probe + record::HEADER_BYTES];
            let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
            if h.iter().all(|&b| b == 0) || len > record::PAYLOAD_BYTES_MAX {
                end = Some(probe);
            } else {
                probe += record::HEADER_BYTES + len;
            }
        }
        if eof || end.is_some_and(|e| data.len() >= e + STALE_WINDOW) {
            return Ok((data, size));
        }
    }
}

/// What [`scan_segment`] found in one segment's bytes.
#[derive(Debug)]
pub struct SegmentScan {
    /// Offset just past the last intact record.
    pub end: usize,
    pub next_lsn: Lsn,
    /// Why the scan stopped before the clean end of the data, if it did.
    pub problem: Option<String>,
}

/// The header record a segment of shard `shard` starting at `first_lsn` begins with (for
/// building segments in memory: the fuzz target, tests).
pub fn segment_start(shard: usize, first_lsn: Lsn, out: &mut Vec<u8>) {
    segment::header(shard, first_lsn, out);
}

/// Read one segment's records from its bytes: a header first, then records with consecutive
/// LSNs from `first_lsn`, until a zero header or damage. Public for the fuzz target (the
/// loader's file handling around it is plain reads and renames).
pub fn scan_segment(
    data: &Bytes,
    shard: usize,
    first_lsn: Lsn,
    mut each: impl FnMut(Record),
) -> SegmentScan {
    let stopped = |end, next_lsn, why: String| SegmentScan {
        end,
        next_lsn,
        problem: Some(why),
    };
    let mut at = match record::decode(data) {
        Decoded::End => {
            return SegmentScan {
                end: 0,
                next_lsn: first_lsn,
                problem: None,
            }
        }
        Decoded::Damaged(d) => return stopped(0, first_lsn, format!("segment header: {d}")),
        Decoded::Record(h) => {
            if h.kind != Kind::SEGMENT_HEADER || h.lsn != first_lsn {
                let why = format!("no segment header for LSN {first_lsn}");
                return stopped(0, first_lsn, why);
            }
            if let Err(why) = segment::check_header(h.payload, shard) {
                return stopped(0, first_lsn, why);
            }
            h.encoded_len()
        }
    };
    let mut next = first_lsn;
    loop {
        match record::decode(&data[at..]) {
            Decoded::End => {
                return SegmentScan {
                    end: at,
                    next_lsn: next,
                    problem: None,
                }
            }
            Decoded::Damaged(d) => return stopped(at, next, describe(d, next)),
            Decoded::Record(r) if r.lsn != next || r.kind == Kind::SEGMENT_HEADER => {
                let why = format!("record with LSN {} where {next} was due", r.lsn);
                return stopped(at, next, why);
            }
            Decoded::Record(r) => {
                let start = at + record::HEADER_BYTES;
                each(Record {
                    kind: r.kind,
                    lsn: r.lsn,
                    payload: data.slice(start..start + r.payload.len()),
                });
                at += r.encoded_len();
                next += 1;
            }
        }
    }
}

fn describe(d: Damage, lsn: Lsn) -> String {
    format!("{d} (where LSN {lsn} was due)")
}

fn corrupt(path: &Path, offset: u64, why: String) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        offset,
        why,
    }
}

/// Segment files of a shard directory, sorted by first LSN; anything else is left alone.
fn list_segments(dir: &Path) -> Result<Vec<(Lsn, PathBuf)>, StoreError> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| StoreError::io("listing", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("listing", dir, e))?;
        let name = entry.file_name();
        if let Some(lsn) = name.to_str().and_then(parse_segment_name) {
            files.push((lsn, entry.path()));
        }
    }
    files.sort_unstable();
    Ok(files)
}

/// Length of `b` up to and including its last non-zero byte (0 if all zeros).
fn last_nonzero(b: &[u8]) -> usize {
    b.iter().rposition(|&x| x != 0).map_or(0, |p| p + 1)
}

/// Overwrite `[from, from + len)` with zeros and make that durable before any new append can
/// land after it. Zeros are written rather than the file cut and re-extended, so the blocks stay
/// written extents (see `SegFile::zero_fill`).
fn zero_range(path: &Path, from: u64, len: usize) -> Result<(), StoreError> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io("opening", path, e))?;
    f.write_all_at(&vec![0u8; len], from)
        .map_err(|e| StoreError::io("zeroing the tail of", path, e))?;
    f.sync_all().map_err(|e| StoreError::io("syncing", path, e))
}

fn remove(path: &Path) -> Result<(), StoreError> {
    std::fs::remove_file(path).map_err(|e| StoreError::io("removing", path, e))
}

fn created_time(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.created().or_else(|_| m.modified()))
        .unwrap_or_else(|_| std::time::SystemTime::now())
}
