//! Opening a log: trusting sealed segments by their footers, scanning only the active one, and
//! telling a torn tail from corruption according to the [`RecoveryMode`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::now_us;
use crate::config::{RecoveryMode, WalConfig};
use crate::format::{
    self, CleanClose, Footer, FrameError, Hole, IndexEntry, MAX_CLEAN_CLOSE_LEN, RECORD_HEADER_LEN, RECORD_MARKER,
    RecordHeader, SEGMENT_HEADER_LEN, SegmentHeader, TRAILER_LEN,
};
use crate::segment::Segment;
use crate::storage::{Storage, StorageFile};
use crate::{Lsn, WalError};

/// Name of the lock file inside the log directory.
pub const LOCK_FILE_NAME: &str = "LOCK";
/// Suffix of a segment being created (header written, not yet renamed into place).
pub const TEMP_SUFFIX: &str = ".tmp";

/// What `open` found and did. Returned by [`crate::Wal::recovery_report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The recovery mode used.
    pub mode: RecoveryMode,
    /// Segments in the log after open (sealed + active).
    pub segment_count: usize,
    /// Sealed segments trusted by their footer without a scan.
    pub sealed_segments_trusted: usize,
    /// Records in the active segment: found valid by scanning it, or (when
    /// `active_segment_trusted`) as the clean-close record describes them.
    pub records_recovered: u64,
    /// Whether the active segment was taken from a valid clean-close record (left by the last
    /// `close`) instead of being scanned.
    pub active_segment_trusted: bool,
    /// A clean-close record was found but not trusted, and why; the active segment was scanned
    /// and the record cleared before anything was written.
    pub clean_close_rejected: Option<String>,
    /// Oldest LSN in the log after recovery (the first segment's first LSN).
    pub oldest_lsn: Lsn,
    /// Last LSN in the log after recovery (0 for an empty log).
    pub last_lsn: Lsn,
    /// Bytes cut from the end of the active segment (torn tail, incomplete batch, or what
    /// point-in-time recovery dropped).
    pub bytes_truncated: u64,
    /// Details of the truncated tail, if any.
    pub torn_tail: Option<TornTail>,
    /// Zero bytes found after the last complete batch of the active segment: space the writer
    /// preallocated ([`WalConfig::preallocate_bytes`]), neither data nor a torn tail, so not in
    /// `bytes_truncated`. Kept when this log preallocates
    /// ([`WalConfig::effective_preallocate_bytes`] > 0: the writer resumes at the end of the data
    /// and overwrites them), otherwise truncated at open.
    pub preallocated_bytes: u64,
    /// Damaged ranges skipped by salvage recovery.
    pub skipped_ranges: Vec<SkippedRange>,
    /// Leftover temporary files of an interrupted segment creation that were removed.
    pub temp_files_removed: Vec<PathBuf>,
}

/// An incomplete or invalid tail that recovery cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file.
    pub segment: PathBuf,
    /// Offset the file was truncated to.
    pub offset: u64,
    /// Bytes removed.
    pub bytes: u64,
    /// Complete, valid records dropped because their batch was incomplete (or, in point-in-time
    /// mode, because they followed damage).
    pub records_dropped: u64,
    /// Why the tail was cut.
    pub reason: String,
}

/// A byte range that salvage recovery skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRange {
    /// The segment file.
    pub segment: PathBuf,
    /// First damaged byte.
    pub start_offset: u64,
    /// First byte of the next valid record.
    pub end_offset: u64,
    /// LSNs lost in the range, if known (`first..=last`).
    pub lost_lsns: Option<(Lsn, Lsn)>,
}

/// How a scan of segment bytes ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanOutcome {
    /// Every byte after the header is a complete, valid batch, or zero-filled space after the
    /// last batch up to the end of the bytes (space the writer preallocated; its length is
    /// [`ScanResult::zero_tail_bytes`]).
    Clean,
    /// The data ends in an incomplete or invalid tail with nothing valid after it (or, in
    /// point-in-time mode, anything after the first bad record).
    TornTail {
        /// Where valid data ends.
        offset: u64,
        /// Valid records dropped (incomplete batch, or after damage in point-in-time mode).
        records_dropped: u64,
        /// What was wrong with the first bad byte.
        reason: String,
    },
    /// A bad record followed by valid data.
    Corruption {
        /// Offset of the bad record.
        offset: u64,
        /// LSN expected there.
        lsn: Lsn,
        /// What is wrong.
        detail: String,
    },
}

/// Result of scanning the records of one segment (pure; works on any bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanResult {
    /// Offset just past the last valid, batch-complete record.
    pub valid_end_offset: u64,
    /// Number of valid records kept.
    pub record_count: u64,
    /// LSN of the last kept record (`first_lsn - 1` if none).
    pub last_lsn: Lsn,
    /// CRC of the last kept record (the header's chain seed if none).
    pub last_crc: u32,
    /// Timestamp of the last kept record (0 if none).
    pub last_timestamp_us: u64,
    /// Offset of the last kept record (0 if none).
    pub last_record_offset: u64,
    /// Sparse index of the kept records.
    pub index: Vec<IndexEntry>,
    /// Ranges skipped in salvage mode.
    pub holes: Vec<Hole>,
    /// With a [`ScanOutcome::Clean`] outcome: the zero bytes from `valid_end_offset` to the end
    /// (preallocated space, not data and not a torn tail); 0 otherwise.
    pub zero_tail_bytes: u64,
    /// How the scan ended.
    pub outcome: ScanOutcome,
}

#[derive(Clone, Copy)]
struct Committed {
    end: u64,
    count: u64,
    last_lsn: Lsn,
    last_crc: u32,
    last_ts: u64,
    last_offset: u64,
    index_len: usize,
}

/// The phrase in [`TornTail::reason`] (and [`ScanOutcome::TornTail`]'s `reason`) when the torn
/// tail is an interrupted write (`docs/FORMAT.md`, "Interrupted write").
pub const INTERRUPTED_WRITE: &str = "an interrupted write";

/// Scans the records of a segment whose full bytes (header included) are `bytes`.
///
/// Validates each record's structure, CRC, LSN (must be the next one) and chain (its `prev_crc`
/// must be the previous record's CRC); keeps only complete batches; applies `mode` to damage.
/// `max_stored_len` bounds record lengths. Never panics on any input.
///
/// Nothing but zeros from the end of a complete batch to the end of `bytes` is preallocated
/// space, in every mode: the outcome is [`ScanOutcome::Clean`] with `zero_tail_bytes` set. Zeros
/// after an incomplete batch are still a torn tail, and zeros followed by anything non-zero are
/// damage as before. (The check is one block-wise comparison of the tail, done only where a
/// record fails to parse, so it costs at most one pass over the file.)
///
/// `last_segment`: whether this is the log's last segment, the only one that can end in a write
/// that was never synced. Only there can damage followed by valid records be an *interrupted
/// write* (a torn tail); in a sealed segment (scanned in salvage, its footer damaged) every write
/// was synced and acknowledged, so the same bytes are damage that salvage skips past.
pub fn scan_segment(
    bytes: &[u8],
    header: &SegmentHeader,
    mode: RecoveryMode,
    max_stored_len: u32,
    index_interval_bytes: u64,
    last_segment: bool,
) -> ScanResult {
    let len = bytes.len() as u64;
    let start = SEGMENT_HEADER_LEN as u64;
    let mut index: Vec<IndexEntry> = Vec::new();
    let mut holes: Vec<Hole> = Vec::new();
    let mut committed = Committed {
        end: start,
        count: 0,
        last_lsn: header.first_lsn - 1,
        last_crc: header.prev_crc,
        last_ts: 0,
        last_offset: 0,
        index_len: 0,
    };
    let mut pos = start;
    let mut expected_lsn = header.first_lsn;
    let mut chain = header.prev_crc;
    let mut count = 0u64;
    let mut last_index_offset = 0u64;
    let mut force_index = true; // the first record, and the first after a salvage hole
    let mut relaxed = false; // after a salvage hole the next record may skip LSNs and break the chain

    let finish = |mut committed: Committed,
                  index: &mut Vec<IndexEntry>,
                  mut holes: Vec<Hole>,
                  zero_tail_bytes: u64,
                  mut outcome| {
        if committed.count == 0 && !holes.is_empty() {
            // Salvage skipped damage but kept no record after it. Nothing is kept, so no bytes
            // are either: otherwise `open` would resume appending after damaged bytes that
            // readers (starting at the header end) and the next scan then trip over.
            committed.end = start;
            holes.clear();
            if let ScanOutcome::TornTail { offset, .. } = &mut outcome {
                *offset = start;
            }
        }
        index.truncate(committed.index_len);
        ScanResult {
            valid_end_offset: committed.end,
            record_count: committed.count,
            last_lsn: committed.last_lsn,
            last_crc: committed.last_crc,
            last_timestamp_us: committed.last_ts,
            last_record_offset: committed.last_offset,
            index: std::mem::take(index),
            holes,
            zero_tail_bytes,
            outcome,
        }
    };

    loop {
        if pos >= len {
            if committed.end == len {
                return finish(committed, &mut index, holes, 0, ScanOutcome::Clean);
            }
            // Records after the last batch end: the batch never finished.
            let dropped = count - committed.count;
            let outcome = ScanOutcome::TornTail {
                offset: committed.end,
                records_dropped: dropped,
                reason: format!("incomplete batch of {dropped} records at the end"),
            };
            return finish(committed, &mut index, holes, 0, outcome);
        }
        let rest = &bytes[pos as usize..];
        let problem = match format::verify_record(rest, max_stored_len) {
            Ok((h, _)) if !relaxed && h.lsn != expected_lsn => {
                Some(format!("LSN {} where {} was expected", h.lsn, expected_lsn))
            }
            Ok((h, _)) if relaxed && h.lsn < expected_lsn => Some(format!("LSN {} goes backwards", h.lsn)),
            Ok((h, _)) if !relaxed && h.prev_crc != chain => Some(format!(
                "chain mismatch: record says previous CRC {:#010x}, previous was {chain:#010x}",
                h.prev_crc
            )),
            Ok((h, _)) => {
                relaxed = false;
                if force_index || pos - last_index_offset >= index_interval_bytes {
                    force_index = false;
                    index.push(IndexEntry { lsn: h.lsn, offset: pos });
                    last_index_offset = pos;
                }
                let record_offset = pos;
                pos += h.total_len();
                expected_lsn = h.lsn + 1;
                chain = h.crc;
                count += 1;
                if h.is_batch_end() {
                    committed = Committed {
                        end: pos,
                        count,
                        last_lsn: h.lsn,
                        last_crc: h.crc,
                        last_ts: h.timestamp_us,
                        last_offset: record_offset,
                        index_len: index.len(),
                    };
                }
                None
            }
            Err(e) => Some(describe(&e)),
        };
        let Some(reason) = problem else { continue };
        if pos == committed.end && count == committed.count && format::is_zeroed(&bytes[pos as usize..]) {
            // Preallocated space after the last complete batch: the end of the data, not a tear.
            return finish(committed, &mut index, holes, len - pos, ScanOutcome::Clean);
        }

        // `pos` is bad. Is there valid data after it?
        let resync = find_valid_record(bytes, pos + 1, committed.last_lsn + 1, max_stored_len);
        if let Some(next) = resync
            && last_segment
            && header.version >= format::SYNC_START_FORMAT_VERSION
            && let Some(after) = interrupted_write(bytes, pos, next, committed.last_lsn + 1, max_stored_len)
        {
            // Valid records follow, but only records of the write the damage is in, and the
            // damage holds a lost sector's zeros: a write interrupted by a power loss whose
            // sectors reached the disk out of order (overwrites of preallocated space have no
            // journal commit ordering them). Nothing in it was acknowledged: a torn tail.
            let outcome = ScanOutcome::TornTail {
                offset: committed.end,
                records_dropped: count - committed.count + after,
                reason: format!(
                    "{reason}; {INTERRUPTED_WRITE}: its {after} surviving records after the damage (from offset \
                     {next}) start no new write"
                ),
            };
            return finish(committed, &mut index, holes, 0, outcome);
        }
        match (mode, resync) {
            (RecoveryMode::SkipCorrupted, Some(next)) => {
                match holes.last_mut() {
                    // Damage again right where the last hole ended (nothing committed since):
                    // grow that hole. Readers skip one hole per position, so two adjacent holes
                    // would expose the dropped records between them.
                    Some(last) if last.end_offset == committed.end => last.end_offset = next,
                    _ => holes.push(Hole { start_offset: committed.end, end_offset: next }),
                }
                count = committed.count;
                index.truncate(committed.index_len);
                pos = next;
                relaxed = true;
                // Force an index entry at the resync point so readers can jump over the hole.
                force_index = true;
                committed.end = next; // the hole is accounted; data resumes here
            }
            (RecoveryMode::PointInTime, Some(next)) => {
                let dropped =
                    count - committed.count + count_valid_records(bytes, next, committed.last_lsn + 1, max_stored_len);
                let outcome = ScanOutcome::TornTail { offset: committed.end, records_dropped: dropped, reason };
                return finish(committed, &mut index, holes, 0, outcome);
            }
            (RecoveryMode::PointInTime, None)
            | (RecoveryMode::SkipCorrupted, None)
            | (RecoveryMode::TolerateTornTail, None) => {
                let outcome =
                    ScanOutcome::TornTail { offset: committed.end, records_dropped: count - committed.count, reason };
                return finish(committed, &mut index, holes, 0, outcome);
            }
            (RecoveryMode::AbsoluteConsistency, None) => {
                let outcome =
                    ScanOutcome::TornTail { offset: committed.end, records_dropped: count - committed.count, reason };
                return finish(committed, &mut index, holes, 0, outcome);
            }
            (RecoveryMode::TolerateTornTail | RecoveryMode::AbsoluteConsistency, Some(next)) => {
                let outcome = ScanOutcome::Corruption {
                    offset: pos,
                    lsn: expected_lsn,
                    detail: format!("{reason}; a valid record follows at offset {next}"),
                };
                return finish(committed, &mut index, holes, 0, outcome);
            }
        }
    }
}

fn describe(e: &FrameError) -> String {
    match e {
        FrameError::Zeroed => "zero-filled bytes where a record was expected".to_string(),
        FrameError::Truncated { .. } => format!("incomplete record ({e})"),
        other => format!("invalid record ({other})"),
    }
}

/// Counts the valid records from offset `from` on (each found by [`find_valid_record`]): what
/// point-in-time recovery drops after the damage.
fn count_valid_records(bytes: &[u8], from: u64, min_lsn: Lsn, max_stored_len: u32) -> u64 {
    let mut count = 0;
    let mut at = from;
    while let Some(found) = find_valid_record(bytes, at, min_lsn, max_stored_len) {
        count += 1;
        let total = RecordHeader::decode(&bytes[found as usize..], max_stored_len).map(|h| h.total_len()).unwrap_or(1);
        at = found + total.max(1);
    }
    count
}

/// Whether damage at `pos`, with the first valid record after it at `next`, is an interrupted
/// write rather than corruption: the damaged bytes hold a lost sector's zeros
/// ([`format::torn_write_evidence`]) and no valid record from `next` on starts a new write
/// ([`format::FLAG_SYNC_START`]), so every one of them was written together with the damaged
/// bytes, after the last `fdatasync` that completed (a write that began later, and so after the
/// damaged bytes were synced, starts with a flagged record). Returns how many valid records
/// follow (what the torn tail drops), or `None` for corruption. Version 2 segments only. Used
/// only on the failure path.
fn interrupted_write(bytes: &[u8], pos: u64, next: u64, min_lsn: Lsn, max_stored_len: u32) -> Option<u64> {
    if !format::torn_write_evidence(bytes, pos as usize, next as usize) {
        return None;
    }
    let (mut at, mut count) = (next, 0);
    while let Some(found) = find_valid_record(bytes, at, min_lsn, max_stored_len) {
        match RecordHeader::decode(&bytes[found as usize..], max_stored_len) {
            Ok(h) if !h.is_sync_start() => at = found + h.total_len(),
            _ => return None,
        }
        count += 1;
    }
    Some(count)
}

/// Finds the first offset at or after `from` holding a complete, CRC-valid record with an LSN of
/// at least `min_lsn`. Used only on the failure path.
fn find_valid_record(bytes: &[u8], from: u64, min_lsn: Lsn, max_stored_len: u32) -> Option<u64> {
    let marker = RECORD_MARKER.to_le_bytes();
    let mut at = from as usize;
    while at + RECORD_HEADER_LEN <= bytes.len() {
        if bytes[at + 4] == marker[0]
            && bytes[at + 5] == marker[1]
            && let Ok((h, _)) = format::verify_record(&bytes[at..], max_stored_len)
            && h.lsn >= min_lsn
        {
            return Some(at as u64);
        }
        at += 1;
    }
    None
}

/// The active segment as recovered, ready for the writer.
pub(crate) struct RecoveredActive {
    pub(crate) segment: Arc<Segment>,
    pub(crate) file: Box<dyn StorageFile>,
    pub(crate) write_offset: u64,
    pub(crate) last_lsn: Lsn,
    pub(crate) last_crc: u32,
    pub(crate) record_count: u64,
    pub(crate) last_timestamp_us: u64,
    /// Offset of the last record in the segment (0 if none).
    pub(crate) last_record_offset: u64,
    /// End of the zero-filled space after `write_offset` (the file's length; `write_offset` if
    /// there is none).
    pub(crate) preallocated_end: u64,
    /// The segment's format version: the writer marks new writes ([`format::FLAG_SYNC_START`])
    /// and preallocates only in segments of [`format::FORMAT_VERSION`] 2 and later.
    pub(crate) segment_version: u16,
}

/// Everything `open` needs to start the writer and readers.
pub(crate) struct Recovered {
    pub(crate) log_id: u64,
    pub(crate) sealed: Vec<Arc<Segment>>,
    pub(crate) active: RecoveredActive,
    pub(crate) report: RecoveryReport,
    /// `LOCK`, open for writing: where `close` leaves the clean-close record.
    pub(crate) lock_file: Box<dyn StorageFile>,
    /// Whether `LOCK` holds a clean-close record that is still valid (it was trusted and nothing
    /// has been written since); the writer clears it durably before its first write.
    pub(crate) clean_close_on_disk: bool,
}

/// Largest stored payload a record may have under `config`.
/// Stored records are bounded by the format's ceiling (1 GiB), not by the configured maximum:
/// the configured maximum limits new appends only, so a log written with a larger limit still
/// opens and reads with a smaller one.
pub(crate) fn max_stored_len(config: &WalConfig) -> u32 {
    let _ = config;
    format::MAX_STORED_RECORD_BYTES
}

fn read_whole(storage: &dyn Storage, path: &Path) -> Result<Vec<u8>, WalError> {
    let file = storage.open(path, false).map_err(|e| WalError::io("open", path, e))?;
    let len = file.len().map_err(|e| WalError::io("stat", path, e))?;
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, 0).map_err(|e| WalError::io("read", path, e))?;
    Ok(buf)
}

fn read_header(storage: &dyn Storage, path: &Path, file: &dyn StorageFile) -> Result<SegmentHeader, WalError> {
    let mut buf = [0u8; SEGMENT_HEADER_LEN];
    let len = file.len().map_err(|e| WalError::io("stat", path, e))?;
    if len < SEGMENT_HEADER_LEN as u64 {
        return Err(WalError::ForeignSegment {
            path: path.to_path_buf(),
            detail: format!("file of {len} bytes is shorter than a segment header"),
        });
    }
    let _ = storage;
    file.read_exact_at(&mut buf, 0).map_err(|e| WalError::io("read", path, e))?;
    SegmentHeader::decode(&buf).map_err(|e| match e {
        FrameError::BadChecksum { .. } | FrameError::Invalid(_) => WalError::Corruption {
            segment: path.to_path_buf(),
            offset: 0,
            lsn: None,
            detail: format!("segment header: {e}"),
        },
        other => WalError::ForeignSegment { path: path.to_path_buf(), detail: format!("segment header: {other}") },
    })
}

/// Reads and validates the footer of a sealed segment, if the file ends in one.
fn read_footer(path: &Path, file: &dyn StorageFile) -> Result<Result<Footer, FrameError>, WalError> {
    let len = file.len().map_err(|e| WalError::io("stat", path, e))?;
    if len < (SEGMENT_HEADER_LEN + TRAILER_LEN) as u64 {
        return Ok(Err(FrameError::Truncated {
            needed_bytes: (SEGMENT_HEADER_LEN + TRAILER_LEN) as u64,
            available_bytes: len,
        }));
    }
    let mut trailer = [0u8; TRAILER_LEN];
    file.read_exact_at(&mut trailer, len - TRAILER_LEN as u64).map_err(|e| WalError::io("read", path, e))?;
    let (offset, footer_len, _) = match Footer::decode_trailer(&trailer, len) {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    let mut buf = vec![0u8; footer_len];
    file.read_exact_at(&mut buf, offset).map_err(|e| WalError::io("read", path, e))?;
    Ok(Footer::decode(&buf, offset))
}

fn new_log_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_us());
    h.write_u32(std::process::id());
    h.finish() | 1
}

/// Creates a new segment crash-safely: header into `NAME.tmp`, fsync, rename, fsync directory.
pub(crate) fn create_segment(
    storage: &dyn Storage,
    dir: &Path,
    header: &SegmentHeader,
) -> Result<(Box<dyn StorageFile>, PathBuf), WalError> {
    let path = dir.join(format::segment_file_name(header.first_lsn));
    let tmp = dir.join(format!("{}{TEMP_SUFFIX}", format::segment_file_name(header.first_lsn)));
    if storage.exists(&tmp).map_err(|e| WalError::io("stat", &tmp, e))? {
        storage.remove_file(&tmp).map_err(|e| WalError::io("remove", &tmp, e))?;
    }
    let file = storage.create_new(&tmp).map_err(|e| WalError::io("create", &tmp, e))?;
    file.write_all_at(&header.encode(), 0).map_err(|e| WalError::io("write", &tmp, e))?;
    file.sync_data().map_err(|e| WalError::io("fdatasync", &tmp, e))?;
    drop(file);
    storage.rename(&tmp, &path).map_err(|e| WalError::io("rename", &path, e))?;
    storage.sync_dir(dir).map_err(|e| WalError::io("fsync directory", dir, e))?;
    let file = storage.open(&path, true).map_err(|e| WalError::io("open", &path, e))?;
    Ok((file, path))
}

/// Writes a footer at `data_end_offset` of `file` (truncating anything after it) and syncs it.
pub(crate) fn write_footer(path: &Path, file: &dyn StorageFile, footer: &Footer) -> Result<(), WalError> {
    let mut buf = Vec::with_capacity(footer.encoded_len());
    footer.encode(&mut buf);
    file.set_len(footer.data_end_offset).map_err(|e| WalError::io("truncate", path, e))?;
    file.write_all_at(&buf, footer.data_end_offset).map_err(|e| WalError::io("write", path, e))?;
    file.sync_data().map_err(|e| WalError::io("fdatasync", path, e))?;
    Ok(())
}

/// `LOCK` open for writing, and what it held at open (`None` if it was empty).
type LockFile = (Box<dyn StorageFile>, Option<Vec<u8>>);

/// Opens `LOCK` for reading and writing (creating it if this storage's lock did not) and reads
/// what it holds: empty normally, a clean-close record after a clean close. Contents longer
/// than any valid record are not read (`Some` of an empty vector: invalid).
fn open_lock_file(storage: &dyn Storage, dir: &Path) -> Result<LockFile, WalError> {
    let path = dir.join(LOCK_FILE_NAME);
    let file = if storage.exists(&path).map_err(|e| WalError::io("stat", &path, e))? {
        storage.open(&path, true).map_err(|e| WalError::io("open", &path, e))?
    } else {
        storage.create_new(&path).map_err(|e| WalError::io("create", &path, e))?
    };
    let len = file.len().map_err(|e| WalError::io("stat", &path, e))?;
    if len == 0 {
        return Ok((file, None));
    }
    if len > MAX_CLEAN_CLOSE_LEN as u64 {
        return Ok((file, Some(Vec::new())));
    }
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, 0).map_err(|e| WalError::io("read", &path, e))?;
    Ok((file, Some(buf)))
}

/// Empties `LOCK` durably (`set_len(0)` + `fdatasync`): a clean-close record is invalid from now
/// on, also after a crash or power loss. Called before anything that could change the active
/// segment.
pub(crate) fn clear_clean_close(dir: &Path, file: &dyn StorageFile) -> Result<(), WalError> {
    let path = dir.join(LOCK_FILE_NAME);
    file.set_len(0).map_err(|e| WalError::io("truncate", &path, e))?;
    file.sync_data().map_err(|e| WalError::io("fdatasync", &path, e))?;
    Ok(())
}

/// Writes `record` into `LOCK` and `fdatasync`s it. The caller has made every byte of the active
/// segment durable first.
pub(crate) fn write_clean_close(dir: &Path, file: &dyn StorageFile, record: &CleanClose) -> Result<(), WalError> {
    let path = dir.join(LOCK_FILE_NAME);
    let mut buf = Vec::with_capacity(record.encoded_len());
    record.encode(&mut buf);
    file.set_len(0).map_err(|e| WalError::io("truncate", &path, e))?;
    file.write_all_at(&buf, 0).map_err(|e| WalError::io("write", &path, e))?;
    file.sync_data().map_err(|e| WalError::io("fdatasync", &path, e))?;
    Ok(())
}

/// A clean-close record that passed every check, with what `open` needs beyond it.
struct TrustedClean {
    record: CleanClose,
    last_timestamp_us: u64,
}

/// Decides whether the clean-close record `bytes` may stand in for a scan of the last segment
/// (`last`: its path and header). `Ok(Err(reason))`: not trusted. I/O errors are errors.
///
/// Trusted only if the record decodes (magic, version, CRC, consistency); names this log and
/// the last segment; the segment has no footer and is exactly `data_end_offset` bytes long; the
/// record at `last_record_offset` is valid, ends exactly there, ends its batch and carries
/// `last_lsn` and `last_crc`; and the records at the first and last index entries carry the
/// LSNs the index says (the first also the header's chain seed).
fn check_clean_close(
    storage: &dyn Storage,
    config: &WalConfig,
    bytes: &[u8],
    last: Option<(&Path, &SegmentHeader)>,
) -> Result<Result<TrustedClean, String>, WalError> {
    if !config.clean_close_record {
        return Ok(Err("clean-close records are turned off (WalConfig::clean_close_record)".to_string()));
    }
    if !matches!(config.recovery_mode, RecoveryMode::TolerateTornTail | RecoveryMode::AbsoluteConsistency) {
        return Ok(Err(format!("recovery mode {:?} always scans the active segment", config.recovery_mode)));
    }
    let record = match CleanClose::decode(bytes) {
        Ok(r) => r,
        Err(e) => return Ok(Err(format!("record does not decode: {e}"))),
    };
    let Some((path, header)) = last else { return Ok(Err("the log has no segment".to_string())) };
    if record.log_id != header.log_id {
        return Ok(Err(format!("record is of log {:#x}, not {:#x}", record.log_id, header.log_id)));
    }
    if record.segment_first_lsn != header.first_lsn {
        return Ok(Err(format!(
            "record describes segment {}, the last segment is {}",
            record.segment_first_lsn, header.first_lsn
        )));
    }
    let file = storage.open(path, false).map_err(|e| WalError::io("open", path, e))?;
    let len = file.len().map_err(|e| WalError::io("stat", path, e))?;
    if len != record.data_end_offset {
        return Ok(Err(format!("segment is {len} bytes, the record says {}", record.data_end_offset)));
    }
    if read_footer(path, file.as_ref())?.is_ok() {
        return Ok(Err("segment is sealed".to_string()));
    }
    if record.record_count == 0 {
        if record.last_crc != header.prev_crc {
            return Ok(Err("empty segment, but the record's last CRC is not the header's chain seed".to_string()));
        }
        return Ok(Ok(TrustedClean { record, last_timestamp_us: 0 }));
    }
    let read = |offset: u64, n: u64| -> Result<Vec<u8>, WalError> {
        let mut buf = vec![0u8; n as usize];
        file.read_exact_at(&mut buf, offset).map_err(|e| WalError::io("read", path, e))?;
        Ok(buf)
    };
    let max_len = format::MAX_STORED_RECORD_BYTES;
    // `decode` bounds this by the largest record the format allows, and the file is this long.
    let last_bytes = read(record.last_record_offset, record.data_end_offset - record.last_record_offset)?;
    let last_header = match format::verify_record(&last_bytes, max_len) {
        Ok((h, _)) => h,
        Err(e) => return Ok(Err(format!("last record at offset {}: {e}", record.last_record_offset))),
    };
    if last_header.total_len() != last_bytes.len() as u64
        || last_header.lsn != record.last_lsn
        || last_header.crc != record.last_crc
        || !last_header.is_batch_end()
    {
        return Ok(Err(format!(
            "last record at offset {} (LSN {}, CRC {:#010x}, {} bytes) is not the one the record names (LSN {}, CRC {:#010x}, {} bytes, batch end)",
            record.last_record_offset,
            last_header.lsn,
            last_header.crc,
            last_header.total_len(),
            record.last_lsn,
            record.last_crc,
            last_bytes.len()
        )));
    }
    let header_at = |offset: u64| -> Result<Result<RecordHeader, FrameError>, WalError> {
        Ok(RecordHeader::decode(&read(offset, RECORD_HEADER_LEN as u64)?, max_len))
    };
    match header_at(SEGMENT_HEADER_LEN as u64)? {
        Ok(h) if h.lsn == header.first_lsn && h.prev_crc == header.prev_crc => {}
        Ok(h) => return Ok(Err(format!("first record has LSN {} and chain seed {:#010x}", h.lsn, h.prev_crc))),
        Err(e) => return Ok(Err(format!("first record: {e}"))),
    }
    let Some(last_entry) = record.index.last() else {
        return Ok(Err("index is empty".to_string()));
    };
    match header_at(last_entry.offset)? {
        Ok(h) if h.lsn == last_entry.lsn => {}
        Ok(h) => return Ok(Err(format!("index entry {last_entry:?} points at LSN {}", h.lsn))),
        Err(e) => return Ok(Err(format!("index entry {last_entry:?}: {e}"))),
    }
    Ok(Ok(TrustedClean { last_timestamp_us: last_header.timestamp_us, record }))
}

struct Listed {
    segments: Vec<(Lsn, PathBuf)>,
    temps: Vec<PathBuf>,
}

fn list(storage: &dyn Storage, dir: &Path) -> Result<Listed, WalError> {
    let names = storage.list_dir(dir).map_err(|e| WalError::io("list directory", dir, e))?;
    let mut segments = Vec::new();
    let mut temps = Vec::new();
    for name in names {
        let path = dir.join(&name);
        if name == LOCK_FILE_NAME {
            continue;
        }
        if let Some(lsn) = format::parse_segment_file_name(&name) {
            segments.push((lsn, path));
        } else if name.strip_suffix(TEMP_SUFFIX).and_then(format::parse_segment_file_name).is_some() {
            temps.push(path);
        } else {
            return Err(WalError::UnknownFile { path });
        }
    }
    segments.sort_by_key(|(lsn, _)| *lsn);
    Ok(Listed { segments, temps })
}

/// Opens (or creates) the log in `dir` and recovers it.
pub(crate) fn recover(storage: &dyn Storage, dir: &Path, config: &WalConfig) -> Result<Recovered, WalError> {
    let mode = config.recovery_mode;
    let max_len = max_stored_len(config);
    let listed = list(storage, dir)?;
    let (lock_file, clean_close_bytes) = open_lock_file(storage, dir)?;
    let mut report = RecoveryReport {
        mode,
        segment_count: 0,
        sealed_segments_trusted: 0,
        records_recovered: 0,
        active_segment_trusted: false,
        clean_close_rejected: None,
        oldest_lsn: 1,
        last_lsn: 0,
        bytes_truncated: 0,
        torn_tail: None,
        preallocated_bytes: 0,
        skipped_ranges: Vec::new(),
        temp_files_removed: Vec::new(),
    };
    // Validate every segment name and header before touching anything (nothing is deleted if
    // something foreign is found).
    let mut headers = Vec::with_capacity(listed.segments.len());
    let mut log_id = None;
    for (lsn, path) in &listed.segments {
        let file = storage.open(path, false).map_err(|e| WalError::io("open", path, e))?;
        let header = read_header(storage, path, file.as_ref())?;
        if header.first_lsn != *lsn {
            return Err(WalError::ForeignSegment {
                path: path.clone(),
                detail: format!("file name says first LSN {lsn}, header says {}", header.first_lsn),
            });
        }
        match log_id {
            None => log_id = Some(header.log_id),
            Some(id) if id != header.log_id => {
                return Err(WalError::ForeignSegment {
                    path: path.clone(),
                    detail: format!("belongs to log {:#x}, not {id:#x}", header.log_id),
                });
            }
            Some(_) => {}
        }
        headers.push(header);
    }
    // A clean-close record is trusted in full or not at all, and one not trusted is cleared
    // durably before anything in the directory changes.
    let mut trusted_clean = None;
    if let Some(bytes) = &clean_close_bytes {
        let last = listed.segments.last().map(|(_, path)| path.as_path()).zip(headers.last());
        match check_clean_close(storage, config, bytes, last)? {
            Ok(t) => trusted_clean = Some(t),
            Err(reason) => {
                tracing::warn!(dir = %dir.display(), reason, "not trusting the clean-close record; scanning");
                report.clean_close_rejected = Some(reason);
                clear_clean_close(dir, lock_file.as_ref())?;
            }
        }
    }
    let clean_close_on_disk = trusted_clean.is_some();
    for tmp in &listed.temps {
        storage.remove_file(tmp).map_err(|e| WalError::io("remove", tmp, e))?;
        report.temp_files_removed.push(tmp.clone());
    }
    if !listed.temps.is_empty() {
        storage.sync_dir(dir).map_err(|e| WalError::io("fsync directory", dir, e))?;
    }

    if listed.segments.is_empty() {
        let header = SegmentHeader {
            version: format::FORMAT_VERSION,
            log_id: new_log_id(),
            first_lsn: 1,
            prev_last_lsn: 0,
            prev_crc: 0,
            created_at_us: now_us(),
        };
        let (file, path) = create_segment(storage, dir, &header)?;
        let segment = Arc::new(Segment::new_active(1, path, Vec::new(), SEGMENT_HEADER_LEN as u64, 0));
        report.segment_count = 1;
        return Ok(Recovered {
            log_id: header.log_id,
            sealed: Vec::new(),
            active: RecoveredActive {
                segment,
                file,
                write_offset: SEGMENT_HEADER_LEN as u64,
                last_lsn: 0,
                last_crc: 0,
                record_count: 0,
                last_timestamp_us: 0,
                last_record_offset: 0,
                preallocated_end: SEGMENT_HEADER_LEN as u64,
                segment_version: header.version,
            },
            report,
            lock_file,
            clean_close_on_disk,
        });
    }

    let log_id = log_id.unwrap_or_default();
    let mut sealed: Vec<Arc<Segment>> = Vec::new();
    let mut active: Option<RecoveredActive> = None;
    let last_index = listed.segments.len() - 1;
    for (i, ((_, path), header)) in listed.segments.iter().zip(&headers).enumerate() {
        // Chain check against the previous segment.
        if let Some(prev) = sealed.last() {
            let prev_footer = prev.footer.get().expect("sealed segments have footers");
            let gap_allowed = mode == RecoveryMode::SkipCorrupted;
            let lsn_ok = header.prev_last_lsn == prev_footer.last_lsn && header.first_lsn == prev_footer.last_lsn + 1;
            let crc_ok = header.prev_crc == prev_footer.last_crc;
            let follows = lsn_ok && crc_ok;
            let salvage_gap = gap_allowed && header.first_lsn > prev_footer.last_lsn;
            if !follows && salvage_gap && header.first_lsn > prev_footer.last_lsn + 1 {
                report.skipped_ranges.push(SkippedRange {
                    segment: path.clone(),
                    start_offset: 0,
                    end_offset: 0,
                    lost_lsns: Some((prev_footer.last_lsn + 1, header.first_lsn - 1)),
                });
            }
            if !follows && !salvage_gap {
                return Err(WalError::Corruption {
                    segment: path.clone(),
                    offset: 0,
                    lsn: Some(header.first_lsn),
                    detail: format!(
                        "segment does not follow its predecessor (ends at LSN {}, CRC {:#010x}; this one starts at {} after {} / {:#010x}); a segment may be missing",
                        prev_footer.last_lsn,
                        prev_footer.last_crc,
                        header.first_lsn,
                        header.prev_last_lsn,
                        header.prev_crc
                    ),
                });
            }
        }
        if i == last_index
            && let Some(TrustedClean { record, last_timestamp_us }) = trusted_clean.take()
        {
            // Closed cleanly and unchanged since: no scan, nothing to truncate or sync.
            let file = storage.open(path, true).map_err(|e| WalError::io("open", path, e))?;
            report.active_segment_trusted = true;
            report.records_recovered += record.record_count;
            let segment = Arc::new(Segment::new_active(
                header.first_lsn,
                path.clone(),
                record.index,
                record.data_end_offset,
                record.last_lsn,
            ));
            active = Some(RecoveredActive {
                segment,
                file,
                write_offset: record.data_end_offset,
                last_lsn: record.last_lsn,
                last_crc: record.last_crc,
                record_count: record.record_count,
                last_timestamp_us,
                last_record_offset: record.last_record_offset,
                preallocated_end: record.data_end_offset,
                segment_version: header.version,
            });
            continue;
        }
        let file = storage.open(path, i == last_index).map_err(|e| WalError::io("open", path, e))?;
        let footer = read_footer(path, file.as_ref())?;
        match footer {
            Ok(footer) if footer.first_lsn == header.first_lsn => {
                report.sealed_segments_trusted += 1;
                sealed.push(Arc::new(Segment::new_sealed(path.clone(), footer)));
                continue;
            }
            Ok(_) => {
                if i != last_index {
                    return Err(WalError::Corruption {
                        segment: path.clone(),
                        offset: 0,
                        lsn: Some(header.first_lsn),
                        detail: "footer describes another segment".to_string(),
                    });
                }
            }
            Err(e) if i != last_index && mode != RecoveryMode::SkipCorrupted => {
                return Err(WalError::Corruption {
                    segment: path.clone(),
                    offset: file.len().unwrap_or(0),
                    lsn: None,
                    detail: format!("sealed segment has no valid footer: {e}"),
                });
            }
            Err(_) => {}
        }
        // Scan: the active segment, or (salvage only) a damaged sealed one.
        let bytes = read_whole(storage, path)?;
        let scan = scan_segment(&bytes, header, mode, max_len, config.index_interval_bytes, i == last_index);
        let file_len = bytes.len() as u64;
        match &scan.outcome {
            ScanOutcome::Clean => {
                if scan.zero_tail_bytes > 0 {
                    tracing::debug!(segment = %path.display(), offset = scan.valid_end_offset, bytes = scan.zero_tail_bytes, "zero-filled (preallocated) tail after the last batch");
                }
            }
            ScanOutcome::Corruption { offset, lsn, detail } => {
                return Err(WalError::Corruption {
                    segment: path.clone(),
                    offset: *offset,
                    lsn: Some(*lsn),
                    detail: format!(
                        "{detail} (open with RecoveryMode::PointInTime to truncate here, or SkipCorrupted to salvage)"
                    ),
                });
            }
            ScanOutcome::TornTail { offset, records_dropped, reason } => {
                if mode == RecoveryMode::AbsoluteConsistency {
                    return Err(WalError::IncompleteTail {
                        segment: path.clone(),
                        offset: *offset,
                        bytes: file_len - offset,
                    });
                }
                tracing::warn!(segment = %path.display(), offset, bytes = file_len - offset, records_dropped, reason, "truncating torn tail");
                report.bytes_truncated += file_len - offset;
                report.torn_tail = Some(TornTail {
                    segment: path.clone(),
                    offset: *offset,
                    bytes: file_len - offset,
                    records_dropped: *records_dropped,
                    reason: reason.clone(),
                });
            }
        }
        for hole in &scan.holes {
            report.skipped_ranges.push(SkippedRange {
                segment: path.clone(),
                start_offset: hole.start_offset,
                end_offset: hole.end_offset,
                lost_lsns: None,
            });
        }
        report.records_recovered += scan.record_count;
        let writable =
            if i == last_index { file } else { storage.open(path, true).map_err(|e| WalError::io("open", path, e))? };
        let needs_seal = i != last_index || !scan.holes.is_empty();
        if needs_seal && scan.record_count > 0 {
            // Salvage: make the repaired segment sealed so readers can trust its holes.
            let footer = Footer {
                first_lsn: scan.index.first().map(|e| e.lsn).unwrap_or(header.first_lsn),
                last_lsn: scan.last_lsn,
                record_count: scan.record_count,
                data_end_offset: scan.valid_end_offset,
                last_crc: scan.last_crc,
                sealed_at_us: now_us(),
                index: scan.index.clone(),
                holes: scan.holes.clone(),
            };
            let first_at_header = footer.index.first().map(|e| e.offset) == Some(SEGMENT_HEADER_LEN as u64);
            if footer.first_lsn != header.first_lsn || !first_at_header {
                // The very first record was lost: record a hole at the start is not expressible as
                // an index entry at the header; keep it active-only and fail loudly instead. (Even
                // when the record after the hole carries the first LSN: a footer whose index does
                // not start at the header end fails `Footer::decode` on the next open.)
                return Err(WalError::Corruption {
                    segment: path.clone(),
                    offset: SEGMENT_HEADER_LEN as u64,
                    lsn: Some(header.first_lsn),
                    detail: "the first record of the segment is damaged; salvage cannot keep this segment".to_string(),
                });
            }
            write_footer(path, writable.as_ref(), &footer)?;
            sealed.push(Arc::new(Segment::new_sealed(path.clone(), footer)));
            if i == last_index {
                active = None;
            }
            continue;
        }
        // A zero-filled tail after the data is preallocated space. A writer that preallocates
        // keeps it (durable now, by the sync below, so it need not be zero-filled again); one
        // that does not (`None`, `IntervalMs`, or `preallocate_bytes` 0) has it cut, since its
        // unsynced writes must not half-overwrite synced zeros and half grow the file (a power
        // loss could then keep the grown part and lose the part before it). Anything else past
        // the end of the data is cut too.
        let zero_tail = if scan.outcome == ScanOutcome::Clean { scan.zero_tail_bytes } else { 0 };
        report.preallocated_bytes += zero_tail;
        // (A version 1 segment, from an older build, is never preallocated into: its records
        // cannot mark new writes, so an interrupted overwrite there would read as corruption.)
        let preallocates =
            config.effective_preallocate_bytes() > 0 && header.version >= format::SYNC_START_FORMAT_VERSION;
        let kept_zero_tail = if preallocates { zero_tail } else { 0 };
        if scan.valid_end_offset + kept_zero_tail < file_len {
            writable.set_len(scan.valid_end_offset).map_err(|e| WalError::io("truncate", path, e))?;
        }
        // Always sync what recovery keeps: after a process crash the page cache may hold records
        // that were never fsynced, and from now on they count as durable.
        writable.sync_data().map_err(|e| WalError::io("fdatasync", path, e))?;
        storage.sync_dir(dir).map_err(|e| WalError::io("fsync directory", dir, e))?;
        if i != last_index {
            // Salvage of a sealed segment with nothing valid in it: keep scanning the rest.
            return Err(WalError::Corruption {
                segment: path.clone(),
                offset: SEGMENT_HEADER_LEN as u64,
                lsn: Some(header.first_lsn),
                detail: "sealed segment has no valid records".to_string(),
            });
        }
        let segment = Arc::new(Segment::new_active(
            header.first_lsn,
            path.clone(),
            scan.index.clone(),
            scan.valid_end_offset,
            scan.last_lsn,
        ));
        active = Some(RecoveredActive {
            segment,
            file: writable,
            write_offset: scan.valid_end_offset,
            last_lsn: scan.last_lsn,
            last_crc: scan.last_crc,
            record_count: scan.record_count,
            last_timestamp_us: scan.last_timestamp_us,
            last_record_offset: scan.last_record_offset,
            preallocated_end: scan.valid_end_offset + kept_zero_tail,
            segment_version: header.version,
        });
    }

    let active = match active {
        Some(a) => a,
        None => {
            // The last segment is sealed: start a new active segment after it.
            let last = sealed.last().expect("at least one segment").footer.get().expect("sealed").clone();
            let header = SegmentHeader {
                version: format::FORMAT_VERSION,
                log_id,
                first_lsn: last.last_lsn + 1,
                prev_last_lsn: last.last_lsn,
                prev_crc: last.last_crc,
                created_at_us: now_us(),
            };
            let (file, path) = create_segment(storage, dir, &header)?;
            let segment = Arc::new(Segment::new_active(
                header.first_lsn,
                path,
                Vec::new(),
                SEGMENT_HEADER_LEN as u64,
                last.last_lsn,
            ));
            RecoveredActive {
                segment,
                file,
                write_offset: SEGMENT_HEADER_LEN as u64,
                last_lsn: last.last_lsn,
                last_crc: last.last_crc,
                record_count: 0,
                last_timestamp_us: last.sealed_at_us.min(now_us()),
                last_record_offset: 0,
                preallocated_end: SEGMENT_HEADER_LEN as u64,
                segment_version: header.version,
            }
        }
    };
    report.segment_count = sealed.len() + 1;
    report.oldest_lsn = sealed.first().map(|s| s.first_lsn).unwrap_or(active.segment.first_lsn);
    report.last_lsn = active.last_lsn;
    Ok(Recovered { log_id, sealed, active, report, lock_file, clean_close_on_disk })
}
