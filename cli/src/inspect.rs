//! The read-only views behind `walden status` and `walden slots list`: positions, segments,
//! slots and what holds the WAL, computed from the files (see [`crate::offline`]).
//!
//! The rules are the engine's own functions ([`walden_engine::retention`]), applied to what the
//! files say: slot lag and pinned bytes, the retention horizon and what holds the oldest
//! segment, and which valid slots the engine will invalidate at its next open.

use std::path::{Path, PathBuf};

use serde::Serialize;
use walden_engine::retention::{self, LogBounds};
use walden_engine::slot::SlotRecord;
use walden_engine::state::EngineState;
use walden_engine::{Operation, RetentionHolder};
use walden_wal::{Lsn, SegmentInfo};

use crate::datadir::{self, DataDir};
use crate::exit::CliResult;
use crate::offline::{self, LogView, SegmentView, TailView};
use crate::output;

/// One replication slot, as `slots list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SlotRow {
    /// Name.
    pub name: String,
    /// `valid` or `lost`. (Whether a consumer has it acquired is only known inside the process
    /// that has the database open, so it is not shown.)
    pub state: &'static str,
    /// First LSN the consumer still needs.
    pub restart_lsn: Lsn,
    /// Last LSN the consumer confirmed.
    pub confirmed_lsn: Lsn,
    /// LSNs written after the confirmed one.
    pub lag_lsns: u64,
    /// Bytes of the segments holding LSNs at or after the restart LSN.
    pub lag_bytes: u64,
    /// Bytes of sealed segments the slot keeps from removal (0 when lost): those holding LSNs at
    /// or after its restart LSN and after the archived LSN.
    pub pinned_bytes: u64,
    /// Whether the slot's consumer will read archived LSNs (its restart LSN is at or below the
    /// archived LSN), from the lake once the WAL no longer holds them.
    pub reads_archive: bool,
    /// Table filter (`null`: all tables).
    pub tables: Option<Vec<String>>,
    /// Operation filter (`null`: all operations).
    pub operations: Option<Vec<&'static str>>,
    /// Creation time (ISO-8601).
    pub created_at: String,
    /// Last acquire, advance or release (ISO-8601).
    pub last_active_at: String,
    /// Why the slot is lost, if it is.
    pub invalidation_reason: Option<String>,
    /// When it was invalidated (ISO-8601).
    pub invalidated_at: Option<String>,
    /// A valid slot the engine will invalidate at its next open, and why (its WAL is gone, or it
    /// confirmed LSNs the log no longer has).
    pub invalid_at_next_open: Option<String>,
    /// Whether this slot is what keeps the oldest segment.
    pub holds_oldest_segment: bool,
}

/// What `walden status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Pid of the process that has the database open, if any.
    pub in_use_by_pid: Option<u32>,
    /// Last complete LSN on disk (0 for an empty log).
    pub current_lsn: Lsn,
    /// Oldest LSN retained.
    pub oldest_lsn: Lsn,
    /// Segments, sealed and active.
    pub segment_count: usize,
    /// Sealed segments.
    pub sealed_segment_count: usize,
    /// Total size of the segment files.
    pub segment_bytes: u64,
    /// The host's checkpoint LSN.
    pub checkpoint_lsn: Option<Lsn>,
    /// The retain-from horizon (the archiver holds it at the first unarchived LSN).
    pub retain_from: Option<Lsn>,
    /// The archive horizon: every LSN up to this one is in the archive lake (`null`: nothing
    /// archived).
    pub archived_lsn: Option<Lsn>,
    /// First LSN a checkpoint would keep now (before guard rails); `null`: nothing restricts.
    pub retention_horizon: Option<Lsn>,
    /// What keeps the oldest segment.
    pub oldest_segment_held_by: String,
    /// An incomplete tail at the end of the active segment.
    pub torn_tail: Option<TailView>,
    /// Every slot.
    pub slots: Vec<SlotRow>,
    /// The archive horizon and the local segments it covers.
    pub archive: ArchiveView,
    /// The segments.
    pub segments: Vec<SegmentView>,
}

/// What the archive holds of the local WAL (from `engine.state`; the lake itself is not read).
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveView {
    /// Every LSN up to this one is archived (`null`: nothing archived).
    pub archived_lsn: Option<Lsn>,
    /// The oldest LSN a consumer can read: 1 when the archive reaches the local WAL, else the
    /// WAL's oldest.
    pub readable_from: Lsn,
    /// Sealed local segments entirely archived (a checkpoint removes them unless something else
    /// holds them).
    pub archived_segments: usize,
    /// Their bytes.
    pub archived_bytes: u64,
    /// Sealed segments not archived yet.
    pub unarchived_sealed_segments: usize,
    /// Their bytes.
    pub unarchived_sealed_bytes: u64,
}

/// Everything read from a data directory.
pub struct Inspection {
    /// The directory.
    pub dir: DataDir,
    /// The log.
    pub log: LogView,
    /// Slot files.
    pub slots: Vec<(PathBuf, SlotRecord)>,
    /// `engine.state`.
    pub state: EngineState,
}

/// Reads a data directory (read-only). A corrupt slot or state file is an error, as it is for
/// the engine's open.
pub fn inspect(root: &Path) -> CliResult<Inspection> {
    let dir = datadir::check_existing(root)?;
    let log = offline::read_log(&dir)?;
    let slots = offline::read_slots(&dir)?;
    if let Some(problem) = slots.problems.into_iter().next() {
        return Err(problem.into_error(false));
    }
    let state = offline::read_state(root)?.map_err(|p| p.into_error(false))?.unwrap_or_default();
    Ok(Inspection { dir, log, slots: slots.slots, state })
}

fn operation_name(op: Operation) -> &'static str {
    match op {
        Operation::Insert => "insert",
        Operation::Update => "update",
        Operation::Delete => "delete",
        Operation::Schema => "schema",
    }
}

impl Inspection {
    /// The segments as the engine's rules take them.
    fn segment_infos(&self) -> Vec<SegmentInfo> {
        self.log
            .segments
            .iter()
            .map(|s| SegmentInfo {
                path: s.path.clone(),
                first_lsn: s.first_lsn,
                last_lsn: s.last_lsn,
                sealed: s.sealed,
                size_bytes: s.size_bytes,
            })
            .collect()
    }

    /// The retention horizon and what sets it ([`retention::horizon`] over the valid slots).
    fn horizon(&self) -> (Option<Lsn>, RetentionHolder) {
        let valid = self.slots.iter().filter(|(_, rec)| rec.invalidation.is_none());
        retention::horizon(valid.map(|(_, rec)| (rec.name.as_str(), rec.restart_lsn)), &self.state)
    }

    /// What keeps the oldest segment (as the engine's status says).
    pub fn oldest_segment_held_by(&self) -> RetentionHolder {
        let (horizon, holder) = self.horizon();
        retention::oldest_segment_held_by(&self.segment_infos(), horizon, holder)
    }

    /// Every slot with its lag.
    pub fn slot_rows(&self) -> Vec<SlotRow> {
        let segments = self.segment_infos();
        let holder = self.oldest_segment_held_by();
        let archived_lsn = self.state.archived_lsn;
        let log = LogBounds { oldest_lsn: self.log.oldest_lsn, last_lsn: self.log.last_lsn };
        self.slots
            .iter()
            .map(|(_, rec)| {
                let valid = rec.invalidation.is_none();
                let invalid_at_next_open = valid
                    .then(|| retention::slot_unservable(rec.restart_lsn, rec.confirmed_lsn, log, archived_lsn))
                    .flatten()
                    .map(|reason| reason.to_string());
                let positions = (rec.restart_lsn, rec.confirmed_lsn);
                let lag = retention::slot_lag(&segments, self.log.last_lsn, positions, valid, archived_lsn);
                SlotRow {
                    name: rec.name.clone(),
                    state: if valid { "valid" } else { "lost" },
                    restart_lsn: rec.restart_lsn,
                    confirmed_lsn: rec.confirmed_lsn,
                    lag_lsns: lag.lag_lsns,
                    lag_bytes: lag.lag_bytes,
                    pinned_bytes: lag.pinned_bytes,
                    reads_archive: archived_lsn.is_some_and(|a| rec.restart_lsn <= a),
                    tables: rec.filter.tables.as_ref().map(|t| t.iter().cloned().collect()),
                    operations: rec.filter.operations.as_ref().map(|o| o.iter().copied().map(operation_name).collect()),
                    created_at: output::time(rec.created_at_us),
                    last_active_at: output::time(rec.last_active_at_us),
                    invalidation_reason: rec.invalidation.map(|i| i.reason.to_string()),
                    invalidated_at: rec.invalidation.map(|i| output::time(i.invalidated_at_us)),
                    invalid_at_next_open,
                    holds_oldest_segment: holder == RetentionHolder::Slot(rec.name.clone()),
                }
            })
            .collect()
    }

    /// What the archive holds of the local WAL.
    pub fn archive(&self) -> ArchiveView {
        let archived_lsn = self.state.archived_lsn;
        let sealed = || self.log.segments.iter().filter(|s| s.sealed && s.last_lsn >= s.first_lsn);
        let archived = |s: &&SegmentView| archived_lsn.is_some_and(|a| s.last_lsn <= a);
        ArchiveView {
            archived_lsn,
            readable_from: retention::readable_from(self.log.oldest_lsn, archived_lsn),
            archived_segments: sealed().filter(archived).count(),
            archived_bytes: sealed().filter(archived).map(|s| s.size_bytes).sum(),
            unarchived_sealed_segments: sealed().filter(|s| !archived(s)).count(),
            unarchived_sealed_bytes: sealed().filter(|s| !archived(s)).map(|s| s.size_bytes).sum(),
        }
    }

    /// The status report.
    pub fn status(&self) -> StatusReport {
        let (horizon, _) = self.horizon();
        StatusReport {
            data_dir: self.dir.root.clone(),
            in_use_by_pid: datadir::lock_holder(&self.dir.wal),
            current_lsn: self.log.last_lsn,
            oldest_lsn: self.log.oldest_lsn,
            segment_count: self.log.segments.len(),
            sealed_segment_count: self.log.segments.iter().filter(|s| s.sealed).count(),
            segment_bytes: self.log.segments.iter().map(|s| s.size_bytes).sum(),
            checkpoint_lsn: self.state.checkpoint_lsn,
            retain_from: self.state.retain_from,
            archived_lsn: self.state.archived_lsn,
            retention_horizon: horizon,
            oldest_segment_held_by: self.oldest_segment_held_by().to_string(),
            torn_tail: self.log.torn_tail.clone(),
            slots: self.slot_rows(),
            archive: self.archive(),
            segments: self.log.segments.clone(),
        }
    }
}
