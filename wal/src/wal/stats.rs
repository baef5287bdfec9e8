//! Counters the log keeps for benchmarks, status pages and metrics: plain atomics bumped on
//! the paths that already do the work, read without locks.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters for benchmarks and status pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Records appended since open.
    pub records_appended: u64,
    /// Append calls (single or batch) since open.
    pub append_calls: u64,
    /// `fdatasync` calls on segment data since open.
    pub data_syncs: u64,
    /// Total time those `fdatasync` calls took, in microseconds.
    pub data_sync_us: u64,
    /// Record bytes written to segment files since open (preallocated zeros not included).
    pub bytes_written: u64,
    /// Segments sealed since open.
    pub segments_sealed: u64,
    /// Group-commit leaders that waited for in-flight appenders before writing
    /// ([`WalConfig::group_commit_gather_max_us`]).
    pub group_commit_gathers: u64,
    /// Total time those leaders waited, in microseconds.
    pub group_commit_gather_us: u64,
    /// Group-commit syncs led by the flusher thread ([`WalConfig::group_commit_flusher`]),
    /// counted in `data_syncs` too.
    pub flusher_syncs: u64,
    /// Group-commit followers that woke by the safety-net timeout instead of being woken by the
    /// sync that covered them (0 unless a sync took longer than the timeout, 50 ms).
    pub group_commit_park_timeouts: u64,
    /// Zero-fills of the active segment ahead of the write offset
    /// ([`WalConfig::preallocate_bytes`]); each ends in one `fdatasync`, not counted in
    /// `data_syncs`.
    pub preallocations: u64,
    /// Zero bytes those fills wrote (not counted in `bytes_written`).
    pub bytes_preallocated: u64,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) records_appended: AtomicU64,
    pub(super) append_calls: AtomicU64,
    pub(super) data_syncs: AtomicU64,
    pub(super) data_sync_us: AtomicU64,
    pub(super) bytes_written: AtomicU64,
    pub(super) segments_sealed: AtomicU64,
    pub(super) group_commit_gathers: AtomicU64,
    pub(super) group_commit_gather_us: AtomicU64,
    pub(super) group_commit_park_timeouts: AtomicU64,
    pub(super) flusher_syncs: AtomicU64,
    pub(super) preallocations: AtomicU64,
    pub(super) bytes_preallocated: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> WalStats {
        WalStats {
            records_appended: self.records_appended.load(Ordering::Relaxed),
            append_calls: self.append_calls.load(Ordering::Relaxed),
            data_syncs: self.data_syncs.load(Ordering::Relaxed),
            data_sync_us: self.data_sync_us.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            segments_sealed: self.segments_sealed.load(Ordering::Relaxed),
            group_commit_gathers: self.group_commit_gathers.load(Ordering::Relaxed),
            group_commit_gather_us: self.group_commit_gather_us.load(Ordering::Relaxed),
            group_commit_park_timeouts: self.group_commit_park_timeouts.load(Ordering::Relaxed),
            flusher_syncs: self.flusher_syncs.load(Ordering::Relaxed),
            preallocations: self.preallocations.load(Ordering::Relaxed),
            bytes_preallocated: self.bytes_preallocated.load(Ordering::Relaxed),
        }
    }
}
