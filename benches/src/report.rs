//! Samples, their aggregation into figures, and the summary table.

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
    /// `append` of 100 B records with `SyncMode::Group` from several threads.
    GroupCommit {
        /// Writer threads.
        threads: usize,
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
}

#[derive(Debug, Default, Clone)]
struct Totals {
    samples: u64,
    elapsed: Duration,
    ops: u64,
    bytes: u64,
    syncs: u64,
    latencies: Vec<Duration>,
}

impl Totals {
    fn seconds(&self) -> f64 {
        self.elapsed.as_secs_f64().max(1e-12)
    }
    fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.seconds()
    }
    fn bytes_per_s(&self) -> f64 {
        self.bytes as f64 / self.seconds()
    }
    fn syncs_per_op(&self) -> f64 {
        self.syncs as f64 / (self.ops as f64).max(1.0)
    }
    fn mean_latency(&self) -> Duration {
        self.elapsed.div_f64((self.ops as f64).max(1.0))
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
}

/// Durable single writer target: this fraction of the raw loop.
const DURABLE_TARGET_RATIO: f64 = 0.9;
/// Buffered append target, records per second.
const BUFFERED_TARGET_PER_S: f64 = 2_000_000.0;
/// Group commit target at the largest thread count (64): this many times one writer.
const GROUP_TARGET_SPEEDUP: f64 = 20.0;
/// Thread count the group-commit speedup target applies to.
const GROUP_TARGET_THREADS: usize = 64;
/// Scan target, bytes per second.
const SCAN_TARGET_BYTES_PER_S: f64 = 1e9;
/// Open-after-crash target.
const OPEN_TARGET: Duration = Duration::from_secs(1);

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// Adds one sample of `workload`.
    pub fn add(&mut self, workload: Workload, sample: Sample) {
        let t = self.totals.entry(workload).or_default();
        t.samples += 1;
        t.elapsed += sample.elapsed;
        t.ops += sample.ops;
        t.bytes += sample.bytes;
        t.syncs += sample.syncs;
        t.latencies.extend(sample.latencies);
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

    /// The rows of the summary table, in table order.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        for (&workload, t) in &self.totals {
            self.rows_of(workload, t, &mut rows);
        }
        rows
    }

    fn rows_of(&self, workload: Workload, t: &Totals, rows: &mut Vec<Row>) {
        let dash = || "—".to_string();
        let mut row = |workload: String, figure, value, unit, target: String, ratio: String, meets| {
            rows.push(Row { workload, figure, value, unit, target, ratio, meets_target: meets });
        };
        match workload {
            Workload::RawSyncLoop { payload_bytes } => {
                let name = format!("raw pwrite+fdatasync loop, {} B writes", encoded_len(payload_bytes));
                row(name, "ops/s", t.ops_per_s(), "ops/s", dash(), "1.00 (reference)".into(), None);
            }
            Workload::RawSeqWrite { synced } => {
                let name = if synced {
                    "raw sequential write, 1 MiB chunks + fdatasync"
                } else {
                    "raw sequential write, 1 MiB chunks, page cache only"
                };
                row(name.into(), "throughput", t.bytes_per_s() / 1e6, "MB/s", dash(), dash(), None);
            }
            Workload::BufferedAppend { payload_bytes } => {
                let name = format!("buffered append {payload_bytes} B, SyncMode::None, 1 thread");
                let rate = t.ops_per_s();
                row(
                    name.clone(),
                    "records/s",
                    rate,
                    "records/s",
                    "≥ 2,000,000".into(),
                    dash(),
                    Some(rate >= BUFFERED_TARGET_PER_S),
                );
                row(name, "payload throughput", t.bytes_per_s() / 1e6, "MB/s", dash(), dash(), None);
            }
            Workload::DurableAlways { payload_bytes } => {
                let name = format!("durable append {payload_bytes} B, SyncMode::Always, 1 thread");
                let rate = t.ops_per_s();
                let raw = self.rate(Workload::RawSyncLoop { payload_bytes });
                let ratio = raw.map(|r| rate / r);
                row(
                    name.clone(),
                    "appends/s",
                    rate,
                    "appends/s",
                    format!("≥ {DURABLE_TARGET_RATIO} × raw loop"),
                    ratio.map_or_else(dash, |r| format!("{r:.2} × raw")),
                    ratio.map(|r| r >= DURABLE_TARGET_RATIO),
                );
                row(name, "fsyncs per append", t.syncs_per_op(), "fsyncs", dash(), dash(), None);
            }
            Workload::GroupCommit { threads } => {
                let name = format!("group commit 100 B, SyncMode::Group, {threads} thread{}", plural(threads));
                let rate = t.ops_per_s();
                let raw = self.rate(Workload::RawSyncLoop { payload_bytes: 100 }).map(|r| rate / r);
                let single = self.rate(Workload::GroupCommit { threads: 1 }).map(|r| rate / r);
                let raw_text = raw.map_or_else(dash, |r| format!("{r:.2} × raw"));
                let (target, ratio, meets) = if threads == 1 {
                    (format!("≥ {DURABLE_TARGET_RATIO} × raw loop"), raw_text, raw.map(|r| r >= DURABLE_TARGET_RATIO))
                } else {
                    let ratio = match single {
                        Some(s) => format!("{s:.1} × 1 thread; {raw_text}"),
                        None => raw_text,
                    };
                    if threads == GROUP_TARGET_THREADS {
                        (
                            format!("≥ {GROUP_TARGET_SPEEDUP} × 1 thread"),
                            ratio,
                            single.map(|s| s >= GROUP_TARGET_SPEEDUP),
                        )
                    } else {
                        (dash(), ratio, None)
                    }
                };
                row(name.clone(), "appends/s", rate, "appends/s", target, ratio, meets);
                row(name, "fsyncs per append", t.syncs_per_op(), "fsyncs", dash(), dash(), None);
            }
            Workload::Scan => {
                let name = "scan of sealed (mmapped) segments, CRC checked".to_string();
                let rate = t.bytes_per_s();
                row(
                    name.clone(),
                    "throughput",
                    rate / 1e9,
                    "GB/s",
                    "≥ 1 GB/s".into(),
                    dash(),
                    Some(rate >= SCAN_TARGET_BYTES_PER_S),
                );
                row(name, "records/s", t.ops_per_s(), "records/s", dash(), dash(), None);
            }
            Workload::Seek => {
                let name = "seek: reader(random LSN) + first record".to_string();
                row(name.clone(), "mean latency", micros(t.mean_latency()), "µs", dash(), dash(), None);
                row(name.clone(), "p50 latency", micros(t.quantile(0.5)), "µs", dash(), dash(), None);
                row(name, "p99 latency", micros(t.quantile(0.99)), "µs", dash(), dash(), None);
            }
            Workload::OpenAfterCrash { cold_cache } => {
                let cache = if cold_cache { "cold page cache" } else { "warm page cache" };
                let log_mib = t.bytes as f64 / t.ops.max(1) as f64 / (1u64 << 20) as f64;
                let name = format!("open after crash + torn tail ({log_mib:.0} MiB log), {cache}");
                let mean = t.mean_latency();
                row(
                    name.clone(),
                    "mean open time",
                    millis(mean),
                    "ms",
                    "< 1,000 ms".into(),
                    dash(),
                    Some(mean < OPEN_TARGET),
                );
                row(name, "max open time", millis(t.quantile(1.0)), "ms", dash(), dash(), None);
            }
        }
    }

    /// The summary as a Markdown table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str("| workload | figure | value | unit | target | ratio | meets target |\n");
        out.push_str("|---|---|--:|---|---|---|---|\n");
        for r in self.rows() {
            let meets = match r.meets_target {
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

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Large values with thousands separators and no decimals; small ones with 2–3 significant
/// decimals.
fn format_value(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_string();
    }
    if v.abs() >= 1000.0 {
        let digits = format!("{:.0}", v.abs());
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if v < 0.0 { format!("-{grouped}") } else { grouped }
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ms: u64, ops: u64, bytes: u64, syncs: u64) -> Sample {
        Sample { elapsed: Duration::from_millis(ms), ops, bytes, syncs, latencies: Vec::new() }
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
        // Raw loop: 1000 ops in 2 s = 500/s.
        rec.add(Workload::RawSyncLoop { payload_bytes: 100 }, sample(2000, 1000, 132_000, 1000));
        // Always: 460/s = 0.92 × raw.
        rec.add(Workload::DurableAlways { payload_bytes: 100 }, sample(1000, 460, 46_000, 460));
        // Group, 1 thread: 400/s = 0.8 × raw (misses); 64 threads: 9,600/s = 24 × one thread.
        rec.add(Workload::GroupCommit { threads: 1 }, sample(1000, 400, 40_000, 400));
        rec.add(Workload::GroupCommit { threads: 64 }, sample(500, 4800, 480_000, 160));
        let rows = rec.rows();
        let find = |w: &str, f: &str| rows.iter().find(|r| r.workload.contains(w) && r.figure == f).unwrap().clone();
        let always = find("Always", "appends/s");
        assert!((always.value - 460.0).abs() < 1e-6);
        assert_eq!(always.ratio, "0.92 × raw");
        assert_eq!(always.meets_target, Some(true));
        assert_eq!(find("Group, 1 thread", "appends/s").meets_target, Some(false));
        let g64 = find("64 threads", "appends/s");
        assert_eq!(g64.meets_target, Some(true));
        assert!(g64.ratio.starts_with("24.0 × 1 thread"), "{}", g64.ratio);
        let fsyncs = find("64 threads", "fsyncs per append");
        assert!((fsyncs.value - 160.0 / 4800.0).abs() < 1e-9);
        assert!(rec.table().contains("**NO**"));
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
