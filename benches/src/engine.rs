//! Engine workload: one-row transactions committed through `walden-engine`, durable per the sync
//! mode, paired in time with the raw `fdatasync` loop ([`RawPairing`]).

use std::sync::atomic::{AtomicU64, Ordering};

use walden_engine::{Config, Database, EngineRecord, Lsn, SyncMode};

use crate::workloads::{XorShift, check};
use crate::{BenchError, BenchRoot, Paired, RawPairing, Sample};

/// Table every benchmark transaction writes to.
pub const ENGINE_BENCH_TABLE: &str = "bench";

/// A database in a durable mode ([`SyncMode::Always`] or [`SyncMode::Group`]) that keeps
/// growing across runs; each operation is one transaction with one INSERT of a
/// `row_bytes`-byte row under a unique 8-byte key (BEGIN, INSERT, COMMIT: one WAL batch of three
/// records). The raw loop beside it writes as many bytes per operation as one commit adds to
/// the log.
#[derive(Debug)]
pub struct EngineCommits {
    db: Database,
    row: Vec<u8>,
    pairing: RawPairing,
    next_key: AtomicU64,
    commit_bytes: u64,
    // Declared last: the directory outlives the database.
    _dir: tempfile::TempDir,
}

impl EngineCommits {
    /// Opens a new database under `root` and makes one commit (untimed) to learn how many log
    /// bytes a commit writes.
    pub fn new(root: &BenchRoot, sync_mode: SyncMode, row_bytes: usize) -> Result<EngineCommits, BenchError> {
        check(sync_mode.is_durable(), || format!("EngineCommits needs a durable mode, not {sync_mode:?}"))?;
        let dir = root.tempdir()?;
        let db = Database::open(dir.path(), Config::with_sync_mode(sync_mode))?;
        let row = XorShift::new(5).bytes(row_bytes);
        let before = db.wal().stats().bytes_written;
        let mut txn = db.begin();
        txn.insert(ENGINE_BENCH_TABLE, &u64::MAX.to_be_bytes(), &row)?;
        txn.commit()?;
        let commit_bytes = db.wal().stats().bytes_written - before;
        check(commit_bytes > row_bytes as u64, || format!("a commit of a {row_bytes} B row wrote {commit_bytes} B"))?;
        let pairing = RawPairing::new(root, commit_bytes as usize)?;
        Ok(EngineCommits { db, row, pairing, next_key: AtomicU64::new(0), commit_bytes, _dir: dir })
    }

    /// Log bytes one commit writes (three WAL records: headers and payloads).
    pub fn commit_bytes(&self) -> u64 {
        self.commit_bytes
    }

    /// Row payload bytes per commit.
    pub fn row_bytes(&self) -> usize {
        self.row.len()
    }

    /// `threads` committers each make `commits_per_thread` one-row transactions, with the raw
    /// loop beside them (see [`RawPairing::run`]); each commit's latency is kept. Checks every
    /// commit was acknowledged once, in order per thread, and that the log holds exactly those
    /// transactions (BEGIN, the INSERT with its key, COMMIT; contiguous), durable.
    pub fn run(&mut self, threads: usize, commits_per_thread: u64) -> Result<Paired, BenchError> {
        let before = self.db.wal().stats();
        let first_lsn = self.db.wal().next_lsn();
        let first_key = self.next_key.load(Ordering::Relaxed);
        let (db, row, next_key) = (&self.db, &self.row, &self.next_key);
        let run = self.pairing.run(threads, commits_per_thread, |_| {
            let key = next_key.fetch_add(1, Ordering::Relaxed);
            let mut txn = db.begin();
            txn.insert(ENGINE_BENCH_TABLE, &key.to_be_bytes(), row)?;
            Ok(txn.commit()?)
        })?;
        run.check_acks(commits_per_thread)?;
        let commits = threads as u64 * commits_per_thread;
        let after = self.db.wal().stats();
        check(self.db.wal().durable_lsn() + 1 == first_lsn + 3 * commits, || {
            format!("engine: {commits} commits from LSN {first_lsn}, durable LSN {}", self.db.wal().durable_lsn())
        })?;
        let mut acked: Vec<Lsn> = run.acked_lsns.iter().flatten().copied().collect();
        acked.sort_unstable();
        self.check_log(first_lsn, first_key..first_key + commits, &acked)?;
        let wal = Sample {
            elapsed: run.work_elapsed,
            ops: commits,
            bytes: commits * self.row.len() as u64,
            syncs: after.data_syncs - before.data_syncs,
            latencies: run.latencies,
            ..Sample::default()
        };
        Ok(Paired { wal, raw: run.raw })
    }

    /// Reads the log from `first_lsn` back: BEGIN / INSERT / COMMIT triples whose COMMIT LSNs are
    /// exactly `acked` (sorted) and whose keys are exactly `keys`, each once.
    fn check_log(&self, first_lsn: Lsn, keys: std::ops::Range<u64>, acked: &[Lsn]) -> Result<(), BenchError> {
        let mut seen_keys = Vec::with_capacity(acked.len());
        let mut reader = self.db.read_log(first_lsn)?;
        for (i, &commit_lsn) in acked.iter().enumerate() {
            let begin_lsn = commit_lsn - 2;
            let mut next = || -> Result<walden_engine::LogEntry, BenchError> {
                reader
                    .next_entry()?
                    .ok_or_else(|| BenchError::Check(format!("engine: log ends before LSN {commit_lsn}")))
            };
            let (begin, change, commit) = (next()?, next()?, next()?);
            let ok = begin.lsn == begin_lsn
                && matches!(&begin.record, EngineRecord::Begin(b) if b.change_count == 1)
                && [change.txn_id, commit.txn_id] == [begin_lsn, begin_lsn]
                && commit.lsn == commit_lsn
                && matches!(&commit.record, EngineRecord::Commit(c) if c.change_count == 1);
            check(ok, || format!("engine: transaction {i} of the run is not BEGIN, INSERT, COMMIT at {begin_lsn}"))?;
            match &change.record {
                EngineRecord::Change(c)
                    if c.table == ENGINE_BENCH_TABLE && c.after.as_deref() == Some(&self.row[..]) =>
                {
                    let key: [u8; 8] = c.key[..]
                        .try_into()
                        .map_err(|_| BenchError::Check(format!("engine: key of {} bytes", c.key.len())))?;
                    seen_keys.push(u64::from_be_bytes(key));
                }
                other => return Err(BenchError::Check(format!("engine: LSN {} holds {other:?}", change.lsn))),
            }
        }
        check(reader.next_entry()?.is_none(), || "engine: the log holds more than the run's commits".to_string())?;
        seen_keys.sort_unstable();
        check(seen_keys.iter().copied().eq(keys.clone()), || format!("engine: keys are not exactly {keys:?}"))
    }
}
