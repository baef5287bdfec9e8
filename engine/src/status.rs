//! The reports of retention and status: what a checkpoint removed and why, and a snapshot of
//! positions, sizes and slot lags ([`crate::Database::checkpoint`], [`crate::Database::status`]).

use walden_wal::SegmentInfo;

use crate::Lsn;
use crate::retention::RetentionHolder;
use crate::slot::{InvalidationReason, SlotInfo};

/// A slot invalidated by a guard rail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidatedSlot {
    /// The slot.
    pub name: String,
    /// Why.
    pub reason: InvalidationReason,
}

/// What [`crate::Database::checkpoint`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointReport {
    /// Segments removed, oldest first.
    pub removed_segments: Vec<SegmentInfo>,
    /// Their total size in bytes.
    pub removed_bytes: u64,
    /// The retention horizon applied: the first LSN kept (`None`: nothing restricted retention,
    /// so every sealed segment was removed).
    pub horizon: Option<Lsn>,
    /// What set the horizon.
    pub held_by: RetentionHolder,
    /// Slots invalidated by the guard rails during this checkpoint.
    pub invalidated_slots: Vec<InvalidatedSlot>,
}

/// One slot in [`Status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotStatus {
    /// The slot.
    pub info: SlotInfo,
    /// LSNs written after the slot's confirmed LSN (`current_lsn - confirmed_lsn`).
    pub lag_lsns: u64,
    /// Bytes of the segments holding LSNs at or after the slot's restart LSN (whole segments,
    /// so an upper bound; 0 when the slot has consumed everything).
    pub lag_bytes: u64,
    /// Bytes of sealed segments the slot alone would keep from removal (what
    /// `max_slot_wal_keep_bytes` is compared with); 0 for a lost slot.
    pub pinned_bytes: u64,
}

/// A snapshot from [`crate::Database::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Last LSN assigned (0 for an empty log).
    pub current_lsn: Lsn,
    /// Last LSN known durable.
    pub durable_lsn: Lsn,
    /// Oldest LSN still retained.
    pub oldest_lsn: Lsn,
    /// Number of WAL segments (sealed and active).
    pub segment_count: usize,
    /// Their total size in bytes.
    pub segment_bytes: u64,
    /// The host's checkpoint LSN, if set.
    pub checkpoint_lsn: Option<Lsn>,
    /// The retain-from horizon, if set.
    pub retain_from: Option<Lsn>,
    /// Every LSN up to this one is in the archive ([`crate::Database::set_archived_lsn`]); slots
    /// do not pin the WAL below it.
    pub archived_lsn: Option<Lsn>,
    /// The first LSN a checkpoint would keep now (before guard rails), if anything restricts it.
    pub retention_horizon: Option<Lsn>,
    /// What keeps the oldest segment from being removed.
    pub oldest_segment_held_by: RetentionHolder,
    /// Every slot with its lag.
    pub slots: Vec<SlotStatus>,
}
