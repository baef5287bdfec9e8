//! Sealing the active segment (sync, footer, sync) and starting the next one, and telling the
//! registered [`SealListener`] about each sealed segment outside the log's locks.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::shared::{IoState, Shared};
use crate::format::{self, Footer, SEGMENT_HEADER_LEN, SegmentHeader};
use crate::recovery;
use crate::segment::{Segment, SegmentInfo};
use crate::{Lsn, Result, WalError};

/// Called (outside the log's locks) each time a segment is sealed. The engine implements it to
/// tell the archiver; the WAL knows nothing of who listens.
pub trait SealListener: Send + Sync {
    /// `segment` has just been sealed: it is immutable and durable from now on.
    fn segment_sealed(&self, segment: &SegmentInfo);
}

impl Shared {
    /// `Wal::seal_active_segment`: writes and syncs everything queued, then seals the active
    /// segment if it holds any record, and starts the next one.
    pub(super) fn seal_now(&self) -> Result<()> {
        let mut io = self.lock_io();
        let result = (|| {
            self.check_usable()?;
            // The append lock is held from the drain to the rotation: a batch queued in between
            // would be encoded for the segment being sealed. Appenders wait for this one sync.
            let mut st = self.lock_append();
            let chunks = Shared::take_pending(&mut st);
            let emptied = self.write_chunks(&mut io, chunks, true)?;
            Shared::keep_spare_buffers(&mut st, emptied);
            if io.record_count > 0 {
                let next = st.next_lsn;
                assert_eq!(next, io.last_lsn + 1, "everything queued was written before the seal");
                self.rotate(&mut io, next)?;
                st.start_segment(next);
            }
            Ok(())
        })();
        // The sync covered every follower parked meanwhile.
        self.release_io(io);
        result?;
        self.fire_seal_notifications();
        Ok(())
    }

    /// Seals the active segment (sync data, write footer, sync) and creates the next one.
    pub(super) fn rotate(&self, io: &mut IoState, new_first_lsn: Lsn) -> Result<()> {
        assert!(io.record_count > 0, "never seal an empty segment");
        assert_eq!(new_first_lsn, io.last_lsn + 1, "segments must be contiguous");
        self.clear_clean_close(io)?;
        let path = io.segment.path.clone();
        let footer = Footer {
            first_lsn: io.segment.first_lsn,
            last_lsn: io.last_lsn,
            record_count: io.record_count,
            data_end_offset: io.write_offset,
            last_crc: io.last_crc,
            sealed_at_us: crate::clock::now_us(),
            index: io.segment.active_index.read().clone(),
            holes: Vec::new(),
        };
        if io.unsynced {
            if let Err(e) = io.file.sync_data() {
                return Err(self.fail(WalError::io("fdatasync", &path, e)));
            }
            self.stats.data_syncs.fetch_add(1, Ordering::Relaxed);
            io.unsynced = false;
        }
        debug_assert!(!io.unsynced, "a segment is sealed only once its data is durable");
        self.durable_lsn.fetch_max(io.last_lsn, Ordering::AcqRel);
        // `write_footer` truncates the file to the data end first: a sealed segment never
        // keeps preallocated zeros.
        if let Err(e) = recovery::write_footer(&path, io.file.as_ref(), &footer) {
            return Err(self.fail(e));
        }
        let header = SegmentHeader {
            version: format::FORMAT_VERSION,
            log_id: self.log_id,
            first_lsn: new_first_lsn,
            prev_last_lsn: io.last_lsn,
            prev_crc: io.last_crc,
            created_at_us: crate::clock::now_us(),
        };
        let (file, new_path) = match recovery::create_segment(self.storage.as_ref(), &self.dir, &header) {
            Ok(x) => x,
            Err(e) => return Err(self.fail(e)),
        };
        let new_segment = Arc::new(Segment::new_active(
            new_first_lsn,
            new_path,
            Vec::new(),
            SEGMENT_HEADER_LEN as u64,
            new_first_lsn - 1,
        ));
        // Publish: footer first (readers switch to it), then the new segment.
        let old = std::mem::replace(&mut io.segment, new_segment.clone());
        let _ = old.footer.set(footer);
        self.segments.write().insert(new_first_lsn, new_segment);
        io.file = file;
        io.write_offset = SEGMENT_HEADER_LEN as u64;
        io.writeback_from = io.write_offset;
        io.preallocated_end = io.write_offset;
        io.segment_version = header.version;
        io.record_count = 0;
        io.last_record_offset = 0;
        self.stats.segments_sealed.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(segment = %path.display(), last_lsn = io.last_lsn, "sealed segment");
        {
            let mut queue = self.sealed_queue.lock();
            queue.push(old.info());
            self.seals_pending.store(true, Ordering::Release);
        }
        Ok(())
    }

    pub(super) fn fire_seal_notifications(&self) {
        // Fast path for every append: nothing sealed since the last call. A thread that sealed
        // a segment set the flag itself before calling this, so it always sees it.
        if !self.seals_pending.load(Ordering::Acquire) {
            return;
        }
        let sealed = {
            let mut q = self.sealed_queue.lock();
            self.seals_pending.store(false, Ordering::Release);
            if q.is_empty() {
                return;
            }
            std::mem::take(&mut *q)
        };
        let listener = self.seal_listener.read().clone();
        if let Some(listener) = listener {
            for info in &sealed {
                listener.segment_sealed(info);
            }
        }
    }
}
