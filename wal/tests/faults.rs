//! Fault injection through `FaultStorage`: every injected fault gives a typed error and puts the
//! log into the failed state (never a false acknowledgement), and after a crash or power loss the
//! reopened log holds every acknowledged record, whole batches only, and nothing it never had.
//! Also: single-bit corruption anywhere in a sealed segment or in the active tail is detected and
//! never returned as data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use walden_wal::format::segment_file_name;
use walden_wal::testing::fault::FaultStorage;
use walden_wal::{Lsn, Record, SyncMode, Wal, WalConfig, WalError};

mod common;
use common::{EIO, ENOSPC, open, open_ok, read_all};

fn config(sync_mode: SyncMode) -> WalConfig {
    WalConfig {
        target_segment_size_bytes: 4096,
        max_records_per_segment: 10,
        index_interval_bytes: 128,
        sync_mode,
        write_buffer_bytes: 2048,
        ..WalConfig::default()
    }
}

/// Sum of the lengths of every file in the storage.
fn used_bytes(fs: &FaultStorage) -> u64 {
    fs.list_all_files().iter().map(|p| fs.file_bytes(p).map_or(0, |b| b.len() as u64)).sum()
}

/// `(op, errno)` of an `Io` error.
fn io_error(e: &WalError) -> Option<(&'static str, Option<i32>)> {
    match e {
        WalError::Io { op, source, .. } => Some((op, source.raw_os_error())),
        _ => None,
    }
}

fn is_failed_error(e: &WalError) -> bool {
    matches!(e, WalError::Failed { .. })
}

/// Payloads of batch `batch` of appender `tag`: self-describing, so recovered records can be
/// traced back to the append call that wrote them.
fn batch_payloads(tag: u32, batch: u32, records: usize, len: usize) -> Vec<Vec<u8>> {
    (0..records)
        .map(|j| {
            let mut p = format!("{tag}/{batch}/{j}/{records};").into_bytes();
            p.resize(len.max(p.len()), b'a' + (batch % 26) as u8);
            p
        })
        .collect()
}

/// One append call and whether it was acknowledged (and at which first LSN).
#[derive(Debug, Clone)]
struct Attempt {
    payloads: Vec<Vec<u8>>,
    acked_at: Option<Lsn>,
}

/// Checks `records` (read from LSN 1) against the attempted appends: LSNs contiguous from 1,
/// every record part of a whole attempted batch appearing once, every acknowledged batch that
/// is there at its acknowledged LSN, and (if `acked_are_durable`) every acknowledged batch there.
/// Returns how many unacknowledged batches made it in.
fn check_against_attempts(records: &[Record], attempts: &[Attempt], acked_are_durable: bool) -> usize {
    let by_first: BTreeMap<&[u8], &Attempt> = attempts.iter().map(|a| (a.payloads[0].as_slice(), a)).collect();
    let mut seen = std::collections::BTreeSet::new();
    let mut extras = 0;
    let mut i = 0;
    while i < records.len() {
        let first = &records[i];
        let attempt = by_first
            .get(&first.payload[..])
            .unwrap_or_else(|| panic!("LSN {} holds a payload nobody appended: {:?}", first.lsn, first.payload));
        assert!(seen.insert(&attempt.payloads[0][..]), "batch at LSN {} appears twice", first.lsn);
        let n = attempt.payloads.len();
        assert!(i + n <= records.len(), "partial batch at LSN {} ({} of {n} records)", first.lsn, records.len() - i);
        for (j, payload) in attempt.payloads.iter().enumerate() {
            let rec = &records[i + j];
            assert_eq!(rec.lsn, i as Lsn + j as Lsn + 1, "LSNs must be contiguous from 1");
            assert_eq!(&rec.payload[..], &payload[..], "record {j} of the batch at LSN {}", first.lsn);
            assert_eq!(rec.batch_end, j + 1 == n, "batch_end of LSN {}", rec.lsn);
        }
        match attempt.acked_at {
            Some(lsn) => assert_eq!(lsn, first.lsn, "acknowledged batch moved"),
            None => extras += 1,
        }
        i += n;
    }
    for a in attempts.iter().filter(|a| acked_are_durable && a.acked_at.is_some()) {
        assert!(seen.contains(&a.payloads[0][..]), "acknowledged batch at LSN {:?} was lost", a.acked_at);
    }
    extras
}

fn append_attempt(wal: &Wal, kind: u8, payloads: Vec<Vec<u8>>) -> (Attempt, Result<(), WalError>) {
    match wal.append_batch(payloads.iter().map(|p| (kind, p.as_slice()))) {
        Ok(range) => {
            assert_eq!(range.end() - range.start() + 1, payloads.len() as Lsn);
            (Attempt { payloads, acked_at: Some(*range.start()) }, Ok(()))
        }
        Err(e) => (Attempt { payloads, acked_at: None }, Err(e)),
    }
}

/// After the log failed: every mutating call refuses with `Failed`.
fn assert_refuses_everything(wal: &Wal) {
    assert!(wal.is_failed());
    let e = wal.append(1, b"late").unwrap_err();
    assert!(is_failed_error(&e), "append after failure: {e:?}");
    let e = wal.append_batch([(1u8, &b"x"[..]), (1, &b"y"[..])]).unwrap_err();
    assert!(is_failed_error(&e), "append_batch after failure: {e:?}");
    assert!(is_failed_error(&wal.sync().unwrap_err()));
    assert!(is_failed_error(&wal.flush().unwrap_err()));
    assert!(is_failed_error(&wal.seal_active_segment().unwrap_err()));
}

#[derive(Debug, Clone, Copy)]
enum Restart {
    Crash,
    PowerLoss,
    PowerLossKeepPrefix(u64),
}

impl Restart {
    fn apply(self, fs: &FaultStorage) {
        match self {
            Restart::Crash => fs.crash(),
            Restart::PowerLoss => fs.power_loss(),
            Restart::PowerLossKeepPrefix(seed) => fs.power_loss_keep_random_prefix(seed),
        }
    }

    fn all(seed: u64) -> [Restart; 3] {
        [Restart::Crash, Restart::PowerLoss, Restart::PowerLossKeepPrefix(seed)]
    }
}

// ---------------------------------------------------------------------------------------------
// fsync failure during group commit

/// `flusher`: [`WalConfig::group_commit_flusher`]. With it on, the failed sync may be the
/// flusher's, and then no appender gets the I/O error itself: all get `Failed`, naming it.
fn group_commit_fsync_failure(restart: Restart, flusher: bool) {
    const THREADS: u32 = 4;
    let fs = FaultStorage::new();
    let cfg = WalConfig { group_commit_flusher: flusher, ..config(SyncMode::Group) };
    let wal = open_ok(&fs, &cfg);
    let mut attempts = Vec::new();
    for b in 0..10 {
        let (attempt, result) = append_attempt(&wal, 0, batch_payloads(0, b, 1 + b as usize % 3, 60));
        result.expect("append before the fault");
        attempts.push(attempt);
    }
    // The appender that gets the 80th acknowledgement fails the next fsync, whoever runs it.
    const ACKS_BEFORE_FAULT: usize = 80;
    let acked = AtomicUsize::new(0);
    let per_thread = std::thread::scope(|s| {
        let handles: Vec<_> = (1..=THREADS)
            .map(|t| {
                let (wal, acked, fs) = (&wal, &acked, &fs);
                s.spawn(move || {
                    let mut attempts = Vec::new();
                    let mut first_error = None;
                    for b in 0..2_000 {
                        let payloads = batch_payloads(t, b, 1 + (b + t) as usize % 4, 30 + (b as usize * 13) % 90);
                        let (attempt, result) = append_attempt(wal, t as u8, payloads);
                        attempts.push(attempt);
                        match result {
                            Ok(()) => {
                                if acked.fetch_add(1, Ordering::Relaxed) + 1 == ACKS_BEFORE_FAULT {
                                    fs.fail_next_sync();
                                }
                            }
                            Err(e) => {
                                first_error = Some(e);
                                break;
                            }
                        }
                    }
                    let later = wal.append(t as u8, b"after the failure");
                    (attempts, first_error, later)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("appender thread")).collect::<Vec<_>>()
    });

    let mut io_errors = Vec::new();
    for (t, (thread_attempts, first_error, later)) in per_thread.into_iter().enumerate() {
        let e = first_error.unwrap_or_else(|| panic!("appender {t} never saw the failure"));
        match io_error(&e) {
            Some((op, errno)) => {
                assert!(
                    ["fdatasync", "preallocate (fdatasync)", "fsync directory"].contains(&op),
                    "unexpected op {op}: {e}"
                );
                assert_eq!(errno, Some(EIO), "{e}");
                io_errors.push(e);
            }
            None => match &e {
                WalError::Failed { reason } => {
                    assert!(reason.contains("EIO") || reason.contains("os error 5"), "{reason}")
                }
                other => panic!("appender {t}: {other:?}"),
            },
        }
        let later = later.expect_err("append after the failure must fail");
        assert!(is_failed_error(&later), "appender {t}, later append: {later:?}");
        attempts.extend(thread_attempts);
    }
    if flusher {
        assert!(io_errors.len() <= 1, "at most the appender whose sync failed gets the I/O error: {io_errors:?}");
    } else {
        assert_eq!(io_errors.len(), 1, "exactly the appender whose sync failed gets the I/O error: {io_errors:?}");
    }
    assert_refuses_everything(&wal);
    let acked_end = attempts.iter().filter_map(|a| a.acked_at.map(|l| l + a.payloads.len() as Lsn - 1)).max();
    assert!(wal.durable_lsn() >= acked_end.expect("some acks"), "acknowledged beyond the durable LSN");
    // Readers of the failed log never see an unacknowledged batch.
    let visible = read_all(&wal);
    assert_eq!(check_against_attempts(&visible, &attempts, false), 0, "a reader saw an unacknowledged batch");

    restart.apply(&fs);
    drop(wal);
    let wal = open_ok(&fs, &cfg);
    let records = read_all(&wal);
    check_against_attempts(&records, &attempts, true);
    let report = wal.recovery_report();
    assert_eq!(report.last_lsn, records.len() as Lsn);
    // The reopened log works again.
    let lsn = wal.append(9, b"after reopen").expect("append after reopen");
    assert_eq!(lsn, records.len() as Lsn + 1);
    wal.close().expect("close");
}

#[test]
fn fsync_eio_in_group_commit_fails_all_appenders_then_power_loss() {
    group_commit_fsync_failure(Restart::PowerLoss, true);
}

#[test]
fn fsync_eio_in_group_commit_without_the_flusher_fails_all_appenders_then_power_loss() {
    group_commit_fsync_failure(Restart::PowerLoss, false);
}

#[test]
fn fsync_eio_in_group_commit_fails_all_appenders_then_crash() {
    group_commit_fsync_failure(Restart::Crash, true);
}

#[test]
fn fsync_eio_in_group_commit_fails_all_appenders_then_partial_writeback() {
    group_commit_fsync_failure(Restart::PowerLossKeepPrefix(0x5eed), true);
}

/// The same in every mode with a single appender: the sync that fails reports `Io`, and nothing
/// that was not synced is acknowledged as durable.
#[test]
fn fsync_eio_single_appender_every_mode() {
    for mode in [SyncMode::Always, SyncMode::Group, SyncMode::None] {
        for restart in Restart::all(3) {
            let fs = FaultStorage::new();
            let cfg = config(mode);
            let wal = open_ok(&fs, &cfg);
            let mut attempts = Vec::new();
            for b in 0..25 {
                let (a, r) = append_attempt(&wal, 1, batch_payloads(1, b, 1 + b as usize % 3, 80));
                r.expect("append");
                attempts.push(a);
            }
            let synced = wal.sync().expect("sync");
            fs.fail_next_sync();
            let (a, r) = append_attempt(&wal, 1, batch_payloads(1, 100, 2, 80));
            attempts.push(a);
            let e = match mode {
                SyncMode::None => {
                    r.expect("a buffered append does not sync");
                    wal.sync().expect_err("the sync fails")
                }
                _ => r.expect_err("the append's sync fails"),
            };
            assert_eq!(io_error(&e), Some(("fdatasync", Some(EIO))), "{mode:?}: {e:?}");
            assert_refuses_everything(&wal);
            assert_eq!(wal.durable_lsn(), synced, "{mode:?}: a failed sync moved the durable LSN");
            restart.apply(&fs);
            drop(wal);
            let wal = open_ok(&fs, &cfg);
            let records = read_all(&wal);
            check_against_attempts(&records, &attempts, mode.is_durable());
            assert!(records.len() as Lsn >= synced, "{mode:?} {restart:?}: lost synced records");
            if matches!(restart, Restart::PowerLoss) {
                assert_eq!(records.len() as Lsn, synced, "{mode:?}: unsynced data survived a power loss");
            }
            wal.close().expect("close");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A full disk

#[test]
fn enospc_during_append_fails_the_log() {
    for (mode, preallocate_bytes) in [
        (SyncMode::Always, 0),
        (SyncMode::Group, 0),
        (SyncMode::None, 0),
        (SyncMode::Always, 1024),
        (SyncMode::Group, 4096),
    ] {
        for restart in Restart::all(11) {
            let fs = FaultStorage::new();
            let cfg = WalConfig { preallocate_bytes, ..config(mode) };
            let wal = open_ok(&fs, &cfg);
            let mut attempts = Vec::new();
            for b in 0..3 {
                let (a, r) = append_attempt(&wal, 2, batch_payloads(2, b, 2, 100));
                r.expect("append");
                attempts.push(a);
            }
            let synced = wal.sync().expect("sync");
            fs.set_space_limit(Some(used_bytes(&fs) + 700));
            let mut error = None;
            for b in 3..50 {
                let (a, r) = append_attempt(&wal, 2, batch_payloads(2, b, 1, 100));
                attempts.push(a);
                // Buffered appends reach the file on flush.
                let r = r.and_then(|()| if mode == SyncMode::None { wal.flush() } else { Ok(()) });
                if let Err(e) = r {
                    error = Some(e);
                    break;
                }
            }
            let e = error.expect("the disk fills up");
            // With preallocation the disk fills up while zero-filling ahead of the data (or,
            // at the segment's end, while writing past the preallocated space).
            let op = if preallocate_bytes > 0 { "preallocate (write zeros)" } else { "write" };
            let got = io_error(&e);
            assert!(
                got == Some((op, Some(ENOSPC))) || (preallocate_bytes > 0 && got == Some(("write", Some(ENOSPC)))),
                "{mode:?}, preallocate {preallocate_bytes}: {e:?}"
            );
            assert_refuses_everything(&wal);
            restart.apply(&fs);
            drop(wal);
            let wal = open_ok(&fs, &cfg);
            let records = read_all(&wal);
            let extras = check_against_attempts(&records, &attempts, mode.is_durable());
            assert!(records.len() as Lsn >= synced);
            if mode.is_durable() {
                assert_eq!(extras, 0, "{mode:?} {restart:?}: the batch that hit ENOSPC must not survive");
            }
            wal.append(2, b"the disk has room again").expect("append after reopen");
            wal.close().expect("close");
        }
    }
}

/// What failed when the disk filled up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum EnospcSite {
    /// Writing records into the active segment.
    RecordData,
    /// Writing the footer while sealing the full segment.
    Footer,
    /// Writing the header of the next segment (`*.wal.tmp`).
    NewSegment,
    /// Zero-filling the active segment ahead of the data (`WalConfig::preallocate_bytes`).
    Preallocate,
}

/// Sweeps the space limit across two segment rotations, so ENOSPC hits record data, the footer
/// of the segment being sealed, and the header of the segment being created (without
/// preallocation, which moves most of these into the zero-fill: see the next test).
#[test]
fn enospc_sweep_across_segment_rotation() {
    let (sites, temp_files_removed) = enospc_sweep(0);
    for site in [EnospcSite::RecordData, EnospcSite::Footer, EnospcSite::NewSegment] {
        assert!(sites.contains_key(&site), "the sweep never hit {site:?}: {sites:?}");
    }
    assert!(temp_files_removed > 0, "no crash left a temp segment behind: {sites:?}");
}

/// The same sweep with preallocation: the disk fills up while zero-filling ahead of the data
/// (before the records that would need the space are written), and every acknowledged record
/// survives every restart all the same.
#[test]
fn enospc_sweep_across_segment_rotation_with_preallocation() {
    let (sites, _) = enospc_sweep(2048);
    assert!(sites.contains_key(&EnospcSite::Preallocate), "the sweep never hit the zero-fill: {sites:?}");
}

/// Returns where ENOSPC hit, and how many temp segments reopening removed.
fn enospc_sweep(preallocate_bytes: u64) -> (BTreeMap<EnospcSite, u32>, usize) {
    const RECORDS_PER_SEGMENT: u64 = 10;
    const PAYLOAD_BYTES: usize = 150;
    let cfg = WalConfig { max_records_per_segment: RECORDS_PER_SEGMENT, preallocate_bytes, ..config(SyncMode::Group) };
    let mut sites = BTreeMap::new();
    let mut temp_files_removed = 0;
    for extra in (0..6000u64).step_by(23) {
        let restart = Restart::all(extra)[(extra % 3) as usize];
        let fs = FaultStorage::new();
        let wal = open_ok(&fs, &cfg);
        let mut attempts = Vec::new();
        for b in 0..7 {
            let (a, r) = append_attempt(&wal, 3, batch_payloads(3, b, 1, PAYLOAD_BYTES));
            r.expect("append");
            attempts.push(a);
        }
        fs.set_space_limit(Some(used_bytes(&fs) + extra));
        let mut failure = None;
        for b in 7..60 {
            let (a, r) = append_attempt(&wal, 3, batch_payloads(3, b, 1, PAYLOAD_BYTES));
            attempts.push(a);
            if let Err(e) = r {
                failure = Some((Lsn::from(b) + 1, e));
                break;
            }
        }
        let (lsn, e) = failure.expect("the disk fills up");
        assert_eq!(io_error(&e).map(|(_, errno)| errno), Some(Some(ENOSPC)), "extra {extra}: {e:?}");
        let WalError::Io { path, op, .. } = &e else { unreachable!() };
        let site = if op.starts_with("preallocate") {
            EnospcSite::Preallocate
        } else if path.to_string_lossy().ends_with(".tmp") {
            EnospcSite::NewSegment
        } else if (lsn - 1) % RECORDS_PER_SEGMENT == 0 && !path.ends_with(segment_file_name(lsn)) {
            EnospcSite::Footer
        } else {
            EnospcSite::RecordData
        };
        *sites.entry(site).or_insert(0u32) += 1;
        assert_refuses_everything(&wal);

        restart.apply(&fs);
        drop(wal);
        let wal = open_ok(&fs, &cfg);
        temp_files_removed += wal.recovery_report().temp_files_removed.len();
        let records = read_all(&wal);
        assert_eq!(check_against_attempts(&records, &attempts, true), 0, "extra {extra} ({site:?}, {restart:?})");
        for seg in wal.segments() {
            assert!(!seg.path.to_string_lossy().ends_with(".tmp"));
        }
        wal.append(3, b"room again").expect("append after reopen");
        wal.close().expect("close");
        assert!(fs.list_all_files().iter().all(|p| !p.to_string_lossy().ends_with(".tmp")), "leftover temp file");
    }
    (sites, temp_files_removed)
}

// ---------------------------------------------------------------------------------------------
// Short writes and failing writes

#[test]
fn short_writes_are_transparent() {
    for mode in [SyncMode::Always, SyncMode::Group, SyncMode::None] {
        let fs = FaultStorage::new();
        fs.short_writes(true);
        let cfg = config(mode);
        let wal = open_ok(&fs, &cfg);
        let mut attempts = Vec::new();
        for b in 0..60 {
            let (a, r) =
                append_attempt(&wal, 4, batch_payloads(4, b, 1 + b as usize % 4, 10 + (b as usize * 29) % 300));
            r.expect("append with short writes");
            attempts.push(a);
            if b == 30 {
                wal.seal_active_segment().expect("seal");
            }
        }
        wal.flush().expect("flush");
        assert_eq!(check_against_attempts(&read_all(&wal), &attempts, true), 0);
        assert!(wal.segments().len() > 5);
        wal.close().expect("close");

        let wal = open_ok(&fs, &cfg);
        assert_eq!(wal.recovery_report().bytes_truncated, 0);
        assert_eq!(check_against_attempts(&read_all(&wal), &attempts, true), 0);
        let (a, r) = append_attempt(&wal, 4, batch_payloads(4, 1000, 3, 500));
        r.expect("append");
        attempts.push(a);
        wal.sync().expect("sync");
        // Power loss after a sync: everything is there (and short writes end with the restart).
        fs.power_loss();
        drop(wal);
        let wal = open_ok(&fs, &cfg);
        assert_eq!(check_against_attempts(&read_all(&wal), &attempts, true), 0);
        wal.close().expect("close");
    }
}

#[test]
fn fail_next_write_fails_the_log() {
    for mode in [SyncMode::Always, SyncMode::Group, SyncMode::None] {
        for restart in Restart::all(5) {
            let fs = FaultStorage::new();
            let cfg = config(mode);
            let wal = open_ok(&fs, &cfg);
            let mut attempts = Vec::new();
            for b in 0..14 {
                let (a, r) = append_attempt(&wal, 5, batch_payloads(5, b, 2, 50));
                r.expect("append");
                attempts.push(a);
            }
            let synced = wal.sync().expect("sync");
            let (a, r) = append_attempt(&wal, 5, batch_payloads(5, 14, 2, 50));
            r.expect("append");
            attempts.push(a);
            if mode == SyncMode::None {
                wal.flush().expect("flush");
            }
            let written = wal.visible_lsn();
            fs.fail_next_write();
            let (a, r) = append_attempt(&wal, 5, batch_payloads(5, 15, 3, 50));
            attempts.push(a);
            let e = match mode {
                SyncMode::None => {
                    r.expect("buffered");
                    wal.flush().expect_err("the write fails")
                }
                _ => r.expect_err("the write fails"),
            };
            assert_eq!(io_error(&e), Some(("write", Some(EIO))), "{mode:?}: {e:?}");
            assert_refuses_everything(&wal);
            restart.apply(&fs);
            drop(wal);
            let wal = open_ok(&fs, &cfg);
            let records = read_all(&wal);
            let extras = check_against_attempts(&records, &attempts, mode.is_durable());
            assert_eq!(extras, 0, "{mode:?} {restart:?}: the failed write");
            let recovered = records.len() as Lsn;
            assert!(recovered >= synced && recovered <= written, "{mode:?} {restart:?}: {recovered}");
            if mode.is_durable() || matches!(restart, Restart::Crash) {
                assert_eq!(recovered, written, "{mode:?} {restart:?}");
            }
            wal.close().expect("close");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Crash after an exact number of written bytes

/// The known workload of the crash sweep: 24 batches of 1–4 records of varied sizes.
fn crash_workload() -> Vec<Vec<Vec<u8>>> {
    (0..24u32).map(|b| batch_payloads(6, b, 1 + (b as usize * 7) % 4, 20 + (b as usize * 37) % 140)).collect()
}

/// Runs the workload on fresh storage that crashes after `crash_after` written bytes, restarts,
/// and checks the reopened log. Returns whether the crash hit before the workload finished.
fn crash_after_bytes_round(mode: SyncMode, crash_after: u64, restart: Restart) -> bool {
    let cfg = WalConfig { max_records_per_segment: 8, ..config(mode) };
    let fs = FaultStorage::new();
    fs.crash_after_bytes(crash_after);
    let mut attempts = Vec::new();
    let mut synced: Lsn = 0;
    let mut crashed = false;
    match open(&fs, &cfg) {
        Err(e) => {
            assert!(io_error(&e).is_some(), "open during the crash: {e:?}");
            crashed = true;
        }
        Ok(wal) => {
            for (b, payloads) in crash_workload().into_iter().enumerate() {
                let (a, r) = append_attempt(&wal, 6, payloads);
                attempts.push(a);
                let r = r.and_then(|()| {
                    if mode == SyncMode::None && b % 4 == 3 { wal.sync().map(|lsn| synced = lsn) } else { Ok(()) }
                });
                if let Err(e) = r {
                    assert!(io_error(&e).is_some(), "first error must be the I/O error: {e:?}");
                    assert!(wal.is_failed());
                    crashed = true;
                    break;
                }
            }
            if !crashed {
                crashed = wal.close().is_err();
            } else {
                drop(wal);
            }
        }
    }
    assert_eq!(crashed, fs.is_crashed(), "crash_after {crash_after}: error without crash or vice versa");
    restart.apply(&fs);
    let wal = open(&fs, &cfg).unwrap_or_else(|e| panic!("{mode:?} crash_after {crash_after} {restart:?}: {e}"));
    let records = read_all(&wal);
    check_against_attempts(&records, &attempts, mode.is_durable());
    let recovered = records.len() as Lsn;
    assert!(recovered >= synced, "{mode:?} crash_after {crash_after} {restart:?}: lost synced records");
    let report = wal.recovery_report();
    assert_eq!(report.last_lsn, recovered);
    assert!(report.skipped_ranges.is_empty());
    assert!(wal.segments().iter().all(|s| !s.path.to_string_lossy().ends_with(".tmp")));
    // The log is usable again and survives a clean reopen.
    let lsn = wal.append(7, b"after the crash").expect("append after recovery");
    assert_eq!(lsn, recovered + 1);
    wal.close().expect("close");
    let wal = open_ok(&fs, &cfg);
    assert_eq!(read_all(&wal).len() as Lsn, recovered + 1);
    assert!(fs.list_all_files().iter().all(|p| !p.to_string_lossy().ends_with(".tmp")));
    wal.close().expect("close");
    crashed
}

fn crash_after_bytes_sweep(mode: SyncMode, step: usize) {
    // How many bytes the whole workload writes, open and close included.
    let total = {
        let fs = FaultStorage::new();
        let cfg = WalConfig { max_records_per_segment: 8, ..config(mode) };
        let wal = open_ok(&fs, &cfg);
        for payloads in crash_workload() {
            wal.append_batch(payloads.iter().map(|p| (6u8, p.as_slice()))).expect("append");
        }
        assert!(wal.segments().len() >= 5, "the workload must rotate segments");
        wal.close().expect("close");
        fs.bytes_written()
    };
    let mut crashes = 0;
    for (i, n) in (0..total + 10).step_by(step).enumerate() {
        let restart = Restart::all(n)[i % 3];
        if crash_after_bytes_round(mode, n, restart) {
            crashes += 1;
        }
    }
    assert!(crashes as u64 >= total / step as u64 - 1, "{crashes} crashes over {total} bytes");
    // The exact boundaries around the first segment header.
    for n in [0, 1, 63, 64, 65] {
        for restart in Restart::all(n) {
            crash_after_bytes_round(mode, n, restart);
        }
    }
}

#[test]
fn crash_after_bytes_sweep_group() {
    crash_after_bytes_sweep(SyncMode::Group, 1);
}

#[test]
fn crash_after_bytes_sweep_always() {
    crash_after_bytes_sweep(SyncMode::Always, 5);
}

#[test]
fn crash_after_bytes_sweep_none() {
    crash_after_bytes_sweep(SyncMode::None, 3);
}

// ---------------------------------------------------------------------------------------------
// Bit flips

/// A closed log's files, to rebuild fresh storages from.
struct Snapshot {
    files: Vec<(PathBuf, Vec<u8>)>,
    records: Vec<Record>,
}

impl Snapshot {
    fn take(fs: &FaultStorage, records: Vec<Record>) -> Snapshot {
        let files = fs.list_all_files().into_iter().map(|p| (p.clone(), fs.file_bytes(&p).expect("file"))).collect();
        Snapshot { files, records }
    }

    fn restore(&self) -> FaultStorage {
        let fs = FaultStorage::new();
        for (path, bytes) in &self.files {
            fs.set_file_bytes(path, bytes.clone());
        }
        fs
    }

    fn file(&self, path: &Path) -> &[u8] {
        &self.files.iter().find(|(p, _)| p == path).expect("file in snapshot").1
    }
}

/// What opening and reading a damaged log gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FlipOutcome {
    OpenRefused,
    ReadCorruption,
    Undetected,
}

/// Flips one bit, reopens and reads everything. The log must refuse to open (`Corruption` or
/// `ForeignSegment`), or return original records followed by a `Corruption` error, or return
/// exactly the original records — never different data.
fn flip_and_read(snapshot: &Snapshot, cfg: &WalConfig, path: &Path, offset: u64, bit: u8) -> FlipOutcome {
    let fs = snapshot.restore();
    fs.flip_bit(path, offset, bit);
    let wal = match open(&fs, cfg) {
        Ok(wal) => wal,
        Err(WalError::Corruption { .. } | WalError::ForeignSegment { .. }) => return FlipOutcome::OpenRefused,
        Err(e) => panic!("flip at {}:{offset} bit {bit}: unexpected open error {e:?}", path.display()),
    };
    let mut reader = wal.reader(1).unwrap_or_else(|e| panic!("flip at {offset}: reader: {e}"));
    let mut i = 0;
    loop {
        match reader.next_record() {
            Ok(Some(rec)) => {
                let want = snapshot.records.get(i).unwrap_or_else(|| panic!("flip at {offset}: extra record {rec:?}"));
                assert_eq!(&rec, want, "flip at {}:{offset} bit {bit} returned different data", path.display());
                i += 1;
            }
            Ok(None) => {
                assert_eq!(i, snapshot.records.len(), "flip at {offset} bit {bit}: records silently missing");
                return FlipOutcome::Undetected;
            }
            Err(WalError::Corruption { .. }) => return FlipOutcome::ReadCorruption,
            Err(e) => panic!("flip at {}:{offset} bit {bit}: unexpected read error {e:?}", path.display()),
        }
    }
}

/// A closed log of several small sealed segments plus a non-empty active one.
fn sealed_segments_log() -> (Snapshot, WalConfig, Vec<PathBuf>) {
    let cfg = WalConfig { max_records_per_segment: 6, ..config(SyncMode::Group) };
    let fs = FaultStorage::new();
    let wal = open_ok(&fs, &cfg);
    for b in 0..20u32 {
        let payloads = batch_payloads(8, b, 1 + b as usize % 3, 5 + (b as usize * 41) % 120);
        wal.append_batch(payloads.iter().map(|p| (b as u8, p.as_slice()))).expect("append");
    }
    let sealed: Vec<PathBuf> = wal.segments().iter().filter(|s| s.sealed).map(|s| s.path.clone()).collect();
    assert!(sealed.len() >= 4, "{:?}", wal.segments());
    let records = read_all(&wal);
    wal.close().expect("close");
    (Snapshot::take(&fs, records), cfg, sealed)
}

#[test]
fn every_bit_flip_in_a_sealed_segment_is_detected() {
    let (snapshot, cfg, sealed) = sealed_segments_log();
    let mut outcomes = BTreeMap::new();
    // Every byte of the first and of a middle sealed segment, a different bit each time.
    for path in [&sealed[0], &sealed[1]] {
        let len = snapshot.file(path).len() as u64;
        for offset in 0..len {
            let outcome = flip_and_read(&snapshot, &cfg, path, offset, (offset % 8) as u8);
            *outcomes.entry(outcome).or_insert(0u32) += 1;
        }
    }
    // Random positions and bits across all sealed segments.
    let mut rng = StdRng::seed_from_u64(0xb17f_11b5);
    for _ in 0..500 {
        let path = &sealed[rng.random_range(0..sealed.len())];
        let offset = rng.random_range(0..snapshot.file(path).len() as u64);
        let outcome = flip_and_read(&snapshot, &cfg, path, offset, rng.random_range(0..8));
        *outcomes.entry(outcome).or_insert(0u32) += 1;
    }
    // Every byte of a sealed segment is covered by a checksum; a single flipped bit anywhere is
    // always detected (CRC-32 catches every single-bit error).
    assert_eq!(outcomes.get(&FlipOutcome::Undetected), None, "{outcomes:?}");
    assert!(outcomes.contains_key(&FlipOutcome::OpenRefused) && outcomes.contains_key(&FlipOutcome::ReadCorruption));
}

/// Flips in the active segment's records: the damaged record and everything after it are never
/// returned. Either the open fails with `Corruption` (valid records follow the damage) or the
/// damaged batch and what follows are truncated as a torn tail.
#[test]
fn bit_flips_in_the_active_tail_are_never_returned() {
    // Every open scans the active segment: no clean-close record (`tests/clean_close.rs` covers
    // the same flips with one).
    let cfg = WalConfig { clean_close_record: false, ..config(SyncMode::Group) };
    let fs = FaultStorage::new();
    let wal = open_ok(&fs, &cfg);
    let mut lens = Vec::new();
    for b in 0..4u32 {
        let payloads = batch_payloads(9, b, 1 + b as usize % 3, 20 + 9 * b as usize);
        lens.extend(payloads.iter().map(Vec::len));
        wal.append_batch(payloads.iter().map(|p| (1u8, p.as_slice()))).expect("append");
    }
    let active = wal.segments().last().expect("active").clone();
    assert!(!active.sealed && active.first_lsn == 1);
    let records = read_all(&wal);
    wal.close().expect("close");
    let snapshot = Snapshot::take(&fs, records);
    // Start offset, LSN and first LSN of the batch of every record.
    let mut layout = Vec::new();
    let mut offset = 64u64;
    let mut batch_start = 1;
    for (rec, len) in snapshot.records.iter().zip(&lens) {
        layout.push((offset, rec.lsn, batch_start));
        offset += 32 + *len as u64;
        if rec.batch_end {
            batch_start = rec.lsn + 1;
        }
    }
    assert_eq!(offset, snapshot.file(&active.path).len() as u64);
    let mut outcomes = BTreeMap::new();
    for byte in 64..offset {
        let bit = (byte * 5 % 8) as u8;
        let &(_, lsn, batch_start) = layout.iter().rev().find(|(start, _, _)| *start <= byte).expect("record");
        let fs = snapshot.restore();
        fs.flip_bit(&active.path, byte, bit);
        match open(&fs, &cfg) {
            Err(WalError::Corruption { segment, offset, lsn: at, .. }) => {
                assert_eq!(segment, active.path);
                let start = layout[lsn as usize - 1].0;
                assert_eq!((offset, at), (start, Some(lsn)), "damage at byte {byte} of the record at {start}");
                *outcomes.entry("corruption").or_insert(0u32) += 1;
            }
            Err(e) => panic!("flip at {byte}: unexpected error {e:?}"),
            Ok(wal) => {
                let got = read_all(&wal);
                let want: Vec<&Record> = snapshot.records.iter().filter(|r| r.lsn < batch_start).collect();
                assert_eq!(got.iter().collect::<Vec<_>>(), want, "flip at {byte} (LSN {lsn})");
                let report = wal.recovery_report();
                let tail = report.torn_tail.as_ref().expect("a torn tail was cut");
                assert_eq!(tail.offset, layout[batch_start as usize - 1].0, "flip at {byte}");
                assert_eq!(tail.records_dropped, lsn - batch_start, "flip at {byte}");
                *outcomes.entry("torn tail").or_insert(0u32) += 1;
            }
        }
    }
    assert!(outcomes.len() == 2, "{outcomes:?}");
}

// ---------------------------------------------------------------------------------------------
// Known bugs (see the report): these assert the documented guarantee.

/// After a process crash, recovery finds records that reached the page cache but were never
/// synced, reports them as durable and shows them to readers. A power loss must not take back
/// what `durable_lsn()` (and a successful `sync()`) said was durable.
#[test]
fn records_recovered_after_a_crash_are_made_durable() {
    // Group mode: the append whose fsync failed was written, not synced, and not acknowledged.
    let fs = FaultStorage::new();
    let cfg = config(SyncMode::Group);
    let wal = open_ok(&fs, &cfg);
    for i in 0..3u8 {
        wal.append(i, b"acked").expect("append");
    }
    fs.fail_next_sync();
    assert!(io_error(&wal.append(3, b"never acknowledged").unwrap_err()).is_some());
    fs.crash();
    drop(wal);
    let wal = open_ok(&fs, &cfg);
    let durable_claim = wal.durable_lsn();
    let seen_by_readers = read_all(&wal).len() as Lsn;
    fs.power_loss();
    drop(wal);
    let wal = open_ok(&fs, &cfg);
    let after = read_all(&wal).len() as Lsn;
    assert!(
        after >= durable_claim && after >= seen_by_readers,
        "Group: durable_lsn() said {durable_claim} and readers saw {seen_by_readers} records, \
         but only {after} survived the power loss"
    );
    wal.close().expect("close");

    // None mode: an explicit sync() after the crash must make the recovered records durable.
    let fs = FaultStorage::new();
    let cfg = config(SyncMode::None);
    let wal = open_ok(&fs, &cfg);
    wal.append(1, b"written, not synced").expect("append");
    wal.flush().expect("flush");
    fs.crash();
    drop(wal);
    let wal = open_ok(&fs, &cfg);
    let synced = wal.sync().expect("sync");
    assert_eq!(synced, 1);
    fs.power_loss();
    drop(wal);
    let wal = open_ok(&fs, &cfg);
    assert_eq!(read_all(&wal).len(), 1, "None: sync() returned 1 but the record did not survive a power loss");
    wal.close().expect("close");
}

/// `close()` promises to flush and fsync everything. When that is impossible because the log has
/// failed (here: the background syncer's fsync failed, so the user never saw an error), `close`
/// must not report success.
#[test]
fn close_of_a_failed_log_reports_the_failure() {
    let fs = FaultStorage::new();
    let cfg = config(SyncMode::IntervalMs(2));
    let wal = open_ok(&fs, &cfg);
    wal.append(1, b"acknowledged, not yet durable").expect("append");
    fs.fail_all_syncs(true);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !wal.is_failed() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(wal.is_failed(), "the background syncer's failed fsync fails the log");
    let result = wal.close();
    assert!(matches!(result, Err(WalError::Failed { .. })), "close() of a failed log returned {result:?}");
}
