//! Readers: iterate records in LSN order across segments, zero-copy from `mmap` for sealed
//! segments and by positional reads of the active one, and live-tail new records.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::format::{self, FrameError, RECORD_HEADER_LEN, RecordHeader, SEGMENT_HEADER_LEN};
use crate::segment::Segment;
use crate::wal::Shared;
use crate::{Lsn, Result, WalError};

/// How many bytes a reader fetches at once from the active segment.
const ACTIVE_READ_CHUNK_BYTES: u64 = 256 << 10;

/// One record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Log sequence number.
    pub lsn: Lsn,
    /// Append time, microseconds since the Unix epoch.
    pub timestamp_us: u64,
    /// Caller-defined kind.
    pub kind: u8,
    /// The payload (uncompressed). For sealed segments this is a zero-copy slice of the mapping.
    pub payload: Bytes,
    /// Whether this record ends its atomically appended batch.
    pub batch_end: bool,
}

struct Cursor {
    segment: Arc<Segment>,
    /// File offset of the next record header.
    offset: u64,
    /// CRC of the record just read (chain check for the next one), when known.
    last_crc: Option<u32>,
    /// The sealed segment's mapping up to its data end, taken once per cursor (sealed segments
    /// never change); `None` while the segment is active.
    mapped: Option<Bytes>,
    /// Cached bytes of the active segment, starting at file offset `buf_start`.
    buf: Bytes,
    buf_start: u64,
    /// Set right after jumping over a salvage hole: the next LSN may skip ahead.
    after_hole: bool,
}

/// Iterates records from a starting LSN; see [`crate::Wal::reader`].
///
/// [`Reader::next_record`] returns `Ok(None)` at the end of visible data; [`Reader::next_timeout`]
/// waits for new records (live tail). As an [`Iterator`] it yields until the end of visible data
/// (and stops after the first error).
pub struct Reader {
    shared: Arc<Shared>,
    next_lsn: Lsn,
    cursor: Option<Cursor>,
    fused: bool,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("next_lsn", &self.next_lsn).finish()
    }
}

impl Reader {
    pub(crate) fn new(shared: Arc<Shared>, from_lsn: Lsn) -> Result<Reader> {
        let mut reader = Reader { shared, next_lsn: 0, cursor: None, fused: false };
        reader.seek(from_lsn)?;
        Ok(reader)
    }

    /// The LSN of the next record this reader returns.
    pub fn next_lsn(&self) -> Lsn {
        self.next_lsn
    }

    /// Repositions the reader at `lsn` via the sparse index.
    pub fn seek(&mut self, lsn: Lsn) -> Result<()> {
        let lsn = lsn.max(1);
        let oldest = self.shared.oldest_lsn();
        if lsn < oldest {
            return Err(WalError::LsnNotFound { requested: lsn, oldest_available: oldest });
        }
        let next = self.shared.assigned_lsn() + 1;
        if lsn > next {
            return Err(WalError::LsnBeyondEnd { requested: lsn, next_lsn: next });
        }
        self.next_lsn = lsn;
        self.cursor = None;
        self.fused = false;
        Ok(())
    }

    /// The next record, or `None` if the reader has caught up with the visible end of the log.
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        let mut relocations = 0;
        loop {
            if self.next_lsn > self.shared.visible_lsn() {
                if !self.shared.config.sync_mode.is_durable() && self.shared.assigned_lsn() >= self.next_lsn {
                    // Buffered records exist: hand them to the OS so we can read them.
                    self.shared.flush(false)?;
                    if self.next_lsn <= self.shared.visible_lsn() {
                        continue;
                    }
                }
                return Ok(None);
            }
            if self.cursor.is_none() {
                relocations += 1;
                if relocations > 4 {
                    return Err(self.corruption(0, "reader cannot find the segment holding this LSN".to_string()));
                }
                self.locate()?;
            }
            match self.read_at_cursor()? {
                Some(record) => return Ok(Some(record)),
                None => self.cursor = None,
            }
        }
    }

    /// The next record, waiting up to `timeout` for one to be appended (live tail). `Ok(None)`
    /// means the timeout passed with nothing new.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Record>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(record) = self.next_record()? {
                return Ok(Some(record));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() || !self.shared.wait_for(self.next_lsn, remaining)? {
                return self.next_record();
            }
        }
    }

    fn corruption(&self, offset: u64, detail: String) -> WalError {
        let segment = self.cursor.as_ref().map(|c| c.segment.path.clone()).unwrap_or_else(|| self.shared.dir.clone());
        corruption_at(segment, offset, self.next_lsn, detail)
    }

    fn locate(&mut self) -> Result<()> {
        let segments = self.shared.segments.read();
        let oldest = segments.keys().next().copied().unwrap_or(1);
        if self.next_lsn < oldest {
            return Err(WalError::LsnNotFound { requested: self.next_lsn, oldest_available: oldest });
        }
        let Some((_, mut segment)) = segments.range(..=self.next_lsn).next_back() else {
            return Err(WalError::LsnNotFound { requested: self.next_lsn, oldest_available: oldest });
        };
        // Salvage recovery may have accepted a missing segment (a reported LSN gap): continue
        // with the next segment that exists.
        if self.shared.config.recovery_mode == crate::RecoveryMode::SkipCorrupted
            && segment.is_sealed()
            && self.next_lsn > segment.last_lsn()
            && let Some((&first, next)) = segments.range(self.next_lsn + 1..).next()
        {
            self.next_lsn = first;
            segment = next;
        }
        let entry = segment.index_lookup(self.next_lsn);
        let offset = entry.map(|e| e.offset).unwrap_or(SEGMENT_HEADER_LEN as u64);
        self.cursor = Some(Cursor {
            segment: segment.clone(),
            offset,
            last_crc: None,
            mapped: None,
            buf: Bytes::new(),
            buf_start: 0,
            after_hole: false,
        });
        Ok(())
    }

    /// Reads records at the cursor until the one with `next_lsn`; `None` when the segment has no
    /// more visible data (the caller relocates).
    ///
    /// Per record this costs one reference-count increment (the payload slice): the sealed
    /// segment's mapping is taken once per cursor, the active segment's bytes once per read-ahead
    /// chunk, and nothing else is cloned.
    fn read_at_cursor(&mut self) -> Result<Option<Record>> {
        loop {
            let Some(offset) = self.load_at_cursor()? else { return Ok(None) };
            let (header, stored) = self.parse_at(offset)?;
            if let Some(record) = self.advance_past(offset, &header, stored)? {
                return Ok(Some(record));
            }
        }
    }

    /// Makes the bytes of the record at the cursor available (after skipping a salvage hole
    /// that starts there) and returns its offset; `None` at the end of the visible data.
    fn load_at_cursor(&mut self) -> Result<Option<u64>> {
        let Reader { shared, cursor, next_lsn, .. } = &mut *self;
        let Some(cursor) = cursor.as_mut() else { unreachable!("the caller locates the cursor first") };
        let footer = cursor.segment.footer.get();
        if let Some(footer) = footer
            && let Some(hole) = footer.holes.iter().find(|h| h.start_offset == cursor.offset)
        {
            cursor.offset = hole.end_offset;
            cursor.last_crc = None;
            cursor.after_hole = true;
        }
        let end = cursor.segment.data_end_offset();
        let offset = cursor.offset;
        if offset >= end {
            return Ok(None);
        }
        if footer.is_some() {
            map_sealed(cursor, shared, end, *next_lsn)?;
        } else {
            fill(cursor, shared, offset, RECORD_HEADER_LEN as u64, end)?;
            let header_bytes = &cursor.buf[(offset - cursor.buf_start) as usize..];
            let total = match RecordHeader::decode(header_bytes, format::MAX_STORED_RECORD_BYTES) {
                Ok(h) => h.total_len(),
                Err(e) => {
                    let path = cursor.segment.path.clone();
                    return Err(corruption_at(path, offset, *next_lsn, format!("bad record header: {e}")));
                }
            };
            if offset + total > end {
                let path = cursor.segment.path.clone();
                let detail = format!("record of {total} bytes runs past the visible end {end}");
                return Err(corruption_at(path, offset, *next_lsn, detail));
            }
            fill(cursor, shared, offset, total, end)?;
        }
        Ok(Some(offset))
    }

    /// Parses and checks the record at `offset` (CRC unless `verify_checksums_on_read` is off,
    /// and its chain to the record before); returns its header and, if it is at or after
    /// `next_lsn`, its stored payload.
    fn parse_at(&self, offset: u64) -> Result<(RecordHeader, Option<Bytes>)> {
        let max_len = format::MAX_STORED_RECORD_BYTES;
        let Some(cursor) = self.cursor.as_ref() else { unreachable!("the caller locates the cursor first") };
        let (window, base): (&Bytes, u64) = match &cursor.mapped {
            Some(map) => (map, 0),
            None => (&cursor.buf, cursor.buf_start),
        };
        let at = (offset - base) as usize;
        let bytes = &window[at..];
        let parsed = if self.shared.config.verify_checksums_on_read {
            format::verify_record(bytes, max_len)
        } else {
            RecordHeader::decode(bytes, max_len).and_then(|h| {
                if (bytes.len() as u64) < h.total_len() {
                    Err(FrameError::Truncated { needed_bytes: h.total_len(), available_bytes: bytes.len() as u64 })
                } else {
                    Ok((h, RECORD_HEADER_LEN..RECORD_HEADER_LEN + h.stored_len as usize))
                }
            })
        };
        let (header, payload_range) = parsed.map_err(|e| self.corruption(offset, format!("bad record: {e}")))?;
        if let Some(prev) = cursor.last_crc
            && header.prev_crc != prev
        {
            return Err(self.corruption(offset, "record does not chain to its predecessor".to_string()));
        }
        let wanted = header.lsn >= self.next_lsn;
        let stored = wanted.then(|| window.slice(at + payload_range.start..at + payload_range.end));
        Ok((header, stored))
    }

    /// Moves the cursor past the record at `offset`; returns it if it is the one wanted
    /// (`stored` is set), `None` while scanning forward from an index entry to `next_lsn`.
    fn advance_past(&mut self, offset: u64, header: &RecordHeader, stored: Option<Bytes>) -> Result<Option<Record>> {
        let Some(cursor) = self.cursor.as_mut() else { unreachable!("the caller locates the cursor first") };
        cursor.offset = offset + header.total_len();
        cursor.last_crc = Some(header.crc);
        let after_hole = std::mem::replace(&mut cursor.after_hole, false);
        let Some(stored) = stored else { return Ok(None) };
        if header.lsn > self.next_lsn {
            if !after_hole {
                let detail = format!("found LSN {} where {} was expected", header.lsn, self.next_lsn);
                return Err(self.corruption(offset, detail));
            }
            self.next_lsn = header.lsn; // salvage recovery lost the LSNs in the hole
        }
        let payload = if header.is_compressed() {
            match format::decompress_payload(&stored, format::MAX_STORED_RECORD_BYTES) {
                Ok(raw) => Bytes::from(raw),
                Err(e) => return Err(self.corruption(offset, format!("bad compressed payload: {e}"))),
            }
        } else {
            stored
        };
        debug_assert_eq!(header.lsn, self.next_lsn, "a reader returns LSNs in order, without gaps outside holes");
        self.next_lsn = header.lsn + 1;
        Ok(Some(Record {
            lsn: header.lsn,
            timestamp_us: header.timestamp_us,
            kind: header.kind,
            payload,
            batch_end: header.is_batch_end(),
        }))
    }
}

/// A corruption error at `offset` of the segment at `segment`, met while looking for `lsn`.
fn corruption_at(segment: std::path::PathBuf, offset: u64, lsn: Lsn, detail: String) -> WalError {
    WalError::Corruption { segment, offset, lsn: Some(lsn), detail }
}

/// Maps a sealed segment once per cursor, checking it holds the data its footer describes.
fn map_sealed(cursor: &mut Cursor, shared: &Shared, end: u64, next_lsn: Lsn) -> Result<()> {
    if cursor.mapped.is_some() {
        return Ok(());
    }
    let map = cursor.segment.mapped(shared.storage.as_ref())?;
    if (map.len() as u64) < end {
        let detail = format!("sealed segment is {} bytes, footer says data ends at {end}", map.len());
        return Err(corruption_at(cursor.segment.path.clone(), cursor.offset, next_lsn, detail));
    }
    cursor.mapped = Some(map.slice(..end as usize));
    Ok(())
}

/// Makes sure `cursor.buf` holds file bytes `[offset, offset + needed)` of the active segment,
/// reading ahead up to `end`.
fn fill(cursor: &mut Cursor, shared: &Shared, offset: u64, needed: u64, end: u64) -> Result<()> {
    let buf_end = cursor.buf_start + cursor.buf.len() as u64;
    if offset >= cursor.buf_start && offset + needed <= buf_end {
        return Ok(());
    }
    if offset + needed > end {
        return Err(WalError::Corruption {
            segment: cursor.segment.path.clone(),
            offset,
            lsn: None,
            detail: format!("record needs {needed} bytes but only {} are visible", end.saturating_sub(offset)),
        });
    }
    let want = needed.max(ACTIVE_READ_CHUNK_BYTES).min(end - offset);
    let file = cursor.segment.read_file(shared.storage.as_ref())?;
    let mut buf = BytesMut::zeroed(want as usize);
    file.read_exact_at(&mut buf, offset).map_err(|e| WalError::io("read", &cursor.segment.path, e))?;
    cursor.buf = buf.freeze();
    cursor.buf_start = offset;
    Ok(())
}

impl Iterator for Reader {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.fused {
            return None;
        }
        match self.next_record() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => None,
            Err(e) => {
                self.fused = true;
                Some(Err(e))
            }
        }
    }
}
