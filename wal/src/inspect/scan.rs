//! The record scan: walks a segment's bytes record by record (structure, CRC, LSN, chain),
//! keeps whole batches only, and tells where the data ends, whether the tail is torn or
//! preallocated zeros, and where it is damaged — according to a [`RecoveryMode`]. Pure: it
//! works on any bytes and never panics (fuzzed). Recovery, `walden verify` and the offline
//! readers all scan through here.

use crate::Lsn;
use crate::config::RecoveryMode;
use crate::format::{
    self, FrameError, Hole, IndexEntry, RECORD_HEADER_LEN, RECORD_MARKER, RecordHeader, SEGMENT_HEADER_LEN,
    SegmentHeader,
};

/// How a scan of segment bytes ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanOutcome {
    /// Every byte after the header is a complete, valid batch, or zero-filled space after the
    /// last batch up to the end of the bytes (space the writer preallocated; its length is
    /// [`ScanResult::zero_tail_bytes`]).
    Clean,
    /// The data ends in an incomplete or invalid tail with nothing valid after it (or, in
    /// point-in-time mode, anything after the first bad record).
    TornTail {
        /// Where valid data ends.
        offset: u64,
        /// Valid records dropped (incomplete batch, or after damage in point-in-time mode).
        records_dropped: u64,
        /// What was wrong with the first bad byte.
        reason: String,
    },
    /// A bad record followed by valid data.
    Corruption {
        /// Offset of the bad record.
        offset: u64,
        /// LSN expected there.
        lsn: Lsn,
        /// What is wrong.
        detail: String,
    },
}

/// Result of scanning the records of one segment (pure; works on any bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanResult {
    /// Offset just past the last valid, batch-complete record.
    pub valid_end_offset: u64,
    /// Number of valid records kept.
    pub record_count: u64,
    /// LSN of the last kept record (`first_lsn - 1` if none).
    pub last_lsn: Lsn,
    /// CRC of the last kept record (the header's chain seed if none).
    pub last_crc: u32,
    /// Timestamp of the last kept record (0 if none).
    pub last_timestamp_us: u64,
    /// Offset of the last kept record (0 if none).
    pub last_record_offset: u64,
    /// Sparse index of the kept records.
    pub index: Vec<IndexEntry>,
    /// Ranges skipped in salvage mode.
    pub holes: Vec<Hole>,
    /// With a [`ScanOutcome::Clean`] outcome: the zero bytes from `valid_end_offset` to the end
    /// (preallocated space, not data and not a torn tail); 0 otherwise.
    pub zero_tail_bytes: u64,
    /// How the scan ended.
    pub outcome: ScanOutcome,
}

/// The scan's position at the end of the last complete batch: what it keeps so far.
#[derive(Clone, Copy)]
struct Committed {
    end: u64,
    count: u64,
    last_lsn: Lsn,
    last_crc: u32,
    last_ts: u64,
    last_offset: u64,
    index_len: usize,
}

/// The phrase in [`TornTail::reason`](crate::TornTail::reason) (and [`ScanOutcome::TornTail`]'s `reason`) when the torn
/// tail is an interrupted write (`docs/FORMAT.md`, "Interrupted write").
pub const INTERRUPTED_WRITE: &str = "an interrupted write";

/// Scans the records of a segment whose full bytes (header included) are `bytes`.
///
/// Validates each record's structure, CRC, LSN (must be the next one) and chain (its `prev_crc`
/// must be the previous record's CRC); keeps only complete batches; applies `mode` to damage.
/// `max_stored_len` bounds record lengths. Never panics on any input.
///
/// Nothing but zeros from the end of a complete batch to the end of `bytes` is preallocated
/// space, in every mode: the outcome is [`ScanOutcome::Clean`] with `zero_tail_bytes` set. Zeros
/// after an incomplete batch are still a torn tail, and zeros followed by anything non-zero are
/// damage as before. (The check is one block-wise comparison of the tail, done only where a
/// record fails to parse, so it costs at most one pass over the file.)
///
/// `last_segment`: whether this is the log's last segment, the only one that can end in a write
/// that was never synced. Only there can damage followed by valid records be an *interrupted
/// write* (a torn tail); in a sealed segment (scanned in salvage, its footer damaged) every write
/// was synced and acknowledged, so the same bytes are damage that salvage skips past.
pub fn scan_segment(
    bytes: &[u8],
    header: &SegmentHeader,
    mode: RecoveryMode,
    max_stored_len: u32,
    index_interval_bytes: u64,
    last_segment: bool,
) -> ScanResult {
    let start = SEGMENT_HEADER_LEN as u64;
    let committed = Committed {
        end: start,
        count: 0,
        last_lsn: header.first_lsn - 1,
        last_crc: header.prev_crc,
        last_ts: 0,
        last_offset: 0,
        index_len: 0,
    };
    let scanner = Scanner {
        bytes,
        header,
        mode,
        max_stored_len,
        index_interval_bytes,
        last_segment,
        index: Vec::new(),
        holes: Vec::new(),
        committed,
        pos: start,
        expected_lsn: header.first_lsn,
        chain: header.prev_crc,
        count: 0,
        last_index_offset: 0,
        force_index: true,
        relaxed: false,
    };
    scanner.run()
}

/// The state of one [`scan_segment`].
struct Scanner<'a> {
    bytes: &'a [u8],
    header: &'a SegmentHeader,
    mode: RecoveryMode,
    max_stored_len: u32,
    index_interval_bytes: u64,
    last_segment: bool,
    index: Vec<IndexEntry>,
    holes: Vec<Hole>,
    committed: Committed,
    /// Offset of the next record to read.
    pos: u64,
    expected_lsn: Lsn,
    /// CRC of the previous record (the chain seed at first).
    chain: u32,
    /// Records read, complete batches or not.
    count: u64,
    last_index_offset: u64,
    /// The next record gets an index entry: the first, and the first after a salvage hole.
    force_index: bool,
    /// After a salvage hole the next record may skip LSNs and break the chain.
    relaxed: bool,
}

impl Scanner<'_> {
    fn run(mut self) -> ScanResult {
        loop {
            if self.pos >= self.bytes.len() as u64 {
                return self.at_end();
            }
            let Some(reason) = self.step() else { continue };
            if let Some(result) = self.on_damage(reason) {
                return result;
            }
        }
    }

    /// Reads the record at `pos`: accepts it and returns `None`, or returns what is wrong.
    fn step(&mut self) -> Option<String> {
        let rest = &self.bytes[self.pos as usize..];
        match format::verify_record(rest, self.max_stored_len) {
            Ok((h, _)) if !self.relaxed && h.lsn != self.expected_lsn => {
                Some(format!("LSN {} where {} was expected", h.lsn, self.expected_lsn))
            }
            Ok((h, _)) if self.relaxed && h.lsn < self.expected_lsn => Some(format!("LSN {} goes backwards", h.lsn)),
            Ok((h, _)) if !self.relaxed && h.prev_crc != self.chain => Some(format!(
                "chain mismatch: record says previous CRC {:#010x}, previous was {:#010x}",
                h.prev_crc, self.chain
            )),
            Ok((h, _)) => {
                self.accept(&h);
                None
            }
            Err(e) => Some(describe(&e)),
        }
    }

    /// Takes the valid record `h` at `pos`; a batch end commits everything read so far.
    fn accept(&mut self, h: &RecordHeader) {
        self.relaxed = false;
        if self.force_index || self.pos - self.last_index_offset >= self.index_interval_bytes {
            self.force_index = false;
            self.index.push(IndexEntry { lsn: h.lsn, offset: self.pos });
            self.last_index_offset = self.pos;
        }
        let record_offset = self.pos;
        self.pos += h.total_len();
        self.expected_lsn = h.lsn + 1;
        self.chain = h.crc;
        self.count += 1;
        if h.is_batch_end() {
            self.committed = Committed {
                end: self.pos,
                count: self.count,
                last_lsn: h.lsn,
                last_crc: h.crc,
                last_ts: h.timestamp_us,
                last_offset: record_offset,
                index_len: self.index.len(),
            };
        }
    }

    /// The bytes ended: clean if at a batch end, else the last batch never finished.
    fn at_end(mut self) -> ScanResult {
        if self.committed.end == self.bytes.len() as u64 {
            return self.finish(0, ScanOutcome::Clean);
        }
        let dropped = self.count - self.committed.count;
        self.torn(dropped, format!("incomplete batch of {dropped} records at the end"))
    }

    /// The record at `pos` is bad (`reason`). Returns the scan's result, or `None` when
    /// salvage skipped the damage and the scan goes on.
    fn on_damage(&mut self, reason: String) -> Option<ScanResult> {
        let bytes = self.bytes;
        let pos = self.pos;
        let min_lsn = self.committed.last_lsn + 1;
        let uncommitted = self.count - self.committed.count;
        if pos == self.committed.end && uncommitted == 0 && format::is_zeroed(&bytes[pos as usize..]) {
            // Preallocated space after the last complete batch: the end of the data, not a tear.
            return Some(self.finish(bytes.len() as u64 - pos, ScanOutcome::Clean));
        }
        // `pos` is bad. Is there valid data after it?
        let resync = find_valid_record(bytes, pos + 1, min_lsn, self.max_stored_len);
        if let Some(next) = resync
            && self.last_segment
            && self.header.version >= format::SYNC_START_FORMAT_VERSION
            && let Some(after) = interrupted_write(bytes, pos, next, min_lsn, self.max_stored_len)
        {
            // Valid records follow, but only records of the write the damage is in, and the
            // damage holds a lost sector's zeros: a write interrupted by a power loss whose
            // sectors reached the disk out of order (overwrites of preallocated space have no
            // journal commit ordering them). Nothing in it was acknowledged: a torn tail.
            let reason = format!(
                "{reason}; {INTERRUPTED_WRITE}: its {after} surviving records after the damage (from offset {next}) \
                 start no new write"
            );
            return Some(self.torn(uncommitted + after, reason));
        }
        match (self.mode, resync) {
            (RecoveryMode::SkipCorrupted, Some(next)) => {
                self.skip_hole(next);
                None
            }
            (RecoveryMode::PointInTime, Some(next)) => {
                let after = count_valid_records(bytes, next, min_lsn, self.max_stored_len);
                Some(self.torn(uncommitted + after, reason))
            }
            (_, None) => Some(self.torn(uncommitted, reason)),
            (RecoveryMode::TolerateTornTail | RecoveryMode::AbsoluteConsistency, Some(next)) => {
                let outcome = ScanOutcome::Corruption {
                    offset: pos,
                    lsn: self.expected_lsn,
                    detail: format!("{reason}; a valid record follows at offset {next}"),
                };
                Some(self.finish(0, outcome))
            }
        }
    }

    /// Salvage: drops the uncommitted records and the damage up to `next`, the next valid
    /// record, as a hole, and resumes there.
    fn skip_hole(&mut self, next: u64) {
        match self.holes.last_mut() {
            // Damage again right where the last hole ended (nothing committed since): grow that
            // hole. Readers skip one hole per position, so two adjacent holes would expose the
            // dropped records between them.
            Some(last) if last.end_offset == self.committed.end => last.end_offset = next,
            _ => self.holes.push(Hole { start_offset: self.committed.end, end_offset: next }),
        }
        self.count = self.committed.count;
        self.index.truncate(self.committed.index_len);
        self.pos = next;
        self.relaxed = true;
        // Force an index entry at the resync point so readers can jump over the hole.
        self.force_index = true;
        self.committed.end = next; // the hole is accounted; data resumes here
    }

    /// Ends the scan with a torn tail at the last batch end.
    fn torn(&mut self, records_dropped: u64, reason: String) -> ScanResult {
        let outcome = ScanOutcome::TornTail { offset: self.committed.end, records_dropped, reason };
        self.finish(0, outcome)
    }

    fn finish(&mut self, zero_tail_bytes: u64, mut outcome: ScanOutcome) -> ScanResult {
        let start = SEGMENT_HEADER_LEN as u64;
        let mut committed = self.committed;
        let mut holes = std::mem::take(&mut self.holes);
        if committed.count == 0 && !holes.is_empty() {
            // Salvage skipped damage but kept no record after it. Nothing is kept, so no bytes
            // are either: otherwise `open` would resume appending after damaged bytes that
            // readers (starting at the header end) and the next scan then trip over.
            committed.end = start;
            holes.clear();
            if let ScanOutcome::TornTail { offset, .. } = &mut outcome {
                *offset = start;
            }
        }
        let mut index = std::mem::take(&mut self.index);
        index.truncate(committed.index_len);
        debug_assert!(committed.end <= self.bytes.len() as u64 && committed.end >= start, "kept bytes lie in the file");
        debug_assert!(index.windows(2).all(|w| w[0].lsn < w[1].lsn && w[0].offset < w[1].offset), "index ascends");
        ScanResult {
            valid_end_offset: committed.end,
            record_count: committed.count,
            last_lsn: committed.last_lsn,
            last_crc: committed.last_crc,
            last_timestamp_us: committed.last_ts,
            last_record_offset: committed.last_offset,
            index,
            holes,
            zero_tail_bytes,
            outcome,
        }
    }
}

fn describe(e: &FrameError) -> String {
    match e {
        FrameError::Zeroed => "zero-filled bytes where a record was expected".to_string(),
        FrameError::Truncated { .. } => format!("incomplete record ({e})"),
        other => format!("invalid record ({other})"),
    }
}

/// Counts the valid records from offset `from` on (each found by [`find_valid_record`]): what
/// point-in-time recovery drops after the damage.
fn count_valid_records(bytes: &[u8], from: u64, min_lsn: Lsn, max_stored_len: u32) -> u64 {
    let mut count = 0;
    let mut at = from;
    while let Some(found) = find_valid_record(bytes, at, min_lsn, max_stored_len) {
        count += 1;
        let total = RecordHeader::decode(&bytes[found as usize..], max_stored_len).map(|h| h.total_len()).unwrap_or(1);
        at = found + total.max(1);
    }
    count
}

/// Whether damage at `pos`, with the first valid record after it at `next`, is an interrupted
/// write rather than corruption: the damaged bytes hold a lost sector's zeros
/// ([`format::torn_write_evidence`]) and no valid record from `next` on starts a new write
/// ([`format::FLAG_SYNC_START`]), so every one of them was written together with the damaged
/// bytes, after the last `fdatasync` that completed (a write that began later, and so after the
/// damaged bytes were synced, starts with a flagged record). Returns how many valid records
/// follow (what the torn tail drops), or `None` for corruption. Version 2 segments only. Used
/// only on the failure path.
fn interrupted_write(bytes: &[u8], pos: u64, next: u64, min_lsn: Lsn, max_stored_len: u32) -> Option<u64> {
    if !format::torn_write_evidence(bytes, pos as usize, next as usize) {
        return None;
    }
    let (mut at, mut count) = (next, 0);
    while let Some(found) = find_valid_record(bytes, at, min_lsn, max_stored_len) {
        match RecordHeader::decode(&bytes[found as usize..], max_stored_len) {
            Ok(h) if !h.is_sync_start() => at = found + h.total_len(),
            _ => return None,
        }
        count += 1;
    }
    Some(count)
}

/// Finds the first offset at or after `from` holding a complete, CRC-valid record with an LSN of
/// at least `min_lsn`. Used only on the failure path.
fn find_valid_record(bytes: &[u8], from: u64, min_lsn: Lsn, max_stored_len: u32) -> Option<u64> {
    let marker = RECORD_MARKER.to_le_bytes();
    let mut at = from as usize;
    while at + RECORD_HEADER_LEN <= bytes.len() {
        if bytes[at + 4] == marker[0]
            && bytes[at + 5] == marker[1]
            && let Ok((h, _)) = format::verify_record(&bytes[at..], max_stored_len)
            && h.lsn >= min_lsn
        {
            return Some(at as u64);
        }
        at += 1;
    }
    None
}
