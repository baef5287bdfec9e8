//! The clean-close record (`docs/FORMAT.md`, "Clean-close record"): a clean `close` leaves one in
//! `LOCK`, the next `open` trusts it instead of scanning the active segment, and it is cleared
//! durably before anything is written. These tests check that a record is trusted only when it
//! describes the segment exactly, that a stale, torn or damaged one never is, and that the
//! clearing comes before every write, also across crashes and power loss.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use walden_wal::format::{self, CleanClose, FLAG_BATCH_END, RecordHeader, segment_file_name};
use walden_wal::testing::fault::FaultStorage;
use walden_wal::{Lsn, Record, RecoveryMode, RecoveryReport, Storage, StorageFile, SyncMode, Wal, WalConfig, WalError};

mod common;
use common::{DIR, append_singles, lsn_payload, open, open_ok, try_read_all};

fn lock_path() -> PathBuf {
    Path::new(DIR).join("LOCK")
}

fn config(sync_mode: SyncMode) -> WalConfig {
    WalConfig {
        target_segment_size_bytes: 4096,
        max_records_per_segment: 12,
        index_interval_bytes: 128,
        sync_mode,
        write_buffer_bytes: 1024,
        ..WalConfig::default()
    }
}

fn read_all(wal: &Wal) -> Result<Vec<Record>, WalError> {
    try_read_all(wal)
}

fn payload(lsn: Lsn) -> Vec<u8> {
    lsn_payload(lsn, 20, 13, 90)
}

/// Appends `records` single-record batches after the log's end; returns the last LSN.
fn append_records(wal: &Wal, records: u64) -> Lsn {
    append_singles(wal, records, payload)
}

/// Every file with its bytes.
#[derive(Clone)]
struct Snapshot {
    files: BTreeMap<PathBuf, Vec<u8>>,
}

impl Snapshot {
    fn take(fs: &FaultStorage) -> Snapshot {
        Snapshot {
            files: fs.list_all_files().into_iter().map(|p| (p.clone(), fs.file_bytes(&p).expect("file"))).collect(),
        }
    }

    fn restore(&self) -> FaultStorage {
        let fs = FaultStorage::new();
        for (path, bytes) in &self.files {
            fs.set_file_bytes(path, bytes.clone());
        }
        fs
    }

    fn lock(&self) -> &[u8] {
        &self.files[&lock_path()]
    }

    fn active(&self) -> (&PathBuf, &Vec<u8>) {
        self.files.iter().rfind(|(p, _)| p.extension().is_some_and(|e| e == "wal")).expect("a segment")
    }

    fn without_lock(&self) -> Snapshot {
        let mut s = self.clone();
        s.files.insert(lock_path(), Vec::new());
        s
    }
}

/// A log of two sealed segments and an active one holding `active_records` records, closed
/// cleanly; with the records it holds.
fn closed_log(cfg: &WalConfig, active_records: u64) -> (Snapshot, Vec<Record>) {
    let fs = FaultStorage::new();
    let wal = open_ok(&fs, cfg);
    append_records(&wal, 2 * cfg.max_records_per_segment + active_records);
    if active_records == 0 {
        wal.seal_active_segment().expect("seal");
    }
    wal.flush().expect("flush");
    let segments = wal.segments();
    assert_eq!(segments.len(), 3, "{segments:?}");
    assert_eq!(segments[2].last_lsn + 1 - segments[2].first_lsn, active_records);
    let records = read_all(&wal).expect("read");
    wal.close().expect("close");
    (Snapshot::take(&fs), records)
}

/// What a scanning open of the same files gives (the clean-close record removed).
fn scanned(snapshot: &Snapshot, cfg: &WalConfig) -> (Result<Lsn, String>, Option<Vec<Record>>) {
    let fs = snapshot.without_lock().restore();
    match open(&fs, cfg) {
        Ok(wal) => {
            assert!(!wal.recovery_report().active_segment_trusted);
            (Ok(wal.recovery_report().last_lsn), read_all(&wal).ok())
        }
        Err(e) => (Err(format!("{e:?}")), None),
    }
}

/// Opens `fs` and checks the clean-close record was *not* trusted: the open gives what a
/// scanning open gives, and `LOCK` is empty afterwards, also after a power loss. Returns the
/// log, reopened after that power loss (it opens the same), and the first open's report.
fn assert_not_trusted(fs: &FaultStorage, cfg: &WalConfig, what: &str) -> Option<(Wal, RecoveryReport)> {
    let snapshot = Snapshot::take(fs);
    let expected = scanned(&snapshot, cfg);
    let wal = match open(fs, cfg) {
        Ok(wal) => wal,
        Err(e) => {
            assert_eq!(Err(format!("{e:?}")), expected.0, "{what}: differs from a scanning open");
            return None;
        }
    };
    let report = wal.recovery_report().clone();
    assert!(!report.active_segment_trusted, "{what}: trusted {report:?}");
    assert!(report.clean_close_rejected.is_some() || snapshot.lock().is_empty(), "{what}: {report:?}");
    let records = read_all(&wal).ok();
    assert_eq!((Ok(report.last_lsn), records), expected, "{what}: differs from a scanning open");
    // A record that was found and not trusted is gone, durably.
    assert_eq!(fs.file_bytes(&lock_path()).as_deref(), Some(&[][..]), "{what}: record left in LOCK");
    drop(wal);
    fs.power_loss();
    assert_eq!(fs.file_bytes(&lock_path()).as_deref(), Some(&[][..]), "{what}: clearing LOCK was not durable");
    let wal = open(fs, cfg).unwrap_or_else(|e| panic!("{what}: reopen after power loss: {e}"));
    let again = wal.recovery_report().clone();
    assert!(!again.active_segment_trusted && again.clean_close_rejected.is_none(), "{what}: {again:?}");
    assert_eq!(again.last_lsn, report.last_lsn, "{what}: the first open kept what was not durable");
    Some((wal, report))
}

/// A correctly encoded record that follows the segment's last one: what a writer that does not
/// know about the clean-close record would append.
fn next_record(segment: &[u8], record: &CleanClose, payload: &[u8]) -> Vec<u8> {
    let header = RecordHeader {
        crc: 0,
        kind: 1,
        flags: FLAG_BATCH_END,
        stored_len: payload.len() as u32,
        prev_crc: record.last_crc,
        lsn: record.last_lsn + 1,
        timestamp_us: 1,
    };
    assert_eq!(segment.len() as u64, record.data_end_offset);
    let mut out = Vec::new();
    format::encode_record(&mut out, header, payload, format::crc32(payload));
    out
}

fn decode_lock(snapshot: &Snapshot) -> CleanClose {
    CleanClose::decode(snapshot.lock()).expect("a clean close leaves a valid record")
}

// ---------------------------------------------------------------------------------------------
// Trusted

#[test]
fn a_clean_close_is_trusted_and_gives_what_a_scan_gives() {
    for mode in [SyncMode::Always, SyncMode::Group, SyncMode::None, SyncMode::IntervalMs(5)] {
        for recovery_mode in [RecoveryMode::TolerateTornTail, RecoveryMode::AbsoluteConsistency] {
            let cfg = WalConfig { recovery_mode, ..config(mode) };
            for active_records in [0, 1, 5] {
                let (snapshot, records) = closed_log(&cfg, active_records);
                let record = decode_lock(&snapshot);
                let (path, segment) = snapshot.active();
                assert_eq!(path, &Path::new(DIR).join(segment_file_name(record.segment_first_lsn)));
                assert_eq!(record.data_end_offset, segment.len() as u64);
                assert_eq!(record.record_count, active_records);
                let fs = snapshot.restore();
                let wal = open_ok(&fs, &cfg);
                let report = wal.recovery_report().clone();
                assert!(report.active_segment_trusted, "{mode:?} {recovery_mode:?}: {report:?}");
                assert_eq!(report.clean_close_rejected, None);
                assert_eq!(report.records_recovered, active_records);
                assert_eq!(
                    (report.last_lsn, report.torn_tail.clone(), report.bytes_truncated),
                    (records.len() as Lsn, None, 0)
                );
                // The same as a scan, record by record and from every starting LSN (the index).
                let scan_fs = snapshot.without_lock().restore();
                let scan = open_ok(&scan_fs, &cfg);
                let mut scan_report = scan.recovery_report().clone();
                scan_report.active_segment_trusted = true;
                assert_eq!(scan_report, report);
                assert_eq!(read_all(&wal).expect("read"), records);
                for from in 1..=records.len() as Lsn + 1 {
                    let a: Vec<Record> = wal.reader(from).expect("reader").collect::<Result<_, _>>().expect("read");
                    let b: Vec<Record> = scan.reader(from).expect("reader").collect::<Result<_, _>>().expect("read");
                    assert_eq!(a, b, "from {from}");
                }
                assert_eq!(wal.segments(), scan.segments());
                // Both go on identically: the appended records land at the same offsets, and
                // sealing writes the same footer.
                for w in [&wal, &scan] {
                    append_records(w, cfg.max_records_per_segment);
                }
                let (a, b) = (read_all(&wal).expect("read"), read_all(&scan).expect("read"));
                assert_eq!(
                    a.iter().map(|r| (r.lsn, &r.payload)).collect::<Vec<_>>(),
                    b.iter().map(|r| (r.lsn, &r.payload)).collect::<Vec<_>>()
                );
                let sizes =
                    |w: &Wal| w.segments().iter().map(|s| (s.first_lsn, s.size_bytes, s.sealed)).collect::<Vec<_>>();
                assert_eq!(sizes(&wal), sizes(&scan));
                wal.close().expect("close");
                scan.close().expect("close");
            }
        }
    }
}

#[test]
fn opening_and_closing_without_writes_keeps_the_record_and_syncs_nothing() {
    let cfg = config(SyncMode::Group);
    let (snapshot, records) = closed_log(&cfg, 4);
    let fs = snapshot.restore();
    for round in 0..3 {
        let syncs = fs.sync_count();
        let written = fs.bytes_written();
        let wal = open_ok(&fs, &cfg);
        assert!(wal.recovery_report().active_segment_trusted, "round {round}");
        assert_eq!(read_all(&wal).expect("read"), records);
        // The record stays while nothing is written.
        assert_eq!(fs.file_bytes(&lock_path()).as_deref(), Some(snapshot.lock()));
        wal.close().expect("close");
        assert_eq!((fs.sync_count(), fs.bytes_written()), (syncs, written), "round {round}: open + close wrote");
        assert_eq!(Snapshot::take(&fs).files, snapshot.files, "round {round}");
    }
    // Dropped without close, and after a crash or power loss: still valid, still trusted.
    drop(open_ok(&fs, &cfg));
    fs.power_loss();
    let wal = open_ok(&fs, &cfg);
    assert!(wal.recovery_report().active_segment_trusted);
    drop(wal);
}

#[test]
fn the_record_is_cleared_durably_before_the_first_write() {
    for mode in [SyncMode::Always, SyncMode::Group, SyncMode::None] {
        let cfg = config(mode);
        let (snapshot, records) = closed_log(&cfg, 3);
        let storage = Recording::new(snapshot.restore());
        let wal = Wal::open_with_storage(DIR, cfg.clone(), Arc::new(storage.clone())).expect("open");
        assert!(wal.recovery_report().active_segment_trusted);
        let opened = storage.take_log();
        assert!(!opened.iter().any(|op| op.is_write()), "{mode:?}: open wrote: {opened:?}");
        wal.append(1, b"first write").expect("append");
        wal.flush().expect("flush");
        let log = storage.take_log();
        let first_segment_write = log.iter().position(|op| op.is_segment_write()).expect("the append was written");
        let cleared = log.iter().position(|op| *op == Op::SetLen(lock_path(), 0)).expect("LOCK truncated");
        let synced = log.iter().position(|op| *op == Op::Sync(lock_path())).expect("LOCK synced");
        assert!(cleared < synced && synced < first_segment_write, "{mode:?}: {log:?}");
        // Power loss right after: the record is gone, the scan finds what was durable.
        let fs = storage.inner.clone();
        fs.power_loss();
        assert_eq!(fs.file_bytes(&lock_path()).as_deref(), Some(&[][..]));
        drop(wal);
        let wal = open_ok(&fs, &cfg);
        let report = wal.recovery_report().clone();
        assert!(!report.active_segment_trusted && report.clean_close_rejected.is_none(), "{report:?}");
        let got = read_all(&wal).expect("read");
        assert_eq!(got[..records.len()], records[..]);
        assert_eq!(got.len() - records.len(), usize::from(mode.is_durable()));
        wal.close().expect("close");
    }
}

#[test]
fn sealing_without_appending_also_clears_the_record_first() {
    let cfg = config(SyncMode::Group);
    let (snapshot, _) = closed_log(&cfg, 3);
    let storage = Recording::new(snapshot.restore());
    let wal = Wal::open_with_storage(DIR, cfg.clone(), Arc::new(storage.clone())).expect("open");
    storage.take_log();
    wal.seal_active_segment().expect("seal");
    let log = storage.take_log();
    let first_segment_write = log.iter().position(|op| op.is_segment_write()).expect("the footer was written");
    let synced = log.iter().position(|op| *op == Op::Sync(lock_path())).expect("LOCK synced");
    assert!(synced < first_segment_write, "{log:?}");
    wal.close().expect("close");
    // The new, empty active segment is described by the next record and trusted.
    let wal = open_ok(&storage.inner, &cfg);
    assert!(wal.recovery_report().active_segment_trusted);
    assert_eq!(wal.append(1, b"after").expect("append"), 2 * 12 + 3 + 1);
    wal.close().expect("close");
}

#[test]
fn a_failed_clear_fails_the_log_before_anything_is_written() {
    let cfg = config(SyncMode::Group);
    let (snapshot, records) = closed_log(&cfg, 3);
    let fs = snapshot.restore();
    let wal = open_ok(&fs, &cfg);
    assert!(wal.recovery_report().active_segment_trusted);
    let before = fs.file_bytes(snapshot.active().0);
    fs.fail_next_sync();
    let err = wal.append(1, b"x").expect_err("the clear's fdatasync fails");
    assert!(matches!(&err, WalError::Io { op: "fdatasync", .. }), "{err:?}");
    assert!(wal.is_failed());
    assert!(matches!(wal.append(1, b"y"), Err(WalError::Failed { .. })));
    assert_eq!(fs.file_bytes(snapshot.active().0), before, "the segment was written");
    drop(wal);
    // The record's clearing never became durable, and the segment is as it describes.
    fs.power_loss();
    let wal = open_ok(&fs, &cfg);
    assert!(wal.recovery_report().active_segment_trusted);
    assert_eq!(read_all(&wal).expect("read"), records);
    wal.close().expect("close");
}

// ---------------------------------------------------------------------------------------------
// Never trusted: stale, torn, damaged, foreign

#[test]
fn a_segment_appended_to_after_the_close_is_not_trusted() {
    let cfg = config(SyncMode::Group);
    let (snapshot, records) = closed_log(&cfg, 4);
    let record = decode_lock(&snapshot);
    let (path, segment) = snapshot.active();
    // A valid record appended behind the WAL's back (the record left in place).
    let fs = snapshot.restore();
    let mut grown = segment.clone();
    grown.extend_from_slice(&next_record(segment, &record, b"appended later"));
    fs.set_file_bytes(path, grown);
    let (wal, _) = assert_not_trusted(&fs, &cfg, "valid record appended").expect("opens");
    let got = read_all(&wal).expect("read");
    assert_eq!(got.len(), records.len() + 1, "the appended record is found by the scan");
    assert_eq!(&got.last().expect("record").payload[..], b"appended later");
    drop(wal);
    // Garbage appended: a torn tail, cut by the scan. Zeros appended after the last batch are
    // preallocated space (not a torn tail), but the record is not trusted either.
    for garbage in [&[0u8; 1][..], &[0u8; 40], &[0xAB; 7], b"WALDCLOS"] {
        let fs = snapshot.restore();
        let mut grown = segment.clone();
        grown.extend_from_slice(garbage);
        fs.set_file_bytes(path, grown);
        let (wal, report) = assert_not_trusted(&fs, &cfg, "garbage appended").expect("opens");
        assert_eq!(read_all(&wal).expect("read"), records);
        if format::is_zeroed(garbage) {
            assert_eq!(report.torn_tail, None, "{report:?}");
            assert_eq!((report.bytes_truncated, report.preallocated_bytes), (0, garbage.len() as u64));
        } else {
            assert_eq!(report.torn_tail.map(|t| t.bytes), Some(garbage.len() as u64));
        }
    }
}

#[test]
fn a_segment_shortened_after_the_close_is_not_trusted() {
    let cfg = config(SyncMode::Group);
    let (snapshot, records) = closed_log(&cfg, 4);
    let (path, segment) = snapshot.active();
    for cut in [1, 10, 31, 32, 33, 50] {
        let fs = snapshot.restore();
        fs.set_file_bytes(path, segment[..segment.len() - cut].to_vec());
        let (wal, _) = assert_not_trusted(&fs, &cfg, &format!("{cut} bytes cut")).expect("opens");
        assert_eq!(read_all(&wal).expect("read")[..], records[..records.len() - 1], "{cut} bytes cut");
    }
}

#[test]
fn a_segment_rewritten_with_another_last_record_is_not_trusted() {
    let cfg = config(SyncMode::Group);
    let (snapshot, records) = closed_log(&cfg, 4);
    let record = decode_lock(&snapshot);
    let (path, segment) = snapshot.active();
    // Same length, same LSN and chain, another payload (so another CRC): a valid segment the
    // record does not describe.
    let last = record.last_record_offset as usize;
    let old_payload = &segment[last + 32..];
    let new_payload: Vec<u8> = old_payload.iter().map(|b| b.wrapping_add(1)).collect();
    let mut head = RecordHeader::decode(&segment[last..], 1 << 20).expect("last record");
    head.crc = 0;
    let mut rewritten = segment[..last].to_vec();
    format::encode_record(&mut rewritten, head, &new_payload, format::crc32(&new_payload));
    assert_eq!(rewritten.len(), segment.len());
    let fs = snapshot.restore();
    fs.set_file_bytes(path, rewritten);
    let (wal, _) = assert_not_trusted(&fs, &cfg, "last record rewritten").expect("opens");
    let got = read_all(&wal).expect("read");
    assert_eq!(got[..records.len() - 1], records[..records.len() - 1]);
    assert_eq!(got.last().expect("record").payload[..], new_payload[..]);
}

#[test]
fn torn_and_bit_flipped_records_are_never_trusted() {
    let cfg = config(SyncMode::Group);
    let (snapshot, records) = closed_log(&cfg, 6);
    let lock = snapshot.lock().to_vec();
    assert!(lock.len() > format::CLEAN_CLOSE_FIXED_LEN);
    // Torn: every prefix, and the record followed by junk.
    for len in 0..lock.len() {
        let fs = snapshot.restore();
        fs.set_file_bytes(&lock_path(), lock[..len].to_vec());
        let (wal, _) = assert_not_trusted(&fs, &cfg, &format!("torn at {len}")).expect("opens");
        assert_eq!(read_all(&wal).expect("read"), records);
    }
    for junk in [&[0u8][..], b"x", &lock[..]] {
        let fs = snapshot.restore();
        let mut longer = lock.clone();
        longer.extend_from_slice(junk);
        fs.set_file_bytes(&lock_path(), longer);
        assert_not_trusted(&fs, &cfg, "junk after the record").expect("opens");
    }
    // Every single bit flipped (CRC-32 detects every one).
    for byte in 0..lock.len() {
        for bit in 0..8 {
            let mut flipped = lock.clone();
            flipped[byte] ^= 1 << bit;
            assert!(CleanClose::decode(&flipped).is_err(), "flip at byte {byte} bit {bit} decodes");
        }
    }
    for byte in (0..lock.len()).step_by(3) {
        let fs = snapshot.restore();
        fs.flip_bit(&lock_path(), byte as u64, (byte % 8) as u8);
        let (wal, _) = assert_not_trusted(&fs, &cfg, &format!("flip at {byte}")).expect("opens");
        assert_eq!(read_all(&wal).expect("read"), records);
    }
}

#[test]
fn a_record_of_another_log_or_segment_or_length_is_not_trusted() {
    let cfg = config(SyncMode::Group);
    let (snapshot, records) = closed_log(&cfg, 4);
    // Another log with the same layout.
    let (other, _) = closed_log(&cfg, 4);
    let fs = snapshot.restore();
    fs.set_file_bytes(&lock_path(), other.lock().to_vec());
    let (_, report) = assert_not_trusted(&fs, &cfg, "another log's record").expect("opens");
    assert!(report.clean_close_rejected.as_deref().is_some_and(|r| r.contains("of log")), "{report:?}");
    // An earlier record of this log: the segment grew, and a later one was sealed.
    let fs = snapshot.restore();
    let wal = open_ok(&fs, &cfg);
    append_records(&wal, 2);
    wal.close().expect("close");
    fs.set_file_bytes(&lock_path(), snapshot.lock().to_vec());
    let (wal, report) = assert_not_trusted(&fs, &cfg, "an earlier record, same segment").expect("opens");
    assert!(report.clean_close_rejected.as_deref().is_some_and(|r| r.contains("bytes")), "{report:?}");
    assert_eq!(read_all(&wal).expect("read").len(), records.len() + 2);
    append_records(&wal, 12);
    wal.close().expect("close");
    fs.set_file_bytes(&lock_path(), snapshot.lock().to_vec());
    let (wal, report) = assert_not_trusted(&fs, &cfg, "an earlier record, older segment").expect("opens");
    assert!(report.clean_close_rejected.as_deref().is_some_and(|r| r.contains("describes segment")), "{report:?}");
    assert_eq!(read_all(&wal).expect("read").len(), records.len() + 14);
}

#[test]
fn damage_inside_a_trusted_segment_is_found_when_read() {
    // Bit flips in the active segment of a cleanly closed log: open either refuses the record
    // (a flip in the header, the first or last record, or the last index entry's header) and
    // behaves exactly like a scanning open, or trusts it, and then reading returns the original
    // records up to the damaged one and a `Corruption` error there, never other data. (A
    // trusted segment is checked when read, as a sealed one is.)
    let cfg = config(SyncMode::Group);
    let (snapshot, records) = closed_log(&cfg, 8);
    let record = decode_lock(&snapshot);
    let (path, segment) = snapshot.active();
    let first_active = record.segment_first_lsn;
    let mut outcomes = BTreeMap::new();
    for byte in 0..segment.len() as u64 {
        let fs = snapshot.restore();
        fs.flip_bit(path, byte, (byte * 3 % 8) as u8);
        let expected = scanned(&Snapshot::take(&fs), &cfg);
        match open(&fs, &cfg) {
            Err(e) => {
                assert_eq!(Err(format!("{e:?}")), expected.0, "flip at {byte}");
                *outcomes.entry("open refused").or_insert(0) += 1;
            }
            Ok(wal) if !wal.recovery_report().active_segment_trusted => {
                assert_eq!((Ok(wal.recovery_report().last_lsn), read_all(&wal).ok()), expected, "flip at {byte}");
                *outcomes.entry("record refused, scanned").or_insert(0) += 1;
            }
            Ok(wal) => {
                assert!((64..record.last_record_offset).contains(&byte), "flip at {byte} trusted");
                let mut reader = wal.reader(first_active).expect("reader");
                let mut got = Vec::new();
                let err = loop {
                    match reader.next_record() {
                        Ok(Some(r)) => got.push(r),
                        Ok(None) => break None,
                        Err(e) => break Some(e),
                    }
                };
                let want = &records[first_active as usize - 1..];
                assert!(matches!(err, Some(WalError::Corruption { .. })), "flip at {byte}: read {err:?}");
                assert_eq!(got[..], want[..got.len()], "flip at {byte}: other data returned");
                *outcomes.entry("trusted, found when read").or_insert(0) += 1;
            }
        }
    }
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
}

#[test]
fn repair_modes_and_the_off_switch_always_scan() {
    let (snapshot, records) = closed_log(&config(SyncMode::Group), 4);
    for (cfg, why) in [
        (WalConfig { recovery_mode: RecoveryMode::PointInTime, ..config(SyncMode::Group) }, "PointInTime"),
        (WalConfig { recovery_mode: RecoveryMode::SkipCorrupted, ..config(SyncMode::Group) }, "SkipCorrupted"),
        (WalConfig { clean_close_record: false, ..config(SyncMode::Group) }, "clean_close_record"),
    ] {
        let fs = snapshot.restore();
        let (wal, report) = assert_not_trusted(&fs, &cfg, why).expect("opens");
        assert!(report.clean_close_rejected.as_deref().is_some_and(|r| r.contains(why)), "{why}: {report:?}");
        assert_eq!(read_all(&wal).expect("read"), records);
        wal.close().expect("close");
        // Only the off switch stops close from leaving one.
        let left = fs.file_bytes(&lock_path()).expect("LOCK");
        assert_eq!(left.is_empty(), !cfg.clean_close_record, "{why}");
    }
    // A repair mode finds damage the record would have hidden until read.
    let (path, segment) = snapshot.active();
    let fs = snapshot.restore();
    let mut damaged = segment.clone();
    damaged[64 + 40] ^= 0x10;
    fs.set_file_bytes(path, damaged);
    let cfg = WalConfig { recovery_mode: RecoveryMode::PointInTime, ..config(SyncMode::Group) };
    let wal = open_ok(&fs, &cfg);
    let report = wal.recovery_report().clone();
    assert!(!report.active_segment_trusted && report.torn_tail.is_some(), "{report:?}");
    assert_eq!(report.last_lsn, decode_lock(&snapshot).segment_first_lsn - 1);
    wal.close().expect("close");
}

#[test]
fn crashes_and_power_loss_during_close() {
    // A crash after every possible number of written bytes during close (the data flush and
    // the record), then a crash, a power loss or a power loss keeping a random prefix: every
    // appended record (the close flushes them) survives or is absent as the sync mode allows,
    // and a record is trusted only if it survived whole.
    for mode in [SyncMode::Group, SyncMode::None] {
        let cfg = config(mode);
        let base = {
            let fs = FaultStorage::new();
            let wal = open_ok(&fs, &cfg);
            append_records(&wal, 26);
            wal.close().expect("close");
            Snapshot::take(&fs)
        };
        let records = read_all(&open_ok(&base.restore(), &cfg)).expect("read");
        let lock_len = base.lock().len() as u64;
        for extra in 0..3u64 {
            for n in 0..lock_len + 120 {
                for restart in 0..3u64 {
                    let fs = base.restore();
                    let wal = open_ok(&fs, &cfg);
                    let appended = append_records(&wal, extra);
                    fs.crash_after_bytes(n);
                    let closed = wal.close();
                    assert_eq!(closed.is_err(), fs.is_crashed(), "{mode:?} n {n}: {closed:?}");
                    match restart {
                        0 => fs.crash(),
                        1 => fs.power_loss(),
                        _ => fs.power_loss_keep_random_prefix(n * 7 + extra),
                    }
                    let wal = open(&fs, &cfg).unwrap_or_else(|e| panic!("{mode:?} n {n} restart {restart}: {e}"));
                    let report = wal.recovery_report().clone();
                    let got = read_all(&wal).expect("read");
                    assert_eq!(got[..records.len()], records[..], "{mode:?} n {n} restart {restart}");
                    if closed.is_ok() || mode.is_durable() {
                        assert_eq!(report.last_lsn, appended, "{mode:?} n {n} restart {restart}: {report:?}");
                    }
                    if report.active_segment_trusted {
                        let lock = fs.file_bytes(&lock_path()).expect("LOCK");
                        let record = CleanClose::decode(&lock).expect("a trusted record decodes");
                        assert_eq!(record.last_lsn, report.last_lsn);
                    }
                    // The reopened log goes on.
                    assert_eq!(wal.append(2, b"after").expect("append"), report.last_lsn + 1);
                    wal.close().expect("close");
                }
            }
        }
    }
}

#[test]
fn real_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    let cfg = WalConfig { target_segment_size_bytes: 8192, ..config(SyncMode::Group) };
    let wal = Wal::open(&dir, cfg.clone()).expect("open");
    let last = append_records(&wal, 30);
    wal.close().expect("close");
    assert!(std::fs::metadata(dir.join("LOCK")).expect("LOCK").len() > 0);
    let wal = Wal::open(&dir, cfg.clone()).expect("reopen");
    let report = wal.recovery_report().clone();
    assert!(report.active_segment_trusted, "{report:?}");
    assert_eq!(report.last_lsn, last);
    assert_eq!(read_all(&wal).expect("read").len() as Lsn, last);
    // The first write clears it; a drop without close leaves none.
    append_records(&wal, 1);
    assert_eq!(std::fs::metadata(dir.join("LOCK")).expect("LOCK").len(), 0);
    drop(wal);
    let wal = Wal::open(&dir, cfg.clone()).expect("reopen");
    let report = wal.recovery_report().clone();
    assert!(!report.active_segment_trusted && report.clean_close_rejected.is_none(), "{report:?}");
    assert_eq!(report.last_lsn, last + 1);
    wal.close().expect("close");
}

// ---------------------------------------------------------------------------------------------
// A storage that records the order of writes, truncations and syncs.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Write(PathBuf),
    SetLen(PathBuf, u64),
    Sync(PathBuf),
    Create(PathBuf),
    Rename(PathBuf),
    Remove(PathBuf),
}

impl Op {
    fn is_write(&self) -> bool {
        !matches!(self, Op::Sync(_))
    }

    fn is_segment_write(&self) -> bool {
        let segment = |p: &Path| p.to_string_lossy().contains(".wal");
        match self {
            Op::Write(p) | Op::SetLen(p, _) | Op::Create(p) | Op::Rename(p) | Op::Remove(p) => segment(p),
            Op::Sync(_) => false,
        }
    }
}

#[derive(Clone, Debug)]
struct Recording {
    inner: FaultStorage,
    log: Arc<Mutex<Vec<Op>>>,
}

impl Recording {
    fn new(inner: FaultStorage) -> Recording {
        Recording { inner, log: Arc::default() }
    }

    fn take_log(&self) -> Vec<Op> {
        std::mem::take(&mut *self.log.lock())
    }

    fn wrap(&self, path: &Path, file: Box<dyn StorageFile>) -> Box<dyn StorageFile> {
        Box::new(RecordingFile { path: path.to_path_buf(), file, log: self.log.clone() })
    }
}

#[derive(Debug)]
struct RecordingFile {
    path: PathBuf,
    file: Box<dyn StorageFile>,
    log: Arc<Mutex<Vec<Op>>>,
}

impl StorageFile for RecordingFile {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.log.lock().push(Op::Write(self.path.clone()));
        self.file.write_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        let r = self.file.sync_data();
        if r.is_ok() {
            self.log.lock().push(Op::Sync(self.path.clone()));
        }
        r
    }
    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.log.lock().push(Op::SetLen(self.path.clone(), len_bytes));
        self.file.set_len(len_bytes)
    }
}

impl Storage for Recording {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.log.lock().push(Op::Create(path.to_path_buf()));
        let file = self.inner.create_new(path)?;
        Ok(self.wrap(path, file))
    }
    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn StorageFile>> {
        let file = self.inner.open(path, writable)?;
        Ok(self.wrap(path, file))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.log.lock().push(Op::Rename(to.to_path_buf()));
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.log.lock().push(Op::Remove(path.to_path_buf()));
        self.inner.remove_file(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.sync_dir(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }
    fn map_readonly(&self, path: &Path) -> io::Result<Bytes> {
        self.inner.map_readonly(path)
    }
    fn lock_exclusive(&self, path: &Path) -> io::Result<Box<dyn std::any::Any + Send + Sync>> {
        self.inner.lock_exclusive(path)
    }
}
