//! `walden-benches`: benchmarks of the WAL measured against the machine's own disk limits.
//!
//! The workloads live here, in a library, so that three drivers share one body per benchmark:
//! - the criterion bench `benches/wal.rs` (`cargo bench -p walden-benches`), which times many
//!   iterations and prints a summary table at the end;
//! - the smoke mode (`WALDEN_BENCH_SMOKE=1 cargo bench -p walden-benches`), which runs each body
//!   once on tiny data through [`run_once`];
//! - the test `tests/smoke.rs`, which calls [`run_once`] so the benchmarks cannot rot.
//!
//! Every workload checks what it did (record counts, LSNs, what recovery truncated) and returns a
//! [`Sample`]: elapsed time, operations, bytes and fsyncs. A [`Recorder`] aggregates samples and
//! renders the table of figures, with ratios to the raw `write` + `fdatasync` loop measured in the
//! same run (see `BENCHMARKS.md`).

#![deny(missing_docs)]

mod env;
mod error;
mod raw;
mod report;
mod scale;
mod workloads;

pub use env::{BenchRoot, Machine, load_average, target_dir};
pub use error::BenchError;
pub use raw::{RawSyncLoop, raw_sequential_write};
pub use report::{Recorder, Row, Sample, Workload, encoded_len};
pub use scale::Scale;
pub use workloads::{DurableLog, OpenFixture, Paired, ScanFixture, XorShift, buffered_append};

/// Record kind used by every benchmark append.
pub const BENCH_KIND: u8 = 7;

/// Runs every benchmark body once at `scale` under `root` and returns the recorded samples.
///
/// This is the smoke mode: with [`Scale::smoke`] it takes a few seconds and proves every
/// workload still runs and still checks its results.
pub fn run_once(scale: &Scale, root: &BenchRoot) -> Result<Recorder, BenchError> {
    let mut rec = Recorder::new();
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
    Ok(rec)
}

/// The full summary: the run's conditions, then the table of figures.
pub fn summary(machine: &Machine, root: &BenchRoot, scale: &Scale, rec: &Recorder) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Walden WAL benchmarks — scale: {} (scan log {} MiB, open log {} MiB)\n",
        scale.name,
        scale.scan_log_bytes >> 20,
        scale.open_log_bytes >> 20
    ));
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
