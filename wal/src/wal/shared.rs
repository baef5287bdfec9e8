//! The state the `Wal` handle, its readers and its background threads share: the append state
//! (LSN assignment and the pending queue), the I/O state (the active segment file), the
//! watermarks (`assigned` ≥ `written` ≥ `durable`, and `visible` for readers), the failed and
//! closed flags, and the wake-ups of readers waiting for an LSN.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};

use super::SealListener;
use super::flusher;
use super::stats::Counters;
use crate::config::{SyncMode, WalConfig};
use crate::format::IndexEntry;
use crate::recovery::{Recovered, RecoveredActive, RecoveryReport};
use crate::segment::{Segment, SegmentInfo};
use crate::storage::{Storage, StorageFile};
use crate::{Lsn, Result, WalError};

/// Encoded records waiting to be written, all destined for one segment.
#[derive(Debug)]
pub(super) struct Chunk {
    pub(super) segment_first_lsn: Lsn,
    pub(super) bytes: Vec<u8>,
    pub(super) index: Vec<IndexEntry>,
    pub(super) last_lsn: Lsn,
    pub(super) last_crc: u32,
    pub(super) records: u64,
    /// Where the last record starts within `bytes`.
    pub(super) last_record_start: usize,
}

/// The directory lock's guard ([`Storage::lock_exclusive`]).
pub(super) type DirLock = Box<dyn std::any::Any + Send + Sync>;

#[derive(Debug)]
pub(super) struct AppendState {
    pub(super) next_lsn: Lsn,
    pub(super) prev_crc: u32,
    pub(super) last_timestamp_us: u64,
    /// Segment the next batch goes to, and its size/records counting everything queued.
    pub(super) seg_first_lsn: Lsn,
    pub(super) seg_bytes: u64,
    pub(super) seg_records: u64,
    /// Format version of that segment: records mark new writes ([`FLAG_SYNC_START`]) only in
    /// version 2 and later.
    pub(super) seg_version: u16,
    pub(super) last_index_offset: u64,
    pub(super) pending: VecDeque<Chunk>,
    pub(super) pending_bytes: usize,
    /// `SyncMode::Group` batches queued since the pending queue was last drained.
    pub(super) group_queued: usize,
    /// Emptied chunk buffers handed back by the writer, reused to keep allocation off the hot path.
    pub(super) spare_buffers: Vec<Vec<u8>>,
}

pub(super) struct IoState {
    pub(super) file: Box<dyn StorageFile>,
    pub(super) segment: Arc<Segment>,
    pub(super) write_offset: u64,
    pub(super) last_lsn: Lsn,
    pub(super) last_crc: u32,
    pub(super) record_count: u64,
    /// Offset of the last record written to the active segment (0 if none).
    pub(super) last_record_offset: u64,
    /// Whether bytes were written since the last fdatasync.
    pub(super) unsynced: bool,
    /// Offset up to which write-back was started or synced (`writeback_interval_bytes`).
    pub(super) writeback_from: u64,
    /// End of the zero-filled space after `write_offset` ([`Shared::preallocate`]): bytes
    /// `write_offset..preallocated_end` of the file are zeros (equal to `write_offset`, or below
    /// it once a batch ran past the preallocated space, when there is none).
    pub(super) preallocated_end: u64,
    /// Format version of the active segment: only version 2 and later are preallocated into
    /// (an older build's version 1 segment is finished as it is; the next one is version 2).
    pub(super) segment_version: u16,
    /// `LOCK`, where `close` leaves the clean-close record.
    pub(super) lock_file: Box<dyn StorageFile>,
    /// Whether `LOCK` holds a clean-close record that is still valid. Cleared durably before
    /// the first write to any segment ([`Shared::clear_clean_close`]).
    pub(super) clean_close_on_disk: bool,
}

impl AppendState {
    /// Appending resumes after the recovered active segment's last record.
    fn recovered(active: &RecoveredActive) -> AppendState {
        AppendState {
            next_lsn: active.last_lsn + 1,
            prev_crc: active.last_crc,
            last_timestamp_us: active.last_timestamp_us,
            seg_first_lsn: active.segment.first_lsn,
            seg_bytes: active.write_offset,
            seg_records: active.record_count,
            seg_version: active.segment_version,
            last_index_offset: active.segment.active_index.read().last().map_or(0, |e| e.offset),
            pending: VecDeque::new(),
            pending_bytes: 0,
            group_queued: 0,
            spare_buffers: Vec::new(),
        }
    }
}

impl IoState {
    /// Writing resumes at the recovered active segment's data end.
    fn recovered(active: RecoveredActive, lock_file: Box<dyn StorageFile>, clean_close_on_disk: bool) -> IoState {
        IoState {
            file: active.file,
            segment: active.segment,
            write_offset: active.write_offset,
            last_lsn: active.last_lsn,
            last_crc: active.last_crc,
            record_count: active.record_count,
            last_record_offset: active.last_record_offset,
            unsynced: false,
            writeback_from: active.write_offset,
            preallocated_end: active.preallocated_end,
            segment_version: active.segment_version,
            lock_file,
            clean_close_on_disk,
        }
    }
}

/// State shared by the `Wal` handle, readers and the background syncer.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) config: WalConfig,
    pub(super) log_id: u64,
    pub(super) append: Mutex<AppendState>,
    pub(super) io: Mutex<IoState>,
    pub(crate) segments: RwLock<BTreeMap<Lsn, Arc<Segment>>>,
    /// Highest LSN assigned (queued, maybe not written).
    pub(super) assigned_lsn: AtomicU64,
    /// Highest LSN handed to the OS.
    pub(super) written_lsn: AtomicU64,
    /// Highest LSN known durable.
    pub(super) durable_lsn: AtomicU64,
    /// Highest LSN readers may see: durable in durable modes, written otherwise.
    pub(super) visible_lsn: AtomicU64,
    pub(super) failed: AtomicBool,
    pub(super) failure: Mutex<Option<String>>,
    pub(super) closed: AtomicBool,
    pub(super) notify_lock: Mutex<()>,
    pub(super) notify: Condvar,
    pub(super) waiters: AtomicUsize,
    /// `SyncMode::Group` appenders between queueing (about to) and returning.
    pub(super) group_in_flight: AtomicUsize,
    /// Whether a leader is gathering (set and cleared under the `append` lock).
    pub(super) gathering: AtomicBool,
    /// Wakes a gathering leader (waited on with the `append` guard).
    pub(super) gather: Condvar,
    /// The group-commit flusher thread's controls (`flusher`).
    pub(super) flusher: flusher::FlusherControl,
    /// Moving average of data fdatasync durations, µs (0 until the first).
    pub(super) sync_avg_us: AtomicU64,
    pub(super) stats: Counters,
    pub(super) seal_listener: RwLock<Option<Arc<dyn SealListener>>>,
    pub(super) sealed_queue: Mutex<Vec<SegmentInfo>>,
    /// Whether `sealed_queue` may be non-empty: set and cleared only while holding its lock, read
    /// without it so that appends do not take that lock when nothing was sealed.
    pub(super) seals_pending: AtomicBool,
    pub(super) report: RecoveryReport,
    /// Directory lock; released on close even while readers still hold `Shared`.
    pub(super) dir_lock: Mutex<Option<DirLock>>,
}

#[cfg(debug_assertions)]
thread_local! {
    /// How many `append` guards this thread holds (debug builds: checks the lock order).
    static APPEND_HELD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The `append` lock's guard. In debug builds it counts, per thread, the guards held, so that
/// [`Shared::lock_io`] can assert the lock order `io` → `append`.
pub(super) struct AppendGuard<'a> {
    guard: MutexGuard<'a, AppendState>,
}

impl<'a> AppendGuard<'a> {
    /// The underlying guard, for waiting on a condvar with it.
    pub(super) fn inner(&mut self) -> &mut MutexGuard<'a, AppendState> {
        &mut self.guard
    }
}

impl std::ops::Deref for AppendGuard<'_> {
    type Target = AppendState;
    fn deref(&self) -> &AppendState {
        &self.guard
    }
}

impl std::ops::DerefMut for AppendGuard<'_> {
    fn deref_mut(&mut self) -> &mut AppendState {
        &mut self.guard
    }
}

impl Drop for AppendGuard<'_> {
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        APPEND_HELD.with(|held| held.set(held.get() - 1));
    }
}

impl Shared {
    /// Takes the `append` lock (LSN assignment and the pending queue; never held across I/O
    /// except by an explicit seal).
    pub(super) fn lock_append(&self) -> AppendGuard<'_> {
        let guard = self.append.lock();
        #[cfg(debug_assertions)]
        APPEND_HELD.with(|held| held.set(held.get() + 1));
        AppendGuard { guard }
    }

    /// Takes the `io` lock (the active segment file). The lock order is `io` → `append`: a
    /// thread holding `append` never waits for `io` (asserted in debug builds).
    pub(super) fn lock_io(&self) -> MutexGuard<'_, IoState> {
        #[cfg(debug_assertions)]
        debug_assert_eq!(
            APPEND_HELD.with(|held| held.get()),
            0,
            "lock order is io → append: never wait for io holding append"
        );
        self.io.lock()
    }

    /// Every `io` holder in the durable modes syncs what it wrote before it releases or bumps
    /// `io` (so a record without `FLAG_SYNC_START` was written with the record before it);
    /// only a failed log may leave bytes unsynced.
    pub(super) fn assert_synced_before_release(&self, io: &IoState) {
        debug_assert!(
            !self.config.sync_mode.is_durable() || !io.unsynced || self.failed.load(Ordering::Acquire),
            "an io holder in a durable mode released io with unsynced bytes"
        );
    }

    /// The state of a log just recovered in `dir`, holding `dir_lock` until it is closed.
    pub(super) fn new(
        dir: PathBuf,
        storage: Arc<dyn Storage>,
        config: WalConfig,
        recovered: Recovered,
        dir_lock: DirLock,
    ) -> Shared {
        let mut segments = BTreeMap::new();
        for seg in &recovered.sealed {
            segments.insert(seg.first_lsn, seg.clone());
        }
        segments.insert(recovered.active.segment.first_lsn, recovered.active.segment.clone());
        let last_lsn = recovered.active.last_lsn;
        tracing::info!(dir = %dir.display(), last_lsn, segments = segments.len(), "opened WAL");
        Shared {
            dir,
            storage,
            config,
            log_id: recovered.log_id,
            append: Mutex::new(AppendState::recovered(&recovered.active)),
            io: Mutex::new(IoState::recovered(recovered.active, recovered.lock_file, recovered.clean_close_on_disk)),
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
            report: recovered.report,
            dir_lock: Mutex::new(Some(dir_lock)),
        }
    }

    pub(crate) fn oldest_lsn(&self) -> Lsn {
        self.segments.read().keys().next().copied().unwrap_or(1)
    }

    pub(crate) fn visible_lsn(&self) -> Lsn {
        self.visible_lsn.load(Ordering::Acquire)
    }

    pub(crate) fn assigned_lsn(&self) -> Lsn {
        self.assigned_lsn.load(Ordering::Acquire)
    }

    pub(super) fn check_usable(&self) -> Result<()> {
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
    pub(super) fn fail(&self, err: WalError) -> WalError {
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

    pub(super) fn publish_visible(&self, lsn: Lsn) {
        self.visible_lsn.fetch_max(lsn, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.notify_lock.lock();
            self.notify.notify_all();
        }
    }

    /// Wakes every reader waiting in `wait_for` and every parked group-commit follower (on
    /// close, failure, or after an explicit flush).
    pub(super) fn wake_all(&self) {
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
