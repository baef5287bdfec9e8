//! Which rows each workload puts in the summary table: its figures, the targets and the
//! ratios to the raw loop or to one writer measured in the same run.

use std::time::Duration;

use super::{ArchiveRows, CommitSync, Recorder, Row, Totals, Workload, encoded_len, format_value};

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
/// CDC decode target, change events per second.
const CDC_DECODE_TARGET_PER_S: f64 = 2_000_000.0;
/// CDC filtered replay target, delivered events per second.
const CDC_FILTERED_TARGET_PER_S: f64 = 1_000_000.0;
/// CDC commit → subscriber target for the 99th percentile.
const CDC_LATENCY_TARGET_P99: Duration = Duration::from_millis(1);
/// Archive throughput target, events per second.
const ARCHIVE_TARGET_PER_S: f64 = 1_000_000.0;
/// Lake size target for JSON rows: Parquet data bytes per WAL byte archived.
const ARCHIVE_TARGET_LAKE_RATIO: f64 = 0.5;

/// What a row says beside its value; `None` prints as `—`.
#[derive(Debug, Clone, Default)]
struct Verdict {
    target: Option<String>,
    ratio: Option<String>,
    meets: Option<bool>,
}

impl Verdict {
    /// A target and whether the figure meets it (`None`: cannot tell).
    fn target(target: impl Into<String>, meets: Option<bool>) -> Verdict {
        Verdict { target: Some(target.into()), ratio: None, meets }
    }

    /// A ratio, no target.
    fn ratio(ratio: Option<String>) -> Verdict {
        Verdict { ratio, ..Verdict::default() }
    }

    /// The same, with a ratio.
    fn with_ratio(self, ratio: Option<String>) -> Verdict {
        Verdict { ratio, ..self }
    }
}

/// The rows of one workload, all under one name, appended to the table in order.
struct WorkloadRows<'a> {
    name: String,
    out: &'a mut Vec<Row>,
}

impl WorkloadRows<'_> {
    /// A figure with no target and no ratio.
    fn plain(&mut self, figure: &'static str, value: f64, unit: &'static str) {
        self.judged(figure, value, unit, Verdict::default());
    }

    /// Operations per second and, where CPU time was measured, per CPU-second (the two
    /// `figures`), both in `unit` and held to the floor `min`, printed as `target`.
    fn ops_rates(&mut self, figures: [&'static str; 2], unit: &'static str, t: &Totals, (target, min): (&str, f64)) {
        let verdict = |rate: f64| Verdict::target(target, Some(rate >= min));
        let rate = t.ops_per_s();
        self.judged(figures[0], rate, unit, verdict(rate));
        if let Some(cpu_rate) = t.ops_per_cpu_s() {
            self.judged(figures[1], cpu_rate, unit, verdict(cpu_rate));
        }
    }

    fn judged(&mut self, figure: &'static str, value: f64, unit: &'static str, verdict: Verdict) {
        let dash = || "—".to_string();
        self.out.push(Row {
            workload: self.name.clone(),
            figure,
            value,
            unit,
            target: verdict.target.unwrap_or_else(dash),
            ratio: verdict.ratio.unwrap_or_else(dash),
            meets_target: verdict.meets,
        });
    }
}

impl Recorder {
    /// Appends the rows of `workload` (whose totals are `t`) to `out`.
    pub(super) fn rows_of(&self, workload: Workload, t: &Totals, out: &mut Vec<Row>) {
        let rows = &mut WorkloadRows { name: name(workload, t), out };
        match workload {
            Workload::RawSyncLoop { .. } => {
                rows.judged("ops/s", t.ops_per_s(), "ops/s", Verdict::ratio(Some("1.00 (reference)".into())));
            }
            Workload::RawSeqWrite { .. } => rows.plain("throughput", t.bytes_per_s() / 1e6, "MB/s"),
            Workload::BufferedAppend { .. } => buffered_append(t, rows),
            Workload::DurableAlways { payload_bytes } => self.durable_always(payload_bytes, t, rows),
            Workload::GroupCommit { threads, payload_bytes } => self.group_commit(threads, payload_bytes, t, rows),
            Workload::Scan => scan(t, rows),
            Workload::Seek => seek(t, rows),
            Workload::OpenAfterCrash { .. } => open_after_crash(t, rows),
            Workload::EngineCommit { sync, threads, row_bytes } => {
                self.engine_commit(sync, threads, row_bytes, t, rows)
            }
            Workload::CdcDecode => cdc_decode(t, rows),
            Workload::CdcFilteredReplay { tables } => cdc_filtered_replay(tables, t, rows),
            Workload::CdcCommitToSubscriber => cdc_commit_to_subscriber(t, rows),
            Workload::ArchiveThroughput { rows: kind } => archive_throughput(kind, t, rows),
            Workload::ArchiveColdReplay | Workload::ArchiveHotReplay => self.archive_replay(workload, t, rows),
        }
    }

    fn durable_always(&self, payload_bytes: usize, t: &Totals, rows: &mut WorkloadRows<'_>) {
        let ratio = self.raw_ratio(Workload::DurableAlways { payload_bytes }, payload_bytes);
        let verdict = Verdict::target(durable_target(), ratio.map(|(r, _)| r >= DURABLE_TARGET_RATIO));
        rows.judged("appends/s", t.ops_per_s(), "appends/s", verdict.with_ratio(ratio.map(raw_text)));
        rows.plain("fsyncs per append", t.syncs_per_op(), "fsyncs");
    }

    fn group_commit(&self, threads: usize, payload_bytes: usize, t: &Totals, rows: &mut WorkloadRows<'_>) {
        let rate = t.ops_per_s();
        let raw = self.raw_ratio(Workload::GroupCommit { threads, payload_bytes }, payload_bytes);
        if threads == 1 {
            let verdict = Verdict::target(durable_target(), raw.map(|(r, _)| r >= DURABLE_TARGET_RATIO));
            rows.judged("appends/s", rate, "appends/s", verdict.with_ratio(raw.map(raw_text)));
            rows.plain("fsyncs per append", t.syncs_per_op(), "fsyncs");
            return;
        }
        rows.judged("appends/s", rate, "appends/s", Verdict::ratio(raw.map(raw_text)));
        let one_workload = Workload::GroupCommit { threads: 1, payload_bytes };
        let Some(one) = self.totals.get(&one_workload) else {
            rows.plain("fsyncs per append", t.syncs_per_op(), "fsyncs");
            return;
        };
        let targeted = threads == GROUP_TARGET_THREADS;
        let verdict = |meets: bool| {
            if targeted {
                Verdict::target(format!("≥ {GROUP_TARGET_SPEEDUP}"), Some(meets))
            } else {
                Verdict::default()
            }
        };
        // Speedup over one writer with each side divided by the raw loop run beside it, so
        // that drift in fsync latency between the two benchmarks cancels.
        if let Some(((r, _), (o, _))) = raw.zip(self.raw_ratio(one_workload, payload_bytes)) {
            let speedup = r / o;
            rows.judged("× 1 thread, raw-normalised", speedup, "×", verdict(speedup >= GROUP_TARGET_SPEEDUP));
        }
        // The plain ratio of appends/s: what a quiet machine shows; here drift-prone.
        rows.plain("× 1 thread, unnormalised", rate / one.ops_per_s(), "×");
        // Fewer fsyncs per append than one writer: independent of fsync latency.
        let fewer = one.syncs_per_op() / t.syncs_per_op().max(f64::MIN_POSITIVE);
        let verdict =
            verdict(fewer >= GROUP_TARGET_SPEEDUP).with_ratio(Some(format!("{fewer:.1} × fewer than 1 thread")));
        rows.judged("fsyncs per append", t.syncs_per_op(), "fsyncs", verdict);
    }

    fn engine_commit(
        &self,
        sync: CommitSync,
        threads: usize,
        row_bytes: usize,
        t: &Totals,
        rows: &mut WorkloadRows<'_>,
    ) {
        let raw = self.raw_ratio_engine(Workload::EngineCommit { sync, threads, row_bytes });
        // One committer: near the raw loop (the WAL's single-writer target).
        let verdict = if threads == 1 {
            Verdict::target(durable_target(), raw.map(|(r, _)| r >= DURABLE_TARGET_RATIO))
        } else {
            Verdict::default()
        };
        rows.judged("commits/s", t.ops_per_s(), "commits/s", verdict.with_ratio(raw.map(raw_text)));
        rows.plain("p50 commit latency", micros(t.quantile(0.5)), "µs");
        rows.plain("p99 commit latency", micros(t.quantile(0.99)), "µs");
        let one_workload = Workload::EngineCommit { sync, threads: 1, row_bytes };
        if threads > 1
            && let Some(((r, _), (o, _))) = raw.zip(self.raw_ratio_engine(one_workload))
        {
            rows.plain("× 1 thread, raw-normalised", r / o, "×");
        }
        rows.plain("fsyncs per commit", t.syncs_per_op(), "fsyncs");
    }

    fn archive_replay(&self, workload: Workload, t: &Totals, rows: &mut WorkloadRows<'_>) {
        let cold = workload == Workload::ArchiveColdReplay;
        let hot = self.totals.get(&Workload::ArchiveHotReplay).filter(|_| cold);
        let ratio = |mine: f64, theirs: Option<f64>| match theirs {
            Some(h) if h > 0.0 => Some(format!("{:.2} × hot ({} events/s)", mine / h, format_value(h))),
            _ => None,
        };
        let rate = t.ops_per_s();
        rows.judged("events/s", rate, "events/s", Verdict::ratio(ratio(rate, hot.map(Totals::ops_per_s))));
        if let Some(cpu_rate) = t.ops_per_cpu_s() {
            let cell = ratio(cpu_rate, hot.and_then(Totals::ops_per_cpu_s)).map(|c| c.replace("events/s", "per CPU-s"));
            rows.judged("events per CPU-second (process)", cpu_rate, "events/s", Verdict::ratio(cell));
        }
    }
}

/// The workload in words: the first column of each of its rows.
fn name(workload: Workload, t: &Totals) -> String {
    match workload {
        Workload::RawSyncLoop { payload_bytes } => {
            format!("raw pwrite+fdatasync loop, {} B writes", encoded_len(payload_bytes))
        }
        Workload::RawSeqWrite { synced: true } => "raw sequential write, 1 MiB chunks + fdatasync".into(),
        Workload::RawSeqWrite { synced: false } => "raw sequential write, 1 MiB chunks, page cache only".into(),
        Workload::BufferedAppend { payload_bytes } => {
            format!("buffered append {payload_bytes} B, SyncMode::None, 1 thread")
        }
        Workload::DurableAlways { payload_bytes } => {
            format!("durable append {payload_bytes} B, SyncMode::Always, 1 thread")
        }
        Workload::GroupCommit { threads, payload_bytes } => {
            format!("group commit {payload_bytes} B, SyncMode::Group, {threads} thread{}", plural(threads))
        }
        Workload::Scan => "scan of sealed (mmapped) segments, CRC checked".into(),
        Workload::Seek => "seek: reader(random LSN) + first record".into(),
        Workload::OpenAfterCrash { cold_cache } => {
            let cache = if cold_cache { "cold page cache" } else { "warm page cache" };
            let log_mib = t.bytes as f64 / t.ops.max(1) as f64 / (1u64 << 20) as f64;
            format!("open after crash + torn tail ({log_mib:.0} MiB log), {cache}")
        }
        Workload::EngineCommit { sync, threads, row_bytes } => format!(
            "engine one-row txn ({row_bytes} B row), SyncMode::{}, {threads} thread{}",
            sync.name(),
            plural(threads)
        ),
        Workload::CdcDecode => "CDC decode: change stream, unfiltered, pre-written log".into(),
        Workload::CdcFilteredReplay { tables } => format!("CDC filtered replay: 1 table of {tables}, pre-written log"),
        Workload::CdcCommitToSubscriber => "CDC commit → subscriber, live tail, SyncMode::None".into(),
        Workload::ArchiveThroughput { rows } => {
            format!("archive sealed segments → Parquet, file:// lake, {}", rows.describe())
        }
        Workload::ArchiveColdReplay => {
            "cold replay: Archiver::cdc() over a trimmed WAL, every event from the lake".into()
        }
        Workload::ArchiveHotReplay => "hot replay: the same events from the WAL (same run)".into(),
    }
}

fn buffered_append(t: &Totals, rows: &mut WorkloadRows<'_>) {
    let target = ("≥ 2,000,000", BUFFERED_TARGET_PER_S);
    rows.ops_rates(["records/s", "records per CPU-second"], "records/s", t, target);
    rows.plain("payload throughput", t.bytes_per_s() / 1e6, "MB/s");
}

fn scan(t: &Totals, rows: &mut WorkloadRows<'_>) {
    let target = |rate: f64| Verdict::target("≥ 1 GB/s", Some(rate >= SCAN_TARGET_BYTES_PER_S));
    let rate = t.bytes_per_s();
    rows.judged("throughput", rate / 1e9, "GB/s", target(rate));
    if let Some(cpu_rate) = t.bytes_per_cpu_s() {
        rows.judged("per CPU-second", cpu_rate / 1e9, "GB/s", target(cpu_rate));
    }
    rows.plain("records/s", t.ops_per_s(), "records/s");
}

fn seek(t: &Totals, rows: &mut WorkloadRows<'_>) {
    rows.plain("mean latency", micros(t.mean_latency()), "µs");
    rows.plain("p50 latency", micros(t.quantile(0.5)), "µs");
    rows.plain("p99 latency", micros(t.quantile(0.99)), "µs");
    if !t.cpu.is_zero() {
        let cpu = t.cpu.div_f64((t.ops as f64).max(1.0));
        rows.plain("mean CPU per lookup", micros(cpu), "µs");
    }
}

fn open_after_crash(t: &Totals, rows: &mut WorkloadRows<'_>) {
    let mean = t.mean_latency();
    rows.judged("mean open time", millis(mean), "ms", Verdict::target("< 1,000 ms", Some(mean < OPEN_TARGET)));
    rows.plain("max open time", millis(t.quantile(1.0)), "ms");
}

fn cdc_decode(t: &Totals, rows: &mut WorkloadRows<'_>) {
    let target = ("≥ 2,000,000", CDC_DECODE_TARGET_PER_S);
    rows.ops_rates(["events/s", "events per CPU-second"], "events/s", t, target);
}

fn cdc_filtered_replay(tables: usize, t: &Totals, rows: &mut WorkloadRows<'_>) {
    let target = ("≥ 1,000,000", CDC_FILTERED_TARGET_PER_S);
    rows.ops_rates(["delivered events/s", "delivered events per CPU-second"], "events/s", t, target);
    // Every table holds the same share, so the stream examined `tables` × as many.
    rows.plain("changes examined/s", t.ops_per_s() * tables as f64, "changes/s");
}

fn cdc_commit_to_subscriber(t: &Totals, rows: &mut WorkloadRows<'_>) {
    let p99 = t.quantile(0.99);
    rows.plain("p50 latency", micros(t.quantile(0.5)), "µs");
    rows.judged("p99 latency", micros(p99), "µs", Verdict::target("< 1,000 µs", Some(p99 < CDC_LATENCY_TARGET_P99)));
    rows.plain("max latency", micros(t.quantile(1.0)), "µs");
    rows.plain("mean latency", micros(t.mean_kept_latency()), "µs");
}

fn archive_throughput(kind: ArchiveRows, t: &Totals, rows: &mut WorkloadRows<'_>) {
    let target = ("≥ 1,000,000", ARCHIVE_TARGET_PER_S);
    rows.ops_rates(["events/s", "events per CPU-second (process)"], "events/s", t, target);
    rows.plain("WAL read", t.bytes_per_s() / 1e6, "MB/s");
    let lake = t.lake;
    if lake.wal_bytes == 0 {
        return;
    }
    let wal = lake.wal_bytes as f64;
    let data = lake.data_bytes as f64 / wal;
    // The target is for realistic (JSON) rows; incompressible rows are noted.
    let verdict = match kind {
        ArchiveRows::Json => {
            Verdict::target(format!("≤ {ARCHIVE_TARGET_LAKE_RATIO}"), Some(data <= ARCHIVE_TARGET_LAKE_RATIO))
        }
        ArchiveRows::Incompressible => Verdict::default(),
    };
    rows.judged("lake data files ÷ WAL bytes", data, "×", verdict);
    rows.plain("lake data + metadata ÷ WAL bytes", (lake.data_bytes + lake.metadata_bytes) as f64 / wal, "×");
    let per_event = |bytes: u64| bytes as f64 / (t.ops as f64).max(1.0);
    rows.plain("WAL bytes per event", per_event(lake.wal_bytes), "B");
    rows.plain("lake data bytes per event", per_event(lake.data_bytes), "B");
}

/// "≥ 0.9 × raw loop".
fn durable_target() -> String {
    format!("≥ {DURABLE_TARGET_RATIO} × raw loop")
}

/// "0.98 × raw (265/s alongside)".
fn raw_text((ratio, raw_rate): (f64, f64)) -> String {
    format!("{ratio:.2} × raw ({} ops/s alongside)", format_value(raw_rate))
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
