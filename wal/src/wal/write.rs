//! The `io` holder's write path: draining the pending queue into the segment files (rotating
//! where a chunk says so), `fdatasync`, and publishing the written, durable and visible LSNs.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::shared::{Chunk, IoState, Shared};
use crate::{Result, WalError};

/// Largest chunk buffer kept for reuse.
const SPARE_BUFFER_MAX_BYTES: usize = 4 << 20;

impl Shared {
    pub(crate) fn flush(&self, durable: bool) -> Result<()> {
        // Durable modes never write without syncing (see `encode_batch` on `FLAG_SYNC_START`).
        let durable = durable || self.config.sync_mode.is_durable();
        let mut io = self.lock_io();
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
    pub(super) fn write_pending(&self, io: &mut IoState, durable: bool) -> Result<()> {
        let chunks = Self::take_pending(&mut self.lock_append());
        let emptied = self.write_chunks(io, chunks, durable)?;
        if !emptied.is_empty() {
            Self::keep_spare_buffers(&mut self.lock_append(), emptied);
        }
        Ok(())
    }

    /// Writes `chunks` (taken from the pending queue) into the segment files, rotating where
    /// they say so; if `durable`, fdatasyncs and publishes the durable LSN. Returns the emptied
    /// buffers for reuse. Takes no append-state lock, so the caller may hold it. Any error
    /// fails the log.
    pub(super) fn write_chunks(
        &self,
        io: &mut IoState,
        chunks: VecDeque<Chunk>,
        durable: bool,
    ) -> Result<Vec<Vec<u8>>> {
        if !chunks.is_empty() {
            self.clear_clean_close(io)?;
        }
        let mut emptied = Vec::new();
        for chunk in chunks {
            if chunk.segment_first_lsn != io.segment.first_lsn {
                debug_assert_eq!(chunk.segment_first_lsn, io.last_lsn + 1, "a new segment starts after the last LSN");
                self.rotate(io, chunk.segment_first_lsn)?;
            }
            if let Some(buffer) = self.write_chunk(io, chunk)? {
                emptied.push(buffer);
            }
        }
        self.start_writeback(io);
        if durable && io.unsynced {
            self.sync_active(io)?;
        }
        if !io.unsynced {
            self.durable_lsn.fetch_max(io.last_lsn, Ordering::AcqRel);
            if self.config.sync_mode.is_durable() {
                // Durable modes show readers only what is synced.
                io.segment.visible_end_offset.store(io.write_offset, Ordering::Release);
                self.publish_visible(io.last_lsn);
            }
        }
        // Only the `io` holder moves these two: nothing is durable before it is written, and in
        // the durable modes readers see nothing that is not durable.
        debug_assert!(self.durable_lsn.load(Ordering::Acquire) <= self.written_lsn.load(Ordering::Acquire));
        debug_assert!(
            !self.config.sync_mode.is_durable()
                || self.visible_lsn.load(Ordering::Acquire) <= self.durable_lsn.load(Ordering::Acquire)
        );
        Ok(emptied)
    }

    /// Writes one chunk at the write offset of the active segment (after preallocating room
    /// for it) and publishes it as written (and, in the buffered modes, visible). Returns its
    /// emptied buffer if it is worth keeping.
    fn write_chunk(&self, io: &mut IoState, chunk: Chunk) -> Result<Option<Vec<u8>>> {
        debug_assert_eq!(chunk.segment_first_lsn, io.segment.first_lsn, "a chunk goes to its own segment");
        debug_assert!(chunk.records == 0 || chunk.last_lsn > io.last_lsn, "file order is LSN order");
        debug_assert!(!io.clean_close_on_disk, "the clean-close record is cleared before the first write");
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
        if !self.config.sync_mode.is_durable() {
            io.segment.visible_end_offset.store(io.write_offset, Ordering::Release);
            self.publish_visible(chunk.last_lsn);
        }
        let mut buffer = chunk.bytes;
        if buffer.capacity() > SPARE_BUFFER_MAX_BYTES {
            return Ok(None);
        }
        buffer.clear();
        Ok(Some(buffer))
    }

    /// Buffered modes: starts write-back of what was written since the last hint once
    /// `writeback_interval_bytes` accumulated. A hint only (see `StorageFile::start_writeback`);
    /// the seal's fdatasync still writes and reports everything.
    fn start_writeback(&self, io: &mut IoState) {
        let interval = self.config.writeback_interval_bytes;
        if self.config.sync_mode.is_durable() || interval == 0 || io.write_offset - io.writeback_from < interval {
            return;
        }
        if let Err(e) = io.file.start_writeback(io.writeback_from, io.write_offset - io.writeback_from) {
            tracing::debug!(error = %e, "start_writeback failed (ignored)");
        }
        io.writeback_from = io.write_offset;
    }

    /// `fdatasync`s the active segment; an error fails the log.
    fn sync_active(&self, io: &mut IoState) -> Result<()> {
        let started = Instant::now();
        if let Err(e) = io.file.sync_data() {
            return Err(self.fail(WalError::io("fdatasync", &io.segment.path, e)));
        }
        self.record_sync_duration(started.elapsed());
        io.unsynced = false;
        io.writeback_from = io.write_offset;
        self.stats.data_syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Folds one data fdatasync's duration into the moving average the gather bound uses.
    pub(super) fn record_sync_duration(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.stats.data_sync_us.fetch_add(us, Ordering::Relaxed);
        let avg = self.sync_avg_us.load(Ordering::Relaxed);
        // Only the `io` holder writes it; a weight of 1/4 smooths single outliers.
        let next = if avg == 0 { us } else { avg - avg / 4 + us / 4 };
        self.sync_avg_us.store(next.max(1), Ordering::Relaxed);
    }
}
