//! The log: the [`Wal`] handle and the machinery behind it, one concept per file.
//!
//! - `shared`: the state shared by the handle, readers and background threads; watermarks,
//!   failed/closed flags, wake-ups of waiting readers.
//! - `append`: preparing batches and encoding them into the pending queue.
//! - `write`: the `io` holder's write path (drain, write, `fdatasync`, publish).
//! - `group_commit`: leaders, gathering, parking and waking followers.
//! - `flusher`: the group-commit flusher thread.
//! - `syncer`: the interval syncer thread of `SyncMode::IntervalMs`.
//! - `preallocate`: zero-filled space ahead of the write offset.
//! - `rotation`: sealing segments and seal notifications; `retention`: removing sealed segments.
//! - `close`: the clean-close record.
//! - `stats`: counters.
//!
//! Two locks, always taken in the order `io` → `append`:
//! - `append` guards LSN assignment and encoding into the pending queue (short, no I/O);
//! - `io` guards the active segment file; its holder (the leader) drains the pending queue,
//!   writes it, seals and creates segments, and fsyncs — so fsyncs run outside `append` and
//!   concurrent appenders keep queueing while one sync is in flight.

use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::config::{SyncMode, WalConfig};
use crate::reader::Reader;
use crate::recovery::{self, RecoveryReport};
use crate::segment::SegmentInfo;
use crate::storage::{StdStorage, Storage};
use crate::{Lsn, Result, WalError};

mod append;
mod close;
mod flusher;
mod group_commit;
mod preallocate;
mod retention;
mod rotation;
mod shared;
mod stats;
mod syncer;
mod write;

pub use rotation::SealListener;
pub(crate) use shared::Shared;
pub use stats::WalStats;

/// An open write-ahead log. Cheap to share across threads (`&Wal` is `Sync`); every method takes
/// `&self`. See the crate documentation for an example.
pub struct Wal {
    shared: Arc<Shared>,
    /// The interval syncer (`SyncMode::IntervalMs`).
    syncer: Option<syncer::Syncer>,
    /// The group-commit flusher (`SyncMode::Group` with `group_commit_flusher`).
    flusher: Option<flusher::Flusher>,
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
        let dir_lock = lock_dir(storage.as_ref(), &dir)?;
        let recovered = recovery::recover(storage.as_ref(), &dir, &config)?;
        let shared = Arc::new(Shared::new(dir, storage, config, recovered, dir_lock));
        let syncer = match shared.config.sync_mode {
            SyncMode::IntervalMs(ms) => {
                Some(syncer::Syncer::start(Arc::downgrade(&shared), Duration::from_millis(ms))?)
            }
            _ => None,
        };
        let flusher = if shared.config.sync_mode == SyncMode::Group && shared.config.group_commit_flusher {
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
        let records: Vec<(u8, P)> = records.into_iter().collect();
        let batch = shared.prepare_batch(&records)?;
        shared.check_usable()?;
        let range = match shared.config.sync_mode {
            SyncMode::Always => shared.append_always(&batch)?,
            SyncMode::Group => shared.append_group(&batch)?,
            SyncMode::IntervalMs(_) | SyncMode::None => shared.append_buffered(&batch)?,
        };
        debug_assert_eq!(range.end() - range.start() + 1, batch.records.len() as u64, "one LSN per record");
        shared.stats.append_calls.fetch_add(1, Ordering::Relaxed);
        shared.stats.records_appended.fetch_add(batch.records.len() as u64, Ordering::Relaxed);
        shared.fire_seal_notifications();
        Ok(range)
    }

    /// Hands every buffered record to the OS (no fsync) and makes it visible to readers in
    /// non-durable modes. In the durable modes (where only group-commit batches still waiting
    /// for their leader can be queued) it writes them and `fdatasync`s, as that leader would:
    /// every write there ends in a sync before the next one begins, which is what
    /// [`FLAG_SYNC_START`](crate::format::FLAG_SYNC_START) records.
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
        self.shared.seal_now()
    }

    /// Deletes every sealed segment whose records all lie below `lsn` (never the active one),
    /// oldest first, then fsyncs the directory; a crash midway leaves a contiguous suffix.
    /// Returns the removed segments.
    pub fn remove_segments_before(&self, lsn: Lsn) -> Result<Vec<SegmentInfo>> {
        self.shared.remove_segments_before(lsn)
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

/// Takes the log directory's lock (`LOCK`): another holder is [`WalError::Locked`].
fn lock_dir(storage: &dyn Storage, dir: &Path) -> Result<shared::DirLock> {
    let lock_path = dir.join(crate::format::LOCK_FILE_NAME);
    storage.lock_exclusive(&lock_path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            WalError::Locked { path: lock_path.clone() }
        } else {
            WalError::io("lock", &lock_path, e)
        }
    })
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
