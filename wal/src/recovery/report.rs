//! What recovery found and did, as returned by [`crate::Wal::recovery_report`].

use std::path::PathBuf;

use crate::Lsn;
use crate::config::RecoveryMode;

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
    /// preallocated ([`WalConfig::preallocate_bytes`](crate::WalConfig::preallocate_bytes)), neither data nor a torn tail, so not in
    /// `bytes_truncated`. Kept when this log preallocates
    /// ([`WalConfig::effective_preallocate_bytes`](crate::WalConfig::effective_preallocate_bytes) > 0: the writer resumes at the end of the data
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

impl RecoveryReport {
    /// An empty report for a recovery in `mode`.
    pub(crate) fn new(mode: RecoveryMode) -> RecoveryReport {
        RecoveryReport {
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
        }
    }
}
