//! Samples, their aggregation into figures, and the summary table.

mod rows;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Bytes a record with `payload_bytes` of payload takes in a segment (32-byte header + payload).
pub fn encoded_len(payload_bytes: usize) -> u64 {
    (walden_wal::format::RECORD_HEADER_LEN + payload_bytes) as u64
}

/// What one timed run of a workload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    /// Time measured (setup and checks excluded).
    pub elapsed: Duration,
    /// Operations: appends, records scanned, lookups, opens, raw writes.
    pub ops: u64,
    /// Bytes moved: payload bytes for appends, record bytes for scans, file bytes for raw writes.
    pub bytes: u64,
    /// `fdatasync` calls on data during the timing.
    pub syncs: u64,
    /// Per-operation latencies, where the workload keeps them (seek, open).
    pub latencies: Vec<Duration>,
    /// CPU time (user + system) over the timed span: of the measuring thread for single-threaded
    /// CPU-bound workloads (buffered append, scan, seek, CDC replays), of the whole process for
    /// the archive workloads (the archiver's runtime threads write and read the Parquet files);
    /// zero elsewhere. Unlike wall time it does not grow when other jobs share the cores.
    pub cpu: Duration,
    /// The lake's bytes against the WAL bytes they archive (archive throughput only; zero
    /// elsewhere).
    pub lake: LakeBytes,
}

/// What an archive run left in the lake, against the WAL it archived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LakeBytes {
    /// Bytes of the archived WAL segments (files: headers, records, footers).
    pub wal_bytes: u64,
    /// Bytes of the Parquet data files.
    pub data_bytes: u64,
    /// Bytes of the Iceberg metadata files (metadata JSON, manifest lists, manifests).
    pub metadata_bytes: u64,
    /// Bytes of the embedded catalog (the sqlite file and its journal), not counted as lake data.
    pub catalog_bytes: u64,
}

impl LakeBytes {
    fn add(&mut self, other: LakeBytes) {
        self.wal_bytes += other.wal_bytes;
        self.data_bytes += other.data_bytes;
        self.metadata_bytes += other.metadata_bytes;
        self.catalog_bytes += other.catalog_bytes;
    }
}

/// CPU time consumed so far by the calling thread (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_time() -> Duration {
    cpu_time(rustix::time::ClockId::ThreadCPUTime)
}

/// CPU time consumed so far by every thread of the process (`CLOCK_PROCESS_CPUTIME_ID`).
pub fn process_cpu_time() -> Duration {
    cpu_time(rustix::time::ClockId::ProcessCPUTime)
}

fn cpu_time(clock: rustix::time::ClockId) -> Duration {
    let ts = rustix::time::clock_gettime(clock);
    Duration::new(u64::try_from(ts.tv_sec).unwrap_or(0), u32::try_from(ts.tv_nsec).unwrap_or(0).min(999_999_999))
}

/// The workloads the table reports, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Workload {
    /// Raw `pwrite` + `fdatasync` of one record's encoded bytes, repeated.
    RawSyncLoop {
        /// Payload of the WAL record the raw write stands for (the raw write adds the header).
        payload_bytes: usize,
    },
    /// Raw sequential write of 1 MiB chunks, with one final `fdatasync` or none (page cache).
    RawSeqWrite {
        /// Whether the write ends with `fdatasync`.
        synced: bool,
    },
    /// `append` with `SyncMode::None`, one thread.
    BufferedAppend {
        /// Payload size.
        payload_bytes: usize,
    },
    /// `append` with `SyncMode::Always`, one thread.
    DurableAlways {
        /// Payload size.
        payload_bytes: usize,
    },
    /// `append` with `SyncMode::Group` from several threads.
    GroupCommit {
        /// Writer threads.
        threads: usize,
        /// Payload size.
        payload_bytes: usize,
    },
    /// Full sequential scan of sealed segments with CRC checks.
    Scan,
    /// Reader at a random LSN plus its first record.
    Seek,
    /// `Wal::open` of the big log after a crash with a torn tail.
    OpenAfterCrash {
        /// Whether the segments were evicted from the page cache first.
        cold_cache: bool,
    },
    /// One-row transactions committed through `walden-engine` by several threads.
    EngineCommit {
        /// Durability of the commits.
        sync: CommitSync,
        /// Committer threads.
        threads: usize,
        /// Bytes of the one row each transaction inserts.
        row_bytes: usize,
    },
    /// Every change of a pre-written log through an unfiltered CDC change stream.
    CdcDecode,
    /// A table-filtered CDC change stream over the same log.
    CdcFilteredReplay {
        /// Tables in the log (each holds the same share of the changes).
        tables: usize,
    },
    /// Commit → subscriber latency of a live CDC tail, `SyncMode::None`.
    CdcCommitToSubscriber,
    /// `Archiver::archive_sealed` of a pre-written log into a fresh `file://` lake: events/s, and
    /// the lake's bytes against the WAL's.
    ArchiveThroughput {
        /// What the row images are.
        rows: ArchiveRows,
    },
    /// Every archived event through `Archiver::cdc()` over a trimmed WAL (all from the lake).
    ArchiveColdReplay,
    /// The same events from the WAL (a copy of the log before it was trimmed), same run.
    ArchiveHotReplay,
}

/// The row images of an archive benchmark log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ArchiveRows {
    /// JSON objects of 100–300 B with a web app's repetitive keys and values (archived as text).
    Json,
    /// Random bytes of 100–300 B (archived as binary; nothing to compress).
    Incompressible,
}

impl ArchiveRows {
    /// Both kinds.
    pub const ALL: [ArchiveRows; 2] = [ArchiveRows::Json, ArchiveRows::Incompressible];

    /// In words, for the table.
    pub fn describe(self) -> &'static str {
        match self {
            ArchiveRows::Json => "JSON rows 100–300 B",
            ArchiveRows::Incompressible => "incompressible rows 100–300 B",
        }
    }
}

/// The durable sync mode of an engine benchmark (a `walden_wal::SyncMode`, orderable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CommitSync {
    /// `SyncMode::Always`: one fdatasync per commit, commits serialised.
    Always,
    /// `SyncMode::Group`: concurrent commits share fdatasyncs.
    Group,
}

impl CommitSync {
    /// The WAL sync mode.
    pub fn sync_mode(self) -> walden_wal::SyncMode {
        match self {
            CommitSync::Always => walden_wal::SyncMode::Always,
            CommitSync::Group => walden_wal::SyncMode::Group,
        }
    }

    /// `"Always"` or `"Group"`.
    pub fn name(self) -> &'static str {
        match self {
            CommitSync::Always => "Always",
            CommitSync::Group => "Group",
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Totals {
    samples: u64,
    elapsed: Duration,
    ops: u64,
    bytes: u64,
    syncs: u64,
    latencies: Vec<Duration>,
    cpu: Duration,
    lake: LakeBytes,
}

impl Totals {
    fn add(&mut self, sample: Sample) {
        self.samples += 1;
        self.lake.add(sample.lake);
        self.elapsed += sample.elapsed;
        self.ops += sample.ops;
        self.bytes += sample.bytes;
        self.syncs += sample.syncs;
        self.latencies.extend(sample.latencies);
        self.cpu += sample.cpu;
    }
    fn seconds(&self) -> f64 {
        self.elapsed.as_secs_f64().max(1e-12)
    }
    fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.seconds()
    }
    fn bytes_per_s(&self) -> f64 {
        self.bytes as f64 / self.seconds()
    }
    /// Operations per second of CPU time, if CPU time was measured.
    fn ops_per_cpu_s(&self) -> Option<f64> {
        (!self.cpu.is_zero()).then(|| self.ops as f64 / self.cpu.as_secs_f64())
    }
    fn bytes_per_cpu_s(&self) -> Option<f64> {
        (!self.cpu.is_zero()).then(|| self.bytes as f64 / self.cpu.as_secs_f64())
    }
    fn syncs_per_op(&self) -> f64 {
        self.syncs as f64 / (self.ops as f64).max(1.0)
    }
    fn mean_latency(&self) -> Duration {
        self.elapsed.div_f64((self.ops as f64).max(1.0))
    }
    /// The mean of the kept latencies (zero if none).
    fn mean_kept_latency(&self) -> Duration {
        let sum: Duration = self.latencies.iter().sum();
        sum.div_f64((self.latencies.len() as f64).max(1.0))
    }
    /// The `q` quantile (0..=1) of the kept latencies (nearest rank).
    fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }
}

/// One line of the summary table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The workload, in words.
    pub workload: String,
    /// Which figure of it.
    pub figure: &'static str,
    /// The value.
    pub value: f64,
    /// Unit of the value.
    pub unit: &'static str,
    /// The target, or `—`.
    pub target: String,
    /// Ratio to the raw fdatasync loop (or to one writer, for group commit), or `—`.
    pub ratio: String,
    /// Whether the target is met; `None` where there is no target.
    pub meets_target: Option<bool>,
}

/// Aggregates samples per workload: rates are total operations over total measured time.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    totals: BTreeMap<Workload, Totals>,
    /// Raw-loop blocks run alongside a durable workload (see [`crate::Paired`]).
    paired_raw: BTreeMap<Workload, Totals>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// Adds one sample of `workload`.
    pub fn add(&mut self, workload: Workload, sample: Sample) {
        self.totals.entry(workload).or_default().add(sample);
    }

    /// Adds one durable run of `workload` (appends of `payload_bytes`): the WAL sample, and the
    /// raw-loop block run alongside, which also counts toward that size's raw-loop figure.
    pub fn add_paired(&mut self, workload: Workload, payload_bytes: usize, paired: crate::Paired) {
        self.paired_raw.entry(workload).or_default().add(paired.raw.clone());
        self.add(Workload::RawSyncLoop { payload_bytes }, paired.raw);
        self.add(workload, paired.wal);
    }

    /// Adds one paired run whose raw loop wrote `raw_write_bytes` per operation (an engine
    /// commit: three WAL records): counted toward the raw-loop row of writes of that size.
    pub fn add_paired_raw_bytes(&mut self, workload: Workload, raw_write_bytes: u64, paired: crate::Paired) {
        let payload_bytes = (raw_write_bytes as usize).saturating_sub(walden_wal::format::RECORD_HEADER_LEN);
        self.add_paired(workload, payload_bytes, paired);
    }

    /// Workloads with at least one sample.
    pub fn workloads(&self) -> Vec<Workload> {
        self.totals.keys().copied().collect()
    }

    /// Operations recorded for `workload` (0 if none).
    pub fn ops(&self, workload: Workload) -> u64 {
        self.totals.get(&workload).map_or(0, |t| t.ops)
    }

    fn rate(&self, workload: Workload) -> Option<f64> {
        self.totals.get(&workload).map(Totals::ops_per_s)
    }

    /// `workload`'s rate over the raw loop's: the paired blocks if any, else every raw-loop
    /// sample of `payload_bytes`; with the raw rate used.
    fn raw_ratio(&self, workload: Workload, payload_bytes: usize) -> Option<(f64, f64)> {
        let rate = self.rate(workload)?;
        let raw = match self.paired_raw.get(&workload) {
            Some(t) if t.ops > 0 => t.ops_per_s(),
            _ => self.rate(Workload::RawSyncLoop { payload_bytes })?,
        };
        Some((rate / raw, raw))
    }

    /// An engine workload's commit rate over the raw loop run beside it (its own paired blocks
    /// only: the raw record size differs from the WAL benchmarks'), with the raw rate used.
    fn raw_ratio_engine(&self, workload: Workload) -> Option<(f64, f64)> {
        let rate = self.rate(workload)?;
        let raw = self.paired_raw.get(&workload).filter(|t| t.ops > 0)?.ops_per_s();
        Some((rate / raw, raw))
    }

    /// The rows of the summary table, in table order.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        for (&workload, t) in &self.totals {
            self.rows_of(workload, t, &mut rows);
        }
        rows
    }

    /// The summary as a Markdown table. Without `verdicts` the last column says `n/a` (smoke
    /// runs time one tiny iteration: their figures say nothing about performance).
    pub fn table(&self, verdicts: bool) -> String {
        let mut out = String::new();
        out.push_str("| workload | figure | value | unit | target | ratio | meets target |\n");
        out.push_str("|---|---|--:|---|---|---|---|\n");
        for r in self.rows() {
            let meets = match r.meets_target {
                _ if !verdicts => "n/a",
                Some(true) => "yes",
                Some(false) => "**NO**",
                None => "—",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.workload,
                r.figure,
                format_value(r.value),
                r.unit,
                r.target,
                r.ratio,
                meets
            );
        }
        out
    }
}

/// Large values with thousands separators and no decimals; small ones with 2–3 significant
/// decimals.
fn format_value(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_string();
    }
    if v.abs() >= 1000.0 {
        group_thousands(v)
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// `v` rounded to an integer with its digits grouped by thousands: `1234567.8` → `1,234,568`,
/// `-1500` → `-1,500` (the tables' large figures).
pub fn group_thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if v < 0.0 { format!("-{grouped}") } else { grouped }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Paired;

    fn sample(ms: u64, ops: u64, bytes: u64, syncs: u64) -> Sample {
        Sample { elapsed: Duration::from_millis(ms), ops, bytes, syncs, ..Sample::default() }
    }

    #[test]
    fn formats_values() {
        assert_eq!(format_value(1_234_567.4), "1,234,567");
        assert_eq!(format_value(999.0), "999.0");
        assert_eq!(format_value(1000.0), "1,000");
        assert_eq!(format_value(0.01234), "0.012");
        assert_eq!(format_value(f64::NAN), "n/a");
    }

    #[test]
    fn ratios_and_verdicts_come_from_the_same_run() {
        let mut rec = Recorder::new();
        let paired = |wal, raw| Paired { wal, raw };
        // A standalone raw loop: 1000 ops in 2 s = 500/s.
        rec.add(Workload::RawSyncLoop { payload_bytes: 100 }, sample(2000, 1000, 132_000, 1000));
        // Always: 460/s against 500/s alongside = 0.92 × raw.
        let always = paired(sample(1000, 460, 46_000, 460), sample(1000, 500, 66_000, 500));
        rec.add_paired(Workload::DurableAlways { payload_bytes: 100 }, 100, always);
        // Group, 1 thread: 400/s against 500/s = 0.8 × raw (misses).
        let one = paired(sample(1000, 400, 40_000, 400), sample(1000, 500, 66_000, 500));
        rec.add_paired(Workload::GroupCommit { threads: 1, payload_bytes: 100 }, 100, one);
        // 64 threads: 24,000/s while the disk was twice as fast (1000/s alongside): 24 × raw,
        // so 24 / 0.8 = 30 × one writer once both are normalised by their raw loop.
        let many = paired(sample(200, 4800, 480_000, 160), sample(75, 75, 9_900, 75));
        rec.add_paired(Workload::GroupCommit { threads: 64, payload_bytes: 100 }, 100, many);
        let rows = rec.rows();
        let find = |w: &str, f: &str| rows.iter().find(|r| r.workload.contains(w) && r.figure == f).unwrap().clone();
        let always = find("Always", "appends/s");
        assert!((always.value - 460.0).abs() < 1e-6);
        assert_eq!(always.ratio, "0.92 × raw (500.0 ops/s alongside)");
        assert_eq!(always.meets_target, Some(true));
        assert_eq!(find("Group, 1 thread", "appends/s").meets_target, Some(false));
        let g64 = find("64 threads", "appends/s");
        assert_eq!(g64.ratio, "24.00 × raw (1,000 ops/s alongside)");
        let normalised = find("64 threads", "× 1 thread, raw-normalised");
        assert!((normalised.value - 30.0).abs() < 1e-9, "{}", normalised.value);
        assert_eq!(normalised.meets_target, Some(true));
        let plain = find("64 threads", "× 1 thread, unnormalised");
        assert!((plain.value - 60.0).abs() < 1e-9, "{}", plain.value);
        assert_eq!(plain.meets_target, None);
        // The raw-loop row counts every raw block: 1000 + 500 + 500 + 75 ops in 4.075 s.
        let raw = find("raw pwrite", "ops/s");
        assert!((raw.value - 2075.0 / 4.075).abs() < 1e-6, "{}", raw.value);
        // 1 fsync per append at one thread, 1/30 at 64: 30 × fewer, meets the target of 20.
        let fsyncs = find("64 threads", "fsyncs per append");
        assert!((fsyncs.value - 160.0 / 4800.0).abs() < 1e-9);
        assert_eq!(fsyncs.ratio, "30.0 × fewer than 1 thread");
        assert_eq!(fsyncs.meets_target, Some(true));
        assert!(rec.table(true).contains("**NO**"));
        assert!(!rec.table(false).contains("**NO**"));
    }

    #[test]
    fn quantiles_use_nearest_rank() {
        let t = Totals { latencies: (1..=100).map(Duration::from_micros).collect(), ..Totals::default() };
        assert_eq!(t.quantile(0.5), Duration::from_micros(50));
        assert_eq!(t.quantile(0.99), Duration::from_micros(99));
        assert_eq!(t.quantile(1.0), Duration::from_micros(100));
        assert_eq!(Totals::default().quantile(0.99), Duration::ZERO);
    }
}
