//! The log: appends with group commit, segment rotation and sealing, retention, and the shared
//! state readers use.
//!
//! Two locks, always taken in the order `io` → `append`:
//! - `append` guards LSN assignment and encoding into the pending queue (short, no I/O);
//! - `io` guards the active segment file; its holder (the leader) drains the pending queue,
//!   writes it, seals and creates segments, and fsyncs — so fsyncs run outside `append` and
//!   concurrent appenders keep queueing while one sync is in flight.
//!
//! A group-commit leader may first *gather* (`Shared::gather`): holding `io`, it sleeps on the
//! `gather` condvar (with the `append` guard, released while asleep) until every appender in
//! flight has queued its batch, for at most half the recent fsync time and
//! `WalConfig::group_commit_gather_max_us`. Appenders that complete the group wake it.
//!
//! A leader whose sync ends with more batches queued hands them to the group-commit flusher
//! thread (`flusher`, `WalConfig::group_commit_flusher`), which keeps leading while they keep
//! coming, instead of waking a parked committer to lead the next sync.

use std::collections::{BTreeMap, VecDeque};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};
use parking_lot_core::{DEFAULT_UNPARK_TOKEN, FilterOp, ParkResult, ParkToken};

use crate::config::{SyncMode, WalConfig};
use crate::format::{
    self, CleanClose, FLAG_BATCH_END, FLAG_COMPRESSED, FLAG_SYNC_START, Footer, IndexEntry, RECORD_HEADER_LEN,
    RecordHeader, SEGMENT_HEADER_LEN, SegmentHeader,
};
use crate::reader::Reader;
use crate::recovery::{self, RecoveryReport};
use crate::segment::{Segment, SegmentInfo};
use crate::storage::{StdStorage, Storage, StorageFile};
use crate::{Lsn, Result, WalError};

mod flusher;

/// Largest chunk buffer kept for reuse.
const SPARE_BUFFER_MAX_BYTES: usize = 4 << 20;
/// How many chunk buffers are kept for reuse.
const SPARE_BUFFERS_MAX: usize = 4;
/// A gathering group-commit leader waits at most the recent fdatasync time divided by this.
const GATHER_SYNC_DIVISOR: u64 = 2;
/// Longest a parked group-commit follower sleeps before it looks again by itself; a safety
/// net, since every `io` holder wakes the followers it covers.
const GROUP_PARK_TIMEOUT_MS: u64 = 50;

/// Called (outside the log's locks) each time a segment is sealed. The engine implements it to
/// tell the archiver; the WAL knows nothing of who listens.
pub trait SealListener: Send + Sync {
    /// `segment` has just been sealed: it is immutable and durable from now on.
    fn segment_sealed(&self, segment: &SegmentInfo);
}

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
struct Counters {
    records_appended: AtomicU64,
    append_calls: AtomicU64,
    data_syncs: AtomicU64,
    data_sync_us: AtomicU64,
    bytes_written: AtomicU64,
    segments_sealed: AtomicU64,
    group_commit_gathers: AtomicU64,
    group_commit_gather_us: AtomicU64,
    group_commit_park_timeouts: AtomicU64,
    flusher_syncs: AtomicU64,
    preallocations: AtomicU64,
    bytes_preallocated: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> WalStats {
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

/// Encoded records waiting to be written, all destined for one segment.
#[derive(Debug)]
struct Chunk {
    segment_first_lsn: Lsn,
    bytes: Vec<u8>,
    index: Vec<IndexEntry>,
    last_lsn: Lsn,
    last_crc: u32,
    records: u64,
    /// Where the last record starts within `bytes`.
    last_record_start: usize,
}

#[derive(Debug)]
struct AppendState {
    next_lsn: Lsn,
    prev_crc: u32,
    last_timestamp_us: u64,
    /// Segment the next batch goes to, and its size/records counting everything queued.
    seg_first_lsn: Lsn,
    seg_bytes: u64,
    seg_records: u64,
    /// Format version of that segment: records mark new writes ([`FLAG_SYNC_START`]) only in
    /// version 2 and later.
    seg_version: u16,
    last_index_offset: u64,
    pending: VecDeque<Chunk>,
    pending_bytes: usize,
    /// `SyncMode::Group` batches queued since the pending queue was last drained.
    group_queued: usize,
    /// Emptied chunk buffers handed back by the writer, reused to keep allocation off the hot path.
    spare_buffers: Vec<Vec<u8>>,
}

struct IoState {
    file: Box<dyn StorageFile>,
    segment: Arc<Segment>,
    write_offset: u64,
    last_lsn: Lsn,
    last_crc: u32,
    record_count: u64,
    /// Offset of the last record written to the active segment (0 if none).
    last_record_offset: u64,
    /// Whether bytes were written since the last fdatasync.
    unsynced: bool,
    /// Offset up to which write-back was started or synced (`writeback_interval_bytes`).
    writeback_from: u64,
    /// End of the zero-filled space after `write_offset` ([`Shared::preallocate`]): bytes
    /// `write_offset..preallocated_end` of the file are zeros (equal to `write_offset`, or below
    /// it once a batch ran past the preallocated space, when there is none).
    preallocated_end: u64,
    /// Format version of the active segment: only version 2 and later are preallocated into
    /// (an older build's version 1 segment is finished as it is; the next one is version 2).
    segment_version: u16,
    /// `LOCK`, where `close` leaves the clean-close record.
    lock_file: Box<dyn StorageFile>,
    /// Whether `LOCK` holds a clean-close record that is still valid. Cleared durably before
    /// the first write to any segment ([`Shared::clear_clean_close`]).
    clean_close_on_disk: bool,
}

/// State shared by the `Wal` handle, readers and the background syncer.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) config: WalConfig,
    log_id: u64,
    append: Mutex<AppendState>,
    io: Mutex<IoState>,
    pub(crate) segments: RwLock<BTreeMap<Lsn, Arc<Segment>>>,
    /// Highest LSN assigned (queued, maybe not written).
    assigned_lsn: AtomicU64,
    /// Highest LSN handed to the OS.
    written_lsn: AtomicU64,
    /// Highest LSN known durable.
    durable_lsn: AtomicU64,
    /// Highest LSN readers may see: durable in durable modes, written otherwise.
    visible_lsn: AtomicU64,
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
    closed: AtomicBool,
    notify_lock: Mutex<()>,
    notify: Condvar,
    waiters: AtomicUsize,
    /// `SyncMode::Group` appenders between queueing (about to) and returning.
    group_in_flight: AtomicUsize,
    /// Whether a leader is gathering (set and cleared under the `append` lock).
    gathering: AtomicBool,
    /// Wakes a gathering leader (waited on with the `append` guard).
    gather: Condvar,
    /// The group-commit flusher thread's controls (`flusher`).
    flusher: flusher::FlusherControl,
    /// Moving average of data fdatasync durations, µs (0 until the first).
    sync_avg_us: AtomicU64,
    stats: Counters,
    seal_listener: RwLock<Option<Arc<dyn SealListener>>>,
    sealed_queue: Mutex<Vec<SegmentInfo>>,
    /// Whether `sealed_queue` may be non-empty: set and cleared only while holding its lock, read
    /// without it so that appends do not take that lock when nothing was sealed.
    seals_pending: AtomicBool,
    report: RecoveryReport,
    /// Directory lock; released on close even while readers still hold `Shared`.
    dir_lock: Mutex<Option<Box<dyn std::any::Any + Send + Sync>>>,
}

/// An open write-ahead log. Cheap to share across threads (`&Wal` is `Sync`); every method takes
/// `&self`. See the crate documentation for an example.
pub struct Wal {
    shared: Arc<Shared>,
    syncer: Option<Syncer>,
    /// The group-commit flusher (`SyncMode::Group` with `group_commit_flusher`).
    flusher: Option<flusher::Flusher>,
}

struct Syncer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: std::thread::JoinHandle<()>,
}

/// One record to append.
struct Prepared<'a> {
    kind: u8,
    stored: std::borrow::Cow<'a, [u8]>,
    compressed: bool,
    payload_crc: u32,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.shared.dir)
            .field("next_lsn", &self.next_lsn())
            .field("durable_lsn", &self.durable_lsn())
            .finish()
    }
}

impl Wal {
    /// Opens the log in `dir` (created if missing) on the real file system and runs recovery.
    pub fn open(dir: impl AsRef<Path>, config: WalConfig) -> Result<Wal> {
        Wal::open_with_storage(dir, config, Arc::new(StdStorage))
    }

    /// Opens the log through a custom [`Storage`] (fault injection, in-memory tests).
    pub fn open_with_storage(dir: impl AsRef<Path>, config: WalConfig, storage: Arc<dyn Storage>) -> Result<Wal> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        storage.create_dir_all(&dir).map_err(|e| WalError::io("create directory", &dir, e))?;
        let lock_path = dir.join(recovery::LOCK_FILE_NAME);
        let lock = storage.lock_exclusive(&lock_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                WalError::Locked { path: lock_path.clone() }
            } else {
                WalError::io("lock", &lock_path, e)
            }
        })?;
        let rec = recovery::recover(storage.as_ref(), &dir, &config)?;
        let mut segments = BTreeMap::new();
        for seg in &rec.sealed {
            segments.insert(seg.first_lsn, seg.clone());
        }
        segments.insert(rec.active.segment.first_lsn, rec.active.segment.clone());
        let active = rec.active;
        let last_lsn = active.last_lsn;
        let append = AppendState {
            next_lsn: last_lsn + 1,
            prev_crc: active.last_crc,
            last_timestamp_us: active.last_timestamp_us,
            seg_first_lsn: active.segment.first_lsn,
            seg_bytes: active.write_offset,
            seg_records: active.record_count,
            seg_version: active.segment_version,
            last_index_offset: active.segment.active_index.read().last().map(|e| e.offset).unwrap_or(0),
            pending: VecDeque::new(),
            pending_bytes: 0,
            group_queued: 0,
            spare_buffers: Vec::new(),
        };
        let io = IoState {
            file: active.file,
            segment: active.segment,
            write_offset: active.write_offset,
            last_lsn,
            last_crc: active.last_crc,
            record_count: active.record_count,
            last_record_offset: active.last_record_offset,
            unsynced: false,
            writeback_from: active.write_offset,
            preallocated_end: active.preallocated_end,
            segment_version: active.segment_version,
            lock_file: rec.lock_file,
            clean_close_on_disk: rec.clean_close_on_disk,
        };
        tracing::info!(dir = %dir.display(), last_lsn, segments = segments.len(), "opened WAL");
        let shared = Arc::new(Shared {
            dir,
            storage,
            config: config.clone(),
            log_id: rec.log_id,
            append: Mutex::new(append),
            io: Mutex::new(io),
            segments: RwLock::new(segments),
            assigned_lsn: AtomicU64::new(last_lsn),
            written_lsn: AtomicU64::new(last_lsn),
            durable_lsn: AtomicU64::new(last_lsn),
            visible_lsn: AtomicU64::new(last_lsn),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            closed: AtomicBool::new(false),
            notify_lock: Mutex::new(()),
            notify: Condvar::new(),
            waiters: AtomicUsize::new(0),
            group_in_flight: AtomicUsize::new(0),
            gathering: AtomicBool::new(false),
            gather: Condvar::new(),
            flusher: flusher::FlusherControl::default(),
            sync_avg_us: AtomicU64::new(0),
            stats: Counters::default(),
            seal_listener: RwLock::new(None),
            sealed_queue: Mutex::new(Vec::new()),
            seals_pending: AtomicBool::new(false),
            report: rec.report,
            dir_lock: Mutex::new(Some(lock)),
        });
        let syncer = match config.sync_mode {
            SyncMode::IntervalMs(ms) => Some(Syncer::start(Arc::downgrade(&shared), Duration::from_millis(ms))),
            _ => None,
        };
        let flusher = if config.sync_mode == SyncMode::Group && config.group_commit_flusher {
            Some(flusher::Flusher::start(&shared)?)
        } else {
            None
        };
        Ok(Wal { shared, syncer, flusher })
    }

    /// What recovery found and did when this log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.shared.report
    }

    /// The configuration the log was opened with.
    pub fn config(&self) -> &WalConfig {
        &self.shared.config
    }

    /// The directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Random identifier shared by every segment of this log.
    pub fn log_id(&self) -> u64 {
        self.shared.log_id
    }

    /// Registers the listener told about each sealed segment (replacing any earlier one).
    pub fn set_seal_listener(&self, listener: Option<Arc<dyn SealListener>>) {
        *self.shared.seal_listener.write() = listener;
    }

    /// Appends one record; returns its LSN once it is acknowledged per the sync mode.
    pub fn append(&self, kind: u8, payload: &[u8]) -> Result<Lsn> {
        let range = self.append_batch([(kind, payload)])?;
        Ok(*range.start())
    }

    /// Appends records atomically (after a crash either all of them are in the log or none) with
    /// consecutive LSNs; returns the LSN range once acknowledged per the sync mode.
    pub fn append_batch<I, P>(&self, records: I) -> Result<RangeInclusive<Lsn>>
    where
        I: IntoIterator<Item = (u8, P)>,
        P: AsRef<[u8]>,
    {
        let shared = &self.shared;
        let cfg = &shared.config;
        let records: Vec<(u8, P)> = records.into_iter().collect();
        if records.is_empty() {
            return Err(WalError::EmptyBatch);
        }
        let mut prepared = Vec::with_capacity(records.len());
        let mut batch_bytes = 0u64;
        for (kind, payload) in &records {
            let payload = payload.as_ref();
            if payload.len() as u64 > u64::from(cfg.max_record_size_bytes) {
                return Err(WalError::RecordTooLarge {
                    size_bytes: payload.len() as u64,
                    max_bytes: u64::from(cfg.max_record_size_bytes),
                });
            }
            let mut p = Prepared {
                kind: *kind,
                stored: std::borrow::Cow::Borrowed(payload),
                compressed: false,
                payload_crc: 0,
            };
            if let Some(threshold) = cfg.compression_threshold_bytes
                && payload.len() >= threshold as usize
            {
                let stored = format::compress_payload(payload, cfg.compression_level)
                    .map_err(|e| WalError::io("compress", &shared.dir, e))?;
                if stored.len() < payload.len() {
                    p.stored = std::borrow::Cow::Owned(stored);
                    p.compressed = true;
                }
            }
            // Large payloads: CRC here, outside the append lock, combined with the header's
            // there. Small ones are hashed with their header under the lock (cheaper than the
            // combination; see `format::DIRECT_CRC_MAX_PAYLOAD_BYTES`).
            if format::payload_crc_needed(p.stored.len()) {
                p.payload_crc = format::crc32(&p.stored);
            }
            batch_bytes += (RECORD_HEADER_LEN + p.stored.len()) as u64;
            prepared.push(p);
        }
        if batch_bytes > cfg.max_batch_size_bytes {
            return Err(WalError::BatchTooLarge {
                size_bytes: batch_bytes,
                records: prepared.len() as u64,
                max_bytes: cfg.max_batch_size_bytes,
            });
        }
        shared.check_usable()?;
        let range = match cfg.sync_mode {
            SyncMode::Always => {
                let mut io = shared.io.lock();
                shared.check_usable()?;
                let range = shared.append.lock().encode_batch(cfg, &prepared, batch_bytes);
                shared.assigned_lsn.store(*range.end(), Ordering::Release);
                shared.write_pending(&mut io, true)?;
                range
            }
            SyncMode::Group => {
                let _in_flight = GroupInFlight::enter(shared);
                let range = {
                    let mut st = shared.append.lock();
                    let range = st.encode_batch(cfg, &prepared, batch_bytes);
                    st.group_queued += 1;
                    shared.wake_gatherer_if_complete(&st);
                    range
                };
                shared.assigned_lsn.fetch_max(*range.end(), Ordering::AcqRel);
                shared.wait_group_commit(*range.end())?;
                range
            }
            SyncMode::IntervalMs(_) | SyncMode::None => {
                let (range, buffer_full) = {
                    let mut st = shared.append.lock();
                    let range = st.encode_batch(cfg, &prepared, batch_bytes);
                    (range, st.pending_bytes >= cfg.write_buffer_bytes)
                };
                // Publish the LSN, then look for waiting readers (both SeqCst): a reader in
                // `wait_for` registers, then looks at the LSN (also SeqCst), so at least one side
                // sees the other and flushes. Looking for waiters before publishing could miss a
                // reader that registered in between and found the LSN not yet assigned: the
                // record would then stay buffered until the next append or the reader's timeout.
                shared.assigned_lsn.fetch_max(*range.end(), Ordering::SeqCst);
                let flush = buffer_full || shared.waiters.load(Ordering::SeqCst) > 0;
                if flush {
                    let mut io = shared.io.lock();
                    shared.check_usable()?;
                    shared.write_pending(&mut io, false)?;
                }
                range
            }
        };
        {
            shared.stats.append_calls.fetch_add(1, Ordering::Relaxed);
            shared.stats.records_appended.fetch_add(prepared.len() as u64, Ordering::Relaxed);
        }
        shared.fire_seal_notifications();
        Ok(range)
    }

    /// Hands every buffered record to the OS (no fsync) and makes it visible to readers in
    /// non-durable modes. In the durable modes (where only group-commit batches still waiting
    /// for their leader can be queued) it writes them and `fdatasync`s, as that leader would:
    /// every write there ends in a sync before the next one begins, which is what
    /// [`FLAG_SYNC_START`] records.
    pub fn flush(&self) -> Result<()> {
        self.shared.flush(false)
    }

    /// Writes and `fdatasync`s everything appended so far; returns the durable LSN.
    pub fn sync(&self) -> Result<Lsn> {
        self.shared.flush(true)?;
        Ok(self.durable_lsn())
    }

    /// Seals the active segment now (if it holds any record) and starts a new one.
    pub fn seal_active_segment(&self) -> Result<()> {
        let shared = &self.shared;
        let mut io = shared.io.lock();
        let result = (|| {
            shared.check_usable()?;
            // The append lock is held from the drain to the rotation: a batch queued in between
            // would be encoded for the segment being sealed. Appenders wait for this one sync.
            let mut st = shared.append.lock();
            let chunks = Shared::take_pending(&mut st);
            let emptied = shared.write_chunks(&mut io, chunks, true)?;
            Shared::keep_spare_buffers(&mut st, emptied);
            if io.record_count > 0 {
                let next = st.next_lsn;
                assert_eq!(next, io.last_lsn + 1, "everything queued was written before the seal");
                shared.rotate(&mut io, next)?;
                st.start_segment(next);
            }
            Ok(())
        })();
        // The sync covered every follower parked meanwhile.
        shared.release_io(io);
        result?;
        shared.fire_seal_notifications();
        Ok(())
    }

    /// Deletes every sealed segment whose records all lie below `lsn` (never the active one),
    /// oldest first, then fsyncs the directory; a crash midway leaves a contiguous suffix.
    /// Returns the removed segments.
    pub fn remove_segments_before(&self, lsn: Lsn) -> Result<Vec<SegmentInfo>> {
        let shared = &self.shared;
        let mut segments = shared.segments.write();
        let active_first = *segments.keys().next_back().expect("the active segment always exists");
        let doomed: Vec<Arc<Segment>> = segments
            .values()
            .filter(|s| s.first_lsn != active_first && s.is_sealed() && s.last_lsn() < lsn)
            .cloned()
            .collect();
        let mut removed = Vec::with_capacity(doomed.len());
        let mut result = Ok(());
        for seg in doomed {
            if let Err(e) = shared.storage.remove_file(&seg.path) {
                result = Err(WalError::io("remove", &seg.path, e));
                break;
            }
            segments.remove(&seg.first_lsn);
            removed.push(seg.info());
        }
        if !removed.is_empty() {
            shared.storage.sync_dir(&shared.dir).map_err(|e| WalError::io("fsync directory", &shared.dir, e))?;
            tracing::info!(count = removed.len(), below_lsn = lsn, "removed WAL segments");
        }
        result.map(|()| removed)
    }

    /// A reader positioned at `from_lsn` (use [`Wal::oldest_lsn`] for the beginning, or
    /// [`Wal::next_lsn`] to tail only new records).
    pub fn reader(&self, from_lsn: Lsn) -> Result<Reader> {
        Reader::new(self.shared.clone(), from_lsn)
    }

    /// Blocks until `lsn` is visible to readers or `timeout` passes; returns whether it is.
    /// Fails if the log fails or is closed while waiting.
    pub fn wait_for(&self, lsn: Lsn, timeout: Duration) -> Result<bool> {
        self.shared.wait_for(lsn, timeout)
    }

    /// The LSN the next appended record will get.
    pub fn next_lsn(&self) -> Lsn {
        self.shared.assigned_lsn.load(Ordering::Acquire) + 1
    }

    /// Highest LSN known to be durable (fsynced).
    pub fn durable_lsn(&self) -> Lsn {
        self.shared.durable_lsn.load(Ordering::Acquire)
    }

    /// Highest LSN readers can see (durable in `Always`/`Group`, written otherwise).
    pub fn visible_lsn(&self) -> Lsn {
        self.shared.visible_lsn.load(Ordering::Acquire)
    }

    /// Oldest LSN still retained.
    pub fn oldest_lsn(&self) -> Lsn {
        self.shared.oldest_lsn()
    }

    /// The segments, oldest first (the last one is active).
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.shared.segments.read().values().map(|s| s.info()).collect()
    }

    /// Counters since open.
    pub fn stats(&self) -> WalStats {
        self.shared.stats.snapshot()
    }

    /// Whether an earlier I/O error has failed the log (see [`WalError::Failed`]).
    pub fn is_failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// Flushes and fsyncs everything, leaves a clean-close record (unless
    /// [`WalConfig::clean_close_record`] is off) so the next open need not scan the active
    /// segment, then closes the log. Dropping a `Wal` only flushes (and leaves no record).
    ///
    /// An error writing the record is returned, but everything appended is durable by then.
    pub fn close(mut self) -> Result<()> {
        self.stop_threads();
        let result = if self.is_failed() { self.shared.check_usable() } else { self.shared.close_clean() };
        self.shutdown();
        result
    }

    /// Stops the background syncer and flusher, if running.
    fn stop_threads(&mut self) {
        if let Some(syncer) = self.syncer.take() {
            syncer.stop();
        }
        if let Some(flusher) = self.flusher.take() {
            flusher.stop();
        }
    }

    fn shutdown(&mut self) {
        self.stop_threads();
        self.shared.closed.store(true, Ordering::Release);
        self.shared.dir_lock.lock().take();
        self.shared.wake_all();
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        if !self.shared.closed.load(Ordering::Acquire) {
            if !self.is_failed() {
                let _ = self.shared.flush(false);
            }
            self.shutdown();
        }
    }
}

/// Counts a `SyncMode::Group` appender in [`Shared::group_in_flight`] from before it queues
/// until it returns (also on error), and on leaving wakes a gathering leader whose group is
/// now complete.
struct GroupInFlight<'a>(&'a Shared);

impl<'a> GroupInFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        shared.group_in_flight.fetch_add(1, Ordering::SeqCst);
        GroupInFlight(shared)
    }
}

impl Drop for GroupInFlight<'_> {
    fn drop(&mut self) {
        let shared = self.0;
        shared.group_in_flight.fetch_sub(1, Ordering::SeqCst);
        if shared.gathering.load(Ordering::SeqCst) {
            let st = shared.append.lock();
            shared.wake_gatherer_if_complete(&st);
        }
    }
}

impl AppendState {
    /// Points the next batch at a new segment starting at `first_lsn` (written in
    /// [`format::FORMAT_VERSION`], empty).
    fn start_segment(&mut self, first_lsn: Lsn) {
        self.seg_first_lsn = first_lsn;
        self.seg_bytes = SEGMENT_HEADER_LEN as u64;
        self.seg_records = 0;
        self.seg_version = format::FORMAT_VERSION;
        self.last_index_offset = 0;
    }

    /// Assigns LSNs to `batch` and encodes it into the pending queue; rotates to a new segment
    /// first if the current one is full. Never splits a batch across segments.
    fn encode_batch(&mut self, cfg: &WalConfig, batch: &[Prepared<'_>], batch_bytes: u64) -> RangeInclusive<Lsn> {
        if self.seg_records > 0
            && (self.seg_bytes >= cfg.target_segment_size_bytes || self.seg_records >= cfg.max_records_per_segment)
        {
            self.start_segment(self.next_lsn);
        }
        // Does this batch start a new write? In the durable modes the queue is drained and
        // written by one `io` holder, which `fdatasync`s before the next one takes it: a batch
        // queued behind others is written with them, one queued into an empty queue is written
        // after the `fdatasync` of everything before it (`Shared::flush` syncs in the durable
        // modes too). The other modes write queued batches at any time and sync rarely, so
        // each batch is marked (a flag where no sync happened only makes recovery stricter).
        let sync_start = self.seg_version >= format::SYNC_START_FORMAT_VERSION
            && (!cfg.sync_mode.is_durable() || self.pending.is_empty());
        let timestamp_us = crate::clock::now_us().max(self.last_timestamp_us);
        self.last_timestamp_us = timestamp_us;
        if self.pending.back().is_none_or(|c| c.segment_first_lsn != self.seg_first_lsn) {
            let mut bytes = self.spare_buffers.pop().unwrap_or_default();
            bytes.reserve(batch_bytes as usize);
            self.pending.push_back(Chunk {
                segment_first_lsn: self.seg_first_lsn,
                bytes,
                index: Vec::new(),
                last_lsn: 0,
                last_crc: 0,
                records: 0,
                last_record_start: 0,
            });
        }
        let chunk = self.pending.back_mut().expect("just ensured");
        let first = self.next_lsn;
        let mut last_record_start = chunk.bytes.len();
        for (i, p) in batch.iter().enumerate() {
            let lsn = self.next_lsn;
            if self.seg_records == 0 || self.seg_bytes - self.last_index_offset >= cfg.index_interval_bytes {
                chunk.index.push(IndexEntry { lsn, offset: self.seg_bytes });
                self.last_index_offset = self.seg_bytes;
            }
            let mut flags = 0;
            if p.compressed {
                flags |= FLAG_COMPRESSED;
            }
            if i + 1 == batch.len() {
                flags |= FLAG_BATCH_END;
            }
            if i == 0 && sync_start {
                flags |= FLAG_SYNC_START;
            }
            let header = RecordHeader {
                crc: 0,
                kind: p.kind,
                flags,
                stored_len: p.stored.len() as u32,
                prev_crc: self.prev_crc,
                lsn,
                timestamp_us,
            };
            last_record_start = chunk.bytes.len();
            let crc = format::encode_record(&mut chunk.bytes, header, &p.stored, p.payload_crc);
            self.prev_crc = crc;
            self.next_lsn += 1;
            self.seg_bytes += header.total_len();
            self.seg_records += 1;
            chunk.last_lsn = lsn;
            chunk.last_crc = crc;
            chunk.records += 1;
        }
        chunk.last_record_start = last_record_start;
        self.pending_bytes += batch_bytes as usize;
        first..=self.next_lsn - 1
    }
}

impl Shared {
    pub(crate) fn oldest_lsn(&self) -> Lsn {
        self.segments.read().keys().next().copied().unwrap_or(1)
    }

    pub(crate) fn visible_lsn(&self) -> Lsn {
        self.visible_lsn.load(Ordering::Acquire)
    }

    pub(crate) fn assigned_lsn(&self) -> Lsn {
        self.assigned_lsn.load(Ordering::Acquire)
    }

    fn check_usable(&self) -> Result<()> {
        if self.failed.load(Ordering::Acquire) {
            let reason = self.failure.lock().clone().unwrap_or_default();
            return Err(WalError::Failed { reason });
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(WalError::Closed);
        }
        Ok(())
    }

    /// Puts the log into the failed state and wakes every waiter.
    fn fail(&self, err: WalError) -> WalError {
        tracing::error!(error = %err, "WAL failed; refusing appends until reopened");
        {
            let mut failure = self.failure.lock();
            if failure.is_none() {
                *failure = Some(err.to_string());
            }
        }
        self.failed.store(true, Ordering::Release);
        self.wake_all();
        err
    }

    pub(crate) fn flush(&self, durable: bool) -> Result<()> {
        // Durable modes never write without syncing (see `encode_batch` on `FLAG_SYNC_START`).
        let durable = durable || self.config.sync_mode.is_durable();
        let mut io = self.io.lock();
        self.check_usable()?;
        let result = self.write_pending(&mut io, durable);
        drop(io);
        // Group-commit followers sleep until the I/O lock is released: wake them.
        self.wake_all();
        result?;
        self.fire_seal_notifications();
        Ok(())
    }

    /// Drains the pending queue into the segment files (rotating where the queue says so); if
    /// `durable`, fdatasyncs and publishes the durable LSN. Any error fails the log.
    fn write_pending(&self, io: &mut IoState, durable: bool) -> Result<()> {
        let chunks = Self::take_pending(&mut self.append.lock());
        let emptied = self.write_chunks(io, chunks, durable)?;
        if !emptied.is_empty() {
            Self::keep_spare_buffers(&mut self.append.lock(), emptied);
        }
        Ok(())
    }

    /// Takes everything queued out of the append state (whose lock the caller holds).
    fn take_pending(st: &mut AppendState) -> VecDeque<Chunk> {
        st.pending_bytes = 0;
        st.group_queued = 0;
        std::mem::take(&mut st.pending)
    }

    /// Keeps emptied chunk buffers for reuse by later appends, up to `SPARE_BUFFERS_MAX`.
    fn keep_spare_buffers(st: &mut AppendState, mut emptied: Vec<Vec<u8>>) {
        while st.spare_buffers.len() < SPARE_BUFFERS_MAX
            && let Some(b) = emptied.pop()
        {
            st.spare_buffers.push(b);
        }
    }

    /// Writes `chunks` (taken from the pending queue) into the segment files, rotating where
    /// they say so; if `durable`, fdatasyncs and publishes the durable LSN. Returns the emptied
    /// buffers for reuse. Takes no append-state lock, so the caller may hold it. Any error
    /// fails the log.
    fn write_chunks(&self, io: &mut IoState, chunks: VecDeque<Chunk>, durable: bool) -> Result<Vec<Vec<u8>>> {
        let durable_mode = self.config.sync_mode.is_durable();
        if !chunks.is_empty() {
            self.clear_clean_close(io)?;
        }
        let mut emptied = Vec::new();
        for chunk in chunks {
            if chunk.segment_first_lsn != io.segment.first_lsn {
                debug_assert_eq!(chunk.segment_first_lsn, io.last_lsn + 1);
                self.rotate(io, chunk.segment_first_lsn)?;
            }
            self.preallocate(io, chunk.bytes.len() as u64)?;
            if let Err(e) = io.file.write_all_at(&chunk.bytes, io.write_offset) {
                return Err(self.fail(WalError::io("write", &io.segment.path, e)));
            }
            io.last_record_offset = io.write_offset + chunk.last_record_start as u64;
            io.write_offset += chunk.bytes.len() as u64;
            io.last_lsn = chunk.last_lsn;
            io.last_crc = chunk.last_crc;
            io.record_count += chunk.records;
            io.unsynced = true;
            io.segment.active_index.write().extend_from_slice(&chunk.index);
            io.segment.active_last_lsn.store(chunk.last_lsn, Ordering::Release);
            self.stats.bytes_written.fetch_add(chunk.bytes.len() as u64, Ordering::Relaxed);
            self.written_lsn.store(chunk.last_lsn, Ordering::Release);
            if !durable_mode {
                io.segment.visible_end_offset.store(io.write_offset, Ordering::Release);
                self.publish_visible(chunk.last_lsn);
            }
            let mut buffer = chunk.bytes;
            if buffer.capacity() <= SPARE_BUFFER_MAX_BYTES {
                buffer.clear();
                emptied.push(buffer);
            }
        }
        let interval = self.config.writeback_interval_bytes;
        if !durable_mode && interval > 0 && io.write_offset - io.writeback_from >= interval {
            // A hint only (see `StorageFile::start_writeback`); the seal's fdatasync still
            // writes and reports everything.
            if let Err(e) = io.file.start_writeback(io.writeback_from, io.write_offset - io.writeback_from) {
                tracing::debug!(error = %e, "start_writeback failed (ignored)");
            }
            io.writeback_from = io.write_offset;
        }
        if durable && io.unsynced {
            let started = Instant::now();
            if let Err(e) = io.file.sync_data() {
                return Err(self.fail(WalError::io("fdatasync", &io.segment.path, e)));
            }
            self.record_sync_duration(started.elapsed());
            io.unsynced = false;
            io.writeback_from = io.write_offset;
            self.stats.data_syncs.fetch_add(1, Ordering::Relaxed);
        }
        if !io.unsynced {
            self.durable_lsn.fetch_max(io.last_lsn, Ordering::AcqRel);
            if durable_mode {
                // Durable modes show readers only what is synced.
                io.segment.visible_end_offset.store(io.write_offset, Ordering::Release);
                self.publish_visible(io.last_lsn);
            }
        }
        Ok(emptied)
    }

    /// Durable modes: keeps zero-filled, `fdatasync`ed space ahead of the write offset, so that
    /// the commits' `fdatasync`s overwrite blocks that are already allocated and written inside
    /// the file's size (data only on ext4) instead of growing the file (a journal commit each).
    ///
    /// Called by the `io` holder before it writes a chunk of `incoming` bytes. Unless at least
    /// half the window ([`WalConfig::effective_preallocate_bytes`]) would still be left after the
    /// chunk, writes zeros from the preallocated end (never below the write offset, so never a
    /// byte of data) up to `window` bytes past the chunk's end, capped at the target segment
    /// size but never short of the chunk's end, and `fdatasync`s once.
    ///
    /// The chunk always lands entirely on synced zeros, also the last one of a segment that runs
    /// past the cap and one larger than the window: a write that both overwrote preallocated
    /// space and grew the file could, after a power loss, keep its appended part (made durable by
    /// any journal commit, which flushes newly allocated blocks) but lose the overwritten part
    /// (which no journal commit flushes): zeros followed by a valid record, which recovery must
    /// take for corruption. (`FaultStorage::power_loss_keep_random_prefix` models exactly that.)
    ///
    /// Inline and amortised rather than on a background thread: one
    /// fill of about half a window (2 MiB by default) per half window appended, so it stays off
    /// almost every commit, and it runs under the same `io` lock as every other write. Any
    /// error fails the log like every write or sync error (nothing is acknowledged after it;
    /// zeros half-written past the data are preallocated space to recovery).
    fn preallocate(&self, io: &mut IoState, incoming: u64) -> Result<()> {
        let window = self.config.effective_preallocate_bytes();
        if window == 0 || io.segment_version < format::SYNC_START_FORMAT_VERSION {
            return Ok(());
        }
        let chunk_end = io.write_offset + incoming;
        if io.preallocated_end >= chunk_end + window / 2 {
            return Ok(());
        }
        let cap = self.config.target_segment_size_bytes;
        let mut target = chunk_end + window;
        if target + window / 2 > cap {
            // Fill up to the cap now rather than leave a sliver for another fill and sync; past
            // it (the segment's last batch) only what the chunk covers.
            target = cap.max(chunk_end);
        }
        let from = io.preallocated_end.max(io.write_offset);
        if target <= from {
            return Ok(()); // at the cap, and the chunk fits in what is there
        }
        let path = &io.segment.path;
        let mut at = from;
        while at < target {
            let n = (target - at).min(format::ZERO_BLOCK_LEN as u64) as usize;
            if let Err(e) = io.file.write_all_at(&format::ZEROS[..n], at) {
                return Err(self.fail(WalError::io("preallocate (write zeros)", path, e)));
            }
            at += n as u64;
        }
        if let Err(e) = io.file.sync_data() {
            return Err(self.fail(WalError::io("preallocate (fdatasync)", path, e)));
        }
        io.preallocated_end = target;
        self.stats.preallocations.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes_preallocated.fetch_add(target - from, Ordering::Relaxed);
        Ok(())
    }

    /// `close`: truncates the preallocated zeros after the data (`set_len` + `fdatasync`), so
    /// that the active segment is exactly `write_offset` bytes long, as the clean-close record
    /// says (and as offline tools expect of a closed log). A crash in between leaves zeros or
    /// not, and no record yet: the next open scans and finds the same data either way.
    fn drop_preallocated(&self, io: &mut IoState) -> Result<()> {
        if io.preallocated_end <= io.write_offset {
            return Ok(());
        }
        let path = &io.segment.path;
        io.file.set_len(io.write_offset).map_err(|e| WalError::io("truncate", path, e))?;
        io.file.sync_data().map_err(|e| WalError::io("fdatasync", path, e))?;
        io.preallocated_end = io.write_offset;
        Ok(())
    }

    /// Clears a clean-close record still on disk, durably, before the first write to any
    /// segment after open: from then on the active segment differs from what it describes.
    /// An error fails the log (nothing has been written, so the record stays true).
    fn clear_clean_close(&self, io: &mut IoState) -> Result<()> {
        if io.clean_close_on_disk {
            if let Err(e) = recovery::clear_clean_close(&self.dir, io.lock_file.as_ref()) {
                return Err(self.fail(e));
            }
            io.clean_close_on_disk = false;
        }
        Ok(())
    }

    /// `Wal::close` for a log that has not failed: writes and fdatasyncs everything, then
    /// leaves a clean-close record describing the active segment, all under the `io` lock, and
    /// marks the log closed before releasing it, so nothing can be written in between.
    fn close_clean(&self) -> Result<()> {
        let mut io = self.io.lock();
        self.check_usable()?;
        let mut result = self.write_pending(&mut io, true);
        if result.is_ok() {
            result = self.drop_preallocated(&mut io);
        }
        if result.is_ok() && self.config.clean_close_record && !io.clean_close_on_disk && !io.unsynced {
            let record = CleanClose {
                log_id: self.log_id,
                segment_first_lsn: io.segment.first_lsn,
                data_end_offset: io.write_offset,
                last_record_offset: io.last_record_offset,
                record_count: io.record_count,
                last_lsn: io.last_lsn,
                last_crc: io.last_crc,
                closed_at_us: crate::clock::now_us(),
                index: io.segment.active_index.read().clone(),
            };
            // The data is durable already: a record that is lost or torn here only makes the
            // next open scan. The error is still returned (the disk is failing).
            match recovery::write_clean_close(&self.dir, io.lock_file.as_ref(), &record) {
                Ok(()) => io.clean_close_on_disk = true,
                Err(e) => {
                    tracing::warn!(error = %e, "could not leave a clean-close record; the next open will scan");
                    result = Err(e);
                }
            }
        }
        self.closed.store(true, Ordering::Release);
        drop(io);
        self.wake_all();
        result?;
        self.fire_seal_notifications();
        Ok(())
    }

    /// Folds one data fdatasync's duration into the moving average the gather bound uses.
    fn record_sync_duration(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.stats.data_sync_us.fetch_add(us, Ordering::Relaxed);
        let avg = self.sync_avg_us.load(Ordering::Relaxed);
        // Only the `io` holder writes it; a weight of 1/4 smooths single outliers.
        let next = if avg == 0 { us } else { avg - avg / 4 + us / 4 };
        self.sync_avg_us.store(next.max(1), Ordering::Relaxed);
    }

    /// Whether every group-commit appender in flight has queued its batch. `st` is the locked
    /// append state (`group_queued` changes only under it).
    fn gather_complete(&self, st: &AppendState) -> bool {
        st.group_queued >= self.group_in_flight.load(Ordering::SeqCst)
    }

    /// Called with the append lock held after a group-commit batch was queued or an appender
    /// left: wakes a gathering leader once its group is complete.
    fn wake_gatherer_if_complete(&self, st: &AppendState) {
        if self.gathering.load(Ordering::SeqCst) && self.gather_complete(st) {
            self.gather.notify_one();
        }
    }

    /// Group-commit leader, holding `io`, before it drains the queue: while fewer batches are
    /// queued than appenders are in flight (the others are on their way in, typically just
    /// woken by the previous sync), sleep until they have queued or left, for at most half the
    /// recent fdatasync duration and `group_commit_gather_max_us`. Returns at once for a lone
    /// writer (its own batch is the only one in flight) and when gathering is off.
    fn gather(&self) {
        let max_us = self.config.group_commit_gather_max_us;
        let budget_us = (self.sync_avg_us.load(Ordering::Relaxed) / GATHER_SYNC_DIVISOR).min(max_us);
        if budget_us == 0 {
            return;
        }
        let mut st = self.append.lock();
        if self.gather_complete(&st) {
            return;
        }
        let started = Instant::now();
        let deadline = started + Duration::from_micros(budget_us);
        // Set before the condition is re-checked (both SeqCst): an appender leaving decrements
        // `group_in_flight`, then looks at `gathering`; one of the two sides sees the other.
        self.gathering.store(true, Ordering::SeqCst);
        while !self.gather_complete(&st) {
            if self.gather.wait_until(&mut st, deadline).timed_out() {
                break;
            }
        }
        self.gathering.store(false, Ordering::SeqCst);
        drop(st);
        let waited_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.stats.group_commit_gathers.fetch_add(1, Ordering::Relaxed);
        self.stats.group_commit_gather_us.fetch_add(waited_us, Ordering::Relaxed);
    }

    /// Group commit: returns once `lsn` is durable. Whoever finds the I/O lock free becomes the
    /// leader, writes everything queued and syncs once; the others park until a leader's sync
    /// covers them ([`Shared::wake_group_followers`] wakes exactly those, and one uncovered
    /// follower to lead the next sync), so no follower is woken only to sleep again.
    fn wait_group_commit(&self, lsn: Lsn) -> Result<()> {
        loop {
            if self.durable_lsn.load(Ordering::Acquire) >= lsn {
                return Ok(());
            }
            self.check_usable()?;
            if let Some(mut io) = self.io.try_lock() {
                let result = if self.durable_lsn.load(Ordering::Acquire) >= lsn {
                    Ok(())
                } else {
                    self.gather();
                    self.write_pending(&mut io, true)
                };
                // Wake followers after releasing the lock: those now durable and, unless the
                // flusher leads the batches queued meanwhile, one not covered to lead next.
                let handed_over = result.is_ok() && self.hand_over_to_flusher();
                drop(io);
                self.wake_group_followers(!handed_over);
                result?;
                continue;
            }
            self.park_group_follower(lsn);
        }
    }

    /// The `parking_lot_core` queue key of parked group-commit followers: the address of a
    /// field that is no lock of its own, so no other queue shares it.
    fn group_park_key(&self) -> usize {
        std::ptr::addr_of!(self.durable_lsn) as usize
    }

    /// Parks a group-commit follower waiting for `lsn`, unless it is durable already, the log
    /// is unusable, or no one holds `io` (then the caller tries to lead). The check runs under
    /// the park queue's lock and every `io` holder calls [`Shared::wake_group_followers`] after
    /// unlocking, under the same queue lock, so a follower that parks is always seen by the
    /// wake-up pass of the holder it saw. The timeout is a safety net only.
    fn park_group_follower(&self, lsn: Lsn) {
        let token = ParkToken(usize::try_from(lsn).unwrap_or(usize::MAX));
        let timeout = Instant::now() + Duration::from_millis(GROUP_PARK_TIMEOUT_MS);
        // SAFETY: the key is an address this `Shared` owns and that no parking_lot primitive
        // uses (`group_park_key`). `validate` only loads atomics (`Mutex::is_locked` is a load
        // of the raw lock's state word, not a call into the parking lot) and cannot unwind;
        // `before_sleep` and `timed_out` do nothing.
        let result = unsafe {
            parking_lot_core::park(
                self.group_park_key(),
                || {
                    self.durable_lsn.load(Ordering::Acquire) < lsn
                        && self.io.is_locked()
                        && !self.failed.load(Ordering::Acquire)
                        && !self.closed.load(Ordering::Acquire)
                },
                || {},
                |_, _| {},
                token,
                Some(timeout),
            )
        };
        if result == ParkResult::TimedOut {
            self.stats.group_commit_park_timeouts.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// After a sync: wakes the parked group-commit followers whose LSN is now durable and, if
    /// `may_elect` and no one holds `io` (whoever does wakes the rest in turn), the first one
    /// not covered, to lead the next sync; the others stay parked. Everyone when the log is
    /// failed or closed. `may_elect` is false where the flusher leads next.
    fn wake_group_followers(&self, may_elect: bool) {
        let durable = self.durable_lsn.load(Ordering::Acquire);
        let everyone = self.failed.load(Ordering::Acquire) || self.closed.load(Ordering::Acquire);
        let mut need_leader = may_elect && !everyone && !self.io.is_locked();
        // SAFETY: our own key (see `park_group_follower`); the filter and callback only read
        // atomics and captured values and cannot unwind.
        unsafe {
            parking_lot_core::unpark_filter(
                self.group_park_key(),
                |ParkToken(token)| {
                    // usize::MAX: an LSN beyond usize (32-bit targets), woken on every pass.
                    if everyone || token == usize::MAX || token as u64 <= durable {
                        FilterOp::Unpark
                    } else if need_leader {
                        need_leader = false;
                        FilterOp::Unpark
                    } else {
                        FilterOp::Skip
                    }
                },
                |_| DEFAULT_UNPARK_TOKEN,
            );
        }
    }

    /// Unlocks `io`, then wakes the group-commit followers parked while it was held. Every
    /// `io` holder in `SyncMode::Group` releases it through here, or drops it and calls
    /// `wake_all` (flush, close), which does the same, or (a committer that led a sync) drops
    /// it and calls `wake_group_followers` itself, electing no one if it handed over.
    fn release_io(&self, io: MutexGuard<'_, IoState>) {
        drop(io);
        if self.config.sync_mode == SyncMode::Group {
            self.wake_group_followers(true);
        }
    }

    /// Seals the active segment (sync data, write footer, sync) and creates the next one.
    fn rotate(&self, io: &mut IoState, new_first_lsn: Lsn) -> Result<()> {
        assert!(io.record_count > 0, "never seal an empty segment");
        assert_eq!(new_first_lsn, io.last_lsn + 1, "segments must be contiguous");
        self.clear_clean_close(io)?;
        let path = io.segment.path.clone();
        let footer = Footer {
            first_lsn: io.segment.first_lsn,
            last_lsn: io.last_lsn,
            record_count: io.record_count,
            data_end_offset: io.write_offset,
            last_crc: io.last_crc,
            sealed_at_us: crate::clock::now_us(),
            index: io.segment.active_index.read().clone(),
            holes: Vec::new(),
        };
        if io.unsynced {
            if let Err(e) = io.file.sync_data() {
                return Err(self.fail(WalError::io("fdatasync", &path, e)));
            }
            self.stats.data_syncs.fetch_add(1, Ordering::Relaxed);
            io.unsynced = false;
        }
        self.durable_lsn.fetch_max(io.last_lsn, Ordering::AcqRel);
        // `write_footer` truncates the file to the data end first: a sealed segment never
        // keeps preallocated zeros.
        if let Err(e) = recovery::write_footer(&path, io.file.as_ref(), &footer) {
            return Err(self.fail(e));
        }
        let header = SegmentHeader {
            version: format::FORMAT_VERSION,
            log_id: self.log_id,
            first_lsn: new_first_lsn,
            prev_last_lsn: io.last_lsn,
            prev_crc: io.last_crc,
            created_at_us: crate::clock::now_us(),
        };
        let (file, new_path) = match recovery::create_segment(self.storage.as_ref(), &self.dir, &header) {
            Ok(x) => x,
            Err(e) => return Err(self.fail(e)),
        };
        let new_segment = Arc::new(Segment::new_active(
            new_first_lsn,
            new_path,
            Vec::new(),
            SEGMENT_HEADER_LEN as u64,
            new_first_lsn - 1,
        ));
        // Publish: footer first (readers switch to it), then the new segment.
        let old = std::mem::replace(&mut io.segment, new_segment.clone());
        let _ = old.footer.set(footer);
        self.segments.write().insert(new_first_lsn, new_segment);
        io.file = file;
        io.write_offset = SEGMENT_HEADER_LEN as u64;
        io.writeback_from = io.write_offset;
        io.preallocated_end = io.write_offset;
        io.segment_version = header.version;
        io.record_count = 0;
        io.last_record_offset = 0;
        self.stats.segments_sealed.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(segment = %path.display(), last_lsn = io.last_lsn, "sealed segment");
        {
            let mut queue = self.sealed_queue.lock();
            queue.push(old.info());
            self.seals_pending.store(true, Ordering::Release);
        }
        Ok(())
    }

    fn fire_seal_notifications(&self) {
        // Fast path for every append: nothing sealed since the last call. A thread that sealed
        // a segment set the flag itself before calling this, so it always sees it.
        if !self.seals_pending.load(Ordering::Acquire) {
            return;
        }
        let sealed = {
            let mut q = self.sealed_queue.lock();
            self.seals_pending.store(false, Ordering::Release);
            if q.is_empty() {
                return;
            }
            std::mem::take(&mut *q)
        };
        let listener = self.seal_listener.read().clone();
        if let Some(listener) = listener {
            for info in &sealed {
                listener.segment_sealed(info);
            }
        }
    }

    fn publish_visible(&self, lsn: Lsn) {
        self.visible_lsn.fetch_max(lsn, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.notify_lock.lock();
            self.notify.notify_all();
        }
    }

    /// Wakes every reader waiting in `wait_for` and every parked group-commit follower (on
    /// close, failure, or after an explicit flush).
    fn wake_all(&self) {
        {
            let _guard = self.notify_lock.lock();
            self.notify.notify_all();
        }
        if self.config.sync_mode == SyncMode::Group {
            self.wake_group_followers(true);
        }
    }

    pub(crate) fn wait_for(&self, lsn: Lsn, timeout: Duration) -> Result<bool> {
        if self.visible_lsn.load(Ordering::Acquire) >= lsn {
            return Ok(true);
        }
        let deadline = Instant::now() + timeout;
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let result = (|| {
            // Buffered (non-durable) records the reader wants: push them out now. SeqCst pairs
            // with the append path, which publishes the LSN and then looks for waiters.
            if !self.config.sync_mode.is_durable() && self.assigned_lsn.load(Ordering::SeqCst) >= lsn {
                self.flush(false)?;
            }
            let mut guard = self.notify_lock.lock();
            loop {
                if self.visible_lsn.load(Ordering::SeqCst) >= lsn {
                    return Ok(true);
                }
                self.check_usable()?;
                if self.notify.wait_until(&mut guard, deadline).timed_out() {
                    return Ok(self.visible_lsn.load(Ordering::SeqCst) >= lsn);
                }
                if !self.config.sync_mode.is_durable() && self.assigned_lsn() >= lsn {
                    drop(guard);
                    self.flush(false)?;
                    guard = self.notify_lock.lock();
                }
            }
        })();
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

impl Syncer {
    fn start(shared: Weak<Shared>, interval: Duration) -> Syncer {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stop2 = stop.clone();
        let handle = std::thread::Builder::new()
            .name("walden-wal-syncer".into())
            .spawn(move || {
                loop {
                    {
                        let mut stopped = stop2.0.lock();
                        if !*stopped {
                            stop2.1.wait_for(&mut stopped, interval);
                        }
                        if *stopped {
                            return;
                        }
                    }
                    let Some(shared) = shared.upgrade() else { return };
                    if shared.failed.load(Ordering::Acquire) {
                        return;
                    }
                    // An error here fails the log; appenders will see it.
                    let _ = shared.flush(true);
                }
            })
            .expect("spawn syncer thread");
        Syncer { stop, handle }
    }

    fn stop(self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        let _ = self.handle.join();
    }
}
