//! Retention: removing sealed segments below an LSN, oldest first, never the active one. The
//! engine decides the LSN (slots, checkpoints, the archive); the WAL only removes.

use std::sync::Arc;

use super::shared::Shared;
use crate::segment::{Segment, SegmentInfo};
use crate::{Lsn, Result, WalError};

impl Shared {
    /// Deletes every sealed segment whose records all lie below `lsn` (never the active one),
    /// oldest first, then fsyncs the directory; a crash midway leaves a contiguous suffix.
    /// Returns the removed segments.
    pub(super) fn remove_segments_before(&self, lsn: Lsn) -> Result<Vec<SegmentInfo>> {
        let mut segments = self.segments.write();
        let Some(&active_first) = segments.keys().next_back() else {
            unreachable!("the active segment always exists");
        };
        let doomed: Vec<Arc<Segment>> = segments
            .values()
            .filter(|s| s.first_lsn != active_first && s.is_sealed() && s.last_lsn() < lsn)
            .cloned()
            .collect();
        debug_assert!(
            doomed.iter().zip(segments.keys()).all(|(seg, first)| seg.first_lsn == *first),
            "retention removes a prefix of the log, oldest first"
        );
        let mut removed = Vec::with_capacity(doomed.len());
        let mut result = Ok(());
        for seg in doomed {
            if let Err(e) = self.storage.remove_file(&seg.path) {
                result = Err(WalError::io("remove", &seg.path, e));
                break;
            }
            segments.remove(&seg.first_lsn);
            removed.push(seg.info());
        }
        if !removed.is_empty() {
            self.storage.sync_dir(&self.dir).map_err(|e| WalError::io("fsync directory", &self.dir, e))?;
            tracing::info!(count = removed.len(), below_lsn = lsn, "removed WAL segments");
        }
        result.map(|()| removed)
    }
}
