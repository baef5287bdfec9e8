//! Criterion benchmarks of the WAL against the raw disk, ending with a summary table.
//!
//! `cargo bench -p walden-benches --bench wal` runs them (about 3 minutes on 2 cores after the
//! build); filters work as usual (`-- group_commit`). `-- --test` (and `cargo test --benches`)
//! runs each body once on tiny data, and so does `WALDEN_BENCH_SMOKE=1` (without criterion).
//! See BENCHMARKS.md.

use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput};
use walden_benches::{
    BenchRoot, DurableLog, OpenFixture, RawSyncLoop, Recorder, Scale, ScanFixture, Suite, Workload, XorShift,
    buffered_append, encoded_len, raw_sequential_write,
};
use walden_wal::SyncMode;

mod common;
use common::{DURABLE_MEASUREMENT, group, or_exit, timed, timed_each};

/// Runs one paired durable batch (WAL appends plus the raw-loop block beside them), records both
/// and returns the WAL's time: criterion reports the WAL, the table its ratio to the raw loop.
fn timed_paired(rec: &mut Recorder, workload: Workload, log: &mut DurableLog, threads: usize, iters: u64) -> Duration {
    let paired = or_exit(log.run(threads, iters));
    let elapsed = paired.wal.elapsed;
    rec.add_paired(workload, log.payload_bytes(), paired);
    elapsed
}

fn main() {
    common::run(Suite::Wal, bench_all);
}

fn bench_all(c: &mut Criterion, rec: &mut Recorder, scale: &Scale, root: &BenchRoot) {
    bench_durable(c, rec, scale, root);
    bench_group_commit(c, rec, scale, root);
    bench_throughput(c, rec, scale, root);
    bench_read(c, rec, scale, root);
    bench_open(c, rec, scale, root);
}

/// Workloads 1 and 3: the disk's limit and durable single-writer appends, side by side in time.
fn bench_durable(c: &mut Criterion, rec: &mut Recorder, scale: &Scale, root: &BenchRoot) {
    let mut g = group(c, "durable");
    g.measurement_time(DURABLE_MEASUREMENT);
    g.throughput(Throughput::Elements(1));
    for payload in [scale.small_payload_bytes, scale.large_payload_bytes] {
        let mut raw: Option<RawSyncLoop> = None;
        let w = Workload::RawSyncLoop { payload_bytes: payload };
        g.bench_function(format!("raw_fdatasync_loop/{}B", encoded_len(payload)), |b| {
            let raw = raw.get_or_insert_with(|| or_exit(RawSyncLoop::new(root, encoded_len(payload) as usize)));
            b.iter_custom(|iters| timed(rec, w, raw.run(iters)));
        });
        let mut log: Option<DurableLog> = None;
        let w = Workload::DurableAlways { payload_bytes: payload };
        g.bench_function(format!("wal_always/{payload}B"), |b| {
            let log = log.get_or_insert_with(|| or_exit(DurableLog::new(root, SyncMode::Always, payload)));
            b.iter_custom(|iters| timed_paired(rec, w, log, 1, iters));
        });
    }
    g.finish();
}

/// Workloads 3 and 4: group commit, N threads, each doing `iters` appends per sample.
fn bench_group_commit(c: &mut Criterion, rec: &mut Recorder, scale: &Scale, root: &BenchRoot) {
    let small = scale.small_payload_bytes;
    let mut g = group(c, "group_commit");
    g.measurement_time(DURABLE_MEASUREMENT);
    for &threads in &scale.group_threads {
        g.throughput(Throughput::Elements(threads as u64));
        let mut log: Option<DurableLog> = None;
        let w = Workload::GroupCommit { threads, payload_bytes: small };
        g.bench_function(format!("threads/{threads}"), |b| {
            let log = log.get_or_insert_with(|| or_exit(DurableLog::new(root, SyncMode::Group, small)));
            b.iter_custom(|iters| timed_paired(rec, w, log, threads, iters));
        });
    }
    g.finish();
}

/// Workload 1, sequential write throughput (each iteration: a fresh file of `seq_file_chunks`
/// chunks, removed untimed, so dirty pages never pile up); workload 2, buffered appends.
fn bench_throughput(c: &mut Criterion, rec: &mut Recorder, scale: &Scale, root: &BenchRoot) {
    let small = scale.small_payload_bytes;
    let mut g = group(c, "throughput");
    let file_bytes = scale.seq_file_chunks * scale.seq_chunk_bytes as u64;
    g.throughput(Throughput::Bytes(file_bytes));
    for synced in [true, false] {
        let name = if synced { "raw_seq_write_fdatasync" } else { "raw_seq_write_page_cache" };
        let w = Workload::RawSeqWrite { synced };
        g.bench_function(format!("{name}/{}MiB", file_bytes >> 20), |b| {
            b.iter_custom(|iters| {
                timed_each(rec, w, iters, || {
                    raw_sequential_write(root, scale.seq_file_chunks, scale.seq_chunk_bytes, synced)
                })
            });
        });
    }
    g.throughput(Throughput::Elements(1));
    let w = Workload::BufferedAppend { payload_bytes: small };
    g.bench_function(format!("wal_buffered_append/{small}B"), |b| {
        b.iter_custom(|iters| timed(rec, w, buffered_append(root, iters, small)));
    });
    g.finish();
}

/// Workloads 5 and 6: scan and seek over one log of sealed segments.
fn bench_read(c: &mut Criterion, rec: &mut Recorder, scale: &Scale, root: &BenchRoot) {
    let mut fixture: Option<ScanFixture> = None;
    let mut build = || {
        let fx = or_exit(ScanFixture::build(root, scale));
        // Fault the mappings in once, untimed, so every sample sees the steady state.
        or_exit(fx.scan());
        fx
    };
    let mut g = group(c, "read");
    g.throughput(Throughput::Bytes(
        (scale.scan_log_bytes / encoded_len(scale.scan_payload_bytes)).max(1) * encoded_len(scale.scan_payload_bytes),
    ));
    g.bench_function(format!("scan/{}MiB", scale.scan_log_bytes >> 20), |b| {
        let fx = fixture.get_or_insert_with(&mut build);
        b.iter_custom(|iters| timed_each(rec, Workload::Scan, iters, || fx.scan()));
    });
    g.throughput(Throughput::Elements(1));
    g.sampling_mode(SamplingMode::Auto);
    let mut rng = XorShift::new(0x5EED);
    g.bench_function("seek_random_lsn", |b| {
        let fx = fixture.get_or_insert_with(&mut build);
        b.iter_custom(|iters| timed(rec, Workload::Seek, fx.seek(iters, &mut rng)));
    });
    g.finish();
}

/// Workload 7: open after a crash, warm and cold page cache.
fn bench_open(c: &mut Criterion, rec: &mut Recorder, scale: &Scale, root: &BenchRoot) {
    let mut fixture: Option<OpenFixture> = None;
    let mut g = group(c, "open");
    for cold_cache in [false, true] {
        let name = if cold_cache { "after_crash_cold_cache" } else { "after_crash_warm_cache" };
        let w = Workload::OpenAfterCrash { cold_cache };
        g.bench_function(format!("{name}/{}MiB", scale.open_log_bytes >> 20), |b| {
            let fx = fixture.get_or_insert_with(|| or_exit(OpenFixture::build(root, scale)));
            b.iter_custom(|iters| timed_each(rec, w, iters, || fx.open_after_crash(cold_cache)));
        });
    }
    g.finish();
}
