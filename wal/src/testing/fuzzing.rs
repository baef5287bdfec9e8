//! Fuzzing entry points, one per WAL decoder. Used by the cargo-fuzz targets in `fuzz/` and
//! replayed over the committed corpus by `tests/fuzz_corpus.rs`.
//!
//! Every function accepts arbitrary bytes and must return normally on every input: that is the
//! property under test. Invariants that must hold whatever the input (a decoded value re-encodes
//! to the same bytes, a scan never keeps bytes past the end, a log that opened reopens) are
//! `assert!`ed, so a violation is a crash the fuzzer reports.
//!
//! Random bytes almost never carry a valid CRC, so most targets read a control byte from the
//! input that can ask the harness to *repair* checksums (and chains) before decoding. The raw
//! bytes are always decoded first, so the unrepaired paths stay covered too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::fault::FaultStorage;
use crate::format::{
    self, CLEAN_CLOSE_CRC_LEN, CLEAN_CLOSE_FIXED_LEN, CleanClose, FLAG_BATCH_END, FOOTER_FIXED_LEN, Footer, FrameError,
    Hole, INDEX_ENTRY_LEN, IndexEntry, KNOWN_FLAGS, MAX_LSN, RECORD_HEADER_LEN, RECORD_MARKER, RecordHeader,
    SEGMENT_HEADER_LEN, SegmentHeader, TRAILER_LEN, TRAILER_MAGIC,
};
use crate::inspect::{self, INTERRUPTED_WRITE, ScanOutcome, ScanResult};
use crate::{Lsn, Record, RecoveryMode, SyncMode, Wal, WalConfig, WalError};

/// Largest record (stored or raw) any harness allows: keeps every allocation small.
const MAX_RECORD_BYTES: u32 = 64 << 10;

/// Record length limits a control byte can choose from (small ones exercise the bound check).
const RECORD_LIMITS_BYTES: [u32; 4] = [16, 256, 4096, MAX_RECORD_BYTES];

/// Sparse-index intervals a control byte can choose from.
const INDEX_INTERVALS_BYTES: [u64; 4] = [1, 64, 4096, 32 << 10];

/// Every recovery mode, in a fixed order.
const MODES: [RecoveryMode; 4] = [
    RecoveryMode::TolerateTornTail,
    RecoveryMode::AbsoluteConsistency,
    RecoveryMode::PointInTime,
    RecoveryMode::SkipCorrupted,
];

/// Upper bound on records a reader may return in the `open` harness; far above what a fuzz input
/// can hold (every record is at least 32 bytes), so reaching it means the reader loops.
const MAX_READ_RECORDS: usize = 1 << 20;

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Little-endian u64 from up to 8 bytes (missing bytes are zero).
fn le_u64_padded(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    let n = b.len().min(8);
    a[..n].copy_from_slice(&b[..n]);
    u64::from_le_bytes(a)
}

// ---------------------------------------------------------------------------------------------
// record
// ---------------------------------------------------------------------------------------------

/// Fuzzes [`RecordHeader::decode`], [`format::verify_record`] and [`format::decompress_payload`].
///
/// Input: a control byte (bits 0–1 pick the length limit, bit 2 asks for a repaired copy with the
/// marker and CRC fixed), then the record bytes.
pub fn record(data: &[u8]) {
    let Some((&ctl, bytes)) = data.split_first() else { return };
    let max_len = RECORD_LIMITS_BYTES[usize::from(ctl & 3)];
    check_record(bytes, max_len);
    check_decompress(bytes, max_len);
    if ctl & 4 != 0 && bytes.len() >= RECORD_HEADER_LEN {
        let mut fixed = bytes.to_vec();
        fixed[4..6].copy_from_slice(&RECORD_MARKER.to_le_bytes());
        let stored_len = le_u32(&fixed, 8) as usize;
        if let Some(end) = RECORD_HEADER_LEN.checked_add(stored_len).filter(|&end| end <= fixed.len()) {
            let crc = format::crc32(&fixed[4..end]);
            fixed[0..4].copy_from_slice(&crc.to_le_bytes());
        }
        let structure_ok = RecordHeader::decode(&fixed, max_len)
            .is_ok_and(|h| h.total_len() <= fixed.len() as u64 && le_u32(&fixed, 0) == h.crc);
        let verified = check_record(&fixed, max_len);
        // A structurally valid record with a correct CRC must verify.
        assert_eq!(structure_ok, verified, "repaired record: structure ok {structure_ok}, verified {verified}");
    }
}

/// Decodes and verifies `bytes` as a record, checks the results agree and round-trip; returns
/// whether the record verified.
fn check_record(bytes: &[u8], max_len: u32) -> bool {
    let decoded = RecordHeader::decode(bytes, max_len);
    let verified = format::verify_record(bytes, max_len);
    match (&decoded, &verified) {
        (Err(d), Err(v)) => {
            assert_eq!(d, v, "verify_record must fail like RecordHeader::decode when the header is bad");
            false
        }
        (Err(d), Ok(_)) => panic!("verify_record accepted a record whose header does not decode: {d}"),
        (Ok(h), Err(e)) => {
            check_record_header(bytes, h, max_len);
            match e {
                FrameError::Truncated { needed_bytes, available_bytes } => {
                    assert_eq!(*needed_bytes, h.total_len());
                    assert_eq!(*available_bytes, bytes.len() as u64);
                    assert!(h.total_len() > bytes.len() as u64);
                }
                FrameError::BadChecksum { stored, computed } => {
                    assert_eq!(*stored, h.crc);
                    assert_ne!(stored, computed);
                }
                other => panic!("verify_record failed with {other:?} on a header that decodes"),
            }
            false
        }
        (Ok(h), Ok((v, range))) => {
            assert_eq!(h, v);
            check_record_header(bytes, h, max_len);
            assert_eq!(*range, RECORD_HEADER_LEN..RECORD_HEADER_LEN + h.stored_len as usize);
            let payload = &bytes[range.clone()];
            // encode ∘ decode: re-encoding the header and payload gives back the same bytes.
            let mut out = Vec::with_capacity(payload.len() + RECORD_HEADER_LEN);
            let crc = format::encode_record(&mut out, *h, payload, format::crc32(payload));
            assert_eq!(crc, h.crc);
            assert_eq!(&out[..], &bytes[..range.end]);
            assert_eq!(h.compute_crc(format::crc32(payload)), h.crc);
            if h.is_compressed() {
                check_decompress(payload, max_len);
            }
            true
        }
    }
}

fn check_record_header(bytes: &[u8], h: &RecordHeader, max_len: u32) {
    assert!(h.lsn != 0 && h.lsn <= MAX_LSN);
    assert!(h.stored_len <= max_len);
    assert_eq!(h.flags & !KNOWN_FLAGS, 0);
    assert_eq!(h.total_len(), RECORD_HEADER_LEN as u64 + u64::from(h.stored_len));
    assert_eq!(&h.encode()[..], &bytes[..RECORD_HEADER_LEN], "record header does not re-encode to its bytes");
}

/// Decompresses `stored`; on success checks the bound and that the data survives a round trip.
fn check_decompress(stored: &[u8], max_len: u32) {
    let Ok(raw) = format::decompress_payload(stored, max_len) else { return };
    assert!(raw.len() <= max_len as usize, "decompressed {} bytes above the limit {max_len}", raw.len());
    assert_eq!(raw.len(), le_u32(stored, 0) as usize, "decompressed length differs from the declared one");
    let again = format::compress_payload(&raw, 1).expect("zstd compresses any input below the limit");
    assert_eq!(format::decompress_payload(&again, max_len).as_deref(), Ok(&raw[..]));
}

// ---------------------------------------------------------------------------------------------
// segment header
// ---------------------------------------------------------------------------------------------

/// Fuzzes [`SegmentHeader::decode`]: raw bytes, a copy with the CRC repaired, and a header built
/// from the input's fields.
pub fn segment_header(data: &[u8]) {
    check_segment_header(data);
    if data.len() >= SEGMENT_HEADER_LEN {
        let mut fixed = data.to_vec();
        let crc = format::crc32(&fixed[0..60]);
        fixed[60..64].copy_from_slice(&crc.to_le_bytes());
        check_segment_header(&fixed);
    }
    // decode ∘ encode for field values taken from the input.
    if data.len() >= 36 {
        let h = SegmentHeader {
            version: if data.len() > 36 && data[36] & 1 == 1 {
                format::MIN_FORMAT_VERSION
            } else {
                format::FORMAT_VERSION
            },
            log_id: le_u64(data, 0),
            first_lsn: le_u64(data, 8),
            prev_last_lsn: le_u64(data, 16),
            prev_crc: le_u32(data, 24),
            created_at_us: le_u64(data, 28),
        };
        let valid = h.first_lsn != 0 && h.first_lsn <= MAX_LSN && h.prev_last_lsn < h.first_lsn;
        match SegmentHeader::decode(&h.encode()) {
            Ok(back) => {
                assert!(valid, "decode accepted an invalid header {h:?}");
                assert_eq!(back, h);
            }
            Err(e) => {
                assert!(!valid, "decode rejected its own encoding of {h:?}: {e}");
                assert!(matches!(e, FrameError::Invalid(_)), "unexpected error {e:?} for {h:?}");
            }
        }
    }
}

fn check_segment_header(bytes: &[u8]) {
    let Ok(h) = SegmentHeader::decode(bytes) else { return };
    assert!(h.first_lsn != 0 && h.first_lsn <= MAX_LSN && h.prev_last_lsn < h.first_lsn);
    assert_eq!(&h.encode()[..], &bytes[..SEGMENT_HEADER_LEN], "segment header does not re-encode to its bytes");
    let short = &bytes[..SEGMENT_HEADER_LEN - 1];
    assert!(matches!(SegmentHeader::decode(short), Err(FrameError::Truncated { .. })));
}

// ---------------------------------------------------------------------------------------------
// footer
// ---------------------------------------------------------------------------------------------

/// Fuzzes [`Footer::decode_trailer`] and [`Footer::decode`].
///
/// Input: a control byte (bit 0 asks for a copy with the trailer repaired), then bytes that are
/// decoded both as a whole segment file (trailer at the end) and as a bare footer.
pub fn footer(data: &[u8]) {
    let Some((&ctl, bytes)) = data.split_first() else { return };
    check_footer_file(bytes);
    let offset_hint = if bytes.len() >= 56 { le_u64(bytes, 48) } else { SEGMENT_HEADER_LEN as u64 };
    check_footer(bytes, offset_hint);
    check_footer(bytes, SEGMENT_HEADER_LEN as u64);
    if ctl & 1 != 0 && bytes.len() >= FOOTER_FIXED_LEN + TRAILER_LEN && u32::try_from(bytes.len()).is_ok() {
        // Make the trailer describe exactly these bytes, so decoding reaches the field checks.
        let mut fixed = bytes.to_vec();
        let body_len = fixed.len() - TRAILER_LEN;
        let crc = format::crc32(&fixed[..body_len]);
        let len = fixed.len() as u32;
        fixed[body_len..body_len + 4].copy_from_slice(&len.to_le_bytes());
        fixed[body_len + 4..body_len + 8].copy_from_slice(&crc.to_le_bytes());
        fixed[body_len + 8..].copy_from_slice(&TRAILER_MAGIC);
        check_footer(&fixed, offset_hint);
        // The same footer placed after a segment header-sized prefix, as a whole file.
        if let Some(offset) = usize::try_from(offset_hint).ok().filter(|&o| o <= 4096) {
            let mut file = vec![0u8; offset];
            file.extend_from_slice(&fixed);
            check_footer_file(&file);
        }
    }
}

/// Treats `file` as a whole segment file and decodes the footer its trailer points at.
fn check_footer_file(file: &[u8]) {
    if file.len() < TRAILER_LEN {
        assert!(Footer::decode_trailer(file, file.len() as u64).is_err());
        return;
    }
    let file_len = file.len() as u64;
    let Ok((offset, footer_len, crc)) = Footer::decode_trailer(&file[file.len() - TRAILER_LEN..], file_len) else {
        return;
    };
    assert_eq!(offset + footer_len as u64, file_len);
    assert!(footer_len >= FOOTER_FIXED_LEN + TRAILER_LEN);
    assert!(offset >= SEGMENT_HEADER_LEN as u64);
    assert_eq!(crc, le_u32(file, file.len() - 12));
    if let Some(footer) = check_footer(&file[offset as usize..], offset) {
        assert_eq!(footer.data_end_offset, offset);
    }
}

/// Decodes `bytes` as a footer starting at `offset`; on success checks its invariants and that it
/// re-encodes to exactly the same bytes.
fn check_footer(bytes: &[u8], offset: u64) -> Option<Footer> {
    let footer = Footer::decode(bytes, offset).ok()?;
    assert_eq!(footer.encoded_len(), bytes.len());
    let mut out = Vec::with_capacity(bytes.len());
    footer.encode(&mut out);
    assert_eq!(&out[..], bytes, "footer does not re-encode to its bytes: {footer:?}");
    // The invariants `open` and readers rely on.
    assert!(footer.first_lsn >= 1 && footer.last_lsn >= footer.first_lsn && footer.last_lsn <= MAX_LSN);
    let span = footer.last_lsn - footer.first_lsn + 1;
    assert!(footer.record_count >= 1 && footer.record_count <= span);
    if footer.holes.is_empty() {
        assert_eq!(footer.record_count, span);
    }
    assert_eq!(footer.data_end_offset, offset);
    assert_eq!(footer.index.first(), Some(&IndexEntry { lsn: footer.first_lsn, offset: SEGMENT_HEADER_LEN as u64 }));
    assert!(footer.index.windows(2).all(|w| w[0].lsn < w[1].lsn && w[0].offset < w[1].offset));
    assert!(footer.index.iter().all(|e| e.lsn <= footer.last_lsn && e.offset < footer.data_end_offset));
    check_holes(&footer.holes, footer.data_end_offset);
    // The footer must sit exactly at its data end.
    assert!(Footer::decode(bytes, offset.wrapping_add(1)).is_err());
    Some(footer)
}

/// Holes as scanning produces them: ascending, non-empty, within the data, and never adjacent
/// (readers skip one hole per position).
fn check_scan_holes(holes: &[Hole], data_end_offset: u64) {
    check_holes(holes, data_end_offset);
    assert!(holes.windows(2).all(|w| w[0].end_offset < w[1].start_offset), "adjacent holes: {holes:?}");
}

fn check_holes(holes: &[Hole], data_end_offset: u64) {
    let mut prev_end = SEGMENT_HEADER_LEN as u64;
    for h in holes {
        assert!(h.start_offset >= prev_end && h.end_offset > h.start_offset, "holes overlap or are empty: {holes:?}");
        assert!(h.end_offset <= data_end_offset, "hole {h:?} past the data end {data_end_offset}");
        prev_end = h.end_offset;
    }
}

// ---------------------------------------------------------------------------------------------
// scan
// ---------------------------------------------------------------------------------------------

/// Fuzzes [`recovery::scan_segment`] under every [`RecoveryMode`] and checks its invariants.
///
/// Input: `first_lsn` (8 bytes LE, clamped to `1..=MAX_LSN` as a decodable header requires), the chain seed `prev_crc` (4 bytes), a control
/// byte (bits 0–1 length limit, bits 2–3 index interval, bit 4 repair record CRCs and chain,
/// bit 5 also renumber LSNs), a damage byte (repaired record number whose CRC is then broken;
/// 255 for none), then the record bytes that follow a valid segment header.
pub fn scan(data: &[u8]) {
    let field = |at: usize, len: usize| data.get(at..).map(|b| &b[..b.len().min(len)]).unwrap_or_default();
    let first_lsn = le_u64_padded(field(0, 8)).clamp(1, MAX_LSN);
    let prev_crc = le_u64_padded(field(8, 4)) as u32;
    let ctl = field(12, 1).first().copied().unwrap_or(0);
    let damage = field(13, 1).first().copied().unwrap_or(255);
    let body = data.get(14..).unwrap_or_default();

    let max_len = RECORD_LIMITS_BYTES[usize::from(ctl & 3)];
    let interval = INDEX_INTERVALS_BYTES[usize::from((ctl >> 2) & 3)];
    let header = SegmentHeader {
        version: format::FORMAT_VERSION,
        log_id: 7,
        first_lsn,
        prev_last_lsn: first_lsn - 1,
        prev_crc,
        created_at_us: 1,
    };
    let mut bytes = header.encode().to_vec();
    bytes.extend_from_slice(body);
    if ctl & 0x10 != 0 {
        let damage = (damage != 255).then_some(u64::from(damage));
        repair_records(&mut bytes, first_lsn, prev_crc, max_len, ctl & 0x20 != 0, damage);
    }

    let results = MODES.map(|mode| {
        let r = inspect::scan_segment(&bytes, &header, mode, max_len, interval, true);
        check_scan(&bytes, &header, mode, max_len, interval, &r);
        r
    });
    // Scanned as a sealed segment (salvage of one whose footer is damaged), damage is never an
    // interrupted write; the result differs only where the last-segment scan took it for one.
    for (&mode, last) in MODES.iter().zip(&results) {
        let sealed = inspect::scan_segment(&bytes, &header, mode, max_len, interval, false);
        check_scan(&bytes, &header, mode, max_len, interval, &sealed);
        assert!(!is_interrupted_write(&sealed), "mode {mode:?}, sealed: {sealed:?}");
        if !is_interrupted_write(last) {
            assert_eq!(&sealed, last, "mode {mode:?}");
        }
    }
    let [tolerate, absolute, pit, skip] = &results;
    // Absolute consistency decides exactly like the default; only `open` treats a torn tail
    // differently.
    assert_eq!(absolute, tolerate);
    // Point-in-time keeps what the default keeps, and turns corruption into a torn tail there.
    assert_eq!(kept(pit), kept(tolerate));
    assert!(matches!(pit.outcome, ScanOutcome::TornTail { .. } | ScanOutcome::Clean));
    if !matches!(tolerate.outcome, ScanOutcome::Corruption { .. }) {
        assert_eq!(pit, tolerate);
    }
    // Salvage that skipped nothing keeps what point-in-time recovery keeps (it may have looked
    // past damage and found only an incomplete batch, so its reason can differ).
    if skip.holes.is_empty() {
        assert_eq!(kept(skip), kept(pit));
        assert!(matches!(skip.outcome, ScanOutcome::TornTail { .. } | ScanOutcome::Clean));
    }
}

/// Whether a scan ended in an interrupted write (a torn tail found by that rule).
fn is_interrupted_write(r: &ScanResult) -> bool {
    matches!(&r.outcome, ScanOutcome::TornTail { reason, .. } if reason.contains(INTERRUPTED_WRITE))
}

/// The part of a scan result that says what is kept.
fn kept(r: &ScanResult) -> (u64, u64, Lsn, u32, u64, &[IndexEntry], &[Hole]) {
    (r.valid_end_offset, r.record_count, r.last_lsn, r.last_crc, r.last_timestamp_us, &r.index, &r.holes)
}

fn check_scan(bytes: &[u8], header: &SegmentHeader, mode: RecoveryMode, max_len: u32, interval: u64, r: &ScanResult) {
    let len = bytes.len() as u64;
    let start = SEGMENT_HEADER_LEN as u64;
    let ctx = || format!("mode {mode:?}, {len} bytes, result {r:?}");
    assert!(r.valid_end_offset >= start && r.valid_end_offset <= len, "valid end out of range: {}", ctx());
    assert!(r.last_lsn >= header.first_lsn - 1, "last LSN below the segment start: {}", ctx());
    if mode != RecoveryMode::SkipCorrupted {
        assert!(r.holes.is_empty(), "holes outside salvage mode: {}", ctx());
    }
    check_scan_holes(&r.holes, r.valid_end_offset);
    if r.record_count == 0 {
        assert_eq!(r.last_lsn, header.first_lsn - 1, "{}", ctx());
        assert_eq!(r.last_crc, header.prev_crc, "{}", ctx());
        assert_eq!(r.last_timestamp_us, 0, "{}", ctx());
        assert!(r.index.is_empty(), "index without records: {}", ctx());
        // Nothing kept means nothing valid: `open` truncates to this offset and appends there.
        assert_eq!(r.valid_end_offset, start, "no records kept but data kept up to the valid end: {}", ctx());
    } else {
        let span = r.last_lsn - (header.first_lsn - 1);
        if r.holes.is_empty() {
            assert_eq!(r.record_count, span, "record count does not match the LSN range: {}", ctx());
            assert_eq!(r.index.first(), Some(&IndexEntry { lsn: header.first_lsn, offset: start }), "{}", ctx());
        } else {
            assert!(r.record_count <= span, "more records than LSNs: {}", ctx());
        }
        assert!(!r.index.is_empty(), "records without an index: {}", ctx());
    }
    assert!(r.index.windows(2).all(|w| w[0].lsn < w[1].lsn && w[0].offset < w[1].offset), "{}", ctx());
    for e in &r.index {
        assert!(e.offset >= start && e.offset < r.valid_end_offset, "index entry past the valid end: {}", ctx());
        assert!(e.lsn >= header.first_lsn && e.lsn <= r.last_lsn, "index entry LSN out of range: {}", ctx());
        let at = format::verify_record(&bytes[e.offset as usize..], max_len);
        assert_eq!(at.map(|(h, _)| h.lsn), Ok(e.lsn), "index entry {e:?} does not point at its record: {}", ctx());
    }
    if r.outcome != ScanOutcome::Clean {
        assert_eq!(r.zero_tail_bytes, 0, "zero tail outside a clean outcome: {}", ctx());
    }
    match &r.outcome {
        ScanOutcome::Clean => {
            // Up to the end of the bytes, or up to a zero-filled (preallocated) tail.
            assert_eq!(r.valid_end_offset + r.zero_tail_bytes, len, "{}", ctx());
            assert!(format::is_zeroed(&bytes[r.valid_end_offset as usize..]), "non-zero tail: {}", ctx());
        }
        ScanOutcome::TornTail { offset, .. } => {
            assert_eq!(*offset, r.valid_end_offset, "{}", ctx());
            assert!(*offset < len, "torn tail at the end of the data: {}", ctx());
        }
        ScanOutcome::Corruption { offset, .. } => {
            assert!(matches!(mode, RecoveryMode::TolerateTornTail | RecoveryMode::AbsoluteConsistency), "{}", ctx());
            assert!(*offset >= r.valid_end_offset && *offset < len, "{}", ctx());
        }
    }
    // What recovery keeps must scan clean on its own (a reopen after truncation finds nothing new).
    if r.holes.is_empty() && r.valid_end_offset < len {
        let again = inspect::scan_segment(&bytes[..r.valid_end_offset as usize], header, mode, max_len, interval, true);
        assert_eq!(again.outcome, ScanOutcome::Clean, "kept prefix does not rescan clean: {}", ctx());
        assert_eq!(kept(&again), kept(r), "kept prefix rescans differently: {}", ctx());
    }
}

/// Walks `segment` from the end of its header and gives every record-shaped byte range (marker
/// present, length in bounds) known flags, the chain seed of its predecessor and a correct CRC,
/// optionally renumbering LSNs from `first_lsn`. Bytes without a marker are skipped one at a time,
/// so garbage between records stays garbage. The CRC of the `damage`-th repaired record is then
/// broken (its successors still chain to the correct value, as after a bit flip on disk).
/// Returns the last repaired LSN and CRC.
fn repair_records(
    segment: &mut [u8],
    first_lsn: Lsn,
    prev_crc: u32,
    max_len: u32,
    renumber: bool,
    damage: Option<u64>,
) -> (Lsn, u32) {
    let mut pos = SEGMENT_HEADER_LEN;
    let mut chain = prev_crc;
    let mut next_lsn = first_lsn;
    let mut last_lsn = first_lsn.wrapping_sub(1);
    let mut repaired = 0u64;
    while pos + RECORD_HEADER_LEN <= segment.len() {
        let stored_len = le_u32(segment, pos + 8);
        let end = pos.checked_add(RECORD_HEADER_LEN + stored_len as usize).filter(|&e| e <= segment.len());
        let (true, true, Some(end)) =
            (segment[pos + 4..pos + 6] == RECORD_MARKER.to_le_bytes(), stored_len <= max_len, end)
        else {
            pos += 1;
            continue;
        };
        segment[pos + 7] &= KNOWN_FLAGS;
        segment[pos + 12..pos + 16].copy_from_slice(&chain.to_le_bytes());
        if renumber {
            segment[pos + 16..pos + 24].copy_from_slice(&next_lsn.max(1).to_le_bytes());
        }
        let lsn = le_u64(segment, pos + 16);
        let crc = format::crc32(&segment[pos + 4..end]);
        let stored = if damage == Some(repaired) { crc ^ 1 } else { crc };
        segment[pos..pos + 4].copy_from_slice(&stored.to_le_bytes());
        chain = crc;
        last_lsn = lsn;
        next_lsn = lsn.wrapping_add(1);
        repaired += 1;
        pos = end;
    }
    (last_lsn, chain)
}

// ---------------------------------------------------------------------------------------------
// open
// ---------------------------------------------------------------------------------------------

/// Fuzzes [`Wal::open_with_storage`] (recovery end to end) on an in-memory [`FaultStorage`], and
/// if the log opens, reads everything, appends a record, reads it back, closes, and checks that
/// the log reopens to the same contents.
///
/// Input: a control byte (bits 0–1 recovery mode, bit 2 two segment files, bit 3 repair
/// checksums and chains, bits 4–5 sync mode, bit 6 verify checksums on read, bit 7 compress), a
/// split offset (u16 LE) for two files, then the file bytes. A file is named after the first LSN
/// in its header (or its position, if too short to have one).
pub fn open(data: &[u8]) {
    let Some((config, files)) = open_input(data) else { return };
    let storage = FaultStorage::new();
    let dir = Path::new("/wal");
    let mut names = Vec::new();
    for (i, file) in files.into_iter().enumerate() {
        let first_lsn = if file.len() >= 32 { le_u64(&file, 24) } else { i as u64 + 1 };
        let name = format::segment_file_name(first_lsn);
        if !names.contains(&name) {
            storage.set_file_bytes(&dir.join(&name), file);
            names.push(name);
        }
    }
    let Ok(wal) = Wal::open_with_storage(dir, config.clone(), Arc::new(storage.clone())) else { return };
    let report = wal.recovery_report().clone();
    let ctx = || format!("config {config:?}, report {report:?}");
    assert_eq!(wal.next_lsn(), report.last_lsn + 1, "{}", ctx());
    assert!(report.oldest_lsn <= report.last_lsn + 1, "{}", ctx());
    let first = read_all(&wal, report.last_lsn);
    // Segments trusted by their footer: their records are only checked when read.
    let sealed_at_open: Vec<PathBuf> = wal.segments().into_iter().filter(|s| s.sealed).map(|s| s.path).collect();
    if report.last_lsn >= MAX_LSN {
        // A log whose last LSN is the largest possible (only reachable with forged, CRC-valid
        // metadata) has no LSN left to append; `Wal::append` does not refuse that yet.
        return;
    }
    let lsn = append_and_read_back(&wal, &data[3..], report.last_lsn, &ctx);
    wal.close().unwrap_or_else(|e| panic!("close after a successful open: {e}; {}", ctx()));

    // Recovery left a consistent log: it reopens, finds nothing to repair, and reads the same.
    let wal = Wal::open_with_storage(dir, config.clone(), Arc::new(storage.clone()))
        .unwrap_or_else(|e| panic!("reopen after a successful open and close: {e}; {}", ctx()));
    let again = wal.recovery_report().clone();
    assert_eq!(again.last_lsn, lsn, "reopen report {again:?}; {}", ctx());
    // A missing segment accepted by salvage stays a reported LSN gap on every open; anything else
    // would be a repair the first open failed to make.
    let repairs = again.skipped_ranges.iter().filter(|r| r.lost_lsns.is_none()).count();
    assert!(again.torn_tail.is_none() && repairs == 0, "reopen report {again:?}; {}", ctx());
    let second = read_all(&wal, lsn);
    compare_reads(&first, &second, lsn, &sealed_at_open, &ctx);
    wal.close().unwrap_or_else(|e| panic!("second close: {e}; {}", ctx()));
}

/// The `open` harness's configuration and segment files, from its input (see [`open`]).
fn open_input(data: &[u8]) -> Option<(WalConfig, Vec<Vec<u8>>)> {
    if data.len() < 3 {
        return None;
    }
    let ctl = data[0];
    let split = usize::from(u16::from_le_bytes([data[1], data[2]]));
    let rest = &data[3..];
    let mut files: Vec<Vec<u8>> = if ctl & 4 != 0 {
        let (a, b) = rest.split_at(split.min(rest.len()));
        vec![a.to_vec(), b.to_vec()]
    } else {
        vec![rest.to_vec()]
    };
    if ctl & 8 != 0 {
        let mut prev = None;
        for file in &mut files {
            prev = repair_segment(file, prev);
        }
    }
    let config = WalConfig {
        target_segment_size_bytes: 4096,
        max_records_per_segment: 8,
        max_record_size_bytes: MAX_RECORD_BYTES,
        max_batch_size_bytes: u64::from(MAX_RECORD_BYTES),
        sync_mode: [SyncMode::Always, SyncMode::Group, SyncMode::None, SyncMode::Always][usize::from((ctl >> 4) & 3)],
        recovery_mode: MODES[usize::from(ctl & 3)],
        compression_threshold_bytes: (ctl & 0x80 != 0).then_some(32),
        compression_level: 1,
        verify_checksums_on_read: ctl & 0x40 != 0,
        index_interval_bytes: 256,
        ..WalConfig::default()
    };
    Some((config, files))
}

/// The log must accept, keep and return a new record: appends one (after `last_lsn`), syncs,
/// reads it back; returns its LSN.
fn append_and_read_back(wal: &Wal, seed: &[u8], last_lsn: Lsn, ctx: &dyn Fn() -> String) -> Lsn {
    let payload: Vec<u8> = seed.iter().copied().cycle().take(100).chain(std::iter::repeat_n(b'w', 100)).collect();
    let lsn = wal.append(3, &payload).unwrap_or_else(|e| panic!("append after a successful open: {e}; {}", ctx()));
    assert_eq!(lsn, last_lsn + 1, "{}", ctx());
    wal.sync().unwrap_or_else(|e| panic!("sync after a successful open: {e}; {}", ctx()));
    match wal.reader(lsn).and_then(|mut r| r.next_record()) {
        Ok(Some(rec)) => assert_eq!((rec.lsn, rec.kind, &rec.payload[..]), (lsn, 3, &payload[..]), "{}", ctx()),
        other => panic!("reading back the appended LSN {lsn}: {other:?}; {}", ctx()),
    }
    lsn
}

type ReadAll = (Vec<Record>, Option<WalError>);

/// What a reopened log reads (`second`) against what the first open read (`first`), after one
/// record (`lsn`) was appended in between.
fn compare_reads(first: &ReadAll, second: &ReadAll, lsn: Lsn, sealed_at_open: &[PathBuf], ctx: &dyn Fn() -> String) {
    match &first.1 {
        None => match &second.1 {
            None => {
                assert_eq!(second.0.len(), first.0.len() + 1, "{}", ctx());
                assert_eq!(second.0[..first.0.len()], first.0[..], "{}", ctx());
                assert_eq!(second.0.last().map(|r| r.lsn), Some(lsn), "{}", ctx());
            }
            // Damage in a sealed segment past its last record: the first read stopped at the end
            // of the log before reaching it, the second goes on towards the appended record. It
            // must surface as corruption of that segment, never as data.
            Some(WalError::Corruption { segment, .. }) if sealed_at_open.contains(segment) => {
                assert_eq!(second.0, first.0, "{}", ctx());
            }
            Some(e) => panic!("reading failed after reopen: {e:?}; {}", ctx()),
        },
        Some(_) => {
            assert!(second.1.is_some(), "reading failed before the reopen but not after; {}", ctx());
            assert_eq!(second.0, first.0, "{}", ctx());
        }
    }
}

/// Reads every record from the oldest one; returns the records and the error that stopped the
/// reader, if any. Checks that LSNs increase and stay within the log.
fn read_all(wal: &Wal, last_lsn: Lsn) -> ReadAll {
    let mut records: Vec<Record> = Vec::new();
    let mut reader = match wal.reader(wal.oldest_lsn()) {
        Ok(r) => r,
        Err(e) => return (records, Some(e)),
    };
    loop {
        assert!(records.len() < MAX_READ_RECORDS, "reader does not terminate");
        match reader.next_record() {
            Ok(Some(rec)) => {
                assert!(rec.lsn >= wal.oldest_lsn() && rec.lsn <= last_lsn, "LSN {} outside the log", rec.lsn);
                assert!(records.last().is_none_or(|prev| prev.lsn < rec.lsn), "LSNs do not increase");
                assert!(rec.payload.len() <= MAX_RECORD_BYTES as usize);
                records.push(rec);
            }
            Ok(None) => {
                assert_eq!(reader.next_lsn(), last_lsn + 1, "reader stopped early without an error");
                return (records, None);
            }
            Err(e) => return (records, Some(e)),
        }
    }
}

/// Repairs one segment file for the `open` harness: header CRC (and, given the previous file's
/// last LSN and CRC, its chain fields), record CRCs and chain up to the footer, and the footer's
/// chain CRC, data end and checksum. Returns the last LSN and CRC for the next file.
fn repair_segment(file: &mut [u8], prev: Option<(Lsn, u32)>) -> Option<(Lsn, u32)> {
    if file.len() < SEGMENT_HEADER_LEN {
        return prev;
    }
    if let Some((prev_last_lsn, prev_crc)) = prev {
        file[24..32].copy_from_slice(&prev_last_lsn.wrapping_add(1).to_le_bytes());
        file[32..40].copy_from_slice(&prev_last_lsn.to_le_bytes());
        file[40..44].copy_from_slice(&prev_crc.to_le_bytes());
    }
    let crc = format::crc32(&file[0..60]);
    file[60..64].copy_from_slice(&crc.to_le_bytes());
    let first_lsn = le_u64(file, 24);
    let prev_crc = le_u32(file, 40);

    // A footer, if the file ends in something shaped like a trailer.
    let len = file.len();
    let footer_at = (len >= SEGMENT_HEADER_LEN + FOOTER_FIXED_LEN + TRAILER_LEN && file[len - 8..] == TRAILER_MAGIC)
        .then(|| le_u32(file, len - TRAILER_LEN) as usize)
        .filter(|&footer_len| footer_len >= FOOTER_FIXED_LEN + TRAILER_LEN && footer_len <= len - SEGMENT_HEADER_LEN)
        .map(|footer_len| len - footer_len);
    let data_end = footer_at.unwrap_or(len);
    let (last_lsn, last_crc) =
        repair_records(&mut file[..data_end], first_lsn, prev_crc, MAX_RECORD_BYTES, false, None);
    let Some(at) = footer_at else { return Some((last_lsn, last_crc)) };
    file[at + 48..at + 56].copy_from_slice(&(at as u64).to_le_bytes());
    file[at + 56..at + 60].copy_from_slice(&last_crc.to_le_bytes());
    let footer_last_lsn = le_u64(file, at + 32);
    // Keep the index entry count consistent with the footer's length when it is off by entries.
    let entries = (len - TRAILER_LEN - at - FOOTER_FIXED_LEN) / INDEX_ENTRY_LEN;
    let holes = le_u32(file, at + 16) as usize;
    if let Some(index) = entries.checked_sub(holes).and_then(|n| u32::try_from(n).ok()) {
        file[at + 12..at + 16].copy_from_slice(&index.to_le_bytes());
    }
    let crc = format::crc32(&file[at..len - TRAILER_LEN]);
    file[len - 12..len - 8].copy_from_slice(&crc.to_le_bytes());
    Some((footer_last_lsn, last_crc))
}

// ---------------------------------------------------------------------------------------------
// clean-close record
// ---------------------------------------------------------------------------------------------

/// Records per segment in the clean-close harness's log.
const CLEAN_CLOSE_SEGMENT_RECORDS: u64 = 4;

/// Fuzzes [`CleanClose::decode`] and `open`'s decision to trust a clean-close record.
///
/// Input: a control byte, then bytes.
/// - The bytes are decoded as a record, raw and (bit 0) with the entry count and CRC repaired;
///   a record that decodes must satisfy its invariants and re-encode to the same bytes.
/// - With bit 1, a real log (one sealed segment, an active one of `1 + (ctl >> 5)` records) is
///   closed cleanly and then changed as bits 2–4 say, using the bytes: 0 `LOCK` replaced by them
///   (repaired as above with bit 0), 1 them appended to the active segment, 2 the segment cut
///   short by 1 + their first byte, 3 a bit flipped in the segment at their first two bytes, 4 a
///   bit flipped in `LOCK`, 5 `LOCK` cut short, 6 a valid next record appended to the segment,
///   7 nothing. Then `open` must either trust the record, and then the record must describe
///   the segment as it was closed and reading must return the original records (or a prefix of
///   them and a `Corruption` error), or not trust it, and then give exactly what a scanning open
///   gives and leave `LOCK` empty. Changes that make the record stale must never be trusted; no
///   change must never be distrusted.
pub fn clean_close(data: &[u8]) {
    let Some((&ctl, bytes)) = data.split_first() else { return };
    check_clean_close(bytes);
    let repaired = repair_clean_close(bytes);
    if let Some(fixed) = &repaired {
        check_clean_close(fixed);
    }
    if ctl & 2 == 0 {
        return;
    }
    let (fs, records) = clean_close_log(1 + u64::from(ctl >> 5));
    let log = CleanClosedLog::read(fs, records);
    let bytes_to_use = if ctl & 1 != 0 { repaired.unwrap_or_else(|| bytes.to_vec()) } else { bytes.to_vec() };
    let mutation = (ctl >> 2) & 7;
    let change = log.change(mutation, bytes, bytes_to_use);
    let config = clean_close_config();
    let scan = copy_storage(&log.fs, Some(&log.lock));
    let expected = match Wal::open_with_storage(&log.dir, config.clone(), Arc::new(scan)) {
        Ok(wal) => Ok((wal.recovery_report().last_lsn, read_all(&wal, wal.recovery_report().last_lsn))),
        Err(e) => Err(format!("{e:?}")),
    };
    let wal = match Wal::open_with_storage(&log.dir, config.clone(), Arc::new(log.fs.clone())) {
        Ok(wal) => wal,
        Err(e) => {
            let want = expected.as_ref().map(|_| ()).map_err(Clone::clone);
            assert_eq!(Err(format!("{e:?}")), want, "open failed unlike a scan");
            return;
        }
    };
    let report = wal.recovery_report().clone();
    if report.active_segment_trusted {
        assert!(!change.stale, "mutation {mutation}: a stale or damaged record was trusted: {report:?}");
        log.check_trusted(&wal, &report, change.flipped_at);
    } else {
        assert!(mutation != 7, "an unchanged clean close was not trusted: {report:?}");
        let lock_now = log.fs.file_bytes(&log.lock);
        assert_eq!(lock_now.as_deref(), Some(&[][..]), "an untrusted record was left in LOCK");
        let got = (report.last_lsn, read_all(&wal, report.last_lsn));
        let want = expected.as_ref().unwrap_or_else(|e| panic!("open succeeded where a scan failed: {e}"));
        let summary = |x: &(Lsn, ReadAll)| (x.0, x.1.0.clone(), x.1.1.is_some());
        assert_eq!(summary(&got), summary(want), "differs from a scan");
    }
    if report.last_lsn >= MAX_LSN {
        return;
    }
    // The log goes on, and its next clean close is trusted.
    let lsn = wal.append(3, b"after").unwrap_or_else(|e| panic!("append after open: {e}"));
    wal.close().unwrap_or_else(|e| panic!("close: {e}"));
    let wal =
        Wal::open_with_storage(&log.dir, config, Arc::new(log.fs.clone())).unwrap_or_else(|e| panic!("reopen: {e}"));
    assert!(wal.recovery_report().active_segment_trusted, "{:?}", wal.recovery_report());
    assert_eq!(wal.recovery_report().last_lsn, lsn);
    let _ = wal.close();
}

/// A log the `clean_close` harness closed cleanly, as it was then.
struct CleanClosedLog {
    fs: FaultStorage,
    records: Vec<Record>,
    dir: PathBuf,
    lock: PathBuf,
    active: PathBuf,
    genuine_bytes: Vec<u8>,
    genuine: CleanClose,
    segment: Vec<u8>,
}

/// What a harness change did to a cleanly closed log.
struct Change {
    /// The record is stale (or broken) now: it must not be trusted.
    stale: bool,
    /// Where a flipped segment bit is, if one is.
    flipped_at: Option<u64>,
}

impl CleanClosedLog {
    fn read(fs: FaultStorage, records: Vec<Record>) -> CleanClosedLog {
        let dir = PathBuf::from("/wal");
        let lock = dir.join(format::LOCK_FILE_NAME);
        let active = dir.join(format::segment_file_name(CLEAN_CLOSE_SEGMENT_RECORDS + 1));
        let genuine_bytes = fs.file_bytes(&lock).expect("LOCK");
        let genuine = CleanClose::decode(&genuine_bytes).expect("a clean close leaves a valid record");
        let segment = fs.file_bytes(&active).expect("active segment");
        CleanClosedLog { fs, records, dir, lock, active, genuine_bytes, genuine, segment }
    }

    /// Applies change `mutation` (see [`clean_close`]) using the input `bytes` (and `new_lock`,
    /// them repaired when asked).
    fn change(&self, mutation: u8, bytes: &[u8], new_lock: Vec<u8>) -> Change {
        let (fs, segment, genuine_bytes) = (&self.fs, &self.segment, &self.genuine_bytes);
        let first_u16 =
            usize::from(u16::from_le_bytes([bytes.first().copied().unwrap_or(0), bytes.get(1).copied().unwrap_or(0)]));
        let bit = bytes.get(2).copied().unwrap_or(0) & 7;
        let mut change = Change { stale: true, flipped_at: None };
        match mutation {
            0 => {
                change.stale = new_lock != *genuine_bytes && CleanClose::decode(&new_lock).is_err();
                fs.set_file_bytes(&self.lock, new_lock);
            }
            1 => {
                change.stale = !bytes.is_empty();
                fs.set_file_bytes(&self.active, [&segment[..], bytes].concat());
            }
            2 => {
                let cut = (1 + usize::from(bytes.first().copied().unwrap_or(0))).min(segment.len());
                fs.set_file_bytes(&self.active, segment[..segment.len() - cut].to_vec());
            }
            3 => {
                let at = (first_u16 % segment.len()) as u64;
                fs.flip_bit(&self.active, at, bit);
                // May or may not be noticed at open; checked when trusted.
                change = Change { stale: false, flipped_at: Some(at) };
            }
            4 => fs.flip_bit(&self.lock, (first_u16 % genuine_bytes.len()) as u64, bit),
            5 => fs.set_file_bytes(&self.lock, genuine_bytes[..first_u16 % genuine_bytes.len()].to_vec()),
            6 => fs.set_file_bytes(&self.active, self.with_next_record(&bytes[..bytes.len().min(256)])),
            _ => change.stale = false,
        }
        change
    }

    /// The segment with a valid next record (payload `payload`) appended.
    fn with_next_record(&self, payload: &[u8]) -> Vec<u8> {
        let header = format::RecordHeader {
            crc: 0,
            kind: 9,
            flags: FLAG_BATCH_END,
            stored_len: payload.len() as u32,
            prev_crc: self.genuine.last_crc,
            lsn: self.genuine.last_lsn + 1,
            timestamp_us: 1,
        };
        let mut grown = self.segment.clone();
        format::encode_record(&mut grown, header, payload, format::crc32(payload));
        grown
    }

    /// An open that trusted the record: it describes the segment as it was closed, and reading
    /// returns the original records (or a prefix of them and a `Corruption` error).
    fn check_trusted(&self, wal: &Wal, report: &crate::RecoveryReport, flipped_at: Option<u64>) {
        let now = CleanClose::decode(&self.fs.file_bytes(&self.lock).expect("LOCK")).expect("a trusted record decodes");
        let core = |r: &CleanClose| {
            (
                r.log_id,
                r.segment_first_lsn,
                r.data_end_offset,
                r.last_record_offset,
                r.record_count,
                r.last_lsn,
                r.last_crc,
            )
        };
        assert_eq!(core(&now), core(&self.genuine), "trusted a record that describes another segment");
        let segment_now = self.fs.file_bytes(&self.active).expect("active segment");
        assert_eq!(segment_now.len(), self.segment.len());
        let last = self.genuine.last_record_offset as usize;
        assert_eq!(segment_now[last..], self.segment[last..], "trusted a segment whose last record changed");
        if let Some(at) = flipped_at {
            let checked_region = SEGMENT_HEADER_LEN as u64..self.genuine.last_record_offset;
            assert!(checked_region.contains(&at), "flip at {at} trusted");
        }
        let (got, err) = read_all(wal, report.last_lsn);
        let records = &self.records;
        assert!(got.len() <= records.len() && got[..] == records[..got.len()], "trusted open returned other data");
        if got.len() < records.len() {
            assert!(matches!(err, Some(WalError::Corruption { .. })), "trusted open stopped early: {err:?}");
        }
    }
}

fn clean_close_config() -> WalConfig {
    WalConfig {
        target_segment_size_bytes: 4096,
        max_records_per_segment: CLEAN_CLOSE_SEGMENT_RECORDS,
        index_interval_bytes: 64,
        sync_mode: SyncMode::Always,
        ..WalConfig::default()
    }
}

/// A log of one sealed segment and an active one of `active_records` records, closed cleanly;
/// with its records.
fn clean_close_log(active_records: u64) -> (FaultStorage, Vec<Record>) {
    let fs = FaultStorage::new();
    let wal = Wal::open_with_storage("/wal", clean_close_config(), Arc::new(fs.clone())).expect("open");
    for i in 0..CLEAN_CLOSE_SEGMENT_RECORDS + active_records {
        let payload = vec![b'a' + (i % 26) as u8; 10 + (i as usize * 7) % 50];
        wal.append(1, &payload).expect("append");
    }
    let (records, err) = read_all(&wal, CLEAN_CLOSE_SEGMENT_RECORDS + active_records);
    assert!(err.is_none());
    wal.close().expect("close");
    (fs, records)
}

/// A new storage holding the same files (`empty`: that one emptied).
fn copy_storage(fs: &FaultStorage, empty: Option<&Path>) -> FaultStorage {
    let copy = FaultStorage::new();
    for path in fs.list_all_files() {
        let bytes = if Some(path.as_path()) == empty { Vec::new() } else { fs.file_bytes(&path).expect("listed") };
        copy.set_file_bytes(&path, bytes);
    }
    copy
}

/// Decodes `bytes` as a clean-close record; on success checks its invariants and that it
/// re-encodes to the same bytes.
fn check_clean_close(bytes: &[u8]) {
    let Ok(r) = CleanClose::decode(bytes) else { return };
    let mut out = Vec::new();
    r.encode(&mut out);
    assert_eq!(out, bytes, "clean-close record does not re-encode to its bytes: {r:?}");
    assert_eq!(r.encoded_len(), bytes.len());
    let first = r.segment_first_lsn;
    assert!((1..=MAX_LSN).contains(&first) && r.last_lsn <= MAX_LSN && r.last_lsn + 1 >= first);
    assert_eq!(r.record_count, r.last_lsn + 1 - first);
    let header_end = SEGMENT_HEADER_LEN as u64;
    if r.record_count == 0 {
        assert!(r.index.is_empty() && r.data_end_offset == header_end && r.last_record_offset == 0);
    } else {
        assert!(r.last_record_offset >= header_end);
        assert!(r.last_record_offset + RECORD_HEADER_LEN as u64 <= r.data_end_offset);
        assert_eq!(r.index.first(), Some(&IndexEntry { lsn: first, offset: header_end }));
        assert!(r.index.windows(2).all(|w| w[0].lsn < w[1].lsn && w[0].offset < w[1].offset));
        assert!(r.index.iter().all(|e| e.lsn <= r.last_lsn && e.offset <= r.last_record_offset));
    }
    // Torn: no proper prefix decodes.
    for cut in [1, CLEAN_CLOSE_CRC_LEN, bytes.len() / 2] {
        if cut <= bytes.len() {
            assert!(CleanClose::decode(&bytes[..bytes.len() - cut]).is_err(), "a record cut by {cut} decodes");
        }
    }
}

/// Makes the entry count match the length and the CRC match the content, so decoding reaches
/// the field checks. `None` if too short to be a record.
fn repair_clean_close(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() < CLEAN_CLOSE_FIXED_LEN + CLEAN_CLOSE_CRC_LEN {
        return None;
    }
    let mut fixed = bytes.to_vec();
    let entries = (fixed.len() - CLEAN_CLOSE_FIXED_LEN - CLEAN_CLOSE_CRC_LEN) / INDEX_ENTRY_LEN;
    fixed.truncate(CLEAN_CLOSE_FIXED_LEN + entries * INDEX_ENTRY_LEN);
    fixed[12..16].copy_from_slice(&u32::try_from(entries).ok()?.to_le_bytes());
    let crc = format::crc32(&fixed);
    fixed.extend_from_slice(&crc.to_le_bytes());
    Some(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real two-segment log (the first sealed), as `open` input.
    fn two_segment_log(ctl: u8) -> Vec<u8> {
        let storage = FaultStorage::new();
        let dir = Path::new("/w");
        let config = WalConfig { max_records_per_segment: 3, sync_mode: SyncMode::Always, ..WalConfig::default() };
        let wal = Wal::open_with_storage(dir, config, Arc::new(storage.clone())).unwrap();
        for i in 0..5u8 {
            wal.append(i, &[i; 40]).unwrap();
        }
        wal.close().unwrap();
        let seg = |lsn| storage.file_bytes(&dir.join(format::segment_file_name(lsn))).unwrap();
        let (a, b) = (seg(1), seg(4));
        let mut input = vec![ctl | 4];
        input.extend_from_slice(&(a.len() as u16).to_le_bytes());
        input.extend_from_slice(&a);
        input.extend_from_slice(&b);
        input
    }

    #[test]
    fn harnesses_accept_trivial_inputs() {
        for input in [&b""[..], b"\0", b"\xff\xff\xff", &[0u8; 300], &[0xffu8; 300]] {
            record(input);
            segment_header(input);
            footer(input);
            scan(input);
            open(input);
            clean_close(input);
        }
    }

    #[test]
    fn open_harness_runs_a_real_log_in_every_mode() {
        for ctl in 0..=255u8 {
            open(&two_segment_log(ctl));
        }
    }

    #[test]
    fn repair_keeps_a_real_log_valid() {
        // Repairing an intact log changes nothing but what the harness must make consistent.
        let input = two_segment_log(8);
        let split = usize::from(u16::from_le_bytes([input[1], input[2]]));
        let mut a = input[3..3 + split].to_vec();
        let original = a.clone();
        let next = repair_segment(&mut a, None);
        assert_eq!(a, original);
        assert_eq!(next.map(|(lsn, _)| lsn), Some(3));
    }

    #[test]
    fn scan_repair_builds_valid_chains() {
        // Three records of 4 payload bytes; the control byte asks for repair and renumbering.
        let mut input = vec![9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x30 | 3, 255];
        for _ in 0..3 {
            let mut rec = vec![0u8; RECORD_HEADER_LEN + 4];
            rec[4..6].copy_from_slice(&RECORD_MARKER.to_le_bytes());
            rec[7] = format::FLAG_BATCH_END;
            rec[8] = 4;
            input.extend_from_slice(&rec);
        }
        scan(&input);
        let header = SegmentHeader {
            version: format::FORMAT_VERSION,
            log_id: 7,
            first_lsn: 9,
            prev_last_lsn: 8,
            prev_crc: 0,
            created_at_us: 1,
        };
        let mut bytes = header.encode().to_vec();
        bytes.extend_from_slice(&input[14..]);
        let (last, _) = repair_records(&mut bytes, 9, 0, 64, true, None);
        assert_eq!(last, 11);
        let r = inspect::scan_segment(&bytes, &header, RecoveryMode::TolerateTornTail, 64, 64, true);
        assert_eq!((r.record_count, r.last_lsn, r.outcome), (3, 11, ScanOutcome::Clean));
    }
}
