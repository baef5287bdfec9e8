//! Closing: the clean-close record that lets the next open skip the scan of the active
//! segment, and clearing it durably before the first write after open.

use std::sync::atomic::Ordering;

use super::shared::{IoState, Shared};
use crate::Result;
use crate::format::CleanClose;
use crate::recovery;

impl Shared {
    /// Clears a clean-close record still on disk, durably, before the first write to any
    /// segment after open: from then on the active segment differs from what it describes.
    /// An error fails the log (nothing has been written, so the record stays true).
    pub(super) fn clear_clean_close(&self, io: &mut IoState) -> Result<()> {
        if io.clean_close_on_disk {
            if let Err(e) = recovery::clear_clean_close(&self.dir, io.lock_file.as_ref()) {
                return Err(self.fail(e));
            }
            io.clean_close_on_disk = false;
        }
        Ok(())
    }

    /// `Wal::close` for a log that has not failed: writes and fdatasyncs everything, then
    /// leaves a clean-close record describing the active segment, all under the `io` lock, and
    /// marks the log closed before releasing it, so nothing can be written in between.
    pub(super) fn close_clean(&self) -> Result<()> {
        let mut io = self.lock_io();
        self.check_usable()?;
        let mut result = self.write_pending(&mut io, true);
        if result.is_ok() {
            result = self.drop_preallocated(&mut io);
        }
        if result.is_ok() && self.config.clean_close_record && !io.clean_close_on_disk && !io.unsynced {
            debug_assert!(io.preallocated_end <= io.write_offset, "a closed segment ends at its data");
            let record = CleanClose {
                log_id: self.log_id,
                segment_first_lsn: io.segment.first_lsn,
                data_end_offset: io.write_offset,
                last_record_offset: io.last_record_offset,
                record_count: io.record_count,
                last_lsn: io.last_lsn,
                last_crc: io.last_crc,
                closed_at_us: crate::clock::now_us(),
                index: io.segment.active_index.read().clone(),
            };
            // The data is durable already: a record that is lost or torn here only makes the
            // next open scan. The error is still returned (the disk is failing).
            match recovery::write_clean_close(&self.dir, io.lock_file.as_ref(), &record) {
                Ok(()) => io.clean_close_on_disk = true,
                Err(e) => {
                    tracing::warn!(error = %e, "could not leave a clean-close record; the next open will scan");
                    result = Err(e);
                }
            }
        }
        self.closed.store(true, Ordering::Release);
        drop(io);
        self.wake_all();
        result?;
        self.fire_seal_notifications();
        Ok(())
    }
}
