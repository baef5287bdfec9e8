//! The read-only views behind `walden status` and `walden slots list`: positions, segments,
//! slots and what holds the WAL, computed from the files (see [`crate::offline`]).
//!
//! The formulas are the engine's ([`walden_engine::Database::status`]): a slot's lag in LSNs is
//! `current LSN - confirmed LSN`; its lag in bytes is the size of every segment holding LSNs at or
//! after its restart LSN; the bytes it pins are those of the sealed ones; the retention horizon is
//! `min(valid slots' restart LSNs, retain-from, checkpoint LSN + 1)`.

use std::path::{Path, PathBuf};

use serde::Serialize;
use walden_engine::slot::SlotRecord;
use walden_engine::state::EngineState;
use walden_engine::{InvalidationReason, Operation, RetentionHolder};
use walden_wal::Lsn;

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
    /// Bytes of sealed segments the slot keeps from removal (0 when lost).
    pub pinned_bytes: u64,
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
    /// The retain-from horizon (set by the archiver, once it exists).
    pub retain_from: Option<Lsn>,
    /// First LSN a checkpoint would keep now (before guard rails); `null`: nothing restricts.
    pub retention_horizon: Option<Lsn>,
    /// What keeps the oldest segment.
    pub oldest_segment_held_by: String,
    /// An incomplete tail at the end of the active segment.
    pub torn_tail: Option<TailView>,
    /// Every slot.
    pub slots: Vec<SlotRow>,
    /// The archive horizon: not available until the archive issue lands.
    pub archive: &'static str,
    /// The segments.
    pub segments: Vec<SegmentView>,
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
    fn horizon(&self) -> (Option<Lsn>, RetentionHolder) {
        let mut best: Option<(Lsn, RetentionHolder)> = None;
        let mut consider = |lsn: Lsn, holder: RetentionHolder| {
            if best.as_ref().is_none_or(|(b, _)| lsn < *b) {
                best = Some((lsn, holder));
            }
        };
        for (_, rec) in &self.slots {
            if rec.invalidation.is_none() {
                consider(rec.restart_lsn, RetentionHolder::Slot(rec.name.clone()));
            }
        }
        if let Some(r) = self.state.retain_from {
            consider(r, RetentionHolder::RetainFrom(r));
        }
        if let Some(c) = self.state.checkpoint_lsn {
            consider(c.saturating_add(1), RetentionHolder::Checkpoint(c));
        }
        match best {
            Some((lsn, holder)) => (Some(lsn), holder),
            None => (None, RetentionHolder::Nothing),
        }
    }

    /// What keeps the oldest segment (as the engine's status says).
    pub fn oldest_segment_held_by(&self) -> RetentionHolder {
        let (horizon, holder) = self.horizon();
        match self.log.segments.first() {
            None => RetentionHolder::Nothing,
            Some(first) if !first.sealed => RetentionHolder::ActiveSegment,
            Some(first) => match horizon {
                Some(h) if h <= first.last_lsn => holder,
                _ => RetentionHolder::Nothing,
            },
        }
    }

    /// Every slot with its lag.
    pub fn slot_rows(&self) -> Vec<SlotRow> {
        let segments = &self.log.segments;
        let holder = self.oldest_segment_held_by();
        self.slots
            .iter()
            .map(|(_, rec)| {
                let valid = rec.invalidation.is_none();
                let invalid_at_next_open = if !valid {
                    None
                } else if rec.confirmed_lsn > self.log.last_lsn {
                    Some(
                        InvalidationReason::AheadOfLog {
                            confirmed_lsn: rec.confirmed_lsn,
                            last_lsn: self.log.last_lsn,
                        }
                        .to_string(),
                    )
                } else if rec.restart_lsn < self.log.oldest_lsn {
                    Some(
                        InvalidationReason::WalRemoved {
                            restart_lsn: rec.restart_lsn,
                            oldest_lsn: self.log.oldest_lsn,
                        }
                        .to_string(),
                    )
                } else {
                    None
                };
                SlotRow {
                    name: rec.name.clone(),
                    state: if valid { "valid" } else { "lost" },
                    restart_lsn: rec.restart_lsn,
                    confirmed_lsn: rec.confirmed_lsn,
                    lag_lsns: self.log.last_lsn.saturating_sub(rec.confirmed_lsn),
                    lag_bytes: segments
                        .iter()
                        .filter(|s| s.last_lsn >= rec.restart_lsn && s.last_lsn >= s.first_lsn)
                        .map(|s| s.size_bytes)
                        .sum(),
                    pinned_bytes: if valid {
                        segments
                            .iter()
                            .filter(|s| s.sealed && s.last_lsn >= rec.restart_lsn)
                            .map(|s| s.size_bytes)
                            .sum()
                    } else {
                        0
                    },
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
            retention_horizon: horizon,
            oldest_segment_held_by: self.oldest_segment_held_by().to_string(),
            torn_tail: self.log.torn_tail.clone(),
            slots: self.slot_rows(),
            archive: ARCHIVE_NOT_YET,
            segments: self.log.segments.clone(),
        }
    }
}

/// What status and the demo say about the archive until the archive issue lands.
pub const ARCHIVE_NOT_YET: &str = "not available in this build: archiving to Parquet / Iceberg (and `walden archive`, `walden replay`) comes with the archive issue";
