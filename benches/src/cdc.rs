//! CDC workloads through `walden-cdc`'s change stream: decode throughput and filtered replay
//! over a pre-written log, and commit → subscriber latency on a live tail.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use walden_cdc::{Cdc, ChangeEvent, ChangeStream, Event, Filter, Operation, SubscriptionOptions};
use walden_engine::{Config, Database, Lsn, SyncMode};

use crate::report::thread_cpu_time;
use crate::workloads::{XorShift, check};
use crate::{BenchError, BenchRoot, Sample, Scale};

/// Tables of the pre-written log; change `i` goes to `CDC_TABLES[i % 4]`.
pub const CDC_TABLES: [&str; 4] = ["users", "orders", "payments", "events"];

/// The table the filtered replay subscribes to (a quarter of the changes).
pub const CDC_FILTER_TABLE: &str = CDC_TABLES[1];

/// How long the latency subscriber waits for the next event before it gives up (the writer
/// commits every few hundred µs, so this only ends a broken run).
const SUBSCRIBER_STALL_LIMIT: Duration = Duration::from_secs(10);

/// The table of change number `i` of the pre-written log.
pub(crate) fn table_index(i: u64) -> usize {
    (i % CDC_TABLES.len() as u64) as usize
}

/// The operation of change number `i`: runs of four alike, five inserts, two updates, one
/// delete in every 32 changes (so every table sees every operation).
pub(crate) fn op_of(i: u64) -> Operation {
    match (i / 4) % 8 {
        0..=4 => Operation::Insert,
        5 | 6 => Operation::Update,
        _ => Operation::Delete,
    }
}

/// Checks that `event` is change number `i` of the pre-written log (key, table, operation,
/// images) and comes after `prev_lsn`; returns its LSN.
fn check_change(event: &ChangeEvent, i: u64, prev_lsn: Lsn) -> Result<Lsn, BenchError> {
    let op = op_of(i);
    let ok = event.lsn > prev_lsn
        && event.key[..] == i.to_be_bytes()
        && event.table == CDC_TABLES[table_index(i)]
        && event.op == op
        && event.data.is_some() == (op != Operation::Delete)
        && event.old_data.is_some() == (op != Operation::Insert);
    if ok {
        Ok(event.lsn)
    } else {
        Err(BenchError::Check(format!(
            "cdc: change {i} expected ({op:?} on {} after LSN {prev_lsn}), got {:?} on {} at LSN {} (key {:?})",
            CDC_TABLES[table_index(i)],
            event.op,
            event.table,
            event.lsn,
            &event.key[..]
        )))
    }
}

/// A pre-written log for the replay benchmarks: `scale.cdc_changes` row changes of
/// `scale.cdc_row_bytes` in transactions of `scale.cdc_changes_per_txn`, over four tables, every
/// segment sealed (a replay reads history; the live tail is the latency benchmark's).
#[derive(Debug)]
pub struct CdcLog {
    cdc: Cdc,
    changes: u64,
    first_lsn: Lsn,
    last_lsn: Lsn,
    // Declared last: the directory outlives the database.
    _dir: tempfile::TempDir,
}

impl CdcLog {
    /// Writes the log (SyncMode::None, then sealed and fsynced; untimed).
    pub fn build(root: &BenchRoot, scale: &Scale) -> Result<CdcLog, BenchError> {
        let per_txn = scale.cdc_changes_per_txn.max(1);
        check(scale.cdc_changes.is_multiple_of(per_txn) && scale.cdc_changes > 0, || {
            format!("cdc: {} changes are not whole transactions of {per_txn}", scale.cdc_changes)
        })?;
        let dir = root.tempdir()?;
        let db = Arc::new(Database::open(dir.path(), Config::with_sync_mode(SyncMode::None))?);
        let row = XorShift::new(6).bytes(scale.cdc_row_bytes);
        let first_lsn = db.wal().next_lsn();
        for t in 0..scale.cdc_changes / per_txn {
            let mut txn = db.begin();
            for i in t * per_txn..(t + 1) * per_txn {
                let (table, key) = (CDC_TABLES[table_index(i)], i.to_be_bytes());
                match op_of(i) {
                    Operation::Insert => txn.insert(table, &key, &row)?,
                    Operation::Update => txn.update(table, &key, &row, &row)?,
                    Operation::Delete => txn.delete(table, &key, &row)?,
                }
            }
            txn.commit()?;
        }
        db.wal().seal_active_segment()?;
        let last_lsn = db.wal().next_lsn() - 1;
        let transactions = scale.cdc_changes / per_txn;
        check(last_lsn + 1 - first_lsn == scale.cdc_changes + 2 * transactions, || {
            format!("cdc: log holds LSNs {first_lsn}..={last_lsn} for {} changes", scale.cdc_changes)
        })?;
        Ok(CdcLog { cdc: Cdc::new(db), changes: scale.cdc_changes, first_lsn, last_lsn, _dir: dir })
    }

    /// Row changes in the log.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// WAL records in the log (changes plus a BEGIN and a COMMIT per transaction).
    pub fn records(&self) -> u64 {
        self.last_lsn + 1 - self.first_lsn
    }

    fn options(&self) -> SubscriptionOptions {
        SubscriptionOptions { end_lsn: Some(self.last_lsn), ..SubscriptionOptions::from_lsn(self.first_lsn) }
    }

    /// Every change event of the log through an unfiltered [`walden_cdc::ChangeStream`] (opened
    /// inside the timing), each checked to be the next change in order.
    pub fn decode(&self) -> Result<Sample, BenchError> {
        self.replay(self.options(), 1)
    }

    /// The changes of [`CDC_FILTER_TABLE`] only (a table filter), each checked to be the next
    /// change of that table in order; the sample's operations are the delivered events.
    pub fn filtered_replay(&self) -> Result<Sample, BenchError> {
        let options = self.options().with_filter(Filter::all().tables([CDC_FILTER_TABLE]));
        self.replay(options, CDC_TABLES.len() as u64)
    }

    /// Replays with `options`, expecting change `i` for `i ≡ CDC_FILTER_TABLE's index (mod
    /// stride)` — every change for a stride of 1.
    fn replay(&self, options: SubscriptionOptions, stride: u64) -> Result<Sample, BenchError> {
        let offset = if stride == 1 { 0 } else { table_index_of(CDC_FILTER_TABLE)? as u64 };
        let expected = (self.changes + stride - 1 - offset) / stride;
        let cpu_start = thread_cpu_time();
        let start = Instant::now();
        let mut stream = self.cdc.subscribe(options)?;
        let mut delivered = 0u64;
        let mut prev_lsn = 0;
        while let Some(item) = stream.try_next() {
            let Event::Change(change) = item? else {
                return Err(BenchError::Check("cdc: a non-change event without transaction control".to_string()));
            };
            check(delivered < expected, || format!("cdc: more than the {expected} expected events"))?;
            prev_lsn = check_change(&change, offset + delivered * stride, prev_lsn)?;
            delivered += 1;
        }
        let elapsed = start.elapsed();
        let cpu = thread_cpu_time().saturating_sub(cpu_start);
        check(delivered == expected && stream.is_ended(), || {
            format!("cdc: delivered {delivered} of {expected} events (stream ended: {})", stream.is_ended())
        })?;
        Ok(Sample { elapsed, ops: delivered, cpu, ..Sample::default() })
    }
}

fn table_index_of(table: &str) -> Result<usize, BenchError> {
    CDC_TABLES.iter().position(|t| *t == table).ok_or_else(|| BenchError::Check(format!("cdc: no table {table}")))
}

/// Commit → subscriber latency on a live tail with [`SyncMode::None`]: a fresh database, a
/// subscriber thread blocked in its [`walden_cdc::ChangeStream`] (woken by commits), and a
/// writer committing `commits` one-row transactions, one every `interval` (open loop: the
/// writer never waits for the subscriber). Each row carries the time it was committed; the
/// latency is from just before the writer builds and commits the transaction to the moment the
/// subscriber holds the event. Checks every event arrives once, in order. The sample's elapsed
/// time is the wall time of the run (about `commits × interval`), its latencies the figures.
pub fn commit_to_subscriber_latency(
    root: &BenchRoot,
    commits: u64,
    row_bytes: usize,
    interval: Duration,
) -> Result<Sample, BenchError> {
    let dir = root.tempdir()?;
    let db = Arc::new(Database::open(dir.path(), Config::with_sync_mode(SyncMode::None))?);
    let cdc = Cdc::new(db.clone());
    let mut stream = cdc.subscribe(SubscriptionOptions::from_lsn(db.wal().next_lsn()))?;
    let run = LatencyRun { commits, row_bytes: row_bytes.max(8), interval, epoch: Instant::now() };
    let writer_failed = AtomicBool::new(false);
    let (writer_result, subscriber_result) = std::thread::scope(|s| {
        let subscriber = s.spawn(|| run.subscribe(&mut stream, &writer_failed));
        let writer_result = run.write(&db);
        if writer_result.is_err() {
            writer_failed.store(true, Ordering::Release);
        }
        let subscriber_result = subscriber
            .join()
            .unwrap_or_else(|_| Err(BenchError::Check("cdc latency: the subscriber thread panicked".to_string())));
        (writer_result, subscriber_result)
    });
    let elapsed = run.epoch.elapsed();
    writer_result?;
    let latencies = subscriber_result?;
    drop(cdc);
    drop(db);
    Ok(Sample { elapsed, ops: commits, latencies, ..Sample::default() })
}

/// What the writer and the subscriber of [`commit_to_subscriber_latency`] agree on.
#[derive(Debug, Clone, Copy)]
struct LatencyRun {
    /// One-row transactions to commit.
    commits: u64,
    /// Bytes of each row (at least 8: the row starts with its send time).
    row_bytes: usize,
    /// Time between two commits.
    interval: Duration,
    /// The clock both sides read: a row carries the nanoseconds since it.
    epoch: Instant,
}

impl LatencyRun {
    /// The writer: commits `commits` rows `interval` apart (open loop), row `i` under key `i`,
    /// each stamped with the time just before its transaction is built.
    fn write(&self, db: &Database) -> Result<(), BenchError> {
        let mut row = XorShift::new(7).bytes(self.row_bytes);
        let start = Instant::now();
        for i in 0..self.commits {
            let due = start + Duration::from_nanos((self.interval.as_nanos() as u64).saturating_mul(i));
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let sent = self.epoch.elapsed().as_nanos() as u64;
            row[..8].copy_from_slice(&sent.to_le_bytes());
            let mut txn = db.begin();
            txn.insert(CDC_TABLES[0], &i.to_be_bytes(), &row)?;
            txn.commit()?;
        }
        Ok(())
    }

    /// The subscriber: takes every event off `stream`, checks it is the next row, and returns
    /// each one's latency. Gives up when the writer failed or nothing came for
    /// [`SUBSCRIBER_STALL_LIMIT`].
    fn subscribe(&self, stream: &mut ChangeStream, writer_failed: &AtomicBool) -> Result<Vec<Duration>, BenchError> {
        let mut latencies = Vec::with_capacity(self.commits as usize);
        let mut prev_lsn = 0;
        let mut waited = Duration::ZERO;
        while (latencies.len() as u64) < self.commits {
            let poll = Duration::from_millis(50);
            let Some(item) = stream.next_timeout(poll) else {
                waited += poll;
                if writer_failed.load(Ordering::Acquire) || waited >= SUBSCRIBER_STALL_LIMIT {
                    return Err(BenchError::Check(format!("cdc latency: stalled after {} events", latencies.len())));
                }
                continue;
            };
            waited = Duration::ZERO;
            let received = self.epoch.elapsed();
            let Event::Change(change) = item? else {
                return Err(BenchError::Check("cdc latency: a non-change event".to_string()));
            };
            let i = latencies.len() as u64;
            let data = change.data.as_deref().unwrap_or_default();
            let ok = change.lsn > prev_lsn && change.key[..] == i.to_be_bytes() && data.len() == self.row_bytes;
            check(ok, || format!("cdc latency: event {i} is {change:?}"))?;
            prev_lsn = change.lsn;
            let sent = Duration::from_nanos(u64::from_le_bytes(data[..8].try_into().unwrap_or_default()));
            latencies.push(received.saturating_sub(sent));
        }
        Ok(latencies)
    }
}
