//! Recovery: torn tails versus corruption under each `RecoveryMode`, with hand-made damage on
//! `FaultStorage` (and on real files for the torn tail), plus the typed errors of `open`, of
//! readers after retention, and of appends that are too large.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use walden_wal::format::{Footer, Hole, TRAILER_LEN, segment_file_name};
use walden_wal::testing::fault::FaultStorage;
use walden_wal::{Lsn, Record, RecoveryMode, SkippedRange, SyncMode, Wal, WalConfig, WalError};

mod common;
use common::{DIR, open, open_ok, read_from};

const SEGMENT_HEADER_BYTES: u64 = 64;
const RECORD_HEADER_BYTES: u64 = 32;

fn config(recovery_mode: RecoveryMode) -> WalConfig {
    // These tests damage logs that were closed cleanly and test the scan of the active segment,
    // so no clean-close record stands in for it (`tests/clean_close.rs` tests that path).
    WalConfig { recovery_mode, sync_mode: SyncMode::Group, clean_close_record: false, ..WalConfig::default() }
}

fn lsns(records: &[Record]) -> Vec<Lsn> {
    records.iter().map(|r| r.lsn).collect()
}

/// Every file but the lock file, with its bytes.
fn files(fs: &FaultStorage) -> BTreeMap<PathBuf, Vec<u8>> {
    fs.list_all_files()
        .into_iter()
        .filter(|p| !p.ends_with("LOCK"))
        .map(|p| {
            let bytes = fs.file_bytes(&p).expect("listed file");
            (p, bytes)
        })
        .collect()
}

fn payload(lsn: Lsn, len: usize) -> Vec<u8> {
    let mut p = format!("record {lsn};").into_bytes();
    p.resize(len, b'a' + (lsn % 26) as u8);
    p
}

/// Where one record lies in the (single) segment of a log written by [`write_log`].
#[derive(Debug, Clone, Copy)]
struct Placed {
    offset: u64,
    end: u64,
}

/// Writes batches of the given sizes (records of `payload_len` bytes) into a fresh log with one
/// big segment, closes it, and returns the storage, the segment path and the record layout.
fn write_log(batch_sizes: &[usize], payload_len: usize) -> (FaultStorage, PathBuf, Vec<Placed>) {
    let fs = FaultStorage::new();
    let wal = open_ok(&fs, &config(RecoveryMode::TolerateTornTail));
    let mut layout = Vec::new();
    let mut offset = SEGMENT_HEADER_BYTES;
    let mut lsn = 1;
    for &n in batch_sizes {
        let payloads: Vec<Vec<u8>> = (0..n as Lsn).map(|i| payload(lsn + i, payload_len)).collect();
        let range = wal.append_batch(payloads.iter().map(|p| (1u8, p.as_slice()))).expect("append");
        assert_eq!(*range.start(), lsn);
        for _ in 0..n {
            let end = offset + RECORD_HEADER_BYTES + payload_len as u64;
            layout.push(Placed { offset, end });
            offset = end;
        }
        lsn += n as Lsn;
    }
    let segments = wal.segments();
    assert_eq!(segments.len(), 1);
    let path = segments[0].path.clone();
    wal.close().expect("close");
    assert_eq!(fs.file_bytes(&path).expect("segment").len() as u64, offset, "layout matches the file");
    (fs, path, layout)
}

fn check_records(records: &[Record], expected_lsns: &[Lsn], payload_len: usize) {
    assert_eq!(lsns(records), expected_lsns);
    for r in records {
        assert_eq!(&r.payload[..], &payload(r.lsn, payload_len)[..], "payload of LSN {}", r.lsn);
    }
}

// ---------------------------------------------------------------------------------------------
// Torn tails

/// Ten single records and a batch of four; the file is cut at several points inside the last
/// batch (mid-payload, mid-header, on a record boundary) and inside the last single record.
#[test]
fn truncated_tail_is_a_torn_tail() {
    const LEN: usize = 50;
    let (fs, path, layout) = write_log(&[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 4], LEN);
    let original = files(&fs);
    let full = original[&path].clone();
    let batch = &layout[10..14];
    // (cut offset, first LSN lost, complete records of the cut batch that get dropped)
    let cuts = [
        (batch[3].offset + 40, 11, 3),  // mid-payload of the batch's last record
        (batch[3].offset + 10, 11, 3),  // mid-header of the batch's last record
        (batch[2].end, 11, 3),          // record boundary inside the batch
        (batch[0].offset + 1, 11, 0),   // one byte of the batch
        (layout[9].offset + 33, 10, 0), // mid-payload of the last single record
        (layout[9].end - 1, 10, 0),     // one byte short
    ];
    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::PointInTime, RecoveryMode::SkipCorrupted] {
        for &(cut, first_lost, dropped) in &cuts {
            let fs = FaultStorage::new();
            for (p, bytes) in &original {
                fs.set_file_bytes(p, bytes.clone());
            }
            fs.set_file_bytes(&path, full[..cut as usize].to_vec());
            let wal = open_ok(&fs, &config(mode));
            let report = wal.recovery_report().clone();
            let keep = layout[first_lost as usize - 1].offset;
            assert_eq!(report.bytes_truncated, cut - keep, "{mode:?} cut {cut}: {report:?}");
            let tail = report.torn_tail.clone().expect("torn tail reported");
            assert_eq!((tail.segment.as_path(), tail.offset, tail.bytes), (path.as_path(), keep, cut - keep));
            assert_eq!(tail.records_dropped, dropped, "{mode:?} cut {cut}: {tail:?}");
            assert!(!tail.reason.is_empty());
            assert_eq!(report.last_lsn, first_lost - 1);
            assert!(report.skipped_ranges.is_empty());
            let expected: Vec<Lsn> = (1..first_lost).collect();
            check_records(&read_from(&wal, 1), &expected, LEN);
            assert_eq!(fs.file_bytes(&path).expect("segment"), full[..keep as usize], "truncated on disk");
            // The log continues right after the kept records, and a second open finds it clean.
            assert_eq!(wal.append(2, b"next").expect("append"), first_lost);
            wal.close().expect("close");
            let wal = open_ok(&fs, &config(mode));
            assert_eq!((wal.recovery_report().bytes_truncated, wal.recovery_report().torn_tail.clone()), (0, None));
            assert_eq!(read_from(&wal, 1).len() as Lsn, first_lost);
            wal.close().expect("close");
        }
    }
    // Absolute consistency refuses every cut and changes nothing.
    for &(cut, first_lost, _) in &cuts {
        let fs = FaultStorage::new();
        for (p, bytes) in &original {
            fs.set_file_bytes(p, bytes.clone());
        }
        fs.set_file_bytes(&path, full[..cut as usize].to_vec());
        let before = files(&fs);
        match open(&fs, &config(RecoveryMode::AbsoluteConsistency)) {
            Err(WalError::IncompleteTail { segment, offset, bytes }) => {
                let keep = layout[first_lost as usize - 1].offset;
                assert_eq!((segment, offset, bytes), (path.clone(), keep, cut - keep));
            }
            other => panic!("absolute consistency with a cut at {cut}: {other:?}"),
        }
        assert_eq!(files(&fs), before, "absolute consistency changed the disk");
    }
    // An intact log opens under absolute consistency.
    let wal = open_ok(&fs, &config(RecoveryMode::AbsoluteConsistency));
    assert_eq!(wal.recovery_report().last_lsn, 14);
    wal.close().expect("close");
}

/// The same on the real file system.
#[test]
fn truncated_tail_on_real_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path(), config(RecoveryMode::TolerateTornTail)).expect("open");
    for i in 1..=5u64 {
        wal.append(1, &payload(i, 100)).expect("append");
    }
    let batch: Vec<Vec<u8>> = (6..=8).map(|i| payload(i, 100)).collect();
    wal.append_batch(batch.iter().map(|p| (1u8, p.as_slice()))).expect("append");
    let path = wal.segments()[0].path.clone();
    wal.close().expect("close");
    let len = std::fs::metadata(&path).expect("segment").len();
    assert_eq!(len, 64 + 8 * 132);
    let cut = len - 50;
    std::fs::OpenOptions::new().write(true).open(&path).expect("segment").set_len(cut).expect("truncate");

    let err = Wal::open(dir.path(), config(RecoveryMode::AbsoluteConsistency)).expect_err("refused");
    assert!(matches!(err, WalError::IncompleteTail { offset: 724, .. }), "{err:?}");
    assert_eq!(std::fs::metadata(&path).expect("segment").len(), cut, "nothing changed");

    let wal = Wal::open(dir.path(), config(RecoveryMode::TolerateTornTail)).expect("open");
    let tail = wal.recovery_report().torn_tail.clone().expect("torn tail");
    assert_eq!((tail.offset, tail.bytes, tail.records_dropped), (724, cut - 724, 2));
    assert_eq!(lsns(&read_from(&wal, 1)), [1, 2, 3, 4, 5]);
    assert_eq!(std::fs::metadata(&path).expect("segment").len(), 724);
    wal.close().expect("close");
}

/// Preallocated zeros after the last record are the end of the log, not corruption and not a
/// torn tail: every mode opens it cleanly, keeps every record, truncates nothing and reports the
/// zeros as `preallocated_bytes`; appends continue at the end of the data.
#[test]
fn zero_filled_tail_is_preallocated_space() {
    const LEN: usize = 30;
    let (fs, path, layout) = write_log(&[1, 2, 1, 3], LEN);
    let mut bytes = fs.file_bytes(&path).expect("segment");
    let end = bytes.len() as u64;
    assert_eq!(end, layout.last().expect("records").end);
    bytes.resize(bytes.len() + 4096, 0);
    fs.set_file_bytes(&path, bytes);
    let damaged = files(&fs);
    // A log that preallocates keeps the zeros (a log that does not drops them at open:
    // `tests/preallocate.rs`).
    let preallocating =
        |mode| WalConfig { preallocate_bytes: walden_wal::RECOMMENDED_PREALLOCATE_BYTES, ..config(mode) };

    for mode in [
        RecoveryMode::AbsoluteConsistency,
        RecoveryMode::TolerateTornTail,
        RecoveryMode::PointInTime,
        RecoveryMode::SkipCorrupted,
    ] {
        let wal = open_ok(&fs, &preallocating(mode));
        let report = wal.recovery_report().clone();
        assert_eq!((report.bytes_truncated, report.torn_tail.clone()), (0, None), "{mode:?}: {report:?}");
        assert_eq!(report.preallocated_bytes, 4096, "{mode:?}: {report:?}");
        assert!(report.skipped_ranges.is_empty(), "{mode:?}: {report:?}");
        check_records(&read_from(&wal, 1), &[1, 2, 3, 4, 5, 6, 7], LEN);
        drop(wal);
        assert_eq!(files(&fs), damaged, "{mode:?}: open changed the segment");
    }

    // Appends go where the data ends, over the zeros.
    let wal = open_ok(&fs, &preallocating(RecoveryMode::AbsoluteConsistency));
    assert_eq!(wal.append(1, &payload(8, LEN)).expect("append"), 8);
    assert_eq!(&fs.file_bytes(&path).expect("segment")[end as usize + 16..end as usize + 24], &8u64.to_le_bytes());
    wal.close().expect("close");
    let wal = open_ok(&fs, &preallocating(RecoveryMode::AbsoluteConsistency));
    check_records(&read_from(&wal, 1), &[1, 2, 3, 4, 5, 6, 7, 8], LEN);
    wal.close().expect("close");
}

/// A batch torn off in the middle and followed by zeros (an append into preallocated space that
/// did not finish) is still a torn tail: the incomplete batch's records are dropped.
#[test]
fn torn_batch_followed_by_zeros_is_a_torn_tail() {
    const LEN: usize = 30;
    let (fs, path, layout) = write_log(&[1, 2, 3], LEN);
    let full = fs.file_bytes(&path).expect("segment");
    let batch = &layout[3..6];
    // (where the zeros start, records of the last batch that are complete before it)
    for (cut, complete) in
        [(batch[2].offset + 40, 2), (batch[1].end, 2), (batch[0].offset + 5, 0), (batch[1].offset, 1)]
    {
        let mut bytes = full.clone();
        bytes[cut as usize..].fill(0);
        bytes.resize(bytes.len() + 8192, 0);
        let file_len = bytes.len() as u64;
        fs.set_file_bytes(&path, bytes);

        match open(&fs, &config(RecoveryMode::AbsoluteConsistency)) {
            Err(WalError::IncompleteTail { offset, bytes, .. }) => {
                assert_eq!((offset, bytes), (batch[0].offset, file_len - batch[0].offset), "cut at {cut}");
            }
            other => panic!("absolute consistency with a torn batch: {other:?}"),
        }
        let wal = open_ok(&fs, &config(RecoveryMode::TolerateTornTail));
        let report = wal.recovery_report().clone();
        let tail = report.torn_tail.clone().expect("torn tail");
        assert_eq!(
            (tail.offset, tail.bytes, tail.records_dropped),
            (batch[0].offset, file_len - batch[0].offset, complete)
        );
        assert_eq!((report.bytes_truncated, report.preallocated_bytes), (tail.bytes, 0));
        check_records(&read_from(&wal, 1), &[1, 2, 3], LEN);
        wal.close().expect("close");
        assert_eq!(fs.file_bytes(&path).expect("segment").len() as u64, batch[0].offset);
    }
}

/// Zeros after the last batch and then non-zero bytes are not preallocated space: a valid
/// record after them is corruption (as without preallocation), garbage is a torn tail.
#[test]
fn bytes_after_the_zeros_are_damage_as_before() {
    const LEN: usize = 30;
    let (fs, path, layout) = write_log(&[1, 1, 1, 1], LEN);
    let full = fs.file_bytes(&path).expect("segment");
    let last = layout[3];
    let record4 = full[last.offset as usize..last.end as usize].to_vec();

    // Record 4 moved behind 100 zeros: valid data after the damage.
    let mut moved = full[..last.offset as usize].to_vec();
    moved.resize(moved.len() + 100, 0);
    moved.extend_from_slice(&record4);
    moved.resize(moved.len() + 1000, 0);
    fs.set_file_bytes(&path, moved.clone());
    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::AbsoluteConsistency] {
        match open(&fs, &config(mode)) {
            Err(WalError::Corruption { offset, lsn, .. }) => {
                assert_eq!((offset, lsn), (last.offset, Some(4)), "{mode:?}")
            }
            other => panic!("{mode:?}: zeros then a valid record: {other:?}"),
        }
    }
    let wal = open_ok(&fs, &config(RecoveryMode::PointInTime));
    let tail = wal.recovery_report().torn_tail.clone().expect("torn tail");
    assert_eq!((tail.offset, tail.records_dropped), (last.offset, 1));
    check_records(&read_from(&wal, 1), &[1, 2, 3], LEN);
    drop(wal);

    // Garbage (no valid record) after the zeros: a torn tail.
    let mut garbage = full.clone();
    garbage.resize(garbage.len() + 100, 0);
    garbage.extend_from_slice(&[0xAB; 7]);
    garbage.resize(garbage.len() + 100, 0);
    let file_len = garbage.len() as u64;
    fs.set_file_bytes(&path, garbage);
    match open(&fs, &config(RecoveryMode::AbsoluteConsistency)) {
        Err(WalError::IncompleteTail { offset, bytes, .. }) => {
            assert_eq!((offset, bytes), (last.end, file_len - last.end))
        }
        other => panic!("absolute consistency with garbage after zeros: {other:?}"),
    }
    let wal = open_ok(&fs, &config(RecoveryMode::TolerateTornTail));
    let report = wal.recovery_report().clone();
    let tail = report.torn_tail.clone().expect("torn tail");
    assert_eq!((tail.offset, tail.bytes, tail.records_dropped), (last.end, file_len - last.end, 0));
    assert_eq!(report.preallocated_bytes, 0);
    check_records(&read_from(&wal, 1), &[1, 2, 3, 4], LEN);
    wal.close().expect("close");
}

// ---------------------------------------------------------------------------------------------
// Damage followed by valid records

/// Damage to record 5 of 12 single-record batches: in its payload, or over its header.
fn damaged_middle(header: bool) -> (FaultStorage, PathBuf, Vec<Placed>) {
    let (fs, path, layout) = write_log(&[1; 12], 40);
    let mut bytes = fs.file_bytes(&path).expect("segment");
    let at = layout[4].offset as usize + if header { 2 } else { 40 };
    bytes[at..at + 12].fill(0xEE);
    fs.set_file_bytes(&path, bytes);
    (fs, path, layout)
}

#[test]
fn damage_followed_by_valid_records_is_corruption() {
    for header in [false, true] {
        for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::AbsoluteConsistency] {
            let (fs, path, layout) = damaged_middle(header);
            let before = files(&fs);
            match open(&fs, &config(mode)) {
                Err(WalError::Corruption { segment, offset, lsn, detail }) => {
                    assert_eq!((segment, offset, lsn), (path.clone(), layout[4].offset, Some(5)), "{detail}");
                    assert!(detail.contains(&layout[5].offset.to_string()), "names the next valid record: {detail}");
                }
                other => panic!("{mode:?}, header damaged: {header}: {other:?}"),
            }
            assert_eq!(files(&fs), before, "{mode:?} changed the disk");
        }
    }
}

#[test]
fn point_in_time_truncates_at_the_damage() {
    for header in [false, true] {
        let (fs, path, layout) = damaged_middle(header);
        let len = layout.last().expect("records").end;
        let wal = open_ok(&fs, &config(RecoveryMode::PointInTime));
        let report = wal.recovery_report().clone();
        assert_eq!(report.last_lsn, 4);
        assert_eq!(report.bytes_truncated, len - layout[4].offset);
        let tail = report.torn_tail.expect("truncation reported");
        assert_eq!((tail.segment, tail.offset), (path.clone(), layout[4].offset));
        check_records(&read_from(&wal, 1), &[1, 2, 3, 4], 40);
        assert_eq!(fs.file_bytes(&path).expect("segment").len() as u64, layout[4].offset);
        // LSN 5 is assigned again, to a new record.
        assert_eq!(wal.append(3, b"new five").expect("append"), 5);
        wal.close().expect("close");
        let wal = open_ok(&fs, &config(RecoveryMode::TolerateTornTail));
        assert_eq!(&read_from(&wal, 5)[0].payload[..], b"new five");
        wal.close().expect("close");
    }
}

/// `TornTail::records_dropped` is documented to count, in point-in-time mode, the complete,
/// valid records dropped because they followed the damage (here LSNs 6..=12).
#[test]
fn point_in_time_reports_the_valid_records_it_drops() {
    let (fs, _, _) = damaged_middle(false);
    let wal = open_ok(&fs, &config(RecoveryMode::PointInTime));
    let tail = wal.recovery_report().torn_tail.clone().expect("truncation reported");
    assert_eq!(tail.records_dropped, 7, "valid records 6..=12 were dropped: {tail:?}");
    wal.close().expect("close");
}

#[test]
fn skip_corrupted_keeps_the_records_after_the_hole() {
    for header in [false, true] {
        let (fs, path, layout) = damaged_middle(header);
        let wal = open_ok(&fs, &config(RecoveryMode::SkipCorrupted));
        let report = wal.recovery_report().clone();
        let hole = SkippedRange {
            segment: path.clone(),
            start_offset: layout[4].offset,
            end_offset: layout[5].offset,
            lost_lsns: None,
        };
        assert_eq!(report.skipped_ranges, [hole], "{report:?}");
        assert_eq!((report.last_lsn, report.bytes_truncated, report.torn_tail), (12, 0, None));
        let expected = [1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12];
        check_records(&read_from(&wal, 1), &expected, 40);
        // A reader positioned in the hole continues after it; seeking elsewhere still works.
        check_records(&read_from(&wal, 5), &expected[4..], 40);
        check_records(&read_from(&wal, 6), &expected[4..], 40);
        check_records(&read_from(&wal, 3), &expected[2..], 40);
        // The damaged segment was sealed with the hole in its footer; a new one is active.
        let segments = wal.segments();
        assert_eq!(segments.len(), 2);
        assert!(segments[0].sealed && segments[0].path == path && segments[0].last_lsn == 12);
        assert_eq!(segments[1].first_lsn, 13);
        let bytes = fs.file_bytes(&path).expect("segment");
        let trailer = &bytes[bytes.len() - TRAILER_LEN..];
        let (footer_offset, footer_len, _) = Footer::decode_trailer(trailer, bytes.len() as u64).expect("trailer");
        let start = footer_offset as usize;
        let footer = Footer::decode(&bytes[start..start + footer_len], footer_offset).expect("footer");
        let holes = [Hole { start_offset: layout[4].offset, end_offset: layout[5].offset }];
        assert_eq!((footer.holes.as_slice(), footer.record_count), (&holes[..], 11));
        assert_eq!(wal.append(1, b"thirteen").expect("append"), 13);
        wal.close().expect("close");

        // Reopening (in the default mode) trusts the footer: the hole stays a hole.
        let wal = open_ok(&fs, &config(RecoveryMode::TolerateTornTail));
        assert!(wal.recovery_report().skipped_ranges.is_empty());
        assert_eq!(lsns(&read_from(&wal, 1)), [1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13]);
        assert_eq!(lsns(&read_from(&wal, 5)), [6, 7, 8, 9, 10, 11, 12, 13]);
        wal.close().expect("close");
    }
}

// ---------------------------------------------------------------------------------------------
// Files that are not ours, missing and leftover files

/// A log of five sealed segments (five records each) plus the active one.
fn segmented_log() -> (FaultStorage, Vec<PathBuf>) {
    let fs = FaultStorage::new();
    let cfg = WalConfig { max_records_per_segment: 5, ..config(RecoveryMode::TolerateTornTail) };
    let wal = open_ok(&fs, &cfg);
    for i in 1..=27 {
        wal.append(1, &payload(i, 60)).expect("append");
    }
    let paths = wal.segments().iter().map(|s| s.path.clone()).collect::<Vec<_>>();
    assert_eq!(paths.len(), 6);
    wal.close().expect("close");
    (fs, paths)
}

#[test]
fn unknown_file_is_refused_and_nothing_is_deleted() {
    let (fs, paths) = segmented_log();
    let foreign = PathBuf::from("/wal/notes.txt");
    fs.set_file_bytes(&foreign, b"someone else's file".to_vec());
    let tmp = PathBuf::from(format!("/wal/{}.tmp", segment_file_name(28)));
    fs.set_file_bytes(&tmp, b"WALDNSEG partial".to_vec());
    let before = files(&fs);
    match open(&fs, &config(RecoveryMode::TolerateTornTail)) {
        Err(WalError::UnknownFile { path }) => assert_eq!(path, foreign),
        other => panic!("{other:?}"),
    }
    assert_eq!(files(&fs), before, "nothing deleted, not even the temp file");
    assert!(fs.file_bytes(&tmp).is_some() && fs.file_bytes(&paths[0]).is_some());
}

#[test]
fn foreign_segments_are_refused() {
    let tamper = |edit: fn(&mut Vec<u8>)| {
        let (fs, paths) = segmented_log();
        let mut bytes = fs.file_bytes(&paths[1]).expect("segment");
        edit(&mut bytes);
        fs.set_file_bytes(&paths[1], bytes);
        let before = files(&fs);
        let result = open(&fs, &config(RecoveryMode::TolerateTornTail));
        assert_eq!(files(&fs), before, "nothing changed");
        (result.map(|_| ()), paths[1].clone())
    };
    // Wrong magic, unsupported version, too short for a header.
    type Edit = fn(&mut Vec<u8>);
    let edits: [(&str, Edit); 3] =
        [("magic", |b| b[0..8].copy_from_slice(b"NOTAWAL!")), ("version", |b| b[8] = 9), ("short", |b| b.truncate(20))];
    for (what, edit) in edits {
        match tamper(edit) {
            (Err(WalError::ForeignSegment { path, detail }), expected) => {
                assert_eq!(path, expected, "{what}: {detail}");
            }
            (other, _) => panic!("{what}: {other:?}"),
        }
    }

    // A segment of another log (same name, same first LSN, another log id).
    let (fs, paths) = segmented_log();
    let (other_fs, other_paths) = segmented_log();
    assert_eq!(paths, other_paths);
    fs.set_file_bytes(&paths[2], other_fs.file_bytes(&other_paths[2]).expect("segment"));
    let before = files(&fs);
    match open(&fs, &config(RecoveryMode::TolerateTornTail)) {
        Err(WalError::ForeignSegment { path, detail }) => {
            assert_eq!(path, paths[2]);
            assert!(detail.contains("log"), "{detail}");
        }
        other => panic!("segment of another log: {other:?}"),
    }
    assert_eq!(files(&fs), before);

    // A segment whose name does not match its header.
    let (fs, paths) = segmented_log();
    let bytes = fs.file_bytes(&paths[1]).expect("segment");
    let renamed = PathBuf::from(format!("/wal/{}", segment_file_name(7)));
    fs.set_file_bytes(&renamed, bytes);
    match open(&fs, &config(RecoveryMode::TolerateTornTail)) {
        Err(WalError::ForeignSegment { path, .. }) => assert_eq!(path, renamed),
        other => panic!("misnamed segment: {other:?}"),
    }
}

#[test]
fn missing_middle_segment_is_corruption() {
    let (fs, paths) = segmented_log();
    // Remove the third segment by rebuilding the storage without it.
    let fs2 = FaultStorage::new();
    for (p, bytes) in files(&fs) {
        if p != paths[2] {
            fs2.set_file_bytes(&p, bytes);
        }
    }
    let before = files(&fs2);
    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::AbsoluteConsistency, RecoveryMode::PointInTime] {
        match open(&fs2, &config(mode)) {
            Err(WalError::Corruption { segment, offset, lsn, detail }) => {
                assert_eq!((segment, offset, lsn), (paths[3].clone(), 0, Some(16)), "{detail}");
            }
            other => panic!("{mode:?}: {other:?}"),
        }
        assert_eq!(files(&fs2), before, "{mode:?} changed the disk");
    }
}

/// Salvage mode accepts a missing segment (it relaxes the chain check between segments). Then it
/// must say so in the report and readers must get across the gap, as they do across holes inside
/// a segment; refusing to open is acceptable too.
#[test]
fn skip_corrupted_with_a_missing_segment_reports_it_and_reads_across() {
    let (fs, paths) = segmented_log();
    let salvage = FaultStorage::new();
    for (p, bytes) in files(&fs) {
        if p != paths[2] {
            salvage.set_file_bytes(&p, bytes);
        }
    }
    let wal = match open(&salvage, &config(RecoveryMode::SkipCorrupted)) {
        Err(WalError::Corruption { segment, .. }) => {
            assert_eq!(segment, paths[3]);
            return;
        }
        Err(e) => panic!("{e:?}"),
        Ok(wal) => wal,
    };
    let report = wal.recovery_report().clone();
    assert!(!report.skipped_ranges.is_empty(), "LSNs 11..=15 vanished without a word: {report:?}");
    let expected: Vec<Lsn> = (1..=10).chain(16..=27).collect();
    let read: Vec<Result<Lsn, String>> =
        wal.reader(1).expect("reader").map(|r| r.map(|r| r.lsn).map_err(|e| e.to_string())).collect();
    assert_eq!(read, expected.iter().map(|&l| Ok(l)).collect::<Vec<_>>());
}

#[test]
fn leftover_temp_segment_is_removed_and_reported() {
    let (fs, paths) = segmented_log();
    let tmp = PathBuf::from(format!("/wal/{}.tmp", segment_file_name(28)));
    fs.set_file_bytes(&tmp, b"WALDNSEG half a header".to_vec());
    let wal = open_ok(&fs, &config(RecoveryMode::TolerateTornTail));
    assert_eq!(wal.recovery_report().temp_files_removed, std::slice::from_ref(&tmp));
    assert!(fs.file_bytes(&tmp).is_none(), "temp file removed");
    assert_eq!(read_from(&wal, 1).len(), 27);
    assert_eq!(wal.segments().iter().map(|s| s.path.clone()).collect::<Vec<_>>(), paths);
    wal.close().expect("close");
    // The removal is durable.
    fs.power_loss();
    assert!(fs.file_bytes(&tmp).is_none(), "temp file came back after a power loss");
}

// ---------------------------------------------------------------------------------------------
// Typed errors of readers and appends

#[test]
fn lsn_not_found_after_retention() {
    let (fs, paths) = segmented_log();
    let wal = open_ok(&fs, &WalConfig { max_records_per_segment: 5, ..config(RecoveryMode::TolerateTornTail) });
    let mut early = wal.reader(3).expect("reader");
    assert_eq!(early.next_record().expect("read").map(|r| r.lsn), Some(3));
    let removed = wal.remove_segments_before(13).expect("remove");
    assert_eq!(removed.iter().map(|s| s.path.clone()).collect::<Vec<_>>(), paths[..2]);
    assert_eq!(wal.oldest_lsn(), 11);
    for requested in [0, 1, 10] {
        match wal.reader(requested) {
            Err(WalError::LsnNotFound { requested: r, oldest_available }) => {
                assert_eq!((r, oldest_available), (requested.max(1), 11));
            }
            other => panic!("reader({requested}): {other:?}"),
        }
    }
    match early.seek(2) {
        Err(WalError::LsnNotFound { requested: 2, oldest_available: 11 }) => {}
        other => panic!("seek(2): {other:?}"),
    }
    match wal.reader(29) {
        Err(WalError::LsnBeyondEnd { requested: 29, next_lsn: 28 }) => {}
        other => panic!("reader(29): {other:?}"),
    }
    assert_eq!(lsns(&read_from(&wal, 11)), (11..=27).collect::<Vec<_>>());
    assert!(read_from(&wal, 28).is_empty());
    wal.close().expect("close");
    // Retention survives a reopen.
    let wal = open_ok(&fs, &config(RecoveryMode::TolerateTornTail));
    assert_eq!(wal.oldest_lsn(), 11);
    assert!(matches!(wal.reader(5), Err(WalError::LsnNotFound { requested: 5, oldest_available: 11 })));
    wal.close().expect("close");
}

#[test]
fn oversized_records_and_batches_are_refused() {
    let fs = FaultStorage::new();
    let cfg = WalConfig { max_record_size_bytes: 1000, max_batch_size_bytes: 4096, ..config(RecoveryMode::default()) };
    let wal = open_ok(&fs, &cfg);
    assert_eq!(wal.append(1, &[7; 1000]).expect("exactly the maximum"), 1);
    match wal.append(1, &[7; 1001]) {
        Err(WalError::RecordTooLarge { size_bytes: 1001, max_bytes: 1000 }) => {}
        other => panic!("{other:?}"),
    }
    let mixed: [&[u8]; 3] = [b"small", &[1; 2000], b"small"];
    match wal.append_batch(mixed.iter().map(|p| (1u8, *p))) {
        Err(WalError::RecordTooLarge { size_bytes: 2000, max_bytes: 1000 }) => {}
        other => panic!("{other:?}"),
    }
    match wal.append_batch((0..5).map(|_| (1u8, [3u8; 1000]))) {
        Err(WalError::BatchTooLarge { size_bytes, records: 5, max_bytes: 4096 }) => {
            assert_eq!(size_bytes, 5 * 1032);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(wal.append_batch(std::iter::empty::<(u8, &[u8])>()), Err(WalError::EmptyBatch)));
    // None of these touched the log.
    assert!(!wal.is_failed());
    assert_eq!(wal.next_lsn(), 2);
    assert_eq!(wal.append(2, b"fine").expect("append"), 2);
    assert_eq!(lsns(&read_from(&wal, 1)), [1, 2]);
    wal.close().expect("close");
}

/// Reopening with a smaller `max_record_size_bytes` than a stored record must not destroy that
/// record: refusing to open, or reading it, are both acceptable; truncating it as a "torn tail"
/// is data loss.
#[test]
fn smaller_max_record_size_on_reopen_does_not_truncate_valid_records() {
    let fs = FaultStorage::new();
    let wal = open_ok(&fs, &config(RecoveryMode::TolerateTornTail));
    wal.append(1, &[5; 100]).expect("append");
    wal.append(1, &[6; 2000]).expect("append");
    let path = wal.segments()[0].path.clone();
    wal.close().expect("close");
    let before = files(&fs);
    let smaller = WalConfig { max_record_size_bytes: 1000, ..config(RecoveryMode::TolerateTornTail) };
    match open(&fs, &smaller) {
        Ok(wal) => {
            let report = wal.recovery_report().clone();
            assert_eq!(report.bytes_truncated, 0, "a valid, acknowledged record was cut as a torn tail: {report:?}");
            assert_eq!(wal.next_lsn(), 3);
        }
        Err(e) => assert_eq!(files(&fs), before, "open failed ({e}) but changed the disk"),
    }
    assert_eq!(fs.file_bytes(&path).expect("segment"), before[&path]);
}

// ---------------------------------------------------------------------------------------------
// Locking

#[test]
fn second_open_of_the_same_directory_is_locked() {
    let fs = FaultStorage::new();
    let cfg = config(RecoveryMode::TolerateTornTail);
    let wal = open_ok(&fs, &cfg);
    wal.append(1, b"x").expect("append");
    match open(&fs, &cfg) {
        Err(WalError::Locked { path }) => assert_eq!(path, Path::new(DIR).join("LOCK")),
        other => panic!("{other:?}"),
    }
    wal.close().expect("close");
    let wal = open_ok(&fs, &cfg);
    drop(wal); // dropping releases the lock too
    open_ok(&fs, &cfg).close().expect("close");

    // Real files: an advisory lock held by the first handle.
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path(), cfg.clone()).expect("open");
    match Wal::open(dir.path(), cfg.clone()) {
        Err(WalError::Locked { path }) => assert_eq!(path, dir.path().join("LOCK")),
        other => panic!("{other:?}"),
    }
    wal.close().expect("close");
    let wal = Wal::open(dir.path(), cfg).expect("reopen after close");
    assert_eq!(wal.next_lsn(), 1);
    wal.close().expect("close");
}
