//! The database handle: opening, transactions, slots, status.
//!
//! Locks, always taken in this order (never the reverse):
//! `retention` → `slots` (the name map) → one slot's `inner`.
//! - `retention` is held by everything that may *lower* the retention horizon (creating a slot,
//!   setting `retain_from` or the checkpoint LSN) and by `checkpoint`, so a horizon computed under
//!   it cannot be undercut before the segments below it are removed. Advancing a slot only raises
//!   the horizon and does not take it.
//! - No engine lock is held across a commit's WAL append (group commit stays group commit).
//! - Every state change that decides deletion is persisted (fsynced) before it takes effect in
//!   memory, so memory is never ahead of disk in a way that lets retention delete too much.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use walden_wal::clock::now_us;
use walden_wal::storage::{StdStorage, Storage};
use walden_wal::{RecoveryReport, SealListener, SegmentInfo, Wal};

use crate::Lsn;
use crate::config::Config;
use crate::error::{EngineError, Result};
use crate::log::LogReader;
use crate::persist;
use crate::record::ChangeOp;
use crate::retention::{self, LogBounds, RetentionHolder};
use crate::slot::{
    self, Invalidation, InvalidationReason, SLOT_FILE_EXTENSION, SlotInfo, SlotOptions, SlotRecord, SlotState,
    StartPosition,
};
use crate::state::{EngineState, STATE_FILE_NAME};
use crate::status::{CheckpointReport, InvalidatedSlot, SlotStatus, Status};
use crate::txn::Transaction;

/// Sub-directory of the database directory holding the WAL segments.
pub const WAL_DIR_NAME: &str = "wal";
/// Sub-directory of the database directory holding one file per persistent slot.
pub const SLOTS_DIR_NAME: &str = "slots";

/// Told each time a WAL segment is sealed (immutable and durable from then on). A higher layer
/// (the archiver) implements it; see [`Database::set_segment_sealed_hook`]. Called on the thread
/// whose commit or sync sealed the segment, with no engine or WAL lock held (so it may call back
/// into the [`Database`]), while that commit waits: keep it short (queue work elsewhere).
pub trait SegmentSealed: Send + Sync {
    /// `segment` has just been sealed.
    fn segment_sealed(&self, segment: &SegmentInfo);
}

type HookSlot = Arc<RwLock<Option<Arc<dyn SegmentSealed>>>>;

/// The WAL listener that forwards to whatever hook the engine's user registered.
struct SealForwarder {
    hook: HookSlot,
}

impl SealListener for SealForwarder {
    fn segment_sealed(&self, segment: &SegmentInfo) {
        let hook = self.hook.read().clone();
        if let Some(hook) = hook {
            hook.segment_sealed(segment);
        }
    }
}

/// One slot in memory.
#[derive(Debug)]
pub(crate) struct SlotCell {
    name: String,
    temporary: bool,
    inner: Mutex<SlotInner>,
}

#[derive(Debug)]
struct SlotInner {
    rec: SlotRecord,
    active: bool,
    /// Set by `drop_slot`, so a racing advance cannot re-create the file.
    dropped: bool,
}

impl SlotCell {
    fn info(&self, s: &SlotInner) -> SlotInfo {
        let state = match (&s.rec.invalidation, s.active) {
            (Some(inv), _) => SlotState::Lost(*inv),
            (None, true) => SlotState::Active,
            (None, false) => SlotState::Inactive,
        };
        SlotInfo {
            name: self.name.clone(),
            restart_lsn: s.rec.restart_lsn,
            confirmed_lsn: s.rec.confirmed_lsn,
            created_at_us: s.rec.created_at_us,
            last_active_at_us: s.rec.last_active_at_us,
            state,
            filter: s.rec.filter.clone(),
            temporary: self.temporary,
        }
    }
}

/// What `open` found and did besides the WAL's own recovery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Leftover temporary files (interrupted state-file writes) that were removed.
    pub temp_files_removed: Vec<PathBuf>,
    /// Slot files loaded.
    pub slots_loaded: usize,
    /// Files in the slot directory that are not slot files (ignored, never deleted).
    pub foreign_files: Vec<PathBuf>,
    /// Slots found inconsistent with the log and invalidated at open.
    pub slots_invalidated: Vec<InvalidatedSlot>,
}

/// An open database: a WAL plus transactions, replication slots and retention. All methods take
/// `&self`; share it across threads by reference or in an `Arc`.
///
/// Directory layout: `<dir>/wal/` (the segments), `<dir>/slots/<name>.slot` (one file per
/// persistent slot), `<dir>/engine.state` (checkpoint LSN and retain-from horizon).
pub struct Database {
    dir: PathBuf,
    slots_dir: PathBuf,
    storage: Arc<dyn Storage>,
    config: Config,
    wal: Wal,
    retention: Mutex<EngineState>,
    slots: Mutex<BTreeMap<String, Arc<SlotCell>>>,
    hook: HookSlot,
    open_report: OpenReport,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("dir", &self.dir).field("wal", &self.wal).finish()
    }
}

impl Database {
    /// Opens (or creates) the database in `dir` on the real file system. Recovers the WAL, loads
    /// `engine.state` and every slot file. A damaged slot or state file fails the open with
    /// [`EngineError::CorruptFile`] and nothing is deleted.
    pub fn open(dir: impl AsRef<Path>, config: Config) -> Result<Database> {
        Database::open_with_storage(dir, config, Arc::new(StdStorage))
    }

    /// Opens the database through a custom [`Storage`] (fault injection, in-memory tests). Every
    /// engine and WAL file access goes through it.
    pub fn open_with_storage(dir: impl AsRef<Path>, config: Config, storage: Arc<dyn Storage>) -> Result<Database> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        storage.create_dir_all(&dir).map_err(|e| EngineError::io("create directory", &dir, e))?;
        // The WAL's directory lock also guards the engine's files: open it first.
        let wal = Wal::open_with_storage(dir.join(WAL_DIR_NAME), config.wal.clone(), storage.clone())?;
        let slots_dir = dir.join(SLOTS_DIR_NAME);
        storage.create_dir_all(&slots_dir).map_err(|e| EngineError::io("create directory", &slots_dir, e))?;
        let mut report = OpenReport::default();
        let state = read_state(storage.as_ref(), &dir, &mut report)?;
        let records = read_slot_files(storage.as_ref(), &slots_dir, &mut report)?;
        let hook: HookSlot = Arc::new(RwLock::new(None));
        wal.set_seal_listener(Some(Arc::new(SealForwarder { hook: hook.clone() })));
        let db = Database {
            dir,
            slots_dir,
            storage,
            config,
            wal,
            retention: Mutex::new(state),
            slots: Mutex::new(BTreeMap::new()),
            hook,
            open_report: OpenReport::default(),
        };
        db.load_slots(records, &mut report)?;
        tracing::info!(dir = %db.dir.display(), slots = report.slots_loaded, "opened database");
        Ok(Database { open_report: report, ..db })
    }

    /// Takes the slots read at open, checking every valid one against the recovered log
    /// before anything can use it: one the log can no longer serve is invalidated
    /// ([`retention::slot_unservable`]).
    fn load_slots(&self, records: Vec<SlotRecord>, report: &mut OpenReport) -> Result<()> {
        let log = LogBounds { oldest_lsn: self.wal.oldest_lsn(), last_lsn: self.wal.next_lsn() - 1 };
        let archived_lsn = self.retention.lock().archived_lsn;
        let now = now_us();
        let mut slots = self.slots.lock();
        for rec in records {
            let name = rec.name.clone();
            let reason = match rec.invalidation {
                Some(_) => None,
                None => retention::slot_unservable(rec.restart_lsn, rec.confirmed_lsn, log, archived_lsn),
            };
            let cell = Arc::new(SlotCell {
                name: name.clone(),
                temporary: false,
                inner: Mutex::new(SlotInner { rec, active: false, dropped: false }),
            });
            if let Some(reason) = reason {
                let mut s = cell.inner.lock();
                self.invalidate(&cell, &mut s, reason, now)?;
                report.slots_invalidated.push(InvalidatedSlot { name: name.clone(), reason });
            }
            report.slots_loaded += 1;
            slots.insert(name, cell);
        }
        Ok(())
    }

    /// The configuration the database was opened with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The database directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The underlying WAL, for higher layers that read or wait on it (CDC, the archiver). Append
    /// only through transactions and remove segments only through [`Database::checkpoint`]:
    /// records the engine did not write fail to decode, and removals that bypass the checkpoint
    /// bypass the slots.
    pub fn wal(&self) -> &Wal {
        &self.wal
    }

    /// What the WAL's recovery found at open.
    pub fn recovery_report(&self) -> &RecoveryReport {
        self.wal.recovery_report()
    }

    /// What the engine found at open (temp files, foreign files, slots invalidated).
    pub fn open_report(&self) -> &OpenReport {
        &self.open_report
    }

    /// Starts a transaction. Nothing is written until [`Transaction::commit`].
    pub fn begin(&self) -> Transaction<'_> {
        Transaction::new(self)
    }

    /// Logs a single row change as an implicit one-change transaction (BEGIN, change, COMMIT)
    /// and returns its commit LSN. Images are checked as in [`Transaction::change`].
    pub fn log_change(
        &self,
        op: ChangeOp,
        table: &str,
        key: &[u8],
        before: Option<&[u8]>,
        after: Option<&[u8]>,
    ) -> Result<Lsn> {
        let mut txn = self.begin();
        txn.change(op, table, key, before, after)?;
        txn.commit()
    }

    /// A reader of decoded records from `from_lsn` (use [`Wal::oldest_lsn`] via
    /// [`Database::wal`] for the beginning). Fails with `LsnNotFound` if `from_lsn` is no longer
    /// retained.
    pub fn read_log(&self, from_lsn: Lsn) -> Result<LogReader> {
        Ok(LogReader::new(self.wal.reader(from_lsn)?))
    }

    /// Hands every buffered record to the OS (non-durable modes).
    pub fn flush(&self) -> Result<()> {
        Ok(self.wal.flush()?)
    }

    /// Makes everything committed so far durable; returns the durable LSN.
    pub fn sync(&self) -> Result<Lsn> {
        Ok(self.wal.sync()?)
    }

    /// The WAL segments, oldest first (the last is the active one).
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.wal.segments()
    }

    /// Registers the hook told about every sealed segment (replacing any earlier one; `None`
    /// removes it). Segments sealed before registration are not replayed: list them with
    /// [`Database::segments`].
    pub fn set_segment_sealed_hook(&self, hook: Option<Arc<dyn SegmentSealed>>) {
        *self.hook.write() = hook;
    }

    /// Flushes and fsyncs the log and closes the database. Temporary slots vanish.
    pub fn close(self) -> Result<()> {
        self.wal.set_seal_listener(None);
        let Database { wal, .. } = self;
        Ok(wal.close()?)
    }

    /// Makes sure every LSN up to `lsn` is durable, syncing the WAL if `lsn` is written but not
    /// yet synced (non-durable modes). An LSN never assigned → `LsnBeyondDurable`.
    fn ensure_durable(&self, lsn: Lsn) -> Result<()> {
        if lsn <= self.wal.durable_lsn() {
            return Ok(());
        }
        if lsn < self.wal.next_lsn() {
            let durable = self.wal.sync()?;
            if lsn <= durable {
                return Ok(());
            }
        }
        Err(EngineError::LsnBeyondDurable { requested: lsn, durable_lsn: self.wal.durable_lsn() })
    }

    // ----- replication slots -----

    /// Creates a replication slot. Persistent slots are on disk (fsynced) before this returns.
    ///
    /// Errors: `InvalidSlotName`, `SlotExists`, `TooManySlots`, `LsnNotRetained` (a start LSN
    /// already removed), `LsnBeyondDurable` (a start LSN past the end of the log).
    pub fn create_slot(&self, name: &str, options: SlotOptions) -> Result<SlotInfo> {
        slot::validate_slot_name(name)
            .map_err(|reason| EngineError::InvalidSlotName { name: name.to_string(), reason })?;
        // Make what the slot will confirm durable first (syncing if needed), outside the locks:
        // a sync may seal a segment and run the sealed-segment hook, which may call back in.
        match options.start {
            StartPosition::Current => self.ensure_durable(self.wal.next_lsn() - 1)?,
            StartPosition::Oldest => {}
            StartPosition::Lsn(lsn) => self.ensure_durable(lsn.max(1) - 1)?,
        }
        let retention = self.retention.lock();
        let mut slots = self.slots.lock();
        if slots.contains_key(name) {
            return Err(EngineError::SlotExists { name: name.to_string() });
        }
        if slots.len() >= self.config.max_slots {
            return Err(EngineError::TooManySlots { max_slots: self.config.max_slots });
        }
        let oldest_lsn = self.wal.oldest_lsn();
        // The slot confirms everything before its start, so its start is at most one past the
        // durable end (a batch boundary: batches are written and synced whole).
        let durable_lsn = self.wal.durable_lsn();
        let restart_lsn = match options.start {
            StartPosition::Current => durable_lsn + 1,
            StartPosition::Oldest => oldest_lsn,
            StartPosition::Lsn(lsn) => {
                let lsn = lsn.max(1);
                let readable_from = retention::readable_from(oldest_lsn, retention.archived_lsn);
                if lsn < readable_from {
                    return Err(EngineError::LsnNotRetained { requested: lsn, oldest_lsn: readable_from });
                }
                lsn
            }
        };
        if restart_lsn - 1 > durable_lsn {
            return Err(EngineError::LsnBeyondDurable { requested: restart_lsn - 1, durable_lsn });
        }
        let now = now_us();
        let rec = SlotRecord {
            name: name.to_string(),
            restart_lsn,
            confirmed_lsn: restart_lsn - 1,
            created_at_us: now,
            last_active_at_us: now,
            invalidation: None,
            filter: options.filter,
        };
        if !options.temporary {
            self.persist_slot(&rec)?;
        }
        let cell = Arc::new(SlotCell {
            name: name.to_string(),
            temporary: options.temporary,
            inner: Mutex::new(SlotInner { rec, active: false, dropped: false }),
        });
        let info = cell.info(&cell.inner.lock());
        slots.insert(name.to_string(), cell);
        tracing::info!(slot = name, restart_lsn, temporary = options.temporary, "created replication slot");
        Ok(info)
    }

    /// A snapshot of one slot.
    pub fn slot(&self, name: &str) -> Result<SlotInfo> {
        let cell = self.cell(name)?;
        let s = cell.inner.lock();
        if s.dropped {
            return Err(EngineError::SlotNotFound { name: name.to_string() });
        }
        Ok(cell.info(&s))
    }

    /// Snapshots of every slot, by name.
    pub fn slots(&self) -> Vec<SlotInfo> {
        self.cells()
            .iter()
            .filter_map(|c| {
                let s = c.inner.lock();
                (!s.dropped).then(|| c.info(&s))
            })
            .collect()
    }

    /// Confirms that the consumer has durably processed everything up to and including `lsn`:
    /// the slot's `confirmed_lsn` becomes `lsn` and its restart LSN `lsn + 1`, persisted
    /// (fsynced) before this returns.
    ///
    /// - `lsn` below the current `confirmed_lsn`: nothing moves backwards; the call only records
    ///   activity and returns the slot unchanged (so a consumer may safely re-confirm after a
    ///   restart).
    /// - `lsn` beyond the durable end of the log: `LsnBeyondDurable`. In non-durable sync modes a
    ///   record that is written but not yet synced is synced first, then confirmed.
    /// - A lost slot: `SlotInvalidated`.
    pub fn advance(&self, name: &str, lsn: Lsn) -> Result<SlotInfo> {
        let cell = self.cell(name)?;
        self.advance_cell(&cell, lsn)
    }

    fn advance_cell(&self, cell: &SlotCell, lsn: Lsn) -> Result<SlotInfo> {
        check_usable(cell, &cell.inner.lock())?;
        // Outside the slot's lock: a sync may run the sealed-segment hook.
        self.ensure_durable(lsn)?;
        let s = &mut *cell.inner.lock();
        check_usable(cell, s)?;
        let mut rec = s.rec.clone();
        if lsn > rec.confirmed_lsn {
            rec.confirmed_lsn = lsn;
            rec.restart_lsn = lsn + 1;
        }
        debug_assert!(rec.confirmed_lsn >= s.rec.confirmed_lsn, "a slot's confirmed LSN never goes backwards");
        debug_assert!(rec.restart_lsn <= rec.confirmed_lsn + 1, "a slot restarts right after what it confirmed");
        rec.last_active_at_us = now_us().max(rec.last_active_at_us);
        if !cell.temporary {
            self.persist_slot(&rec)?;
        }
        s.rec = rec;
        Ok(cell.info(s))
    }

    /// Acquires a slot for one consumer: it becomes `Active` until the guard is released or
    /// dropped. A second acquire fails with `SlotInUse`; a lost slot with `SlotInvalidated`.
    pub fn acquire_slot(&self, name: &str) -> Result<SlotGuard<'_>> {
        let cell = self.acquire_cell(name)?;
        Ok(SlotGuard { db: DbRef::Borrowed(self), cell, released: false })
    }

    /// Like [`Database::acquire_slot`], for a database shared in an `Arc`: the guard keeps the
    /// database alive and has no borrow (for subscriptions that own their slot).
    pub fn acquire_slot_shared(db: &Arc<Database>, name: &str) -> Result<SlotGuard<'static>> {
        let cell = db.acquire_cell(name)?;
        Ok(SlotGuard { db: DbRef::Shared(db.clone()), cell, released: false })
    }

    fn acquire_cell(&self, name: &str) -> Result<Arc<SlotCell>> {
        let cell = self.cell(name)?;
        {
            let mut s = cell.inner.lock();
            check_usable(&cell, &s)?;
            if s.active {
                return Err(EngineError::SlotInUse { name: name.to_string() });
            }
            self.touch(&cell, &mut s)?;
            s.active = true;
        }
        Ok(cell)
    }

    /// Records activity (persisted) on a slot.
    fn touch(&self, cell: &SlotCell, s: &mut SlotInner) -> Result<()> {
        let mut rec = s.rec.clone();
        rec.last_active_at_us = now_us().max(rec.last_active_at_us);
        if !cell.temporary {
            self.persist_slot(&rec)?;
        }
        s.rec = rec;
        Ok(())
    }

    /// Drops a slot (valid or lost); its file is removed durably. An acquired slot cannot be
    /// dropped (`SlotInUse`).
    pub fn drop_slot(&self, name: &str) -> Result<()> {
        let mut slots = self.slots.lock();
        let cell = slots.get(name).cloned().ok_or_else(|| EngineError::SlotNotFound { name: name.to_string() })?;
        let mut s = cell.inner.lock();
        if s.active {
            return Err(EngineError::SlotInUse { name: name.to_string() });
        }
        if !cell.temporary {
            persist::remove_durably(self.storage.as_ref(), &self.slots_dir, &slot_file_name(name))?;
        }
        s.dropped = true;
        drop(s);
        slots.remove(name);
        tracing::info!(slot = name, "dropped replication slot");
        Ok(())
    }

    fn cell(&self, name: &str) -> Result<Arc<SlotCell>> {
        self.slots.lock().get(name).cloned().ok_or_else(|| EngineError::SlotNotFound { name: name.to_string() })
    }

    pub(crate) fn cells(&self) -> Vec<Arc<SlotCell>> {
        self.slots.lock().values().cloned().collect()
    }

    fn persist_slot(&self, rec: &SlotRecord) -> Result<()> {
        persist::write_atomic(self.storage.as_ref(), &self.slots_dir, &slot_file_name(&rec.name), &rec.encode())
    }

    /// Marks a slot lost, persisted first.
    fn invalidate(&self, cell: &SlotCell, s: &mut SlotInner, reason: InvalidationReason, now: u64) -> Result<()> {
        let mut rec = s.rec.clone();
        rec.invalidation = Some(Invalidation { reason, invalidated_at_us: now });
        if !cell.temporary {
            self.persist_slot(&rec)?;
        }
        s.rec = rec;
        tracing::warn!(slot = %cell.name, %reason, "replication slot invalidated");
        Ok(())
    }

    // ----- retention -----

    /// Sets (or clears) the "retain from" horizon: records at or after `lsn` are kept by
    /// checkpoints. Persisted in `engine.state` (fsynced) before this returns. A higher layer
    /// such as the archiver holds it at the first LSN it has not archived yet.
    pub fn set_retain_from(&self, lsn: Option<Lsn>) -> Result<()> {
        let mut state = self.retention.lock();
        let new = EngineState { retain_from: lsn, ..*state };
        if new != *state {
            self.persist_state(&new)?;
            *state = new;
        }
        Ok(())
    }

    /// The "retain from" horizon, if set.
    pub fn retain_from(&self) -> Option<Lsn> {
        self.retention.lock().retain_from
    }

    /// Records that the archive holds every LSN up to and including `lsn` and serves it to CDC
    /// (a cold source, see `walden-cdc`), or clears it with `None`. From then on a slot pins only
    /// the WAL after `lsn`: a consumer that falls behind the local WAL reads the archive instead
    /// of being invalidated, and `max_slot_wal_keep_bytes` counts only unarchived WAL. Persisted
    /// in `engine.state` (fsynced) before this returns. It does not itself keep anything: the
    /// archiver also holds [`Database::set_retain_from`] at `lsn + 1`. `lsn` beyond the durable
    /// end → `LsnBeyondDurable`. Lowering or clearing it invalidates (`WalRemoved`) every slot
    /// whose restart LSN is then neither in the WAL nor in the archive.
    pub fn set_archived_lsn(&self, lsn: Option<Lsn>) -> Result<()> {
        if let Some(lsn) = lsn {
            self.ensure_durable(lsn)?; // outside the lock: a sync may run the sealed-segment hook
        }
        let mut state = self.retention.lock();
        let new = EngineState { archived_lsn: lsn, ..*state };
        if new == *state {
            return Ok(());
        }
        self.persist_state(&new)?;
        *state = new;
        // A lower archived LSN (another lake, say) may leave slots behind what is readable.
        let log = LogBounds { oldest_lsn: self.wal.oldest_lsn(), last_lsn: self.wal.next_lsn() - 1 };
        let now = now_us();
        for cell in self.cells() {
            let mut s = cell.inner.lock();
            if s.dropped || s.rec.invalidation.is_some() {
                continue;
            }
            if let Some(reason) = retention::slot_unservable(s.rec.restart_lsn, s.rec.confirmed_lsn, log, lsn) {
                self.invalidate(&cell, &mut s, reason, now)?;
            }
        }
        Ok(())
    }

    /// The archived LSN ([`Database::set_archived_lsn`]), if set.
    pub fn archived_lsn(&self) -> Option<Lsn> {
        self.retention.lock().archived_lsn
    }

    /// Records the host's checkpoint: everything at or below `lsn` is no longer needed for the
    /// host's own recovery, so checkpoints may remove it (if nothing else holds it). Never moves
    /// backwards (a lower value is ignored); returns the checkpoint LSN in force. Persisted
    /// before this returns. `lsn` beyond the durable end → `LsnBeyondDurable`. Until the host sets
    /// it, the checkpoint LSN does not restrict retention.
    pub fn set_checkpoint_lsn(&self, lsn: Lsn) -> Result<Lsn> {
        self.ensure_durable(lsn)?; // outside the lock: a sync may run the sealed-segment hook
        let mut state = self.retention.lock();
        if state.checkpoint_lsn.is_some_and(|c| c >= lsn) {
            return Ok(state.checkpoint_lsn.unwrap_or(lsn));
        }
        let new = EngineState { checkpoint_lsn: Some(lsn), ..*state };
        self.persist_state(&new)?;
        *state = new;
        Ok(lsn)
    }

    /// The host's checkpoint LSN, if set.
    pub fn checkpoint_lsn(&self) -> Option<Lsn> {
        self.retention.lock().checkpoint_lsn
    }

    fn persist_state(&self, state: &EngineState) -> Result<()> {
        persist::write_atomic(self.storage.as_ref(), &self.dir, STATE_FILE_NAME, &state.encode())
    }

    /// Applies retention: first the guard rails (a valid slot pinning more than
    /// `max_slot_wal_keep_bytes` of sealed segments is invalidated, then an inactive slot idle
    /// longer than `slot_idle_timeout_ms`), then removes every sealed segment lying entirely
    /// below the horizon = min(valid slots' restart LSNs, retain-from, checkpoint LSN + 1).
    /// Returns what it removed and what held the rest. Buffered records are handed to the OS
    /// first (non-durable modes), so segments that are full get sealed.
    pub fn checkpoint(&self) -> Result<CheckpointReport> {
        self.wal.flush()?;
        let state = self.retention.lock();
        let segments = self.wal.segments();
        let now = now_us();
        let mut invalidated = Vec::new();
        for cell in self.cells() {
            let mut s = cell.inner.lock();
            if s.dropped || s.rec.invalidation.is_some() {
                continue;
            }
            if let Some(reason) = self.guard_rail(&segments, &s, state.archived_lsn, now) {
                self.invalidate(&cell, &mut s, reason, now)?;
                invalidated.push(InvalidatedSlot { name: cell.name.clone(), reason });
            }
        }
        let (horizon, held_by) = self.horizon(&state);
        let removed = self.wal.remove_segments_before(horizon.unwrap_or(Lsn::MAX))?;
        debug_assert!(
            removed.iter().all(|s| horizon.is_none_or(|h| s.last_lsn < h)),
            "a checkpoint removes only segments below the horizon"
        );
        let removed_bytes = removed.iter().map(|s| s.size_bytes).sum();
        if !removed.is_empty() || !invalidated.is_empty() {
            tracing::info!(removed = removed.len(), removed_bytes, ?horizon, ?held_by, "checkpoint");
        }
        Ok(CheckpointReport {
            removed_segments: removed,
            removed_bytes,
            horizon,
            held_by,
            invalidated_slots: invalidated,
        })
    }

    fn guard_rail(
        &self,
        segments: &[SegmentInfo],
        s: &SlotInner,
        archived_lsn: Option<Lsn>,
        now: u64,
    ) -> Option<InvalidationReason> {
        if let Some(max_bytes) = self.config.max_slot_wal_keep_bytes {
            let pinned_bytes = retention::pinned_bytes(segments, retention::slot_pin(s.rec.restart_lsn, archived_lsn));
            if pinned_bytes > max_bytes {
                return Some(InvalidationReason::MaxWalKeepBytes {
                    restart_lsn: s.rec.restart_lsn,
                    pinned_bytes,
                    max_bytes,
                });
            }
        }
        if let Some(timeout_ms) = self.config.slot_idle_timeout_ms
            && !s.active
        {
            let idle_ms = now.saturating_sub(s.rec.last_active_at_us) / 1000;
            if idle_ms > timeout_ms {
                return Some(InvalidationReason::IdleTimeout { idle_ms, timeout_ms });
            }
        }
        None
    }

    /// The retention horizon (first LSN that must be kept) and what sets it; `None` if nothing
    /// restricts retention ([`retention::horizon`] over the valid slots).
    fn horizon(&self, state: &EngineState) -> (Option<Lsn>, RetentionHolder) {
        let valid: Vec<(String, Lsn)> = self
            .cells()
            .iter()
            .filter_map(|cell| {
                let s = cell.inner.lock();
                (!s.dropped && s.rec.invalidation.is_none()).then(|| (cell.name.clone(), s.rec.restart_lsn))
            })
            .collect();
        retention::horizon(valid.iter().map(|(name, lsn)| (name.as_str(), *lsn)), state)
    }

    /// Positions, sizes and slot lags, and what holds the oldest segment.
    pub fn status(&self) -> Status {
        let state = *self.retention.lock();
        let segments = self.wal.segments();
        let current_lsn = self.wal.next_lsn() - 1;
        let (horizon, holder) = self.horizon(&state);
        let oldest_segment_held_by = retention::oldest_segment_held_by(&segments, horizon, holder);
        let slots = self
            .slots()
            .into_iter()
            .map(|info| {
                let positions = (info.restart_lsn, info.confirmed_lsn);
                let lag =
                    retention::slot_lag(&segments, current_lsn, positions, info.state.is_valid(), state.archived_lsn);
                SlotStatus { lag_lsns: lag.lag_lsns, lag_bytes: lag.lag_bytes, pinned_bytes: lag.pinned_bytes, info }
            })
            .collect();
        Status {
            current_lsn,
            durable_lsn: self.wal.durable_lsn(),
            oldest_lsn: self.wal.oldest_lsn(),
            segment_count: segments.len(),
            segment_bytes: segments.iter().map(|s| s.size_bytes).sum(),
            checkpoint_lsn: state.checkpoint_lsn,
            retain_from: state.retain_from,
            archived_lsn: state.archived_lsn,
            retention_horizon: horizon,
            oldest_segment_held_by,
            slots,
        }
    }
}

/// Reads `engine.state` (defaults if absent), removing a leftover of an interrupted write.
fn read_state(storage: &dyn Storage, dir: &Path, report: &mut OpenReport) -> Result<EngineState> {
    let state_tmp = dir.join(format!("{STATE_FILE_NAME}{}", persist::TEMP_SUFFIX));
    if storage.exists(&state_tmp).map_err(|e| EngineError::io("stat", &state_tmp, e))? {
        storage.remove_file(&state_tmp).map_err(|e| EngineError::io("remove stale temp file", &state_tmp, e))?;
        report.temp_files_removed.push(state_tmp);
    }
    let state_path = dir.join(STATE_FILE_NAME);
    match persist::read_file(storage, &state_path)? {
        None => Ok(EngineState::default()),
        Some(bytes) => EngineState::decode(&bytes)
            .map_err(|e| EngineError::CorruptFile { path: state_path.clone(), detail: e.to_string() }),
    }
}

/// Reads every slot file in `slots_dir`, by name, after removing leftovers of interrupted
/// writes. Files that are not slot files are reported and left alone; a slot file that does not
/// decode, or holds another slot's name, fails the open.
fn read_slot_files(storage: &dyn Storage, slots_dir: &Path, report: &mut OpenReport) -> Result<Vec<SlotRecord>> {
    report.temp_files_removed.extend(persist::remove_temp_files(storage, slots_dir)?);
    let mut names = storage.list_dir(slots_dir).map_err(|e| EngineError::io("list directory", slots_dir, e))?;
    names.sort();
    let mut records = Vec::new();
    for file_name in names {
        let path = slots_dir.join(&file_name);
        let Some(stem) = file_name.strip_suffix(SLOT_FILE_EXTENSION).filter(|s| slot::validate_slot_name(s).is_ok())
        else {
            tracing::warn!(path = %path.display(), "ignoring a file that is not a slot file");
            report.foreign_files.push(path);
            continue;
        };
        let Some(bytes) = persist::read_file(storage, &path)? else { continue };
        let rec = SlotRecord::decode(&bytes)
            .map_err(|e| EngineError::CorruptFile { path: path.clone(), detail: e.to_string() })?;
        if rec.name != stem {
            return Err(EngineError::CorruptFile {
                path,
                detail: format!("the file holds slot {:?}, not {stem:?}", rec.name),
            });
        }
        records.push(rec);
    }
    Ok(records)
}

fn slot_file_name(name: &str) -> String {
    format!("{name}{SLOT_FILE_EXTENSION}")
}

fn check_usable(cell: &SlotCell, s: &SlotInner) -> Result<()> {
    if s.dropped {
        return Err(EngineError::SlotNotFound { name: cell.name.clone() });
    }
    if let Some(inv) = &s.rec.invalidation {
        return Err(EngineError::SlotInvalidated { name: cell.name.clone(), reason: inv.reason });
    }
    Ok(())
}

/// An acquired slot ([`Database::acquire_slot`]): the slot is `Active` while the guard lives.
/// Dropping the guard releases it (recording the time, best effort); [`SlotGuard::release`]
/// reports errors.
#[derive(Debug)]
pub struct SlotGuard<'db> {
    db: DbRef<'db>,
    cell: Arc<SlotCell>,
    released: bool,
}

/// How a [`SlotGuard`] refers to its database.
#[derive(Debug)]
enum DbRef<'db> {
    Borrowed(&'db Database),
    Shared(Arc<Database>),
}

impl std::ops::Deref for DbRef<'_> {
    type Target = Database;
    fn deref(&self) -> &Database {
        match self {
            DbRef::Borrowed(db) => db,
            DbRef::Shared(db) => db,
        }
    }
}

impl SlotGuard<'_> {
    /// The slot's name.
    pub fn name(&self) -> &str {
        &self.cell.name
    }

    /// A snapshot of the slot.
    pub fn info(&self) -> SlotInfo {
        self.cell.info(&self.cell.inner.lock())
    }

    /// [`Database::advance`] on this slot.
    pub fn advance(&self, lsn: Lsn) -> Result<SlotInfo> {
        self.db.advance_cell(&self.cell, lsn)
    }

    /// Releases the slot (it becomes `Inactive`), persisting the time of last activity.
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        self.release_inner()
    }

    fn release_inner(&self) -> Result<()> {
        let mut s = self.cell.inner.lock();
        s.active = false;
        if s.dropped {
            return Ok(());
        }
        self.db.touch(&self.cell, &mut s)
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        if !self.released
            && let Err(e) = self.release_inner()
        {
            tracing::warn!(slot = %self.cell.name, error = %e, "could not persist the slot's release time");
        }
    }
}
