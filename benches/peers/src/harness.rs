//! The workloads: rate workloads run in rounds, every contender (and the raw-disk limit) taking
//! one time slice per round in a random order, so that they all see the same phases of a disk
//! whose fsync rate swings ten-fold within seconds; then replay and reopen fixtures.

use std::path::Path;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use walden_benches::{BenchRoot, RawSyncLoop, XorShift, raw_sequential_write};

use crate::error::Context;
use crate::store::{Durability, Fixture, Peer, Purpose, Replayed, Row, Store, make_value, stamp_value};
use crate::walden::Walden;
use crate::{PeerError, Result, Scale};

/// Chunk size of the raw sequential write.
const SEQ_CHUNK_BYTES: usize = 1 << 20;
/// Chunks per call of the raw sequential write inside a slice (8 MiB files).
const SEQ_CHUNKS_PER_FILE: u64 = 8;
/// Rows per transaction when loading the reopen fixture (64 × 4 KiB = 256 KiB).
const REOPEN_LOAD_TXN_ROWS: usize = 64;

/// A rate workload: committers, rows per transaction, record size, durability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateSpec {
    /// Which of the workloads this is (1, 2 or 3).
    pub group: u8,
    /// Committer threads.
    pub threads: usize,
    /// Rows in each transaction.
    pub txn_rows: usize,
    /// Bytes per row: 8-byte key plus value.
    pub record_bytes: usize,
    /// Durable or buffered commits.
    pub durability: Durability,
}

impl RateSpec {
    /// The label in the table.
    pub fn label(&self) -> String {
        let size = human_bytes(self.record_bytes);
        let mode = match self.durability {
            Durability::Durable => "durable",
            Durability::Buffered => "non-durable",
        };
        match self.group {
            1 => format!("1. single writer, 1-row commits of {size}, {mode}"),
            2 => format!("2. {} concurrent committers, 1-row commits of {size}, {mode}", self.threads),
            _ => format!("3. {}-row transaction ({size} rows), 1 writer, {mode}", self.txn_rows),
        }
    }
}

/// Formats 128 → "128 B", 4096 → "4 KiB".
pub fn human_bytes(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) { format!("{} KiB", bytes / 1024) } else { format!("{bytes} B") }
}

/// Every rate workload of a run, in run order.
pub fn rate_specs(scale: &Scale) -> Vec<RateSpec> {
    let mut specs = Vec::new();
    for durability in [Durability::Durable, Durability::Buffered] {
        for record_bytes in [scale.small_record_bytes, scale.large_record_bytes] {
            specs.push(RateSpec { group: 1, threads: 1, txn_rows: 1, record_bytes, durability });
        }
    }
    for &threads in &scale.committer_threads {
        let durability = Durability::Durable;
        specs.push(RateSpec { group: 2, threads, txn_rows: 1, record_bytes: scale.small_record_bytes, durability });
    }
    for durability in [Durability::Durable, Durability::Buffered] {
        for txn_rows in [1, scale.large_txn_rows] {
            specs.push(RateSpec { group: 3, threads: 1, txn_rows, record_bytes: scale.small_record_bytes, durability });
        }
    }
    specs
}

/// One contender's totals over all rounds of a rate workload.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneTotals {
    /// Acknowledged transactions in the measured slices.
    pub txns: u64,
    /// Time of the measured slices.
    pub elapsed: Duration,
    /// `fdatasync` calls during the measured slices, where the store counts them.
    pub data_syncs: Option<u64>,
}

impl LaneTotals {
    /// Transactions per second.
    pub fn txns_per_s(&self) -> f64 {
        self.txns as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The machine's limit measured in the same rounds as a rate workload.
#[derive(Debug, Clone, PartialEq)]
pub enum Limit {
    /// `pwrite` + `fdatasync` of `write_bytes` at the end of a growing file, repeated.
    SyncLoop {
        /// Bytes per write: what Walden writes per commit of this workload.
        write_bytes: u64,
        /// Writes done and their time.
        totals: LaneTotals,
    },
    /// Sequential 1 MiB writes to the page cache, no sync.
    SeqWrite {
        /// Bytes Walden writes per commit of this workload (to express the limit in commits/s).
        commit_bytes: u64,
        /// Bytes written.
        bytes: u64,
        /// Time of the writes.
        elapsed: Duration,
    },
}

impl Limit {
    /// The limit expressed in Walden commits per second: the rate at which the machine could
    /// write (and for durable workloads sync) Walden's bytes per commit.
    pub fn commits_per_s(&self) -> f64 {
        match self {
            Limit::SyncLoop { totals, .. } => totals.txns_per_s(),
            Limit::SeqWrite { commit_bytes, bytes, elapsed } => {
                *bytes as f64 / elapsed.as_secs_f64().max(1e-9) / *commit_bytes as f64
            }
        }
    }

    /// What the limit is, for the table.
    pub fn describe(&self) -> String {
        match self {
            Limit::SyncLoop { write_bytes, .. } => format!("pwrite+fdatasync loop, {write_bytes} B writes"),
            Limit::SeqWrite { commit_bytes, bytes, elapsed } => format!(
                "sequential write to page cache, {:.0} MB/s ÷ {commit_bytes} B per commit",
                *bytes as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6
            ),
        }
    }
}

/// The outcome of one rate workload.
#[derive(Debug, Clone)]
pub struct RateResult {
    /// The workload.
    pub spec: RateSpec,
    /// Per contender (by name, in the order given), `None` where it has no such mode.
    pub lanes: Vec<(&'static str, Option<LaneTotals>)>,
    /// The machine's limit, measured in the same rounds.
    pub limit: Limit,
}

enum Lane<'a> {
    Store { store: Box<dyn Store>, next_key: AtomicU64, totals: LaneTotals, name: &'a str },
    RawSync { raw: RawSyncLoop, totals: LaneTotals },
    RawSeq { bytes: u64, elapsed: Duration },
}

/// Runs one rate workload for every contender that has the mode, with the limit lane, in
/// `scale.rounds` rounds of one slice each after one warm-up slice each; then checks every
/// store holds exactly the rows it acknowledged.
pub fn run_rate(spec: &RateSpec, peers: &[&dyn Peer], root: &BenchRoot, scale: &Scale) -> Result<RateResult> {
    let dir = root.tempdir()?;
    let commit_bytes = Walden::commit_bytes(dir.path(), spec.txn_rows, spec.record_bytes)?;
    let mut lanes: Vec<Lane<'_>> = Vec::new();
    lanes.push(match spec.durability {
        Durability::Durable => Lane::RawSync {
            raw: RawSyncLoop::new(root, commit_bytes as usize)?,
            totals: LaneTotals { txns: 0, elapsed: Duration::ZERO, data_syncs: None },
        },
        Durability::Buffered => Lane::RawSeq { bytes: 0, elapsed: Duration::ZERO },
    });
    let mut present = Vec::new();
    for peer in peers {
        let has_mode = spec.durability == Durability::Durable || peer.modes().buffered.is_some();
        present.push(has_mode);
        if has_mode {
            let store = peer.open(&dir.path().join(peer.name()), spec.durability)?;
            lanes.push(Lane::Store {
                store,
                next_key: AtomicU64::new(0),
                totals: LaneTotals { txns: 0, elapsed: Duration::ZERO, data_syncs: None },
                name: peer.name(),
            });
        }
    }
    let n = lanes.len();
    for lane in &mut lanes {
        run_slice(lane, spec, root, scale.slice, false)?;
    }
    // A fresh random order each round: a lane must not always follow the same neighbour,
    // whose background work (flushes, compactions, a flusher thread's fsync) would land in it.
    let mut rng = XorShift::new(0x5EED_0000 + u64::from(spec.group) * 1000 + spec.threads as u64);
    let mut order: Vec<usize> = (0..n).collect();
    for _ in 0..scale.rounds {
        for i in (1..n).rev() {
            order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        for &i in &order {
            run_slice(&mut lanes[i], spec, root, scale.slice, true)?;
        }
    }
    let mut totals = Vec::new();
    let mut limit = None;
    for lane in lanes {
        match lane {
            Lane::Store { store, next_key, totals: t, name } => {
                store.check(next_key.load(Ordering::Relaxed))?;
                drop(store);
                totals.push((name, t));
            }
            Lane::RawSync { raw, totals: t } => {
                raw.verify()?;
                limit = Some(Limit::SyncLoop { write_bytes: commit_bytes, totals: t });
            }
            Lane::RawSeq { bytes, elapsed } => limit = Some(Limit::SeqWrite { commit_bytes, bytes, elapsed }),
        }
    }
    let mut measured = totals.into_iter();
    let lanes = peers
        .iter()
        .zip(present)
        .map(|(peer, has)| (peer.name(), if has { measured.next().map(|(_, t)| t) } else { None }))
        .collect();
    let limit = limit.ok_or_else(|| PeerError::new("no limit lane"))?;
    Ok(RateResult { spec: spec.clone(), lanes, limit })
}

fn run_slice(lane: &mut Lane<'_>, spec: &RateSpec, root: &BenchRoot, slice: Duration, counted: bool) -> Result<()> {
    match lane {
        Lane::Store { store, next_key, totals, name } => {
            let syncs_before = store.data_syncs();
            let (txns, elapsed) = store_slice(store.as_ref(), name, spec, slice, next_key)?;
            if counted {
                totals.txns += txns;
                totals.elapsed += elapsed;
                if let (Some(before), Some(after)) = (syncs_before, store.data_syncs()) {
                    totals.data_syncs = Some(totals.data_syncs.unwrap_or(0) + after - before);
                }
            }
        }
        Lane::RawSync { raw, totals } => {
            let start = Instant::now();
            let mut ops = 0;
            while start.elapsed() < slice {
                raw.write_one()?;
                ops += 1;
            }
            if counted {
                totals.txns += ops;
                totals.elapsed += start.elapsed();
            }
        }
        Lane::RawSeq { bytes, elapsed } => {
            let start = Instant::now();
            while start.elapsed() < slice {
                let sample = raw_sequential_write(root, SEQ_CHUNKS_PER_FILE, SEQ_CHUNK_BYTES, false)?;
                if counted {
                    *bytes += sample.bytes;
                    *elapsed += sample.elapsed;
                }
            }
        }
    }
    Ok(())
}

/// `spec.threads` committers commit `spec.txn_rows`-row transactions for `slice`; returns the
/// transactions acknowledged and the time from the common start to the last acknowledgement.
fn store_slice(
    store: &dyn Store,
    name: &str,
    spec: &RateSpec,
    slice: Duration,
    next_key: &AtomicU64,
) -> Result<(u64, Duration)> {
    let barrier = Barrier::new(spec.threads + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..spec.threads)
            .map(|_| {
                s.spawn(|| -> Result<u64> {
                    let mut values: Vec<Vec<u8>> =
                        (0..spec.txn_rows).map(|_| make_value(spec.record_bytes - 8, 0)).collect();
                    barrier.wait();
                    let deadline = Instant::now() + slice;
                    let mut txns = 0u64;
                    while Instant::now() < deadline {
                        let first = next_key.fetch_add(spec.txn_rows as u64, Ordering::Relaxed);
                        for (i, v) in values.iter_mut().enumerate() {
                            stamp_value(v, first + i as u64);
                        }
                        let rows: Vec<Row<'_>> =
                            values.iter().enumerate().map(|(i, v)| Row { key: first + i as u64, value: v }).collect();
                        if let Err(e) = store.commit(&rows) {
                            // Keys handed out but not committed would fail the final check.
                            next_key.fetch_sub(spec.txn_rows as u64, Ordering::Relaxed);
                            return Err(e);
                        }
                        txns += 1;
                    }
                    Ok(txns)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let mut txns = 0;
        let mut first_error = None;
        for h in handles {
            match h.join() {
                Ok(Ok(n)) => txns += n,
                Ok(Err(e)) => first_error = first_error.or(Some(e)),
                Err(_) => first_error = first_error.or(Some(PeerError::new(format!("{name}: a committer panicked")))),
            }
        }
        let elapsed = start.elapsed();
        match first_error {
            Some(e) => Err(e),
            None => Ok((txns, elapsed)),
        }
    })
}

/// The outcome of the replay workload for one contender.
#[derive(Debug, Clone)]
pub struct ReplayResult {
    /// Contender.
    pub name: &'static str,
    /// Median pass of the log reader, if the contender has one.
    pub log: Option<Replayed>,
    /// Median pass of the read of all rows in order.
    pub rows: Option<Replayed>,
}

/// The replay workload and its limit.
#[derive(Debug, Clone)]
pub struct ReplayRun {
    /// Per contender.
    pub results: Vec<ReplayResult>,
    /// Records replayed.
    pub records: u64,
    /// Bytes per record (key included).
    pub record_bytes: usize,
    /// `read` of Walden's segment files, in 1 MiB chunks from the page cache: bytes and time.
    pub raw_read: (u64, Duration),
}

impl ReplayRun {
    /// The raw read of Walden's log files, in records per second.
    pub fn raw_read_records_per_s(&self) -> f64 {
        let (bytes, elapsed) = self.raw_read;
        let per_record = bytes as f64 / self.records as f64;
        bytes as f64 / elapsed.as_secs_f64().max(1e-9) / per_record
    }
}

/// Loads `scale.replay_records` small records into each contender, then times `passes` reads
/// from the start (log reader, then rows in order) and keeps the median of each.
pub fn run_replay(peers: &[&dyn Peer], root: &BenchRoot, scale: &Scale, passes: usize) -> Result<ReplayRun> {
    let fixture = Fixture {
        records: scale.replay_records,
        record_bytes: scale.small_record_bytes,
        txn_rows: scale.load_txn_rows,
    };
    let mut results = Vec::new();
    let mut raw_read = (0, Duration::ZERO);
    for peer in peers {
        let dir = root.tempdir()?;
        peer.load(dir.path(), Purpose::Replay, fixture)?;
        let mut logs = Vec::new();
        let mut rows = Vec::new();
        for _ in 0..passes.max(1) {
            if let Some(r) = peer.replay_log(dir.path(), fixture)? {
                logs.push(r);
            }
            if let Some(r) = peer.replay_rows(dir.path(), fixture)? {
                rows.push(r);
            }
        }
        if peer.name() == "walden" {
            raw_read = raw_sequential_read(&dir.path().join("log"))?;
        }
        results.push(ReplayResult { name: peer.name(), log: median(logs), rows: median(rows) });
    }
    Ok(ReplayRun { results, records: fixture.records, record_bytes: fixture.record_bytes, raw_read })
}

fn median(mut passes: Vec<Replayed>) -> Option<Replayed> {
    passes.sort_by_key(|r| r.elapsed);
    let mid = passes.len() / 2;
    passes.into_iter().nth(mid)
}

/// Reads every file in `dir` with `read` in 1 MiB chunks; returns the bytes and the time.
pub fn raw_sequential_read(dir: &Path) -> Result<(u64, Duration)> {
    use std::io::Read;
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .ctx("raw read", "list")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let mut buf = vec![0u8; SEQ_CHUNK_BYTES];
    let mut bytes = 0u64;
    let start = Instant::now();
    for path in &paths {
        let mut f = std::fs::File::open(path).ctx("raw read", "open")?;
        loop {
            let n = f.read(&mut buf).ctx("raw read", "read")?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
        }
    }
    Ok((bytes, start.elapsed()))
}

/// The outcome of the reopen workload for one contender.
#[derive(Debug, Clone)]
pub struct ReopenResult {
    /// Contender.
    pub name: &'static str,
    /// Time to write the fixture non-durably and sync it once.
    pub load: Duration,
    /// Time to open it again and read its last row.
    pub reopen: Duration,
}

/// The reopen workload and the raw write of the same bytes.
#[derive(Debug, Clone)]
pub struct ReopenRun {
    /// Per contender.
    pub results: Vec<ReopenResult>,
    /// Bytes of keys and values written (1 GiB).
    pub bytes: u64,
    /// Sequential write of the same bytes in 1 MiB chunks plus one `fdatasync`.
    pub raw_write: Duration,
}

/// Writes `scale.reopen_log_bytes` of 4 KiB rows into each contender, closes it, and times
/// opening it again (plus reading the last row).
pub fn run_reopen(peers: &[&dyn Peer], root: &BenchRoot, scale: &Scale) -> Result<ReopenRun> {
    let fixture = Fixture {
        records: scale.reopen_records(),
        record_bytes: scale.large_record_bytes,
        txn_rows: REOPEN_LOAD_TXN_ROWS,
    };
    let bytes = fixture.records * fixture.record_bytes as u64;
    let chunks = bytes.div_ceil(SEQ_CHUNK_BYTES as u64);
    let raw_write = raw_sequential_write(root, chunks, SEQ_CHUNK_BYTES, true)?.elapsed;
    let mut results = Vec::new();
    for peer in peers {
        let dir = root.tempdir()?;
        let load = peer.load(dir.path(), Purpose::Reopen, fixture)?;
        let reopen = peer.reopen(dir.path(), fixture)?;
        results.push(ReopenResult { name: peer.name(), load, reopen });
    }
    Ok(ReopenRun { results, bytes, raw_write })
}
