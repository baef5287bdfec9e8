//! Configuration: sizes, durability and recovery modes.

use crate::WalError;

/// When an append is acknowledged relative to `fdatasync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Every append call writes and `fdatasync`s its own records before returning; appends are
    /// serialised (no sharing of syncs).
    Always,
    /// Group commit: appends return only once their records are `fdatasync`ed, but concurrent
    /// appenders share syncs: one leader writes everything queued and syncs once.
    Group,
    /// Appends are buffered like `None`; a background thread writes and syncs every `n`
    /// milliseconds. A crash may lose up to that window.
    IntervalMs(u64),
    /// No syncing except when sealing segments and on `sync()`/`close()`. Records are buffered
    /// in memory and reach the OS when the buffer fills, on `flush()`, or when a reader waits.
    None,
}

impl SyncMode {
    /// Whether an acknowledged append is durable on return.
    pub fn is_durable(self) -> bool {
        matches!(self, SyncMode::Always | SyncMode::Group)
    }
}

/// How `open` treats damage in the active (last) segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// An incomplete or invalid record at the very end is a torn write: truncate it and report it.
    /// A bad record followed by valid data is corruption: fail. (Default.)
    #[default]
    TolerateTornTail,
    /// Any incomplete or invalid byte fails the open; nothing is truncated.
    AbsoluteConsistency,
    /// Stop at the first bad record and truncate everything after it, even valid records.
    PointInTime,
    /// Salvage: skip damaged ranges and keep every valid record after them. The damaged segment
    /// is sealed with the skipped ranges recorded in its footer; LSNs may then have gaps.
    SkipCorrupted,
}

/// Upper bound of [`WalConfig::group_commit_gather_max_us`] (1 s): a longer wait would only
/// add latency.
pub const MAX_GROUP_COMMIT_GATHER_US: u64 = 1_000_000;

/// The preallocation window this crate recommends (4 MiB): 1.5–2 × faster durable commits on
/// ext4 (docs/bench-log/2026-12-01-peers-preallocation-opted-in.md). The default of
/// [`WalConfig::preallocate_bytes`].
pub const RECOMMENDED_PREALLOCATE_BYTES: u64 = 4 << 20;

/// Default of [`WalConfig::preallocate_bytes`]: [`RECOMMENDED_PREALLOCATE_BYTES`] (4 MiB; 0 turns
/// preallocation off).
pub const DEFAULT_PREALLOCATE_BYTES: u64 = RECOMMENDED_PREALLOCATE_BYTES;

/// Upper bound of [`WalConfig::preallocate_bytes`] (1 GiB).
pub const MAX_PREALLOCATE_BYTES: u64 = 1 << 30;

/// WAL configuration. `WalConfig::default()` is sized for a laptop.
#[derive(Debug, Clone)]
pub struct WalConfig {
    /// A segment is sealed once it holds at least this many bytes (default 64 MiB).
    pub target_segment_size_bytes: u64,
    /// A segment is sealed once it holds this many records (default 1,000,000).
    pub max_records_per_segment: u64,
    /// Largest payload accepted (default 4 MiB); larger → `RecordTooLarge`.
    pub max_record_size_bytes: u32,
    /// Largest encoded batch accepted (default 64 MiB); larger → `BatchTooLarge`.
    pub max_batch_size_bytes: u64,
    /// Durability of acknowledged appends (default `Group`).
    pub sync_mode: SyncMode,
    /// What `open` does with a damaged tail (default `TolerateTornTail`).
    pub recovery_mode: RecoveryMode,
    /// Payloads of at least this many bytes are zstd-compressed when that makes them smaller
    /// (default `None`: never compress).
    pub compression_threshold_bytes: Option<u32>,
    /// zstd level for compressed payloads (default 3).
    pub compression_level: i32,
    /// Verify each record's CRC when reading (default true). Structure, LSN and chain are always
    /// checked.
    pub verify_checksums_on_read: bool,
    /// Distance in bytes between sparse-index entries (default 32 KiB).
    pub index_interval_bytes: u64,
    /// Buffered bytes after which non-durable modes hand records to the OS (default 256 KiB).
    pub write_buffer_bytes: usize,
    /// Group commit: longest a leader waits, in microseconds, for appenders that are already
    /// committing to queue their batches before it writes and `fdatasync`s (default 2,000 µs;
    /// 0 turns the wait off: the leader syncs at once).
    ///
    /// The leader waits only while fewer batches are queued than appenders are in flight
    /// (between entering `append_batch` and returning from it), and never longer than half the
    /// recent `fdatasync` duration, so a lone writer never waits and the wait costs at most a
    /// fraction of the sync it shares. It sleeps on a condition variable (no spinning) and is
    /// woken as soon as every in-flight appender has queued or left. Acknowledgements still
    /// follow the `fdatasync` (only `SyncMode::Group` gathers). Like PostgreSQL's
    /// `commit_delay`/`commit_siblings`.
    pub group_commit_gather_max_us: u64,
    /// Group commit: whether a background thread (`walden-wal-flusher`) takes over leading
    /// the syncs while commits keep coming (default true; only `SyncMode::Group` starts it).
    ///
    /// A committer that finds the `io` lock free leads its own sync, as always, so a lone
    /// writer pays nothing for it. When that sync ends and more batches were queued meanwhile,
    /// the committer hands them to the flusher and returns; the flusher writes and `fdatasync`s
    /// round after round, for as long as batches keep arriving, and then sleeps again. Without
    /// it, each sync's leader wakes one of the parked committers to lead the next, and on a
    /// busy machine that hand-off (a wake-up, then waiting for a CPU) sits between every two
    /// syncs; with it, none does, and no committer's call is held up leading syncs for others.
    /// Acknowledgements and the on-disk format are the same either way.
    pub group_commit_flusher: bool,
    /// Non-durable modes (`None`, `IntervalMs`): after this many bytes written to the active
    /// segment since the last time, ask the OS to start writing them back
    /// ([`StorageFile::start_writeback`](crate::StorageFile::start_writeback),
    /// `sync_file_range(SYNC_FILE_RANGE_WRITE)`), so the `fdatasync` that seals a full segment
    /// has little left to write and stalls the appender less (default 1 MiB; 0 = off). Makes
    /// nothing durable and changes no guarantee.
    pub writeback_interval_bytes: u64,
    /// Whether `Wal::close` leaves a clean-close record that the next `open` may trust instead
    /// of scanning the active segment (default true; `docs/FORMAT.md`, "Clean-close record").
    /// With `false`, close writes none and open trusts none (it still clears one it finds).
    pub clean_close_record: bool,
    /// Durable modes (`Always`, `Group`): bytes of zero-filled, `fdatasync`ed space the writer
    /// keeps ahead of its write offset in the active segment (default
    /// [`RECOMMENDED_PREALLOCATE_BYTES`], 4 MiB; 0 = off: the file grows with every append).
    /// Values above `target_segment_size_bytes` act as that size; at most
    /// [`MAX_PREALLOCATE_BYTES`].
    ///
    /// Why: on ext4 (and most journaling file systems) an `fdatasync` after an append that grows
    /// the file must commit the journal (new size, new blocks); one after overwriting blocks
    /// that are already written, inside the file's size, only writes the data. So whenever less
    /// than half the window is left, the commit leader writes real zeros (not `fallocate`,
    /// whose unwritten extents need a metadata change when first written) up to `window` bytes
    /// past the write offset, capped at `target_segment_size_bytes`, and `fdatasync`s once; the
    /// commits' own syncs inside that space are then data-only. Like PostgreSQL's zero-filled
    /// WAL segments. Recovery treats zeros after the last complete batch as preallocated space,
    /// not as a torn tail; sealing and `close` truncate them (`docs/FORMAT.md`).
    ///
    /// Not used by `SyncMode::None` and `IntervalMs` (their appends do not wait for a sync, so
    /// zero-filling would only double the bytes written), nor in a version 1 segment left by an
    /// older build (the next segment is preallocated).
    ///
    /// Overwrites of preallocated space are not ordered by a journal commit, so a power loss in
    /// the middle of a commit's `fdatasync` may keep some sectors of that (unacknowledged) write
    /// and not earlier ones. Every record marks whether it starts a new write
    /// ([`FLAG_SYNC_START`](crate::format::FLAG_SYNC_START)), so recovery tells such a write
    /// (damage holding a lost sector's zeros, followed only by records of the same write) from
    /// corruption and truncates it in every mode, as a torn tail (`docs/FORMAT.md`, "Recovery").
    pub preallocate_bytes: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            target_segment_size_bytes: 64 << 20,
            max_records_per_segment: 1_000_000,
            max_record_size_bytes: 4 << 20,
            max_batch_size_bytes: 64 << 20,
            sync_mode: SyncMode::Group,
            recovery_mode: RecoveryMode::TolerateTornTail,
            compression_threshold_bytes: None,
            compression_level: 3,
            verify_checksums_on_read: true,
            index_interval_bytes: 32 << 10,
            write_buffer_bytes: 256 << 10,
            group_commit_gather_max_us: 2_000,
            group_commit_flusher: true,
            writeback_interval_bytes: 1 << 20,
            clean_close_record: true,
            preallocate_bytes: DEFAULT_PREALLOCATE_BYTES,
        }
    }
}

impl WalConfig {
    /// Checks the configuration for values the log cannot work with.
    pub fn validate(&self) -> Result<(), WalError> {
        let bad = |s: &str| Err(WalError::InvalidConfig(s.to_string()));
        if self.target_segment_size_bytes < 4096 {
            return bad("target_segment_size_bytes must be at least 4096");
        }
        if self.max_records_per_segment == 0 {
            return bad("max_records_per_segment must be at least 1");
        }
        if self.max_record_size_bytes == 0 || self.max_record_size_bytes > (1 << 30) {
            return bad("max_record_size_bytes must be between 1 and 1 GiB");
        }
        if self.max_batch_size_bytes < u64::from(self.max_record_size_bytes) {
            return bad("max_batch_size_bytes must be at least max_record_size_bytes");
        }
        if let SyncMode::IntervalMs(0) = self.sync_mode {
            return bad("SyncMode::IntervalMs needs a positive interval");
        }
        if self.index_interval_bytes == 0 {
            return bad("index_interval_bytes must be positive");
        }
        if self.group_commit_gather_max_us > MAX_GROUP_COMMIT_GATHER_US {
            return bad("group_commit_gather_max_us must be at most 1,000,000 (1 s)");
        }
        if self.preallocate_bytes > MAX_PREALLOCATE_BYTES {
            return bad("preallocate_bytes must be at most 1 GiB");
        }
        Ok(())
    }

    /// The preallocation window actually used: [`preallocate_bytes`](Self::preallocate_bytes)
    /// capped at the target segment size, and 0 in modes that do not sync each commit.
    pub fn effective_preallocate_bytes(&self) -> u64 {
        if self.sync_mode.is_durable() { self.preallocate_bytes.min(self.target_segment_size_bytes) } else { 0 }
    }
}
