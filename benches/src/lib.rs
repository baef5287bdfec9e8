//! `walden-benches`: benchmarks of Walden's WAL, engine, CDC and archive, measured against the
//! machine's own disk limits.
//!
//! The workloads live here, in a library, so that three drivers share one body per benchmark:
//! - the criterion benches `benches/wal.rs`, `benches/engine.rs`, `benches/cdc.rs` and
//!   `benches/archive.rs` (`cargo bench -p walden-benches`), which time many iterations and print a summary table
//!   at the end;
//! - the smoke mode (`WALDEN_BENCH_SMOKE=1 cargo bench -p walden-benches`), which runs each body
//!   once on tiny data through [`run_suite_once`];
//! - the test `tests/smoke.rs`, which calls [`run_suite_once`] for every [`Suite`] so the
//!   benchmarks cannot rot.
//!
//! Every workload checks what it did (record counts, LSNs, event order, what recovery
//! truncated) and returns a [`Sample`]: elapsed time, operations, bytes, fsyncs, latencies. A
//! [`Recorder`] aggregates samples and renders the table of figures, with ratios to the raw
//! `write` + `fdatasync` loop measured in the same run (see `BENCHMARKS.md`).

#![deny(missing_docs)]

mod archive;
mod cdc;
mod engine;
mod env;
mod error;
mod paired;
mod raw;
mod report;
mod scale;
mod workloads;

pub use archive::{
    ARCHIVE_ROW_MAX_BYTES, ARCHIVE_ROW_MIN_BYTES, ArchiveLog, ReplayLog, archive_row_image, archive_row_mean_bytes,
};
pub use cdc::{CDC_FILTER_TABLE, CDC_TABLES, CdcLog, commit_to_subscriber_latency};
pub use engine::{ENGINE_BENCH_TABLE, EngineCommits};
pub use env::{BenchRoot, Machine, load_average, target_dir};
pub use error::BenchError;
pub use paired::{Paired, PairedRun, ROUND_OPS_PER_THREAD, RawPairing};
pub use raw::{RawSyncLoop, raw_sequential_write};
pub use report::{
    ArchiveRows, CommitSync, LakeBytes, Recorder, Row, Sample, Workload, encoded_len, group_thousands, process_cpu_time,
};
pub use scale::Scale;
pub use workloads::{DurableLog, OpenFixture, ScanFixture, XorShift, buffered_append};

/// A group of benchmarks with its own criterion target and summary table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// The write-ahead log (`benches/wal.rs`).
    Wal,
    /// Engine transactions (`benches/engine.rs`).
    Engine,
    /// CDC change streams (`benches/cdc.rs`).
    Cdc,
    /// The archive: sealed segments → Parquet in an Iceberg lake, and cold replay
    /// (`benches/archive.rs`).
    Archive,
}

impl Suite {
    /// Every suite.
    pub const ALL: [Suite; 4] = [Suite::Wal, Suite::Engine, Suite::Cdc, Suite::Archive];

    /// `"wal"`, `"engine"`, `"cdc"` or `"archive"` (the criterion target's name).
    pub fn name(self) -> &'static str {
        match self {
            Suite::Wal => "wal",
            Suite::Engine => "engine",
            Suite::Cdc => "cdc",
            Suite::Archive => "archive",
        }
    }

    /// File name of the suite's summary for a scale (`summary-full.md` for the WAL, as before;
    /// `summary-engine-full.md`, `summary-cdc-full.md`, `summary-archive-full.md`).
    pub fn summary_file_name(self, scale_name: &str) -> String {
        match self {
            Suite::Wal => format!("summary-{scale_name}.md"),
            other => format!("summary-{}-{scale_name}.md", other.name()),
        }
    }
}

/// Record kind used by every benchmark append.
pub const BENCH_KIND: u8 = 7;

/// Runs every WAL benchmark body once at `scale` under `root` and returns the recorded
/// samples (= [`run_suite_once`] with [`Suite::Wal`]).
///
/// This is the smoke mode: with [`Scale::smoke`] it takes a few seconds and proves every
/// workload still runs and still checks its results.
pub fn run_once(scale: &Scale, root: &BenchRoot) -> Result<Recorder, BenchError> {
    run_suite_once(Suite::Wal, scale, root)
}

/// Runs every benchmark body of `suite` once at `scale` under `root` (the smoke mode).
pub fn run_suite_once(suite: Suite, scale: &Scale, root: &BenchRoot) -> Result<Recorder, BenchError> {
    let mut rec = Recorder::new();
    match suite {
        Suite::Wal => run_wal_once(scale, root, &mut rec)?,
        Suite::Engine => run_engine_once(scale, root, &mut rec)?,
        Suite::Cdc => run_cdc_once(scale, root, &mut rec)?,
        Suite::Archive => run_archive_once(scale, root, &mut rec)?,
    }
    Ok(rec)
}

fn run_wal_once(scale: &Scale, root: &BenchRoot, rec: &mut Recorder) -> Result<(), BenchError> {
    let small = scale.small_payload_bytes;
    let large = scale.large_payload_bytes;

    for payload in [small, large] {
        let mut raw = RawSyncLoop::new(root, encoded_len(payload) as usize)?;
        rec.add(Workload::RawSyncLoop { payload_bytes: payload }, raw.run(scale.once_sync_ops)?);
    }
    for synced in [true, false] {
        let sample = raw_sequential_write(root, scale.once_seq_chunks, scale.seq_chunk_bytes, synced)?;
        rec.add(Workload::RawSeqWrite { synced }, sample);
    }
    rec.add(
        Workload::BufferedAppend { payload_bytes: small },
        buffered_append(root, scale.once_buffered_records, small)?,
    );
    for payload in [small, large] {
        let mut log = DurableLog::new(root, walden_wal::SyncMode::Always, payload)?;
        let paired = log.run(1, scale.once_sync_ops)?;
        rec.add_paired(Workload::DurableAlways { payload_bytes: payload }, payload, paired);
    }
    for &threads in &scale.group_threads {
        let mut log = DurableLog::new(root, walden_wal::SyncMode::Group, small)?;
        let paired = log.run(threads, scale.once_group_appends_per_thread)?;
        rec.add_paired(Workload::GroupCommit { threads, payload_bytes: small }, small, paired);
    }
    let scan = ScanFixture::build(root, scale)?;
    rec.add(Workload::Scan, scan.scan()?);
    let mut rng = XorShift::new(0x5EED);
    rec.add(Workload::Seek, scan.seek(scale.once_seeks, &mut rng)?);
    drop(scan);
    let open = OpenFixture::build(root, scale)?;
    for cold_cache in [false, true] {
        rec.add(Workload::OpenAfterCrash { cold_cache }, open.open_after_crash(cold_cache)?);
    }
    Ok(())
}

fn run_engine_once(scale: &Scale, root: &BenchRoot, rec: &mut Recorder) -> Result<(), BenchError> {
    let row_bytes = scale.engine_row_bytes;
    for sync in [CommitSync::Always, CommitSync::Group] {
        for &threads in &scale.engine_threads {
            let mut commits = EngineCommits::new(root, sync.sync_mode(), row_bytes)?;
            let paired = commits.run(threads, scale.once_engine_commits_per_thread)?;
            let workload = Workload::EngineCommit { sync, threads, row_bytes };
            rec.add_paired_raw_bytes(workload, commits.commit_bytes(), paired);
        }
    }
    Ok(())
}

fn run_cdc_once(scale: &Scale, root: &BenchRoot, rec: &mut Recorder) -> Result<(), BenchError> {
    let log = CdcLog::build(root, scale)?;
    rec.add(Workload::CdcDecode, log.decode()?);
    rec.add(Workload::CdcFilteredReplay { tables: CDC_TABLES.len() }, log.filtered_replay()?);
    drop(log);
    let interval = std::time::Duration::from_micros(scale.cdc_commit_interval_us);
    let sample = commit_to_subscriber_latency(root, scale.once_cdc_latency_commits, scale.cdc_row_bytes, interval)?;
    rec.add(Workload::CdcCommitToSubscriber, sample);
    Ok(())
}

fn run_archive_once(scale: &Scale, root: &BenchRoot, rec: &mut Recorder) -> Result<(), BenchError> {
    for rows in ArchiveRows::ALL {
        let log = ArchiveLog::build(root, scale, rows)?;
        rec.add(Workload::ArchiveThroughput { rows }, log.archive()?);
    }
    let replay = ReplayLog::build(root, scale)?;
    rec.add(Workload::ArchiveHotReplay, replay.hot_replay()?);
    rec.add(Workload::ArchiveColdReplay, replay.cold_replay()?);
    Ok(())
}

/// The full summary of the WAL suite (= [`suite_summary`] with [`Suite::Wal`]).
pub fn summary(machine: &Machine, root: &BenchRoot, scale: &Scale, rec: &Recorder) -> String {
    suite_summary(Suite::Wal, machine, root, scale, rec)
}

/// The full summary of a suite: the run's conditions, then the table of figures.
pub fn suite_summary(suite: Suite, machine: &Machine, root: &BenchRoot, scale: &Scale, rec: &Recorder) -> String {
    let mut out = String::new();
    match suite {
        Suite::Wal => out.push_str(&format!(
            "Walden WAL benchmarks — scale: {} (scan log {} MiB, open log {} MiB)\n",
            scale.name,
            scale.scan_log_bytes >> 20,
            scale.open_log_bytes >> 20
        )),
        Suite::Engine => out.push_str(&format!(
            "Walden engine benchmarks — scale: {} (one-row transactions, {} B rows)\n",
            scale.name, scale.engine_row_bytes
        )),
        Suite::Cdc => out.push_str(&format!(
            "Walden CDC benchmarks — scale: {} (replay log {} changes of {} B in transactions of {}; \
             live tail one commit per {} µs)\n",
            scale.name, scale.cdc_changes, scale.cdc_row_bytes, scale.cdc_changes_per_txn, scale.cdc_commit_interval_us
        )),
        Suite::Archive => {
            let sample = scale.archive_changes.min(20_000);
            out.push_str(&format!(
                "Walden archive benchmarks — scale: {} (log of {} changes in transactions of {}, 4 tables, \
                 insert : update : delete = 5 : 2 : 1; row images {}–{} B, mean {:.0} B JSON / {:.0} B \
                 incompressible; {} KiB WAL segments; archive batches of {} KiB; local file:// lake, \
                 embedded catalog)\n",
                scale.name,
                scale.archive_changes,
                scale.archive_changes_per_txn,
                ARCHIVE_ROW_MIN_BYTES,
                ARCHIVE_ROW_MAX_BYTES,
                archive_row_mean_bytes(ArchiveRows::Json, sample),
                archive_row_mean_bytes(ArchiveRows::Incompressible, sample),
                scale.archive_segment_bytes >> 10,
                scale.archive_batch_bytes >> 10
            ));
        }
    }
    out.push_str(&format!("machine: {} cores, {}\n", machine.cores, machine.cpu_model));
    out.push_str(&format!("bench dir: {}\n", root.describe()));
    if root.is_in_memory() {
        out.push_str("WARNING: the bench dir is in memory; the disk figures do not measure a disk\n");
    }
    out.push_str(&format!("load average: {} at start, {} at end\n\n", machine.load_average, load_average()));
    let full = scale.name == "full";
    if !full {
        out.push_str("smoke run: one tiny iteration per benchmark; the figures are not measurements\n");
    }
    out.push_str(&rec.table(full));
    out
}
