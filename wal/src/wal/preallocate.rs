//! Zero-filled preallocation of the active segment in the durable modes, and its removal at
//! close (`WalConfig::preallocate_bytes`).

use std::sync::atomic::Ordering;

use super::shared::{IoState, Shared};
use crate::format;
use crate::{Result, WalError};

impl Shared {
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
    pub(super) fn preallocate(&self, io: &mut IoState, incoming: u64) -> Result<()> {
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
        debug_assert!(from >= io.write_offset, "zeros are written only above the data");
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
    pub(super) fn drop_preallocated(&self, io: &mut IoState) -> Result<()> {
        if io.preallocated_end <= io.write_offset {
            return Ok(());
        }
        let path = &io.segment.path;
        io.file.set_len(io.write_offset).map_err(|e| WalError::io("truncate", path, e))?;
        io.file.sync_data().map_err(|e| WalError::io("fdatasync", path, e))?;
        io.preallocated_end = io.write_offset;
        Ok(())
    }
}
