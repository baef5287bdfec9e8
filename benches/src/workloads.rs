//! The WAL workloads: buffered and durable appends, group commit, scan, seek and open after a
//! crash. Each checks what it did and returns a [`Sample`].

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use walden_wal::{Lsn, SyncMode, Wal, WalConfig};

use crate::report::{encoded_len, thread_cpu_time};
use crate::{BENCH_KIND, BenchError, BenchRoot, Paired, RawPairing, Sample, Scale};

/// Records per `append_batch` call when building the read and recovery logs.
const BUILD_BATCH_RECORDS: usize = 64;

/// A small, fast, deterministic generator (xorshift64*) for payload bytes and random LSNs.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (any value; zero is remapped).
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `lo..=hi` (`lo` if the range is empty).
    pub fn in_range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo { lo } else { lo + self.next_u64() % (hi - lo + 1) }
    }

    /// `len` pseudo-random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

pub(crate) fn check(cond: bool, what: impl FnOnce() -> String) -> Result<(), BenchError> {
    if cond { Ok(()) } else { Err(BenchError::Check(what())) }
}

/// Appends `records` records of `payload_bytes` to a fresh log with [`SyncMode::None`] and hands
/// them to the OS (`flush`, no fsync) inside the timing.
///
/// The segment is sized to hold every record, so no seal (and its `fdatasync` of the whole
/// segment) falls inside the timing: this measures the CPU cost of an append, which is what the
/// 2 M records/s target is about. Sustained beyond the page cache, buffered appends are bounded
/// by the disk's sequential write rate instead.
pub fn buffered_append(root: &BenchRoot, records: u64, payload_bytes: usize) -> Result<Sample, BenchError> {
    let dir = root.tempdir()?;
    let log_bytes = records * encoded_len(payload_bytes) + (1 << 20);
    let config = WalConfig {
        sync_mode: SyncMode::None,
        target_segment_size_bytes: log_bytes.max(WalConfig::default().target_segment_size_bytes),
        max_records_per_segment: records.max(1) + 1,
        ..WalConfig::default()
    };
    let wal = Wal::open(dir.path(), config)?;
    let payload = XorShift::new(1).bytes(payload_bytes);
    let cpu_start = thread_cpu_time();
    let start = Instant::now();
    for _ in 0..records {
        wal.append(BENCH_KIND, &payload)?;
    }
    wal.flush()?;
    let elapsed = start.elapsed();
    let cpu = thread_cpu_time().saturating_sub(cpu_start);
    let stats = wal.stats();
    check(stats.records_appended == records && wal.next_lsn() == records + 1, || {
        format!("buffered: appended {records}, log says {} (next LSN {})", stats.records_appended, wal.next_lsn())
    })?;
    check(stats.segments_sealed == 0, || format!("buffered: {} seals inside the timing", stats.segments_sealed))?;
    drop(wal); // no close: nothing to fsync, and the directory is removed next
    Ok(Sample {
        elapsed,
        ops: records,
        bytes: records * payload_bytes as u64,
        syncs: stats.data_syncs,
        cpu,
        ..Sample::default()
    })
}

/// A log in a durable mode ([`SyncMode::Always`] or [`SyncMode::Group`]) that keeps growing
/// across runs, paired with a raw-loop file of the same record size ([`RawPairing`]: one raw
/// operation beside each append of one writer; rounds of at most 32 appends per writer
/// alternating with raw blocks for several).
#[derive(Debug)]
pub struct DurableLog {
    _dir: tempfile::TempDir,
    wal: Wal,
    payload: Vec<u8>,
    pairing: RawPairing,
}

impl DurableLog {
    /// Opens a new log under `root`; appends will carry `payload_bytes` bytes.
    pub fn new(root: &BenchRoot, sync_mode: SyncMode, payload_bytes: usize) -> Result<DurableLog, BenchError> {
        check(sync_mode.is_durable(), || format!("DurableLog needs a durable mode, not {sync_mode:?}"))?;
        let dir = root.tempdir()?;
        let wal = Wal::open(dir.path(), WalConfig { sync_mode, ..WalConfig::default() })?;
        let pairing = RawPairing::new(root, encoded_len(payload_bytes) as usize)?;
        Ok(DurableLog { _dir: dir, wal, payload: XorShift::new(2).bytes(payload_bytes), pairing })
    }

    /// Payload bytes per append.
    pub fn payload_bytes(&self) -> usize {
        self.payload.len()
    }

    /// `threads` writers each append `appends_per_thread` records and the raw loop makes
    /// `appends_per_thread` operations beside them (see [`RawPairing::run`]). The WAL timing of
    /// several writers starts when every writer is ready and ends when all are done; `syncs` is
    /// the log's `data_syncs` counter over the run. Checks every append was acknowledged once,
    /// at its own LSN, and is durable.
    pub fn run(&mut self, threads: usize, appends_per_thread: u64) -> Result<Paired, BenchError> {
        let before = self.wal.stats();
        let first_lsn = self.wal.next_lsn();
        let (wal, payload) = (&self.wal, &self.payload);
        let run = self
            .pairing
            .run(threads, appends_per_thread, |_| wal.append(BENCH_KIND, payload).map_err(BenchError::from))?;
        run.check_acks(appends_per_thread)?;
        let after = self.wal.stats();
        let appends = threads as u64 * appends_per_thread;
        let appended = after.records_appended - before.records_appended;
        check(appended == appends && self.wal.durable_lsn() + 1 == first_lsn + appends, || {
            format!("durable: expected {appends} durable appends, log counted {appended}")
        })?;
        let wal = Sample {
            elapsed: run.work_elapsed,
            ops: appends,
            bytes: appends * self.payload.len() as u64,
            syncs: after.data_syncs - before.data_syncs,
            ..Sample::default()
        };
        Ok(Paired { wal, raw: run.raw })
    }
}

/// Writes records of `payload_bytes` until the log holds about `log_bytes` of record data.
/// Returns the number of records.
fn fill_log(wal: &Wal, log_bytes: u64, payload_bytes: usize) -> Result<u64, BenchError> {
    let per_record = encoded_len(payload_bytes);
    let records = (log_bytes / per_record).max(1);
    let mut rng = XorShift::new(3);
    let payloads: Vec<Vec<u8>> = (0..BUILD_BATCH_RECORDS).map(|_| rng.bytes(payload_bytes)).collect();
    let mut written = 0u64;
    while written < records {
        let n = (records - written).min(BUILD_BATCH_RECORDS as u64) as usize;
        wal.append_batch(payloads[..n].iter().map(|p| (BENCH_KIND, p.as_slice())))?;
        written += n as u64;
    }
    Ok(records)
}

/// A log of sealed (immutable, mmapped) segments for the scan and seek benchmarks.
#[derive(Debug)]
pub struct ScanFixture {
    _dir: tempfile::TempDir,
    wal: Wal,
    records: u64,
    payload_bytes: usize,
}

impl ScanFixture {
    /// Writes `scale.scan_log_bytes` of records of `scale.scan_payload_bytes` (SyncMode::None),
    /// then seals the active segment so every record is in a sealed segment.
    pub fn build(root: &BenchRoot, scale: &Scale) -> Result<ScanFixture, BenchError> {
        let dir = root.tempdir()?;
        let config = WalConfig {
            sync_mode: SyncMode::None,
            target_segment_size_bytes: scale.segment_bytes,
            ..WalConfig::default()
        };
        let wal = Wal::open(dir.path(), config)?;
        let records = fill_log(&wal, scale.scan_log_bytes, scale.scan_payload_bytes)?;
        wal.seal_active_segment()?;
        let segments = wal.segments();
        let sealed_records: u64 =
            segments.iter().filter(|s| s.sealed).map(|s| s.last_lsn + 1 - s.first_lsn).sum::<u64>();
        check(sealed_records == records, || format!("scan log: {sealed_records} of {records} records sealed"))?;
        Ok(ScanFixture { _dir: dir, wal, records, payload_bytes: scale.scan_payload_bytes })
    }

    /// Records in the log.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Record bytes (headers and payloads) in the log: what one scan reads and checksums.
    pub fn data_bytes(&self) -> u64 {
        self.records * encoded_len(self.payload_bytes)
    }

    /// Reads every record from the oldest (CRC-checked, zero-copy from the mapping) and checks
    /// the LSNs are contiguous; the sample's bytes are record bytes (headers included).
    pub fn scan(&self) -> Result<Sample, BenchError> {
        let cpu_start = thread_cpu_time();
        let start = Instant::now();
        let mut expected: Lsn = 1;
        let mut payload_bytes = 0u64;
        for record in self.wal.reader(1)? {
            let record = record?;
            if record.lsn != expected {
                return Err(BenchError::Check(format!("scan: LSN {} where {expected} was expected", record.lsn)));
            }
            payload_bytes += record.payload.len() as u64;
            expected += 1;
        }
        let elapsed = start.elapsed();
        let cpu = thread_cpu_time().saturating_sub(cpu_start);
        check(expected - 1 == self.records && payload_bytes == self.records * self.payload_bytes as u64, || {
            format!("scan: read {} records / {payload_bytes} payload bytes of {}", expected - 1, self.records)
        })?;
        Ok(Sample { elapsed, ops: self.records, bytes: self.data_bytes(), cpu, ..Sample::default() })
    }

    /// `lookups` times: a reader at a random LSN and its first record (checked to be that LSN).
    /// Each lookup's latency is kept.
    pub fn seek(&self, lookups: u64, rng: &mut XorShift) -> Result<Sample, BenchError> {
        let mut latencies = Vec::with_capacity(lookups as usize);
        let mut total = Duration::ZERO;
        let cpu_start = thread_cpu_time();
        for _ in 0..lookups {
            let lsn = rng.in_range(1, self.records);
            let start = Instant::now();
            let mut reader = self.wal.reader(lsn)?;
            let record = reader.next_record()?;
            let took = start.elapsed();
            match record {
                Some(r) if r.lsn == lsn => {}
                Some(r) => return Err(BenchError::Check(format!("seek to {lsn} returned LSN {}", r.lsn))),
                None => return Err(BenchError::Check(format!("seek to {lsn} returned nothing"))),
            }
            latencies.push(took);
            total += took;
        }
        // CPU time includes the generator and the checks: a few ns per lookup.
        let cpu = thread_cpu_time().saturating_sub(cpu_start);
        Ok(Sample { elapsed: total, ops: lookups, latencies, cpu, ..Sample::default() })
    }
}

/// A log left behind by a crash: written with big records, dropped without `close`, and with
/// garbage appended to the active segment before each open (a torn write to truncate).
#[derive(Debug)]
pub struct OpenFixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    config: WalConfig,
    records: u64,
    log_bytes: u64,
    torn_tail_bytes: usize,
}

impl OpenFixture {
    /// Writes `scale.open_log_bytes` of records of `scale.open_payload_bytes` and drops the log
    /// without closing it. The active segment ends up full (sealing happens on the next append),
    /// the worst case for recovery, which scans the active segment.
    pub fn build(root: &BenchRoot, scale: &Scale) -> Result<OpenFixture, BenchError> {
        let dir = root.tempdir()?;
        let path = dir.path().to_path_buf();
        let config = WalConfig {
            sync_mode: SyncMode::None,
            target_segment_size_bytes: scale.segment_bytes,
            ..WalConfig::default()
        };
        let wal = Wal::open(&path, config.clone())?;
        let records = fill_log(&wal, scale.open_log_bytes, scale.open_payload_bytes)?;
        drop(wal); // a crash after the OS got the data: no close, no final fsync, no seal
        let log_bytes = records * encoded_len(scale.open_payload_bytes);
        Ok(OpenFixture { _dir: dir, path, config, records, log_bytes, torn_tail_bytes: scale.torn_tail_bytes })
    }

    /// Record bytes in the log.
    pub fn log_bytes(&self) -> u64 {
        self.log_bytes
    }

    /// Appends garbage to the active segment (untimed), optionally evicts every segment from
    /// the page cache (untimed: `fdatasync` + `posix_fadvise(DONTNEED)`), then times
    /// `Wal::open` and checks it truncated exactly the garbage and kept every record.
    pub fn open_after_crash(&self, cold_cache: bool) -> Result<Sample, BenchError> {
        let active = self.active_segment()?;
        let mut file = OpenOptions::new().append(true).open(&active).map_err(|e| BenchError::io("open", &active, e))?;
        let garbage = XorShift::new(4).bytes(self.torn_tail_bytes);
        file.write_all(&garbage).map_err(|e| BenchError::io("write", &active, e))?;
        drop(file);
        if cold_cache {
            self.evict_from_page_cache()?;
        }
        let start = Instant::now();
        let wal = Wal::open(&self.path, self.config.clone())?;
        let elapsed = start.elapsed();
        let report = wal.recovery_report().clone();
        check(report.bytes_truncated == self.torn_tail_bytes as u64 && report.torn_tail.is_some(), || {
            format!("open: truncated {} bytes, appended {} of garbage", report.bytes_truncated, self.torn_tail_bytes)
        })?;
        check(report.last_lsn == self.records && report.oldest_lsn == 1, || {
            format!("open: log holds {}..={}, wrote 1..={}", report.oldest_lsn, report.last_lsn, self.records)
        })?;
        drop(wal);
        Ok(Sample { elapsed, ops: 1, bytes: self.log_bytes, latencies: vec![elapsed], ..Sample::default() })
    }

    fn segment_files(&self) -> Result<Vec<PathBuf>, BenchError> {
        let mut files = Vec::new();
        let entries = std::fs::read_dir(&self.path).map_err(|e| BenchError::io("list", &self.path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| BenchError::io("list", &self.path, e))?;
            let path = entry.path();
            if path.extension().is_some_and(|x| x == "wal") {
                files.push(path);
            }
        }
        files.sort();
        Ok(files)
    }

    fn active_segment(&self) -> Result<PathBuf, BenchError> {
        self.segment_files()?.pop().ok_or_else(|| BenchError::Check(format!("no segment in {}", self.path.display())))
    }

    fn evict_from_page_cache(&self) -> Result<(), BenchError> {
        for path in self.segment_files()? {
            evict(&path)?;
        }
        Ok(())
    }
}

/// Writes back and drops `path`'s pages from the page cache, so the next read goes to the disk.
fn evict(path: &Path) -> Result<(), BenchError> {
    let file = std::fs::File::open(path).map_err(|e| BenchError::io("open", path, e))?;
    file.sync_data().map_err(|e| BenchError::io("fdatasync", path, e))?;
    rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)
        .map_err(|e| BenchError::io("posix_fadvise", path, e.into()))
}
