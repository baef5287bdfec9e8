//! Retention rules: what holds WAL segments, which slots the log can no longer serve, and how
//! far each slot lags. Pure functions of the engine's inputs, so the engine and the offline
//! tools (`walden status`, `walden verify`) apply the same rule.
//!
//! A sealed segment is removed only when all its records lie below the horizon
//! `min(pin of every valid slot, retain_from, checkpoint_lsn + 1)` (terms that are unset do not
//! restrict). A slot's pin is its restart LSN, or `archived_lsn + 1` when that is higher: the
//! archive serves what it holds. The active segment is never removed.

use std::fmt;

use walden_wal::SegmentInfo;

use crate::Lsn;
use crate::slot::InvalidationReason;
use crate::state::EngineState;

/// What holds back retention (the term of the horizon with the smallest LSN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetentionHolder {
    /// A valid replication slot, by name.
    Slot(String),
    /// The "retain from" horizon set by a higher layer (its LSN).
    RetainFrom(Lsn),
    /// The host's checkpoint LSN (WAL after it is still needed).
    Checkpoint(Lsn),
    /// The oldest segment is the active one, which is never removed.
    ActiveSegment,
    /// Nothing: the oldest segment will be removed by the next checkpoint (or nothing restricts
    /// retention at all).
    Nothing,
}

impl fmt::Display for RetentionHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetentionHolder::Slot(name) => write!(f, "replication slot {name:?}"),
            RetentionHolder::RetainFrom(lsn) => write!(f, "retain-from horizon at LSN {lsn}"),
            RetentionHolder::Checkpoint(lsn) => write!(f, "checkpoint at LSN {lsn}"),
            RetentionHolder::ActiveSegment => f.write_str("the active segment"),
            RetentionHolder::Nothing => f.write_str("nothing"),
        }
    }
}

/// The first LSN a valid slot with restart LSN `restart_lsn` keeps in the WAL: the archive
/// serves what lies at or below `archived_lsn`.
pub fn slot_pin(restart_lsn: Lsn, archived_lsn: Option<Lsn>) -> Lsn {
    match archived_lsn {
        Some(archived) => restart_lsn.max(archived.saturating_add(1)),
        None => restart_lsn,
    }
}

/// The oldest LSN a consumer can read: the WAL's oldest, or 1 when the archive reaches the WAL.
pub fn readable_from(wal_oldest_lsn: Lsn, archived_lsn: Option<Lsn>) -> Lsn {
    match archived_lsn {
        Some(archived) if archived.saturating_add(1) >= wal_oldest_lsn => 1,
        _ => wal_oldest_lsn,
    }
}

/// The retention horizon (the first LSN that must be kept) and what sets it, from the valid
/// slots (`(name, restart LSN)`) and the persisted inputs; `None` if nothing restricts
/// retention. Ties go to the first term considered: slots in the order given, then retain-from,
/// then the checkpoint.
pub fn horizon<'a>(
    valid_slots: impl IntoIterator<Item = (&'a str, Lsn)>,
    state: &EngineState,
) -> (Option<Lsn>, RetentionHolder) {
    let mut best: Option<(Lsn, RetentionHolder)> = None;
    let mut consider = |lsn: Lsn, holder: RetentionHolder| {
        if best.as_ref().is_none_or(|(b, _)| lsn < *b) {
            best = Some((lsn, holder));
        }
    };
    for (name, restart_lsn) in valid_slots {
        consider(slot_pin(restart_lsn, state.archived_lsn), RetentionHolder::Slot(name.to_string()));
    }
    if let Some(r) = state.retain_from {
        consider(r, RetentionHolder::RetainFrom(r));
    }
    if let Some(c) = state.checkpoint_lsn {
        consider(c.saturating_add(1), RetentionHolder::Checkpoint(c));
    }
    match best {
        Some((lsn, holder)) => (Some(lsn), holder),
        None => (None, RetentionHolder::Nothing),
    }
}

/// What keeps the oldest of `segments` (oldest first) from being removed, given the horizon
/// and its holder ([`horizon`]).
pub fn oldest_segment_held_by(
    segments: &[SegmentInfo],
    horizon: Option<Lsn>,
    holder: RetentionHolder,
) -> RetentionHolder {
    match segments.first() {
        None => RetentionHolder::Nothing,
        Some(first) if !first.sealed => RetentionHolder::ActiveSegment,
        Some(first) => match horizon {
            Some(h) if h <= first.last_lsn => holder,
            _ => RetentionHolder::Nothing,
        },
    }
}

/// The first and last LSN the log holds (`last_lsn` 0 for an empty log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBounds {
    /// Oldest LSN still in the WAL.
    pub oldest_lsn: Lsn,
    /// Last LSN in the WAL.
    pub last_lsn: Lsn,
}

/// Why a valid slot can no longer be served, if it cannot: it confirmed LSNs beyond the end of
/// the log (the log lost its tail), or it needs LSNs that are neither in the WAL nor in the
/// archive. The engine invalidates such a slot at open (and when the archived LSN is lowered);
/// `walden status` and `walden verify` predict it.
pub fn slot_unservable(
    restart_lsn: Lsn,
    confirmed_lsn: Lsn,
    log: LogBounds,
    archived_lsn: Option<Lsn>,
) -> Option<InvalidationReason> {
    if confirmed_lsn > log.last_lsn {
        return Some(InvalidationReason::AheadOfLog { confirmed_lsn, last_lsn: log.last_lsn });
    }
    if restart_lsn < readable_from(log.oldest_lsn, archived_lsn) {
        return Some(InvalidationReason::WalRemoved { restart_lsn, oldest_lsn: log.oldest_lsn });
    }
    None
}

/// How far one slot lags behind the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotLag {
    /// LSNs written after the slot's confirmed LSN.
    pub lag_lsns: u64,
    /// Bytes of the segments holding LSNs at or after the slot's restart LSN.
    pub lag_bytes: u64,
    /// Bytes of sealed segments the slot alone keeps from removal (0 for a lost slot).
    pub pinned_bytes: u64,
}

/// The lag of a slot (restart and confirmed LSN, `valid` unless lost) in a log whose last LSN
/// is `current_lsn`, with `segments` oldest first.
pub fn slot_lag(
    segments: &[SegmentInfo],
    current_lsn: Lsn,
    (restart_lsn, confirmed_lsn): (Lsn, Lsn),
    valid: bool,
    archived_lsn: Option<Lsn>,
) -> SlotLag {
    SlotLag {
        lag_lsns: current_lsn.saturating_sub(confirmed_lsn),
        lag_bytes: lag_bytes(segments, restart_lsn),
        pinned_bytes: if valid { pinned_bytes(segments, slot_pin(restart_lsn, archived_lsn)) } else { 0 },
    }
}

/// Bytes of sealed segments holding LSNs at or after `pin` (what `max_slot_wal_keep_bytes` is
/// compared with).
pub fn pinned_bytes(segments: &[SegmentInfo], pin: Lsn) -> u64 {
    segments.iter().filter(|s| s.sealed && s.last_lsn >= pin).map(|s| s.size_bytes).sum()
}

/// Bytes of all non-empty segments holding LSNs at or after `restart_lsn`.
fn lag_bytes(segments: &[SegmentInfo], restart_lsn: Lsn) -> u64 {
    segments.iter().filter(|s| s.last_lsn >= restart_lsn && s.last_lsn >= s.first_lsn).map(|s| s.size_bytes).sum()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn segment(first_lsn: Lsn, last_lsn: Lsn, sealed: bool, size_bytes: u64) -> SegmentInfo {
        SegmentInfo { path: PathBuf::from(format!("{first_lsn}.wal")), first_lsn, last_lsn, sealed, size_bytes }
    }

    #[test]
    fn the_archive_lifts_pins_and_reach() {
        assert_eq!(slot_pin(5, None), 5);
        assert_eq!(slot_pin(5, Some(9)), 10);
        assert_eq!(slot_pin(12, Some(9)), 12);
        assert_eq!(slot_pin(5, Some(Lsn::MAX)), Lsn::MAX);
        assert_eq!(readable_from(100, None), 100);
        assert_eq!(readable_from(100, Some(98)), 100, "LSN 99 is in neither");
        assert_eq!(readable_from(100, Some(99)), 1);
        assert_eq!(readable_from(100, Some(500)), 1);
    }

    #[test]
    fn the_horizon_is_the_smallest_term_and_ties_go_to_slots() {
        let state = EngineState { checkpoint_lsn: Some(9), retain_from: Some(10), archived_lsn: None };
        assert_eq!(horizon([("a", 12), ("b", 10)], &state), (Some(10), RetentionHolder::Slot("b".into())));
        assert_eq!(horizon([("a", 12)], &state), (Some(10), RetentionHolder::RetainFrom(10)));
        let state = EngineState { checkpoint_lsn: Some(3), ..state };
        assert_eq!(horizon([("a", 12)], &state), (Some(4), RetentionHolder::Checkpoint(3)));
        assert_eq!(horizon([], &EngineState::default()), (None, RetentionHolder::Nothing));
        let archived = EngineState { archived_lsn: Some(20), ..EngineState::default() };
        assert_eq!(horizon([("a", 5)], &archived), (Some(21), RetentionHolder::Slot("a".into())));
    }

    #[test]
    fn the_oldest_segment_is_held_only_when_the_horizon_reaches_into_it() {
        let segments = [segment(1, 10, true, 100), segment(11, 12, false, 50)];
        let slot = RetentionHolder::Slot("a".into());
        assert_eq!(oldest_segment_held_by(&segments, Some(10), slot.clone()), slot);
        assert_eq!(oldest_segment_held_by(&segments, Some(11), slot.clone()), RetentionHolder::Nothing);
        assert_eq!(oldest_segment_held_by(&segments, None, RetentionHolder::Nothing), RetentionHolder::Nothing);
        assert_eq!(oldest_segment_held_by(&segments[1..], Some(1), slot), RetentionHolder::ActiveSegment);
        assert_eq!(oldest_segment_held_by(&[], Some(1), RetentionHolder::Nothing), RetentionHolder::Nothing);
    }

    #[test]
    fn a_slot_is_unservable_ahead_of_the_log_or_behind_what_is_readable() {
        let log = LogBounds { oldest_lsn: 100, last_lsn: 200 };
        assert_eq!(slot_unservable(150, 149, log, None), None);
        assert_eq!(
            slot_unservable(202, 201, log, None),
            Some(InvalidationReason::AheadOfLog { confirmed_lsn: 201, last_lsn: 200 })
        );
        assert_eq!(
            slot_unservable(50, 49, log, None),
            Some(InvalidationReason::WalRemoved { restart_lsn: 50, oldest_lsn: 100 })
        );
        assert_eq!(slot_unservable(50, 49, log, Some(99)), None, "the archive serves 1..=99");
    }

    #[test]
    fn lag_counts_whole_segments_and_pins_only_sealed_unarchived_ones() {
        let segments = [segment(1, 10, true, 100), segment(11, 20, true, 200), segment(21, 20, false, 30)];
        let lag = slot_lag(&segments, 20, (5, 4), true, None);
        assert_eq!(lag, SlotLag { lag_lsns: 16, lag_bytes: 300, pinned_bytes: 300 });
        let lag = slot_lag(&segments, 20, (5, 4), true, Some(10));
        assert_eq!(lag.pinned_bytes, 200, "segment 1-10 is archived");
        assert_eq!(slot_lag(&segments, 20, (5, 4), false, None).pinned_bytes, 0);
        assert_eq!(
            slot_lag(&segments, 20, (21, 20), true, None),
            SlotLag { lag_lsns: 0, lag_bytes: 0, pinned_bytes: 0 }
        );
    }
}
