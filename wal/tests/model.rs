//! Model-based property test of the WAL against the in-memory, fault-injecting `FaultStorage`.
//!
//! Random sequences of appends (single and batch), syncs, flushes, seals, reads, retention,
//! power losses (exact and with a random surviving prefix of unsynced data), process crashes and
//! clean reopens run against the real log and against a tiny model: a vector of records plus a
//! "durable through" watermark. Everything readable is compared with the model after every
//! operation that reads, and after every restart the log must hold exactly what the sync mode
//! promises: every acknowledged record in `Group`/`Always`; in `None` at least what was synced
//! explicitly, at most what was appended, and always whole batches.
//!
//! Small segments (4 KiB, at most 20 records, an index entry every 128 bytes) make rotation,
//! sealing and seeking across segments happen constantly. Set `PROPTEST_CASES` to run more cases.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::Config;
use walden_wal::testing::fault::FaultStorage;
use walden_wal::{Lsn, Record, SegmentInfo, SyncMode, Wal, WalConfig, WalError};

const MAX_RECORDS_PER_SEGMENT: u64 = 20;
const MAX_BATCH_RECORDS: usize = 6;

/// `preallocate_bytes` values the model runs with: off, a window small enough to be refilled
/// several times per segment, and the default (capped at the segment size: one fill per segment).
const PREALLOCATE_BYTES: [u64; 3] = [0, 512, walden_wal::RECOMMENDED_PREALLOCATE_BYTES];

fn config(sync_mode: SyncMode, compress: bool, preallocate_bytes: u64) -> WalConfig {
    WalConfig {
        preallocate_bytes,
        target_segment_size_bytes: 4096,
        max_records_per_segment: MAX_RECORDS_PER_SEGMENT,
        index_interval_bytes: 128,
        sync_mode,
        // Small enough that buffered (`None`) appends sometimes reach the OS on their own.
        write_buffer_bytes: 2048,
        compression_threshold_bytes: compress.then_some(64),
        ..WalConfig::default()
    }
}

/// One step of a test sequence.
#[derive(Clone)]
enum Op {
    Append {
        kind: u8,
        payload: Vec<u8>,
    },
    AppendBatch(Vec<(u8, Vec<u8>)>),
    Sync,
    Flush,
    Seal,
    /// Read `count` records from an LSN picked around the retained range; optionally seek the
    /// same reader elsewhere and read again.
    Read {
        from_pick: u64,
        count: usize,
        reseek: Option<(u64, usize)>,
    },
    /// `remove_segments_before` an LSN picked around the log.
    Remove {
        pick: u64,
    },
    PowerLoss,
    PowerLossKeepPrefix(u64),
    Crash,
    Reopen,
}

/// Compact: payloads print as `kind:len`, so a shrunk failing sequence fits on a screen.
impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Append { kind, payload } => write!(f, "Append({kind}:{})", payload.len()),
            Op::AppendBatch(batch) => {
                let parts: Vec<String> = batch.iter().map(|(k, p)| format!("{k}:{}", p.len())).collect();
                write!(f, "AppendBatch[{}]", parts.join(","))
            }
            Op::Sync => write!(f, "Sync"),
            Op::Flush => write!(f, "Flush"),
            Op::Seal => write!(f, "Seal"),
            Op::Read { from_pick, count, reseek } => write!(f, "Read({from_pick}, {count}, {reseek:?})"),
            Op::Remove { pick } => write!(f, "Remove({pick})"),
            Op::PowerLoss => write!(f, "PowerLoss"),
            Op::PowerLossKeepPrefix(seed) => write!(f, "PowerLossKeepPrefix({seed})"),
            Op::Crash => write!(f, "Crash"),
            Op::Reopen => write!(f, "Reopen"),
        }
    }
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..300),
        // Compressible payloads, for runs with compression on.
        1 => (any::<u8>(), 0..300usize).prop_map(|(b, n)| vec![b; n]),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (any::<u8>(), payload()).prop_map(|(kind, payload)| Op::Append { kind, payload }),
        6 => proptest::collection::vec((any::<u8>(), payload()), 1..=MAX_BATCH_RECORDS).prop_map(Op::AppendBatch),
        2 => Just(Op::Sync),
        2 => Just(Op::Flush),
        2 => Just(Op::Seal),
        4 => (any::<u64>(), 1..40usize, proptest::option::of((any::<u64>(), 1..20usize)))
            .prop_map(|(from_pick, count, reseek)| Op::Read { from_pick, count, reseek }),
        2 => any::<u64>().prop_map(|pick| Op::Remove { pick }),
        1 => Just(Op::PowerLoss),
        1 => any::<u64>().prop_map(Op::PowerLossKeepPrefix),
        1 => Just(Op::Crash),
        1 => Just(Op::Reopen),
    ]
}

fn sync_mode() -> impl Strategy<Value = SyncMode> {
    prop_oneof![Just(SyncMode::Group), Just(SyncMode::Always), Just(SyncMode::None)]
}

/// A record as the model knows it. Index in `Model::records` is `lsn - 1`.
#[derive(Debug, Clone)]
struct ModelRecord {
    kind: u8,
    payload: Vec<u8>,
    batch_end: bool,
    /// Learned on the first read; must never change afterwards.
    timestamp_us: Option<u64>,
}

#[derive(Debug, Default)]
struct Model {
    records: Vec<ModelRecord>,
    /// Oldest LSN still retained.
    oldest: Lsn,
    /// Every LSN up to here is guaranteed to survive a power loss.
    durable: Lsn,
}

impl Model {
    fn last(&self) -> Lsn {
        self.records.len() as Lsn
    }

    fn push_batch(&mut self, batch: &[(u8, Vec<u8>)]) {
        for (i, (kind, payload)) in batch.iter().enumerate() {
            self.records.push(ModelRecord {
                kind: *kind,
                payload: payload.clone(),
                batch_end: i + 1 == batch.len(),
                timestamp_us: None,
            });
        }
    }

    /// Whether a log ending at `lsn` ends on a batch boundary.
    fn is_batch_boundary(&self, lsn: Lsn) -> bool {
        lsn == 0 || self.records.get(lsn as usize - 1).is_some_and(|r| r.batch_end)
    }

    /// Checks one record read from the log against the model (and learns its timestamp).
    fn check_record(&mut self, rec: &Record, expected_lsn: Lsn) {
        assert_eq!(rec.lsn, expected_lsn, "reader returned LSN {} where {expected_lsn} was expected", rec.lsn);
        let m = self.records.get_mut(expected_lsn as usize - 1).expect("LSN within the model");
        assert_eq!(rec.kind, m.kind, "kind of LSN {expected_lsn}");
        assert_eq!(&rec.payload[..], &m.payload[..], "payload of LSN {expected_lsn}");
        assert_eq!(rec.batch_end, m.batch_end, "batch_end of LSN {expected_lsn}");
        match m.timestamp_us {
            Some(ts) => assert_eq!(rec.timestamp_us, ts, "timestamp of LSN {expected_lsn} changed"),
            None => m.timestamp_us = Some(rec.timestamp_us),
        }
        if expected_lsn > 1
            && let Some(prev) = self.records[expected_lsn as usize - 2].timestamp_us
        {
            assert!(rec.timestamp_us >= prev, "timestamp of LSN {expected_lsn} goes backwards");
        }
    }
}

struct Harness {
    fs: FaultStorage,
    dir: PathBuf,
    config: WalConfig,
    wal: Option<Wal>,
    model: Model,
    /// Last LSN when the log was last opened (a clean-close record may be trusted after a crash
    /// only if nothing was written since).
    opened_at: Lsn,
}

fn open(fs: &FaultStorage, dir: &Path, config: &WalConfig) -> Wal {
    match Wal::open_with_storage(dir, config.clone(), Arc::new(fs.clone())) {
        Ok(wal) => wal,
        Err(e) => panic!("open failed: {e}"),
    }
}

impl Harness {
    fn new(sync_mode: SyncMode, compress: bool, preallocate_bytes: u64) -> Harness {
        let fs = FaultStorage::new();
        let dir = PathBuf::from("/wal");
        let config = config(sync_mode, compress, preallocate_bytes);
        let wal = open(&fs, &dir, &config);
        let model = Model { records: Vec::new(), oldest: 1, durable: 0 };
        Harness { fs, dir, config, wal: Some(wal), model, opened_at: 0 }
    }

    fn wal(&self) -> &Wal {
        self.wal.as_ref().expect("open")
    }

    fn durable_mode(&self) -> bool {
        self.config.sync_mode.is_durable()
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Append { kind, payload } => {
                let expected = self.model.last() + 1;
                let lsn = self.wal().append(*kind, payload).expect("append");
                assert_eq!(lsn, expected);
                self.model.push_batch(&[(*kind, payload.clone())]);
                self.after_append();
            }
            Op::AppendBatch(batch) => {
                let first = self.model.last() + 1;
                let range = self.wal().append_batch(batch.iter().map(|(k, p)| (*k, p.as_slice()))).expect("append");
                assert_eq!(range, first..=first + batch.len() as Lsn - 1);
                self.model.push_batch(batch);
                self.after_append();
            }
            Op::Sync => {
                let durable = self.wal().sync().expect("sync");
                assert_eq!(durable, self.model.last(), "sync returns the durable LSN");
                self.model.durable = self.model.last();
                assert_eq!(self.wal().visible_lsn(), self.model.last());
            }
            Op::Flush => {
                self.wal().flush().expect("flush");
                assert_eq!(self.wal().visible_lsn(), self.model.last(), "flush makes everything visible");
            }
            Op::Seal => {
                self.wal().seal_active_segment().expect("seal");
                self.model.durable = self.model.last();
                assert_eq!(self.wal().durable_lsn(), self.model.last());
                let segments = self.wal().segments();
                let active = segments.last().expect("an active segment");
                assert!(!active.sealed);
                assert_eq!(active.first_lsn, self.model.last() + 1, "after a seal the active segment is empty");
                assert_eq!(active.last_lsn, self.model.last());
            }
            Op::Read { from_pick, count, reseek } => self.read(*from_pick, *count, *reseek),
            Op::Remove { pick } => self.remove(*pick),
            Op::PowerLoss => self.restart(Restart::PowerLoss),
            Op::PowerLossKeepPrefix(seed) => self.restart(Restart::PowerLossKeepPrefix(*seed)),
            Op::Crash => self.restart(Restart::Crash),
            Op::Reopen => self.restart(Restart::Clean),
        }
        let wal = self.wal();
        assert!(!wal.is_failed());
        assert_eq!(wal.next_lsn(), self.model.last() + 1);
        assert_eq!(wal.oldest_lsn(), self.model.oldest);
        assert!(wal.durable_lsn() <= self.model.last() && wal.visible_lsn() <= self.model.last());
        assert!(wal.durable_lsn() >= self.model.durable, "durable LSN went below what was synced");
        self.check_segments();
    }

    fn after_append(&mut self) {
        let last = self.model.last();
        if self.durable_mode() {
            // Acknowledged in a durable mode means durable, and readers see it.
            self.model.durable = last;
            assert_eq!(self.wal().durable_lsn(), last);
            assert_eq!(self.wal().visible_lsn(), last);
        }
    }

    /// Picks an LSN from just below the oldest retained one to just past the end.
    fn pick_lsn(&self, pick: u64) -> Lsn {
        let lo = self.model.oldest.saturating_sub(2);
        let hi = self.model.last() + 2;
        lo + pick % (hi - lo + 1)
    }

    fn read(&mut self, from_pick: u64, count: usize, reseek: Option<(u64, usize)>) {
        let from = self.pick_lsn(from_pick);
        let Some(mut reader) = self.reader_or_expected_error(from) else { return };
        self.read_n(&mut reader, from.max(1), count);
        if let Some((pick, count)) = reseek {
            let to = self.pick_lsn(pick);
            match (reader.seek(to), self.expected_position_error(to)) {
                (Ok(()), None) => self.read_n(&mut reader, to.max(1), count),
                (Err(got), Some(want)) => assert_eq!(format!("{got:?}"), format!("{want:?}")),
                (got, want) => panic!("seek({to}): got {got:?}, expected {want:?}"),
            }
        }
    }

    /// The error a reader positioned at `lsn` must give, if any.
    fn expected_position_error(&self, lsn: Lsn) -> Option<WalError> {
        let lsn = lsn.max(1);
        if lsn < self.model.oldest {
            Some(WalError::LsnNotFound { requested: lsn, oldest_available: self.model.oldest })
        } else if lsn > self.model.last() + 1 {
            Some(WalError::LsnBeyondEnd { requested: lsn, next_lsn: self.model.last() + 1 })
        } else {
            None
        }
    }

    fn reader_or_expected_error(&self, from: Lsn) -> Option<walden_wal::Reader> {
        match (self.wal().reader(from), self.expected_position_error(from)) {
            (Ok(reader), None) => Some(reader),
            (Err(got), Some(want)) => {
                assert_eq!(format!("{got:?}"), format!("{want:?}"));
                None
            }
            (got, want) => panic!("reader({from}): got {got:?}, expected {want:?}"),
        }
    }

    /// Reads up to `count` records starting at `from` and compares them with the model. Every
    /// appended record is readable (`None` mode flushes buffered records for the reader).
    fn read_n(&mut self, reader: &mut walden_wal::Reader, from: Lsn, count: usize) {
        let available = (self.model.last() + 1 - from) as usize;
        for i in 0..count.min(available) {
            let rec = match reader.next_record() {
                Ok(Some(rec)) => rec,
                other => panic!("reading LSN {} of {}: {other:?}", from + i as Lsn, self.model.last()),
            };
            self.model.check_record(&rec, from + i as Lsn);
        }
        if count > available {
            assert_eq!(reader.next_record().expect("read at end").map(|r| r.lsn), None, "record past the end");
        }
    }

    /// Reads exactly `[from, to]` without asking past `to` (so `None` mode is not flushed).
    fn verify_range(&mut self, from: Lsn, to: Lsn) {
        if from > to {
            return;
        }
        let mut reader = self.wal().reader(from).expect("reader");
        self.read_n(&mut reader, from, (to - from + 1) as usize);
    }

    /// Reads everything from the oldest retained LSN to the end, and checks what lies before.
    fn verify_all(&mut self) {
        let oldest = self.model.oldest;
        let mut reader = self.wal().reader(oldest).expect("reader");
        let n = (self.model.last() + 1 - oldest) as usize;
        self.read_n(&mut reader, oldest, n + 1);
        if oldest > 1 {
            match self.wal().reader(oldest - 1) {
                Err(WalError::LsnNotFound { requested, oldest_available }) => {
                    assert_eq!((requested, oldest_available), (oldest - 1, oldest));
                }
                other => panic!("reader below the oldest LSN: {other:?}"),
            }
        }
    }

    fn remove(&mut self, pick: u64) {
        let lsn = self.pick_lsn(pick);
        let before = self.wal().segments();
        let expected: Vec<SegmentInfo> =
            before[..before.len() - 1].iter().filter(|s| s.sealed && s.last_lsn < lsn).cloned().collect();
        assert_eq!(&before[..expected.len()], &expected[..], "removal takes a prefix of the segments");
        let removed = self.wal().remove_segments_before(lsn).expect("remove_segments_before");
        assert_eq!(removed, expected, "remove_segments_before({lsn})");
        if let Some(last) = removed.last() {
            self.model.oldest = last.last_lsn + 1;
        }
        for seg in &removed {
            assert!(self.fs.file_bytes(&seg.path).is_none(), "{} still exists", seg.path.display());
        }
        let after = self.wal().segments();
        assert_eq!(&after[..], &before[removed.len()..]);
        if !removed.is_empty() {
            assert!(after[0].first_lsn <= lsn, "removed past {lsn}: {after:?}");
        }
        // Everything retained and written is still readable (without flushing `None` mode).
        let visible = self.wal().visible_lsn();
        self.verify_range(self.model.oldest, visible);
        if self.model.oldest > 1 {
            assert!(matches!(self.wal().reader(self.model.oldest - 1), Err(WalError::LsnNotFound { .. })));
        }
    }

    fn restart(&mut self, how: Restart) {
        let wal = self.wal.take().expect("open");
        let last = self.model.last();
        let durable_claim = wal.durable_lsn();
        let visible_before = wal.visible_lsn();
        match how {
            Restart::Clean => wal.close().expect("close"),
            Restart::Crash => {
                self.fs.crash();
                drop(wal);
            }
            Restart::PowerLoss => {
                self.fs.power_loss();
                drop(wal);
            }
            Restart::PowerLossKeepPrefix(seed) => {
                self.fs.power_loss_keep_random_prefix(seed);
                drop(wal);
            }
        }
        let wal = open(&self.fs, &self.dir, &self.config);
        let report = wal.recovery_report().clone();
        let recovered = wal.next_lsn() - 1;
        assert_eq!(report.last_lsn, recovered);
        assert_eq!(report.oldest_lsn, self.model.oldest, "retention lost or undone: {report:?}");
        assert!(recovered <= last, "recovered LSN {recovered} beyond the {last} appended");
        assert!(self.model.is_batch_boundary(recovered), "recovered a partial batch ending at {recovered}");
        assert!(recovered >= self.model.durable, "lost synced records: {recovered} < {}", self.model.durable);
        assert!(recovered >= durable_claim, "lost records the WAL claimed durable: {recovered} < {durable_claim}");
        assert!(report.skipped_ranges.is_empty(), "{report:?}");
        assert_eq!(report.bytes_truncated, report.torn_tail.as_ref().map_or(0, |t| t.bytes), "{report:?}");
        // A clean-close record is cleared before the first write after open, so one trusted after
        // a crash or power loss means nothing was written since the open (the log is unchanged).
        assert!(report.clean_close_rejected.is_none(), "the WAL left an untrustworthy record: {report:?}");
        if report.active_segment_trusted && !matches!(how, Restart::Clean) {
            assert_eq!(recovered, self.opened_at, "trusted a clean-close record after writes: {report:?}");
        }
        match how {
            Restart::Clean => {
                assert_eq!(recovered, last);
                assert_eq!(report.bytes_truncated, 0, "{report:?}");
                assert_eq!(report.preallocated_bytes, 0, "close leaves no preallocated zeros: {report:?}");
                assert_eq!(report.sealed_segments_trusted, report.segment_count - 1, "{report:?}");
                assert!(report.active_segment_trusted, "a clean close was not trusted: {report:?}");
            }
            Restart::Crash => {
                // The page cache survives: everything handed to the OS is there.
                assert_eq!(recovered, visible_before, "a process crash lost written records");
                assert_eq!(report.torn_tail, None, "writes between operations are whole batches");
            }
            Restart::PowerLoss => {
                assert!(recovered <= visible_before, "unwritten records survived a power loss");
                assert_eq!(report.torn_tail, None, "syncs happen on batch boundaries");
            }
            Restart::PowerLossKeepPrefix(_) => {
                assert!(recovered <= visible_before, "unwritten records survived a power loss");
            }
        }
        if self.durable_mode() {
            assert_eq!(recovered, last, "an acknowledged append was lost");
        }
        self.opened_at = recovered;
        self.model.records.truncate(recovered as usize);
        match how {
            // After a power loss what survived is on disk; a clean close synced everything.
            Restart::Clean | Restart::PowerLoss | Restart::PowerLossKeepPrefix(_) => self.model.durable = recovered,
            // After a process crash the surviving page cache is no more durable than before.
            Restart::Crash => {}
        }
        self.wal = Some(wal);
        self.verify_all();
    }

    /// Segment invariants: contiguous, all sealed but the last, starting at the oldest retained
    /// LSN, bounded in size, and no batch split across segments.
    fn check_segments(&self) {
        let segments = self.wal().segments();
        let (active, sealed) = segments.split_last().expect("an active segment");
        assert!(!active.sealed, "the last segment is active");
        assert_eq!(segments[0].first_lsn, self.model.oldest);
        for pair in segments.windows(2) {
            assert_eq!(pair[0].last_lsn + 1, pair[1].first_lsn, "segments not contiguous: {segments:#?}");
        }
        assert!(active.last_lsn + 1 >= active.first_lsn && active.last_lsn <= self.model.last());
        for seg in sealed {
            assert!(seg.sealed && seg.last_lsn >= seg.first_lsn, "{seg:?}");
            // Sealed files end in their footer: no preallocated zeros are left behind it.
            let file = self.fs.file_bytes(&seg.path).expect("sealed segment file");
            assert_eq!(file.len() as u64, seg.size_bytes, "sealed segment file length: {seg:?}");
            assert!(file.ends_with(b"WALDSEAL"), "sealed segment does not end in its trailer: {seg:?}");
            let records = seg.last_lsn - seg.first_lsn + 1;
            assert!(records < MAX_RECORDS_PER_SEGMENT + MAX_BATCH_RECORDS as u64, "{seg:?}");
            assert!(self.model.is_batch_boundary(seg.first_lsn - 1), "segment starts inside a batch: {seg:?}");
            assert!(self.model.is_batch_boundary(seg.last_lsn), "segment ends inside a batch: {seg:?}");
        }
        assert!(self.model.is_batch_boundary(active.first_lsn - 1), "segment starts inside a batch: {active:?}");
    }
}

#[derive(Debug, Clone, Copy)]
enum Restart {
    Clean,
    Crash,
    PowerLoss,
    PowerLossKeepPrefix(u64),
}

fn run_sequence(sync_mode: SyncMode, compress: bool, preallocate_bytes: u64, ops: &[Op]) {
    let mut h = Harness::new(sync_mode, compress, preallocate_bytes);
    for op in ops {
        h.run(op);
    }
    // Finally: a clean reopen shows everything.
    h.restart(Restart::Clean);
    h.wal.take().expect("open").close().expect("close");
}

fn proptest_config() -> Config {
    // `PROPTEST_CASES` (read by `Config::default`) overrides the quick default.
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() { Config::default().cases } else { 512 };
    // Failures are reported with the shrunk operation sequence; no regression files are written.
    Config { cases, failure_persistence: None, ..Config::default() }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn wal_matches_model(
        sync_mode in sync_mode(),
        compress in any::<bool>(),
        preallocate_bytes in proptest::sample::select(PREALLOCATE_BYTES.to_vec()),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        run_sequence(sync_mode, compress, preallocate_bytes, &ops);
    }
}

/// Enough appends to seal several segments, then every kind of restart, in every mode.
#[test]
fn deterministic_sequence_every_mode() {
    let mut ops = Vec::new();
    for i in 0..70u8 {
        if i % 7 == 0 {
            ops.push(Op::AppendBatch((0..5).map(|j| (j, vec![i; 40 + usize::from(j)])).collect()));
        } else {
            ops.push(Op::Append { kind: i, payload: vec![i; usize::from(i) * 3] });
        }
        match i {
            20 => ops.push(Op::Read { from_pick: 3, count: 100, reseek: Some((50, 10)) }),
            30 => ops.push(Op::Remove { pick: 25 }),
            35 => ops.push(Op::Sync),
            40 => ops.push(Op::Crash),
            45 => ops.push(Op::PowerLoss),
            50 => ops.push(Op::Seal),
            55 => ops.push(Op::PowerLossKeepPrefix(7)),
            60 => ops.push(Op::Flush),
            65 => ops.push(Op::Reopen),
            _ => {}
        }
    }
    for mode in [SyncMode::Group, SyncMode::Always, SyncMode::None] {
        for compress in [false, true] {
            for preallocate_bytes in PREALLOCATE_BYTES {
                run_sequence(mode, compress, preallocate_bytes, &ops);
            }
        }
    }
}
