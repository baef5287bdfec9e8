//! Zero-filled preallocation of the active segment (`WalConfig::preallocate_bytes`,
//! `docs/FORMAT.md`, "Preallocated space"): the writer keeps fdatasynced zeros ahead of its
//! write offset so commit syncs overwrite allocated blocks instead of growing the file. These
//! tests check that recovery takes a zero tail after the last complete batch as the clean end of
//! the log in every mode (and a torn batch before zeros still as a torn tail), that a fault or
//! crash while zero-filling fails the log without a false acknowledgement and loses nothing
//! acknowledged, that sealed segments and clean closes leave no zeros behind (so footers and
//! clean-close records are trusted as before), and that commits really land inside the space.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use walden_wal::format;
use walden_wal::inspect::INTERRUPTED_WRITE;
use walden_wal::testing::fault::FaultStorage;
use walden_wal::{
    DEFAULT_PREALLOCATE_BYTES, Lsn, MAX_PREALLOCATE_BYTES, RECOMMENDED_PREALLOCATE_BYTES, RecoveryMode, RecoveryReport,
    SyncMode, Wal, WalConfig, WalError,
};

mod common;
use common::{DIR, EIO, append_singles, lsn_payload, open, open_ok, read_all};

const SEGMENT_BYTES: u64 = 64 << 10;
const WINDOW_BYTES: u64 = 8 << 10;
const MODES: [RecoveryMode; 4] = [
    RecoveryMode::AbsoluteConsistency,
    RecoveryMode::TolerateTornTail,
    RecoveryMode::PointInTime,
    RecoveryMode::SkipCorrupted,
];

fn config(sync_mode: SyncMode, recovery_mode: RecoveryMode) -> WalConfig {
    WalConfig {
        target_segment_size_bytes: SEGMENT_BYTES,
        preallocate_bytes: WINDOW_BYTES,
        index_interval_bytes: 1024,
        sync_mode,
        recovery_mode,
        ..preallocating()
    }
}

fn group() -> WalConfig {
    config(SyncMode::Group, RecoveryMode::TolerateTornTail)
}

/// The payload of LSN `lsn` (50..=249 bytes): records can be checked from their LSN alone.
fn payload(lsn: Lsn) -> Vec<u8> {
    lsn_payload(lsn, 50, 37, 200)
}

/// Appends `n` single-record batches after the log's end; returns the last LSN.
fn append_n(wal: &Wal, n: u64) -> Lsn {
    append_singles(wal, n, payload)
}

/// Appends one batch of `n` records; returns its LSNs.
fn append_batch(wal: &Wal, n: u64) -> Result<std::ops::RangeInclusive<Lsn>, WalError> {
    let first = wal.next_lsn();
    let payloads: Vec<Vec<u8>> = (first..first + n).map(payload).collect();
    wal.append_batch(payloads.iter().map(|p| (1u8, p.as_slice())))
}

/// The log holds exactly LSNs 1..=last, each with its payload.
fn check_all(wal: &Wal, last: Lsn) {
    let records = read_all(wal);
    let lsns: Vec<Lsn> = records.iter().map(|r| r.lsn).collect();
    assert_eq!(lsns, (1..=last).collect::<Vec<_>>());
    for r in &records {
        assert_eq!(&r.payload[..], &payload(r.lsn)[..], "payload of LSN {}", r.lsn);
    }
}

/// The active segment's path and where its data ends (what readers see; all of it is synced
/// in durable modes).
fn active(wal: &Wal) -> (PathBuf, u64) {
    let segments = wal.segments();
    let active = segments.last().expect("an active segment");
    (active.path.clone(), active.size_bytes)
}

fn file_len(fs: &FaultStorage, path: &Path) -> u64 {
    fs.file_bytes(path).expect("file").len() as u64
}

fn assert_clean(report: &RecoveryReport, what: &str) {
    assert_eq!(report.torn_tail, None, "{what}: {report:?}");
    assert_eq!(report.bytes_truncated, 0, "{what}: {report:?}");
    assert!(report.skipped_ranges.is_empty(), "{what}: {report:?}");
}

fn assert_failed(wal: &Wal) {
    assert!(wal.is_failed());
    assert!(matches!(wal.append(1, b"after the failure"), Err(WalError::Failed { .. })));
    assert!(matches!(wal.sync(), Err(WalError::Failed { .. })));
}

// ---------------------------------------------------------------------------------------------
// Recovery of a zero-filled tail

/// A crash leaves the active segment with preallocated zeros after the data: every recovery mode
/// opens it cleanly (no torn tail, nothing truncated, the zeros reported as preallocated), the
/// writer resumes at the end of the data, and later crashes and power losses are fine too.
#[test]
fn crash_with_zero_filled_tail_reopens_clean_in_every_mode() {
    let fs = FaultStorage::new();
    let wal = open_ok(&fs, &group());
    let last = append_n(&wal, 40);
    assert!(wal.stats().preallocations >= 2, "{:?}", wal.stats());
    let (path, data_end) = active(&wal);
    let bytes = fs.file_bytes(&path).expect("segment");
    assert!(bytes.len() as u64 > data_end + WINDOW_BYTES / 2, "{} bytes, data ends at {data_end}", bytes.len());
    assert!(format::is_zeroed(&bytes[data_end as usize..]), "the space after the data is not zero-filled");
    fs.crash();
    drop(wal);

    for mode in MODES {
        let wal = open_ok(&fs, &config(SyncMode::Group, mode));
        let report = wal.recovery_report().clone();
        assert_clean(&report, &format!("{mode:?}"));
        assert!(!report.active_segment_trusted);
        assert_eq!(report.preallocated_bytes, bytes.len() as u64 - data_end, "{mode:?}: {report:?}");
        assert_eq!(report.last_lsn, last);
        check_all(&wal, last);
        drop(wal);
        assert_eq!(fs.file_bytes(&path).expect("segment"), bytes, "{mode:?}: opening changed the segment");
    }

    // Appends go at the end of the data, over the zeros (the first new record's LSN is there).
    let wal = open_ok(&fs, &config(SyncMode::Group, RecoveryMode::AbsoluteConsistency));
    let last = append_n(&wal, 30);
    let now = fs.file_bytes(&path).expect("segment");
    assert_eq!(&now[data_end as usize + 16..data_end as usize + 24], &41u64.to_le_bytes());
    check_all(&wal, last);
    let (_, data_end) = active(&wal);
    assert!(format::is_zeroed(&now[data_end as usize..]));

    // A power loss: every acknowledged record was synced; what is left after it is zeros.
    fs.power_loss();
    drop(wal);
    let wal = open_ok(&fs, &config(SyncMode::Group, RecoveryMode::AbsoluteConsistency));
    assert_clean(wal.recovery_report(), "after a power loss");
    check_all(&wal, last);
    let last = append_n(&wal, 5);
    fs.crash();
    drop(wal);
    let wal = open_ok(&fs, &config(SyncMode::Group, RecoveryMode::AbsoluteConsistency));
    assert_clean(wal.recovery_report(), "after a second crash");
    check_all(&wal, last);
    wal.close().expect("close");
}

/// The same on real files: a log dropped without `close` keeps its zero tail on disk, and an
/// `AbsoluteConsistency` open accepts it; `close` then truncates the zeros.
#[test]
fn real_files_reopen_with_zero_tail_and_close_truncates_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = WalConfig { recovery_mode: RecoveryMode::AbsoluteConsistency, ..preallocating() };
    assert_eq!(cfg.effective_preallocate_bytes(), RECOMMENDED_PREALLOCATE_BYTES);
    let wal = Wal::open(dir.path(), cfg.clone()).expect("open");
    for lsn in 1..=100 {
        wal.append(1, &payload(lsn)).expect("append");
    }
    let (path, data_end) = active(&wal);
    drop(wal);
    let len = std::fs::metadata(&path).expect("segment").len();
    assert!(len >= data_end + RECOMMENDED_PREALLOCATE_BYTES / 2, "{len} bytes, data ends at {data_end}");

    let wal = Wal::open(dir.path(), cfg.clone()).expect("AbsoluteConsistency accepts the zero tail");
    assert_clean(wal.recovery_report(), "real files");
    assert_eq!(wal.recovery_report().preallocated_bytes, len - data_end);
    check_all(&wal, 100);
    wal.append(1, &payload(101)).expect("append");
    let (_, data_end) = active(&wal);
    wal.close().expect("close");
    assert_eq!(std::fs::metadata(&path).expect("segment").len(), data_end, "close leaves zeros behind");
    let wal = Wal::open(dir.path(), cfg).expect("open");
    assert!(wal.recovery_report().active_segment_trusted, "{:?}", wal.recovery_report());
    check_all(&wal, 101);
    wal.close().expect("close");
}

/// A batch torn while being written into preallocated space (the process dies after some of
/// its bytes): a torn tail, whose complete records are dropped; `AbsoluteConsistency` refuses.
/// Nothing of the batch written at all: the log ends cleanly at the zeros.
#[test]
fn torn_batch_over_preallocated_zeros_is_a_torn_tail() {
    let sizes: Vec<u64> = (0..3).map(|i| 32 + payload(21 + i).len() as u64).collect();
    let batch_bytes: u64 = sizes.iter().sum();
    let cuts = [0, 1, 31, 32, sizes[0] - 1, sizes[0], sizes[0] + 40, sizes[0] + sizes[1], batch_bytes - 1];
    for cut in cuts {
        let fs = FaultStorage::new();
        let wal = open_ok(&fs, &group());
        assert_eq!(append_n(&wal, 20), 20);
        let (path, data_end) = active(&wal);
        assert!(file_len(&fs, &path) >= data_end + batch_bytes + WINDOW_BYTES / 2, "the batch fits without a fill");
        fs.crash_after_bytes(cut);
        let err = append_batch(&wal, 3).expect_err("the write crashes");
        assert!(matches!(err, WalError::Io { op: "write", .. }), "{err:?}");
        assert_failed(&wal);
        fs.crash(); // the page cache (with the partial batch) survives
        drop(wal);
        let len = file_len(&fs, &path);

        let complete = sizes.iter().scan(0, |end, s| {
            *end += s;
            Some(*end)
        });
        let complete = complete.filter(|end| *end <= cut).count() as u64;
        if cut == 0 {
            let wal = open_ok(&fs, &config(SyncMode::Group, RecoveryMode::AbsoluteConsistency));
            assert_clean(wal.recovery_report(), "nothing of the batch was written");
            assert_eq!(wal.recovery_report().preallocated_bytes, len - data_end);
            check_all(&wal, 20);
            continue;
        }
        match open(&fs, &config(SyncMode::Group, RecoveryMode::AbsoluteConsistency)) {
            Err(WalError::IncompleteTail { offset, bytes, .. }) => {
                assert_eq!((offset, bytes), (data_end, len - data_end), "cut {cut}");
            }
            other => panic!("cut {cut}: AbsoluteConsistency opened a torn batch: {other:?}"),
        }
        let wal = open_ok(&fs, &group());
        let report = wal.recovery_report().clone();
        let tail = report.torn_tail.clone().expect("torn tail");
        assert_eq!((tail.offset, tail.bytes, tail.records_dropped), (data_end, len - data_end, complete), "cut {cut}");
        assert_eq!((report.bytes_truncated, report.preallocated_bytes), (len - data_end, 0));
        check_all(&wal, 20);
        assert_eq!(file_len(&fs, &path), data_end, "torn tail cut at the last complete batch");
        assert_eq!(append_n(&wal, 3), 23);
        check_all(&wal, 23);
        wal.close().expect("close");
    }
}

// ---------------------------------------------------------------------------------------------
// Faults while zero-filling

/// How many single-record appends (of [`payload`]) a fresh log takes until the `nth`
/// zero-fill happens, counting the append that triggers it.
fn appends_until_fill(cfg: &WalConfig, nth: u64) -> u64 {
    let fs = FaultStorage::new();
    let wal = open_ok(&fs, cfg);
    for n in 1..10_000 {
        wal.append(1, &payload(n)).expect("append");
        if wal.stats().preallocations == nth {
            return n;
        }
    }
    panic!("no fill number {nth}");
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    FailSync,
    FailWrite,
    CrashAfter(u64),
}

#[derive(Debug, Clone, Copy)]
enum Restart {
    Crash,
    PowerLoss,
    PowerLossKeepPrefix(u64),
}

/// A failing write or fdatasync of the zero-fill, or a crash in the middle of it: the append
/// that needed it gets a typed error and no LSN, the log fails (nothing acknowledged after),
/// and after any restart the log holds exactly the acknowledged records, ends cleanly (zeros
/// written before the crash are preallocated space) and takes appends again.
#[test]
fn faults_while_zero_filling_fail_the_log_and_lose_nothing() {
    let faults = [Fault::FailSync, Fault::FailWrite, Fault::CrashAfter(1), Fault::CrashAfter(3000)];
    let restarts =
        [Restart::Crash, Restart::PowerLoss, Restart::PowerLossKeepPrefix(7), Restart::PowerLossKeepPrefix(8)];
    for sync_mode in [SyncMode::Always, SyncMode::Group] {
        let cfg = config(sync_mode, RecoveryMode::AbsoluteConsistency);
        let trigger = appends_until_fill(&cfg, 2);
        assert!(trigger > 5, "the second fill comes after a few appends ({trigger})");
        for fault in faults {
            for restart in restarts {
                let what = format!("{sync_mode:?}, {fault:?}, {restart:?}");
                let fs = FaultStorage::new();
                let wal = open_ok(&fs, &cfg);
                let acked = append_n(&wal, trigger - 1);
                let syncs = fs.sync_count();
                match fault {
                    Fault::FailSync => fs.fail_next_sync(),
                    Fault::FailWrite => fs.fail_next_write(),
                    Fault::CrashAfter(n) => fs.crash_after_bytes(n),
                }
                let err = wal.append(1, &payload(trigger)).expect_err("the fill fails");
                match (fault, &err) {
                    (Fault::FailSync, WalError::Io { op: "preallocate (fdatasync)", source, .. }) => {
                        assert_eq!(source.raw_os_error(), Some(EIO), "{what}");
                    }
                    (Fault::FailWrite, WalError::Io { op: "preallocate (write zeros)", source, .. }) => {
                        assert_eq!(source.raw_os_error(), Some(EIO), "{what}");
                    }
                    (Fault::CrashAfter(_), WalError::Io { op: "preallocate (write zeros)", .. }) => {}
                    _ => panic!("{what}: unexpected error {err:?}"),
                }
                assert_eq!(fs.sync_count(), syncs, "{what}: a sync succeeded after the fault");
                assert_eq!(wal.durable_lsn(), acked, "{what}");
                assert_failed(&wal);
                match restart {
                    Restart::Crash => fs.crash(),
                    Restart::PowerLoss => fs.power_loss(),
                    Restart::PowerLossKeepPrefix(seed) => fs.power_loss_keep_random_prefix(seed),
                }
                drop(wal);

                // Strictest mode: the zeros (whole or partial fill) are no torn tail.
                let wal = open(&fs, &cfg).unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
                assert_clean(wal.recovery_report(), &what);
                check_all(&wal, acked);
                assert_eq!(append_n(&wal, 40), acked + 40, "{what}");
                check_all(&wal, acked + 40);
                wal.close().expect("close");
                let wal = open_ok(&fs, &cfg);
                assert!(wal.recovery_report().active_segment_trusted, "{what}: {:?}", wal.recovery_report());
                check_all(&wal, acked + 40);
                wal.close().expect("close");
            }
        }
    }
}

/// A failing fdatasync of the truncation at `close`: `close` reports it and leaves no
/// clean-close record, so the next open scans, and finds every record.
#[test]
fn failed_truncation_at_close_leaves_no_clean_close_record() {
    let fs = FaultStorage::new();
    let wal = open_ok(&fs, &group());
    let last = append_n(&wal, 30);
    fs.fail_next_sync();
    let err = wal.close().expect_err("the truncation's fdatasync fails");
    assert!(matches!(&err, WalError::Io { op: "fdatasync", .. }), "{err:?}");
    assert_eq!(fs.file_bytes(&Path::new(DIR).join("LOCK")).expect("LOCK"), Vec::<u8>::new());
    fs.power_loss();
    let wal = open_ok(&fs, &config(SyncMode::Group, RecoveryMode::AbsoluteConsistency));
    let report = wal.recovery_report().clone();
    assert_clean(&report, "after a failed close");
    assert!(!report.active_segment_trusted && report.clean_close_rejected.is_none(), "{report:?}");
    check_all(&wal, last);
    wal.close().expect("close");
}

// ---------------------------------------------------------------------------------------------
// Sealing and clean close

/// Sealed segments end in their footer, with no zeros after it (the footer goes at the data
/// end after a truncation), and open trusts them without a scan; only the active segment
/// carries preallocated zeros.
#[test]
fn sealed_segments_have_no_trailing_zeros_and_are_trusted() {
    let fs = FaultStorage::new();
    let cfg = WalConfig { target_segment_size_bytes: 16 << 10, ..group() };
    let wal = open_ok(&fs, &cfg);
    let mut last = append_n(&wal, 300);
    wal.seal_active_segment().expect("seal");
    last = append_n(&wal, 10).max(last);
    let segments = wal.segments();
    assert!(segments.len() >= 4, "{segments:#?}");
    let (active_info, sealed) = segments.split_last().expect("segments");
    for seg in sealed {
        let bytes = fs.file_bytes(&seg.path).expect("sealed segment");
        assert_eq!(bytes.len() as u64, seg.size_bytes, "{seg:?}");
        assert!(bytes.ends_with(b"WALDSEAL"), "{seg:?}");
    }
    let bytes = fs.file_bytes(&active_info.path).expect("active segment");
    assert!(bytes.len() as u64 > active_info.size_bytes, "the active segment is preallocated");
    assert!(format::is_zeroed(&bytes[active_info.size_bytes as usize..]));
    fs.crash();
    drop(wal);
    let wal = open_ok(&fs, &cfg);
    let report = wal.recovery_report().clone();
    assert_clean(&report, "crash");
    assert_eq!(report.sealed_segments_trusted, segments.len() - 1, "{report:?}");
    assert_eq!(report.preallocated_bytes, bytes.len() as u64 - active_info.size_bytes);
    check_all(&wal, last);
    wal.close().expect("close");
}

/// `close` truncates the zeros, so the active segment is exactly as long as the clean-close
/// record says and the next open takes the fast path; appends after it preallocate again.
#[test]
fn clean_close_truncates_zeros_and_reopens_on_the_fast_path() {
    let fs = FaultStorage::new();
    let mut wal = open_ok(&fs, &group());
    let mut last = append_n(&wal, 25);
    for round in 0..3 {
        let (path, data_end) = active(&wal);
        assert!(file_len(&fs, &path) > data_end, "round {round}: nothing preallocated");
        wal.close().expect("close");
        assert_eq!(file_len(&fs, &path), data_end, "round {round}: close left zeros behind");
        assert!(!fs.file_bytes(&Path::new(DIR).join("LOCK")).expect("LOCK").is_empty());
        if round == 1 {
            // A power loss right after the close changes nothing: the truncation was synced.
            fs.power_loss();
        }
        wal = open_ok(&fs, &group());
        let report = wal.recovery_report().clone();
        assert!(report.active_segment_trusted, "round {round}: {report:?}");
        assert_eq!((report.clean_close_rejected, report.preallocated_bytes), (None, 0));
        check_all(&wal, last);
        last = append_n(&wal, 25);
        assert!(wal.stats().preallocations >= 1, "round {round}: {:?}", wal.stats());
        check_all(&wal, last);
    }
    wal.close().expect("close");
    let wal = open_ok(&fs, &group());
    assert!(wal.recovery_report().active_segment_trusted);
    check_all(&wal, last);
    wal.close().expect("close");
}

// ---------------------------------------------------------------------------------------------
// Where commits land; modes and configuration

/// Commits land inside the preallocated space: the file's length changes only when a zero-fill
/// happens (about once per half window), never on an ordinary commit.
#[test]
fn commits_land_inside_preallocated_space() {
    for sync_mode in [SyncMode::Always, SyncMode::Group] {
        let fs = FaultStorage::new();
        let wal = open_ok(&fs, &config(sync_mode, RecoveryMode::TolerateTornTail));
        let mut grown = 0;
        for lsn in 1..=250 {
            let (path, _) = active(&wal);
            let (len, fills) = (file_len(&fs, &path), wal.stats().preallocations);
            wal.append(1, &payload(lsn)).expect("append");
            let (new_path, data_end) = active(&wal);
            if new_path != path {
                continue; // rotated
            }
            assert!(file_len(&fs, &path) >= data_end);
            if wal.stats().preallocations == fills {
                assert_eq!(file_len(&fs, &path), len, "{sync_mode:?}: commit {lsn} grew the file");
            } else {
                grown += 1;
            }
        }
        let stats = wal.stats();
        assert_eq!(stats.preallocations, grown);
        assert!(stats.data_syncs >= 250, "{stats:?}");
        // ~150 bytes per commit over half-window refills of 4 KiB: about one fill per 27 commits.
        assert!(stats.preallocations <= 250 * 300 / (WINDOW_BYTES / 2) + 2, "{stats:?}");
        assert!(stats.bytes_preallocated >= stats.bytes_written, "{stats:?}");
        check_all(&wal, 250);
        wal.close().expect("close");
    }
}

/// `None` and `IntervalMs` do not preallocate (their appends never wait for a sync), nor does a
/// durable mode with `preallocate_bytes: 0`: the file ends at the data.
#[test]
fn non_durable_modes_and_zero_window_do_not_preallocate() {
    let cases = [
        config(SyncMode::None, RecoveryMode::TolerateTornTail),
        config(SyncMode::IntervalMs(5), RecoveryMode::TolerateTornTail),
        WalConfig { preallocate_bytes: 0, ..group() },
        WalConfig { preallocate_bytes: 0, ..config(SyncMode::Always, RecoveryMode::TolerateTornTail) },
    ];
    for cfg in cases {
        assert_eq!(cfg.effective_preallocate_bytes(), 0, "{cfg:?}");
        let fs = FaultStorage::new();
        let wal = open_ok(&fs, &cfg);
        let last = append_n(&wal, 60);
        wal.sync().expect("sync");
        let (path, data_end) = active(&wal);
        assert_eq!(file_len(&fs, &path), data_end, "{:?}", cfg.sync_mode);
        assert_eq!(wal.stats().preallocations, 0);
        check_all(&wal, last);
        wal.close().expect("close");
    }
}

/// A log written with preallocation reopens in a mode that does not preallocate (the zeros are
/// kept and overwritten) and the other way round.
#[test]
fn switching_preallocation_between_opens() {
    let fs = FaultStorage::new();
    let wal = open_ok(&fs, &group());
    let mut last = append_n(&wal, 20);
    fs.crash();
    drop(wal);
    for cfg in [
        config(SyncMode::None, RecoveryMode::AbsoluteConsistency),
        WalConfig { preallocate_bytes: 0, ..config(SyncMode::Group, RecoveryMode::AbsoluteConsistency) },
        WalConfig { preallocate_bytes: 1024, ..config(SyncMode::Always, RecoveryMode::AbsoluteConsistency) },
        config(SyncMode::Group, RecoveryMode::AbsoluteConsistency),
    ] {
        let wal = open_ok(&fs, &cfg);
        assert_clean(wal.recovery_report(), &format!("{:?}", cfg.sync_mode));
        check_all(&wal, last);
        last = append_n(&wal, 20);
        wal.sync().expect("sync");
        check_all(&wal, last);
        fs.crash();
        drop(wal);
    }
    let wal = open_ok(&fs, &group());
    check_all(&wal, last);
    wal.close().expect("close");
}

#[test]
fn preallocate_bytes_is_validated_and_capped() {
    let too_big = WalConfig { preallocate_bytes: MAX_PREALLOCATE_BYTES + 1, ..preallocating() };
    assert!(matches!(too_big.validate(), Err(WalError::InvalidConfig(_))));
    let fs = FaultStorage::new();
    assert!(matches!(open(&fs, &too_big), Err(WalError::InvalidConfig(_))));
    let max = WalConfig { preallocate_bytes: MAX_PREALLOCATE_BYTES, ..preallocating() };
    assert!(max.validate().is_ok());
    // Never more than a segment.
    assert_eq!(max.effective_preallocate_bytes(), max.target_segment_size_bytes);
    let small = WalConfig { target_segment_size_bytes: 4096, ..preallocating() };
    assert_eq!(small.effective_preallocate_bytes(), 4096);
    assert_eq!(WalConfig::default().preallocate_bytes, DEFAULT_PREALLOCATE_BYTES);
    assert_eq!(DEFAULT_PREALLOCATE_BYTES, RECOMMENDED_PREALLOCATE_BYTES, "on by default");
    // The default sync mode is durable, so the default preallocates.
    assert!(WalConfig::default().sync_mode.is_durable());
    assert_eq!(WalConfig::default().effective_preallocate_bytes(), RECOMMENDED_PREALLOCATE_BYTES);
    let off = WalConfig { preallocate_bytes: 0, ..WalConfig::default() };
    assert_eq!(off.effective_preallocate_bytes(), 0);
    // A whole small segment is zero-filled at its first write, and never beyond it.
    let fs = FaultStorage::new();
    let wal = open_ok(&fs, &WalConfig { target_segment_size_bytes: 4096, ..group() });
    append_n(&wal, 1);
    let (path, _) = active(&wal);
    assert_eq!(file_len(&fs, &path), 4096);
    wal.close().expect("close");
}

/// A power loss in the middle of a commit whose batch runs past the preallocated space (the
/// last batch of a segment, or one larger than the window): the writer zero-fills what the
/// batch covers first, so the whole batch overwrites synced zeros and no part of it can survive
/// while an earlier part is lost (zeros followed by a valid record would be corruption to
/// recovery). Sweeps the crash point over the batch and restarts with partial write-back.
#[test]
fn power_loss_mid_commit_past_the_preallocated_end_opens_cleanly() {
    for (segment_bytes, window, batch) in [(4096, 4096, 6), (4096, 1024, 6), (64 << 10, 1024, 12)] {
        let cfg = WalConfig {
            target_segment_size_bytes: segment_bytes,
            preallocate_bytes: window,
            ..config(SyncMode::Group, RecoveryMode::TolerateTornTail)
        };
        for cut in (0..batch * 250).step_by(97) {
            for seed in 0..4 {
                let what = format!("segment {segment_bytes}, window {window}, cut {cut}, seed {seed}");
                let fs = FaultStorage::new();
                let wal = open_ok(&fs, &cfg);
                // Fill the segment to just below its target, so the batch runs past the cap.
                let mut acked = 0;
                while active(&wal).1 + 400 < segment_bytes.min(8 << 10) {
                    acked = append_n(&wal, 1);
                }
                fs.crash_after_bytes(cut);
                if let Ok(range) = append_batch(&wal, batch) {
                    acked = *range.end();
                }
                fs.power_loss_keep_random_prefix(seed);
                drop(wal);
                let wal = open(&fs, &cfg).unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
                let report = wal.recovery_report().clone();
                assert!(report.last_lsn >= acked, "{what}: acknowledged records lost: {report:?}");
                let records = read_all(&wal);
                assert_eq!(records.len() as u64, report.last_lsn, "{what}");
                for r in &records {
                    assert_eq!(&r.payload[..], &payload(r.lsn)[..], "{what}: payload of LSN {}", r.lsn);
                }
                wal.close().expect("close");
            }
        }
    }
}

/// Overwrites of preallocated space are not ordered by a journal commit, so a power loss in the
/// middle of a commit's `fdatasync` may keep some sectors of that (unacknowledged) write and lose
/// earlier ones. Recovery tells that from corruption (the damage holds a lost sector's zeros and
/// the records after it start no new write, `docs/FORMAT.md`, "Recovery") and truncates the
/// write as a torn tail in every mode: the default opens unattended with every acknowledged
/// record and nothing of the interrupted write, `AbsoluteConsistency` refuses with
/// `IncompleteTail`. Swept over batch sizes (one record to many sectors), sector patterns and
/// both durable modes.
#[test]
fn power_loss_with_reordered_sectors_is_a_torn_tail() {
    let mut interrupted = 0;
    for (sync_mode, batch) in
        [(SyncMode::Group, 1), (SyncMode::Group, 16), (SyncMode::Always, 16), (SyncMode::Group, 300)]
    {
        for seed in 0..48 {
            let what = format!("{sync_mode:?}, batch {batch}, seed {seed}");
            let cfg = wide(config(sync_mode, RecoveryMode::TolerateTornTail));
            let fs = FaultStorage::new();
            let acked = interrupt_commit_in_preallocated_space(&fs, open_ok(&fs, &cfg), batch, seed);
            let strict = wide(config(sync_mode, RecoveryMode::AbsoluteConsistency));
            let wal = open(&fs, &cfg).unwrap_or_else(|e| panic!("{what}: the default refused: {e}"));
            let report = wal.recovery_report().clone();
            let last = report.last_lsn;
            assert!(last == acked || last == acked + batch, "{what}: {report:?}");
            if last == acked && report.torn_tail.is_some() {
                interrupted += 1;
            }
            check_all(&wal, last);
            assert_eq!(append_n(&wal, 3), last + 3, "{what}");
            wal.close().expect("close");
            let wal = open_ok(&fs, &strict);
            assert_eq!(wal.recovery_report().last_lsn, last + 3, "{what}");
            wal.close().expect("close");
        }
    }
    assert!(interrupted > 50, "the sweep must produce interrupted writes ({interrupted})");
}

/// Commits single records until right after the second zero-fill, then a `batch`-record commit
/// into the preallocated space whose `fdatasync` fails, and loses power keeping a random set of
/// that write's sectors (`seed`). Returns the last acknowledged LSN.
fn interrupt_commit_in_preallocated_space(fs: &FaultStorage, wal: Wal, batch: u64, seed: u64) -> Lsn {
    let mut acked = append_n(&wal, 1);
    while wal.stats().preallocations < 2 {
        acked = append_n(&wal, 1);
    }
    fs.fail_next_sync();
    append_batch(&wal, batch).expect_err("its fdatasync fails");
    assert!(wal.is_failed());
    assert_eq!(wal.stats().preallocations, 2, "the batch needed no fill");
    fs.power_loss_keep_random_sectors(seed);
    acked
}

/// `cfg` with a preallocation window (256 KiB in 1 MiB segments) that takes a batch of hundreds
/// of records without a fill.
fn wide(cfg: WalConfig) -> WalConfig {
    WalConfig { target_segment_size_bytes: 1 << 20, preallocate_bytes: 256 << 10, ..cfg }
}

/// The same power loss, restarted in `AbsoluteConsistency`: an interrupted write is a torn tail,
/// which that mode refuses with `IncompleteTail` (never `Corruption`), and `PointInTime` then
/// opens with exactly what the default would.
#[test]
fn reordered_sectors_under_absolute_consistency_are_an_incomplete_tail() {
    let mut refused = 0;
    for seed in 0..32 {
        let fs = FaultStorage::new();
        let acked = interrupt_commit_in_preallocated_space(&fs, open_ok(&fs, &wide(group())), 40, seed);
        match open(&fs, &wide(config(SyncMode::Group, RecoveryMode::AbsoluteConsistency))) {
            Ok(wal) => {
                // Every sector of the write survived, or none did past a complete batch.
                let last = wal.recovery_report().last_lsn;
                assert!(last == acked || last == acked + 40, "seed {seed}");
                wal.close().expect("close");
            }
            Err(WalError::IncompleteTail { .. }) => refused += 1,
            Err(e) => panic!("seed {seed}: {e}"),
        }
        let wal = open_ok(&fs, &wide(config(SyncMode::Group, RecoveryMode::PointInTime)));
        let last = wal.recovery_report().last_lsn;
        assert!(last == acked || last == acked + 40, "seed {seed}");
        check_all(&wal, last);
        wal.close().expect("close");
    }
    assert!(refused > 10, "{refused}");
}

/// Damage in acknowledged data is still corruption, never taken for an interrupted write: a lost
/// (zeroed) sector followed by a later write (whose first record starts a new write), and a
/// flipped bit inside the last write (no lost sector's zeros), both refuse with `Corruption` in
/// the default mode; `PointInTime` opens up to the damage.
#[test]
fn damage_in_acknowledged_data_is_still_corruption() {
    // (a) A zeroed sector early in the data, then more acknowledged writes.
    let fs = FaultStorage::new();
    let wal = open_ok(&fs, &group());
    append_n(&wal, 40);
    let (path, _) = active(&wal);
    drop(wal);
    fs.crash();
    let mut bytes = fs.file_bytes(&path).expect("segment");
    bytes[1024..1536].fill(0);
    fs.set_file_bytes(&path, bytes);
    match open(&fs, &group()) {
        Err(WalError::Corruption { offset, .. }) => assert!(offset <= 1024, "{offset}"),
        other => panic!("zeroed sector before later writes: {other:?}"),
    }
    let wal = open_ok(&fs, &config(SyncMode::Group, RecoveryMode::PointInTime));
    assert!(wal.recovery_report().last_lsn < 40);
    wal.close().expect("close");

    // (b) A flipped bit in the first record of one last 30-record write (the records after it
    // start no new write, but the damage holds no lost sector's zeros).
    let fs = FaultStorage::new();
    let wal = open_ok(&fs, &group());
    append_n(&wal, 5);
    let (path, before) = active(&wal);
    append_batch(&wal, 30).expect("batch");
    let (_, after) = active(&wal);
    assert!(after > before);
    drop(wal);
    fs.crash();
    fs.flip_bit(&path, before + 40, 3);
    match open(&fs, &group()) {
        Err(WalError::Corruption { offset, .. }) => assert_eq!(offset, before),
        other => panic!("flipped bit in the last write: {other:?}"),
    }
}

/// Salvage of a sealed segment whose footer is damaged never takes damage for an interrupted
/// write: there every write was synced and acknowledged. A lost sector inside a segment's last
/// write (a 30-record batch, sealed right after) followed by that write's unflagged records is
/// an interrupted write only in the last segment; in a sealed one, `SkipCorrupted` skips the
/// damage as a hole and keeps the batch's records after it and every later segment.
#[test]
fn salvage_of_a_sealed_segment_keeps_the_records_after_a_lost_sector() {
    let fs = FaultStorage::new();
    let wal = open_ok(&fs, &group());
    append_n(&wal, 5);
    let (path, before) = active(&wal);
    let batch = append_batch(&wal, 30).expect("batch");
    wal.seal_active_segment().expect("seal");
    let last = append_n(&wal, 4);
    wal.close().expect("close");
    let mut bytes = fs.file_bytes(&path).expect("sealed segment");
    // A lost sector inside the batch, past its first record; and a damaged footer.
    let sector = (before / 512 + 2) * 512;
    bytes[sector as usize..sector as usize + 512].fill(0);
    let end = bytes.len() - 1;
    bytes[end] ^= 0x40;
    fs.set_file_bytes(&path, bytes);

    let wal = open_ok(&fs, &config(SyncMode::Group, RecoveryMode::SkipCorrupted));
    let report = wal.recovery_report().clone();
    // The damaged footer itself is cut as a torn tail after the data, dropping no record.
    let tail = report.torn_tail.as_ref();
    assert!(tail.is_none_or(|t| t.records_dropped == 0 && !t.reason.contains(INTERRUPTED_WRITE)), "{report:?}");
    assert_eq!(report.skipped_ranges.len(), 1, "{report:?}");
    assert_eq!(report.last_lsn, last, "{report:?}");
    let records = read_all(&wal);
    for r in &records {
        assert_eq!(&r.payload[..], &payload(r.lsn)[..], "payload of LSN {}", r.lsn);
    }
    let lsns: Vec<Lsn> = records.iter().map(|r| r.lsn).collect();
    let lost: Vec<Lsn> = (1..=last).filter(|l| !lsns.contains(l)).collect();
    assert!(!lost.is_empty() && lost.iter().all(|l| batch.contains(l)), "lost {lost:?}");
    assert!(lsns.contains(batch.end()), "the batch's records after the hole are kept: {lsns:?}");
    wal.close().expect("close");
}

/// A log left by an older build has a version 1 active segment: it opens, its records read, the
/// writer finishes that segment without preallocating into it (its records could not mark new
/// writes), and the next segment is version 2 and preallocated.
#[test]
fn version_1_active_segment_is_finished_without_preallocation() {
    let fs = FaultStorage::new();
    let cfg = group();
    let wal = open_ok(&fs, &WalConfig { preallocate_bytes: 0, ..cfg.clone() });
    append_n(&wal, 10);
    let (path, _) = active(&wal);
    wal.close().expect("close");
    // Rewrite the header as an older build wrote it (version 1, same fields, new CRC).
    let mut bytes = fs.file_bytes(&path).expect("segment");
    bytes[8..10].copy_from_slice(&1u16.to_le_bytes());
    let crc = format::crc32(&bytes[0..60]);
    bytes[60..64].copy_from_slice(&crc.to_le_bytes());
    fs.set_file_bytes(&path, bytes);
    let wal = open_ok(&fs, &cfg);
    check_all(&wal, 10);
    let mut last = append_n(&wal, 5);
    let (p, end) = active(&wal);
    assert_eq!(p, path);
    assert_eq!(file_len(&fs, &path), end, "no zeros after the data of a version 1 segment");
    assert_eq!(wal.stats().preallocations, 0);
    // Its records do not mark new writes (a version 1 segment cannot carry the flag).
    let v1_bytes = fs.file_bytes(&path).expect("segment");
    let (h, _) = format::verify_record(&v1_bytes[end as usize - 32 - payload(last).len()..], u32::MAX).expect("record");
    assert_eq!((h.lsn, h.is_sync_start()), (last, false));
    // Sealed by rotation (first log) or explicitly (second): either way the next segment is
    // version 2, preallocated, and its writes are marked.
    for explicit_seal in [false, true] {
        if explicit_seal {
            wal.seal_active_segment().expect("seal");
        } else {
            while active(&wal).0 == path {
                append_n(&wal, 1);
            }
        }
        let first = append_n(&wal, 1);
        last = first;
        assert!(wal.stats().preallocations > 0, "the version 2 segment is preallocated");
        let (next, end) = active(&wal);
        let next_bytes = fs.file_bytes(&next).expect("segment");
        assert_eq!(u16::from_le_bytes([next_bytes[8], next_bytes[9]]), 2);
        assert!(next_bytes.len() as u64 > end);
        let (h, _) =
            format::verify_record(&next_bytes[end as usize - 32 - payload(first).len()..], u32::MAX).expect("record");
        assert_eq!((h.lsn, h.is_sync_start()), (first, true), "explicit seal {explicit_seal}");
    }
    check_all(&wal, last);
    wal.close().expect("close");
}

/// A log that does not preallocate (here `SyncMode::None`) truncates a zero tail it finds at
/// open (reported as preallocated, not as truncated or torn), so its buffered writes always
/// grow the file; a power loss with partial write-back then leaves a clean prefix.
#[test]
fn a_log_that_does_not_preallocate_drops_the_zero_tail_at_open() {
    for seed in 0..16 {
        let fs = FaultStorage::new();
        let wal = open_ok(&fs, &group());
        let acked = append_n(&wal, 20);
        let (path, data_end) = active(&wal);
        let len = file_len(&fs, &path);
        assert!(len > data_end);
        fs.crash();
        drop(wal);
        let none = config(SyncMode::None, RecoveryMode::TolerateTornTail);
        let wal = open_ok(&fs, &none);
        let report = wal.recovery_report().clone();
        assert_clean(&report, "None mode");
        assert_eq!(report.preallocated_bytes, len - data_end);
        assert_eq!(file_len(&fs, &path), data_end, "the zero tail is cut");
        append_n(&wal, 40);
        wal.flush().expect("flush");
        fs.power_loss_keep_random_prefix(seed);
        drop(wal);
        let wal = open(&fs, &config(SyncMode::Group, RecoveryMode::TolerateTornTail))
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let last = wal.recovery_report().last_lsn;
        assert!(last >= acked, "seed {seed}");
        check_all(&wal, last);
        wal.close().expect("close");
    }
}

/// The default configuration with preallocation opted in ([`RECOMMENDED_PREALLOCATE_BYTES`]).
fn preallocating() -> WalConfig {
    WalConfig { preallocate_bytes: RECOMMENDED_PREALLOCATE_BYTES, ..WalConfig::default() }
}

/// Concurrent group commits: exactly one record per write carries `FLAG_SYNC_START` (the first
/// of the first batch each leader writes), so the flagged records in the segment number the
/// commit `fdatasync`s, and every flagged record starts a batch.
#[test]
fn every_group_commit_write_starts_with_exactly_one_flagged_record() {
    let fs = FaultStorage::new();
    let wal = Arc::new(open_ok(&fs, &wide(group())));
    let syncs_before = wal.stats().data_syncs;
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let wal = wal.clone();
            scope.spawn(move || {
                for _ in 0..50 {
                    wal.append_batch([(1u8, &b"concurrent commit"[..]), (2u8, &b"second record"[..])]).expect("commit");
                }
            });
        }
    });
    let writes = wal.stats().data_syncs - syncs_before;
    let (path, data_end) = active(&wal);
    let bytes = fs.file_bytes(&path).expect("segment");
    let (mut at, mut flagged, mut previous_ended_batch) = (64usize, 0u64, true);
    while (at as u64) < data_end {
        let (h, _) = format::verify_record(&bytes[at..], u32::MAX).expect("valid record");
        if h.is_sync_start() {
            flagged += 1;
            assert!(previous_ended_batch, "a flagged record in the middle of a batch at {at}");
        }
        previous_ended_batch = h.is_batch_end();
        at += h.total_len() as usize;
    }
    assert_eq!(flagged, writes, "one flagged record per write ({writes} commit fdatasyncs)");
    assert!(writes <= 200, "{writes} commit fdatasyncs for 200 commits");
    Arc::into_inner(wal).expect("sole owner").close().expect("close");
}
