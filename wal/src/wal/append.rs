//! Appending: checking and preparing a batch's records (size limits, compression, payload CRC)
//! outside any lock, then assigning LSNs and encoding them into the pending queue under the
//! `append` lock (no I/O there). Chunk buffers are recycled so the hot path does not allocate.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::sync::atomic::Ordering;

use super::shared::{AppendState, Chunk, Shared};
use crate::config::WalConfig;
use crate::format::{
    self, FLAG_BATCH_END, FLAG_COMPRESSED, FLAG_SYNC_START, IndexEntry, RECORD_HEADER_LEN, RecordHeader,
    SEGMENT_HEADER_LEN,
};
use crate::{Lsn, Result, WalError};

/// How many chunk buffers are kept for reuse.
const SPARE_BUFFERS_MAX: usize = 4;

/// One record to append.
#[derive(Debug)]
pub(super) struct Prepared<'a> {
    pub(super) kind: u8,
    pub(super) stored: Cow<'a, [u8]>,
    pub(super) compressed: bool,
    pub(super) payload_crc: u32,
}

/// A batch checked against the limits and prepared outside any lock.
#[derive(Debug)]
pub(super) struct PreparedBatch<'a> {
    pub(super) records: Vec<Prepared<'a>>,
    /// Encoded size of the whole batch (headers included).
    pub(super) bytes: u64,
}

impl AppendState {
    /// Points the next batch at a new segment starting at `first_lsn` (written in
    /// [`format::FORMAT_VERSION`], empty).
    pub(super) fn start_segment(&mut self, first_lsn: Lsn) {
        self.seg_first_lsn = first_lsn;
        self.seg_bytes = SEGMENT_HEADER_LEN as u64;
        self.seg_records = 0;
        self.seg_version = format::FORMAT_VERSION;
        self.last_index_offset = 0;
    }

    /// Assigns LSNs to `batch` and encodes it into the pending queue; rotates to a new segment
    /// first if the current one is full. Never splits a batch across segments.
    pub(super) fn encode_batch(&mut self, cfg: &WalConfig, batch: &PreparedBatch<'_>) -> RangeInclusive<Lsn> {
        self.rotate_if_full(cfg);
        let sync_start = self.starts_new_write(cfg);
        let timestamp_us = crate::clock::now_us().max(self.last_timestamp_us);
        self.last_timestamp_us = timestamp_us;
        let mut chunk = self.chunk_for(batch.bytes);
        let first = self.next_lsn;
        let mut last_record_start = chunk.bytes.len();
        for (i, p) in batch.records.iter().enumerate() {
            let lsn = self.next_lsn;
            if self.seg_records == 0 || self.seg_bytes - self.last_index_offset >= cfg.index_interval_bytes {
                chunk.index.push(IndexEntry { lsn, offset: self.seg_bytes });
                self.last_index_offset = self.seg_bytes;
            }
            let last = i + 1 == batch.records.len();
            let header = RecordHeader {
                crc: 0,
                kind: p.kind,
                flags: record_flags(p.compressed, last, i == 0 && sync_start),
                stored_len: p.stored.len() as u32,
                prev_crc: self.prev_crc,
                lsn,
                timestamp_us,
            };
            last_record_start = chunk.bytes.len();
            let crc = format::encode_record(&mut chunk.bytes, header, &p.stored, p.payload_crc);
            self.prev_crc = crc;
            self.next_lsn += 1;
            self.seg_bytes += header.total_len();
            self.seg_records += 1;
            chunk.last_lsn = lsn;
            chunk.last_crc = crc;
            chunk.records += 1;
        }
        chunk.last_record_start = last_record_start;
        debug_assert_eq!(chunk.last_lsn, self.next_lsn - 1, "a chunk ends with the batch just encoded");
        self.pending.push_back(chunk);
        self.pending_bytes += batch.bytes as usize;
        first..=self.next_lsn - 1
    }

    /// Starts a new segment for the next batch when the current one holds records and has
    /// reached its size or record-count target.
    fn rotate_if_full(&mut self, cfg: &WalConfig) {
        if self.seg_records > 0
            && (self.seg_bytes >= cfg.target_segment_size_bytes || self.seg_records >= cfg.max_records_per_segment)
        {
            self.start_segment(self.next_lsn);
        }
    }

    /// Whether the next batch starts a new write ([`FLAG_SYNC_START`]). In the durable modes the
    /// queue is drained and written by one `io` holder, which `fdatasync`s before the next one
    /// takes it: a batch queued behind others is written with them, one queued into an empty
    /// queue is written after the `fdatasync` of everything before it (`Shared::flush` syncs in
    /// the durable modes too). The other modes write queued batches at any time and sync
    /// rarely, so each batch is marked (a flag where no sync happened only makes recovery
    /// stricter).
    fn starts_new_write(&self, cfg: &WalConfig) -> bool {
        self.seg_version >= format::SYNC_START_FORMAT_VERSION
            && (!cfg.sync_mode.is_durable() || self.pending.is_empty())
    }

    /// The chunk the next batch is encoded into, taken off the queue: the last queued one if
    /// it is for the current segment, else a new one (on a recycled buffer).
    fn chunk_for(&mut self, batch_bytes: u64) -> Chunk {
        if let Some(last) = self.pending.pop_back() {
            if last.segment_first_lsn == self.seg_first_lsn {
                return last;
            }
            self.pending.push_back(last);
        }
        let mut bytes = self.spare_buffers.pop().unwrap_or_default();
        bytes.reserve(batch_bytes as usize);
        Chunk {
            segment_first_lsn: self.seg_first_lsn,
            bytes,
            index: Vec::new(),
            last_lsn: 0,
            last_crc: 0,
            records: 0,
            last_record_start: 0,
        }
    }
}

/// The flags of a batch's record: compressed payload, last of its batch, first of a write.
fn record_flags(compressed: bool, batch_end: bool, sync_start: bool) -> u8 {
    let mut flags = 0;
    if compressed {
        flags |= FLAG_COMPRESSED;
    }
    if batch_end {
        flags |= FLAG_BATCH_END;
    }
    if sync_start {
        flags |= FLAG_SYNC_START;
    }
    flags
}

impl Shared {
    /// Checks `records` against the record, batch and emptiness limits and prepares each one
    /// (compression, payload CRC), all outside the locks.
    pub(super) fn prepare_batch<'a, P: AsRef<[u8]>>(&self, records: &'a [(u8, P)]) -> Result<PreparedBatch<'a>> {
        if records.is_empty() {
            return Err(WalError::EmptyBatch);
        }
        let cfg = &self.config;
        let mut prepared = Vec::with_capacity(records.len());
        let mut bytes = 0u64;
        for (kind, payload) in records {
            let p = self.prepare_record(*kind, payload.as_ref())?;
            bytes += (RECORD_HEADER_LEN + p.stored.len()) as u64;
            prepared.push(p);
        }
        if bytes > cfg.max_batch_size_bytes {
            return Err(WalError::BatchTooLarge {
                size_bytes: bytes,
                records: prepared.len() as u64,
                max_bytes: cfg.max_batch_size_bytes,
            });
        }
        Ok(PreparedBatch { records: prepared, bytes })
    }

    fn prepare_record<'a>(&self, kind: u8, payload: &'a [u8]) -> Result<Prepared<'a>> {
        let cfg = &self.config;
        if payload.len() as u64 > u64::from(cfg.max_record_size_bytes) {
            return Err(WalError::RecordTooLarge {
                size_bytes: payload.len() as u64,
                max_bytes: u64::from(cfg.max_record_size_bytes),
            });
        }
        let mut p = Prepared { kind, stored: Cow::Borrowed(payload), compressed: false, payload_crc: 0 };
        if let Some(threshold) = cfg.compression_threshold_bytes
            && payload.len() >= threshold as usize
        {
            let stored = format::compress_payload(payload, cfg.compression_level)
                .map_err(|e| WalError::io("compress", &self.dir, e))?;
            if stored.len() < payload.len() {
                p.stored = Cow::Owned(stored);
                p.compressed = true;
            }
        }
        // Large payloads: CRC here, outside the append lock, combined with the header's there.
        // Small ones are hashed with their header under the lock (cheaper than the combination;
        // see `format::DIRECT_CRC_MAX_PAYLOAD_BYTES`).
        if format::payload_crc_needed(p.stored.len()) {
            p.payload_crc = format::crc32(&p.stored);
        }
        Ok(p)
    }

    /// `SyncMode::Always`: encode, write and `fdatasync` under `io`, this batch alone.
    pub(super) fn append_always(&self, batch: &PreparedBatch<'_>) -> Result<RangeInclusive<Lsn>> {
        let mut io = self.lock_io();
        self.check_usable()?;
        let range = self.lock_append().encode_batch(&self.config, batch);
        self.assigned_lsn.store(*range.end(), Ordering::Release);
        self.write_pending(&mut io, true)?;
        Ok(range)
    }

    /// The buffered modes (`IntervalMs`, `None`): queue the batch; write the queue (no sync)
    /// when the buffer is full or a reader waits for it.
    pub(super) fn append_buffered(&self, batch: &PreparedBatch<'_>) -> Result<RangeInclusive<Lsn>> {
        let (range, buffer_full) = {
            let mut st = self.lock_append();
            let range = st.encode_batch(&self.config, batch);
            (range, st.pending_bytes >= self.config.write_buffer_bytes)
        };
        // Publish the LSN, then look for waiting readers (both SeqCst): a reader in `wait_for`
        // registers, then looks at the LSN (also SeqCst), so at least one side sees the other
        // and flushes. Looking for waiters before publishing could miss a reader that
        // registered in between and found the LSN not yet assigned: the record would then stay
        // buffered until the next append or the reader's timeout.
        self.assigned_lsn.fetch_max(*range.end(), Ordering::SeqCst);
        if buffer_full || self.waiters.load(Ordering::SeqCst) > 0 {
            let mut io = self.lock_io();
            self.check_usable()?;
            self.write_pending(&mut io, false)?;
        }
        Ok(range)
    }

    /// Takes everything queued out of the append state (whose lock the caller holds).
    pub(super) fn take_pending(st: &mut AppendState) -> VecDeque<Chunk> {
        st.pending_bytes = 0;
        st.group_queued = 0;
        std::mem::take(&mut st.pending)
    }

    /// Keeps emptied chunk buffers for reuse by later appends, up to `SPARE_BUFFERS_MAX`.
    pub(super) fn keep_spare_buffers(st: &mut AppendState, mut emptied: Vec<Vec<u8>>) {
        while st.spare_buffers.len() < SPARE_BUFFERS_MAX
            && let Some(b) = emptied.pop()
        {
            st.spare_buffers.push(b);
        }
    }
}
