//! Criterion benchmarks of engine commits: one-row transactions through `walden-engine` with
//! `SyncMode::Always` and `SyncMode::Group` at 1, 8 and 64 threads, each paired in time with the
//! raw `pwrite` + `fdatasync` loop; ends with a summary table (commits/s, p50/p99 commit latency,
//! fsyncs per commit).
//!
//! `cargo bench -p walden-benches --bench engine` (about 3 minutes on 2 cores after the build);
//! `-- --test` runs each body once on tiny data, and so does `WALDEN_BENCH_SMOKE=1`. See
//! BENCHMARKS.md.

use criterion::{Criterion, Throughput};
use walden_benches::{BenchRoot, CommitSync, EngineCommits, Recorder, Scale, Suite, Workload};

mod common;
use common::{DURABLE_MEASUREMENT, group, or_exit};

fn main() {
    common::run(Suite::Engine, bench_all);
}

fn bench_all(c: &mut Criterion, rec: &mut Recorder, scale: &Scale, root: &BenchRoot) {
    let row_bytes = scale.engine_row_bytes;
    let mut g = group(c, "engine_commit");
    g.measurement_time(DURABLE_MEASUREMENT);
    for sync in [CommitSync::Always, CommitSync::Group] {
        for &threads in &scale.engine_threads {
            // Criterion's iteration = one commit per thread.
            g.throughput(Throughput::Elements(threads as u64));
            let mut commits: Option<EngineCommits> = None;
            let workload = Workload::EngineCommit { sync, threads, row_bytes };
            let id = format!("{}/threads/{threads}", sync.name().to_lowercase());
            g.bench_function(id, |b| {
                let commits =
                    commits.get_or_insert_with(|| or_exit(EngineCommits::new(root, sync.sync_mode(), row_bytes)));
                b.iter_custom(|iters| {
                    let paired = or_exit(commits.run(threads, iters));
                    let elapsed = paired.wal.elapsed;
                    rec.add_paired_raw_bytes(workload, commits.commit_bytes(), paired);
                    elapsed
                });
            });
        }
    }
    g.finish();
}
